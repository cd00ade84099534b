"""Triplet ranking loss of DNNH (Lai et al., CVPR 2015, §3.1, eq. 2), with in-batch triplets.

eq. 2:  ℓ(b, b⁺, b⁻) = max(0, ‖b − b⁺‖²₂ − ‖b − b⁻‖²₂ + 1),   b, b⁺, b⁻ ∈ [0, 1]^q

the relaxation of the Hamming triplet hinge loss of eq. 1 (margin 1). Its sub-gradients are
eq. 3; autograd gives exactly those (tested).

Triplets are built from labels inside a mini-batch with tensor masks, so one forward pass
over B images gives up to B·P·N triplets: (a, p, n) is valid when a ≠ p, a and p are similar
and a and n are not. Similar means "same class" for integer labels (B,) and "share at least
one label" for multi-hot labels (B, C) (the NUS-WIDE convention, §4.1). Both, and the triplet
mask, are the shared definitions of :mod:`hashrepro.losses.labels` (``similarity_matrix`` here is
:func:`~hashrepro.losses.labels.label_similarity`).
"""
from __future__ import annotations

import torch
from torch import nn

from .labels import triplet_mask
from .labels import label_similarity as similarity_matrix  # bool (B, B'): the one label similarity

__all__ = ["triplet_ranking_loss", "similarity_matrix", "triplet_mask", "TripletRankingLoss"]


def triplet_ranking_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                         margin: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Eq. 2 on explicit triplets: anchor, positive, negative (T, q) → loss (T,) or its mean/sum."""
    if not (anchor.shape == positive.shape == negative.shape) or anchor.ndim != 2:
        raise ValueError("anchor, positive and negative must have the same shape (T, q), got "
                         f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}")
    d_pos = (anchor - positive).pow(2).sum(1)
    d_neg = (anchor - negative).pow(2).sum(1)
    loss = torch.relu(d_pos - d_neg + margin)
    return _reduce(loss, reduction)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class TripletRankingLoss(nn.Module):
    """Eq. 2 averaged over the valid triplets of a mini-batch.

    Parameters
    ----------
    margin : the 1 of eq. 2.
    triplets : "all" uses every valid (a, p, n) of the batch; "random" samples
        ``per_anchor`` triplets per anchor uniformly among its valid ones (the paper's
        "randomly constructed" triplets, fewer of them).
    per_anchor : number of triplets per anchor for ``triplets="random"``.

    forward(codes (B, q), labels (B,) or (B, C), codes_other=None, generator=None) → scalar.
    ``codes_other`` (B, q) gives the positive/negative codes when they come from another
    network (the two-sub-network variant); by default anchors, positives and negatives are all
    rows of ``codes``. After a call, ``last_stats`` holds the number of triplets and the fraction
    with a positive loss (the "active" ones).
    """

    def __init__(self, margin: float = 1.0, triplets: str = "all", per_anchor: int = 8):
        super().__init__()
        if triplets not in ("all", "random"):
            raise ValueError(f"triplets must be 'all' or 'random', got {triplets!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if per_anchor < 1:
            raise ValueError(f"per_anchor must be >= 1, got {per_anchor}")
        self.margin, self.triplets, self.per_anchor = float(margin), triplets, int(per_anchor)
        self.last_stats: dict = {}
        #: None: statistics as device tensors (no host sync) off the CPU, floats on the CPU; or forced.
        self.lazy_stats: bool | None = None

    def forward(self, codes: torch.Tensor, labels: torch.Tensor, codes_other: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        if codes.ndim != 2 or len(codes) != len(labels):
            raise ValueError(f"codes must be (B, q) with B = len(labels); got {tuple(codes.shape)} and {len(labels)} labels")
        other = codes if codes_other is None else codes_other
        if other.shape != codes.shape:
            raise ValueError(f"codes_other must have the shape of codes {tuple(codes.shape)}, got {tuple(other.shape)}")
        # squared distances anchor (rows of codes) → candidates (rows of other): (B, B)
        d = (codes.pow(2).sum(1, keepdim=True) + other.pow(2).sum(1)[None, :] - 2 * codes @ other.T).clamp_min(0)
        mask = triplet_mask(labels.to(codes.device))
        if self.triplets == "random":
            mask = self._sample(mask, generator)
        if codes.device.type != "cpu" if self.lazy_stats is None else self.lazy_stats:
            # no host synchronisation (a GPU): a masked mean, the statistics left as device tensors
            m = mask.to(d.dtype)
            n_t = m.sum().clamp_min(1.0)
            hinge = torch.relu(d[:, :, None] - d[:, None, :] + self.margin) * m
            self.last_stats = {"triplets": m.sum().detach(), "active": ((hinge > 0).to(d.dtype).sum() / n_t).detach()}
            return hinge.sum() / n_t
        n = int(mask.sum())
        if n == 0:
            self.last_stats = {"triplets": 0, "active": 0.0}
            return codes.sum() * 0.0
        loss = torch.relu(d[:, :, None] - d[:, None, :] + self.margin)[mask]
        self.last_stats = {"triplets": n, "active": float((loss > 0).float().mean())}
        return loss.mean()

    def _sample(self, mask: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Keep up to ``per_anchor`` valid triplets per anchor, uniformly at random."""
        B = mask.shape[0]
        flat = mask.reshape(B, -1)
        scores = torch.rand(flat.shape, generator=generator).to(mask.device)
        scores = scores.masked_fill(~flat, -1.0)
        k = min(self.per_anchor, flat.shape[1])
        idx = scores.topk(k, dim=1).indices
        keep = torch.zeros_like(flat)
        keep.scatter_(1, idx, True)
        return (keep & flat).reshape(mask.shape)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, triplets={self.triplets!r}"
