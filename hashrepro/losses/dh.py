"""DH loss: Liong, Lu, Wang, Moulin, Zhou, *Deep Hashing for Compact Binary Codes Learning*,
CVPR 2015, §3 (eq. 3–4); a baseline of DDH's Table 2.

DH is a stack of M fully connected layers with tanh, h^m = tanh(W^m h^{m−1} + c^m), whose top
layer H = H^M (N × K here: one row per sample; the paper stores samples as columns) is
binarised, B = sgn(H). The objective is

    J = ½ ‖B − H‖²_F                                   (J1, quantisation loss)
      − λ1/(2N) tr(Hᵀ H)                               (J2, "maximise the variance" → balanced bits)
      + λ2/2 Σ_m ‖W^m W^mᵀ − I‖²_F                      (J3, independent (orthogonal) projections)
      + λ3/2 Σ_m (‖W^m‖²_F + ‖c^m‖²₂)                   (J4, weight decay)

with B treated as a constant at each step (the paper alternates B = sgn(H) and a gradient step
on the weights; holding B fixed inside a mini-batch step is the same thing).

Reading of J2: the paper calls it the variance of the codes; tr(HᵀH)/N is the variance only if
H is zero-mean. ``centre=True`` (default) uses the centred batch, tr((H − H̄)ᵀ(H − H̄))/N (the
per-bit variance summed over bits, which is maximal for balanced ±1 bits); ``centre=False`` is
the printed tr(HᵀH)/N (with tanh outputs it only pushes |h| towards 1, i.e. repeats J1).
The paper's λ1 = 100, λ2 = λ3 = 0.001 are recalled, not re-checked here [UNVERIFIED]; they are
the defaults. ``W`` matrices follow ``nn.Linear``: (out, in), so W Wᵀ is (out × out) and asks
for orthonormal rows (attainable when out ≤ in).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["dh_loss", "DHLoss", "orthogonality_penalty"]


def orthogonality_penalty(weights: Iterable[torch.Tensor]) -> torch.Tensor:
    """Σ_m ‖W^m W^mᵀ − I‖²_F for (out, in) weight matrices (J3 before the factor λ2/2)."""
    total = None
    for w in weights:
        g = w @ w.t()
        eye = torch.eye(g.shape[0], dtype=g.dtype, device=g.device)
        t = (g - eye).pow(2).sum()
        total = t if total is None else total + t
    if total is None:
        raise ValueError("orthogonality_penalty needs at least one weight matrix")
    return total


def dh_loss(h: torch.Tensor, lambda1: float = 100.0, centre: bool = True,
            reduction: str = "mean") -> tuple[torch.Tensor, dict]:
    """J1 + J2 of DH eq. 3 on a mini-batch (the weight terms J3, J4 are added by :class:`DHLoss`).

    Parameters
    ----------
    h : (N, K) top-layer outputs (tanh, in (−1, 1)).
    lambda1 : weight of the variance term (paper: 100 [UNVERIFIED]).
    centre : use the batch-centred H in the variance term (see the module docstring).
    reduction : "sum" is the literal eq. 3 on this batch (N = batch size): J1 summed, J2 with
        its 1/N; "mean" is that divided by N (per-sample quantisation loss minus λ1/(2N) times
        the summed per-bit variance — the balance of the two terms is that of eq. 3 on N points).

    Returns
    -------
    loss : scalar; parts : {"quant", "variance"} floats (the variance part is the *negative*
        contribution −λ1/(2N) tr(·), as it enters the loss).
    """
    if h.dim() != 2:
        raise ValueError(f"h must be (N, K), got shape {tuple(h.shape)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    n = h.shape[0]
    b = torch.where(h >= 0, 1.0, -1.0).to(h.dtype).detach()
    quant = 0.5 * (b - h).pow(2).sum()
    hc = h - h.mean(0, keepdim=True) if centre else h
    var = -0.5 * lambda1 / n * (hc * hc).sum()               # −λ1/(2N) tr(HᵀH)
    if reduction == "mean":
        quant, var = quant / n, var / n
    loss = quant + var
    return loss, {"quant": float(quant.detach()), "variance": float(var.detach())}


class DHLoss(nn.Module):
    """DH eq. 3 as a module: ``loss(h, layers)`` with ``layers`` the DH ``nn.Linear`` layers
    (their weights enter J3 and J4; a backbone below them is not regularised).

    Parameters: lambda1 (variance, 100), lambda2 (orthogonality, 0.001), lambda3 (weight decay,
    0.001), centre, reduction (see :func:`dh_loss`). ``last_parts`` holds the four terms.
    """

    def __init__(self, lambda1: float = 100.0, lambda2: float = 1e-3, lambda3: float = 1e-3,
                 centre: bool = True, reduction: str = "mean"):
        super().__init__()
        for name, v in (("lambda1", lambda1), ("lambda2", lambda2), ("lambda3", lambda3)):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        self.lambda1, self.lambda2, self.lambda3 = float(lambda1), float(lambda2), float(lambda3)
        self.centre, self.reduction = centre, reduction
        self.last_parts: dict = {}

    def forward(self, h: torch.Tensor, layers: Iterable[nn.Linear] = ()) -> torch.Tensor:
        loss, parts = dh_loss(h, self.lambda1, self.centre, self.reduction)
        layers = list(layers)
        if layers and self.lambda2 > 0:
            orth = 0.5 * self.lambda2 * orthogonality_penalty(l.weight for l in layers)
            loss = loss + orth
            parts["orthogonality"] = float(orth.detach())
        if layers and self.lambda3 > 0:
            reg = sum(l.weight.pow(2).sum() + (l.bias.pow(2).sum() if l.bias is not None else 0.0)
                      for l in layers)
            reg = 0.5 * self.lambda3 * reg
            loss = loss + reg
            parts["weight_decay"] = float(reg.detach())
        self.last_parts = parts
        return loss
