"""The synthetic code database of the bucket-scale benchmark (hashrepro.bucket_scale): generator
statistics, the fit to measured statistics, and bucket range search against brute force."""
import math

import numpy as np
import pytest

from hashrepro.bucket_scale import (ClassCodeModel, CodeStats, brute_force_range, fit_model, measure, measured_stats,
                                    sample_stats)
from hashrepro.codes import MultiCodes, hamming
from hashrepro.index import BucketIndex
from hashrepro.paths import repo_root


def test_generator_statistics():
    m = ClassCodeModel(32, 5, 0.1, keep_rate=0.4, p_crop=0.05, seed=3)
    rng = np.random.default_rng(0)
    db, y = m.sample(20000, rng)
    assert db.shape == (20000, 32) and db.dtype == np.uint8 and set(np.unique(db)) <= {0, 1}
    # per-bit flip rate from the prototype
    flips = (db ^ m.prototypes[y]).mean()
    assert abs(flips - 0.1) < 0.005
    # classes uniform
    assert np.all(np.abs(np.bincount(y, minlength=5) / 20000 - 0.2) < 0.02)
    # two items of one class differ per bit with q = 2p(1-p)
    a, b = db[y == 0][:2000], db[y == 0][2000:4000]
    assert abs((a ^ b).mean() - 2 * 0.1 * 0.9) < 0.01
    # crops: the whole code is each item's first code, crops flip from the class prototype at p_crop,
    # codes per item = 1 + Binomial(5, 0.4) minus merged duplicates
    mc = m.crops(db, y, rng)
    assert isinstance(mc, MultiCodes) and mc.n_items == 20000
    rows = np.arange(mc.n_codes)
    first = np.full(20000, mc.n_codes, dtype=np.int64)
    np.minimum.at(first, mc.owners, rows)
    assert np.array_equal(mc.codes[first], db)
    crop_rows = np.setdiff1d(rows, first)
    cflips = (mc.codes[crop_rows] ^ m.prototypes[y[mc.owners[crop_rows]]]).mean()
    assert abs(cflips - 0.05) < 0.01  # merging removes a few low-flip crops
    assert 1 + 5 * 0.4 - 0.15 < mc.n_codes / 20000 <= 1 + 5 * 0.4 + 0.05
    # no item holds the same code twice
    key = np.packbits(mc.codes, axis=1).view(">u4").ravel()
    pairs = np.stack([mc.owners, key.astype(np.int64)], axis=1)
    assert len(np.unique(pairs, axis=0)) == mc.n_codes


def test_generator_is_seeded():
    a = ClassCodeModel(16, 3, 0.2, seed=1)
    b = ClassCodeModel(16, 3, 0.2, seed=1)
    assert np.array_equal(a.prototypes, b.prototypes)
    x1, _ = a.sample(50, np.random.default_rng(5))
    x2, _ = b.sample(50, np.random.default_rng(5))
    assert np.array_equal(x1, x2)


@pytest.mark.parametrize("bad", [dict(n_bits=65), dict(n_classes=0), dict(p=0.6), dict(keep_rate=1.5)])
def test_model_bad_input(bad):
    kw = dict(n_bits=16, n_classes=3, p=0.1)
    kw.update(bad)
    with pytest.raises(ValueError):
        ClassCodeModel(**kw)


def test_fit_recovers_statistics():
    """Statistics drawn from a known model are matched by the fitted model (within sampling noise)."""
    true = ClassCodeModel(32, 12, 0.09, keep_rate=0.45, p_crop=0.12, seed=0)
    got = sample_stats(true, 1800, seed=1)
    st = CodeStats(bits=32, n_items=1800, buckets_per_code_x=got["buckets_per_code_x"],
                   ball2_fraction=got["ball2_fraction"], anhc=got["anhc"],
                   buckets_per_code_mch=got["buckets_per_code_mch"])
    fit = fit_model(st)
    again = sample_stats(fit, 1800, seed=2)
    assert abs(again["buckets_per_code_x"] - st.buckets_per_code_x) < 0.02
    assert abs(again["ball2_fraction"] - st.ball2_fraction) < 0.15 * st.ball2_fraction
    assert abs(again["anhc"] - st.anhc) < 0.1
    assert abs(again["buckets_per_code_mch"] - st.buckets_per_code_mch) < 0.02
    assert abs(fit.p - 0.09) < 0.02 and abs(fit.n_classes - 12) <= 3


