"""Figures and tables of the MCH chapter, in the style of the paper's Figures 3–9 and Tables 2–3.

Inputs are run records (dicts as written by :func:`hashrepro.results.save_run`, or the
``record`` column of :func:`hashrepro.results.load_records`). Panel functions take an optional
matplotlib ``Axes`` and return it.

* Figs. 3–4: :func:`radius0_vs_bits` — R@H=0 / P@H=0 of X and MCH-X against code length.
* Figs. 5–7: :func:`f1_bucket` — F1 against hash buckets visited (one point per K of Algorithm 1).
* Fig. 8: :func:`retrieval_grid` — a query, its top 10 and their Hamming distances under X and MCH-X.
* Fig. 9: :func:`sensitivity` — F1–bucket curves of MCH-X for several σ (or ξ).
* Table 3: :func:`anhc_grid` — ANHC over σ × ξ (ours) and :func:`paper_anhc_grid` (the paper's).
* :func:`agent_curve` — reward and keep probability during REINFORCE.
* :func:`summary_table`, :func:`bucket_ratio`, :func:`xi_table` — the chapter's tables (the claims
  and their verdicts: :mod:`hashrepro.claims`).
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Iterable

import numpy as np
import pandas as pd

from ..metrics import buckets_at_f1

__all__ = [
    "STYLE",
    "as_records",
    "pairs",
    "agent_variant",
    "with_agent",
    "f1_bucket",
    "radius0_vs_bits",
    "sensitivity",
    "anhc_grid",
    "paper_anhc_grid",
    "agent_curve",
    "retrieval_grid",
    "bucket_ratio",
    "summary_table",
    "xi_table",
    "plot_run",
]

_BASE_STYLE = {
    "ksh": ("tab:orange", "<", "KSH"),
    "hashnet": ("tab:blue", "s", "HashNet"),
    "adsh": ("tab:green", "^", "ADSH"),
    "dch": ("tab:red", "o", "DCH"),
    "mmhh": ("tab:purple", "D", "MMHH"),
    "lsh": ("gold", "*", "LSH"),
    "itq": ("black", "+", "ITQ"),
}
#: colour, marker, label of every method; MCH-X shares X's colour (solid line; X is dashed).
STYLE = dict(_BASE_STYLE)
for _k, (_c, _m, _l) in list(_BASE_STYLE.items()):
    STYLE[f"mch-{_k}"] = (_c, _m, f"MCH-{_l}")


def _style(method: str):
    return STYLE.get(method, ("tab:gray", ".", method))


def _ls(method: str) -> str:
    return "-" if method.startswith("mch-") else "--"


def as_records(records) -> list[dict]:
    """A DataFrame from ``load_records`` (its ``record`` column), a list of dicts, or one dict -> list."""
    if records is None:
        return []
    if isinstance(records, pd.DataFrame):
        return list(records["record"]) if "record" in records and len(records) else []
    if isinstance(records, dict):
        return [records]
    return list(records)


def _latest(recs: list[dict]) -> dict[tuple, dict]:
    """Latest record per (method, dataset, bits, seed, scale, agent update): the agent update
    (:func:`agent_variant`) of an MCH-X record, "" for every other record (X alone does not depend
    on the agent), so that runs of two agent updates of the same seed both stay."""
    out: dict[tuple, dict] = {}
    for r in sorted(recs, key=lambda r: str(r.get("finished", ""))):
        v = agent_variant(r) if str(r["method"]).startswith("mch-") else ""
        out[(r["method"], r["dataset"], int(r["bits"]), int(r["seed"]), r.get("scale"), v)] = r
    return out


def pairs(records) -> list[tuple[dict, dict]]:
    """(X record, MCH-X record) pairs of the same dataset, bits, seed and scale (one pair per agent
    update of MCH-X)."""
    latest = _latest(as_records(records))
    out = []
    for (m, d, b, s, sc, v), r in sorted(latest.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if m.startswith("mch-") and (m[4:], d, b, s, sc, "") in latest:
            out.append((latest[(m[4:], d, b, s, sc, "")], r))
    return out


def agent_variant(record: dict) -> str:
    """How the record's agent was trained: ``"eq. 7"`` (REINFORCE as printed, no baseline: every
    record made before the ``agent_baseline`` option existed) or e.g. ``"baseline ema + norm"``;
    with ``" + T <n>"`` when its schedule ``agent_iters`` is not its scale's T
    (:data:`hashrepro.methods.mch_agent.AGENT_ITERS_BY_SCALE`: §5.2.2's T = 100), e.g.
    ``"baseline ema + norm + T 2000"`` (the agent trained until its training reward levels off)."""
    from ..methods.mch_agent import AGENT_ITERS_BY_SCALE

    cfg = record.get("config", {}) or {}
    b = cfg.get("agent_baseline", "none")
    norm = bool(cfg.get("agent_reward_norm", False))
    ent = float(cfg.get("agent_entropy", 0.0) or 0.0)
    parts = [f"baseline {b}"] if b != "none" else []
    if norm:
        parts.append("norm")
    if ent:
        parts.append(f"entropy {ent:g}")
    text = " + ".join(parts) if parts else "eq. 7"
    iters, scale = cfg.get("agent_iters"), cfg.get("scale", record.get("scale"))
    if iters is not None and scale in AGENT_ITERS_BY_SCALE and int(iters) != AGENT_ITERS_BY_SCALE[scale]:
        text += f" + T {int(iters)}"
    return text


def with_agent(recs: list[dict], agent: str | None = "default") -> list[dict]:
    """The records of one agent update: the MCH-X records (method ``mch-…``) whose
    :func:`agent_variant` is ``agent`` (``"default"``: the recipe's default update and schedule,
    :data:`hashrepro.methods.mch_agent.AGENT_DEFAULTS`), every other record as is; None: all.

    The companions of an MCH run (X alone, LSH, ITQ) do not depend on the agent: X is trained before
    it, with the same seeds, so runs that differ only in their agent write the same X, under the same
    file name (:func:`hashrepro.recipe.save_with_companions`); they are kept whatever the agent."""
    if agent is None:
        return list(recs)
    if agent == "default":
        from ..methods.mch_agent import AGENT_DEFAULTS

        agent = agent_variant({"config": dict(AGENT_DEFAULTS)})
    return [r for r in recs if r.get("paper") != "mch" or not str(r.get("method", "")).startswith("mch-")
            or agent_variant(r) == agent]


# --------------------------------------------------------------------------- figures
def f1_bucket(records, dataset: str | None = None, bits: int | None = None, methods: Iterable[str] | None = None,
              ax=None, curve: str = "f1_bucket", legend: bool = True, oracle: bool = False):
    """Figs. 5–7: F1 (y) against the number of hash buckets visited (x, log scale), one point per K.

    Draws the lowest-seed record of every method (MCH-X: of the default agent update, :func:`with_agent`) for the given dataset and bits (all of them
    when None). MCH-X is a thick solid line drawn first; X (and the baselines) dashed with hollow
    markers on top, so that X stays visible where MCH-X coincides with it (ANHC = 1).
    ``oracle``: also the oracle-agent curve of each MCH-X record (dotted).
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3.6))[1]
    latest = _latest(with_agent(as_records(records)))
    seen = set()
    order = sorted(latest.items(), key=lambda kv: (not kv[0][0].startswith("mch-"), kv[0][0], kv[0][3]))
    for (m, d, b, s, sc, _), r in order:
        if (dataset and d != dataset) or (bits and b != bits) or (methods and m not in methods):
            continue
        if (m, d, b) in seen or curve not in r.get("curves", {}):
            continue
        seen.add((m, d, b))
        c = r["curves"][curve]
        col, mk, lab = _style(m)
        if m.startswith("mch-"):
            ax.plot(np.maximum(c["buckets"], 1), c["f1"], "-", color=col, marker=mk, ms=5, lw=3, alpha=0.45, label=lab)
            if oracle and "f1_bucket_oracle" in r["curves"]:
                o = r["curves"]["f1_bucket_oracle"]
                ax.plot(np.maximum(o["buckets"], 1), o["f1"], ":", color=col, lw=1.2, label=f"{lab} (oracle agent)")
        else:
            ax.plot(np.maximum(c["buckets"], 1), c["f1"], "--", color=col, marker=mk, ms=4, lw=1.1,
                    markerfacecolor="none", label=lab)
    ax.set_xscale("log")
    ax.set_xlabel("hash buckets visited (mean per query)")
    ax.set_ylabel("F1")
    title = " ".join(str(x) for x in (dataset, f"{bits} bits" if bits else None) if x)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if legend and seen:
        ax.legend(fontsize=6, ncol=2)
    return ax


