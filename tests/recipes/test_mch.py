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


def test_mmhh_gamma_generalises_table1():
    d = torch.tensor([0.0, 3.0, 5.0])
    s = torch.tensor([1.0, 1.0, 0.0])
    assert torch.allclose(P.MMHHLoss(4, gamma=1.0).pair_loss(d, s), P.MMHHLoss(4).pair_loss(d, s))
    g = P.MMHHLoss(4, radius=2.0, gamma=10.0).pair_loss(d, s)
    assert np.allclose(g.tolist(), [0.0, math.log1p(1 / 10), math.log1p(10 / 5)])


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


# --------------------------------------------------------------------------- method pieces
from hashrepro.crop_features import crop_resize  # noqa: E402
from hashrepro.data.crops import crop_boxes, random_crop_boxes  # noqa: E402
from hashrepro.losses.mch_reward import compute_rewards, policy_gradient_loss  # noqa: E402
from hashrepro.methods import mch as M  # noqa: E402
from hashrepro.methods.mch_agent import crop_keep_probabilities, extend, train_agent  # noqa: E402
from hashrepro.methods.mch_train import loss_kwargs, train_base  # noqa: E402
from hashrepro.metrics import buckets_at_f1  # noqa: E402


def test_crop_boxes_and_resize():
    b = crop_boxes(56, 56, 0.5)
    assert b.shape == (5, 4)
    assert b[0].tolist() == [0, 0, 28, 28] and b[3].tolist() == [28, 28, 56, 56]
    assert b[4].tolist() == [14, 14, 42, 42]
    assert np.allclose(crop_boxes(20, 30, 1.0), [[0, 0, 30, 20]] * 5)
    with pytest.raises(ValueError):
        crop_boxes(10, 10, 0.0)
    rng = np.random.default_rng(0)
    rb = random_crop_boxes(100, 40, 50, 0.3, 0.7, rng)
    assert (rb[:, 0] >= 0).all() and (rb[:, 2] <= 50 + 1e-4).all() and (rb[:, 3] <= 40 + 1e-4).all()
    side = (rb[:, 2] - rb[:, 0]) / 50
    assert side.min() >= 0.3 - 1e-6 and side.max() <= 0.7 + 1e-6
    x = (torch.rand(3, 1, 8, 8) * 255).to(torch.uint8)
    whole = crop_resize(x, None, 8)
    assert torch.equal(whole, x.float() / 255)
    # same numbers as torchvision's roi_align(sampling_ratio=2, aligned=True)
    from torchvision.ops import roi_align

    boxes = np.array([[0, 0, 4, 4], [1, 2, 7, 8], [0.5, 0, 8, 6]], dtype=np.float32)
    rois = torch.cat([torch.arange(3.0)[:, None], torch.from_numpy(boxes)], 1)
    ref = roi_align(x.float() / 255, rois, (5, 5), 1.0, 2, True)
    assert torch.allclose(crop_resize(x, boxes, 5), ref, atol=1e-5)
    # a constant region stays constant
    c = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    c[..., :5, :5] = 255
    assert torch.allclose(crop_resize(c, np.array([[0, 0, 4, 4]], dtype=np.float32), 6), torch.ones(1, 1, 6, 6))
    # whole-image box resized down == 2x2 average pooling
    half = crop_resize(x, np.array([[0, 0, 8, 8]] * 3, dtype=np.float32), 4)
    assert torch.allclose(half, torch.nn.functional.avg_pool2d(x.float() / 255, 2), atol=1e-5)


