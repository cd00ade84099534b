"""hashrepro.plots.gpu_grid: the GPU paper-grid cells, speed table, call logs and sentence, on
hand-made records (values chosen so every number can be checked by hand)."""
import json

import numpy as np
import pandas as pd
import pytest

from hashrepro.plots import gpu_grid as G


def rec(method, bits, seed, m, *, dirty=False, flags=None, its=2040, full=100000, train=10.0, wall=15.0,
        paper="dnnh", finished="2026-11-30T00:30:00"):
    r = {"paper": paper, "method": method, "dataset": "cifar10", "bits": bits, "seed": seed, "scale": "paper",
         "metrics": {"map": m, "train_time_s": train}, "wall_time_s": wall, "git_dirty": dirty,
         "git_commit": "abcdef1234", "device": "cuda: NVIDIA H200", "finished": finished,
         "protocol": {"schedule": {"kind": "shortened", "iterations": its, "paper_iterations": full,
                                   "fraction": its / full}}}
    if flags:
        r["flags"] = flags
    return r


def cpu(method, bits, seed, m):
    return {"paper": "dnnh", "method": method, "dataset": "cifar10", "bits": bits, "seed": seed, "scale": "default",
            "metrics": {"map": m}, "git_dirty": False, "wall_time_s": 100.0}


def test_table_means_flags_dirty_and_paper_column():
    gpu = [rec("dnnh-dem", 12, 0, 0.50), rec("dnnh-dem", 12, 1, 0.60),
           rec("dnnh-dem", 24, 0, 0.40, flags=["constant_bits: 9 of 24 bits ..."]),
           rec("dnnh-dem-efficientnet_lite0", 12, 0, 0.70, dirty=True)]
    cpus = [cpu("dnnh-dem", 12, s, v) for s, v in ((0, 0.2), (1, 0.3), (2, 0.4))]
    paper = pd.DataFrame([{"method": "dnnh-dem", "dataset": "cifar10", "bits": 12, "metric": "map", "value": 0.552}])
    t = G.gpu_grid_table(gpu, cpus, paper, {"DEM": ("dnnh-dem", "dnnh-dem"), "FC": ("dnnh-fc", "dnnh-fc")},
                         bits=(12, 24))
    assert list(t["method"]) == ["DEM", "DEM"]                  # FC has no GPU records: left out
    r12, r24 = t.iloc[0], t.iloc[1]
    assert r12["paper"] == "0.552" and r24["paper"] == "—"
    assert r12["GPU scratch"].startswith("0.550 ± 0.071 (n=2)") and "dirty" not in r12["GPU scratch"]
    assert r12["CPU scratch"].startswith("0.300 ± 0.100 (n=3)")
    assert r12["GPU pretrained"].endswith("dirty") and r12["GPU pretrained"].startswith("0.700 (n=1)")
    assert r24["GPU scratch"] == "flagged (1 runs: constant_bits)"  # never averaged
    assert r24["GPU pretrained"] == "not run"


def test_one_value_per_seed_latest_wins_and_flagged_counted_beside_mean():
    gpu = [rec("x", 12, 0, 0.1, finished="2026-11-30T00:10:00"), rec("x", 12, 0, 0.3, finished="2026-11-30T00:20:00"),
           rec("x", 12, 1, 0.2, flags=["few_codes: ..."])]
    cell = G._cell(gpu, "x", "cifar10", "map")
    assert cell["n"] == 1 and cell["mean"] == pytest.approx(0.3) and cell["flagged"] == 1
    assert G._fmt_gpu(cell).endswith("+ 1 flagged")
    assert G._cell(gpu, "y", "cifar10", "map") is None


def test_speed_table_per_method_and_regime():
    gpu = [rec("drsch", 12, 0, 0.3, its=1000, train=4.0, wall=10.0, paper="drsch"),
           rec("drsch", 24, 0, 0.3, its=1000, train=6.0, wall=14.0, paper="drsch"),
           rec("drsch-efficientnet_lite0", 12, 0, 0.5, its=2000, train=2.0, wall=3.0, paper="drsch")]
    t = G.gpu_speed_table(gpu).set_index("method")
    assert t.loc["drsch", "runs"] == 2 and t.loc["drsch", "ms / iteration"] == pytest.approx(5.0)
    assert t.loc["drsch", "evaluation (s)"] == pytest.approx(7.0) and t.loc["drsch", "regime"] == "from scratch"
    assert t.loc["drsch-efficientnet_lite0", "regime"] == "pretrained"
    assert t.loc["drsch-efficientnet_lite0", "ms / iteration"] == pytest.approx(1.0)
    assert G.gpu_speed_table([]).empty


def test_grid_calls_from_logs(tmp_path):
    d = tmp_path / "call1"
    d.mkdir()
    (d / "device.log").write_text("NVIDIA H200, 143771 MiB, 580\nMPS: on\nfeatures: 21.3 s\n== 36 s: grid, deadline\n"
                                  "grid exit 0 after 483 s\n")
    (d / "paper_grid.log").write_text("  done a: map 0.5, 3 s\n  done b: map 0.4, 2 s\n  FAILED c\n")
    (tmp_path / "call2").mkdir()
    (tmp_path / "call2" / "device.log").write_text("MPS: off\n")
    t = G.grid_calls(tmp_path)
    assert t.iloc[0].to_dict() == {"call": "call1", "runs done": 2, "features (s)": 21.3, "grid (s)": 447,
                                   "MPS": "on", "GPU": "NVIDIA H200"}
    assert t.iloc[1]["runs done"] == 0 and t.iloc[1]["MPS"] == "off" and np.isnan(t.iloc[1]["grid (s)"])


