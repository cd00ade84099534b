"""Archives, checksums and the on-disk cache of decoded arrays.

- :func:`verify` checks a file against ``SHA256SUMS`` (``<sha256>  <relative path>`` lines, as
  ``sha256sum`` writes them) found in the data root or beside the file. A verified hash is
  remembered in ``<cache>/checksums.json`` keyed by path, size and mtime, so a file is hashed once.
- :func:`extract_once` unpacks a ``.tar.gz``/``.tgz``/``.tar``/``.zip`` into the cache, atomically
  (into a temporary folder, then ``os.replace``), so concurrent loaders never see half a tree.
- :class:`ArrayCache` stores decoded arrays as ``.npy`` files, written atomically, with a
  ``complete.json`` marker written last.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from .base import ChecksumError

__all__ = ["sha256sum", "read_sha256sums", "verify", "fingerprint", "extract_once",
           "ArrayCache", "atomic_write_bytes"]


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def read_sha256sums(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``SHA256SUMS`` file into ``{relative path: hex digest}`` (missing file: {})."""
    out: dict[str, str] = {}
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            continue
        digest, rel = parts
        out[rel.lstrip("*").strip().replace("\\", "/")] = digest.lower()
    return out


def fingerprint(*paths: str | os.PathLike) -> str:
    """Cheap identity of files: 16 hex chars of a hash over (absolute path, size, mtime_ns)."""
    h = hashlib.sha1()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _expected_digest(path: Path, data_root: Path | None) -> str | None:
    """Look the file up in ``<data_root>/SHA256SUMS`` and in ``SHA256SUMS`` beside it."""
    path = path.resolve()
    cands = []
    if data_root is not None:
        cands.append(Path(data_root).resolve())
    cands.append(path.parent)
    for base in cands:
        sums = read_sha256sums(base / "SHA256SUMS")
        if not sums:
            continue
        try:
            rel = path.relative_to(base).as_posix()
        except ValueError:
            continue
        if rel in sums:
            return sums[rel]
    return None


def verify(path: str | os.PathLike, data_root: str | os.PathLike | None,
           cache: str | os.PathLike | None = None) -> str | None:
    """Verify ``path`` against the SHA-256 listed for it in ``SHA256SUMS``.

    Returns the verified hex digest, or None when no checksum is known for the file.
    Raises :class:`ChecksumError` on a mismatch. With ``cache`` given, a successful check is
    remembered in ``<cache>/checksums.json`` (keyed by path, size and mtime).
    """
    path = Path(path)
    expected = _expected_digest(path, Path(data_root) if data_root is not None else None)
    if expected is None:
        return None
    stamp_file = Path(cache) / "checksums.json" if cache is not None else None
    key = fingerprint(path)
    stamps: dict = {}
    if stamp_file is not None and stamp_file.is_file():
        try:
            stamps = json.loads(stamp_file.read_text())
        except (OSError, ValueError):
            stamps = {}
        if stamps.get(key) == expected:
            return expected
    got = sha256sum(path)
    if got != expected:
        raise ChecksumError(
            f"SHA-256 mismatch for {path}: expected {expected} (from SHA256SUMS), got {got}. "
            "The file is corrupt or a different version; re-obtain it (see data/README.md) "
            "or pass verify=False to skip the check.")
    if stamp_file is not None:
        stamps[key] = got
        try:
            atomic_write_bytes(stamp_file, json.dumps(stamps, indent=1, sort_keys=True).encode())
        except OSError:
            pass
    return got


def _safe_members(tf: tarfile.TarFile, dest: Path):
    dest = dest.resolve()
    for m in tf.getmembers():
        target = (dest / m.name).resolve()
        if not str(target).startswith(str(dest)) or m.issym() or m.islnk() or m.isdev():
            raise ValueError(f"refusing to extract unsafe archive member {m.name!r}")
        yield m


def _extract(archive: Path, dest: Path) -> None:
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for n in zf.namelist():
                target = (dest / n).resolve()
                if not str(target).startswith(str(dest.resolve())):
                    raise ValueError(f"refusing to extract unsafe archive member {n!r}")
            zf.extractall(dest)
        return
    with tarfile.open(archive, "r:*") as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            tf.extractall(dest, members=list(_safe_members(tf, dest)))


def extract_once(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract ``archive`` into folder ``dest`` unless a complete extraction is already there.

    The tree is unpacked into a temporary sibling folder, marked with ``.complete``, then
    renamed to ``dest``: an interrupted or concurrent extraction never leaves a half tree.

    Returns ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    if (dest / ".complete").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _extract(archive, tmp)
        (tmp / ".complete").write_text(f"{archive}\n")
        if dest.exists() and not (dest / ".complete").is_file():
            shutil.rmtree(dest, ignore_errors=True)  # stale, incomplete
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / ".complete").is_file():  # pragma: no cover
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


class ArrayCache:
    """A folder of ``<name>.npy`` arrays plus ``complete.json`` (written last).

    >>> c = ArrayCache(folder)                                     # doctest: +SKIP
    >>> arrays = c.load() or c.save({"images": x, "labels": y}, info={...})  # doctest: +SKIP
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @property
    def marker(self) -> Path:
        return self.folder / "complete.json"

    def exists(self) -> bool:
        return self.marker.is_file()

    def info(self) -> dict:
        return json.loads(self.marker.read_text()) if self.exists() else {}

    def load(self, mmap_mode: str | None = None) -> dict[str, np.ndarray] | None:
        """The cached arrays, or None when the cache is missing or incomplete."""
        if not self.exists():
            return None
        try:
            names = self.info()["arrays"]
            return {n: np.load(self.folder / f"{n}.npy", mmap_mode=mmap_mode, allow_pickle=False)
                    for n in names}
        except (OSError, ValueError, KeyError):
            return None

    def save(self, arrays: Mapping[str, np.ndarray], info: dict | None = None) -> dict[str, np.ndarray]:
        """Write every array atomically, then the marker. Returns ``arrays``.

        A cache folder that cannot be written (read-only) is silently skipped."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for n, a in arrays.items():
                fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{n}.", suffix=".npy")
                try:
                    with os.fdopen(fd, "wb") as f:
                        np.save(f, np.asarray(a), allow_pickle=False)
                    os.replace(tmp, self.folder / f"{n}.npy")
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            meta = dict(info or {})
            meta["arrays"] = list(arrays)
            atomic_write_bytes(self.marker, json.dumps(meta, indent=1, default=str).encode())
        except OSError:
            pass
        return dict(arrays)
