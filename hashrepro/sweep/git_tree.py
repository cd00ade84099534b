"""Records tied to code: a sweep refuses a dirty git tree unless told otherwise (:func:`check_git_tree`)."""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Iterable

from ..atomic import atomic_write
from .errors import SweepError

__all__ = ["check_git_tree"]


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)


def _git_state(root: Path) -> dict:
    """``hashrepro.results.git_state`` when the package has it, else the same fields from git here:
    ``{"commit", "dirty", "diff_sha256", "patch"}`` (all None outside a git work tree)."""
    try:
        from ..results import git_state
    except ImportError:
        git_state = None
    if git_state is not None:
        return dict(git_state(root))
    none = {"commit": None, "dirty": None, "diff_sha256": None, "patch": None}
    try:
        head = _git(root, "rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return none
    if head.returncode != 0:
        return none
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    patch = _git(root, "diff", "HEAD", "--binary").stdout if dirty else None
    return {"commit": head.stdout.strip(), "dirty": dirty,
            "diff_sha256": hashlib.sha256(patch.encode()).hexdigest() if patch else None, "patch": patch}


def check_git_tree(root: Path, allow_dirty: bool = False, results_dirs: Iterable[str] = ("results",)) -> dict:
    """Refuse a git tree with uncommitted changes to tracked files unless ``allow_dirty``.

    Returns the git state (``commit``, ``dirty``, ``diff_sha256``, ``patch``). With
    ``allow_dirty`` and a dirty tree the diff is saved as ``<results_dir>/patches/<diff_sha256>.patch``
    under each results folder, the name the run records give as their ``diff_sha256``.
    Raises :class:`SweepError` (one line: what is dirty and how to go on) otherwise.
    Outside a git work tree nothing is checked.
    """
    state = _git_state(root)
    if not state.get("dirty"):
        return state
    if not allow_dirty:
        files = re.findall(r"^diff --git a/(.+?) b/", state.get("patch") or "", flags=re.M)
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        raise SweepError(
            f"refusing to sweep: the git tree {root} has uncommitted changes"
            + (f" to {len(files)} tracked file(s) ({shown})" if files else "")
            + "; commit them so that the records name the code they ran, or pass --allow-dirty "
              "to run anyway and save the diff as <results_dir>/patches/<sha256>.patch")
    patch, sha = state.get("patch"), state.get("diff_sha256")
    if patch and sha:
        for rd in sorted(set(results_dirs)):
            target = root / rd / "patches" / f"{sha}.patch"
            if not target.is_file():
                atomic_write(target, patch)
    return state
