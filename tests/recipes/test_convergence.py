"""Convergence curves of the from-scratch rows (hashrepro.convergence), on the embedded digits."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from hashrepro import convergence as C
from hashrepro.train import Batches, batches


def _smoke(paper, **kw):
    base = dict(dataset="digits", device="cpu", iterations=4)
    base.update(bits=8 if paper == "drsch" else 12)
    base.update(kw)
    return C.default_config(paper, "smoke", **base)


# ---------------------------------------------------------------------- the validation split
@pytest.mark.parametrize("paper", ["dnnh", "drsch"])
def test_validation_split_is_carved_from_training_images_only(paper):
    recipe = C._Recipe(paper, _smoke(paper), n_val_per_class=4, n_val_database_per_class=None)
    val, train, query = recipe.val, set(recipe.train_idx.tolist()), set(recipe.query.tolist())
    vq, fit = set(val["val_query"].tolist()), set(val["fit"].tolist())
    assert vq and vq <= train and fit <= train
    assert not vq & query and not fit & query and not vq & fit  # never the queries; never a gradient step
    assert set(val["val_database"].tolist()) == fit
    assert len(recipe.y_fit) == len(fit) == recipe.x_fit.shape[0]  # only the fit rows are trained on
    assert np.bincount(recipe.labels[val["val_query"]]).tolist() == [4] * 10

    sep = C.validation_split(recipe.labels, recipe.train_idx, 4, seed=0, n_val_database_per_class=3)
    vdb = set(sep["val_database"].tolist())
    assert len(vdb) == 30 and not vdb & set(sep["fit"].tolist()) and not vdb & set(sep["val_query"].tolist())


def test_validation_split_bad_input():
    labels = np.repeat(np.arange(3), 5)
    with pytest.raises(ValueError, match="would leave none to train on"):
        C.validation_split(labels, np.arange(15), n_val_per_class=5)
    with pytest.raises(ValueError, match="n_val_per_class must be a positive integer"):
        C.validation_split(labels, np.arange(15), n_val_per_class=0)


# ---------------------------------------------------------------------- schedules
def test_extend_schedule_scales_every_schedule_length():
    d = C.default_config("drsch")
    x = C.extend_schedule("drsch", d, 10)
    assert (x.iterations, x.lr_step, x.slope_every, x.margin_every) == (3000, 1000, 100, 100)
    n = C.default_config("dnnh")
    y = C.extend_schedule("dnnh", n, 10)
    assert y.iterations == 12000 and y.epsilon_every_effective == 10 * n.epsilon_every_effective == 2400
    assert C.base_lr_at("dnnh", y, 8399) == pytest.approx(0.03) and C.base_lr_at("dnnh", y, 8400) == pytest.approx(3e-3)
    assert C.base_lr_at("drsch", x, 2999) == pytest.approx(d.lr / 9)
    assert C.eval_iterations(300, 10) == [30, 75, 150, 300, 600, 900, 1500, 2100, 3000]


def test_batches_resumable_and_same_as_train_batches():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    ref = batches(23, 5, g1)
    b = Batches(23, 5, g2)
    seq = [next(b) for _ in range(7)]
    assert all(torch.equal(next(ref), s) for s in seq)
    state, gstate = b.state_dict(), g2.get_state()
    tail = [next(b) for _ in range(9)]
    g3 = torch.Generator()
    g3.set_state(gstate)
    c = Batches(23, 5, g3)
    c.load_state_dict(state)
    assert all(torch.equal(next(c), t) for t in tail)


# ---------------------------------------------------------------------- verdicts
def test_verdict_rule_on_hand_made_curves():
    rising = {"iterations": [100, 1000, 5000, 10000], "validation_map": [0.1, 0.2, 0.30, 0.35]}
    flat = {"iterations": [100, 1000, 5000, 10000], "validation_map": [0.1, 0.2, 0.30, 0.309]}
    assert C.convergence_verdict(rising) == "still rising"
    assert C.convergence_verdict(flat) == "converged"
    # the latest point at or below half the last one is compared (5000, not 1000)
    late = {"iterations": [1000, 4000, 5000, 10000], "validation_map": [0.0, 0.0, 0.5, 0.505]}
    assert C.convergence_verdict(late) == "converged"
    assert C.convergence_verdict({"iterations": [5, 10], "validation_map": [0.5, 0.5101]}) == "still rising"
    assert C.convergence_verdict({"iterations": [5, 10], "validation_map": [0.5, 0.45]}) == "converged"
    with pytest.raises(ValueError, match="no point at or below half"):
        C.convergence_verdict({"iterations": [6, 10], "validation_map": [0.1, 0.2]})
    rec = {"metrics": {"finished": 1}, "curves": {"validation_map": rising,
                                                   "default_schedule": {"iterations": [1000], "validation_map": [0.3]}}}
    assert C.default_schedule_verdict(rec) == "still rising"
    rec["curves"]["default_schedule"]["validation_map"] = [0.345]
    assert C.default_schedule_verdict(rec) == "converged"
    rec["metrics"] = {"finished": 0, "iterations_done": 5000, "iterations_planned": 10000}
    with pytest.raises(ValueError, match="cannot say yet"):  # partial, no point 0.01 above the default yet
        C.default_schedule_verdict(rec)
    rec["curves"]["validation_map"] = {"iterations": [100, 1000], "validation_map": [0.30, 0.36]}
    assert C.default_schedule_verdict(rec) == "still rising"  # partial, but a longer schedule already gained 0.015


# ---------------------------------------------------------------------- resumable
class _Killed(Exception):
    pass


@pytest.mark.parametrize("paper", ["dnnh", "drsch"])
def test_kill_and_resume_gives_the_same_curve(paper, tmp_path, monkeypatch):
    cfg = _smoke(paper)
    kw = dict(max_multiple=3, eval_at=[2, 4, 8, 12], n_val_per_class=4, anchor=True, progress=False)
    whole = C.convergence_curve(paper, cfg, checkpoint_dir=tmp_path / "a", **kw)
    assert whole["metrics"]["finished"] == 1 and whole["curves"]["validation_map"]["iterations"] == [2, 4, 8, 12]

    original = C._Recipe.validation_map
    calls = []

    def killing(self, model):
        calls.append(1)
        if len(calls) == 4:  # anchor (1), then 2 and 4 of the long run; killed while evaluating at 8
            raise _Killed
        return original(self, model)

    monkeypatch.setattr(C._Recipe, "validation_map", killing)
    path = tmp_path / "rec.json"
    with pytest.raises(_Killed):
        C.convergence_curve(paper, cfg, checkpoint_dir=tmp_path / "b", record_path=path, **kw)
    partial = json.loads(path.read_text())  # the points already computed are on disk, and say how far they got
    assert partial["metrics"]["finished"] == 0 and partial["metrics"]["iterations_done"] == 4
    assert partial["convergence"]["status"].startswith("partial: 4 of 12 iterations")

    calls.clear()
    monkeypatch.setattr(C._Recipe, "validation_map", lambda self, m: (calls.append(1), original(self, m))[1])
    resumed = C.convergence_curve(paper, cfg, checkpoint_dir=tmp_path / "b", record_path=path, **kw)
    assert len(calls) == 2  # the anchor and the points at 2, 4 came from the checkpoints; only 8 and 12 ran
    # the same numbers up to the CPU kernels' floating-point noise (two identical runs of the NIN net
    # in one process can differ by ~1e-7 in the loss)
    for key in ("validation_map", "default_schedule"):
        assert resumed["curves"][key]["iterations"] == whole["curves"][key]["iterations"]
        np.testing.assert_allclose(resumed["curves"][key]["validation_map"], whole["curves"][key]["validation_map"],
                                   atol=1e-6)
    np.testing.assert_allclose(resumed["curves"]["train_loss"]["loss"], whole["curves"]["train_loss"]["loss"],
                               rtol=1e-4)
    assert json.loads(path.read_text())["metrics"]["finished"] == 1

    with pytest.raises(ValueError, match="holds a run of another configuration"):
        C.convergence_curve(paper, cfg, checkpoint_dir=tmp_path / "b", **{**kw, "max_multiple": 2, "eval_at": [2, 8]})


def test_convergence_record_and_plot(tmp_path):
    rec = C.convergence_curve("drsch", _smoke("drsch"), max_multiple=2, eval_at=[2, 4, 8], n_val_per_class=4,
                              progress=False, record_path=tmp_path / "r.json")
    assert rec["scale"] == "convergence" and rec["paper"] == "drsch" and rec["git_commit"]
    assert rec["protocol"]["n_val_query"] == 40 and rec["convergence"]["verdict"] in ("converged", "still rising")
    assert rec["convergence"]["default_schedule_verdict"] in ("converged", "still rising")
    assert set(rec["curves"]["validation_map"]) >= {"iterations", "validation_map", "lr", "multiple"}
    from hashrepro.plots.convergence import convergence_table, plot_convergence

    ax = plot_convergence(C.load_curve_record(tmp_path / "r.json"))
    assert ax.get_xscale() == "log" and len(ax.lines) >= 3  # curve, default-length line, anchor
    t = convergence_table([rec])
    assert t.loc[0, "1x"] == rec["curves"]["validation_map"]["validation_map"][1]
    assert np.isnan(t.loc[0, "5x"])
    with pytest.raises(ValueError, match="not a convergence record"):
        plot_convergence([{"curves": {}}])


# ---------------------------------------------------------------------- the CLI
def test_cli_refuses_a_dirty_tree(tmp_path, monkeypatch, capsys):
    from hashrepro import cli

    root = tmp_path / "repo"
    (root / "hashrepro").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'toy'\n")
    git = lambda *a: subprocess.run(["git", "-C", str(root), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", "pyproject.toml")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "toy")
    (root / "pyproject.toml").write_text("[project]\nname = 'toy, edited'\n")
    monkeypatch.setenv("HASHREPRO_ROOT", str(root))
    ran = []
    monkeypatch.setattr(C, "convergence_curve", lambda *a, **k: ran.append(1))
    rc = cli.main(["convergence", "drsch", "--scale", "smoke", "--dataset", "digits",
                   "--results-dir", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert rc == 2 and not ran and err.count("\n") == 1
    assert "uncommitted changes" in err and "--allow-dirty" in err and "pyproject.toml" in err
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").glob("*.json"))
