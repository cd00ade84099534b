"""Shared machinery of :mod:`hashrepro.metrics`: validation, relevance, chunked
distance sources and the per-chunk ranking statistics every metric is built from.

Two views of one query chunk are used (see :class:`Chunk`):

* the *histogram* view, for integer distances: ``N[i, v]`` items and ``Rr[i, v]``
  relevant items at distance ``v`` from query ``i``. Everything that does not
  depend on the order *inside* a group of equal distances is computed from it
  without sorting: tie-aware expected AP, precision/recall within a radius,
  expected precision@k;
* the *sorted* view, for ``ties="index"``: a stable counting sort of the
  distances (ties broken by database index) and the positions of the relevant
  items in that order.
"""
from __future__ import annotations

import math
import warnings
from functools import cached_property

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import gammaln

from ..codes import MultiCodes, _HammingRows, as_numpy, check_bits01
from ._kernels import ap_index_integer, histograms_integer

TIES = ("index", "expected")
EMPTY = ("zero", "skip")

#: Target number of matrix elements per query chunk (keeps chunks in cache).
CHUNK_ELEMENTS = 1 << 21


# --------------------------------------------------------------------------- validation
def check_choice(value, name: str, valid) -> str:
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, valid))}")
    return value


def check_topk(topk, ndb: int):
    """None (all) or a positive int; returns the effective cut k' = min(topk, ndb)."""
    if topk is None:
        return None
    if isinstance(topk, (bool, np.bool_)) or not isinstance(topk, (int, np.integer)) or topk < 1:
        raise ValueError(f"topk must be None (rank the whole database) or a positive int, got {topk!r}")
    return int(min(int(topk), ndb))


def check_chunk_size(chunk_size) -> int:
    """A positive int (queries per block); 0, negatives, bools and non-integers are an error."""
    if (isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, (int, np.integer))
            or int(chunk_size) < 1):
        raise ValueError(f"chunk_size must be None (automatic) or a positive int (queries per block), "
                         f"got {chunk_size!r}")
    return int(chunk_size)


