"""Figures of the DDH chapter in the paper's style.

* :func:`label_precision_figure` — Fig. 2: precision of the constructed positives against the
  true classes, plain K-NN vs K-NN + neighbourhood expansion, over K (one line style per feature
  source), and the same against the number of positives per image.
* :func:`pr_curves_figure` — Fig. 3: precision/recall curves (Hamming ranking, radius sweep) at
  16, 32 and 64 bits, one panel per code length, one line per method.
* :func:`map_vs_bits_figure` — mAP against code length, paper vs ours.

The chapter page (``book/ddh.md``) only loads, calls and shows; what it shows is built here from
the run records (the ImageNet-backbone tables by regime are :mod:`hashrepro.plots.ddh_regimes`):

* :func:`page_records` — the records split into the frames the sections use (:class:`PageRecords`).
* :func:`protocol_outputs` — the per-run protocol table; :func:`pretrained_outputs` — the
  paper-setting section (ImageNet backbone).
* :func:`label_quality` (Fig. 2), :func:`table2_outputs` (Table 2 from scratch),
  :func:`pr_curves_by_bits` / :func:`pr_missing` (Fig. 3), :func:`table4_outputs`,
  :func:`table6_outputs`, :func:`other_paper_tables` (Tables 3 and 5).
* :func:`claims_outputs`, :func:`few_seeds_sentence` — the claims and the settings with too few seeds.

Section functions return a DataFrame, a ``Markdown`` or a list of them (to ``display(*items)`` in
order); a section without records returns the note that says so (:data:`NONE` or its own).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["label_precision_figure", "pr_curves_figure", "map_vs_bits_figure", "NONE", "PageRecords", "page_records",
           "record_of", "method_names", "ours_column", "deep_variant", "protocol_outputs", "pretrained_outputs",
           "label_quality", "table2_outputs", "pr_curves_by_bits", "pr_missing", "table4_outputs", "table6_outputs",
           "other_paper_tables", "claims_outputs", "few_seeds_sentence"]


def _none_to_nan(v):
    return np.array([np.nan if x is None else float(x) for x in v], dtype=float)


def label_precision_figure(curves: Mapping[str, Mapping], k1: int | None = 15, ax=None):
    """Fig. 2. ``curves``: feature source → dict with lists "k", "knn_precision",
    "expanded_precision", "knn_positives", "expanded_positives" (a ``label_precision`` curve of a
    run record). Returns the figure (two panels: precision vs K, precision vs positives/image)."""
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    else:
        axes = ax
        fig = axes[0].figure
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, c) in enumerate(curves.items()):
        col = colors[i % len(colors)]
        k = np.asarray(c["k"], dtype=float)
        axes[0].plot(k, _none_to_nan(c["knn_precision"]), "o--", color=col, label=f"{name}: KNN")
        axes[0].plot(k, _none_to_nan(c["expanded_precision"]), "s-", color=col, label=f"{name}: KNN + expansion")
        axes[1].plot(_none_to_nan(c["knn_positives"]), _none_to_nan(c["knn_precision"]), "o--", color=col,
                     label=f"{name}: KNN")
        axes[1].plot(_none_to_nan(c["expanded_positives"]), _none_to_nan(c["expanded_precision"]), "s-",
                     color=col, label=f"{name}: expansion")
    if k1:
        axes[0].axvline(k1, color="grey", lw=0.8, ls=":")
    axes[0].set_xlabel("K (K1 for the expansion)")
    axes[0].set_ylabel("precision of constructed positives")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("positives per image")
    axes[0].set_title("label precision vs K")
    axes[1].set_title("label precision vs neighbourhood size")
    for a in axes:
        a.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def pr_curves_figure(curves_by_bits: Mapping[int, Mapping[str, Mapping]], ncols: int | None = None):
    """Fig. 3. ``curves_by_bits``: bits → method → a ``pr_radius`` curve dict with "precision"
    and "recall" lists (Hamming radius 0..L). Returns the figure."""
    bits = sorted(curves_by_bits)
    n = max(len(bits), 1)
    ncols = ncols or n
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for a, b in zip(axes[0], bits):
        for method, c in curves_by_bits[b].items():
            r = np.asarray(c["recall"], dtype=float)
            p = np.asarray(c["precision"], dtype=float)
            keep = np.isfinite(r) & np.isfinite(p)
            a.plot(r[keep], p[keep], ".-", label=method, ms=3)
        a.set_xlabel("recall")
        a.set_ylabel("precision")
        a.set_title(f"CIFAR-10, {b} bits")
        a.set_xlim(0, 1)
        a.set_ylim(0, 1)
        a.grid(alpha=0.3)
    if bits:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def map_vs_bits_figure(table, paper_col: str = "paper", ours_col: str = "ours_mean", std_col: str = "ours_std",
                       methods: Iterable[str] | None = None, ax=None):
    """mAP against code length from a :func:`hashrepro.results.compare` table (columns method,
    bits, paper, ours_mean, ours_std). Paper dashed, ours solid with error bars."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 3.4))
    else:
        fig = ax.figure
    methods = list(methods) if methods is not None else list(dict.fromkeys(table["method"]))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(methods):
        t = table[table["method"] == m].sort_values("bits")
        col = colors[i % len(colors)]
        if paper_col in t and t[paper_col].notna().any():
            ax.plot(t["bits"], t[paper_col], "--o", color=col, alpha=0.6, label=f"{m} (paper)")
        if ours_col in t and t[ours_col].notna().any():
            err = t[std_col].fillna(0) if std_col in t else None
            ax.errorbar(t["bits"], t[ours_col], yerr=err, fmt="-s", color=col, label=f"{m} (ours)")
    ax.set_xlabel("bits")
    ax.set_ylabel("mAP")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# =========================================================================== the chapter page
