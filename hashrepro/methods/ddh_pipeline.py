"""DDH's pipeline steps (Song, He, Fan, Gao 2017, §2): data and split, the label features
(k-means, contrastive, hand-crafted, ImageNet), the pair sampler, the network and its hash-layer
initialisation, training on eq. 12 and encoding (eq. 4), and :func:`prepare`, which runs
everything up to the trained network. Shared by the DDH recipe (:mod:`hashrepro.methods.ddh`),
its deep baselines (:mod:`.ddh_deep_baselines`) and the Flowers-17 task (:mod:`.ddh_flowers`),
which import this module, never the recipe (no import circle)."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..losses.ddh import DDHLoss
from ..models.cnnf import CNNF, DDHNet, load_imagenet_cnnf
from ..pseudolabels import (build_pseudo_labels, class_similarity, label_precision,
                            label_precision_curve)

from .ddh_config import FEATURES, PAPER, SMALL_DATASETS, Config  # noqa: F401  (PAPER: for the task modules)

#: Iterations averaged by the ``final_loss`` metric of DDH, DH and DeepBit (:func:`hashrepro.recipe.final_loss`).
FINAL_LOSS_LAST = 20

# --------------------------------------------------------------------------- data

def _load_and_split(cfg: Config):
    """Load the dataset and build (train, query, database) index arrays + protocol dict."""
    from ..data import load, split

    ds = load(cfg.dataset, size=int(cfg.image_size)) if cfg.image_size is not None else load(cfg.dataset)
    off = ds.official_split or {}
    has_official = ("train" in off and "test" in off) or ("database" in off and "query" in off)
    if cfg.dataset == "flowers17":
        # DDH §3.1: per class 40 train, 20 validation, 20 test (seeded; no datasplits.mat here)
        sp_ = split(ds, "flowers", seed=cfg.seed)
        query, database = sp_.query, sp_.database
        proto = dict(sp_.protocol)
    elif has_official:
        sp_ = split(ds, "official", seed=cfg.seed, database_includes_train=True)
        query, database = sp_.query, sp_.database
        proto = dict(sp_.protocol)
    else:
        sp_ = split(ds, "per_class", seed=cfg.seed, n_query_per_class=cfg.n_query_per_class,
                    n_train_per_class=0)
        query, database = sp_.query, sp_.database
        proto = dict(sp_.protocol)
        proto.update(split="per_class_query+rest_database")
    rng = np.random.default_rng(cfg.seed + 1)
    if cfg.n_query is not None and cfg.n_query < len(query):
        query = np.sort(rng.choice(query, cfg.n_query, replace=False))
    if cfg.n_database is not None and cfg.n_database < len(database):
        database = np.sort(rng.choice(database, cfg.n_database, replace=False))
    # the hasher trains on database images (labels unused): all of them or n_train of them
    if cfg.n_train is None or cfg.n_train >= len(database):
        train = database
    else:
        train = np.sort(rng.choice(database, cfg.n_train, replace=False))
    proto.update(n_train=int(len(train)), n_query=int(len(query)), n_database=int(len(database)),
                 database_includes_train=True, train_from="sampled from the database (labels unused)",
                 n_train_requested=cfg.n_train,
                 subsampled=bool(cfg.n_query is not None or cfg.n_database is not None))
    return ds, np.asarray(train), np.asarray(query), np.asarray(database), proto


def _chw_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) → uint8 tensor (N, C, H, W) (contiguous)."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


# --------------------------------------------------------------------------- cache

def _cache_dir(cfg: Config) -> Path | None:
    if cfg.cache_dir == "":
        return None
    if cfg.cache_dir is not None:
        return Path(cfg.cache_dir)
    try:
        from ..data.paths import cache_root
        return Path(cache_root()) / "ddh"
    except Exception:  # pragma: no cover - no data package
        return None


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- features

def resnet_pool5_features(images: np.ndarray, batch_size: int = 64, device="cpu") -> np.ndarray:
    """The paper's label features (§2.1): 2,048-d pool5 of an ImageNet ResNet-50 (torchvision).

    images : uint8 (N, H, W, C). Resized to 224, ImageNet-normalised. Returns (N, 2048) float32.
    Raises RuntimeError when the ImageNet weights are not in the torch cache (always the case
    on the offline machines of this project: nothing is downloaded).
    """
    import torchvision
    from torchvision.models import ResNet50_Weights

    weights = ResNet50_Weights.IMAGENET1K_V1
    hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not hub.is_file():
        raise RuntimeError(
            f"ImageNet ResNet-50 weights (the paper's pool5 label features, DDH §2.1) are not "
            f"available offline: expected {hub}. Put the torchvision file there on a machine with "
            f"internet, or use features='contrastive' | 'pixels' | 'hog' | 'gist'.")
    model = torchvision.models.resnet50(weights=weights).to(device).eval()
    model.fc = torch.nn.Identity()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x8 = _chw_uint8(images)
    out = []
    with torch.no_grad():
        for i in range(0, len(x8), batch_size):
            xb = x8[i:i + batch_size].float() / 255
            if xb.shape[1] == 1:
                xb = xb.expand(-1, 3, -1, -1)
            xb = torch.nn.functional.interpolate(xb, size=(224, 224), mode="bilinear", align_corners=False)
            out.append(model(((xb - mean) / std).to(device)).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def _handcrafted(name: str, images: np.ndarray, dataset=None, indices=None) -> np.ndarray:
    """GIST / HOG from :mod:`hashrepro.features` (owned by the baselines chapter); with a dataset,
    through its cache of whole-dataset features (shared with the shallow baselines)."""
    try:
        from .. import features as F
    except ImportError as e:
        raise RuntimeError(f"features={name!r} needs hashrepro.features (GIST/HOG), which is not "
                           f"importable here ({e}); use features='pixels' or 'contrastive'") from e
    if dataset is not None and hasattr(F, "dataset_features"):
        return np.asarray(F.dataset_features(dataset, name, indices=indices), dtype=np.float32)
    return np.asarray(F.extract(images, name), dtype=np.float32)


def kmeans_features(images: np.ndarray, n_centroids: int = 256, patch: int = 6, stride: int = 2,
                    n_patches: int = 100_000, iterations: int = 10, seed: int = 0, chunk: int = 500,
                    eps_norm: float = 10.0, eps_zca: float = 0.1, fit_images: np.ndarray | None = None) -> np.ndarray:
    """Single-layer unsupervised features of Coates, Lee & Ng (AISTATS 2011), a label-free
    feature source for Algorithm 1 that is cheap on a CPU.

    Random ``patch``×``patch`` patches of the images are brightness/contrast normalised and ZCA
    whitened; k-means (Lloyd, ``iterations`` steps, seeded) learns ``n_centroids`` centroids. Each
    image is then described by the "triangle" activation f_k = max(0, mean_k' d_k' − d_k) of its
    patches (every ``stride`` pixels; d_k = distance to centroid k), sum-pooled over the four
    image quadrants: (N, 4·n_centroids) float32. Only the images are used, never labels.

    images : uint8 (N, H, W, C), the images to describe.
    fit_images : uint8 (M, H, W, C), optional: learn whitening and centroids from these
        (e.g. the training images) instead of ``images``.
    """
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    x8 = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    N, C, H, W = x8.shape
    fit = arr if fit_images is None else np.asarray(fit_images)
    if fit.ndim == 3:
        fit = fit[..., None]
    Nf = len(fit)
    if H < patch or W < patch:
        raise ValueError(f"images of {H}x{W} are smaller than patch={patch}")
    d = C * patch * patch
    n_patches = int(min(n_patches, max(Nf * 20, n_centroids * 4)))
    ii = rng.integers(0, Nf, n_patches)
    rr = rng.integers(0, H - patch + 1, n_patches)
    cc = rng.integers(0, W - patch + 1, n_patches)
    xi = fit[ii].transpose(0, 3, 1, 2)                                # (n, C, H, W)
    ar = np.arange(patch)
    P = xi[np.arange(n_patches)[:, None, None, None], np.arange(C)[None, :, None, None],
           (rr[:, None] + ar)[:, None, :, None], (cc[:, None] + ar)[:, None, None, :]]
    P = P.reshape(n_patches, d).astype(np.float32)
    P = (P - P.mean(1, keepdims=True)) / np.sqrt(P.var(1, keepdims=True) + eps_norm)
    mu = P.mean(0)
    ev, V = np.linalg.eigh(np.cov(P - mu, rowvar=False))
    Wz = ((V * (1.0 / np.sqrt(np.maximum(ev, 0) + eps_zca))) @ V.T).astype(np.float32)
    Pw = (P - mu) @ Wz
    k = int(min(n_centroids, n_patches))
    cent = Pw[rng.choice(n_patches, k, replace=False)].copy()
    for _ in range(iterations):
        d2 = (Pw ** 2).sum(1)[:, None] - 2 * Pw @ cent.T + (cent ** 2).sum(1)[None]
        a = d2.argmin(1)
        cnt = np.bincount(a, minlength=k)
        sums = np.zeros_like(cent)
        np.add.at(sums, a, Pw)
        empty = cnt == 0
        cent[~empty] = sums[~empty] / cnt[~empty, None]
        if empty.any():
            cent[empty] = Pw[rng.choice(n_patches, int(empty.sum()), replace=False)]
    mu_t, Wz_t, cent_t = torch.from_numpy(mu), torch.from_numpy(Wz), torch.from_numpy(cent.astype(np.float32))
    c2 = (cent_t ** 2).sum(1)
    out = []
    with torch.no_grad():
        for s0 in range(0, N, chunk):
            U = F.unfold(x8[s0:s0 + chunk].float(), patch, stride=stride)          # (B, d, L)
            B, _, L = U.shape
            hh = (H - patch) // stride + 1
            ww = (W - patch) // stride + 1
            U = U.transpose(1, 2).reshape(-1, d)
            U = (U - U.mean(1, keepdim=True)) / torch.sqrt(U.var(1, unbiased=False, keepdim=True) + eps_norm)
            U = (U - mu_t) @ Wz_t
            z = torch.sqrt(torch.clamp((U ** 2).sum(1, keepdim=True) - 2 * U @ cent_t.T + c2, min=0))
            f = torch.clamp(z.mean(1, keepdim=True) - z, min=0).reshape(B, hh, ww, k)
            h2, w2 = hh // 2, ww // 2
            out.append(torch.cat([f[:, :h2, :w2].sum((1, 2)), f[:, :h2, w2:].sum((1, 2)),
                                  f[:, h2:, :w2].sum((1, 2)), f[:, h2:, w2:].sum((1, 2))], 1))
    return torch.cat(out).numpy().astype(np.float32)


def _kmeans_cached(cfg: "Config", images: np.ndarray, key_extra: dict,
                   fit_images: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    kd = {"v": 1, "k": cfg.kmeans_centroids, "stride": cfg.kmeans_stride, "seed": cfg.seed,
          "shape": list(np.asarray(images).shape), **key_extra}
    if fit_images is not None:
        kd["fit_shape"] = list(np.asarray(fit_images).shape)
    key = _key(kd)
    cdir = _cache_dir(cfg)
    path = cdir / f"kmeans_{key}.npy" if cdir is not None else None
    if path is not None and path.is_file():
        return np.load(path).astype(np.float32), {"kmeans_cache_hit": True}
    t0 = time.perf_counter()
    feats = kmeans_features(images, cfg.kmeans_centroids, stride=cfg.kmeans_stride, seed=cfg.seed,
                            fit_images=fit_images)
    info = {"kmeans_cache_hit": False, "kmeans_wall_time_s": time.perf_counter() - t0}
    if path is not None:
        cdir.mkdir(parents=True, exist_ok=True)
        tmp = cdir / f"kmeans_{key}.tmp.npy"
        np.save(tmp, feats.astype(np.float16))
        os.replace(tmp, path)
    return feats, info


def _pca(x: np.ndarray, dim: int | None, seed: int) -> np.ndarray:
    if dim is None or x.shape[1] <= dim:
        return x
    from sklearn.decomposition import PCA

    return PCA(dim, svd_solver="randomized", random_state=seed).fit_transform(x).astype(np.float32)


def _contrastive(cfg: Config, x8: torch.Tensor, device, cache_key_extra: dict) -> tuple[CNNF, np.ndarray, dict]:
    """Train (or load from cache) the SimCLR backbone on the training images; return it and
    its φ(x) features of those images."""
    from ..models.contrastive import encode_features, train_contrastive

    in_ch, size = int(x8.shape[1]), int(x8.shape[2])
    key = _key({"v": 1, "width": cfg.width, "fc_dim": cfg.fc_dim, "lrn": cfg.lrn, "in": in_ch, "size": size,
                "it": cfg.ssl_iterations, "bs": cfg.ssl_batch_size, "lr": cfg.ssl_lr,
                "t": cfg.ssl_temperature, "seed": cfg.seed, **cache_key_extra})
    cdir = _cache_dir(cfg)
    info = {"ssl_cache_key": key, "ssl_cache_hit": False, "ssl_wall_time_s": 0.0}
    backbone = CNNF(in_ch, size, cfg.width, cfg.fc_dim, cfg.lrn)
    if cdir is not None and (cdir / f"ssl_{key}.pt").is_file() and (cdir / f"ssl_{key}_feat.npy").is_file():
        saved = torch.load(cdir / f"ssl_{key}.pt", map_location="cpu", weights_only=False)
        backbone.load_state_dict(saved["backbone"])
        feats = np.load(cdir / f"ssl_{key}_feat.npy").astype(np.float32)
        info.update(ssl_cache_hit=True, ssl_wall_time_s=float(saved.get("wall_time_s", 0.0)),
                    ssl_final_loss=float(saved.get("final_loss", float("nan"))))
        return backbone, feats, info
    torch.manual_seed(cfg.seed)
    backbone = CNNF(in_ch, size, cfg.width, cfg.fc_dim, cfg.lrn)
    t0 = time.perf_counter()
    model, hist = train_contrastive(x8, backbone, iterations=cfg.ssl_iterations, batch_size=cfg.ssl_batch_size,
                                    lr=cfg.ssl_lr, temperature=cfg.ssl_temperature, seed=cfg.seed,
                                    device=device, progress=cfg.progress)
    feats = encode_features(model, x8, device=device)
    wall = time.perf_counter() - t0
    model.backbone.cpu()
    final = float(np.mean(hist["loss"][-20:])) if hist["loss"] else float("nan")
    info.update(ssl_wall_time_s=wall, ssl_final_loss=final)
    if cdir is not None:
        cdir.mkdir(parents=True, exist_ok=True)
        tmp = cdir / f"ssl_{key}.pt.tmp"
        torch.save({"backbone": model.backbone.state_dict(), "wall_time_s": wall, "final_loss": final}, tmp)
        np.save(cdir / f"ssl_{key}_feat.tmp.npy", feats.astype(np.float16))
        os.replace(cdir / f"ssl_{key}_feat.tmp.npy", cdir / f"ssl_{key}_feat.npy")
        os.replace(tmp, cdir / f"ssl_{key}.pt")
    return model.backbone, feats, info


@torch.no_grad()
def _backbone_features(backbone: CNNF, images: np.ndarray, device, batch_size: int = 500) -> np.ndarray:
    """φ(x) (full7 output) of uint8 images (N, H, W, C) → (N, fc_dim) float32."""
    backbone = backbone.to(device).eval()
    x8 = _chw_uint8(images)
    out = [backbone(x8[i:i + batch_size].float().div_(255.0).to(device)).float().cpu()
           for i in range(0, len(x8), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, backbone.fc_dim), np.float32)


def contrastive_features_all(cfg: Config, ds, train: np.ndarray, need: np.ndarray) -> tuple[np.ndarray, dict]:
    """Our stand-in for Table 4's "CNN" features: the full7 output φ(x) of the contrastive
    backbone (trained on the training images, labels unused; the same backbone that initialises
    DDH), for the images ``need`` (sorted indices into ``ds``). Cached beside the backbone."""
    from ..train import resolve_device

    device = resolve_device(cfg.device)
    key_extra = {"dataset": cfg.dataset, "train": hashlib.sha256(np.asarray(train).tobytes()).hexdigest()[:16]}
    backbone, _, info = _contrastive(dataclasses.replace(cfg, features="contrastive"), _chw_uint8(ds.images[train]),
                                     device, key_extra)
    cdir = _cache_dir(cfg)
    path = None
    if cdir is not None:
        path = cdir / f"ssl_{info['ssl_cache_key']}_all_{hashlib.sha256(np.asarray(need).tobytes()).hexdigest()[:12]}.npy"
        if path.is_file():
            return np.load(path).astype(np.float32), {**info, "feature_cache_hit": True}
    feats = _backbone_features(backbone, ds.images[need], device)
    if path is not None:
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, feats.astype(np.float16))
        os.replace(tmp, path)
    return feats, {**info, "feature_cache_hit": False}


def compute_features(cfg: Config, images: np.ndarray, x8: torch.Tensor | None = None, device="cpu",
                     cache_key_extra: dict | None = None, dataset=None,
                     indices: np.ndarray | None = None) -> tuple[np.ndarray, dict, CNNF | None]:
    """Features of the training images for Algorithm 1, by ``cfg.features``.

    images : uint8 (N, H, W, C) training images; ``dataset``/``indices`` (optional) let GIST/HOG
    use the shared whole-dataset feature cache of :func:`hashrepro.features.dataset_features`.
    Returns (features (N, D) float32, info dict, contrastive backbone or None).
    """
    info: dict = {"features": cfg.features}
    t0 = time.perf_counter()
    backbone = None
    if cfg.features == "contrastive":
        x8 = _chw_uint8(images) if x8 is None else x8
        backbone, feats, extra = _contrastive(cfg, x8, device, cache_key_extra or {})
        info.update(extra)
    elif cfg.features == "kmeans":
        feats, extra = _kmeans_cached(cfg, images, cache_key_extra or {})
        feats = np.sqrt(np.maximum(feats, 0))          # square root: tames the pooled sums
        info.update(extra)
    elif cfg.features == "pixels":
        feats = np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0
    elif cfg.features in ("hog", "gist"):
        feats = _handcrafted(cfg.features, images, dataset, indices)
    elif cfg.features == "efficientnet_lite0":       # ImageNet features (the paper: ResNet-50 pool5)
        from .. import features as F
        feats = (np.asarray(F.dataset_features(dataset, cfg.features, indices=indices,
                                               input_size=cfg.backbone_input_size), dtype=np.float32)
                 if dataset is not None else
                 F.extract(images, cfg.features, input_size=cfg.backbone_input_size, progress=False))
    elif cfg.features == "resnet":
        feats = resnet_pool5_features(images, device=device)
    else:  # pragma: no cover - validated
        raise ValueError(cfg.features)
    info["feature_dim"] = int(feats.shape[1])
    feats = _pca(feats, cfg.knn_pca_dim, cfg.seed)
    info["knn_dim"] = int(feats.shape[1])
    info["feature_wall_time_s"] = time.perf_counter() - t0
    return feats, info, backbone


# --------------------------------------------------------------------------- training

class _PairSampler:
    """Mini-batches of training indices and their (B, B) pairwise labels s_ij ∈ {−1, +1}."""

    def __init__(self, n: int, batch_size: int, S=None, labels=None, mode="anchor_positive", seed=0):
        self.n, self.bs, self.S, self.labels, self.mode = n, min(batch_size, n), S, labels, mode
        self.rng = np.random.default_rng(seed)
        if S is not None:
            self.S = S.tocsr()
            self.deg = np.diff(self.S.indptr)
        elif labels is not None:
            labels = np.asarray(labels)
            self.by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)} if labels.ndim == 1 else None

    def _positive(self, anchors: np.ndarray) -> np.ndarray:
        if self.S is not None:
            deg = self.deg[anchors]
            off = (self.rng.random(len(anchors)) * np.maximum(deg, 1)).astype(np.int64)
            pos = self.S.indices[np.minimum(self.S.indptr[anchors] + off, max(len(self.S.indices) - 1, 0))] \
                if len(self.S.indices) else anchors
            return np.where(deg > 0, pos, self.rng.integers(0, self.n, len(anchors)))
        if self.by_class is not None:
            lab = np.asarray(self.labels)[anchors]
            return np.array([self.rng.choice(self.by_class[c]) for c in lab])
        return self.rng.integers(0, self.n, len(anchors))

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mode == "uniform":
            idx = self.rng.choice(self.n, self.bs, replace=False)
        else:
            half = self.bs // 2
            anchors = self.rng.choice(self.n, self.bs - half, replace=False)
            idx = np.concatenate([anchors, self._positive(anchors[:half])])
        return idx, self.similarity(idx)

    def similarity(self, idx: np.ndarray) -> np.ndarray:
        if self.S is not None:
            s = np.where(self.S[idx][:, idx].toarray() > 0, 1.0, -1.0).astype(np.float32)
        else:
            s = class_similarity(self.labels, idx)
        s[idx[:, None] == idx[None, :]] = 1.0          # repeated images are similar to themselves
        return s


def _net_input(x: torch.Tensor) -> torch.Tensor:
    """Network input from stored rows: uint8 images (N, C, H, W) → float in [0, 1]; cached
    backbone features (N, D) float32 → unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _build_net(cfg: Config, in_ch: int, size: int, backbone: CNNF | None) -> DDHNet:
    torch.manual_seed(cfg.seed)
    if cfg.backbone != "scratch":
        # frozen ImageNet backbone (features cached): trainable head (CNN-F's full6/full7 part)
        # + hash layer; ``in_ch`` is the feature width here
        from ..models.heads import FeatureMLP
        return DDHNet(FeatureMLP(in_ch, cfg.head_hidden), cfg.bits)
    net = DDHNet(CNNF(in_ch, size, cfg.width, cfg.fc_dim, cfg.lrn), cfg.bits)
    if cfg.init == "imagenet":
        load_imagenet_cnnf()
    if cfg.init == "contrastive":
        if backbone is None:
            raise ValueError("init='contrastive' needs the contrastive backbone")
        net.backbone.load_state_dict(copy.deepcopy(backbone.state_dict()))
    return net


