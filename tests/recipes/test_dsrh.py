"""DSRH (issue 18): the ranking loss on hand-computable cases, its gradient, the DRSCH recipe's
``variant="dsrh"`` in both regimes and the "DRSCH beats DSRH" claims."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hashrepro.losses.dsrh import DSRHLoss, dsrh_loss, ideal_dcg, pair_weights, relaxed_hamming, similarity_levels
from hashrepro.methods import drsch

H3 = [[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]]   # three 2-bit codes; items 0 and 1 share a class


def test_hand_case_single_label():
    h = torch.tensor(H3)
    y = torch.tensor([0, 0, 1])
    # d01 = d02 = d10 = 1, d12 = 2 (Hamming distances of the ±1 codes)
    torch.testing.assert_close(relaxed_hamming(h), torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 2.0], [1.0, 2.0, 0.0]]))
    # queries 0 and 1 each have one relevant item at rank 1: Z = 1, ω = (2¹ − 2⁰)/1 = 1 for (q, i, j) = (0,1,2), (1,0,2)
    w = pair_weights(y)
    assert sorted(map(tuple, (w > 0).nonzero().tolist())) == [(0, 1, 2), (1, 0, 2)]
    assert torch.equal(w[w > 0], torch.ones(2))
    # hinges with ρ = 1: query 0: [1 + 1 − 1]_+ = 1; query 1: [1 + 1 − 2]_+ = 0
    loss, parts = dsrh_loss(h, y, margin=1.0, alpha=0.0, reduction="sum")
    assert loss.item() == pytest.approx(0.5) and parts["n_valid"] == 2 and parts["n_active"] == 1  # (1 + 0) / 2 queries
    loss, _ = dsrh_loss(h, y, margin=1.0, alpha=0.0, reduction="mean")
    assert loss.item() == pytest.approx(0.5)                                                    # Σωℓ / Σω = 1/2
    # balance term (α/2)‖mean h‖² with mean h = (1/3, 1/3)
    loss, parts = dsrh_loss(h, y, margin=1.0, alpha=3.0, reduction="sum")
    assert parts["balance"] == pytest.approx(1.5 * 2 / 9) and loss.item() == pytest.approx(0.5 + 1 / 3)


def test_multilevel_weights_and_ideal_dcg():
    y = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]])
    r = similarity_levels(y)
    assert r[0].tolist() == [2.0, 2.0, 1.0, 0.0]
    z = ideal_dcg(r)
    # query 0's list (items 1, 2, 3) has levels 2, 1, 0: Z = (2² − 1)/log2(2) + (2¹ − 1)/log2(3)
    assert z[0].item() == pytest.approx(3.0 + 1.0 / math.log2(3.0))
    assert z[3].item() == 0.0                                                # nothing relevant: no pairs
    w = pair_weights(y)
    assert w[0, 1, 2].item() == pytest.approx((4 - 2) / z[0].item())         # levels 2 vs 1
    assert w[0, 1, 3].item() == pytest.approx((4 - 1) / z[0].item())         # levels 2 vs 0
    assert w[0, 2, 3].item() == pytest.approx((2 - 1) / z[0].item())         # levels 1 vs 0
    assert w[0, 2, 1].item() == 0.0 and w[3].abs().sum().item() == 0.0 and w[:, 0, :][0].abs().sum() == 0


def test_gradient_matches_the_hand_derivation_and_finite_differences():
    h = torch.tensor(H3, requires_grad=True)
    y = torch.tensor([0, 0, 1])
    loss, _ = dsrh_loss(h, y, margin=1.0, alpha=0.0, reduction="sum")
    loss.backward()
    # only (0, 1, 2) is active: ℓ = 1 + (2 − h0·h1)/2 − (2 − h0·h2)/2, halved by the 2 queries
    hh = torch.tensor(H3)
    expected = torch.stack([(hh[2] - hh[1]) / 2, -hh[0] / 2, hh[0] / 2]) / 2
    torch.testing.assert_close(h.grad, expected)
    torch.manual_seed(0)
    x = (0.5 * torch.randn(6, 4, dtype=torch.double)).requires_grad_()
    yl = torch.tensor([0, 0, 1, 1, 2, 0])
    for reduction in ("mean", "sum"):
        assert torch.autograd.gradcheck(lambda v: dsrh_loss(v, yl, 0.7, 0.5, reduction)[0], (x,))
    ym = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]])
    assert torch.autograd.gradcheck(lambda v: dsrh_loss(v, ym, 0.7, 0.5)[0], (x,))


def test_single_label_pk_batches_reduce_to_the_mean_triplet_hinge():
    torch.manual_seed(1)
    h = torch.tanh(torch.randn(8, 6))
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])   # P × K = 4 × 2: every query has one positive
    d = relaxed_hamming(h)
    hinges = [max(0.0, 1.5 + d[a, p].item() - d[a, n].item())
              for a in range(8) for p in range(8) for n in range(8)
              if p != a and y[p] == y[a] and y[n] != y[a]]
    loss = DSRHLoss(margin=1.5, alpha=0.0)(h, y)
    assert loss.item() == pytest.approx(float(np.mean(hinges)), rel=1e-6)


def test_loss_module_api_and_bad_input():
    fn = DSRHLoss(margin=2.0, alpha=1.0)
    out = fn(torch.tanh(torch.randn(6, 4)), torch.tensor([0, 0, 1, 1, 2, 2]), margin=3.0)
    assert out.ndim == 0 and fn.last["margin"] == 3.0 and {"triplet", "regulariser", "n_valid", "n_active"} <= set(fn.last)
    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        DSRHLoss(margin=-1.0)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        DSRHLoss(reduction="max")
    with pytest.raises(ValueError, match=r"h must be \(N, q\) and labels"):
        dsrh_loss(torch.zeros(3, 2), torch.tensor([0, 1]))
    z = dsrh_loss(torch.zeros(3, 2, requires_grad=True), torch.tensor([0, 1, 2]))[0]   # no pair: 0, still a graph
    assert z.item() == 0.0 and z.requires_grad


# --------------------------------------------------------------------------- the recipe
def test_dsrh_variant_preset_and_validation():
    cfg = drsch.Config.for_scale("default", variant="dsrh")
    assert (cfg.slope0, cfg.slope_factor, cfg.margin0, cfg.margin_step, cfg.lam) == (1.0, 1.0, 2.0, 0.0, 1.0)
    assert drsch.Config.for_scale("default", variant="dsrh", margin0=1.0).margin0 == 1.0     # overrides win
    assert drsch.Config.for_scale("default", variant="drsch").slope0 == 5.0                 # others unchanged
    assert drsch.method_name("dsrh", "efficientnet_lite0") == "dsrh-efficientnet_lite0"
    # hyperparameters other than the run's preset are part of the name (a deviation never mixes with the preset)
    assert drsch.deviations(cfg) == {} and drsch.deviations(cfg.replace(lr=0.03, margin0=3.0)) == \
        {"margin0": 3.0, "lr": 0.03}
    pt = drsch.Config.for_scale("default", backbone="efficientnet_lite0")
    assert drsch.deviations(pt) == {} and drsch.deviations(pt.replace(head_hidden=())) == {"head_hidden": ()}
    assert drsch.record_method(pt.replace(head_hidden=(2048,), weight_decay=5e-3)) == \
        "drsch-head_hidden-2048-weight_decay-0.005-efficientnet_lite0"  # a chosen weight decay names the run
    assert drsch.method_name("dsch", "scratch", {"margin0": 2}) == "dsch-margin0-2"
    assert drsch.method_name("drsch", "efficientnet_lite0", {"lam": 0.01, "lr": 0.03}) == \
        "drsch-lam-0.01-lr-0.03-efficientnet_lite0"
    with pytest.raises(ValueError, match="deviations may name"):
        drsch.method_name("drsch", "scratch", {"iterations": 5})
    with pytest.raises(ValueError, match=r"variant must be one of \('dsch', 'drsch', 'bs-drsch', 'dsrh'\)"):
        drsch.Config.for_scale("smoke", variant="dsrn")


@pytest.mark.parametrize("backbone", ["scratch", "efficientnet_lite0"])
def test_dsrh_smoke_run_in_each_regime(backbone):
    extra = {"backbone_input_size": 32} if backbone != "scratch" else {}
    cfg = drsch.Config.for_scale("smoke", dataset="digits", bits=16, variant="dsrh", backbone=backbone, **extra)
    rec = drsch.run(cfg, progress=False)
    assert rec["method"] == drsch.method_name("dsrh", backbone) and rec["paper"] == "drsch"
    assert rec["config"]["final_slope"] == 1.0 and rec["config"]["final_margin"] == 2.0   # 2σ(z) − 1, fixed ρ
    assert rec["metrics"]["bit_weight_abs_min"] == rec["metrics"]["bit_weight_abs_max"] == 1.0   # no bit weights
    assert 0 < rec["metrics"]["map"] <= 1 and np.isfinite(rec["metrics"]["final_loss"])
    assert "-p variant dsrh" in rec["command"]


def test_drsch_run_with_another_margin_is_named_apart():
    cfg = drsch.Config.for_scale("smoke", dataset="digits", bits=8, variant="drsch", margin0=9.0)
    rec = drsch.run(cfg, progress=False)
    assert rec["method"] == "drsch-margin0-9" and rec["config"]["margin0"] == 9.0


def _rec(method, seed, value):
    return {"paper": "drsch", "method": method, "dataset": "cifar10", "bits": 32, "seed": seed, "scale": "default",
            "metrics": {"map": value}, "config": {},
            "git_commit": "0123abcd", "git_dirty": False, "command": "papermill"}  # clean: claims count it


def test_drsch_vs_dsrh_claims_in_both_regimes():
    from hashrepro import claims as CL

    recs = [_rec("drsch", s, 0.60 + 0.01 * s) for s in range(3)] + [_rec("dsrh", s, 0.50 + 0.01 * s) for s in range(3)]
    recs += [_rec("drsch-efficientnet_lite0", s, 0.70) for s in range(2)]
    recs += [_rec("dsrh-efficientnet_lite0", s, 0.60) for s in range(2)]
    v = {x.claim.id: x for x in CL.evaluate_paper("drsch", recs)}
    assert v["drsch-vs-dsrh"].verdict == "reproduced"
    assert v["drsch-pt-vs-dsrh"].verdict == "inconclusive (n<3)"


def test_head_hidden_from_a_command_line_names_the_run():
    from hashrepro.methods import drsch

    for given, widths, name in (("[2048]", (2048,), "drsch-head_hidden-2048-efficientnet_lite0"),
                                ("[]", (), "drsch-head_hidden-none-efficientnet_lite0"),
                                ([512], (512,), "drsch-efficientnet_lite0")):   # the preset: no deviation
        cfg = drsch.Config.for_scale("default", backbone="efficientnet_lite0", head_hidden=given)
        assert cfg.head_hidden == widths
        assert drsch.method_name(cfg.variant, cfg.backbone, drsch.deviations(cfg)) == name
    for bad in ("[a", "[0]", "{1: 2}"):
        with pytest.raises(ValueError, match="head_hidden"):
            drsch.Config.for_scale("default", backbone="efficientnet_lite0", head_hidden=bad)
