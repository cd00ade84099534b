"""hashrepro.losses.labels: the one label similarity and the one triplet_mask.

The ``_old_*`` functions are verbatim copies of the definitions that lived in
``losses/triplet.py``, ``losses/drsch.py`` and ``losses/pairwise.py`` before they were merged
(issue 14); the public names of those modules must give exactly the same tensors (dtype, values,
bit for bit) on random single- and multi-label batches.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hashrepro.losses import drsch as D
from hashrepro.losses import pairwise as P
from hashrepro.losses import triplet as T
from hashrepro.losses.labels import label_similarity, triplet_mask


# --------------------------------------------------------------------------- the old copies (references)
def _old_triplet_similarity_matrix(labels, labels_other=None):
    other = labels if labels_other is None else labels_other
    if labels.ndim == 1:
        return labels[:, None] == other[None, :]
    return (labels.float() @ other.float().T) > 0


def _old_triplet_mask_dnnh(labels):
    sim = _old_triplet_similarity_matrix(labels)
    eye = torch.eye(len(sim), dtype=torch.bool, device=sim.device)
    return (sim & ~eye)[:, :, None] & (~sim)[:, None, :]


def _old_same_label_matrix(labels):
    if labels.ndim == 1:
        return labels[:, None] == labels[None, :]
    lab = labels.float()
    return (lab @ lab.T) > 0


def _old_drsch_similarity_matrix(labels, same=1.0, diff=0.001):
    s = _old_same_label_matrix(labels).float() * (float(same) - float(diff)) + float(diff)
    s.fill_diagonal_(0.0)
    return s


def _old_triplet_mask_drsch(labels):
    sim = _old_same_label_matrix(labels)
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    return (sim & ~eye)[:, :, None] & (~sim)[:, None, :]


def _old_pairwise_similarity(labels_a, labels_b=None):
    a = torch.as_tensor(np.asarray(labels_a) if not torch.is_tensor(labels_a) else labels_a)
    b = a if labels_b is None else torch.as_tensor(np.asarray(labels_b) if not torch.is_tensor(labels_b) else labels_b)
    if a.dim() == 1:
        return (a[:, None] == b[None, :]).float()
    return ((a.float() @ b.float().T) > 0).float()


def _batches():
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        n = int(torch.randint(2, 40, (1,), generator=g))
        k = int(torch.randint(1, 6, (1,), generator=g))
        yield torch.randint(0, k, (n,), generator=g)                           # single-label (N,)
        c = int(torch.randint(1, 8, (1,), generator=g))
        multi = (torch.rand(n, c, generator=g) < 0.3).to(torch.int64)          # multi-hot (N, C), empty rows too
        yield multi
        yield multi.float()


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b)


@pytest.mark.parametrize("case", range(90))
def test_public_names_give_the_old_numbers(case):
    y = list(_batches())[case]
    m = len(y) // 2 + 1
    _same(T.similarity_matrix(y), _old_triplet_similarity_matrix(y))
    _same(T.similarity_matrix(y, y[:m]), _old_triplet_similarity_matrix(y, y[:m]))
    _same(T.triplet_mask(y), _old_triplet_mask_dnnh(y))
    _same(D.triplet_mask(y), _old_triplet_mask_drsch(y))
    _same(D.same_label_matrix(y), _old_same_label_matrix(y))
    for same, diff in ((1.0, 0.001), (1.0, 0.0), (2.5, -0.3)):
        _same(D.similarity_matrix(y, same, diff), _old_drsch_similarity_matrix(y, same, diff))
    _same(D.label_laplacian(y), torch.diag(_old_drsch_similarity_matrix(y).sum(1)) - _old_drsch_similarity_matrix(y))
    _same(P.similarity(y), _old_pairwise_similarity(y))
    _same(P.similarity(y.numpy(), y[:m].numpy()), _old_pairwise_similarity(y.numpy(), y[:m].numpy()))
    # the one definition itself, against every old copy
    _same(label_similarity(y), _old_same_label_matrix(y))
    _same(label_similarity(y, y[:m]), _old_triplet_similarity_matrix(y, y[:m]))
    _same(label_similarity(y, same=1.0, diff=0.001, zero_diagonal=True), _old_drsch_similarity_matrix(y))
    _same(label_similarity(y.numpy(), same=1.0), _old_pairwise_similarity(y))
    _same(triplet_mask(y), _old_triplet_mask_dnnh(y))
    _same(triplet_mask(y), _old_triplet_mask_drsch(y))


def test_one_definition():
    assert T.triplet_mask is triplet_mask and D.triplet_mask is triplet_mask
    assert T.similarity_matrix is label_similarity


def test_label_similarity_bad_input():
    with pytest.raises(ValueError, match="int class ids"):
        label_similarity(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="same kind"):
        label_similarity(torch.zeros(3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="same number of classes"):
        label_similarity(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="zero_diagonal needs"):
        label_similarity(torch.zeros(3), zero_diagonal=True)
