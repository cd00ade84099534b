"""Binary codes: binarise, pack, Hamming distances, bit truncation, multi-code sets.

Representations used throughout :mod:`hashrepro`:

* ``bits01``: ``uint8`` array of shape ``(n, n_bits)`` with values in {0, 1}.
* ``pm1``: ``int8`` array of shape ``(n, n_bits)`` with values in {-1, +1}
  (the papers' notation, e.g. MCH eq. 1: ``d_ij = (Q - b_i^T b_j) / 2``).
* ``packed``: ``uint8`` array of shape ``(n, ceil(n_bits / 8))``, big-endian
  inside each byte, exactly as :func:`numpy.packbits` produces (bit 0 of the code
  is the most significant bit of byte 0; the last byte is zero-padded).

Hamming distances are computed on packed codes with a popcount
(:func:`numpy.bitwise_count` when NumPy >= 2, a 256-entry lookup table
otherwise), on 64-bit words when possible, in query chunks so that memory stays
bounded. Every function accepts NumPy arrays or torch tensors (moved to the CPU).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "as_numpy",
    "check_bits01",
    "binarize",
    "to_pm1",
    "from_pm1",
    "pack",
    "unpack",
    "hamming",
    "hamming_packed",
    "top_bits_by_weight",
    "truncate",
    "random_bit_subsets",
    "MultiCodes",
]

_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")
_POPCOUNT_LUT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

#: Bytes of temporary memory one chunk of the Hamming kernel may use (per buffer).
_CHUNK_BYTES = 32 * 1024 * 1024


# --------------------------------------------------------------------------- helpers
def as_numpy(x, name: str = "x") -> np.ndarray:
    """Return ``x`` as a NumPy array (torch tensors are detached and moved to the CPU)."""
    if isinstance(x, np.ndarray):
        return x
    try:  # torch without importing it when absent
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}") from exc


def _check_2d(x: np.ndarray, name: str, what: str) -> None:
    if x.ndim != 2:
        hint = " (for a single code use x[None, :])" if x.ndim == 1 else ""
        raise ValueError(f"{name}: expected a 2-D array of shape {what}, got shape {x.shape}{hint}")


def check_bits01(bits01, name: str = "bits01") -> np.ndarray:
    """Validate and return ``bits01`` as a C-contiguous ``uint8`` (n, n_bits) array in {0, 1}.

    Accepts bool, integer or float arrays whose values are exactly 0 or 1.
    """
    x = as_numpy(bits01, name)
    _check_2d(x, name, "(n, n_bits)")
    if x.dtype == np.bool_:
        return np.ascontiguousarray(x, dtype=np.uint8)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{name}: expected {{0,1}} codes of a bool/int/float dtype, got dtype {x.dtype}")
    if x.size:
        if x.dtype == np.uint8:
            bad = x.max() > 1
        else:
            bad = bool(np.any((x != 0) & (x != 1)))
        if bad:
            lo, hi = x.min(), x.max()
            hint = " ({-1,+1} codes: use from_pm1; real-valued outputs: use binarize)"
            raise ValueError(f"{name}: expected values in {{0, 1}}, found values in [{lo}, {hi}]{hint}")
    return np.ascontiguousarray(x, dtype=np.uint8)


def _check_packed(packed, name: str) -> np.ndarray:
    x = as_numpy(packed, name)
    _check_2d(x, name, "(n, n_bytes)")
    if x.dtype != np.uint8:
        raise ValueError(f"{name}: packed codes must have dtype uint8 (from hashrepro.codes.pack), got {x.dtype}")
    return np.ascontiguousarray(x)


# --------------------------------------------------------------------------- conversions
def binarize(x, threshold: float = 0.0) -> np.ndarray:
    """Binarise real-valued outputs: 1 where ``x > threshold``, else 0.

    Use ``threshold=0`` for tanh / linear outputs (the sign function, with
    sign(0) mapped to 0 i.e. -1), ``threshold=0.5`` for sigmoid outputs.

    Parameters
    ----------
    x : array or tensor, shape (n, n_bits)
    threshold : float

    Returns
    -------
    bits01 : uint8 array, shape (n, n_bits)
    """
    a = as_numpy(x, "x")
    _check_2d(a, "x", "(n, n_bits)")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise ValueError(f"x: expected a numeric array, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and a.size and np.isnan(a).any():
        raise ValueError("x: contains NaN; cannot binarise (check the model outputs)")
    return (a > threshold).astype(np.uint8)


def to_pm1(bits01) -> np.ndarray:
    """{0,1} codes (n, b) -> int8 {-1,+1} codes (n, b) (0 -> -1, 1 -> +1)."""
    b = check_bits01(bits01)
    return (b.astype(np.int8) * 2 - 1).astype(np.int8)


def from_pm1(pm1) -> np.ndarray:
    """{-1,+1} codes (n, b) -> uint8 {0,1} codes (n, b) (+1 -> 1, -1 -> 0)."""
    x = as_numpy(pm1, "pm1")
    _check_2d(x, "pm1", "(n, n_bits)")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"pm1: expected a numeric array, got dtype {x.dtype}")
    if x.size and np.any((x != 1) & (x != -1)):
        raise ValueError(
            f"pm1: expected values in {{-1, +1}}, found values in [{x.min()}, {x.max()}] "
            "(use binarize for real-valued outputs)"
        )
    return (x > 0).astype(np.uint8)


def pack(bits01) -> np.ndarray:
    """Pack {0,1} codes (n, n_bits) into uint8 bytes (n, ceil(n_bits/8)), like numpy.packbits."""
    b = check_bits01(bits01)
    return np.packbits(b, axis=1)


def unpack(packed, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: packed uint8 (n, n_bytes) -> {0,1} uint8 (n, n_bits)."""
    p = _check_packed(packed, "packed")
    n_bits = int(n_bits)
    if n_bits < 0 or (n_bits + 7) // 8 != p.shape[1]:
        raise ValueError(
            f"n_bits={n_bits} does not match packed width {p.shape[1]} bytes "
            f"(valid: {8 * p.shape[1] - 7}..{8 * p.shape[1]})"
        )
    return np.unpackbits(p, axis=1, count=n_bits)