def test_sentence_counts_from_records_and_load(tmp_path):
    assert "No GPU records" in G.gpu_sentence([])
    gpu = [rec("a", 12, 0, 0.1), rec("a", 12, 2, 0.1, dirty=True)]
    s = G.gpu_sentence(gpu)
    assert s.startswith("2 runs on cuda: NVIDIA H200; seeds 0, 2;")
    assert "DNNH 2,040 of 100,000 iterations" in s and "1 of 2 marked dirty" in s
    assert "all 1 written from a clean tree" in G.gpu_sentence(gpu[:1])
    d = tmp_path / "gpu" / "2026-11-30" / "dnnh"
    d.mkdir(parents=True)
    for i, r in enumerate(gpu):
        (d / f"r{i}.json").write_text(json.dumps({**r, "complete": True, "schema": 1, "config": {}}))
    assert len(G.load_gpu_records("dnnh", tmp_path / "gpu")) == 2
    assert G.load_gpu_records("drsch", tmp_path / "gpu") == [] and G.load_gpu_records("dnnh", tmp_path / "no") == []


def test_full_grid_minutes_from_measured_costs():
    from hashrepro.paper_grid import METHOD_VARIANTS, TABLE2

    recs = []
    for paper, variants in TABLE2.items():
        for variant, _ in variants:
            for backbone in ("scratch", "efficientnet_lite0"):
                r = rec(f"{paper}-{variant}", 12, 0, 0.5, paper=paper, its=1000, train=1.0, wall=1.0 + 6.0)
                # a CNNH* record names its variant by the CNNH recipe's ``method`` (it has no ``variant``)
                r["config"] = ({"method": METHOD_VARIANTS[variant][1]} if variant in METHOD_VARIANTS
                               else {"variant": variant})
                r["config"]["backbone"] = backbone
                recs.append(r)
    out = G.full_grid_minutes(recs, workers=12)
    # 1 ms per iteration: DNNH and CNNH* 96 runs x 100,000 + DRSCH and DSRH 78 runs x 800,000 iterations = 72 M ms
    assert out["train"] == pytest.approx(72_000 / 12 / 60) and out["kinds_missing"] == []
    assert out["eval"] == pytest.approx(174 * 6.0 / 12 / 60)
    assert out["total"] == pytest.approx(out["train"] + out["eval"])
    partial = G.full_grid_minutes(recs[:1], workers=12)
    assert len(partial["kinds_missing"]) == 15 and partial["train"] == pytest.approx(12 * 100_000 * 1e-3 / 12 / 60)


def test_grid_calls_projection_of_the_runs_each_call_finished(tmp_path):
    from hashrepro import paper_grid as PG

    r = rec("dnnh-dem", 12, 0, 0.5, its=1000)
    r.update(config={"variant": "dem"}, scale="paper")
    gc = PG.GridConfig("dnnh", "dem", 12, 0)
    costs = {PG._key_str(gc): {"cpu_s_per_it": 0.1, "flops_per_it": 0.0, "kernels_per_it": 100}}
    d = tmp_path / "call1"
    d.mkdir()
    (d / "device.log").write_text("== 10 s: grid\ngrid exit 0 after 70 s\n")
    (d / "paper_grid.log").write_text(f"  done {gc.run_name(1000)}: map 0.5, 3 s\n  done unknown_run: map 0.1, 1 s\n")
    t = G.grid_calls(tmp_path, [r], costs, workers=4)
    expected = PG.project([(gc, 1000, costs[PG._key_str(gc)])], 4)["total"]
    assert t.iloc[0]["projected (s)"] == round(expected) and t.iloc[0]["grid (s)"] == 60
    assert t.iloc[0]["measured / projected"] == round(60 / expected, 2)
    assert "projected (s)" not in G.grid_calls(tmp_path).columns


def test_flop_floor_sentence_counts_the_grid_at_full_peak():
    from hashrepro.paper_grid_configs import paper_grid, paper_iterations
    from hashrepro.paper_grid_cost import GPU_PEAK_TFLOPS, _key_str

    grid = paper_grid()
    # every configuration 1e13 FLOPs per iteration: the floor is Σ iterations × 1e13 / peak
    costs = {_key_str(gc): {"cpu_s_per_it": 1.0, "flops_per_it": 1e13, "kernels_per_it": 10} for gc in grid}
    core = [gc for gc in grid if gc.variant not in ("cnnh-star", "dsrh")]
    want = sum(paper_iterations(gc) for gc in core) * 1e13 / (GPU_PEAK_TFLOPS * 1e12) / 60
    text = G.flop_floor_sentence(costs, target_minutes=10)
    assert f"**{want:.1f} minutes** for the {len(core)}-run grid" in text and f"all {len(grid)} runs" in text
    assert "cannot be met" in text  # that floor is far above 10 minutes
    assert "cannot be met" not in G.flop_floor_sentence(costs, target_minutes=want * 10)