def radius0_vs_bits(records, dataset: str, metric: str = "recall_radius0", ax=None, bases=None):
    """Figs. 3–4: R@H=0 (or P@H=0 with ``metric="precision_radius0"``) against code length,
    mean ± std over seeds, X dashed and MCH-X solid."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(4.5, 3.4))[1]
    vals = defaultdict(list)
    for r in as_records(records):
        if r["dataset"] == dataset and metric in r.get("metrics", {}):
            vals[(r["method"], int(r["bits"]))].append(float(r["metrics"][metric]))
    methods = sorted({m for m, _ in vals})
    for m in methods:
        base = m[4:] if m.startswith("mch-") else m
        if bases and base not in bases:
            continue
        bs = sorted(b for mm, b in vals if mm == m)
        mu = [np.mean(vals[(m, b)]) for b in bs]
        sd = [np.std(vals[(m, b)]) for b in bs]
        col, mk, lab = _style(m)
        ax.errorbar(bs, mu, yerr=sd, fmt=_ls(m), color=col, marker=mk, ms=4, capsize=2, label=lab)
    ax.set_xticks(sorted({b for _, b in vals}))
    ax.set_xlabel("bits")
    ax.set_ylabel({"recall_radius0": "recall @ H=0", "precision_radius0": "precision @ H=0"}.get(metric, metric))
    ax.set_title(dataset, fontsize=10)
    ax.grid(alpha=0.3)
    if methods:
        ax.legend(fontsize=7, ncol=2)
    return ax


def sensitivity(record: dict, vary: str = "sigma", ax=None, base_record: dict | None = None):
    """Fig. 9: F1–bucket curves of MCH-X for each σ (``vary="sigma"``, ξ fixed) or each ξ,
    with the base model's curve (dashed) when ``base_record`` is given."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(4.5, 3.4))[1]
    s = pd.DataFrame(record["curves"]["sensitivity"])
    s = s[s["vary"] == vary]
    cmap = plt.get_cmap("viridis")
    vals = sorted(s[vary].unique())
    for i, v in enumerate(vals):
        g = s[s[vary] == v].sort_values("K")
        lab = f"{'σ' if vary == 'sigma' else 'ξ'}={v:g} (ANHC {g['anhc'].iloc[0]:.2f})"
        ax.plot(np.maximum(g["buckets"], 1), g["f1"], "-", marker=".", color=cmap(i / max(1, len(vals) - 1)), label=lab)
    if base_record is not None:
        c = base_record["curves"]["f1_bucket"]
        ax.plot(np.maximum(c["buckets"], 1), c["f1"], "--", color="k", lw=1, label=base_record["method"].upper())
    ax.set_xscale("log")
    ax.set_xlabel("hash buckets visited")
    ax.set_ylabel("F1")
    ax.set_title(f"{record['method'].upper()}, {record['bits']} bits: varying {'σ' if vary == 'sigma' else 'ξ'}",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


def anhc_grid(record: dict, column: str = "anhc") -> pd.DataFrame:
    """Table 3 from one MCH record: ANHC with rows σ and columns ξ (``column="anhc_raw"`` for
    eq. 8 without merging equal codes)."""
    g = pd.DataFrame(record["curves"]["anhc_grid"])
    t = g.pivot(index="sigma", columns="xi", values=column)
    t.index.name, t.columns.name = "σ \\ ξ", None
    return t


def paper_anhc_grid(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 3 (``paper_table("mch_table3")``) as a σ × ξ grid."""
    rows = []
    for _, r in table.iterrows():
        m = re.match(r"anhc\[sigma=([0-9.]+),xi=([0-9.]+)\]", str(r["metric"]))
        if m:
            rows.append((float(m.group(1)), float(m.group(2)), float(r["value"])))
    g = pd.DataFrame(rows, columns=["sigma", "xi", "anhc"]).pivot(index="sigma", columns="xi", values="anhc")
    g.index.name, g.columns.name = "σ \\ ξ", None
    return g


def agent_curve(record: dict, ax=None):
    """Mean reward of the sampled actions and mean π(keep|h) over the T iterations of Algorithm 2."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(4.5, 3.2))[1]
    a = record["curves"]["agent"]
    it = np.asarray(a["iteration"]) + 1
    ax.plot(it, a["keep_prob"], color="tab:blue", label="mean π(keep | h)")
    ax.plot(it, a["oracle_keep"], color="tab:green", lw=0.8, label="crops with reward > 0")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("probability / fraction")
    ax.set_ylim(0, 1)
    ax2 = ax.twinx()
    ax2.plot(it, a["reward"], color="tab:red", lw=0.8, alpha=0.7, label="mean reward (eq. 6)")
    ax2.set_ylabel("reward", color="tab:red")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    ax.set_title(f"agent of {record['method'].upper()}", fontsize=10)
    return ax


def retrieval_grid(record: dict, images: np.ndarray, n_queries: int | None = None, fig=None):
    """Fig. 8: each row a query (first column) and its top 10 under MCH-X's bucket search, titled
    ``H@X / H@MCH-X`` (Hamming distance to the item under the base model / under MCH); a green
    frame marks a relevant item; ``×n`` the number of codes the item has.

    images : the data set's images (N, H, W, C) uint8, indexed by the record's dataset indices.
    """
    import matplotlib.pyplot as plt

    v = pd.DataFrame(record["curves"]["visual"])
    if v.empty:
        raise ValueError("this record has no retrieval visualisation (n_visual = 0)")
    qs = list(dict.fromkeys(v["query"]))[:n_queries]
    ncol = 1 + int(v["rank"].max()) + 1
    fig = fig or plt.figure(figsize=(1.1 * ncol, 1.25 * len(qs)))
    axes = fig.subplots(len(qs), ncol, squeeze=False)
    for i, q in enumerate(qs):
        g = v[v["query"] == q].sort_values("rank")
        cells = [(int(q), None)] + [(int(row.item), row) for row in g.itertuples()]
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(cells):
                ax.axis("off")
                continue
            idx, row = cells[j]
            img = images[idx]
            ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None)
            if row is None:
                ax.set_title("query", fontsize=7)
                for sp in ax.spines.values():
                    sp.set_color("tab:blue")
                    sp.set_linewidth(2)
            else:
                ax.set_title(f"{row.d_base}/{row.d_mch}" + (f" ×{row.n_codes}" if row.n_codes > 1 else ""), fontsize=7)
                for sp in ax.spines.values():
                    sp.set_color("tab:green" if row.relevant else "tab:red")
                    sp.set_linewidth(2)
    fig.suptitle(f"top 10 by {record['method'].upper()} bucket search; titles: "
                 f"H@{record['method'][4:].upper()} / H@{record['method'].upper()}", fontsize=8)
    return fig


# --------------------------------------------------------------------------- tables
def bucket_ratio(base: dict, mch: dict, target: float | None = None, curve: str = "f1_bucket") -> dict:
    """Buckets visited by X and MCH-X to reach the same F1, and their ratio (MCH / X).

    ``target``: the F1 level (default 0.5, lowered to the highest F1 both curves reach when one
    stays below it). Buckets at a level are interpolated log-linearly between the K points around
    it (:func:`hashrepro.metrics.buckets_at_f1`). Returns ``{"f1", "buckets_base",
    "buckets_mch", "ratio"}``.
    """
    cb, cm = base["curves"]["f1_bucket"], mch["curves"][curve]
    reach = min(max(cb["f1"]), max(cm["f1"]))
    t = 0.5 if target is None else float(target)
    t = min(t, reach)
    bb, bm = buckets_at_f1(cb, t), buckets_at_f1(cm, t)
    return {"f1": t, "buckets_base": bb, "buckets_mch": bm,
            "ratio": bm / bb if bb and not math.isnan(bb) and not math.isnan(bm) else float("nan")}


def _mean_std(vals):
    vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return float("nan"), float("nan"), 0
    return float(np.mean(vals)), float(np.std(vals)) if len(vals) > 1 else float("nan"), len(vals)


def _fmt(m, s, n, digits=4):
    if n == 0 or math.isnan(m):
        return "–"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if n > 1 and not math.isnan(s) else "") + (f" (n={n})" if n > 1 else "")


