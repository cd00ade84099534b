"""Where datasets and their caches live.

Data root (where the raw, official files are read from), in order:

1. the ``root`` argument of :func:`hashrepro.data.load`;
2. the ``HASHREPRO_DATA`` environment variable (CI points it at ``../shared/datasets``);
3. ``<repo>/data`` where ``<repo>`` is the checkout holding ``pyproject.toml`` and
   ``hashrepro/`` (searched upwards from the current directory, then beside the installed
   package), so notebooks run from ``book/`` or ``notebooks/`` find the same folder;
4. ``./data`` relative to the current directory when no checkout is found (a wheel install).

Cache root (extracted archives, decoded ``.npy`` arrays, checksum stamps), in order:

1. ``HASHREPRO_CACHE``;
2. ``<data root>/cache`` when it can be created and written;
3. ``$XDG_CACHE_HOME/hashrepro`` or ``~/.cache/hashrepro`` (the data root may be a read-only
   mount, as ``../shared/datasets`` is in CI).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "cache_root", "repo_root_or_none", "is_writable"]


def repo_root_or_none() -> Path | None:
    """The project checkout (folder with ``pyproject.toml`` and ``hashrepro/``), or None."""
    from ..paths import repo_root

    root = repo_root()
    if (root / "pyproject.toml").is_file() and (root / "hashrepro").is_dir():
        return root
    return None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: ``root`` > ``$HASHREPRO_DATA`` > ``<repo>/data`` > ``./data``."""
    if root is not None:
        return Path(root).expanduser().resolve()
    env = os.environ.get("HASHREPRO_DATA")
    if env:
        return Path(env).expanduser().resolve()
    repo = repo_root_or_none()
    return (repo / "data") if repo is not None else (Path.cwd() / "data").resolve()


def is_writable(path: Path) -> bool:
    """Whether we may write into the existing folder ``path``.

    Stricter than ``os.access``: a folder whose mode has no write bit (``dr-xr-xr-x``, as the
    ``../shared/datasets`` mirror) or that sits on a read-only mount counts as read-only even
    for root, who could otherwise write there."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not st.st_mode & 0o222:
        return False
    try:
        if os.statvfs(path).f_flag & getattr(os, "ST_RDONLY", 1):
            return False
    except (OSError, AttributeError):
        pass
    return os.access(path, os.W_OK | os.X_OK)


def _usable_cache(droot: Path) -> Path | None:
    """``<droot>/cache`` when it exists and is writable, or can be created in a writable root."""
    cand = droot / "cache"
    if cand.is_dir():
        return cand if is_writable(cand) else None
    if droot.is_dir() and is_writable(droot):
        try:
            cand.mkdir(exist_ok=True)
            return cand
        except OSError:
            return None
    return None


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve (and create) the cache root: ``$HASHREPRO_CACHE`` > ``<data root>/cache`` >
    ``~/.cache/hashrepro`` (used when the data root is read-only)."""
    env = os.environ.get("HASHREPRO_CACHE")
    if env:
        p = Path(env).expanduser().resolve()
        p.mkdir(parents=True, exist_ok=True)
        return p
    cand = _usable_cache(data_root(root))
    if cand is not None:
        return cand
    xdg = os.environ.get("XDG_CACHE_HOME")
    fallback = (Path(xdg) if xdg else Path.home() / ".cache") / "hashrepro"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback
