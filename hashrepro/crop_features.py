"""Pooled backbone features of image *crops*, computed once per crop and cached (resumable).

MCH (Li, Jiang, Li) codes regions of an image: the agent sees random crops while it learns, and
the out-of-sample extension codes the 5 crops (4 corners + centre) of side ratio σ of every
database image (§4.3). With a frozen ImageNet backbone, a crop's code depends on the crop only
through the backbone's pooled feature of it, so when the set of crops is finite (a fixed list of
boxes per image) each crop goes through the backbone exactly once and the base models become heads
on cached features. This module holds the two pieces that need no knowledge of MCH:

* :func:`crop_resize` -- cut boxes out of uint8 images and resample them to a square side;
* :func:`crop_backbone_features` -- pooled features of ``K`` boxes of every image, ``(N, K, D)``;
* :func:`crop_map_shape` / ``upto=`` -- instead of the pooled feature, the feature *maps* after the
  first ``upto`` blocks, flattened (what fine-tuning the blocks after them trains on: MCH's
  ``finetune="last_block"``);
* :func:`cached_crop_features` -- the same for a subset of a dataset's rows, cached under
  ``<cache root>/features/`` with :func:`hashrepro.features.resumable_cache` (memmap +
  checkpoints: an interrupted extraction resumes; atomic rename when complete), keyed by
  :func:`crop_cache_key` (backbone, weights SHA-256, input size, normalisation, the dataset's
  pixel fingerprint, the boxes, the rows, the resampling method).
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["crop_resize", "crop_backbone_features", "crop_map_shape", "crop_cache_key", "cached_crop_features",
           "CROP_METHOD"]

#: How a box becomes the backbone's input (part of the cache key: change it and the key changes).
CROP_METHOD = "crop_resize-v1: bilinear samples at 2x the side, 2x2 average pool (roi_align, aligned)"


def crop_resize(images_u8: torch.Tensor, boxes: np.ndarray | torch.Tensor | None, size: int) -> torch.Tensor:
    """Crop boxes out of images and resize them to ``size``×``size``.

    Bilinear sampling at twice the output resolution followed by 2×2 average pooling (what
    ``torchvision.ops.roi_align(..., sampling_ratio=2, aligned=True)`` computes, without importing
    torchvision).

    images_u8 : uint8 (N, C, H, W); boxes : (N, 4) ``(x1, y1, x2, y2)`` in pixels, one per image,
    or None for the whole image. Returns float (N, C, size, size) in [0, 1].
    """
    x = images_u8.float().div_(255.0)
    n, _, h, w = x.shape
    if boxes is None:
        if h == size and w == size:
            return x
        b = torch.tensor([[0.0, 0.0, float(w), float(h)]]).expand(n, 4)
    else:
        b = torch.as_tensor(boxes, dtype=torch.float32)
        if b.shape != (n, 4):
            raise ValueError(f"boxes must have shape ({n}, 4), got {tuple(b.shape)}")
    s2 = 2 * size
    # sample centres of an s2 x s2 grid inside each box, in normalised [-1, 1] coordinates
    t = (torch.arange(s2, dtype=torch.float32) + 0.5) / s2  # (s2,)
    xs = b[:, 0:1] + t[None, :] * (b[:, 2:3] - b[:, 0:1])  # (n, s2) pixel coordinates
    ys = b[:, 1:2] + t[None, :] * (b[:, 3:4] - b[:, 1:2])
    gx = 2.0 * xs / w - 1.0
    gy = 2.0 * ys / h - 1.0
    grid = torch.stack([gx[:, None, :].expand(n, s2, s2), gy[:, :, None].expand(n, s2, s2)], dim=3)
    out = F.avg_pool2d(F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False), 2)
    if h == size and w == size:  # a whole-image box at the input size is the image itself (σ = 1)
        full = (b == torch.tensor([0.0, 0.0, float(w), float(h)])).all(1)
        out[full] = x[full]
    return out


def _check_boxes(boxes) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float32)
    if b.ndim != 2 or b.shape[1] != 4 or len(b) == 0:
        raise ValueError(f"boxes must be a (K, 4) array of (x1, y1, x2, y2) pixel boxes with K >= 1, got shape {b.shape}")
    if not np.all(b[:, 2] > b[:, 0]) or not np.all(b[:, 3] > b[:, 1]):
        raise ValueError("boxes must have x2 > x1 and y2 > y1")
    return b


def _build_net(backbone: str, pretrained: str | None, device: torch.device):
    """The frozen backbone (eval, channels-last); tests replace this with a tiny stand-in."""
    from hashrepro.models.backbones import get_backbone

    return get_backbone(backbone, pretrained=pretrained).to(device).eval().to(memory_format=torch.channels_last)


def crop_map_shape(backbone: str = "efficientnet_lite0", input_size: int | None = None, upto: int = 15) -> tuple:
    """(C, h, w) of the backbone's feature maps after its first ``upto`` blocks at ``input_size``
    (None: the backbone's default), from one forward pass of a blank image (EfficientNet-Lite0 at
    112 px, ``upto`` = 15, i.e. the input of its last MBConv block: (192, 4, 4))."""
    from hashrepro.models.backbones import backbone_spec

    size = backbone_spec(backbone).input_size if input_size is None else int(input_size)
    net = _build_net(backbone, None, torch.device("cpu"))
    n_blocks = len(net._blocks)
    if isinstance(upto, bool) or not isinstance(upto, (int, np.integer)) or not 0 <= int(upto) < n_blocks:
        raise ValueError(f"upto must be a block index in 0..{n_blocks - 1} (the maps before block upto), got {upto!r}")
    with torch.inference_mode():
        m = net.blocks_maps(torch.zeros(1, 3, size, size), upto=int(upto))
    return tuple(int(v) for v in m.shape[1:])


def crop_backbone_features(images, boxes, backbone: str = "efficientnet_lite0", pretrained: str | None = "imagenet",
                           input_size: int | None = None, normalisation: str | None = None, batch_size: int = 32,
                           device: str = "auto", progress: bool = True, out: np.ndarray | None = None,
                           start: int = 0, on_batch: Callable[[int], None] | None = None,
                           forward_chunk: int = 32, upto: int | None = None) -> np.ndarray:
    """Pooled backbone features of ``K`` crops of every image: float32 ``(N, K, D)``; with ``upto``
    the feature maps after the first ``upto`` blocks instead, flattened: ``(N, K, C·h·w)``
    (:func:`crop_map_shape`).

    images : uint8 (N, H, W, C) (grey is repeated to 3 channels); boxes : (K, 4) pixel boxes
    ``(x1, y1, x2, y2)``, the same K boxes for every image. Each crop is resampled to
    ``input_size`` (None: the backbone's default) by :func:`crop_resize`, normalised
    (:data:`hashrepro.models.backbones.NORMALISATIONS`) and passed through the frozen backbone.
    ``out``/``start``/``on_batch``: fill rows ``start:`` of a preallocated (N, K, D) array and call
    ``on_batch(rows_done)`` after each batch of images (what :func:`cached_crop_features` uses).
    ``batch_size`` images are cropped at a time; the backbone sees ``forward_chunk`` crops a pass.
    """
    from hashrepro.models.backbones import NORMALISATIONS, backbone_spec

    from .features import _check_images, _progress

    images = _check_images(images)
    b = _check_boxes(boxes)
    spec = backbone_spec(backbone)
    size = spec.input_size if input_size is None else int(input_size)
    norm = spec.normalisation if normalisation is None else normalisation
    if norm is not None and norm not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {norm!r}; valid: {sorted(NORMALISATIONS)} or None")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    net = _build_net(backbone, pretrained, dev)
    n, k = images.shape[0], len(b)
    if upto is None:
        width = spec.feature_dim

        def forward(x):
            return net.features(x)
    else:
        width = int(np.prod(crop_map_shape(backbone, size, upto)))

        def forward(x):
            return net.blocks_maps(x, upto=int(upto)).flatten(1)
    if out is None:
        out = np.zeros((n, k, width), dtype=np.float32)
        start = 0
    if norm is not None:
        mean = torch.tensor(NORMALISATIONS[norm][0], device=dev).view(1, 3, 1, 1)
        std = torch.tensor(NORMALISATIONS[norm][1], device=dev).view(1, 3, 1, 1)
    batches = range(start, n, batch_size)
    what = "crop features" if upto is None else f"crop maps before block {upto}"
    with torch.inference_mode():
        for s in _progress(batches, len(batches), f"{backbone} {what} ({k} crops, {size} px)", progress):
            u8 = torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size])).permute(0, 3, 1, 2)
            m = u8.shape[0]
            x = torch.cat([crop_resize(u8, np.repeat(b[j:j + 1], m, axis=0), size) for j in range(k)])  # (k*m, C, S, S)
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            x = x.to(dev)
            if norm is not None:
                x = (x - mean) / std
            # forward passes of at most ``forward_chunk`` crops: larger batches were slower per crop
            # on this CPU (33 against 22 crops/s at 32 and 160 crops of 112 px, one thread)
            f = np.concatenate([forward(x[i:i + forward_chunk].contiguous(memory_format=torch.channels_last))
                                .float().cpu().numpy() for i in range(0, len(x), forward_chunk)])
            out[s:s + m] = f.reshape(k, m, -1).transpose(1, 0, 2)
            if on_batch is not None:
                on_batch(min(s + batch_size, n))
    return out


def _indices(dataset, indices) -> np.ndarray:
    n = int(dataset.images.shape[0])
    if indices is None:
        return np.arange(n, dtype=np.int64)
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"indices must be a 1-d integer array of dataset rows, got dtype {idx.dtype}, shape {idx.shape}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must be dataset rows in 0..{n - 1}, got {idx.min()}..{idx.max()}")
    return idx


def crop_cache_key(dataset, boxes, indices=None, backbone: str = "efficientnet_lite0",
                   pretrained: str | None = "imagenet", input_size: int | None = None,
                   normalisation: str | None = None, upto: int | None = None) -> dict:
    """Everything the crop features depend on, and the file stem that names them.

    The whole-image key of :func:`hashrepro.features.backbone_cache_key` (backbone, weights
    SHA-256, input size, normalisation, dataset name and pixel fingerprint) plus ``boxes`` (the
    K pixel boxes, rounded to 1e-4), ``rows_sha`` / ``n_rows`` (the dataset rows, in order) and
    :data:`CROP_METHOD`; with ``upto`` (maps instead of pooled features) also ``maps_upto`` and
    ``map_shape``, and ``feature_dim`` is C·h·w. Returns the key dict with ``"stem"``."""
    from .features import backbone_cache_key

    b = _check_boxes(boxes)
    idx = _indices(dataset, indices)
    key = backbone_cache_key(dataset, backbone, pretrained, input_size, normalisation)
    stem0 = key.pop("stem")
    key.update(kind="crops", boxes=[[round(float(v), 4) for v in r] for r in b], n_crops=int(len(b)),
               rows_sha=hashlib.sha256(np.ascontiguousarray(idx).tobytes()).hexdigest()[:16], n_rows=int(len(idx)),
               crop_method=CROP_METHOD, version=1)
    hashed = ["boxes", "rows_sha", "n_rows", "crop_method", "version"]
    if upto is not None:
        shape = crop_map_shape(backbone, key.get("input_size"), upto)
        key.update(kind="crop_maps", maps_upto=int(upto), map_shape=list(shape), feature_dim=int(np.prod(shape)))
        hashed += ["maps_upto", "map_shape"]
    h = hashlib.sha256(json.dumps({k: key[k] for k in hashed}, sort_keys=True).encode()).hexdigest()[:12]
    key["stem"] = f"{stem0}_crops{len(b)}-{h}" + ("" if upto is None else f"_maps{int(upto)}")
    return key


def cached_crop_features(dataset, boxes, indices=None, backbone: str = "efficientnet_lite0",
                         pretrained: str | None = "imagenet", input_size: int | None = None,
                         normalisation: str | None = None, cache: bool = True, root=None, batch_size: int = 32,
                         device: str = "auto", progress: bool = True, checkpoint_every: int = 256,
                         upto: int | None = None) -> np.ndarray:
    """Pooled backbone features of the ``K`` boxes of the dataset rows ``indices``: ``(len(indices), K, D)``
    (with ``upto``: the flattened maps before block ``upto``, ``(len(indices), K, C·h·w)``).

    Computed once and cached under ``<cache root>/features/<crop_cache_key stem>.npy`` (a read-only
    memmap is returned); extraction checkpoints every ``checkpoint_every`` images and resumes after
    an interruption (:func:`hashrepro.features.resumable_cache`). ``cache=False`` computes without
    reading or writing files.
    """
    from .features import features_cache_dir, resumable_cache

    idx = _indices(dataset, indices)
    key = crop_cache_key(dataset, boxes, idx, backbone, pretrained, input_size, normalisation, upto)
    b = np.asarray(key["boxes"], dtype=np.float32)
    shape = (len(idx), len(b), int(key["feature_dim"]))

    def fill(out, start, on_batch):
        if start >= len(idx):
            return
        crop_backbone_features(dataset.images[idx[start:]], b, backbone, pretrained, key["input_size"],
                               key["normalisation"], batch_size, device, progress, out=out[start:], start=0,
                               on_batch=None if on_batch is None else (lambda r: on_batch(start + r)), upto=upto)

    if not cache:
        out = np.zeros(shape, dtype=np.float32)
        fill(out, 0, None)
        return out
    stem = key.pop("stem")
    return resumable_cache(features_cache_dir(root), stem, key, shape, fill, checkpoint_every)
