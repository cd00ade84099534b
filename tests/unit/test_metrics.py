"""hashrepro.metrics against brute-force references (plain loops, explicit permutations)."""
import contextlib
import itertools
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hashrepro.codes import MultiCodes, hamming
from hashrepro.metrics import _kernels
from hashrepro.metrics import (
    anhc,
    average_precision,
    bucket_rank,
    cmc,
    evaluate,
    f1_bucket_curve,
    mean_average_precision,
    pr_curve_topk,
    precision_at_k,
    precision_recall_within_radius,
    relevance,
)

FAST = settings(max_examples=40, deadline=None)
TINY = settings(max_examples=25, deadline=None)


# --------------------------------------------------------------------------- references
def ref_ap_order(rel_sorted, k=None):
    """AP@k of one ranked relevance list; returns (ap, empty)."""
    rel_sorted = list(rel_sorted)[: (len(rel_sorted) if k is None else k)]
    hits, s = 0, 0.0
    for i, r in enumerate(rel_sorted, 1):
        if r:
            hits += 1
            s += hits / i
    return (s / hits if hits else 0.0), hits == 0


def ref_ap_index(d, r, k=None):
    order = sorted(range(len(d)), key=lambda j: (d[j], j))
    return ref_ap_order([r[j] for j in order], k)


def tie_orders(d):
    """Every order that sorts d ascending (all permutations inside tie groups)."""
    vals = sorted(set(d))
    groups = [[j for j in range(len(d)) if d[j] == v] for v in vals]
    for combo in itertools.product(*[itertools.permutations(g) for g in groups]):
        yield [j for g in combo for j in g]


def ref_ap_expected(d, r, k=None):
    tot, n, any_nonempty = 0.0, 0, False
    for order in tie_orders(d):
        ap, emp = ref_ap_order([r[j] for j in order], k)
        tot += ap
        n += 1
        any_nonempty |= not emp
    return tot / n, not any_nonempty


def ref_map(D, R, k=None, ties="index", empty="zero"):
    vals, emps = [], []
    for d, r in zip(D.tolist(), R.tolist()):
        ap, e = (ref_ap_index if ties == "index" else ref_ap_expected)(d, r, k)
        vals.append(ap)
        emps.append(e)
    vals, emps = np.array(vals), np.array(emps)
    if empty == "zero":
        return vals.mean()
    return vals[~emps].mean() if (~emps).any() else np.nan


def random_case(seed, nq, ndb, n_bits, n_classes, multilabel=False):
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 2, (nq, n_bits), dtype=np.uint8)
    db = rng.integers(0, 2, (ndb, n_bits), dtype=np.uint8)
    if multilabel:
        ql = (rng.random((nq, n_classes)) < 0.3).astype(np.uint8)
        dl = (rng.random((ndb, n_classes)) < 0.3).astype(np.uint8)
    else:
        ql = rng.integers(0, n_classes, nq)
        dl = rng.integers(0, n_classes, ndb)
    return q, db, ql, dl


case_params = st.tuples(
    st.integers(0, 2**31 - 1),  # seed
    st.integers(1, 12),  # nq
    st.integers(1, 40),  # ndb
    st.integers(1, 6),  # n_bits (few bits: heavy ties)
    st.integers(1, 5),  # classes
    st.booleans(),  # multilabel
)


# --------------------------------------------------------------------------- hand-worked
def test_hand_worked_ap():
    # ranks: rel, irr, rel, irr -> AP = (1/1 + 2/3) / 2
    d = np.array([[0, 1, 2, 3]])
    rel = np.array([[1, 0, 1, 0]], bool)
    assert average_precision(d, rel)[0] == pytest.approx((1 + 2 / 3) / 2)
    # top-2: only rank 1 relevant -> normalised by 1 relevant retrieved: AP@2 = 1
    assert average_precision(d, rel, topk=2)[0] == pytest.approx(1.0)
    # tie group {0,1} at distance 0 with one relevant item (index 1):
    d = np.array([[0, 0]])
    rel = np.array([[0, 1]], bool)
    assert average_precision(d, rel, ties="index")[0] == pytest.approx(0.5)  # index order: irr, rel
    assert average_precision(d, rel, ties="expected")[0] == pytest.approx((1 + 0.5) / 2)
    # expected AP@1 when the tie straddles the cut: half the orders put the relevant item first
    assert average_precision(d, rel, topk=1, ties="expected")[0] == pytest.approx(0.5)
    # a query with no relevant item
    assert np.isnan(average_precision(d, np.zeros((1, 2), bool), empty="skip")[0])
    assert average_precision(d, np.zeros((1, 2), bool), empty="zero")[0] == 0.0