def test_compute_rewards_eq6_hand_worked():
    """Item i with whole code b, crop code b*. Query j1 similar, j2 dissimilar (KSH loss, w = 1)."""
    L = P.KSHLoss(4)
    b = torch.tensor([[1.0, 1, 1, 1]])
    q = torch.tensor([[-1.0, -1, 1, 1],   # j1 (similar) at d(b, q1) = 2
                      [-1.0, -1, -1, -1]])  # j2 (dissimilar) at d(b, q2) = 4
    s = torch.tensor([[1.0, 0.0]])
    # crop equal to the similar query: d*(j1) = 0, d*(j2) = min(4, 2) = 2
    r = compute_rewards(L, b, q[:1], q, s, None)
    # L(2,1) - L(0,1) = 1 - 0 ; L(4,0) - L(2,0) = 0 - 1  -> 0
    assert r.item() == pytest.approx(0.0)
    # crop closer to the similar query only: b* = (-1,1,1,1): d*(j1) = min(2,1) = 1, d*(j2) = min(4,3) = 3
    r = compute_rewards(L, b, torch.tensor([[-1.0, 1, 1, 1]]), q, s, None)
    exp = (1 - 0.25) + (0 - 0.25)
    assert r.item() == pytest.approx(exp)
    # identical crop code: reward exactly 0; crop equal to the dissimilar query: negative
    assert compute_rewards(L, b, b, q, s, None).item() == 0.0
    assert compute_rewards(L, b, q[1:], q, s, None).item() < 0
    # self pairs are left out and weights/scale multiply
    mask = torch.tensor([[True, False]])
    r = compute_rewards(L, b, torch.tensor([[-1.0, 1, 1, 1]]), q, s, torch.full((1, 2), 2.0), mask, scale=3.0)
    assert r.item() == pytest.approx(3.0 * 2.0 * (0 - 0.25))


def test_extend_out_of_sample():
    b = np.array([[0, 0, 0], [1, 1, 1]], dtype=np.uint8)
    z = np.zeros((2, 5, 3), dtype=np.float32) - 1.0  # every crop code = 000
    z[1, 0] = [1, -1, 1]                                # item 1, crop 0 -> 101
    p = np.array([[0.9, 0.9, 0.1, 0.1, 0.1], [0.6, 0.4, 0.4, 0.4, 0.4]])
    codes, owners, raw = extend(b, z, p, xi=0.5)
    # item 0 keeps two crops but both equal its whole code 000 -> merged; item 1 keeps 101
    assert owners.tolist() == [0, 1, 1]
    assert raw == pytest.approx(1 + 3 / 2)
    assert {tuple(c) for c in codes[owners == 1]} == {(1, 1, 1), (1, 0, 1)}
    c2, o2, raw2 = extend(b, z, p, xi=0.5, dedupe=False)
    assert len(c2) == 5 and raw2 == raw
    # xi above every probability: only whole-image codes
    c3, o3, raw3 = extend(b, z, p, xi=0.95)
    assert o3.tolist() == [0, 1] and raw3 == 1.0


def test_buckets_at_f1_interpolation():
    curve = {"f1": [0.1, 0.3, 0.6], "buckets": [1.0, 10.0, 1000.0]}
    assert buckets_at_f1(curve, 0.05) == 1.0
    assert buckets_at_f1(curve, 0.3) == pytest.approx(10.0)
    assert buckets_at_f1(curve, 0.45) == pytest.approx(100.0)  # half way in log space
    assert math.isnan(buckets_at_f1(curve, 0.7))


def test_config_validation():
    cfg = M.Config.for_scale("smoke", bits=16, base="hashnet")
    assert cfg.bits == 16 and cfg.base == "hashnet" and cfg.scale == "smoke"
    assert M.Config.for_scale("paper").agent_iters == 100 and M.Config.for_scale("paper").agent_batch == 256
    d = M.Config().to_dict()
    assert d["agent_lr"] == 1e-3 and d["agent_momentum"] == 0.9 and d["agent_weight_decay"] == 5e-4
    assert d["sigma"] == 0.5 and d["xi"] == 0.5
    for bad in (dict(base="nope"), dict(bits=0), dict(bits=65), dict(sigma=1.5), dict(xi=-0.1),
                dict(scale="huge"), dict(reward_scale="x"), dict(crop_min=0.8, crop_max=0.5),
                dict(dataset="cifar10"), dict(mmhh_gamma=0)):
        with pytest.raises(ValueError):
            M.Config(**bad)
    with pytest.raises(ValueError):
        M.Config.for_scale("default", not_a_field=1)
    # MMHH's γ reaches the loss (base training and the agent's reward use the same loss)
    assert loss_kwargs(M.Config(base="mmhh", mmhh_gamma=10.0)) == {"gamma": 10.0}
    assert loss_kwargs(M.Config(base="dch", mmhh_gamma=10.0)) == {}
    assert M.parse_dataset("mosaic-cifar10") == {"kind": "mosaic", "base": "cifar10"}
    assert M.parse_dataset("nuswide21")["kind"] == "paper"


