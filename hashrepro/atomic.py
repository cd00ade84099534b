"""One atomic writer for every file the project writes (records, patches, notebooks, caches).

:func:`atomic_write` writes to a temporary file in the target's folder, flushes and fsyncs it,
then ``os.replace``s it onto the target (readers see the old file or the new one, never a half
one) and, best effort, fsyncs the folder so that the rename survives a crash. The folder is
created when missing. ``data``: ``str`` (UTF-8, surrogates kept) or ``bytes``; or a callable
that writes into the open binary file (e.g. ``lambda f: np.save(f, arr)``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, data: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (best effort; not available on every platform)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path
