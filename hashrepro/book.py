"""Tables for the book's shared pages: the introduction's "paper vs ours" summary and the
reproduce page's list of runs (commands, hardware, wall times), all read from run records.

The chapters draw their own tables (``hashrepro.results.compare``); this module only gathers
across chapters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from .paths import PAPERS, results_root

__all__ = ["Claim", "CLAIMS", "all_records", "runs_table", "claims_table", "verdict"]


@dataclass(frozen=True)
class Claim:
    """A headline number of a paper, checked against our records.

    ``table`` names a CSV in ``hashrepro/papers``; rows of that table whose method equals
    ``paper_method`` (and dataset ``dataset``) are compared with our records whose ``method``
    equals ``our_method``, on ``metric``. ``higher_is_better`` orients the verdict.
    """

    chapter: str
    text: str
    table: str
    paper_method: str
    our_method: str
    dataset: str
    metric: str = "map"
    higher_is_better: bool = True


#: Headline claims shown in the introduction. Qualitative claims (ablations, efficiency) are
#: judged on the chapter pages, where their figures are.
CLAIMS: tuple[Claim, ...] = (
    Claim("drsch", "DRSCH's MAP on CIFAR-10 (as quoted by later work)", "drsch_quoted", "drsch", "drsch",
          "cifar10"),
    Claim("drsch", "DSCH's MAP on CIFAR-10 (as quoted by later work)", "drsch_quoted", "dsch", "dsch",
          "cifar10"),
    Claim("dnnh", "DNNH's MAP on CIFAR-10 (Table 2)", "dnnh_table2", "dnnh-dem", "dnnh-dem", "cifar10"),
    Claim("dnnh", "DNNH-FC's MAP on CIFAR-10 (Table 3)", "dnnh_table3", "dnnh-fc", "dnnh-fc", "cifar10"),
    Claim("ddh", "DDH's mAP@1000 on CIFAR-10 (Table 2)", "ddh_table2", "DDH", "ddh", "cifar10"),
)

#: |ours − paper| within this (absolute, e.g. 0.02 MAP) counts as reproduced.
TOLERANCE = 0.02


def verdict(delta: float, higher_is_better: bool = True, tol: float = TOLERANCE) -> str:
    """Turn ours − paper into words: reproduced / better / lower / much lower / not run."""
    if delta is None or (isinstance(delta, float) and math.isnan(delta)):
        return "not run"
    d = delta if higher_is_better else -delta
    if abs(d) <= tol:
        return "reproduced"
    if d > tol:
        return "ours higher"
    if d >= -0.10:
        return "ours lower"
    return "ours much lower"


def all_records() -> pd.DataFrame:
    """Every committed run record under ``results/<paper>/`` as one DataFrame (may be empty)."""
    from .results import load_records

    frames = []
    root = results_root()
    for sub in sorted(p for p in root.glob("*") if p.is_dir() and p.name != "local"):
        df = load_records(sub)
        if len(df):
            frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def runs_table(records: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run: chapter, run, dataset, bits, seed, scale, device, wall time, command, commit."""
    records = all_records() if records is None else records
    cols = ["paper", "method", "dataset", "bits", "seed", "scale", "device", "wall_time_s", "command",
            "git_commit"]
    if records is None or not len(records):
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({c: records[c] if c in records else None for c in cols})
    out["wall_time_s"] = pd.to_numeric(out["wall_time_s"], errors="coerce").round(1)
    out["git_commit"] = out["git_commit"].astype(str).str[:10]
    return out.sort_values(["paper", "dataset", "method", "bits", "seed"]).reset_index(drop=True)


def claims_table(records: pd.DataFrame | None = None, claims=CLAIMS) -> pd.DataFrame:
    """The introduction's summary: per claim, bit lengths compared, paper vs ours, verdict.

    For each claim, every bit length present both in the paper table and in our records is
    compared (ours = mean over seeds); the verdict uses the mean delta over those bit lengths.
    """
    from .results import compare, paper_table

    records = all_records() if records is None else records
    rows = []
    for c in claims:
        row = {"chapter": c.chapter, "claim": c.text, "paper": "", "ours": "", "mean delta": float("nan"),
               "verdict": "not run"}
        try:
            paper = paper_table(c.table)
        except (FileNotFoundError, ValueError):
            row["verdict"] = "paper table missing"
            rows.append(row)
            continue
        paper = paper[(paper["method"] == c.paper_method) & (paper["dataset"] == c.dataset)
                      & (paper["metric"] == c.metric)]
        if records is not None and len(records):
            mine = records[(records["method"] == c.our_method) & (records["dataset"] == c.dataset)]
        else:
            mine = pd.DataFrame()
        if len(paper) and len(mine):
            paper_renamed = paper.assign(method=c.our_method)
            cmp = compare(paper_renamed, mine, metric=c.metric)
            cmp = cmp.dropna(subset=["ours_mean", "paper"])
            if len(cmp):
                row["paper"] = ", ".join(f"{int(b)}b {p:.3f}" for b, p in zip(cmp["bits"], cmp["paper"]))
                row["ours"] = ", ".join(f"{o:.3f}" for o in cmp["ours_mean"])
                row["mean delta"] = round(float(cmp["delta"].mean()), 3)
                row["verdict"] = verdict(row["mean delta"], c.higher_is_better)
        rows.append(row)
    return pd.DataFrame(rows)
