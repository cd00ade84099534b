"""Pairwise hashing losses of MCH Table 1 (KSH, HashNet, ADSH, DCH, MMHH) as ``nn.Module``\\ s.

Every loss in Table 1 of Li, Jiang, Li, *Multiple Code Hashing* is a function ``L(d_ij, s_ij)`` of
a (relaxed) Hamming distance ``d_ij`` and a pairwise label ``s_ij ∈ {0, 1}``, times a pair weight
``w_ij`` for HashNet, DCH and MMHH, plus a regulariser on the relaxed codes. Each module here
therefore exposes two things:

``pair_loss(d, s)``
    the element-wise ``L(d, s)`` of Table 1 (no weight, no regulariser), valid both for relaxed
    distances and for exact Hamming distances of binary codes. MCH's reward (eq. 6) evaluates
    the base model's own ``L`` on binary codes, so :mod:`hashrepro.losses.mch_reward` calls this.
``forward(u, v, s, w=None)``
    the training objective on relaxed codes ``u`` (n, Q) against ``v`` (m, Q) (``v = u`` for the
    symmetric methods; for ADSH ``v`` are the learned database codes), the similarity ``s``
    (n, m) and optional pair weights ``w`` (n, m) (see :func:`pair_weights`), returning a scalar:
    ``sum(w * L) / sum(w)`` + the Table-1 regulariser.

Distances (Table 1 and ``baselines-notes.md``):

* KSH, HashNet, ADSH use the inner product: ``Q - 2 d_ij := <u_i, u_j>`` (:func:`inner_distance`);
* DCH and MMHH use the normalised (cosine) distance ``d = Q/2 (1 - cos(u_i, u_j))``
  (:func:`cosine_distance`), as in the DCH paper and MMHH's code.

Shapes: ``u`` (n, Q), ``v`` (m, Q), ``s``/``w``/``d`` (n, m). All losses are differentiable in
``u`` (and ``v``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .labels import label_similarity

__all__ = [
    "similarity",
    "pair_weights",
    "inner_distance",
    "cosine_distance",
    "hamming_distance_pm1",
    "PairwiseHashLoss",
    "KSHLoss",
    "HashNetLoss",
    "ADSHLoss",
    "DCHLoss",
    "MMHHLoss",
    "LOSSES",
    "make_loss",
]


# --------------------------------------------------------------------------- helpers
def similarity(labels_a, labels_b=None) -> torch.Tensor:
    """Pairwise labels ``s_ij`` (MCH §3.2, §5.1): 1 when the items share at least one label
    (the one label similarity, :func:`hashrepro.losses.labels.label_similarity`, as float).

    Parameters
    ----------
    labels_a : (n,) int class ids or (n, C) multi-hot {0,1}
    labels_b : same kind, (m,) or (m, C); default ``labels_a``.

    Returns
    -------
    float32 tensor (n, m) with values in {0, 1}.
    """
    return label_similarity(labels_a, labels_b).float()


def pair_weights(s: torch.Tensor, scheme: str = "balanced", n_pos: float | None = None,
                 n_neg: float | None = None) -> torch.Tensor:
    """Pair weights ``w_ij`` for the similar/dissimilar imbalance (HashNet §3.2, DCH §3.2).

    Parameters
    ----------
    s : (n, m) {0,1} similarities.
    scheme : ``"balanced"`` — ``w = |S|/|S_1|`` for similar pairs and ``|S|/|S_0|`` for dissimilar
        pairs (the papers' form; with ``sum(w L)/sum(w)`` similar and dissimilar pairs then count
        half each); ``"positive"`` — similar pairs ``|S|/|S_1|``, dissimilar 1 (DCH's code);
        ``"none"`` — all 1.
    n_pos, n_neg : optional global counts |S_1|, |S_0| (e.g. over the whole training set) to use
        instead of the counts inside ``s`` (a mini-batch).

    Returns
    -------
    float tensor (n, m).
    """
    s = torch.as_tensor(s).float()
    if scheme == "none":
        return torch.ones_like(s)
    if scheme not in ("balanced", "positive"):
        raise ValueError(f"scheme must be 'balanced', 'positive' or 'none', got {scheme!r}")
    p = float(s.sum()) if n_pos is None else float(n_pos)
    q = float(s.numel() - s.sum()) if n_neg is None else float(n_neg)
    total = p + q
    wp = total / p if p > 0 else 0.0
    wn = (total / q if q > 0 else 0.0) if scheme == "balanced" else 1.0
    return torch.where(s > 0, torch.full_like(s, wp), torch.full_like(s, wn))


def inner_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Relaxed Hamming distance from the inner product: ``d = (Q - <u_i, v_j>) / 2`` (eq. 1).

    u : (n, Q), v : (m, Q) -> (n, m). Exact Hamming distance when u, v ∈ {-1, +1}^Q.
    """
    q = u.shape[1]
    return 0.5 * (q - u @ v.T)


def cosine_distance(u: torch.Tensor, v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalised relaxed distance ``d = Q/2 (1 - cos(u_i, v_j))`` (DCH eq. 6; MMHH).

    u : (n, Q), v : (m, Q) -> (n, m). Exact Hamming distance when u, v ∈ {-1, +1}^Q.
    """
    q = u.shape[1]
    un = F.normalize(u, dim=1, eps=eps)
    vn = F.normalize(v, dim=1, eps=eps)
    return 0.5 * q * (1.0 - un @ vn.T)


def hamming_distance_pm1(b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """Exact Hamming distance (eq. 1) between ±1 codes: b1 (n, Q), b2 (m, Q) -> float (n, m)."""
    return inner_distance(b1.float(), b2.float())


def _sign(u: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1 (a code bit is never 0)."""
    return torch.where(u >= 0, torch.ones_like(u), -torch.ones_like(u))


# --------------------------------------------------------------------------- base class
class PairwiseHashLoss(nn.Module):
    """Base class: ``forward = sum(w * pair_loss(distance(u, v), s)) / sum(w) + regulariser(u)``.

    Subclasses set ``distance`` (``"inner"`` or ``"cosine"``), implement :meth:`pair_loss` and,
    where Table 1 has one, :meth:`regularizer`. ``weighted`` says whether Table 1 multiplies the
    loss by ``w_ij`` (HashNet, DCH, MMHH); when it does and no ``w`` is passed, balanced weights
    of the batch (:func:`pair_weights`) are used.
    """

    name = "base"
    distance = "inner"
    weighted = False
    relaxation = "tanh"  # how the model relaxes sign(): "sigmoid" (KSH's φ), "tanh", "continuous"

    def __init__(self, n_bits: int):
        super().__init__()
        if not isinstance(n_bits, (int, np.integer)) or n_bits < 1:
            raise ValueError(f"n_bits must be a positive integer, got {n_bits!r}")
        self.n_bits = int(n_bits)

    # -- pieces
    def relaxed_distance(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(n, Q), (m, Q) -> (n, m) relaxed Hamming distance used by this method."""
        return inner_distance(u, v) if self.distance == "inner" else cosine_distance(u, v)

    def pair_loss(self, d: torch.Tensor, s: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Element-wise ``L(d_ij, s_ij)`` of Table 1 (no weight): (n, m), (n, m) -> (n, m)."""
        raise NotImplementedError

    def regularizer(self, u: torch.Tensor) -> torch.Tensor:
        """Table-1 regularisation term averaged over the batch: u (n, Q) -> scalar (0 if N/A)."""
        return u.new_zeros(())

    # -- objective
    def forward(self, u: torch.Tensor, v: torch.Tensor | None, s: torch.Tensor,
                w: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar training objective.

        Parameters
        ----------
        u : (n, Q) relaxed codes of the batch.
        v : (m, Q) relaxed codes to compare with (None: ``u`` itself, the symmetric case).
        s : (n, m) {0,1} similarities.
        w : (n, m) pair weights (default: balanced batch weights if the method is weighted,
            else ones).
        """
        if u.dim() != 2 or u.shape[1] != self.n_bits:
            raise ValueError(f"u must have shape (n, {self.n_bits}), got {tuple(u.shape)}")
        v = u if v is None else v
        if s.shape != (u.shape[0], v.shape[0]):
            raise ValueError(f"s must have shape ({u.shape[0]}, {v.shape[0]}), got {tuple(s.shape)}")
        s = s.to(u.dtype)
        if w is None:
            w = pair_weights(s, "balanced") if self.weighted else torch.ones_like(s)
        w = w.to(u.dtype)
        d = self.relaxed_distance(u, v)
        data = (w * self.pair_loss(d, s)).sum() / w.sum().clamp_min(1e-12)
        return data + self.regularizer(u)

    def extra_repr(self) -> str:
        return f"n_bits={self.n_bits}"


# --------------------------------------------------------------------------- Table 1
class KSHLoss(PairwiseHashLoss):
    """KSH (Liu et al. 2012) as in MCH Table 1: ``L = ((Q - 2d)/Q - (2s - 1))^2``.

    Relaxation: sigmoid smoothing — the model outputs ``φ(z) = 2/(1 + e^{-z}) - 1`` in place of
    ``sign(z)``; ``Q - 2d = <φ_i, φ_j>``. No regulariser. Equivalent to KSH's
    ``||Φ Φᵀ/Q - S_{±1}||_F^2`` objective (up to the constant factor Q²).
    """

    name = "ksh"
    distance = "inner"
    relaxation = "sigmoid"

    def pair_loss(self, d, s):
        q = self.n_bits
        return ((q - 2.0 * d) / q - (2.0 * s - 1.0)) ** 2


class HashNetLoss(PairwiseHashLoss):
    """HashNet (Cao et al. 2017), MCH Table 1: ``L = w (log(1 + e^{α(Q-2d)}) - s α (Q - 2d))``.

    Relaxation: tanh smoothing ``u = tanh(β_t z)`` with the continuation β_t (HashNet §3.3; see
    :func:`hashnet_beta`). ``α = 10/Q`` as in HashNet's code (``sigmoid_param``); the softplus is
    evaluated stably (the code's linear branch for ``α·ip > 15`` is the same function).
    """

    name = "hashnet"
    distance = "inner"
    weighted = True
    relaxation = "tanh"

    def __init__(self, n_bits: int, alpha: float | None = None):
        super().__init__(n_bits)
        self.alpha = 10.0 / self.n_bits if alpha is None else float(alpha)
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")

    def pair_loss(self, d, s):
        ip = self.alpha * (self.n_bits - 2.0 * d)
        return F.softplus(ip) - s * ip

    def extra_repr(self):
        return f"n_bits={self.n_bits}, alpha={self.alpha:g}"


def hashnet_beta(iteration: int, step: int = 200, gamma: float = 0.005, power: float = 0.5) -> float:
    """HashNet's continuation ``β_t = (1 + γ t)^power`` recomputed every ``step`` iterations."""
    t = (int(iteration) // step) * step
    return float((1.0 + gamma * t) ** power)


class ADSHLoss(PairwiseHashLoss):
    """ADSH (Jiang & Li 2018), MCH Table 1: ``L = ((Q - 2d) - Q (2s - 1))^2`` + ``γ ||v_i - u_i||²``.

    Asymmetric: ``d`` is between the network output ``u_i = tanh(F(x_i))`` (query side) and a
    *learned binary database code* ``v_j ∈ {±1}^Q`` (``Q - 2d = u_iᵀ v_j``). The regulariser
    ``γ ||v_i - u_i||²`` ties a training point's network output to its own database code; pass
    ``v_self`` (n, Q), the database codes of the batch items, to :meth:`forward`. γ = 200 (ADSH).
    As in ADSH's code the objective is normalised by the number of pairs (``sum / (n m)``).
    """

    name = "adsh"
    distance = "inner"
    relaxation = "continuous"

    def __init__(self, n_bits: int, gamma: float = 200.0):
        super().__init__(n_bits)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def pair_loss(self, d, s):
        q = self.n_bits
        return ((q - 2.0 * d) - q * (2.0 * s - 1.0)) ** 2

    def forward(self, u, v, s, w=None, v_self: torch.Tensor | None = None):
        """u (n, Q) net outputs; v (m, Q) database codes (±1); s (n, m); v_self (n, Q) or None."""
        if v is None:
            v = _sign(u.detach())
        if s.shape != (u.shape[0], v.shape[0]):
            raise ValueError(f"s must have shape ({u.shape[0]}, {v.shape[0]}), got {tuple(s.shape)}")
        s = s.to(u.dtype)
        w = torch.ones_like(s) if w is None else w.to(u.dtype)
        d = inner_distance(u, v.to(u.dtype))
        data = (w * self.pair_loss(d, s)).sum() / w.sum().clamp_min(1e-12)
        reg = u.new_zeros(())
        if v_self is not None:
            # ADSH's objective: sum_i [sum_j (.)^2 + γ ||v_i - u_i||^2]; per pair that is γ/m per i.
            reg = self.gamma * ((v_self.to(u.dtype) - u) ** 2).sum(1).mean() / v.shape[0]
        return data + reg

    def extra_repr(self):
        return f"n_bits={self.n_bits}, gamma={self.gamma:g}"


class DCHLoss(PairwiseHashLoss):
    """DCH (Cao et al. 2018), MCH Table 1: ``L = w (s log(d/γ) + log(1 + γ/d))``,
    regulariser ``λ log(1 + Q/(2γ) (1 - cos(b_i, u_i)))`` with ``b = sign(u)``.

    The pair loss is evaluated in the algebraically equal, numerically safe form
    ``s log(1 + d/γ) + (1 - s) log(1 + γ/d)`` (the cross-entropy of the Cauchy probability
    ``γ/(γ + d)``); ``d`` is clamped at ``eps`` (DCH's code adds 0.001) so that a dissimilar pair
    at distance 0 costs ``log(1 + γ/eps)`` instead of infinity. ``d`` is the cosine distance.
    γ = 20 (DCH's code default); λ: DCH selects it by cross-validation and its code uses 0; we use
    λ = 0.1 (stated in the chapter).
    """

    name = "dch"
    distance = "cosine"
    weighted = True
    relaxation = "continuous"

    def __init__(self, n_bits: int, gamma: float = 20.0, lam: float = 0.1, eps: float = 1e-3):
        super().__init__(n_bits)
        if gamma <= 0 or lam < 0 or eps <= 0:
            raise ValueError(f"need gamma > 0, lam >= 0, eps > 0; got gamma={gamma}, lam={lam}, eps={eps}")
        self.gamma, self.lam, self.eps = float(gamma), float(lam), float(eps)

    def pair_loss(self, d, s):
        return s * torch.log1p(d.clamp_min(0.0) / self.gamma) + (1.0 - s) * torch.log1p(self.gamma / d.clamp_min(self.eps))

    def regularizer(self, u):
        if self.lam == 0:
            return u.new_zeros(())
        cos = F.cosine_similarity(u.abs(), torch.ones_like(u), dim=1)  # = cos(sign(u), u)
        return self.lam * torch.log1p(self.n_bits / (2.0 * self.gamma) * (1.0 - cos)).mean()

    def extra_repr(self):
        return f"n_bits={self.n_bits}, gamma={self.gamma:g}, lam={self.lam:g}"


class MMHHLoss(PairwiseHashLoss):
    """MMHH (Kang et al. 2019), MCH Table 1:
    ``L = w (s log(1 + max(0, d - H)) + (1 - s) log(1 + 1/max(H, d)))`` + ``λ ||b_i - u_i||²``.

    H is the Hamming radius (margin; H = 2 as in MMHH's README), λ = 0.001 (MMHH's README). ``d``
    is the cosine distance (MMHH's ``calc_ham_dist``). ``gamma`` is the scale of MMHH's
    t-distribution, ``s log(1 + max(0, d - H)/γ) + (1 - s) log(1 + γ/max(H, d))``; the default
    γ = 1 is Table 1's form (MMHH's README uses γ = 10). With γ = 1 the push on dissimilar pairs
    (slope ``1/(d(d+1))``) is an order of magnitude weaker than the pull on similar pairs
    (``1/(1+d-H)``), and it vanishes once ``d < H``: when most pairs are similar the codes can
    collapse to one bucket, an absorbing state. MMHH's public code re-weights the cross-entropy by
    a margin rule instead; that variant is not implemented.
    """

    name = "mmhh"
    distance = "cosine"
    weighted = True
    relaxation = "continuous"

    def __init__(self, n_bits: int, radius: float = 2.0, lam: float = 0.001, gamma: float = 1.0):
        super().__init__(n_bits)
        if radius <= 0 or lam < 0 or gamma <= 0:
            raise ValueError(f"need radius > 0, lam >= 0, gamma > 0; got radius={radius}, lam={lam}, gamma={gamma}")
        self.radius, self.lam, self.gamma = float(radius), float(lam), float(gamma)

    def pair_loss(self, d, s):
        h, g = self.radius, self.gamma
        return (s * torch.log1p(torch.clamp(d - h, min=0.0) / g)
                + (1.0 - s) * torch.log1p(g / torch.clamp(d, min=h)))

    def regularizer(self, u):
        if self.lam == 0:
            return u.new_zeros(())
        return self.lam * ((_sign(u.detach()) - u) ** 2).sum(1).mean()

    def extra_repr(self):
        return f"n_bits={self.n_bits}, radius={self.radius:g}, lam={self.lam:g}, gamma={self.gamma:g}"


LOSSES = {"ksh": KSHLoss, "hashnet": HashNetLoss, "adsh": ADSHLoss, "dch": DCHLoss, "mmhh": MMHHLoss}


def make_loss(name: str, n_bits: int, **kwargs) -> PairwiseHashLoss:
    """Build a Table-1 loss by name (``ksh`` | ``hashnet`` | ``adsh`` | ``dch`` | ``mmhh``)."""
    key = str(name).lower()
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {sorted(LOSSES)}")
    return LOSSES[key](n_bits, **kwargs)

