"""Image crops of the MCH paper (Li, Jiang, Li): crop boxes, coding a box, the cached crop bank.

MCH codes regions of an image as well as the whole image: the agent learns on one random crop per
training image (Algorithm 2: side ratio ~ U(crop_min, crop_max), position uniform) and the
out-of-sample extension codes 5 crops of side ratio σ of every database image (§4.3: the four
corners and the centre). This module holds the crops themselves, independent of any hashing model:

* :func:`crop_boxes`, :func:`random_crop_boxes` -- the boxes, ``(x1, y1, x2, y2)`` in pixels;
* :func:`images_tensor`, :func:`mosaic_tiles` -- images as the uint8 tensors the crops are cut from
  (:func:`hashrepro.crop_features.crop_resize` cuts and resamples them);
* :class:`ImageCrops` -- the crop methods of a hasher that codes pixel boxes (``embed(images, boxes)``,
  the scratch regime), and :func:`crop_method` to call them on any hasher;
* :class:`CropBank` -- the cached pooled backbone features of whole images and of their crops (the
  pretrained regime, where the set of crops is finite).
"""
from __future__ import annotations

import numpy as np
import torch

from ..crop_features import crop_resize

__all__ = ["crop_boxes", "random_crop_boxes", "images_tensor", "mosaic_tiles", "ImageCrops", "crop_method",
           "CropBank"]


# --------------------------------------------------------------------------- boxes
def crop_boxes(height: int, width: int, sigma: float) -> np.ndarray:
    """The 5 crops of §4.3: four corners and the centre, each of side ratio ``sigma``.

    Returns float (5, 4) boxes ``(x1, y1, x2, y2)`` in pixel coordinates (order: top-left,
    top-right, bottom-left, bottom-right, centre). ``sigma = 1`` gives the whole image 5 times.
    """
    if not 0.0 < sigma <= 1.0:
        raise ValueError(f"sigma must be in (0, 1], got {sigma}")
    ch, cw = sigma * height, sigma * width
    oy, ox = (height - ch) / 2.0, (width - cw) / 2.0
    return np.array([[0, 0, cw, ch], [width - cw, 0, width, ch], [0, height - ch, cw, height],
                     [width - cw, height - ch, width, height], [ox, oy, ox + cw, oy + ch]], dtype=np.float32)


def random_crop_boxes(n: int, height: int, width: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """One random square-ratio crop per image (Algorithm 2): side ratio ~ U(lo, hi), position uniform.

    Returns float (n, 4) boxes ``(x1, y1, x2, y2)``.
    """
    r = rng.uniform(lo, hi, size=n)
    ch, cw = r * height, r * width
    y1 = rng.uniform(0, 1, size=n) * (height - ch)
    x1 = rng.uniform(0, 1, size=n) * (width - cw)
    return np.stack([x1, y1, x1 + cw, y1 + ch], 1).astype(np.float32)


# --------------------------------------------------------------------------- images
def images_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) (or (N, H, W)) -> uint8 tensor (N, C, H, W) (kept as bytes; crops are made per batch)."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


def mosaic_tiles(ds, idx: np.ndarray, size: int):
    """The occupied tiles of mosaic images ``idx`` as object-centric images for backbone pretraining.

    Returns (float (M, C, size, size) in [0, 1], one-hot uint8 (M, n_classes)), or (None, None)
    when ``ds`` has no tile layout (not a mosaic).
    """
    tiles = ds.meta.get("tiles") if isinstance(ds.meta, dict) else None
    if tiles is None:
        return None, None
    th, tw = ds.meta["tile_shape"]
    tiles = np.asarray(tiles)[idx]
    rows, gy, gx = np.nonzero(tiles >= 0)
    imgs = np.stack([ds.images[idx[r], y * th:(y + 1) * th, x * tw:(x + 1) * tw] for r, y, x in zip(rows, gy, gx)])
    y = np.zeros((len(rows), ds.n_classes), dtype=np.uint8)
    y[np.arange(len(rows)), tiles[rows, gy, gx]] = 1
    return crop_resize(images_tensor(imgs), None, size), y


