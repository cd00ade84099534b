"""MCH's agent (§4.2, Algorithm 2) and the out-of-sample extension it drives (§4.3).

* :func:`train_agent` -- REINFORCE (eq. 7) on the keep / discard decision of a random crop's code,
  state eq. 3 (:func:`hashrepro.models.policy.build_state`), reward eq. 6
  (:func:`hashrepro.losses.mch_reward.compute_rewards`), loss
  :func:`hashrepro.losses.mch_reward.policy_gradient_loss`; returns an :class:`AgentResult`;
* :func:`crop_keep_probabilities` -- the codes and keep probabilities of the 5 crops of ratio σ;
* :func:`extend` -- every database item's whole-image code plus the crop codes kept at threshold ξ.

Codes are the signs of the hasher's pre-activations with the one convention of
:func:`hashrepro.codes.binarize` (a bit is 1 where ``z > 0``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..codes import binarize
from ..data.crops import crop_method
from ..losses.mch_reward import codes_pm1, compute_rewards, policy_gradient_loss
from ..losses.pairwise import PairwiseHashLoss, pair_weights, similarity
from ..models.policy import KEEP, PolicyNet, build_state
from ..train import NonFiniteLossError

__all__ = ["AGENT_DEFAULTS", "AGENT_ITERS_BY_SCALE", "AgentResult", "train_agent", "crop_keep_probabilities", "extend"]

#: The default REINFORCE update of the recipe (the ``Config`` fields' defaults, as data): a
#: moving-average baseline and normalised advantages, no entropy bonus (a deviation from eq. 7,
#: see :func:`train_agent`). The claims read it to pick the records of the default agent.
AGENT_DEFAULTS = {"agent_baseline": "ema", "agent_reward_norm": True, "agent_entropy": 0.0}

#: The agent's schedule T (Algorithm 2's iterations) of each scale's preset, as data (the recipe's
#: ``Config.agent_iters`` and ``PRESETS``; a test keeps them equal): §5.2.2's T = 100 except the
#: seconds-long ``smoke`` scale. A record whose ``agent_iters`` differs from its scale's T is a
#: different agent update for the claims and tables (:func:`hashrepro.plots.mch.agent_variant`).
AGENT_ITERS_BY_SCALE = {"smoke": 5, "default": 100, "paper": 100}


@dataclass
class AgentResult:
    """The trained policy and its learning curve."""

    policy: PolicyNet
    reward: list = field(default_factory=list)       # mean reward of the sampled actions, per iteration
    keep_rate: list = field(default_factory=list)    # fraction of "keep" actions sampled
    keep_prob: list = field(default_factory=list)    # mean π(keep | h)
    oracle_keep: list = field(default_factory=list)  # fraction of crops whose keep-reward is > 0
    wall_time_s: float = 0.0


def _check_agent(t: torch.Tensor, what: str, it: int, cfg) -> None:
    """Stop with a clear error when the agent's training has diverged (non-finite values)."""
    if not torch.isfinite(t).all():
        raise NonFiniteLossError(
            f"the MCH agent diverged at iteration {it}: non-finite values in its {what}; agent_lr={cfg.agent_lr:g} "
            "is too large (the paper's range is 1e-5..1e-3; default 1e-3)")


