"""SVHN (cropped digits) from torchvision's ``.mat`` files, read with ``scipy.io.loadmat``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .archives import verify
from .base import Dataset, not_found
from .paths import cache_root, data_root
from .registry import register

__all__ = ["load_svhn", "read_svhn_mat"]

HOW = ("load('svhn', download=True) fetches it with torchvision (needs internet) into "
       "<root>/svhn/; or copy train_32x32.mat and test_32x32.mat (and optionally "
       "extra_32x32.mat) from http://ufldl.stanford.edu/housenumbers/ into <root>/svhn/.")


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN ``*_32x32.mat``: ``X`` (32, 32, 3, N) uint8, ``y`` (N, 1) with 10 meaning digit 0.

    Returns images uint8 (N, 32, 32, 3) and labels int64 (N,) in 0..9 (10 -> 0, as torchvision)."""
    from scipy.io import loadmat

    m = loadmat(str(path))
    x = np.ascontiguousarray(np.transpose(m["X"], (3, 0, 1, 2))).astype(np.uint8, copy=False)
    y = np.asarray(m["y"]).reshape(-1).astype(np.int64)
    y[y == 10] = 0
    return x, y


@register("svhn", "SVHN cropped digits, 32x32 colour (torchvision .mat files)")
def load_svhn(root=None, extra: bool = False, download: bool = False,
              verify_checksums: bool = True) -> Dataset:
    """SVHN: 73,257 train + 26,032 test (+ 531,131 ``extra`` when ``extra=True``).

    Looks in ``<root>/svhn/`` then ``<root>/`` (torchvision's ``SVHN(root)`` writes into root).

    Returns
    -------
    Dataset
        images uint8 (N, 32, 32, 3), labels int64 (N,) (digit 0 is label 0);
        official_split ``{"train", "test"[, "extra"]}``.
    """
    droot = data_root(root)
    parts = ["train", "test"] + (["extra"] if extra else [])
    dirs = [droot / "svhn", droot]

    def find():
        for d in dirs:
            if all((d / f"{p}_32x32.mat").is_file() for p in parts):
                return d
        return None

    folder = find()
    if folder is None and download:
        import torchvision

        for p in parts:
            torchvision.datasets.SVHN(str(droot / "svhn"), split=p, download=True)
        folder = find()
    if folder is None:
        raise not_found("svhn", [d / f"{p}_32x32.mat" for d in dirs for p in parts], HOW)
    xs, ys, official, start = [], [], {}, 0
    for p in parts:
        f = folder / f"{p}_32x32.mat"
        if verify_checksums:
            verify(f, droot, cache_root(root))
        x, y = read_svhn_mat(f)
        xs.append(x)
        ys.append(y)
        official[p] = np.arange(start, start + len(y))
        start += len(y)
    return Dataset("svhn", np.concatenate(xs), np.concatenate(ys), [str(i) for i in range(10)],
                   False, official, {"source": str(folder), "format": "mat"})