# --------------------------------------------------------------------------- coding crops
class ImageCrops:
    """Crops of images for a hasher whose ``embed(images_u8, boxes)`` codes pixel boxes (scratch regime).

    ``embed(images_u8 uint8 (N, C, H, W), boxes float (N, 4))`` must return ``(f (N, D), z (N, Q))``.
    """

    def embed_crop(self, images_u8: torch.Tensor, sigma: float, pos: int):
        """Crop ``pos`` (0..4: top-left, top-right, bottom-left, bottom-right, centre) of ratio
        ``sigma`` of every image -> (f (N, D), z (N, Q))."""
        n, _, h, w = images_u8.shape
        return self.embed(images_u8, np.repeat(crop_boxes(h, w, sigma)[pos:pos + 1], n, axis=0))

    def embed_random_crops(self, images_u8: torch.Tensor, cfg, rng: np.random.Generator):
        """One random crop per image (Algorithm 2: ratio ~ U(cfg.crop_min, cfg.crop_max), position uniform)."""
        n, _, h, w = images_u8.shape
        return self.embed(images_u8, random_crop_boxes(n, h, w, cfg.crop_min, cfg.crop_max, rng))


def crop_method(hasher, name: str):
    """``hasher.<name>`` (``"embed_crop"`` or ``"embed_random_crops"``), or the :class:`ImageCrops`
    version of it for a hasher that only has ``embed(images, boxes)`` (any object coding pixel boxes)."""
    fn = getattr(hasher, name, None)
    if fn is not None:
        return fn
    return getattr(ImageCrops, name).__get__(hasher)


# --------------------------------------------------------------------------- cached crop features
class CropBank:
    """Cached pooled backbone features of whole images and of their crops (pretrained regime).

    whole : (N_all, D) features of every dataset row (the whole image), indexed by dataset row.
    groups : {σ: (rows (n,) sorted int64 dataset rows, feats (n, 5, D))}, the 5 crops of
        :func:`crop_boxes` of ratio σ of those rows. σ = 1 is the whole image.
    """

    def __init__(self, whole: np.ndarray, groups: dict):
        self.whole_feats = whole
        self.groups = {float(k): (np.asarray(r, dtype=np.int64), f) for k, (r, f) in groups.items()}
        self.dim = int(whole.shape[1])

    def whole(self, rows) -> np.ndarray:
        """(n,) dataset rows -> float32 (n, D)."""
        return np.asarray(self.whole_feats[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def _pos(self, sigma: float, rows: np.ndarray):
        sigma = float(sigma)
        if sigma not in self.groups:
            raise ValueError(f"no cached crops of ratio {sigma}; cached ratios: {sorted(self.groups)} "
                             "(crop_plan decides which ratios are extracted)")
        have, feats = self.groups[sigma]
        i = np.searchsorted(have, rows)
        ok = (i < len(have)) & (have[np.minimum(i, len(have) - 1)] == rows)
        if not ok.all():
            raise ValueError(f"crops of ratio {sigma} are not cached for dataset rows {rows[~ok][:5].tolist()}...")
        return i, feats

    def crop(self, rows, sigma: float, pos) -> np.ndarray:
        """Features of crop ``pos`` (int, or (n,) ints in 0..4) of ratio ``sigma`` of ``rows``: (n, D)."""
        rows = np.asarray(rows, dtype=np.int64)
        if float(sigma) == 1.0:
            return self.whole(rows)
        i, feats = self._pos(sigma, rows)
        pos = np.broadcast_to(np.asarray(pos, dtype=np.int64), rows.shape)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for c in np.unique(pos):  # one memmap gather per crop position
            m = pos == c
            order = np.argsort(i[m], kind="stable")
            sel = np.flatnonzero(m)[order]
            out[sel] = feats[i[m][order], int(c)]
        return out
