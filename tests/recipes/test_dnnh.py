"""Tests of the DNNH chapter: NIN sub-network, divide-and-encode module, triplet ranking loss,
the method's config/schedule, a smoke run and the notebook (slow)."""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hashrepro.losses.triplet import TripletRankingLoss, similarity_matrix, triplet_mask, triplet_ranking_loss
from hashrepro.models.nin import (DivideAndEncode, DNNHNet, FCEncoder, NINSubNetwork, layer_table, nin_layers,
                                  piecewise_threshold)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is ~30× faster than two on a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ----------------------------------------------------------------------------- NIN (Table 1)
def test_table1_output_sizes_for_256_images():
    rows = nin_layers(224, bits=48)
    sizes = [(r.type, r.out_channels, r.out_size) for r in rows]
    assert sizes == [
        ("convolution", 96, 54), ("convolution", 96, 54), ("max pool", 96, 27),
        ("convolution", 256, 27), ("convolution", 256, 27), ("max pool", 256, 13),
        ("convolution", 384, 13), ("convolution", 384, 13), ("max pool", 384, 6),
        ("convolution", 1024, 6), ("convolution", 2400, 6), ("ave pool", 2400, 1)]
    assert rows[0].filter == "11×11/4" and rows[-1].filter == "6×6/1"


@pytest.mark.parametrize("size,final", [(32, 4), (28, 3)])
def test_derived_configs_end_in_small_map(size, final):
    rows = nin_layers(size, bits=12)
    assert rows[-2].out_channels == 600 and rows[-2].out_size == final
    assert rows[-1].type == "ave pool" and rows[-1].kernel == final
    assert [r.out_size for r in rows if r.type == "max pool"][0] == size // 2


def test_layer_table_and_width():
    t = layer_table(32, 24, width=0.5)
    assert list(t.columns) == ["type", "filter size/stride", "output size"]
    assert t["output size"].iloc[0] == "48 × 32 × 32"
    assert t["output size"].iloc[-1] == "1200 × 1 × 1"


@pytest.mark.parametrize("size,channels", [(32, 3), (28, 1)])
def test_subnetwork_shapes_nonnegative(size, channels):
    torch.manual_seed(0)
    net = NINSubNetwork(bits=8, in_channels=channels, input_size=size, width=0.0625)
    out = net(torch.randn(5, channels, size, size))
    assert out.shape == (5, 400) and (out >= 0).all()
    with pytest.raises(ValueError, match="expected images"):
        net(torch.randn(5, channels, size + 1, size + 1))


def test_bad_arguments():
    with pytest.raises(ValueError, match="input_size"):
        nin_layers(64, 12)
    with pytest.raises(ValueError, match="bits"):
        nin_layers(32, 0)
    with pytest.raises(ValueError, match="variant"):
        DNNHNet(12, variant="nope")


# ----------------------------------------------------------------------------- eq. 6 and DEM
def test_piecewise_threshold_values_and_gradient():
    s = torch.tensor([0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0], requires_grad=True)
    g = piecewise_threshold(s, 0.2)
    assert torch.allclose(g, torch.tensor([0.0, 0.0, 0.35, 0.5, 0.65, 1.0, 1.0]))
    g.sum().backward()
    assert torch.equal(s.grad, torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]))
    s2 = torch.rand(100)
    assert torch.equal(piecewise_threshold(s2, 0.5), s2)  # ε = 0.5: identity on [0, 1]
    assert torch.equal(piecewise_threshold(s2, 0.0), (s2 > 0.5).float())


def test_divide_and_encode_matches_eq4_eq5_slice_by_slice():
    torch.manual_seed(0)
    q, beta = 4, 2.5
    dem = DivideAndEncode(50 * q, q, beta=beta, epsilon=0.5)
    x = torch.rand(3, 50 * q)
    out = dem(x)
    w = dem.weight.detach()
    for i in range(q):
        c = x[:, 50 * i:50 * (i + 1)] @ w[50 * i:50 * (i + 1)]  # eq. 4: fc_i(x^(i)) = W_i x^(i)
        assert torch.allclose(out[:, i], 1 / (1 + torch.exp(-beta * c)), atol=1e-6)  # eq. 5
    # bit i depends only on slice i
    x2 = x.clone()
    x2[:, 50:100] += 1.0
    changed = (dem(x2) != out).any(0)
    assert changed.tolist() == [False, True, False, False]


def test_divide_and_encode_uneven_slices_footnote4():
    dem = DivideAndEncode(10, 3)  # 10 = 3·3 + 1 → lengths 4, 3, 3
    assert torch.bincount(dem.slice_id).tolist() == [4, 3, 3]
    assert dem.slice_id.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="at least one feature"):
        DivideAndEncode(2, 3)


