"""Hyperparameters chosen on a validation split: the records of :mod:`hashrepro.validation_select`.

A selection record (``scale = "validation"``, under ``results/validation/``) holds, for one recipe,
code length and seed, the validation mAP of every candidate of a grid (e.g. DNNH's triplet margin)
trained on the training images minus a held-out validation split, and the chosen candidate (the
highest validation mAP; ties to the paper's value). The query set is never used.

* :func:`load_selection_records` -- the committed selection records of a chapter;
* :func:`selection_table` -- one row per (method, bits, seed, candidate): validation mAP, active
  triplets (DNNH), training seconds, and which one was chosen;
* :func:`chosen_values` -- {(method, bits): chosen value of one field} (the latest record per setting);
* :func:`variant_rows` -- the regime-table rows (:func:`hashrepro.plots.regimes.regime_table`) of the
  runs made with a chosen DNNH margin, named ``dnnh-<variant>-margin<m>``.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["load_selection_records", "selection_table", "chosen_values", "variant_rows"]


def load_selection_records(paper: str, root=None) -> list[dict]:
    """The complete records of ``results/validation`` (or ``root``) whose ``paper`` is ``paper``."""
    from ..paths import results_root
    from ..results import load_records

    frame = load_records((root if root is not None else results_root()) / "validation")
    if not len(frame):
        return []
    return [r for r in frame["record"] if r.get("paper") == paper]


def selection_table(records) -> pd.DataFrame:
    """One row per (method, dataset, bits, seed, candidate): ``validation mAP``, ``active triplets``
    (DNNH; NaN otherwise), ``train (s)``, ``chosen`` (✓ on the chosen candidate)."""
    rows = []
    for r in sorted(records, key=lambda r: (r["method"], r["dataset"], int(r["bits"]), int(r["seed"]))):
        sel = r.get("selection") or {}
        for c in sel.get("candidates", []):
            rows.append({"method": r["method"], "dataset": r["dataset"], "bits": int(r["bits"]),
                         "seed": int(r["seed"]), "candidate": c["label"],
                         "validation mAP": round(float(c["validation_map"]), 4),
                         "active triplets": round(float(c.get("active_triplets", float("nan"))), 4),
                         "train (s)": round(float(c.get("train_time_s", float("nan"))), 1),
                         "chosen": "✓" if c["label"] == sel.get("chosen_label") else ""})
    return pd.DataFrame(rows, columns=["method", "dataset", "bits", "seed", "candidate", "validation mAP",
                                       "active triplets", "train (s)", "chosen"])


def chosen_values(records, field: str = "margin") -> dict[tuple, float]:
    """{(method, bits): the chosen value of ``field``} from the latest record per (method, bits, seed)
    of the lowest seed (one choice per setting; the others are shown by :func:`selection_table`)."""
    latest: dict = {}
    for r in sorted(records, key=lambda r: str(r.get("finished", ""))):
        if field in (r.get("chosen") or {}):
            latest[(r["method"], int(r["bits"]), int(r["seed"]))] = r
    out: dict = {}
    for (m, b, s), r in sorted(latest.items()):
        out.setdefault((m, b), float(r["chosen"][field]))
    return out


def variant_rows(records, variant: str = "dem", paper_name: str = "dnnh-dem") -> dict[str, tuple[str, str]]:
    """``{label: (scratch record name, paper method)}`` rows for :func:`hashrepro.plots.regimes.regime_table`,
    one per DNNH margin other than the paper's 1 that some run record uses (method
    ``dnnh-<variant>-margin<m>-<backbone>``, :func:`hashrepro.methods.dnnh.method_name`)."""
    import re

    margins = set()
    for r in records if not isinstance(records, pd.DataFrame) else records.get("record", []):
        m = re.fullmatch(rf"dnnh-{re.escape(variant)}-margin([0-9.]+)(-.+)?", str(r.get("method", "")))
        if m:
            margins.add(float(m.group(1)))
    return {f"DNNH ({variant.upper()}), margin {m:g} (chosen on validation)": (f"dnnh-{variant}-margin{m:g}", paper_name)
            for m in sorted(margins)}
