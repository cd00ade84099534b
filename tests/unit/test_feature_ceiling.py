"""The reference retrievers of hashrepro.feature_ceiling (issue 15), on small generated data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hashrepro import feature_ceiling as FC
from hashrepro.metrics import mean_average_precision


def test_label_agreement_is_minus_the_probability_of_a_shared_label():
    rng = np.random.default_rng(0)
    pq, pdb = rng.dirichlet(np.ones(4), 5), rng.dirichlet(np.ones(4), 7)
    d = FC.label_agreement(pq, pdb)
    brute = np.array([[-sum(pq[i, c] * pdb[j, c] for c in range(4)) for j in range(7)] for i in range(5)])
    assert d.shape == (5, 7) and np.allclose(d, brute)


def test_certain_correct_probabilities_rank_perfectly_and_uniform_ones_rank_at_chance():
    yq, ydb = np.array([0, 1, 2]), np.array([0, 1, 2, 0, 1, 2, 2])
    onehot = np.eye(3)
    assert mean_average_precision(query_labels=yq, db_labels=ydb,
                                  dist=FC.label_agreement(onehot[yq], onehot[ydb])) == pytest.approx(1.0)
    flat = np.full((3, 3), 1 / 3)  # every item equally likely: all ties, expected order = chance
    m = mean_average_precision(query_labels=yq, db_labels=ydb, ties="expected",
                               dist=FC.label_agreement(flat, np.full((7, 3), 1 / 3)))
    assert 0.2 < m < 0.6


@pytest.mark.parametrize("hidden", [0, 16])
def test_fit_softmax_learns_separable_classes_and_is_seeded(hidden):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(40)
    x = torch.randn(120, 5, generator=g) * 0.3 + torch.nn.functional.one_hot(y, 5).float() * 3
    a = FC.fit_softmax(x, y, 3, hidden, 1e-4, epochs=30, batch_size=16, lr=1e-2, seed=1)
    b = FC.fit_softmax(x, y, 3, hidden, 1e-4, epochs=30, batch_size=16, lr=1e-2, seed=1)
    with torch.no_grad():
        assert (a(x).argmax(1) == y).float().mean() > 0.95
        assert torch.equal(a(x), b(x))


def test_weight_decay_is_chosen_on_held_out_training_rows_only():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(2).repeat(30)
    x = torch.randn(60, 4, generator=g) + torch.nn.functional.one_hot(y, 4).float() * 2
    cfg = FC.CeilingConfig(n_val_per_class=5, epochs=5, batch_size=16, weight_decays=(1e-4, 10.0))
    wd, acc = FC._choose_weight_decay(cfg, x, y, 2, 0, np.random.default_rng(0))
    assert set(acc) == {1e-4, 10.0} and wd == max(acc, key=lambda w: (acc[w], -cfg.weight_decays.index(w)))
    assert all(0.0 <= a <= 1.0 for a in acc.values())
