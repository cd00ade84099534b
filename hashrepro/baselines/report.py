"""Tables for the book's Baselines page (``book/baselines.md``), built from run records.

Everything here reads ``results/baselines/*.json`` (:func:`hashrepro.results.load_records`) and
the papers' CSV tables; nothing is computed at build time beyond joins and formatting.
"""
from __future__ import annotations

import math

import pandas as pd

from . import BASELINES

__all__ = ["METHODS", "methods_table", "hyperparameters_table", "map_table", "paper_only_table",
           "timing_table", "variants_table", "DNNH_NAMES", "DDH_NAMES"]

#: (two-line summary, fidelity note) per method, in the book's order.
METHODS = {
    "lsh": ("Random hyperplanes: bit = sign of a Gaussian random projection of the centred feature. "
            "Data-independent; the usual floor.", "faithful"),
    "pcah": ("Sign of the top-b principal components. Bits beyond the first few carry little variance, "
             "so mAP often drops as b grows.", "faithful"),
    "itq": ("PCA to b dimensions, then an orthogonal rotation that minimises the quantisation error "
            "||B − VR||² by alternating sign and Procrustes steps (50 iterations).", "faithful"),
    "sh": ("Spectral hashing: thresholded analytic eigenfunctions sin(π/2 + kπ(x−a)/(b−a)) of a "
           "uniform distribution on PCA directions; the b smallest eigenvalues are kept.", "faithful (authors' code)"),
    "sphh": ("Spherical hashing: a bit is 1 inside a hypersphere; pivots move until each sphere holds "
             "half the data and pairs overlap by a quarter. Ranked with Hamming or spherical Hamming distance.",
             "faithful (authors' code)"),
    "kmh": ("K-means hashing: affinity-preserving k-means in 4-bit subspaces whose codeword indices are "
            "the codes, so Hamming distance tracks codeword distance (λ = 10).",
            "faithful objective; joint L-BFGS codeword update"),
    "itq-cca": ("Supervised ITQ: CCA between features and labels, directions scaled by their correlation, "
                "then the ITQ rotation. Only C−1 directions carry label information.", "faithful (authors' code)"),
    "ksh": ("Kernel supervised hashing: b = sign(aᵀk(x)) on 300 RBF anchors; bits greedily fit the residual "
            "of ‖BBᵀ − rS‖ with spectral init + sigmoid-smoothed gradient descent.", "faithful (authors' code)"),
    "sdh": ("Supervised discrete hashing: codes that linearly predict the labels, learnt with discrete "
            "cyclic coordinate descent, plus an RBF-anchor (1000) hash function fitted to them.",
            "faithful (authors' code; RBF width rule)"),
    "bre": ("Binary reconstructive embedding: kernel hash functions whose normalised Hamming distances "
            "reconstruct label-based distances; exact coordinate descent on the weights.", "faithful (supervised targets)"),
    "mlh": ("Minimal loss hashing: linear hash trained on a hinge loss of Hamming distances through a "
            "structural-SVM upper bound with loss-adjusted inference and SGD.", "faithful model; ρ, λ not tuned"),
    "lfh": ("Latent factor hashing: a sigmoid likelihood of the pair labels given ½UᵢᵀUⱼ, row-wise "
            "surrogate Newton updates on sampled pairs, then ridge regression to a linear hash.",
            "faithful model; block updates"),
    "splh": ("Sequential projection learning: each bit is the top eigenvector of variance + label "
             "agreement; the pairs it gets wrong are up-weighted for the next bit.", "faithful (authors' code)"),
    "fasth": ("FastHash: bit-by-bit binary inference on the KSH loss (correcting earlier hash functions' "
              "errors), then boosted decision trees predict each bit.",
              "variant: greedy flips instead of GraphCut, gradient boosting instead of AdaBoost"),
}

#: our method name -> DNNH Table 2 name (the CSV uses lower case)
DNNH_NAMES = {m: m for m in ("lsh", "sh", "itq", "itq-cca", "ksh", "mlh", "bre")}
#: our method name -> DDH Table 2 name
DDH_NAMES = {"kmh": "KMH", "sphh": "SphH", "sh": "SH", "pcah": "PCAH", "lsh": "LSH", "itq": "PCA-ITQ"}

_PRETTY = {"lsh": "LSH", "pcah": "PCAH", "itq": "ITQ", "sh": "SH", "sphh": "SphH", "kmh": "KMH",
           "itq-cca": "ITQ-CCA", "ksh": "KSH", "sdh": "SDH", "bre": "BRE", "mlh": "MLH", "lfh": "LFH",
           "splh": "SPLH", "fasth": "FastH"}


def pretty(name: str) -> str:
    return _PRETTY.get(name, name)


def methods_table() -> pd.DataFrame:
    """One row per method: class, supervised, what it does, fidelity."""
    rows = []
    for name, cls in BASELINES.items():
        text, fid = METHODS[name]
        rows.append({"method": pretty(name), "class": f"hashrepro.baselines.{cls.__name__}",
                     "labels": "yes" if cls.supervised else "no", "in two lines": text, "fidelity": fid})
    return pd.DataFrame(rows).set_index("method")


