"""Hyperparameters chosen on a validation split of the training images (hashrepro.validation_select),
on the embedded digits; the pretrained regime reads the cached EfficientNet-Lite0 features at 32 px."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hashrepro import cli
from hashrepro import convergence as C
from hashrepro import validation_select as V

PRE = dict(backbone="efficientnet_lite0", backbone_input_size=32)


def _cfg(paper="dnnh", **kw):
    base = dict(dataset="digits", device="cpu", iterations=20, bits=8 if paper == "drsch" else 12)
    base.update(kw)
    return C.default_config(paper, "smoke", **base)


@pytest.mark.parametrize("paper,backbone", [("dnnh", "efficientnet_lite0"), ("drsch", "efficientnet_lite0"),
                                            ("dnnh", "scratch")])
def test_queries_never_enter_training_or_validation(paper, backbone):
    extra = PRE if backbone != "scratch" else {}
    recipe = C._Recipe(paper, _cfg(paper, **extra), n_val_per_class=4, n_val_database_per_class=None)
    val, query = recipe.val, set(recipe.query.tolist())
    fit, vq, vdb = (set(val[k].tolist()) for k in ("fit", "val_query", "val_database"))
    assert fit and vq and not (fit | vq | vdb) & query and not fit & vq
    assert (fit | vq) <= set(recipe.train_idx.tolist()) and vdb == fit
    assert recipe.x_fit.shape[0] == len(fit) == len(recipe.y_fit)  # only the fit rows train
    if backbone != "scratch":
        assert recipe.x_fit.ndim == 2 and recipe.x_fit.shape[1] == 1280  # pooled backbone features
        if paper == "dnnh":
            np.testing.assert_array_equal(recipe.x_fit.numpy(), np.asarray(recipe.feats[val["fit"]], np.float32))


def test_select_record_repeatable_and_chosen_is_the_argmax():
    cfg = _cfg(**PRE)
    grid = {"lr": [1e-4, 0.03, 0.3]}
    rec = V.select_on_validation("dnnh", cfg, grid, n_val_per_class=4)
    again = V.select_on_validation("dnnh", cfg, grid, n_val_per_class=4)
    vm = lambda r: {k: v for k, v in r["metrics"].items() if k.startswith(("validation_map[", "final_loss["))}  # noqa: E731
    assert vm(rec) == vm(again) and rec["chosen"] == again["chosen"]  # same seed, same numbers
    scores = [rec["metrics"][f"validation_map[lr={v:g}]"] for v in grid["lr"]]
    assert len(set(scores)) > 1
    best = int(np.argmax(scores))
    assert rec["chosen"] == {"lr": grid["lr"][best]} and rec["metrics"]["chosen_index"] == best
    assert rec["metrics"]["chosen_validation_map"] == max(scores)
    assert rec["method"] == "dnnh-dem-efficientnet_lite0" and rec["scale"] == "validation"
    p = rec["protocol"]
    val = C._Recipe("dnnh", cfg, 4, None).val  # the same split: convergence.validation_split
    assert p["val_query_sha256_16"] == V._sha(val["val_query"]) and p["n_fit"] == len(val["fit"])
    assert "never used" in p["queries"] and p["backbone"].startswith("efficientnet_lite0")
    assert all("active_triplets" in c for c in rec["selection"]["candidates"])
    json.dumps(rec)
    other = V.select_on_validation("dnnh", cfg.replace(seed=1), {"lr": [0.03]}, n_val_per_class=4)
    assert other["protocol"]["val_query_sha256_16"] != p["val_query_sha256_16"]


def test_a_tie_goes_to_the_current_value():
    # 20 smoke iterations: every triplet stays active, so the margin does not change the gradient
    # (d/dθ of d⁺ − d⁻ + m is free of m) and all candidates tie; the config's margin 1 wins
    rec = V.select_on_validation("dnnh", _cfg(**PRE), {"margin": [4, 1, 2]}, n_val_per_class=4)
    vals = {rec["metrics"][f"validation_map[margin={m}]"] for m in (4, 1, 2)}
    assert len(vals) == 1 and rec["chosen"] == {"margin": 1} and rec["metrics"]["chosen_index"] == 1
    assert rec["metrics"]["gain_over_current"] == 0


def test_drsch_scratch_margin_grid():
    rec = V.select_on_validation("drsch", _cfg("drsch", iterations=6), {"margin0": [2.0, 5.0]}, n_val_per_class=4)
    assert set(rec["chosen"]) == {"margin0"} and rec["method"] == "drsch"
    assert np.isfinite(rec["metrics"]["validation_map[margin0=2]"])


def test_bad_grids_are_one_line_errors():
    cfg = _cfg()
    with pytest.raises(ValueError) as e:
        V.candidates(cfg, {"margn": [1, 2]})
    msg = str(e.value)
    assert "\n" not in msg and "'margn'" in msg and "valid:" in msg and "margin" in msg and "lr" in msg
    with pytest.raises(ValueError, match="is fixed by the validation split"):
        V.candidates(cfg, {"seed": [0, 1]})
    with pytest.raises(ValueError, match="the grid is empty"):
        V.candidates(cfg, {})
    with pytest.raises(ValueError, match="non-empty list"):
        V.candidates(cfg, {"margin": []})
    with pytest.raises(ValueError, match="repeats a value"):
        V.candidates(cfg, {"margin": [1, 1]})
    with pytest.raises(ValueError, match=r"Config\.lr=-1"):
        V.select_on_validation("dnnh", cfg, {"lr": [-1]})
    assert V.candidates(cfg, {"margin": [1, 2], "lr": [0.1]}) == [{"margin": 1, "lr": 0.1}, {"margin": 2, "lr": 0.1}]
    assert V.record_name("dnnh", _cfg(**PRE), {"margin": [1, 2, 4, 8]}) == \
        "dnnh-dem-efficientnet-lite0_digits_12b_seed0_validation_grid-margin-1-2-4-8_schedule-smoke"
    # an empty value (no hidden layer) keeps a place in the record name and the candidate label
    from hashrepro.methods import drsch
    dcfg = drsch.Config.for_scale("smoke", backbone="efficientnet_lite0", dataset="digits", bits=12)
    assert V.record_name("drsch", dcfg, {"head_hidden": [[], [512]]}).endswith(
        "_validation_grid-head-hidden-none-512_schedule-smoke")
    assert V.candidate_label({"head_hidden": ()}) == "head_hidden=none"
    # a grid on top of an earlier choice is named by that configuration (a chain of selections)
    assert V.record_name("drsch", dcfg.replace(head_hidden=(64,)), {"slope_factor": [1.1, 1.0]}).startswith(
        "drsch-head-hidden-64-efficientnet-lite0_digits_12b_seed0_validation_grid-slope-factor-1.1-1.0")
    assert V.base_method("dnnh", _cfg(**PRE).replace(margin=4.0)) == "dnnh-dem-margin4-efficientnet_lite0"


@pytest.mark.parametrize("args,match", [
    (["--grid", "margn=1,2"], "grid field 'margn' is not a field"),
    (["--grid", "margin="], "has no values"),
    (["--grid", "margin"], "--grid takes FIELD=V1,V2"),
    (["--grid", "margin=1", "--grid", "margin=2"], "given twice"),
    (["--grid", "margin=1", "-p", "varient", "fc"], r"unknown Config field\(s\) \['varient'\]"),
])
def test_cli_bad_input_exit_2(args, match, capsys, tmp_path):
    rc = cli.main(["select", "dnnh", "--scale", "smoke", "--dataset", "digits", "--results-dir", str(tmp_path),
                   *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("hashrepro: error: ")
    assert re.search(match, err), err
    assert not list(tmp_path.glob("*.json"))


def test_cli_writes_the_record(capsys, tmp_path):
    rc = cli.main(["select", "dnnh", "--scale", "smoke", "--dataset", "digits", "--bits", "12", "-p", "backbone",
                   "efficientnet_lite0", "-p", "backbone_input_size", "32", "-p", "iterations", "10",
                   "--n-val-per-class", "4", "--grid", "margin=1,2", "--results-dir", str(tmp_path),
                   "--allow-dirty", "--no-progress"])
    out = capsys.readouterr().out
    name = "dnnh-dem-efficientnet-lite0_digits_12b_seed0_validation_grid-margin-1-2_n-val-per-class-4_schedule-smoke"
    assert rc == 0 and "chosen: margin=" in out
    rec = json.loads((tmp_path / f"{name}.json").read_text())
    assert rec["command"].startswith("hashrepro select dnnh") and rec["complete"] is True
    assert set(rec["chosen"]) == {"margin"} and "validation_map[margin=2]" in rec["metrics"]


def test_held_out_validation_database_is_never_trained_on(capsys, tmp_path):
    """DRSCH's test database excludes the training images: --n-val-database-per-class mirrors it."""
    rc = cli.main(["select", "drsch", "--scale", "smoke", "--dataset", "digits", "--bits", "8", "-p", "backbone",
                   "efficientnet_lite0", "-p", "backbone_input_size", "32", "-p", "iterations", "10",
                   "--n-val-per-class", "3", "--n-val-database-per-class", "5", "--grid", "head_hidden=[],[16]",
                   "--results-dir", str(tmp_path), "--allow-dirty", "--no-progress"])
    capsys.readouterr()
    name = ("drsch-efficientnet-lite0_digits_8b_seed0_validation_grid-head-hidden-none-16_n-val-database-per-class-5_"
            "n-val-per-class-3_"
            "schedule-smoke")
    assert rc == 0
    rec = json.loads((tmp_path / f"{name}.json").read_text())
    p = rec["protocol"]
    assert "held out" in p["validation_database"] and rec["config"]["n_val_database_per_class"] == 5
    recipe = C._Recipe("drsch", _cfg("drsch", **PRE), 3, 5)
    fit, vq, vdb = (set(recipe.val[k].tolist()) for k in ("fit", "val_query", "val_database"))
    n_classes = len(np.unique(recipe.labels[recipe.train_idx]))
    assert len(vdb) == 5 * n_classes and not vdb & fit and not vdb & vq
    assert p["n_fit"] == len(fit) and p["n_val_database"] == len(vdb)
    assert "validation_map[head_hidden=none]" in rec["metrics"]