class _FakeHasher:
    """Features = mean pixel; code = fixed per crop position sign pattern (deterministic)."""

    def __init__(self, q):
        self.q = q

    def embed(self, images_u8, boxes=None, batch_size=512):
        n = len(images_u8)
        f = images_u8.float().mean(dim=(1, 2, 3))[:, None].repeat(1, 4).numpy()
        z = np.ones((n, self.q), dtype=np.float32)
        if boxes is not None:
            z[:, 0] = -1.0  # every crop's code differs from the whole code in bit 0
        return f, z


def test_agent_reinforce_direction():
    """With a reward that is positive for every crop, REINFORCE raises π(keep); negative lowers it."""
    torch.manual_seed(0)
    n, q = 64, 4
    imgs = (torch.rand(n, 1, 8, 8) * 255).to(torch.uint8)
    y = np.zeros((n, 2), dtype=np.uint8)
    y[:, 0] = 1
    hasher = _FakeHasher(q)
    f, z = hasher.embed(imgs)
    b_db = torch.ones(n, q)
    # queries = other training points; make half of them closer to the crop code (bit 0 = -1)
    z_q = z.copy()
    z_q[: n // 2, 0] = -1.0
    cfg = M.Config.for_scale("smoke", bits=q, agent_iters=30, agent_batch=32, agent_lr=1e-2)
    res_pos = train_agent(cfg, hasher, P.KSHLoss(q), imgs, f, z_q, b_db, y, torch.device("cpu"), 0)
    assert len(res_pos.reward) == 30 and all(o == 1.0 for o in res_pos.oracle_keep)
    assert res_pos.keep_prob[-1] > res_pos.keep_prob[0]
    y2 = y.copy()
    y2[: n // 2] = [0, 1]  # the queries near the crop code are now dissimilar: keeping hurts
    res_neg = train_agent(cfg, hasher, P.KSHLoss(q), imgs, f, z_q, b_db, y2, torch.device("cpu"), 0)
    assert res_neg.keep_prob[-1] < res_neg.keep_prob[0]


def test_adsh_training_learns_binary_database_codes():
    torch.manual_seed(0)
    cfg = M.Config.for_scale("smoke", base="adsh", bits=8, base_iters=6, adsh_outer=2, adsh_omega=20)
    x = torch.rand(30, 1, 16, 16)
    y = np.eye(3, dtype=np.uint8)[np.arange(30) % 3]
    st = SmallCNN(1, cfg.widths, cfg.feat_dim).state_dict()
    hasher, info = train_base(cfg, st, x, y, torch.device("cpu"), torch.Generator().manual_seed(0))
    V = info["V"]
    assert V.shape == (30, 8) and set(V.unique().tolist()) <= {-1.0, 1.0}
    f, z = hasher.embed((x * 255).to(torch.uint8))
    assert f.shape == (30, cfg.feat_dim) and z.shape == (30, 8)


@pytest.fixture(scope="module")
def smoke_record():
    torch.set_num_threads(1)
    return M.run(M.Config.for_scale("smoke", dataset="mosaic-digits", base="dch", bits=16, progress=False))


def test_smoke_run_record(smoke_record):
    rec = smoke_record
    assert rec["paper"] == "mch" and rec["method"] == "mch-dch" and rec["bits"] == 16 and rec["complete"]
    m = rec["metrics"]
    for k in ("map", "precision_radius0", "recall_radius0", "precision_radius2", "f1_max"):
        assert 0.0 <= m[k] <= 1.0, k
    assert m["anhc"] >= 1.0 and m["anhc_raw"] >= m["anhc"] - 1e-9
    assert m["oracle_anhc"] >= 1.0
    assert rec["protocol"]["split"] == "multilabel_balanced" and rec["protocol"]["database_includes_train"]
    f1b = rec["curves"]["f1_bucket"]
    assert np.all(np.diff(f1b["K"]) > 0) and np.all(np.diff(f1b["buckets"]) >= 0)
    grid = rec["curves"]["anhc_grid"]
    one = [a for s, a in zip(grid["sigma"], grid["anhc"]) if s == 1.0]
    assert one and all(a == 1.0 for a in one)  # σ = 1: every crop is the whole image -> merged
    assert len(rec["curves"]["agent"]["reward"]) == 5
    from hashrepro.recipe import read_loss_curve
    lc = read_loss_curve(rec)                      # the base model's loss in the one curve format
    assert lc is not None and lc["loss"] and np.all(np.diff(lc["iteration"]) > 0) and "base_loss" not in rec["curves"]
    comps = {c["method"]: c for c in rec["companions"]}
    assert set(comps) == {"dch", "lsh", "itq"}
    assert comps["dch"]["metrics"]["anhc"] == 1.0
    # ANHC = 1 means MCH-X is X
    if m["anhc"] == 1.0:
        assert m["map"] == pytest.approx(comps["dch"]["metrics"]["map"])
    assert rec["command"].startswith("papermill notebooks/mch.ipynb out.ipynb -p dataset ")  # results.reproduce_command
    assert rec["git_read_at"] == "start" and all(c["git_read_at"] == "start" for c in rec["companions"])


def test_companions_saved_as_the_notebook_names_them(smoke_record, tmp_path):
    import json

    from hashrepro.recipe import save_with_companions

    paths = save_with_companions(smoke_record, tmp_path / "res", "nbtest")
    names = [p.name for p in paths]
    assert names == ["nbtest.json", "dch_mosaic-digits_16b_seed0_smoke.json", "lsh_mosaic-digits_16b_seed0_smoke.json",
                     "itq_mosaic-digits_16b_seed0_smoke.json"]
    assert all(p.parent == tmp_path / "res" / "mch" for p in paths)
    main = json.loads(paths[0].read_text())
    assert "companions" not in main and main["metrics"]["map"] == smoke_record["metrics"]["map"]


def test_run_takes_a_command_and_overrides(monkeypatch):
    """``run(cfg=None, *, command=None, **overrides)``: overrides build the scale's presets, the
    command goes into every record (here stopped right after the set-up)."""
    seen = {}

    def stop(cfg):
        seen["cfg"] = cfg
        raise RuntimeError("stop")

    monkeypatch.setattr(M, "load_data", stop)
    with pytest.raises(RuntimeError, match="stop"):
        M.run(scale="smoke", dataset="mosaic-digits", bits=8, command="c")
    assert seen["cfg"] == M.Config.for_scale("smoke", dataset="mosaic-digits", bits=8)
    with pytest.raises(RuntimeError, match="stop"):
        M.run(M.Config.for_scale("smoke"), bits=12)
    assert seen["cfg"].bits == 12 and seen["cfg"].n_images == 240


def test_plots_and_tables(smoke_record):
    import matplotlib

    matplotlib.use("Agg")
    from hashrepro.plots import mch as PL

    recs = [smoke_record, *smoke_record["companions"]]
    assert len(PL.pairs(recs)) == 1
    t = PL.summary_table(recs)
    assert len(t) == 1 and "buckets MCH/X at equal F1" in t.columns
    from hashrepro import claims as CL

    c = CL.claims_table("mch", recs, agent=None)
    assert {v.split(" (")[0] for v in c["verdict"]} <= set(CL.VERDICTS)
    assert CL.claims_table("mch", [])["verdict"].eq("not testable here").all()
    assert set(CL.checks_table("mch", recs, agent=None)["verdict"]) <= {"holds", "fails", "not testable here"}
    g = PL.anhc_grid(smoke_record)
    assert g.loc[1.0].eq(1.0).all()
    fig = PL.plot_run(smoke_record, smoke_record["companions"])
    assert len(fig.axes) >= 4
    ds, _ = M.load_data(M.Config.for_scale("smoke", dataset="mosaic-digits"))
    PL.retrieval_grid(smoke_record, ds.images)
    from hashrepro.results import paper_table

    pg = PL.paper_anhc_grid(paper_table("mch_table3"))
    assert pg.shape == (6, 6) and pg.loc[0.5, 0.5] == 1.54 and pg.loc[1.0].eq(1.0).all()


def test_paper_tables_transcribed():
    from hashrepro.results import paper_table

    t2 = paper_table("mch_table2")
    assert len(t2) == 12 * 12
    v = t2.set_index(["method", "dataset", "bits"])["value"]
    assert v[("ksh", "nuswide21", 16)] == 0.6894 and v[("mch-adsh", "coco", 64)] == 0.6174
    assert v[("mch-mmhh", "mirflickr25k", 64)] == 0.8138
    # the paper's claim in Table 2: every MCH-X is above X
    for base in ("ksh", "hashnet", "adsh", "dch", "mmhh"):
        for d in ("nuswide21", "coco", "mirflickr25k"):
            for b in (16, 32, 48, 64):
                assert v[(f"mch-{base}", d, b)] > v[(base, d, b)]


@pytest.mark.slow
def test_notebook_papermill(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "out.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(root / "notebooks" / "mch.ipynb"), str(out),
           "-p", "scale", "smoke", "-p", "dataset", "mosaic-digits", "-p", "bits", "16",
           "-p", "results_dir", str(tmp_path / "res"), "-p", "run_name", "nbtest"]
    subprocess.run(cmd, check=True, cwd=root, capture_output=True, timeout=900)
    rec = json.loads((tmp_path / "res" / "mch" / "nbtest.json").read_text())
    assert rec["method"] == "mch-dch" and rec["bits"] == 16 and rec["scale"] == "smoke"
    assert 0 <= rec["metrics"]["map"] <= 1
    names = sorted(p.name for p in (tmp_path / "res" / "mch").glob("*.json"))
    assert "dch_mosaic-digits_16b_seed0_smoke.json" in names and "lsh_mosaic-digits_16b_seed0_smoke.json" in names
    nb = json.loads(out.read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "RESULT" in text


# --------------------------------------------------------------------------- agent: variance reduction
def _expected_grad(policy, h, r_keep, baseline_fn, scale=1.0):
    """Exact E_a[∇ surrogate] over all 2^n joint actions of a tiny batch."""
    import itertools

    n = len(h)
    total = [torch.zeros_like(p) for p in policy.parameters()]
    probs = policy(h).detach()
    for acts in itertools.product([0, 1], repeat=n):
        a = torch.tensor(acts)
        pa = float(torch.prod(probs[torch.arange(n), a]))
        policy.zero_grad()
        rewards = torch.where(a == KEEP, r_keep, torch.zeros_like(r_keep))
        policy_gradient_loss(policy(h), a, rewards, baseline_fn(rewards), scale).backward()
        for t, p in zip(total, policy.parameters()):
            t += pa * p.grad
    return total


def test_baseline_leaves_expected_gradient_unchanged():
    """Williams' baseline: the leave-one-out batch mean and a constant (a moving average of earlier
    iterations) change the variance of the REINFORCE estimate, not its expectation (eq. 7)."""
    torch.manual_seed(0)
    policy = PolicyNet(6, (8, 8, 8, 8)).eval()  # eval: BN fixed, π(·|h_i) depends on h_i only
    h = torch.randn(4, 6)
    r_keep = torch.tensor([3.0, -5.0, -1.0, 0.5])
    g_none = _expected_grad(policy, h, r_keep, lambda r: None)
    g_loo = _expected_grad(policy, h, r_keep, lambda r: (r.sum() - r) / (len(r) - 1))
    g_const = _expected_grad(policy, h, r_keep, lambda r: -2.7)
    for a, b, c in zip(g_none, g_loo, g_const):
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)
    # a positive action-independent scale only shortens the step
    g_scaled = _expected_grad(policy, h, r_keep, lambda r: -2.7, scale=4.0)
    for a, b in zip(g_none, g_scaled):
        assert torch.allclose(a / 4.0, b, atol=1e-6)
    # the baseline *must not* use a sample's own reward: the plain batch mean is biased
    g_mean = _expected_grad(policy, h, r_keep, lambda r: r.mean())
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g_none, g_mean))
    # entropy bonus and bad scale
    probs = policy(h)
    a = torch.tensor([0, 1, 0, 1])
    probs = probs.detach()
    l0 = policy_gradient_loss(probs, a, r_keep)
    l1 = policy_gradient_loss(probs, a, r_keep, entropy=0.5)
    assert l1.item() < l0.item()
    with pytest.raises(ValueError):
        policy_gradient_loss(probs, a, r_keep, scale=0.0)


