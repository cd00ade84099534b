"""The papers' published numbers (CSV tables) and paper-vs-ours tables built from run records.

The papers' tables live as CSV files under ``hashrepro/papers/`` in long format, one file per
table (``<paper>_table<N>.csv``) with columns ``table, method, dataset, bits, metric, value,
note`` (``source`` is accepted as a synonym of ``table``). :func:`compare` joins a paper table with
run records (:func:`hashrepro.results.load_records`): paper value, ours (mean ± sample std over
seeds), number of seeds, delta. Everything here is re-exported by :mod:`hashrepro.results`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

__all__ = ["SCALES", "PAPERS_DIR", "paper_tables", "paper_table", "compare", "companion_column",
           "format_mean_std", "records_table"]

#: Scales in order of faithfulness; :func:`compare` prefers the first one present.
SCALES = ("paper", "default", "smoke")
PAPERS_DIR = Path(__file__).resolve().parent / "papers"


# --------------------------------------------------------------------------- paper tables
def paper_tables() -> list[str]:
    """Names of the paper tables shipped in ``hashrepro/papers/`` (file stems)."""
    return sorted(p.stem for p in PAPERS_DIR.glob("*.csv"))


def paper_table(name: str) -> pd.DataFrame:
    """A paper's published numbers (long format) from ``hashrepro/papers/<name>.csv``.

    ``name`` is a file stem (``"dnnh_table2"``), a path to a CSV file, or a paper prefix
    (``"ddh"``: every ``ddh_*.csv`` concatenated). Columns: ``table, source, method, dataset,
    bits, metric, value, note`` (``table`` and ``source`` hold the same thing, e.g. "Table 2";
    either may be given in the file). ``bits`` is int, ``value`` float.
    """
    p = Path(name)
    if p.suffix == ".csv" and p.is_file():
        files = [p]
    else:
        stem = p.stem if p.suffix == ".csv" else str(name)
        exact = PAPERS_DIR / f"{stem}.csv"
        files = [exact] if exact.is_file() else sorted(PAPERS_DIR.glob(f"{stem}_*.csv"))
    if not files:
        raise FileNotFoundError(f"no paper table {name!r} in {PAPERS_DIR}; available: {', '.join(paper_tables())}")
    frames = []
    for f in files:
        df = pd.read_csv(f)
        if "table" not in df.columns and "source" in df.columns:
            df["table"] = df["source"]
        if "source" not in df.columns and "table" in df.columns:
            df["source"] = df["table"]
        for col in ("table", "source", "note"):
            if col not in df.columns:
                df[col] = f.stem if col != "note" else ""
        missing = [c for c in ("method", "dataset", "bits", "metric", "value") if c not in df.columns]
        if missing:
            raise ValueError(f"{f}: missing column(s) {missing}; expected table, method, dataset, bits, metric, "
                             "value, note")
        df["bits"] = pd.to_numeric(df["bits"], errors="raise").astype(int)
        df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
        df["note"] = df["note"].fillna("").astype(str)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    first = ["table", "source", "method", "dataset", "bits", "metric", "value", "note"]
    return out[first + [c for c in out.columns if c not in first]]


# --------------------------------------------------------------------------- comparison
def _pick_scale(df: pd.DataFrame, keys: list[str], scale: str | None) -> pd.DataFrame:
    if "scale" not in df.columns or not len(df):
        return df
    if scale is not None:
        return df[df["scale"] == scale]
    rank = {s: i for i, s in enumerate(SCALES)}
    r = df["scale"].map(lambda s: rank.get(s, len(SCALES)))
    best = r.groupby([df[k] for k in keys]).transform("min")
    return df[r == best]


def _latest_per_seed(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One record per (keys, seed): the most recently finished."""
    if not len(df) or "seed" not in df.columns:
        return df
    sort_cols = [c for c in ("finished",) if c in df.columns]
    d = df.sort_values(sort_cols, kind="stable", na_position="first") if sort_cols else df
    return d.drop_duplicates(subset=keys + ["seed"], keep="last")