# What ``book/ddh.md`` shows, built from the run records: the page loads the records
# (:func:`page_records`), calls the functions below and displays what they return (a DataFrame, a
# ``Markdown`` or a list of them, in order). Every sentence that states a count or a seed is
# generated here from the records.

#: Shown where a section has no DDH record at all.
NONE = ("No run records yet; run `hashrepro sweep ddh --dataset cifar10 --bits 16 32 64 "
        "--seeds 0 --scale default` (see the admonitions below) and rebuild the book.")
#: Config values of records written before these parameters existed (the values they ran with).
_OLD_DEFAULTS = (("config.task", "retrieval"), ("config.features", "gist"), ("config.dh_input", "backbone"),
                 ("config.method", "ddh"), ("config.backbone", "scratch"), ("config.descriptor", "codes"))


def _md(text: str):
    from IPython.display import Markdown

    return Markdown(text)


def record_of(row) -> dict:
    """The run record (dict) of one row of a :func:`hashrepro.results.load_records` frame."""
    import json

    return row["record"] if isinstance(row["record"], dict) else json.loads(row["record"])


def method_names() -> dict:
    """Record method -> the paper's row name: DDH, DH, DeepBit and the shallow hashers of Table 2."""
    from ..methods.ddh_config import SHALLOW_PAPER_NAMES

    return {"ddh": "DDH", "dh": "DH", "deepbit": "DeepBit", **SHALLOW_PAPER_NAMES}


@dataclass
class PageRecords:
    """The DDH records split the way the page's sections use them (frames of ``load_records`` rows).

    ``records``: all of them, with the config columns of older records filled in (``_OLD_DEFAULTS``);
    ``have``: whether there is any; ``retr`` / ``cifar``: retrieval runs (on CIFAR-10);
    ``hash_runs``: DDH and supervised DDH; ``ddh_cifar``: DDH on CIFAR-10; ``label_runs``: the
    label-quality runs (Fig. 2); ``base_runs``: the shallow hashers of Table 2 on GIST;
    ``deep_runs``: DH and DeepBit; ``t4_runs``: Table 4's hashers on the contrastive features;
    ``flower_runs``: Table 6 from scratch (the ImageNet-backbone rows have their own table).
    """

    records: pd.DataFrame
    have: bool
    retr: pd.DataFrame
    cifar: pd.DataFrame
    hash_runs: pd.DataFrame
    ddh_cifar: pd.DataFrame
    label_runs: pd.DataFrame
    base_runs: pd.DataFrame
    deep_runs: pd.DataFrame
    t4_runs: pd.DataFrame
    flower_runs: pd.DataFrame


