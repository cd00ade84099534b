"""Hash bucket search metrics of the MCH paper: F1-bucket curves (§5.2.1), ANHC (eq. 8), the
buckets needed to reach an F1 (:func:`buckets_at_f1`), one code set's retrieval and bucket metrics
(:func:`evaluate_codes`, single or multiple codes per item) and the cost of bucket search against a
linear scan (:func:`search_cost`)."""
from __future__ import annotations

import math
import time

import numpy as np

from ..codes import MultiCodes, as_numpy, check_bits01
from ._core import EMPTY, Relevance, check_choice, check_dist, check_rel, comb_table, integer_dist

__all__ = ["f1_bucket_curve", "anhc", "bucket_rank", "buckets_at_f1", "evaluate_codes", "search_cost"]


def bucket_rank(xor_bits01, C=None) -> np.ndarray:
    """Position of each bucket in the canonical enumeration of its radius.

    A bucket at Hamming radius r from the query is reached by flipping a set of r
    bit positions p_1 < ... < p_r (the ones of ``query XOR bucket``). Buckets of one
    radius are enumerated in the lexicographic order of these position tuples,
    i.e. the order of ``itertools.combinations(range(n_bits), r)``, bit positions
    being column indices of the {0,1} codes. Returns the 0-based rank in that
    order (combinatorial number system)::

        rank = sum_{v not flipped, v < p_r} C(n_bits - 1 - v, r - 1 - #flips before v)

    xor_bits01 : (P, n_bits) {0,1};  returns int64 (P,) (object ints above 64 bits).
    """
    X = check_bits01(xor_bits01, "xor_bits01")
    P, Q = X.shape
    if C is None:
        C = comb_table(Q)
    r = X.sum(axis=1).astype(np.int64)
    before = np.cumsum(X, axis=1, dtype=np.int64) - X
    need = r[:, None] - 1 - before  # picks still to make after position v, minus the one at v
    use = (X == 0) & (need >= 0)
    v = np.arange(Q)
    a = np.broadcast_to(Q - 1 - v, X.shape)
    b = np.where(use, need, 0)
    vals = C[a, b]
    if C.dtype == object:
        vals = np.where(use, vals, 0)
        return vals.sum(axis=1)
    return np.where(use, vals, 0).sum(axis=1)


def _ball_sizes(Q, C):
    """cum[r] = number of buckets within radius r (sum_{i<=r} C(Q, i)), as float64; cum[-1] = 0."""
    row = [int(C[Q, i]) for i in range(Q + 1)]
    cum = np.cumsum(np.array([float(x) for x in row]))
    return np.concatenate([cum, [0.0]])  # index -1 -> 0


