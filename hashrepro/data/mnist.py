"""MNIST from torchvision's layout (``<root>/MNIST/raw/*-idx*-ubyte[.gz]``), read with numpy."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .archives import verify
from .base import CorruptDataError, Dataset, not_found
from .paths import cache_root, data_root
from .registry import register

__all__ = ["read_idx", "write_idx", "load_mnist", "MNIST_FILES"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = [str(i) for i in range(10)]
HOW = ("load('mnist', download=True) fetches it with torchvision (needs internet) into "
       "<root>/MNIST/raw; or copy the four IDX files (http://yann.lecun.com/exdb/mnist/, "
       "optionally .gz) into <root>/MNIST/raw/.")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an ndarray of its stored shape.

    Format: two zero bytes, a dtype code (0x08 = uint8, ...), the number of dimensions, then
    each dimension as a big-endian int32, then the data in C order.
    """
    import zlib

    path = Path(path)
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read()
        except gzip.BadGzipFile as e:
            raise CorruptDataError(
                f"{path} is not gzip-compressed ({e}): a .gz IDX file must be the gzipped IDX file as "
                "yann.lecun.com serves it; if it is a plain IDX file, drop the .gz suffix") from None
        except (EOFError, zlib.error) as e:
            raise CorruptDataError(f"{path} is a truncated or corrupt gzip file ({e or 'truncated'}); "
                                   "re-obtain it (see data/README.md)") from None
    else:
        with open(path, "rb") as f:
            raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise CorruptDataError(f"{path} is not an IDX file (bad magic {raw[:4]!r}); expected the MNIST IDX "
                               "format (two zero bytes, a dtype code, the number of dimensions)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    n = int(np.prod(shape)) if shape else 1
    if len(raw) - offset != n * dtype.itemsize:
        raise CorruptDataError(f"{path}: header says shape {shape} but the file has "
                               f"{len(raw) - offset} data bytes (truncated or corrupt)")
    arr = np.frombuffer(raw, dtype=dtype, count=n, offset=offset).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, arr: np.ndarray) -> None:
    """Write ``arr`` (uint8) as an IDX file; gzip-compressed when ``path`` ends in ``.gz``."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">i4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + arr.tobytes())


def _find(raw: Path, stem: str) -> Path | None:
    for cand in (raw / stem, raw / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


@register("mnist", "MNIST, 70,000 28x28 grey digits (torchvision layout MNIST/raw)")
def load_mnist(root=None, download: bool = False, verify_checksums: bool = True) -> Dataset:
    """MNIST: 60,000 train + 10,000 test digits.

    Reads ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (``.gz`` also
    accepted), the layout ``torchvision.datasets.MNIST(root)`` uses. ``download=True`` calls
    torchvision to fetch the files first (only then is the network used). Checksums listed in
    ``<root>/SHA256SUMS`` are verified.

    Returns
    -------
    Dataset
        images uint8 (70000, 28, 28, 1), labels int64 (70000,); official_split
        ``{"train": 0..59999, "test": 60000..69999}``.
    """
    droot = data_root(root)
    raw = droot / "MNIST" / "raw"
    paths = {k: _find(raw, v) for k, v in MNIST_FILES.items()}
    if any(p is None for p in paths.values()) and download:
        import torchvision

        for train in (True, False):
            torchvision.datasets.MNIST(str(droot), train=train, download=True)
        paths = {k: _find(raw, v) for k, v in MNIST_FILES.items()}
    missing = [raw / MNIST_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise not_found("mnist", [f"{m}[.gz]" for m in missing], HOW)
    if verify_checksums:
        cache = cache_root(root)
        for p in paths.values():
            verify(p, droot, cache)
    xtr, ytr = read_idx(paths["train_images"]), read_idx(paths["train_labels"])
    xte, yte = read_idx(paths["test_images"]), read_idx(paths["test_labels"])
    if xtr.ndim != 3 or len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError(f"inconsistent MNIST files in {raw}: train {xtr.shape}/{ytr.shape}, "
                         f"test {xte.shape}/{yte.shape}")
    images = np.concatenate([xtr, xte])[..., None]
    labels = np.concatenate([ytr, yte]).astype(np.int64)
    ntr = len(xtr)
    return Dataset("mnist", images, labels, list(CLASSES), False,
                   {"train": np.arange(ntr), "test": np.arange(ntr, len(images))},
                   {"source": str(raw), "format": "idx"})
