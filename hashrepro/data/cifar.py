"""CIFAR-10 from the official python pickles or from a JPEG ImageFolder archive.

Sources, tried in this order by ``source="auto"``:

1. ``<root>/cifar-10-batches-py/`` or ``<root>/cifar10/cifar-10-batches-py/`` (the official
   pickles; what ``torchvision.datasets.CIFAR10(root, download=True)`` leaves in ``root``);
2. ``cifar-10-python.tar.gz`` in ``<root>`` or ``<root>/cifar10`` (extracted once into the cache);
3. ``<root>/cifar10/cifar10-jpeg.tar.gz``: gzipped ImageFolder tree
   ``train/<class>/*.jpg``, ``test/<class>/*.jpg`` (the ../shared mirror). Decoded once, in one
   streaming pass over the archive (writing 60,000 small files first took a minute on the
   2-core machine, for nothing), into ``<cache>/cifar10/cifar10-jpeg-<fingerprint>-arrays/*.npy``;
   later loads only read ~184 MB of arrays.

Verification before caching (``hashrepro.data.archives``): the archive's SHA-256 is checked
against ``SHA256SUMS`` (beside it or in the data root) on *every* load, before any cache is
read (hashing happens once: a verified hash is remembered by path, size and mtime). Without a
listed checksum the archive must hold a complete gzip stream and exactly 50,000 train + 10,000
test images that all decode. The cache records the archive's path/size/mtime, its verified
SHA-256 and the verification scheme; a cache that does not match (the file changed, a checksum
appeared or changed, or the cache predates verification) is rebuilt.

Image order: pickles keep the official order (5 train batches then the test batch); the JPEG
tree is ordered by split, class folder, file name. The JPEG copy is a lossy re-encoding:
pixels differ slightly from the pickles (the book states this where it matters).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .archives import VERIFIED, ArrayCache, extract_once, fingerprint, source_stamp, verify
from .base import CorruptDataError, Dataset, not_found
from .imagefolder import decode_tar_imagefolder
from .paths import cache_root, data_root
from .registry import register

__all__ = ["load_cifar10", "read_cifar_pickles", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
#: Images per split of the official CIFAR-10 (checked when an archive has no listed checksum).
CIFAR10_COUNTS = {"train": 50000, "test": 10000}
JPEG_WHAT = ("the CIFAR-10 JPEG ImageFolder archive cifar10-jpeg.tar.gz: a gzip-compressed tar of "
             "train/<class>/*.jpg (50,000) and test/<class>/*.jpg (10,000)")
PYTHON_WHAT = ("the official cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html): a "
               "gzip-compressed tar of cifar-10-batches-py/data_batch_1..5 and test_batch")
HOW = ("load('cifar10', download=True) fetches the official pickles with torchvision (needs "
       "internet) into <root>/cifar-10-batches-py; or place cifar-10-python.tar.gz "
       "(https://www.cs.toronto.edu/~kriz/cifar.html) in <root>/cifar10/, or the JPEG "
       "ImageFolder archive at <root>/cifar10/cifar10-jpeg.tar.gz.")


def _get(d: dict, key: str):
    return d[key.encode()] if key.encode() in d else d[key]


def read_cifar_pickles(folder: Path, train_batches=TRAIN_BATCHES, test_batch="test_batch"):
    """Read official CIFAR pickles from ``folder``.

    Returns (images uint8 (N, 32, 32, 3), labels int64 (N,), classes, n_train)."""
    xs, ys = [], []
    for b in list(train_batches) + [test_batch]:
        try:
            with open(folder / b, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            x = np.asarray(_get(d, "data"), dtype=np.uint8)
            y = np.asarray(_get(d, "labels"), dtype=np.int64)
            if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
                raise ValueError(f"data {x.shape} and {len(y)} labels, expected (n, 3072) and n labels")
        except FileNotFoundError:
            raise
        except Exception as e:  # truncated pickle, wrong content
            raise CorruptDataError(f"{folder / b} is not a readable CIFAR-10 batch ({type(e).__name__}: {e}); "
                                   "re-obtain the dataset (see data/README.md)") from None
        xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(y)
    classes = list(CIFAR10_CLASSES)
    meta = folder / "batches.meta"
    if meta.is_file():
        with open(meta, "rb") as f:
            m = pickle.load(f, encoding="bytes")
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in _get(m, "label_names")]
    n_train = sum(len(y) for y in ys[:-1])
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys), classes, n_train


def _pickle_dirs(droot: Path) -> list[Path]:
    return [droot / "cifar-10-batches-py", droot / "cifar10" / "cifar-10-batches-py"]


def _has_pickles(d: Path) -> bool:
    return all((d / b).is_file() for b in TRAIN_BATCHES + ["test_batch"])


def _from_pickles(folder: Path, source: str) -> Dataset:
    x, y, classes, ntr = read_cifar_pickles(folder)
    return Dataset("cifar10", x, y, classes, False,
                   {"train": np.arange(ntr), "test": np.arange(ntr, len(y))},
                   {"source": source, "format": "pickle"})


def _check_pickle_tree(tree: Path) -> None:
    """Raise unless an extracted cifar-10-python tree holds every batch (each one readable)."""
    folder = tree / "cifar-10-batches-py"
    missing = [b for b in TRAIN_BATCHES + ["test_batch"] if not (folder / b).is_file()]
    if missing:
        raise CorruptDataError(f"the archive lacks cifar-10-batches-py/{', '.join(missing)}; expected {PYTHON_WHAT}")
    read_cifar_pickles(folder)


def _from_jpeg(archive: Path, droot: Path, root, verify_checksums: bool) -> Dataset:
    cache = cache_root(root)
    # Verify first, on every load (cheap once the hash is remembered): a checksum that appears or
    # changes after a cache was built must be able to reject that cache.
    digest = verify(archive, droot, cache) if verify_checksums else None
    key = f"{archive.name.split('.')[0]}-{fingerprint(archive)}"
    arrays = ArrayCache(cache / "cifar10" / f"{key}-arrays")
    require = {"source": source_stamp(archive), "verified": VERIFIED}
    if digest is not None:
        require["sha256"] = digest
    got = arrays.load(require=require)
    classes = arrays.info().get("classes", CIFAR10_CLASSES) if got is not None else None
    if got is None:
        images, labels, classes, official = decode_tar_imagefolder(
            archive, ("train", "test"), desc="cifar10 jpeg", what=JPEG_WHAT,
            expected_counts=None if digest is not None else CIFAR10_COUNTS)
        got = arrays.save({"images": images, "labels": labels,
                           "train": official["train"], "test": official["test"]},
                          info={"classes": classes, "archive": str(archive), **require,
                                "sha256": digest})
    return Dataset("cifar10", got["images"], got["labels"].astype(np.int64), list(classes), False,
                   {"train": got["train"], "test": got["test"]},
                   {"source": str(archive), "format": "jpeg", "cache": str(arrays.folder)})


@register("cifar10", "CIFAR-10, 60,000 32x32 colour images (official pickles or JPEG archive)")
def load_cifar10(root=None, source: str = "auto", download: bool = False,
                 verify_checksums: bool = True) -> Dataset:
    """CIFAR-10: 50,000 train + 10,000 test images, 10 classes.

    Parameters
    ----------
    source : {"auto", "pickle", "jpeg"}
        "auto" prefers the official pickles (exact pixels) over the JPEG archive.
    download : bool
        Fetch the official pickles with torchvision when no source is found.

    Returns
    -------
    Dataset
        images uint8 (60000, 32, 32, 3), labels int64 (60000,),
        official_split ``{"train": (50000,), "test": (10000,)}``.
    """
    if source not in ("auto", "pickle", "jpeg"):
        raise ValueError(f"source must be 'auto', 'pickle' or 'jpeg', got {source!r}")
    droot = data_root(root)
    looked: list[Path] = []
    if source in ("auto", "pickle"):
        for d in _pickle_dirs(droot):
            looked.append(d)
            if _has_pickles(d):
                return _from_pickles(d, str(d))
        for tgz in (droot / "cifar-10-python.tar.gz", droot / "cifar10" / "cifar-10-python.tar.gz"):
            looked.append(tgz)
            if tgz.is_file():
                digest = verify(tgz, droot, cache_root(root)) if verify_checksums else None
                tree = extract_once(tgz, cache_root(root) / "cifar10" / f"cifar-10-python-{fingerprint(tgz)}",
                                    check=_check_pickle_tree, sha256=digest, what=PYTHON_WHAT)
                return _from_pickles(tree / "cifar-10-batches-py", str(tgz))
    if source in ("auto", "jpeg"):
        archive = droot / "cifar10" / "cifar10-jpeg.tar.gz"
        looked.append(archive)
        if archive.is_file():
            return _from_jpeg(archive, droot, root, verify_checksums)
    if download and source != "jpeg":
        import torchvision

        torchvision.datasets.CIFAR10(str(droot), train=True, download=True)
        return _from_pickles(droot / "cifar-10-batches-py", str(droot / "cifar-10-batches-py"))
    raise not_found("cifar10", looked, HOW)
