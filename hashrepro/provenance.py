"""Provenance of a run: the code it started from, how to rerun it, the package versions.

:func:`start_run` (first thing in a recipe's ``run``) reads :func:`git_state` when the run *starts*;
:func:`hashrepro.results.make_record` stores it. :func:`reproduce_command` rebuilds the papermill
command of a chapter notebook from a run's parameters; :func:`provenance_status` tells clean,
dirty (diff saved) and legacy records apart. Everything here is re-exported by
:mod:`hashrepro.results`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from .jsonable import to_jsonable

__all__ = ["GIT_EXCLUDE", "PATCH_DIR", "git_info", "git_state", "RunStart", "start_run", "reproduce_command",
           "provenance_status", "package_versions"]

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


def _now() -> datetime:
    return datetime.now(timezone.utc)


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
    None outside a git work tree or without git. When ``$HASHREPRO_TREE_MANIFEST`` names a
    manifest of the tree (:mod:`hashrepro.tree_manifest`), git is not asked at all: the copy is
    checked file by file against the manifest and the answer has ``"source": "manifest"`` (a GPU
    machine's copy can hold a stale ``.git`` -- seen on 2026-11-30: a snapshot of an older commit,
    against which git called the committed tree dirty). ``path``: a folder inside the checkout
    (default: the checkout holding this package).
    """
    where = str(path or _repo_dir())
    none = {"commit": None, "dirty": None, "diff_sha256": None, "patch": None}
    manifest = _manifest_state(where, exclude)
    if manifest is not None:
        return manifest
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


def _manifest_state(where: str, exclude: Iterable[str]) -> dict | None:
    """The tree checked against the manifest named by ``$HASHREPRO_TREE_MANIFEST``
    (:mod:`hashrepro.tree_manifest`; a GPU machine's copy of the tree), or None when it is unset."""
    from .tree_manifest import MANIFEST_ENV, verify_manifest

    manifest = os.environ.get(MANIFEST_ENV)
    if not manifest:
        return None
    return verify_manifest(manifest, _repo_dir() if where is None else where, exclude)


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


def parameters_cell_defaults(source: str, non_literal: str = "source") -> dict:
    """Names and default values assigned in a notebook's ``parameters`` cell ``source``, read with
    ``ast`` (no papermill import). The one parser of parameters cells (commands, run titles).

    ``non_literal``: ``"source"`` keeps a value that is not a literal as its source text,
    ``"skip"`` leaves its name out. Private names (``_declared = dict(globals())``, the snapshot
    the parameter check compares against) are not parameters and are left out. A cell that does
    not parse gives ``{}``.
    """
    import ast

    if non_literal not in ("source", "skip"):
        raise ValueError(f"non_literal must be 'source' or 'skip', got {non_literal!r}")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and not node.targets[0].id.startswith("_")):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                if non_literal == "source":
                    out[node.targets[0].id] = ast.get_source_segment(source, node.value)
    return out


@functools.lru_cache(maxsize=8)
def _notebook_defaults(path: str, mtime: float) -> dict:
    """:func:`parameters_cell_defaults` of the notebook file at ``path`` (cached per modification time)."""
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in (cell.get("metadata", {}).get("tags") or []):
            return parameters_cell_defaults("".join(cell.get("source", [])))
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

