"""The recipe skeleton (hashrepro.recipe): the Config base, the run set-up / wrap-up, shared metrics."""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from hashrepro import recipe
from hashrepro.recipe import RecipeConfig, bit_imbalance, bit_mean, final_loss, loss_curve, read_loss_curve


@dataclass
class ToyConfig(RecipeConfig):
    dataset: str = "digits"
    bits: int = 8
    seed: int = 0
    scale: str = "default"
    backbone: str = "scratch"
    iterations: int = 100
    lr: float = 0.1
    ks: tuple = (1, 2)
    num_threads: int | None = 1
    device: str = "cpu"

    PRESETS = {"smoke": {"iterations": 3}, "default": {}, "paper": {"iterations": 1000, "lr": 0.01}}

    @classmethod
    def presets(cls, scale, overrides):
        base = dict(cls.PRESETS[scale])
        if overrides.get("backbone", cls.backbone) != "scratch":
            base["lr"] = 0.5
        return base

    def validate(self):
        self.ks = tuple(int(k) for k in self.ks)
        self.check_choice("scale", self.SCALES)
        self.check_choice("backbone", ("scratch", "pretrained"))
        if self.iterations < 0:
            self.invalid("iterations", "iterations must be >= 0")

    def derived(self):
        return {"steps": self.iterations * 2}


def test_presets_are_data_and_overrides_win():
    assert ToyConfig.for_scale("smoke").iterations == 3
    assert ToyConfig.for_scale("paper").lr == 0.01 and ToyConfig.for_scale("paper").scale == "paper"
    assert ToyConfig.for_scale("smoke", iterations=7).iterations == 7
    assert ToyConfig.for_scale("default", backbone="pretrained").lr == 0.5        # preset hook on overrides
    assert ToyConfig.for_scale("default", backbone="pretrained", lr=0.2).lr == 0.2
    c = ToyConfig.for_scale("smoke").replace(bits=16)
    assert c.bits == 16 and c.iterations == 3
    d = c.to_dict()
    assert d["ks"] == [1, 2] and d["steps"] == 6 and d["scale"] == "smoke"


def test_unknown_scale_and_field_are_one_line_errors():
    with pytest.raises(ValueError, match=r"scale must be one of \('smoke', 'default', 'paper'\), got 'huge'") as e:
        ToyConfig.for_scale("huge")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"unknown Config field\(s\) \['lrate'\]; valid: dataset, bits") as e:
        ToyConfig.for_scale("smoke", lrate=0.1)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"unknown Config field\(s\) \['lrate'\]"):
        ToyConfig().replace(lrate=0.1)
    with pytest.raises(ValueError, match=r"Config\.iterations=-1 is invalid; iterations must be >= 0"):
        ToyConfig(iterations=-1)
    with pytest.raises(ValueError, match=r"Config\.backbone='resnet' is invalid; backbone must be one of"):
        ToyConfig.for_scale("smoke", backbone="resnet")


def test_resolve_config():
    assert recipe.resolve_config(ToyConfig, None, {"scale": "smoke"}).iterations == 3   # the scale's presets
    c = ToyConfig.for_scale("smoke")
    assert recipe.resolve_config(ToyConfig, c, {"bits": 4}).bits == 4
    with pytest.raises(ValueError, match="Config.for_scale"):
        recipe.resolve_config(ToyConfig, c, {"scale": "paper"})
    with pytest.raises(ValueError, match="cfg must be a"):
        recipe.resolve_config(ToyConfig, {"bits": 4})


def test_threads_restored_after_a_run_that_raises():
    before = torch.get_num_threads()
    target = 2 if before != 2 else 1
    with pytest.raises(RuntimeError, match="boom"):
        with recipe.recipe_run(ToyConfig, None, {"scale": "smoke", "num_threads": target}) as r:
            assert torch.get_num_threads() == target and r.cfg.iterations == 3 and r.device.type == "cpu"
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_run_seeds_and_records():
    with recipe.recipe_run(ToyConfig, None, {"scale": "smoke", "seed": 3}) as r:
        a = torch.rand(3, generator=r.generator)
        rec = r.record(paper="toy", method="toy-m", protocol={"split": "x"}, metrics={"map": 0.5}, curves=None,
                       command="cmd")
    assert torch.equal(a, torch.rand(3, generator=torch.Generator().manual_seed(3)))
    assert rec["command"] == "cmd" and rec["bits"] == 8 and rec["seed"] == 3 and rec["scale"] == "smoke"
    assert rec["git_read_at"] == "start" and rec["config"]["steps"] == 6 and rec["wall_time_s"] >= 0


