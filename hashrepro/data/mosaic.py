"""Synthetic multi-label mosaics: a stand-in for NUS-WIDE/COCO in the MCH chapter.

Each image is a ``grid``×``grid`` arrangement of tiles; a tile is either a base image (from a
single-label set such as mnist5k or CIFAR-10) or empty (filled with ``background``). Each image
holds between ``min_objects`` and ``max_objects`` objects (default 1 … grid²) in distinct,
random cells, so crops of an image really hold different objects. The label is the union of
the tile classes, as a multi-hot vector. Everything is drawn from ``numpy.random.default_rng(seed)``:
the same arguments give the same bytes.
"""
from __future__ import annotations

import numpy as np

from .base import Dataset
from .registry import load, register

__all__ = ["make_mosaic", "load_mosaic"]


def make_mosaic(base: Dataset, grid: int = 2, n: int = 5000, seed: int = 0, min_objects: int = 1,
                max_objects: int | None = None, base_indices=None, background: int = 0,
                name: str = "mosaic") -> Dataset:
    """Build a mosaic set from the single-label dataset ``base``.

    Parameters
    ----------
    base : Dataset
        Single-label; images (M, h, w, c).
    grid : int
        Tiles per side; images are (grid·h, grid·w, c).
    n : int
        Number of mosaics.
    min_objects, max_objects : int
        Objects per image, uniform on ``min_objects … max_objects`` (default grid²); the
        other cells are empty.
    base_indices : int array, optional
        Draw tiles only from these base rows (e.g. an official train part).

    Returns
    -------
    Dataset
        images uint8 (n, grid·h, grid·w, c); labels uint8 multi-hot (n, n_classes) = union of
        tile classes; meta ``tiles`` int64 (n, grid, grid) tile class or -1 for empty,
        ``tile_source`` int64 (n, grid, grid) base row or -1, ``tile_shape`` (h, w).
    """
    if base.multilabel:
        raise ValueError("mosaic needs a single-label base dataset")
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    g2 = grid * grid
    max_objects = g2 if max_objects is None else int(max_objects)
    if not 1 <= min_objects <= max_objects <= g2:
        raise ValueError(f"need 1 <= min_objects <= max_objects <= grid**2 = {g2}, "
                         f"got min_objects={min_objects}, max_objects={max_objects}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    pool = np.arange(len(base)) if base_indices is None else np.asarray(base_indices, dtype=np.int64)
    if len(pool) == 0:
        raise ValueError("base_indices is empty")
    rng = np.random.default_rng(seed)
    k = rng.integers(min_objects, max_objects + 1, size=n)
    rank = rng.random((n, g2)).argsort(1).argsort(1)
    occupied = rank < k[:, None]
    src = pool[rng.integers(0, len(pool), size=(n, g2))]
    src[~occupied] = -1
    tiles = np.where(occupied, base.labels[np.maximum(src, 0)], -1)
    h, w, c = base.image_shape
    out = np.full((n, g2, h, w, c), background, dtype=np.uint8)
    out[occupied] = base.images[src[occupied]]
    images = out.reshape(n, grid, grid, h, w, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, grid * h, grid * w, c)
    labels = np.zeros((n, base.n_classes), dtype=np.uint8)
    rows = np.repeat(np.arange(n), g2).reshape(n, g2)
    labels[rows[occupied], tiles[occupied]] = 1
    return Dataset(name, np.ascontiguousarray(images), labels, list(base.classes), True, {},
                   {"base": base.name, "grid": grid, "seed": seed, "tiles": tiles.reshape(n, grid, grid),
                    "tile_source": src.reshape(n, grid, grid), "tile_shape": (h, w),
                    "min_objects": min_objects, "max_objects": max_objects})


@register("mosaic", "synthetic multi-label grid mosaics built from a single-label set")
def load_mosaic(root=None, base="mnist5k", grid: int = 2, n: int = 5000, seed: int = 0,
                min_objects: int = 1, max_objects: int | None = None, base_kw: dict | None = None,
                base_indices=None, background: int = 0) -> Dataset:
    """``load("mosaic", base="mnist5k", grid=2, n=5000, seed=0)``: see :func:`make_mosaic`.

    ``base`` is a registry name (loaded with ``root`` and ``base_kw``) or a :class:`Dataset`.
    """
    if isinstance(base, str):
        base = load(base, root=root, **(base_kw or {}))
    return make_mosaic(base, grid, n, seed, min_objects, max_objects, base_indices, background)
