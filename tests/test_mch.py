"""Tests for the MCH chapter: Table-1 losses, pair weights, policy, agent, extension, run()."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hashrepro.losses import pairwise as P
from hashrepro.models.policy import KEEP, PolicyNet, build_state
from hashrepro.models.small_cnn import HashModel, SmallCNN


# --------------------------------------------------------------------------- helpers
def test_similarity_int_and_multihot():
    s = P.similarity(np.array([0, 1, 0]))
    assert s.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    y = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]])
    s = P.similarity(y)
    assert s.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    with pytest.raises(ValueError):
        P.similarity(np.zeros((3, 2)), np.zeros((3, 4)))


def test_pair_weights_balanced():
    s = torch.tensor([[1.0, 0, 0, 0]])
    w = P.pair_weights(s, "balanced")
    assert torch.allclose(w, torch.tensor([[4.0, 4 / 3, 4 / 3, 4 / 3]]))
    # positives and negatives each carry half the total weight
    assert math.isclose(float((w * s).sum()), float((w * (1 - s)).sum()))
    w = P.pair_weights(s, "positive")
    assert torch.allclose(w, torch.tensor([[4.0, 1, 1, 1]]))
    assert torch.all(P.pair_weights(s, "none") == 1)
    with pytest.raises(ValueError):
        P.pair_weights(s, "bogus")


def test_distances_exact_on_binary_codes():
    b = torch.tensor([[1.0, 1, -1, -1], [1, -1, -1, 1], [-1, -1, 1, 1]])
    d = P.inner_distance(b, b)
    assert d.tolist() == [[0, 2, 4], [2, 0, 2], [4, 2, 0]]
    assert torch.allclose(P.cosine_distance(b, b), d, atol=1e-5)
    # cosine distance is scale invariant
    assert torch.allclose(P.cosine_distance(0.3 * b, b), d, atol=1e-5)


# --------------------------------------------------------------------------- Table 1, hand-worked
Q = 4


def test_ksh_pair_loss_hand_values():
    L = P.KSHLoss(Q)
    d = torch.tensor([0.0, 2.0, 4.0])
    # (Q-2d)/Q = 1, 0, -1
    assert L.pair_loss(d, torch.ones(3)).tolist() == [0.0, 1.0, 4.0]
    assert L.pair_loss(d, torch.zeros(3)).tolist() == [4.0, 1.0, 0.0]


def test_hashnet_pair_loss_hand_values():
    L = P.HashNetLoss(Q)
    a = 10 / Q
    assert math.isclose(L.alpha, a)
    d = torch.tensor([0.0, 2.0])
    got = L.pair_loss(d, torch.tensor([1.0, 0.0]))
    exp = [math.log1p(math.exp(a * 4)) - a * 4, math.log1p(math.exp(0.0))]
    assert np.allclose(got.tolist(), exp, atol=1e-6)
    # stable for huge inner products
    assert torch.isfinite(P.HashNetLoss(64, alpha=10.0).pair_loss(torch.tensor([0.0]), torch.tensor([0.0]))).all()


def test_adsh_pair_loss_hand_values():
    L = P.ADSHLoss(Q)
    d = torch.tensor([0.0, 1.0, 4.0])
    assert L.pair_loss(d, torch.ones(3)).tolist() == [0.0, 4.0, 64.0]
    assert L.pair_loss(d, torch.zeros(3)).tolist() == [64.0, 36.0, 0.0]


def test_dch_pair_loss_matches_table1_form():
    g = 20.0
    L = P.DCHLoss(Q, gamma=g)
    for d in (0.5, 1.0, 3.0):
        for s in (0.0, 1.0):
            table1 = s * math.log(d / g) + math.log(1 + g / d)
            got = float(L.pair_loss(torch.tensor(d), torch.tensor(s)))
            assert math.isclose(got, table1, rel_tol=1e-5, abs_tol=1e-6)
    # d = 0: finite for both labels (eps clamp), zero for similar pairs
    z = L.pair_loss(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert z[0] == 0 and math.isclose(float(z[1]), math.log1p(g / 1e-3), rel_tol=1e-5)


def test_dch_regularizer_zero_on_binary():
    L = P.DCHLoss(Q, lam=1.0)
    assert float(L.regularizer(torch.tensor([[1.0, -1, 1, -1]]))) == pytest.approx(0.0, abs=1e-6)
    assert float(L.regularizer(torch.tensor([[1.0, -0.1, 1, -1]]))) > 0


def test_mmhh_pair_loss_hand_values():
    L = P.MMHHLoss(Q, radius=2.0)
    d = torch.tensor([0.0, 2.0, 3.0, 4.0])
    assert np.allclose(L.pair_loss(d, torch.ones(4)).tolist(), [0, 0, math.log(2), math.log(3)])
    assert np.allclose(L.pair_loss(d, torch.zeros(4)).tolist(),
                       [math.log(1.5), math.log(1.5), math.log(1 + 1 / 3), math.log(1.25)])


@pytest.mark.parametrize("name", sorted(P.LOSSES))
def test_losses_monotone_in_distance(name):
    """Similar pairs: loss non-decreasing in d; dissimilar: non-increasing (needed for eq. 6)."""
    L = P.make_loss(name, 8)
    d = torch.linspace(0, 8, 33)
    ls = L.pair_loss(d, torch.ones_like(d))
    ld = L.pair_loss(d, torch.zeros_like(d))
    assert torch.all(ls[1:] - ls[:-1] >= -1e-6)
    assert torch.all(ld[1:] - ld[:-1] <= 1e-6)


@pytest.mark.parametrize("name", sorted(P.LOSSES))
def test_losses_gradient_and_descent(name):
    """The objective is finite, has gradients, and a few SGD steps lower it and separate classes."""
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    s = P.similarity(labels)
    L = P.make_loss(name, 8)
    z = torch.randn(6, 8, requires_grad=True)
    opt = torch.optim.SGD([z], lr=0.5 if name != "adsh" else 0.002)
    first = None
    for _ in range(200):
        u = torch.tanh(z)
        if name == "adsh":
            v = P._sign(u.detach())
            loss = L(u, v, s, v_self=v)
        else:
            loss = L(u, None, s)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        assert z.grad is not None and torch.isfinite(z.grad).all()
        first = float(loss.detach()) if first is None else first
        opt.step()
    assert float(loss.detach()) < first
    b = P._sign(torch.tanh(z)).detach()
    d = P.inner_distance(b, b)
    assert d[s > 0].mean() < d[s == 0].mean()


def test_loss_shape_errors():
    L = P.DCHLoss(4)
    with pytest.raises(ValueError):
        L(torch.zeros(3, 5), None, torch.zeros(3, 3))
    with pytest.raises(ValueError):
        L(torch.zeros(3, 4), None, torch.zeros(2, 3))
    with pytest.raises(ValueError):
        P.make_loss("nope", 4)


def test_weighted_objective_equals_balanced_mean():
    """sum(w L)/sum(w) with balanced weights = (mean over similar + mean over dissimilar) / 2."""
    torch.manual_seed(1)
    u = torch.tanh(torch.randn(5, 4))
    s = P.similarity(torch.tensor([0, 0, 0, 1, 2]))
    L = P.HashNetLoss(4)
    d = P.inner_distance(u, u)
    pl = L.pair_loss(d, s)
    exp = 0.5 * (pl[s > 0].mean() + pl[s == 0].mean())
    assert torch.allclose(L(u, None, s), exp, atol=1e-6)


# --------------------------------------------------------------------------- models
def test_small_cnn_and_hash_model_shapes():
    net = SmallCNN(3, widths=(8, 16), feat_dim=32)
    m = HashModel(net, 12, "sigmoid", n_classes=5)
    x = torch.rand(4, 3, 20, 24)
    u = m(x)
    assert u.shape == (4, 12) and (u.abs() < 1).all()
    f, z = m.features_and_codes(x)
    assert f.shape == (4, 32) and z.shape == (4, 12)
    assert torch.allclose(m.relax(z), u, atol=1e-6)
    with pytest.raises(ValueError):
        net(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError):
        HashModel(net, 8, "relu")


def test_policy_net_structure_and_state():
    f = torch.randn(6, 10)
    b = torch.sign(torch.randn(6, 4))
    h = build_state(f, f + 1, b, -b)
    assert h.shape == (6, 28)
    assert torch.equal(h[:, 20:24], b)
    pol = PolicyNet(28)
    n_fc = sum(isinstance(mm, torch.nn.Linear) for mm in pol.modules())
    n_bn = sum(isinstance(mm, torch.nn.BatchNorm1d) for mm in pol.modules())
    assert n_fc == 5 and n_bn == 4
    p = pol(h)
    assert p.shape == (6, 2) and torch.allclose(p.sum(1), torch.ones(6))
    assert torch.allclose(pol.keep_probability(h), p[:, KEEP])
    with pytest.raises(ValueError):
        PolicyNet(28, hidden=(4, 4))
    with pytest.raises(ValueError):
        build_state(f, f, b, b[:3])