def page_records(records: pd.DataFrame) -> PageRecords:
    """Split a :func:`hashrepro.results.load_records` frame of ``results/ddh`` into :class:`PageRecords`
    (``records`` itself is not changed; every part is empty when it has no row)."""
    from ..methods.ddh_config import SHALLOW, TABLE4_BASELINES

    have = len(records) > 0
    if not have:
        empty = pd.DataFrame
        return PageRecords(records, False, *(empty() for _ in range(9)))
    records = records.copy()
    for col, default in _OLD_DEFAULTS:
        records[col] = records[col].fillna(default) if col in records else default
    retr = records[records["config.task"] == "retrieval"]
    cifar = retr[retr["dataset"] == "cifar10"]
    return PageRecords(
        records=records, have=True, retr=retr, cifar=cifar,
        hash_runs=retr[retr["method"].isin(["ddh", "ddh-supervised"])],
        ddh_cifar=cifar[cifar["method"] == "ddh"],
        label_runs=records[records["method"].str.startswith("ddh-labels")],
        base_runs=cifar[cifar["method"].isin(SHALLOW) & (cifar["config.features"] == "gist")],
        deep_runs=cifar[cifar["method"].isin(["dh", "deepbit"])],
        t4_runs=cifar[cifar["method"].isin(TABLE4_BASELINES) & (cifar["config.features"] == "contrastive")],
        flower_runs=records[(records["config.task"] == "classification") & (records["config.backbone"] == "scratch")
                            & (records["config.descriptor"] != "efficientnet_lite0")])


def ours_column(cmp: pd.DataFrame) -> list[str]:
    """"mean ± std (n=k)" per row of a :func:`hashrepro.results.compare` table (n only when > 1)."""
    from ..results import format_mean_std

    return [format_mean_std(m, s, 3, n if n > 1 else None) for m, s, n in
            zip(cmp["ours_mean"], cmp["ours_std"], cmp["n_seeds"])]


