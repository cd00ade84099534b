"""Tests for hashrepro.data: every official format is generated in tmp_path and loaded through
the real loaders; split protocols; mosaics. The optional ``shared`` test reads the real mirrors."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hashrepro import data
from hashrepro.data import archives, cuhk03 as cuhk_mod, mnist as mnist_mod, paths as paths_mod
from hashrepro.data.base import ChecksumError, Dataset, DatasetNotFoundError

RNG = np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch, request):
    """Keep caches inside tmp_path: no HASHREPRO_CACHE, home cache redirected."""
    if request.node.get_closest_marker("shared"):
        return
    monkeypatch.delenv("HASHREPRO_CACHE", raising=False)
    monkeypatch.delenv("HASHREPRO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# ----------------------------------------------------------------------------- helpers
def save_jpeg(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95)


def solid(h, w, value) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def make_tar_gz(tar_path: Path, tree: Path, arc_prefix: str = "") -> None:
    with tarfile.open(tar_path, "w:gz") as tf:
        for p in sorted(tree.rglob("*")):
            tf.add(p, arcname=arc_prefix + p.relative_to(tree).as_posix(), recursive=False)


def write_sums(root: Path, rel: str, digest: str | None = None) -> None:
    d = digest or hashlib.sha256((root / rel).read_bytes()).hexdigest()
    with open(root / "SHA256SUMS", "a") as f:
        f.write(f"{d}  {rel}\n")


# ----------------------------------------------------------------------------- registry
def test_registry_lists_all_names():
    names = data.datasets()
    for n in ["mnist", "mnist5k", "digits", "cifar10", "svhn", "flowers17", "nuswide21", "coco",
              "mirflickr25k", "cuhk03", "mosaic"]:
        assert n in names
    assert set(data.describe()) == set(names)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*cifar10.*mnist5k"):
        data.load("imagenet")


@pytest.mark.parametrize("name,fragment", [
    ("mnist", "MNIST/raw/train-images-idx3-ubyte"), ("cifar10", "cifar10-jpeg.tar.gz"),
    ("svhn", "train_32x32.mat"), ("flowers17", "flowers17"), ("nuswide21", "database.txt"),
    ("coco", "coco"), ("mirflickr25k", "mirflickr25k"), ("cuhk03", "cuhk-03.mat")])
def test_missing_dataset_names_paths_and_how(tmp_path, name, fragment):
    with pytest.raises(FileNotFoundError) as ei:
        data.load(name, root=tmp_path)
    msg = str(ei.value)
    assert isinstance(ei.value, DatasetNotFoundError)
    assert str(tmp_path) in msg and fragment in msg and "How to obtain" in msg


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("HASHREPRO_DATA", str(tmp_path))
    assert data.data_root() == tmp_path.resolve()
    assert data.data_root(tmp_path / "x") == (tmp_path / "x").resolve()
    monkeypatch.delenv("HASHREPRO_DATA")
    monkeypatch.chdir(tmp_path)
    repo = paths_mod.repo_root_or_none()
    assert repo is not None and (repo / "pyproject.toml").is_file()  # the checkout, not ./data
    assert data.data_root() == repo / "data"


def test_cache_falls_back_when_root_read_only(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    assert data.cache_root(tmp_path) == tmp_path / "cache"
    ro.chmod(0o555)
    try:
        got = data.cache_root(ro)
        assert got == tmp_path / "xdg-cache" / "hashrepro"
        assert not (ro / "cache").exists()
    finally:
        ro.chmod(0o755)
    monkeypatch.setenv("HASHREPRO_CACHE", str(tmp_path / "explicit"))
    assert data.cache_root(ro) == (tmp_path / "explicit").resolve()


# ----------------------------------------------------------------------------- MNIST (IDX)
def write_mnist(root: Path, gz: bool = False, ntr: int = 6, nte: int = 4):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    xtr = RNG.integers(0, 256, (ntr, 28, 28), dtype=np.uint8)
    xte = RNG.integers(0, 256, (nte, 28, 28), dtype=np.uint8)
    ytr = np.arange(ntr, dtype=np.uint8) % 10
    yte = (np.arange(nte, dtype=np.uint8) + 3) % 10
    sfx = ".gz" if gz else ""
    for stem, a in [("train-images-idx3-ubyte", xtr), ("train-labels-idx1-ubyte", ytr),
                    ("t10k-images-idx3-ubyte", xte), ("t10k-labels-idx1-ubyte", yte)]:
        mnist_mod.write_idx(raw / (stem + sfx), a)
    return xtr, ytr, xte, yte


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_roundtrip(tmp_path, gz):
    xtr, ytr, xte, yte = write_mnist(tmp_path, gz)
    ds = data.load("mnist", root=tmp_path)
    assert ds.images.shape == (10, 28, 28, 1) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[:6, :, :, 0], xtr)
    np.testing.assert_array_equal(ds.images[6:, :, :, 0], xte)
    np.testing.assert_array_equal(ds.labels, np.r_[ytr, yte])
    assert ds.labels.dtype == np.int64 and not ds.multilabel and ds.classes == list("0123456789")
    np.testing.assert_array_equal(ds.official_split["train"], np.arange(6))
    np.testing.assert_array_equal(ds.official_split["test"], np.arange(6, 10))


def test_read_idx_rejects_garbage(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x03\x04" + bytes(10))
    with pytest.raises(ValueError, match="not an IDX"):
        mnist_mod.read_idx(p)
    q = tmp_path / "short"
    q.write_bytes(bytes([0, 0, 8, 1]) + np.asarray([5], ">i4").tobytes() + b"\x01\x02")
    with pytest.raises(ValueError, match="header says shape"):
        mnist_mod.read_idx(q)


def test_mnist_checksums_verified(tmp_path):
    write_mnist(tmp_path)
    write_sums(tmp_path, "MNIST/raw/train-images-idx3-ubyte")
    data.load("mnist", root=tmp_path)  # correct checksum: fine, and stamped
    stamps = (tmp_path / "cache" / "checksums.json").read_text()
    assert hashlib.sha256((tmp_path / "MNIST/raw/train-images-idx3-ubyte").read_bytes()).hexdigest() in stamps
    write_sums(tmp_path, "MNIST/raw/t10k-labels-idx1-ubyte", "0" * 64)
    with pytest.raises(ChecksumError, match="t10k-labels"):
        data.load("mnist", root=tmp_path)
    data.load("mnist", root=tmp_path, verify_checksums=False)


def test_mnist_downloads_only_when_asked(tmp_path, monkeypatch):
    import sys
    import types

    calls = []

    class FakeMNIST:  # stands in for torchvision.datasets.MNIST (no network, no heavy import)
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            if not (Path(root) / "MNIST").exists():
                write_mnist(Path(root))

    monkeypatch.setitem(sys.modules, "torchvision",
                        types.SimpleNamespace(datasets=types.SimpleNamespace(MNIST=FakeMNIST)))
    with pytest.raises(FileNotFoundError):
        data.load("mnist", root=tmp_path)
    assert calls == []
    ds = data.load("mnist", root=tmp_path, download=True)
    assert len(ds) == 10 and calls and all(c[2] for c in calls)


# ----------------------------------------------------------------------------- CIFAR-10
def cifar_pickle_files(folder: Path, per_batch: int = 3):
    folder.mkdir(parents=True)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = RNG.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        y = [int(v) for v in RNG.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": x.reshape(per_batch, 3072),
                         b"labels": y, b"filenames": [b"x.png"] * per_batch}, f)
        xs.append(x.transpose(0, 2, 3, 1))
        ys += y
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in data.cifar.CIFAR10_CLASSES],
                     b"num_vis": 3072}, f)
    return np.concatenate(xs), np.asarray(ys)


def test_cifar_official_pickles(tmp_path):
    x, y = cifar_pickle_files(tmp_path / "cifar-10-batches-py")
    ds = data.load("cifar10", root=tmp_path)
    assert ds.meta["format"] == "pickle"
    np.testing.assert_array_equal(ds.images, x)  # (N, 3072) channel planes -> (N, 32, 32, 3)
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.classes[0] == "airplane" and len(ds.official_split["train"]) == 15
    assert len(ds.official_split["test"]) == 3


def test_cifar_python_tarball_extracted_once(tmp_path):
    src = tmp_path / "src"
    x, y = cifar_pickle_files(src / "cifar-10-batches-py", per_batch=2)
    (tmp_path / "cifar10").mkdir()
    make_tar_gz(tmp_path / "cifar10" / "cifar-10-python.tar.gz", src)
    ds = data.load("cifar10", root=tmp_path)
    np.testing.assert_array_equal(ds.images, x)
    extracted = list((tmp_path / "cache" / "cifar10").glob("cifar-10-python-*"))
    assert len(extracted) == 1 and (extracted[0] / ".complete").is_file()
    mtime = (extracted[0] / ".complete").stat().st_mtime_ns
    data.load("cifar10", root=tmp_path)
    assert (extracted[0] / ".complete").stat().st_mtime_ns == mtime


def make_cifar_jpeg(root: Path, prefix: str = "") -> dict:
    tree = root / "tree"
    colours = {}
    for split, n in [("train", 2), ("test", 1)]:
        for ci, c in enumerate(data.cifar.CIFAR10_CLASSES):
            for j in range(n):
                v = 10 + 12 * ci + 5 * j + (100 if split == "test" else 0)
                colours[(split, ci, j)] = v
                save_jpeg(tree / split / c / f"{j:04d}.jpg", solid(32, 32, v))
    (root / "cifar10").mkdir(parents=True, exist_ok=True)
    make_tar_gz(root / "cifar10" / "cifar10-jpeg.tar.gz", tree, prefix)
    return colours


@pytest.mark.parametrize("prefix", ["", "cifar10-jpeg/"])
def test_cifar_jpeg_archive_and_cache(tmp_path, monkeypatch, prefix):
    make_cifar_jpeg(tmp_path, prefix)
    write_sums(tmp_path, "cifar10/cifar10-jpeg.tar.gz")
    ds = data.load("cifar10", root=tmp_path)
    assert ds.meta["format"] == "jpeg" and ds.images.shape == (30, 32, 32, 3)
    np.testing.assert_array_equal(ds.labels, np.r_[np.repeat(np.arange(10), 2), np.arange(10)])
    np.testing.assert_array_equal(ds.official_split["train"], np.arange(20))
    # class-major order, pixel values survive JPEG closely
    means = ds.images.reshape(30, -1).mean(1)
    expect = [10 + 12 * c + 5 * j for c in range(10) for j in range(2)] + [110 + 12 * c for c in range(10)]
    np.testing.assert_allclose(means, expect, atol=3)
    assert Path(ds.meta["cache"]).is_dir()
    # the second load reads the cached arrays and decodes nothing
    monkeypatch.setattr(data.cifar, "decode_tar_imagefolder",
                        lambda *a, **k: pytest.fail("decoded again instead of using the cache"))
    ds2 = data.load("cifar10", root=tmp_path)
    np.testing.assert_array_equal(ds2.images, ds.images)
    np.testing.assert_array_equal(ds2.official_split["test"], ds.official_split["test"])


def test_batched_jpeg_decoder_matches_pil(monkeypatch):
    from hashrepro.data import images as images_mod

    blobs = []
    for i in range(40):
        buf = io.BytesIO()
        Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG", quality=75)
        blobs.append(buf.getvalue())
    pil = images_mod.decode_bytes(blobs, jpeg=True)
    monkeypatch.setattr(images_mod, "BATCH_DECODE_MIN", 1)
    batched = images_mod._decode_jpegs_torchvision(blobs, chunk=16)
    assert batched is not None and batched.shape == (40, 32, 32, 3)
    np.testing.assert_array_equal(batched, pil)
    np.testing.assert_array_equal(images_mod.decode_bytes(blobs, jpeg=True), pil)


def test_cifar_jpeg_checksum_mismatch(tmp_path):
    make_cifar_jpeg(tmp_path)
    write_sums(tmp_path, "cifar10/cifar10-jpeg.tar.gz", "f" * 64)
    with pytest.raises(ChecksumError, match="cifar10-jpeg.tar.gz"):
        data.load("cifar10", root=tmp_path)


def test_cifar_source_choice(tmp_path, monkeypatch):
    cifar_pickle_files(tmp_path / "cifar-10-batches-py", per_batch=1)
    make_cifar_jpeg(tmp_path)
    monkeypatch.setattr(data.cifar, "CIFAR10_COUNTS", {"train": 20, "test": 10})  # no checksum listed
    assert data.load("cifar10", root=tmp_path).meta["format"] == "pickle"
    assert data.load("cifar10", root=tmp_path, source="jpeg").meta["format"] == "jpeg"
    with pytest.raises(ValueError, match="source must be"):
        data.load("cifar10", root=tmp_path, source="png")


# ----------------------------------------------------------------------------- SVHN (.mat)
def test_svhn_mat(tmp_path):
    from scipy.io import savemat

    d = tmp_path / "svhn"
    d.mkdir()
    xs = {}
    for part, n in [("train", 5), ("test", 3)]:
        x = RNG.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = np.asarray([10, 1, 2, 10, 9][:n], dtype=np.uint8).reshape(-1, 1)
        savemat(d / f"{part}_32x32.mat", {"X": x.transpose(1, 2, 3, 0), "y": y})
        xs[part] = (x, y)
    ds = data.load("svhn", root=tmp_path)
    assert ds.images.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(ds.images[:5], xs["train"][0])
    np.testing.assert_array_equal(ds.labels[:5], [0, 1, 2, 0, 9])  # 10 means digit 0
    assert list(ds.official_split) == ["train", "test"]
    with pytest.raises(FileNotFoundError, match="extra_32x32.mat"):
        data.load("svhn", root=tmp_path, extra=True)


# ----------------------------------------------------------------------------- Flowers-17
def flowers_numbers(per_class: int):
    return [80 * c + j + 1 for c in range(17) for j in range(per_class)]


def test_flowers_flat_official_layout(tmp_path):
    jpg = tmp_path / "flowers17" / "jpg"
    nums = flowers_numbers(2)
    for n in nums:
        save_jpeg(jpg / f"image_{n:04d}.jpg", solid(10, 14, (n * 3) % 250))
    (jpg / "files.txt").write_text("\n".join(f"image_{n:04d}.jpg" for n in nums))
    ds = data.load("flowers17", root=tmp_path, size=6)
    assert ds.images.shape == (34, 6, 6, 3) and ds.meta["layout"] == "flat"
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(17), 2))
    np.testing.assert_array_equal(ds.meta["image_numbers"], nums)
    assert ds.classes[0] == "daffodil" and ds.classes[16] == "pansy"
    assert ds.official_split == {}
    # datasplits.mat (official, 1-based image numbers) fills official_split
    from scipy.io import savemat

    savemat(tmp_path / "flowers17" / "datasplits.mat",
            {"trn1": np.asarray([[1, 81]]), "val1": np.asarray([[2]]), "tst1": np.asarray([[82]])})
    ds = data.load("flowers17", root=tmp_path, size=6)
    np.testing.assert_array_equal(ds.official_split["train"], [0, 2])
    np.testing.assert_array_equal(ds.official_split["test"], [3])
    sp = data.split(ds, "flowers", official=True, trial=1)
    np.testing.assert_array_equal(sp.train, [0, 2])


def test_flowers_class_folder_archive(tmp_path):
    tree = tmp_path / "tree"
    for c, name in enumerate(data.flowers.FLOWERS17_CLASSES):
        for j in range(4):
            n = 80 * c + j + 1
            save_jpeg(tree / "jpg" / f"{c:02d}_{name}" / f"image_{n:04d}.jpg", solid(20, 16, 5 * c + j))
    (tmp_path / "flowers17").mkdir()
    make_tar_gz(tmp_path / "flowers17" / "flowers17-160px.tar.gz", tree)
    ds = data.load("flowers17", root=tmp_path, size=8)
    assert ds.images.shape == (68, 8, 8, 3) and ds.meta["layout"] == "class-folders"
    assert ds.classes == data.flowers.FLOWERS17_CLASSES
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(17), 4))
    ds2 = data.load("flowers17", root=tmp_path, size=8)  # cached arrays
    np.testing.assert_array_equal(ds2.images, ds.images)
    assert data.load("flowers17", root=tmp_path, size=(4, 6)).images.shape == (68, 4, 6, 3)
    with pytest.warns(UserWarning, match="scaled"):
        sp = data.split(ds, "flowers", seed=3)  # 40/20/20 scaled to 2/1/1 of 4 per class
    assert sp.protocol["scaled"] and sp.sizes()["train"] == 34 and len(sp.query) == 17


# ----------------------------------------------------------------------------- list files
def make_listfile_set(root: Path, name: str, n_cols: int, rows: list[list[int]]):
    base = root / name
    for i in range(len(rows)):
        save_jpeg(base / "images" / f"im{i}.jpg", solid(12, 9, (10 * i) % 250))
    return base


def test_nuswide_listfile_top21(tmp_path):
    n_cols = 25  # 21 frequent concepts (each in 2+ images) and 4 rare ones
    rows = []
    for i in range(21):
        r = [0] * n_cols
        r[i] = r[(i + 1) % 21] = 1
        rows.append(r)
    rows.append([1] + [0] * 20 + [1, 0, 0, 0])  # frequent + rare concept
    rows.append([0] * 24 + [1])  # only a rare concept: dropped after keeping the top 21
    base = make_listfile_set(tmp_path, "nuswide21", n_cols, rows)
    (base / "nuswide21.txt").write_text(
        "\n".join(f"images/im{i}.jpg " + " ".join(map(str, r)) for i, r in enumerate(rows)) + "\n")
    (base / "classes.txt").write_text("\n".join(f"concept{i}" for i in range(n_cols)))
    ds = data.load("nuswide21", root=tmp_path, size=4)
    assert ds.multilabel and ds.labels.dtype == np.uint8
    Y = np.asarray(rows)
    keep = data.listfile.top_k_classes(Y.astype(np.uint8), 21)
    assert ds.labels.shape[1] == 21 and ds.classes == [f"concept{i}" for i in keep]
    kept_rows = np.flatnonzero(Y[:, keep].any(1))
    assert len(ds) == len(kept_rows) and len(ds) < len(rows)  # unlabeled image dropped
    np.testing.assert_array_equal(ds.labels, Y[kept_rows][:, keep])
    assert ds.images.shape == (len(ds), 4, 4, 3)


def test_coco_split_lists(tmp_path):
    rows = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]]
    base = make_listfile_set(tmp_path, "coco", 3, rows)

    def lst(ix):
        return "\n".join(f"images/im{i}.jpg " + " ".join(map(str, rows[i])) for i in ix) + "\n"

    (base / "database.txt").write_text(lst([0, 1, 2, 3]))
    (base / "test.txt").write_text(lst([4]))
    (base / "train.txt").write_text(lst([1, 3]))
    ds = data.load("coco", root=tmp_path, size=5)
    assert len(ds) == 5 and ds.meta["paths"][4] == "images/im4.jpg"
    np.testing.assert_array_equal(ds.official_split["query"], [4])
    np.testing.assert_array_equal(ds.official_split["database"], [0, 1, 2, 3])
    sp = data.split(ds, "official")
    np.testing.assert_array_equal(sp.train, [1, 3])
    np.testing.assert_array_equal(sp.database, [0, 2])
    assert data.split(ds, "official", database_includes_train=True).database.tolist() == [0, 1, 2, 3]


def test_listfile_errors(tmp_path):
    base = tmp_path / "mirflickr25k"
    base.mkdir()
    (base / "list.txt").write_text("a.jpg 0 1\nb.jpg 1\n")
    with pytest.raises(ValueError, match="1 labels, earlier lines had 2"):
        data.load("mirflickr25k", root=tmp_path)
    (base / "list.txt").write_text("a.jpg 0 1\nb.jpg 1 0\n")
    with pytest.raises(FileNotFoundError, match="a.jpg"):
        data.load("mirflickr25k", root=tmp_path)
    (base / "list.txt").write_text("a.jpg 0 2\n")
    with pytest.raises(ValueError, match="0 or 1"):
        data.load("mirflickr25k", root=tmp_path)


# ----------------------------------------------------------------------------- CUHK03
def cuhk_content(n_ids=(3, 2), seed=0):
    """Per pair, an (n_ids, 10) grid of images (None = missing), sizes varying."""
    rng = np.random.default_rng(seed)
    pairs = []
    for n in n_ids:
        cell = np.empty((n, 10), dtype=object)
        for i in range(n):
            for v in range(10):
                if v in (4, 9) and i == 0:
                    cell[i, v] = None  # missing views, as in the real data
                else:
                    h, w = rng.integers(10, 20), rng.integers(5, 9)
                    cell[i, v] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pairs.append(cell)
    testsets = [np.asarray([[1, 2], [2, 1]]), np.asarray([[1, 1], [1, 3]])]  # [pair, id], 1-based
    return pairs, testsets


def check_cuhk(ds, pairs, testsets, size):
    n_imgs = sum(x is not None for c in pairs for x in c.ravel())
    assert ds.images.shape == (n_imgs, *size, 3) and len(ds.classes) == 5
    assert ds.classes[:4] == ["1_1", "1_2", "1_3", "2_1"]
    first = pairs[0][0, 0]
    from hashrepro.data.images import resize_array

    np.testing.assert_array_equal(ds.images[0], resize_array(first, size))
    np.testing.assert_array_equal(ds.meta["camera"], (ds.meta["view"] >= 5).astype(int))
    np.testing.assert_array_equal(sorted(ds.meta["testsets"][0]), [1, 3])  # (1,2)->1, (2,1)->3
    assert not np.isin(ds.labels[ds.official_split["train"]], ds.meta["testsets"][0]).any()
    sp = data.split(ds, "cuhk03", trial=0)
    assert set(ds.labels[sp.query]) == {1, 3} and (ds.meta["camera"][sp.query] == 0).all()
    assert (ds.meta["camera"][sp.database] == 1).all() and set(ds.labels[sp.database]) == {1, 3}
    assert not np.isin(ds.labels[sp.train], [1, 3]).any()
    ss = data.split(ds, "cuhk03", trial=1, single_shot=True, seed=4)
    assert len(ss.database) == 2 and set(ds.labels[ss.query]) == {0, 2}


def test_cuhk03_v5_mat(tmp_path):
    from scipy.io import savemat

    pairs, testsets = cuhk_content()
    cells = np.empty((1, len(pairs)), dtype=object)
    for i, c in enumerate(pairs):
        cc = np.empty(c.shape, dtype=object)
        for idx, x in np.ndenumerate(c):
            cc[idx] = np.zeros((0, 0)) if x is None else x
        cells[0, i] = cc
    ts = np.empty((1, 2), dtype=object)
    ts[0, 0], ts[0, 1] = testsets[0].astype(float), testsets[1].astype(float)
    (tmp_path / "cuhk03").mkdir()
    savemat(tmp_path / "cuhk03" / "cuhk-03.mat", {"labeled": cells, "detected": cells, "testsets": ts})
    ds = data.load("cuhk03", root=tmp_path, size=(16, 8))
    check_cuhk(ds, pairs, testsets, (16, 8))
    with pytest.raises(ValueError, match="labeled' or 'detected"):
        data.load("cuhk03", root=tmp_path, kind="both", size=(8, 8))


class _FakeDataset:
    def __init__(self, a):
        self.a = a

    def __getitem__(self, key):
        assert key == ()
        return self.a


class _Ref:
    """Stands in for h5py.Reference (hashable, opaque)."""

    def __init__(self, i):
        self.i = i

    def __hash__(self):
        return hash(("ref", self.i))

    def __eq__(self, other):
        return isinstance(other, _Ref) and other.i == self.i


class FakeH5(dict):
    """Just enough of h5py.File: f[name][()] and f[reference][()]."""

    def __getitem__(self, k):
        return _FakeDataset(dict.__getitem__(self, k))


def build_v73_layout(pairs, testsets, store, ref):
    """Lay out MATLAB v7.3 cells as HDF5 does: column-major (transposed) arrays, cells as
    arrays of references, empty cells as a uint64 [0, 0]."""
    pair_refs = []
    for c in pairs:
        grid = np.empty((10, c.shape[0]), dtype=object)  # (n_ids, 10) stored transposed
        for (i, v), x in np.ndenumerate(c):
            grid[v, i] = ref(np.zeros(2, np.uint64) if x is None else np.ascontiguousarray(x.T))
        pair_refs.append(ref(grid))
    store("labeled", np.asarray([pair_refs], dtype=object))
    store("testsets", np.asarray([[ref(t.T.astype(float)) for t in testsets]], dtype=object))


def test_cuhk03_v73_reader_logic_without_h5py():
    pairs, testsets = cuhk_content()
    f = FakeH5()
    counter = iter(range(10 ** 6))

    def ref(a):
        k = _Ref(next(counter))
        dict.__setitem__(f, k, a)
        return k

    build_v73_layout(pairs, testsets, lambda n, a: dict.__setitem__(f, n, a), ref)
    records, ts, n_ids = cuhk_mod.read_cuhk03_h5(f, "labeled")
    assert n_ids == [3, 2]
    assert len(records) == sum(x is not None for c in pairs for x in c.ravel())
    p, i, v, img = records[0]
    assert (p, i, v) == (0, 0, 0)
    np.testing.assert_array_equal(img, pairs[0][0, 0])
    np.testing.assert_array_equal(ts[0], testsets[0])


def test_cuhk03_v73_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    pairs, testsets = cuhk_content()
    (tmp_path / "cuhk03").mkdir()
    path = tmp_path / "cuhk03" / "cuhk-03.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        counter = iter(range(10 ** 6))

        def ref(a):
            name = f"#refs#/r{next(counter)}"
            if a.dtype == object:
                ds = f.create_dataset(name, data=np.vectorize(lambda r: r, otypes=[object])(a),
                                      dtype=h5py.ref_dtype)
            else:
                ds = f.create_dataset(name, data=a)
            return ds.ref

        def store(name, a):
            f.create_dataset(name, data=a, dtype=h5py.ref_dtype)

        build_v73_layout(pairs, testsets, store, ref)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, created by hashrepro tests".ljust(116, b" "))
    assert cuhk_mod.is_hdf5(path)
    ds = data.load("cuhk03", root=tmp_path, size=(16, 8))
    check_cuhk(ds, pairs, testsets, (16, 8))


def test_cuhk03_hdf5_without_h5py_says_so(tmp_path, monkeypatch):
    import builtins

    (tmp_path / "cuhk03").mkdir()
    p = tmp_path / "cuhk03" / "cuhk-03.mat"
    p.write_bytes(b"MATLAB 7.3".ljust(512, b" ") + cuhk_mod.HDF5_SIGNATURE + bytes(64))
    real_import = builtins.__import__

    def no_h5py(name, *a, **k):
        if name == "h5py":
            raise ImportError("no h5py")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(ImportError, match="pip install h5py"):
        data.load("cuhk03", root=tmp_path)


# ----------------------------------------------------------------------------- embedded sets
def test_embedded_mnist5k_and_digits():
    m = data.load("mnist5k")
    assert m.images.shape == (5000, 28, 28, 1) and m.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(m.labels), [500] * 10)
    d = data.load("digits")
    assert d.images.shape == (1797, 8, 8, 1) and d.images.max() == 255


# ----------------------------------------------------------------------------- mosaic
def tiny_base(n_per_class=6, n_classes=5, h=4, w=3, c=1):
    labels = np.repeat(np.arange(n_classes), n_per_class)
    images = (RNG.integers(1, 256, (len(labels), h, w, c))).astype(np.uint8)  # never all-zero
    return Dataset("tiny", images, labels.astype(np.int64), [f"k{i}" for i in range(n_classes)])


def test_mosaic_deterministic_and_labels_are_tile_union():
    base = tiny_base()
    a = data.load("mosaic", base=base, grid=3, n=200, seed=7)
    b = data.make_mosaic(base, grid=3, n=200, seed=7)
    c = data.make_mosaic(base, grid=3, n=200, seed=8)
    assert a.images.tobytes() == b.images.tobytes() and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (200, 12, 9, 1) and a.multilabel and a.classes == base.classes
    tiles, src = a.meta["tiles"], a.meta["tile_source"]
    n_obj = (tiles >= 0).sum((1, 2))
    assert n_obj.min() >= 1 and n_obj.max() <= 9 and (n_obj < 9).any() and (n_obj == 9).any()
    for i in range(200):
        union = np.zeros(5, np.uint8)
        union[tiles[i][tiles[i] >= 0]] = 1
        np.testing.assert_array_equal(a.labels[i], union)
        for r in range(3):
            for q in range(3):
                crop = a.images[i, 4 * r:4 * r + 4, 3 * q:3 * q + 3]
                if tiles[i, r, q] < 0:
                    assert src[i, r, q] == -1 and not crop.any()  # empty tile
                else:
                    np.testing.assert_array_equal(crop, base.images[src[i, r, q]])
                    assert base.labels[src[i, r, q]] == tiles[i, r, q]


def test_mosaic_options_and_errors():
    base = tiny_base()
    m = data.make_mosaic(base, grid=2, n=50, seed=0, min_objects=2, max_objects=2,
                         base_indices=np.arange(6))
    assert ((m.meta["tiles"] >= 0).sum((1, 2)) == 2).all()
    assert set(m.meta["tile_source"][m.meta["tile_source"] >= 0]) <= set(range(6))
    with pytest.raises(ValueError, match="max_objects"):
        data.make_mosaic(base, grid=2, max_objects=5)
    with pytest.raises(ValueError, match="single-label"):
        data.make_mosaic(m, grid=2)
    mm = data.load("mosaic", n=20, seed=1)  # default base: mnist5k
    assert mm.images.shape == (20, 56, 56, 1)


# ----------------------------------------------------------------------------- splits
def single_label(n_per_class=1300, n_classes=10):
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return Dataset("synth", np.zeros((len(labels), 1, 1, 1), np.uint8), labels.astype(np.int64),
                   [str(i) for i in range(n_classes)],
                   official_split={"train": np.arange(len(labels) - 500),
                                   "test": np.arange(len(labels) - 500, len(labels))})


def test_per_class_counts_determinism_disjointness():
    ds = single_label()
    s = data.split(ds, "per_class", seed=1)
    assert s.sizes() == {"train": 5000, "query": 1000, "database": 7000, "val": 0}
    assert (np.bincount(ds.labels[s.query]) == 100).all() and (np.bincount(ds.labels[s.train]) == 500).all()
    assert not s.protocol["scaled"] and s.protocol["n_train"] == 5000 and s.protocol["split"] == "per_class"
    assert np.intersect1d(s.query, s.database).size == 0 and np.intersect1d(s.train, s.database).size == 0
    assert len(np.union1d(np.union1d(s.train, s.query), s.database)) == len(ds)
    s2 = data.split(ds, "per_class", seed=1)
    s3 = data.split(ds, "per_class", seed=2)
    assert all(np.array_equal(getattr(s, k), getattr(s2, k)) for k in ("train", "query", "database"))
    assert not np.array_equal(s.query, s3.query)
    si = data.split(ds, "per_class", seed=1, database_includes_train=True)
    np.testing.assert_array_equal(si.query, s.query)
    assert len(si.database) == 12000 and np.isin(si.train, si.database).all()
    sv = data.split(ds, "per_class", seed=1, n_val_per_class=10)
    assert len(sv.val) == 100 and np.intersect1d(sv.val, np.r_[sv.train, sv.query, sv.database]).size == 0


def test_per_class_scales_small_sets_with_warning():
    ds = single_label(n_per_class=60)
    with pytest.warns(UserWarning, match="scaled"):
        s = data.split(ds, "per_class", seed=0)
    assert s.protocol["scaled"] and s.protocol["requested"]["n_train_per_class"] == 500
    assert s.protocol["n_query_per_class"] + s.protocol["n_train_per_class"] <= 30
    assert len(s.database) >= 300


def test_official_protocol():
    ds = single_label()
    with pytest.raises(ValueError, match="database_includes_train=True"):
        data.split(ds, "official")
    s = data.split(ds, "official", database_includes_train=True)
    np.testing.assert_array_equal(s.query, ds.official_split["test"])
    np.testing.assert_array_equal(s.train, s.database)
    s = data.split(ds, "official", seed=0, n_train=1000)
    assert len(s.train) == 1000 and len(s.database) == 12500 - 1000
    assert np.isin(s.train, ds.official_split["train"]).all()
    with pytest.raises(ValueError, match="no official"):
        data.split(data.load("digits"), "official")


def test_protocol_errors():
    ds = single_label(n_per_class=20)
    with pytest.raises(ValueError, match="unknown protocol 'dnnh'.*per_class"):
        data.split(ds, "dnnh")
    with pytest.raises(ValueError, match="n_queries"):
        data.split(ds, "per_class", n_queries=3)
    with pytest.raises(ValueError, match="multi-label"):
        data.split(data.make_mosaic(tiny_base(), n=10), "per_class")
    with pytest.raises(ValueError, match="testsets"):
        data.split(ds, "cuhk03")


def multilabel_set(n=3000, C=6, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, C)) < np.linspace(0.5, 0.08, C)).astype(np.uint8)
    Y[:5] = 0  # a few unlabeled images are never drawn
    return Dataset("mlsynth", np.zeros((n, 1, 1, 1), np.uint8), Y, [f"c{i}" for i in range(C)], True)


def test_multilabel_balanced_per_class():
    ds = multilabel_set()
    s = data.split(ds, "multilabel_balanced", seed=0, n_query_per_class=20, n_train_per_class=50)
    assert len(s.query) == 120 and len(s.train) == 300 and s.protocol["sampling"] == "class-balanced"
    Y = ds.labels
    assert (Y[s.query].sum(0) >= 20).all() and (Y[s.train].sum(0) >= 50).all()  # every class covered
    assert not np.isin(np.arange(5), np.r_[s.query, s.train, s.database]).any()
    n_labeled = int(Y.any(1).sum())
    assert len(s.query) + len(s.train) + len(s.database) == n_labeled
    s2 = data.split(ds, "multilabel_balanced", seed=0, n_query_per_class=20, n_train_per_class=50)
    assert np.array_equal(s.query, s2.query) and np.array_equal(s.train, s2.train)
    si = data.split(ds, "multilabel_balanced", seed=0, n_query_per_class=20, n_train_per_class=50,
                    database_includes_train=True)
    assert np.isin(si.train, si.database).all() and len(si.database) == n_labeled - 120
    with pytest.warns(UserWarning) as rec:  # defaults 100/500 per class are too many
        sd = data.split(ds, "multilabel_balanced", seed=0)
    assert any("scaled" in str(w.message) for w in rec)
    assert sd.protocol["scaled"]


def test_multilabel_uniform_totals_and_mosaic():
    ds = multilabel_set()
    s = data.split(ds, "multilabel_balanced", seed=2, n_query=300, n_train=800)
    assert s.sizes()["query"] == 300 and s.sizes()["train"] == 800 and s.protocol["sampling"] == "uniform"
    with pytest.raises(ValueError, match="not both"):
        data.split(ds, "multilabel_balanced", n_query=5, n_train_per_class=5)
    m = data.make_mosaic(tiny_base(n_per_class=40), grid=2, n=1000, seed=0)
    sm = data.split(m, "multilabel_balanced", seed=0, n_query_per_class=10, n_train_per_class=40)
    assert len(sm.query) == 50 and len(sm.train) == 200


def test_flowers_protocol_40_20_20():
    ds = single_label(n_per_class=80, n_classes=17)
    s = data.split(ds, "flowers", seed=5)
    assert s.sizes() == {"train": 680, "query": 340, "database": 680, "val": 340}
    for part, k in [("train", 40), ("val", 20), ("query", 20)]:
        assert (np.bincount(ds.labels[getattr(s, part)], minlength=17) == k).all()
    np.testing.assert_array_equal(s.database, s.train)
    assert s.protocol["database_includes_train"] and "note" in s.protocol
    assert np.array_equal(data.split(ds, "flowers", seed=5).val, s.val)
    assert not np.array_equal(data.split(ds, "flowers", seed=6).val, s.val)


# ----------------------------------------------------------------------------- archives
def test_extract_once_rejects_path_traversal(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tf:
        info = tarfile.TarInfo("../evil.txt")
        payload = b"x"
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    with pytest.raises(Exception):
        archives.extract_once(bad, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_array_cache_roundtrip(tmp_path):
    c = archives.ArrayCache(tmp_path / "c")
    assert c.load() is None
    c.save({"a": np.arange(5), "b": np.eye(2)}, info={"x": 1})
    got = c.load()
    np.testing.assert_array_equal(got["a"], np.arange(5)) and c.info()["x"] == 1
    (tmp_path / "c" / "b.npy").unlink()
    assert c.load() is None  # incomplete cache is ignored


# ----------------------------------------------------------------------------- real mirrors
def _mirror():
    root = os.environ.get("HASHREPRO_DATA")
    if not root:
        pytest.skip("HASHREPRO_DATA is not set")
    root = Path(root)
    needed = [root / "MNIST/raw/train-images-idx3-ubyte", root / "cifar10/cifar10-jpeg.tar.gz",
              root / "flowers17/flowers17-160px.tar.gz"]
    if not all(p.exists() for p in needed):
        pytest.skip(f"HASHREPRO_DATA={root} lacks the mirrors")
    return root


@pytest.mark.shared
def test_real_mirrors(capsys):
    _mirror()
    t = time.perf_counter()
    m = data.load("mnist")
    t_mnist = time.perf_counter() - t
    assert m.images.shape == (70000, 28, 28, 1)
    assert m.labels[0] == 5 and m.labels[60000] == 7
    assert len(m.official_split["train"]) == 60000
    t = time.perf_counter()
    c = data.load("cifar10")
    t_c1 = time.perf_counter() - t
    t = time.perf_counter()
    c = data.load("cifar10")
    t_c2 = time.perf_counter() - t
    assert c.images.shape == (60000, 32, 32, 3) and (np.bincount(c.labels) == 6000).all()
    assert len(c.official_split["test"]) == 10000
    t = time.perf_counter()
    f = data.load("flowers17")
    t_f = time.perf_counter() - t
    assert len(f) == 1360 and (np.bincount(f.labels) == 80).all()
    s = data.split(f, "flowers", seed=0)
    assert s.sizes() == {"train": 680, "query": 340, "database": 680, "val": 340}
    s = data.split(c, "per_class", seed=0)
    assert s.sizes() == {"train": 5000, "query": 1000, "database": 54000, "val": 0}
    with capsys.disabled():
        print(f"\n[shared] mnist {t_mnist:.2f}s, cifar10 {t_c1:.2f}s then {t_c2:.2f}s (cached), "
              f"flowers17 {t_f:.2f}s; cache {data.cache_root()}")
