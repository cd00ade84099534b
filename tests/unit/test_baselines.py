"""Tests of hashrepro.baselines: API contract, determinism, validation, and retrieval quality
on a small real set (scikit-learn's 8x8 digits, raw pixels)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from hashrepro import baselines
from hashrepro.baselines import BASELINES, SUPERVISED, UNSUPERVISED
from hashrepro.baselines.itq import itq_rotation
from hashrepro.baselines.mlh import loss_adjusted_inference, _hinge_loss
from hashrepro.baselines.sphh import spherical_hamming

# Small settings so the slow solvers run in a second or two; the defaults are the papers'.
FAST = {
    "kmh": dict(n_iter=5),
    "ksh": dict(n_anchors=100, max_iter=60),
    "sdh": dict(n_anchors=200),
    "bre": dict(max_train=300, max_iter=5),
    "mlh": dict(n_epochs=8),
    "lfh": dict(n_iter=10),
    "splh": dict(n_labeled=300),
    "fasth": dict(n_trees=10, max_train=300),
    "sphh": dict(max_iter=30),
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    p = rng.permutation(len(X))
    q, train, db = p[:150], p[150:650], p[150:]
    return X[train], y[train], X[q], y[q], X[db], y[db]


def _make(name, n_bits=16, random_state=0, **kw):
    params = dict(FAST.get(name, {}))
    params.update(kw)
    return baselines.get(name, n_bits=n_bits, random_state=random_state, **params)


def _map(qb, db, ql, dl):
    """Plain mAP of Hamming ranking (stable by database index), independent of hashrepro.metrics."""
    D = (qb[:, None, :] != db[None, :, :]).sum(-1)
    aps = []
    for i in range(len(qb)):
        order = np.argsort(D[i], kind="stable")
        rel = dl[order] == ql[i]
        hits = np.cumsum(rel)
        aps.append((hits[rel] / (np.flatnonzero(rel) + 1)).mean())
    return float(np.mean(aps))


@pytest.fixture(scope="module")
def fitted(digits):
    """Every method fitted once at 16 bits (reused by the contract and quality tests)."""
    Xtr, ytr, Xq, yq, Xdb, ydb = digits
    out = {}
    for name, cls in BASELINES.items():
        h = _make(name)
        h.fit(Xtr, ytr if cls.supervised else None)
        out[name] = h
    return out


# --------------------------------------------------------------------------- contract
def test_registry_lists_all_methods():
    assert set(BASELINES) == {"lsh", "pcah", "itq", "sh", "sphh", "kmh", "itq-cca", "ksh", "sdh", "bre",
                              "mlh", "lfh", "splh", "fasth"}
    assert set(UNSUPERVISED) == {"lsh", "pcah", "itq", "sh", "sphh", "kmh"}
    assert set(SUPERVISED) | set(UNSUPERVISED) == set(BASELINES)
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.get("nope")


@pytest.mark.parametrize("name", list(BASELINES))
def test_shapes_dtype_and_values(name, fitted, digits):
    Xtr, ytr, Xq, yq, Xdb, ydb = digits
    h = fitted[name]
    codes = h.transform(Xq)
    assert codes.shape == (len(Xq), 16)
    assert codes.dtype == np.uint8
    assert set(np.unique(codes)) <= {0, 1}
    resp = h.decision_function(Xq)
    assert resp.shape == (len(Xq), 16) and np.all(np.isfinite(resp))
    np.testing.assert_array_equal(codes, (resp > 0).astype(np.uint8))
    assert h.n_features_in_ == Xtr.shape[1] and h.n_bits_ == 16
    # no dead bits on the training data (every bit takes both values somewhere)
    tr = h.transform(Xtr)
    assert np.all(tr.min(0) == 0) or name in ("mlh",), "constant bit"


@pytest.mark.parametrize("name", list(BASELINES))
def test_deterministic_under_random_state(name, fitted, digits):
    Xtr, ytr, Xq, *_ = digits
    cls = BASELINES[name]
    h2 = _make(name).fit(Xtr, ytr if cls.supervised else None)
    np.testing.assert_array_equal(fitted[name].transform(Xq), h2.transform(Xq))
    # clone gives an unfitted copy with the same parameters
    c = clone(fitted[name])
    assert c.get_params() == fitted[name].get_params()
    assert not hasattr(c, "n_bits_")


@pytest.mark.parametrize("name", ["lsh", "itq", "sphh", "ksh"])
def test_random_state_matters(name, digits):
    Xtr, ytr, Xq, *_ = digits
    y = ytr if BASELINES[name].supervised else None
    a = _make(name, random_state=0).fit(Xtr, y).transform(Xq)
    b = _make(name, random_state=1).fit(Xtr, y).transform(Xq)
    assert not np.array_equal(a, b)


def test_sphh_bits_exactly_balanced_on_training_data(fitted, digits):
    Xtr = digits[0]
    h = fitted["sphh"]
    # SphH sets each radius to the median distance: each bit is 1 on half the training points
    frac = h.transform(Xtr).mean(0)
    np.testing.assert_allclose(frac, 0.5, atol=2.0 / len(Xtr))
    assert [cls for n, cls in BASELINES.items() if cls.balanced] == [BASELINES["sphh"]]


@pytest.mark.parametrize("name", ["pcah", "itq", "lsh"])
def test_zero_mean_projections_give_roughly_balanced_bits(name, fitted, digits):
    frac = fitted[name].transform(digits[0]).mean(0)
    assert np.all((frac > 0.15) & (frac < 0.85))


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("name", list(BASELINES))
def test_invalid_n_bits(name, digits):
    Xtr, ytr = digits[:2]
    for bad in (0, -3, 2.5, "8"):
        with pytest.raises(ValueError, match="n_bits"):
            baselines.get(name, n_bits=bad).fit(Xtr, ytr)


@pytest.mark.parametrize("name", SUPERVISED)
def test_supervised_needs_labels(name, digits):
    with pytest.raises(ValueError, match="supervised"):
        _make(name).fit(digits[0])


def test_helpful_errors(fitted, digits):
    Xtr, ytr = digits[:2]
    with pytest.raises(ValueError, match="n_bits=100 exceeds"):
        baselines.PCAH(n_bits=100).fit(Xtr)
    with pytest.raises(ValueError, match="features"):
        fitted["itq"].transform(Xtr[:, :10])
    with pytest.raises(ValueError, match="n_anchors"):
        baselines.KSH(n_bits=8, n_anchors=10_000).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="kernel must be one of"):
        baselines.BRE(n_bits=8, kernel="poly").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="y has 3 rows"):
        baselines.SDH(n_bits=8).fit(Xtr, ytr[:3])
    with pytest.raises(ValueError, match="lam must be >= 0"):
        baselines.KMH(n_bits=8, lam=-1).fit(Xtr)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        baselines.ITQ(n_bits=8).transform(Xtr)


def test_multilabel_targets_are_accepted(digits):
    Xtr, ytr = digits[:2]
    Y = np.zeros((len(ytr), 5), dtype=np.uint8)
    Y[np.arange(len(ytr)), ytr % 5] = 1
    Y[np.arange(len(ytr)), (ytr + 1) % 5] = 1
    for name in ("itq-cca", "ksh", "sdh", "lfh"):
        codes = _make(name, n_bits=8).fit(Xtr, Y).transform(Xtr[:20])
        assert codes.shape == (20, 8)


# --------------------------------------------------------------------------- method details
def test_itq_rotation_is_orthogonal_and_reduces_quantisation_loss():
    rng = np.random.RandomState(0)
    V = rng.randn(500, 8) @ rng.randn(8, 8)
    V -= V.mean(0)
    R, losses = itq_rotation(V, 30, np.random.RandomState(1))
    np.testing.assert_allclose(R @ R.T, np.eye(8), atol=1e-10)
    assert losses[-1] < losses[0]
    assert all(b <= a + 1e-8 for a, b in zip(losses, losses[1:]))  # monotone (alternating minimisation)


def test_sh_eigenfunctions_follow_the_box(digits):
    h = baselines.SH(n_bits=12).fit(digits[0])
    # every bit uses exactly one PCA direction with a positive mode
    assert np.all((h.modes_ > 0).sum(1) == 1)
    # the first bits use the widest direction at its first mode (smallest eigenvalue)
    widest = np.argmax(h.mx_ - h.mn_)
    assert h.modes_[0, widest] == 1


def test_spherical_hamming_distance():
    q = np.array([[1, 1, 0, 0]], dtype=np.uint8)
    x = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1]], dtype=np.uint8)
    d = spherical_hamming(q, x)
    np.testing.assert_allclose(d[0, :2], [0.0, 2.0])
    assert np.isinf(d[0, 2])


def test_mlh_loss_adjusted_inference_is_exact():
    rng = np.random.RandomState(0)
    q = 5
    import itertools

    codes = np.array(list(itertools.product([-1.0, 1.0], repeat=q)))
    for _ in range(20):
        z1, z2 = rng.randn(1, q), rng.randn(1, q)
        s = np.array([rng.rand() < 0.5])
        g1, g2 = loss_adjusted_inference(z1, z2, s, rho=2, lam=0.7)
        best = -np.inf
        for a in codes:
            for b in codes:
                v = a @ z1[0] + b @ z2[0] + _hinge_loss(np.array((a != b).sum()), s[0], 2, 0.7)
                best = max(best, float(v))
        got = g1[0] @ z1[0] + g2[0] @ z2[0] + _hinge_loss(np.array((g1 != g2).sum()), s[0], 2, 0.7)
        assert got == pytest.approx(best)


def test_bre_objective_decreases(digits):
    Xtr, ytr = digits[:2]
    h = baselines.BRE(n_bits=8, max_train=200, max_iter=8, random_state=0).fit(Xtr, ytr)
    obj = h.objective_
    assert obj[-1] < obj[0]
    assert all(b <= a + 1e-9 for a, b in zip(obj, obj[1:]))  # exact coordinate minimisation


def test_ksh_bits_fit_the_residual(digits):
    Xtr, ytr = digits[:2]
    h = _make("ksh", n_bits=8)
    h.fit(Xtr, ytr)
    assert len(h.objective_) == 8 and h.objective_[0] > 0


def test_kmh_codes_are_nearest_codewords(digits):
    Xtr = digits[0]
    h = baselines.KMH(n_bits=8, n_iter=3, random_state=0).fit(Xtr)
    assert len(h.codewords_) == 2 and all(c.shape == (16, 32) for c in h.codewords_)


# --------------------------------------------------------------------------- quality
def test_quality_supervised_beat_lsh_and_itq_beats_pcah(fitted, digits):
    Xtr, ytr, Xq, yq, Xdb, ydb = digits
    maps = {name: _map(h.transform(Xq), h.transform(Xdb), yq, ydb) for name, h in fitted.items()}
    assert maps["itq"] > maps["pcah"] + 0.05, maps
    for name in SUPERVISED:
        assert maps[name] > maps["lsh"] + 0.05, (name, maps)
    # the strongest supervised methods are far ahead on digits
    for name in ("ksh", "sdh", "itq-cca", "fasth"):
        assert maps[name] > 0.7, (name, maps)


# --------------------------------------------------------------------------- experiment runner
def test_experiment_run_grid_and_cli_on_digits(tmp_path, capsys):
    import json
    import warnings

    from hashrepro.baselines import experiment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the per-class split is scaled down on 1,797 digits
        rec = experiment.run("lsh", dataset="digits", bits=8, seed=0)
        assert rec["paper"] == "baselines" and rec["method"] == "lsh" and rec["complete"]
        assert rec["config"]["feature"] == "pixels" and rec["config"]["fit_on"] == "database"
        assert rec["protocol"]["ranking"] == "binary" and rec["protocol"]["name"] == "dnnh"
        assert 0 < rec["metrics"]["map"] <= 1 and rec["metrics"]["fit_time_s"] >= 0
        assert rec["command"].startswith("python -m hashrepro.baselines.experiment --dataset digits")
        assert experiment.main(["--dataset", "digits", "--bits", "8", "--methods", "itq-cca",
                                "--results-dir", str(tmp_path)]) == 0
        files = sorted(p.name for p in (tmp_path / "baselines").glob("*.json"))
        assert files == ["itq-cca_digits_8b_seed0_default.json"]
        sup = json.loads((tmp_path / "baselines" / files[0]).read_text())
        assert sup["config"]["fit_on"] == "labelled train" and sup["config"]["supervised"]
        # a second run skips complete records
        experiment.main(["--dataset", "digits", "--bits", "8", "--methods", "itq-cca", "--results-dir", str(tmp_path)])
        assert "skip itq-cca_digits_8b_seed0_default" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unsupervised methods only"):
        experiment.run("ksh", dataset="digits", bits=8, protocol="ddh")
    with pytest.raises(ValueError, match="unknown protocol"):
        experiment.run("lsh", dataset="digits", bits=8, protocol="nope")


@pytest.mark.shared
@pytest.mark.slow
def test_experiment_on_the_real_mnist_mirror():
    import os

    from hashrepro.baselines import experiment

    root = os.environ.get("HASHREPRO_DATA")
    if not root or not os.path.isdir(os.path.join(root, "MNIST")):
        pytest.skip("HASHREPRO_DATA with MNIST/ not available")
    rec = experiment.run("itq", dataset="mnist", bits=16, seed=0)
    p = rec["protocol"]
    assert (p["n_query"], p["n_train"], p["n_database"]) == (1000, 5000, 69000)
    assert 0.3 < rec["metrics"]["map"] < 0.6  # ITQ on MNIST pixels, 16 bits
