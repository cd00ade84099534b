"""Compiled kernels (numba) for the ranking metrics, with a pure-numpy fallback.

Kernels: per-query distance histograms (all / relevant items per distance value,
the basis of tie-aware AP and of precision/recall within a radius) and average precision with ties broken by database index
(``ties="index"``) on small non-negative integer distances (Hamming distances).
It needs no sort: per query, one pass counts the items (and the relevant items)
at each distance value ``v``; their exclusive prefix sums give the first rank of
each tie group; a second pass over the items in database order hands out ranks
inside each group in index order -- exactly the stable order ``argsort(kind=
"stable")`` would give -- and accumulates precision at every relevant rank::

    rank(j)   = #{k : d_k < d_j} + #{k < j : d_k = d_j} + 1
    relcnt(j) = #{k relevant : d_k < d_j} + #{k < j relevant : d_k = d_j} + 1
    AP@K      = (1 / R_K) * sum_{j relevant, rank(j) <= K} relcnt(j) / rank(j)

with R_K the number of relevant items within the top K. That is O(n_db) per
query with a handful of operations per item, against O(n_db) radix sorting plus
gathers for the numpy path, and the queries run in parallel threads.

``HASHREPRO_NO_NUMBA=1`` (or numba missing) selects the numpy path; the tests
check both paths against a brute-force reference.

Threads: the kernels use as many threads as torch is allowed (``torch.get_num_threads()``, when
torch is imported), and torch's count is the same after a kernel as before. Without this, numba's
OpenMP layer, on its first parallel call, sets the process's OpenMP thread count to
``NUMBA_NUM_THREADS`` (every core), so a run started with ``--threads 1`` trained with every core
after its first mAP evaluation (:func:`_run_parallel`).
"""
from __future__ import annotations

import os
import sys

import numpy as np

try:  # numba is a declared dependency; the fallback keeps the library importable without it
    if os.environ.get("HASHREPRO_NO_NUMBA", "") not in ("", "0"):
        raise ImportError("disabled by HASHREPRO_NO_NUMBA")
    import numba
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised with HASHREPRO_NO_NUMBA=1
    HAVE_NUMBA = False


if HAVE_NUMBA:

    @njit(parallel=True, cache=True, nogil=True)
    def _ap_index_kernel(D, rel, n_bins, topk):  # pragma: no cover - compiled
        n, N = D.shape
        ap = np.zeros(n, dtype=np.float64)
        nrel = np.zeros(n, dtype=np.int64)
        for i in prange(n):
            start = np.zeros(n_bins + 1, dtype=np.int64)
            rstart = np.zeros(n_bins + 1, dtype=np.int64)
            for j in range(N):
                v = D[i, j]
                start[v + 1] += 1
                if rel[i, j]:
                    rstart[v + 1] += 1
            for v in range(n_bins):  # exclusive prefix sums: first rank (0-based) of each group
                start[v + 1] += start[v]
                rstart[v + 1] += rstart[v]
            s = 0.0
            r = 0
            for j in range(N):
                v = D[i, j]
                rank = start[v] + 1
                start[v] = rank
                if rel[i, j]:
                    rc = rstart[v] + 1
                    rstart[v] = rc
                    if rank <= topk:
                        s += rc / rank
                        r += 1
            nrel[i] = r
            if r > 0:
                ap[i] = s / r
        return ap, nrel


if HAVE_NUMBA:

    @njit(parallel=True, cache=True, nogil=True)
    def _hist_kernel(D, rel, n_bins):  # pragma: no cover - compiled
        n, N = D.shape
        cnt = np.zeros((n, n_bins), dtype=np.float64)
        rcnt = np.zeros((n, n_bins), dtype=np.float64)
        for i in prange(n):
            c = np.zeros(n_bins, dtype=np.int64)
            r = np.zeros(n_bins, dtype=np.int64)
            for j in range(N):
                v = D[i, j]
                c[v] += 1
                if rel[i, j]:
                    r[v] += 1
            for v in range(n_bins):
                cnt[i, v] = c[v]
                rcnt[i, v] = r[v]
        return cnt, rcnt


def _run_parallel(kernel, *args):
    """Call a parallel kernel with torch's thread count, and leave torch's count as it was.

    numba launches its thread pool on the first parallel call; with the OpenMP layer that launch
    sets the OpenMP thread count of the calling thread (which torch's CPU kernels share) to
    ``NUMBA_NUM_THREADS``. Here numba is capped at torch's count and torch's count is restored.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return kernel(*args)
    before = torch.get_num_threads()
    numba.set_num_threads(max(1, min(before, numba.config.NUMBA_NUM_THREADS)))
    try:
        return kernel(*args)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def histograms_integer(D: np.ndarray, rel: np.ndarray, n_bins: int):
    """Per-query counts of all and of relevant items at each distance value.

    D : (n, ndb) integer distances in 0..n_bins-1; rel : (n, ndb) bool.
    Returns (N, Rr), both (n, n_bins) float64, or None without a compiled kernel.
    """
    if not HAVE_NUMBA:
        return None
    rel = np.ascontiguousarray(rel)
    if rel.dtype != np.bool_:
        rel = rel.astype(bool)
    return _run_parallel(_hist_kernel, np.ascontiguousarray(D), rel, np.int64(n_bins))


def ap_index_integer(D: np.ndarray, rel: np.ndarray, n_bins: int, topk):
    """AP@topk with ties by database index, for integer distances 0 <= D < n_bins.

    D : (n, ndb) unsigned/signed int distances; rel : (n, ndb) bool.
    topk : None (whole ranking) or int >= 1.
    Returns (ap (n,) float64, empty (n,) bool) or None when no compiled kernel is available.
    """
    if not HAVE_NUMBA:
        return None
    k = np.int64(D.shape[1] if topk is None else topk)
    rel = np.ascontiguousarray(rel)
    if rel.dtype != np.bool_:
        rel = rel.astype(bool)
    ap, nrel = _run_parallel(_ap_index_kernel, np.ascontiguousarray(D), rel, np.int64(n_bins), k)
    return ap, nrel == 0
