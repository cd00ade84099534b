"""MCH's training routines for the base hashing model (§4.1, Table 1; Algorithm 2, first line).

* :func:`pretrain_backbone` -- the scratch regime's stand-in for "AlexNet pretrained on ImageNet":
  the small CNN trained as a multi-label classifier on the training split (cached on disk);
* :func:`train_base` -- the base model X with its Table-1 loss (KSH on frozen features, or HashNet,
  ADSH, DCH, MMHH end to end), returning a hasher (:mod:`hashrepro.models.mch_hashers`);
* :func:`backbone_features` -- the pretrained small CNN's features (the shallow baselines' input).

The agent (Algorithm 2, §4.2) is trained by :func:`hashrepro.methods.mch_agent.train_agent`.
Every function takes the run's :class:`hashrepro.methods.mch.Config` (``cfg``).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..crop_features import crop_resize
from ..finetune import finetune_start, imagenet_tail
from ..data.crops import CropBank
from ..losses.pairwise import ADSHLoss, _sign, hashnet_beta, make_loss, similarity
from ..models.mch_hashers import DeepHasher, FeatureHasher, KSHHasher
from ..models.mch_heads import FeatureBackbone, KSHModel, KSHOnFeatures, TunedFeatureBackbone
from ..models.small_cnn import HashModel, SmallCNN
from ..paths import repo_root
from ..train import fit

__all__ = ["RELAXATION", "pretrain_backbone", "loss_kwargs", "new_backbone", "train_base", "reencode_bank",
           "backbone_features"]

#: Table 1's relaxation of each base model's codes during training.
RELAXATION = {"ksh": "sigmoid", "hashnet": "tanh", "adsh": "continuous", "dch": "continuous", "mmhh": "continuous"}


def _cache_path(cfg, tag: str, extra: dict) -> Path | None:
    """Cache file for a pretrained backbone: ``$HASHREPRO_CACHE`` or ``<repo>/data/cache/mch`` in a
    checkout (git-ignored), else ``~/.cache/hashrepro/mch`` (never inside the data mirror, which may
    be read-only or shared)."""
    if not cfg.cache:
        return None
    key = json.dumps({"tag": tag, **extra}, sort_keys=True, default=str)
    h = hashlib.sha1(key.encode()).hexdigest()[:16]
    if os.environ.get("HASHREPRO_CACHE"):
        root = Path(os.environ["HASHREPRO_CACHE"])
    elif (repo_root() / "pyproject.toml").is_file():
        root = repo_root() / "data" / "cache" / "mch"
    else:
        root = Path.home() / ".cache" / "hashrepro" / "mch"
    return root / f"{tag}-{h}.pt"


def base_optimizer(groups: list[dict], weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """X's optimiser over its parameter groups (each with its own ``lr``): Adam (the preset, a deviation
    from the authors' SGD, see the module docstring) when ``weight_decay`` is 0, else AdamW with that
    decoupled weight decay (``Config.base_weight_decay``, a value chosen on validation names the runs)."""
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if weight_decay == 0:
        return torch.optim.Adam(groups)
    return torch.optim.AdamW(groups, weight_decay=weight_decay)


def pretrain_backbone(cfg, x_train: torch.Tensor, y_train: np.ndarray, device: torch.device,
                      generator: torch.Generator, x_tiles: torch.Tensor | None = None,
                      y_tiles: np.ndarray | None = None):
    """The stand-in for "AlexNet pretrained on ImageNet": the small CNN trained as a multi-label
    classifier (sigmoid cross-entropy) on the training split — the whole training images and,
    when given, their single object tiles (``x_tiles``, one-hot ``y_tiles``), the way ImageNet is
    an object-centric set that teaches a backbone to recognise an object filling the frame.
    Only the training split is used; the hashing stages never see the tiles. Cached on disk
    (keyed by every setting that affects it) so the 16/32/64-bit runs of one data set share it.

    Returns (backbone state_dict, wall seconds, cached: bool).
    """
    extra = dict(dataset=cfg.dataset, n=cfg.n_images, grid=cfg.grid, seed=cfg.seed, nq=cfg.n_query_per_class,
                 nt=cfg.n_train_per_class, size=cfg.input_size, widths=cfg.widths, feat=cfg.feat_dim,
                 iters=cfg.pretrain_iters, lr=cfg.pretrain_lr, bs=cfg.batch_size, tiles=x_tiles is not None, v=2)
    path = _cache_path(cfg, "backbone", extra)
    if path is not None and path.exists():
        return torch.load(path, map_location="cpu", weights_only=True), 0.0, True
    c = x_train.shape[1]
    net = SmallCNN(c, cfg.widths, cfg.feat_dim).to(device)
    head = nn.Linear(cfg.feat_dim, y_train.shape[1]).to(device)
    y = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=cfg.pretrain_lr)
    n = len(x_train)

    if x_tiles is not None and len(x_tiles):
        yt = torch.from_numpy(np.asarray(y_tiles, dtype=np.float32))
    else:
        x_tiles = None

    def step(it):
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=generator)
        xb, yb = x_train[idx], y[idx]
        if x_tiles is not None:
            half = max(1, len(idx) // 2)
            tdx = torch.randint(0, len(x_tiles), (half,), generator=generator)
            xb, yb = torch.cat([xb[:len(idx) - half], x_tiles[tdx]]), torch.cat([yb[:len(idx) - half], yt[tdx]])
        return F.binary_cross_entropy_with_logits(head(net(xb.to(device))), yb.to(device))

    net.train()
    hist = fit(step, optimizer=opt, iterations=cfg.pretrain_iters, desc="pretrain backbone", progress=cfg.progress)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
    return state, hist.wall_time_s, False


def loss_kwargs(cfg) -> dict:
    """Loss options a base model takes from the Config (only MMHH's γ so far)."""
    if cfg.base == "mmhh":
        return {"gamma": float(cfg.mmhh_gamma)}
    return {}


def new_backbone(cfg, in_dim: int) -> nn.Module:
    """An untrained backbone of the regime: the small CNN on ``in_dim`` image channels (scratch) or
    a :class:`~hashrepro.models.mch_heads.FeatureBackbone` on ``in_dim``-d cached features."""
    if cfg.backbone == "scratch":
        return SmallCNN(in_dim, cfg.widths, cfg.feat_dim)
    return FeatureBackbone(in_dim, hidden=cfg.head_hidden)


def train_base(cfg, backbone_state: dict, x_train: torch.Tensor, y_train: np.ndarray,
               device: torch.device, generator: torch.Generator, bank: CropBank | None = None):
    """Learn the base hashing model (Algorithm 2, first line) with its Table-1 loss.

    Parameters
    ----------
    x_train : float (N, C, S, S) whole training images at the network input size (scratch), or
        float (N, D) their cached backbone features (pretrained regime: ``bank`` given).
    y_train : (N, C) multi-hot labels.
    backbone_state : state dict of :func:`new_backbone` (the pretrained small CNN, or the
        standardisation of the cached features).
    bank : the cached crop features (pretrained regime); the hasher then codes dataset rows. With
        ``cfg.finetune="last_block"`` (not KSH): the cached *maps* entering the last block (``x_train``
        too); the block + head conv train with the head, then every crop is re-encoded
        (:func:`reencode_bank`) and the hasher codes the tuned pooled features (``info["reencode_s"]``).

    Returns
    -------
    (hasher, info) where ``hasher.embed`` maps images to (features, pre-activations) and ``info``
    holds ``loss`` (per iteration), ``wall_time_s`` and, for ADSH, ``V`` (N, Q) the learned
    ±1 database codes of the training images.
    """
    q = cfg.bits
    n = len(x_train)
    c = x_train.shape[1]
    s_all = similarity(y_train)  # (N, N)
    t0 = time.perf_counter()
    info: dict = {}
    if cfg.base == "ksh":
        backbone = new_backbone(cfg, c).to(device)
        backbone.load_state_dict(backbone_state)
        backbone.eval()
        with torch.no_grad():
            feats = torch.cat([backbone(x_train[i:i + 512].to(device)) for i in range(0, n, 512)])
        rng = np.random.default_rng(cfg.seed)
        m = min(cfg.ksh_anchors, n)
        anchors = feats[torch.from_numpy(rng.choice(n, m, replace=False))]
        ksh = KSHModel(anchors, q, feats).to(device)
        lab = torch.from_numpy(rng.choice(n, min(cfg.ksh_samples, n), replace=False))
        kf = ksh.kernel(feats[lab]).detach()
        s = s_all[lab][:, lab].to(device)
        loss_fn = make_loss("ksh", q)
        opt = torch.optim.Adam([ksh.A], lr=1e-2)

        def step(it):
            return loss_fn(2 * torch.sigmoid(kf @ ksh.A) - 1, None, s)

        hist = fit(step, optimizer=opt, iterations=max(cfg.base_iters, 1), desc="KSH", progress=cfg.progress)
        info["loss"] = hist.loss
        if bank is None:
            hasher = KSHHasher(backbone, ksh.eval(), cfg.input_size, device)
        else:
            hasher = FeatureHasher(KSHOnFeatures(backbone, ksh.eval()), bank, device)
    else:
        tuned = bank is not None and getattr(cfg, "finetune", "none") != "none"
        if tuned:  # x_train: maps entering the tuned blocks; the blocks + head conv train (finetune_lr_mult)
            head = FeatureBackbone(int(backbone_state["mean"].shape[0]), hidden=cfg.head_hidden)
            head.load_state_dict(backbone_state)
            model = HashModel(TunedFeatureBackbone(imagenet_tail(cfg.backbone, cfg.backbone_size, finetune_start(cfg.finetune)), head), q, RELAXATION[cfg.base]).to(device)
            body = [{"params": list(model.backbone.tail.parameters()), "lr": cfg.base_lr * cfg.finetune_lr_mult},
                    {"params": list(model.backbone.head.parameters()), "lr": cfg.base_lr}]
        else:
            model = HashModel(new_backbone(cfg, c), q, RELAXATION[cfg.base]).to(device)
            model.backbone.load_state_dict(backbone_state)
            body = [{"params": list(model.backbone.parameters()), "lr": cfg.base_lr}]
        loss_fn = make_loss(cfg.base, q, **loss_kwargs(cfg)).to(device)
        groups = body + [{"params": list(model.hash.parameters()), "lr": cfg.base_lr * cfg.hash_lr_mult}]
        opt = base_optimizer([g for g in groups if g["params"]], float(cfg.base_weight_decay))
        model.train()
        bs = min(cfg.batch_size, n)
        if cfg.base == "adsh":
            hist_loss = _train_adsh(cfg, model, loss_fn, opt, x_train, s_all, device, generator, info)
        else:
            # HashNet continuation β_t = (1 + γ t)^0.5 every 200 iterations over 10k iterations
            # (β ends ≈ 7.1); rescaled so that our shorter schedule ends at the same β.
            gamma_eff = 0.005 * 10000.0 / max(cfg.base_iters, 1)
            step_eff = max(1, int(round(200 * cfg.base_iters / 10000.0)))

            def step(it):
                idx = torch.randint(0, n, (bs,), generator=generator)
                u = model(x_train[idx].to(device))
                return loss_fn(u, None, s_all[idx][:, idx].to(device))

            def on_it(it):
                if cfg.base == "hashnet":
                    model.beta = hashnet_beta(it + 1, step=step_eff, gamma=gamma_eff)

            hist_loss = fit(step, optimizer=opt, iterations=cfg.base_iters, on_iteration=on_it,
                            desc=cfg.base, progress=cfg.progress).loss
        info["loss"] = hist_loss
        model.eval()
        if tuned:  # every cached crop through the tuned block once; the hasher codes those features
            t1 = time.perf_counter()
            bank = reencode_bank(model.backbone.tail, bank, device)
            model.backbone = model.backbone.head
            info["reencode_s"] = time.perf_counter() - t1
        hasher = DeepHasher(model, cfg.input_size, device) if bank is None else FeatureHasher(model, bank, device)
    info["wall_time_s"] = time.perf_counter() - t0
    return hasher, info


@torch.no_grad()
def reencode_bank(tail: nn.Module, maps: CropBank, device, batch_size: int = 512) -> CropBank:
    """Every cached crop's maps (a :class:`CropBank` of flattened maps, (n, C·h·w) per crop) through
    the fine-tuned ``tail`` → a :class:`CropBank` of its pooled features (n, 1280), same rows and groups."""
    tail.eval()

    def enc(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(-1, x.shape[-1])
        out = [tail(torch.from_numpy(np.ascontiguousarray(flat[i:i + batch_size], dtype=np.float32)).to(device))
               .float().cpu().numpy() for i in range(0, len(flat), batch_size)]
        return np.concatenate(out).reshape(*x.shape[:-1], -1)

    return CropBank(enc(np.asarray(maps.whole_feats)), {s: (rows, enc(np.asarray(f))) for s, (rows, f) in maps.groups.items()})


def _train_adsh(cfg, model, loss_fn: ADSHLoss, opt, x_train, s_all, device, generator, info):
    """ADSH's alternating optimisation (Jiang & Li 2018; ADSH_pytorch): T_out outer iterations;
    each samples Ω (|Ω| = adsh_omega) training points as queries, trains the network on
    Σ_{i∈Ω, j} (u_iᵀ v_j − Q s̃_ij)² + γ ||v_i − u_i||² (``base_iters / T_out`` mini-batches), then
    updates the database codes V column by column in closed form."""
    q = cfg.bits
    n = len(x_train)
    g = np.random.default_rng(cfg.seed + 1)
    V = torch.from_numpy(np.where(g.random((n, q)) < 0.5, -1.0, 1.0).astype(np.float32))
    s_pm = 2.0 * s_all - 1.0  # ±1 similarities (Table 1: Q(2s − 1))
    inner = max(1, cfg.base_iters // cfg.adsh_outer)
    losses: list[float] = []
    for outer in range(cfg.adsh_outer):
        omega = torch.from_numpy(g.choice(n, min(cfg.adsh_omega, n), replace=False))
        bs = min(cfg.batch_size, len(omega))
        Vd = V.to(device)

        def step(it):
            sel = omega[torch.randint(0, len(omega), (bs,), generator=generator)]
            u = model(x_train[sel].to(device))
            return loss_fn(u, Vd, s_all[sel].to(device), v_self=Vd[sel])

        model.train()
        losses += fit(step, optimizer=opt, iterations=inner, desc=f"ADSH {outer + 1}/{cfg.adsh_outer}",
                      progress=cfg.progress).loss
        model.eval()
        with torch.no_grad():
            U = torch.cat([model(x_train[omega[i:i + 512]].to(device)).cpu() for i in range(0, len(omega), 512)])
        barU = torch.zeros(n, q)
        barU[omega] = U
        Qm = -2.0 * q * s_pm[omega].T @ U - 2.0 * loss_fn.gamma * barU  # (n, Q)
        for k in range(q):
            rest = [j for j in range(q) if j != k]
            vk = -_sign(2.0 * V[:, rest] @ (U[:, rest].T @ U[:, k]) + Qm[:, k])
            V[:, k] = vk
    info["V"] = V
    return losses


def backbone_features(cfg, backbone_state, u8, sp, device):
    """Pretrained-backbone features (the "AlexNet fc7" of the shallow baselines) of train/query/db."""
    net = SmallCNN(u8.shape[1], cfg.widths, cfg.feat_dim).to(device)
    net.load_state_dict(backbone_state)
    net.eval()
    out = []
    with torch.no_grad():
        for part in (sp.train, sp.query, sp.database):
            fs = [net(crop_resize(u8[part[i:i + 512]], None, cfg.input_size).to(device)).cpu()
                  for i in range(0, len(part), 512)]
            out.append(torch.cat(fs).numpy().astype(np.float64))
    return out