def summary_table(records, metrics=("map", "recall_radius0", "precision_radius0", "anhc"), digits: int = 4) -> pd.DataFrame:
    """X beside MCH-X for every dataset, bits and base: each metric as "mean ± std (n seeds)"."""
    rows = []
    groups = defaultdict(lambda: defaultdict(list))
    for xb, xm in pairs(records):
        key = (xm["dataset"], int(xm["bits"]), xb["method"], agent_variant(xm))
        for met in metrics:
            groups[key][("X", met)].append(xb["metrics"].get(met, float("nan")))
            groups[key][("MCH-X", met)].append(xm["metrics"].get(met, float("nan")))
        r = bucket_ratio(xb, xm)
        groups[key][("ratio", "f1")].append(r["f1"])
        groups[key][("ratio", "ratio")].append(r["ratio"])
    for (d, b, m, v), g in sorted(groups.items()):
        row = {"dataset": d, "bits": b, "base": m, "agent": v}
        for met in metrics:
            for side in ("X", "MCH-X"):
                row[f"{met} {side}"] = _fmt(*_mean_std(g[(side, met)]), digits=digits)
        f1m = _mean_std(g[("ratio", "f1")])
        row["buckets MCH/X at equal F1"] = (_fmt(*_mean_std(g[("ratio", "ratio")]), digits=3)
                                            + (f" (F1={f1m[0]:.2f})" if f1m[2] else ""))
        rows.append(row)
    return pd.DataFrame(rows)


