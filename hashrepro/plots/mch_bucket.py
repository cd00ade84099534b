"""Bucket search at a million codes: the tables and figure of the MCH page's section on
``benchmarks/mch_bucket_scale.py`` (a synthetic database with the measured code statistics of the
MCH records; :mod:`hashrepro.bucket_scale`).

* :func:`load_bucket_scale` — the committed benchmark record (JSON).
* :func:`matched_stats_table` — the statistics of the records against those of the synthetic model.
* :func:`bucket_scale_table` — ms/query of bucket search and of the linear scan per size and radius.
* :func:`trade_table`, :func:`trade_sentence` — recall of X and MCH-X at each radius and the buckets
  each radius probes.
* :func:`model_sentence` — the fitted model parameters.
* :func:`bucket_scale_figure` — ms/query against database size, bucket search against the scan.
* :func:`provenance_sentence` — commit, clean tree, command and wall time of the record.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["RECORD", "load_bucket_scale", "matched_stats_table", "model_sentence", "bucket_scale_table",
           "trade_table", "trade_sentence", "bucket_scale_figure", "provenance_sentence"]

#: The committed record, relative to the repository root.
RECORD = "results/benchmarks/mch_bucket_scale.json"
_RADIUS_COLOUR = {0: "tab:blue", 1: "tab:orange", 2: "tab:red"}
_STATS = [("buckets_per_code_x", "X: distinct buckets per code", True),
          ("ball2_fraction", "X: fraction of the database within radius 2", True),
          ("anhc", "MCH-X: codes per item (ANHC)", True),
          ("buckets_per_code_mch", "MCH-X: distinct buckets per code", True),
          ("ball0_fraction", "X: fraction within radius 0", False),
          ("ball1_fraction", "X: fraction within radius 1", False)]


def load_bucket_scale(path: str | Path | None = None) -> dict | None:
    """The benchmark record (default: :data:`RECORD` under the repository root); None if missing."""
    if path is None:
        from ..paths import repo_root

        path = repo_root() / RECORD
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def _rows(rec: dict) -> pd.DataFrame:
    return pd.DataFrame(rec["rows"])


def matched_stats_table(rec: dict) -> pd.DataFrame:
    """One row per statistic and code length: the records' value (mean over seeds), the synthetic
    model's (measured on a sample of the records' size) and whether the fit matched it."""
    out = []
    for bits, m in sorted(rec["models"].items(), key=lambda kv: int(kv[0])):
        for key, label, matched in _STATS:
            if key in ("anhc", "buckets_per_code_mch") and m["model"]["keep_rate"] == 0:
                matched = False
            out.append({"bits": int(bits), "statistic": label, "records": m["measured"][key],
                        "synthetic": m["achieved"][key], "fitted": "yes" if matched else "no (reported)"})
    t = pd.DataFrame(out)
    return t.round({"records": 4, "synthetic": 4})


def model_sentence(rec: dict) -> str:
    """The fitted parameters per code length, one sentence."""
    parts = []
    for bits, m in sorted(rec["models"].items(), key=lambda kv: int(kv[0])):
        p = m["model"]
        s = f"{bits} bits: C = {p['n_classes']} classes, p = {p['p']:.3f}"
        s += (f", crops kept with probability {p['keep_rate']:.2f} each and drawn at p_crop = {p['p_crop']:.3f}"
              if p["keep_rate"] > 0 else f" (no crops: ANHC {m['measured']['anhc']:.2f} in the records)")
        parts.append(s)
    return "; ".join(parts) + "."


def bucket_scale_table(rec: dict, engine: str = "enumerate") -> pd.DataFrame:
    """bits × database × items × radius: buckets probed, candidates, ms/query of bucket search
    (``engine``: ``"enumerate"`` = hash look-ups, or ``"auto"``) and of the linear scan, their ratio."""
    r = _rows(rec)
    t = pd.DataFrame({"bits": r["bits"], "database": r["db"], "items": r["n_items"], "codes": r["n_codes"],
                      "radius": r["radius"], "buckets probed": r["buckets_probed"].astype(int),
                      "non-empty": r["nonempty_buckets"].round(1), "candidates": r["candidates"].round(1),
                      "scan ms/query": r["scan_ms"].round(3), "bucket ms/query": r[f"{engine}_ms"].round(3),
                      "scan / bucket": r[f"scan_over_{engine}"].round(2)})
    return t.sort_values(["bits", "database", "items", "radius"], key=lambda c: c.map({"X": 0, "MCH-X": 1})
                         if c.name == "database" else c).reset_index(drop=True)


def trade_table(rec: dict, items: int | None = None) -> pd.DataFrame:
    """At ``items`` (default: the largest size): per code length and radius, the buckets probed and
    the recall / F1 / candidates of X and MCH-X, and the codes each stores."""
    r = _rows(rec)
    items = int(r["n_items"].max()) if items is None else int(items)
    r = r[r["n_items"] == items]
    out = []
    for (bits, radius), g in r.groupby(["bits", "radius"]):
        x = g[g["db"] == "X"].iloc[0]
        m = g[g["db"] == "MCH-X"]
        row = {"bits": int(bits), "radius": int(radius), "buckets probed": int(x["buckets_probed"]),
               "X recall": round(float(x["recall"]), 4), "X F1": round(float(x["f1"]), 4),
               "X candidates": round(float(x["candidates"]), 1), "X codes": int(x["n_codes"])}
        if len(m):
            m = m.iloc[0]
            row.update({"MCH-X recall": round(float(m["recall"]), 4), "MCH-X F1": round(float(m["f1"]), 4),
                        "MCH-X candidates": round(float(m["candidates"]), 1), "MCH-X codes": int(m["n_codes"])})
        out.append(row)
    t = pd.DataFrame(out)
    if "MCH-X codes" in t:
        t["MCH-X codes"] = t["MCH-X codes"].astype("Int64")
    return t


def trade_sentence(rec: dict, items: int | None = None) -> str:
    """For each code length with crops, at ``items``: the smallest radius at which X reaches MCH-X's
    recall at each radius, and the buckets probed by both (read from the record, not typed in)."""
    t = trade_table(rec, items)
    items = int(pd.DataFrame(rec["rows"])["n_items"].max()) if items is None else int(items)
    parts = []
    for bits, g in t.groupby("bits"):
        if "MCH-X recall" not in g or g["MCH-X recall"].isna().all():
            continue
        g = g.sort_values("radius")
        for _, row in g.iterrows():
            need = g[g["X recall"] >= row["MCH-X recall"]]
            if need.empty:
                tail = f"X does not reach it within radius {int(g['radius'].max())}"
            else:
                x = need.iloc[0]
                tail = (f"X needs radius {int(x['radius'])} ({int(x['buckets probed']):,} buckets) for recall "
                        f"{x['X recall']:.3f}")
            nb = int(row["buckets probed"])
            parts.append(f"{bits} bits, radius {int(row['radius'])} ({nb:,} bucket{'s' if nb != 1 else ''}): MCH-X "
                         f"recall {row['MCH-X recall']:.3f} with {int(row['MCH-X codes']):,} stored codes; {tail}")
    return f"At {items:,} items: " + "; ".join(parts) + "." if parts else ""


def bucket_scale_figure(rec: dict, engine: str = "enumerate"):
    """ms/query against database items (log-log): bucket search at radius 0, 1, 2 (solid) and the
    linear scan (dashed, radius 2), one panel per code length and database (X, MCH-X)."""
    import matplotlib.pyplot as plt

    r = _rows(rec)
    bits = sorted(r["bits"].unique())
    dbs = [d for d in ("X", "MCH-X") if d in set(r["db"])]
    fig, axes = plt.subplots(len(dbs), len(bits), figsize=(3.6 * len(bits), 3.0 * len(dbs)), squeeze=False,
                             sharex=True, sharey=True)
    for i, db in enumerate(dbs):
        for j, b in enumerate(bits):
            ax = axes[i][j]
            g = r[(r["db"] == db) & (r["bits"] == b)]
            if g.empty:
                ax.text(0.5, 0.5, f"no crops kept\n(MCH-X = X at {b} bits)", ha="center", va="center",
                        transform=ax.transAxes, fontsize=9)
                ax.set_title(f"{db}, {b} bits", fontsize=10)
                continue
            for rad, gr in g.groupby("radius"):
                gr = gr.sort_values("n_items")
                ax.plot(gr["n_items"], gr[f"{engine}_ms"], "-o", color=_RADIUS_COLOUR.get(rad, "k"), ms=4,
                        label=f"bucket, r={rad}")
            s = g[g["radius"] == g["radius"].max()].sort_values("n_items")
            ax.plot(s["n_items"], s["scan_ms"], "--s", color="0.3", ms=4, label="linear scan")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{db}, {b} bits", fontsize=10)
            if i == len(dbs) - 1:
                ax.set_xlabel("database items")
            if j == 0:
                ax.set_ylabel("ms / query (1 thread)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def provenance_sentence(rec: dict) -> str:
    """Where the record comes from: commit, clean or dirty tree, command, wall time."""
    tree = "a clean tree" if rec.get("git_dirty") is False else "a DIRTY tree"
    return (f"Record `{RECORD}`: commit `{str(rec.get('git_commit'))[:7]}` ({tree}), "
            f"`{rec.get('command')}`, {rec.get('wall_time_s', float('nan')):.0f} s wall time on "
            f"{rec.get('threads')} thread(s) of a shared {rec.get('cpu_count')}-core machine; candidate sets "
            f"checked against the scan for {rec.get('checked_cases', 0):,} (query, radius, database) cases.")