@torch.no_grad()
def init_hash_layer(net: DDHNet, x8: torch.Tensor, n: int = 512, target_std: float = 1.0, seed: int = 0) -> dict:
    """Data-dependent initialisation of the hash layer (the paper does not give one).

    W is drawn N(0, 1), then scaled so that z = Wᵀφ(x) + c has standard deviation
    ``target_std`` per bit on ``n`` training images, and c = −Wᵀ mean φ(x) centres every bit
    (about half the images start on each side: balanced bits). Without it the quartic pair term
    of eq. 10 explodes on the large φ of a pretrained backbone, or every image gets the same
    code on a random one (φ almost constant). x8: uint8 (N, C, H, W).
    """
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x8), generator=g)[:n]
    was = net.training
    dev = next(net.parameters()).device
    xb = _net_input(x8[idx]).to(dev)
    if isinstance(net.phi_norm, torch.nn.BatchNorm1d):     # set the running statistics first
        net.train()
        net.phi_norm.reset_running_stats()
        net.phi_norm.momentum = None                       # cumulative average over the calls
        for i in range(0, len(xb), 128):
            net.features(xb[i:i + 128])
        net.phi_norm.momentum = 0.1
    net.eval()
    phi = net.features(xb)
    w = torch.randn(net.hash.weight.shape, generator=g).to(dev)
    z = (phi - phi.mean(0)) @ w.t()
    scale = target_std / z.std(0).clamp_min(1e-8)
    net.hash.weight.copy_(w * scale[:, None])
    net.hash.bias.copy_(-(phi.mean(0) @ net.hash.weight.t()))
    net.train(was)
    return {"phi_mean_norm": float(phi.mean(0).norm()), "phi_std": float(phi.std(0).mean())}


