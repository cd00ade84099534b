"""Decoding and resizing images into uint8 (H, W, C) arrays."""
from __future__ import annotations

import os
from typing import IO, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

__all__ = ["to_size", "read_image", "decode_many", "decode_bytes", "resize_array"]

Size = int | tuple[int, int] | None


def to_size(img: Image.Image, size: Size) -> Image.Image:
    """Resize a PIL image.

    ``size=int``: scale so the shorter side is ``size`` (bilinear, antialiased when
    shrinking), then centre-crop ``size``×``size``. ``size=(H, W)``: resize to exactly H×W
    (aspect ratio not kept; used for pedestrians). ``None``: unchanged.
    """
    if size is None:
        return img
    if isinstance(size, (tuple, list)):
        h, w = int(size[0]), int(size[1])
        if img.size != (w, h):
            img = img.resize((w, h), Image.BILINEAR)
        return img
    s = int(size)
    if s <= 0:
        raise ValueError(f"size must be positive, got {size}")
    w, h = img.size
    if (w, h) == (s, s):
        return img
    scale = s / min(w, h)
    nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - s) // 2, (nh - s) // 2
    return img.crop((left, top, left + s, top + s))


def read_image(src: str | os.PathLike | IO[bytes], size: Size = None, mode: str = "RGB",
               name: str | None = None) -> np.ndarray:
    """Decode one image file to uint8 (H, W, C) (C = 3 for ``mode="RGB"``, 1 for ``"L"``).

    An unreadable, truncated or corrupt image is a
    :class:`~hashrepro.data.base.CorruptDataError` naming ``name`` (default: the path)."""
    try:
        with Image.open(src) as im:
            im = im.convert(mode)  # decodes the whole image: truncated data fails here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        from .base import CorruptDataError

        label = name or (str(src) if isinstance(src, (str, os.PathLike)) else "an in-memory image")
        raise CorruptDataError(f"cannot decode image {label}: {e}; the file is corrupt or not an image "
                               "(re-obtain the dataset, see data/README.md)") from None
    a = np.asarray(to_size(im, size), dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


def resize_array(img: np.ndarray, size: Size) -> np.ndarray:
    """Resize a uint8 (H, W, C) array with :func:`to_size`."""
    if size is None:
        return img
    grey = img.shape[2] == 1
    im = Image.fromarray(img[:, :, 0] if grey else img)
    a = np.asarray(to_size(im, size), dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


def decode_many(paths: Sequence[str | os.PathLike], size: Size = None, mode: str = "RGB",
                desc: str = "decoding") -> np.ndarray:
    """Decode and stack images: uint8 (N, H, W, C). All must share a shape after resizing."""
    n = len(paths)
    out = None
    for i, p in enumerate(tqdm(paths, desc=desc, disable=None, leave=False)):
        a = read_image(p, size, mode)
        if out is None:
            out = np.empty((n, *a.shape), dtype=np.uint8)
        elif a.shape != out.shape[1:]:
            raise ValueError(f"{p}: shape {a.shape} differs from {out.shape[1:]}; pass size=... "
                             "to resize every image to one shape")
        out[i] = a
    if out is None:
        raise ValueError("no images to decode")
    return out


def _decode_jpegs_torchvision(blobs: Sequence[bytes], chunk: int = 2048) -> np.ndarray | None:
    """Batch-decode same-size JPEGs with torchvision (libjpeg-turbo, ~4x faster than PIL here,
    bit-identical output on the CIFAR-10 JPEGs). None when torchvision is unavailable."""
    import warnings

    try:
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision >= 0.29 deprecates its image IO
            from torchvision.io import ImageReadMode, decode_jpeg
    except Exception:  # pragma: no cover
        return None
    out = []
    for i in tqdm(range(0, len(blobs), chunk), desc="decoding", disable=None, leave=False):
        ts = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs[i:i + chunk]]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dec = decode_jpeg(ts, mode=ImageReadMode.RGB)
        except RuntimeError:  # a corrupt member: PIL, one by one, names it
            return None
        shapes = {tuple(d.shape) for d in dec}
        if len(shapes) != 1 or (out and tuple(out[0].shape[1:]) != tuple(dec[0].permute(1, 2, 0).shape)):
            return None
        out.append(torch.stack(dec).permute(0, 2, 3, 1).numpy())
    return np.ascontiguousarray(np.concatenate(out)) if out else None


#: From this many images on, same-size JPEGs are decoded with torchvision (importing torch costs
#: seconds, which only pays off for large sets).
BATCH_DECODE_MIN = 2048


def decode_bytes(blobs: Sequence[bytes], size: Size = None, mode: str = "RGB", desc: str = "decoding",
                 jpeg: bool = False, names: Sequence[str] | None = None) -> np.ndarray:
    """Decode encoded images held in memory: uint8 (N, H, W, C).

    At least :data:`BATCH_DECODE_MIN` same-size RGB JPEGs without resizing go through
    torchvision's batched decoder; anything else through PIL, one by one (same pixels). A blob
    that does not decode is a :class:`~hashrepro.data.base.CorruptDataError` naming
    ``names[i]`` (e.g. ``archive.tar.gz:train/cat/0001.jpg``)."""
    import io

    if jpeg and size is None and mode == "RGB" and len(blobs) >= BATCH_DECODE_MIN:
        got = _decode_jpegs_torchvision(blobs)
        if got is not None:
            return got
    out = None
    for i, b in enumerate(tqdm(blobs, desc=desc, disable=None, leave=False)):
        label = names[i] if names is not None else f"number {i}"
        a = read_image(io.BytesIO(b), size, mode, name=label)
        if out is None:
            out = np.empty((len(blobs), *a.shape), dtype=np.uint8)
        elif a.shape != out.shape[1:]:
            raise ValueError(f"image {label} has shape {a.shape}, others {out.shape[1:]}; pass size=...")
        out[i] = a
    if out is None:
        raise ValueError("no images to decode")
    return out