def train_agent(cfg, hasher, loss_fn: PairwiseHashLoss, train_u8: torch.Tensor,
                f_train: np.ndarray, z_train: np.ndarray, b_db_train: torch.Tensor, y_train: np.ndarray,
                device: torch.device, seed: int) -> AgentResult:
    """Algorithm 2 (agent learning step) with REINFORCE (eq. 7).

    For t = 1..T: sample a mini-batch B of training images; a random crop per image (side ratio
    ~ U(crop_min, crop_max)); state eq. 3 from the base model's features and codes; sample
    a ~ π_θ(·|h); reward eq. 6 against all N training points (or ``reward_pairs`` sampled ones,
    rescaled by N/m); θ ← θ + lr ∇ (1/|B|) Σ log π(a_i|h_i) (R_i − b) / s (SGD, momentum, weight
    decay; :func:`policy_gradient_loss`).

    **Deviation (variance reduction).** Eq. 7 has no baseline (b = 0, s = 1: ``agent_baseline=
    "none"``, ``agent_reward_norm=False``). Most crops have a negative eq.-6 reward of a large
    magnitude (a sum over N pairs), so without a baseline every sampled "keep" gives a big push
    down on π(keep) and a "discard" gives no signal at all; the policy collapses to discarding
    everything within a few tens of iterations, before it can tell the few positive-reward crops
    apart. The default subtracts a baseline b (``"ema"``: a moving average, decay ``agent_ema``,
    of the mean sampled reward of *earlier* iterations; ``"batch"``: the leave-one-out mean of the
    other samples of the batch) and divides by s, a moving average of earlier batches' reward
    standard deviation (``agent_reward_norm``; at t = 1 the first batch's own). Neither depends on
    the current actions, so the expected update direction is eq. 7's. ``agent_entropy`` adds an
    optional (biased) entropy bonus. With normalised advantages the step is measured in reward
    standard deviations, not in raw reward units (eq. 6 sums over N pairs: tens to 10⁵ units), so
    the default learning rate is 1e-3, the top of §5.2.2's range, instead of the paper's start
    1e-4 (at 1e-4 a normalised update barely moves π in T = 100 iterations). The paper's agent:
    ``agent_baseline="none", agent_reward_norm=False, agent_lr=1e-4``.

    ``b_db_train`` (N, Q) ±1 are the database-side codes of the training images (for ADSH the
    learned V; otherwise sign of the network), ``z_train`` their query-side pre-activations.
    ``train_u8``: the training images, uint8 (N, C, H, W) (scratch), or their dataset rows (N,)
    for a :class:`~hashrepro.models.mch_hashers.FeatureHasher` (pretrained regime: the crops are drawn from the cached set).
    """
    t0 = time.perf_counter()
    n = len(train_u8)
    q = cfg.bits
    rng = np.random.default_rng(seed + 7)
    gen = torch.Generator().manual_seed(seed + 7)
    b_query = codes_pm1(z_train)
    s_full = similarity(y_train)
    n_pos = float(s_full.sum())
    n_neg = float(s_full.numel() - n_pos)
    weighted = loss_fn.weighted
    f_train_t = torch.from_numpy(np.ascontiguousarray(f_train))
    state_dim = 2 * f_train.shape[1] + 2 * q
    policy = PolicyNet(state_dim, cfg.policy_hidden).to(device)
    opt = torch.optim.SGD(policy.parameters(), lr=cfg.agent_lr, momentum=cfg.agent_momentum,
                          weight_decay=cfg.agent_weight_decay)
    res = AgentResult(policy)
    bs = min(cfg.agent_batch, n)
    ema_mean: float | None = None  # moving averages of earlier iterations' sampled rewards
    ema_var: float | None = None
    for _ in tqdm(range(cfg.agent_iters), desc="agent", disable=(not cfg.progress) if cfg.progress is not None else None,
                  leave=False, mininterval=2.0):
        idx = torch.from_numpy(rng.choice(n, bs, replace=False))
        f_crop, z_crop = crop_method(hasher, "embed_random_crops")(train_u8[idx], cfg, rng)
        b_crop = codes_pm1(z_crop)
        h = build_state(f_train_t[idx], torch.from_numpy(f_crop), b_query[idx], b_crop).to(device)
        # reward (eq. 6) against the other training points
        if cfg.reward_pairs and cfg.reward_pairs < n:
            js = torch.from_numpy(rng.choice(n, cfg.reward_pairs, replace=False))
            scale = n / cfg.reward_pairs
        else:
            js = torch.arange(n)
            scale = 1.0
        s = s_full[idx][:, js]
        w = pair_weights(s, "balanced", n_pos=n_pos, n_neg=n_neg) if weighted else None
        mask = idx[:, None] == js[None, :]
        r_keep = compute_rewards(loss_fn, b_db_train[idx], b_crop, b_query[js], s, w, mask, scale)
        if cfg.reward_scale == "mean":
            r_keep = r_keep / n
        policy.train()
        probs = policy(h)
        _check_agent(probs, "keep probabilities", len(res.reward), cfg)
        a = torch.multinomial(probs.detach().cpu(), 1, generator=gen).squeeze(1)
        reward = torch.where(a == KEEP, r_keep, torch.zeros_like(r_keep)).to(device)
        r_mean, r_var = float(reward.mean()), float(reward.var(unbiased=False)) if len(reward) > 1 else 0.0
        loo = (reward.sum() - reward) / max(len(reward) - 1, 1)  # leave-one-out batch mean
        if cfg.agent_baseline == "batch":
            baseline = loo
        elif cfg.agent_baseline == "ema":
            baseline = loo if ema_mean is None else ema_mean
        else:
            baseline = None  # eq. 7 as printed
        scale = 1.0
        if cfg.agent_reward_norm:
            scale = math.sqrt(r_var if ema_var is None else ema_var)
            scale = scale if scale > 1e-8 else 1.0
        loss = policy_gradient_loss(probs, a, reward, baseline, scale, cfg.agent_entropy)  # eq. 7 (ascent)
        _check_agent(loss, "policy-gradient loss", len(res.reward), cfg)
        if ema_mean is None:
            ema_mean, ema_var = r_mean, r_var
        else:
            ema_var = cfg.agent_ema * ema_var + (1 - cfg.agent_ema) * (r_var + (r_mean - ema_mean) ** 2)
            ema_mean = cfg.agent_ema * ema_mean + (1 - cfg.agent_ema) * r_mean
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        res.reward.append(float(reward.mean()))
        res.keep_rate.append(float((a == KEEP).float().mean()))
        res.keep_prob.append(float(probs[:, KEEP].mean().detach()))
        res.oracle_keep.append(float((r_keep > 0).float().mean()))
    policy.eval()
    res.wall_time_s = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------- out-of-sample extension (§4.3)
