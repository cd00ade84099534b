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

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .codes import as_numpy, check_bits01

__all__ = ["BucketIndex", "BucketSearchResult", "FaissBucketIndex", "flip_rank", "buckets_within"]

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


# --------------------------------------------------------------------------- index
class BucketIndex:
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
        q = as_numpy(query_bits01, "query_bits01")
        if q.ndim == 1:
            q = q[None, :]
        q = check_bits01(q, "query_bits01")
        if q.shape[1] != self.n_bits:
            raise ValueError(f"query codes have {q.shape[1]} bits but the index has {self.n_bits}")
        packed = np.packbits(q, axis=1)
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

    # multi-index hashing ----------------------------------------------------------------
    def _mih_build(self):
        """Multi-index tables (Norouzi et al. 2012): substring t covers code columns
        [c0, c0 + L); table t lists the bucket indices sorted by substring value (CSR)."""
        if self._mih_tables is not None:
            return self._mih_tables
        b, n = self.n_bits, self.n_buckets
        s = self._n_substrings_param
        if s == "auto":
            s = max(1, round(b / max(1.0, math.log2(max(n, 2)))), math.ceil(b / _MIH_MAX_SUBSTRING_BITS))
        s = int(min(s, b))
        base, extra = divmod(b, s)
        lengths = [base + (1 if t < extra else 0) for t in range(s)]
        kt = np.uint32 if b <= 32 else np.uint64  # narrower keys: less memory traffic
        keys = self._keys.astype(kt)
        tables = []
        c0 = 0
        for L in lengths:
            c1 = c0 + L
            shift = b - c1
            low = (1 << L) - 1
            sub = ((keys >> kt(shift)) & kt(low)).astype(np.int64)
            order = np.argsort(sub, kind="stable")
            off = np.zeros((1 << L) + 1, dtype=np.int64)
            np.cumsum(np.bincount(sub, minlength=1 << L), out=off[1:])
            tables.append((L, kt(shift), kt(low), order, keys[order], off, kt(low << shift)))
            c0 = c1
        self._mih_tables = (s, tables, {})
        return self._mih_tables

    def _mih_step(self, j, qk, owner_q, mcache, tables, s, bound=None):
        """Probe step ``j`` (table ``j % s`` at sub-radius ``j // s``) for queries ``owner_q``.

        After step j, every non-empty bucket within Hamming radius j (all of them when a table
        is exhausted) has been found (pigeonhole over the substrings: probing table t to
        sub-radius rho_t finds every bucket within sum_t (rho_t + 1) - 1). Each bucket is kept
        only at the first step that finds it, so no duplicates. Candidates farther than
        ``bound[owner]`` (a known upper bound on the query's stop radius) are dropped. Returns
        (owner, bidx, d) or None when the probe would cost more than a full scan.
        """
        n = self.n_buckets
        t, rho = j % s, j // s
        L, shift, low, order, ksorted, off, _ = tables[t]
        P = math.comb(L, rho)
        if self._mih_scan_fallback and rho > 0 and 4 * P + 2 * P * n / (1 << L) > n:
            return None
        sm = mcache.get((L, rho))
        if sm is None:
            sm = mcache[(L, rho)] = _submasks(L, rho)
        qkq = qk[owner_q]
        qsub = ((qkq >> shift) & low).astype(np.int64)
        probe = (qsub[:, None] ^ sm[None, :]).ravel()
        st = off[probe]
        ln = off[probe + 1] - st
        pos = _concat_ranges(st, ln)
        owner = np.repeat(np.repeat(owner_q, P), ln)
        x = ksorted[pos]
        x ^= qk[owner]
        d = np.bitwise_count(x)  # uint8
        if bound is not None:
            keep = np.flatnonzero(d <= bound[owner])
            owner, pos, d, x = owner[keep], pos[keep], d[keep], x[keep]
        if s > 1:
            first = None
            for tt, tab in enumerate(tables):
                fs = np.bitwise_count(x & tab[6]) * np.uint8(s) + np.uint8(tt)
                first = fs if first is None else np.minimum(first, fs)
            keep = np.flatnonzero(first == j)
            owner, pos, d = owner[keep], pos[keep], d[keep]
        return owner, order[pos], d.astype(np.int64)

    def _mih_batch(self, qints, qarr, sel, k, out):
        """Algorithm 1 for a batch of queries via multi-index hashing (n_bits <= 64)."""
        s, tables, mcache = self._mih_build()
        b = self.n_bits
        target = min(k, self.n_items)
        qk = qarr[sel].astype(tables[0][4].dtype)
        nc = sel.size
        active = np.ones(nc, dtype=bool)
        counts = np.zeros((nc, b + 1), dtype=np.int64)
        RQ = np.zeros(0, dtype=np.int64)
        RB = np.zeros(0, dtype=np.int64)
        RD = np.zeros(0, dtype=np.int64)
        # Upper bound on each query's stop radius: the K-th smallest distance among the buckets
        # found so far (single-code only: with multi-code items, code counts over-count items).
        bound = None if self._multi else np.full(nc, b, dtype=np.uint8)
        j = 0
        while active.any():
            act = np.flatnonzero(active)
            step = self._mih_step(j, qk, act, mcache, tables, s, bound)
            if step is None:
                break  # the remaining queries go to the scan below
            owner, bidx, d = step
            counts += np.bincount(owner * (b + 1) + d, weights=self._sizes[bidx],
                                  minlength=nc * (b + 1)).astype(np.int64).reshape(nc, b + 1)
            t, rho = j % s, j // s
            r_complete = b if rho >= tables[t][0] else min(j, b)
            cum = np.cumsum(counts[act], axis=1)
            if bound is not None:
                has = cum[:, -1] >= target
                bound[act[has]] = np.argmax(cum[has] >= target, axis=1)
                keep = d <= bound[owner]
                owner, bidx, d = owner[keep], bidx[keep], d[keep]
                keep = RD <= bound[RQ]
                RQ, RB, RD = RQ[keep], RB[keep], RD[keep]
            RQ, RB, RD = np.concatenate([RQ, owner]), np.concatenate([RB, bidx]), np.concatenate([RD, d])
            ready = act[cum[:, r_complete] >= target]
            if ready.size:
                if self._multi:
                    done = self._mih_finish_multi(qints, qarr, sel, ready, RQ, RB, RD, r_complete, k, out)
                else:
                    radius = np.argmax(cum[cum[:, r_complete] >= target] >= target, axis=1)
                    done = self._mih_finish_single(qarr, sel, qk, ready, radius, RQ, RB, RD, target, out)
                active[done] = False
                keep = active[RQ]
                RQ, RB, RD = RQ[keep], RB[keep], RD[keep]
            j += 1
        for i in np.flatnonzero(active):
            g = sel[i]
            out[g] = self._scan_from_d(qints[g], qarr[g], self._dist_to(qarr[g]), k)

    def _mih_finish_single(self, qarr, sel, qk, ready, radius, RQ, RB, RD, target, out):
        """Vectorised finish for single-code indexes: queries ``ready`` stop at ``radius``."""
        nc = qk.size
        rfull = np.full(nc, -1, dtype=np.int64)
        rfull[ready] = radius
        m = RD <= rfull[RQ]
        q_, b_, d_ = RQ[m], RB[m], RD[m]
        masks = self._keys[b_] ^ qk[q_]
        o = np.lexsort((~masks, d_, q_))
        q_, b_, d_, masks = q_[o], b_[o], d_[o], masks[o]
        sz = self._sizes[b_]
        cs = np.cumsum(sz)
        seg = np.searchsorted(q_, ready, side="left")
        base = np.where(seg > 0, cs[seg - 1], 0)
        stop = np.searchsorted(cs, base + target, side="left")
        flat = self._bucket_items[_concat_ranges(self._ptr[b_], sz)]
        b = self.n_bits
        for i, li in enumerate(ready.tolist()):
            st = int(stop[i])
            r = int(d_[st])
            visited = self._offsets[r] + flip_rank(int(masks[st]), b) + 1
            out[sel[li]] = (flat[base[i] : base[i] + target].astype(np.int64, copy=True), visited,
                            st - int(seg[i]) + 1, r)
        return ready

    def _mih_finish_multi(self, qints, qarr, sel, ready, RQ, RB, RD, r_complete, k, out):
        o = np.argsort(RQ, kind="stable")
        q_sorted = RQ[o]
        lo = np.searchsorted(q_sorted, ready, side="left")
        hi = np.searchsorted(q_sorted, ready, side="right")
        done = []
        for li, a, z in zip(ready.tolist(), lo.tolist(), hi.tolist()):
            rows = o[a:z]
            g = sel[li]
            res = self._finish(qints[g], qarr[g], RB[rows], RD[rows], r_complete, k)
            if res is not None:
                out[g] = res
                done.append(li)
        return np.array(done, dtype=np.int64)

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


# --------------------------------------------------------------------------- FAISS backend
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
        q = as_numpy(query_bits01, "query_bits01")
        if q.ndim == 1:
            q = q[None, :]
        q = check_bits01(q, "query_bits01")
        if q.shape[1] != self.n_bits:
            raise ValueError(f"query codes have {q.shape[1]} bits but the index has {self.n_bits}")
        return np.ascontiguousarray(np.packbits(q, axis=1))

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
