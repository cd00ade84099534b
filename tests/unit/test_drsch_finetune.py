"""DRSCH with the ImageNet backbone's last block fine-tuned (issue 15; :mod:`hashrepro.finetune`):
configuration errors, record names, the network on cached maps, a smoke run and a validation grid
over ``finetune`` (the real EfficientNet-Lite0 at 32 px: maps before its last block are 192 x 1 x 1)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hashrepro import data
from hashrepro.finetune import FINETUNE_START, cached_image_maps, imagenet_tail
from hashrepro.methods import drsch
from hashrepro.models.drsch_net import DRSCHFeatureNet


def test_finetune_config_errors_and_names():
    with pytest.raises(ValueError, match="finetune must be one of"):
        drsch.Config.for_scale("smoke", backbone="efficientnet_lite0", finetune="all")
    with pytest.raises(ValueError, match=r"one of \('none', 'last_block'\)"):  # MCH's four-block mode only
        drsch.Config.for_scale("smoke", backbone="efficientnet_lite0", finetune="last_4_blocks")
    with pytest.raises(ValueError, match="applies to the ImageNet backbone"):
        drsch.Config.for_scale("smoke", finetune="last_block")
    with pytest.raises(ValueError, match="finetune_lr_mult must be > 0"):
        drsch.Config.for_scale("smoke", backbone="efficientnet_lite0", finetune="last_block", finetune_lr_mult=0)
    cfg = drsch.Config.for_scale("default", backbone="efficientnet_lite0", finetune="last_block", head_hidden=(2048,))
    assert drsch.record_method(cfg) == "drsch-head_hidden-2048-lastblock-efficientnet_lite0"
    assert drsch.record_method(cfg.replace(finetune="none")) == "drsch-head_hidden-2048-efficientnet_lite0"
    assert drsch.method_name("bs-drsch", "efficientnet_lite0", None, "last_block") == \
        "bs-drsch-lastblock-efficientnet_lite0"
    with pytest.raises(ValueError, match="applies to the ImageNet backbone"):
        drsch.method_name("drsch", "scratch", None, "last_block")


def test_feature_net_with_a_tail_takes_maps_and_trains_the_tail_slower():
    torch.manual_seed(0)
    tail = imagenet_tail("efficientnet_lite0", 32)
    net = DRSCHFeatureNet(8, tail.feat_dim, (16,), tail=tail)
    width = int(np.prod(tail.map_shape))
    assert net.input_width == width == 192
    x = torch.randn(4, width)
    with torch.no_grad():
        assert torch.equal(net.preactivation(x), net.fc8(net.head(tail(x))))
    with pytest.raises(ValueError, match=r"flattened maps \(192, 1, 1\)"):
        net.preactivation(torch.randn(4, 1280))
    groups = net.param_groups(0.01, 5e-4, tail_lr_mult=0.1)
    assert groups[-1]["lr"] == pytest.approx(0.001) and len(groups[-1]["params"]) == len(list(tail.parameters()))
    counted = sum(len(g["params"]) for g in groups)
    assert counted == len(list(net.parameters()))  # every parameter in exactly one group
    with pytest.raises(ValueError, match="the tail outputs 1280 features"):
        DRSCHFeatureNet(8, 512, (16,), tail=tail)


def test_finetune_smoke_run_and_validation_grid(tmp_path, monkeypatch):
    """A run trains the tail (its weights move) on the cached maps and names its record apart; the
    untrained tail on the cached maps gives the backbone's pooled features; a validation grid over
    ``finetune`` trains each candidate on its own inputs."""
    from hashrepro.crop_features import crop_backbone_features
    from hashrepro.validation_select import select_on_validation

    monkeypatch.setenv("HASHREPRO_CACHE", str(tmp_path))
    torch.set_num_threads(1)
    ds = data.load("digits")
    rows = np.arange(0, 40, 3)
    maps = cached_image_maps(ds, rows, "efficientnet_lite0", 32, progress=False)
    assert maps.shape == (len(rows), 192)
    h, w = ds.images.shape[1:3]
    pooled = crop_backbone_features(ds.images[rows], [[0, 0, w, h]], input_size=32, progress=False, device="cpu")[:, 0]
    tail = imagenet_tail("efficientnet_lite0", 32).eval()
    with torch.no_grad():
        np.testing.assert_allclose(tail(torch.from_numpy(np.array(maps))).numpy(), pooled, rtol=1e-4, atol=1e-4)

    seen = {}
    real = drsch.train_model

    def spy(cfg, images, labels, device="cpu", progress=None, **kw):
        model, info = real(cfg, images, labels, device, progress, **kw)
        if model.tail is not None:
            seen["moved"] = any((p0 - p).abs().max() > 0 for p0, p in zip(tail.parameters(), model.tail.parameters()))
            seen["width"] = images.shape[1]
        return model, info

    monkeypatch.setattr(drsch, "train_model", spy)
    cfg = drsch.Config.for_scale("smoke", dataset="digits", backbone="efficientnet_lite0", backbone_input_size=32,
                                 bits=8, finetune="last_block", progress=False)
    rec = drsch.run(cfg)
    assert rec["method"] == "drsch-lastblock-efficientnet_lite0"
    assert seen == {"moved": True, "width": 192}
    assert rec["protocol"]["finetune"].startswith("last_block") and f"blocks {FINETUNE_START}.." in rec["protocol"]["backbone"]
    assert rec["protocol"]["backbone_head"].startswith("last block + head conv + pool -> FeatureMLP 1280 -> 512")
    assert 0.0 < rec["metrics"]["map"] <= 1.0

    monkeypatch.setattr(drsch, "train_model", real)
    sel = select_on_validation("drsch", cfg.replace(finetune="none", iterations=3), {"finetune": ["none", "last_block"]},
                               n_val_per_class=2)
    assert [c["label"] for c in sel["selection"]["candidates"]] == ["finetune=none", "finetune=last_block"]
    assert all(0.0 <= c["validation_map"] <= 1.0 for c in sel["selection"]["candidates"])
    assert sel["method"] == "drsch-efficientnet_lite0"
