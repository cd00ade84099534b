"""Tests of hashrepro.features: GIST (LMgist port), pixels, HOG, CNN features, caching."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from hashrepro import features
from hashrepro.features import gabor_transfer_functions, gist, hog, pixels


def _grating(n, size=32, angle=0.0, period=4.0, seed=0):
    """(n, size, size, 3) uint8 sinusoidal gratings whose stripes run along ``angle``
    (0: vertical stripes, intensity varying along x) with random phase."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    out = []
    for _ in range(n):
        ph = rng.rand() * 2 * np.pi
        u = np.cos(angle) * xx + np.sin(angle) * yy
        img = 127.5 + 120 * np.sin(2 * np.pi * u / period + ph)
        out.append(np.repeat(img[..., None], 3, axis=-1))
    return np.clip(np.array(out), 0, 255).astype(np.uint8)


def test_gabor_bank_shape_and_peaks():
    n = 96
    G = gabor_transfer_functions((8, 8, 8, 8), n)
    assert G.shape == (32, n, n)
    assert np.all(G >= 0) and np.all(G <= 1 + 1e-12)
    # the finest-scale, orientation-0 filter peaks at radius 0.3 * n on the fx axis
    fr_peak = np.unravel_index(np.argmax(G[0]), G[0].shape)
    f = np.fft.fftfreq(n) * n
    radius = np.hypot(f[fr_peak[0]], f[fr_peak[1]])
    assert abs(radius - 0.3 * n) <= 1.0
    # coarser scales peak at lower frequency (0.3 / 1.85^s cycles per pixel)
    for s in range(1, 4):
        pk = np.unravel_index(np.argmax(G[8 * s]), G[0].shape)
        assert abs(np.hypot(f[pk[0]], f[pk[1]]) - 0.3 / 1.85 ** s * n) <= 1.0


def test_gist_shape_dtype_and_determinism():
    imgs = (np.random.RandomState(0).rand(5, 32, 32, 3) * 255).astype(np.uint8)
    g = gist(imgs, progress=False)
    assert g.shape == (5, 512) and g.dtype == np.float32
    assert np.all(np.isfinite(g)) and np.all(g >= 0)
    np.testing.assert_array_equal(g, gist(imgs, progress=False, batch_size=2))
    # grey input (N, H, W) and (N, H, W, 1) give the same as a 3-channel copy
    grey = imgs.mean(-1).astype(np.uint8)
    np.testing.assert_allclose(gist(grey, progress=False), gist(grey[..., None].repeat(3, -1), progress=False),
                               rtol=1e-5, atol=1e-6)


def test_gist_other_sizes_and_constant_images():
    imgs = (np.random.RandomState(1).rand(3, 28, 28, 1) * 255).astype(np.uint8)
    assert gist(imgs, progress=False).shape == (3, 512)
    assert gist(imgs, progress=False, n_blocks=2, orientations=(4, 4)).shape == (3, 32)
    assert gist(imgs, image_size=32, progress=False).shape == (3, 512)
    const = np.full((2, 32, 32, 3), 77, np.uint8)
    g = gist(const, progress=False)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, 0.0, atol=1e-4)  # no structure, no energy


def test_gist_orientation_selectivity():
    # stripes varying along x excite the orientation-0 filters (frequency on the fx axis);
    # stripes varying along y excite the orientation-4 (90 degree) filters
    gx = gist(_grating(2, angle=0.0), progress=False).reshape(2, 4, 8, 16).mean((0, 3))
    gy = gist(_grating(2, angle=np.pi / 2), progress=False).reshape(2, 4, 8, 16).mean((0, 3))
    assert gx[0].argmax() == 0, gx[0]
    assert gy[0].argmax() == 4, gy[0]


def test_gist_validation():
    with pytest.raises(ValueError, match="shape"):
        gist(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="n_blocks"):
        gist(np.zeros((1, 32, 32, 1), np.uint8), n_blocks=0)


def test_pixels():
    imgs = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    p = pixels(imgs)
    assert p.shape == (2, 48) and p.dtype == np.float32 and p.max() <= 1.0
    assert pixels(imgs, grey=True).shape == (2, 16)