def xi_table(records, target: float = 0.5) -> pd.DataFrame:
    """From the Fig.-9 sensitivity curves of every MCH-X run: ANHC and the buckets MCH-X / X at
    F1 = ``target`` (or the highest F1 both reach) for each σ (ξ fixed) and each ξ (σ fixed).

    Returns one row per (dataset, bits, base, vary, value)."""
    rows = []
    for xb, xm in pairs(records):
        if "sensitivity" not in xm.get("curves", {}):
            continue
        s = pd.DataFrame(xm["curves"]["sensitivity"])
        cb = xb["curves"]["f1_bucket"]
        for vary in ("sigma", "xi"):
            sv = s[s["vary"] == vary]
            for val, g in sv.groupby(vary):
                g = g.sort_values("K")
                c = {"f1": g["f1"].tolist(), "buckets": g["buckets"].tolist()}
                t = min(target, max(cb["f1"]), max(c["f1"]))
                bb, bm = buckets_at_f1(cb, t), buckets_at_f1(c, t)
                rows.append({"dataset": xm["dataset"], "bits": int(xm["bits"]), "base": xb["method"],
                             "σ": float(g["sigma"].iloc[0]), "ξ": float(g["xi"].iloc[0]), "vary": vary,
                             "ANHC": round(float(g["anhc"].iloc[0]), 3), "F1": round(t, 2),
                             "buckets MCH/X": round(bm / bb, 3) if bb else float("nan")})
    return pd.DataFrame(rows)