def check_ks(ks, ndb: int, name: str = "ks") -> np.ndarray:
    """ks: None (1..ndb) or a sequence of positive ints (values above ndb are an error)."""
    if ks is None:
        return np.arange(1, ndb + 1, dtype=np.int64)
    k = np.atleast_1d(as_numpy(ks, name))
    if k.ndim != 1 or not np.issubdtype(k.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D sequence of ints, got {ks!r}")
    if k.size and (k.min() < 1 or k.max() > ndb):
        raise ValueError(f"{name} must lie in 1..{ndb} (the database size), got min {k.min()} max {k.max()}")
    return k.astype(np.int64)


def check_dist(dist, name: str = "dist") -> np.ndarray:
    d = as_numpy(dist, name)
    if d.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (n_query, n_database) array, got shape {d.shape}")
    if d.dtype == np.bool_ or not np.issubdtype(d.dtype, np.number):
        raise ValueError(f"{name}: expected a numeric distance matrix, got dtype {d.dtype}")
    if np.issubdtype(d.dtype, np.floating) and d.size and np.isnan(d).any():
        raise ValueError(f"{name}: contains NaN distances")
    return d


def check_rel(rel, shape) -> np.ndarray:
    r = as_numpy(rel, "rel")
    if r.shape != tuple(shape):
        raise ValueError(f"rel: expected shape {tuple(shape)} (same as dist), got {r.shape}")
    if r.dtype != np.bool_:
        if r.size and np.any((r != 0) & (r != 1)):
            raise ValueError("rel: expected a boolean (or 0/1) relevance matrix")
        r = r.astype(bool)
    return r


def is_integer_valued(d: np.ndarray) -> bool:
    if np.issubdtype(d.dtype, np.integer):
        return True
    return bool(d.size == 0 or np.all(np.floor(d) == d))


def integer_dist(d: np.ndarray, name: str = "dist"):
    """Return (int distances, n_bins) when ``d`` is a non-negative integer matrix, else (None, None)."""
    if not is_integer_valued(d):
        return None, None
    if d.size and d.min() < 0:
        return None, None
    mx = int(d.max()) if d.size else 0
    dt = np.uint8 if mx < 256 else (np.uint16 if mx < 65536 else np.int64)
    return d.astype(dt, copy=False), mx + 1


# --------------------------------------------------------------------------- relevance
class Relevance:
    """Relevance between query and database labels, produced in query chunks.

    * int labels, shape (n,): relevant iff same label (single-label);
    * multi-hot labels, shape (n, C): relevant iff they share >= 1 label.
    """

    def __init__(self, query_labels, db_labels):
        ql = as_numpy(query_labels, "query_labels")
        dl = as_numpy(db_labels, "db_labels")
        if ql.ndim != dl.ndim or ql.ndim not in (1, 2):
            raise ValueError(
                "labels must be both int arrays (n,) (single-label) or both multi-hot arrays (n, C) "
                f"(multi-label); got query_labels {ql.shape} and db_labels {dl.shape}"
            )
        self.multilabel = ql.ndim == 2
        if self.multilabel:
            if ql.shape[1] != dl.shape[1]:
                raise ValueError(f"multi-hot labels have {ql.shape[1]} classes for queries but {dl.shape[1]} for the database")
            for nm, a in (("query_labels", ql), ("db_labels", dl)):
                if a.size and np.any((a != 0) & (a != 1)):
                    raise ValueError(f"{nm}: multi-hot labels must be 0/1")
            self.q = ql.astype(np.float32)
            self.d = np.ascontiguousarray(dl.astype(np.float32).T)
        else:
            for nm, a in (("query_labels", ql), ("db_labels", dl)):
                if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
                    raise ValueError(f"{nm}: single-label labels must be integers, got dtype {a.dtype}")
            allv = np.concatenate([ql.ravel(), dl.ravel()]).astype(np.int64)
            _, inv = np.unique(allv, return_inverse=True)  # compact codes -> small dtype
            dt = np.int8 if inv.max(initial=0) < 127 else np.int32
            self.q = inv[: ql.shape[0]].astype(dt)
            self.d = inv[ql.shape[0]:].astype(dt)
        self.nq = ql.shape[0]
        self.ndb = dl.shape[0]

    def chunk(self, s: int, e: int) -> np.ndarray:
        if self.multilabel:
            return (self.q[s:e] @ self.d) > 0.5
        return self.q[s:e, None] == self.d[None, :]

    def n_relevant(self) -> np.ndarray:
        """Total number of relevant database items per query, (nq,) int64."""
        if not self.multilabel:
            cnt = np.bincount(self.d.astype(np.int64), minlength=int(max(self.q.max(initial=0), self.d.max(initial=0))) + 1)
            return cnt[self.q.astype(np.int64)].astype(np.int64)
        out = np.empty(self.nq, dtype=np.int64)
        step = max(1, CHUNK_ELEMENTS // max(1, self.ndb))
        for s in range(0, self.nq, step):
            out[s:s + step] = self.chunk(s, min(self.nq, s + step)).sum(axis=1)
        return out


def relevance(query_labels, db_labels) -> np.ndarray:
    """Relevance matrix, bool (nq, ndb).

    int labels (n,): same label; multi-hot (n, C): at least one shared label.
    """
    r = Relevance(query_labels, db_labels)
    return r.chunk(0, r.nq)


class MatrixRelevance:
    """Relevance given as a full (nq, ndb) matrix (same interface as :class:`Relevance`)."""

    def __init__(self, rel):
        self.rel = rel
        self.nq, self.ndb = rel.shape

    def chunk(self, s, e):
        return self.rel[s:e]

    def n_relevant(self):
        return self.rel.sum(axis=1).astype(np.int64)


# --------------------------------------------------------------------------- distance sources
class DistanceSource:
    """Distances in query chunks, from codes (Hamming, popcount), a MultiCodes
    database (min Hamming over an item's codes, MCH eq. 5) or a given matrix."""

    def __init__(self, query_codes=None, db_codes=None, dist=None):
        if dist is not None:
            if query_codes is not None or db_codes is not None:
                raise ValueError("give either codes (query_codes, db_codes) or dist, not both")
            d = check_dist(dist)
            self.nq, self.ndb = d.shape
            di, nb = integer_dist(d)
            self.integer = di is not None
            self.matrix = di if self.integer else d
            self.n_bins = nb
            self.n_bits = None
            self.kind = "matrix"
            self._check_sizes()
            return
        if query_codes is None or db_codes is None:
            raise ValueError("give query_codes and db_codes (bits01), or a distance matrix dist")
        q = check_bits01(query_codes, "query_codes")
        self.nq = q.shape[0]
        self.integer = True
        if isinstance(db_codes, MultiCodes):
            if q.shape[1] != db_codes.n_bits:
                raise ValueError(f"query codes have {q.shape[1]} bits but the database codes have {db_codes.n_bits}")
            self.kind = "multicodes"
            self.multicodes = db_codes
            self.q = q
            self.ndb = db_codes.n_items
        else:
            d = check_bits01(db_codes, "db_codes")
            if q.shape[1] != d.shape[1]:
                raise ValueError(f"query codes have {q.shape[1]} bits but the database codes have {d.shape[1]}")
            self.kind = "codes"
            self.ndb = d.shape[0]
            self._qp, self._dp = np.packbits(q, axis=1), np.packbits(d, axis=1)
            self._ham = None
        self.n_bits = q.shape[1]
        self.n_bins = self.n_bits + 1
        self._check_sizes()

    def _check_sizes(self) -> None:
        if self.nq == 0:
            raise ValueError("the query set is empty (0 queries): a mean over queries is undefined; "
                             "pass at least one query")
        if self.ndb == 0:
            raise ValueError("the database is empty (0 items)")

    def chunk_rows(self, chunk_size=None) -> int:
        if chunk_size is not None:
            return check_chunk_size(chunk_size)
        return max(1, min(1024, CHUNK_ELEMENTS // max(1, self.ndb)))

    def rows(self, s: int, e: int) -> np.ndarray:
        """Distances of queries s..e-1: (e - s, ndb). May be a reused buffer."""
        if self.kind == "matrix":
            return self.matrix[s:e]
        if self.kind == "multicodes":
            D = self.multicodes.min_hamming(self.q[s:e])
            return D.astype(np.uint8) if self.n_bits < 256 else D
        if self._ham is None or self._ham.max_rows < e - s:
            self._ham = _HammingRows(self._qp, self._dp, self.n_bits, max_rows=e - s)
        return self._ham.rows(s, e)


def iter_chunks(src: DistanceSource, relsrc, chunk_size=None, desc="queries"):
    """Yield (s, e, Chunk) over the query set."""
    if relsrc.nq != src.nq or relsrc.ndb != src.ndb:
        raise ValueError(
            f"relevance is ({relsrc.nq}, {relsrc.ndb}) but distances are ({src.nq}, {src.ndb}): "
            "query/database sizes of labels and codes must match"
        )
    step = src.chunk_rows(chunk_size)
    for s in range(0, src.nq, step):
        e = min(src.nq, s + step)
        yield s, e, Chunk(src.rows(s, e), relsrc.chunk(s, e), src.n_bins if src.integer else None)


# --------------------------------------------------------------------------- harmonic numbers
_H_CACHE = np.zeros(1)


def harmonic(n: int) -> np.ndarray:
    """H[0..n] with H[i] = sum_{j<=i} 1/j (cached, float64)."""
    global _H_CACHE
    if _H_CACHE.shape[0] <= n:
        _H_CACHE = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, max(n, 2 * _H_CACHE.shape[0]) + 1))])
    return _H_CACHE[: n + 1]


