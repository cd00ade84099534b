"""Multi-label sets given as list files ``relpath b1 b2 … bC`` over an image folder.

Expected files, under ``<root>/<name>/`` (``name`` = ``nuswide21``, ``coco``, ``mirflickr25k``):

- either one list of all images: ``<name>.txt``, ``list.txt``, ``labels.txt`` or ``all.txt``;
- or the split lists released with HashNet/DCH/ADSH: ``database.txt`` and ``test.txt``
  (or ``query.txt``), optionally ``train.txt``. Their union (by path) is loaded and
  ``official_split`` gets ``{"database", "query"[, "train"]}``;
- optional ``classes.txt`` (one class name per line; for NUS-WIDE also ``Concepts81.txt``);
- the images: each ``relpath`` is resolved against ``image_root`` (default ``<root>/<name>``,
  then ``<root>/<name>/images``); absolute paths are used as they are.

Each line: a path, then C integers 0/1 (the multi-hot label), separated by white space.
Images with no positive label are dropped (``drop_unlabeled=True``), as in the hashing papers.
``nuswide21`` keeps the 21 most frequent of the given classes (81 in the full NUS-WIDE list;
ties broken by column order), then drops images without any of them (MCH §5.1, DNNH §4).
Images are resized to ``size`` (default 64: shorter side then centre crop) and the decoded
arrays are cached.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from .archives import ArrayCache, fingerprint
from .base import Dataset, not_found
from .images import decode_many
from .paths import cache_root, data_root
from .registry import register

__all__ = ["read_list_file", "load_listfile", "top_k_classes"]

SINGLE = ("{name}.txt", "list.txt", "labels.txt", "all.txt")
HOWS = {
    "nuswide21": "NUS-WIDE images from https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/"
                 "nuswide/NUS-WIDE.html with a list file (e.g. HashNet's database.txt/test.txt/"
                 "train.txt for NUS-WIDE) in <root>/nuswide21/",
    "coco": "MS-COCO 2014 images from https://cocodataset.org with a list file (e.g. HashNet's or "
            "DCH's coco database.txt/test.txt/train.txt) in <root>/coco/",
    "mirflickr25k": "MIRFLICKR-25K images from https://press.liacs.nl/mirflickr/ with a list file "
                    "(relpath + 24 (or 21) 0/1 labels per line) in <root>/mirflickr25k/",
}


def read_list_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Parse ``relpath b1 … bC`` lines. Returns (paths, labels uint8 (n, C))."""
    paths, rows = [], []
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            try:
                row = [int(float(t)) for t in parts[1:]]
            except ValueError as e:
                raise ValueError(f"{path}:{ln}: labels must be 0/1 integers after the path ({e})")
            if rows and len(row) != len(rows[0]):
                raise ValueError(f"{path}:{ln}: {len(row)} labels, earlier lines had {len(rows[0])}")
            paths.append(parts[0])
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no entries")
    labels = np.asarray(rows, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 1):
        raise ValueError(f"{path}: labels must be 0 or 1, found values in [{labels.min()}, {labels.max()}]")
    return paths, labels.astype(np.uint8)


def top_k_classes(labels: np.ndarray, k: int) -> np.ndarray:
    """Columns of the ``k`` most frequent classes, returned in column order (ties: lower column)."""
    counts = labels.sum(0)
    order = np.lexsort((np.arange(len(counts)), -counts))
    return np.sort(order[:k])


def _find_lists(base: Path, name: str):
    for pat in SINGLE:
        p = base / pat.format(name=name)
        if p.is_file():
            return {"all": p}
    q = next((base / n for n in ("test.txt", "query.txt") if (base / n).is_file()), None)
    if (base / "database.txt").is_file() and q is not None:
        lists = {"database": base / "database.txt", "query": q}
        if (base / "train.txt").is_file():
            lists["train"] = base / "train.txt"
        return lists
    return None


def _class_names(base: Path, n: int) -> list[str]:
    for fn in ("classes.txt", "Concepts81.txt"):
        p = base / fn
        if p.is_file():
            names = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
            if len(names) == n:
                return names
    return [f"class_{i}" for i in range(n)]


def _resolve(rel: str, roots: list[Path]) -> Path:
    p = Path(rel)
    if p.is_absolute():
        return p
    for r in roots:
        if (r / p).is_file():
            return r / p
    return roots[0] / p


