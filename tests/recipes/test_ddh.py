"""Tests of the DDH chapter: pseudo labels (Alg. 1), the CNN-F-like net, the loss (eq. 10–13),
the contrastive backbone, the method's run() and the notebook."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hashrepro.losses.ddh import DDHLoss, ddh_loss
from hashrepro.models.cnnf import CNNF, DDHNet, LRN, load_imagenet_cnnf, sgn
from hashrepro.models.contrastive import augment, nt_xent, train_contrastive, encode_features
from hashrepro.pseudolabels import (batch_similarity, build_pseudo_labels, class_similarity,
                                    expand_neighbourhood, knn_cosine, knn_matrix, label_precision,
                                    label_precision_curve)

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- pseudo labels (Alg. 1)

def _alg1_reference(knn: np.ndarray, k2: int) -> np.ndarray:
    """Literal Algorithm 1 (double loop), ties: own list first, then rank in L_i, then index."""
    n, k1 = knn.shape
    L = [set(r.tolist()) for r in knn]
    S = np.zeros((n, n), dtype=bool)
    for i in range(n):
        rank = {int(j): k1 - r for r, j in enumerate(knn[i])}
        key = [(len(L[i] & L[j]), k1 + 1 if j == i else rank.get(j, 0), -j) for j in range(n)]
        for j in sorted(range(n), key=lambda j: key[j], reverse=True)[:k2]:
            S[i, list(L[j])] = True
    return S


def test_knn_cosine_matches_bruteforce_and_backends():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    g = xn @ xn.T
    np.fill_diagonal(g, -np.inf)
    ref = np.argsort(-g, axis=1, kind="stable")[:, :7]
    for backend in ("faiss", "numpy"):
        idx, sim = knn_cosine(x, 7, backend=backend)
        assert idx.shape == (200, 7) and sim.shape == (200, 7)
        assert (idx == ref).mean() > 0.99
        assert not (idx == np.arange(200)[:, None]).any()
        assert np.all(np.diff(sim, axis=1) <= 1e-6)
    with pytest.raises(ValueError, match="k must be"):
        knn_cosine(x, 200)
    with pytest.raises(ValueError, match="2-D"):
        knn_cosine(x[0], 3)


def test_expansion_equals_literal_algorithm1():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    for k1, k2 in [(5, 3), (4, 1), (8, 6)]:
        knn, _ = knn_cosine(x, k1)
        S = expand_neighbourhood(knn, k2).toarray() > 0
        assert (S == _alg1_reference(knn, k2)).all(), (k1, k2)


def test_expansion_hand_example():
    # 6 points, K1 = 2 lists given by hand; K2 = 2
    knn = np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]])
    S = expand_neighbourhood(knn, 2).toarray().astype(int)
    # |L_0 ∩ L_j|: j=0:2, j=1:1 ({2}), j=2:1 ({1}) → keep L_0 and (tie: rank of 1 in L_0 is best) L_1
    assert S[0].tolist() == [1, 1, 1, 0, 0, 0]
    assert S[3].tolist() == [0, 0, 0, 1, 1, 1]
    # with K2 = 1 S equals S1 (own list only)
    assert (expand_neighbourhood(knn, 1).toarray() == knn_matrix(knn).toarray()).all()


def test_build_pseudo_labels_and_precision():
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(4, 16)) * 4
    y = np.repeat(np.arange(4), 50)
    x = centers[y] + rng.normal(size=(200, 16))
    pl = build_pseudo_labels(x, k1=5, k2=3)
    S = pl.S.toarray()
    assert (S == S.T).all() and np.all(np.diag(S) == 0)
    assert pl.knn.shape == (200, 5)
    assert label_precision(pl.S, y) > 0.95
    plain = build_pseudo_labels(x, k1=5, k2=3, expand=False)
    assert plain.positives_per_item() < pl.positives_per_item()
    # multi-hot labels: share at least one
    Y = np.eye(4, dtype=np.uint8)[y]
    assert label_precision(pl.S, Y) == pytest.approx(label_precision(pl.S, y))
    assert label_precision(sp.csr_matrix((3, 3)), np.zeros(3)) != label_precision(sp.csr_matrix((3, 3)), np.zeros(3))


def test_label_precision_curve_shapes():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(3, 8))[y] * 3 + rng.normal(size=(120, 8))
    c = label_precision_curve(x, y, ks=(2, 5, 10), k2=3)
    assert c["k"] == [2, 5, 10]
    assert len(c["knn_precision"]) == 3 and len(c["expanded_positives"]) == 3
    assert all(e >= k for e, k in zip(c["expanded_positives"], c["knn_positives"]))


def test_batch_and_class_similarity():
    S = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32))
    s = batch_similarity(S, np.array([0, 1, 2]))
    assert s.tolist() == [[-1, 1, -1], [1, -1, -1], [-1, -1, -1]]
    s = class_similarity(np.array([0, 0, 1]), np.array([0, 1, 2]))
    assert s.tolist() == [[1, 1, -1], [1, 1, -1], [-1, -1, 1]]


def test_pseudo_labels_vectorised_speed():
    """10,000 items in well under a minute (50,000 take seconds to a minute; see the chapter)."""
    import time
    rng = np.random.default_rng(4)
    x = rng.normal(size=(10000, 32)).astype(np.float32)
    t = time.perf_counter()
    pl = build_pseudo_labels(x, 15, 6)
    assert time.perf_counter() - t < 60
    assert pl.S.shape == (10000, 10000)


# ---------------------------------------------------------------- network

def test_cnnf_shapes_and_paper_config():
    net = CNNF(3, 32, width=4, fc_dim=16)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 16)
    net = CNNF(1, 28, width=4, fc_dim=16)
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 16)
    paper = CNNF.paper()
    convs = [m for m in paper.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 256, 256, 256, 256]
    assert convs[0].kernel_size == (11, 11) and convs[0].stride == (4, 4)
    assert paper.fc[1].out_features == 4096 and paper.fc[4].out_features == 4096
    with pytest.raises(ValueError, match="in_channels"):
        CNNF(2, 32)
    with pytest.raises(ValueError, match="expected images"):
        CNNF(3, 32, 4, 8)(torch.rand(1, 1, 32, 32))
    with pytest.raises(RuntimeError, match="not available offline"):
        load_imagenet_cnnf()


def test_lrn_matches_torch():
    x = torch.randn(2, 10, 5, 5) * 3
    ref = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(x)
    assert torch.allclose(LRN(10)(x), ref, atol=1e-6)


def test_sgn_and_ddhnet():
    z = torch.tensor([[-0.5, 0.0, 2.0]])
    assert sgn(z).tolist() == [[-1.0, 1.0, 1.0]]          # eq. 4: u >= 0 → +1
    net = DDHNet(CNNF(3, 32, 4, 16), 12)
    x = torch.rand(3, 3, 32, 32)
    assert net(x).shape == (3, 12)
    b = net.codes(x)
    assert set(b.unique().tolist()) <= {-1.0, 1.0}


# ---------------------------------------------------------------- loss (eq. 10–13)

def test_loss_hand_value():
    z = torch.tensor([[1.0, -1.0], [0.5, 0.5]])
    s = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    L = 2
    theta01 = (1 * 0.5 + -1 * 0.5) / L                    # 0
    pair = 0.5 * 2 * (theta01 - 1) ** 2                   # both ordered pairs
    quant = 0.5 * 15 * ((0.5 - 1) ** 2 * 2)               # b_1 = (1, 1), b_0 = z_0
    loss, parts = ddh_loss(z, s, lambda1=15, reduction="sum")
    assert loss.item() == pytest.approx(pair + quant)
    assert parts["pair"] == pytest.approx(pair) and parts["quant"] == pytest.approx(quant)
    loss_m, _ = ddh_loss(z, s, lambda1=15, reduction="mean")
    assert loss_m.item() == pytest.approx((pair + quant) / 2)


def test_loss_gradient_matches_eq13():
    torch.manual_seed(0)
    L = 8
    z = torch.randn(2, L, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([[0.0, -1.0], [-1.0, 0.0]], dtype=torch.float64)  # one pair (ordered twice)
    lam = 15.0
    loss, _ = ddh_loss(z, s, lambda1=lam, reduction="sum")
    loss.backward()
    zi, zj = z.detach()[0], z.detach()[1]
    bi = torch.where(zi >= 0, 1.0, -1.0).to(zi.dtype)
    # eq. 13 for the pair (i, j); the ordered pair (j, i) doubles the pair part
    eq13 = 2 * ((zi @ zj) / L**2 * zj - (1 / L) * s[0, 1] * zj) + lam * (zi - bi)
    assert torch.allclose(z.grad[0], eq13)


def test_ddhloss_module_regulariser_and_validation():
    lin = torch.nn.Linear(4, 3)
    z = torch.randn(5, 3)
    s = torch.ones(5, 5)
    base = DDHLoss(15, 0)(z, s, lin)
    withreg = DDHLoss(15, 0.1)(z, s, lin)
    reg = 0.5 * 0.1 * (lin.weight.pow(2).sum() + lin.bias.pow(2).sum())
    assert (withreg - base).item() == pytest.approx(reg.item(), rel=1e-5)
    with pytest.raises(ValueError, match="s must be"):
        ddh_loss(z, torch.ones(4, 4))
    with pytest.raises(ValueError, match="lambda1"):
        DDHLoss(-1)


def test_loss_training_separates_pairs():
    """A few steps of eq. 10 on free z make positives agree and negatives disagree."""
    torch.manual_seed(0)
    z = torch.randn(8, 16, requires_grad=True)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    s = torch.from_numpy(class_similarity(y.numpy(), np.arange(8)))
    opt = torch.optim.SGD([z], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        ddh_loss(z, s, lambda1=0.1)[0].backward()
        opt.step()
    b = sgn(z.detach())
    ip = b @ b.t() / 16
    same = (s > 0) & ~torch.eye(8, dtype=torch.bool)
    assert ip[same].mean() > 0.25 and ip[s < 0].mean() < -0.25


# ---------------------------------------------------------------- contrastive backbone

def test_augment_and_ntxent():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 32, 32)
    a = augment(x, generator=g)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, x)
    z = torch.randn(4, 8)
    assert nt_xent(z, z).item() < nt_xent(z, torch.randn(4, 8)).item()


def test_train_contrastive_tiny():
    imgs = torch.rand(40, 3, 32, 32)
    model, info = train_contrastive(imgs, CNNF(3, 32, 4, 16), iterations=3, batch_size=16, seed=0)
    assert len(info["loss"]) == 3 and np.isfinite(info["loss"]).all()
    f = encode_features(model, imgs[:10])
    assert f.shape == (10, 16)


# ---------------------------------------------------------------- method: run() and the notebook

def test_config_validation_and_presets():
    from hashrepro.methods.ddh import Config
    c = Config.for_scale("default")
    assert (c.k1, c.k2, c.lambda1, c.lambda2, c.lr, c.batch_size) == (15, 6, 15.0, 1e-5, 1e-3, 128)
    p = Config.for_scale("paper")
    assert p.width == 64 and p.fc_dim == 4096
    assert Config.for_scale("default", dataset="cifar10").iterations == 800
    assert Config.for_scale("default", dataset="mnist5k").iterations == 300   # notebook defaults
    with pytest.raises(ValueError, match="features must be"):
        Config(features="sift")
    with pytest.raises(ValueError, match="scale must be"):
        Config.for_scale("huge")
    with pytest.raises(ValueError, match="bits"):
        Config(bits=0)


def test_resnet_features_offline_error(monkeypatch, tmp_path):
    from hashrepro.methods.ddh import resnet_pool5_features
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RuntimeError, match="not available offline"):
        resnet_pool5_features(np.zeros((2, 32, 32, 3), np.uint8))


def test_pair_sampler_anchor_positive():
    from hashrepro.methods.ddh import _PairSampler
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8))[np.repeat(np.arange(4), 30)] * 4 + rng.normal(size=(120, 8))
    pl = build_pseudo_labels(x, 5, 3)
    s = _PairSampler(120, 16, S=pl.S, seed=0)
    idx, sim = s.sample()
    assert idx.shape == (16,) and sim.shape == (16, 16)
    assert (sim[np.arange(8), np.arange(8) + 8] == 1).all()          # anchor i and its positive
    assert set(np.unique(sim)) <= {-1.0, 1.0}
    sup = _PairSampler(120, 16, labels=np.repeat(np.arange(4), 30), seed=0)
    idx, sim = sup.sample()
    y = np.repeat(np.arange(4), 30)[idx]
    assert ((sim > 0) == (y[:, None] == y[None, :])).all()


def _smoke_config(**kw):
    from hashrepro.methods.ddh import Config
    return Config.for_scale("smoke", dataset="mnist5k", n_database=400, n_train=None, n_query=60,
                            n_query_per_class=10, cache_dir="", device="cpu", **kw)


def test_run_smoke_record():
    from hashrepro.methods.ddh import run
    rec = run(_smoke_config(bits=16))
    assert rec["paper"] == "ddh" and rec["method"] == "ddh" and rec["bits"] == 16
    m = rec["metrics"]
    for k in ("map", "map_tie_aware", "precision_radius2", "label_precision", "label_precision_knn",
              "positives_per_item"):
        assert 0.0 <= m[k] <= (1.0 if k != "positives_per_item" else 1e9), k
    assert rec["protocol"]["topk"] == 1000 and rec["protocol"]["database_includes_train"] is True
    assert rec["protocol"]["n_query"] == 60 and rec["protocol"]["n_database"] == 400
    assert "pr_radius" in rec["curves"]
    json.dumps(rec)


def test_run_smoke_labels_only_and_supervised():
    from hashrepro.methods.ddh import run
    rec = run(_smoke_config(features="pixels", labels_only=True, label_curve=True, init="random"))
    assert rec["method"] == "ddh-labels-pixels" and "map" not in rec["metrics"]
    c = rec["curves"]["label_precision"]
    assert c["k"] == [3, 5, 10] and c["expanded_precision"][-1] is None   # expansion only up to K=5
    rec = run(_smoke_config(supervised=True, init="random", features="pixels"))
    assert rec["method"] == "ddh-supervised" and 0 <= rec["metrics"]["map"] <= 1


@pytest.mark.slow
def test_notebook_papermill(tmp_path):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / "ddh.ipynb"), str(out), cwd=str(REPO),
                               parameters={"dataset": "mnist5k", "bits": 16, "scale": "smoke",
                                           "results_dir": str(tmp_path / "results"), "device": "cpu"},
                               kernel_name="python3", progress_bar=False)
    recs = list((tmp_path / "results" / "ddh").glob("*.json"))
    assert len(recs) == 1
    rec = json.loads(recs[0].read_text())
    assert rec["bits"] == 16 and 0 <= rec["metrics"]["map"] <= 1
    text = out.read_text()
    assert "RESULT" in text


@pytest.mark.shared
def test_cifar10_pseudo_labels_real_mirror():
    """On the real CIFAR-10 mirror: Algorithm 1 on 10,000 training images from pixels."""
    root = os.environ.get("HASHREPRO_DATA")
    if not root or not (Path(root) / "cifar10" / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip("HASHREPRO_DATA with cifar10/cifar10-jpeg.tar.gz not available")
    from hashrepro.data import load
    ds = load("cifar10")
    tr = np.sort(np.random.default_rng(0).choice(ds.official_split["train"], 10000, replace=False))  # files are class-ordered
    x = ds.images[tr].reshape(len(tr), -1).astype(np.float32)
    pl = build_pseudo_labels(x, 15, 6)
    p = label_precision(pl.S1, ds.labels[tr])
    assert 0.15 < p < 0.6            # far above chance (0.1), far below supervised


def test_kmeans_features_shapes_and_quality():
    from hashrepro.methods.ddh import kmeans_features
    rng = np.random.default_rng(0)
    # two "classes": horizontal vs vertical stripes with noise
    base = np.zeros((2, 16, 16), np.float32)
    base[0, ::4] = 255
    base[1, :, ::4] = 255
    y = np.repeat([0, 1], 40)
    imgs = np.clip(base[y] + rng.normal(0, 30, (80, 16, 16)), 0, 255).astype(np.uint8)[..., None]
    f = kmeans_features(imgs, n_centroids=16, stride=2, n_patches=3000, seed=0)
    assert f.shape == (80, 64) and np.all(f >= 0)
    assert np.array_equal(f, kmeans_features(imgs, n_centroids=16, stride=2, n_patches=3000, seed=0))
    pl = build_pseudo_labels(np.sqrt(f), 5, 2)
    assert label_precision(pl.S1, y) > 0.9


def test_run_smoke_shallow_baseline_same_features():
    from hashrepro.methods.ddh import run
    rec = run(_smoke_config(baseline="itq", bits=16))
    assert rec["method"] == "itq" and rec["config"]["features"] == "gist"
    assert 0 <= rec["metrics"]["map"] <= 1 and rec["bits"] == 16


def test_plots_render():
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd
    from hashrepro.plots.ddh import label_precision_figure, map_vs_bits_figure, pr_curves_figure
    c = {"k": [5, 10, 30], "knn_precision": [0.5, 0.45, 0.4], "knn_positives": [5, 10, 30],
         "expanded_precision": [0.4, 0.38, None], "expanded_positives": [40, 80, None]}
    assert label_precision_figure({"gist": c}) is not None
    pr = {"precision": [0.9, 0.5, 0.1], "recall": [0.01, 0.3, 1.0]}
    assert pr_curves_figure({16: {"ddh": pr}, 32: {"ddh": pr}}) is not None
    t = pd.DataFrame({"method": ["DDH"] * 2, "bits": [16, 32], "paper": [0.4, 0.5], "ours_mean": [0.2, 0.3],
                      "ours_std": [float("nan")] * 2})
    assert map_vs_bits_figure(t) is not None


# ---------------------------------------------------------------- DH and DeepBit (Table 2 deep baselines)

def test_dh_loss_hand_value_and_autograd():
    from hashrepro.losses.dh import DHLoss, dh_loss, orthogonality_penalty
    h = torch.tensor([[0.5, -0.2], [-0.4, 0.9]], dtype=torch.float64)
    b = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
    quant = 0.5 * ((b - h) ** 2).sum()
    hc = h - h.mean(0)
    lam = 100.0
    var = -lam / (2 * 2) * (hc * hc).sum()                       # −λ1/(2N) tr(HcᵀHc)
    loss, parts = dh_loss(h, lam, centre=True, reduction="sum")
    assert loss.item() == pytest.approx((quant + var).item())
    assert parts["quant"] == pytest.approx(quant.item()) and parts["variance"] == pytest.approx(var.item())
    raw, _ = dh_loss(h, lam, centre=False, reduction="sum")      # the printed tr(HᵀH)
    assert raw.item() == pytest.approx((quant - lam / 4 * (h * h).sum()).item())
    mean, _ = dh_loss(h, lam, reduction="mean")
    assert mean.item() == pytest.approx((quant / 2 + var / 2).item())     # eq. 3 on the batch, / N
    # orthogonality ‖WWᵀ − I‖²_F by hand and zero for orthonormal rows
    w = torch.tensor([[1.0, 1.0, 0.0]])
    assert orthogonality_penalty([w]).item() == pytest.approx((2 - 1) ** 2)
    q, _ = torch.linalg.qr(torch.randn(5, 3))
    assert orthogonality_penalty([q.t()]).item() == pytest.approx(0.0, abs=1e-10)
    # module: J3 and J4 with λ2, λ3; gradient of J1 w.r.t. h is (h − b)/N (b held fixed)
    lin = torch.nn.Linear(3, 2).double()
    z = torch.randn(4, 3, dtype=torch.float64)
    out = torch.tanh(lin(z))
    crit = DHLoss(lambda1=0.0, lambda2=0.1, lambda3=0.2)
    total = crit(out, [lin])
    j3 = 0.05 * orthogonality_penalty([lin.weight])
    j4 = 0.1 * (lin.weight.pow(2).sum() + lin.bias.pow(2).sum())
    assert total.item() == pytest.approx((dh_loss(out, 0.0)[0] + j3 + j4).item())
    hh = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    dh_loss(hh, 0.0, reduction="mean")[0].backward()
    bb = torch.where(hh.detach() >= 0, 1.0, -1.0).double()
    assert torch.allclose(hh.grad, (hh.detach() - bb) / 4)
    with pytest.raises(ValueError, match="lambda2"):
        DHLoss(lambda2=-1)
    with pytest.raises(ValueError, match="h must be"):
        dh_loss(torch.zeros(3))


def test_deepbit_loss_hand_value_and_rotation():
    from hashrepro.losses.deepbit import DeepBitLoss, deepbit_binarise, deepbit_loss, rotate, rotation_loss
    f = torch.tensor([[0.9, 0.2], [0.6, 0.4]], dtype=torch.float64)
    b = deepbit_binarise(f)
    assert b.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    quant = ((b - f) ** 2).sum()
    mu = f.mean(0)                                                 # (0.75, 0.3)
    balance = ((mu - 0.5) ** 2).sum()
    loss, parts = deepbit_loss(f, alpha=2.0, beta=3.0, reduction="sum")
    assert loss.item() == pytest.approx((2 * quant + 3 * balance).item())
    assert parts["balance"] == pytest.approx(0.25 ** 2 + 0.2 ** 2)
    # rotation term: C(θ) = exp(−|θ| rad), target detached
    fr = torch.tensor([[0.8, 0.3], [0.6, 0.1]], dtype=torch.float64)
    r = rotation_loss(f, [fr], [10.0], reduction="sum")
    assert r.item() == pytest.approx(np.exp(-np.radians(10)) * ((fr - f) ** 2).sum().item())
    crit = DeepBitLoss(1.0, 1.0, 0.5)
    both = crit(f, [fr], [10.0])
    assert both.item() == pytest.approx((deepbit_loss(f)[0] + 0.5 * rotation_loss(f, [fr], [10.0])).item())
    # autograd of L1 (mean): 2 (f − b) / N; of L2: 2 (μ − 0.5) / N
    ff = f.clone().requires_grad_(True)
    deepbit_loss(ff, 1.0, 1.0)[0].backward()
    assert torch.allclose(ff.grad, 2 * (f - b) / 2 + 2 * (mu - 0.5) / 2)
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(rotate(x, 0.0), x, atol=1e-5) and rotate(x, 10.0).shape == x.shape
    with pytest.raises(ValueError, match="one output per angle"):
        rotation_loss(f, [fr, fr], [5.0])


def test_dh_and_deepbit_nets_shapes():
    from hashrepro.methods.ddh_deep_baselines import DeepBitNet, DHNet
    from hashrepro.losses.dh import orthogonality_penalty
    net = DHNet(CNNF(3, 32, 4, 16), 8, hidden=(12,))
    x = torch.rand(5, 3, 32, 32)
    h = net(x)
    assert h.shape == (5, 8) and h.abs().max() < 1
    assert [tuple(l.weight.shape) for l in net.layers] == [(12, 16), (8, 12)]
    assert orthogonality_penalty([l.weight for l in net.layers]).item() < 1e-8     # orthonormal rows at init
    mlp = DHNet(None, 4, hidden=(6,), in_features=10)
    assert mlp(torch.randn(3, 10)).shape == (3, 4)
    f = DeepBitNet(CNNF(3, 32, 4, 16), 6)(x)
    assert f.shape == (5, 6) and f.min() > 0 and f.max() < 1


def test_method_parameter_validation():
    from hashrepro.methods.ddh import Config
    with pytest.raises(ValueError, match="method must be one of"):
        Config(method="deepbits")
    with pytest.raises(ValueError, match="task must be one of"):
        Config(task="detection")
    with pytest.raises(ValueError, match="descriptor must be one of"):
        Config(task="classification", descriptor="sift")
    with pytest.raises(ValueError, match="baseline must be"):
        Config(baseline="cnnh")
    with pytest.raises(ValueError, match="dh_input"):
        Config(method="dh", dh_input="pixels")
    assert Config(task="classification", descriptor="hog", bits=0).bits == 0
    with pytest.raises(ValueError, match="bits"):
        Config(bits=0)


@pytest.mark.parametrize("method", ["dh", "deepbit"])
def test_run_smoke_deep_baselines_deterministic(method):
    from hashrepro.methods.ddh import run
    cfg = _smoke_config(bits=8, method=method, features="pixels", iterations=12, deepbit_stage2_fraction=0.5,
                        init="contrastive" if method == "deepbit" else "random")
    rec = run(cfg)
    assert rec["method"] == method and rec["bits"] == 8 and 0 <= rec["metrics"]["map"] <= 1
    assert 0 <= rec["metrics"]["map_tie_aware"] <= 1
    assert rec["protocol"]["topk"] == 1000 and "pr_radius" in rec["curves"]
    if method == "deepbit":
        assert rec["metrics"]["stage2_iterations"] == 6 and "rotation" in rec["curves"]["train_loss_parts"]
    again = run(cfg)
    assert again["metrics"]["map"] == rec["metrics"]["map"]
    assert again["curves"]["train_loss"]["loss"] == rec["curves"]["train_loss"]["loss"]
    json.dumps(rec)


def test_run_smoke_dh_on_gist_mlp():
    from hashrepro.methods.ddh import run
    rec = run(_smoke_config(bits=8, method="dh", dh_input="gist", iterations=5))
    assert rec["method"] == "dh" and "GIST" in rec["config"]["info"]["input"]
    assert 0 <= rec["metrics"]["map"] <= 1


def test_svm_accuracy_and_table4_shallow_supervised():
    from hashrepro.methods.ddh import run
    from hashrepro.methods.ddh_flowers import svm_accuracy
    rng = np.random.default_rng(0)
    c = rng.normal(size=(3, 5)) * 5
    y = np.repeat(np.arange(3), 20)
    x = c[y] + rng.normal(size=(60, 5))
    r = svm_accuracy(x, y, x, y, x, y, cs=(0.1, 1.0))
    assert r["accuracy"] > 0.95 and r["svm_C"] in (0.1, 1.0) and r["svm_time_s"] >= 0
    rec = run(_smoke_config(baseline="splh", bits=8, features="pixels", baseline_max_train=200))
    assert rec["method"] == "splh" and rec["config"]["info"]["supervision"].startswith("class labels of 200")
    assert 0 <= rec["metrics"]["map"] <= 1
