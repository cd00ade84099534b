"""Figures and tables of the convergence curves of the from-scratch rows (:mod:`hashrepro.convergence`).

* :func:`plot_convergence` — validation mAP against iterations (log x) of one or more convergence
  records, a vertical line at the default schedule's length and, as a separate marker, the
  default schedule's own validation mAP (the anchor); the legend names each curve's verdict.
* :func:`convergence_table` — one row per record: the default schedule's validation mAP, the
  curve's points at 1×, 2×, 5×, 10× the default length, how far the run got and the verdicts.

Records are the dicts written by :func:`hashrepro.convergence.save_curve_record` (one dict, a
list, or a DataFrame with a ``record`` column).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_convergence", "convergence_table", "load_convergence_records"]


def _as_records(records) -> list[dict]:
    if records is None:
        return []
    if isinstance(records, dict):
        return [records]
    if hasattr(records, "columns"):
        if "record" not in records.columns:
            raise ValueError("a DataFrame of records needs a 'record' column (hashrepro.results.load_records)")
        return list(records["record"])
    return list(records)


def _check(rec: dict) -> dict:
    if not isinstance(rec, dict) or "validation_map" not in rec.get("curves", {}):
        raise ValueError("not a convergence record (no curves['validation_map']); "
                         "make one with hashrepro.convergence.convergence_curve")
    return rec


def _label(rec: dict) -> str:
    return f"{rec['method']} {rec['dataset']} {rec['bits']} bits, seed {rec['seed']}"


def load_convergence_records(folder=None) -> list[dict]:
    """Every convergence record in ``folder`` (default ``<repo>/results/convergence``), sorted by name."""
    from pathlib import Path

    from ..paths import results_root
    from ..results import load_run

    folder = Path(folder) if folder is not None else results_root() / "convergence"
    return [load_run(p) for p in sorted(folder.glob("*.json"))]


def plot_convergence(records, ax=None, show_anchor: bool = True):
    """Validation mAP vs iterations (log x) of convergence records; returns the ``Axes``.

    Per record: the curve of the long schedule (its points before the end are mid-schedule),
    a dotted vertical line at the default schedule's length and, when the record has one, the
    default schedule's own validation mAP as an open marker at that length. The legend gives the
    verdict of :func:`hashrepro.convergence.convergence_verdict` (``partial`` when the run did
    not reach its end).
    """
    import matplotlib.pyplot as plt

    recs = [_check(r) for r in _as_records(records)]
    if not recs:
        raise ValueError("plot_convergence: no convergence records given")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, rec in enumerate(recs):
        c = colours[i % len(colours)]
        cur = rec["curves"]["validation_map"]
        conv = rec.get("convergence", {}) or {}
        finished = bool(rec["metrics"].get("finished"))
        verdict = conv.get("verdict") or "-"
        status = verdict if finished else f"partial, {int(rec['metrics'].get('iterations_done', 0))} it."
        ax.plot(cur["iterations"], cur["validation_map"], "o-", color=c, ms=4,
                label=f"{_label(rec)} ({status})")
        default_its = rec["metrics"].get("default_iterations")
        if default_its:
            ax.axvline(default_its, color=c, ls=":", lw=1)
        anchor = rec["curves"].get("default_schedule")
        if show_anchor and anchor:
            ax.plot(anchor["iterations"], anchor["validation_map"], "s", mfc="none", color=c, ms=8,
                    label=f"default schedule ({int(anchor['iterations'][0])} it., own LR decay)")
    ax.set_xscale("log")
    ax.set_xlabel("training iterations (log scale)")
    ax.set_ylabel("validation mAP (held-out training images)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def _verdict(fn, rec):
    try:
        return fn(rec)
    except ValueError:  # a partial record that cannot say yet
        return "cannot say yet"


def convergence_table(records, multiples=(1, 2, 5, 10)) -> pd.DataFrame:
    """One row per convergence record: method, dataset, bits, seed, the default schedule's
    iterations and validation mAP (anchor), the curve's validation mAP at each multiple of the
    default length that was evaluated (NaN where the run did not get there), iterations done /
    planned, wall seconds per training iteration, and the two verdicts, computed now by
    :func:`hashrepro.convergence.convergence_verdict` and
    :func:`~hashrepro.convergence.default_schedule_verdict` (``"cannot say yet"`` for a partial
    record that cannot say)."""
    from ..convergence import convergence_verdict, default_schedule_verdict

    rows = []
    for rec in (_check(r) for r in _as_records(records)):
        cur = rec["curves"]["validation_map"]
        m = rec["metrics"]
        base = m.get("default_iterations")
        at = dict(zip(cur["iterations"], cur["validation_map"]))
        anchor = rec["curves"].get("default_schedule", {}).get("validation_map", [np.nan])
        row = {"method": rec["method"], "dataset": rec["dataset"], "bits": rec["bits"], "seed": rec["seed"],
               "default iterations": base, "default schedule mAP": anchor[0] if anchor else np.nan}
        for k in multiples:
            row[f"{k:g}x"] = at.get(int(round(base * k)), np.nan) if base else np.nan
        row.update({"iterations done": m.get("iterations_done"), "iterations planned": m.get("iterations_planned"),
                    "s / iteration": m.get("seconds_per_iteration"), "curve verdict": _verdict(convergence_verdict, rec),
                    "default schedule verdict": _verdict(default_schedule_verdict, rec)})
        rows.append(row)
    return pd.DataFrame(rows)