def _aggregate(records: pd.DataFrame, metric: str, keys: list[str], scale: str | None) -> pd.DataFrame:
    col = f"metrics.{metric}"
    cols = keys + ["ours_mean", "ours_std", "n_seeds", "scale"]
    dtypes = {"bits": "int64", "ours_mean": "float64", "ours_std": "float64", "n_seeds": "int64"}
    empty = pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "object")) for c in cols})
    if records is None or not len(records) or col not in records.columns:
        return empty
    r = records.copy()
    r = r[r["complete"].fillna(True).astype(bool)] if "complete" in r.columns else r
    if "record" in r.columns:  # runs flagged as degenerate (e.g. constant bits) never enter a mean
        r = r[[not (isinstance(x, Mapping) and x.get("flags")) for x in r["record"]]]
    r[col] = pd.to_numeric(r[col], errors="coerce")
    r = r[r[col].notna()]
    if "bits" in keys:
        r["bits"] = r["bits"].astype(int)
    r = _pick_scale(r, keys, scale)
    r = _latest_per_seed(r, keys + (["scale"] if "scale" in r.columns else []))
    if not len(r):
        return empty
    group = keys + (["scale"] if "scale" in r.columns else [])
    g = r.groupby(group, sort=False)[col]
    agg = g.agg(ours_mean="mean", ours_std=lambda s: float(s.std(ddof=1)) if len(s) > 1 else float("nan"),
                n_seeds="count").reset_index()
    if "scale" not in agg.columns:
        agg["scale"] = None
    return agg[cols]


def _renamed(records_df: pd.DataFrame | None, method_map: Mapping[str, str] | None,
             dataset_map: Mapping[str, str] | None) -> pd.DataFrame:
    """A copy of the records with methods/datasets renamed to a paper table's names."""
    r = records_df.copy() if records_df is not None else pd.DataFrame()
    if len(r):
        if method_map:
            r["method"] = r["method"].replace(dict(method_map))
        if dataset_map:
            r["dataset"] = r["dataset"].replace(dict(dataset_map))
    return r


def compare(paper_df: pd.DataFrame, records_df: pd.DataFrame, metric: str = "map", *,
            scale: str | None = None, method_map: Mapping[str, str] | None = None,
            dataset_map: Mapping[str, str] | None = None, paper_scale: float = 1.0,
            how: str = "left") -> pd.DataFrame:
    """Paper numbers beside ours: one row per (method, dataset, bits) of the paper table.

    Parameters
    ----------
    paper_df : DataFrame from :func:`paper_table` (rows of other metrics are ignored).
    records_df : DataFrame from :func:`load_records`.
    metric : the paper table's ``metric`` and the record's ``metrics.<metric>``.
    scale : use only records of this scale; default: per (method, dataset, bits) the most
        faithful scale present (paper > default > smoke > others), never a mix.
    method_map, dataset_map : rename *record* methods/datasets to the paper table's names.
    paper_scale : multiply the paper values (e.g. 0.01 for a table printed in percent).
    how : "left" (paper rows, ours where run), "inner" (both) or "outer" (also runs with no
        paper number).

    Returns
    -------
    DataFrame with columns ``method, dataset, bits, paper, ours_mean, ours_std, n_seeds, delta,
    scale`` (+ ``table``, ``note`` when the paper table has them). ``ours_std`` is the sample
    standard deviation over seeds (NaN for one seed); ``delta = ours_mean - paper``; seeds with
    several records count once (the latest).
    """
    if how not in ("left", "inner", "outer"):
        raise ValueError(f"how must be 'left', 'inner' or 'outer', got {how!r}")
    keys = ["method", "dataset", "bits"]
    p = paper_df.copy()
    missing = [c for c in keys + ["value"] if c not in p.columns]
    if missing:
        raise ValueError(f"paper_df lacks column(s) {missing} (use hashrepro.results.paper_table)")
    if "metric" in p.columns:
        p = p[p["metric"] == metric]
    p["bits"] = p["bits"].astype(int)
    p = p.rename(columns={"value": "paper"})
    p["paper"] = p["paper"].astype(float) * float(paper_scale)
    extra = [c for c in ("table", "note") if c in p.columns]
    p = p[keys + ["paper"] + extra]

    r = _renamed(records_df, method_map, dataset_map)
    ours = _aggregate(r, metric, keys, scale)
    out = p.merge(ours, on=keys, how=how)
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    out["ours_mean"] = out["ours_mean"].astype(float)
    out["ours_std"] = out["ours_std"].astype(float)
    out["delta"] = out["ours_mean"] - out["paper"]
    cols = keys + ["paper", "ours_mean", "ours_std", "n_seeds", "delta", "scale"] + extra
    return out[cols].reset_index(drop=True)