def test_threshold_applies_and_epsilon_settable():
    torch.manual_seed(0)
    net = DNNHNet(6, "dem", in_channels=1, input_size=28, width=0.0625, beta=50.0)
    x = torch.randn(20, 1, 28, 28)
    net.set_epsilon(0.05)
    out = net(x)
    inside = (out - 0.5).abs() <= 0.05
    assert ((out == 0) | (out == 1) | inside).all()
    assert float(net.head.epsilon) == pytest.approx(0.05)


def test_mean_center_train_and_eval():
    from hashrepro.models.nin import MeanCenter

    mc = MeanCenter(3, momentum=0.5)
    c = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    assert torch.allclose(mc(c), torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    assert torch.allclose(mc.running_mean, torch.tensor([1.0, 1.5, 2.0]))
    mc.eval()
    assert torch.allclose(mc(c), c - torch.tensor([1.0, 1.5, 2.0]))
    # a common offset that would make every bit constant is removed
    torch.manual_seed(0)
    dem = DivideAndEncode(40, 4, center=True)
    x = torch.rand(64, 40) * 0.1 + 5.0
    bits = dem(x) > 0.5
    assert (bits.float().mean(0) > 0).all() and (bits.float().mean(0) < 1).all()


def test_fc_variant_is_dense_sigmoid():
    torch.manual_seed(0)
    fc = FCEncoder(100, 4, beta=1.0)
    x = torch.rand(2, 100)
    assert torch.allclose(fc(x), torch.sigmoid(x @ fc.fc.weight.T + fc.fc.bias))
    x2 = x.clone()
    x2[:, 0] += 1
    assert (fc(x2) != fc(x)).all()  # every bit sees every feature


def test_two_subnets_roles():
    torch.manual_seed(0)
    net = DNNHNet(4, "two-subnets", in_channels=1, input_size=28, width=0.0625)
    x = torch.randn(3, 1, 28, 28)
    assert net.asymmetric
    assert not torch.allclose(net(x, role="query"), net(x, role="database"))
    shared = DNNHNet(4, "dem", in_channels=1, input_size=28, width=0.0625)
    assert torch.equal(shared(x, role="query"), shared(x, role="database"))
    with pytest.raises(ValueError, match="role"):
        net(x, role="anchor")


# ----------------------------------------------------------------------------- eq. 2 / eq. 3
def test_triplet_loss_hand_values():
    b = torch.tensor([[1.0, 0.0, 1.0]])
    bp = torch.tensor([[1.0, 0.0, 0.0]])  # ‖b − b⁺‖² = 1
    bn = torch.tensor([[0.0, 1.0, 1.0]])  # ‖b − b⁻‖² = 2
    assert triplet_ranking_loss(b, bp, bn).item() == pytest.approx(0.0)  # max(0, 1 − 2 + 1)
    assert triplet_ranking_loss(b, bn, bp).item() == pytest.approx(2.0)  # max(0, 2 − 1 + 1)
    half = torch.full((1, 3), 0.5)
    assert triplet_ranking_loss(half, half, half).item() == pytest.approx(1.0)


def test_triplet_gradients_are_eq3_up_to_its_sign_typo():
    torch.manual_seed(0)
    b, bp, bn = (torch.rand(1, 6, requires_grad=True) for _ in range(3))
    loss = triplet_ranking_loss(b, bp, bn, margin=10.0)  # active
    loss.backward()
    assert torch.allclose(b.grad, 2 * bn - 2 * bp)
    assert torch.allclose(bp.grad, 2 * bp - 2 * b)
    # eq. 3 prints (2b⁻ − 2b) for b⁻; the derivative of −‖b − b⁻‖² is (2b − 2b⁻): a sign typo
    assert torch.allclose(bn.grad, 2 * b - 2 * bn)
    b.grad = None
    triplet_ranking_loss(b, b.detach(), 1 - b.detach().round() * 0 + 5, margin=1.0).backward()  # inactive
    assert torch.count_nonzero(b.grad) == 0


def test_triplet_mask_single_and_multilabel():
    y = torch.tensor([0, 0, 1])
    m = triplet_mask(y)
    assert m.sum() == 2 and m[0, 1, 2] and m[1, 0, 2]
    multi = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
    sim = similarity_matrix(multi)
    assert sim[0, 1] and sim[1, 2] and not sim[0, 2] and not sim[3, :3].any()
    mm = triplet_mask(multi)
    assert mm[0, 1, 2] and mm[0, 1, 3] and not mm[1, 0, 2] and not mm[3].any()


def test_inbatch_loss_equals_explicit_mean():
    torch.manual_seed(1)
    codes = torch.rand(7, 5)
    y = torch.tensor([0, 1, 0, 2, 1, 0, 2])
    lf = TripletRankingLoss()
    got = lf(codes, y)
    vals = [triplet_ranking_loss(codes[a:a + 1], codes[p:p + 1], codes[n:n + 1]).item()
            for a in range(7) for p in range(7) for n in range(7)
            if a != p and y[a] == y[p] and y[a] != y[n]]
    assert got.item() == pytest.approx(float(np.mean(vals)), rel=1e-5)
    assert lf.last_stats["triplets"] == len(vals)
    # asymmetric: positives / negatives from another set of codes
    other = torch.rand(7, 5)
    got2 = lf(codes, y, codes_other=other)
    vals2 = [triplet_ranking_loss(codes[a:a + 1], other[p:p + 1], other[n:n + 1]).item()
             for a in range(7) for p in range(7) for n in range(7)
             if a != p and y[a] == y[p] and y[a] != y[n]]
    assert got2.item() == pytest.approx(float(np.mean(vals2)), rel=1e-5)


def test_random_triplets_and_empty_batch():
    torch.manual_seed(0)
    codes = torch.rand(16, 4, requires_grad=True)
    y = torch.arange(16) % 3
    lf = TripletRankingLoss(triplets="random", per_anchor=2)
    loss = lf(codes, y, generator=torch.Generator().manual_seed(0))
    assert lf.last_stats["triplets"] == 32
    loss.backward()
    assert codes.grad is not None
    one_class = TripletRankingLoss()(codes, torch.zeros(16, dtype=torch.long))
    assert one_class.item() == 0.0 and one_class.requires_grad
    with pytest.raises(ValueError, match="triplets"):
        TripletRankingLoss(triplets="hard")


def test_training_separates_classes():
    """A few SGD steps on two separable blobs make same-class codes closer (gradient sanity)."""
    torch.manual_seed(0)
    head = DivideAndEncode(40, 4, beta=1.0)
    x = torch.cat([torch.rand(16, 40) + torch.linspace(0, 1, 40), torch.rand(16, 40) + torch.linspace(1, 0, 40)])
    y = torch.tensor([0] * 16 + [1] * 16)
    lf = TripletRankingLoss()
    opt = torch.optim.SGD(head.parameters(), lr=0.5, momentum=0.9)
    first = None
    for _ in range(60):
        loss = lf(head(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


# ----------------------------------------------------------------------------- method
def test_config_scales_and_validation():
    from hashrepro.methods import dnnh

    d = dnnh.Config.for_scale("default")
    p = dnnh.Config.for_scale("paper")
    assert (d.batch_size, d.momentum, d.weight_decay, d.margin, d.epsilon0) == (64, 0.9, 5e-4, 1.0, 0.5)
    assert p.width == 1.0 and p.epsilon_every_effective == 20_000  # §4.1 schedule at paper scale
    assert d.epsilon_every_effective == round(20_000 * d.iterations / d.paper_iterations)
    assert dnnh.Config.for_scale("default", dataset="nuswide21").topk == 5000
    with pytest.raises(ValueError, match="variant"):
        dnnh.Config.for_scale("smoke", variant="conv")
    with pytest.raises(ValueError, match="scale"):
        dnnh.Config.for_scale("huge")
    with pytest.raises(ValueError, match="unknown Config field"):
        dnnh.Config.for_scale("smoke", learning_rate=0.1)
    with pytest.raises(ValueError, match="epsilon0"):
        dnnh.Config.for_scale("smoke", epsilon0=0.7)


def test_epsilon_schedule_shrinks_20_percent():
    from hashrepro.methods import dnnh

    cfg = dnnh.Config.for_scale("paper")
    assert dnnh.epsilon_at(0, cfg) == 0.5
    assert dnnh.epsilon_at(19_999, cfg) == 0.5
    assert dnnh.epsilon_at(20_000, cfg) == pytest.approx(0.4)
    assert dnnh.epsilon_at(40_000, cfg) == pytest.approx(0.32)
    short = dnnh.Config.for_scale("default", iterations=1000, paper_iterations=100_000)
    assert short.epsilon_every_effective == 200 and dnnh.epsilon_at(200, short) == pytest.approx(0.4)


@pytest.mark.parametrize("variant", ["dem", "fc", "two-subnets"])
def test_smoke_run_record(variant, tmp_path):
    from hashrepro.methods import dnnh
    from hashrepro.results import save_run

    cfg = dnnh.Config.for_scale("smoke", dataset="digits", bits=12, variant=variant, iterations=6, device="cpu")
    rec = dnnh.run(cfg)
    assert rec["paper"] == "dnnh" and rec["method"] == f"dnnh-{variant}"
    assert rec["dataset"] == "digits" and rec["bits"] == 12 and rec["complete"]
    m = rec["metrics"]
    for k in ("map", "precision_radius2", "train_time_s", "final_loss", "bit_balance", "saturated_fraction"):
        assert k in m and np.isfinite(m[k]), k
    assert 0 <= m["map"] <= 1 and 0 <= m["precision_radius2"] <= 1 and 0 <= m["bit_balance"] <= 1
    p = rec["protocol"]
    assert p["split"] == "per_class" and p["ranking"] == "binary" and p["n_query"] == 100
    assert p["n_train"] == 300 and p["n_query"] + p["n_database"] + (0 if p["database_includes_train"] else 300) == 1797
    assert len(rec["curves"]["train_loss"]["loss"]) == 6 and "pr_radius" in rec["curves"]
    json.dumps(rec)  # JSON-ready
    path = save_run(rec, tmp_path)
    assert path.is_file()


def test_run_is_repeatable():
    from hashrepro.methods import dnnh

    cfg = dnnh.Config.for_scale("smoke", dataset="digits", bits=8, iterations=4, device="cpu")
    a, b = dnnh.run(cfg), dnnh.run(cfg)
    assert a["metrics"]["map"] == b["metrics"]["map"]
    assert a["curves"]["train_loss"] == b["curves"]["train_loss"]


def test_plots_and_tables_from_records():
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from hashrepro.plots import dnnh as P

    t2 = pd.read_csv(ROOT / "hashrepro" / "papers" / "dnnh_table2.csv")
    t4 = pd.read_csv(ROOT / "hashrepro" / "papers" / "dnnh_table4.csv")
    rec = {"method": "dnnh-dem", "dataset": "cifar10", "bits": 48, "seed": 0, "scale": "default",
           "metrics": {"map": 0.5, "precision_radius2": 0.4}, "wall_time_s": 10.0, "device": "cpu",
           "config": {"iterations": 100}, "git_commit": "0123abcd", "git_dirty": False, "command": "papermill",
           "curves": {"pr_radius": {"radius": [0, 1], "precision": [0.9, 0.5], "recall": [0.1, 0.6]},
                      "precision_at_k": {"k": [100, 200], "precision": [0.6, 0.55]},
                      "train_loss": {"iteration": [1, 2], "loss": [1.0, 0.5]}}}
    tab = P.table2(t2, [rec])
    assert tab.loc["DNNH (DEM), ours (default scale)", ("CIFAR-10 (MAP)", "48 bits")] == "0.500 (n=1)"
    assert tab.loc["DNNH (DEM), ours (default scale)", ("SVHN (MAP)", "12 bits")] == P.NOT_OFFLINE_TEXT
    assert tab.loc["KSH (paper)", ("CIFAR-10 (MAP)", "12 bits")] == "0.303"
    det = P.detail_table(t2, [rec], "cifar10")
    assert det.loc[48, "delta"] == "-0.081"
    from hashrepro import claims as CL

    claims = CL.claims_table("dnnh", [rec])
    assert claims.iloc[0]["verdict"] == "inconclusive (n<3)"  # 0.081 below the paper, but one seed
    P.figure6([rec], paper=t4)
    P.plot_run(rec)
    P.figure6([], paper=None)  # renders "no run records"
    base = [dict(rec, method="ksh", config={"protocol": "dnnh"}, metrics={"map": 0.25}),
            dict(rec, method="ksh", config={"protocol": "dnnh", "variant": "max_train=None"}, metrics={"map": 0.3}),
            dict(rec, method="ksh", config={"protocol": "ddh"}, metrics={"map": 0.3})]
    assert [r["metrics"]["map"] for r in P.baseline_records(base)] == [0.25]
    v = {x.claim.id: x for x in CL.evaluate_paper("dnnh", [rec] + [dict(b, paper="baselines") for b in base])}
    assert v["dnnh-vs-our-ksh"].cells[0]["mean"] == pytest.approx(0.25)  # the main KSH config only


# ----------------------------------------------------------------------------- notebook
@pytest.mark.slow
def test_notebook_runs_with_papermill(tmp_path):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "dnnh.ipynb"), str(out), cwd=str(ROOT),
                               parameters=dict(dataset="digits", bits=12, scale="smoke", device="cpu",
                                               results_dir=str(tmp_path / "results"), run_name="nbtest"),
                               kernel_name="python3", progress_bar=False)
    rec = json.loads((tmp_path / "results" / "dnnh" / "nbtest.json").read_text())
    assert rec["method"] == "dnnh-dem" and rec["bits"] == 12 and rec["scale"] == "smoke"
    lines = []
    for cell in json.loads(out.read_text())["cells"]:
        for o in cell.get("outputs", []):
            t = o.get("text", "")
            lines += ("".join(t) if isinstance(t, list) else t).splitlines()
    printed = json.loads([l for l in lines if l.startswith("RESULT ")][0][len("RESULT "):])
    assert printed["map"] == pytest.approx(rec["metrics"]["map"])
    assert 0 <= printed["map"] <= 1
