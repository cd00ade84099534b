"""Hash bucket search: the MCH paper's Algorithm 1, multi-code aware, plus a FAISS backend.

A *hash index* groups the database codes into buckets, one bucket per distinct code. Hash bucket
search (MCH §2.1, Algorithm 1) answers a query code ``b`` with the first ``K`` items found while
visiting buckets at Hamming radius ``r = 0, 1, 2, ...`` from ``b``::

    r = 0, U = {}
    while |U| < K:
        M = buckets at Hamming distance exactly r from b
        for each bucket m in M:
            put all the items of m into U
            if |U| >= K: return the first K items of U
        r = r + 1

:class:`BucketIndex` implements this exactly, with these conventions (the paper leaves them open):

* **Order of the buckets at one radius.** The buckets at distance ``r`` are the query code with
  ``r`` bits flipped; the sets of flipped bit *columns* (column 0 = the first bit of the code) are
  visited in lexicographic order, i.e. ``itertools.combinations(range(n_bits), r)``: first flip
  {0, 1, ...}, ...; equivalently, in decreasing order of the flip mask read as a big-endian
  integer (column 0 is the most significant bit).
* **Order inside a bucket**: insertion order (database row order).
* **Several codes per item** (MCH): an item sits in one bucket per distinct code and is put into
  ``U`` the first time one of its buckets is visited; later visits skip it (``U`` is a set).
* **K larger than the database**: the loop stops as soon as every item has been found (the
  literal algorithm would probe every remaining bucket, up to ``2**n_bits``, for nothing).
* **Buckets visited** (the MCH paper's efficiency axis in the F1-bucket curves, §5.2.1) counts
  every bucket *probed*, empty or not: all buckets at radius ``< r*`` plus those at radius ``r*``
  up to and including the bucket that completed ``K``. That is the cost of the hash-table
  look-ups the paper's argument is about (it grows as ``sum_j C(Q, j)``; a probe of an empty
  bucket costs a look-up just like a full one). The number of *non-empty* buckets among them is
  also reported (:attr:`BucketSearchResult.buckets_nonempty`).

Engines (``method=``), all returning identical items, order and counts (tested):

* ``"enumerate"``: Algorithm 1 as written: flip bits, look up each bucket in a dict.
* ``"scan"``: popcount of the query against every *non-empty* bucket key (vectorised), then the
  algorithm's visiting order is reconstructed: buckets sorted by (distance, flip order), and the
  number of probed buckets computed in closed form from the rank of the stopping bucket's flip
  combination (combinatorial number system).
* ``"mih"``: multi-index hashing (Norouzi, Punjani & Fleet, CVPR 2012), ``n_bits <= 64``: the
  code is split into ``s`` substrings with one table each. Step ``j`` probes table ``j % s`` at
  sub-radius ``j // s``; after step ``j`` every non-empty bucket within Hamming radius ``j`` has
  been found (pigeonhole: a bucket missed by every table differs from the query in at least
  ``rho_t + 1`` bits of each substring ``t``, hence in ``sum_t (rho_t + 1) = j + 1`` bits), so the
  search stops at the first step whose ball holds ``K`` items, then orders the buckets as
  ``"scan"`` does. Sub-linear: for 1M random 32-bit codes and K = 100 it touches ~13k buckets
  instead of probing the ~1.15M buckets of the radius-6 ball. Queries are processed in
  vectorised batches. When the next step would cost more than a full scan, it falls back to
  ``"scan"``.
* ``"auto"`` (default): ``"mih"`` for tables with at least 4096 non-empty buckets (and
  ``n_bits <= 64``), ``"scan"`` otherwise.

:class:`FaissBucketIndex` offers the same API on ``faiss.IndexBinaryHash`` /
``faiss.IndexBinaryMultiHash``. Note that FAISS ``range_search(x, radius)`` on these indexes
returns distances **strictly below** ``radius`` (exclusive; checked in the tests), while
:meth:`BucketIndex.range_search` and :meth:`FaissBucketIndex.range_search` take an *inclusive*
radius.
"""
from __future__ import annotations

# Layout: the combinatorics and the result type in ``_common``, Algorithm 1 and its "enumerate" /
# "scan" engines in ``bucket``, the multi-index engine in ``_mih`` (a mixin of BucketIndex), the
# FAISS backend in ``faiss_backend``.
from ._common import (ENUMERATE_MAX_PROBES, _MIH_MAX_SUBSTRING_BITS, _MIH_MIN_BUCKETS,  # noqa: F401
                      BucketSearchResult, buckets_within, flip_rank)
from .bucket import BucketIndex
from .faiss_backend import FaissBucketIndex

__all__ = ["BucketIndex", "BucketSearchResult", "FaissBucketIndex", "flip_rank", "buckets_within"]
