"""Label similarity and in-batch triplets: the one definition every loss uses.

Two items are *similar* when they have the same class (integer labels ``(N,)``) or share at
least one label (multi-hot labels ``(N, C)``, the NUS-WIDE convention: DNNH §4.1, DRSCH, MCH
§3.2 / §5.1). :func:`label_similarity` is that relation as a matrix, and, with ``same`` /
``diff``, DRSCH's weighted adjacency (the released code's 1 / 0.001 with a zero diagonal, used by
its Laplacian regulariser). :func:`triplet_mask` is the set of valid in-batch triplets
(a, p, n): p ≠ a similar to a, n dissimilar to a.

Users: :mod:`hashrepro.losses.triplet` (DNNH eq. 2), :mod:`hashrepro.losses.drsch` (DRSCH's
triplet hinge and Laplacian), :mod:`hashrepro.losses.pairwise` (``s_ij`` of the pairwise losses).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["label_similarity", "triplet_mask"]


def _as_labels(labels) -> torch.Tensor:
    return labels if torch.is_tensor(labels) else torch.as_tensor(np.asarray(labels))


def label_similarity(labels_a, labels_b=None, *, same: float | None = None, diff: float = 0.0,
                     zero_diagonal: bool = False) -> torch.Tensor:
    """Pairwise label similarity of ``labels_a`` (n items) and ``labels_b`` (m items; default ``labels_a``).

    Parameters
    ----------
    labels_a, labels_b : int class ids ``(n,)`` / ``(m,)`` or multi-hot ``(n, C)`` / ``(m, C)``
        (tensors or array-likes; both of the same kind).
    same, diff : None (default): the relation itself, bool ``(n, m)``. A number: a float32
        ``(n, m)`` matrix with ``same`` for similar pairs and ``diff`` otherwise (computed as
        ``sim * (same − diff) + diff``; DRSCH: ``same=1, diff=0.001``).
    zero_diagonal : set ``[i, i]`` to 0 (only with ``same``; the adjacency of a graph).

    Returns
    -------
    bool tensor (n, m), or float32 (n, m) when ``same`` is given.
    """
    a = _as_labels(labels_a)
    b = a if labels_b is None else _as_labels(labels_b)
    if a.dim() not in (1, 2) or b.dim() != a.dim():
        raise ValueError(f"labels must be int class ids (n,) or multi-hot (n, C), both of the same kind; got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() == 1:
        sim = a[:, None] == b[None, :]
    else:
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"multi-hot labels need the same number of classes, got {a.shape[1]} and {b.shape[1]}")
        sim = (a.float() @ b.float().T) > 0
    if same is None:
        if zero_diagonal:
            raise ValueError("zero_diagonal needs a weighted similarity (pass same=..., diff=...)")
        return sim
    s = sim.float() * (float(same) - float(diff)) + float(diff)
    if zero_diagonal:
        s.fill_diagonal_(0.0)
    return s


def triplet_mask(labels) -> torch.Tensor:
    """Bool ``(N, N, N)`` mask of the valid in-batch triplets ``[a, p, n]``: ``a ≠ p``, ``p`` similar
    to ``a``, ``n`` dissimilar to ``a`` (:func:`label_similarity`). ``labels``: int ``(N,)`` or
    multi-hot ``(N, C)``."""
    sim = label_similarity(labels)
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    pos = sim & ~eye          # (a, p)
    neg = ~sim                # (a, n)
    return pos[:, :, None] & neg[:, None, :]
