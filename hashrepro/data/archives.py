"""Archives, checksums and the on-disk cache of decoded arrays.

- :func:`verify` checks a file against ``SHA256SUMS`` (``<sha256>  <relative path>`` lines, as
  ``sha256sum`` writes them) found in the data root or beside the file. A verified hash is
  remembered in ``<cache>/checksums.json`` keyed by path, size and mtime, so a file is hashed once.
- :func:`extract_once` unpacks a ``.tar.gz``/``.tgz``/``.tar``/``.zip`` into the cache, atomically
  (into a temporary folder, then ``os.replace``), so concurrent loaders never see half a tree.
- :class:`ArrayCache` stores decoded arrays as ``.npy`` files, written atomically, with a
  ``complete.json`` marker written last.
- :func:`open_tar_stream` reads a (gzipped) tar in one pass and, at the end, makes sure the gzip
  stream was complete (a truncated ``.tar.gz`` otherwise reads as a shorter, valid-looking tar).

Verification before caching: a loader verifies its source (the SHA-256 from ``SHA256SUMS`` when
one is listed; otherwise a complete gzip stream, the expected member count and a decode of every
member) *before* it writes a cache, and records in the cache what it was built from
(:func:`source_stamp`: path, size, mtime; the verified SHA-256; :data:`VERIFIED`). A cache whose
record does not match the source as it is now (changed file, a checksum that appeared or changed
since, or a cache written before verification existed) is rebuilt, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import uuid
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from ..atomic import atomic_write
from .base import ChecksumError, CorruptDataError

__all__ = ["sha256sum", "read_sha256sums", "verify", "fingerprint", "extract_once",
           "ArrayCache", "atomic_write_bytes", "source_stamp", "is_gzip", "check_gzip_complete",
           "open_tar_stream", "VERIFIED"]

#: Recorded in every cache built from a verified source; caches without it (or with an older
#: value) predate verification and are rebuilt.
VERIFIED = "verified-v1"


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


def source_stamp(path: str | os.PathLike) -> dict:
    """What a cache records about its source: ``{"path", "size", "mtime_ns"}``."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`hashrepro.atomic.atomic_write`)."""
    from ..atomic import atomic_write

    atomic_write(path, data)


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
            "The file is corrupt or a different version; re-obtain it (see data/README.md), fix the "
            "line in SHA256SUMS, or skip the check with load(..., verify_checksums=False).")
    if stamp_file is not None:
        stamps[key] = got
        try:
            atomic_write_bytes(stamp_file, json.dumps(stamps, indent=1, sort_keys=True).encode())
        except OSError:
            pass
    return got


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether the file starts with the gzip magic bytes (1f 8b)."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0].rstrip(":") if str(e).strip() else type(e).__name__


def _gzip_error(path, e: BaseException) -> CorruptDataError:
    if isinstance(e, EOFError):
        why = "it is truncated: the gzip stream ends before its end marker"
    else:
        why = f"its gzip stream is corrupt ({e})"
    return CorruptDataError(f"{path}: {why}; re-obtain the file (see data/README.md)")


def check_gzip_complete(path: str | os.PathLike, chunk: int = 1 << 22) -> None:
    """Decompress a gzip file to its end (discarding the output): raises
    :class:`CorruptDataError` naming the file when it is truncated or fails its CRC check."""
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as f:
            while f.read(chunk):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise _gzip_error(path, e) from None


class _TarStream:
    def __init__(self, path: Path, expected: str):
        self.path, self.expected = Path(path), expected
        self._raw = None
        self.tar = None

    def __enter__(self) -> tarfile.TarFile:
        import gzip
        import zlib

        try:
            if is_gzip(self.path):
                self._raw = gzip.open(self.path, "rb")
                self.tar = tarfile.open(fileobj=self._raw, mode="r|")
            else:
                self.tar = tarfile.open(self.path, mode="r|*")
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            self.close()
            raise _gzip_error(self.path, e) from None
        except tarfile.TarError as e:
            self.close()
            kind = "a gzipped file but not a tar inside" if self._raw is not None else \
                "not a gzipped tar (nor a plain tar)"
            raise CorruptDataError(f"{self.path} is {kind} ({_first_line(e)}); expected {self.expected}") from None
        return self.tar

    def close(self):
        for f in (self.tar, self._raw):
            if f is not None:
                try:
                    f.close()
                except Exception:  # pragma: no cover
                    pass

    def __exit__(self, et, ev, tb):
        import gzip
        import zlib

        try:
            if et is None and self._raw is not None:
                # tarfile stops at the end-of-archive blocks; reading the rest of the gzip stream
                # checks that it is complete and passes its CRC.
                try:
                    while self._raw.read(1 << 22):
                        pass
                except (EOFError, gzip.BadGzipFile, zlib.error) as e:
                    raise _gzip_error(self.path, e) from None
            elif et is not None and issubclass(et, (EOFError, gzip.BadGzipFile, zlib.error)):
                raise _gzip_error(self.path, ev) from None
            elif et is not None and issubclass(et, tarfile.TarError):
                raise CorruptDataError(f"{self.path} is truncated or corrupt ({ev}); expected {self.expected}; "
                                       "re-obtain the file (see data/README.md)") from None
        finally:
            self.close()
        return False