@torch.no_grad()
def crop_keep_probabilities(hasher, policy: PolicyNet, images_u8: torch.Tensor, f_whole: np.ndarray,
                            z_whole: np.ndarray, sigma: float, device: torch.device):
    """Codes and keep probabilities of the 5 crops of ratio σ of every image (§4.3).

    ``images_u8``: uint8 (N, C, H, W) images, or dataset rows (N,) for a :class:`~hashrepro.models.mch_hashers.FeatureHasher`.
    Returns (z_crops float (N, 5, Q), p_keep float (N, 5)).
    """
    n = len(images_u8)
    q = z_whole.shape[1]
    z_all = np.empty((n, 5, q), dtype=np.float32)
    p_all = np.empty((n, 5), dtype=np.float32)
    policy.eval()
    b_whole = codes_pm1(z_whole)
    f_whole_t = torch.from_numpy(f_whole)
    for c in range(5):
        f_c, z_c = crop_method(hasher, "embed_crop")(images_u8, sigma, c)
        st = build_state(f_whole_t, torch.from_numpy(f_c), b_whole, codes_pm1(z_c)).to(device)
        p = torch.cat([policy.keep_probability(st[i:i + 4096]).cpu() for i in range(0, n, 4096)])
        z_all[:, c] = z_c
        p_all[:, c] = p.numpy()
    return z_all, p_all


def extend(b_whole01: np.ndarray, z_crops: np.ndarray, p_keep: np.ndarray, xi: float,
           dedupe: bool = True):
    """Out-of-sample extension (§4.3): every item keeps its whole-image code plus the crop codes
    whose keep probability is ≥ ξ.

    Parameters
    ----------
    b_whole01 : (N, Q) {0,1} whole-image codes.
    z_crops : (N, 5, Q) crop pre-activations; p_keep : (N, 5) keep probabilities.
    dedupe : merge codes of one item that are equal (they live in the same bucket).

    Returns
    -------
    (codes01 (m, Q) uint8, owners (m,) int64, anhc_raw float) — ``anhc_raw`` is eq. 8 literally
    (1 + mean number of kept crops); the deduplicated count is ``len(codes01) / N``.
    """
    n, q = b_whole01.shape
    crops01 = binarize(z_crops.reshape(-1, q)).reshape(n, 5, q)
    keep = p_keep >= xi
    anhc_raw = 1.0 + float(keep.sum()) / max(n, 1)
    codes = [b_whole01]
    owners = [np.arange(n)]
    for c in range(5):
        sel = np.flatnonzero(keep[:, c])
        codes.append(crops01[sel, c])
        owners.append(sel)
    codes01 = np.concatenate(codes).astype(np.uint8)
    own = np.concatenate(owners).astype(np.int64)
    if dedupe and len(own):
        packed = np.packbits(codes01, axis=1)
        key = np.concatenate([own[:, None].astype(np.int64).view(np.uint8).reshape(len(own), 8), packed], 1)
        _, first = np.unique(key, axis=0, return_index=True)
        first = np.sort(first)
        codes01, own = codes01[first], own[first]
    order = np.argsort(own, kind="stable")
    return codes01[order], own[order], anhc_raw
