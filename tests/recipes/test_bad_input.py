"""Bad input, corrupt data and odd options fail loudly with one clear message (issue 17).

Every corrupt-archive test builds a small archive in a tmp dir; the real mirrors are never touched.
"""
from __future__ import annotations

import numpy as np
import pytest

from hashrepro.index import BucketIndex
from hashrepro.metrics import (evaluate, f1_bucket_curve, mean_average_precision, precision_at_k,
                               precision_recall_within_radius)

RNG = np.random.default_rng(17)


# --------------------------------------------------------------------------- case 6: library edges
def _codes(n, b=16):
    return RNG.integers(0, 2, (n, b), dtype=np.uint8)


def test_map_on_an_empty_query_set_is_an_error_not_nan():
    db, ydb = _codes(20), RNG.integers(0, 3, 20)
    with pytest.raises(ValueError, match=r"query set is empty \(0 queries\)"):
        mean_average_precision(_codes(0), db, np.zeros(0, np.int64), ydb)
    with pytest.raises(ValueError, match="query set is empty"):
        evaluate(_codes(0), db, np.zeros(0, np.int64), ydb)
    with pytest.raises(ValueError, match="query set is empty"):
        precision_at_k(np.zeros((0, 20)), np.zeros((0, 20), bool), ks=[1])
    with pytest.raises(ValueError, match="query set is empty"):
        f1_bucket_curve(_codes(0), db, np.zeros(0, np.int64), ydb, ks=[1, 2])


@pytest.mark.parametrize("bad", [0, -4, 2.5, True, "8"])
def test_chunk_size_must_be_a_positive_int(bad):
    q, db = _codes(5), _codes(20)
    yq, ydb = RNG.integers(0, 3, 5), RNG.integers(0, 3, 20)
    with pytest.raises(ValueError, match="chunk_size must be None .* or a positive int"):
        mean_average_precision(q, db, yq, ydb, chunk_size=bad)
    with pytest.raises(ValueError, match="chunk_size"):
        precision_recall_within_radius(query_codes=q, db_codes=db, query_labels=yq, db_labels=ydb,
                                       chunk_size=bad)
    assert mean_average_precision(q, db, yq, ydb, chunk_size=2) == pytest.approx(
        mean_average_precision(q, db, yq, ydb))


def test_enumerate_on_300_bit_codes_is_refused_quickly():
    import time

    db = _codes(50, 300)
    q = 1 - db[:1]  # every code lies ~150 bits away: Algorithm 1 would probe ~C(300, 150) buckets
    idx = BucketIndex(db)
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"method='enumerate' would probe .* buckets for query 0 .*"
                                         r"use method='scan' or 'auto'"):
        idx.search(q, 5, method="enumerate")
    with pytest.raises(ValueError, match=r"method='enumerate' would probe .* within radius 5"):
        idx.range_search(q, 5, method="enumerate")
    assert time.perf_counter() - t < 5
    # the same search with the other engines, and enumerate where the ball is small, still work
    items, visited = idx.search(q, 5, method="scan")
    assert len(items[0]) == 5 and visited[0] > 2**64
    near = db[:2]
    items_e, vis_e = idx.search(near, 1, method="enumerate")
    items_s, vis_s = idx.search(near, 1, method="scan")
    assert [a.tolist() for a in items_e] == [a.tolist() for a in items_s] and vis_e.tolist() == vis_s.tolist()


@pytest.mark.parametrize("recipe", ["drsch", "dnnh", "mch"])
@pytest.mark.parametrize("seed", [-1, 1.5, True, 2**40])
def test_recipes_reject_bad_seeds(recipe, seed):
    import importlib

    mod = importlib.import_module(f"hashrepro.methods.{recipe}")
    with pytest.raises(ValueError, match=r"seed must be an int in 0\.\.2147483647"):
        mod.Config.for_scale("smoke", seed=seed)
    assert mod.Config.for_scale("smoke", seed=3).seed == 3


