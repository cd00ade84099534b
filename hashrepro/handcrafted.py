"""Hand-crafted image features for the shallow baselines: GIST, raw pixels, HOG.

Every extractor maps ``images`` uint8 ``(N, H, W, C)`` (the layout of
:class:`hashrepro.data.Dataset`) to a float32 matrix ``(N, D)``; all are re-exported by
:mod:`hashrepro.features`, which also holds the CNN extractors, the registry and the caches.

* :func:`gist` -- our NumPy/PyTorch FFT port of Oliva & Torralba's ``LMgist.m``
  (4 scales x 8 orientations x 4x4 blocks = 512-d), batched.
* :func:`pixels` -- flattened intensities in [0, 1].
* :func:`hog` -- Dalal & Triggs HOG (the defaults of ``skimage.feature.hog``, in NumPy).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["gist", "gabor_transfer_functions", "pixels", "hog"]


def _check_images(images, name: str = "images") -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:  # (N, H, W) grey
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"{name}: expected uint8 images of shape (N, H, W, C), got shape {images.shape}")
    if images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name}: expected C in (1, 3) channels last, got shape {images.shape}")
    return images


def _progress(iterable, total, desc, progress):
    if not progress:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, disable=None, leave=False)


# =========================================================================== GIST
def gabor_transfer_functions(orientations: Sequence[int], n: int) -> np.ndarray:
    """Frequency responses of the GIST Gabor bank, ``createGabor.m`` of LMgist.

    Parameters
    ----------
    orientations : orientations per scale, e.g. ``(8, 8, 8, 8)``.
    n : side of the (square, padded) image the filters are applied to.

    Returns
    -------
    G : float64 ``(n_filters, n, n)``, in FFT layout (zero frequency at [0, 0]); filter ``i``
        of scale ``s`` and orientation ``j`` is
        ``exp(-10 a (f / n / b_s - 1)^2 - 2 c_s pi theta_j^2)`` with ``a = 0.35``,
        ``b_s = 0.3 / 1.85^s``, ``c_s = 16 o_s^2 / 32^2``, ``theta`` the angle offset by
        ``pi j / o_s`` and wrapped to [-pi, pi].
    """
    params = []
    for s, o in enumerate(orientations):
        for j in range(o):
            params.append((0.35, 0.3 / (1.85 ** s), 16.0 * o * o / 32.0 ** 2, np.pi / o * j))
    f = np.arange(-n // 2, n // 2, dtype=np.float64) if n % 2 == 0 else np.arange(-(n // 2), n // 2 + 1.0)
    fx, fy = np.meshgrid(f, f)  # fx varies along columns, as MATLAB meshgrid
    fr = np.fft.fftshift(np.sqrt(fx ** 2 + fy ** 2))
    t = np.fft.fftshift(np.angle(fx + 1j * fy))
    G = np.empty((len(params), n, n))
    for i, (a, b, c, th) in enumerate(params):
        tr = t + th
        tr = tr + 2 * np.pi * (tr < -np.pi) - 2 * np.pi * (tr > np.pi)
        G[i] = np.exp(-10 * a * (fr / n / b - 1) ** 2 - 2 * c * np.pi * tr ** 2)
    return G


def _block_matrix(size: int, n_blocks: int) -> np.ndarray:
    """(n_blocks, size) averaging matrix over ``fix(linspace(0, size, n_blocks + 1))`` blocks
    (``downN`` of LMgist)."""
    edges = np.fix(np.linspace(0, size, n_blocks + 1)).astype(int)
    A = np.zeros((n_blocks, size))
    for k in range(n_blocks):
        A[k, edges[k]:edges[k + 1]] = 1.0 / max(edges[k + 1] - edges[k], 1)
    return A


def _sym_pad(x, before: int, after: int):
    """Symmetric (MATLAB ``padarray(..., 'symmetric')``) padding of the last two dims."""
    import torch

    if before == 0 and after == 0:
        return x
    # build index maps for the symmetric extension
    def idx(n):
        i = np.arange(-before, n + after)
        period = 2 * n
        i = np.mod(i, period)
        i = np.where(i >= n, period - 1 - i, i)
        return torch.as_tensor(i, device=x.device)
    return x[..., idx(x.shape[-2]), :][..., :, idx(x.shape[-1])]


def gist(images, image_size: int | None = None, orientations: Sequence[int] = (8, 8, 8, 8),
         n_blocks: int = 4, fc_prefilt: float = 4.0, boundary_extension: int = 32,
         batch_size: int = 128, device: str = "cpu", progress: bool = True,
         filter_chunk: int = 4) -> np.ndarray:
    """GIST descriptors (Oliva & Torralba, IJCV 2001), a port of ``LMgist.m``.

    For each image: grey = mean of the colour channels; optional bilinear resize to
    ``image_size`` (LMgist's default is 128; the tiny-image / CIFAR descriptors use the native
    32x32); intensities rescaled to [0, 255]; ``prefilt`` (log, Gaussian whitening with
    ``s1 = fc / sqrt(log 2)``, local contrast normalisation, 5-pixel symmetric padding);
    symmetric padding by ``boundary_extension`` pixels; Gabor filtering in the Fourier domain
    (:func:`gabor_transfer_functions`); magnitude averaged over ``n_blocks x n_blocks`` blocks.
    Features are ordered as LMgist: filter-major (scale, then orientation), then blocks in
    column-major order.

    Parameters
    ----------
    images : uint8 (N, H, W, C) (or (N, H, W)), square or not (non-square images are resized
        to ``image_size`` x ``image_size``, default the larger side, without cropping).
    image_size : int or None, resize side (None: keep the native size when square).
    orientations : orientations per scale (4 scales x 8 -> 32 filters).
    n_blocks : blocks per side (4 -> 16 per filter; 32 x 16 = 512-d).
    fc_prefilt : prefilter cut-off (4).
    boundary_extension : padding before filtering (32, LMgist's default).
    batch_size : images per FFT batch.
    device : torch device ("cpu" or "cuda").
    filter_chunk : Gabor filters applied per FFT call (memory ~ batch x chunk x n^2 x 8 bytes).
    progress : show a tqdm bar.

    Returns
    -------
    float32 (N, n_filters * n_blocks^2)
    """
    import torch

    images = _check_images(images)
    N, H, W, C = images.shape
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
    if image_size is None:
        if H != W:
            image_size = max(H, W)
    size = image_size or H
    if size < 8:
        raise ValueError(f"image_size must be >= 8, got {size}")
    dev = torch.device(device)
    be = int(boundary_extension)
    n_pad = size + 2 * be
    G = torch.as_tensor(gabor_transfer_functions(orientations, n_pad), dtype=torch.float32, device=dev)
    n_filters = G.shape[0]
    # prefilter kernel
    w = 5
    s1 = fc_prefilt / np.sqrt(np.log(2))
    sn = size + 2 * w
    npf = sn + (sn % 2)
    f = np.arange(-npf // 2, npf // 2, dtype=np.float64)
    fx, fy = np.meshgrid(f, f)
    gf = torch.as_tensor(np.fft.fftshift(np.exp(-(fx ** 2 + fy ** 2) / s1 ** 2)), dtype=torch.float32, device=dev)
    A = torch.as_tensor(_block_matrix(size, n_blocks), dtype=torch.float32, device=dev)
    out = np.empty((N, n_filters * n_blocks * n_blocks), dtype=np.float32)
    batches = range(0, N, batch_size)
    for s in _progress(batches, len(batches), "GIST", progress):
        x = torch.as_tensor(np.asarray(images[s:s + batch_size]), device=dev).to(torch.float32)
        x = x[..., :3].mean(-1) if C >= 3 else x[..., 0]  # grey = mean of channels (LMgist)
        if x.shape[-2:] != (size, size):
            x = torch.nn.functional.interpolate(x[:, None], size=(size, size), mode="bilinear",
                                                align_corners=False, antialias=True)[:, 0]
        mn = x.amin(dim=(1, 2), keepdim=True)
        x = x - mn
        mx = x.amax(dim=(1, 2), keepdim=True)
        x = 255.0 * x / torch.where(mx > 0, mx, torch.ones_like(mx))
        # --- prefilt (local contrast normalisation)
        x = torch.log(x + 1.0)
        x = _sym_pad(x, w, w)
        if npf != sn:  # pad 'post' to an even square
            x = _sym_pad(x, 0, npf - sn)[..., :, :]
        out1 = x - torch.fft.ifft2(torch.fft.fft2(x) * gf).real
        localstd = torch.sqrt(torch.abs(torch.fft.ifft2(torch.fft.fft2(out1 * out1) * gf)))
        out1 = out1 / (0.2 + localstd)
        x = out1[..., w:w + size, w:w + size]
        # --- gistGabor
        x = _sym_pad(x, be, be)
        F = torch.fft.fft2(x)  # (B, n, n) complex64
        feats = []
        for i0 in range(0, n_filters, filter_chunk):
            Y = F[:, None] * G[None, i0:i0 + filter_chunk]  # (B, f, n, n)
            # ifft2 restricted to the cropped window: 1-D inverse FFT along columns, keep the
            # `size` cropped columns, then along rows (n + size 1-D FFTs instead of 2 n).
            Y = torch.fft.ifft(Y, dim=-1)[..., be:be + size]
            ig = torch.fft.ifft(Y, dim=-2)[..., be:be + size, :].abs()
            v = A @ ig @ A.T  # (B, f, n_blocks, n_blocks): v[..., row_block, col_block]
            feats.append(v.transpose(-1, -2).reshape(v.shape[0], -1))  # column-major, as MATLAB
        out[s:s + batch_size] = torch.cat(feats, dim=1).cpu().numpy()
    return out


# =========================================================================== pixels
def pixels(images, grey: bool = False) -> np.ndarray:
    """Raw intensities in [0, 1], flattened: float32 ``(N, H*W*C)`` (``(N, H*W)`` if ``grey``)."""
    images = _check_images(images)
    x = images.astype(np.float32) / 255.0
    if grey and x.shape[-1] >= 3:
        x = x[..., :3].mean(-1, keepdims=True)
    return x.reshape(x.shape[0], -1)


# =========================================================================== HOG
def hog(images, orientations: int = 9, pixels_per_cell: int = 8, cells_per_block: int = 2,
        block_norm: str = "L2-Hys") -> np.ndarray:
    """Histograms of oriented gradients (Dalal & Triggs, CVPR 2005), ``skimage.feature.hog``'s
    algorithm in NumPy.

    Centred differences ``[-1, 0, 1]`` (zero at the border); for colour images the channel with
    the largest gradient magnitude at each pixel; unsigned orientations in [0, 180) hard-binned
    into ``orientations`` bins; per cell the mean magnitude per bin; blocks of
    ``cells_per_block^2`` cells (stride one cell) normalised with L2-Hys (L2, clip at 0.2,
    L2 again) or "L2" / "L1".

    Returns float32 ``(N, n_blocks_y * n_blocks_x * cells_per_block^2 * orientations)``
    (324 for 32x32 images with the defaults).
    """
    images = _check_images(images)
    if block_norm not in ("L2-Hys", "L2", "L1"):
        raise ValueError(f"block_norm must be 'L2-Hys', 'L2' or 'L1', got {block_norm!r}")
    x = images[..., :3].astype(np.float64) / 255.0
    gr = np.zeros_like(x)
    gc = np.zeros_like(x)
    gr[:, 1:-1] = x[:, 2:] - x[:, :-2]
    gc[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    mag = np.hypot(gr, gc)
    if x.shape[-1] > 1:
        best = mag.argmax(-1)[..., None]
        gr = np.take_along_axis(gr, best, -1)
        gc = np.take_along_axis(gc, best, -1)
        mag = np.take_along_axis(mag, best, -1)
    gr, gc, mag = gr[..., 0], gc[..., 0], mag[..., 0]
    ori = np.rad2deg(np.arctan2(gr, gc)) % 180.0
    N, H, W = mag.shape
    c = int(pixels_per_cell)
    ncy, ncx = H // c, W // c
    if ncy < cells_per_block or ncx < cells_per_block:
        raise ValueError(f"images of {H}x{W} are too small for {cells_per_block}x{cells_per_block} "
                         f"blocks of {c}-pixel cells")
    b = np.minimum((ori / (180.0 / orientations)).astype(int), orientations - 1)
    mag = mag[:, :ncy * c, :ncx * c]
    b = b[:, :ncy * c, :ncx * c]
    onehot = np.zeros(mag.shape + (orientations,))
    np.put_along_axis(onehot, b[..., None], mag[..., None], axis=-1)
    cells = onehot.reshape(N, ncy, c, ncx, c, orientations).mean(axis=(2, 4))
    k = int(cells_per_block)
    nby, nbx = ncy - k + 1, ncx - k + 1
    blocks = np.empty((N, nby, nbx, k, k, orientations))
    for i in range(k):
        for j in range(k):
            blocks[:, :, :, i, j] = cells[:, i:i + nby, j:j + nbx]
    blocks = blocks.reshape(N, nby, nbx, -1)
    eps = 1e-5
    if block_norm == "L1":
        blocks = blocks / (np.abs(blocks).sum(-1, keepdims=True) + eps)
    else:
        blocks = blocks / np.sqrt((blocks ** 2).sum(-1, keepdims=True) + eps ** 2)
        if block_norm == "L2-Hys":
            blocks = np.minimum(blocks, 0.2)
            blocks = blocks / np.sqrt((blocks ** 2).sum(-1, keepdims=True) + eps ** 2)
    return blocks.reshape(N, -1).astype(np.float32)
