"""hashrepro.paper_grid: the Table-2 grid of DNNH and DRSCH as one command (issue 15), and the
host-synchronisation-free paths of the training loop it relies on on a GPU (tested on the CPU)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hashrepro import paper_grid as pg
from hashrepro.cli import main


def _smoke(paper="dnnh", variant="fc", bits=12, seed=0):
    return pg.GridConfig(paper, variant, bits, seed, "scratch", "digits", "smoke")


# ---------------------------------------------------------------- the grid
OLD_VARIANTS = ("dem", "fc", "two-subnets", "dsch", "drsch", "bs-drsch")  # the grid before CNNH* and DSRH


def test_grid_is_exactly_table2_of_both_chapters():
    grid = pg.paper_grid()
    expected = set()
    for backbone in ("scratch", "efficientnet_lite0"):
        for seed in (0, 1, 2):
            for v in ("dem", "fc", "two-subnets", "cnnh-star"):
                for b in (12, 24, 32, 48):
                    expected.add(("dnnh", v, b, seed, backbone))
            for v in ("dsch", "drsch", "dsrh"):
                for b in (12, 24, 32, 48):
                    expected.add(("drsch", v, b, seed, backbone))
            expected.add(("drsch", "bs-drsch", 64, seed, backbone))
    got = [(g.paper, g.variant, g.bits, g.seed, g.backbone) for g in grid]
    assert len(got) == len(set(got)) == 174 and set(got) == expected
    assert all(g.dataset == "cifar10" and g.scale == "paper" for g in grid)
    names = [g.run_name() for g in grid]
    assert len(set(names)) == len(names)  # one record file per configuration
    # the comparison methods: 2 x 4 lengths x 3 seeds x 2 regimes; the 126 runs before them unchanged, in order
    assert len(pg.paper_grid(variants=["cnnh-star", "dsrh"])) == 48
    old = pg.paper_grid(variants=OLD_VARIANTS)
    assert len(old) == 126 and old == [g for g in grid if g.variant in OLD_VARIANTS]


def test_run_names_follow_the_sweep_and_paper_schedules():
    assert pg.GridConfig("dnnh", "dem", 48, 0).run_name() == "dnnh_cifar10_48b_seed0_paper"
    assert pg.GridConfig("dnnh", "fc", 12, 2).run_name() == "dnnh_cifar10_12b_seed2_paper_variant-fc"
    assert pg.GridConfig("drsch", "bs-drsch", 64, 1, "efficientnet_lite0").run_name() == \
        "drsch_cifar10_64b_seed1_paper_backbone-efficientnet_lite0_variant-bs-drsch"
    assert pg.GridConfig("drsch", "drsch", 32, 0).run_name(8000) == \
        "drsch_cifar10_32b_seed0_paper_iterations-8000_variant-drsch"
    assert pg.paper_iterations(pg.GridConfig("dnnh", "dem", 48, 0)) == 100_000
    assert pg.paper_iterations(pg.GridConfig("drsch", "dsch", 12, 0)) == 800_000


@pytest.mark.parametrize("backbone", ["scratch", "efficientnet_lite0"])
@pytest.mark.parametrize("iterations", [None, 768])
def test_comparison_methods_are_named_as_the_sweep_names_them(backbone, iterations):
    """CNNH*'s record is ``hashrepro sweep dnnh -p method cnnh-star``'s, DSRH's ``sweep drsch -p variant dsrh``'s."""
    from hashrepro.sweep import build_grid

    extra = {} if backbone == "scratch" else {"backbone": [backbone]}
    if iterations is not None:
        extra["iterations"] = [iterations]
    for gc, axis in [(pg.GridConfig("dnnh", "cnnh-star", 24, 1, backbone), {"method": ["cnnh-star"]}),
                     (pg.GridConfig("drsch", "dsrh", 32, 2, backbone), {"variant": ["dsrh"]})]:
        (task,) = build_grid(gc.paper, dataset=["cifar10"], bits=[gc.bits], seed=[gc.seed], scale=["paper"],
                             **axis, **extra)
        assert gc.run_name(iterations) == task.run_name
        assert task.record_path.endswith(f"results/{gc.paper}/{gc.run_name(iterations)}.json")
    assert pg.GridConfig("dnnh", "cnnh-star", 48, 0).run_name() == "dnnh_cifar10_48b_seed0_paper_method-cnnh-star"
    assert pg.GridConfig("drsch", "dsrh", 12, 0, "efficientnet_lite0").run_name(6145) == \
        "drsch_cifar10_12b_seed0_paper_backbone-efficientnet_lite0_iterations-6145_variant-dsrh"


def test_comparison_methods_recipe_configs_and_schedules():
    from hashrepro.methods import cnnh, drsch

    assert pg._module("dnnh", "cnnh-star") is cnnh and pg._module("drsch", "dsrh") is drsch
    assert pg._module("dnnh") is pg._module("dnnh", "dem") is not cnnh
    for backbone in pg.REGIMES:
        gc = pg.GridConfig("dnnh", "cnnh-star", 24, 1, backbone)
        cfg = pg.recipe_config(gc, "cpu")
        # what the DNNH notebook builds for -p method cnnh-star -p scale paper (progress off in the grid)
        _, nb = cnnh.chapter_recipe("cnnh-star", "paper", dataset="cifar10", bits=24, seed=1, device="cpu",
                                    backbone=backbone, backbone_input_size=None)
        assert isinstance(cfg, cnnh.Config) and cfg.to_dict() == {**nb.to_dict(), "progress": False}
        assert (cfg.method, cfg.iterations, cfg.width, cfg.lr) == ("cnnh-star", 100_000, 1.0, 0.01)
        assert pg.paper_iterations(gc) == 100_000
        short = pg.recipe_config(gc, "cpu", iterations=768)  # DNNH's schedule: lr steps are fractions
        assert short.to_dict() == {**cfg.to_dict(), "iterations": 768}

        gc = pg.GridConfig("drsch", "dsrh", 32, 0, backbone)
        cfg = pg.recipe_config(gc, "cpu")
        assert cfg.to_dict() == drsch.Config.for_scale("paper", dataset="cifar10", bits=32, seed=0, variant="dsrh",
                                                       device="cpu", backbone=backbone).to_dict()
        assert (cfg.variant, cfg.iterations, cfg.slope_factor, cfg.margin_step) == ("dsrh", 800_000, 1.0, 0.0)
        assert pg.paper_iterations(gc) == 800_000
        short = pg.recipe_config(gc, "cpu", iterations=8000)  # DRSCH's: absolute steps scaled by 1/100
        assert (short.iterations, short.lr_step, short.slope_every, short.margin_every) == (8000, 500, 100, 100)
        assert short.to_dict() == {**cfg.to_dict(), "iterations": 8000, "lr_step": 500, "slope_every": 100,
                                   "margin_every": 100}


def test_grid_config_from_record():
    for gc in pg.paper_grid(seeds=[2], bits=[12, 64]):
        cfg = pg.recipe_config(gc, "cpu")
        rec = {"paper": gc.paper, "bits": gc.bits, "seed": gc.seed, "dataset": gc.dataset, "scale": gc.scale,
               "config": cfg.to_dict()}
        assert pg.GridConfig.from_record(rec) == gc


def test_shortened_drsch_schedule_scales_its_step_schedules():
    gc = pg.GridConfig("drsch", "drsch", 32, 0)
    full = pg.recipe_config(gc, "cpu")
    short = pg.recipe_config(gc, "cpu", iterations=8000)  # 1/100 of 800k
    assert (short.iterations, short.lr_step, short.slope_every, short.margin_every) == (8000, 500, 100, 100)
    assert (full.lr_step, full.slope_every) == (50_000, 10_000)
    dn = pg.recipe_config(pg.GridConfig("dnnh", "dem", 48, 0), "cpu", iterations=1000)
    assert dn.iterations == 1000 and dn.paper_iterations == 100_000 and dn.epsilon_every_effective == 200


# ---------------------------------------------------------------- cost of the comparison methods
def test_cost_of_the_comparison_methods_measures_their_own_loops(monkeypatch):
    """CNNH*'s cost is one iteration of its stage 2 (``cnnh.train_net``), DSRH's one of DRSCH's loop with
    DSRH's loss; on the frozen features CNNH*'s network is one linear layer 1280 -> bits."""
    from hashrepro.losses.dsrh import DSRHLoss
    from hashrepro.methods import cnnh, drsch

    seen = []
    for mod, fn in ((cnnh, "train_net"), (drsch, "train_model")):
        orig = getattr(mod, fn)

        def spy(cfg, *a, _orig=orig, **k):
            seen.append((type(cfg).__module__, getattr(cfg, "method", None) or cfg.variant, cfg.iterations))
            return _orig(cfg, *a, **k)
        monkeypatch.setattr(mod, fn, spy)
    losses = []
    orig_fwd = DSRHLoss.forward
    monkeypatch.setattr(DSRHLoss, "forward", lambda self, *a, **k: losses.append(1) or orig_fwd(self, *a, **k))

    gc = pg.GridConfig("dnnh", "cnnh-star", 48, 0, "efficientnet_lite0", "digits", "smoke")
    c = pg.measure_cost(gc)
    batch = pg.recipe_config(gc, "cpu").batch_size
    assert c["flops_per_it"] == 4 * batch * pg.FEATURE_DIM * 48  # forward + weight gradient of the linear layer
    assert c["kernels_per_it"] > 0 and c["cpu_s_per_it"] > 0
    assert seen == [("hashrepro.methods.cnnh", "cnnh-star", 1)] * 2  # counted, then timed
    seen.clear()
    c = pg.measure_cost(_smoke("dnnh", "cnnh-star"))
    assert c["flops_per_it"] > 0 and seen == [("hashrepro.methods.cnnh", "cnnh-star", 1)] * 2
    seen.clear()
    c = pg.measure_cost(_smoke("drsch", "dsrh"))
    assert c["flops_per_it"] > 0 and c["kernels_per_it"] > 0 and losses
    assert seen == [("hashrepro.methods.drsch_config", "dsrh", 1)] * 2
    assert pg.MEASURE_BITS["dnnh"]["cnnh-star"] == pg.MEASURE_BITS["drsch"]["dsrh"] == 48


def test_committed_costs_cover_the_whole_grid():
    """``benchmarks/paper_grid_costs.json`` has every configuration (``--costs`` measures nothing),
    each kind measured once at its longest code."""
    from hashrepro.paths import repo_root

    costs = json.loads((repo_root() / "benchmarks" / "paper_grid_costs.json").read_text())["costs"]
    grid = pg.paper_grid()
    assert {pg._key_str(gc) for gc in grid} == set(costs)
    for gc in grid:
        c = costs[pg._key_str(gc)]
        assert c["measured_at_bits"] == pg.MEASURE_BITS[gc.paper][gc.variant] and c["kernels_per_it"] > 0
    logs = []
    est = pg.estimate(grid, 12, costs=costs, log=logs.append)
    assert logs == [] and len(est["rows"]) == 174 and 0 < est["fraction"] < 1


# ---------------------------------------------------------------- projection
def _rows(n_its=1000, flops=1e12, kernels=100, paper="dnnh"):
    cost = {"cpu_s_per_it": 1.0, "flops_per_it": flops, "kernels_per_it": kernels}
    return [(pg.GridConfig(paper, "dem", 12, 0), n_its, cost)]


def test_projection_model_and_fit_fraction():
    rows = _rows()
    p = pg.project(rows, workers=1)
    sustained = pg.GPU_PEAK_TFLOPS * 1e12 * pg.GPU_EFFICIENCY
    assert p["gpu"] == pytest.approx(1000 * max(1e12 / sustained, 100 * pg.DEVICE_US_PER_KERNEL * 1e-6))
    assert p["host"] == pytest.approx(1000 * 100 * pg.HOST_US_PER_OP * 1e-6)
    assert p["total"] == pytest.approx(max(p["gpu"], p["host"]) + pg.EVAL_S["dnnh"])
    # the floor: the FLOPs at the full peak, whatever the launches; split by (paper, regime)
    assert p["flop_floor"] == pytest.approx(1000 * 1e12 / (pg.GPU_PEAK_TFLOPS * 1e12))
    assert p["flop_floor_by_part"] == {"dnnh scratch": pytest.approx(p["flop_floor"])}
    two = rows + [(pg.GridConfig("drsch", "drsch", 12, 0, "efficientnet_lite0"), 10, rows[0][2])]
    assert pg.project(two, 1)["flop_floor_by_part"]["drsch efficientnet_lite0"] == pytest.approx(
        10 * 1e12 / (pg.GPU_PEAK_TFLOPS * 1e12))
    budget = pg.EVAL_S["dnnh"] + 0.25 * (p["total"] - p["eval"])
    f = pg.fit_fraction(rows, 1, budget)
    assert f == pytest.approx(0.25)
    short = [(gc, pg.shortened_iterations(its, f), c) for gc, its, c in rows]
    assert pg.project(short, 1)["total"] <= budget + 1e-9
    assert pg.fit_fraction(rows, 1, 1e9) == 1.0 and pg.fit_fraction(rows, 1, 1.0) == 0.0


def test_dry_run_prints_the_table_and_writes_no_records(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["paper-grid", "--estimate", "--papers", "dnnh", "--regimes", "scratch", "--variants", "fc",
               "--bits", "12", "--seeds", "0", "1", "--scale", "smoke", "--dataset", "digits",
               "--estimate-iterations", "1", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "configuration" in out and "CPU s/it" in out and "GFLOP/it" in out and "dnnh fc (measured at 48b)" in out
    assert "projected total on one H200-class GPU" in out and "TFLOP/s" in out
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_dry_run_says_what_fits_when_the_target_is_missed(capsys):
    est = {"rows": _rows(n_its=100_000, flops=1e13), "workers": 4, "target_s": 600.0,
           "budget_minutes": None}
    est["projection"] = pg.project(est["rows"], 4)
    est["fraction"] = pg.fit_fraction(est["rows"], 4, 600.0)
    text = pg.format_estimate(est)
    assert "does NOT fit" in text and "what fits in 10 min" in text and "--budget-minutes 10" in text
    floor_min = 100_000 * 1e13 / (pg.GPU_PEAK_TFLOPS * 1e12) / 60
    assert f"floor for any implementation" in text and f"{floor_min:.1f} min" in text
    assert ("no change of the code meets it" in text) == (floor_min > 10)


# ---------------------------------------------------------------- running, resuming, budgets
def test_run_resumes_and_budget_shortens_and_marks(tmp_path):
    gc = _smoke()
    logs = []
    res = pg.run_grid([gc], tmp_path, device="cpu", log=logs.append)
    path = tmp_path / "results" / "dnnh" / f"{gc.run_name()}.json"
    assert res["done"] == 1 and path.is_file()
    rec = json.loads(path.read_text())
    assert rec["protocol"]["schedule"] == {"kind": "paper", "iterations": 15, "paper_iterations": 15, "fraction": 1.0}
    mtime = path.stat().st_mtime_ns
    res2 = pg.run_grid([gc], tmp_path, device="cpu", log=logs.append)
    assert (res2["done"], res2["skipped"]) == (0, 1) and path.stat().st_mtime_ns == mtime
    # a shortened schedule is another record, marked as such
    res3 = pg.run_grid([gc], tmp_path, device="cpu", fraction=0.5, budget_minutes=3.0, log=logs.append)
    short = tmp_path / "results" / "dnnh" / f"{gc.run_name(7)}.json"
    assert res3["done"] == 1 and short.is_file()
    rec = json.loads(short.read_text())
    assert rec["protocol"]["schedule"]["kind"] == "shortened" and rec["config"]["iterations"] == 7
    assert rec["protocol"]["schedule"]["budget_minutes"] == 3.0 and rec["protocol"]["schedule"]["paper_iterations"] == 15
    assert not list((tmp_path / "results").rglob("*.tmp"))


def test_budget_minutes_from_the_cli_shortens(tmp_path, capsys):
    gc = _smoke()
    costs = {pg._key_str(gc): {"cpu_s_per_it": 1.0, "flops_per_it": 1e14, "kernels_per_it": 100}}
    cfile = tmp_path / "costs.json"
    cfile.write_text(json.dumps({"costs": costs}))
    # 15 its x (1e14 / sustained) + eval 20 s; 21 s leaves ~1 s of training -> a shortened schedule
    rc = main(["paper-grid", "--papers", "dnnh", "--regimes", "scratch", "--variants", "fc", "--bits", "12",
               "--seeds", "0", "--scale", "smoke", "--dataset", "digits", "--device", "cpu",
               "--out", str(tmp_path), "--costs", str(cfile), "--budget-minutes", str(21 / 60)])
    out = capsys.readouterr().out
    assert rc == 0 and "schedules x" in out
    recs = list((tmp_path / "results" / "dnnh").glob("*_iterations-*.json"))
    assert len(recs) == 1 and json.loads(recs[0].read_text())["protocol"]["schedule"]["kind"] == "shortened"


def test_comparison_methods_smoke_run_from_the_cli(tmp_path, capsys):
    """``paper-grid --variants cnnh-star dsrh`` at smoke scale writes a CNNH* (DNNH) and a DSRH (DRSCH)
    record per regime, under the sweep's names, with the same metrics as the recipes run directly."""
    import warnings

    from hashrepro.methods import cnnh, drsch

    rc = main(["paper-grid", "--device", "cpu", "--dataset", "digits", "--scale", "smoke", "--seeds", "0",
               "--variants", "cnnh-star", "dsrh", "--bits", "12", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "4 done" in out
    expected = {("dnnh", "dnnh_digits_12b_seed0_smoke_method-cnnh-star"): "cnnh-star",
                ("dnnh", "dnnh_digits_12b_seed0_smoke_backbone-efficientnet_lite0_method-cnnh-star"):
                    "cnnh-star-efficientnet_lite0",
                ("drsch", "drsch_digits_12b_seed0_smoke_variant-dsrh"): "dsrh",
                ("drsch", "drsch_digits_12b_seed0_smoke_backbone-efficientnet_lite0_variant-dsrh"):
                    "dsrh-efficientnet_lite0"}
    written = {(p.parent.name, p.stem) for p in (tmp_path / "results").rglob("*.json")}
    assert written == set(expected)
    recs = {}
    for (paper, name), method in expected.items():
        rec = json.loads((tmp_path / "results" / paper / f"{name}.json").read_text())
        assert rec["paper"] == paper and rec["method"] == method and np.isfinite(rec["metrics"]["map"])
        assert rec["protocol"]["schedule"]["kind"] == "paper"
        gc = pg.GridConfig.from_record(rec)
        assert gc.run_name() == name and gc.variant in ("cnnh-star", "dsrh")
        recs[method] = rec
    assert recs["cnnh-star"]["protocol"]["schedule"]["iterations"] == 15
    assert "stage1_map" in recs["cnnh-star"]["metrics"]
    assert recs["dsrh"]["protocol"]["schedule"]["iterations"] == 6 and recs["dsrh"]["config"]["variant"] == "dsrh"
    # the grid runs the recipes themselves: the same numbers as a direct run (from scratch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = {"cnnh-star": cnnh.run(cnnh.Config.for_scale("smoke", dataset="digits", bits=12, method="cnnh-star",
                                                              device="cpu", progress=False)),
                  "dsrh": drsch.run(drsch.Config.for_scale("smoke", dataset="digits", bits=12, variant="dsrh",
                                                           device="cpu"))}
    for method, d in direct.items():
        got = {k: v for k, v in recs[method]["metrics"].items() if "time" not in k}
        want = {k: v for k, v in d["metrics"].items() if "time" not in k}
        assert got.keys() == want.keys() and got == pytest.approx(want, rel=1e-6, nan_ok=True)


