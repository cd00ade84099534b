"""DeepBit losses: Lin, Lu, Chen, Zhou, *Learning Compact Binary Descriptors with Unsupervised
Deep Neural Networks*, CVPR 2016, §3; a baseline of DDH's Tables 2 and 6.

The network ends with a fully connected layer and a sigmoid, F(x) ∈ (0, 1)^K; the descriptor is
b = ½ (sgn(F(x) − 0.5) + 1) ∈ {0, 1}^K (output > 0.5 → 1). Three criteria:

    L1 = Σ_n ‖b_n − F(x_n)‖²                              minimal quantisation loss
    L2 = Σ_k (μ_k − 0.5)²,  μ_k = (1/N) Σ_n F(x_n)_k        evenly distributed bits (per batch)
    L3 = Σ_n Σ_θ C(θ) ‖F(R_θ x_n) − F(x_n)‖²               rotation invariance, C(θ) = e^{−|θ|}

and L = α L1 + β L2 + γ L3. Training has two stages: L1 + L2 first (the authors' CIFAR-10
script: 50k iterations), then all three (5k iterations) with images rotated by small angles.

Choices where we did not re-check the paper [UNVERIFIED]: μ_k is computed from the continuous
F (b has no gradient), L3 compares continuous outputs of the rotated and the upright image (the
upright one held as the target), θ is in radians inside C(θ), and α = β = γ = 1 by default.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["deepbit_binarise", "deepbit_loss", "rotation_loss", "rotate", "DeepBitLoss"]


def deepbit_binarise(f: torch.Tensor) -> torch.Tensor:
    """b = ½(sgn(F − 0.5) + 1): 1 where F > 0.5, else 0 (same dtype as f). (N, K) → (N, K)."""
    return (f > 0.5).to(f.dtype)


def deepbit_loss(f: torch.Tensor, alpha: float = 1.0, beta: float = 1.0,
                 reduction: str = "mean") -> tuple[torch.Tensor, dict]:
    """Stage 1 of DeepBit: α L1 + β L2 on a batch of sigmoid outputs f (N, K) in (0, 1).

    reduction "mean" divides L1 by N (L2 is already per batch); "sum" is the literal L1.
    Returns (loss, {"quant", "balance"}).
    """
    if f.dim() != 2:
        raise ValueError(f"f must be (N, K), got shape {tuple(f.shape)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    n = f.shape[0]
    b = deepbit_binarise(f).detach()
    quant = (b - f).pow(2).sum()
    if reduction == "mean":
        quant = quant / n
    balance = (f.mean(0) - 0.5).pow(2).sum()
    loss = alpha * quant + beta * balance
    return loss, {"quant": float(quant.detach()), "balance": float(balance.detach())}


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate images (N, C, H, W) by ``degrees`` about the centre (bilinear, reflection padding)."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],
                         dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def rotation_loss(f0: torch.Tensor, f_rot: Sequence[torch.Tensor], angles: Sequence[float],
                  reduction: str = "mean") -> torch.Tensor:
    """L3 = Σ_θ C(θ) ‖F(R_θ x) − F(x)‖², C(θ) = exp(−|θ| in radians); f0 (N, K) is the target
    (detached), f_rot one (N, K) tensor per angle. "mean" divides by N."""
    if len(f_rot) != len(angles):
        raise ValueError(f"one output per angle: got {len(f_rot)} outputs and {len(angles)} angles")
    target = f0.detach()
    total = f0.new_zeros(())
    for fr, th in zip(f_rot, angles):
        total = total + math.exp(-abs(math.radians(th))) * (fr - target).pow(2).sum()
    return total / f0.shape[0] if reduction == "mean" else total


class DeepBitLoss(nn.Module):
    """α L1 + β L2 (+ γ L3 when rotated outputs are given): ``loss(f, f_rot=None, angles=())``."""

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0, reduction: str = "mean"):
        super().__init__()
        for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        self.alpha, self.beta, self.gamma, self.reduction = float(alpha), float(beta), float(gamma), reduction
        self.last_parts: dict = {}

    def forward(self, f: torch.Tensor, f_rot: Sequence[torch.Tensor] | None = None,
                angles: Sequence[float] = ()) -> torch.Tensor:
        loss, parts = deepbit_loss(f, self.alpha, self.beta, self.reduction)
        if f_rot:
            rot = rotation_loss(f, f_rot, angles, self.reduction)
            loss = loss + self.gamma * rot
            parts["rotation"] = float(rot.detach())
        self.last_parts = parts
        return loss