def f1_bucket_curve(
    query_codes=None,
    db=None,
    query_labels=None,
    db_labels=None,
    ks=None,
    rel=None,
    dist=None,
    n_bits=None,
    empty="zero",
):
    """F1-bucket curve of hash bucket search (MCH §5.2.1 with Algorithm 1).

    For each K, every query runs Algorithm 1: visit the buckets at Hamming radius
    0, 1, 2, ...; put all items of each visited bucket into U; stop after the first
    bucket that makes |U| >= K and return the first K items of U. The curve has
    one point per K: the F1 score of the returned items and the number of buckets
    visited, both averaged over queries, in ascending K.

    Exact semantics (shared with ``hashrepro.index.BucketIndex``):

    * buckets of one radius are visited in the canonical order of
      :func:`bucket_rank` (``itertools.combinations`` of flipped bit positions);
      empty buckets count as visited;
    * inside a bucket items come in code order (row order of the database codes);
    * an item with several codes (``MultiCodes``) sits in several buckets and enters
      U once, at its first visited bucket (MCH eq. 5: its closest code decides);
    * buckets visited for K = (buckets within radius r*-1) + (rank of the bucket
      where |U| reaches K) + 1, r* being that bucket's radius.

    Per query: P = rel_ret / K, R = rel_ret / R_total, F1 = 2PR/(P+R) = 2 rel_ret / (K + R_total)
    (0 when rel_ret = 0). A query with R_total = 0 has F1 0 ("zero") or is left out
    ("skip").

    Parameters
    ----------
    query_codes : (nq, n_bits) {0,1}
    db : (n_items, n_bits) {0,1} or MultiCodes
    query_labels, db_labels : labels (int or multi-hot); or ``rel`` (nq, n_items) bool
    ks : increasing ints in 1..n_items (default: about 20 values, geometric from 1 to n_items)
    dist : (nq, n_items) int, optional
        Precomputed (minimum) Hamming distances *instead of codes*. The bucket
        order inside the last radius is then unknown: items at the last radius are
        taken in index order, and the bucket count is returned as bounds
        "buckets_lower" (1 bucket of the last radius) and "buckets_upper" (all of
        it) instead of "buckets". Needs ``n_bits``.

    Returns
    -------
    dict of float64 arrays over K: "K", "f1", "precision", "recall", "radius" (mean r*),
    "buckets" (or "buckets_lower"/"buckets_upper"), and "f1_of_means" = 2 P̄ R̄ / (P̄ + R̄).
    """
    check_choice(empty, "empty", EMPTY)
    exact = dist is None
    if exact:
        q = check_bits01(query_codes, "query_codes")
        mc = db if isinstance(db, MultiCodes) else MultiCodes.single(check_bits01(db, "db"))
        if q.shape[1] != mc.n_bits:
            raise ValueError(f"query codes have {q.shape[1]} bits but the database has {mc.n_bits}")
        Q, nq, n_items = mc.n_bits, q.shape[0], mc.n_items
    else:
        if query_codes is not None or db is not None:
            raise ValueError("give either codes (query_codes, db) or dist, not both")
        d = check_dist(dist)
        Dm, nbins = integer_dist(d)
        if Dm is None:
            raise ValueError("dist must hold non-negative integer Hamming distances")
        if n_bits is None:
            raise ValueError("n_bits is required with dist (to count buckets)")
        Q = int(n_bits)
        if nbins - 1 > Q:
            raise ValueError(f"dist has a distance {nbins - 1} > n_bits={Q}")
        nq, n_items = Dm.shape
    if nq == 0:
        raise ValueError("the query set is empty (0 queries): a mean over queries is undefined; "
                         "pass at least one query")
    if rel is not None:
        if query_labels is not None or db_labels is not None:
            raise ValueError("give labels or rel, not both")
        relm = check_rel(rel, (nq, n_items))
        get_rel = lambda s, e: relm[s:e]  # noqa: E731
        Rtot = relm.sum(axis=1)
    else:
        if query_labels is None or db_labels is None:
            raise ValueError("give query_labels and db_labels, or rel")
        R = Relevance(query_labels, db_labels)
        if R.nq != nq or R.ndb != n_items:
            raise ValueError(f"labels are ({R.nq}, {R.ndb}) but the search is ({nq}, {n_items})")
        get_rel = R.chunk
        Rtot = R.n_relevant()
    if ks is None:
        ks = np.unique(np.round(np.geomspace(1, n_items, 20)).astype(np.int64))
    K = np.atleast_1d(as_numpy(ks, "ks")).astype(np.int64)
    if K.ndim != 1 or K.size == 0 or K.min() < 1 or K.max() > n_items or np.any(np.diff(K) <= 0):
        raise ValueError(f"ks must be increasing ints in 1..{n_items} (the number of items), got {ks!r}")
    C = comb_table(Q)
    ball = _ball_sizes(Q, C)
    Kmax = int(K.max())

    relret = np.zeros((nq, K.size))
    radius = np.zeros((nq, K.size))
    b_lo = np.zeros((nq, K.size))
    b_hi = np.zeros((nq, K.size))
    step = max(1, (1 << 20) // max(1, n_items))
    for s in range(0, nq, step):
        e = min(nq, s + step)
        relc = get_rel(s, e)
        if exact:
            Dc = _codes_dist(q[s:e], mc)  # (n, m) distances to every code
            Dmin = np.minimum.reduceat(Dc[:, mc._order], mc._starts, axis=1) if mc.n_codes != mc.n_items else Dc[:, mc._order]
        else:
            Dmin = Dm[s:e]
        for i in range(e - s):
            di = Dmin[i].astype(np.int64)
            cnt = np.bincount(di, minlength=Q + 1)
            rmax = int(np.searchsorted(np.cumsum(cnt), Kmax))  # radius where |U| reaches Kmax
            if exact:
                codes_i = np.flatnonzero(Dc[i] <= rmax)
                dc = Dc[i, codes_i].astype(np.int64)
                rk = bucket_rank(q[s + i][None, :] ^ mc.codes[codes_i], C)
                # first appearance order of codes: (radius, bucket rank, code index)
                o = np.lexsort((codes_i, rk, dc))
                own = mc.owners[codes_i[o]]
                _, first = np.unique(own, return_index=True)
                first.sort()
                first = first[:Kmax]
                items = own[first]
                dK = dc[o][first][K - 1]
                rK = rk[o][first][K - 1]
                b = ball[dK - 1] + np.array([float(x) for x in rK]) + 1.0
                b_lo[s + i] = b
                b_hi[s + i] = b
            else:
                cand = np.flatnonzero(di <= rmax)
                o = np.lexsort((cand, di[cand]))
                items = cand[o][:Kmax]
                dK = di[items][K - 1]
                b_lo[s + i] = ball[dK - 1] + 1.0
                b_hi[s + i] = ball[dK]
            relret[s + i] = np.cumsum(relc[i][items])[K - 1]
            radius[s + i] = dK
    Rt = Rtot.astype(np.float64)[:, None]
    f1 = 2.0 * relret / (K[None, :] + Rt)
    prec = relret / K[None, :]
    rec = np.where(Rt > 0, relret / np.maximum(Rt, 1), 0.0)
    keep = np.ones(nq, bool) if empty == "zero" else Rtot > 0
    mean = (lambda a: a[keep].mean(axis=0)) if keep.any() else (lambda a: np.full(K.size, np.nan))
    P, Rm = mean(prec), mean(rec)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1m = np.where(P + Rm > 0, 2 * P * Rm / (P + Rm), 0.0)
    out = {"K": K.astype(np.float64), "f1": mean(f1), "precision": P, "recall": Rm, "radius": mean(radius)}
    if exact:
        out["buckets"] = mean(b_lo)
    else:
        out["buckets_lower"] = mean(b_lo)
        out["buckets_upper"] = mean(b_hi)
    out["f1_of_means"] = f1m
    return out


def _codes_dist(q, mc):
    from ..codes import hamming

    return hamming(q, mc.codes)


def anhc(keep_prob=None, xi=0.5, include_whole_image=True, codes=None) -> float:
    """Average number of hash codes per image (MCH eq. 8).

    ANHC = (1/N) sum_i sum_{m=1}^{t_i} I(P_im >= xi), where P_im is the probability that
    the m-th region of image i is kept. The whole image's code is always kept (its
    probability is fixed to 100%, §4.3), so it is counted once per image when
    ``include_whole_image`` (then pass only the cropped regions' probabilities);
    if your ``keep_prob`` already holds a column of ones for the whole image, set
    it to False. Note eq. 8 uses ``>=`` (§4.3's text says "larger than").

    Parameters
    ----------
    keep_prob : (N, t) probabilities of keeping each region (NaN = no such region),
        or a list of 1-D arrays (t_i,)
    xi : threshold ξ
    codes : MultiCodes, optional
        Instead of probabilities: the kept codes themselves; returns n_codes / n_items.

    Returns float.
    """
    if codes is not None:
        if keep_prob is not None:
            raise ValueError("give keep_prob or codes, not both")
        if not isinstance(codes, MultiCodes):
            raise ValueError("codes must be a hashrepro.codes.MultiCodes")
        return float(codes.n_codes / max(codes.n_items, 1))
    if keep_prob is None:
        raise ValueError("give keep_prob (N, t) or codes (MultiCodes)")
    if isinstance(keep_prob, (list, tuple)):
        counts = [int(np.sum(as_numpy(p, "keep_prob[i]").astype(float) >= xi)) for p in keep_prob]
        N = len(counts)
        total = float(sum(counts))
    else:
        P = as_numpy(keep_prob, "keep_prob").astype(np.float64)
        if P.ndim != 2:
            raise ValueError(f"keep_prob must be (N, t) or a list of arrays, got shape {P.shape}")
        if np.any((P[~np.isnan(P)] < 0) | (P[~np.isnan(P)] > 1)):
            raise ValueError("keep_prob must hold probabilities in [0, 1]")
        N = P.shape[0]
        with np.errstate(invalid="ignore"):
            total = float(np.sum(P >= xi))
    if N == 0:
        raise ValueError("keep_prob is empty (N = 0)")
    return total / N + (1.0 if include_whole_image else 0.0)


def buckets_at_f1(curve: dict, target: float) -> float:
    """Buckets visited to reach F1 = ``target`` on an F1–bucket curve (log-linear interpolation
    between the two K points around it); NaN when the curve never reaches ``target``.

    curve : dict with "f1" and "buckets" arrays over increasing K (:func:`f1_bucket_curve`).
    """
    f1 = np.asarray(curve["f1"], dtype=float)
    b = np.asarray(curve["buckets"], dtype=float)
    hit = np.flatnonzero(f1 >= target)
    if hit.size == 0:
        return float("nan")
    j = int(hit[0])
    if j == 0 or f1[j] == f1[j - 1]:
        return float(b[j])
    t = (target - f1[j - 1]) / (f1[j] - f1[j - 1])
    lb0, lb1 = math.log(max(b[j - 1], 1.0)), math.log(max(b[j], 1.0))
    return float(math.exp(lb0 + t * (lb1 - lb0)))


def evaluate_codes(query01: np.ndarray, db, y_query: np.ndarray, y_db: np.ndarray, ks, f1_targets=(0.3, 0.5)):
    """Retrieval metrics of one code set (single codes (n, Q) or a ``MultiCodes`` database), as MCH reports them.

    query01 : (nq, Q) {0,1} query codes (one per query); db : (n, Q) {0,1} or :class:`MultiCodes`;
    y_query, y_db : labels (relevance: share >= 1 label); ks : the K values of the F1–bucket curve
    (those in 1..n_items are used).

    Returns (metrics: dict of floats, curves: dict). Metrics: ``map`` (whole database, ties by
    index), ``precision_radius0`` / ``recall_radius0`` (P@H=0, R@H=0: MCH Figs. 3–4),
    ``precision_radius2`` / ``recall_radius2``, ``f1_max`` and ``buckets_at_f1_<t>`` (buckets
    visited to reach F1 = t on the F1–bucket curve, NaN if never reached). Curves: ``pr_radius``,
    ``f1_bucket`` (Algorithm 1 at every K: "K", "f1", "precision", "recall", "buckets", "radius").
    """
    from .evaluate import evaluate

    ev = evaluate(query01, db, y_query, y_db, radius=2, ks=(10, 100))
    pr = ev["curves"]["pr_radius"]
    n_items = db.n_items if isinstance(db, MultiCodes) else len(db)
    kk = sorted({int(k) for k in ks if 1 <= int(k) <= n_items})
    f1b = f1_bucket_curve(query01, db, y_query, y_db, ks=kk)
    f1b = {k: np.asarray(v).tolist() for k, v in f1b.items()}
    m = {
        "map": float(ev["map"]),
        "map_tie_aware": float(ev.get("map_tie_aware", float("nan"))),
        "precision_radius0": float(pr["precision"][0]),
        "recall_radius0": float(pr["recall"][0]),
        "precision_radius2": float(ev["precision_radius2"]),
        "recall_radius2": float(ev["recall_radius2"]),
        "f1_max": float(np.max(f1b["f1"])),
    }
    for t in f1_targets:
        m[f"buckets_at_f1_{t:g}"] = buckets_at_f1(f1b, t)
    return m, {"pr_radius": {k: list(map(float, v)) for k, v in pr.items()}, "f1_bucket": f1b}


def search_cost(query01: np.ndarray, db, k: int, repeat: int = 1) -> dict:
    """Bucket search (MCH Algorithm 1, :class:`hashrepro.index.BucketIndex`) against a linear scan.

    query01 : (nq, Q) {0,1}; db : (n, Q) {0,1} or :class:`MultiCodes` (an item's distance is the
    minimum over its codes, MCH eq. 5); k : items returned per query.

    Returns floats: ``bucket_search_ms`` and ``linear_scan_ms`` (per query, best of ``repeat``),
    ``buckets_visited`` and ``buckets_nonempty`` (mean per query), ``codes_per_query_scan``
    (codes a linear scan compares: all of them), ``n_codes`` / ``n_buckets`` of the index and
    ``search_k``.
    """
    from ..codes import hamming
    from ..index import BucketIndex

    if isinstance(db, MultiCodes):
        codes, owners, n_items = db.codes, db.owners, db.n_items
    else:
        codes, owners, n_items = db, np.arange(len(db)), len(db)
    k = int(min(k, n_items))
    idx = BucketIndex(codes, owners)
    best_b = best_l = float("inf")
    res = None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        res = idx.search_detailed(query01, k)
        best_b = min(best_b, time.perf_counter() - t0)
        t0 = time.perf_counter()
        d = hamming(query01, codes)
        if len(codes) != n_items:  # min over each item's codes (eq. 5)
            dm = np.full((len(query01), n_items), np.iinfo(np.uint16).max, dtype=np.uint16)
            np.minimum.at(dm.T, owners, d.T)
            d = dm
        np.argsort(d, axis=1, kind="stable")[:, :k]
        best_l = min(best_l, time.perf_counter() - t0)
    nq = max(len(query01), 1)
    return {"bucket_search_ms": 1e3 * best_b / nq, "linear_scan_ms": 1e3 * best_l / nq,
            "buckets_visited": float(np.mean(np.asarray(res.buckets_visited, dtype=float))),
            "buckets_nonempty": float(np.mean(res.buckets_nonempty)),
            "codes_per_query_scan": float(len(codes)), "n_codes": float(len(codes)),
            "n_buckets": float(idx.n_buckets), "search_k": float(k)}