def test_hand_worked_map_labels_and_empty_policy():
    q = np.array([[0, 0], [1, 1]], np.uint8)
    db = np.array([[0, 0], [0, 1], [1, 1]], np.uint8)
    ql = np.array([0, 5])  # label 5 absent from the database: an empty query
    dl = np.array([0, 1, 0])
    # query 0: distances 0,1,2 ; relevant items 0 and 2 -> AP = (1 + 2/3)/2
    ap0 = (1 + 2 / 3) / 2
    assert mean_average_precision(q, db, ql, dl) == pytest.approx(ap0 / 2)
    assert mean_average_precision(q, db, ql, dl, empty="skip") == pytest.approx(ap0)
    m, per = mean_average_precision(q, db, ql, dl, empty="skip", return_per_query=True)
    assert per[0] == pytest.approx(ap0) and np.isnan(per[1])


def test_hand_worked_radius_and_precision():
    d = np.array([[0, 1, 1, 3], [2, 2, 2, 2]])
    rel = np.array([[1, 0, 1, 1], [0, 0, 0, 0]], bool)
    out = precision_recall_within_radius(d, rel, n_bits=3)
    # r=0: q0 returns 1 (rel) -> P=1, R=1/3 ; q1 returns nothing -> P=0 (CNNH/DNNH), R=0
    assert out["precision"][0] == pytest.approx(0.5)
    assert out["recall"][0] == pytest.approx(1 / 6)
    assert out["n_returned"][0] == pytest.approx(0.5)
    assert out["precision_nonempty"][0] == pytest.approx(1.0)
    # r=2: q0 returns 3 items, 2 relevant ; q1 returns 4, 0 relevant
    assert out["precision"][2] == pytest.approx((2 / 3 + 0) / 2)
    skip = precision_recall_within_radius(d, rel, n_bits=3, empty="skip")
    assert skip["precision"][2] == pytest.approx(2 / 3) and skip["recall"][3] == pytest.approx(1.0)
    np.testing.assert_allclose(precision_at_k(d, rel, [1, 2, 4]), [(1 + 0) / 2, (0.5 + 0) / 2, (0.75 + 0) / 2])


