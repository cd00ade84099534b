"""MCH's base hashing model X chosen on a validation split of its training images (hashrepro.mch_select),
on the embedded digit mosaics with the real EfficientNet-Lite0 at 32 px (cache off: the smoke preset)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from hashrepro import cli
from hashrepro import convergence as C
from hashrepro import mch_select as S
from hashrepro import validation_select as V
from hashrepro.methods import mch as M
from hashrepro.methods import mch_train

PRE = dict(backbone="efficientnet_lite0", backbone_input_size=32)
GRID = {"base_lr": [1e-3, 1e-2]}


def _cfg(**kw):
    base = dict(dataset="mosaic-digits", base="dch", bits=8, progress=False, **PRE)
    base.update(kw)
    return M.Config.for_scale("smoke", **base)


def _vmaps(rec):
    return {k: v for k, v in rec["metrics"].items() if k.startswith(("validation_map[", "final_loss["))}


@pytest.fixture(scope="module")
def spied():
    """One 2-candidate selection, with every row X trains on and every row it codes recorded."""
    torch.set_num_threads(1)
    seen = {"train_rows": [], "coded": []}
    real = mch_train.train_base

    class Spy:
        def __init__(self, hasher):
            self.hasher = hasher

        def embed(self, rows, *a, **k):
            seen["coded"].append(np.asarray(rows).copy())
            return self.hasher.embed(rows, *a, **k)

    def train_base(cfg, state, x, y, *a, **k):
        seen["train_rows"].append((x.shape[0], np.asarray(y).copy()))
        hasher, info = real(cfg, state, x, y, *a, **k)
        return Spy(hasher), info

    mp = pytest.MonkeyPatch()
    mp.setattr(mch_train, "train_base", train_base)
    try:
        rec = V.select_on_validation("mch", _cfg(), GRID, n_val_per_class=2)
    finally:
        mp.undo()
    return rec, seen


def test_record_and_the_queries_are_never_used(spied):
    rec, seen = spied
    cfg = _cfg()
    val = S.MCHValidation(cfg, 2, None)  # the same split: convergence.validation_split of the recipe's
    fit, vq, vdb = (set(val.val[k].tolist()) for k in ("fit", "val_query", "val_database"))
    train, query, db = (set(a.tolist()) for a in (val.train_idx, val.query, val.database))
    assert fit and vq and not fit & vq and (fit | vq) <= train and vdb == fit  # MCH's database includes train
    assert not (fit | vq) & query and not (fit | vq) & (db - train)
    # X trained on the fit rows only; only validation rows were ever coded
    assert [n for n, _ in seen["train_rows"]] == [len(fit)] * 2
    np.testing.assert_array_equal(seen["train_rows"][0][1], val.Y[val.val["fit"]])
    coded = set(np.concatenate(seen["coded"]).tolist())
    assert coded <= fit | vq and not coded & query
    # the record
    assert rec["method"] == "dch-efficientnet_lite0" and rec["scale"] == "validation" and rec["paper"] == "mch"
    scores = [rec["metrics"][f"validation_map[base_lr={v:g}]"] for v in GRID["base_lr"]]
    best = int(np.argmax(scores))
    assert rec["chosen"] == {"base_lr": GRID["base_lr"][best]} and rec["metrics"]["chosen_index"] == best
    assert rec["selection"]["chosen_label"] == f"base_lr={GRID['base_lr'][best]:g}"
    assert [c["params"] for c in rec["selection"]["candidates"]] == [{"base_lr": v} for v in GRID["base_lr"]]
    p = rec["protocol"]
    assert "never used" in p["queries"] and "X alone" in p["trained"] and "no agent" in p["trained"]
    assert p["val_query_sha256_16"] == V._sha(val.val["val_query"]) and p["n_fit"] == len(fit)
    assert p["n_val_database"] == len(fit) and p["split"].startswith("multilabel_balanced")
    assert p["backbone"].startswith("efficientnet_lite0") and p["same_seed"]
    json.dumps(rec)


def test_same_seed_same_validation_maps(spied):
    again = V.select_on_validation("mch", _cfg(), GRID, n_val_per_class=2)
    assert _vmaps(again) == _vmaps(spied[0]) and again["chosen"] == spied[0]["chosen"]


def test_refused_and_unknown_fields_are_one_line_errors():
    cfg = _cfg()
    for field in ("sigma", "agent_lr", "bits", "n_train_per_class", "backbone", "seed"):
        with pytest.raises(ValueError) as e:
            V.candidates(cfg, {field: [1, 2]})
        msg = str(e.value)
        assert "\n" not in msg and f"{field!r}" in msg and "not a training hyperparameter of MCH's base model" in msg
        assert "finetune_lr_mult" in msg and "base_iters" in msg  # the valid ones are listed
    with pytest.raises(ValueError) as e:
        V.candidates(cfg, {"finetune_lr_mul": [0.1]})
    assert "\n" not in str(e.value) and "is not a field of hashrepro.methods.mch.Config" in str(e.value)
    with pytest.raises(ValueError, match="KSH is a kernel map"):  # a bad candidate: Config.validate, one line
        V.select_on_validation("mch", _cfg(base="ksh"), {"finetune": ["none", "last_block"]})
    with pytest.raises(ValueError, match=r"base_iters\); need >= 1"):
        V.select_on_validation("mch", _cfg(), {"base_iters": [0, 5]})
    assert set(V.tunable_fields(cfg)) == set(S.TUNABLE)


def test_multilabel_validation_split():
    rng = np.random.default_rng(0)
    Y = (rng.random((200, 4)) < 0.4).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    train = np.arange(0, 200, 2)
    v = C.validation_split(Y, train, 3, seed=1, n_val_database_per_class=2)
    fit, vq, vdb = (set(v[k].tolist()) for k in ("fit", "val_query", "val_database"))
    assert len(vq) == 12 and len(vdb) == 8 and not fit & vq and not fit & vdb and not vq & vdb
    assert fit | vq | vdb == set(train.tolist())
    assert all(Y[v["val_query"], c].sum() >= 3 for c in range(4))
    with pytest.raises(ValueError, match="fewer than"):
        C.validation_split(Y, train, 40)


def test_cli_finetune_lr_mult(capsys, tmp_path):
    rc = cli.main(["select", "mch", "--scale", "smoke", "--dataset", "mosaic-digits", "--bits", "8", "-p", "base",
                   "dch", "-p", "backbone", "efficientnet_lite0", "-p", "backbone_input_size", "32", "-p", "finetune",
                   "last_block", "-p", "base_iters", "4", "--n-val-per-class", "2",
                   "--grid", "finetune_lr_mult=0.03,0.3", "--results-dir", str(tmp_path), "--allow-dirty",
                   "--no-progress"])
    out = capsys.readouterr().out
    # -p base_iters 4 is not the smoke preset's 10: it names the base configuration (mch.tuning_tag)
    name = ("dch-base-iters-4-lastblock-efficientnet-lite0_mosaic-digits_8b_seed0_validation_grid-finetune-lr-mult-"
            "0.03-0.3_n-val-per-class-2_schedule-smoke")
    assert rc == 0 and "chosen: finetune_lr_mult=" in out
    rec = json.loads((tmp_path / f"{name}.json").read_text())
    assert rec["command"].startswith("hashrepro select mch") and rec["complete"] is True
    assert set(rec["chosen"]) == {"finetune_lr_mult"} and "validation_map[finetune_lr_mult=0.3]" in rec["metrics"]
    assert rec["config"]["recipe"]["finetune"] == "last_block" and rec["method"] == "dch-base_iters-4-lastblock-efficientnet_lite0"
    assert all("reencode_time_s" in c for c in rec["selection"]["candidates"])


@pytest.mark.parametrize("args,match", [
    (["--grid", "sigma=0.3,0.5"], "grid field 'sigma' is not a training hyperparameter"),
    (["--grid", "base_lr=0.01", "-p", "finetune_lr_mul", "0.1"], r"unknown Config field\(s\) \['finetune_lr_mul'\]"),
])
def test_cli_bad_input_exit_2(args, match, capsys, tmp_path):
    rc = cli.main(["select", "mch", "--scale", "smoke", "--dataset", "mosaic-digits", "--results-dir", str(tmp_path),
                   *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and re.search(match, err), err
    assert not list(tmp_path.glob("*.json"))


def test_a_chosen_value_names_the_runs():
    pre = dict(dataset="mosaic-cifar10", base="dch", backbone="efficientnet_lite0", finetune="last_block")
    assert M.record_method(M.Config.for_scale("default", **pre)) == "dch-lastblock-efficientnet_lite0"
    chosen = M.Config.for_scale("default", finetune_lr_mult=0.3, **pre)
    assert M.record_method(chosen) == "dch-finetune_lr_mult-0.3-lastblock-efficientnet_lite0"
    assert M.record_method(chosen, "mch-dch") == "mch-dch-finetune_lr_mult-0.3-lastblock-efficientnet_lite0"
    # the regime's own preset is not a deviation (base_iters 2,000 on the backbone, 500 from scratch)
    assert M.tuning_tag(M.Config.for_scale("default", backbone="efficientnet_lite0")) == ""
    assert M.tuning_tag(M.Config.for_scale("default", base_iters=2000)) == "base_iters-2000"


def test_base_weight_decay_is_decoupled_names_the_runs_and_rejects_negatives():
    pre = dict(dataset="mosaic-cifar10", base="dch", backbone="efficientnet_lite0", finetune="last_block")
    decayed = M.Config.for_scale("default", base_weight_decay=0.01, **pre)
    assert M.record_method(decayed) == "dch-base_weight_decay-0.01-lastblock-efficientnet_lite0"
    assert M.record_method(M.Config.for_scale("default", base_weight_decay=None, **pre)) == \
        "dch-lastblock-efficientnet_lite0"                                 # None: the preset (Adam, no decay)
    with pytest.raises(ValueError, match="base_weight_decay must be >= 0"):
        M.Config.for_scale("default", base_weight_decay=-1e-3, **pre)
    assert "base_weight_decay" in S.TUNABLE
    # 0 keeps the preset's Adam; > 0 shrinks a weight with zero gradient by lr x wd per step (decoupled)
    w = torch.nn.Parameter(torch.ones(3))
    assert type(mch_train.base_optimizer([{"params": [w], "lr": 0.1}])) is torch.optim.Adam
    opt = mch_train.base_optimizer([{"params": [w], "lr": 0.1}], 0.5)
    w.grad = torch.zeros(3)
    opt.step()
    assert torch.allclose(w.detach(), torch.full((3,), 1 - 0.1 * 0.5))
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        mch_train.base_optimizer([{"params": [w], "lr": 0.1}], -1.0)
