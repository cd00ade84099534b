"""DRSCH loss: triplet hinge on the weighted Hamming affinity + Laplacian regulariser.

Zhang, Lin, Zhang, Zuo, Zhang, *Bit-Scalable Deep Hashing with Regularized Similarity Learning*,
IEEE TIP 2015 (arXiv 1508.04535). The paper's equations were not available to us; the loss
follows the released Caffe code (``EuclideanTripletLossLayer``, ``data_layer.cpp``) as described
in ``../shared/papers/drsch-notes.md`` §2, with its sign quirk and stale-label bug fixed by
default and reproducible with ``code_faithful=True``.

Notation (shapes): a batch of N images with relaxed codes h (N, q) in (−1, 1) and bit weights
w (q,); the weighted codes are R = h · w (N, q).

* Weighted Hamming affinity  A_ij = Σ_k w_k² h_ik h_jk   (N, N).
  For ±1 codes, A_ij = Σ_k w_k² − 2·Σ_k w_k² [b_ik ≠ b_jk] (affinity = total weight − 2 × the
  weighted Hamming distance) and ‖r_i − r_j‖² = 2Σ_k w_k² − 2A_ij.
* Triplet term for (anchor a, positive p with a's label, negative n with another label):
  ``form="affinity"`` (default)   ℓ = max(0, C − 2(A_ap − A_an))
  ``form="distance"`` (released)  ℓ = max(0, C + ‖r_a − r_p‖² − ‖r_a − r_n‖²)
  The two are identical for ±1 codes (so C is in the same units in both: with unit weights
  C = 5 asks for d_H(a, n) − d_H(a, p) ≥ 5/4 bits). On relaxed codes the distance form also
  contains Σ_k w_k²(h_pk² − h_nk²), which pushes positives towards 0 and negatives towards ±1;
  the affinity form is the "margin on the weighted Hamming affinity" of the paper's wording.
  Averaged over all valid in-batch triplets (the released code samples 400k triplets with
  replacement from the ≈81k distinct ones and divides by 400k: the same expected gradient).
* Regulariser (λ/2)·tr(Rᵀ L R) with the graph Laplacian L = D − S built from the batch labels:
  S_ij = ``same`` (1) when i and j share a label, ``diff`` (0.001) otherwise, S_ii = 0,
  D = diag(Σ_j S_ij). tr(Rᵀ L R) = ½ Σ_ij S_ij ‖r_i − r_j‖² ≥ 0 (L is positive semi-definite),
  so the term pulls codes of the same class together.

``code_faithful=True`` reproduces the released code's regulariser instead: the matrix it stores
is M = −(D + S + 3I) (a negated signless Laplacian, negative definite: minimising it *rewards*
large ‖r_i + r_j‖, i.e. saturated codes that agree within a class), and it is built from the
**first** batch's labels for every later batch (``prefetch_imgclass`` is never cleared).
"""
from __future__ import annotations

import torch
from torch import nn

from .labels import label_similarity, triplet_mask

__all__ = [
    "same_label_matrix",
    "similarity_matrix",
    "label_laplacian",
    "code_faithful_matrix",
    "triplet_mask",
    "weighted_affinity",
    "triplet_hinge",
    "laplacian_regulariser",
    "margin_at",
    "DRSCHLoss",
]


def same_label_matrix(labels: torch.Tensor) -> torch.Tensor:
    """Boolean (N, N): True where items i and j are similar (:func:`hashrepro.losses.labels.label_similarity`).

    ``labels`` is int (N,) (same class) or multi-hot (N, C) (share at least one label).
    """
    return label_similarity(labels)


def similarity_matrix(labels: torch.Tensor, same: float = 1.0, diff: float = 0.001) -> torch.Tensor:
    """Label adjacency S (N, N): ``same`` for similar pairs, ``diff`` otherwise, 0 on the diagonal.

    The values are the released code's ``SAME_CLASS_VAL = 1`` and ``DIFF_CLASS_VAL = 0.001``; the
    weighted form of the one label similarity (:func:`hashrepro.losses.labels.label_similarity`).
    """
    return label_similarity(labels, same=same, diff=diff, zero_diagonal=True)