def deep_variant(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` where DH on GIST (the original MLP, ``config.dh_input == "gist"``) is method ``dh-gist``."""
    out = frame.copy()
    gist = (out["method"] == "dh") & (out["config.dh_input"] == "gist")
    out.loc[gist, "method"] = "dh-gist"
    return out


# --------------------------------------------------------------------------- protocol
def _labels_or_input(d: dict) -> str:
    c = d["config"]
    if d["method"] == "ddh":
        return c.get("features") + " labels"
    if d["method"] == "dh" and c.get("dh_input") == "gist":
        return "GIST (MLP)"
    return "no labels" if d["method"] in ("dh", "deepbit") else d["method"] + " descriptor"


def protocol_outputs(R: PageRecords) -> list:
    """"Protocol": one row per hashing run (DDH, DH, DeepBit, Table 6) with its labels or input,
    init, iterations, split sizes, topk, device, wall and CPU time, then a note on the times;
    :data:`NONE` without records."""
    if not R.have:
        return [_md(NONE)]
    rows = []
    for _, r in pd.concat([R.hash_runs, R.deep_runs, R.flower_runs]).iterrows():
        d = record_of(r)
        p, c, m = d["protocol"], d["config"], d["metrics"]
        split_sizes = (f'{p.get("n_train")} / {p.get("n_query")} / {p.get("n_database")}' if d["dataset"] != "flowers17"
                       else f'{p.get("n_train")} / {p.get("n_val")} / {p.get("n_test")} (train / val / test)')
        rows.append({"method": d["method"], "dataset": d["dataset"], "bits": d["bits"], "seed": d["seed"],
                     "scale": d["scale"], "labels / input": _labels_or_input(d),
                     "init": c.get("init"), "iterations": c.get("iterations"),
                     "train / query / db": split_sizes, "topk": p.get("topk"),
                     "device": d.get("device"), "wall (s)": round(d.get("wall_time_s", float("nan")), 1),
                     "CPU (s)": round(m.get("cpu_time_s", float("nan")), 1)})
    table = (pd.DataFrame(rows).sort_values(["dataset", "method", "bits", "seed"]).reset_index(drop=True)
             if rows else _md("No hashing runs yet."))
    return [table, _md("Wall times include waiting for a CPU shared with other jobs; CPU time is the "
                       "process's own (one thread). The contrastive pre-training is cached and shared by "
                       "the runs of one seed; its time is in the record that trained it.")]


# --------------------------------------------------------------------------- ImageNet backbone
def _pretrained_protocol(d0: dict):
    """The protocol line of the ImageNet-backbone DDH rows, from one of their records ``d0``."""
    c, m = d0["config"], d0["metrics"]
    size = int(m.get("backbone_input_size", 0))
    norm = c.get("info", {}).get("backbone_normalisation", "tf_lite")
    return _md(
        f"**Protocol of the DDH rows**: {d0['protocol'].get('backbone')}, input {size} px, "
        f"normalisation {norm}; head `{c.get('head_hidden') or 'none'}` + hash layer, "
        f"{c['iterations']} iterations of {c['batch_size']} ({c['optimizer']}, lr {c['lr']}); the features are "
        "extracted once per dataset and read from the cache by every run.")


def pretrained_outputs(R: PageRecords) -> list:
    """"In the paper's setting": the protocol of the first ImageNet-backbone DDH run, Tables 2 and 4
    in that regime (:mod:`hashrepro.plots.ddh_regimes`), Fig. 2's numbers and Table 6 where such runs
    exist, and the claims about this setting; a note with the sweep command when there is no such run."""
    from .. import claims as CL
    from . import ddh_regimes as REG

    records = R.records
    pt = REG.with_regime(records) if R.have else pd.DataFrame()
    pt = pt[pt["regime"].str.startswith("pretrained")] if R.have else pt
    if len(pt) == 0:
        return [_md("No ImageNet-backbone runs yet: `hashrepro sweep ddh --dataset cifar10 --bits 16 32 64 "
                    "--seeds 0 1 2 --scale default -p backbone efficientnet_lite0`.")]
    out = []
    is_ddh = pt["method"] == "ddh-efficientnet_lite0"
    if is_ddh.any():
        out.append(_pretrained_protocol(record_of(pt[is_ddh].iloc[0])))
    out += [_md("**Table 2 (CIFAR-10, mAP@1000), ImageNet-backbone regime.** n = seeds."),
            REG.table2(records, "pretrained"),
            _md("**Table 4 (shallow hashers on the ImageNet features), ImageNet-backbone regime.**"),
            REG.table4(records, "pretrained")]
    lt = REG.label_table(pt)
    if len(lt):
        out += [_md("**Fig. 2's numbers with the ImageNet features** (precision of the pseudo-positive "
                    "pairs against the true classes; a measurement only):"), lt]
    t6p = REG.table6(records, "pretrained")
    if len(t6p):
        out += [_md("**Table 6 (Flowers-17, linear SVM), ImageNet-backbone regime.** HOG: the from-scratch "
                    "section's row (the same split per seed)."), t6p]
    cl = CL.claims_table("ddh", records)
    out += [_md("**The claims in this setting** (rule at the end of the page):"),
            cl[cl["claim"].str.startswith("[ImageNet backbone]")].reset_index(drop=True)]
    return out