def plot_run(record: dict, companions: Iterable[dict] = ()):
    """The notebook's figure for one run: F1–bucket of X, MCH-X (and baselines), σ / ξ
    sensitivity and the agent's learning curve."""
    import matplotlib.pyplot as plt

    comps = list(companions)
    base = next((c for c in comps if c["method"] == record["method"][4:]), None)
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    f1_bucket([record, *comps], ax=axes[0])
    if "f1_bucket_oracle" in record["curves"]:
        c = record["curves"]["f1_bucket_oracle"]
        axes[0].plot(np.maximum(c["buckets"], 1), c["f1"], ":", color="gray", label="oracle agent")
        axes[0].legend(fontsize=7, ncol=2)
    sensitivity(record, "sigma", axes[1], base)
    sensitivity(record, "xi", axes[2], base)
    agent_curve(record, axes[3])
    fig.tight_layout()
    return fig


def regime_table(records, dataset: str = "mosaic-cifar10", bits: int = 32,
                 bases=("ksh", "hashnet", "adsh", "dch", "mmhh"), backbone: str = "efficientnet_lite0",
                 agent: str | None = "default"):
    """Both regimes per base model X at ``bits``: mAP of X from scratch (on the scratch preset's
    4,000-mosaic split, and on the pretrained preset's 2,000-mosaic split: ``<x>-mosaic2000-q20-t80``,
    the protocol of the ImageNet column) and on the ImageNet backbone,
    MCH-X on the backbone, recall within radius 0 (X / MCH-X), ANHC kept by the agent, and the oracle
    diagnostic (the ANHC and mAP of keeping exactly the crops with a positive eq.-6 reward).

    ``records``: run records (list or :func:`hashrepro.results.load_records` frame); cells are the mean
    over the seeds present with "(n=k)" appended when k > 1, "—" where no record exists. ``agent``: the
    runs of one agent update (:func:`agent_variant`; ``"default"``: the recipe's, T = 100) only, so that a
    run of another agent, whose X companions repeat the same base model, is not counted twice; None: all.
    Returns a DataFrame.
    """
    import pandas as pd

    from ..claims.mch import PRETRAINED_SPLIT as split

    recs = with_agent(as_records(records), agent)

    def cell(method, metric, digits=3):
        vals = [r["metrics"].get(metric) for r in recs
                if r["method"] == method and r["dataset"] == dataset and int(r["bits"]) == int(bits)
                and r["metrics"].get(metric) is not None and np.isfinite(r["metrics"].get(metric))]
        if not vals:
            return "—"
        return f"{np.mean(vals):.{digits}f}" + (f" (n={len(vals)})" if len(vals) > 1 else "")

    rows = []
    for x in bases:
        pt = f"{x}-{backbone}"
        rows.append({"base model X": x, "X, scratch": cell(x, "map"),
                     "X, scratch, same split": cell(f"{x}-{split}", "map"), "X, ImageNet": cell(pt, "map"),
                     "MCH-X, ImageNet": cell(f"mch-{pt}", "map"),
                     "R@H=0 X / MCH-X (ImageNet)": f"{cell(pt, 'recall_radius0', 4)} / {cell(f'mch-{pt}', 'recall_radius0', 4)}",
                     "ANHC (ImageNet)": cell(f"mch-{pt}", "anhc"),
                     "oracle ANHC / mAP": f"{cell(f'mch-{pt}', 'oracle_anhc')} / {cell(f'mch-{pt}', 'oracle_map')}"})
    return pd.DataFrame(rows)
