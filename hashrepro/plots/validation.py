"""Hyperparameters chosen on a validation split: the records of :mod:`hashrepro.validation_select`.

A selection record (``scale = "validation"``, under ``results/validation/``) holds, for one recipe,
code length and seed, the validation mAP of every candidate of a grid (e.g. DNNH's triplet margin)
trained on the training images minus a held-out validation split, and the chosen candidate (the
highest validation mAP; ties to the paper's value). The query set is never used.

* :func:`load_selection_records` -- the committed selection records of a chapter;
* :func:`selection_table` -- one row per (method, bits, seed, candidate): validation mAP, active
  triplets (DNNH), training seconds, and which one was chosen;
* :func:`chosen_values` -- {(method, bits): chosen value of one field} (the latest record per setting);
* :func:`chosen_margin_table` -- per code length: the DNNH margin chosen on validation and, on the test
  protocol, the runs made with it (named ``dnnh-<variant>-margin<m>``) beside the paper's margin 1;
* :func:`selection_chain` -- the selections followed from a preset: a grid may start from an earlier
  grid's choice (its record's ``method`` names that configuration);
* :func:`chosen_config_table` -- the same for any grid (e.g. DRSCH's slope, lr, λ): per code length the
  configuration chosen on validation (at that length, or at one length and applied to all; through the
  chain of selections) and the test runs made with it (named by the recipe, e.g.
  ``drsch-lr-0.03-efficientnet_lite0``) beside the preset's.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["load_selection_records", "selection_table", "chosen_values", "chosen_margin_table", "selection_chain",
           "chosen_config_table"]


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


def chosen_margin_table(records, selections, paper: pd.DataFrame | None = None, variant: str = "dem",
                        dataset: str = "cifar10", backbone: str = "efficientnet_lite0",
                        bits=(12, 24, 32, 48)) -> pd.DataFrame:
    """Per code length: the DNNH margin chosen on validation (``selections``, :func:`chosen_values`),
    its validation mAP, then on the test protocol the runs with that margin (``dnnh-<variant>-margin<m>``)
    beside the paper's margin 1 (``dnnh-<variant>``), both on ``backbone``, and the paper's number.
    Cells as :func:`hashrepro.plots.regimes.regime_cells` (clean records, mean ± std over seeds)."""
    from ..methods.dnnh import method_name
    from .regimes import paper_value, regime_cells

    base = method_name(variant, backbone)
    chosen = chosen_values(selections)
    vmap = {(r["method"], int(r["bits"])): r for r in selections}

    def cell(method, b):
        c = regime_cells(records, method, dataset).get(b)
        if not c or not c["n"]:
            return "not run yet", float("nan")
        return f"{c['mean']:.3f} ± {c['std']:.3f} (n={c['n']})" if c["n"] > 1 else f"{c['mean']:.3f} (n=1)", c["mean"]

    rows = []
    for b in bits:
        m = chosen.get((base, b))
        sel = vmap.get((base, b))
        p = paper_value(paper, f"dnnh-{variant}", dataset, b)
        p = float("nan") if p is None else p
        one, _ = cell(base, b)
        if m is None:
            rows.append({"bits": b, "chosen margin": "not selected yet", "validation mAP": "—", "margin 1 (paper)": one,
                         "chosen margin, test": "—", "paper": p, "chosen − paper": "—"})
            continue
        txt, mean = cell(method_name(variant, backbone, m), b)
        rows.append({"bits": b, "chosen margin": f"{m:g}",
                     "validation mAP": f"{sel['metrics']['chosen_validation_map']:.3f}" if sel else "—",
                     "margin 1 (paper)": one, "chosen margin, test": txt, "paper": p,
                     "chosen − paper": f"{mean - p:+.3f}" if mean == mean and p == p else "—"})
    return pd.DataFrame(rows)


def _latest_per_length(selections, dataset: str) -> dict[str, dict[int, dict]]:
    """{base method: {bits: the lowest seed's latest selection record}} (``method`` of a selection
    record is the configuration its grid starts from, :func:`hashrepro.validation_select.base_method`)."""
    out: dict[str, dict[int, dict]] = {}
    for r in sorted((r for r in selections if r["dataset"] == dataset),
                    key=lambda r: (-int(r["seed"]), str(r.get("finished", "")))):
        out.setdefault(r["method"], {})[int(r["bits"])] = r
    return out


def selection_chain(selections, method: str, bits: int, name_of, dataset: str = "cifar10",
                    max_steps: int = 10) -> list[tuple[dict, int, str]]:
    """The selections followed from ``method`` (the preset's record name) at code length ``bits``.

    Step: the latest selection made from the current configuration (at ``bits``, else at the nearest
    length that has one), whose chosen candidate names the next configuration
    (``name_of(chosen dict, selection record) -> record name``); the chain stops when a selection keeps
    its starting configuration or no selection starts from the chosen one. Returns
    ``[(selection record, its length, chosen configuration's name), ...]`` (empty: never selected)."""
    latest = _latest_per_length(selections, dataset)
    steps: list[tuple[dict, int, str]] = []
    m, seen = method, set()
    while m in latest and m not in seen and len(steps) < max_steps:
        seen.add(m)
        src = min(latest[m], key=lambda k: (abs(k - bits), k))
        sel = latest[m][src]
        nxt = name_of(dict(sel.get("chosen") or {}), sel)
        steps.append((sel, src, nxt))
        if nxt == m:
            break
        m = nxt
    return steps


def chosen_config_table(records, selections, method: str, name_of, reference=None, dataset: str = "cifar10",
                        bits=(12, 24, 32, 48), metric: str = "map") -> pd.DataFrame:
    """Per code length: the configuration chosen on validation starting from ``method`` (the preset's
    record name, e.g. ``drsch-efficientnet_lite0``), through the chain of selections
    (:func:`selection_chain`: a grid may start from an earlier grid's choice) -- each step at that
    length, else at the lowest seed's nearest length that has one (the column ``chosen at`` says
    which) -- the validation mAP of each step's choice against its starting configuration's in the same
    grid, and on the test protocol the runs of the final configuration (``name_of(chosen, selection)
    -> record name``; the column ``validation mAP (chosen / grid start)``) beside the preset's runs and ``reference`` ({bits: value}, e.g. the quoted
    numbers). Cells as :func:`hashrepro.plots.regimes.regime_cells` (clean records, mean ± std over seeds)."""
    from .regimes import regime_cells

    def cell(name, b):
        c = regime_cells(records, name, dataset, metric).get(b)
        if c and not c["n"] and c.get("n_flagged"):
            return f"flagged only ({c['n_flagged']} runs: {c.get('flag', 'degenerate')})", float("nan")
        if not c or not c["n"]:
            return "not run yet", float("nan")
        txt = f"{c['mean']:.3f} ± {c['std']:.3f} (n={c['n']})" if c["n"] > 1 else f"{c['mean']:.3f} (n=1)"
        return txt + (" legacy" if c.get("legacy") else ""), c["mean"]

    def step_vmap(sel) -> str:
        cands = (sel.get("selection") or {}).get("candidates", [])
        base = next((c for c in cands if name_of(dict(c["params"]), sel) == sel["method"]), None)
        return f"{sel['metrics']['chosen_validation_map']:.3f} / " + (f"{base['validation_map']:.3f}" if base else "—")

    rows = []
    for b in bits:
        ref = (reference or {}).get(b, float("nan"))
        preset, preset_mean = cell(method, b)
        steps = selection_chain(selections, method, b, name_of, dataset)
        if not steps:
            rows.append({"bits": b, "chosen": "not selected yet", "chosen at": "—", "validation mAP (chosen / grid start)": "—",
                         "preset, test": preset, "chosen, test": "—", "reference": ref, "chosen − reference": "—"})
            continue
        name = steps[-1][2]
        txt, mean = (preset, preset_mean) if name == method else cell(name, b)
        rows.append({"bits": b,
                     "chosen": " → ".join((sel.get("selection") or {}).get("chosen_label", "") for sel, _, _ in steps),
                     "chosen at": "; ".join(dict.fromkeys(f"{src} bits, seed {sel['seed']}" for sel, src, _ in steps)),
                     "validation mAP (chosen / grid start)": " → ".join(step_vmap(sel) for sel, _, _ in steps),
                     "preset, test": preset, "chosen, test": txt, "reference": ref,
                     "chosen − reference": f"{mean - ref:+.3f}" if mean == mean and ref == ref else "—"})
    return pd.DataFrame(rows)