# --------------------------------------------------------------------------- Hamming
def _to_words(p: np.ndarray) -> np.ndarray:
    """Packed bytes (n, nb) -> uint64 words (n, ceil(nb/8)), zero-padded (popcount-neutral)."""
    n, nb = p.shape
    nw = (nb + 7) // 8
    if nb != nw * 8:
        q = np.zeros((n, nw * 8), dtype=np.uint8)
        q[:, :nb] = p
        p = q
    return np.ascontiguousarray(p).view(np.uint64).reshape(n, nw)


def _popcount(x: np.ndarray, out=None) -> np.ndarray:
    if _HAS_BITWISE_COUNT:
        return np.bitwise_count(x, out=out) if out is not None else np.bitwise_count(x)
    # Fallback: byte lookup table.
    c = _POPCOUNT_LUT[x.view(np.uint8)].reshape(x.shape + (x.itemsize,)).sum(axis=-1, dtype=np.uint8)
    if out is not None:
        out[...] = c
        return out
    return c


def hamming_packed(q_packed, db_packed, chunk_size: int = 1024) -> np.ndarray:
    """Hamming distance matrix between packed codes.

    Parameters
    ----------
    q_packed : uint8 (nq, n_bytes)
    db_packed : uint8 (ndb, n_bytes)
    chunk_size : int
        Maximum number of queries per chunk; the chunk is further reduced so that
        temporaries stay around 32 MiB.

    Returns
    -------
    dist : uint16 (nq, ndb), values in 0..n_bits
    """
    q = _check_packed(q_packed, "q_packed")
    d = _check_packed(db_packed, "db_packed")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"query codes have {q.shape[1]} bytes but database codes have {d.shape[1]}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    nq, ndb = q.shape[0], d.shape[0]
    out = np.zeros((nq, ndb), dtype=np.uint16)
    if nq == 0 or ndb == 0 or q.shape[1] == 0:
        return out
    qw, dw = _to_words(q), _to_words(d)
    nw = qw.shape[1]
    rows = max(1, min(int(chunk_size), _CHUNK_BYTES // max(1, 8 * ndb)))
    xbuf = np.empty((rows, ndb), dtype=np.uint64)
    cbuf = np.empty((rows, ndb), dtype=np.uint8)
    for s in range(0, nq, rows):
        e = min(nq, s + rows)
        x, c = xbuf[: e - s], cbuf[: e - s]
        o = out[s:e]
        for w in range(nw):
            np.bitwise_xor(qw[s:e, w, None], dw[None, :, w], out=x)
            _popcount(x, out=c)
            if nw == 1:
                o[...] = c
            else:
                np.add(o, c, out=o, casting="unsafe")
    return out


class _HammingRows:
    """Internal: precomputed packed database for repeated chunked Hamming queries.

    ``rows(s, e)`` returns the (e - s, ndb) distances of queries s..e-1 in a
    reused buffer (uint8 when n_bits <= 255, else uint16): copy it to keep it.
    """

    def __init__(self, q_packed: np.ndarray, db_packed: np.ndarray, n_bits: int, max_rows: int):
        self.qw, self.dw = _to_words(q_packed), _to_words(db_packed)
        self.n_bits = int(n_bits)
        self.dtype = np.uint8 if n_bits <= 255 else np.uint16
        ndb = self.dw.shape[0]
        self.max_rows = max(1, int(max_rows))
        self._x = np.empty((self.max_rows, ndb), dtype=np.uint64)
        self._c = np.empty((self.max_rows, ndb), dtype=np.uint8)
        self._o = np.empty((self.max_rows, ndb), dtype=self.dtype)

    def rows(self, s: int, e: int) -> np.ndarray:
        n = e - s
        if n > self.max_rows:
            raise ValueError("chunk larger than the buffers")
        x, c, o = self._x[:n], self._c[:n], self._o[:n]
        nw = self.qw.shape[1]
        if nw == 0:
            o[...] = 0
            return o
        for w in range(nw):
            np.bitwise_xor(self.qw[s:e, w, None], self.dw[None, :, w], out=x)
            if w == 0:
                _popcount(x, out=c if self.dtype != np.uint8 else o)
                if self.dtype != np.uint8:
                    o[...] = c
            else:
                _popcount(x, out=c)
                np.add(o, c, out=o, casting="unsafe")
        return o


def hamming(query_bits01, db_bits01, chunk_size: int = 1024) -> np.ndarray:
    """Hamming distance matrix between {0,1} codes, via packing and popcount.

    Parameters
    ----------
    query_bits01 : (nq, n_bits) {0,1}
    db_bits01 : (ndb, n_bits) {0,1}
    chunk_size : int
        Maximum number of queries processed at once.

    Returns
    -------
    dist : uint16 (nq, ndb); ``dist[i, j]`` = number of differing bits
        (= (Q - b_i^T b_j) / 2 on {-1,+1} codes, MCH eq. 1).
    """
    q = check_bits01(query_bits01, "query_bits01")
    d = check_bits01(db_bits01, "db_bits01")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"query codes have {q.shape[1]} bits but database codes have {d.shape[1]} bits")
    return hamming_packed(np.packbits(q, axis=1), np.packbits(d, axis=1), chunk_size=chunk_size)


# --------------------------------------------------------------------------- bit-scalable
def top_bits_by_weight(weights, n_keep: int) -> np.ndarray:
    """Indices of the ``n_keep`` bits with the largest ``|weight|``, sorted ascending.

    Used for bit-scalable codes (DRSCH/BS-DRSCH: keep the most important bits,
    truncate the weakest). Ties in ``|w|`` are broken by the lower bit index.

    Parameters
    ----------
    weights : (n_bits,) real
    n_keep : int in 0..n_bits

    Returns
    -------
    idx : int64 (n_keep,), ascending bit indices
    """
    w = as_numpy(weights, "weights")
    if w.ndim != 1:
        raise ValueError(f"weights: expected a 1-D array (n_bits,), got shape {w.shape}")
    n_keep = int(n_keep)
    if not 0 <= n_keep <= w.shape[0]:
        raise ValueError(f"n_keep must be in 0..{w.shape[0]} (the number of bits), got {n_keep}")
    a = np.abs(w.astype(np.float64))
    if np.isnan(a).any():
        raise ValueError("weights: contains NaN")
    order = np.argsort(-a, kind="stable")
    return np.sort(order[:n_keep]).astype(np.int64)


def truncate(bits01, weights, n_keep: int) -> np.ndarray:
    """Keep the ``n_keep`` most important bits: ``bits01[:, top_bits_by_weight(weights, n_keep)]``.

    bits01 : (n, n_bits) {0,1};  weights : (n_bits,)  ->  (n, n_keep) uint8
    """
    b = check_bits01(bits01)
    w = as_numpy(weights, "weights")
    if w.ndim != 1 or w.shape[0] != b.shape[1]:
        raise ValueError(f"weights must have shape ({b.shape[1]},) to match the codes, got {w.shape}")
    return np.ascontiguousarray(b[:, top_bits_by_weight(w, n_keep)])


def random_bit_subsets(n_bits: int, n_keep: int, n_draws: int = 5, seed: int = 0) -> np.ndarray:
    """``n_draws`` subsets of ``n_keep`` distinct bits drawn uniformly at random from ``n_bits``.

    The control of bit-weight truncation (:func:`top_bits_by_weight`): if the learned weights pick
    the bits worth keeping, the top-|w| bits must beat as many bits chosen at random.
    Reproducible: the draws depend only on ``(n_bits, n_keep, n_draws, seed)``.

    Returns
    -------
    idx : int64 (n_draws, n_keep); each row ascending, without repeats
    """
    for name, v in (("n_bits", n_bits), ("n_keep", n_keep), ("n_draws", n_draws), ("seed", seed)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise ValueError(f"{name} must be an int, got {v!r}")
    if n_bits < 1 or not 0 <= n_keep <= n_bits:
        raise ValueError(f"need n_bits >= 1 and n_keep in 0..n_bits; got n_bits={n_bits}, n_keep={n_keep}")
    if n_draws < 1 or seed < 0:
        raise ValueError(f"n_draws must be >= 1 and seed >= 0; got n_draws={n_draws}, seed={seed}")
    rng = np.random.default_rng([int(seed), int(n_bits), int(n_keep)])
    out = np.empty((int(n_draws), int(n_keep)), dtype=np.int64)
    for d in range(int(n_draws)):
        out[d] = np.sort(rng.choice(int(n_bits), size=int(n_keep), replace=False))
    return out


# --------------------------------------------------------------------------- multi-code
class MultiCodes:
    """Several binary codes per database item (MCH, §4.2).

    Parameters
    ----------
    codes01 : (m, n_bits) {0,1}
        All codes, in any order.
    owners : (m,) int
        ``owners[j]`` is the item id (0..n_items-1) that code ``j`` belongs to.
    n_items : int, optional
        Number of items (default ``owners.max() + 1``). Every item must own at
        least one code.

    Attributes
    ----------
    codes : uint8 (m, n_bits); owners : int64 (m,); n_items : int; n_bits : int;
    n_codes : int (m); codes_per_item : int64 (n_items,)

    The distance from a query to an item is the minimum Hamming distance over
    the item's codes (MCH eq. 5): the bucket holding its closest code is visited first.
    """

    def __init__(self, codes01, owners, n_items: int | None = None):
        self.codes = check_bits01(codes01, "codes01")
        o = as_numpy(owners, "owners")
        if o.ndim != 1 or o.shape[0] != self.codes.shape[0]:
            raise ValueError(f"owners must have shape ({self.codes.shape[0]},) (one item id per code), got {o.shape}")
        if o.size and not np.issubdtype(o.dtype, np.integer):
            raise ValueError(f"owners must be integer item ids, got dtype {o.dtype}")
        o = o.astype(np.int64)
        if o.size and o.min() < 0:
            raise ValueError(f"owners must be >= 0, got min {o.min()}")
        if n_items is None:
            n_items = int(o.max()) + 1 if o.size else 0
        n_items = int(n_items)
        if o.size and o.max() >= n_items:
            raise ValueError(f"owners has id {o.max()} but n_items={n_items}")
        counts = np.bincount(o, minlength=n_items).astype(np.int64)
        if (counts == 0).any():
            missing = np.flatnonzero(counts == 0)
            raise ValueError(
                f"{missing.size} item(s) own no code (e.g. ids {missing[:5].tolist()}); every item needs >= 1 code"
            )
        self.owners = o
        self.n_items = n_items
        self.n_bits = self.codes.shape[1]
        self.n_codes = self.codes.shape[0]
        self.codes_per_item = counts
        # Codes grouped by owner, for reduceat.
        self._order = np.argsort(o, kind="stable")
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self._packed = np.packbits(self.codes[self._order], axis=1)

    @classmethod
    def from_list(cls, code_sets) -> "MultiCodes":
        """Build from a list of (t_i, n_bits) arrays, one per item (item id = list position)."""
        code_sets = [check_bits01(c, f"code_sets[{i}]") for i, c in enumerate(code_sets)]
        if not code_sets:
            raise ValueError("code_sets is empty")
        owners = np.concatenate([np.full(c.shape[0], i, dtype=np.int64) for i, c in enumerate(code_sets)])
        return cls(np.concatenate(code_sets, axis=0), owners, n_items=len(code_sets))

    @classmethod
    def single(cls, codes01) -> "MultiCodes":
        """One code per item (item i owns code i): the ordinary single-code database."""
        c = check_bits01(codes01, "codes01")
        return cls(c, np.arange(c.shape[0]), n_items=c.shape[0])

    def __len__(self) -> int:
        return self.n_items

    def __repr__(self) -> str:
        return f"MultiCodes(n_items={self.n_items}, n_codes={self.n_codes}, n_bits={self.n_bits})"

    def min_hamming(self, query_bits01, chunk_size: int = 1024) -> np.ndarray:
        """Minimum Hamming distance from each query to each item's codes (MCH eq. 5).

        query_bits01 : (nq, n_bits) {0,1}  ->  uint16 (nq, n_items)
        """
        q = check_bits01(query_bits01, "query_bits01")
        if q.shape[1] != self.n_bits:
            raise ValueError(f"query codes have {q.shape[1]} bits but MultiCodes has {self.n_bits}")
        qp = np.packbits(q, axis=1)
        nq = q.shape[0]
        out = np.empty((nq, self.n_items), dtype=np.uint16)
        if self.n_items == 0:
            return out
        if self.n_codes == self.n_items:  # one code per item
            # Codes are grouped by owner, so column k is item k.
            return hamming_packed(qp, self._packed, chunk_size=chunk_size)
        rows = max(1, min(int(chunk_size), _CHUNK_BYTES // max(1, 2 * self.n_codes)))
        for s in range(0, nq, rows):
            e = min(nq, s + rows)
            d = hamming_packed(qp[s:e], self._packed, chunk_size=chunk_size)
            out[s:e] = np.minimum.reduceat(d, self._starts, axis=1)
        return out

    def item_codes(self, item: int) -> np.ndarray:
        """The (t_i, n_bits) codes of one item."""
        return self.codes[self.owners == int(item)]