# --------------------------------------------------------------------------- Fig. 2, Table 2, Fig. 3
def label_quality(R: PageRecords) -> tuple:
    """Fig. 2: ``(table, curves)``. ``table``: one row per label-quality run (feature source, kNN
    dimension, K1-NN and expanded precision, positives per image, times, N), best K1-NN precision
    first, or a note when there is no such run; ``curves``: feature source -> its
    ``label_precision`` curve (for :func:`label_precision_figure`; empty when none)."""
    if len(R.label_runs) == 0:
        return _md("No label-quality records yet; run the commands below."), {}
    rows, curves = [], {}
    for _, r in R.label_runs.iterrows():
        d = record_of(r)
        m = d["metrics"]
        f = d["config"]["features"]
        rows.append({"features": f, "dim (kNN)": int(m.get("knn_dim", 0)),
                     "K1-NN precision": round(m["label_precision_knn"], 3),
                     "expanded precision": round(m["label_precision"], 3),
                     "positives / image (expanded)": round(m["positives_per_item"], 1),
                     "K1-NN + expansion time (s)": round(m["pseudo_label_seconds"], 1),
                     "feature time (s)": round(m.get("feature_wall_time_s", float("nan")), 1),
                     "N": d["protocol"]["n_train"]})
        if "label_precision" in d["curves"]:
            curves[f] = d["curves"]["label_precision"]
    return pd.DataFrame(rows).sort_values("K1-NN precision", ascending=False).reset_index(drop=True), curves


def _input_labels(ours: pd.DataFrame, mm: Mapping[str, str]) -> dict:
    """(paper row name, bits) -> what our run of it used as input ("gist labels, init contrastive", …)."""
    feats = {}
    for _, r in ours.iterrows():
        c = record_of(r)["config"]
        m = mm.get(r["method"], r["method"])
        if r["method"] == "ddh":
            what = f'{c.get("features")} labels, init {c.get("init")}'
        elif r["method"] in ("dh", "deepbit"):
            what = f'DDH backbone, init {c.get("init")}'
        elif r["method"] == "dh-gist":
            what = "GIST, MLP"
        else:
            what = f'{c.get("features")} features'
        feats[(m, int(r["bits"]))] = what
    return feats


def table2_outputs(R: PageRecords) -> list:
    """Table 2 from scratch (CIFAR-10, mAP@1000 at 16/32/64 bits): paper, ours ("mean ± std (n)"),
    delta, the tie-aware mAP and our input per row, then ours only with one column per code length.
    Without a DDH run on CIFAR-10: :data:`NONE` and the paper's table."""
    from ..results import compare, companion_column, paper_table

    t2 = paper_table("ddh_table2")
    if len(R.ddh_cifar) == 0:
        return [_md(NONE), t2.pivot_table(index="method", columns="bits", values="value", sort=False).sort_index(axis=1)]
    ours = pd.concat([R.ddh_cifar, R.base_runs, deep_variant(R.deep_runs)])
    mm = {**method_names(), "dh-gist": "DH (GIST MLP)"}
    rows = list(t2["method"].unique()) + ["DH (GIST MLP)"]
    cmp = compare(t2, ours, metric="map", method_map=mm, how="outer")
    cmp = cmp[cmp["method"].isin(rows)]
    cmp = cmp[cmp["bits"].isin([16, 32, 64])]
    feats = _input_labels(ours, mm)
    cmp["paper"] = [f"{v:.3f}" if pd.notna(v) else "—" for v in cmp["paper"]]
    cmp["ours"] = ours_column(cmp)
    cmp["delta"] = cmp["delta"].round(3)
    cmp["ours: input"] = [feats.get((m, int(b)), "not run") for m, b in zip(cmp["method"], cmp["bits"])]
    cmp["ours, ties random"] = companion_column(cmp, ours, method_map=mm)
    order = {m: i for i, m in enumerate(rows)}
    cmp = cmp.assign(_o=cmp["method"].map(order)).sort_values(["_o", "bits"]).drop(columns="_o")
    wide = cmp.assign(ours=cmp["ours"].str.replace(r" \(n=\d+\)", "", regex=True)).pivot_table(
        index="method", columns="bits", values="ours", aggfunc="first", sort=False)
    return [cmp[["method", "bits", "paper", "ours", "delta", "ours, ties random", "ours: input"]].reset_index(drop=True),
            _md("The same, ours only, one column per code length:"),
            wide.reindex([m for m in order if m in wide.index])]