def hyperparameters_table() -> pd.DataFrame:
    """Default hyper-parameters of each estimator (``get_params()`` minus n_bits/random_state)."""
    rows = []
    for name, cls in BASELINES.items():
        params = {k: v for k, v in cls().get_params().items() if k not in ("n_bits", "random_state")}
        rows.append({"method": pretty(name),
                     "defaults": ", ".join(f"{k}={v}" for k, v in params.items()) or "—"})
    return pd.DataFrame(rows).set_index("method")


def _fmt(x, digits=3):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _select(records: pd.DataFrame, dataset: str, protocol: str, variants: bool = False) -> pd.DataFrame:
    if records is None or not len(records) or "config.protocol" not in records.columns:
        return pd.DataFrame(columns=["method", "dataset", "bits"])
    r = records[(records["dataset"] == dataset) & (records["config.protocol"] == protocol)]
    if variants:
        return r[r["config.variant"].fillna("") != ""] if "config.variant" in r else r.iloc[:0]
    if "config.variant" in r:
        r = r[r["config.variant"].fillna("") == ""]
    return r


def map_table(records: pd.DataFrame, dataset: str, protocol: str = "dnnh", bits=(12, 24, 32, 48),
              paper: pd.DataFrame | None = None, names: dict | None = None, metric: str = "map",
              paper_metric: str = "map") -> pd.DataFrame:
    """Methods x bits table of "ours" (and "paper" where the paper has the method), as strings.

    ``paper`` is a paper table (long format) and ``names`` maps our method names to its names;
    ``metric`` is our record's metric, ``paper_metric`` the paper table's.
    Cells read ``0.173 (paper 0.169)``; a method with no record shows "—".
    """
    r = _select(records, dataset, protocol)
    ours = {}
    for _, row in r.iterrows():
        v = row.get(f"metrics.{metric}")
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            ours[(row["method"], int(row["bits"]))] = float(v)  # one seed: the latest wins
    pap = {}
    if paper is not None and names:
        inv = {v: k for k, v in names.items()}
        p = paper[(paper["dataset"] == dataset) & (paper["metric"] == paper_metric)]
        for _, row in p.iterrows():
            if row["method"] in inv:
                pap[(inv[row["method"]], int(row["bits"]))] = float(row["value"])
    methods = [m for m in BASELINES if any((m, b) in ours or (m, b) in pap for b in bits)]
    table = {}
    for m in methods:
        cells = {}
        for b in bits:
            o, pv = ours.get((m, b)), pap.get((m, b))
            if pv is None:
                cells[f"{b} bits"] = _fmt(o)
            else:
                cells[f"{b} bits"] = f"{_fmt(o)} (paper {pv:.3f})"
        table[pretty(m)] = cells
    return pd.DataFrame.from_dict(table, orient="index")


def paper_only_table(paper: pd.DataFrame, note: str = "") -> pd.DataFrame:
    """A paper table pivoted methods x bits (values as printed)."""
    p = paper.pivot_table(index="method", columns="bits", values="value", aggfunc="first")
    p.columns = [f"{c} bits" for c in p.columns]
    return p.map(lambda v: "—" if pd.isna(v) else f"{v:.3f}")


def variants_table(records: pd.DataFrame, dataset: str, protocol: str = "dnnh") -> pd.DataFrame:
    """Runs with non-default hyper-parameters (``--set``): method, variant, bits, MAP."""
    r = _select(records, dataset, protocol, variants=True)
    if not len(r):
        return pd.DataFrame()
    rows = [{"method": pretty(row["method"]), "variant": row["config.variant"], "bits": int(row["bits"]),
             "map": _fmt(row.get("metrics.map"))} for _, row in r.iterrows()]
    return pd.DataFrame(rows).pivot_table(index=["method", "variant"], columns="bits", values="map",
                                          aggfunc="last").rename(columns=lambda b: f"{b} bits")


def timing_table(records: pd.DataFrame, dataset: str, protocol: str = "dnnh", bits: int = 32) -> pd.DataFrame:
    """Fit and database-encoding wall times of the recorded runs at ``bits``."""
    r = _select(records, dataset, protocol)
    if not len(r):
        return pd.DataFrame()
    r = r[r["bits"] == bits]
    rows = {}
    for _, row in r.iterrows():
        rows[pretty(row["method"])] = {
            "fit on": f"{int(row.get('config.n_fit', 0)):,} ({row.get('config.fit_on', '')})",
            "fit (s)": _fmt(row.get("metrics.fit_time_s"), 1),
            "encode database (s)": _fmt(row.get("metrics.encode_time_s"), 1),
        }
    order = [pretty(m) for m in BASELINES if pretty(m) in rows]
    return pd.DataFrame.from_dict(rows, orient="index").loc[order]