def train_ddh(cfg: Config, net: DDHNet, x8: torch.Tensor, sampler: _PairSampler, device) -> dict:
    """Train ``net`` on eq. 12 with mini-batches from ``sampler``; returns loss history info."""
    from ..train import fit

    net.to(device).train()
    init_hash_layer(net, x8, seed=cfg.seed)
    crit = DDHLoss(cfg.lambda1, cfg.lambda2)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    parts: list[dict] = []
    if cfg.grad_clip is not None:
        params = [p for p in net.parameters() if p.requires_grad]
        plain_step = opt.step

        def clipped_step(*a, **k):
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            return plain_step(*a, **k)

        opt.step = clipped_step

    def step(it):
        idx, s = sampler.sample()
        xb = _net_input(x8[torch.from_numpy(idx)]).to(device)
        z = net(xb)
        loss = crit(z, torch.from_numpy(s).to(device), net.hash)
        if it % 10 == 0:
            parts.append({"it": it, **crit.last_parts})
        return loss

    hist = fit(step, optimizer=opt, iterations=cfg.iterations, desc=f"ddh {cfg.bits}b", progress=cfg.progress)
    return {"loss": hist.loss, "parts": parts, "wall_time_s": hist.wall_time_s}


@torch.no_grad()
def encode_codes(net: DDHNet, x8: torch.Tensor, device, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """z and bits01 = [z >= 0] (eq. 4, b = +1 ↔ bit 1) for uint8 images (N, C, H, W)."""
    net.eval()
    zs = []
    for i in range(0, len(x8), batch_size):
        zs.append(net(_net_input(x8[i:i + batch_size]).to(device)).float().cpu())
    z = torch.cat(zs).numpy() if zs else np.zeros((0, net.n_bits), np.float32)
    return z, (z >= 0).astype(np.uint8)


# --------------------------------------------------------------------------- run

def _inputs(cfg: Config, ds, idx: np.ndarray) -> torch.Tensor:
    """Network inputs of rows ``idx``: uint8 images (N, C, H, W), or the cached backbone features
    (N, D) float32 in the pretrained regime."""
    if cfg.backbone == "scratch":
        return _chw_uint8(ds.images[idx])
    from ..features import dataset_features
    feats = dataset_features(ds, cfg.backbone, indices=idx, input_size=cfg.backbone_input_size)
    return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))


