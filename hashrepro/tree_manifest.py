"""Tie a run to its commit where the checkout has no ``.git``: a manifest of the committed tree.

A GPU machine gets a copy of the working tree whose ``.git`` cannot be trusted (none, or -- seen
on 2026-11-30 -- a snapshot of the commit the session started from, so git compared the tree with
an older commit and called it dirty), and run outputs are left behind to keep the copy small; so
with ``HASHREPRO_TREE_MANIFEST`` set, :func:`hashrepro.provenance.git_state` does not ask git. Instead, here, from a clean checkout::

    python -m hashrepro.tree_manifest write .devcarry/manifest.json

writes ``{"commit": HEAD, "files": {path: [mode, blob sha-1]}}`` from ``git ls-files -s`` (refused
when the tree is dirty). There, with ``HASHREPRO_TREE_MANIFEST`` pointing at that file,
:func:`verify_manifest` re-hashes every listed file of the copy the way git does
(``sha1(b"blob <size>\\0" + content)``; a symbolic link hashes its target) and reports the tree as
clean only when every file outside :data:`hashrepro.provenance.GIT_EXCLUDE` (the run outputs, left
out of the dirty check everywhere) matches. A mismatch makes the run dirty, and its "patch" lists
the changed and missing paths (not a diff: the old contents are not there). Files not in the
manifest are untracked and ignored, as ``git status --untracked-files=no`` ignores them.

    python -m hashrepro.tree_manifest verify .devcarry/manifest.json   # prints clean / dirty
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

__all__ = ["MANIFEST_ENV", "blob_sha1", "write_manifest", "verify_manifest", "main"]

#: Environment variable naming the manifest that :func:`hashrepro.provenance.git_state` falls back to.
MANIFEST_ENV = "HASHREPRO_TREE_MANIFEST"
_SYMLINK = "120000"
_GITLINK = "160000"


def blob_sha1(path: str | os.PathLike, mode: str = "100644") -> str:
    """Git's blob id of the file at ``path`` (mode ``120000``: of the link's target text)."""
    p = Path(path)
    data = os.readlink(p).encode("utf-8", errors="surrogateescape") if mode == _SYMLINK else p.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _excluded(rel: str, exclude: Iterable[str]) -> bool:
    return any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude)


def write_manifest(out: str | os.PathLike, repo: str | os.PathLike | None = None) -> dict:
    """Write the manifest of ``repo``'s ``HEAD`` (default: the checkout holding this package) to
    ``out`` (atomic) and return it. Raises ValueError when the tree is dirty (tracked files differ
    from ``HEAD`` outside the run outputs) or ``repo`` is not a git checkout."""
    from .atomic import atomic_write
    from .provenance import _repo_dir, git_state

    where = str(repo or _repo_dir())
    state = git_state(where)
    if not state.get("commit"):
        raise ValueError(f"{where} is not a git checkout (or git is missing): no commit to write a manifest of")
    if state.get("dirty"):
        raise ValueError(f"the tree at {where} is dirty; commit first (a manifest names a commit's tree)")
    top = subprocess.run(["git", "-C", where, "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                         check=True).stdout.strip()
    ls = subprocess.run(["git", "-C", top, "ls-files", "-s", "-z"], capture_output=True, check=True).stdout
    files = {}
    for entry in ls.decode("utf-8", errors="surrogateescape").split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, sha, _stage = meta.split()
        if mode != _GITLINK:
            files[path] = [mode, sha]
    manifest = {"commit": state["commit"], "files": files}
    atomic_write(Path(out), json.dumps(manifest, indent=0, sort_keys=True))
    return manifest


def verify_manifest(manifest_path: str | os.PathLike, root: str | os.PathLike,
                    exclude: Iterable[str] | None = None) -> dict:
    """:func:`hashrepro.provenance.git_state`'s answer for the copy at ``root``, from the manifest:
    ``{"commit", "dirty", "diff_sha256", "patch", "source": "manifest"}``; ``patch`` lists the
    changed / missing paths when dirty (its SHA-256 is ``diff_sha256``)."""
    from .provenance import GIT_EXCLUDE

    exclude = tuple(GIT_EXCLUDE if exclude is None else exclude)
    manifest = json.loads(Path(manifest_path).read_text())
    root = Path(root)
    problems = []
    for rel, (mode, sha) in sorted(manifest["files"].items()):
        if _excluded(rel, exclude):
            continue
        p = root / rel
        if not (p.is_symlink() or p.exists()):
            problems.append(f"missing: {rel}")
        elif blob_sha1(p, mode) != sha:
            problems.append(f"changed: {rel}")
    if not problems:
        return {"commit": manifest["commit"], "dirty": False, "diff_sha256": None, "patch": None, "source": "manifest"}
    patch = "# tree differs from the manifest of " + manifest["commit"] + "\n" + "\n".join(problems) + "\n"
    return {"commit": manifest["commit"], "dirty": True, "source": "manifest",
            "diff_sha256": hashlib.sha256(patch.encode("utf-8", errors="surrogateescape")).hexdigest(),
            "patch": patch}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .provenance import _repo_dir

    ap = argparse.ArgumentParser(prog="python -m hashrepro.tree_manifest", description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("write", "verify"))
    ap.add_argument("manifest", help="the manifest JSON file")
    ap.add_argument("--root", default=None, help="checkout to write from / verify (default: this package's)")
    a = ap.parse_args(argv)
    try:
        if a.action == "write":
            m = write_manifest(a.manifest, a.root)
            print(f"manifest of {m['commit']} ({len(m['files'])} files) -> {a.manifest}")
            return 0
        v = verify_manifest(a.manifest, a.root or _repo_dir())
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'dirty' if v['dirty'] else 'clean'}: {v['commit']}" + (f"\n{v['patch']}" if v["dirty"] else ""))
    return 1 if v["dirty"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