def test_relevance_single_and_multi():
    np.testing.assert_array_equal(relevance([0, 1], [1, 0, 1]), [[0, 1, 0], [1, 0, 1]])
    ql = np.array([[1, 0, 1], [0, 0, 0]])
    dl = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(relevance(ql, dl), [[1, 0, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match="multi-hot"):
        relevance([0, 1], dl)
    with pytest.raises(ValueError, match="classes"):
        relevance(ql[:, :2], dl)


def test_validation_messages():
    d = np.zeros((2, 3))
    rel = np.zeros((2, 3), bool)
    with pytest.raises(ValueError, match="ties"):
        average_precision(d, rel, ties="random")
    with pytest.raises(ValueError, match="empty"):
        average_precision(d, rel, empty="nan")
    with pytest.raises(ValueError, match="topk"):
        average_precision(d, rel, topk=0)
    with pytest.raises(ValueError, match="shape"):
        average_precision(d, rel[:1])
    with pytest.raises(ValueError, match="NaN"):
        average_precision(np.full((2, 3), np.nan), rel)
    with pytest.raises(ValueError, match="ks"):
        precision_at_k(d, rel, [0, 1])
    with pytest.raises(ValueError, match="integer"):
        precision_recall_within_radius(d + 0.5, rel)
    with pytest.raises(ValueError, match="empty"):
        mean_average_precision(np.zeros((2, 4), np.uint8), np.zeros((0, 4), np.uint8), [0, 1], np.zeros(0, int))
    with pytest.raises(ValueError, match="sizes"):
        mean_average_precision(np.zeros((2, 4), np.uint8), np.zeros((3, 4), np.uint8), [0, 1], [0, 1])


# --------------------------------------------------------------------------- property tests
@pytest.mark.filterwarnings("ignore:mAP")
@FAST
@given(case_params, st.sampled_from([None, 1, 3, 10]), st.sampled_from(["zero", "skip"]))
def test_map_index_matches_reference(params, topk, empty):
    seed, nq, ndb, nb, nc, ml = params
    q, db, ql, dl = random_case(seed, nq, ndb, nb, nc, ml)
    D = hamming(q, db)
    R = relevance(ql, dl)
    ref = ref_map(D, R, topk, "index", empty)
    got = mean_average_precision(q, db, ql, dl, topk=topk, ties="index", empty=empty, chunk_size=3)
    if np.isnan(ref):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(ref, rel=1e-12, abs=1e-12)
    # the dist-matrix path and float distances agree too
    got2 = mean_average_precision(dist=D.astype(np.float32) * 0.5, query_labels=ql, db_labels=dl, topk=topk, empty=empty)
    assert got2 == pytest.approx(ref, rel=1e-12, abs=1e-12) or (np.isnan(ref) and np.isnan(got2))


@contextlib.contextmanager
def numpy_path():
    """Run hashrepro.metrics without its compiled kernels (the HASHREPRO_NO_NUMBA path)."""
    have = _kernels.HAVE_NUMBA
    _kernels.HAVE_NUMBA = False
    try:
        yield
    finally:
        _kernels.HAVE_NUMBA = have


@pytest.mark.filterwarnings("ignore:mAP")
@FAST
@given(case_params, st.sampled_from([None, 1, 3, 10]), st.sampled_from(["index", "expected"]))
def test_compiled_kernels_equal_numpy_path_and_reference(params, topk, ties):
    # the numba kernels (two-pass counting AP, histograms) and the numpy path (stable radix
    # sort, bincount) give the same per-query AP, and both equal the brute-force reference
    seed, nq, ndb, nb, nc, ml = params
    q, db, ql, dl = random_case(seed, nq, ndb, nb, nc, ml)
    D, R = hamming(q, db), relevance(ql, dl)
    fast = average_precision(D, R, topk=topk, ties=ties, empty="zero")
    with numpy_path():
        slow = average_precision(D, R, topk=topk, ties=ties, empty="zero")
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    for i in range(nq):
        if ties == "expected" and ndb > 7:
            break  # the permutation reference enumerates every tie order: small cases only
        ref = (ref_ap_index if ties == "index" else ref_ap_expected)(D[i].tolist(), R[i].tolist(), topk)[0]
        assert fast[i] == pytest.approx(ref, rel=1e-9, abs=1e-12)
    if _kernels.HAVE_NUMBA:
        N, Rr = _kernels.histograms_integer(D, R, nb + 1)
        for i in range(nq):
            np.testing.assert_array_equal(N[i], np.bincount(D[i], minlength=nb + 1))
            np.testing.assert_array_equal(Rr[i], np.bincount(D[i][R[i]], minlength=nb + 1))


def test_compiled_kernel_is_used_when_numba_is_installed():
    pytest.importorskip("numba")
    assert _kernels.HAVE_NUMBA or os.environ.get("HASHREPRO_NO_NUMBA")


@TINY
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 7),
    st.integers(1, 3),
    st.sampled_from([None, 1, 2, 3, 5]),
    st.sampled_from(["zero", "skip"]),
    st.floats(0.1, 0.9),
)
def test_expected_ap_matches_permutations(seed, ndb, nvals, topk, empty, p_rel):
    rng = np.random.default_rng(seed)
    nq = 3
    D = rng.integers(0, nvals, (nq, ndb))
    R = rng.random((nq, ndb)) < p_rel
    got = average_precision(D, R, topk=topk, ties="expected", empty=empty)
    for i in range(nq):
        ref, emp = ref_ap_expected(D[i].tolist(), R[i].tolist(), topk)
        if emp and empty == "skip":
            assert np.isnan(got[i])
        else:
            assert got[i] == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # float distances: ties = exactly equal values
    got_f = average_precision(D * 0.25 + 0.1, R, topk=topk, ties="expected", empty=empty)
    np.testing.assert_allclose(got_f, got, rtol=1e-9, atol=1e-12)


