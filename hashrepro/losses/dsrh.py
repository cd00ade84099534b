"""DSRH loss: Zhao, Huang, Wang, Tan, *Deep Semantic Ranking Based Hashing for Multi-Label Image
Retrieval*, CVPR 2015 (arXiv 1501.06272). The baseline the DRSCH paper compares with.

The paper is not in ``../shared/papers/``; the equations below are written from its published
description (what we assumed is marked *assumed*).

Notation (shapes): a mini-batch of N images with relaxed codes h (N, q) in (−1, 1) — DSRH's hash
function is h(x) = 2σ(wᵀf(x)) − 1 = tanh(wᵀf(x)/2) — and labels (N,) class ids or (N, C) multi-hot.

* **Similarity levels.** r_ij = the number of labels images i and j share (multi-hot: y_i·y_j);
  for single-label data r_ij = [y_i = y_j] ∈ {0, 1}.
* **Hamming distance, relaxed.** d(h_i, h_j) = (q − h_iᵀh_j)/2 (the Hamming distance for ±1 codes).
* **Ranking surrogate loss** for a query q with ranking list {x_i} (here: every other image of the
  batch is in the list of every image used as the query, *assumed*, as the paper trains on
  in-batch lists):

      L_ω(q) = Σ_i Σ_{j: r_qj < r_qi} ω(r_qi, r_qj) · [ρ + d(h_q, h_i) − d(h_q, h_j)]_+

  a triplet hinge for every pair of list items at different similarity levels, with margin ρ
  (in Hamming units) and the NDCG-derived weight

      ω(r_i, r_j) = (2^{r_i} − 2^{r_j}) / Z(q),

  Z(q) = the ideal DCG of q's list, Σ_k (2^{r_(k)} − 1) / log2(1 + k) over the list sorted by
  decreasing r (a query with Z(q) = 0 — nothing relevant in its list — adds nothing).
* **Objective.** F = Σ_q L_ω(q) + (α/2)·‖mean_q h_q‖² (the bit-balance term: each bit should
  be +1 for half of the images), plus the weight decay (β/2)‖W‖², which the optimiser applies.

On single-label data every valid triplet (q, i similar, j dissimilar) gets ω = 1/Z(q), so the
loss *reduces to a weighted triplet ranking* whose weight depends only on how many images of
q's class the list holds: with P × K batches (the DRSCH recipe's sampler) Z is the same for every
query and DSRH's ranking term is a plain triplet hinge on the relaxed Hamming distance.

Reduction (``reduction``; *assumed*, the paper writes sums):

* ``"sum"``: Σ_q L_ω(q) averaged over the queries that have at least one pair (the paper's sum
  over pairs, per query);
* ``"mean"`` (default): Σ ω·hinge / Σ ω over all (q, i, j) — the ω-weighted mean hinge, whose
  scale does not grow with the batch; for a fixed batch composition (P × K) it is the ``"sum"``
  loss divided by a constant, i.e. the same gradient direction with a rescaled learning rate.

``margin`` (ρ) and ``alpha`` (α) are *assumed* values: the paper's are not given here.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["similarity_levels", "ideal_dcg", "pair_weights", "relaxed_hamming", "dsrh_loss", "DSRHLoss"]


def similarity_levels(labels: torch.Tensor) -> torch.Tensor:
    """r_ij (N, N) float: shared labels (multi-hot (N, C)) or [same class] (int (N,))."""
    if labels.ndim == 1:
        return (labels[:, None] == labels[None, :]).float()
    if labels.ndim == 2:
        lab = labels.float()
        return lab @ lab.T
    raise ValueError(f"labels must be int (N,) or multi-hot (N, C), got shape {tuple(labels.shape)}")


def ideal_dcg(r: torch.Tensor) -> torch.Tensor:
    """Z(q) (N,): the ideal DCG of each row's list (the row without its diagonal),
    Σ_k (2^{r_(k)} − 1)/log2(1 + k), ranks k = 1.. over the list sorted by decreasing r."""
    n = r.shape[0]
    off = r.masked_fill(torch.eye(n, dtype=torch.bool, device=r.device), 0.0)  # gain of level 0 is 0
    srt = torch.sort(off, dim=1, descending=True).values
    disc = 1.0 / torch.log2(torch.arange(2, n + 2, device=r.device, dtype=r.dtype))
    return ((torch.pow(2.0, srt) - 1.0) * disc).sum(1)


def pair_weights(labels: torch.Tensor) -> torch.Tensor:
    """ω (N, N, N): ω[q, i, j] = (2^{r_qi} − 2^{r_qj}) / Z(q) where r_qi > r_qj, i ≠ q ≠ j, Z(q) > 0;
    0 elsewhere."""
    r = similarity_levels(labels)
    n = r.shape[0]
    z = ideal_dcg(r)
    g = torch.pow(2.0, r)
    w = g[:, :, None] - g[:, None, :]
    eye = torch.eye(n, dtype=torch.bool, device=r.device)
    valid = (r[:, :, None] > r[:, None, :]) & ~eye[:, :, None] & ~eye[:, None, :] & (z > 0)[:, None, None]
    return torch.where(valid, w / z.clamp_min(1e-12)[:, None, None], torch.zeros((), dtype=w.dtype, device=w.device))


def relaxed_hamming(h: torch.Tensor) -> torch.Tensor:
    """d_ij = (q − h_iᵀh_j)/2 (N, N): the Hamming distance of ±1 codes, relaxed."""
    return 0.5 * (h.shape[1] - h @ h.T)


def dsrh_loss(h: torch.Tensor, labels: torch.Tensor, margin: float = 2.0, alpha: float = 1.0,
              reduction: str = "mean") -> tuple[torch.Tensor, dict]:
    """DSRH objective of one batch (module docstring): ranking term + (α/2)‖mean h‖².

    h (N, q) relaxed codes, labels (N,) int or (N, C) multi-hot. Returns (scalar loss, parts) with
    parts "ranking", "balance", "n_valid" (pairs with ω > 0), "n_active" (those with a positive
    hinge), "weight_sum" (Σ ω).
    """
    if h.ndim != 2 or labels.shape[0] != h.shape[0]:
        raise ValueError(f"h must be (N, q) and labels (N,) or (N, C) with the same N; got h {tuple(h.shape)}, "
                         f"labels {tuple(labels.shape)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    w = pair_weights(labels.to(h.device)).to(h.dtype)
    d = relaxed_hamming(h)
    hinge = torch.relu(margin + d[:, :, None] - d[:, None, :])
    wsum = w.sum()
    n_valid = int((w > 0).sum())
    if n_valid == 0:
        ranking = h.sum() * 0.0
    elif reduction == "mean":
        ranking = (w * hinge).sum() / wsum
    else:
        n_queries = int((w > 0).flatten(1).any(1).sum())
        ranking = (w * hinge).sum() / n_queries
    balance = 0.5 * alpha * (h.mean(0) ** 2).sum()
    parts = {"ranking": float(ranking.detach()), "balance": float(balance.detach()), "n_valid": n_valid,
             "n_active": int(((hinge > 0) & (w > 0)).sum()), "weight_sum": float(wsum)}
    return ranking + balance, parts


class DSRHLoss(nn.Module):
    """DSRH's loss as a module: ``DSRHLoss(margin=ρ, alpha=α)(h, labels, margin=None)`` → scalar.

    ``margin`` at call time overrides ρ (a recipe's schedule). The parts of the last call are in
    ``self.last`` with the keys DRSCH's loss uses ("triplet" = the ranking term, "regulariser" =
    the balance term, "n_valid", "n_active", "margin"), so that the DRSCH recipe logs either.
    """

    def __init__(self, margin: float = 2.0, alpha: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if not (margin >= 0 and math.isfinite(margin)):
            raise ValueError(f"margin must be a finite number >= 0, got {margin}")
        if not (alpha >= 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.margin, self.alpha, self.reduction = float(margin), float(alpha), reduction
        self.last: dict = {}

    def forward(self, h: torch.Tensor, labels: torch.Tensor, margin: float | None = None) -> torch.Tensor:
        rho = self.margin if margin is None else float(margin)
        loss, parts = dsrh_loss(h, labels, rho, self.alpha, self.reduction)
        self.last = {"triplet": parts["ranking"], "regulariser": parts["balance"], "n_valid": parts["n_valid"],
                     "n_active": parts["n_active"], "margin": rho, "weight_sum": parts["weight_sum"]}
        return loss

    def extra_repr(self) -> str:
        return f"margin={self.margin}, alpha={self.alpha}, reduction={self.reduction!r}"