def pr_curves_by_bits(R: PageRecords) -> dict:
    """Fig. 3's curves: bits (16/32/64) -> paper row name -> ``pr_radius`` curve, seed 0, of DDH, the
    shallow hashers and DH (on the backbone) / DeepBit; empty without a DDH run on CIFAR-10."""
    if len(R.ddh_cifar) == 0:
        return {}
    names = method_names()
    by_bits = {}
    for _, r in pd.concat([R.ddh_cifar, R.base_runs, R.deep_runs]).iterrows():
        d = record_of(r)
        if d["seed"] != 0 or "pr_radius" not in d["curves"] or d["bits"] not in (16, 32, 64):
            continue
        if d["method"] == "dh" and d["config"].get("dh_input", "backbone") != "backbone":
            continue
        by_bits.setdefault(d["bits"], {})[names.get(d["method"], d["method"])] = d["curves"]["pr_radius"]
    return by_bits


def pr_missing(R: PageRecords):
    """The note shown instead of Fig. 3 when :func:`pr_curves_by_bits` is empty."""
    return _md(NONE if len(R.ddh_cifar) == 0 else "No CIFAR-10 runs with P/R curves yet.")


# --------------------------------------------------------------------------- Tables 4 and 6
def table4_outputs(R: PageRecords) -> list:
    """Table 4 from scratch (shallow hashers on the contrastive features, and our DDH): paper, ours,
    delta, the same hasher on GIST, supervision. Without such runs: a note and the paper's table."""
    from ..methods.ddh_config import TABLE4_PAPER_NAMES
    from ..results import compare, paper_table

    t4 = paper_table("ddh_table4")
    ours4 = pd.concat([R.t4_runs, R.ddh_cifar]) if R.have else pd.DataFrame()
    if len(ours4) == 0:
        return [_md("No Table 4 runs yet (commands below)."),
                t4.pivot_table(index="method", columns="bits", values="value", sort=False).sort_index(axis=1)]
    cmp4 = compare(t4, ours4, metric="map", method_map={**TABLE4_PAPER_NAMES, "ddh": "DDH"})
    # the same hasher on GIST (Table 2 runs) for the "deep features help" comparison
    base = R.base_runs
    gist_map = base.groupby(["method", "bits"])["metrics.map"].mean() if len(base) else pd.Series(dtype=float)
    inv = {v: k for k, v in TABLE4_PAPER_NAMES.items()}
    cmp4["same hasher on GIST"] = [f"{gist_map[(inv[m], b)]:.3f}" if m in inv and (inv[m], b) in gist_map.index
                                   else "—" for m, b in zip(cmp4["method"], cmp4["bits"])]
    cmp4["paper"] = [f"{v:.3f}" for v in cmp4["paper"]]
    cmp4["ours"] = ours_column(cmp4)
    cmp4["delta"] = cmp4["delta"].round(3)
    cmp4["supervision"] = ["class labels (5,000 images)" if m in ("SPLH+CNN", "LFH+CNN") else "none"
                           for m in cmp4["method"]]
    return [cmp4[["method", "bits", "paper", "ours", "delta", "same hasher on GIST", "supervision"]]]


_T6_NAMES = {"ddh": "DDH", "hog": "HOG", "deepbit": "DeepBit", "dh": "DH"}


def _descriptor(method: str, bits) -> str:
    return _T6_NAMES.get(method, method) + (f" ({bits} bits)" if bits else "")