def label_laplacian(labels: torch.Tensor, same: float = 1.0, diff: float = 0.001) -> torch.Tensor:
    """Graph Laplacian L = D − S (N, N) of :func:`similarity_matrix`; positive semi-definite."""
    s = similarity_matrix(labels, same, diff)
    return torch.diag(s.sum(dim=1)) - s


def code_faithful_matrix(labels: torch.Tensor, same: float = 1.0, diff: float = 0.001) -> torch.Tensor:
    """The matrix the released code uses in place of L: M = −(D + S + 3I) (N, N); negative definite."""
    s = similarity_matrix(labels, same, diff)
    n = s.shape[0]
    return -(torch.diag(s.sum(dim=1)) + s + 3.0 * torch.eye(n, device=s.device))


def weighted_affinity(h: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """A_ij = Σ_k w_k² h_ik h_jk: h (N, q), weights (q,) or None (unit weights) → (N, N)."""
    if h.ndim != 2:
        raise ValueError(f"h must be (N, q), got shape {tuple(h.shape)}")
    if weights is None:
        return h @ h.T
    if weights.shape != (h.shape[1],):
        raise ValueError(f"weights must have shape ({h.shape[1]},), got {tuple(weights.shape)}")
    hw = h * weights
    return hw @ hw.T


def margin_at(iteration: int, margin0: float = 5.0, step: float = 0.1, every: int = 10_000) -> float:
    """Margin C after ``iteration`` steps: ``margin0 + step·⌊iteration/every⌋``.

    Released code: C starts at 5 (``loss_threshold: -5``) and grows by 0.1 (``decay: -0.1``)
    every 10,000 iterations (``iter_decay``), reaching 13 at 800k (notes §2).
    """
    if every <= 0:
        raise ValueError(f"every must be a positive number of iterations, got {every}")
    return float(margin0 + step * (int(iteration) // int(every)))


def triplet_hinge(h: torch.Tensor, weights: torch.Tensor | None, labels: torch.Tensor, margin: float,
                  form: str = "affinity", lazy: bool | None = None) -> tuple[torch.Tensor, int, int]:
    """Mean hinge over all valid in-batch triplets.

    Returns (mean loss (scalar), number of valid triplets, number of active triplets (loss > 0)).
    A batch with no valid triplet gives a zero loss that is still attached to the graph.
    ``lazy`` (None: when ``h`` is not on the CPU): a masked mean without a host synchronisation,
    the two counts returned as 0-dim device tensors.
    """
    mask = triplet_mask(labels)
    if form == "affinity":
        a = weighted_affinity(h, weights)
        viol = margin - 2.0 * (a[:, :, None] - a[:, None, :])
    elif form == "distance":
        r = h if weights is None else h * weights
        sq = (r * r).sum(dim=1)
        d = (sq[:, None] + sq[None, :] - 2.0 * (r @ r.T)).clamp_min(0.0)
        viol = margin + d[:, :, None] - d[:, None, :]
    else:
        raise ValueError(f"form must be 'affinity' or 'distance', got {form!r}")
    if h.device.type != "cpu" if lazy is None else lazy:
        m = mask.to(viol.dtype)
        hinge = torch.relu(viol) * m
        n_t = m.sum()
        return hinge.sum() / n_t.clamp_min(1.0), n_t.detach(), (hinge > 0).sum().detach()
    hinge = torch.relu(viol)[mask]
    n_valid = int(mask.sum())
    if n_valid == 0:
        return h.sum() * 0.0, 0, 0
    return hinge.mean(), n_valid, int((hinge > 0).sum())


def laplacian_regulariser(r: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """½·tr(Rᵀ M R) for R = r (N, q) and M (N, N) (the λ is applied by the caller)."""
    if matrix.shape != (r.shape[0], r.shape[0]):
        raise ValueError(f"matrix must be ({r.shape[0]}, {r.shape[0]}), got {tuple(matrix.shape)}")
    return 0.5 * torch.sum(r * (matrix.to(r) @ r))


class DRSCHLoss(nn.Module):
    """DSCH / DRSCH objective on one batch (see the module docstring for the equations).

    Parameters
    ----------
    lam : float
        λ of the regulariser (λ/2)·tr(Rᵀ L R). 0 gives DSCH (triplet term only).
    margin : float
        Margin C used when ``forward`` is not given one (the method passes the scheduled C).
    form : "affinity" | "distance"
        Hinge on the weighted Hamming affinity (default) or the released code's squared
        Euclidean distance of the weighted relaxed codes; the same for ±1 codes.
    same, diff : float
        Label adjacency values S_ij for similar / dissimilar pairs (1 and 0.001, released code).
    code_faithful : bool
        False (default): PSD Laplacian L = D − S from the current batch's labels.
        True: the released code's M = −(D + S + 3I) built from the first batch's labels forever
        (call :meth:`reset` to forget them).

    ``forward(h, weights, labels, margin=None)``: h (N, q) relaxed codes, weights (q,) bit
    weights (or None), labels (N,) int or (N, C) multi-hot → scalar loss. The parts of the last
    call are in ``self.last`` (floats: "triplet", "regulariser", "n_valid", "n_active").
    """

    def __init__(self, lam: float = 0.0, margin: float = 5.0, form: str = "affinity", same: float = 1.0,
                 diff: float = 0.001, code_faithful: bool = False):
        super().__init__()
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        if form not in ("affinity", "distance"):
            raise ValueError(f"form must be 'affinity' or 'distance', got {form!r}")
        if diff < 0 or same < 0:
            raise ValueError(f"same and diff must be >= 0, got same={same}, diff={diff}")
        self.lam = float(lam)
        self.margin = float(margin)
        self.form = form
        self.same = float(same)
        self.diff = float(diff)
        self.code_faithful = bool(code_faithful)
        self._stale_labels: torch.Tensor | None = None
        self.last: dict = {}
        #: None: ``last`` holds device tensors (no host sync) off the CPU, floats on the CPU; or forced.
        self.lazy_stats: bool | None = None

    def reset(self) -> None:
        """Forget the labels remembered by ``code_faithful=True``."""
        self._stale_labels = None

    def regulariser_matrix(self, labels: torch.Tensor) -> torch.Tensor:
        """L = D − S of ``labels`` (default), or the released code's stale M (``code_faithful``)."""
        if not self.code_faithful:
            return label_laplacian(labels, self.same, self.diff)
        if self._stale_labels is None or self._stale_labels.shape != labels.shape:
            self._stale_labels = labels.detach().clone()
        return code_faithful_matrix(self._stale_labels, self.same, self.diff)

    def forward(self, h: torch.Tensor, weights: torch.Tensor | None, labels: torch.Tensor,
                margin: float | None = None) -> torch.Tensor:
        if h.ndim != 2 or labels.shape[0] != h.shape[0]:
            raise ValueError(f"h must be (N, q) and labels (N,) or (N, C) with the same N; got h "
                             f"{tuple(h.shape)}, labels {tuple(labels.shape)}")
        c = self.margin if margin is None else float(margin)
        lazy = h.device.type != "cpu" if self.lazy_stats is None else self.lazy_stats
        trip, n_valid, n_active = triplet_hinge(h, weights, labels, c, self.form, lazy=lazy)
        loss = trip
        reg = torch.zeros((), device=h.device)
        if self.lam > 0:
            r = h if weights is None else h * weights
            reg = laplacian_regulariser(r, self.regulariser_matrix(labels.to(h.device)).to(h.device))
            loss = loss + self.lam * reg
        if lazy:  # no host synchronisation: device tensors (the caller converts once, at the end)
            self.last = {"triplet": trip.detach(), "regulariser": reg.detach(), "n_valid": n_valid,
                         "n_active": n_active, "margin": c}
        else:
            self.last = {"triplet": float(trip.detach()), "regulariser": float(reg.detach()),
                         "n_valid": n_valid, "n_active": n_active, "margin": c}
        return loss

    def extra_repr(self) -> str:
        return (f"lam={self.lam}, margin={self.margin}, form={self.form!r}, same={self.same}, diff={self.diff}, "
                f"code_faithful={self.code_faithful}")
