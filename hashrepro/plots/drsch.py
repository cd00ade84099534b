"""Figures of the DRSCH chapter, in the style of Zhang et al. (TIP 2015) Figs. 1–5.

Every function takes run records (dicts as written by :func:`hashrepro.methods.drsch.run`, or
the DataFrame of :func:`hashrepro.results.load_records`, whose ``record`` column holds them) and
returns a matplotlib Figure. Missing data gives an empty panel with a note, never an error, so
the book renders before any sweep has run.
"""
from __future__ import annotations

from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["as_records", "plot_run", "fig_precision_vs_bits", "fig_precision_vs_returned", "fig_bit_scalable",
           "fig_top10", "top10_precision", "METHOD_LABELS", "METHOD_STYLE"]

METHOD_LABELS = {"dsch": "DSCH", "drsch": "DRSCH", "bs-drsch": "BS-DRSCH"}
METHOD_STYLE = {"dsch": dict(color="tab:blue", marker="s"), "drsch": dict(color="tab:red", marker="o"),
                "bs-drsch": dict(color="tab:green", marker="^")}
_SFX = {"binary": "", "weighted-hamming": "_whamming", "continuous": "_continuous"}


def as_records(records) -> list[dict]:
    """A list of record dicts from a list, or from a DataFrame with a ``record`` column."""
    if records is None:
        return []
    if hasattr(records, "columns"):
        return list(records["record"]) if "record" in records.columns and len(records) else []
    return list(records)


def _select(records, dataset=None, method=None, scale=None):
    out = []
    for r in as_records(records):
        if dataset is not None and r.get("dataset") != dataset:
            continue
        if method is not None and r.get("method") != method:
            continue
        if scale is not None and r.get("scale") != scale:
            continue
        out.append(r)
    return out


