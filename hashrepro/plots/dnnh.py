"""Figures of the DNNH chapter, in the style of the paper's Figures 5–8.

Each panel function takes run records (dicts as written by :func:`hashrepro.results.save_run`,
or the ``record`` column of :func:`hashrepro.results.load_records`) and an optional matplotlib
``Axes``; it returns the ``Axes``. Methods are drawn with fixed colours/markers so the same
method looks the same in every figure.

* Fig. 6(a): :func:`precision_radius_vs_bits` — precision within Hamming radius 2 vs bits.
* Fig. 6(b): :func:`pr_curve` — precision–recall of Hamming ranking at 48 bits (one point per
  Hamming radius r = 0..q, as the curve is traced by growing the radius).
* Fig. 6(c) / Fig. 8: :func:`precision_at_k` — precision vs number of top returned samples.
* :func:`map_vs_bits` — Table 2 as a figure: ours (mean ± std over seeds) beside the paper.
* :func:`figure6` — the three panels of Fig. 5/6/7 for one dataset; :func:`plot_run` — the
  panels for a single run (used by the notebook).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

__all__ = [
    "STYLE",
    "as_records",
    "precision_radius_vs_bits",
    "pr_curve",
    "precision_at_k",
    "map_vs_bits",
    "training_loss",
    "figure6",
    "plot_run",
    "aggregate",
    "table2",
    "detail_table",
    "ablation_table",
    "baseline_records",
]

#: colour, marker and label of each method (ours and the paper's baselines).
STYLE = {
    "dnnh-dem": ("tab:red", "o", "DNNH (DEM)"),
    "dnnh-fc": ("tab:blue", "s", "DNNH (FC)"),
    "dnnh-two-subnets": ("tab:green", "^", "DNNH (2 sub-networks)"),
    "cnnh*": ("tab:purple", "v", "CNNH*"),
    "cnnh-star": ("tab:purple", "v", "CNNH* (ours)"),
    "cnnh": ("tab:brown", "D", "CNNH"),
    "ksh": ("tab:orange", "<", "KSH"),
    "itq-cca": ("tab:olive", ">", "ITQ-CCA"),
    "mlh": ("tab:cyan", "p", "MLH"),
    "bre": ("tab:pink", "h", "BRE"),
    "sh": ("tab:gray", "x", "SH"),
    "itq": ("black", "+", "ITQ"),
    "lsh": ("gold", "*", "LSH"),
}


def _style(method: str):
    return STYLE.get(method, ("tab:gray", ".", method))


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4.2, 3.4))
    return ax


def as_records(records) -> list[dict]:
    """Accept a list of record dicts, one dict, or a DataFrame with a ``record`` column."""
    if records is None:
        return []
    if isinstance(records, dict):
        return [records]
    if hasattr(records, "columns"):
        if len(records) == 0:
            return []
        if "record" not in records.columns:
            raise ValueError("a DataFrame of records needs a 'record' column (hashrepro.results.load_records)")
        return list(records["record"])
    return list(records)


def _select(records, dataset=None, bits=None, methods=None) -> list[dict]:
    out = []
    for r in as_records(records):
        if dataset is not None and r.get("dataset") != dataset:
            continue
        if bits is not None and int(r.get("bits", -1)) != int(bits):
            continue
        if methods is not None and r.get("method") not in methods:
            continue
        out.append(r)
    return out


def _by_method(records) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r["method"]].append(r)
    return dict(sorted(groups.items(), key=lambda kv: list(STYLE).index(kv[0]) if kv[0] in STYLE else 99))


def _empty(ax, text="no run records"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")
    return ax


def _metric_vs_bits(records, metric, ax, paper=None, dataset=None, ylabel=""):
    ax = _ax(ax)
    recs = _select(records, dataset=dataset)
    drawn = False
    for method, rs in _by_method(recs).items():
        vals = defaultdict(list)
        for r in rs:
            v = r.get("metrics", {}).get(metric)
            if v is not None and np.isfinite(v):
                vals[int(r["bits"])].append(float(v))
        if not vals:
            continue
        b = sorted(vals)
        m = np.array([np.mean(vals[x]) for x in b])
        s = np.array([np.std(vals[x], ddof=1) if len(vals[x]) > 1 else 0.0 for x in b])
        c, mk, lab = _style(method)
        ax.errorbar(b, m, yerr=s if (s > 0).any() else None, color=c, marker=mk, label=f"{lab} (ours)", capsize=2)
        drawn = True
    if paper is not None and len(paper):
        p = paper[(paper["metric"] == metric)]
        if dataset is not None:
            p = p[p["dataset"] == dataset]
        for method, g in p.groupby("method", sort=False):
            g = g.sort_values("bits")
            c, mk, lab = _style(method)
            ax.plot(g["bits"], g["value"], color=c, marker=mk, ls="--", mfc="none", alpha=0.8, label=f"{lab} (paper)")
            drawn = True
    if not drawn:
        return _empty(ax)
    ax.set_xlabel("Number of bits")
    ax.set_ylabel(ylabel)
    ax.set_xticks([12, 24, 32, 48])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def precision_radius_vs_bits(records, ax=None, paper=None, dataset=None):
    """Fig. 6(a): precision within Hamming radius 2 vs number of bits (mean ± std over seeds).

    ``paper``: optional paper table (long DataFrame) whose ``precision_radius2`` rows are drawn
    dashed with hollow markers (Table 4 has them for CIFAR-10).
    """
    return _metric_vs_bits(records, "precision_radius2", ax, paper, dataset,
                           "Precision (Hamming dist. ≤ 2)")


def map_vs_bits(records, ax=None, paper=None, dataset=None):
    """MAP of Hamming ranking vs bits: ours (solid, ± std) and the paper's rows (dashed)."""
    return _metric_vs_bits(records, "map", ax, paper, dataset, "MAP")


