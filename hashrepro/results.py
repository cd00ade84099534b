"""Run records (one JSON file per run), the papers' published numbers, paper-vs-ours tables.

A *run record* is a JSON object (schema 1)::

    {"schema": 1, "paper": "dnnh", "method": "dnnh-dem", "dataset": "cifar10", "bits": 48,
     "seed": 0, "scale": "default", "config": {...all notebook parameters...},
     "protocol": {"split": ..., "n_train": ..., "n_query": ..., "n_database": ...,
                  "database_includes_train": false, "topk": null, "ties": "index",
                  "empty": "zero", "ranking": "binary"},
     "metrics": {"map": 0.71, "precision_radius2": 0.65, ...},      # floats only
     "curves": {"pr_radius": {"radius": [...], "precision": [...]}, ...},
     "command": "papermill notebooks/dnnh.ipynb out.ipynb -p dataset cifar10 ...",
     "git_commit": "<sha>", "git_dirty": false, "git_diff_sha256": null, "git_patch": null,
     "git_read_at": "start",
     "versions": {"python": ..., "numpy": ..., "torch": ..., "hashrepro": ..., ...},
     "device": "cpu (2 threads)", "wall_time_s": 12.3,
     "started": "2025-01-01T12:00:00+00:00", "finished": "...", "complete": true}

Provenance: the commit and the state of the work tree are read when the run *starts*
(:func:`start_run`, passed to :func:`make_record` as ``started=``); ``git_read_at`` says so. When
the tree is dirty, ``git_diff_sha256`` is the SHA-256 of ``git diff HEAD`` (code only: the run
outputs under ``results/`` and ``book/runs/`` are left out) and :func:`save_run` writes the diff to
``<results_dir>/patches/<sha256>.patch`` (where ``hashrepro sweep --allow-dirty`` saves it too;
``git_patch`` is then that path relative to the results folder), so ``git checkout <commit> &&
git apply <patch>`` rebuilds the code.
``command`` is always set: the caller's, or :func:`reproduce_command` rebuilt from the config.
:func:`provenance_status` tells new records from legacy ones.

Records are written atomically (:func:`save_run`: temporary file in the same folder, flush,
fsync, ``os.replace``), so a reader sees either nothing or a whole file, and :func:`is_complete`
rejects anything half-written or corrupt: a sweep that is interrupted and rerun redoes exactly
the runs without a complete record.

The papers' tables live as CSV files under ``hashrepro/papers/`` in long format, one file per
table (``<paper>_table<N>.csv``) with columns ``table, method, dataset, bits, metric, value,
note`` (``source`` is accepted as a synonym of ``table``). :func:`compare` joins a paper table with
run records: paper value, ours (mean ± sample std over seeds), number of seeds, delta.

Layout: this module holds the records themselves (:func:`make_record`, :func:`save_run`,
:func:`load_records`, ...); provenance (:func:`start_run`, :func:`git_state`,
:func:`reproduce_command`, :func:`provenance_status`) lives in :mod:`hashrepro.provenance`, the
paper tables and paper-vs-ours tables in :mod:`hashrepro.paper_vs_ours`, run names in
:mod:`hashrepro.run_names`; every public name is re-exported here.
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .atomic import atomic_write
from .jsonable import to_jsonable
# re-exported: the public names of the pieces that moved out of this module
from .paper_vs_ours import PAPERS_DIR, SCALES  # noqa: F401
from .paper_vs_ours import companion_column, compare, format_mean_std, paper_table, paper_tables, records_table
from .provenance import GIT_EXCLUDE  # noqa: F401
from .provenance import (PATCH_DIR, RunStart, _now, git_info, git_state, package_versions, provenance_status,
                         reproduce_command, start_run)
from .run_names import run_name

__all__ = [
    "SCHEMA",
    "REQUIRED_KEYS",
    "make_record",
    "run_name",
    "save_run",
    "load_run",
    "is_complete",
    "load_records",
    "paper_tables",
    "paper_table",
    "compare",
    "companion_column",
    "format_mean_std",
    "records_table",
    "git_info",
    "git_state",
    "RunStart",
    "start_run",
    "reproduce_command",
    "provenance_status",
    "package_versions",
    "to_jsonable",
]

SCHEMA = 1
#: Keys a record must have to count as complete (besides ``complete == True``).
REQUIRED_KEYS = ("schema", "paper", "method", "dataset", "bits", "seed", "scale", "config", "protocol",
                 "metrics", "complete")
_BASE_COLUMNS = ["paper", "method", "dataset", "bits", "seed", "scale", "device", "wall_time_s", "git_commit",
                 "git_dirty", "command", "started", "finished", "complete", "path", "record"]


# --------------------------------------------------------------------------- records
def _metric_float(name: str, v: Any) -> float:
    if v is None:
        return float("nan")
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, np.ndarray) and v.size == 1 and np.issubdtype(v.dtype, np.number):
        return float(v.reshape(()))
    if hasattr(v, "item") and type(v).__module__.startswith("torch") and getattr(v, "numel", lambda: 0)() == 1:
        return float(v.item())
    hint = (" (curves go in `curves`, protocol details in `protocol`)" if isinstance(v, (dict, list, tuple))
            else "")
    raise ValueError(f"metrics[{name!r}] must be a number, got {type(v).__name__}{hint}")


def make_record(paper: str, method: str, dataset: str, bits: int, seed: int, scale: str, config: Mapping,
                protocol: Mapping, metrics: Mapping, curves: Mapping | None, wall_time_s: float, device: str,
                command: str | None = None, *, started: RunStart | datetime | str | None = None,
                git: Mapping | None = None) -> dict:
    """Build a complete run record (see the module docstring for the schema).

    Parameters
    ----------
    paper, method, dataset : str
        Chapter (``"dnnh"``), method name as it appears in the paper tables (``"dnnh-dem"``),
        dataset registry name (``"cifar10"``).
    bits, seed : int
        Code length (0 when not applicable) and seed.
    scale : str
        ``"smoke"``, ``"default"`` or ``"paper"`` (other names are accepted).
    config, protocol : mapping
        All notebook parameters; the evaluation protocol (split sizes, topk, ties, empty,
        ranking, ...). Converted to plain JSON types.
    metrics : mapping name -> number
        Flat scalar metrics; numpy/torch scalars are converted to float, None to NaN. Anything
        else (a dict, a list) is an error: curves belong in ``curves``.
    curves : mapping name -> {column: list}
    wall_time_s : float
    device : str, e.g. ``hashrepro.train.describe_device(device)``
    command : str, optional, how to reproduce the run (default: :func:`reproduce_command` of
        ``paper`` and ``config``, when ``notebooks/<paper>.ipynb`` exists).
    started : :class:`RunStart` from :func:`start_run` (the recipes' way: the start time *and*
        the git state read at the start), or a datetime / ISO string (default: finished -
        wall_time_s).
    git : :func:`git_state` read at the start (when ``started`` is not a RunStart). Without
        either, the git state is read now and ``git_read_at`` is ``"finish"``, which
        :func:`provenance_status` does not trust.

    Returns
    -------
    dict with ``git_commit``, ``git_dirty``, ``git_diff_sha256``, ``git_patch`` (the diff text
    until :func:`save_run` writes it to a file), ``git_read_at``, ``versions``, ``started``,
    ``finished``, ``command`` filled and ``complete = True``.
    """
    for name, v in (("paper", paper), ("method", method), ("dataset", dataset), ("scale", scale)):
        if not isinstance(v, str) or not v:
            raise ValueError(f"{name} must be a non-empty string, got {v!r}")
    for name, v in (("bits", bits), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics must be a mapping name -> float, got {type(metrics).__name__}")
    for name, v in (("config", config), ("protocol", protocol)):
        if not isinstance(v, Mapping):
            raise ValueError(f"{name} must be a mapping, got {type(v).__name__}")
    try:
        wall = float(wall_time_s)
    except (TypeError, ValueError):
        raise ValueError(f"wall_time_s must be a number of seconds, got {wall_time_s!r}") from None
    if not wall >= 0:
        raise ValueError(f"wall_time_s must be >= 0, got {wall_time_s!r}")
    finished = _now()
    read_at = "start"
    if isinstance(started, RunStart):
        git = started.git if git is None else git
        started = started.started
    if git is None:
        git, read_at = git_state(), "finish"
    if command is None:
        try:
            command = reproduce_command(paper, config)
        except ValueError:  # no notebook for this paper (e.g. a test's toy paper)
            command = None
    if started is None:
        started_s = (finished - timedelta(seconds=wall)).isoformat(timespec="seconds")
    elif isinstance(started, datetime):
        started_s = started.isoformat(timespec="seconds")
    else:
        started_s = str(started)
    record = {
        "schema": SCHEMA,
        "paper": paper,
        "method": method,
        "dataset": dataset,
        "bits": int(bits),
        "seed": int(seed),
        "scale": scale,
        "config": to_jsonable(dict(config), "config"),
        "protocol": to_jsonable(dict(protocol), "protocol"),
        "metrics": {str(k): _metric_float(str(k), v) for k, v in metrics.items()},
        "curves": to_jsonable(dict(curves or {}), "curves"),
        "command": command,
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "git_diff_sha256": git.get("diff_sha256"),
        "git_patch": git.get("patch"),
        "git_read_at": read_at,
        "versions": package_versions(),
        "device": str(device),
        "wall_time_s": wall,
        "started": started_s,
        "finished": finished.isoformat(timespec="seconds"),
        "complete": True,
    }
    if git.get("source"):       # the tree was checked against a manifest, not by git (tree_manifest)
        record["git_source"] = git["source"]
    return record


_run_name = run_name  # save_run's parameter shadows the function


def _resolve(path: str | os.PathLike) -> Path:
    """Relative paths are taken from ``HASHREPRO_ROOT`` when set, else from the repository root
    (``hashrepro.paths.repo_root``) when running inside a checkout, else from the current
    directory (an installed package never writes into site-packages)."""
    p = Path(path)
    if p.is_absolute():
        return p
    if os.environ.get("HASHREPRO_ROOT"):
        return Path(os.environ["HASHREPRO_ROOT"]).resolve() / p
    from .paths import repo_root

    root = repo_root()
    if (root / "pyproject.toml").is_file() and (root / "hashrepro").is_dir():
        return root / p
    return Path.cwd() / p


def save_run(record: Mapping, results_dir: str | os.PathLike, run_name: str | None = None) -> Path:
    """Write ``record`` to ``results_dir/<paper>/<run_name>.json`` atomically; return the path.

    A record of a dirty tree carries its diff (``git_patch``, from :func:`make_record`); it is
    written once to ``results_dir/patches/<git_diff_sha256>.patch`` (the sweep's name for it) and
    the record keeps that path, relative to ``results_dir``, instead of the text.

    The JSON goes to a temporary file in the same folder, is flushed and fsync'ed, then renamed
    over the destination with ``os.replace`` (atomic on POSIX and Windows), so an interrupted
    write never leaves a partial ``.json``. ``run_name`` defaults to :func:`run_name` of the
    record's fields. A relative ``results_dir`` is taken from the repository root.
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"record must be a dict (from make_record), got {type(record).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"record lacks {missing}; build it with hashrepro.results.make_record")
    name = run_name or _run_name(record["method"], record["dataset"], record["bits"], record["seed"],
                                 record["scale"])
    name = str(name)
    if name.endswith(".json"):
        name = name[:-5]
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"run_name must be a plain file stem (no folders, not hidden), got {name!r}")
    folder = _resolve(results_dir) / str(record["paper"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    record = dict(record)
    patch = record.get("git_patch")
    if isinstance(patch, str) and not patch.startswith(PATCH_DIR + "/"):
        # the diff the run started with: one file per distinct diff, named by its hash
        digest = record.get("git_diff_sha256") or hashlib.sha256(
            patch.encode("utf-8", errors="surrogateescape")).hexdigest()
        record["git_diff_sha256"] = digest
        rel = f"{PATCH_DIR}/{digest}.patch"
        if not (folder.parent / rel).is_file():
            atomic_write(folder.parent / rel, patch)
        record["git_patch"] = rel
    atomic_write(path, json.dumps(to_jsonable(record), indent=1, sort_keys=False) + "\n")
    return path


def load_run(path: str | os.PathLike) -> dict:
    """Read one run record (raises on a missing or corrupt file; see :func:`is_complete`)."""
    with open(path, encoding="utf-8") as f:
        rec = json.load(f)
    if not isinstance(rec, dict):
        raise ValueError(f"{path}: not a run record (JSON {type(rec).__name__})")
    return rec


def is_complete(path: str | os.PathLike) -> bool:
    """True only for a readable JSON run record with ``complete == True`` and every required key.

    Missing, empty, truncated or otherwise corrupt files, temporary files and records of an
    interrupted run give False (never an exception).
    """
    try:
        rec = load_run(path)
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return rec.get("complete") is True and all(k in rec for k in REQUIRED_KEYS) and isinstance(
        rec.get("metrics"), dict)


def load_records(results_dir: str | os.PathLike, pattern: str = "**/*.json",
                 include_incomplete: bool = False) -> pd.DataFrame:
    """All run records under ``results_dir`` as a DataFrame, one row per record.

    Columns: ``paper, method, dataset, bits, seed, scale, device, wall_time_s, git_commit,
    git_dirty, command, started, finished, complete, path, record`` (the whole record as a dict),
    then ``metrics.<name>`` for every metric, and ``protocol.<key>`` / ``config.<key>`` for their
    scalar entries. Rows are sorted by paper, method, dataset, bits, seed. Incomplete or corrupt
    files are skipped (their number is in ``df.attrs["skipped"]``) unless ``include_incomplete``
    (then readable incomplete records are kept with ``complete`` False). A missing folder gives an
    empty frame with the base columns.
    """
    root = _resolve(results_dir)
    rows, skipped = [], 0
    files = sorted(p for p in root.glob(pattern) if p.is_file() and not p.name.startswith(".")) \
        if root.is_dir() else []
    for p in files:
        ok = is_complete(p)
        if not ok:
            if not include_incomplete:
                skipped += 1
                continue
            try:
                rec = load_run(p)
            except (OSError, ValueError, UnicodeDecodeError):
                skipped += 1
                continue
        else:
            rec = load_run(p)
        row = {c: rec.get(c) for c in _BASE_COLUMNS if c not in ("path", "record")}
        row["complete"] = ok
        row["path"] = str(p)
        row["record"] = rec
        for k, v in (rec.get("metrics") or {}).items():
            row[f"metrics.{k}"] = float("nan") if v is None else v
        for section in ("protocol", "config"):
            for k, v in (rec.get(section) or {}).items():
                if v is None or isinstance(v, (bool, int, float, str)):
                    row[f"{section}.{k}"] = v
        rows.append(row)
    if not rows:
        df = pd.DataFrame(columns=_BASE_COLUMNS)
    else:
        df = pd.DataFrame(rows)
        front = [c for c in _BASE_COLUMNS if c != "record"]
        metric_cols = sorted(c for c in df.columns if c.startswith("metrics."))
        other = sorted(c for c in df.columns if c not in front and c not in metric_cols and c != "record")
        df = df[front + metric_cols + other + ["record"]]
        df = df.sort_values(["paper", "method", "dataset", "bits", "seed"], kind="stable").reset_index(drop=True)
    df.attrs["skipped"] = skipped
    return df