def _empty(ax, text="no run records yet"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _mean_by_bits(recs, metric):
    by: dict[int, list[float]] = {}
    for r in recs:
        v = r.get("metrics", {}).get(metric)
        if v is not None and np.isfinite(v):
            by.setdefault(int(r["bits"]), []).append(float(v))
    bits = sorted(by)
    return bits, [float(np.mean(by[b])) for b in bits], [float(np.std(by[b])) for b in bits]


def plot_run(record: dict):
    """One run: training loss, precision vs number returned (three rankings), and the bit weights
    sorted by |w| (or, for BS-DRSCH, precision of the top-n bits)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    from ..recipe import read_loss_curve

    c = record.get("curves", {})
    ax = axes[0]
    lc = read_loss_curve(c)
    if lc is not None:
        ax.plot(lc["iteration"], lc["loss"], lw=1)
        ax.set(xlabel="iteration", ylabel="loss", title="training loss (hinge + λ/2 tr(RᵀLR))")
    else:
        _empty(ax)
    ax = axes[1]
    drawn = False
    for ranking, sfx in _SFX.items():
        cur = c.get("precision_at_k" + sfx)
        if cur:
            ax.plot(cur["k"], cur["precision"], marker=".", label=ranking)
            drawn = True
    if drawn:
        ax.set(xlabel="number of returned images", ylabel="precision", ylim=(0, 1.02),
               title=f"precision vs returned ({record.get('bits')} bits)")
        ax.legend(fontsize=8)
    else:
        _empty(ax, "no precision curve (re-id run: see CMC)" if "cmc" in c else "no curve")
    ax = axes[2]
    bs = c.get("bit_scalable")
    if bs:
        pk = next(k for k in bs if k.startswith("precision_at_") and not k.endswith("_whamming"))
        ax.plot(bs["bits"], bs[pk], marker="^", label="Hamming")
        if pk + "_whamming" in bs:
            ax.plot(bs["bits"], bs[pk + "_whamming"], marker="v", label="weighted Hamming")
        ax.set(xlabel="number of bits kept (top |w|)", ylabel=pk.replace("_", " "), ylim=(0, 1.02),
               title="BS-DRSCH: truncated codes")
        ax.legend(fontsize=8)
    elif "bit_weights" in c:
        ax.bar(np.arange(len(c["bit_weights"]["weight"])), np.abs(c["bit_weights"]["weight"]), width=0.9)
        ax.set(xlabel="bit (sorted by |w|)", ylabel="|w_k|", title="bit weights")
    else:
        _empty(ax)
    fig.tight_layout()
    return fig


def fig_precision_vs_bits(records, datasets: Iterable[str] = ("mnist", "cifar10"), scale: str | None = None,
                          methods=("dsch", "drsch"), metrics=("precision_radius2", "precision_at_500"),
                          paper_fig: dict | None = None):
    """Figs. 1–2 (a) and (b): precision within Hamming radius 2, and precision of the top 500,
    against the number of bits; one row per dataset, mean over seeds (error bars: std)."""
    datasets = list(datasets)
    titles = {"precision_radius2": "(a) precision within Hamming radius 2",
              "precision_at_500": "(b) precision of top 500 returned"}
    fig, axes = plt.subplots(len(datasets), len(metrics), figsize=(5 * len(metrics), 3.4 * len(datasets)),
                             squeeze=False)
    for i, ds in enumerate(datasets):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            any_ = False
            for m in methods:
                bits, mean, std = _mean_by_bits(_select(records, ds, m, scale), metric)
                if bits:
                    any_ = True
                    ax.errorbar(bits, mean, yerr=std, label=METHOD_LABELS.get(m, m), capsize=3, **METHOD_STYLE.get(m, {}))
            if not any_:
                _empty(ax)
            ax.set(xlabel="number of bits", ylabel="precision", ylim=(0, 1.02),
                   title=f"{ds}: {titles.get(metric, metric)}")
            if any_:
                ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_precision_vs_returned(records, datasets: Iterable[str] = ("mnist", "cifar10"), bits: int = 64,
                              scale: str | None = None, methods=("dsch", "drsch", "bs-drsch")):
    """Figs. 1–2 (c): precision against the number of returned images at ``bits`` bits (first
    seed of each method; Hamming ranking)."""
    datasets = list(datasets)
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.4), squeeze=False)
    for i, ds in enumerate(datasets):
        ax = axes[0, i]
        any_ = False
        for m in methods:
            recs = sorted((r for r in _select(records, ds, m, scale) if int(r["bits"]) == bits),
                          key=lambda r: r.get("seed", 0))
            if recs and "precision_at_k" in recs[0].get("curves", {}):
                cur = recs[0]["curves"]["precision_at_k"]
                ks = [k for k in cur["k"] if k >= 100]
                ps = [p for k, p in zip(cur["k"], cur["precision"]) if k >= 100]
                lab = METHOD_LABELS.get(m, m) + (" (64→64 bits)" if m == "bs-drsch" else "")
                ax.plot(ks, ps, label=lab, **METHOD_STYLE.get(m, {}))
                any_ = True
        if not any_:
            _empty(ax)
        else:
            ax.legend(fontsize=8)
        ax.set(xlabel="number of returned images", ylabel="precision", ylim=(0, 1.02),
               title=f"{ds}: (c) precision with {bits} bits")
    fig.tight_layout()
    return fig


def fig_bit_scalable(records, datasets: Iterable[str] = ("mnist", "cifar10"), scale: str | None = None,
                     metric: str = "precision_at_500", fixed_methods=("drsch", "dsch")):
    """Fig. 5: Precision@500 of BS-DRSCH (one 64-bit model, top-n bits by |w|) against the number
    of bits kept, with the fixed-length models trained at each length as points."""
    datasets = list(datasets)
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.4), squeeze=False)
    for i, ds in enumerate(datasets):
        ax = axes[0, i]
        any_ = False
        bs_recs = [r for r in _select(records, ds, "bs-drsch", scale) if "bit_scalable" in r.get("curves", {})]
        if bs_recs:
            curves = [r["curves"]["bit_scalable"] for r in bs_recs]
            bits = curves[0]["bits"]
            vals = np.array([c[metric] for c in curves if c["bits"] == bits])
            ax.plot(bits, vals.mean(0), label=f"BS-DRSCH ({bs_recs[0]['protocol'].get('bits_trained', 64)} bits, "
                                              "truncated)", **METHOD_STYLE["bs-drsch"])
            if metric + "_whamming" in curves[0]:
                wv = np.array([c[metric + "_whamming"] for c in curves if c["bits"] == bits])
                ax.plot(bits, wv.mean(0), ls="--", color="tab:green", alpha=0.6, label="BS-DRSCH, weighted Hamming")
            any_ = True
        for m in fixed_methods:
            b, mean, std = _mean_by_bits(_select(records, ds, m, scale), metric)
            if b:
                ax.errorbar(b, mean, yerr=std, ls=":", capsize=3, label=f"{METHOD_LABELS.get(m, m)} (trained at length)",
                            **METHOD_STYLE.get(m, {}))
                any_ = True
        if not any_:
            _empty(ax)
        else:
            ax.legend(fontsize=8)
        ax.set(xlabel="number of bits", ylabel=metric.replace("_", " ").replace("precision at ", "Precision@"),
               ylim=(0, 1.02), title=f"{ds}: Fig. 5 style")
    fig.tight_layout()
    return fig


def fig_top10(records, dataset: str = "cifar10", images=None, labels=None, n_queries: int = 10,
              scale: str | None = None):
    """Fig. 6: top-10 retrievals of one query per class, a 32-bit DRSCH model trained at 32 bits
    (left) against the 32 most significant bits of a 64-bit BS-DRSCH model (right).

    ``images`` (N, H, W[, C]) uint8 and ``labels`` (N,) are the dataset's arrays (the records
    store dataset indices, ``curves["top10"]`` / ``curves["top10_keep32"]``); a retrieved image
    is framed green when it shares the query's class, red otherwise. Returns None when the runs
    or the images are missing.
    """
    if images is None or labels is None:
        return None
    fixed = [r for r in _select(records, dataset, "drsch", scale)
             if int(r.get("bits", 0)) == 32 and "top10" in r.get("curves", {})]
    bs = [r for r in _select(records, dataset, "bs-drsch", scale) if "top10_keep32" in r.get("curves", {})]
    panels = []
    if fixed:
        r = sorted(fixed, key=lambda x: x.get("seed", 0))[0]
        panels.append((f"DRSCH trained at 32 bits (seed {r.get('seed', 0)})", r["curves"]["top10"]))
    if bs:
        r = sorted(bs, key=lambda x: x.get("seed", 0))[0]
        panels.append((f"BS-DRSCH 64 → 32 bits (seed {r.get('seed', 0)})", r["curves"]["top10_keep32"]))
    if not panels:
        return None
    nq = min(n_queries, min(len(p[1]["query"]) for p in panels))
    ncol = 1 + len(panels[0][1]["retrieved"][0])
    fig, axes = plt.subplots(nq, len(panels) * ncol, figsize=(0.62 * len(panels) * ncol + 0.4, 0.66 * nq),
                             squeeze=False)
    labels = np.asarray(labels)
    for p_i, (title, t) in enumerate(panels):
        for row in range(nq):
            q = t["query"][row]
            cells = [q] + list(t["retrieved"][row])
            for c, idx in enumerate(cells):
                ax = axes[row, p_i * ncol + c]
                img = np.asarray(images[idx])
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
                ax.set_xticks([])
                ax.set_yticks([])
                color = "black" if c == 0 else ("tab:green" if labels[idx] == labels[q] else "tab:red")
                for sp in ax.spines.values():
                    sp.set_color(color)
                    sp.set_linewidth(2.5 if c else 1.0)
            if row == 0:
                axes[0, p_i * ncol].set_title("query", fontsize=7)
                axes[0, p_i * ncol + ncol // 2].set_title(title, fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.01, right=0.99, top=0.93, bottom=0.01)
    return fig


def top10_precision(records, dataset: str = "cifar10", labels=None):
    """Precision of the Fig. 6 top-10 lists: {panel name: mean fraction of same-class retrievals}."""
    if labels is None:
        return {}
    labels = np.asarray(labels)
    out = {}
    for r in as_records(records):
        if r.get("dataset") != dataset:
            continue
        for key in ("top10", "top10_keep32"):
            t = r.get("curves", {}).get(key)
            if not t:
                continue
            hits = [np.mean(labels[np.asarray(ret)] == labels[q]) for q, ret in zip(t["query"], t["retrieved"])]
            name = f"{METHOD_LABELS.get(r['method'], r['method'])} {r['bits']} b seed {r.get('seed', 0)} ({t['bits']} bits)"
            out[name] = float(np.mean(hits))
    return out


# --------------------------------------------------------------------------- tables for the book
def runs_table(records, digits: int = 3):
    """One row per run: dataset, method, bits (trained → evaluated), mAP under the three rankings,
    Precision@500, precision within radius 2, iterations, train/wall time and device."""
    import pandas as pd

    rows = []
    for r in sorted(as_records(records), key=lambda r: (r["dataset"], r["method"], int(r["bits"]), r.get("seed", 0))):
        m, p, c = r.get("metrics", {}), r.get("protocol", {}), r.get("config", {})
        bits = f"{p.get('bits_trained', r['bits'])}→{r['bits']}" if p.get("bits_trained", r["bits"]) != r["bits"] \
            else str(r["bits"])
        method = METHOD_LABELS.get(r["method"], r["method"]) + (" (= BS-DRSCH, all bits)" if r.get("derived_from") else "")
        rows.append({"dataset": r["dataset"], "method": method, "bits": bits,
                     "seed": r.get("seed"), "scale": r.get("scale"),
                     "mAP (Hamming)": m.get("map"), "mAP (weighted Hamming)": m.get("map_whamming"),
                     "mAP (continuous, released code)": m.get("map_continuous"),
                     "Precision@500": m.get("precision_at_500"), "P (radius 2)": m.get("precision_radius2"),
                     "iterations": c.get("iterations"), "train (s)": m.get("train_time_s"),
                     "wall (s)": r.get("wall_time_s"), "device": r.get("device")})
    df = pd.DataFrame(rows)
    return df.round(digits) if len(df) else df


def _metric(records, dataset, method, bits, metric):
    vals = [r["metrics"].get(metric) for r in _select(records, dataset, method) if int(r["bits"]) == int(bits)]
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def bit_scalable_table(records, dataset: str, metric: str = "precision_at_500", fixed: str = "drsch",
                       bs: str = "bs-drsch"):
    """BS-DRSCH (record method ``bs``) truncated to n bits against the fixed-length model
    (``fixed``) trained at n bits, averaged over the seeds of each: rows n, columns BS-DRSCH
    (top-|w| bits), the random-bit-subset control where the records carry it
    (``curves["bit_scalable"]["<metric>_random"]``), the fixed model, the ratio truncated / fixed,
    and the number of BS-DRSCH seeds."""
    import pandas as pd

    runs = [r for r in _select(records, dataset, bs) if "bit_scalable" in r.get("curves", {})]
    if not runs:
        return pd.DataFrame()
    top: dict = {}
    rnd: dict = {}
    for r in runs:
        cur = r["curves"]["bit_scalable"]
        for i, n in enumerate(cur["bits"]):
            top.setdefault(int(n), []).append(cur[metric][i])
            if f"{metric}_random" in cur:
                rnd.setdefault(int(n), []).append(cur[f"{metric}_random"][i])
    trained = runs[0].get("protocol", {}).get("bits_trained", 64)
    rows = []
    for n in sorted(top):
        v = float(np.mean(top[n]))
        f = _metric(records, dataset, fixed, n, metric)
        row = {"bits kept": n, f"BS-DRSCH ({trained}→n), top |w|": v}
        if rnd:
            row["random n bits"] = float(np.mean(rnd[n])) if n in rnd else None
        row.update({f"{METHOD_LABELS.get(fixed, fixed)} trained at n": f, "ratio": (v / f) if f else None,
                    "seeds": len(top[n])})
        rows.append(row)
    return pd.DataFrame(rows).round(3)


def with_full_length_bs_as_drsch(records):
    """Add a DRSCH row for every full-length BS-DRSCH record that has no DRSCH twin.

    BS-DRSCH evaluated on all of its bits *is* DRSCH at that length (same config, same seed, same
    model), so a separate DRSCH run would repeat it exactly; the derived copy has method "drsch",
    ``record["derived_from"] = "bs-drsch"`` and the same metrics. Accepts a DataFrame from
    :func:`hashrepro.results.load_records` (returns a DataFrame) or a list of records.
    """
    import copy

    import pandas as pd

    is_df = hasattr(records, "columns")
    recs = as_records(records)
    have = {(r["dataset"], int(r["bits"]), r.get("seed"), r.get("scale")) for r in recs if r["method"] == "drsch"}
    extra = []
    for r in recs:
        full = int(r.get("protocol", {}).get("bits_trained", r["bits"])) == int(r["bits"])
        key = (r["dataset"], int(r["bits"]), r.get("seed"), r.get("scale"))
        if r["method"] == "bs-drsch" and full and key not in have:
            d = copy.deepcopy(r)
            d["method"] = "drsch"
            d["derived_from"] = "bs-drsch"
            extra.append(d)
    if not is_df:
        return recs + extra
    if not extra:
        return records
    rows = []
    for d in extra:
        src = records[(records["method"] == "bs-drsch") & (records["dataset"] == d["dataset"])
                      & (records["bits"] == d["bits"]) & (records["seed"] == d["seed"])].iloc[0].copy()
        src["method"] = "drsch"
        src["record"] = d
        rows.append(src)
    return pd.concat([records, pd.DataFrame(rows)], ignore_index=True)