def load_listfile(name: str, root=None, size=64, image_root=None, n_classes: int | None = None,
                  drop_unlabeled: bool = True) -> Dataset:
    """Load a list-file multi-label dataset (see the module docstring for the layout).

    Returns
    -------
    Dataset
        images uint8 (N, size, size, 3), labels uint8 multi-hot (N, C), multilabel=True,
        official_split from the split lists when present; ``meta["paths"]`` the relative paths.
    """
    droot = data_root(root)
    base = droot / name
    lists = _find_lists(base, name) if base.is_dir() else None
    if lists is None:
        looked = [base / p.format(name=name) for p in SINGLE] + [base / "database.txt", base / "test.txt"]
        raise not_found(name, looked, HOWS[name])
    order: dict[str, int] = {}
    rows: list[np.ndarray] = []
    part_idx: dict[str, list[int]] = {}
    for part, lf in lists.items():
        paths, labels = read_list_file(lf)
        idx = []
        for p, row in zip(paths, labels):
            if p not in order:
                order[p] = len(order)
                rows.append(row)
            idx.append(order[p])
        part_idx[part] = idx
    rel_paths = list(order)
    labels = np.stack(rows)
    classes = _class_names(base, labels.shape[1])
    keep_cols = np.arange(labels.shape[1])
    if n_classes is not None:
        if labels.shape[1] < n_classes:
            warnings.warn(f"{name}: list has {labels.shape[1]} classes, fewer than {n_classes}; keeping all")
        else:
            keep_cols = top_k_classes(labels, n_classes)
    labels = labels[:, keep_cols]
    classes = [classes[i] for i in keep_cols]
    keep = labels.any(1) if drop_unlabeled else np.ones(len(labels), bool)
    new_index = np.cumsum(keep) - 1
    labels = labels[keep]
    rel_paths = [p for p, k in zip(rel_paths, keep) if k]
    official = {part: np.unique(new_index[np.asarray(ix, dtype=np.int64)][keep[np.asarray(ix, dtype=np.int64)]])
                for part, ix in part_idx.items() if part != "all"}
    roots = [Path(image_root)] if image_root is not None else [base, base / "images"]
    files = [_resolve(p, roots) for p in rel_paths]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise not_found(name, missing[:5] + ([f"... and {len(missing) - 5} more images"] if len(missing) > 5 else []),
                        "the list file names images that are not there; put the images under "
                        f"{roots[0]} or pass image_root=. " + HOWS[name])
    cache = cache_root(root)
    sz = "x".join(map(str, size)) if isinstance(size, (tuple, list)) else str(size)
    key = fingerprint(*lists.values()) + hashlib.sha1(str(roots).encode()).hexdigest()[:6]
    arrays = ArrayCache(cache / name / f"arrays-{key}-{sz}-{len(files)}-{int(drop_unlabeled)}-{n_classes}")
    got = arrays.load()
    if got is None:
        got = arrays.save({"images": decode_many(files, size=size, desc=name)},
                          info={"lists": [str(p) for p in lists.values()], "size": size})
    return Dataset(name, got["images"], labels, classes, True, official,
                   {"source": str(base), "format": "listfile", "paths": rel_paths,
                    "lists": {k: str(v) for k, v in lists.items()}, "size": size,
                    "class_columns": keep_cols})


@register("nuswide21", "NUS-WIDE, 21 most frequent concepts, multi-label (list files)")
def load_nuswide21(root=None, size=64, image_root=None, n_classes: int = 21) -> Dataset:
    """NUS-WIDE restricted to its 21 most frequent concepts (see :func:`load_listfile`)."""
    return load_listfile("nuswide21", root, size, image_root, n_classes=n_classes)


@register("coco", "MS-COCO, 80 concepts, multi-label (list files)")
def load_coco(root=None, size=64, image_root=None) -> Dataset:
    """MS-COCO as a multi-label list (see :func:`load_listfile`)."""
    return load_listfile("coco", root, size, image_root)


@register("mirflickr25k", "MIRFLICKR-25K, multi-label (list files)")
def load_mirflickr25k(root=None, size=64, image_root=None) -> Dataset:
    """MIRFLICKR-25K as a multi-label list (see :func:`load_listfile`)."""
    return load_listfile("mirflickr25k", root, size, image_root)
