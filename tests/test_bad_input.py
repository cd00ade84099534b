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