@pytest.mark.parametrize("argv, needle", [
    (["--bits", "13"], "bits [13] not in the paper grid; valid"),
    (["--variants", "hashnet"], "variants ['hashnet'] not in the paper grid; valid"),
    (["--save-costs", "x.json"], "--save-costs goes with --estimate"),
    (["--seeds", "-1"], "--seeds must be non-negative"),
    (["--costs", "/nonexistent.json", "--estimate"], "not a cost file"),
])
def test_bad_arguments_give_one_line(argv, needle, capsys):
    rc = main(["paper-grid", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1


def test_bad_option_values_give_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["paper-grid", "--workers", "0"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "expected a positive integer" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_one_line(capsys, tmp_path):
    rc = main(["paper-grid", "--device", "cuda", "--scale", "smoke", "--dataset", "digits", "--regimes",
               "scratch", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "CUDA is not available" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- no host syncs (GPU paths, on the CPU)
def test_fit_log_every_gives_the_same_losses_and_still_guards_nan():
    from hashrepro.train import NonFiniteLossError, fit

    def make(nan_at=None):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(5))
        x = torch.randn(30, 5)

        def step(it):
            loss = ((x @ w) ** 2).mean()
            return loss * float("nan") if it == nan_at else loss
        return w, step

    w1, s1 = make()
    h1 = fit(step=s1, parameters=[w1], iterations=23)
    w2, s2 = make()
    h2 = fit(step=s2, parameters=[w2], iterations=23, log_every=10)
    assert h1.loss == h2.loss and len(h2.loss) == 23 and torch.equal(w1, w2)
    w3, s3 = make(nan_at=12)
    with pytest.raises(NonFiniteLossError, match="at iteration 12"):
        fit(step=s3, parameters=[w3], iterations=23, log_every=10)
    with pytest.raises(ValueError, match="log_every"):
        fit(step=s1, parameters=[w1], iterations=2, log_every=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_lazy_loss_statistics_match_the_eager_ones(seed):
    from hashrepro.losses.drsch import DRSCHLoss, triplet_hinge
    from hashrepro.losses.triplet import TripletRankingLoss

    g = torch.Generator().manual_seed(seed)
    codes = torch.rand(24, 12, generator=g, requires_grad=True)
    y = torch.randint(0, 4, (24,), generator=g)
    eager, lazy = TripletRankingLoss(margin=1.0), TripletRankingLoss(margin=1.0)
    lazy.lazy_stats = True
    le, ll = eager(codes, y), lazy(codes, y)
    (ge,) = torch.autograd.grad(le, codes)
    (gl,) = torch.autograd.grad(ll, codes)
    assert float(ll.detach()) == pytest.approx(float(le.detach()), rel=1e-5) and torch.allclose(ge, gl, atol=1e-6)
    assert torch.is_tensor(lazy.last_stats["active"])
    assert float(lazy.last_stats["active"]) == pytest.approx(eager.last_stats["active"], rel=1e-5)

    h = torch.tanh(torch.randn(20, 8, generator=g))
    w = torch.rand(8, generator=g) + 0.5
    yb = torch.arange(20) % 4
    a = triplet_hinge(h, w, yb, 3.0)
    b = triplet_hinge(h, w, yb, 3.0, lazy=True)
    assert float(b[0]) == pytest.approx(float(a[0]), rel=1e-5) and (int(b[1]), int(b[2])) == (a[1], a[2])
    de, dl = DRSCHLoss(lam=1e-2), DRSCHLoss(lam=1e-2)
    dl.lazy_stats = True
    assert float(dl(h, w, yb, 3.0)) == pytest.approx(float(de(h, w, yb, 3.0)), rel=1e-5)
    assert torch.is_tensor(dl.last["triplet"]) and float(dl.last["triplet"]) == pytest.approx(de.last["triplet"], rel=1e-5)


def test_piecewise_threshold_takes_a_tensor_epsilon():
    from hashrepro.models.nin import piecewise_threshold

    s = torch.linspace(0, 1, 11)
    assert torch.equal(piecewise_threshold(s, 0.2), piecewise_threshold(s, torch.tensor(0.2)))
    with pytest.raises(ValueError):
        piecewise_threshold(s, -0.1)


def test_nothing_in_the_grid_hard_codes_cuda():
    import inspect

    src = inspect.getsource(pg)
    assert '"cuda"' not in src and "'cuda'" not in src and ".cuda(" not in src
    assert np.all([pg.recipe_config(gc, "cpu").device == "cpu" for gc in pg.paper_grid(seeds=[0])])
