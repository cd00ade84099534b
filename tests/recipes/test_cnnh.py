"""CNNH* / CNNH+ (issue 18): stage 1's coordinate descent, the stage-2 network, the recipe in both
regimes, the DNNH notebook's ``method`` parameter and the "DNNH beats CNNH*" claims."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hashrepro.methods import cnnh, dnnh
from hashrepro.methods.cnnh import CNNHNet, stage1_codes, stage1_objective
from hashrepro.pseudolabels import class_similarity


# --------------------------------------------------------------------------- stage 1
def test_stage1_objective_never_rises_and_two_classes_reach_a_perfect_h():
    y = np.repeat([0, 1], 12)
    codes, info = stage1_codes(y, 6, seed=0)
    obj = np.asarray(info["objective"])
    assert obj[0] > 100 and np.all(np.diff(obj) <= 1e-9)           # monotone, sweep by sweep
    assert info["objective_binary"] == pytest.approx(0.0, abs=1e-9)  # S = HHᵀ/q exactly
    assert stage1_objective(codes, y) == pytest.approx(0.0, abs=1e-9)
    S = class_similarity(y, np.arange(len(y)), negative=-1.0)
    np.testing.assert_array_equal(codes.astype(np.float32) @ codes.T.astype(np.float32) / 6, S)
    assert codes.dtype == np.int8 and set(np.unique(codes)) <= {-1, 1}


def test_stage1_separates_classes_when_the_bits_suffice():
    y = np.repeat(np.arange(4), 8)
    codes, info = stage1_codes(y, 8, seed=1)
    assert np.all(np.diff(info["objective"]) <= 1e-9)
    per_class = [np.unique(codes[y == c], axis=0) for c in range(4)]
    assert all(len(u) == 1 for u in per_class)                        # one code per class
    assert len(np.unique(np.concatenate(per_class), axis=0)) == 4      # distinct across classes
    assert info["objective_binary"] == pytest.approx(stage1_objective(codes, y))


def test_stage1_dense_and_explicit_s_paths_equal_the_class_path():
    y = np.repeat(np.arange(3), 5)
    a, ia = stage1_codes(y, 5, seed=3, sweeps=7, tol=0.0)
    b, ib = stage1_codes(np.eye(3, dtype=int)[y], 5, seed=3, sweeps=7, tol=0.0)   # multi-hot → dense S
    c, ic = stage1_codes(S=class_similarity(y, np.arange(15), negative=-1.0), bits=5, seed=3, sweeps=7, tol=0.0)
    assert ia["path"] == "classes" and ib["path"] == ic["path"] == "dense"
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_allclose(ia["objective"], ib["objective"], rtol=1e-9)
    assert ia["sweeps"] == 7 and len(ia["objective"]) == 8


def test_stage1_paper_step_without_safeguard_and_zero_sweeps():
    y = np.repeat(np.arange(5), 6)
    codes, info = stage1_codes(y, 10, seed=0, safeguard=False)
    assert info["safeguard"] is False and info["objective"][-1] < info["objective"][0]
    codes0, info0 = stage1_codes(y, 10, seed=0, sweeps=0)
    assert info0["sweeps"] == 0 and len(info0["objective"]) == 1 and codes0.shape == (30, 10)


def test_stage1_bad_input_is_one_clear_line():
    with pytest.raises(ValueError, match="bits must be a positive int"):
        stage1_codes([0, 1], 0)
    with pytest.raises(ValueError, match="needs labels"):
        stage1_codes(None, 4)
    with pytest.raises(ValueError, match="S must be a symmetric"):
        stage1_codes(S=np.array([[1.0, 1.0], [-1.0, 1.0]]), bits=2)
    with pytest.raises(ValueError, match="sweeps must be an int >= 0"):
        stage1_codes([0, 1], 2, sweeps=-1)


# --------------------------------------------------------------------------- stage 2 network
def test_cnnh_net_is_the_nin_stack_with_a_bits_wide_last_conv_and_no_relu():
    torch.manual_seed(0)
    net = CNNHNet(12, in_channels=3, input_size=32, width=0.0625)
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    assert convs[-1].out_channels == 12 and convs[-1].kernel_size == (1, 1)
    assert isinstance(net.body[-2], torch.nn.AdaptiveAvgPool2d)           # average pool is the output layer
    assert not any(isinstance(m, torch.nn.ReLU) for m in list(net.body)[-3:])
    out = net(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 12) and bool((out < 0).any())                  # logits, not ReLU features
    plus = CNNHNet(12, in_channels=3, input_size=32, width=0.0625, n_classes=10)
    assert plus(torch.randn(2, 3, 32, 32)).shape == (2, 22) and plus.hash_logits(torch.randn(2, 3, 32, 32)).shape == (2, 12)
    feat = CNNHNet(8, in_features=20)
    assert isinstance(feat.body, torch.nn.Linear) and feat(torch.randn(3, 20)).shape == (3, 8)
    with pytest.raises(ValueError, match=r"expected pooled features of shape \(N, 20\)"):
        feat(torch.randn(3, 3, 8, 8))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, C, 32, 32\)"):
        net(torch.randn(2, 3, 28, 28))


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("field,value,valid", [("method", "cnnh", "cnnh-star"), ("loss", "l1", "bce"),
                                               ("backbone", "resnet", "efficientnet_lite0"), ("bits", 0, "positive"),
                                               ("stage1_sweeps", -1, "int >= 0")])
def test_bad_config_values_give_one_line(field, value, valid):
    with pytest.raises(ValueError) as e:
        cnnh.Config.for_scale("smoke", **{field: value})
    msg = str(e.value)
    assert "\n" not in msg and f"Config.{field}=" in msg and valid in msg
    with pytest.raises(ValueError, match="scale must be one of"):
        cnnh.Config.for_scale("huge")
    with pytest.raises(ValueError, match=r"unknown Config field\(s\) \['varient'\]"):
        cnnh.Config.for_scale("smoke", varient="dem")


def test_scales_follow_dnnh():
    for scale in cnnh.SCALES:
        c, d = cnnh.Config.for_scale(scale), dnnh.Config.for_scale(scale)
        assert (c.width, c.iterations, c.batch_size, c.lr, c.lr_steps) == (d.width, d.iterations, d.batch_size, d.lr,
                                                                          d.lr_steps)
    pt = cnnh.Config.for_scale("default", backbone="efficientnet_lite0")
    assert pt.iterations == dnnh.PRETRAINED_ITERATIONS
    assert cnnh.method_name("cnnh-star", "efficientnet_lite0") == "cnnh-star-efficientnet_lite0"


def test_chapter_recipe_dispatches_the_notebook_method():
    mod, cfg = cnnh.chapter_recipe("dnnh", "smoke", variant="fc", dataset="digits")
    assert mod is dnnh and cfg.variant == "fc"
    mod, cfg = cnnh.chapter_recipe("cnnh-star", "smoke", dataset="digits")
    assert mod is cnnh and cfg.method == "cnnh-star" and "cnnh-star on digits" in cnnh.describe(cfg)
    with pytest.raises(ValueError, match="variant='fc' is a DNNH option"):
        cnnh.chapter_recipe("cnnh-star", "smoke", variant="fc")
    with pytest.raises(ValueError, match=r"method must be one of \('dnnh', 'cnnh-star', 'cnnh-plus'\)"):
        cnnh.chapter_recipe("cnnh", "smoke")


def test_notebook_declares_method_and_the_sweep_accepts_it():
    from hashrepro.sweep import build_grid, notebook_parameters

    assert notebook_parameters("dnnh")["method"] == "dnnh"
    tasks = build_grid("dnnh", dataset=["cifar10"], bits=[12], seed=[0], scale=["default"], method=["cnnh-star"])
    assert tasks[0].run_name == "dnnh_cifar10_12b_seed0_default_method-cnnh-star"
    assert tasks[0].record_path == "results/dnnh/dnnh_cifar10_12b_seed0_default_method-cnnh-star.json"
    with pytest.raises(ValueError, match="parameter 'method' must be str"):
        build_grid("dnnh", dataset=["cifar10"], bits=[12], seed=[0], scale=["default"], method=[3])


# --------------------------------------------------------------------------- smoke runs
@pytest.mark.parametrize("backbone", ["scratch", "efficientnet_lite0"])
def test_smoke_run_in_each_regime(backbone, tmp_path):
    from hashrepro.results import save_run

    extra = {"backbone_input_size": 32} if backbone != "scratch" else {}
    cfg = cnnh.Config.for_scale("smoke", dataset="digits", bits=12, backbone=backbone, device="cpu", progress=False,
                                iterations=8, **extra)
    rec = cnnh.run(cfg)
    assert rec["paper"] == "dnnh" and rec["method"] == cnnh.method_name("cnnh-star", backbone)
    m = rec["metrics"]
    for k in ("map", "precision_radius2", "bit_balance", "final_loss", "stage1_objective", "stage1_map",
              "target_bit_agreement", "saturated_fraction"):
        assert k in m and np.isfinite(m[k]), k
    assert 0 < m["map"] <= 1 and m["stage1_map"] == pytest.approx(1.0)   # 10 classes, 12 bits: separable targets
    assert rec["protocol"]["split"] == "per_class" and "coordinate descent" in rec["protocol"]["stage1"]
    obj = rec["curves"]["stage1_objective"]["objective"]
    assert np.all(np.diff(obj) <= 1e-12) and len(rec["curves"]["train_loss"]["loss"]) == 8
    assert "-p method cnnh-star" in rec["command"]
    if backbone != "scratch":
        assert rec["protocol"]["backbone_head"].startswith("linear 1280 -> bits")
    json.dumps(rec)
    assert save_run(rec, tmp_path).parent.name == "dnnh"


def test_cnnh_plus_adds_class_outputs():
    cfg = cnnh.Config.for_scale("smoke", dataset="digits", bits=8, method="cnnh-plus", backbone="efficientnet_lite0",
                                backbone_input_size=32, device="cpu", progress=False, iterations=5, loss="mse")
    rec = cnnh.run(cfg)
    assert rec["method"] == "cnnh-plus-efficientnet_lite0" and rec["protocol"]["stage2_loss"].startswith("squared")
    assert np.isfinite(rec["metrics"]["final_loss"])


# --------------------------------------------------------------------------- claims
def _rec(method, bits, seed, value):
    return {"paper": "dnnh", "method": method, "dataset": "cifar10", "bits": bits, "seed": seed, "scale": "default",
            "metrics": {"map": value}, "config": {},
            "git_commit": "0123abcd", "git_dirty": False, "command": "papermill"}  # clean: claims count it


def test_dnnh_vs_cnnh_star_claims_in_both_regimes():
    from hashrepro import claims as CL

    recs = [_rec("dnnh-dem", b, s, 0.55 + 0.01 * s) for b in (12, 48) for s in range(3)]
    recs += [_rec("cnnh-star", b, s, 0.45 + 0.012 * s) for b in (12, 48) for s in range(3)]
    recs += [_rec("dnnh-dem-efficientnet_lite0", 12, s, 0.50 + 0.01 * s) for s in range(3)]
    recs += [_rec("cnnh-star-efficientnet_lite0", 12, s, 0.60 + 0.01 * s) for s in range(3)]
    v = {x.claim.id: x for x in CL.evaluate_paper("dnnh", recs)}
    assert v["dnnh-vs-cnnh-star"].verdict == "reproduced" and len(v["dnnh-vs-cnnh-star"].cells) == 2
    assert v["dnnh-pt-vs-cnnh-star"].verdict == "not reproduced"
    none = {x.claim.id: x for x in CL.evaluate_paper("dnnh", recs[:6])}
    assert none["dnnh-vs-cnnh-star"].verdict == "not testable here"