def test_expected_ap_large_groups_against_monte_carlo():
    # one big tie group straddling the cut, checked against sampling (the closed form is exact)
    rng = np.random.default_rng(0)
    d = np.r_[np.zeros(5), np.ones(200), np.full(50, 2)].astype(int)
    r = rng.random(d.size) < 0.3
    exp = average_precision(d[None], r[None], topk=60, ties="expected")[0]
    sims = []
    for _ in range(4000):
        perm = np.lexsort((rng.random(d.size), d))
        sims.append(ref_ap_order(r[perm].tolist(), 60)[0])
    assert exp == pytest.approx(np.mean(sims), abs=4 * np.std(sims) / np.sqrt(len(sims)))


@FAST
@given(case_params, st.sampled_from(["index", "expected"]))
def test_precision_at_k_and_pr_topk(params, ties):
    seed, nq, ndb, nb, nc, ml = params
    q, db, ql, dl = random_case(seed, nq, ndb, nb, nc, ml)
    D, R = hamming(q, db), relevance(ql, dl)
    ks = np.arange(1, ndb + 1)
    got = precision_at_k(D, R, ks, ties=ties, chunk_size=4)
    if ties == "index":
        orders = [sorted(range(ndb), key=lambda j: (D[i, j], j)) for i in range(nq)]
        cnt = np.array([[sum(R[i, o[:k]]) for k in ks] for i, o in enumerate(orders)], float)
    else:  # expected count in the top k = average over tie orders (small cases only)
        cnt = np.zeros((nq, ndb))
        for i in range(nq):
            # E[#rel in top k] = full groups + (m / n) r of the cut group
            for kk in ks:
                below = D[i] < np.sort(D[i])[kk - 1]
                cut = D[i] == np.sort(D[i])[kk - 1]
                m = kk - below.sum()
                cnt[i, kk - 1] = R[i, below].sum() + m * R[i, cut].sum() / cut.sum()
    np.testing.assert_allclose(got, (cnt / ks).mean(axis=0), rtol=1e-12, atol=1e-12)
    # few ks -> the searchsorted path; many -> the dense path: both must agree
    few = np.array([1, ndb])
    np.testing.assert_allclose(precision_at_k(D, R, few, ties=ties), got[few - 1], rtol=1e-12)
    pr = pr_curve_topk(D, R, ks, ties=ties, empty="skip")
    Rt = R.sum(axis=1)
    keep = Rt > 0
    if keep.any():
        np.testing.assert_allclose(pr["recall"], (cnt[keep] / Rt[keep, None]).mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(pr["precision"], (cnt[keep] / ks).mean(axis=0), rtol=1e-12)


@FAST
@given(case_params, st.sampled_from(["zero", "skip"]))
def test_radius_matches_reference(params, empty):
    seed, nq, ndb, nb, nc, ml = params
    q, db, ql, dl = random_case(seed, nq, ndb, nb, nc, ml)
    D, R = hamming(q, db), relevance(ql, dl)
    out = precision_recall_within_radius(D, R, n_bits=nb, empty=empty, chunk_size=2)
    for r in range(nb + 1):
        P, Rc, ret, used = [], [], [], 0
        for i in range(nq):
            tot = R[i].sum()
            if empty == "skip" and tot == 0:
                continue
            got_idx = [j for j in range(ndb) if D[i, j] <= r]
            hit = sum(R[i, j] for j in got_idx)
            P.append(hit / len(got_idx) if got_idx else 0.0)
            Rc.append(hit / tot if tot else 0.0)
            ret.append(len(got_idx))
        if not P:
            assert np.isnan(out["precision"][r])
            continue
        assert out["precision"][r] == pytest.approx(np.mean(P))
        assert out["recall"][r] == pytest.approx(np.mean(Rc))
        assert out["n_returned"][r] == pytest.approx(np.mean(ret))


# --------------------------------------------------------------------------- multi-code, bucket search
def ref_bucket_search(qc, codes, owners, K):
    """Algorithm 1 of MCH, literally: enumerate buckets radius by radius."""
    Q = len(qc)
    buckets = {}
    for j, c in enumerate(codes):
        buckets.setdefault(tuple(c), []).append(j)
    U, visited = [], 0
    for r in range(Q + 1):
        for flips in itertools.combinations(range(Q), r):
            b = list(qc)
            for f in flips:
                b[f] ^= 1
            visited += 1
            for j in buckets.get(tuple(b), []):
                if owners[j] not in U:
                    U.append(owners[j])
            if len(U) >= K:
                return U[:K], visited
    raise AssertionError


def test_bucket_rank_is_itertools_order():
    Q = 6
    for r in range(Q + 1):
        combos = list(itertools.combinations(range(Q), r))
        X = np.zeros((len(combos), Q), np.uint8)
        for i, c in enumerate(combos):
            X[i, list(c)] = 1
        np.testing.assert_array_equal(bucket_rank(X), np.arange(len(combos)))


@TINY
@given(st.integers(0, 2**31 - 1), st.integers(2, 7), st.integers(2, 12), st.booleans())
def test_f1_bucket_matches_algorithm1(seed, Q, n_items, multi):
    rng = np.random.default_rng(seed)
    if multi:
        owners = np.concatenate([np.arange(n_items), rng.integers(0, n_items, n_items)])
    else:
        owners = np.arange(n_items)
    codes = rng.integers(0, 2, (owners.size, Q), dtype=np.uint8)
    mc = MultiCodes(codes, owners)
    nq = 4
    qc = rng.integers(0, 2, (nq, Q), dtype=np.uint8)
    ql, dl = rng.integers(0, 3, nq), rng.integers(0, 3, n_items)
    Ks = np.unique(rng.integers(1, n_items + 1, 3))
    out = f1_bucket_curve(qc, mc if multi else codes, ql, dl, ks=Ks)
    f1s, bks = np.zeros((nq, Ks.size)), np.zeros((nq, Ks.size))
    for i in range(nq):
        tot = (dl == ql[i]).sum()
        for j, K in enumerate(Ks):
            items, v = ref_bucket_search(qc[i].tolist(), codes.tolist(), owners.tolist(), int(K))
            hit = sum(dl[it] == ql[i] for it in items)
            P, Rc = hit / K, (hit / tot if tot else 0)
            f1s[i, j] = 2 * P * Rc / (P + Rc) if P + Rc > 0 else 0
            bks[i, j] = v
    np.testing.assert_allclose(out["f1"], f1s.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["buckets"], bks.mean(axis=0), rtol=1e-12)
    # dist-only mode: bounds bracket the exact count, same F1 when the last radius is not split
    D = mc.min_hamming(qc)
    lo_hi = f1_bucket_curve(dist=D, n_bits=Q, query_labels=ql, db_labels=dl, ks=Ks)
    assert np.all(lo_hi["buckets_lower"] <= out["buckets"] + 1e-9)
    assert np.all(lo_hi["buckets_upper"] >= out["buckets"] - 1e-9)


def test_multicodes_map_uses_min_distance():
    db_codes = np.array([[0, 0, 0], [1, 1, 1], [1, 1, 0]], np.uint8)
    mc = MultiCodes(db_codes, [0, 0, 1])  # item 0 has codes 000 and 111
    q = np.array([[1, 1, 1]], np.uint8)
    # min distances: item0 = 0, item1 = 1
    res = evaluate(q, mc, np.array([1]), np.array([0, 1]), radius=0)
    assert res["map"] == pytest.approx(0.5)
    assert res["precision_radius0"] == 0.0
    assert res["protocol"]["multi_code"] is True


def test_anhc():
    P = np.array([[0.9, 0.2, 0.5, np.nan], [0.1, 0.1, 0.1, 0.1]])
    assert anhc(P, xi=0.5) == pytest.approx(1 + 2 / 2)  # 0.5 >= 0.5 counts (eq. 8)
    assert anhc(P, xi=0.5, include_whole_image=False) == pytest.approx(1.0)
    assert anhc([np.array([0.7]), np.array([])], xi=0.6) == pytest.approx(1.5)
    mc = MultiCodes(np.zeros((5, 4), np.uint8), [0, 0, 1, 2, 2])
    assert anhc(codes=mc) == pytest.approx(5 / 3)
    with pytest.raises(ValueError):
        anhc(np.array([[1.5]]))


# --------------------------------------------------------------------------- CMC
def test_cmc_hand_worked_and_ties():
    # 2 queries, gallery: ids 0,1,2 (one shot each)
    D = np.array([[0.5, 0.1, 0.9], [0.3, 0.3, 0.3]])
    out = cmc(D, [0, 1], [0, 1, 2], ranks=(1, 2, 3), n_repeats=1)
    # q0: its match (0.5) is rank 2 ; q1: ties everywhere, index order puts id1 at rank 2
    assert out["rank1"] == 0.0 and out["rank2"] == 1.0
    exp = cmc(D, [0, 1], [0, 1, 2], ranks=(1, 2, 3), ties="expected", n_repeats=1)
    assert exp["rank1"] == pytest.approx((0 + 1 / 3) / 2)
    assert exp["rank2"] == pytest.approx((1 + 2 / 3) / 2)
    assert exp["rank3"] == pytest.approx(1.0)


@TINY
@given(st.integers(0, 2**31 - 1), st.sampled_from(["index", "expected"]))
def test_cmc_multi_shot_matches_reference(seed, ties):
    rng = np.random.default_rng(seed)
    nq, ng = 4, 7
    D = rng.integers(0, 3, (nq, ng)).astype(float)
    qid = rng.integers(0, 3, nq)
    gid = rng.integers(0, 3, ng)
    gid[:3] = [0, 1, 2]
    out = cmc(D, qid, gid, ranks=(1, 2, 3), single_gallery_shot=False, ties=ties)
    acc = np.zeros(ng)
    for i in range(nq):
        if ties == "index":
            orders = [sorted(range(ng), key=lambda j: (D[i, j], j))]
        else:
            orders = list(tie_orders(D[i].tolist()))
        for o in orders:
            first = next(p for p, j in enumerate(o, 1) if gid[j] == qid[i])
            acc += (np.arange(1, ng + 1) >= first) / len(orders)
    np.testing.assert_allclose(out["cmc"], acc / nq, rtol=1e-12)


def test_cmc_single_shot_reference():
    rng = np.random.default_rng(3)
    nq, ng = 6, 12
    D = rng.integers(0, 4, (nq, ng)).astype(float)
    qid = rng.integers(0, 4, nq)
    gid = np.repeat(np.arange(4), 3)
    out = cmc(D, qid, gid, ranks=(1,), n_repeats=5, seed=7)
    # replay the same draws
    rng2 = np.random.default_rng(7)
    ids = np.arange(4)
    acc = np.zeros(4)
    for _ in range(5):
        u = rng2.random(4)
        pick = np.array([np.flatnonzero(gid == c)[int(u[c] * 3)] for c in ids])
        for i in range(nq):
            o = sorted(range(4), key=lambda c: (D[i, pick[c]], pick[c]))
            rank = o.index(qid[i]) + 1
            acc += np.arange(1, 5) >= rank
    np.testing.assert_allclose(out["cmc"], acc / 5 / nq)


# --------------------------------------------------------------------------- evaluate
def test_evaluate_consistency_and_protocol():
    q, db, ql, dl = random_case(5, 30, 200, 8, 4, multilabel=True)
    res = evaluate(q, db, ql, dl, topk=50, radius=2, ks=(1, 10, 100, 1000), ties="expected", empty="skip")
    assert res["map"] == pytest.approx(mean_average_precision(q, db, ql, dl, topk=50, ties="expected", empty="skip"))
    D, R = hamming(q, db), relevance(ql, dl)
    pr = precision_recall_within_radius(D, R, n_bits=8, empty="skip")
    assert res["precision_radius2"] == pytest.approx(pr["precision"][2])
    pr_codes = precision_recall_within_radius(query_codes=q, db_codes=db, query_labels=ql, db_labels=dl, empty="skip")
    for c in ("precision", "recall", "n_returned"):
        np.testing.assert_allclose(pr_codes[c], pr[c], rtol=1e-12)
        np.testing.assert_allclose(res["curves"]["pr_radius"][c], pr[c], rtol=1e-12)
    assert res["curves"]["precision_at_k"]["k"] == [1.0, 10.0, 100.0]  # 1000 > ndb dropped
    assert res["precision_at_10"] == pytest.approx(precision_at_k(D, R, [10], ties="expected")[0])
    assert all(isinstance(v, float) for k, v in res.items() if k not in ("curves", "protocol"))
    assert res["protocol"] == {
        "topk": 50, "ties": "expected", "empty": "skip", "ranking": "binary", "radius": 2,
        "n_query": 30, "n_database": 200, "n_bits": 8, "multi_code": False,
    }
    cont = evaluate(query_labels=ql, db_labels=dl, dist=D * 1.0 + 0.1)
    assert cont["protocol"]["ranking"] == "continuous" and "precision_radius2" not in cont
    assert cont["map"] == pytest.approx(mean_average_precision(q, db, ql, dl))
    import json

    json.dumps({k: v for k, v in res.items()})  # JSON-ready


@pytest.mark.parametrize("topk", [None, 7, 60])
@pytest.mark.parametrize("empty", ["zero", "skip"])
def test_evaluate_tie_aware_companion(topk, empty):
    """ties="index" also reports the tie-aware mAP; a class-sorted database makes them differ."""
    rng = np.random.default_rng(3)
    q, db = rng.integers(0, 2, (40, 6)), rng.integers(0, 2, (400, 6))
    ql, dl = rng.integers(0, 5, 40), np.sort(rng.integers(0, 5, 400))  # class-sorted order
    res = evaluate(q, db, ql, dl, topk=topk, ties="index", empty=empty)
    assert res["map"] == pytest.approx(mean_average_precision(q, db, ql, dl, topk=topk, ties="index", empty=empty))
    ref = mean_average_precision(q, db, ql, dl, topk=topk, ties="expected", empty=empty)
    assert res["map_tie_aware"] == pytest.approx(ref, rel=1e-12)
    if topk == 60:
        assert abs(res["map"] - res["map_tie_aware"]) > 1e-3  # the sorted order biases index ties
    assert "map_tie_aware" not in evaluate(q, db, ql, dl, topk=topk, ties="expected")


def test_torch_inputs():
    torch = pytest.importorskip("torch")
    q, db, ql, dl = random_case(1, 5, 20, 6, 3)
    ref = mean_average_precision(q, db, ql, dl)
    assert mean_average_precision(torch.from_numpy(q), torch.from_numpy(db), torch.from_numpy(ql), torch.from_numpy(dl)) == ref


@pytest.mark.skipif(not _kernels.HAVE_NUMBA, reason="numba not installed")
def test_compiled_kernels_keep_torchs_thread_count():
    """numba's first parallel call must not raise torch's thread count (a run with --threads 1
    trained on every core after its first mAP evaluation), and the kernel uses torch's count."""
    import subprocess
    import sys

    code = (
        "import torch, numpy as np, numba\n"
        "torch.set_num_threads(1)\n"
        "torch.ones(300, 300) @ torch.ones(300, 300)\n"  # torch's OpenMP pool in use (a run trains first)
        "from hashrepro.metrics import mean_average_precision\n"
        "rng = np.random.default_rng(0)\n"
        "B = lambda n: rng.integers(0, 2, (n, 16)).astype(np.uint8)\n"
        "mean_average_precision(query_codes=B(5), db_codes=B(50), query_labels=rng.integers(0, 3, 5),"
        " db_labels=rng.integers(0, 3, 50))\n"
        "print(torch.get_num_threads(), numba.get_num_threads())\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}  # as a sweep with --threads 1 on 2 cores
    env.pop("HASHREPRO_NO_NUMBA", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["1", "1"], out.stdout + out.stderr
