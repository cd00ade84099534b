"""DNNH and DRSCH on the pretrained backbone (issue 15): the heads on pooled features, the recipes'
``backbone`` parameter, and BS-DRSCH's random-bit-subset control of the truncation claim."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hashrepro.codes import random_bit_subsets
from hashrepro.methods import dnnh, drsch
from hashrepro.models.drsch_net import DRSCHFeatureNet
from hashrepro.models.nin import FEATURES_PER_BIT, DNNHNet, FeatureProjection

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    """One feature cache for the module: the digits' 32-px backbone features are extracted once."""
    return tmp_path_factory.mktemp("hashrepro_cache")


# --------------------------------------------------------------------------- heads
def test_feature_projection_is_the_1x1_convolution_on_pooled_features():
    torch.manual_seed(0)
    proj = FeatureProjection(24, 3)
    assert proj.out_features == FEATURES_PER_BIT * 3
    x = torch.randn(5, 24)
    conv = torch.nn.Conv2d(24, 150, 1)
    conv.weight.data.copy_(proj.linear.weight.data.view(150, 24, 1, 1))
    conv.bias.data.copy_(proj.linear.bias.data)
    # the 1x1 convolution of a 1x1 map (= pooled features), then the ReLU
    expected = torch.relu(conv(x.view(5, 24, 1, 1))).flatten(1)
    out = proj(x)
    assert out.shape == (5, 150) and bool((out >= 0).all())
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match=r"expected pooled features of shape \(N, 24\)"):
        proj(torch.randn(5, 3, 8, 8))
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        FeatureProjection(0, 3)


@pytest.mark.parametrize("variant", ["dem", "fc", "two-subnets"])
def test_dnnh_net_on_features(variant):
    torch.manual_seed(0)
    net = DNNHNet(4, variant, in_features=32, center=True)
    assert isinstance(net.subnet, FeatureProjection)
    x = torch.rand(6, 32)
    db, q = net(x), net(x, role="query")
    assert db.shape == q.shape == (6, 4)
    assert bool(((db >= 0) & (db <= 1)).all())
    if variant == "two-subnets":  # separate projections for the query (P) and the database side (Q)
        assert isinstance(net.query_subnet, FeatureProjection) and net.query_subnet is not net.subnet
        assert not torch.equal(db, q)
    else:
        assert net.query_subnet is None and torch.equal(db, q)
    head = type(net.head).__name__
    assert head == ("FCEncoder" if variant == "fc" else "DivideAndEncode")


def test_drsch_feature_net_shapes_groups_and_errors():
    torch.manual_seed(0)
    net = DRSCHFeatureNet(8, 20, hidden=(16,))
    x = torch.rand(5, 20)
    z, h, r = net.codes(x)
    assert z.shape == h.shape == r.shape == (5, 8)
    torch.testing.assert_close(h, torch.tanh(5.0 * z / 2))
    torch.testing.assert_close(r, h * net.weights)
    assert torch.equal(net.weights.detach(), torch.ones(8))
    groups = net.param_groups(0.1, 1e-3)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters()) and len(set(ids)) == len(ids)
    assert [g["weight_decay"] for g in groups] == [5e-4, 5e-4, 0.0]
    assert DRSCHFeatureNet(8, 20, hidden=()).preactivation(x).shape == (5, 8)   # fc8 on the features
    with pytest.raises(ValueError, match=r"expected pooled features of shape \(N, 20\)"):
        net.preactivation(torch.rand(5, 3, 30, 30))
    with pytest.raises(ValueError, match="init must be"):
        DRSCHFeatureNet(8, 20, init="xavier")


# --------------------------------------------------------------------------- random-subset control
def test_random_bit_subsets_are_distinct_sorted_and_seeded():
    s = random_bit_subsets(64, 12, n_draws=5, seed=3)
    assert s.shape == (5, 12) and s.dtype == np.int64
    for row in s:
        assert len(set(row.tolist())) == 12 and np.all(np.diff(row) > 0) and 0 <= row.min() and row.max() < 64
    assert len({tuple(r) for r in s}) > 1                      # the draws differ
    np.testing.assert_array_equal(s, random_bit_subsets(64, 12, n_draws=5, seed=3))
    assert not np.array_equal(s, random_bit_subsets(64, 12, n_draws=5, seed=4))
    np.testing.assert_array_equal(random_bit_subsets(8, 8, 2), np.tile(np.arange(8), (2, 1)))
    with pytest.raises(ValueError, match="n_keep in 0..n_bits"):
        random_bit_subsets(8, 9)
    with pytest.raises(ValueError, match="n_draws must be >= 1"):
        random_bit_subsets(8, 4, n_draws=0)