def test_hog_shape_and_edge_orientation():
    imgs = np.zeros((2, 32, 32, 3), np.uint8)
    imgs[0, :, 16:] = 255   # vertical edge: horizontal gradient, orientation 0 deg
    imgs[1, 16:, :] = 255   # horizontal edge: vertical gradient, orientation 90 deg
    h = hog(imgs)
    assert h.shape == (2, 3 * 3 * 2 * 2 * 9) and h.dtype == np.float32
    bins = h.reshape(2, -1, 9).sum(1)
    assert bins[0].argmax() == 0
    assert bins[1].argmax() == 4
    # L2-Hys blocks have unit norm (or zero)
    blocks = h.reshape(2, 9, 36)
    norms = np.linalg.norm(blocks, axis=-1)
    assert np.all((np.abs(norms - 1) < 1e-3) | (norms < 1e-6))
    with pytest.raises(ValueError, match="block_norm"):
        hog(imgs, block_norm="nope")
    with pytest.raises(ValueError, match="too small"):
        hog(np.zeros((1, 8, 8, 1), np.uint8))


def test_cnn_features_random_weights_warn_and_shape():
    torchvision = pytest.importorskip("torchvision")  # noqa: F841
    imgs = (np.random.RandomState(0).rand(3, 32, 32, 3) * 255).astype(np.uint8)
    with pytest.warns(UserWarning, match="randomly initialised"):
        f = features.cnn_features(imgs, arch="resnet18", weights=None, image_size=64, device="cpu",
                                  progress=False)
    assert f.shape == (3, 512) and f.dtype == np.float32
    with pytest.raises(ValueError, match="unknown backbone"):
        features.cnn_features(imgs, arch="not-a-net")


def test_cnn_features_imagenet_unavailable_is_a_clear_error(monkeypatch):
    import torchvision

    def boom(name, weights=None):
        if weights is not None:
            raise OSError("no network")
        return torchvision.models.resnet18()

    monkeypatch.setattr(torchvision.models, "get_model", boom)
    with pytest.raises(RuntimeError, match="not available offline"):
        features.cnn_features(np.zeros((1, 32, 32, 3), np.uint8), arch="resnet18", weights="imagenet")


def test_cnn_features_module_backbone():
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = features.cnn_features(np.zeros((2, 16, 16, 3), np.uint8), arch=net, image_size=None, device="cpu",
                                  progress=False)
    assert f.shape == (2, 4)


def test_extract_by_name():
    imgs = np.zeros((2, 32, 32, 1), np.uint8)
    assert features.extract(imgs, "pixels").shape == (2, 1024)
    with pytest.raises(ValueError, match="unknown feature"):
        features.extract(imgs, "sift")


def test_dataset_features_cache(tmp_path, monkeypatch):
    from hashrepro.data import Dataset

    monkeypatch.setenv("HASHREPRO_CACHE", str(tmp_path))
    imgs = (np.random.RandomState(0).rand(6, 32, 32, 3) * 255).astype(np.uint8)
    ds = Dataset(name="toy", images=imgs, labels=np.arange(6) % 2, classes=["a", "b"])
    calls = []
    real = features.FEATURES["hog"]

    def counting(images, **kw):
        calls.append(len(images))
        return real(images, **kw)

    monkeypatch.setitem(features.FEATURES, "hog", counting)
    a = features.dataset_features(ds, "hog", indices=[0, 2])
    b = features.dataset_features(ds, "hog", indices=[1, 2, 5])
    assert calls == [6]  # the whole dataset once, then read from the cache
    np.testing.assert_array_equal(a[1], b[1])
    files = list((tmp_path / "features").glob("toy_hog_*.npy"))
    assert len(files) == 1 and not list((tmp_path / "features").glob("*.tmp"))
    # other options -> another cache file
    features.dataset_features(ds, "hog", orientations=6)
    assert len(list((tmp_path / "features").glob("toy_hog_*.npy"))) == 2
