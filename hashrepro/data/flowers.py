"""Oxford 17 Category Flowers (Nilsback & Zisserman 2006): 17 classes × 80 images.

Layouts accepted (under ``<root>/flowers17/``):

- official flat: ``jpg/image_0001.jpg`` … ``jpg/image_1360.jpg`` (what ``17flowers.tgz``
  unpacks to); images ``80·k+1 … 80·k+80`` are class ``k``;
- class folders: ``jpg/<NN>_<name>/image_XXXX.jpg`` (the ../shared mirror), file numbers kept;
- either of the two as an archive: ``flowers17-160px.tar.gz`` or ``17flowers.tgz``, extracted
  once into ``<cache>/flowers17/``.

Optional ``datasplits.mat`` (official; ``trn1..3``, ``val1..3``, ``tst1..3``, 1-based image
numbers) beside them fills ``official_split`` with split 1 and ``meta["datasplits"]`` with
all three. Without it, use ``split(ds, "flowers", seed)`` (seeded 40/20/20 per class).

Images are resized so the shorter side is ``size`` and centre-cropped to ``size``×``size``
(default 128; DDH's CNN-F would use 224). Decoded arrays are cached per size.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .archives import ArrayCache, extract_once, fingerprint, verify
from .base import Dataset, not_found
from .images import decode_many
from .paths import cache_root, data_root
from .registry import register

__all__ = ["load_flowers17", "FLOWERS17_CLASSES", "scan_flowers"]

FLOWERS17_CLASSES = ["daffodil", "snowdrop", "lilyvalley", "bluebell", "crocus", "iris",
                     "tigerlily", "tulip", "fritillary", "sunflower", "daisy", "coltsfoot",
                     "dandelion", "cowslip", "buttercup", "windflower", "pansy"]
ARCHIVES = ("flowers17-160px.tar.gz", "17flowers.tgz")
HOW = ("download 17flowers.tgz from https://www.robots.ox.ac.uk/~vgg/data/flowers/17/ and put "
       "it (or its unpacked jpg/ folder, and optionally datasplits.mat) in <root>/flowers17/.")
_NUM = re.compile(r"image_(\d+)\.(jpe?g|png)$", re.I)


def scan_flowers(jpg: Path, images_per_class: int = 80):
    """Find the images of a ``jpg/`` folder in either layout.

    Returns (paths sorted by image number, numbers int64 (N,), labels int64 (N,), classes, layout)."""
    subdirs = sorted(d for d in jpg.iterdir() if d.is_dir())
    items = []
    if subdirs:
        classes = []
        for ci, d in enumerate(subdirs):
            m = re.match(r"(\d+)_(.+)$", d.name)
            classes.append(m.group(2) if m else d.name)
            for p in d.iterdir():
                mm = _NUM.search(p.name)
                if mm:
                    items.append((int(mm.group(1)), ci, p))
        layout = "class-folders"
    else:
        for p in jpg.iterdir():
            mm = _NUM.search(p.name)
            if mm:
                n = int(mm.group(1))
                items.append((n, (n - 1) // images_per_class, p))
        n_cls = max((c for _, c, _ in items), default=-1) + 1
        classes = (FLOWERS17_CLASSES[:n_cls] if n_cls <= len(FLOWERS17_CLASSES)
                   else [str(i) for i in range(n_cls)])
        layout = "flat"
    items.sort()
    if not items:
        raise ValueError(f"no image_XXXX.jpg files in {jpg}")
    nums = np.asarray([n for n, _, _ in items], dtype=np.int64)
    labels = np.asarray([c for _, c, _ in items], dtype=np.int64)
    return [p for _, _, p in items], nums, labels, classes, layout


def _datasplits(path: Path, nums: np.ndarray) -> tuple[dict, dict]:
    from scipy.io import loadmat

    m = loadmat(str(path))
    pos = {int(n): i for i, n in enumerate(nums)}
    out = {}
    for k in ("trn", "val", "tst"):
        for t in (1, 2, 3):
            if f"{k}{t}" in m:
                out[f"{k}{t}"] = np.asarray([pos[int(n)] for n in np.ravel(m[f"{k}{t}"])], dtype=np.int64)
    official = {}
    if "trn1" in out:
        official = {"train": out["trn1"], "val": out.get("val1", np.zeros(0, np.int64)),
                    "test": out.get("tst1", np.zeros(0, np.int64))}
    return official, out


@register("flowers17", "Oxford 17 Flowers, 1,360 colour images, resized to size x size")
def load_flowers17(root=None, size: int | tuple = 128, images_per_class: int = 80,
                   verify_checksums: bool = True) -> Dataset:
    """Oxford 17 Category Flowers.

    Parameters
    ----------
    size : int or (H, W)
        int: shorter side to ``size`` then centre crop (default 128); (H, W): plain resize.
    images_per_class : int
        Only for the flat layout, where the class is ``(number - 1) // images_per_class``.

    Returns
    -------
    Dataset
        images uint8 (1360, size, size, 3), labels int64 (1360,) (17 classes, 80 each, ordered
        by image number); official_split from ``datasplits.mat`` when present, else {}.
    """
    droot = data_root(root)
    base = droot / "flowers17"
    cache = cache_root(root)
    looked = [base / "jpg"]
    jpg = None
    if (base / "jpg").is_dir():
        jpg, src = base / "jpg", base / "jpg"
    else:
        for a in ARCHIVES:
            looked.append(base / a)
            if (base / a).is_file():
                src = base / a
                if verify_checksums:
                    verify(src, droot, cache)
                tree = extract_once(src, cache / "flowers17" / f"{a.split('.')[0]}-{fingerprint(src)}")
                jpg = tree / "jpg"
                break
    if jpg is None or not jpg.is_dir():
        raise not_found("flowers17", looked, HOW)
    paths, nums, labels, classes, layout = scan_flowers(jpg, images_per_class)
    sz = "x".join(map(str, size)) if isinstance(size, (tuple, list)) else str(size)
    arrays = ArrayCache(cache / "flowers17" / f"arrays-{fingerprint(src, jpg)}-{sz}-{len(paths)}")
    got = arrays.load()
    if got is None:
        got = arrays.save({"images": decode_many(paths, size=size, desc="flowers17")},
                          info={"source": str(src), "size": size})
    official, allsplits = {}, {}
    if (base / "datasplits.mat").is_file():
        official, allsplits = _datasplits(base / "datasplits.mat", nums)
    return Dataset("flowers17", got["images"], labels, classes, False, official,
                   {"source": str(src), "layout": layout, "image_numbers": nums,
                    "size": size, "datasplits": allsplits})