class _TwoTypeHasher:
    """Whole image: feature = brightness; every crop is coded c_B = (-1, ..., -1)."""

    def __init__(self, q):
        self.q = q

    def embed(self, images_u8, boxes=None, batch_size=512):
        n = len(images_u8)
        f = (images_u8.float().mean(dim=(1, 2, 3)) / 255.0)[:, None].repeat(1, 4).numpy()
        z = np.ones((n, self.q), dtype=np.float32)
        if boxes is not None:
            z[:] = -1.0
        return f, z


def _two_type_problem(n=240, q=4, seed=0):
    """Items A (label {0}, code c_A, dark), AB (labels {0, 1}, code c_A, bright) and B (label {1},
    code c_B, grey). The crop code c_B helps AB (its similar B items move from d = Q to 0: reward
    > 0) and hurts A (dissimilar B items move to 0: reward < 0); for B it changes nothing. Only the
    brightness in the state tells AB from A."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, n, p=[0.5, 0.15, 0.35])  # 0 = A, 1 = AB, 2 = B
    y = np.zeros((n, 2), dtype=np.uint8)
    y[kind != 2, 0] = 1
    y[kind != 0, 1] = 1
    val = np.array([40, 220, 130])[kind] + rng.integers(-20, 20, n)
    imgs = torch.from_numpy(np.broadcast_to(val[:, None, None, None], (n, 1, 8, 8)).astype(np.uint8).copy())
    z = np.where((kind == 2)[:, None], -1.0, 1.0).repeat(q, 1).astype(np.float32)
    return imgs, y, z, kind


@pytest.mark.parametrize("baseline", ["ema", "batch"])
def test_agent_learns_to_keep_positive_reward_crops(baseline):
    torch.manual_seed(0)
    q = 4
    imgs, y, z, kind = _two_type_problem(q=q)
    hasher = _TwoTypeHasher(q)
    f, _ = hasher.embed(imgs)
    cfg = M.Config.for_scale("smoke", bits=q, agent_iters=60, agent_batch=64, agent_baseline=baseline)
    res = train_agent(cfg, hasher, P.KSHLoss(q), imgs, f, z, torch.from_numpy(z), y, torch.device("cpu"), 0)
    assert 0.1 < np.mean(res.oracle_keep) < 0.25  # the AB crops: the only positive rewards
    zc, pk = crop_keep_probabilities(hasher, res.policy, imgs, f, z, 0.5, torch.device("cpu"))
    p = pk.mean(1)
    assert p[kind == 1].min() > 0.5 > p[kind == 0].max()
    codes, owners, _ = extend((z >= 0).astype(np.uint8), zc, pk, 0.5)
    anhc = len(codes) / len(z)
    assert 1.0 < anhc < 1.0 + (kind == 1).mean() + (kind == 2).mean() + 1e-9


def test_agent_config_validation():
    assert M.Config().agent_baseline == "ema" and M.Config().agent_reward_norm is True
    for bad in (dict(agent_baseline="mean"), dict(agent_entropy=-1.0), dict(agent_ema=1.0)):
        with pytest.raises(ValueError):
            M.Config(**bad)


def test_crop_diagnostic_smoke():
    from hashrepro.methods.mch_diagnostics import crop_diagnostic

    torch.set_num_threads(1)
    rec = crop_diagnostic(M.Config.for_scale("smoke", dataset="mosaic-digits", base="dch", bits=16, progress=False),
                          n_items=30)
    m = rec["metrics"]
    assert rec["method"] == "diag-crops-dch" and m["n_crops"] == 150
    assert 0 <= m["positive_fraction"] <= 1 and m["reward_pos_per_item"] >= 0 >= m["reward_neg_per_item"]
    assert math.isnan(m["d_tile_same_class"]) or 0 <= m["d_tile_same_class"] <= 16


def test_relevant_fraction_is_the_brute_force_share_of_relevant_database_items():
    from hashrepro.methods.mch_data import relevant_fraction

    cfg = M.Config.for_scale("smoke", dataset="mosaic-digits")
    ds, sp = M.load_data(cfg)
    Y = ds.label_matrix()
    brute = np.mean([[bool(set(np.flatnonzero(Y[q])) & set(np.flatnonzero(Y[d]))) for d in sp.database]
                     for q in sp.query])
    assert relevant_fraction(cfg) == pytest.approx(brute) and 0.0 < brute < 1.0