def open_tar_stream(path: str | os.PathLike, expected: str = "a .tar.gz archive") -> _TarStream:
    """``with open_tar_stream(path, expected) as tf: for member in tf: ...`` in one pass.

    A file that is neither a gzipped nor a plain tar, a truncated gzip stream, a bad CRC and a
    tar that ends mid-member are :class:`CorruptDataError` naming ``path`` and ``expected``.
    (A tar cut exactly between members cannot be told from a complete one without a gzip
    wrapper: callers also check the member count.)
    """
    return _TarStream(Path(path), expected)


def _safe_members(tf: tarfile.TarFile, dest: Path):
    dest = dest.resolve()
    for m in tf.getmembers():
        target = (dest / m.name).resolve()
        if not str(target).startswith(str(dest)) or m.issym() or m.islnk() or m.isdev():
            raise ValueError(f"refusing to extract unsafe archive member {m.name!r}")
        yield m


def _extract(archive: Path, dest: Path, what: str | None = None) -> None:
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for n in zf.namelist():
                target = (dest / n).resolve()
                if not str(target).startswith(str(dest.resolve())):
                    raise ValueError(f"refusing to extract unsafe archive member {n!r}")
            zf.extractall(dest)
        return
    if is_gzip(archive):
        check_gzip_complete(archive)
    try:
        with tarfile.open(archive, "r:*") as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tf.extractall(dest, members=list(_safe_members(tf, dest)))
    except (tarfile.TarError, EOFError) as e:
        kind = "a gzipped file but not a readable tar inside" if is_gzip(archive) else \
            "not a gzipped tar (nor a plain tar)"
        raise CorruptDataError(f"{archive} is {kind} ({_first_line(e)}); expected "
                               f"{what or 'a .tar.gz, .tgz or .tar archive'}") from None


def _extraction_matches(dest: Path, stamp: dict | None) -> bool:
    marker = dest / ".complete"
    if not marker.is_file():
        return False
    if stamp is None:
        return True
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False  # an old plain-text marker: extracted before verification existed
    return isinstance(info, dict) and all(info.get(k) == v for k, v in stamp.items())


def extract_once(archive: str | os.PathLike, dest: str | os.PathLike, check=None,
                 sha256: str | None = None, what: str | None = None) -> Path:
    """Extract ``archive`` into folder ``dest`` unless a complete extraction is already there.

    The tree is unpacked into a temporary sibling folder, checked, marked with ``.complete``,
    then renamed to ``dest``: an interrupted or concurrent extraction never leaves a half tree.
    A gzipped archive must decompress completely (a truncated one is a
    :class:`CorruptDataError`). With ``check`` (a function of the extracted folder that raises
    when the tree is incomplete), the marker records the archive's :func:`source_stamp`,
    ``sha256`` and :data:`VERIFIED`, and an existing extraction is reused only when they all
    match; otherwise it is extracted again. ``what`` describes the expected archive in errors.

    Returns ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    stamp = None
    if check is not None:
        stamp = {"source": source_stamp(archive), "sha256": sha256, "verified": VERIFIED}
    if _extraction_matches(dest, stamp):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _extract(archive, tmp, what)
        if check is not None:
            check(tmp)
        (tmp / ".complete").write_text(json.dumps({"archive": str(archive), **(stamp or {})}) + "\n")
        if dest.exists() and not _extraction_matches(dest, stamp):
            shutil.rmtree(dest, ignore_errors=True)  # stale, incomplete or unverified
        try:
            os.replace(tmp, dest)
        except OSError:
            if not _extraction_matches(dest, stamp):  # pragma: no cover
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

    def load(self, mmap_mode: str | None = None, require: Mapping | None = None) -> dict[str, np.ndarray] | None:
        """The cached arrays, or None when the cache is missing or incomplete, or when its
        ``info`` does not hold every ``key: value`` of ``require`` (e.g. the source stamp, the
        verified SHA-256 and :data:`VERIFIED`): such a cache does not match its source and the
        caller rebuilds it."""
        if not self.exists():
            return None
        try:
            info = self.info()
            if require and any(info.get(k) != v for k, v in require.items()):
                return None
            names = info["arrays"]
            return {n: np.load(self.folder / f"{n}.npy", mmap_mode=mmap_mode, allow_pickle=False)
                    for n in names}
        except (OSError, ValueError, KeyError):
            return None

    def save(self, arrays: Mapping[str, np.ndarray], info: dict | None = None) -> dict[str, np.ndarray]:
        """Write every array atomically, then the marker. Returns ``arrays``.

        A cache folder that cannot be written (read-only) is silently skipped."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if self.marker.exists():  # rebuilding: the old marker must not vouch for new arrays
                self.marker.unlink()
            for n, a in arrays.items():
                atomic_write(self.folder / f"{n}.npy",
                             lambda f, a=a: np.save(f, np.asarray(a), allow_pickle=False))
            meta = dict(info or {})
            meta["arrays"] = list(arrays)
            atomic_write_bytes(self.marker, json.dumps(meta, indent=1, default=str).encode())
        except OSError:
            pass
        return dict(arrays)
