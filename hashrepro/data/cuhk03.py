"""CUHK03 person re-identification from the official ``cuhk-03.mat`` (Li et al., CVPR 2014).

The official file is MATLAB v7.3 (HDF5) and is read with h5py; a MATLAB v5 file with the same
variables (as ``scipy.io.savemat`` writes) is read with scipy. Variables:

- ``labeled`` / ``detected``: a 1×5 cell, one per camera pair; each a (n_identities × 10) cell
  of RGB images (H×W×3 uint8, sizes vary; empty where missing). Columns 0–4 come from the
  first camera of the pair, 5–9 from the second.
- ``testsets``: a 1×20 cell of (100 × 2) matrices ``[pair, identity]`` (1-based): the 20
  classic test splits of 100 identities.

In HDF5, MATLAB stores arrays column-major, so every dereferenced array is transposed here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .archives import ArrayCache, fingerprint, verify
from .base import Dataset, not_found
from .images import resize_array
from .paths import cache_root, data_root
from .registry import register

__all__ = ["load_cuhk03", "read_cuhk03_mat", "read_cuhk03_h5", "is_hdf5"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HOW = ("request the CUHK03 release (cuhk03_release.zip, with cuhk-03.mat) from "
       "https://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html and put cuhk-03.mat in "
       "<root>/cuhk03/ (reading it needs h5py: pip install h5py).")


def is_hdf5(path: Path) -> bool:
    """True for HDF5 files (MATLAB v7.3 has a 512-byte header before the HDF5 signature)."""
    with open(path, "rb") as f:
        head = f.read(1024 + 8)
    return any(head[o:o + 8] == HDF5_SIGNATURE for o in (0, 512, 1024))


def read_cuhk03_h5(f, kind: str):
    """Read from an open h5py File (or any mapping with the same ``f[name]``/``f[ref]`` API).

    Returns (records, testsets, n_identities_per_pair): records is a list of
    (pair, identity, view, image uint8 (H, W, 3)) (0-based), testsets a list of int (100, 2)
    ``[pair, identity]`` arrays (1-based, as stored)."""
    def deref(ref):
        return np.asarray(f[ref][()])

    records = []
    pairs = np.asarray(f[kind][()]).ravel()
    for pi, pref in enumerate(pairs):
        cell = deref(pref).T  # (n_identities, 10) references
        for pid in range(cell.shape[0]):
            for v in range(cell.shape[1]):
                img = deref(cell[pid, v])
                if img.ndim != 3 or img.size == 0:
                    continue
                records.append((pi, pid, v, np.ascontiguousarray(img.T).astype(np.uint8, copy=False)))
    testsets = []
    if "testsets" in f:
        testsets = [deref(r).T.astype(np.int64) for r in np.asarray(f["testsets"][()]).ravel()]
    return records, testsets, [int(deref(p).shape[-1]) for p in pairs]


def _read_v5(path: Path, kind: str):
    from scipy.io import loadmat

    m = loadmat(str(path))
    if kind not in m:
        raise ValueError(f"{path} has no variable {kind!r} (found {sorted(k for k in m if not k.startswith('__'))})")
    records, n_ids = [], []
    for pi, cell in enumerate(np.asarray(m[kind]).ravel()):
        cell = np.asarray(cell)
        n_ids.append(cell.shape[0])
        for pid in range(cell.shape[0]):
            for v in range(cell.shape[1]):
                img = np.asarray(cell[pid, v])
                if img.ndim != 3 or img.size == 0:
                    continue
                records.append((pi, pid, v, img.astype(np.uint8, copy=False)))
    testsets = [np.asarray(t, dtype=np.int64).reshape(-1, 2) for t in np.asarray(m.get("testsets", np.zeros((1, 0), object))).ravel()]
    return records, testsets, n_ids


def read_cuhk03_mat(path: Path, kind: str = "labeled"):
    """Read ``cuhk-03.mat`` (v7.3/HDF5 via h5py, or v5 via scipy).

    Returns (records, testsets, n_identities_per_pair); see :func:`read_cuhk03_h5`."""
    if kind not in ("labeled", "detected"):
        raise ValueError(f"kind must be 'labeled' or 'detected', got {kind!r}")
    if is_hdf5(path):
        try:
            import h5py
        except ImportError as e:
            raise ImportError(f"{path} is a MATLAB v7.3 (HDF5) file; reading it needs h5py "
                              "(pip install h5py, or conda install h5py)") from e
        with h5py.File(path, "r") as f:
            return read_cuhk03_h5(f, kind)
    return _read_v5(path, kind)


@register("cuhk03", "CUHK03 re-identification, 1,467 identities in 5 camera pairs (cuhk-03.mat)")
def load_cuhk03(root=None, kind: str = "labeled", size=(160, 60),
                verify_checksums: bool = True) -> Dataset:
    """CUHK03 from ``<root>/cuhk03/cuhk-03.mat`` (or ``<root>/cuhk-03.mat``).

    Parameters
    ----------
    kind : {"labeled", "detected"}
        Manually cropped or DPM-detected boxes.
    size : (H, W)
        Every crop is resized to H×W (default 160×60, the CUHK03 paper's input).

    Returns
    -------
    Dataset
        images uint8 (N, H, W, 3); labels int64 (N,) global identity (pairs concatenated);
        classes ``"<pair>_<identity>"`` (1-based, as in the .mat); meta: ``pair``, ``identity``,
        ``view`` (0–9), ``camera`` (0 for views 0–4, 1 for 5–9), ``testsets`` (list of global
        identity arrays, the 20 classic splits). official_split: ``{"train", "test"}`` for
        test set 1 (use ``split(ds, "cuhk03", trial=t)`` for query/gallery by camera).
    """
    droot = data_root(root)
    cands = [droot / "cuhk03" / "cuhk-03.mat", droot / "cuhk-03.mat"]
    path = next((c for c in cands if c.is_file()), None)
    if path is None:
        raise not_found("cuhk03", cands, HOW)
    cache = cache_root(root)
    if verify_checksums:
        verify(path, droot, cache)
    sz = "x".join(map(str, size)) if isinstance(size, (tuple, list)) else str(size)
    arrays = ArrayCache(cache / "cuhk03" / f"{kind}-{fingerprint(path)}-{sz}")
    got = arrays.load()
    if got is None:
        records, testsets, n_ids = read_cuhk03_mat(path, kind)
        if not records:
            raise ValueError(f"{path}: no {kind} images found")
        images = np.stack([resize_array(r[3], size) for r in tqdm(records, desc="cuhk03", disable=None, leave=False)])
        offs = np.concatenate([[0], np.cumsum(n_ids)]).astype(np.int64)
        ts = np.zeros((len(testsets), max((len(t) for t in testsets), default=0)), dtype=np.int64)
        for i, t in enumerate(testsets):
            ts[i, :len(t)] = offs[t[:, 0] - 1] + (t[:, 1] - 1)
        got = arrays.save({
            "images": images,
            "pair": np.asarray([r[0] for r in records], dtype=np.int64),
            "identity": np.asarray([r[1] for r in records], dtype=np.int64),
            "view": np.asarray([r[2] for r in records], dtype=np.int64),
            "n_ids": np.asarray(n_ids, dtype=np.int64),
            "testsets": ts,
        }, info={"source": str(path), "kind": kind, "size": size})
    pair, ident, view, n_ids = got["pair"], got["identity"], got["view"], got["n_ids"]
    offs = np.concatenate([[0], np.cumsum(n_ids)]).astype(np.int64)
    labels = offs[pair] + ident
    classes = [f"{p + 1}_{i + 1}" for p in range(len(n_ids)) for i in range(int(n_ids[p]))]
    testsets = [np.asarray(t, dtype=np.int64) for t in got["testsets"]]
    official = {}
    if testsets:
        test = np.isin(labels, testsets[0])
        official = {"train": np.flatnonzero(~test), "test": np.flatnonzero(test)}
    return Dataset("cuhk03", got["images"], labels, classes, False, official,
                   {"source": str(path), "kind": kind, "size": size, "pair": pair,
                    "identity": ident, "view": view, "camera": (view >= 5).astype(np.int64),
                    "testsets": testsets})
