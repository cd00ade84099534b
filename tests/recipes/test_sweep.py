"""The papermill sweep: grid, run names, resumability, failures, parallel and Dask engines.

A toy notebook in a temporary repository root (HASHREPRO_ROOT) stands in for a chapter, so these
tests check the sweep machinery itself in seconds.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from hashrepro import sweep

TOY_PARAMS = """dataset = "toy"
bits = 8
seed = 0
scale = "smoke"
fail = False
sleep = 0
results_dir = "results/local"
run_name = None"""

TOY_BODY = """import time
from hashrepro.results import make_record, save_run
time.sleep(sleep)
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


def test_a_parameter_papermill_cannot_parse_is_a_clear_error(toy_root):
    """papermill skips a parameters-cell line it cannot parse (an "=" in the comment) and the sweep then
    rejected that -p as unknown (mch.ipynb's base_weight_decay did)."""
    import nbformat

    path = toy_root / "notebooks" / "toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source += "\nwd = None   # weight decay (None: the preset, 0 = none)"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match=r"papermill cannot parse the parameters cell line\(s\) of wd in .*toy.ipynb"):
        sweep.notebook_parameters("toy")


def test_every_chapter_notebooks_parameters_parse_with_papermill():
    """Each parameter of each chapter notebook reaches papermill (so every -p the notebook declares works)."""
    from hashrepro.paths import notebooks_root
    from hashrepro.provenance import parameters_cell_defaults

    nbs = sorted(notebooks_root().glob("*.ipynb"))
    assert {p.stem for p in nbs} >= {"dnnh", "drsch", "ddh", "mch"}
    for nb in nbs:
        assert "seed" in sweep.notebook_parameters(nb), nb.stem   # raises on a line papermill skips


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
    # The reason, in one line: the exception and its message, not a traceback's last line.
    err = s.results[0].error
    assert err.startswith("RuntimeError: asked to fail") and "\n" not in err, err
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


# --- issue 17, case 4: options are honoured or refused, failures name their reason ---------------

def test_timeout_reports_the_reason(toy_root):
    tasks = sweep.build_grid("toy", bits=[8], sleep=[30])
    t0 = time.perf_counter()
    s = sweep.run_sweep(tasks, timeout=1, echo=lambda *_: None)
    assert time.perf_counter() - t0 < 25
    assert s.count("failed") == 1
    err = s.results[0].error
    assert err.startswith("timed out after 1 s"), err
    assert "timed out after 1 s" in s.table()


@pytest.mark.parametrize("kw, match", [({"jobs": -3}, "jobs must be a positive integer"),
                                       ({"jobs": 1.5}, "jobs must be a positive integer"),
                                       ({"timeout": 0}, "timeout must be a positive integer"),
                                       ({"connect_timeout": -1}, "connect_timeout must be a positive"),
                                       ({"scheduler": "tcp://x:1"}, "needs engine='dask'")])
def test_bad_options_are_refused(toy_root, kw, match):
    tasks = sweep.build_grid("toy", bits=[8])
    with pytest.raises(sweep.SweepError, match=match):
        sweep.run_sweep(tasks, echo=lambda *_: None, **kw)


def test_unreachable_scheduler_is_one_clear_error_quickly(toy_root):
    pytest.importorskip("dask.distributed")
    tasks = sweep.build_grid("toy", bits=[8])
    t0 = time.perf_counter()
    with pytest.raises(sweep.SweepError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:1 "
                                                 r"within 1 s") as info:
        sweep.run_sweep(tasks, engine="dask", scheduler="tcp://127.0.0.1:1", connect_timeout=1,
                        echo=lambda *_: None)
    assert time.perf_counter() - t0 < 20
    assert "\n" not in str(info.value)
    assert not (toy_root / tasks[0].record_path).exists()


def test_run_notebook_gets_a_title_naming_the_run(toy_root):
    tasks = sweep.build_grid("toy", bits=[16], seed=[2], scale="smoke")
    assert sweep.run_sweep(tasks, echo=lambda *_: None).ok
    nb = nbformat.read(toy_root / tasks[0].notebook_path, as_version=4)
    first = nb.cells[0].source.splitlines()[0]
    assert first == "# TOY run · toy · 16 bits · seed 2 · smoke", first
    assert nb.metadata["hashrepro"]["title"] == first[2:]


def test_parameters_are_validated_by_the_chapter_when_it_can(toy_root, monkeypatch):
    import types

    seen = []

    def validate_task_parameters(paper, params):
        seen.append((paper, dict(params)))
        if params.get("bits") == 7:
            raise ValueError("bits=7: valid bits are 8, 16")

    monkeypatch.setitem(sys.modules, "hashrepro.params",
                        types.SimpleNamespace(validate_task_parameters=validate_task_parameters))
    assert len(sweep.build_grid("toy", bits=[8, 16])) == 2
    assert seen[0][0] == "toy" and seen[0][1]["bits"] == 8 and seen[0][1]["run_name"] == "toy_8b"
    with pytest.raises(ValueError, match="bits=7"):
        sweep.build_grid("toy", bits=[8, 7])


