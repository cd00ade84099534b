"""Figures of the DDH chapter in the paper's style.

* :func:`label_precision_figure` — Fig. 2: precision of the constructed positives against the
  true classes, plain K-NN vs K-NN + neighbourhood expansion, over K (one line style per feature
  source), and the same against the number of positives per image.
* :func:`pr_curves_figure` — Fig. 3: precision/recall curves (Hamming ranking, radius sweep) at
  16, 32 and 64 bits, one panel per code length, one line per method.
* :func:`map_vs_bits_figure` — mAP against code length, paper vs ours.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["label_precision_figure", "pr_curves_figure", "map_vs_bits_figure"]


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