def test_measured_stats_from_committed_records():
    st = measured_stats(repo_root() / "results" / "mch", "mmhh", 32)
    assert st.bits == 32 and st.n_items == 1800 and st.anhc > 1.5
    assert 0 < st.buckets_per_code_x <= 1 and 0 < st.ball2_fraction < 0.1
    with pytest.raises(FileNotFoundError, match="missing record"):
        measured_stats(repo_root() / "results" / "mch", "nosuchbase", 32)


@pytest.mark.parametrize("bits", [6, 16, 40])
def test_range_search_matches_brute_force_with_ties(bits):
    """Random multi-code databases with many equal codes (ties at every distance): every engine's
    candidate set within radius r equals the brute-force set."""
    rng = np.random.default_rng(bits)
    base = rng.integers(0, 2, size=(30, bits), dtype=np.uint8)
    codes = base[rng.integers(0, 30, size=600)]  # many duplicates
    codes ^= (rng.random(codes.shape) < 0.05).astype(np.uint8)
    owners = np.sort(rng.integers(0, 250, size=600))
    owners = np.unique(owners, return_inverse=True)[1]
    mc = MultiCodes(codes, owners)
    q = base[rng.integers(0, 30, size=25)] ^ (rng.random((25, bits)) < 0.05).astype(np.uint8)
    idx = BucketIndex(mc.codes, mc.owners)
    d = hamming(q, mc.codes)
    for r in range(4):
        ref = brute_force_range(mc, q, r)
        for i in range(len(q)):  # brute force by hand, too
            assert np.array_equal(ref[i], np.unique(mc.owners[d[i] <= r]))
        for method in ("enumerate", "scan", "auto") + (("mih",) if bits <= 64 else ()):
            if method == "enumerate" and math.comb(bits, r) > 50_000:
                continue
            got = idx.range_search(q, r, method=method)
            assert all(np.array_equal(np.sort(g), e) for g, e in zip(got, ref)), (method, r)


def test_measure_rows_and_check():
    m = ClassCodeModel(16, 4, 0.1, keep_rate=0.3, p_crop=0.1, seed=0)
    rng = np.random.default_rng(0)
    db, y = m.sample(3000, rng)
    q, yq = m.sample(20, rng)
    for mc in (MultiCodes.single(db), m.crops(db, y, rng)):
        rows = measure(mc, q, yq, y, repeat=1)
        assert [r["radius"] for r in rows] == [0, 1, 2]
        assert [r["buckets_probed"] for r in rows] == [1, 17, 137]
        cand = [r["candidates"] for r in rows]
        assert cand == sorted(cand) and rows[-1]["recall"] >= rows[0]["recall"]
        for r in rows:
            assert r["scan_ms"] > 0 and r["enumerate_ms"] > 0 and 0 <= r["f1"] <= 1


def test_benchmark_record_and_page_functions(tmp_path):
    """The benchmark at a toy size writes a record the page functions read."""
    import importlib.util

    import matplotlib

    matplotlib.use("Agg")
    from hashrepro.plots import mch_bucket as MB

    spec = importlib.util.spec_from_file_location("mch_bucket_scale", repo_root() / "benchmarks" / "mch_bucket_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "bs"
    assert mod.main(["--bits", "16", "32", "--sizes", "1500", "3000", "--queries", "8", "8", "--out", str(out)]) == 0
    rec = MB.load_bucket_scale(f"{out}.json")
    assert rec["synthetic"] and rec["checked_cases"] > 0 and "git_dirty" in rec and rec["wall_time_s"] > 0
    assert (tmp_path / "bs.txt").read_text().startswith("# command: python benchmarks/mch_bucket_scale.py")
    t = MB.bucket_scale_table(rec)
    assert set(t["database"]) == {"X", "MCH-X"} and len(t) == 2 * 3 + 2 * 3 * 2  # 16 bits: X only
    assert (MB.matched_stats_table(rec)["fitted"] == "yes").sum() == 2 + 4
    tr = MB.trade_table(rec)
    assert list(tr["radius"]) == [0, 1, 2, 0, 1, 2] and tr["MCH-X recall"].notna().sum() == 3
    assert MB.trade_sentence(rec).startswith("At 3,000 items: 32 bits, radius 0 (1 bucket)")
    assert "clean tree" in MB.provenance_sentence(rec) or "DIRTY" in MB.provenance_sentence(rec)
    fig = MB.bucket_scale_figure(rec)
    assert len(fig.axes) == 4
    assert MB.load_bucket_scale(tmp_path / "missing.json") is None