# --- per-task locks: two sweeps on one results folder ---------------------------------------------

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_task_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path):
    path = tmp_path / "r" / "x.json.lock"
    a = sweep.TaskLock(path)
    assert a.acquire() is None and a.held
    info = json.loads(path.read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    b = sweep.TaskLock(path)
    assert b.acquire()["pid"] == os.getpid() and not b.held  # a live owner: refused
    b.release()
    assert path.exists()  # releasing a lock one does not hold removes nothing
    a.release()
    assert not path.exists()
    # A dead owner on this host: taken over.
    path.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    assert b.acquire() is None and json.loads(path.read_text())["pid"] == os.getpid()
    b.release()
    # Another host's lock is never judged stale (its pid means nothing here).
    path.write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere.example"}))
    assert sweep.TaskLock(path).acquire()["host"] == "elsewhere.example"
    # An unreadable (half-written) lock: busy while fresh, stale once old.
    path.write_text("")
    assert sweep.TaskLock(path).acquire() == {}
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert sweep.TaskLock(path).acquire() is None


def test_sweep_skips_a_task_another_live_sweep_holds(toy_root):
    tasks = sweep.build_grid("toy", bits=[8, 16])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = toy_root / f"{tasks[0].record_path}.lock"
        lock.parent.mkdir(parents=True)
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        s = sweep.run_sweep(tasks, echo=lambda *_: None)
        assert s.ok and s.count("busy") == 1 and s.count("done") == 1, s.table()
        busy = next(r for r in s.results if r.status == "busy")
        assert busy.task == tasks[0] and f"pid {other.pid}" in busy.error
        assert not (toy_root / tasks[0].record_path).exists() and lock.exists()
        assert "1 running in another sweep" in s.table()
        assert not (toy_root / f"{tasks[1].record_path}.lock").exists()  # released after its run
    finally:
        other.kill()
        other.wait()
    # The other sweep died without cleaning up: its lock is stale and the task runs now.
    s2 = sweep.run_sweep(tasks, echo=lambda *_: None)
    assert s2.count("done") == 1 and s2.count("skipped") == 1, s2.table()
    assert not lock.exists()


@pytest.mark.slow
def test_two_concurrent_sweeps_run_each_task_once(toy_root):
    cmd = [sys.executable, "-m", "hashrepro.cli", "sweep", "toy", "--bits", "8", "16", "-p", "sleep", "3"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    done = [line.split()[-1] for out in outs for line in out.splitlines() if line.startswith("done ")]
    assert sorted(done) == ["toy/toy_16b_sleep-3", "toy/toy_8b_sleep-3"], outs


# --- records tied to code: a dirty tree is refused unless allowed ----------------------------------

def _git(root, *args):
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


def test_dirty_tree_is_refused_unless_allowed_and_then_the_diff_is_saved(toy_root):
    _git(toy_root, "init", "-q")
    _git(toy_root, "add", "notebooks")
    _git(toy_root, "commit", "-q", "-m", "toy")
    tasks = sweep.build_grid("toy", bits=[8])
    assert sweep.check_git_tree(toy_root)["dirty"] is False  # clean: nothing to refuse
    nb = toy_root / "notebooks" / "toy.ipynb"
    nb.write_text(nb.read_text().replace('"# toy"', '"# toy, edited"'))
    with pytest.raises(sweep.SweepError, match=r"uncommitted changes to 1 tracked file\(s\) "
                                               r"\(notebooks/toy.ipynb\).*--allow-dirty") as info:
        sweep.run_sweep(tasks, echo=lambda *_: None)
    assert "\n" not in str(info.value)
    assert not (toy_root / tasks[0].record_path).exists()
    s = sweep.run_sweep(tasks, echo=lambda *_: None, allow_dirty=True)
    assert s.ok and s.count("done") == 1
    sha = sweep.check_git_tree(toy_root, allow_dirty=True)["diff_sha256"]
    patch = toy_root / "results" / "patches" / f"{sha}.patch"
    assert "toy, edited" in patch.read_text()


def test_threads_per_run_follow_omp_num_threads_or_the_flag(monkeypatch):
    """The sweep's threads per run: --threads, else $OMP_NUM_THREADS, else cores / jobs; bad values are one line."""
    import hashrepro.sweep as S
    from hashrepro.cli import build_parser

    assert build_parser().parse_args(["sweep", "dnnh", "--threads", "1"]).threads == 1
    with pytest.raises(S.SweepError, match="threads must be a positive integer"):
        S.run_sweep([], threads=0, allow_dirty=True)
