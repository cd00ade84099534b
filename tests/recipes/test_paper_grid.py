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
def test_grid_is_exactly_table2_of_both_chapters():
    grid = pg.paper_grid()
    expected = set()
    for backbone in ("scratch", "efficientnet_lite0"):
        for seed in (0, 1, 2):
            for v in ("dem", "fc", "two-subnets"):
                for b in (12, 24, 32, 48):
                    expected.add(("dnnh", v, b, seed, backbone))
            for v in ("dsch", "drsch"):
                for b in (12, 24, 32, 48):
                    expected.add(("drsch", v, b, seed, backbone))
            expected.add(("drsch", "bs-drsch", 64, seed, backbone))
    got = [(g.paper, g.variant, g.bits, g.seed, g.backbone) for g in grid]
    assert len(got) == len(set(got)) == 126 and set(got) == expected
    assert all(g.dataset == "cifar10" and g.scale == "paper" for g in grid)
    names = [g.run_name() for g in grid]
    assert len(set(names)) == len(names)  # one record file per configuration


def test_run_names_follow_the_sweep_and_paper_schedules():
    assert pg.GridConfig("dnnh", "dem", 48, 0).run_name() == "dnnh_cifar10_48b_seed0_paper"
    assert pg.GridConfig("dnnh", "fc", 12, 2).run_name() == "dnnh_cifar10_12b_seed2_paper_variant-fc"
    assert pg.GridConfig("drsch", "bs-drsch", 64, 1, "efficientnet_lite0").run_name() == \
        "drsch_cifar10_64b_seed1_paper_backbone-efficientnet_lite0_variant-bs-drsch"
    assert pg.GridConfig("drsch", "drsch", 32, 0).run_name(8000) == \
        "drsch_cifar10_32b_seed0_paper_iterations-8000_variant-drsch"
    assert pg.paper_iterations(pg.GridConfig("dnnh", "dem", 48, 0)) == 100_000
    assert pg.paper_iterations(pg.GridConfig("drsch", "dsch", 12, 0)) == 800_000


def test_shortened_drsch_schedule_scales_its_step_schedules():
    gc = pg.GridConfig("drsch", "drsch", 32, 0)
    full = pg.recipe_config(gc, "cpu")
    short = pg.recipe_config(gc, "cpu", iterations=8000)  # 1/100 of 800k
    assert (short.iterations, short.lr_step, short.slope_every, short.margin_every) == (8000, 500, 100, 100)
    assert (full.lr_step, full.slope_every) == (50_000, 10_000)
    dn = pg.recipe_config(pg.GridConfig("dnnh", "dem", 48, 0), "cpu", iterations=1000)
    assert dn.iterations == 1000 and dn.paper_iterations == 100_000 and dn.epsilon_every_effective == 200


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