# --------------------------------------------------------------------------- cases 1 and 5: data
import gzip  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import tarfile  # noqa: E402
from pathlib import Path  # noqa: E402

from PIL import Image  # noqa: E402

from hashrepro import data  # noqa: E402
from hashrepro.data import archives  # noqa: E402
from hashrepro.data.base import ChecksumError, CorruptDataError  # noqa: E402

TINY_COUNTS = {"train": 20, "test": 10}


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Caches inside tmp_path; CIFAR-10's expected counts shrunk to the tiny archives built here."""
    monkeypatch.delenv("HASHREPRO_CACHE", raising=False)
    monkeypatch.delenv("HASHREPRO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(data.cifar, "CIFAR10_COUNTS", dict(TINY_COUNTS), raising=False)
    return tmp_path


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _cifar_tar_bytes(corrupt: str | None = None) -> bytes:
    """An uncompressed tar of train/<class>/000j.jpg (2 per class) and test/<class>/0000.jpg."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for split, n in (("train", 2), ("test", 1)):
            for ci, c in enumerate(data.cifar.CIFAR10_CLASSES):
                for j in range(n):
                    name = f"{split}/{c}/{j:04d}.jpg"
                    blob = b"this is not a jpeg" if name == corrupt else _jpeg(10 + 12 * ci + 5 * j)
                    info = tarfile.TarInfo(name)
                    info.size = len(blob)
                    tf.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def _write_cifar_jpeg(root: Path, payload: bytes) -> Path:
    path = root / "cifar10" / "cifar10-jpeg.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def _cache_dirs(root: Path) -> list[Path]:
    return sorted((root / "cache" / "cifar10").glob("*-arrays"))


def test_truncated_cifar_archive_is_rejected_at_every_cut_and_never_cached(private_cache):
    root = private_cache
    full = gzip.compress(_cifar_tar_bytes())
    path = _write_cifar_jpeg(root, full)
    assert data.load("cifar10", root=root).images.shape == (30, 32, 32, 3)  # the complete one loads
    for cut in np.linspace(100, len(full) - 1, 25).astype(int):
        path.write_bytes(full[:cut])
        os_time = 1_000_000_000 + int(cut)
        import os

        os.utime(path, (os_time, os_time))
        with pytest.raises(CorruptDataError, match=r"cifar10-jpeg\.tar\.gz.*(truncated|corrupt)"):
            data.load("cifar10", root=root)
    assert len(_cache_dirs(root)) == 1  # only the complete archive's


def test_tar_cut_between_members_inside_a_complete_gzip_fails_the_member_count(private_cache):
    root = private_cache
    tar = _cifar_tar_bytes()
    # cut the tar right after the 17th member (headers and data are 512-byte blocks): a valid-looking
    # shorter archive without end blocks, gzipped completely. Loaded silently before (17 images).
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = tf.getmembers()
    cut = members[17].offset
    _write_cifar_jpeg(root, gzip.compress(tar[:cut]))
    with pytest.raises(CorruptDataError, match=r"holds 17 train, 0 test images, expected 20 train, 10 test"):
        data.load("cifar10", root=root)
    assert _cache_dirs(root) == []


def test_cache_built_before_verification_or_from_a_different_source_is_rebuilt(private_cache):
    root = private_cache
    path = _write_cifar_jpeg(root, gzip.compress(_cifar_tar_bytes()))
    ds = data.load("cifar10", root=root)
    (folder,) = _cache_dirs(root)
    # an old-style cache (no verification record) holding 5 images, as the truncated archive left it
    arrays = archives.ArrayCache(folder)
    arrays.save({"images": ds.images[:5], "labels": ds.labels[:5], "train": np.arange(4), "test": np.arange(4, 5)},
                info={"classes": ds.classes, "archive": str(path)})
    again = data.load("cifar10", root=root)
    assert again.images.shape == (30, 32, 32, 3)
    assert archives.ArrayCache(folder).info()["verified"] == archives.VERIFIED
    # a cache whose recorded source differs from the file (copied over, same name) is not trusted
    info = archives.ArrayCache(folder).info()
    info["source"]["size"] += 1
    (folder / "complete.json").write_text(__import__("json").dumps(info))
    assert archives.ArrayCache(folder).load(require={"source": archives.source_stamp(path)}) is None
    assert data.load("cifar10", root=root).images.shape == (30, 32, 32, 3)


def test_checksum_placed_after_caching_is_checked_before_the_cache(private_cache, monkeypatch):
    root = private_cache
    path = _write_cifar_jpeg(root, gzip.compress(_cifar_tar_bytes()))
    data.load("cifar10", root=root)  # cached after the member count and decode
    (root / "SHA256SUMS").write_text(f"{'f' * 64}  cifar10/cifar10-jpeg.tar.gz\n")
    with pytest.raises(ChecksumError, match=r"SHA-256 mismatch .*verify_checksums=False") as e:
        data.load("cifar10", root=root)
    assert "verify=False" not in str(e.value)
    assert data.load("cifar10", root=root, verify_checksums=False).images.shape == (30, 32, 32, 3)
    # the right checksum: the cache built without it is rebuilt once, then reused
    (root / "SHA256SUMS").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  cifar10/cifar10-jpeg.tar.gz\n")
    calls = []
    real = data.cifar.decode_tar_imagefolder
    monkeypatch.setattr(data.cifar, "decode_tar_imagefolder", lambda *a, **k: calls.append(1) or real(*a, **k))
    data.load("cifar10", root=root)
    data.load("cifar10", root=root)
    assert len(calls) == 1


def test_truncated_cifar_python_tarball_and_old_extractions(private_cache):
    import pickle

    root = private_cache
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            blob = pickle.dumps({b"data": RNG.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [1, 2]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    full = buf.getvalue()
    tgz = root / "cifar10" / "cifar-10-python.tar.gz"
    tgz.parent.mkdir(parents=True)
    tgz.write_bytes(full[: len(full) * 2 // 3])
    with pytest.raises(CorruptDataError, match=r"cifar-10-python\.tar\.gz: it is truncated"):
        data.load("cifar10", root=root)
    assert not list((root / "cache" / "cifar10").glob("cifar-10-python-*"))
    # a tree extracted before verification (plain-text marker) lacking batches is extracted again
    tgz.write_bytes(full)
    dest = root / "cache" / "cifar10" / f"cifar-10-python-{archives.fingerprint(tgz)}"
    (dest / "cifar-10-batches-py").mkdir(parents=True)
    (dest / ".complete").write_text(f"{tgz}\n")
    ds = data.load("cifar10", root=root)
    assert ds.images.shape == (12, 32, 32, 3) and (dest / "cifar-10-batches-py" / "test_batch").is_file()


def test_corrupt_jpeg_member_is_named(private_cache):
    root = private_cache
    _write_cifar_jpeg(root, gzip.compress(_cifar_tar_bytes(corrupt="train/dog/0001.jpg")))
    with pytest.raises(CorruptDataError, match=r"cannot decode image .*cifar10-jpeg\.tar\.gz:train/dog/0001\.jpg"):
        data.load("cifar10", root=root)
    assert _cache_dirs(root) == []


def test_corrupt_member_is_named_by_the_batched_decoder_too(monkeypatch):
    from hashrepro.data import images as images_mod

    monkeypatch.setattr(images_mod, "BATCH_DECODE_MIN", 1)
    blobs = [_jpeg(50)] * 3 + [b"\xff\xd8 broken"]
    with pytest.raises(CorruptDataError, match="cannot decode image a.tar:x/3.jpg"):
        images_mod.decode_bytes(blobs, jpeg=True, names=[f"a.tar:x/{i}.jpg" for i in range(4)])


@pytest.mark.parametrize("name", ["cifar10/cifar10-jpeg.tar.gz", "cifar10/cifar-10-python.tar.gz"])
def test_text_file_as_cifar_archive_says_what_is_expected(private_cache, name):
    root = private_cache
    p = root / name
    p.parent.mkdir(parents=True)
    p.write_text("404 Not Found\n")
    with pytest.raises(CorruptDataError) as e:
        data.load("cifar10", root=root)
    msg = str(e.value)
    assert str(p) in msg and "not a" in msg and "gzip" in msg and "expected" in msg
    assert "\n" not in msg


def test_non_gzip_and_truncated_gz_idx_files_are_named(tmp_path):
    from hashrepro.data import mnist as mnist_mod

    p = tmp_path / "train-images-idx3-ubyte.gz"
    mnist_mod.write_idx(tmp_path / "plain", np.zeros((2, 3, 3), np.uint8))
    p.write_bytes((tmp_path / "plain").read_bytes())  # plain IDX bytes under a .gz name
    with pytest.raises(CorruptDataError, match=r"train-images-idx3-ubyte\.gz is not gzip-compressed.*drop the \.gz"):
        mnist_mod.read_idx(p)
    full = gzip.compress((tmp_path / "plain").read_bytes())
    p.write_bytes(full[:-9])
    with pytest.raises(CorruptDataError, match=r"train-images-idx3-ubyte\.gz is a truncated or corrupt gzip"):
        mnist_mod.read_idx(p)


# --------------------------------------------------------------------------- case 3: collapsed training
from hashrepro import diagnostics  # noqa: E402


def test_code_and_loss_checks():
    y = np.repeat(np.arange(10), 20)
    healthy = RNG.integers(0, 2, (200, 32), dtype=np.uint8)
    assert diagnostics.diagnose(healthy, np.linspace(5, 1, 100), labels=y) == []
    one = np.tile(healthy[:1], (200, 1))
    (f,) = diagnostics.check_codes(one, 10)
    assert f.startswith("one_bucket: all 200 database codes are identical")
    const = healthy.copy()
    const[:, :20] = 1
    assert [x.split(":")[0] for x in diagnostics.check_codes(const)] == ["constant_bits"]
    few = np.repeat(RNG.integers(0, 2, (3, 32), dtype=np.uint8), [100, 50, 50], axis=0)
    assert any(x.startswith("few_codes: only 3 distinct") for x in diagnostics.check_codes(few, 10))
    assert diagnostics.check_codes(few) == []  # without the number of classes: no rule
    assert diagnostics.check_loss([1.0, 0.5, float("nan"), 0.2])[0].startswith("loss_nonfinite: the training loss is nan at iteration 2")
    assert diagnostics.check_loss(np.r_[np.ones(50), np.full(50, 1e4)])[0].startswith("loss_diverged")
    assert diagnostics.check_loss(np.r_[np.full(50, 3.0), np.full(50, 0.1)]) == []
    rec = {"paper": "x", "method": "m"}
    with pytest.warns(RuntimeWarning, match="FLAGGED"):
        diagnostics.flag_record(rec, [f])
    assert rec["flags"] == [f] and diagnostics.is_flagged(rec) and diagnostics.flag_text(rec) == "one_bucket"
    assert "flags" not in diagnostics.flag_record({"paper": "x"}, [])
    with pytest.raises(diagnostics.CollapsedRunError, match="one_bucket"):
        diagnostics.flag_record({"paper": "x"}, [f], strict=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_mch_collapse_is_flagged_in_every_record():
    import torch

    from hashrepro.methods import mch

    torch.set_num_threads(1)
    rec = mch.run(mch.Config.for_scale("smoke", pretrain_lr=1e6, cache=False))
    assert rec["flags"] and rec["flags"][0].startswith("one_bucket")
    assert {c["method"] for c in rec["companions"]} == {"dch", "lsh", "itq"}
    assert all(c["flags"][0].startswith("one_bucket") for c in rec["companions"])


def test_mch_agent_divergence_names_agent_lr():
    import torch

    from hashrepro.methods import mch
    from hashrepro.train import NonFiniteLossError

    torch.set_num_threads(1)
    with pytest.raises(NonFiniteLossError, match=r"MCH agent diverged .*agent_lr=1e\+06 is too large"):
        mch.run(mch.Config.for_scale("smoke", agent_lr=1e6, cache=False, baselines=False, oracle=False))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_drsch_divergence_is_flagged():
    from hashrepro.methods import drsch

    rec = drsch.run(drsch.Config.for_scale("smoke", lr=1e3, grad_clip=None))
    keys = diagnostics.flag_text(rec)
    assert "loss_diverged" in keys and ("constant_bits" in keys or "few_codes" in keys or "one_bucket" in keys)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_dnnh_collapsed_codes_are_flagged(monkeypatch):
    from hashrepro import codes as codes_mod
    from hashrepro.methods import dnnh

    monkeypatch.setattr(codes_mod, "binarize", lambda x, threshold=0.0: np.zeros(np.shape(x), np.uint8))
    rec = dnnh.run(dnnh.Config.for_scale("smoke"))
    assert diagnostics.flag_text(rec) == "one_bucket"


# --------------------------------------------------------------------------- case 2: notebook parameters
import json  # noqa: E402

from hashrepro import params  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _check_cells(paper: str) -> tuple[str, str]:
    """Sources of the notebook's parameters cell and of the code cell after it (the checker)."""
    cells = json.loads((NOTEBOOKS / f"{paper}.ipynb").read_text())["cells"]
    i = next(k for k, c in enumerate(cells)
             if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", []))
    j = next(k for k in range(i + 1, len(cells)) if cells[k]["cell_type"] == "code")
    return "".join(cells[i]["source"]), "".join(cells[j]["source"])


def _run_like_papermill(paper: str, injected: str) -> dict:
    """Execute the parameters cell, papermill's injected assignments, then the checker cell."""
    cell, checker = _check_cells(paper)
    ns: dict = {}
    exec(cell, ns)
    exec(injected, ns)
    exec(checker, ns)
    return ns


@pytest.mark.parametrize("paper", ["drsch", "dnnh", "ddh", "mch"])
def test_every_notebook_rejects_unknown_and_mistyped_parameters(paper):
    assert _run_like_papermill(paper, "bits = 16\nseed = 2\nscale = 'smoke'\n")["bits"] == 16
    with pytest.raises(ValueError, match=rf"notebooks/{paper}\.ipynb: unknown parameter 'bitz' \(did you mean "
                                         r"'bits'\?\)\. Valid parameters: dataset: str, bits: int, .*seed: int"):
        _run_like_papermill(paper, "bitz = 32\n")
    for injected, msg in (("bits = 32.7", r"parameter 'bits' must be int, got float 32\.7 \(a whole number"),
                          ("seed = 1.5", r"parameter 'seed' must be int, got float 1\.5"),
                          ("bits = 'abc'", r"parameter 'bits' must be int, got str 'abc'"),
                          ("scale = 3", r"parameter 'scale' must be str, got int 3"),
                          ("_declared = 5", r"_declared was overwritten")):
        with pytest.raises(ValueError, match=msg):
            _run_like_papermill(paper, injected)


@pytest.mark.parametrize("paper", ["drsch", "dnnh", "ddh", "mch"])
def test_test_scale_replaces_only_a_default_scale(paper, monkeypatch, capsys):
    monkeypatch.delenv(params.NOTEBOOK_SCALE_ENV, raising=False)
    assert _run_like_papermill(paper, "")["scale"] == "default"  # unset: the notebook's own default
    monkeypatch.setenv(params.NOTEBOOK_SCALE_ENV, "smoke")
    assert _run_like_papermill(paper, "")["scale"] == "smoke"  # what make test's nbval run gets
    assert f"scale: smoke (from {params.NOTEBOOK_SCALE_ENV}; the notebook's default is 'default')" in capsys.readouterr().out
    assert _run_like_papermill(paper, "scale = 'paper'\n")["scale"] == "paper"  # -p scale is never replaced
    monkeypatch.setenv(params.NOTEBOOK_SCALE_ENV, "tiny")
    with pytest.raises(ValueError, match=rf"notebooks/{paper}\.ipynb: {params.NOTEBOOK_SCALE_ENV}='tiny' is not a "
                                         r"scale; valid: smoke, default, paper"):
        _run_like_papermill(paper, "")


def test_checker_rules_and_interactive_reruns():
    ns = {"In": [], "Out": {}, "get_ipython": print, "np": np, "dataset": "x", "bits": 32, "lr": 0.1,
          "flag": False, "keep": None, "ks": [1, 2]}
    snap = dict(ns)
    ns.update(lr=1, keep=16, ks=(5,), PAPERMILL_INPUT_PATH="a.ipynb")
    params.check_parameters(ns, snap)  # an int for a float, anything for None, tuple for list
    for k, v in (("flag", 1), ("bits", True), ("ks", "1,2"), ("lr", "fast")):
        with pytest.raises(ValueError, match=rf"parameter '{k}' must be"):
            params.check_parameters({**ns, k: v}, dict(snap))
    # a later variable of the notebook is not mistaken for a parameter when the cell is re-run by hand
    ns["record"] = {"map": 0.5}
    params.check_parameters(ns, snap)
    with pytest.raises(ValueError, match="unknown parameter 'record'"):
        params.check_parameters(ns, dict(snap))  # a fresh snapshot: its first check looks for unknown names


def test_validate_task_parameters_for_the_sweep():
    params.validate_task_parameters("drsch", {"dataset": "digits", "bits": 16, "seed": 1, "scale": "smoke",
                                              "keep_bits": 8, "variant": "bs-drsch"})
    with pytest.raises(ValueError, match=r"notebooks/dnnh\.ipynb: unknown parameter 'bitz' .*Valid parameters: "
                                         r"dataset: str, bits: int"):
        params.validate_task_parameters("dnnh", {"bitz": 32})
    with pytest.raises(ValueError, match=r"parameter 'bits' must be int, got float 32\.7"):
        params.validate_task_parameters("mch", {"bits": 32.7})
    with pytest.raises(ValueError, match=r"'_declared'"):
        params.validate_task_parameters("mch", {"_declared": 1})


@pytest.mark.slow
def test_papermill_run_stops_on_an_unknown_parameter(tmp_path):
    """End to end in a real kernel, on a tiny notebook wired like the chapter notebooks."""
    papermill = pytest.importorskip("papermill")
    nbformat = pytest.importorskip("nbformat")
    cell, checker = _check_cells("drsch")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    pcell = nbformat.v4.new_code_cell("bits = 32\nseed = 0\n_declared = dict(globals())")
    pcell.metadata["tags"] = ["parameters"]
    nb.cells = [pcell, nbformat.v4.new_code_cell(checker.replace("drsch", "tiny")),
                nbformat.v4.new_code_cell("print('RAN', bits)")]
    src = tmp_path / "tiny.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(tmp_path / "ok.ipynb"), parameters={"bits": 16},
                               kernel_name="python3", progress_bar=False)
    with pytest.raises(papermill.PapermillExecutionError, match=r"unknown parameter 'bitz' \(did you mean 'bits'\?\)"):
        papermill.execute_notebook(str(src), str(tmp_path / "bad.ipynb"), parameters={"bitz": 32},
                                   kernel_name="python3", progress_bar=False)


def test_truncated_image_file_is_named_and_bad_size_is_not_called_corrupt(tmp_path):
    from hashrepro.data.images import decode_many

    good, cut = tmp_path / "a.jpg", tmp_path / "b.jpg"
    good.write_bytes(_jpeg(30))
    cut.write_bytes(_jpeg(60)[:200])
    with pytest.raises(CorruptDataError, match=rf"cannot decode image {cut}"):
        decode_many([good, cut])
    with pytest.raises(ValueError, match="size must be positive") as e:
        decode_many([good], size=0)
    assert not isinstance(e.value, CorruptDataError)