def test_bit_scalable_curve_random_control_on_synthetic_codes():
    """4 of 16 bits carry the class (large |w|), 12 are noise (small |w|): the top-|w| bits beat
    random subsets of as many bits; with every bit kept both are the same code."""
    rng = np.random.default_rng(0)
    n_cls, q = 4, 16
    y = np.repeat(np.arange(n_cls), 60)
    class_bits = np.array([[c >> 1 & 1, c & 1, c >> 1 & 1, c & 1] for c in range(n_cls)], float)[y]
    z = np.concatenate([(class_bits * 2 - 1) + 0.1 * rng.standard_normal((len(y), 4)),
                        rng.standard_normal((len(y), q - 4))], axis=1)
    w = np.concatenate([np.full(4, 2.0), np.full(q - 4, 0.5)])
    qi = np.arange(0, len(y), 6)
    di = np.setdiff1d(np.arange(len(y)), qi)
    c = drsch.bit_scalable_curve(z[qi], z[di], y[qi], y[di], w, keep_list=(4, 8, 16), precision_k=20,
                                 n_random=5, seed=0)
    key = "precision_at_20_random"
    assert c["bits"] == [4, 8, 16] and c["random_draws"] == 5
    for k in ("map", "precision_at_20", "precision_radius2", key, key + "_std", "map_random"):
        assert len(c[k]) == 3 and all(0.0 <= v <= 1.0 for v in c[k]), k
    assert c["precision_at_20"][0] == pytest.approx(1.0)         # the 4 class bits
    assert c[key][0] < c["precision_at_20"][0] - 0.2             # random 4 of 16: mostly noise
    assert c[key][2] == c["precision_at_20"][2] and c[key + "_std"][2] == 0.0
    again = drsch.bit_scalable_curve(z[qi], z[di], y[qi], y[di], w, keep_list=(4, 8, 16), precision_k=20,
                                     n_random=5, seed=0)
    assert again == c


def test_random_subset_key_is_what_the_claims_read():
    from hashrepro.claims import RANDOM_SUBSET_KEY

    assert drsch.Config().precision_k == 500 and RANDOM_SUBSET_KEY == "precision_at_500_random"
    assert 12 in drsch.Config(bits=64, variant="bs-drsch").keep_list   # pairs with the 12-bit DRSCH rows


# --------------------------------------------------------------------------- configs
def test_backbone_parameter_presets_and_validation():
    # scratch presets unchanged
    assert dnnh.Config.for_scale("default").iterations == 1200
    assert drsch.Config.for_scale("default").iterations == 300 and drsch.Config.for_scale("default").init == "caffe"
    d = dnnh.Config.for_scale("default", backbone="efficientnet_lite0")
    assert d.iterations == dnnh.PRETRAINED_ITERATIONS == 5000 and d.epsilon_every_effective == 1000
    assert dnnh.Config.for_scale("paper", backbone="efficientnet_lite0").iterations == 100_000
    assert dnnh.Config.for_scale("smoke", backbone="efficientnet_lite0").iterations == 15
    r = drsch.Config.for_scale("default", backbone="efficientnet_lite0")
    assert (r.iterations, r.lr_step, r.slope_every, r.margin_every, r.init) == (3000, 1000, 100, 100, "default")
    assert r.head_hidden == (512,)
    with pytest.raises(ValueError, match=r"Config.backbone='resnet50' is invalid; valid: \('scratch', 'efficientnet_lite0'\)"):
        dnnh.Config(backbone="resnet50")
    with pytest.raises(ValueError, match="backbone must be one of"):
        drsch.Config(backbone="resnet50")
    with pytest.raises(ValueError, match="backbone_input_size=4 is invalid; must be None"):
        dnnh.Config(backbone="efficientnet_lite0", backbone_input_size=4)
    with pytest.raises(ValueError, match="head_hidden must be a tuple of positive ints"):
        drsch.Config(head_hidden=(0,))
    assert dnnh.method_name("fc") == "dnnh-fc"
    assert dnnh.method_name("fc", "efficientnet_lite0") == "dnnh-fc-efficientnet_lite0"
    # another triplet margin than the paper's 1 is named, so it never mixes with the paper's runs
    assert dnnh.method_name("dem", "scratch", 1) == "dnnh-dem"
    assert dnnh.method_name("dem", "efficientnet_lite0", 2.0) == "dnnh-dem-margin2-efficientnet_lite0"
    assert dnnh.method_name("fc", margin=0.5) == "dnnh-fc-margin0.5"
    assert drsch.method_name("bs-drsch", "efficientnet_lite0") == "bs-drsch-efficientnet_lite0"


