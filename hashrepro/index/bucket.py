"""MCH Algorithm 1 (hash bucket search) on a Python hash table: :class:`BucketIndex` with the
``"enumerate"`` and ``"scan"`` engines and range search; the ``"mih"`` engine is the mixin in
:mod:`hashrepro.index._mih`. Conventions (visiting order, counts) in the :mod:`hashrepro.index`
docstring."""
from __future__ import annotations

import math

import numpy as np

from ..codes import as_numpy, check_bits01
from ._common import (packed_queries, _METHODS, _MIH_CHUNK, _MIH_MIN_BUCKETS, _RANGE_ENUM_PROBES, _SCAN_CHUNK_ELEMS,
                      ENUMERATE_MAX_PROBES, BucketSearchResult, _as_count_array, _concat_ranges, _count_str,
                      _flip_masks_lex, _popcount_rows, buckets_within, flip_rank)
from ._mih import _MultiIndexMixin

__all__ = ["BucketIndex"]


class BucketIndex(_MultiIndexMixin):
    """Hash table from binary code to the items stored under it; MCH Algorithm 1 search.

    Parameters
    ----------
    db_bits01 : (m, n_bits) {0,1}
        Database codes (``n_bits >= 1``, any length; the fast ``"mih"`` engine needs n_bits <= 64).
    ids : (m,) int, optional
        Item id of each code (default ``arange(m)``). Repeated ids make multi-code items (MCH):
        an item is stored in one bucket per distinct code and returned once.
    n_substrings : int or "auto"
        Substrings of the multi-index engine (``"auto"``: about ``n_bits / log2(n_buckets)``,
        Norouzi et al. 2012, with substrings of at most 20 bits).

    Attributes
    ----------
    n_bits, n_codes, n_items, n_buckets : int
    buckets : dict
        ``{key: item ids (int64 array, insertion order)}``; ``key`` is the code as a big-endian
        ``int`` (column 0 = most significant bit) for ``n_bits <= 64`` and the packed code
        ``bytes`` (``numpy.packbits`` layout) otherwise.

    Examples
    --------
    >>> idx = BucketIndex(np.array([[0, 0, 1], [0, 1, 1], [1, 1, 1]]))
    >>> items, visited = idx.search(np.array([[0, 0, 1]]), k=2)
    >>> items[0].tolist(), visited.tolist()   # bucket 001 (r=0), then 101 (empty), 011 (r=1)
    ([0, 1], [3])
    """

    def __init__(self, db_bits01, ids=None, *, n_substrings="auto"):
        bits = check_bits01(db_bits01, "db_bits01")
        m, b = bits.shape
        if b < 1:
            raise ValueError("db_bits01 must have at least 1 bit per code")
        if m < 1:
            raise ValueError("db_bits01 is empty; a BucketIndex needs at least one code")
        if ids is None:
            ids_arr = np.arange(m, dtype=np.int64)
        else:
            ids_arr = as_numpy(ids, "ids")
            if ids_arr.shape != (m,):
                raise ValueError(f"ids must have shape ({m},) (one item id per code), got {ids_arr.shape}")
            if ids_arr.size and not np.issubdtype(ids_arr.dtype, np.integer):
                raise ValueError(f"ids must be integers, got dtype {ids_arr.dtype}")
            ids_arr = ids_arr.astype(np.int64)
        if n_substrings != "auto" and (isinstance(n_substrings, bool)
                                       or not isinstance(n_substrings, (int, np.integer))
                                       or not 1 <= int(n_substrings) <= min(b, 64)):
            raise ValueError(f"n_substrings must be 'auto' or an int in 1..{min(b, 64)}, got {n_substrings!r}")
        self.n_bits = int(b)
        self.n_codes = int(m)
        self._wide = b > 64
        self._nbytes = (b + 7) // 8
        self._pad = 8 * self._nbytes - b

        packed = np.packbits(bits, axis=1)
        if self._wide:
            uniq, inverse = np.unique(packed, axis=0, return_inverse=True)
            self._keys = np.ascontiguousarray(uniq)  # (n_buckets, n_bytes), lexicographic = numeric
            key_ints = [int.from_bytes(row.tobytes(), "big") >> self._pad for row in uniq]
        else:
            row_keys = self._keys_u64(packed)
            uniq, inverse = np.unique(row_keys, return_inverse=True)
            self._keys = uniq  # uint64 (n_buckets,), ascending
            key_ints = None  # Python ints made on demand (see _table)
        inverse = inverse.reshape(-1).astype(np.int64)
        n_buckets = int(uniq.shape[0])

        # Bucket contents: one entry per distinct (bucket, id), the first row wins, row order.
        rows = np.arange(m, dtype=np.int64)
        o = np.lexsort((rows, ids_arr, inverse))
        first = np.ones(m, dtype=bool)
        first[1:] = (inverse[o][1:] != inverse[o][:-1]) | (ids_arr[o][1:] != ids_arr[o][:-1])
        kept = np.sort(o[first])  # rows, ascending
        o2 = np.lexsort((kept, inverse[kept]))
        kept = kept[o2]
        self._bucket_items = ids_arr[kept]
        counts = np.bincount(inverse[kept], minlength=n_buckets)
        self._ptr = np.zeros(n_buckets + 1, dtype=np.int64)
        np.cumsum(counts, out=self._ptr[1:])
        self._sizes = counts.astype(np.int64)
        self._key_ints = key_ints
        self._table_cache = None  # key -> bucket index dict, built on first use
        self.n_buckets = n_buckets
        self.n_items = int(np.unique(ids_arr).size)
        self._multi = self._bucket_items.size > self.n_items
        self._ids = ids_arr
        self._offsets = [buckets_within(b, r - 1) for r in range(b + 2)]  # probes before radius r
        self._mask_cache: dict[int, list[int]] = {}
        self._n_substrings_param = n_substrings
        self._mih_tables = None
        self._mih_scan_fallback = True  # tests switch it off to exercise multi-index hashing fully

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_multicodes(cls, multicodes, **kwargs) -> "BucketIndex":
        """Index a :class:`hashrepro.codes.MultiCodes` (item ids = its owners)."""
        return cls(multicodes.codes, multicodes.owners, **kwargs)

    def _keys_u64(self, packed: np.ndarray) -> np.ndarray:
        """Packed codes (n, n_bytes <= 8) -> big-endian integer keys, uint64 (n,)."""
        n = packed.shape[0]
        buf = np.zeros((n, 8), dtype=np.uint8)
        buf[:, : self._nbytes] = packed
        return (buf.view(">u8").reshape(n).astype(np.uint64)) >> np.uint64(64 - self.n_bits)

    def _query_keys(self, query_bits01):
        packed = packed_queries(query_bits01, self.n_bits)
        if self._wide:
            ints = [int.from_bytes(row.tobytes(), "big") >> self._pad for row in packed]
            return ints, packed
        keys = self._keys_u64(packed)
        return keys.tolist(), keys

    @property
    def _table(self) -> dict:
        """``{key (Python int, big-endian): bucket index}`` for the flip-enumeration engine."""
        if self._table_cache is None:
            ints = self._key_ints if self._key_ints is not None else self._keys.tolist()
            self._table_cache = dict(zip(ints, range(self.n_buckets)))
        return self._table_cache

    @property
    def buckets(self) -> dict:
        out = {}
        for key, bi in self._table.items():  # noqa: B007
            k = (key << self._pad).to_bytes(self._nbytes, "big") if self._wide else key
            out[k] = self._bucket_items[self._ptr[bi] : self._ptr[bi + 1]].copy()
        return out

    def __len__(self) -> int:
        return self.n_items

    def __repr__(self) -> str:
        return (f"BucketIndex(n_bits={self.n_bits}, n_codes={self.n_codes}, n_items={self.n_items}, "
                f"n_buckets={self.n_buckets})")

    # ------------------------------------------------------------------ public search API
    def search(self, query_bits01, k: int, method: str = "auto", progress: bool | None = False):
        """MCH Algorithm 1: the first ``k`` items found at radius 0, 1, 2, ... from each query.

        Parameters
        ----------
        query_bits01 : (nq, n_bits) {0,1} (a single (n_bits,) code is accepted)
        k : int >= 1
            Number of items wanted (``K`` in Algorithm 1). If ``k`` exceeds the number of items,
            every item is returned (the search stops once all are found).
        method : "auto" | "enumerate" | "scan" | "mih"
            Engine (identical results; see the module docstring).
        progress : bool or None
            tqdm progress bar over queries (None: only on a terminal).

        Returns
        -------
        items : list of nq int64 arrays, each of length ``min(k, n_items)``, in Algorithm 1 order
        buckets_visited : (nq,) int64
            Buckets probed until the search stopped, empty buckets included (see the module
            docstring; use :meth:`search_detailed` for the non-empty count and stop radius).
        """
        res = self.search_detailed(query_bits01, k, method=method, progress=progress)
        return res.items, res.buckets_visited

    def search_detailed(self, query_bits01, k: int, method: str = "auto",
                        progress: bool | None = False) -> BucketSearchResult:
        """Like :meth:`search`, returning a :class:`BucketSearchResult` (items, buckets visited,
        non-empty buckets visited, stop radius)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) < 1:
            raise ValueError(f"k must be a positive integer (K in MCH Algorithm 1), got {k!r}")
        k = int(k)
        self._check_method(method)
        if method == "mih" and self._wide:
            raise ValueError(f"method='mih' needs n_bits <= 64 (index has {self.n_bits}); use 'scan' or 'auto'")
        qints, qarr = self._query_keys(query_bits01)
        nq = len(qints)
        out: list = [None] * nq
        if method == "enumerate":
            self._check_enumerate(qints, qarr, k)
            for i in self._progress(range(nq), progress, nq):
                out[i] = self._enumerate(qints[i], k)
        else:
            use_mih = method == "mih" or (method == "auto" and not self._wide
                                          and self.n_buckets >= _MIH_MIN_BUCKETS)
            chunk = _MIH_CHUNK if use_mih else max(1, _SCAN_CHUNK_ELEMS // self.n_buckets)
            starts = range(0, nq, chunk)
            for s in self._progress(starts, progress, len(starts)):
                sel = np.arange(s, min(nq, s + chunk))
                if use_mih:
                    self._mih_batch(qints, qarr, sel, k, out)
                else:
                    self._scan_batch(qints, qarr, sel, k, out)
        items = [o[0] for o in out]
        return BucketSearchResult(items, _as_count_array([o[1] for o in out]),
                                  np.array([o[2] for o in out], dtype=np.int64),
                                  np.array([o[3] for o in out], dtype=np.int64))

    def range_search(self, query_bits01, r: int, method: str = "auto", progress: bool | None = False):
        """All items within Hamming radius ``r`` (**inclusive**) of each query.

        An item's distance is the minimum over its codes (MCH eq. 5). Items are listed in
        Algorithm 1's visiting order (radius, flip order, insertion order).

        Returns
        -------
        list of nq int64 arrays
        """
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or int(r) < 0:
            raise ValueError(f"r must be a non-negative integer radius, got {r!r}")
        r = min(int(r), self.n_bits)
        self._check_method(method)
        if method == "enumerate" and buckets_within(self.n_bits, r) > ENUMERATE_MAX_PROBES:
            raise ValueError(
                f"method='enumerate' would probe {_count_str(buckets_within(self.n_bits, r))} buckets per "
                f"query (every code within radius {r} of {self.n_bits} bits), more than "
                f"ENUMERATE_MAX_PROBES={ENUMERATE_MAX_PROBES:,}; use method='scan' or 'auto' (identical results)")
        if method == "mih" and self._wide:
            raise ValueError(f"method='mih' needs n_bits <= 64 (index has {self.n_bits}); use 'scan' or 'auto'")
        qints, qarr = self._query_keys(query_bits01)
        out = []
        for i in self._progress(range(len(qints)), progress, len(qints)):
            out.append(self._range_one(qints[i], qarr[i], r, method))
        return out

    # ------------------------------------------------------------------ engines
    @staticmethod
    def _check_method(method):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")

    @staticmethod
    def _progress(it, progress, total):
        if progress is False:
            return it
        from tqdm.auto import tqdm

        return tqdm(it, total=total, disable=None if progress is None else not progress, desc="bucket search")

    def _masks(self, r: int):
        """Flip masks of radius r in visiting order (cached when there are not too many)."""
        if math.comb(self.n_bits, r) > 100_000:
            return _flip_masks_lex(self.n_bits, r)
        ms = self._mask_cache.get(r)
        if ms is None:
            ms = self._mask_cache[r] = list(_flip_masks_lex(self.n_bits, r))
        return ms

    def _check_enumerate(self, qints, qarr, k: int) -> None:
        """Refuse ``method="enumerate"`` when a query would probe more than
        :data:`ENUMERATE_MAX_PROBES` buckets (exact counts from the scan engine, which is cheap)."""
        nq = len(qints)
        chunk = max(1, _SCAN_CHUNK_ELEMS // self.n_buckets)
        res: list = [None] * nq
        for s in range(0, nq, chunk):
            sel = np.arange(s, min(nq, s + chunk))
            self._scan_batch(qints, qarr, sel, k, res)
            for g in sel.tolist():
                visited, radius = res[g][1], res[g][3]
                if visited > ENUMERATE_MAX_PROBES:
                    raise ValueError(
                        f"method='enumerate' would probe {_count_str(visited)} buckets for query {g} "
                        f"({self.n_bits}-bit codes; its first {min(k, self.n_items)} items lie within "
                        f"radius {radius}), more than ENUMERATE_MAX_PROBES={ENUMERATE_MAX_PROBES:,} "
                        "(it probes one bucket at a time); use method='scan' or 'auto' (identical results)")

    def _enumerate(self, qint: int, k: int):
        """Algorithm 1 literally (flip bits, look up each bucket). Returns (items, visited,
        nonempty, radius)."""
        table, ptr, items_flat = self._table, self._ptr, self._bucket_items
        seen: set = set()
        out: list = []
        visited = nonempty = 0
        target = min(k, self.n_items)
        for r in range(self.n_bits + 1):
            for mask in self._masks(r):
                visited += 1
                bi = table.get(qint ^ mask)
                if bi is None:
                    continue
                nonempty += 1
                for it in items_flat[ptr[bi] : ptr[bi + 1]].tolist():
                    if it not in seen:
                        seen.add(it)
                        out.append(it)
                if len(out) >= target:
                    return np.array(out[:k], dtype=np.int64), visited, nonempty, r
        raise AssertionError("unreachable: every item lies within radius n_bits")  # pragma: no cover

    def _dist_to(self, qarr, bidx=None) -> np.ndarray:
        keys = self._keys if bidx is None else self._keys[bidx]
        return _popcount_rows(keys ^ qarr)

    def _visit_order(self, d, masks) -> np.ndarray:
        """Argsort of buckets into Algorithm 1's order: distance, then decreasing flip mask."""
        if self._wide:
            return np.lexsort(tuple(255 - masks[:, j] for j in range(self._nbytes - 1, -1, -1)) + (d,))
        return np.lexsort((~masks, d))

    def _mask_int(self, m) -> int:
        return (int.from_bytes(m.tobytes(), "big") >> self._pad) if self._wide else int(m)

    def _finish(self, qint, qarr, bidx, d, r_complete: int, k: int):
        """Reconstruct Algorithm 1 for one query from candidate buckets.

        ``bidx`` (may repeat) / ``d``: candidate non-empty buckets and their distances; every
        non-empty bucket within ``r_complete`` must be among them. Returns (items, visited,
        nonempty, radius), or None if ``r_complete`` is too small to decide.
        """
        sel = d <= r_complete
        bidx, d = bidx[sel], d[sel]
        if bidx.size == 0:
            return None
        if self._sizes[bidx].sum() < min(k, self.n_items) and r_complete < self.n_bits:
            return None  # cannot reach K yet (sizes over-count distinct items, so this is safe)
        bidx, first = np.unique(bidx, return_index=True)
        d = d[first]
        masks = self._keys[bidx] ^ qarr
        order = self._visit_order(d, masks)
        bidx, d, masks = bidx[order], d[order], masks[order]
        lens = self._sizes[bidx]
        flat = self._bucket_items[_concat_ranges(self._ptr[bidx], lens)]
        owner = np.repeat(np.arange(bidx.size, dtype=np.int64), lens)
        if self._multi:
            _, fi = np.unique(flat, return_index=True)
            fi.sort()
            flat, owner = flat[fi], owner[fi]
        n = flat.size
        if n >= k:
            stop = int(owner[k - 1])
            out = flat[:k]
        elif n == self.n_items:
            stop = int(owner[-1])
            out = flat
        else:
            return None
        r = int(d[stop])
        visited = self._offsets[r] + flip_rank(self._mask_int(masks[stop]), self.n_bits) + 1
        return out.astype(np.int64, copy=True), visited, stop + 1, r

    # scan ---------------------------------------------------------------------------------
    def _scan_from_d(self, qint, qarr, d, k):
        """Search one query given its distances ``d`` (n_buckets,) to every non-empty bucket."""
        # Smallest radius whose ball holds >= K codes (codes >= distinct items), then widen.
        cum = np.cumsum(np.bincount(d, weights=self._sizes, minlength=self.n_bits + 1))
        r = int(np.searchsorted(cum, min(k, self.n_items)))
        while True:
            cand = np.flatnonzero(d <= r)
            res = self._finish(qint, qarr, cand, d[cand], r, k)
            if res is not None:
                return res
            r += 1

    def _scan_batch(self, qints, qarr, sel, k, out):
        if self._wide:
            for g in sel:
                out[g] = self._scan_from_d(qints[g], qarr[g], self._dist_to(qarr[g]), k)
            return
        D = np.bitwise_count(self._keys[None, :] ^ qarr[sel][:, None])
        for j, g in enumerate(sel):
            out[g] = self._scan_from_d(qints[g], qarr[g], D[j], k)

    # range search ------------------------------------------------------------------------
    def _range_finish(self, qarr, bidx, d, r):
        sel = d <= r
        bidx, d = bidx[sel], d[sel]
        bidx, first = np.unique(bidx, return_index=True)
        d = d[first]
        masks = self._keys[bidx] ^ qarr
        bidx = bidx[self._visit_order(d, masks)]
        flat = self._bucket_items[_concat_ranges(self._ptr[bidx], self._sizes[bidx])]
        if self._multi:
            _, fi = np.unique(flat, return_index=True)
            flat = flat[np.sort(fi)]
        return flat.astype(np.int64, copy=True)

    def _range_one(self, qint, qarr, r, method):
        if method == "enumerate" or (method == "auto" and buckets_within(self.n_bits, r) <= _RANGE_ENUM_PROBES):
            table, ptr, items_flat = self._table, self._ptr, self._bucket_items
            seen, out = set(), []
            for rr in range(r + 1):
                for mask in self._masks(rr):
                    bi = table.get(qint ^ mask)
                    if bi is None:
                        continue
                    for it in items_flat[ptr[bi] : ptr[bi + 1]].tolist():
                        if it not in seen:
                            seen.add(it)
                            out.append(it)
            return np.array(out, dtype=np.int64)
        if not self._wide and (method == "mih" or (method == "auto" and self.n_buckets >= _MIH_MIN_BUCKETS)):
            s, tables, mcache = self._mih_build()
            qk = np.array([qarr], dtype=tables[0][4].dtype)
            parts_b, parts_d = [], []
            for j in range(r + 1):
                step = self._mih_step(j, qk, np.zeros(1, dtype=np.int64), mcache, tables, s)
                if step is None:
                    break
                parts_b.append(step[1])
                parts_d.append(step[2])
                if j >= r or j // s >= tables[j % s][0]:  # radius reached, or a table exhausted
                    return self._range_finish(qarr, np.concatenate(parts_b), np.concatenate(parts_d), r)
        d = self._dist_to(qarr)
        cand = np.flatnonzero(d <= r)
        return self._range_finish(qarr, cand, d[cand], r)
