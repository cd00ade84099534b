"""Tests for hashrepro.index: MCH Algorithm 1 (hash bucket search) and the FAISS backend.

The reference below is Algorithm 1 written out independently of the library (itertools flips
in lexicographic column order, a dict of buckets, a seen-set), and a brute-force minimum
Hamming distance per item (MCH eq. 5) checks the set semantics.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashrepro import index as hindex
from hashrepro.index import BucketIndex, FaissBucketIndex, buckets_within, flip_rank

ENGINES = ("scan", "mih", "auto")


# --------------------------------------------------------------------------- references
def reference_search(db, ids, q, k):
    """Algorithm 1 as printed in the MCH paper; returns (items, probes, nonempty, radius)."""
    b = db.shape[1]
    buckets: dict = {}
    for row, code in enumerate(map(tuple, db)):
        lst = buckets.setdefault(code, [])
        if ids[row] not in lst:
            lst.append(int(ids[row]))
    n_items = len(set(ids.tolist()))
    U, seen = [], set()
    probes = nonempty = 0
    for r in range(b + 1):
        for flips in itertools.combinations(range(b), r):
            code = list(map(int, q))
            for c in flips:
                code[c] ^= 1
            probes += 1
            bucket = buckets.get(tuple(code))
            if bucket is None:
                continue
            nonempty += 1
            for it in bucket:
                if it not in seen:
                    seen.add(it)
                    U.append(it)
            if len(U) >= min(k, n_items):
                return U[:k], probes, nonempty, r
    raise AssertionError("unreachable")


def reference_range(db, ids, q, r):
    items = []
    b = db.shape[1]
    for rr in range(r + 1):
        for flips in itertools.combinations(range(b), rr):
            code = np.array(q, dtype=np.uint8).copy()
            code[list(flips)] ^= 1
            for row in np.flatnonzero((db == code).all(axis=1)):
                if ids[row] not in items:
                    items.append(int(ids[row]))
    return items


def min_dist(db, ids, q):
    """{item: min Hamming distance over its codes} (MCH eq. 5)."""
    d = (db != q[None, :]).sum(axis=1)
    out: dict = {}
    for row, it in enumerate(ids.tolist()):
        out[it] = min(out.get(it, 10**9), int(d[row]))
    return out


# --------------------------------------------------------------------------- strategies
@st.composite
def databases(draw, max_bits=9, max_rows=40):
    b = draw(st.integers(1, max_bits))
    m = draw(st.integers(1, max_rows))
    pool_size = draw(st.integers(1, 8))  # few distinct codes -> heavy ties / shared buckets
    pool = draw(st.lists(st.lists(st.integers(0, 1), min_size=b, max_size=b), min_size=pool_size,
                         max_size=pool_size))
    rows = draw(st.lists(st.integers(0, pool_size - 1), min_size=m, max_size=m))
    noise = draw(st.lists(st.integers(-1, b - 1), min_size=m, max_size=m))  # -1: no flip
    db = np.array([pool[r] for r in rows], dtype=np.uint8)
    for i, c in enumerate(noise):
        if c >= 0:
            db[i, c] ^= 1
    multi = draw(st.booleans())
    if multi:
        ids = np.array(draw(st.lists(st.integers(0, max(0, m // 2)), min_size=m, max_size=m)), dtype=np.int64)
    else:
        ids = np.arange(m, dtype=np.int64)
    nq = draw(st.integers(1, 4))
    qs = np.array(draw(st.lists(st.lists(st.integers(0, 1), min_size=b, max_size=b), min_size=nq,
                                max_size=nq)), dtype=np.uint8)
    k = draw(st.integers(1, m + 3))
    return db, ids, qs, k


# --------------------------------------------------------------------------- combinatorics
def test_flip_rank_matches_itertools_order():
    for b in range(1, 10):
        for r in range(b + 1):
            for i, combo in enumerate(itertools.combinations(range(b), r)):
                mask = sum(1 << (b - 1 - c) for c in combo)
                assert flip_rank(mask, b) == i


def test_buckets_within():
    assert buckets_within(32, 0) == 1
    assert buckets_within(32, 2) == 1 + 32 + 496
    assert buckets_within(4, 10) == 16
    assert buckets_within(64, 64) == 2**64


# --------------------------------------------------------------------------- hand-worked
def test_hand_worked_example():
    # codes: item 0 = 001, item 1 = 011, item 2 = 111
    idx = BucketIndex(np.array([[0, 0, 1], [0, 1, 1], [1, 1, 1]]))
    res = idx.search_detailed(np.array([[0, 0, 1]]), k=2)
    # r=0: bucket 001 -> item 0 (1 probe); r=1 in column order: flip col 0 -> 101 (empty),
    # flip col 1 -> 011 -> item 1: |U| = 2 after 3 probes, 2 of them non-empty.
    assert res.items[0].tolist() == [0, 1]
    assert res.buckets_visited.tolist() == [3]
    assert res.buckets_nonempty.tolist() == [2]
    assert res.radius.tolist() == [1]
    # K = 3: radius 1 (3 probes: 101, 011, 000) then radius 2: 111 is flip {0, 1}: first at r=2
    res = idx.search_detailed(np.array([[0, 0, 1]]), k=3)
    assert res.items[0].tolist() == [0, 1, 2]
    assert res.buckets_visited.tolist() == [1 + 3 + 1]
    # range search is inclusive
    assert idx.range_search(np.array([[0, 0, 1]]), 1)[0].tolist() == [0, 1]
    assert idx.range_search(np.array([[0, 0, 1]]), 0)[0].tolist() == [0]


def test_multicode_item_returned_once_and_bucket_order_is_insertion():
    db = np.array([[0, 0], [0, 0], [0, 1], [0, 0], [1, 1]], dtype=np.uint8)
    ids = np.array([7, 3, 7, 9, 3])
    idx = BucketIndex(db, ids)
    assert idx.n_items == 3 and idx.n_buckets == 3
    assert idx.buckets[0].tolist() == [7, 3, 9]  # insertion order
    for method in ("enumerate",) + ENGINES:
        res = idx.search_detailed(np.array([0, 1], dtype=np.uint8), k=5, method=method)
        # r=0: bucket 01 -> 7; r=1: 11 (flip col 0) -> 3, 00 (flip col 1) -> 7 (seen), 3 (seen), 9
        assert res.items[0].tolist() == [7, 3, 9]
        assert res.buckets_visited.tolist() == [3]  # stops once every item has been found


def test_k_larger_than_database_returns_everything():
    rng = np.random.default_rng(0)
    db = rng.integers(0, 2, (10, 6), dtype=np.uint8)
    idx = BucketIndex(db)
    for method in ("enumerate",) + ENGINES:
        items, visited = idx.search(db[:3], k=1000, method=method)
        for it in items:
            assert sorted(it.tolist()) == list(range(10))
        ref = [reference_search(db, np.arange(10), q, 1000)[1] for q in db[:3]]
        assert visited.tolist() == ref


# --------------------------------------------------------------------------- property tests
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(databases())
def test_search_equals_reference_algorithm_and_brute_force(data):
    db, ids, qs, k = data
    idx = BucketIndex(db, ids)
    idx._mih_scan_fallback = False  # exercise the multi-index engine to the end
    results = {m: idx.search_detailed(qs, k, method=m) for m in ("enumerate",) + ENGINES}
    n_items = len(set(ids.tolist()))
    for qi, q in enumerate(qs):
        ref_items, ref_probes, ref_nonempty, ref_r = reference_search(db, ids, q, k)
        for m, res in results.items():
            assert res.items[qi].tolist() == ref_items, m
            assert res.buckets_visited[qi] == ref_probes, m
            assert res.buckets_nonempty[qi] == ref_nonempty, m
            assert res.radius[qi] == ref_r, m
        # set semantics vs brute force: all items closer than r*, then some at r*
        dist = min_dist(db, ids, q)
        got = ref_items
        assert len(got) == len(set(got)) == min(k, n_items)
        r_star = max(dist[i] for i in got)
        assert r_star == ref_r
        assert {i for i, d in dist.items() if d < r_star} <= set(got)
        assert all(dist[i] <= r_star for i in got)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(databases(), st.integers(0, 10))
def test_range_search_inclusive_equals_brute_force(data, r):
    db, ids, qs, _ = data
    idx = BucketIndex(db, ids)
    idx._mih_scan_fallback = False
    for m in ("enumerate",) + ENGINES:
        out = idx.range_search(qs, r, method=m)
        for qi, q in enumerate(qs):
            dist = min_dist(db, ids, q)
            assert set(out[qi].tolist()) == {i for i, d in dist.items() if d <= r}
            assert out[qi].tolist() == reference_range(db, ids, q, min(r, db.shape[1])), m


# --------------------------------------------------------------------------- larger / wide
@pytest.mark.parametrize("multi", [False, True])
def test_multi_index_engine_on_a_sparse_table(multi):
    rng = np.random.default_rng(1)
    db = rng.integers(0, 2, (6000, 24), dtype=np.uint8)
    ids = rng.integers(0, 2500, 6000) if multi else None
    idx = BucketIndex(db, ids)
    qs = np.concatenate([rng.integers(0, 2, (20, 24), dtype=np.uint8), db[:5]])
    a = idx.search_detailed(qs, 30, method="mih")
    c = idx.search_detailed(qs, 30, method="scan")
    auto = idx.search_detailed(qs, 30)  # >= 4096 buckets: multi-index
    for x, y, z in zip(a.items, c.items, auto.items):
        assert np.array_equal(x, y) and np.array_equal(x, z)
    assert np.array_equal(a.buckets_visited, c.buckets_visited)
    assert np.array_equal(a.buckets_nonempty, c.buckets_nonempty)
    # the literal algorithm agrees on a couple of queries (radius ~4-5: ~50k probes)
    lit = idx.search_detailed(qs[-2:], 30, method="enumerate")
    assert [x.tolist() for x in lit.items] == [x.tolist() for x in a.items[-2:]]
    assert np.array_equal(lit.buckets_visited, a.buckets_visited[-2:])
    r = idx.range_search(qs[:3], 5, method="mih")
    r2 = idx.range_search(qs[:3], 5, method="scan")
    assert all(np.array_equal(x, y) for x, y in zip(r, r2))


@pytest.mark.parametrize("b", [64, 70])
def test_long_codes_near_the_query(b):
    rng = np.random.default_rng(b)
    base = rng.integers(0, 2, (1, b), dtype=np.uint8)
    db = np.repeat(base, 30, axis=0)
    for i in range(30):  # 0-2 flips away from the base code
        db[i, rng.choice(b, size=i % 3, replace=False)] ^= 1
    ids = rng.integers(0, 20, 30)
    idx = BucketIndex(db, ids)
    q = base.copy()
    for k in (1, 5, 25):
        ref = reference_search(db, ids, q[0], k)
        for m in ("enumerate", "scan", "auto"):
            res = idx.search_detailed(q, k, method=m)
            assert res.items[0].tolist() == ref[0]
            assert res.buckets_visited[0] == ref[1]
    key = next(iter(idx.buckets))
    assert isinstance(key, bytes if b > 64 else int)
    if b > 64:
        with pytest.raises(ValueError, match="n_bits <= 64"):
            idx.search(q, 1, method="mih")


def test_huge_bucket_counts_stay_exact():
    # 64-bit codes, the only other item at distance 40: probes exceed 2**63
    b = 64
    q = np.zeros((1, b), dtype=np.uint8)
    far = np.zeros((1, b), dtype=np.uint8)
    far[0, :40] = 1
    idx = BucketIndex(np.concatenate([q, far]))
    res = idx.search_detailed(q, 2, method="scan")
    expected = buckets_within(b, 39) + flip_rank(int("1" * 40 + "0" * 24, 2), b) + 1
    assert res.buckets_visited[0] == expected and expected > 2**63
    assert res.items[0].tolist() == [0, 1]


def test_from_multicodes_and_torch_input():
    torch = pytest.importorskip("torch")
    from hashrepro.codes import MultiCodes

    mc = MultiCodes(np.array([[0, 1, 1], [1, 1, 1], [0, 0, 0]]), owners=np.array([0, 0, 1]))
    idx = BucketIndex.from_multicodes(mc)
    assert idx.n_items == 2
    items, visited = idx.search(torch.tensor([[1, 1, 1]]), 2)
    assert items[0].tolist() == [0, 1] and visited.tolist() == [buckets_within(3, 2) + 1]


def test_validation_errors():
    db = np.zeros((3, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        BucketIndex(db).search(db, 0)
    with pytest.raises(ValueError, match="bits"):
        BucketIndex(db).search(np.zeros((1, 5), dtype=np.uint8), 1)
    with pytest.raises(ValueError, match="method must be one of"):
        BucketIndex(db).search(db, 1, method="fast")
    with pytest.raises(ValueError, match="ids must have shape"):
        BucketIndex(db, ids=[0, 1])
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        BucketIndex(db + 2)
    with pytest.raises(ValueError, match="empty"):
        BucketIndex(np.zeros((0, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="radius"):
        BucketIndex(db).range_search(db, -1)
    with pytest.raises(ValueError, match="n_substrings"):
        BucketIndex(db, n_substrings=9)


# --------------------------------------------------------------------------- FAISS
faiss = pytest.importorskip("faiss")


def test_faiss_range_search_radius_is_exclusive():
    # two items: distance 0 and distance exactly 2 from the query
    db = np.array([[0] * 16, [1, 1] + [0] * 14], dtype=np.uint8)
    packed = np.packbits(db, axis=1)
    for index in (faiss.IndexBinaryHash(16, 16), faiss.IndexBinaryMultiHash(16, 2, 8)):
        index.add(packed)
        index.nflip = 2
        lims, D, I = index.range_search(packed[:1], 2)
        assert sorted(I[lims[0]:lims[1]].tolist()) == [0]  # distance 2 excluded: dis < radius
        lims, D, I = index.range_search(packed[:1], 3)
        assert sorted(I[lims[0]:lims[1]].tolist()) == [0, 1]
    # the wrapper takes an inclusive radius
    assert sorted(FaissBucketIndex(db).range_search(db[:1], 2)[0].tolist()) == [0, 1]
    assert FaissBucketIndex(db).range_search(db[:1], 1)[0].tolist() == [0]


@pytest.mark.parametrize("n_hash,bits", [(1, 16), (2, 16), (1, 12), (2, 24)])
@pytest.mark.parametrize("multi", [False, True])
def test_faiss_backend_agrees_with_bucket_index(n_hash, bits, multi):
    rng = np.random.default_rng(bits + n_hash)
    base = rng.integers(0, 2, (8, bits), dtype=np.uint8)
    db = base[rng.integers(0, 8, 400)]
    db ^= (rng.random(db.shape) < 0.08).astype(np.uint8)
    ids = rng.integers(0, 200, 400) if multi else None
    qs = base[:5] ^ (rng.random((5, bits)) < 0.05).astype(np.uint8)
    ours = BucketIndex(db, ids)
    fb = FaissBucketIndex(db, ids, n_hash=n_hash, hash_bits=None if n_hash == 1 else 8 * ((bits + 7) // 8) // n_hash)
    ids_arr = np.arange(400) if ids is None else ids
    for k in (1, 10, 50):
        f_items, f_visited = fb.search(qs, k)
        res = ours.search_detailed(qs, k)
        for qi, q in enumerate(qs):
            dist = min_dist(db, ids_arr, q)
            assert len(set(f_items[qi].tolist())) == len(f_items[qi]) == len(res.items[qi])
            # same multiset of item distances (ties at the last radius may differ)
            assert sorted(dist[i] for i in f_items[qi]) == sorted(dist[i] for i in res.items[qi].tolist())
        assert (f_visited >= n_hash).all()
    for r in (0, 2, 5):
        a = fb.range_search(qs, r)
        c = ours.range_search(qs, r)
        for x, y in zip(a, c):
            assert sorted(x.tolist()) == sorted(y.tolist())


def test_faiss_probe_count_formula():
    rng = np.random.default_rng(3)
    db = rng.integers(0, 2, (300, 16), dtype=np.uint8)
    fb = FaissBucketIndex(db, n_hash=2, hash_bits=8)
    items, visited = fb.search(db[:1], 1)  # found at distance 0 with nflip = 0
    assert visited.tolist() == [2] and items[0].tolist()[0] in np.flatnonzero((db == db[0]).all(1))
    stats = faiss.cvar.indexBinaryHash_stats
    stats.reset()
    fb.index.nflip = 2
    fb.index.search(np.packbits(db[:1], axis=1), 5)
    assert stats.nlist + stats.n0 == 2 * buckets_within(8, 2)  # hits + misses = probes
    assert fb._probes(2) == 2 * math.comb(8, 0) + 2 * math.comb(8, 1) + 2 * math.comb(8, 2)


def test_module_constants_sane():
    assert hindex._MIH_MAX_SUBSTRING_BITS <= 24


def test_bucket_counts_agree_with_metrics_f1_bucket_curve():
    """hashrepro.metrics.f1_bucket_curve counts buckets with the same semantics (MCH §5.2.1)."""
    bucket = pytest.importorskip("hashrepro.metrics.bucket")
    from hashrepro.codes import MultiCodes

    rng = np.random.default_rng(5)
    for _ in range(10):
        b, n = int(rng.integers(3, 10)), int(rng.integers(5, 50))
        pool = rng.integers(0, 2, (4, b), dtype=np.uint8)
        db = pool[rng.integers(0, 4, n)] ^ (rng.random((n, b)) < 0.1).astype(np.uint8)
        _, owners = np.unique(rng.integers(0, n // 2 + 1, n), return_inverse=True)
        mc = MultiCodes(db, owners)
        q = rng.integers(0, 2, (6, b), dtype=np.uint8)
        ks = [k for k in (1, 3, 5, 10) if k <= mc.n_items]
        curve = bucket.f1_bucket_curve(q, mc, rng.integers(0, 3, 6), rng.integers(0, 3, mc.n_items), ks=ks)
        idx = BucketIndex.from_multicodes(mc)
        ours = [idx.search_detailed(q, k).buckets_visited.mean() for k in ks]
        assert np.allclose(curve["buckets"], ours)