def test_companion_records_saved_one_file_each(tmp_path):
    import json

    with recipe.recipe_run(ToyConfig, None, {"scale": "smoke"}) as r:
        main = r.record(paper="toy", method="toy-m", protocol={}, metrics={"map": 0.5}, curves=None, command="c")
        comps = [r.record(paper="toy", method=m, protocol={}, metrics={"map": 0.1}, curves=None, command="c",
                          wall_time_s=1.5) for m in ("base", "lsh")]
    assert comps[0]["wall_time_s"] == 1.5
    rec = recipe.with_companions(main, comps)
    assert recipe.companions(rec) == comps and recipe.companions({"paper": "toy"}) == []
    paths = recipe.save_with_companions(rec, tmp_path, "mine")
    assert [p.name for p in paths] == ["mine.json", "base_digits_8b_seed0_smoke.json", "lsh_digits_8b_seed0_smoke.json"]
    saved = json.loads(paths[0].read_text())
    assert recipe.COMPANIONS_KEY not in saved and saved["method"] == "toy-m"
    assert recipe.COMPANIONS_KEY in rec                                  # the caller's record is left as it is
    assert json.loads(paths[2].read_text())["method"] == "lsh"
    with pytest.raises(ValueError, match="a companion must be a run record"):
        recipe.with_companions(main, [{"map": 1}])


def test_shared_metrics_and_loss_curve():
    assert final_loss([5.0, 1.0, 2.0, 3.0], last=2) == 2.5
    assert final_loss([1.0], last=50) == 1.0 and np.isnan(final_loss([], last=20))
    with pytest.raises(ValueError, match="last"):
        final_loss([1.0], last=0)
    codes = np.array([[1, 0], [1, 0], [1, 1], [1, 0]], np.uint8)
    assert bit_mean(codes) == pytest.approx(5 / 8)                    # DNNH's: the mean bit, ideal 0.5
    assert bit_imbalance(codes) == pytest.approx((0.5 + 0.25) / 2)    # DDH's: mean |p - 0.5|, ideal 0
    c = loss_curve(list(range(10)), n_points=4)                       # windows of 3: 0-2, 3-5, 6-8, rest
    assert c == {"iteration": [3, 6, 9, 10], "loss": [1.0, 4.0, 7.0, 9.0]}
    assert loss_curve([]) == {"iteration": [], "loss": []}
    assert read_loss_curve({"curves": {"train_loss": c}}) == c
    legacy = {"iteration": [0, 2], "loss": [1.0, 0.5]}                 # older DRSCH records
    assert read_loss_curve({"curves": {"loss": legacy}}) == legacy
    assert read_loss_curve({"curves": {"base_loss": legacy}}) == legacy            # older MCH records
    assert read_loss_curve({"curves": {}}) is None


@pytest.mark.parametrize("module", ["dnnh", "cnnh", "drsch", "ddh", "mch"])
def test_recipes_share_one_run_signature_and_base(module):
    import importlib

    mod = importlib.import_module(f"hashrepro.methods.{module}")
    params = inspect.signature(mod.run).parameters
    assert list(params)[:2] == ["cfg", "command"]
    assert params["cfg"].default is None
    assert params["command"].kind is inspect.Parameter.KEYWORD_ONLY and params["command"].default is None
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    assert issubclass(mod.Config, RecipeConfig)
    smoke = mod.Config.for_scale("smoke")
    assert smoke.scale == "smoke"
    with pytest.raises(ValueError, match=r"unknown Config field"):
        mod.Config.for_scale("smoke", no_such_field=1)
    with pytest.raises(ValueError, match="scale must be one of"):
        mod.Config.for_scale("huge")
    with pytest.raises(TypeError):
        mod.run(smoke, "a command given positionally")


def test_ddh_run_scale_override_uses_the_scale_presets(monkeypatch):
    """``ddh.run(scale="smoke")`` builds ``Config.for_scale("smoke")`` (it used to replace the scale
    field of the *default* config, keeping the default presets)."""
    from hashrepro.methods import ddh

    seen = {}

    def fake(r, command):
        seen["cfg"], seen["command"] = r.cfg, command
        return {}

    monkeypatch.setattr(ddh, "_run_ddh", fake)
    ddh.run(scale="smoke", dataset="digits", command="c")
    assert seen["cfg"] == ddh.Config.for_scale("smoke", dataset="digits") and seen["command"] == "c"
    assert seen["cfg"].iterations == 10
