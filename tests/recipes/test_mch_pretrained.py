"""MCH on the ImageNet backbone (issue 16): cached crop features, heads on them, the regime's records.

The real EfficientNet-Lite0 runs in one small test only; the others replace it with a tiny stand-in
(:func:`hashrepro.crop_features._build_net` patched) so they take seconds.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hashrepro import crop_features as CF
from hashrepro.finetune import imagenet_tail
from hashrepro.data.base import Dataset
from hashrepro.data.crops import CropBank, crop_boxes
from hashrepro.methods import mch as M
from hashrepro.models.mch_hashers import FeatureHasher


class _TinyFeatures(torch.nn.Module):
    """Stand-in for the backbone: 4x4 average colours through a fixed random map to 1,280 dims."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("W", torch.randn(3 * 4 * 4, 1280, generator=g))
        self.calls = 0

    def features(self, x):  # (N, 3, S, S) -> (N, 1280)
        self.calls += len(x)
        return torch.relu(F.adaptive_avg_pool2d(x, 4).flatten(1) @ self.W)


@pytest.fixture
def tiny_backbone(monkeypatch):
    net = _TinyFeatures()
    monkeypatch.setattr(CF, "_build_net", lambda backbone, pretrained, device: net)
    return net


def _images(n=6, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _dataset(images, name="tiny"):
    labels = np.arange(len(images)) % 2
    return Dataset(name, images, labels, ["a", "b"], False, {}, {})


# --------------------------------------------------------------------------- configuration
def test_bad_backbone_is_one_clear_line():
    with pytest.raises(ValueError) as e:
        M.Config.for_scale("smoke", backbone="resnet50")
    msg = str(e.value)
    assert "\n" not in msg and "backbone must be one of" in msg and "efficientnet_lite0" in msg and "resnet50" in msg
    for bad in (8, 3.5, "112", True):
        with pytest.raises(ValueError, match="backbone_input_size must be None"):
            M.Config.for_scale("smoke", backbone="efficientnet_lite0", backbone_input_size=bad)
    with pytest.raises(ValueError, match="no crop_ratios"):
        M.Config.for_scale("smoke", backbone="efficientnet_lite0", crop_ratios=(0.9,), crop_max=0.7)
    with pytest.raises(ValueError, match="backbone must be one of"):
        M.method_name("dch", "vgg")


def test_pretrained_default_preset_and_names():
    cfg = M.Config.for_scale("default", dataset="mosaic-cifar10", backbone="efficientnet_lite0")
    assert (cfg.n_images, cfg.n_query_per_class, cfg.n_train_per_class, cfg.grid_items) == (2000, 20, 80, 200)
    assert cfg.sens_sigmas == (0.5,) and cfg.base_iters == 2000 and cfg.backbone_size == M.PRETRAINED_INPUT_SIZE
    assert cfg.agent_ratios() == (0.3, 0.5, 0.7)
    # overrides win over the preset; the scratch default is unchanged
    assert M.Config.for_scale("default", backbone="efficientnet_lite0", n_images=4000).n_images == 4000
    s = M.Config.for_scale("default", dataset="mosaic-cifar10")
    assert (s.backbone, s.n_images, s.base_iters, s.sens_sigmas) == ("scratch", 4000, 500, (0.3, 0.5, 0.7))
    assert M.method_name("mch-dch", "efficientnet_lite0") == "mch-dch-efficientnet_lite0"
    assert M.method_name("lsh") == "lsh"


# --------------------------------------------------------------------------- crop features and their cache
def test_crop_features_match_per_crop_computation(tiny_backbone):
    imgs = _images(5)
    boxes = np.array([[0, 0, 8, 8], [4, 2, 16, 14], [0, 0, 16, 16]], dtype=np.float32)
    out = CF.crop_backbone_features(imgs, boxes, input_size=24, batch_size=2, device="cpu", progress=False)
    assert out.shape == (5, 3, 1280)
    u8 = torch.from_numpy(imgs).permute(0, 3, 1, 2)
    for k in range(3):
        x = CF.crop_resize(u8, np.repeat(boxes[k:k + 1], 5, axis=0), 24)
        ref = tiny_backbone.features((x - 0.5) / 0.5).numpy()  # tf_lite normalisation
        np.testing.assert_allclose(out[:, k], ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="boxes must be a"):
        CF.crop_backbone_features(imgs, np.zeros((3,)), progress=False)


def test_crop_cache_key_names_everything_that_changes_the_features():
    ds = _dataset(_images(6))
    b5 = crop_boxes(16, 16, 0.5)
    base = CF.crop_cache_key(ds, b5, np.arange(6), input_size=32)
    assert CF.crop_cache_key(ds, b5, np.arange(6), input_size=32) == base  # deterministic
    variants = [
        CF.crop_cache_key(ds, crop_boxes(16, 16, 0.3), np.arange(6), input_size=32),   # other boxes
        CF.crop_cache_key(ds, b5, np.arange(5), input_size=32),                           # other rows
        CF.crop_cache_key(ds, b5, np.array([0, 2, 1, 3, 4, 5]), input_size=32),           # other row order
        CF.crop_cache_key(ds, b5, np.arange(6), input_size=48),                           # input size
        CF.crop_cache_key(ds, b5, np.arange(6), input_size=32, normalisation="imagenet"),  # normalisation
        CF.crop_cache_key(ds, b5, np.arange(6), pretrained=None, input_size=32),          # weights
        CF.crop_cache_key(_dataset(_images(6, seed=1)), b5, np.arange(6), input_size=32),  # pixels
    ]
    stems = {base["stem"], *(v["stem"] for v in variants)}
    assert len(stems) == 1 + len(variants)
    assert base["crop_method"] == CF.CROP_METHOD and base["n_crops"] == 5 and base["n_rows"] == 6
    with pytest.raises(ValueError, match="indices must be dataset rows"):
        CF.crop_cache_key(ds, b5, np.array([0, 6]))


def test_crop_cache_is_read_back_and_resumes(tiny_backbone, tmp_path, monkeypatch):
    from hashrepro.features import features_cache_dir

    monkeypatch.setenv("HASHREPRO_CACHE", str(tmp_path))
    ds = _dataset(_images(7))
    boxes = crop_boxes(16, 16, 0.5)
    rows = np.array([0, 2, 3, 5, 6])
    kw = dict(input_size=24, batch_size=2, device="cpu", progress=False, checkpoint_every=2)
    # an extraction interrupted after its first checkpoint ...
    calls = {"n": 0}
    real = CF.crop_backbone_features

    def failing(*a, **k):
        inner = k["on_batch"]

        def on_batch(r):
            inner(r)
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
        k["on_batch"] = on_batch
        return real(*a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CF, "crop_backbone_features", failing)
        with pytest.raises(KeyboardInterrupt):
            CF.cached_crop_features(ds, boxes, rows, **kw)
    key = CF.crop_cache_key(ds, boxes, rows, input_size=24)
    folder = features_cache_dir()
    assert folder == tmp_path / "features"
    part = json.loads((folder / f"{key['stem']}.partial.json").read_text())
    assert 0 < part["done"] < len(rows)
    # ... resumes from there and equals an uninterrupted computation
    feats = CF.cached_crop_features(ds, boxes, rows, **kw)
    info = json.loads((folder / f"{key['stem']}.json").read_text())
    assert info["resumed_from"] == part["done"]
    ref = CF.cached_crop_features(ds, boxes, rows, **kw, cache=False)
    np.testing.assert_allclose(feats, ref, rtol=1e-6, atol=1e-6)
    # a second read does not run the backbone
    before = tiny_backbone.calls
    again = CF.cached_crop_features(ds, boxes, rows, **kw)
    assert tiny_backbone.calls == before and np.array_equal(again, feats)


# --------------------------------------------------------------------------- the bank and the hasher
def test_crop_bank_lookup_and_random_crops():
    rng = np.random.default_rng(0)
    whole = rng.standard_normal((10, 4)).astype(np.float32)
    rows = np.array([1, 3, 4, 8])
    g5 = rng.standard_normal((4, 5, 4)).astype(np.float32)
    g3 = rng.standard_normal((4, 5, 4)).astype(np.float32)
    bank = CropBank(whole, {0.5: (rows, g5), 0.3: (rows, g3)})
    np.testing.assert_array_equal(bank.whole([8, 1]), whole[[8, 1]])
    np.testing.assert_array_equal(bank.crop([4, 1], 0.5, [2, 0]), np.stack([g5[2, 2], g5[0, 0]]))
    np.testing.assert_array_equal(bank.crop([3], 1.0, 4), whole[[3]])  # σ = 1 is the whole image
    with pytest.raises(ValueError, match="no cached crops of ratio 0.7"):
        bank.crop([1], 0.7, 0)
    with pytest.raises(ValueError, match="not cached for dataset rows"):
        bank.crop([2], 0.5, 0)

    class Ident(torch.nn.Module):
        def features_and_codes(self, x):
            return x, x[:, :2]

    cfg = M.Config.for_scale("smoke", backbone="efficientnet_lite0", crop_ratios=(0.3, 0.5, 0.9))
    h = FeatureHasher(Ident(), bank, torch.device("cpu"))
    f, z = h.embed_random_crops(torch.tensor([1, 3, 4, 8, 1, 3]), cfg, np.random.default_rng(1))
    pool = np.concatenate([g5.reshape(-1, 4), g3.reshape(-1, 4)])
    assert f.shape == (6, 4) and z.shape == (6, 2)
    assert all((np.abs(pool - v).sum(1) == 0).any() for v in f)  # every crop is a cached 0.3 / 0.5 crop
    with pytest.raises(ValueError, match="embed_crop"):
        h.embed(np.array([1]), boxes=np.zeros((1, 4)))


# --------------------------------------------------------------------------- runs
@pytest.mark.parametrize("base", M.BASES)
def test_pretrained_smoke_run(tiny_backbone, base):
    torch.set_num_threads(1)
    cfg = M.Config.for_scale("smoke", dataset="mosaic-digits", base=base, bits=16, backbone="efficientnet_lite0",
                             backbone_input_size=24, progress=False)
    rec = M.run(cfg)
    assert rec["method"] == f"mch-{base}-efficientnet_lite0" and rec["complete"]
    assert rec["config"]["backbone"] == "efficientnet_lite0"
    p = rec["protocol"]
    assert p["backbone"].startswith("efficientnet_lite0") and p["backbone_input_size"] == 24
    assert p["backbone_feature_dim"] == 1280 and p["n_images"] == cfg.n_images
    m = rec["metrics"]
    for k in ("map", "recall_radius0", "precision_radius0"):
        assert 0.0 <= m[k] <= 1.0, k
    assert m["anhc"] >= 1.0 and m["feature_crops"] > cfg.n_images
    comps = {c["method"]: c for c in rec["companions"]}
    assert set(comps) == {f"{base}-efficientnet_lite0", "lsh-efficientnet_lite0", "itq-efficientnet_lite0"}
    assert all(c["protocol"]["backbone"] == p["backbone"] for c in comps.values())
    # every crop the run read came from the plan: whole images + 5 crops per planned row and ratio
    ds, sp = M.load_data(cfg)
    planned = sum(len(r) * (1 if s is None else 5) for s, r in M.crop_plan(cfg, ds, sp))
    assert m["feature_crops"] == planned


def test_scratch_regime_keeps_its_names(tiny_backbone):
    torch.set_num_threads(1)
    rec = M.run(M.Config.for_scale("smoke", dataset="mosaic-digits", base="hashnet", bits=8, progress=False,
                                   sigma_grid=(0.5,), xi_grid=(0.5,), oracle=False, n_visual=0))
    assert rec["method"] == "mch-hashnet" and "backbone" not in rec["protocol"]
    assert {c["method"] for c in rec["companions"]} == {"hashnet", "lsh", "itq"}
    assert tiny_backbone.calls == 0  # the scratch regime never touches the ImageNet backbone


# --------------------------------------------------------------------------- the real backbone, once
def test_real_backbone_crop_features_small():
    from hashrepro.models.backbones import BackboneWeightsError, get_backbone, preprocess

    try:
        net = get_backbone("efficientnet_lite0", pretrained="imagenet").eval()
    except BackboneWeightsError as e:  # pragma: no cover - the weights package is a dependency
        pytest.skip(str(e))
    torch.set_num_threads(1)
    imgs = _images(2, size=16)
    boxes = np.array([[0, 0, 16, 16], [0, 0, 8, 8]], dtype=np.float32)
    out = CF.crop_backbone_features(imgs, boxes, input_size=32, device="cpu", progress=False)
    assert out.shape == (2, 2, 1280) and np.isfinite(out).all()
    u8 = torch.from_numpy(imgs).permute(0, 3, 1, 2)
    with torch.inference_mode():
        x = CF.crop_resize(u8, np.repeat(boxes[1:2], 2, axis=0), 32) * 255.0
        ref = net.features(preprocess(x, None, "tf_lite")).numpy()
    np.testing.assert_allclose(out[:, 1], ref, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- the last block fine-tuned
def test_tuned_tail_on_cached_maps_equals_the_frozen_backbone_before_training():
    from hashrepro.models.backbones import get_backbone
    from hashrepro.models.mch_heads import TunedTail

    torch.manual_seed(0)
    net = get_backbone("efficientnet_lite0", pretrained=None).eval()
    assert CF.crop_map_shape("efficientnet_lite0", 112, M.FINETUNE_START) == (192, 4, 4)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        maps = net.blocks_maps(x, upto=M.FINETUNE_START)
        tail = TunedTail(net, M.FINETUNE_START, tuple(maps.shape[1:])).train()  # BN stays in eval mode
        np.testing.assert_allclose(tail(maps.flatten(1)).numpy(), net.features(x).numpy(), rtol=1e-4, atol=1e-5)
    assert not any(m.training for m in tail.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ValueError, match="upto must be a block index"):
        CF.crop_map_shape("efficientnet_lite0", 112, 16)


def test_finetune_config_errors_and_names():
    for kw, match in ((dict(finetune="all"), "finetune must be one of"),
                      (dict(finetune="last_block"), "applies to the ImageNet backbone"),
                      (dict(finetune="last_block", backbone="efficientnet_lite0", base="ksh"), "KSH is a kernel map"),
                      (dict(finetune="last_block", backbone="efficientnet_lite0", finetune_lr_mult=0), "> 0")):
        with pytest.raises(ValueError, match=match):
            M.Config.for_scale("smoke", **kw)
    cfg = M.Config.for_scale("default", backbone="efficientnet_lite0", finetune="last_block")
    assert M.name_tag(cfg) == "lastblock" and M.name_tag(cfg.replace(finetune="none")) == ""
    assert M.name_tag(cfg.replace(n_images=4000)) == "mosaic4000-q20-t80-lastblock"
    assert M.name_tag(cfg.replace(finetune="last_4_blocks")) == "last4blocks"


@pytest.mark.parametrize("finetune, tag, n_blocks", [("last_block", "lastblock", 1), ("last_4_blocks", "last4blocks", 4)])
def test_finetune_smoke_run(monkeypatch, finetune, tag, n_blocks):
    """The real EfficientNet-Lite0 at 32 px (maps before block 15 or 12: 192 x 1 x 1): the tuned blocks
    train, every crop is re-encoded, the records are named apart, LSH / ITQ are not re-run."""
    from hashrepro.methods import mch_train

    torch.set_num_threads(1)
    seen = {}
    real = mch_train.reencode_bank

    def spy(tail, maps, device, batch_size=512):
        seen["dim"] = maps.dim
        seen["blocks"] = (tail.start, len(tail.blocks))
        seen["moved"] = any((p0 - p).abs().max() > 0 for p0, p in zip(
            imagenet_tail(cfg.backbone, cfg.backbone_size, tail.start).parameters(), tail.parameters()))
        return real(tail, maps, device, batch_size)

    monkeypatch.setattr(mch_train, "reencode_bank", spy)
    cfg = M.Config.for_scale("smoke", dataset="mosaic-digits", base="hashnet", bits=8, backbone="efficientnet_lite0",
                             backbone_input_size=32, progress=False, finetune=finetune, cache=False,
                             sigma_grid=(0.5,), xi_grid=(0.5,), oracle=False, n_visual=0)
    rec = M.run(cfg)
    assert rec["method"] == f"mch-hashnet-{tag}-efficientnet_lite0" and rec["complete"]
    assert [c["method"] for c in rec["companions"]] == [f"hashnet-{tag}-efficientnet_lite0"]
    assert seen == {"dim": 192, "blocks": (16 - n_blocks, n_blocks), "moved": True}
    assert rec["protocol"]["finetune"].startswith(f"{finetune}: blocks {16 - n_blocks}..") and rec["metrics"]["reencode_s"] >= 0


def test_the_notebook_finds_the_base_record_of_a_finetuned_run():
    """notebooks/mch.ipynb looks the base model's record up by mch.record_method (the recipe's one naming)."""
    from hashrepro.paths import repo_root

    nb = json.loads((repo_root() / "notebooks" / "mch.ipynb").read_text())
    src = "".join("".join(c["source"]) for c in nb["cells"])
    assert "mch.record_method(cfg)" in src and "split_tag" not in src
    cfg = M.Config.for_scale("default", backbone="efficientnet_lite0", finetune="last_block", base="adsh")
    assert M.record_method(cfg) == "adsh-lastblock-efficientnet_lite0"
    assert M.record_method(cfg, "mch-adsh") == "mch-adsh-lastblock-efficientnet_lite0"