def test_notebooks_declare_backbone():
    for nb in ("dnnh", "drsch"):
        cells = json.loads((ROOT / "notebooks" / f"{nb}.ipynb").read_text())["cells"]
        params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
        src = "".join(params["source"])
        assert 'backbone = "scratch"' in src and "backbone_input_size = None" in src, nb
        assert any("backbone=backbone" in "".join(c["source"]) for c in cells if c["cell_type"] == "code"), nb


# --------------------------------------------------------------------------- smoke runs
@pytest.mark.parametrize("variant", ["dem", "fc", "two-subnets"])
def test_dnnh_pretrained_smoke(variant, feature_cache, monkeypatch):
    from hashrepro.results import reproduce_command

    monkeypatch.setenv("HASHREPRO_CACHE", str(feature_cache))
    cfg = dnnh.Config.for_scale("smoke", dataset="digits", backbone="efficientnet_lite0", backbone_input_size=32,
                                bits=8, variant=variant, progress=False)
    rec = dnnh.run(cfg)
    assert rec["method"] == f"dnnh-{variant}-efficientnet_lite0"
    assert rec["config"]["backbone"] == "efficientnet_lite0" and rec["config"]["backbone_input_size"] == 32
    p = rec["protocol"]
    assert p["backbone"].startswith("efficientnet_lite0 (ImageNet, frozen") and p["backbone_input_size"] == 32
    assert p["backbone_feature_dim"] == 1280 and "1280 -> 50*bits + ReLU" in p["backbone_head"]
    assert 0.0 < rec["metrics"]["map"] <= 1.0 and np.isfinite(rec["metrics"]["final_loss"])
    assert "-p backbone efficientnet_lite0" in reproduce_command("dnnh", rec["config"])


def test_drsch_pretrained_smoke_with_random_subset_control(feature_cache, monkeypatch):
    monkeypatch.setenv("HASHREPRO_CACHE", str(feature_cache))
    for variant in ("drsch", "bs-drsch"):
        cfg = drsch.Config.for_scale("smoke", dataset="digits", backbone="efficientnet_lite0",
                                     backbone_input_size=32, bits=16, variant=variant)
        rec = drsch.run(cfg, progress=False)
        assert rec["method"] == f"{variant}-efficientnet_lite0"
        assert rec["protocol"]["backbone"].startswith("efficientnet_lite0 (ImageNet, frozen")
        assert "FeatureMLP 1280 -> 512 (ReLU) -> fc8 16" in rec["protocol"]["backbone_head"]
        assert rec["config"]["flip_used"] is False and rec["config"]["init"] == "default"
        assert 0.0 < rec["metrics"]["map"] <= 1.0
    bs = rec["curves"]["bit_scalable"]
    key = f"precision_at_{cfg.precision_k}_random"
    assert bs["bits"] == [8, 12, 16] and len(bs[key]) == 3
    assert all(0.0 <= v <= 1.0 for v in bs[key])
    assert bs[key][-1] == bs[f"precision_at_{cfg.precision_k}"][-1]


def test_scratch_records_keep_their_names_and_get_the_control(feature_cache, monkeypatch):
    """backbone='scratch' (the default) records as before; BS-DRSCH's curve gains the control."""
    monkeypatch.setenv("HASHREPRO_CACHE", str(feature_cache))
    rec = drsch.run(drsch.Config.for_scale("smoke", dataset="digits", bits=16, variant="bs-drsch"), progress=False)
    assert rec["method"] == "bs-drsch" and "backbone" not in rec["protocol"]
    assert rec["config"]["backbone"] == "scratch"
    bs = rec["curves"]["bit_scalable"]
    assert all(0.0 <= v <= 1.0 for v in bs["precision_at_100_random"])
    assert len(bs["precision_at_100_random"]) == len(bs["bits"])
