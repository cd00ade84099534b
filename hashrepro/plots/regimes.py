"""Both training regimes side by side with the paper, for the DNNH and DRSCH chapters.

A chapter's methods exist in two regimes (issue 15): the paper's network trained **from
scratch** (record ``method`` = ``dnnh-dem``, ``drsch``, ...) and the paper's head and loss on the
frozen **ImageNet-pretrained** EfficientNet-Lite0 (the same name with ``-efficientnet_lite0``
appended, see :func:`hashrepro.methods.dnnh.method_name` / :func:`hashrepro.methods.drsch.method_name`).

* :func:`regime_table` — one row per method × code length: the paper's number, ours from scratch
  and ours on the pretrained backbone (each "mean ± std (n=seeds)", with the scale it ran at), and
  the pretrained row's difference to the paper.
* :func:`seed_sentence` — a sentence that states how many seeds back each regime's cells,
  generated from the records so that it cannot go stale.

Clean records (``git_dirty`` false) fill a cell when it has any; a cell with only older records
from a dirty tree shows them marked "legacy" (they count for no target).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

__all__ = ["PRETRAINED", "pretrained_name", "regime_cells", "regime_table", "seed_sentence", "paper_value"]

PRETRAINED = "efficientnet_lite0"


def pretrained_name(method: str, backbone: str = PRETRAINED) -> str:
    """The record name of ``method`` on the pretrained backbone (``dnnh-dem`` → ``dnnh-dem-efficientnet_lite0``)."""
    return f"{method}-{backbone}"


def _as_dicts(records) -> list[dict]:
    if isinstance(records, pd.DataFrame):
        return list(records["record"]) if "record" in records else []
    return [r for r in records if isinstance(r, Mapping)]


def regime_cells(records, method: str, dataset: str, metric: str = "map",
                 value=None) -> dict[int, dict]:
    """Our clean runs of ``method`` on ``dataset`` grouped by bits.

    ``value`` (optional callable record -> float) replaces ``metrics[metric]``. Several scales for
    one bit length: the longest schedule wins (``paper`` over ``default``; ``smoke`` never counts).
    Clean records (``git_dirty`` false) are used when a cell has any; otherwise the cell falls back
    to the legacy records (dirty tree, or written before provenance existed) and says so
    (``legacy`` true; the tables mark it "legacy"). Clean records win over the schedule: a longer
    schedule whose records are all dirty is used only when no schedule of that length has a clean one.
    Records written by a benchmark script (``command`` "python benchmarks/...", e.g. the DRSCH
    dead-bits solver study, which labels its released-solver runs ``scale="paper"`` at 3,000
    iterations) are not the chapter's rows and are left out.
    Records flagged as degenerate (``record["flags"]``, e.g. constant bits) never enter a mean; a cell
    counts them (``n_flagged``) and one with only flagged runs reads "flagged (k runs: <flag>)".
    Returns ``{bits: {"mean", "std", "n", "scale", "seeds", "by_seed" ({seed: value}), "legacy", "wall_time_s"[,
    "n_flagged", "flag"]}}``.
    """
    groups: dict = defaultdict(list)
    flagged: dict = defaultdict(list)
    for r in _as_dicts(records):
        if r.get("method") != method or r.get("dataset") != dataset:
            continue
        if r.get("scale") == "smoke":
            continue
        if str(r.get("command") or "").startswith("python benchmarks/"):
            continue  # a benchmark's runs (e.g. the dead-bits solver study) are not the chapter's rows
        if r.get("flags"):  # degenerate runs never enter a mean; the cell says they exist
            flagged[int(r["bits"])].append(r)
            continue
        v = value(r) if value is not None else r.get("metrics", {}).get(metric)
        if v is None or not np.isfinite(v):
            continue
        groups[(int(r["bits"]), r.get("scale", "default"))].append((float(v), r))
    order = {"paper": 0, "default": 1}
    has_clean = {(b, sc) for (b, sc), vals in groups.items() if any(r.get("git_dirty") is False for _, r in vals)}
    clean_bits = {b for b, _ in has_clean} | {b for b, rs in flagged.items() if any(r.get("git_dirty") is False
                                                                                   for r in rs)}
    out: dict[int, dict] = {}
    for (bits, scale), vals in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 2))):
        if bits in out:
            continue
        if (bits, scale) not in has_clean and bits in clean_bits:
            continue  # dirty records never hide clean ones (of another schedule, or flagged: the cell says so)
        clean = [(v, r) for v, r in vals if r.get("git_dirty") is False]
        legacy = not clean  # only records from a dirty tree (or without provenance): shown, marked
        use = clean or vals
        by_seed = {int(r.get("seed", 0)): v for v, r in use}  # one value per seed (latest wins)
        x = np.array(list(by_seed.values()), dtype=float)
        out[bits] = {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else float("nan"),
                     "n": len(x), "scale": scale, "seeds": sorted(by_seed), "by_seed": dict(sorted(by_seed.items())),
                     "legacy": legacy,
                     "wall_time_s": float(np.mean([r.get("wall_time_s", np.nan) for _, r in use]))}
    for bits, rs in flagged.items():
        if bits in out:
            out[bits]["n_flagged"] = len(rs)
        else:
            out[bits] = {"mean": float("nan"), "std": float("nan"), "n": 0, "scale": rs[0].get("scale", "default"),
                         "seeds": [], "by_seed": {}, "legacy": False, "wall_time_s": float("nan"),
                         "n_flagged": len(rs),
                         "flag": str(rs[0]["flags"][0]).split(":")[0]}
    return out


def _fmt(cell: dict | None) -> str:
    from ..results import format_mean_std
    if not cell:
        return "not run yet"
    if cell["n"] == 0:
        return f"flagged ({cell['n_flagged']} runs: {cell.get('flag', 'degenerate')})"
    text = format_mean_std(cell["mean"], cell["std"], 3, cell["n"])
    if cell.get("n_flagged"):
        text += f" + {cell['n_flagged']} flagged"
    return f"{text} legacy" if cell.get("legacy") else text


def paper_value(paper: pd.DataFrame | None, method: str | None, dataset: str, bits: int,
                metric: str = "map") -> float | None:
    """The paper's number for ``method`` on ``dataset`` at ``bits`` (long-format paper table,
    :func:`hashrepro.results.paper_table`), or None when the table or the row is missing."""
    if paper is None or method is None or not len(paper):
        return None
    m = paper[(paper["method"] == method) & (paper["dataset"] == dataset) & (paper["bits"] == bits)
              & (paper["metric"] == metric)]
    return float(m["value"].iloc[0]) if len(m) else None


def regime_table(records, paper: pd.DataFrame | None, methods: Mapping[str, tuple[str, str | None]],
                 dataset: str = "cifar10", bits: Iterable[int] = (12, 24, 32, 48), metric: str = "map",
                 backbone: str = PRETRAINED, value=None) -> pd.DataFrame:
    """Paper | ours from scratch | ours on the pretrained backbone, per method and code length.

    Parameters
    ----------
    records : run records (list of dicts or :func:`hashrepro.results.load_records` frame).
    paper : the paper's numbers (long format, :func:`hashrepro.results.paper_table`) or None.
    methods : ``{label: (our record name from scratch, the paper table's method name or None)}``;
        the pretrained record name is :func:`pretrained_name` of the scratch one. A third element
        names the pretrained records instead (a setting run on the backbone only, e.g.
        ``(None, "drsch", "drsch-head_hidden-2048-lastblock-efficientnet_lite0")``; a scratch name of
        None leaves the scratch cell "—").
    value : optional callable(record) -> float used instead of ``metrics[metric]``.

    Returns a DataFrame with columns ``method, bits, paper, scratch, pretrained, pretrained − paper,
    pretrained wall (s)`` (mean wall time of one pretrained run)
    (cells "mean ± std (n=k)", scale in brackets when not ``default``).
    """
    rows = []
    for label, (scratch, paper_name, *named) in methods.items():
        sc = regime_cells(records, scratch, dataset, metric, value) if scratch else {}
        pt = regime_cells(records, named[0] if named else pretrained_name(scratch, backbone), dataset, metric, value)
        for b in bits:
            p = paper_value(paper, paper_name, dataset, b, metric)
            s_cell, p_cell = sc.get(b), pt.get(b)

            def show(c):
                text = _fmt(c)
                return text if not c or c["scale"] == "default" else f"{text} [{c['scale']}]"
            rows.append({"method": label, "bits": b, "paper": "—" if p is None else f"{p:.3f}",
                         "scratch": show(s_cell) if scratch else "—", "pretrained": show(p_cell),
                         "pretrained − paper": "—" if (p is None or not p_cell or not p_cell["n"]) else f"{p_cell['mean'] - p:+.3f}",
                         "pretrained wall (s)": "—" if not p_cell or not p_cell["n"] else f"{p_cell['wall_time_s']:.0f}"})
    return pd.DataFrame(rows)


def seed_sentence(records, methods: Iterable[str], dataset: str = "cifar10", backbone: str = PRETRAINED) -> str:
    """"From scratch: 1–3 seeds per cell (12 cells); pretrained: 3 seeds per cell (12 cells)." —
    counted from the clean records of ``methods`` (scratch names) so the page cannot go stale."""
    parts = []
    for regime, names in (("from scratch", list(methods)),
                          ("on the ImageNet backbone", [pretrained_name(m, backbone) for m in methods])):
        ns = [c["n"] for m in names for c in regime_cells(records, m, dataset).values() if c["n"]]
        if not ns:
            parts.append(f"{regime}: no clean runs yet")
            continue
        lo, hi = min(ns), max(ns)
        span = f"{lo}" if lo == hi else f"{lo}–{hi}"
        parts.append(f"{regime}: {span} seed{'s' if hi > 1 else ''} per cell ({len(ns)} cell{'s' if len(ns) != 1 else ''})")
    return "; ".join(parts) + "."
