"""Reference retrievers on the mosaics' frozen features (:mod:`hashrepro.mch_ceiling`, issue 16)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hashrepro import crop_features as CF
from hashrepro import mch_ceiling as MC


def test_shared_label_probability_matches_brute_force_over_label_sets():
    """P(share >= 1 label) = sum over every pair of label sets that intersect of their probabilities
    (classes independent), on random probabilities, exact 0 / 1 included."""
    rng = np.random.default_rng(0)
    pq, px = rng.random((4, 3)), rng.random((5, 3))
    pq[0] = [0.0, 1.0, 0.0]
    px[0] = [1.0, 0.0, 1.0]
    px[1] = [0.0, 1.0, 0.0]

    def p_set(p, s):
        return np.prod([p[c] if s[c] else 1 - p[c] for c in range(len(p))])

    sets = list(itertools.product([0, 1], repeat=3))
    ref = np.array([[sum(p_set(a, s) * p_set(b, t) for s in sets for t in sets if any(i and j for i, j in zip(s, t)))
                     for b in px] for a in pq])
    got = MC.shared_label_probability(pq, px)
    np.testing.assert_allclose(got, ref, atol=1e-9)
    assert got[0, 0] == pytest.approx(0.0) and got[0, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"expected probabilities \(nq, C\) and \(ndb, C\)"):
        MC.shared_label_probability(pq, px[:, :2])


def test_fit_multilabel_learns_separable_labels_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g)
    y = torch.stack([(x[:, 0] > 0), (x[:, 1] > 0)], 1).float()
    a = MC.fit_multilabel(x, y, 0, 1e-4, epochs=60, batch_size=16, lr=1e-2, seed=1)
    b = MC.fit_multilabel(x, y, 0, 1e-4, epochs=60, batch_size=16, lr=1e-2, seed=1)
    with torch.no_grad():
        acc = ((a(x) > 0).float() == y).float().mean()
        assert acc > 0.95 and torch.equal(a(x), b(x))


def test_bad_ceiling_config_is_one_clear_line():
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\), got 1.5"):
        MC.MosaicCeilingConfig(val_fraction=1.5)


def test_mosaic_reference_maps_on_a_small_mosaic(monkeypatch):
    """The whole measurement on the smoke mosaic with a tiny stand-in backbone: every retriever scores
    a mAP in [floor-ish, 1], the weight decay is chosen on validation, and the floor is reported."""
    from hashrepro.methods import mch

    g = torch.Generator().manual_seed(0)
    W = torch.randn(3 * 4 * 4, 1280, generator=g)

    class Tiny(torch.nn.Module):
        def features(self, x):
            return torch.relu(torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) @ W)

    monkeypatch.setattr(CF, "_build_net", lambda backbone, pretrained, device: Tiny())
    torch.set_num_threads(1)
    cfg = MC.MosaicCeilingConfig(dataset="mosaic-digits", scale="smoke", backbone_input_size=24, epochs=5,
                                 weight_decays=(1e-4, 1e-2), hidden=32)
    out = MC.mosaic_reference_maps(cfg, progress=lambda s: None)
    m = out["metrics"]
    from hashrepro.methods.mch_data import relevant_fraction

    mcfg = mch.Config.for_scale("smoke", dataset="mosaic-digits", backbone="efficientnet_lite0", backbone_input_size=24)
    ds, sp = mch.load_data(mcfg)
    assert m["relevant_fraction"] == pytest.approx(relevant_fraction(mcfg)) and 0.0 < m["relevant_fraction"] < 1.0
    for r in MC.MOSAIC_RETRIEVERS:
        assert 0.0 < m[f"map_{r}"] <= 1.0, r
    for model in ("linear", "mlp"):
        assert m[f"chosen_wd_{model}"] in (1e-4, 1e-2)
        assert m[f"val_map_{model}_wd{m[f'chosen_wd_{model}']:g}"] == max(m[f"val_map_{model}_wd{w:g}"] for w in (1e-4, 1e-2))
    assert out["protocol"]["n_query"] == len(sp.query) and out["protocol"]["database_includes_train"]


def test_benchmark_main_writes_one_record_per_seed_and_rejects_bad_epochs(tmp_path, capsys):
    """The shared command line of the feature-ceiling benchmarks, with a stand-in measurement."""
    import dataclasses
    import json

    from hashrepro.feature_ceiling import benchmark_main

    seen = []

    def make_config(seed, epochs):
        cfg = MC.MosaicCeilingConfig(seed=seed)
        return cfg if epochs is None else dataclasses.replace(cfg, epochs=epochs)

    def measure(cfg, progress):
        seen.append((cfg.seed, cfg.epochs))
        return {"metrics": {"map_euclidean": 0.5}, "protocol": {"n_query": 1}, "config": {"seed": cfg.seed}}

    kw = dict(paper="mch", script="benchmarks/mch_feature_ceiling.py", out=str(tmp_path), make_config=make_config,
              measure=measure, description="test")
    assert benchmark_main(["--seeds", "0", "2", "--epochs", "7"], **kw) == 0
    assert seen == [(0, 7), (2, 7)]
    recs = sorted((json.loads(p.read_text()) for p in tmp_path.rglob("*.json")), key=lambda r: r["seed"])
    assert [r["seed"] for r in recs] == [0, 2]
    r = recs[0]
    assert r["method"] == "feature-ceiling-efficientnet_lite0" and r["command"].startswith(
        "python benchmarks/mch_feature_ceiling.py --seeds 0 2 --epochs 7")
    with pytest.raises(SystemExit):
        benchmark_main(["--epochs", "0"], **kw)
    assert "--epochs must be a positive integer, got 0" in capsys.readouterr().err
