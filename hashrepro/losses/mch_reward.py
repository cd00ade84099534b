"""MCH's agent objective: the reward of keeping a crop's code (eq. 6) and REINFORCE (eq. 7).

Li, Jiang, Li, *Multiple Code Hashing for Efficient Image Retrieval*, §4.2. Keeping the code
``b*_i`` of a crop of image ``i`` changes its distance to a query ``x_j`` from ``d_ij`` to the
asymmetric ``d*_ij = min(d(b_i, b_j), d(b*_i, b_j))`` (eq. 5); the reward is how much that lowers
the base model's own Table-1 loss summed over the training points (eq. 6; discarding earns 0).
The policy is trained by REINFORCE (eq. 7) on a surrogate loss (:func:`policy_gradient_loss`).

* :func:`codes_pm1` -- pre-activations -> ±1 codes, the one sign convention of
  :func:`hashrepro.codes.binarize` (a bit is 1 where ``z > 0``);
* :func:`compute_rewards` -- eq. 6 for a batch of crops;
* :func:`policy_gradient_loss` -- eq. 7's surrogate, with an optional baseline and scale;
* :func:`oracle_rewards` -- eq. 6 of every database crop against the training images (a diagnostic
  that uses database labels: the reward a perfect agent would know).
"""
from __future__ import annotations

import numpy as np
import torch

from ..codes import binarize, to_pm1
from .pairwise import PairwiseHashLoss, hamming_distance_pm1, pair_weights, similarity

__all__ = ["codes_pm1", "compute_rewards", "policy_gradient_loss", "oracle_rewards"]


def codes_pm1(z) -> torch.Tensor:
    """Pre-activations (N, Q) -> float32 tensor (N, Q) of ±1 codes: +1 where ``z > 0``, else -1
    (:func:`hashrepro.codes.binarize`, then :func:`hashrepro.codes.to_pm1`)."""
    return torch.from_numpy(to_pm1(binarize(z)).astype(np.float32))


def compute_rewards(loss_fn: PairwiseHashLoss, b_db: torch.Tensor, b_crop: torch.Tensor,
                    b_query: torch.Tensor, s: torch.Tensor, w: torch.Tensor | None,
                    self_mask: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """Reward of keeping each crop's code (eq. 6, case a = keep), with eq. 5's distance.

    ``R_i = scale · Σ_j w_ij [L(d_ij, s_ij) − L(d*_ij, s_ij)]``,
    ``d_ij = d_H(b_i, b_j)``, ``d*_ij = min(d_H(b_i, b_j), d_H(b*_i, b_j))``.

    Parameters
    ----------
    loss_fn : the base model's loss (its ``pair_loss`` = Table-1 ``L``).
    b_db : (n, Q) ±1 database-side codes of the batch images (whole image).
    b_crop : (n, Q) ±1 codes of their crops.
    b_query : (m, Q) ±1 codes of the other training points (the queries ``x_j``).
    s : (n, m) similarities; w : (n, m) pair weights or None (all ones).
    self_mask : (n, m) bool, True where j is i itself (excluded), or None.
    scale : multiplies the sum (N/m when the j's are a sample of the N training points).

    Returns
    -------
    float (n,) rewards (the discard action's reward is 0).
    """
    d = hamming_distance_pm1(b_db, b_query)
    d_star = torch.minimum(d, hamming_distance_pm1(b_crop, b_query))
    gain = loss_fn.pair_loss(d, s) - loss_fn.pair_loss(d_star, s)
    if w is not None:
        gain = gain * w
    if self_mask is not None:
        gain = gain.masked_fill(self_mask, 0.0)
    return scale * gain.sum(1)


def policy_gradient_loss(probs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                         baseline: torch.Tensor | float | None = None, scale: float = 1.0,
                         entropy: float = 0.0) -> torch.Tensor:
    """Surrogate loss whose gradient is minus the REINFORCE estimate of eq. 7 (minimise it to
    ascend the expected reward), with an optional baseline, scale and entropy bonus.

    ``loss = -(1/n) Σ_i log π(a_i|h_i) (R_i − b_i) / scale − entropy · (1/n) Σ_i H(π(·|h_i))``.

    Parameters
    ----------
    probs : (n, 2) action probabilities π(·|h_i) (with grad); actions : (n,) sampled actions.
    rewards : (n,) rewards of the sampled actions (eq. 6).
    baseline : None (eq. 7 as printed), a float, or (n,) per-sample values. It must not depend on
        ``a_i`` (a constant, a moving average of earlier iterations, or the leave-one-out mean of the
        *other* samples); then ``E[∇ log π(a|h) b] = b Σ_a ∇π(a|h) = 0`` and the expected gradient
        is that of eq. 7 (Williams 1992, §4): the baseline only lowers the variance.
    scale : positive number the advantage is divided by (reward normalisation: a step size; it must
        not depend on the current actions to keep the direction unbiased).
    entropy : weight of an entropy bonus (biased: it pulls π towards uniform; 0 = none).
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    adv = rewards.to(probs.dtype)
    if baseline is not None:
        adv = adv - torch.as_tensor(baseline, dtype=probs.dtype, device=probs.device)
    adv = adv.detach() / scale
    logp = torch.log(probs.gather(1, actions.to(probs.device)[:, None]).squeeze(1).clamp_min(1e-12))
    loss = -(logp * adv).mean()
    if entropy:
        ent = -(probs * torch.log(probs.clamp_min(1e-12))).sum(1).mean()
        loss = loss - entropy * ent
    return loss


@torch.no_grad()
def oracle_rewards(loss_fn: PairwiseHashLoss, db01: np.ndarray, z_crops: np.ndarray, z_train: np.ndarray,
                   y_db: np.ndarray, y_train: np.ndarray, db_index: np.ndarray, train_index: np.ndarray,
                   chunk: int = 512) -> np.ndarray:
    """Eq.-6 reward of keeping each database crop, computed exactly against the training images.

    A diagnostic, not part of MCH: it uses the database items' labels, which the method never
    sees. Keeping exactly the crops with a positive reward is what a perfect agent would do, so
    the "oracle" MCH bounds what any policy can gain with this base model and these crops.

    db01 : (n, Q) {0,1} database whole-image codes; z_crops : (n, 5, Q) crop pre-activations;
    z_train : (N, Q) training (query-side) pre-activations; y_* labels; ``db_index`` /
    ``train_index`` dataset indices (to leave an item's own pair out). Returns float (n, 5).
    """
    n = len(db01)
    b_db = torch.from_numpy(to_pm1(db01).astype(np.float32))
    b_q = codes_pm1(z_train)
    s_full = similarity(y_db, y_train)
    n_pos = float(similarity(y_train).sum())
    n_neg = float(len(y_train) ** 2 - n_pos)
    out = np.zeros((n, z_crops.shape[1]), dtype=np.float32)
    tr = torch.from_numpy(np.asarray(train_index))
    for a in range(0, n, chunk):
        e = min(n, a + chunk)
        s = s_full[a:e]
        w = pair_weights(s, "balanced", n_pos=n_pos, n_neg=n_neg) if loss_fn.weighted else None
        mask = torch.from_numpy(np.asarray(db_index[a:e]))[:, None] == tr[None, :]
        for c in range(z_crops.shape[1]):
            out[a:e, c] = compute_rewards(loss_fn, b_db[a:e], codes_pm1(z_crops[a:e, c]), b_q, s, w, mask).numpy()
    return out