def pr_curve(records, ax=None, dataset=None, bits=48):
    """Fig. 6(b): precision–recall of Hamming ranking (one point per Hamming radius), one seed per method.

    Uses ``curves["pr_radius"]`` ({"radius", "precision", "recall"}); the first seed of each method.
    """
    ax = _ax(ax)
    recs = _select(records, dataset=dataset, bits=bits)
    drawn = False
    for method, rs in _by_method(recs).items():
        r = sorted(rs, key=lambda x: x.get("seed", 0))[0]
        cur = r.get("curves", {}).get("pr_radius")
        if not cur:
            continue
        c, mk, lab = _style(method)
        ax.plot(cur["recall"], cur["precision"], color=c, marker=mk, ms=3, label=lab)
        drawn = True
    if not drawn:
        return _empty(ax)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{bits} bits", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def precision_at_k(records, ax=None, dataset=None, bits=48, max_k=1000):
    """Fig. 6(c) / Fig. 8: precision vs number of top returned samples (mean over seeds)."""
    ax = _ax(ax)
    recs = _select(records, dataset=dataset, bits=bits)
    drawn = False
    for method, rs in _by_method(recs).items():
        ys = []
        k = None
        for r in rs:
            cur = r.get("curves", {}).get("precision_at_k")
            if not cur:
                continue
            kk = np.asarray(cur["k"])
            sel = kk <= max_k
            if k is None:
                k = kk[sel]
            if len(kk[sel]) == len(k):
                ys.append(np.asarray(cur["precision"])[sel])
        if not ys:
            continue
        c, mk, lab = _style(method)
        ax.plot(k, np.mean(ys, axis=0), color=c, marker=mk, ms=3, label=lab)
        drawn = True
    if not drawn:
        return _empty(ax)
    ax.set_xlabel("Number of top returned samples")
    ax.set_ylabel("Precision")
    ax.set_title(f"{bits} bits", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def training_loss(records, ax=None):
    """Training loss (eq. 2, mean over in-batch triplets) against iterations, one line per record."""
    from ..recipe import read_loss_curve

    ax = _ax(ax)
    drawn = False
    for r in as_records(records):
        cur = read_loss_curve(r)
        if not cur or not cur.get("iteration"):
            continue
        c, _, lab = _style(r.get("method", ""))
        ax.plot(cur["iteration"], cur["loss"], label=f"{lab} {r.get('bits')}b", alpha=0.85)
        drawn = True
    if not drawn:
        return _empty(ax, "no training curve")
    ax.set_xlabel("Iteration")
    ax.set_ylabel("Triplet loss (eq. 2)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def figure6(records, dataset="cifar10", bits=48, paper=None, title=None):
    """The three panels of Figs. 5–7 for one dataset: (a) precision@r≤2 vs bits, (b) PR, (c) P@k."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    precision_radius_vs_bits(records, axes[0], paper=paper, dataset=dataset)
    pr_curve(records, axes[1], dataset=dataset, bits=bits)
    precision_at_k(records, axes[2], dataset=dataset, bits=bits)
    for ax, letter in zip(axes, "abc"):
        ax.set_title(f"({letter}) " + (ax.get_title() or ""), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_run(record: dict):
    """Panels for a single run: training loss, PR of Hamming ranking, precision at top k."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    training_loss([record], axes[0])
    pr_curve([record], axes[1], bits=record.get("bits"))
    precision_at_k([record], axes[2], bits=record.get("bits"))
    fig.suptitle(f"{record.get('method')} on {record.get('dataset')}, {record.get('bits')} bits, "
                 f"MAP {record.get('metrics', {}).get('map', float('nan')):.3f}", fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- tables of the chapter page
DATASET_LABELS = {"svhn": "SVHN", "cifar10": "CIFAR-10", "nuswide21": "NUS-WIDE", "mnist": "MNIST",
                  "mnist5k": "MNIST (5k)"}
#: datasets of the paper that the offline mirror lacks
NOT_OFFLINE = ("svhn", "nuswide21")
NOT_OFFLINE_TEXT = "not run: data not available offline"
PAPER_BITS = (12, 24, 32, 48)


def _label(method: str) -> str:
    return _style(method)[2]


def aggregate(records, dataset: str, method: str, metric: str = "map") -> dict:
    """Our runs of (dataset, method) grouped by (bits, scale): mean, std, n seeds, wall time, device, iterations."""
    groups: dict = defaultdict(list)
    for r in _select(records, dataset=dataset, methods=(method,)):
        v = r.get("metrics", {}).get(metric)
        if v is None or not np.isfinite(v):
            continue
        groups[(int(r["bits"]), r.get("scale", "?"))].append(r)
    out = {}
    for key, rs in sorted(groups.items()):
        vals = np.array([r["metrics"][metric] for r in rs], dtype=float)
        out[key] = {
            "mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else float("nan"),
            "n": len(rs),
            "wall_time_s": float(np.mean([r.get("wall_time_s", np.nan) for r in rs])),
            "device": ", ".join(sorted({str(r.get("device", "?")) for r in rs})),
            "iterations": ", ".join(sorted({str(r.get("config", {}).get("iterations", "?")) for r in rs})),
            "seeds": sorted(int(r.get("seed", 0)) for r in rs),
        }
    return out


def _fmt_ours(a: dict) -> str:
    """"0.552 ± 0.004 (n=3)" (sample std over seeds; the mean alone for one seed), as hashrepro.results."""
    from ..results import format_mean_std

    return format_mean_std(a["mean"], a["std"], n=a["n"])


def _paper_value(paper, method, dataset, bits, metric="map"):
    if paper is None or not len(paper):
        return None
    p = paper[(paper["method"] == method) & (paper["dataset"] == dataset) & (paper["bits"] == bits)
              & (paper["metric"] == metric)]
    return float(p["value"].iloc[0]) if len(p) else None


def table2(paper, records, our_method: str = "dnnh-dem"):
    """The paper's Table 2 (methods × dataset × bits), with our rows ("ours, <scale>") on top.

    Our cells are "mean ± std (n seeds)"; SVHN/NUS-WIDE read "not run: data not available offline".
    """
    import pandas as pd

    datasets = [d for d in ("svhn", "cifar10", "nuswide21")]
    cols = pd.MultiIndex.from_tuples([(f"{DATASET_LABELS[d]} (MAP)", f"{b} bits") for d in datasets for b in PAPER_BITS])
    rows = {}
    scales = sorted({k[1] for d in datasets for k in aggregate(records, d, our_method)}) or ["default"]
    for scale in scales:
        cells = []
        for d in datasets:
            agg = aggregate(records, d, our_method)
            for b in PAPER_BITS:
                if (b, scale) in agg:
                    cells.append(_fmt_ours(agg[(b, scale)]))
                elif d in NOT_OFFLINE:
                    cells.append(NOT_OFFLINE_TEXT)
                else:
                    cells.append("not run yet")
        rows[f"{_label(our_method)}, ours ({scale} scale)"] = cells
    if paper is not None and len(paper):
        for method in dict.fromkeys(paper["method"]):
            cells = []
            for d in datasets:
                for b in PAPER_BITS:
                    v = _paper_value(paper, method, d, b)
                    cells.append("N/A" if v is None else f"{v:.3f}")
            rows[f"{_label(method)} (paper)"] = cells
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


def detail_table(paper, records, dataset: str, method: str = "dnnh-dem", metric: str = "map"):
    """Per bit length and scale: paper, ours (mean ± std, n seeds), delta, for MAP the tie-aware
    MAP ("ours, ties random": records written since ``map_tie_aware`` exists, "—" before),
    precision r ≤ 2, iterations, wall time and device. Empty DataFrame when we have no run."""
    import pandas as pd

    agg = aggregate(records, dataset, method, metric)
    prec = aggregate(records, dataset, method, "precision_radius2")
    tie = aggregate(records, dataset, method, "map_tie_aware") if metric == "map" else {}
    rows = []
    for (b, scale), a in agg.items():
        pv = _paper_value(paper, method, dataset, b, metric)
        row = {"bits": b}
        if paper is not None:
            row["paper"] = "—" if pv is None else f"{pv:.3f}"
        row[f"ours ({metric}, mean ± std, n)"] = _fmt_ours(a)
        if paper is not None:
            row["delta"] = "—" if pv is None else f"{a['mean'] - pv:+.3f}"
        if metric == "map":
            t = tie.get((b, scale))
            row["ours, ties random"] = "—" if t is None else _fmt_ours(t)
        p2 = prec.get((b, scale))
        row["ours: precision r ≤ 2"] = "—" if p2 is None else f"{p2['mean']:.3f}"
        row.update({"scale": scale, "iterations": a["iterations"], "wall time (s)": f"{a['wall_time_s']:.0f}",
                    "device": a["device"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("bits") if rows else pd.DataFrame()


def ablation_table(paper, records, dataset: str, methods=("dnnh-dem", "dnnh-fc"), metric="map"):
    """Rows (metric, method), columns (bits, paper | ours): Tables 3–5 side by side with our runs.

    Our cell is "mean ± std (n)" over seeds at the largest scale we ran, "not run" otherwise.
    """
    import pandas as pd

    metrics = (metric,) if isinstance(metric, str) else tuple(metric)
    cols = pd.MultiIndex.from_tuples([(f"{b} bits", src) for b in PAPER_BITS for src in ("paper", "ours")])
    rows = {}
    order = {"paper": 2, "default": 1, "smoke": 0}
    for m in metrics:
        for method in methods:
            agg = aggregate(records, dataset, method, m)
            cells = []
            for b in PAPER_BITS:
                pv = _paper_value(paper, method, dataset, b, m)
                cells.append("—" if pv is None else f"{pv:.3f}")
                mine = [(order.get(s, -1), a) for (bb, s), a in agg.items() if bb == b]
                cells.append(_fmt_ours(max(mine, key=lambda t: t[0])[1]) if mine else "not run")
            rows[(m, _label(method))] = cells
    df = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    df.index = pd.MultiIndex.from_tuples(df.index, names=["metric", "method"])
    return df


def _means(records, dataset, method, metric="map") -> dict[int, float]:
    """bits → mean over seeds at the largest scale run."""
    order = {"paper": 2, "default": 1, "smoke": 0}
    best: dict = {}
    for (b, s), a in aggregate(records, dataset, method, metric).items():
        if b not in best or order.get(s, -1) > best[b][0]:
            best[b] = (order.get(s, -1), a["mean"])
    return {b: v for b, (_, v) in sorted(best.items())}


TABLE2_BASELINES = ("ksh", "itq-cca", "mlh", "bre", "sh", "itq", "lsh")


def baseline_records(records, protocol: str = "dnnh") -> list[dict]:
    """Shallow-baseline run records (``results/baselines``) made on DNNH's split: their main
    configuration only (records whose config names a ``variant`` are alternatives, left out)."""
    out = []
    for r in as_records(records):
        cfg = r.get("config", {}) or {}
        if cfg.get("protocol") == protocol and "variant" not in cfg and r.get("method") in TABLE2_BASELINES:
            out.append(r)
    return out