def prepare(cfg: Config):
    """Data, split, features and pseudo labels (everything before the network)."""
    from ..train import resolve_device, seed_everything

    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    ds, train, query, database, proto = _load_and_split(cfg)
    if cfg.backbone != "scratch":
        # pretrained regime: the network's input is the cached pooled features of the backbone
        from ..features import backbone_cache_info, dataset_features
        t_feat = time.perf_counter()
        all_feats = dataset_features(ds, cfg.backbone, input_size=cfg.backbone_input_size)
        x8_train = torch.from_numpy(np.ascontiguousarray(all_feats[train], dtype=np.float32))
        proto["backbone"] = f"{cfg.backbone} (ImageNet, frozen; pooled features cached)"
        cinfo = backbone_cache_info(ds, cfg.backbone, input_size=cfg.backbone_input_size) or {}
        backbone_info = {"backbone_feature_read_s": time.perf_counter() - t_feat,
                         "backbone_input_size": cinfo.get("input_size"),
                         "backbone_normalisation": cinfo.get("normalisation"),
                         "backbone_weights_sha256": cinfo.get("weights_sha256"),
                         "backbone_extraction_images_per_s": cinfo.get("images_per_s")}
    else:
        x8_train = _chw_uint8(ds.images[train])
        backbone_info = {}
    out = {"ds": ds, "train": train, "query": query, "database": database, "protocol": proto,
           "device": device, "x8_train": x8_train, "backbone": None, "metrics": {}, "curves": {},
           "info": {k: v for k, v in backbone_info.items() if v is not None}}
    y_train = ds.labels[train]
    need_ssl = cfg.features == "contrastive" or (cfg.init == "contrastive" and not cfg.labels_only
                                                 and cfg.backbone == "scratch")
    feats = None
    if not cfg.supervised or cfg.labels_only or need_ssl:
        key_extra = {"dataset": cfg.dataset, "train": hashlib.sha256(np.asarray(train).tobytes()).hexdigest()[:16]}
        if cfg.features != "contrastive" and need_ssl:
            c2 = dataclasses.replace(cfg, features="contrastive")
            _, sinfo, out["backbone"] = compute_features(c2, ds.images[train], x8_train, device, key_extra)
            out["info"].update({k: v for k, v in sinfo.items() if k.startswith("ssl")})
        if not cfg.supervised or cfg.labels_only:
            feats, finfo, bb = compute_features(cfg, ds.images[train], x8_train, device, key_extra,
                                                dataset=ds, indices=train)
            out["backbone"] = out["backbone"] or bb
            out["info"].update(finfo)
    if cfg.supervised and not cfg.labels_only:
        out["S"] = None
        out["info"]["labels_from"] = "class labels (supervised variant)"
    else:
        pl = build_pseudo_labels(feats, cfg.k1, cfg.k2, expand=cfg.expand)
        out["S"] = pl.S
        m = out["metrics"]
        m["label_precision"] = label_precision(pl.S, y_train)
        m["label_precision_knn"] = label_precision(pl.S1, y_train)
        m["positives_per_item"] = pl.positives_per_item()
        m["knn_positives_per_item"] = float(pl.S1.nnz) / max(pl.S1.shape[0], 1)
        m["knn_seconds"] = pl.timings["knn"]
        m["expansion_seconds"] = pl.timings["expansion"]
        m["pseudo_label_seconds"] = pl.timings["total"]
        out["info"]["labels_from"] = f"{cfg.features} features, Algorithm 1 (K1={cfg.k1}, K2={cfg.k2}, expand={cfg.expand})"
        if cfg.label_curve:
            ks = [k for k in cfg.label_ks if k < len(train)]
            curve = label_precision_curve(feats, y_train, ks=ks, k2=cfg.k2, expand_max_k=cfg.label_expand_max_k)
            out["curves"]["label_precision"] = {k: curve[k] for k in (
                "k", "knn_precision", "knn_positives", "expanded_precision", "expanded_positives")}
            m["label_curve_seconds"] = curve["seconds"]
    return out


# --------------------------------------------------------------------------- records

def config_with_info(cfg: Config, info: dict) -> dict:
    """The record's config: ``cfg.to_dict()`` and ``info``'s text and flag entries under ``"info"``."""
    config_d = cfg.to_dict()
    config_d["info"] = {k: v for k, v in info.items() if isinstance(v, (str, bool))}
    return config_d


def numeric_info(info: dict) -> dict:
    """The numbers of ``info`` (timings, counts) as float metrics."""
    return {k: float(v) for k, v in info.items()
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)}
