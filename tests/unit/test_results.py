"""Tests for hashrepro.results: run records, atomic writes, loading, paper tables, comparison."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hashrepro import results as R
from hashrepro.results import (compare, format_mean_std, is_complete, load_records, make_record, paper_table,
                               records_table, run_name, save_run)


CLEAN = {"commit": "0" * 40, "dirty": False, "diff_sha256": None, "patch": None}


def rec(method="toy-a", dataset="digits", bits=16, seed=0, scale="default", map_=0.5, paper="toy", **kw):
    kw.setdefault("git", CLEAN)  # records of a clean tree (the shared checkout may be dirty)
    return make_record(paper=paper, method=method, dataset=dataset, bits=bits, seed=seed, scale=scale,
                       config={"dataset": dataset, "bits": bits, "lr": np.float32(0.1), "path": Path("x")},
                       protocol={"split": "per_class", "n_query": np.int64(100), "topk": None},
                       metrics={"map": map_, "precision_radius2": np.float64(0.25)},
                       curves={"pr": {"radius": np.arange(3), "precision": np.array([1.0, 0.5, 0.25])}},
                       wall_time_s=1.5, device="cpu (2 threads)", command="pytest", **kw)


# --------------------------------------------------------------------------- records
def test_make_record_fills_provenance_and_is_json_ready():
    r = rec()
    assert r["schema"] == 1 and r["complete"] is True
    assert r["paper"] == "toy" and r["bits"] == 16 and r["seed"] == 0
    assert r["metrics"] == {"map": 0.5, "precision_radius2": 0.25}
    assert r["curves"]["pr"]["radius"] == [0, 1, 2]
    assert r["config"]["lr"] == pytest.approx(0.1) and r["config"]["path"] == "x"
    assert r["protocol"]["n_query"] == 100 and type(r["protocol"]["n_query"]) is int
    # this test runs inside the git checkout
    assert r["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", r["git_commit"])
    assert r["git_dirty"] in (True, False, None)
    for k in ("python", "numpy", "torch", "hashrepro"):
        assert k in r["versions"]
    assert r["versions"]["numpy"] == np.__version__
    assert r["started"] <= r["finished"]
    assert json.loads(json.dumps(r)) == r


def test_git_info_in_checkout_and_outside(tmp_path):
    info = R.git_info()
    if info["commit"] is not None:
        assert re.fullmatch(r"[0-9a-f]{40}", info["commit"]) and isinstance(info["dirty"], bool)
    assert R.git_info(tmp_path) == {"commit": None, "dirty": None}


def test_make_record_validation():
    with pytest.raises(ValueError, match=r"metrics\['curve'\] must be a number"):
        make_record("toy", "m", "d", 8, 0, "smoke", {}, {}, {"curve": [1, 2]}, {}, 1.0, "cpu")
    with pytest.raises(ValueError, match="bits must be a non-negative integer"):
        make_record("toy", "m", "d", -1, 0, "smoke", {}, {}, {}, {}, 1.0, "cpu")
    with pytest.raises(ValueError, match="method must be a non-empty string"):
        make_record("toy", "", "d", 8, 0, "smoke", {}, {}, {}, {}, 1.0, "cpu")
    with pytest.raises(ValueError, match="wall_time_s"):
        make_record("toy", "m", "d", 8, 0, "smoke", {}, {}, {}, {}, -1.0, "cpu")
    r = make_record("toy", "m", "d", 8, 0, "smoke", {}, {}, {"a": None, "b": True, "c": np.int32(3)}, None, 0,
                    "cpu")
    assert math.isnan(r["metrics"]["a"]) and r["metrics"]["b"] == 1.0 and r["metrics"]["c"] == 3.0


def test_run_name():
    assert run_name("dnnh-dem", "cifar10", 48, 0, "default") == "dnnh-dem_cifar10_48b_seed0_default"
    assert run_name("mch-dch", "mosaic", 32, 1, "smoke", sigma=0.5, base="dch") == \
        "mch-dch_mosaic_32b_seed1_smoke_base-dch_sigma-0.5"
    assert run_name("a b/c", "d", 8, 0, "s") == "a-b-c_d_8b_seed0_s"


# --------------------------------------------------------------------------- atomic writes
def test_save_run_writes_paper_folder_and_round_trips(tmp_path):
    r = rec()
    p = save_run(r, tmp_path)
    assert p == tmp_path / "toy" / "toy-a_digits_16b_seed0_default.json"
    assert is_complete(p)
    assert R.load_run(p) == r
    p2 = save_run(r, tmp_path, "custom")
    assert p2.name == "custom.json" and is_complete(p2)
    assert save_run(r, tmp_path, "custom.json") == p2
    assert not [f for f in (tmp_path / "toy").iterdir() if f.name.startswith(".")]  # no temp files left
    with pytest.raises(ValueError, match="plain file stem"):
        save_run(r, tmp_path, "../escape")
    with pytest.raises(ValueError, match="lacks"):
        save_run({"paper": "toy"}, tmp_path)


def test_relative_results_dir_is_taken_from_hashrepro_root(tmp_path, monkeypatch):
    monkeypatch.setenv("HASHREPRO_ROOT", str(tmp_path))
    p = save_run(rec(), "results/local")
    assert p == tmp_path.resolve() / "results" / "local" / "toy" / "toy-a_digits_16b_seed0_default.json"
    assert len(load_records("results/local")) == 1


def test_crash_during_write_leaves_previous_record_intact(tmp_path, monkeypatch):
    good = save_run(rec(map_=0.5), tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt("killed during rename")

    monkeypatch.setattr(R.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_run(rec(map_=0.9), tmp_path)
    monkeypatch.undo()
    assert is_complete(good) and R.load_run(good)["metrics"]["map"] == 0.5
    assert [f.name for f in (tmp_path / "toy").iterdir()] == [good.name]  # temp file cleaned up


def test_is_complete_rejects_partial_and_corrupt_files(tmp_path):
    p = save_run(rec(), tmp_path)
    text = p.read_text()
    cases = {
        "truncated.json": text[: len(text) // 2],
        "empty.json": "",
        "garbage.json": "\x00\xff not json",
        "list.json": "[1, 2]",
        "incomplete.json": json.dumps({**json.loads(text), "complete": False}),
        "nokey.json": json.dumps({k: v for k, v in json.loads(text).items() if k != "metrics"}),
        "stringtrue.json": json.dumps({**json.loads(text), "complete": "true"}),
    }
    for name, content in cases.items():
        f = tmp_path / "toy" / name
        f.write_text(content, encoding="latin-1")
        assert not is_complete(f), name
    assert not is_complete(tmp_path / "missing.json")
    assert not is_complete(tmp_path)  # a folder
    # a crashed writer's temp file next to the records
    (tmp_path / "toy" / ".toy-a_digits.abc123.tmp").write_text(text[:10])
    df = load_records(tmp_path)
    assert len(df) == 1 and df.attrs["skipped"] == len(cases)
    df_all = load_records(tmp_path, include_incomplete=True)
    assert sorted(df_all["complete"].tolist()) == [False, False, False, True]  # readable dicts kept


# --------------------------------------------------------------------------- loading
def test_load_records_round_trip(tmp_path):
    recs = [rec(method=m, bits=b, seed=s, map_=0.1 * b / 16 + 0.01 * s)
            for m in ("toy-b", "toy-a") for b in (16, 32) for s in (1, 0)]
    for r in recs:
        save_run(r, tmp_path)
    df = load_records(tmp_path)
    assert len(df) == len(recs)
    assert list(df.columns[:4]) == ["paper", "method", "dataset", "bits"]
    assert df["method"].tolist() == ["toy-a"] * 4 + ["toy-b"] * 4
    assert df[["bits", "seed"]].values.tolist()[:4] == [[16, 0], [16, 1], [32, 0], [32, 1]]
    assert {"metrics.map", "metrics.precision_radius2", "protocol.split", "config.lr", "record", "path"} <= set(df)
    row = df.iloc[0]
    assert row["metrics.map"] == pytest.approx(0.1)
    assert row["record"] == R.load_run(row["path"])
    assert row["complete"] is True or row["complete"] == True  # noqa: E712


def test_load_records_missing_or_empty_folder(tmp_path):
    for d in (tmp_path / "nope", tmp_path):
        df = load_records(d)
        assert len(df) == 0 and {"method", "dataset", "bits", "record"} <= set(df.columns)


# --------------------------------------------------------------------------- paper tables
TOY_CSV = """table,method,dataset,bits,metric,value,note
Table 9,toy-a,digits,16,map,0.40,"mAP@all"
Table 9,toy-a,digits,32,map,0.50,
Table 9,toy-b,digits,16,map,0.30,
Table 9,toy-a,digits,16,precision_radius2,0.70,
"""


@pytest.fixture
def papers_dir(tmp_path, monkeypatch):
    d = tmp_path / "papers"
    d.mkdir()
    (d / "toy_table9.csv").write_text(TOY_CSV)
    (d / "toy_table10.csv").write_text("source,method,dataset,bits,metric,value\nTable 10,toy-a,digits,8,map,55\n")
    import hashrepro.paper_vs_ours as PV

    monkeypatch.setattr(PV, "PAPERS_DIR", d)  # paper tables live in hashrepro.paper_vs_ours
    return d


def test_paper_table(papers_dir):
    t = paper_table("toy_table9")
    assert list(t.columns[:8]) == ["table", "source", "method", "dataset", "bits", "metric", "value", "note"]
    assert len(t) == 4 and t["bits"].dtype.kind == "i" and t["value"].dtype.kind == "f"
    assert (t["source"] == "Table 9").all() and t["note"].tolist()[:2] == ["mAP@all", ""]
    t10 = paper_table("toy_table10")
    assert t10["table"].tolist() == ["Table 10"]
    both = paper_table("toy")  # prefix: every toy_*.csv
    assert len(both) == 5
    assert len(paper_table(str(papers_dir / "toy_table9.csv"))) == 4
    assert R.paper_tables() == ["toy_table10", "toy_table9"]
    with pytest.raises(FileNotFoundError, match="available: toy_table10, toy_table9"):
        paper_table("nope")


def test_shipped_paper_tables_load():
    for name in R.paper_tables():
        t = paper_table(name)
        assert len(t) and t["value"].notna().any(), name


def test_compare_mean_std_over_seeds(tmp_path, papers_dir):
    maps = {0: 0.41, 1: 0.43, 2: 0.45}
    for s, m in maps.items():
        save_run(rec(method="toy-a", bits=16, seed=s, map_=m), tmp_path)
    save_run(rec(method="toy-a", bits=32, seed=0, map_=0.52), tmp_path)
    # smoke runs never mix with default ones
    save_run(rec(method="toy-a", bits=16, seed=5, scale="smoke", map_=0.01), tmp_path)
    # a smoke-only cell is still shown, marked by its scale
    save_run(rec(method="toy-b", bits=16, seed=0, scale="smoke", map_=0.2), tmp_path)
    records = load_records(tmp_path)
    cmp = compare(paper_table("toy_table9"), records, metric="map")
    assert list(cmp.columns[:9]) == ["method", "dataset", "bits", "paper", "ours_mean", "ours_std", "n_seeds",
                                     "delta", "scale"]
    assert len(cmp) == 3  # the precision_radius2 row is another metric
    a16 = cmp[(cmp.method == "toy-a") & (cmp.bits == 16)].iloc[0]
    assert a16["paper"] == pytest.approx(0.40)
    assert a16["ours_mean"] == pytest.approx(np.mean(list(maps.values())))
    assert a16["ours_std"] == pytest.approx(np.std(list(maps.values()), ddof=1))
    assert a16["n_seeds"] == 3 and a16["scale"] == "default"
    assert a16["delta"] == pytest.approx(a16["ours_mean"] - 0.40)
    a32 = cmp[(cmp.method == "toy-a") & (cmp.bits == 32)].iloc[0]
    assert a32["n_seeds"] == 1 and math.isnan(a32["ours_std"]) and a32["ours_mean"] == pytest.approx(0.52)
    b16 = cmp[cmp.method == "toy-b"].iloc[0]
    assert b16["scale"] == "smoke" and b16["ours_mean"] == pytest.approx(0.2)
    # explicit scale
    only_smoke = compare(paper_table("toy_table9"), records, scale="smoke")
    assert only_smoke.set_index(["method", "bits"]).loc[("toy-a", 16), "ours_mean"] == pytest.approx(0.01)
    assert only_smoke.set_index(["method", "bits"]).loc[("toy-a", 32), "n_seeds"] == 0
    # other metric
    p = compare(paper_table("toy_table9"), records, metric="precision_radius2")
    assert len(p) == 1 and p["ours_mean"].iloc[0] == pytest.approx(0.25) and p["n_seeds"].iloc[0] == 3


def test_compare_maps_dedupes_and_scales(tmp_path, papers_dir):
    save_run(rec(method="mine", bits=8, seed=0, map_=0.5), tmp_path, "first")
    save_run(rec(method="mine", bits=8, seed=0, map_=0.6), tmp_path, "rerun")  # same seed: latest wins
    records = load_records(tmp_path)
    records.loc[records["path"].str.endswith("first.json"), "finished"] = "2000-01-01T00:00:00+00:00"
    cmp = compare(paper_table("toy_table10"), records, method_map={"mine": "toy-a"}, paper_scale=0.01)
    row = cmp.iloc[0]
    assert row["paper"] == pytest.approx(0.55) and row["n_seeds"] == 1
    assert row["ours_mean"] == pytest.approx(0.6) and row["delta"] == pytest.approx(0.05)
    outer = compare(paper_table("toy_table9"), records, how="outer", method_map={"mine": "toy-a"})
    assert len(outer) == 4 and outer["paper"].isna().sum() == 1  # the 8-bit run has no paper number
    empty = compare(paper_table("toy_table9"), load_records(tmp_path / "none"))
    assert len(empty) == 3 and (empty["n_seeds"] == 0).all() and empty["ours_mean"].isna().all()
    with pytest.raises(ValueError, match="how must be"):
        compare(paper_table("toy_table9"), records, how="right")


def test_companion_column_tie_aware(tmp_path, papers_dir):
    """Records that carry map_tie_aware show it per row; older ones give "—"; n is per metric."""
    for s, m in {0: 0.30, 1: 0.34}.items():
        r = rec(method="toy-a", bits=16, seed=s)
        r["metrics"]["map_tie_aware"] = m
        save_run(r, tmp_path)
    save_run(rec(method="toy-a", bits=16, seed=2), tmp_path)  # predates the metric
    save_run(rec(method="toy-a", bits=32, seed=0), tmp_path)
    records = load_records(tmp_path)
    cmp = compare(paper_table("toy_table9"), records, metric="map")
    cells = dict(zip(zip(cmp["method"], cmp["bits"]), R.companion_column(cmp, records)))
    assert cells[("toy-a", 16)] == format_mean_std(0.32, np.std([0.30, 0.34], ddof=1), 3, 2)
    assert cells[("toy-a", 32)] == "—"
    assert cmp.set_index(["method", "bits"]).loc[("toy-a", 16), "n_seeds"] == 3
    renamed = R.companion_column(cmp, R.load_records(tmp_path).assign(method="mine"), method_map={"mine": "toy-a"})
    assert renamed == R.companion_column(cmp, records)


def test_format_mean_std_and_records_table(tmp_path):
    assert format_mean_std(0.71234, 0.00456) == "0.712 ± 0.005"
    assert format_mean_std(0.7, float("nan")) == "0.700"
    assert format_mean_std(0.7, None, digits=1, n=1) == "0.7 (n=1)"
    assert format_mean_std(float("nan"), 0.1) == "—"
    for s, m in enumerate((0.40, 0.42)):
        save_run(rec(method="toy-a", bits=16, seed=s, map_=m), tmp_path)
    save_run(rec(method="toy-b", bits=32, seed=0, map_=0.3), tmp_path)
    save_run(rec(method="toy-b", bits=32, seed=0, dataset="other", map_=0.9), tmp_path)
    t = records_table(load_records(tmp_path), "map", index="method", columns="bits", dataset="digits")
    assert t.loc["toy-a", 16] == "0.410 ± 0.014"
    assert t.loc["toy-b", 32] == "0.300"
    assert pd.isna(t.loc["toy-a", 32])
    t2 = records_table(load_records(tmp_path), index=["dataset", "method"], columns="bits", show_n=True)
    assert t2.loc[("other", "toy-b"), 32] == "0.900 (n=1)"
    assert records_table(load_records(tmp_path / "none")).empty
    for method, seed in (("toy-c", 0), ("toy-a", 2)):
        flagged = rec(method=method, bits=16, seed=seed, map_=0.9)
        flagged["flags"] = ["constant_bits: 9 of 16 bits take one value"]
        save_run(flagged, tmp_path)
    t3 = records_table(load_records(tmp_path), "map", index="method", columns="bits", dataset="digits")
    assert t3.loc["toy-a", 16] == "0.410 ± 0.014" and "toy-c" not in t3.index  # flagged runs never enter a mean


def test_fsync_and_replace_are_used(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(R.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(R.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    save_run(rec(), tmp_path)
    assert calls[:2] == ["fsync", "replace"]


# --------------------------------------------------------------------------- provenance: code at the start
def _git(repo, *args):
    import subprocess

    env = {**os.environ, "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True, env=env)


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    (r / "results" / "toy").mkdir(parents=True)
    _git(tmp_path, "init", "-q", str(r))
    (r / "code.py").write_text("x = 1\n")
    (r / "results" / "toy" / "a.json").write_text("{}\n")
    _git(r, "add", ".")
    _git(r, "commit", "-q", "-m", "first")
    return r


def test_git_state_clean_dirty_and_outside(repo, tmp_path):
    clean = R.git_state(repo)
    assert re.fullmatch(r"[0-9a-f]{40}", clean["commit"])
    assert clean == {"commit": clean["commit"], "dirty": False, "diff_sha256": None, "patch": None}
    # run outputs (results/, book/runs/) are not code: changing them leaves the tree clean
    (repo / "results" / "toy" / "a.json").write_text('{"changed": 1}\n')
    assert R.git_state(repo)["dirty"] is False
    (repo / "code.py").write_text("x = 2\n")
    dirty = R.git_state(repo)
    assert dirty["commit"] == clean["commit"] and dirty["dirty"] is True
    assert "-x = 1" in dirty["patch"] and "+x = 2" in dirty["patch"] and "a.json" not in dirty["patch"]
    import hashlib

    assert dirty["diff_sha256"] == hashlib.sha256(dirty["patch"].encode()).hexdigest()
    assert R.git_state(tmp_path / "nowhere") == {"commit": None, "dirty": None, "diff_sha256": None, "patch": None}


def test_record_keeps_the_git_state_of_the_start_and_saves_the_patch(repo, tmp_path):
    (repo / "code.py").write_text("x = 2\n")
    start = R.start_run(repo)  # dirty at the start ...
    _git(repo, "commit", "-q", "-am", "second")  # ... committed while the run goes on
    r = rec(started=start, git=None)
    assert r["git_commit"] == start.commit and r["git_dirty"] is True and r["git_read_at"] == "start"
    assert r["started"] == start.started and r["git_patch"] == start.git["patch"]
    p = save_run(r, tmp_path / "out")
    saved = R.load_run(p)
    rel = f"patches/{start.git['diff_sha256']}.patch"  # beside the paper folders, as hashrepro.sweep saves it
    assert saved["git_patch"] == rel and saved["git_diff_sha256"] == start.git["diff_sha256"]
    patch = (tmp_path / "out" / rel).read_text()
    assert patch == start.git["patch"]
    # the saved patch rebuilds the code the run started with
    _git(repo, "checkout", "-q", start.commit)
    (repo / "patch.diff").write_text(patch)
    _git(repo, "apply", "patch.diff")
    assert (repo / "code.py").read_text() == "x = 2\n"
    # a second record with the same diff reuses the file; a clean record has no patch
    save_run(rec(seed=1, started=start, git=None), tmp_path / "out")
    assert len(list((tmp_path / "out" / "patches").iterdir())) == 1
    assert R.load_run(save_run(rec(seed=2), tmp_path / "out"))["git_patch"] is None


def test_make_record_without_a_start_state_reads_git_at_finish():
    r = make_record("toy", "m", "d", 8, 0, "smoke", {}, {}, {}, None, 0.0, "cpu")
    assert r["git_read_at"] == "finish"


def test_reproduce_command_from_parameters_or_config(tmp_path):
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": [
        'dataset = "mnist5k"\n', "bits = 48\n", "seed = 0\n", 'scale = "default"\n', 'variant = "dem"\n',
        "iterations = None\n", "lr = 0.01\n", 'device = "auto"\n', 'results_dir = "results/local"\n',
        "run_name = None\n", "grid = [1, 2]\n"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "toy.ipynb"
    path.write_text(json.dumps(nb))
    config = {"dataset": "cifar10", "bits": 12, "seed": 1, "scale": "default", "variant": "dem", "iterations": 1200,
              "lr": 0.001, "device": "cpu", "width": 0.25, "grid": [1, 3], "results_dir": "x", "run_name": "y"}
    cmd = R.reproduce_command("toy", config, notebook=path)
    assert cmd == ("papermill notebooks/toy.ipynb out.ipynb -p dataset cifar10 -p bits 12 -p seed 1 -p scale default "
                   "-p iterations 1200 -p lr 0.001 -y '{\"grid\": [1, 3]}'")
    with pytest.raises(ValueError, match="no notebook .* for paper 'nope'; notebooks:"):
        R.reproduce_command("nope", config)


def test_reproduce_command_from_a_notebooks_globals_leaves_private_names_out():
    """The notebooks pass ``globals()``: the parameters cell's ``_declared = dict(globals())``
    snapshot (IPython's history and all) is no parameter and must not end up in the command."""
    from hashrepro.paths import notebooks_root

    for paper in ("ddh", "mch", "dnnh", "drsch"):
        g = {"dataset": "cifar10", "bits": 16, "seed": 0, "scale": "default", "_declared": {"In": ["x"]},
             "_ih": ["x"], "In": ["x"], "Out": {}}
        cmd = R.reproduce_command(paper, g)
        assert cmd == (f"papermill notebooks/{paper}.ipynb out.ipynb -p dataset cifar10 -p bits 16 -p seed 0 "
                       "-p scale default"), cmd
        assert (notebooks_root() / f"{paper}.ipynb").is_file()


def test_parameters_cell_defaults_one_parser():
    from hashrepro.provenance import parameters_cell_defaults

    src = 'bits = 48\nlr = 1e-3\nks = (1, 2)\nroot = os.getcwd()\n_declared = dict(globals())\nx, y = 1, 2\n'
    assert parameters_cell_defaults(src) == {"bits": 48, "lr": 1e-3, "ks": (1, 2), "root": "os.getcwd()"}
    assert parameters_cell_defaults(src, non_literal="skip") == {"bits": 48, "lr": 1e-3, "ks": (1, 2)}
    assert parameters_cell_defaults("bits = (") == {}
    with pytest.raises(ValueError, match="non_literal must be 'source' or 'skip'"):
        parameters_cell_defaults(src, non_literal="drop")


def test_every_chapter_gets_a_command_from_its_config():
    """ddh records had none: make_record now rebuilds one from the config for every chapter."""
    for paper, cfg in (("ddh", {"dataset": "cifar10", "bits": 16, "seed": 2, "scale": "default", "k1": 15,
                                "features": "contrastive", "task": "retrieval"}),
                       ("mch", {"dataset": "mosaic-cifar10", "bits": 32, "seed": 0, "scale": "default",
                                "base": "hashnet", "xi": 0.5})):
        r = make_record(paper, "m", cfg["dataset"], cfg["bits"], cfg["seed"], "default", cfg, {}, {}, None, 1.0,
                        "cpu", git=CLEAN)
        assert r["command"].startswith(f"papermill notebooks/{paper}.ipynb out.ipynb -p dataset {cfg['dataset']} "
                                       f"-p bits {cfg['bits']} -p seed {cfg['seed']} -p scale default")
    assert "-p features contrastive" in make_record("ddh", "ddh", "cifar10", 16, 0, "default", {
        "dataset": "cifar10", "bits": 16, "seed": 0, "scale": "default", "features": "contrastive"}, {}, {}, None, 1.0,
        "cpu", git=CLEAN)["command"]
    assert rec()["command"] == "pytest"  # the caller's command wins


def test_provenance_status():
    from datetime import datetime, timezone

    early = lambda sha: datetime(2026, 1, 1, tzinfo=timezone.utc)  # noqa: E731
    late = lambda sha: datetime(2027, 1, 1, tzinfo=timezone.utc)  # noqa: E731
    new = {"command": "papermill ...", "git_commit": "a" * 40, "git_dirty": False, "git_diff_sha256": None,
           "git_read_at": "start", "started": "2026-06-01T00:00:00+00:00"}
    assert R.provenance_status(new, late) == "clean"  # read at the start: the commit time does not matter
    assert R.provenance_status({**new, "git_dirty": True, "git_diff_sha256": "b" * 64}) == "dirty: patch " + "b" * 12
    old = {k: v for k, v in new.items() if k != "git_read_at"}
    assert R.provenance_status(old, early) == "clean"
    assert R.provenance_status(old, late) == "legacy: commit made after the run started"
    assert R.provenance_status(old, lambda sha: None) == "legacy: commit time unknown"
    assert R.provenance_status({**old, "command": None, "git_dirty": True}, early) == \
        "legacy: no command, dirty tree without a saved diff"
    assert R.provenance_status({"started": "2026-06-01"}) == "legacy: no command, commit unknown"
    with pytest.raises(ValueError, match="record must be a run record"):
        R.provenance_status(["not", "a", "record"])


# --------------------------------------------------------------------------- one run-name builder
def _names_of(rec: dict, stem: str) -> list[str]:
    """The names the builders give ``rec``: the sweep's (head = paper, or the method for the
    baselines runner) and the record's (head = method), with the extra parameters the stem names."""
    from hashrepro.run_names import _record_part, build_run_name, run_name_for

    cfg = rec.get("config") or {}
    out = []
    for src in (cfg, rec):
        axes = {k: src.get(k, rec.get(k)) for k in ("dataset", "bits", "seed", "scale")}
        pool = {k: v for k, v in rec.items() if k not in ("method", "paper")}
        pool.update(cfg.get("overrides") or {})
        pool.update(cfg)
        pool = {k: v for k, v in pool.items() if k not in axes}
        sweep_keys = [k for k in pool if f"_{k}-" in stem]
        record_keys = [k for k in pool if f"_{_record_part(k)}-" in stem]
        head = rec["method"] if rec["paper"] == "baselines" else rec["paper"]
        out.append(run_name_for(head, {**axes, **{k: pool[k] for k in sweep_keys}}))
        out.append(build_run_name(rec["method"], axes, {k: pool[k] for k in record_keys}))
    return out


def test_every_committed_record_maps_to_its_own_file_name():
    """The one run-name builder (hashrepro.run_names) gives every committed record under results/
    the name of its own file (results.run_name, sweep.run_name_for and the callers built on them:
    the baselines runner, paper_grid, convergence)."""
    from hashrepro.paths import results_root

    files = sorted(p for p in results_root().glob("*/*.json")
                   if not p.name.startswith(".") and p.parent.name != "benchmarks")  # benchmark logs: not runs
    assert len(files) > 500
    wrong = []
    for p in files:
        rec = json.loads(p.read_text())
        if p.stem not in _names_of(rec, p.stem):
            wrong.append(p.relative_to(results_root()).as_posix())
    assert not wrong, f"{len(wrong)} record(s) no longer map to their file name: {wrong[:5]}"


def test_run_name_styles_and_bad_style():
    from hashrepro.run_names import build_run_name, run_name, run_name_for

    assert run_name("adsh-efficientnet_lite0", "mosaic-cifar10", 32, 0, "default") == \
        "adsh-efficientnet-lite0_mosaic-cifar10_32b_seed0_default"
    assert run_name_for("dnnh", {"seed": 0, "bits": 12, "dataset": "cifar10", "scale": "default",
                                 "backbone": "efficientnet_lite0", "results_dir": "r", "run_name": None,
                                 "device": "cpu"}) == "dnnh_cifar10_12b_seed0_default_backbone-efficientnet_lite0"
    assert R.run_name is run_name and R.run_name("m", "d", 8, 1, "smoke", lr=0.5) == "m_d_8b_seed1_smoke_lr-0.5"
    # a list value (notebook parameter sens_sigmas=[0.3, 0.5, 0.7]): its parts joined by "-"
    assert run_name_for("mch", {"seed": 0, "bits": 32, "dataset": "m", "scale": "default",
                                "sens_sigmas": [0.3, 0.5, 0.7]}) == "mch_m_32b_seed0_default_sens_sigmas-0.3-0.5-0.7"
    assert run_name("mch-dch", "m", 32, 0, "default", sens_sigmas=(0.3, 0.5)) == \
        "mch-dch_m_32b_seed0_default_sens-sigmas-0.3-0.5"
    with pytest.raises(ValueError, match="style must be one of"):
        build_run_name("x", {}, style="other")
