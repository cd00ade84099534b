"""DDH loss (Song et al. 2017, eq. 5–13).

The trained objective is eq. 12 (eq. 10 plus the weight regulariser):

    J = ½ Σ_{s_ij ∈ S} ( (1/L) z_iᵀ z_j − s_ij )²                (neighbourhood term, eq. 5/10)
      + λ1/2 Σ_i ‖ b_i − z_i ‖²,  b_i = sgn(z_i) (held fixed)    (quantisation term, eq. 6)
      + λ2/2 ( ‖W‖²_F + ‖c‖² )                                    (hash-layer weight decay)

with z_i = Wᵀφ(x_i; θ) + c (eq. 11), s_ij ∈ {−1, +1}, L the code length. Notes:

* eq. 10 writes 1/K in the first term; eq. 5, 9 and 12 write 1/L. We use 1/L (K is a typo).
* eq. 12 prints the regulariser as λ2/2 (‖W‖²_F + ‖c‖²_F)²; the outer square looks like a
  typo (every other term is a plain squared norm) and we use λ2/2 (‖W‖²_F + ‖c‖²).
  ``squared_regulariser=True`` gives the printed form.
* b_i = sgn(z_i) is treated as a constant (no gradient through sgn), which gives exactly the
  derivative of eq. 13: ∂J/∂z_i = (1/L²)(z_iᵀz_j) z_j − (1/L) s_ij z_j + λ1 (z_i − b_i)
  (per pair (i, j)); tests check this against autograd.
* In a mini-batch the sum runs over all ordered pairs (i, j), i ≠ j, of the batch (the sum
  over s_ij ∈ S restricted to the batch). ``reduction="mean"`` divides the whole objective by
  the batch size B (a constant rescaling of the learning rate; the balance λ1 between the
  B(B−1) pair terms and the B quantisation terms is that of the summed objective);
  ``reduction="sum"`` is the literal sum.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["DDHLoss", "ddh_loss"]


def ddh_loss(z: torch.Tensor, s: torch.Tensor, lambda1: float = 15.0, include_diagonal: bool = False,
             reduction: str = "mean", pair_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Eq. 10 on a mini-batch (without the weight regulariser).

    Parameters
    ----------
    z : (B, L) real-valued hash-layer outputs.
    s : (B, B) pairwise labels in {−1, +1} (0 entries are ignored: "no label").
    lambda1 : weight of the quantisation term (paper: 15).
    include_diagonal : include the i = j pairs (default False: an image with itself carries
        no information and s_ii = +1 would only push ‖z_i‖² towards L).
    reduction : "mean" (divide by B) or "sum".
    pair_weight : optional (B, B) non-negative weights of the pair terms.

    Returns
    -------
    loss : scalar tensor; parts : dict of floats {"pair", "quant"} (already reduced).
    """
    if z.dim() != 2:
        raise ValueError(f"z must be (B, L), got shape {tuple(z.shape)}")
    B, L = z.shape
    if s.shape != (B, B):
        raise ValueError(f"s must be (B, B) = ({B}, {B}), got {tuple(s.shape)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    s = s.to(z.dtype)
    theta = z @ z.t() / L                                   # (B, B) (1/L) z_iᵀ z_j
    mask = (s != 0).to(z.dtype)
    if not include_diagonal:
        mask = mask * (1.0 - torch.eye(B, dtype=z.dtype, device=z.device))
    if pair_weight is not None:
        mask = mask * pair_weight.to(z.dtype)
    pair = 0.5 * (mask * (theta - s).pow(2)).sum()
    b = torch.where(z >= 0, 1.0, -1.0).to(z.dtype).detach()  # eq. 4, no gradient through sgn
    quant = 0.5 * lambda1 * (z - b).pow(2).sum()
    denom = float(B) if reduction == "mean" else 1.0
    loss = (pair + quant) / denom
    return loss, {"pair": float(pair.detach()) / denom, "quant": float(quant.detach()) / denom}


class DDHLoss(nn.Module):
    """Eq. 12 as an ``nn.Module``: ``loss(z, s, hash_layer=None)``.

    Parameters
    ----------
    lambda1 : quantisation weight (paper 15).
    lambda2 : hash-layer weight regulariser (paper 1e-5); needs ``hash_layer`` (an
        ``nn.Linear`` holding W and c) in ``forward``.
    reduction : "mean" | "sum" (see module docstring).
    squared_regulariser : use the printed (‖W‖² + ‖c‖²)² form of eq. 12.
    """

    def __init__(self, lambda1: float = 15.0, lambda2: float = 1e-5, reduction: str = "mean",
                 include_diagonal: bool = False, squared_regulariser: bool = False):
        super().__init__()
        if lambda1 < 0 or lambda2 < 0:
            raise ValueError(f"lambda1 and lambda2 must be >= 0, got {lambda1}, {lambda2}")
        self.lambda1, self.lambda2 = float(lambda1), float(lambda2)
        self.reduction, self.include_diagonal = reduction, include_diagonal
        self.squared_regulariser = squared_regulariser
        self.last_parts: dict = {}

    def forward(self, z: torch.Tensor, s: torch.Tensor, hash_layer: nn.Linear | None = None,
                pair_weight: torch.Tensor | None = None) -> torch.Tensor:
        loss, parts = ddh_loss(z, s, self.lambda1, self.include_diagonal, self.reduction, pair_weight)
        if self.lambda2 > 0 and hash_layer is not None:
            reg = hash_layer.weight.pow(2).sum() + (hash_layer.bias.pow(2).sum() if hash_layer.bias is not None else 0.0)
            if self.squared_regulariser:
                reg = reg.pow(2)
            reg = 0.5 * self.lambda2 * reg
            loss = loss + reg
            parts["reg"] = float(reg.detach())
        self.last_parts = parts
        return loss
