"""Hash bucket search on FAISS binary hash indexes (:class:`FaissBucketIndex`)."""
from __future__ import annotations

import numpy as np

from ..codes import as_numpy, check_bits01
from ._common import buckets_within, packed_queries

__all__ = ["FaissBucketIndex"]


class FaissBucketIndex:
    """Hash bucket search on ``faiss.IndexBinaryHash`` / ``faiss.IndexBinaryMultiHash``.

    Same API as :class:`BucketIndex`. The search widens FAISS's flip radius ``nflip`` until the
    ball that is guaranteed complete holds ``K`` distinct items, then returns the ``K`` nearest
    (by the item's minimum distance over its codes). The *set* equals Algorithm 1's up to which
    items are taken among ties at the last radius (FAISS breaks ties in heap order, not in
    Algorithm 1's flip order).

    * ``n_hash == 1``: ``IndexBinaryHash(d, hash_bits)``: one table keyed on the first
      ``hash_bits`` bits (default: all bits, at most 63); every item within ``nflip`` is found.
    * ``n_hash > 1``: ``IndexBinaryMultiHash(d, n_hash, hash_bits)`` (multi-index hashing):
      with ``n_hash`` disjoint substrings probed to ``nflip`` flips, every item within
      ``n_hash * (nflip + 1) - 1`` is found (pigeonhole).

    ``buckets_visited`` is the number of hash-table probes of the final ``nflip``:
    ``n_hash * sum_{j <= nflip} C(hash_bits, j)`` (FAISS's own ``indexBinaryHash_stats`` count
    only the non-empty ones for ``IndexBinaryHash``, hits and misses separately for
    ``IndexBinaryMultiHash``).

    FAISS needs whole bytes: codes are zero-padded to a multiple of 8 bits (distances unchanged).
    FAISS's ``range_search(x, radius)`` is **exclusive** (``dis < radius``, checked in the
    tests); :meth:`range_search` here takes an inclusive radius and passes ``r + 1``.

    Parameters
    ----------
    db_bits01 : (m, n_bits) {0,1}
    ids : (m,) int, optional; repeated ids = multi-code items (deduplicated in the results)
    n_hash : int, number of hash tables (1 -> IndexBinaryHash)
    hash_bits : int, optional, bits per table (default: ``min(8 * n_bytes // n_hash, 63)``)
    """

    def __init__(self, db_bits01, ids=None, *, n_hash: int = 1, hash_bits: int | None = None):
        import faiss

        bits = check_bits01(db_bits01, "db_bits01")
        m, b = bits.shape
        if m < 1 or b < 1:
            raise ValueError(f"db_bits01 must be a non-empty (m, n_bits) array, got shape {bits.shape}")
        if ids is None:
            ids_arr = np.arange(m, dtype=np.int64)
        else:
            ids_arr = as_numpy(ids, "ids")
            if ids_arr.shape != (m,) or (ids_arr.size and not np.issubdtype(ids_arr.dtype, np.integer)):
                raise ValueError(f"ids must be an integer array of shape ({m},), got {ids_arr.dtype} {ids_arr.shape}")
            ids_arr = ids_arr.astype(np.int64)
        d_pad = 8 * ((b + 7) // 8)
        n_hash = int(n_hash)
        if n_hash < 1:
            raise ValueError(f"n_hash must be >= 1, got {n_hash}")
        if hash_bits is None:
            hash_bits = min(d_pad // n_hash, 63)
        hash_bits = int(hash_bits)
        if not 1 <= hash_bits <= 63 or n_hash * hash_bits > d_pad:
            raise ValueError(
                f"hash_bits must be in 1..63 with n_hash * hash_bits <= {d_pad} (padded code length), "
                f"got n_hash={n_hash}, hash_bits={hash_bits}")
        self.n_bits, self.n_codes, self.n_hash, self.hash_bits = b, m, n_hash, hash_bits
        self._ids = ids_arr
        self.n_items = int(np.unique(ids_arr).size)
        self._max_mult = int(np.unique(ids_arr, return_counts=True)[1].max())
        packed = np.ascontiguousarray(np.packbits(bits, axis=1))
        if n_hash == 1:
            self.index = faiss.IndexBinaryHash(d_pad, hash_bits)
        else:
            self.index = faiss.IndexBinaryMultiHash(d_pad, n_hash, hash_bits)
        self.index.add(packed)
        self._faiss = faiss

    def __repr__(self) -> str:
        kind = "IndexBinaryHash" if self.n_hash == 1 else f"IndexBinaryMultiHash(n_hash={self.n_hash})"
        return f"FaissBucketIndex({kind}, n_bits={self.n_bits}, hash_bits={self.hash_bits}, n_codes={self.n_codes})"

    def _packed_queries(self, query_bits01):
        return packed_queries(query_bits01, self.n_bits)

    def _complete_radius(self, nflip: int) -> int:
        if nflip >= self.hash_bits:
            return self.n_bits
        return min(self.n_bits, self.n_hash * (nflip + 1) - 1)

    def _probes(self, nflip: int) -> int:
        return self.n_hash * buckets_within(self.hash_bits, nflip)

    def search(self, query_bits01, k: int):
        """The ``k`` nearest items found by widening the flip radius (see the class docstring).

        Returns
        -------
        items : list of nq int64 arrays (nearest first; ties in FAISS order)
        buckets_visited : (nq,) int64, probes of the final flip radius
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        q = self._packed_queries(query_bits01)
        nq = q.shape[0]
        items: list = [None] * nq
        visited = np.zeros(nq, dtype=np.int64)
        kf = min(k * self._max_mult, self.n_codes)
        target = min(k, self.n_items)
        todo = np.arange(nq)
        nflip = 0
        while todo.size:
            self.index.nflip = nflip
            rc = self._complete_radius(nflip)
            D, I = self.index.search(q[todo], kf)
            left = []
            for j, qi in enumerate(todo):
                ok = (I[j] >= 0) & (D[j] <= rc)
                its = self._ids[I[j][ok]]
                if self._max_mult > 1:
                    _, fi = np.unique(its, return_index=True)
                    its = its[np.sort(fi)]
                if its.size >= target or rc >= self.n_bits:
                    items[qi] = its[:k].astype(np.int64)
                    visited[qi] = self._probes(nflip)
                else:
                    left.append(qi)
            todo = np.array(left, dtype=np.int64)
            nflip += 1
        return items, visited

    def range_search(self, query_bits01, r: int):
        """Items within Hamming radius ``r`` (**inclusive**), sorted by (distance, first code row).

        Calls FAISS ``range_search`` with ``radius = r + 1`` (FAISS is exclusive) and the
        smallest ``nflip`` whose complete radius covers ``r``.
        """
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or int(r) < 0:
            raise ValueError(f"r must be a non-negative integer radius, got {r!r}")
        r = int(r)
        q = self._packed_queries(query_bits01)
        nflip = 0
        while self._complete_radius(nflip) < min(r, self.n_bits):
            nflip += 1
        self.index.nflip = nflip
        lims, D, I = self.index.range_search(q, r + 1)
        out = []
        for i in range(q.shape[0]):
            rows = I[lims[i] : lims[i + 1]].astype(np.int64)
            dd = D[lims[i] : lims[i + 1]]
            o = np.lexsort((rows, dd))
            its = self._ids[rows[o]]
            _, fi = np.unique(its, return_index=True)
            out.append(its[np.sort(fi)].astype(np.int64))
        return out
