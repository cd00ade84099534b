"""hashrepro.tree_manifest: a copy of a committed tree without .git is tied to its commit only when
every tracked file (outside the run outputs) hashes as git hashed it."""
import json
import os
import shutil
import subprocess

import pytest

from hashrepro import provenance, tree_manifest as TM
from hashrepro.results import make_record


def _git(cwd, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    (r / "results" / "toy").mkdir(parents=True)
    (r / "pkg").mkdir()
    _git(tmp_path, "init", "-q", str(r))
    (r / "pkg" / "code.py").write_text("x = 1\n")
    (r / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (r / "run.sh").chmod(0o755)
    (r / "bytes.bin").write_bytes(bytes(range(256)) * 3)
    os.symlink("pkg/code.py", r / "link")
    (r / "results" / "toy" / "a.json").write_text("{}\n")
    _git(r, "add", ".")
    _git(r, "commit", "-q", "-m", "first")
    return r


def _copy_without_git(repo, dst):
    shutil.copytree(repo, dst, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    return dst


def test_blob_sha1_matches_git_hash_object(repo):
    for name in ("pkg/code.py", "run.sh", "bytes.bin"):
        assert TM.blob_sha1(repo / name) == _git(repo, "hash-object", name).strip()
    # a symbolic link is stored as its target's text
    assert TM.blob_sha1(repo / "link", "120000") == _git(repo, "ls-files", "-s", "link").split()[1]


def test_write_then_verify_clean_copy(repo, tmp_path):
    m = TM.write_manifest(tmp_path / "m.json", repo)
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert m["commit"] == head and set(m["files"]) == {"pkg/code.py", "run.sh", "bytes.bin", "link",
                                                        "results/toy/a.json"}
    assert json.loads((tmp_path / "m.json").read_text()) == m
    copy = _copy_without_git(repo, tmp_path / "copy")
    v = TM.verify_manifest(tmp_path / "m.json", copy)
    assert v == {"commit": head, "dirty": False, "diff_sha256": None, "patch": None, "source": "manifest"}
    # run outputs are left out of the check, and untracked files are ignored, as git does
    (copy / "results" / "toy" / "a.json").write_text('{"changed": 1}\n')
    shutil.rmtree(copy / "results")
    (copy / "untracked.txt").write_text("new\n")
    assert TM.verify_manifest(tmp_path / "m.json", copy)["dirty"] is False


def test_changed_or_missing_file_is_dirty(repo, tmp_path):
    TM.write_manifest(tmp_path / "m.json", repo)
    copy = _copy_without_git(repo, tmp_path / "copy")
    (copy / "pkg" / "code.py").write_text("x = 2\n")
    (copy / "bytes.bin").unlink()
    v = TM.verify_manifest(tmp_path / "m.json", copy)
    assert v["dirty"] is True and v["source"] == "manifest"
    assert "changed: pkg/code.py" in v["patch"] and "missing: bytes.bin" in v["patch"]
    assert len(v["diff_sha256"]) == 64


def test_write_refuses_a_dirty_tree_and_a_non_checkout(repo, tmp_path):
    (repo / "pkg" / "code.py").write_text("x = 3\n")
    with pytest.raises(ValueError, match="dirty; commit first"):
        TM.write_manifest(tmp_path / "m.json", repo)
    with pytest.raises(ValueError, match="not a git checkout"):
        TM.write_manifest(tmp_path / "m.json", tmp_path / "nowhere")
    assert not (tmp_path / "m.json").exists()


def test_git_state_falls_back_to_the_manifest_and_records_say_so(repo, tmp_path, monkeypatch):
    TM.write_manifest(tmp_path / "m.json", repo)
    copy = _copy_without_git(repo, tmp_path / "copy")
    monkeypatch.delenv(TM.MANIFEST_ENV, raising=False)
    assert provenance.git_state(copy)["commit"] is None          # no .git, no manifest: unknown
    monkeypatch.setenv(TM.MANIFEST_ENV, str(tmp_path / "m.json"))
    state = provenance.git_state(copy)
    assert state["commit"] == _git(repo, "rev-parse", "HEAD").strip() and state["dirty"] is False
    # the manifest wins over a .git that is there (the GPU machine's copy held a stale one)
    assert provenance.git_state(repo)["source"] == "manifest"
    monkeypatch.delenv(TM.MANIFEST_ENV)
    assert "source" not in provenance.git_state(repo)              # without it, git is asked
    rec = make_record("toy", "m", "d", 8, 0, "smoke", {}, {}, {"map": 0.5}, None, 1.0, "cpu",
                      started=provenance.RunStart("t", state))
    assert rec["git_commit"] == state["commit"] and rec["git_dirty"] is False and rec["git_source"] == "manifest"


def test_cli_write_and_verify(repo, tmp_path, capsys):
    assert TM.main(["write", str(tmp_path / "m.json"), "--root", str(repo)]) == 0
    copy = _copy_without_git(repo, tmp_path / "copy")
    assert TM.main(["verify", str(tmp_path / "m.json"), "--root", str(copy)]) == 0
    assert "clean:" in capsys.readouterr().out
    (copy / "run.sh").write_text("changed\n")
    assert TM.main(["verify", str(tmp_path / "m.json"), "--root", str(copy)]) == 1
    assert "changed: run.sh" in capsys.readouterr().out
    assert TM.main(["verify", str(tmp_path / "missing.json")]) == 2
