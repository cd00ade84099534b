"""The papermill sweep: grid, run names, resumability, failures, parallel and Dask engines.

A toy notebook in a temporary repository root (HASHREPRO_ROOT) stands in for a chapter, so these
tests check the sweep machinery itself in seconds.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from hashrepro import sweep

TOY_PARAMS = """dataset = "toy"
bits = 8
seed = 0
scale = "smoke"
fail = False
results_dir = "results/local"
run_name = None"""

TOY_BODY = """import time
from hashrepro.results import make_record, save_run
if fail:
    raise RuntimeError("asked to fail")
record = make_record(paper="toy", method="toy", dataset=dataset, bits=bits, seed=seed, scale=scale,
                     config={"dataset": dataset, "bits": bits, "seed": seed, "scale": scale},
                     protocol={"split": "none"}, metrics={"map": bits / 100 + seed},
                     curves={}, wall_time_s=0.01, device="cpu")
path = save_run(record, results_dir, run_name)
print("RESULT", path)"""


def _toy_root(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(TOY_PARAMS)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# toy"), p, nbformat.v4.new_code_cell(TOY_BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "toy.ipynb")
    return tmp_path


@pytest.fixture
def toy_root(tmp_path, monkeypatch):
    root = _toy_root(tmp_path)
    monkeypatch.setenv("HASHREPRO_ROOT", str(root))
    return root


def test_notebook_parameters_and_grid(toy_root):
    params = sweep.notebook_parameters("toy")
    assert params["bits"] == 8 and params["fail"] is False and params["run_name"] is None
    tasks = sweep.build_grid("toy", bits=[8, 16], seed=[0, 1, 2], scale="smoke")
    assert len(tasks) == 6
    names = {t.run_name for t in tasks}
    assert "toy_16b_seed2_smoke" in names
    t = tasks[0]
    assert t.parameters["results_dir"] == "results" and t.parameters["run_name"] == t.run_name
    assert t.record_path == f"results/toy/{t.run_name}.json"
    assert t.notebook_path == f"book/runs/toy/{t.run_name}.ipynb"


def test_unknown_parameter_and_paper_are_errors(toy_root):
    with pytest.raises(ValueError, match="unknown parameter.*'lr'.*valid: bits"):
        sweep.build_grid("toy", lr=[0.1])
    with pytest.raises(ValueError, match="unknown paper 'nope'"):
        sweep.build_grid("nope", bits=[8])


def test_run_name_is_deterministic_and_includes_extra_parameters():
    name = sweep.run_name_for("dnnh", {"bits": 48, "dataset": "cifar10", "seed": 0, "scale": "paper",
                                        "variant": "fc", "results_dir": "x", "device": "cuda"})
    assert name == "dnnh_cifar10_48b_seed0_paper_variant-fc"


def test_sweep_runs_skips_and_resumes(toy_root):
    tasks = sweep.build_grid("toy", bits=[8, 16], seed=[0], scale="smoke")
    s1 = sweep.run_sweep(tasks, echo=lambda *_: None)
    assert s1.ok and s1.count("done") == 2, s1.table()
    for t in tasks:
        rec = json.loads((toy_root / t.record_path).read_text())
        assert rec["complete"] is True and rec["metrics"]["map"] == pytest.approx(t.parameters["bits"] / 100)
        out = nbformat.read(toy_root / t.notebook_path, as_version=4)
        assert "RESULT" in "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    # Rerun: everything is skipped.
    s2 = sweep.run_sweep(tasks, echo=lambda *_: None)
    assert s2.count("skipped") == 2 and s2.count("done") == 0
    # A half-written record (interrupted run) is not trusted: only that run is redone.
    bad = toy_root / tasks[1].record_path
    bad.write_text(bad.read_text()[:40])
    s3 = sweep.run_sweep(tasks, echo=lambda *_: None)
    assert s3.count("done") == 1 and s3.count("skipped") == 1
    assert json.loads(bad.read_text())["complete"] is True
    # A missing executed notebook also means the run is redone.
    (toy_root / tasks[0].notebook_path).unlink()
    s4 = sweep.run_sweep(tasks, echo=lambda *_: None)
    assert s4.count("done") == 1


def test_failed_run_leaves_nothing_behind_and_is_reported(toy_root):
    tasks = sweep.build_grid("toy", bits=[8], fail=[True])
    s = sweep.run_sweep(tasks, echo=lambda *_: None)
    assert not s.ok and s.count("failed") == 1
    assert "asked to fail" in s.results[0].error
    assert not (toy_root / tasks[0].record_path).exists()
    assert not (toy_root / tasks[0].notebook_path).exists()
    assert (toy_root / "_build" / "sweep-failed" / f"toy-{tasks[0].run_name}.ipynb").exists()
    assert "1 failed" in s.table()


def test_parallel_processes(toy_root):
    tasks = sweep.build_grid("toy", bits=[8], seed=[0, 1])
    s = sweep.run_sweep(tasks, jobs=2, echo=lambda *_: None)
    assert s.ok and s.count("done") == 2, s.table()


@pytest.mark.slow
def test_dask_local_cluster(toy_root):
    pytest.importorskip("dask.distributed")
    tasks = sweep.build_grid("toy", bits=[8, 16], seed=[3])
    s = sweep.run_sweep(tasks, jobs=2, engine="dask", echo=lambda *_: None)
    assert s.ok and s.count("done") == 2, s.table()
    for t in tasks:
        assert json.loads((toy_root / t.record_path).read_text())["metrics"]["map"] == pytest.approx(
            t.parameters["bits"] / 100 + 3)


def test_cli_dry_run_and_errors(toy_root):
    env_cmd = [sys.executable, "-m", "hashrepro.cli", "sweep", "toy", "--bits", "8", "16", "--seeds", "0",
               "-p", "fail", "false", "--dry-run"]
    out = subprocess.run(env_cmd, capture_output=True, text=True, check=True).stdout
    assert "2 run(s)" in out and "papermill notebooks/toy.ipynb book/runs/toy/toy_8b_seed0_fail-False.ipynb" in out
    bad = subprocess.run([sys.executable, "-m", "hashrepro.cli", "sweep", "toy", "-p", "lr", "1"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown parameter" in bad.stderr
