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