def table6_outputs(R: PageRecords) -> list:
    """Table 6 from scratch (Flowers-17, linear SVM on the codes): paper and our accuracy (%) and
    SVM time per descriptor, then per run the descriptor dimension, C, validation accuracy, label
    precision and wall time. A note when there is no Flowers-17 run."""
    from ..results import compare, format_mean_std, paper_table

    if len(R.flower_runs) == 0:
        return [_md("No Table 6 runs yet (commands below).")]
    t6 = paper_table("ddh_table6")
    acc = compare(t6, R.flower_runs, metric="accuracy", method_map=_T6_NAMES, paper_scale=0.01, how="outer")
    tim = compare(t6, R.flower_runs, metric="svm_time_s", method_map=_T6_NAMES, how="outer")
    t = acc[["method", "bits", "paper", "ours_mean", "ours_std", "n_seeds"]].merge(
        tim[["method", "bits", "paper", "ours_mean"]], on=["method", "bits"], suffixes=("", "_time"), how="left")
    out = pd.DataFrame({
        "descriptor": [m + (f" ({b} bits)" if b else "") for m, b in zip(t["method"], t["bits"])],
        "paper acc. (%)": [f"{100 * v:.1f}" if pd.notna(v) else "—" for v in t["paper"]],
        "ours acc. (%)": [format_mean_std(100 * m, 100 * s if pd.notna(s) else None, 1) if n else "not run"
                          for m, s, n in zip(t["ours_mean"], t["ours_std"], t["n_seeds"])],
        "paper SVM time (s)": [f"{v:g}" if pd.notna(v) else "—" for v in t["paper_time"]],
        "ours SVM time (s)": [f"{v:.3f}" if pd.notna(v) else "—" for v in t["ours_mean_time"]],
    })
    extra = []
    for _, r in R.flower_runs.iterrows():
        d = record_of(r)
        m = d["metrics"]
        extra.append({"descriptor": _descriptor(d["method"], d["bits"]),
                      "dim": int(m.get("descriptor_dim", 0)), "C": m.get("svm_C"),
                      "val acc. (%)": round(100 * m.get("val_accuracy", float("nan")), 1),
                      "label precision": round(m["label_precision"], 3) if "label_precision" in m else "—",
                      "run wall (s)": round(d["wall_time_s"], 1)})
    return [out, _md("Per run: descriptor dimension, the C picked on the validation part, validation "
                     "accuracy, the precision of DDH's pseudo labels, and the whole run's wall time:"),
            pd.DataFrame(extra)]


def other_paper_tables() -> list:
    """Tables 3 and 5 (NUS-WIDE, not run here): for each a note and the paper's numbers."""
    from ..results import paper_table

    out = []
    for name, what in [("ddh_table3", "Table 3 (NUS-WIDE, unsupervised): not run, data not available offline."),
                       ("ddh_table5", "Table 5 (NUS-WIDE, supervised): not run, data not available offline. "
                                      "The supervised variant exists: `-p supervised True`.")]:
        t = paper_table(name)
        out += [_md(f"**{what}** The paper's numbers:"),
                t.pivot_table(index="method", columns=["metric", "bits"], values="value", sort=False).sort_index(axis=1)]
    return out


# --------------------------------------------------------------------------- claims and seeds
def claims_outputs(records: pd.DataFrame) -> list:
    """"Claims": the claims table (with the legacy column), then how a verdict is reached and the
    provenance of ``records``."""
    from .. import claims as CL
    from ..book import provenance_line

    return [CL.claims_table("ddh", records, legacy_column=True),
            _md("**How a verdict is reached.** " + CL.RULE + " " + provenance_line(records))]


def few_seeds_sentence(records: pd.DataFrame):
    """"Settings with fewer than 3 seeds (k of n; bits: seeds): **method** dataset bits: s/s; …",
    counted from ``records`` (:func:`hashrepro.claims.seed_counts`); a sentence saying so when every
    setting has enough; None without records."""
    from .. import claims as CL

    if not len(records):
        return None
    counts = CL.seed_counts(CL.prepare_records("ddh", records), ("method", "dataset", "bits"))
    few = counts[counts["n"] < CL.MIN_SEEDS]
    if not len(few):
        return _md(f"Every setting has at least {CL.MIN_SEEDS} seeds ({len(counts)} settings).")
    groups = few.groupby(["method", "dataset"], sort=True)
    return _md(f"Settings with fewer than {CL.MIN_SEEDS} seeds ({len(few)} of {len(counts)}; bits: seeds): "
               + "; ".join(f"**{m}** {d} " + ", ".join(f"{r.bits}: {'/'.join(map(str, r.seeds))}"
                                                       for r in g.itertuples()) for (m, d), g in groups) + ".")