def expected_precision_sum(n, r, s, Rb, H):
    """Expected sum of precisions at the relevant positions of one tie group.

    A group of ``n`` items, ``r`` of them relevant, occupies ranks s+1..s+n in
    uniformly random order, with ``Rb`` relevant items ranked before it. The
    relevant item at rank s+j has precision (Rb + 1 + #relevant among the
    group's first j-1) / (s + j); given rank s+j is relevant, the other r-1
    relevant items are a uniform subset of the other n-1 places, so the count
    has mean (j-1)(r-1)/(n-1). Summing over j (each relevant w.p. r/n)::

        E = r/n * [ (Rb + 1) h + (r - 1)/(n - 1) * (n - (s + 1) h) ],
        h = H(s + n) - H(s),     sum_j (j-1)/(s+j) = n - (s+1) h

    (McSherry & Najork, ECIR 2008, tie-aware AP). n = 1 gives r (Rb+1)/(s+1);
    n = 0 gives 0. All arguments broadcast; returns float64.
    """
    n = np.asarray(n, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    Rb = np.asarray(Rb, dtype=np.float64)
    si = s.astype(np.int64)
    h = H[(si + n.astype(np.int64))] - H[si]
    with np.errstate(divide="ignore", invalid="ignore"):
        t2 = np.where(n > 1, (r - 1.0) / np.maximum(n - 1.0, 1.0) * (n - (s + 1.0) * h), 0.0)
        out = np.where(n > 0, r / np.maximum(n, 1.0) * ((Rb + 1.0) * h + t2), 0.0)
    return out


def _log_comb(a, b):
    return gammaln(a + 1.0) - gammaln(b + 1.0) - gammaln(a - b + 1.0)


# --------------------------------------------------------------------------- per-chunk statistics
class Chunk:
    """Ranking statistics of one block of queries.

    D : (n, ndb) distances (integer with ``n_bins`` = max + 1, or float with n_bins None)
    rel : (n, ndb) bool
    """

    def __init__(self, D, rel, n_bins):
        self.D = D
        self.rel = rel
        self.n, self.ndb = D.shape
        self.n_bins = n_bins

    # ---- histogram view
    @cached_property
    def _int_D(self):
        """(integer distances, n_bins); float distances are replaced by their dense rank per row."""
        if self.n_bins is not None:
            return self.D, self.n_bins
        D = self.D
        o = np.argsort(D, axis=1, kind="stable")
        sd = np.take_along_axis(D, o, axis=1)
        new = np.ones_like(sd, dtype=bool)
        new[:, 1:] = sd[:, 1:] != sd[:, :-1]
        ranks_sorted = np.cumsum(new, axis=1) - 1
        ranks = np.empty_like(ranks_sorted)
        np.put_along_axis(ranks, o, ranks_sorted, axis=1)
        return ranks, self.ndb

    @cached_property
    def hist(self):
        """(N, Rr): float64 (n, n_bins) counts of all / relevant items at each distance value."""
        D, nb = self._int_D
        n = self.n
        if self.n_bins is not None and n:
            fast = histograms_integer(D, self.rel, nb)
            if fast is not None:
                return fast
        # One counting pass per query over the joint key 2 * distance + relevant
        # (uint8 when distances < 128: cheaper than offsets + two bincounts).
        kt = np.uint8 if 2 * nb <= 256 else (np.uint16 if 2 * nb <= 65536 else np.int64)
        key = D.astype(kt, copy=True) if D.dtype != kt else D.copy()
        key <<= 1
        key |= self.rel
        Hc = np.empty((n, 2 * nb), dtype=np.float64)
        for i in range(n):
            Hc[i] = np.bincount(key[i], minlength=2 * nb)
        Rr = Hc[:, 1::2]
        N = Hc[:, 0::2] + Rr
        return N, np.ascontiguousarray(Rr)

    @cached_property
    def n_relevant(self) -> np.ndarray:
        if "hist" in self.__dict__:
            return self.hist[1].sum(axis=1).astype(np.int64)
        return self.rel.sum(axis=1).astype(np.int64)

    # ---- sorted view (ties broken by database index)
    @cached_property
    def rel_positions(self):
        """(r, p): row and 1-based rank of every relevant item in the stable order
        (ties by database index), sorted by (r, p).

        One stable counting sort per query (``argsort(kind="stable")`` on the small
        integer distances is a radix sort), done row by row so that the work stays
        in cache.
        """
        if self.n == 0 or self.ndb == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        D, rel = self.D, self.rel
        if D.dtype.kind in "ui" and D.size and D.min() >= 0 and D.max() <= 255:
            # Hamming distances of up to 255 bits fit one byte: numpy's stable sort is then a
            # single-pass radix sort, about 2.5x faster than on uint16 (same order).
            D = D.astype(np.uint8)

        def rows(lo, hi):
            return [np.flatnonzero(rel[i][np.argsort(D[i], kind="stable")]) + 1 for i in range(lo, hi)]

        # numpy releases the GIL inside sorts, so query blocks sort in parallel threads.
        n_threads = min(os.cpu_count() or 1, 8, max(1, self.n // 64))
        if n_threads > 1:
            bounds = np.linspace(0, self.n, n_threads + 1).astype(int)
            with ThreadPoolExecutor(n_threads) as ex:
                parts = list(ex.map(lambda b: rows(*b), zip(bounds[:-1], bounds[1:])))
            pos = [x for part in parts for x in part]
        else:
            pos = rows(0, self.n)
        sizes = np.fromiter((x.size for x in pos), dtype=np.int64, count=self.n)
        r = np.repeat(np.arange(self.n, dtype=np.int64), sizes)
        p = np.concatenate(pos).astype(np.int64, copy=False)
        return r, p

    def relevant_in_topk_index(self, ks: np.ndarray) -> np.ndarray:
        """Number of relevant items in the top k (stable order), (n, len(ks)) float64."""
        r, p = self.rel_positions
        n, w = self.n, self.ndb
        if ks.size > 64:
            dense = np.bincount(r * (w + 1) + p, minlength=n * (w + 1)).reshape(n, w + 1)
            cs = np.cumsum(dense, axis=1)
            return cs[:, ks].astype(np.float64)
        key = r * (w + 1) + p
        starts = np.searchsorted(key, np.arange(n) * (w + 1), side="left")
        q = (np.arange(n)[:, None] * (w + 1) + ks[None, :]).ravel()
        cnt = np.searchsorted(key, q, side="right").reshape(n, ks.size) - starts[:, None]
        return cnt.astype(np.float64)

    def relevant_in_topk_expected(self, ks: np.ndarray) -> np.ndarray:
        """Expected number of relevant items in the top k under random tie orders, (n, len(ks)).

        Linear interpolation of the cumulative relevant count over the cumulative
        item count: the cut group contributes m r_c / n_c.
        """
        N, Rr = self.hist
        cN = np.concatenate([np.zeros((self.n, 1)), np.cumsum(N, axis=1)], axis=1)
        cR = np.concatenate([np.zeros((self.n, 1)), np.cumsum(Rr, axis=1)], axis=1)
        out = np.empty((self.n, ks.size))
        for i in range(self.n):
            keep = np.concatenate([[True], N[i] > 0])  # drop empty bins (duplicate x)
            out[i] = np.interp(ks, cN[i, keep], cR[i, keep])
        return out

    # ---- average precision
    def average_precision(self, topk, ties):
        """Per-query AP@k and the empty mask ((n,) float64, (n,) bool). See metrics.average_precision."""
        if ties == "index":
            return self._ap_index(topk)
        return self._ap_expected(topk)

    def _ap_index(self, topk):
        if self.n_bins is not None and self.n and "rel_positions" not in self.__dict__:
            fast = ap_index_integer(self.D, self.rel, self.n_bins, topk)
            if fast is not None:
                return fast
        r, p = self.rel_positions
        if topk is not None:
            keep = p <= topk
            r, p = r[keep], p[keep]
        Rk = np.bincount(r, minlength=self.n)
        starts = np.cumsum(Rk) - Rk
        kk = np.arange(1, r.size + 1, dtype=np.float64) - starts[r]
        s = np.bincount(r, weights=kk / p, minlength=self.n)
        empty = Rk == 0
        ap = np.where(empty, 0.0, s / np.maximum(Rk, 1))
        return ap, empty

    def _ap_expected(self, topk):
        N, Rr = self.hist
        H = harmonic(self.ndb)
        cN = np.cumsum(N, axis=1)
        s = cN - N
        Rb = np.cumsum(Rr, axis=1) - Rr
        C = expected_precision_sum(N, Rr, s, Rb, H)
        if topk is None:
            R = Rr.sum(axis=1)
            empty = R == 0
            return np.where(empty, 0.0, C.sum(axis=1) / np.maximum(R, 1)), empty
        k = float(topk)
        full = cN <= k
        A = (C * full).sum(axis=1)
        Rfull = (Rr * full).sum(axis=1)
        cut = (s < k) & (cN > k)  # the group straddling the cut (at most one per row)
        has_cut = cut.any(axis=1)
        ap = np.where(Rfull > 0, A / np.maximum(Rfull, 1), 0.0)
        empty = (Rfull == 0) & ~has_cut
        rows = np.flatnonzero(has_cut)
        if rows.size:
            c = np.argmax(cut[rows], axis=1)
            nc, rc = N[rows, c], Rr[rows, c]
            sc, Rbc = s[rows, c], Rb[rows, c]
            m = k - sc
            empty[rows] = (Rbc + rc) == 0
            ap[rows] = _expected_cut(A[rows], nc, rc, sc, Rbc, m, H)
        return ap, empty


def _expected_cut(A, n, r, s, Rb, m, H):
    """E[(A + Z) / (Rb + X)] for a tie group cut after its first m places.

    X ~ Hypergeometric(n, r, m) is the number of the group's relevant items that
    fall in the top k; given X = x they occupy a uniform x-subset of the m places,
    so E[Z | X = x] = expected_precision_sum(m, x, s, Rb). A (the expected precision
    sum of the groups above the cut) is independent of X. Orders with Rb + X = 0
    have AP 0.
    """
    xmax = int(np.minimum(r, m).max())
    x = np.arange(xmax + 1, dtype=np.float64)[None, :]
    n_, r_, s_, Rb_, m_, A_ = (v[:, None] for v in (n, r, s, Rb, m, A))
    lo = np.maximum(0.0, m_ - (n_ - r_))
    hi = np.minimum(r_, m_)
    valid = (x >= lo) & (x <= hi)
    xs = np.where(valid, x, lo)
    logp = _log_comb(r_, xs) + _log_comb(n_ - r_, m_ - xs) - _log_comb(n_, m_)
    pmf = np.where(valid, np.exp(logp), 0.0)
    Z = expected_precision_sum(m_, xs, s_, Rb_, H)
    den = Rb_ + xs
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.where(den > 0, (A_ + Z) / np.maximum(den, 1.0), 0.0)
    return (pmf * val).sum(axis=1)


def mean_with_policy(values: np.ndarray, empty: np.ndarray, policy: str, what: str = "mAP") -> float:
    """Mean over queries: empty ones count 0 ("zero") or are left out ("skip")."""
    if values.size == 0:
        return float("nan")
    if policy == "zero":
        return float(np.where(empty, 0.0, values).mean())
    keep = ~empty
    if not keep.any():
        warnings.warn(f"{what}: every query is empty (no relevant item); returning nan", RuntimeWarning, stacklevel=3)
        return float("nan")
    return float(values[keep].mean())


def comb_table(n_bits: int):
    """Exact binomial table C[a, b], a, b in 0..n_bits (int64 when it fits, Python ints otherwise)."""
    exact = n_bits <= 64
    C = np.zeros((n_bits + 1, n_bits + 1), dtype=np.int64 if exact else object)
    for a in range(n_bits + 1):
        for b in range(a + 1):
            C[a, b] = math.comb(a, b)
    return C
