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
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import re
import subprocess
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

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
#: Scales in order of faithfulness; :func:`compare` prefers the first one present.
SCALES = ("paper", "default", "smoke")
PAPERS_DIR = Path(__file__).resolve().parent / "papers"
_BASE_COLUMNS = ["paper", "method", "dataset", "bits", "seed", "scale", "device", "wall_time_s", "git_commit",
                 "git_dirty", "command", "started", "finished", "complete", "path", "record"]
#: Paths left out of the code diff: run outputs, which a sweep writes while it runs.
GIT_EXCLUDE = ("results", "book/runs")
#: Notebook parameters that never go into a rebuilt command (where outputs go, which device).
_COMMAND_SKIP = ("results_dir", "run_name", "device")
#: Notebook parameters always written into a rebuilt command, in this order.
_COMMAND_FIRST = ("dataset", "bits", "seed", "scale")
#: Folder (inside ``<results_dir>/``) of the diffs that dirty runs started from.
PATCH_DIR = "patches"
_VERSION_PACKAGES = {"numpy": "numpy", "torch": "torch", "torchvision": "torchvision", "scipy": "scipy",
                     "pandas": "pandas", "scikit-learn": "scikit-learn", "faiss": "faiss-cpu"}


# --------------------------------------------------------------------------- provenance
def _repo_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def git_info(path: str | os.PathLike | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding ``path``
    (default: the checkout holding this package).

    ``dirty`` is True when tracked files differ from the commit (untracked files are ignored).
    Both are None when the package is not inside a git work tree or git is missing.
    """
    where = str(path or _repo_dir())
    try:
        sha = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=20, check=False)
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        st = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=60, check=False)
        dirty = bool(st.stdout.strip()) if st.returncode == 0 else None
        return {"commit": sha.stdout.strip() or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def git_state(path: str | os.PathLike | None = None, exclude: Iterable[str] = GIT_EXCLUDE) -> dict:
    """The code a run is about to use: ``{"commit", "dirty", "diff_sha256", "patch"}``.

    ``commit`` is ``HEAD``; ``patch`` is the text of ``git diff HEAD`` (tracked files, binary
    changes included, the run outputs in ``exclude`` left out; untracked files are not part of
    it) when that diff is not empty, else None; ``dirty`` is ``patch is not None``;
    ``diff_sha256`` the hex SHA-256 of the patch's UTF-8 bytes (None when clean). Everything is
    None outside a git work tree or without git. ``path``: a folder inside the checkout
    (default: the checkout holding this package).
    """
    where = str(path or _repo_dir())
    none = {"commit": None, "dirty": None, "diff_sha256": None, "patch": None}
    try:
        sha = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=20, check=False)
        if sha.returncode != 0 or not sha.stdout.strip():
            return none
        top = subprocess.run(["git", "-C", where, "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                             timeout=20, check=False).stdout.strip() or where
        spec = ["--", "."] + [f":(exclude){e}" for e in exclude]
        diff = subprocess.run(["git", "-C", top, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", *spec],
                              capture_output=True, timeout=120, check=False)
        if diff.returncode != 0:
            return {**none, "commit": sha.stdout.strip()}
        patch = diff.stdout.decode("utf-8", errors="surrogateescape")
    except (OSError, subprocess.SubprocessError):
        return none
    if not patch.strip():
        return {"commit": sha.stdout.strip(), "dirty": False, "diff_sha256": None, "patch": None}
    digest = hashlib.sha256(patch.encode("utf-8", errors="surrogateescape")).hexdigest()
    return {"commit": sha.stdout.strip(), "dirty": True, "diff_sha256": digest, "patch": patch}


@dataclasses.dataclass(frozen=True)
class RunStart:
    """When a run started and the code it started with (:func:`start_run`).

    ``started``: ISO time (UTC, seconds); ``git``: :func:`git_state` read at that moment.
    Pass it to :func:`make_record` as ``started=``.
    """

    started: str
    git: dict = dataclasses.field(repr=False)

    @property
    def commit(self) -> str | None:
        return self.git.get("commit")

    @property
    def dirty(self) -> bool | None:
        return self.git.get("dirty")


def start_run(path: str | os.PathLike | None = None) -> RunStart:
    """Call first thing in a recipe's ``run``: the start time and :func:`git_state` now, so the
    record names the code the run started with, not the commit at the time it was written."""
    return RunStart(started=_now().isoformat(timespec="seconds"), git=git_state(path))


@functools.lru_cache(maxsize=8)
def _notebook_defaults(path: str, mtime: float) -> dict:
    """Names and default values of a notebook's ``parameters`` cell, read with ``ast`` (no
    papermill import). Values that are not literals are kept as their source text."""
    import ast

    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in (cell.get("metadata", {}).get("tags") or []):
            src = "".join(cell.get("source", []))
            out = {}
            for node in ast.parse(src).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        out[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        out[node.targets[0].id] = ast.get_source_segment(src, node.value)
            return out
    raise ValueError(f"{path} has no cell tagged 'parameters'")


def _command_part(name: str, v: Any) -> str:
    """One papermill parameter: ``-p name value`` for scalars, ``-y '{"name": value}'`` otherwise."""
    import shlex

    if v is None or isinstance(v, (bool, int, float, str)):
        return f"-p {name} {shlex.quote(repr(v) if isinstance(v, float) else str(v))}"
    return "-y " + shlex.quote(json.dumps({name: to_jsonable(v)}))


def reproduce_command(paper: str, parameters: Mapping, notebook: str | os.PathLike | None = None) -> str:
    """The papermill command that reruns a chapter notebook with these parameters.

    ``parameters`` may be the notebook parameters themselves (what a sweep passes) or a run's
    whole ``config``: only names declared in ``notebooks/<paper>.ipynb``'s parameters cell are
    used; ``dataset``, ``bits``, ``seed``, ``scale`` always, every other one when its value differs
    from the notebook's default (``results_dir``, ``run_name`` and ``device`` never). Scalars go
    as ``-p name value``, lists and dicts as ``-y '{"name": ...}'``. A paper without a notebook
    raises ValueError naming the notebooks that exist.

    >>> reproduce_command("dnnh", {"dataset": "cifar10", "bits": 12, "seed": 0, "scale": "default",
    ...                            "variant": "fc", "lr": 0.03})                      # doctest: +SKIP
    'papermill notebooks/dnnh.ipynb out.ipynb -p dataset cifar10 -p bits 12 -p seed 0 -p scale default -p variant fc'
    """
    from .paths import notebooks_root

    nb = Path(notebook) if notebook is not None else notebooks_root() / f"{paper}.ipynb"
    if not nb.is_file():
        known = sorted(p.stem for p in nb.parent.glob("*.ipynb"))
        raise ValueError(f"no notebook {nb} for paper {paper!r}; notebooks: {', '.join(known) or '(none)'}")
    defaults = _notebook_defaults(str(nb), nb.stat().st_mtime)
    names = [n for n in _COMMAND_FIRST if n in defaults] + [n for n in defaults if n not in _COMMAND_FIRST]
    parts = ["papermill", f"notebooks/{nb.name}", "out.ipynb"]
    for name in names:
        if name in _COMMAND_SKIP or name not in parameters:
            continue
        v = to_jsonable(parameters[name])
        if name not in _COMMAND_FIRST and v == to_jsonable(defaults[name]):
            continue
        parts.append(_command_part(name, v))
    return " ".join(parts)


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        t = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@functools.lru_cache(maxsize=4096)
def _commit_time(sha: str, where: str) -> datetime | None:
    """Committer time of ``sha`` in the checkout at ``where`` (None when unknown)."""
    try:
        out = subprocess.run(["git", "-C", where, "show", "-s", "--format=%cI", sha], capture_output=True,
                             text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return _as_time(out.stdout.strip()) if out.returncode == 0 else None


def provenance_status(record: Mapping, commit_time=None) -> str:
    """How well a record is tied to its code: ``"clean"``, ``"dirty: patch <sha12>"`` or
    ``"legacy: <reasons>"``.

    *clean*: a command, a known commit and a clean tree, with the commit read at the start of the
    run (or, for records made before that, a commit older than the run's start). *dirty*: the
    same, but the tree differed from the commit and the diff was saved (its hash names it).
    *legacy* (records made before runs were tied to their code), with every reason that applies:
    ``no command``; ``commit unknown``; ``dirty tree without a saved diff``; ``commit made after the
    run started`` (the commit was read when the record was written, after a later commit).
    ``commit_time``: callable sha -> datetime or None (default: ``git show`` in this checkout,
    cached); where it is unknown, an old-style record counts as ``commit time unknown``.
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"record must be a run record (dict), got {type(record).__name__}")
    reasons = []
    if not record.get("command"):
        reasons.append("no command")
    commit = record.get("git_commit")
    dirty = record.get("git_dirty")
    digest = record.get("git_diff_sha256")
    if not commit:
        reasons.append("commit unknown")
    if dirty is None and commit:
        reasons.append("tree state unknown")
    if dirty and not digest:
        reasons.append("dirty tree without a saved diff")
    if commit and record.get("git_read_at") != "start":
        lookup = commit_time or (lambda sha: _commit_time(sha, str(_repo_dir())))
        ct, st = lookup(commit), _as_time(record.get("started"))
        if ct is None or st is None:
            reasons.append("commit time unknown")
        elif ct > st:
            reasons.append("commit made after the run started")
    if reasons:
        return "legacy: " + ", ".join(reasons)
    if dirty:
        return f"dirty: patch {str(digest)[:12]}"
    return "clean"