def companion_column(cmp: pd.DataFrame, records_df: pd.DataFrame, metric: str = "map_tie_aware", *,
                     method_map: Mapping[str, str] | None = None,
                     dataset_map: Mapping[str, str] | None = None, digits: int = 3) -> list[str]:
    """One formatted cell per row of a :func:`compare` table: ``metric`` of the same runs.

    Used for ``map_tie_aware`` (the mAP with ties in random order, which every record written
    since it was added carries beside ``map``): ``"0.181 (n=2)"``, or ``"—"`` where no record of
    that (method, dataset, bits) has the metric (records that predate it). ``n`` is always shown,
    since it can differ from the main column's.
    """
    keys = ["method", "dataset", "bits"]
    r = _renamed(records_df, method_map, dataset_map)
    agg = _aggregate(r, metric, keys, None)
    cells = {(m, d, int(b)): format_mean_std(mu, sd, digits, n)
             for m, d, b, mu, sd, n in zip(agg["method"], agg["dataset"], agg["bits"],
                                           agg["ours_mean"], agg["ours_std"], agg["n_seeds"])}
    return [cells.get((m, d, int(b)), "—") for m, d, b in zip(cmp["method"], cmp["dataset"], cmp["bits"])]


def format_mean_std(mean: float, std: float | None = None, digits: int = 3, n: int | None = None) -> str:
    """``"0.712 ± 0.004"``; the mean alone when std is missing/NaN (one seed); ``"—"`` for NaN
    mean. With ``n``, the number of seeds is appended: ``"0.712 ± 0.004 (n=3)"``."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)) or pd.isna(mean):
        return "—"
    s = f"{float(mean):.{digits}f}"
    if std is not None and not pd.isna(std):
        s += f" ± {float(std):.{digits}f}"
    if n is not None:
        s += f" (n={int(n)})"
    return s


def records_table(records_df: pd.DataFrame, metric: str = "map", index: str | Iterable[str] = "method",
                  columns: str | Iterable[str] = "bits", *, dataset: str | None = None,
                  scale: str | None = None, digits: int = 3, show_n: bool = False) -> pd.DataFrame:
    """A book table of ours: ``metric`` as "mean ± std" over seeds, pivoted.

    Parameters
    ----------
    records_df : from :func:`load_records`
    metric : metric name (``metrics.<metric>`` column)
    index, columns : record columns for the rows / columns of the table
    dataset : keep only this dataset
    scale : keep only this scale (default: the most faithful scale per cell, as in :func:`compare`)
    digits, show_n : formatting (:func:`format_mean_std`)

    Runs flagged as degenerate (``record["flags"]``, e.g. constant bits) are left out, as in
    :func:`compare` and the claims: a cell with only flagged runs is empty.
    """
    index = [index] if isinstance(index, str) else list(index)
    columns = [columns] if isinstance(columns, str) else list(columns)
    r = records_df
    if r is None or not len(r):
        return pd.DataFrame()
    if dataset is not None:
        r = r[r["dataset"] == dataset]
    keys = list(dict.fromkeys(index + columns))
    agg = _aggregate(r, metric, keys, scale)
    if not len(agg):
        return pd.DataFrame()
    agg["cell"] = [format_mean_std(m, s, digits, n if show_n else None)
                   for m, s, n in zip(agg["ours_mean"], agg["ours_std"], agg["n_seeds"])]
    return agg.pivot_table(index=index, columns=columns, values="cell", aggfunc="first", sort=True)
