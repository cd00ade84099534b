"""The command line: every error is one clear line and a non-zero exit (the traceback only with
``--debug``); options are honoured or refused, never dropped (issue 17, cases 4 and 5)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_sweep import _toy_root

ROOT = Path(__file__).resolve().parents[2]


def hashrepro(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HASHREPRO_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "hashrepro.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=120)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.strip()
    assert proc.returncode != 0, proc
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def toy_root(tmp_path, monkeypatch):
    root = _toy_root(tmp_path)
    monkeypatch.setenv("HASHREPRO_ROOT", str(root))
    return root


def test_missing_dataset_is_one_line_and_debug_shows_the_traceback(tmp_path):
    env = {"HASHREPRO_DATA": str(tmp_path)}
    proc = hashrepro("data", "show", "cifar10", env=env)
    err = one_line_error(proc)
    assert err.startswith("hashrepro: error: ") and "cifar10" in err and str(tmp_path) in err
    assert proc.returncode == 1
    dbg = hashrepro("--debug", "data", "show", "cifar10", env=env)
    assert dbg.returncode == 1 and "Traceback" in dbg.stderr
    assert hashrepro("data", "show", "cifar10", "--debug", env=env).stderr.count("Traceback") == 1


def test_unknown_dataset_and_missing_name_list_the_valid_ones():
    err = one_line_error(hashrepro("data", "show", "nope"))
    assert "unknown dataset 'nope'" in err and "cifar10" in err
    err = one_line_error(hashrepro("data", "show"))
    assert "give a dataset name" in err and "mnist5k" in err


def test_bench_refuses_paths_and_unknown_names():
    proc = hashrepro("bench", "../hashrepro/version")
    err = one_line_error(proc)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "no benchmark '../hashrepro/version'; valid: " in err and "metrics" in err and "index" in err
    assert "no benchmark 'nope'" in one_line_error(hashrepro("bench", "nope"))


def test_defaults_refuses_grid_options_and_honours_output_folders(toy_root):
    err = one_line_error(hashrepro("sweep", "toy", "--defaults", "--results-dir", "X", "--runs-dir", "Y",
                                   "--bits", "12"))
    assert "--defaults" in err and "--bits" in err
    out = hashrepro("sweep", "toy", "--defaults", "--results-dir", "X", "--runs-dir", "Y", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "papermill notebooks/toy.ipynb Y/toy.ipynb -p results_dir X -p run_name toy_defaults" in out.stdout
    plain = hashrepro("sweep", "toy", "--defaults", "--dry-run").stdout
    assert "book/runs/local/toy.ipynb -p results_dir results/local" in plain


@pytest.mark.parametrize("args, match", [
    (["--jobs", "-3", "--dry-run"], "argument --jobs: expected a positive integer, got -3"),
    (["--jobs", "0"], "argument --jobs: expected a positive integer, got 0"),
    (["--timeout", "0", "--dry-run"], "argument --timeout: expected a positive integer, got 0"),
    (["--connect-timeout", "-1"], "argument --connect-timeout: expected a positive number"),
    (["--scheduler", "tcp://x:1"], "--scheduler needs --engine dask"),
    (["-p", "lr", "1"], "unknown parameter"),
    (["--bits", "8", "-p", "bits", "16"], "with its own option"),
])
def test_bad_sweep_options_are_one_line_errors(toy_root, args, match):
    proc = hashrepro("sweep", "toy", *args)
    assert proc.returncode == 2
    assert match in one_line_error(proc)


def test_unreachable_scheduler_from_the_cli(toy_root):
    pytest.importorskip("dask.distributed")
    proc = hashrepro("sweep", "toy", "--bits", "8", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1",
                     "--connect-timeout", "1")
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1 within 1 s" in one_line_error(proc)


def test_failed_run_reason_is_printed(toy_root):
    proc = hashrepro("sweep", "toy", "--bits", "8", "-p", "fail", "true")
    assert proc.returncode == 1
    assert "RuntimeError: asked to fail" in proc.stdout


def test_book_retitle_refuses_unknown_chapters():
    assert "unknown chapter(s) ['nope']" in one_line_error(hashrepro("book", "retitle", "nope"))