def package_versions() -> dict:
    """Versions of Python, hashrepro and the main dependencies (None when not installed).

    Read from the installed distributions' metadata, so nothing heavy (torch) is imported.
    """
    from .version import __version__

    out = {"python": platform.python_version(), "hashrepro": __version__}
    for name, dist in _VERSION_PACKAGES.items():
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# --------------------------------------------------------------------------- JSON helpers
def to_jsonable(obj: Any, _where: str = "value") -> Any:
    """Convert ``obj`` to plain JSON types: numpy arrays/scalars, tuples, sets, paths, dataclasses,
    torch tensors and devices are converted; other objects become ``str(obj)``.

    Non-finite floats are kept (written as ``NaN``/``Infinity``, which Python's json reads back).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, f"{_where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{_where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return [to_jsonable(v, _where) for v in sorted(obj, key=repr)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj), _where)
    mod = type(obj).__module__
    if mod.startswith("torch"):
        if hasattr(obj, "detach"):
            return obj.detach().cpu().numpy().tolist()
        return str(obj)
    return str(obj)


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


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- records
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
    return {
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


def _fmt_part(value: Any) -> str:
    if isinstance(value, float):
        s = f"{value:g}"
    else:
        s = str(value)
    return re.sub(r"[^A-Za-z0-9.+=-]+", "-", s).strip("-") or "x"


def run_name(method: str, dataset: str, bits: int, seed: int, scale: str, **extra: Any) -> str:
    """Deterministic file stem of a run: ``<method>_<dataset>_<bits>b_seed<seed>_<scale>``, then
    ``_<key>-<value>`` for each extra parameter in sorted key order (as ``hashrepro.sweep`` does).

    >>> run_name("dnnh-dem", "cifar10", 48, 0, "default")
    'dnnh-dem_cifar10_48b_seed0_default'
    >>> run_name("mch-dch", "mosaic", 32, 1, "smoke", sigma=0.5)
    'mch-dch_mosaic_32b_seed1_smoke_sigma-0.5'
    """
    parts = [_fmt_part(method), _fmt_part(dataset), f"{int(bits)}b", f"seed{int(seed)}", _fmt_part(scale)]
    parts += [f"{_fmt_part(k)}-{_fmt_part(extra[k])}" for k in sorted(extra)]
    return "_".join(parts)


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
            _atomic_write_text(folder.parent / rel, patch)
        record["git_patch"] = rel
    _atomic_write_text(path, json.dumps(to_jsonable(record), indent=1, sort_keys=False) + "\n")
    return path


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`hashrepro.atomic.atomic_write`)."""
    from .atomic import atomic_write
    atomic_write(path, text)


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
