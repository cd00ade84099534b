"""A small self-supervised contrastive model (SimCLR-style) trained on unlabelled images.

DDH (§2.1) builds its pseudo labels from ImageNet-pretrained ResNet pool5 features and
initialises CNN-F from ImageNet (§2.4). Neither set of weights exists on these offline
machines, so the chapter offers a label-free substitute trained on the *training images
only*: the CNN-F-like backbone of :mod:`hashrepro.models.cnnf` plus a 2-layer projection
head, trained with the NT-Xent loss (Chen et al. 2020, SimCLR) on two random augmentations of
each image. Its full7 features feed Algorithm 1, and its weights initialise the DDH network.

Augmentations are batched tensor operations (no PIL, no per-image Python loop): random
resized crop (one affine ``grid_sample`` per batch), horizontal flip, brightness / contrast /
saturation jitter and random greyscale.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cnnf import CNNF

__all__ = ["augment", "nt_xent", "ContrastiveModel", "train_contrastive", "encode_features"]


def augment(x: torch.Tensor, generator: torch.Generator | None = None, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3),
            flip: float = 0.5, jitter: float = 0.4, grey: float = 0.2, crop: bool = True) -> torch.Tensor:
    """Random SimCLR-style augmentation of a batch (N, C, H, W) in [0, 1] → same shape.

    crop: random resized crop with area fraction in ``scale`` and aspect ratio in ``ratio``;
    flip: probability of a horizontal flip; jitter: strength of brightness/contrast/saturation
    jitter (factors in [1 − jitter, 1 + jitter]); grey: probability of greyscale (3 channels).
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got {tuple(x.shape)}")
    n, c = x.shape[:2]
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    if crop:
        area = rand(n) * (scale[1] - scale[0]) + scale[0]
        logr = rand(n) * (math.log(ratio[1]) - math.log(ratio[0])) + math.log(ratio[0])
        r = torch.exp(logr)
        w = torch.sqrt(area * r).clamp(max=1.0)
        h = torch.sqrt(area / r).clamp(max=1.0)
        cx = (rand(n) * 2 - 1) * (1 - w)
        cy = (rand(n) * 2 - 1) * (1 - h)
        sx = torch.where(rand(n) < flip, -w, w)
        theta = torch.zeros(n, 2, 3, device=dev)
        theta[:, 0, 0] = sx
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = h
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    elif flip > 0:
        m = (rand(n) < flip).view(n, 1, 1, 1)
        x = torch.where(m, x.flip(3), x)
    if jitter > 0:
        b = 1 + (rand(n, 1, 1, 1) * 2 - 1) * jitter
        x = x * b
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        ct = 1 + (rand(n, 1, 1, 1) * 2 - 1) * jitter
        x = (x - mean) * ct + mean
        if c == 3:
            g = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
            st = 1 + (rand(n, 1, 1, 1) * 2 - 1) * jitter
            x = (x - g) * st + g
    if grey > 0 and c == 3:
        g = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand(-1, 3, -1, -1)
        m = (rand(n) < grey).view(n, 1, 1, 1)
        x = torch.where(m, g, x)
    return x.clamp(0, 1)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) → float in [0, 1]; float tensors pass through."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent (SimCLR) loss of two views (N, D) each: cross-entropy of each view against its
    partner among the 2N − 1 others, cosine similarities divided by ``temperature``."""
    if z1.shape != z2.shape:
        raise ValueError(f"views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.t() / temperature
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


class ContrastiveModel(nn.Module):
    """CNN-F-like backbone + projection head (fc_dim → fc_dim → proj_dim).

    ``features(x)`` gives the backbone output φ(x) (N, fc_dim) used for the pseudo labels.
    """

    def __init__(self, backbone: CNNF, proj_dim: int = 64):
        super().__init__()
        self.backbone = backbone
        d = backbone.fc_dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


def train_contrastive(images: torch.Tensor, backbone: CNNF, iterations: int = 200, batch_size: int = 256,
                      lr: float = 1e-3, temperature: float = 0.5, proj_dim: int = 64, seed: int = 0,
                      device: torch.device | str = "cpu", progress: bool | None = None) -> tuple[ContrastiveModel, dict]:
    """Train ``backbone`` with NT-Xent on ``images`` (N, C, H, W), float in [0, 1] or uint8
    (converted per batch, so 50,000 CIFAR images stay 150 MB); labels are never used.

    Adam (lr) for ``iterations`` steps of ``batch_size`` images (2 views each).
    Returns the model and a dict {"loss": [...], "wall_time_s": ...}.
    """
    from ..train import fit, resolve_device

    device = resolve_device(device)
    g = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    model = ContrastiveModel(backbone, proj_dim=proj_dim).to(device)
    model.train()
    n = len(images)
    bs = min(batch_size, n)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(it):
        idx = torch.randint(0, n, (bs,), generator=g)
        xb = _as_float(images[idx]).to(device)
        v1, v2 = augment(xb, generator=g), augment(xb, generator=g)
        return nt_xent(model(v1), model(v2), temperature)

    t0 = time.perf_counter()
    hist = fit(step, optimizer=opt, iterations=iterations, desc="contrastive", progress=progress)
    return model, {"loss": hist.loss, "wall_time_s": time.perf_counter() - t0}


@torch.no_grad()
def encode_features(model: nn.Module, images: torch.Tensor, batch_size: int = 500,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """φ(x) of every image (eval mode, no augmentation): images (N, C, H, W) → (N, fc_dim) float32."""
    from ..train import resolve_device

    device = resolve_device(device)
    fn = model.features if hasattr(model, "features") else model
    was = model.training
    model.eval()
    out = [fn(_as_float(images[i:i + batch_size]).to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
