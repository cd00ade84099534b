"""Shared pieces of the bucket indexes: engine limits, the combinatorial number system of the
flip masks (:func:`flip_rank`, :func:`buckets_within`) and :class:`BucketSearchResult`."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

_METHODS = ("auto", "enumerate", "scan", "mih")
#: "auto" uses multi-index hashing from this many non-empty buckets on (a scan below).
_MIH_MIN_BUCKETS = 4096
#: Longest substring of a multi-index table (its CSR offsets have 2**bits + 1 entries).
_MIH_MAX_SUBSTRING_BITS = 20
#: Queries per multi-index batch; elements of the (queries x buckets) distance block of a scan.
_MIH_CHUNK = 128
_SCAN_CHUNK_ELEMS = 1 << 23
#: range_search(method="auto") enumerates flips while the ball has at most this many buckets.
_RANGE_ENUM_PROBES = 64
#: method="enumerate" probes buckets one at a time in Python (about a million a second). A query
#: whose search would probe more than this many buckets (e.g. 300-bit codes whose nearest items
#: lie at radius 3 or more: C(300, 3) = 4.5M) is refused with a ValueError instead of running for
#: hours; the "scan", "mih" and "auto" engines return identical results at any length.
ENUMERATE_MAX_PROBES = 1 << 22


# --------------------------------------------------------------------------- combinatorics
def buckets_within(n_bits: int, r: int) -> int:
    """Number of buckets at Hamming distance ``<= r`` from a code of ``n_bits``: ``sum_j C(n_bits, j)``."""
    r = min(int(r), int(n_bits))
    return sum(math.comb(int(n_bits), j) for j in range(r + 1)) if r >= 0 else 0


def _colex_rank(mask: int) -> int:
    """Rank of the set of 1-bit positions of ``mask`` among sets of the same size in colex order.

    Combinatorial number system: for positions ``p_1 < ... < p_r``, rank = ``sum_i C(p_i, i)``.
    Colex order of the sets equals increasing numeric order of the masks.
    """
    rank, i, p = 0, 0, 0
    while mask:
        if mask & 1:
            i += 1
            rank += math.comb(p, i)
        mask >>= 1
        p += 1
    return rank


def flip_rank(mask: int, n_bits: int) -> int:
    """0-based position of a flip mask among the buckets at its radius, in the visiting order.

    ``mask`` is the XOR of the query code and the bucket code read as a big-endian integer
    (column 0 = most significant bit). The visiting order is lexicographic in the flipped
    columns (``itertools.combinations(range(n_bits), r)``), i.e. decreasing ``mask``, so the
    rank is ``C(n_bits, r) - 1 - colex_rank(mask)``.
    """
    r = int(mask).bit_count()
    return math.comb(int(n_bits), r) - 1 - _colex_rank(int(mask))


def _flip_masks_lex(n_bits: int, r: int):
    """Generate the flip masks of radius ``r`` in visiting order (lexicographic in columns)."""
    for combo in itertools.combinations(range(n_bits), r):
        m = 0
        for c in combo:
            m |= 1 << (n_bits - 1 - c)
        yield m


def _submasks(length: int, r: int) -> np.ndarray:
    """All ``length``-bit masks with ``r`` ones (any order), int64."""
    out = np.zeros(math.comb(length, r), dtype=np.int64)
    for i, combo in enumerate(itertools.combinations(range(length), r)):
        m = 0
        for c in combo:
            m |= 1 << c
        out[i] = m
    return out


def _concat_ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + l)`` for every (s, l), vectorised."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    csum = np.cumsum(lens)
    shift = np.repeat(starts - (csum - lens), lens)
    return np.arange(total, dtype=np.int64) + shift


def _popcount_rows(x: np.ndarray) -> np.ndarray:
    """Popcount of uint64 (n,) or packed uint8 (n, n_bytes) -> int64 (n,)."""
    c = np.bitwise_count(x)
    if x.ndim == 2:
        return c.sum(axis=1, dtype=np.int64)
    return c.astype(np.int64)


# --------------------------------------------------------------------------- results
@dataclass
class BucketSearchResult:
    """Per-query results of :meth:`BucketIndex.search_detailed`.

    Attributes
    ----------
    items : list of nq int64 arrays
        Item ids in the order Algorithm 1 puts them into ``U`` (at most ``K`` each).
    buckets_visited : (nq,) int64 (object dtype if a count exceeds 2**63 - 1)
        Buckets probed, empty ones included (the MCH paper's efficiency measure).
    buckets_nonempty : (nq,) int64
        Non-empty buckets among those probed.
    radius : (nq,) int64
        Hamming radius of the bucket at which the search stopped.
    """

    items: list
    buckets_visited: np.ndarray
    buckets_nonempty: np.ndarray
    radius: np.ndarray


def _count_str(n: int) -> str:
    """A bucket count for a message: exact up to 10**12, else in scientific notation."""
    return f"{n:,}" if n < 10**12 else f"{float(n):.3g}"


def _as_count_array(values: list) -> np.ndarray:
    if values and max(values) >= 2**63:
        return np.array(values, dtype=object)
    return np.array(values, dtype=np.int64)


def packed_queries(query_bits01, n_bits: int) -> np.ndarray:
    """Query codes ``(n_bits,)`` or ``(n_q, n_bits)`` in {0, 1} -> packed bytes ``(n_q, ceil(n_bits/8))``
    uint8, checked against the index width (one check for both index back-ends)."""
    from ..codes import as_numpy, check_bits01

    q = as_numpy(query_bits01, "query_bits01")
    if q.ndim == 1:
        q = q[None, :]
    q = check_bits01(q, "query_bits01")
    if q.shape[1] != n_bits:
        raise ValueError(f"query codes have {q.shape[1]} bits but the index has {n_bits}")
    return np.ascontiguousarray(np.packbits(q, axis=1))

