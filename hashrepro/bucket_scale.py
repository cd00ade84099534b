"""Bucket search at a million codes: a synthetic code database with the measured statistics of the
MCH runs on the ImageNet backbone, grown to 10^4-10^6 items (issue 16; ``benchmarks/mch_bucket_scale.py``).

Why synthetic. The MCH records (``results/mch/``) store metrics and curves, not the codes, and the
mosaic database has 1,800 items: a linear scan over a few thousand codes takes ~0.1 ms, so bucket
search cannot show its point there. We draw a larger database from a small generative model whose
parameters are fitted to statistics read from the committed records.

The generative model (:class:`ClassCodeModel`), for ``Q``-bit codes:

* ``C`` class prototypes ``c_1..c_C``, uniform random in {0,1}^Q (seeded);
* an item of class ``y`` (uniform over the classes) has the whole-image code
  ``b = c_y XOR e`` with ``e_j ~ Bernoulli(p)`` independent per bit; queries are drawn the same way
  (one code each, as MCH's queries);
* MCH-X's multi-code database stores, for each item, its whole code plus ``k_i ~ Binomial(5, rho)``
  crop codes (5 candidate crops as in MCH §4.3), each a fresh draw from the item's class at its own
  flip rate, ``c_y XOR f`` with ``f_j ~ Bernoulli(p_crop)`` (a crop shows one object: ``p_crop < p``
  makes crop codes more typical of the class than whole-image codes, ``p_crop > p`` less); equal
  codes of an item are merged, as in the recipe, and ``rho`` is set so that the mean number of codes
  per item after merging is the measured ANHC ``a`` (eq. 8). X's database is the whole codes alone.

Relevance: same class. Two items of one class differ in each bit with probability
``q = 2 p (1 - p)``; items of two classes are uniformly random against each other.

Matched statistics (:func:`measured_stats`, :func:`fit_model`; means over the seeds of the base
model's records at one code length):

1. ``Q``;
2. distinct buckets per code of X's database at the records' size (``n_buckets / n_codes`` for
   1,800 items);
3. the fraction of the database within Hamming radius 2 of a query (``n_returned`` at radius 2 of
   the records' ``pr_radius`` curve, divided by the database size): the density that decides
   how many candidates a radius-2 bucket search returns;
4. ANHC (codes per item) of MCH-X;
5. distinct buckets per code of MCH-X's database at the records' size.

``(C, p)`` are fitted to 2 and 3, ``(p_crop, rho)`` to 5 and 4 (by simulation at the records'
size). Below ANHC 1.05 (no crop kept in practice, e.g. MMHH at 16 bits) the model has no crops. The records' mean Hamming distance from a query to its *relevant* items is **not**
matched: on the mosaic, relevance is "shares at least one of up to four tile labels", half of the
database is relevant to every query, and that distance is barely below the distance to any item
(13.8 against 15.0 bits for MMHH at 32 bits); a prototype model with that intra-class distance puts
no two codes in one bucket (probability ~1e-12 per pair), while the records' databases share buckets
(1,586 buckets for 1,800 codes). The synthetic classes are therefore the fine clusters that give
the measured bucket statistics, not CIFAR-10 labels, and their recall is not comparable to the
records' recall.

Search (:func:`measure`): for each radius ``r``, (a) bucket search = :meth:`BucketIndex.range_search`
(``method="enumerate"``: the hash-table look-ups of every code within radius ``r``, as MCH §2.1;
and the library default ``"auto"``), (b) linear scan = :meth:`MultiCodes.min_hamming` (packed
popcount distances to every code, minimum over an item's codes, MCH eq. 5) and a threshold.
Both must return the same candidate sets (checked for every query).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .codes import MultiCodes
from .index import BucketIndex, buckets_within

__all__ = ["CodeStats", "ClassCodeModel", "measured_stats", "fit_model", "sample_stats", "measure",
           "brute_force_range", "N_CROPS"]

#: Candidate crops per item in MCH's out-of-sample extension (4 corners and the centre, §4.3).
N_CROPS = 5
_REF_ITEMS = 1800


@dataclass
class CodeStats:
    """Statistics of one base model's codes at one length, from the committed records."""

    bits: int
    n_items: int                 # database items of the records (1,800 on the CIFAR-10 mosaic)
    buckets_per_code_x: float    # X: n_buckets / n_codes
    ball2_fraction: float        # X: mean items within radius 2 of a query / n_items
    anhc: float                  # MCH-X: codes per item (eq. 8)
    buckets_per_code_mch: float  # MCH-X: n_buckets / n_codes
    ball0_fraction: float = float("nan")  # X, radius 0 and 1 (reported, not matched)
    ball1_fraction: float = float("nan")
    base: str = ""
    seeds: tuple = ()


def _record_paths(root: Path, base: str, bits: int, seed: int, dataset: str, backbone: str):
    bb = backbone.replace("_", "-")
    x = root / f"{base}-{bb}_{dataset}_{bits}b_seed{seed}_default.json"
    m = root / f"mch_{dataset}_{bits}b_seed{seed}_default_backbone-{backbone}_base-{base}.json"
    return x, m


def measured_stats(root, base: str = "mmhh", bits: int = 32, seeds=(0, 1, 2), dataset: str = "mosaic-cifar10",
                   backbone: str = "efficientnet_lite0") -> CodeStats:
    """:class:`CodeStats` of base model ``base`` at ``bits``: means over ``seeds`` of its committed
    single-code (X) and MCH-X records under ``root`` (``results/mch``)."""
    root = Path(root)
    rows = []
    for s in seeds:
        px, pm = _record_paths(root, base, bits, s, dataset, backbone)
        if not px.exists() or not pm.exists():
            raise FileNotFoundError(f"missing record {px if not px.exists() else pm}; valid bases have both "
                                    f"'<base>-{backbone.replace('_', '-')}_...' and 'mch_..._base-<base>' records")
        x, m = json.loads(px.read_text()), json.loads(pm.read_text())
        n = int(x["protocol"]["n_database"])
        nr = x["curves"]["pr_radius"]["n_returned"]
        mx, mm = x["metrics"], m["metrics"]
        rows.append((n, mx["n_buckets"] / mx["n_codes"], nr[2] / n, mm["anhc"], mm["n_buckets"] / mm["n_codes"],
                     nr[0] / n, nr[1] / n))
    a = np.array(rows, dtype=float).mean(axis=0)
    return CodeStats(bits=int(bits), n_items=int(round(a[0])), buckets_per_code_x=float(a[1]),
                     ball2_fraction=float(a[2]), anhc=float(a[3]), buckets_per_code_mch=float(a[4]),
                     ball0_fraction=float(a[5]), ball1_fraction=float(a[6]), base=base, seeds=tuple(seeds))


@dataclass
class ClassCodeModel:
    """C class prototypes + independent bit flips (see the module docstring).

    n_bits : Q (1..64); n_classes : C; p : per-bit flip rate of an item's whole code from its
    prototype; keep_rate : rho, probability that each of the 5 crops is kept (before merging equal
    codes); p_crop : per-bit flip rate of a crop code from its item's class prototype; seed : seeds
    the prototypes.
    """

    n_bits: int
    n_classes: int
    p: float
    keep_rate: float = 0.0
    p_crop: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not 1 <= int(self.n_bits) <= 64:
            raise ValueError(f"n_bits must be in 1..64, got {self.n_bits}")
        if int(self.n_classes) < 1:
            raise ValueError(f"n_classes must be >= 1, got {self.n_classes}")
        if not 0.0 <= self.p <= 0.5 or not 0.0 <= self.p_crop <= 0.5:
            raise ValueError(f"flip rates must lie in [0, 0.5], got p={self.p}, p_crop={self.p_crop}")
        if not 0.0 <= self.keep_rate <= 1.0:
            raise ValueError(f"keep_rate must lie in [0, 1] (probability of keeping a crop), got {self.keep_rate}")
        rng = np.random.default_rng([self.seed, 7])
        self.prototypes = rng.integers(0, 2, size=(int(self.n_classes), int(self.n_bits)), dtype=np.uint8)

    def to_dict(self) -> dict:
        return asdict(self)

    def _flip(self, base01: np.ndarray, rate: float, rng) -> np.ndarray:
        out = np.empty_like(base01)
        step = 1 << 17
        for s in range(0, len(base01), step):
            b = base01[s:s + step]
            out[s:s + step] = b ^ (rng.random(b.shape, dtype=np.float32) < rate).astype(np.uint8)
        return out

    def sample(self, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """n codes (whole image / query): (uint8 (n, Q) {0,1}, labels int64 (n,))."""
        y = rng.integers(0, self.n_classes, size=int(n))
        return self._flip(self.prototypes[y], self.p, rng), y.astype(np.int64)

    def crops(self, whole01: np.ndarray, labels: np.ndarray, rng) -> MultiCodes:
        """Multi-code database of items with whole codes ``whole01`` (n, Q) and classes ``labels`` (n,):
        each item's whole code (first) and its ``k_i ~ Binomial(5, keep_rate)`` crop codes
        ``prototype[label] XOR Bernoulli(p_crop)``, equal codes of an item merged."""
        n = len(whole01)
        k = rng.binomial(N_CROPS, self.keep_rate, size=n)
        owners_c = np.repeat(np.arange(n, dtype=np.int64), k)
        crop = self._flip(self.prototypes[labels[owners_c]], self.p_crop, rng)
        codes = np.concatenate([whole01, crop])
        owners = np.concatenate([np.arange(n, dtype=np.int64), owners_c])
        key = _keys(codes)
        o = np.lexsort((np.arange(len(codes)), key, owners))
        dup = np.zeros(len(codes), bool)
        dup[o[1:]] = (owners[o][1:] == owners[o][:-1]) & (key[o][1:] == key[o][:-1])
        keep = np.flatnonzero(~dup)
        return MultiCodes(codes[keep], owners[keep], n)


def _keys(bits01: np.ndarray) -> np.ndarray:
    """(n, Q<=64) {0,1} -> uint64 big-endian integer keys."""
    q = bits01.shape[1]
    packed = np.packbits(bits01, axis=1)
    buf = np.zeros((len(bits01), 8), dtype=np.uint8)
    buf[:, : packed.shape[1]] = packed
    return buf.view(">u8").reshape(-1).astype(np.uint64) >> np.uint64(64 - q)


def _binom_cdf(n: int, q: float, r: int) -> float:
    return float(sum(math.comb(n, j) * q ** j * (1 - q) ** (n - j) for j in range(r + 1)))


def sample_stats(model: ClassCodeModel, n_items: int, seed: int = 0, n_queries: int = 500, reps: int = 3) -> dict:
    """The matched statistics of ``model`` measured on samples of ``n_items`` items (mean of ``reps``):
    ``buckets_per_code_x``, ``ball0/1/2_fraction``, ``anhc``, ``buckets_per_code_mch``."""
    out = {k: [] for k in ("buckets_per_code_x", "ball0_fraction", "ball1_fraction", "ball2_fraction",
                           "anhc", "buckets_per_code_mch")}
    for rep in range(reps):
        rng = np.random.default_rng([seed, rep, 11])
        db, y = model.sample(n_items, rng)
        q, _ = model.sample(n_queries, rng)
        out["buckets_per_code_x"].append(np.unique(_keys(db)).size / n_items)
        d = MultiCodes.single(db).min_hamming(q)
        for r in range(3):
            out[f"ball{r}_fraction"].append(float((d <= r).mean()))
        mc = model.crops(db, y, rng)
        out["anhc"].append(mc.n_codes / n_items)
        out["buckets_per_code_mch"].append(np.unique(_keys(mc.codes)).size / mc.n_codes)
    return {k: float(np.mean(v)) for k, v in out.items()}


def _classes_for(stats: CodeStats, p: float) -> int:
    """C that gives the measured radius-2 fraction at flip rate p (same-class pairs differ per bit
    with q = 2p(1-p); other-class pairs are uniform)."""
    Q = stats.bits
    same = _binom_cdf(Q, 2 * p * (1 - p), 2)
    diff = buckets_within(Q, 2) / 2.0 ** Q
    f = stats.ball2_fraction
    if f <= diff:
        raise ValueError(f"measured radius-2 fraction {f:.3g} is not above that of random codes ({diff:.3g})")
    return int(max(1, round((same - diff) / (f - diff))))


def _bisect(fun, target: float, lo: float, hi: float, iters: int = 14) -> float:
    """x in [lo, hi] with fun(x) ~ target, fun increasing (noisy: fixed seeds keep it monotone enough)."""
    f_lo, f_hi = fun(lo), fun(hi)
    if target <= f_lo:
        return lo
    if target >= f_hi:
        return hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if fun(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def fit_model(stats: CodeStats, seed: int = 0, reps: int = 3) -> ClassCodeModel:
    """Fit (C, p) to ``buckets_per_code_x`` and ``ball2_fraction`` and ``p_crop`` to
    ``buckets_per_code_mch`` at ``stats.n_items`` items, by simulation (see the module docstring).

    For each p, C follows from the radius-2 fraction in closed form; p is then bisected on the
    simulated distinct-buckets fraction (more flips, more distinct codes). ``p_crop`` likewise
    (MCH-X's codes are all distinct buckets when crops flip many bits)."""
    n = stats.n_items

    def distinct_x(p):
        m = ClassCodeModel(stats.bits, _classes_for(stats, p), p, seed=seed)
        vals = []
        for rep in range(reps):
            db, _ = m.sample(n, np.random.default_rng([seed, rep, 13]))
            vals.append(np.unique(_keys(db)).size / n)
        return float(np.mean(vals))

    p = _bisect(distinct_x, stats.buckets_per_code_x, 1e-3, 0.45)
    C = _classes_for(stats, p)
    if stats.anhc < 1.05:
        return ClassCodeModel(stats.bits, C, p, seed=seed)

    def sim_mch(pc, rho):
        m = ClassCodeModel(stats.bits, C, p, keep_rate=rho, p_crop=pc, seed=seed)
        dist, anhc = [], []
        for rep in range(reps):
            rng = np.random.default_rng([seed, rep, 17])
            db, y = m.sample(n, rng)
            mc = m.crops(db, y, rng)
            dist.append(np.unique(_keys(mc.codes)).size / mc.n_codes)
            anhc.append(mc.n_codes / n)
        return float(np.mean(dist)), float(np.mean(anhc))

    rho = min(1.0, (stats.anhc - 1.0) / N_CROPS)
    for _ in range(4):  # alternate: p_crop for the buckets, then rho for the ANHC lost to merging
        pc = _bisect(lambda x: sim_mch(x, rho)[0], stats.buckets_per_code_mch, 1e-3, 0.45)
        got = sim_mch(pc, rho)[1]
        rho = float(min(1.0, rho * (stats.anhc - 1.0) / max(got - 1.0, 1e-9)))
    return ClassCodeModel(stats.bits, C, p, keep_rate=rho, p_crop=pc, seed=seed)


def brute_force_range(db, queries01: np.ndarray, r: int) -> list[np.ndarray]:
    """Reference: sorted item ids within Hamming radius ``r`` (inclusive; an item's distance is the
    minimum over its codes) by a full distance matrix. db: (n, Q) {0,1} or MultiCodes."""
    mc = db if isinstance(db, MultiCodes) else MultiCodes.single(db)
    d = mc.min_hamming(queries01)
    return [np.flatnonzero(row <= r) for row in d]


def _best(fn, repeat: int):
    """(result of the last call, best wall seconds, best CPU seconds of this process) over ``repeat`` calls."""
    wall = cpu = float("inf")
    out = None
    for _ in range(max(1, repeat)):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return out, wall, cpu


def measure(db: MultiCodes, queries01: np.ndarray, q_labels: np.ndarray, db_labels: np.ndarray,
            radii=(0, 1, 2), engines=("enumerate", "auto"), repeat: int = 3) -> list[dict]:
    """Bucket search against a linear scan for every radius; one row per radius.

    db : MultiCodes (n_items items, n_codes codes); queries01 : (nq, Q) {0,1}; labels: int classes
    (relevant = same class). Timings are per query, best of ``repeat`` passes over all queries after
    a warm-up on 2 queries, in wall-clock (``*_ms``) and CPU time of this process (``*_cpu_ms``; the
    machine may be shared). ``scan_ms`` = the distance matrix (shared by the radii) + that radius'
    threshold. Raises AssertionError if a bucket engine's candidate set differs from the scan's.

    Row keys: radius, n_items, n_codes, n_buckets, n_queries, buckets_probed (hash look-ups of
    Algorithm 1: all codes within r), nonempty_buckets (mean), candidates (mean items returned),
    scan_ms, <engine>_ms and scan_over_<engine> (wall-clock ratio), the same in CPU time, recall,
    precision (queries with no candidate count 0), f1 (2 |rel ∩ cand| / (|cand| + |rel|), mean over
    queries), build_s (BucketIndex construction).
    """
    nq = len(queries01)
    t0 = time.perf_counter()
    idx = BucketIndex(db.codes, db.owners)
    build_s = time.perf_counter() - t0
    ukeys = np.unique(_keys(db.codes))
    qkeys = _keys(queries01)
    class_size = np.bincount(db_labels, minlength=int(max(q_labels.max(), db_labels.max())) + 1)
    db.min_hamming(queries01[:2])  # warm-up
    for eng in engines:
        idx.range_search(queries01[:2], max(radii), method=eng)  # warm-up (mask cache, MIH tables)
    dist, t_dist, c_dist = _best(lambda: db.min_hamming(queries01), repeat)
    rows = []
    for r in radii:
        ref, t_thr, c_thr = _best(lambda: [np.flatnonzero(row <= r) for row in dist], repeat)
        row = {"radius": int(r), "n_items": int(db.n_items), "n_codes": int(db.n_codes),
               "n_buckets": int(idx.n_buckets), "n_queries": int(nq),
               "buckets_probed": float(buckets_within(db.n_bits, r)),
               "nonempty_buckets": float(np.mean([np.count_nonzero(np.bitwise_count(ukeys ^ k) <= r) for k in qkeys])),
               "candidates": float(np.mean([len(c) for c in ref])),
               "scan_ms": 1e3 * (t_dist + t_thr) / nq, "scan_cpu_ms": 1e3 * (c_dist + c_thr) / nq,
               "build_s": build_s}
        for eng in engines:
            res, t, c = _best(lambda: idx.range_search(queries01, r, method=eng), repeat)
            row[f"{eng}_ms"], row[f"{eng}_cpu_ms"] = 1e3 * t / nq, 1e3 * c / nq
            row[f"scan_over_{eng}"] = row["scan_ms"] / row[f"{eng}_ms"]
            row[f"scan_over_{eng}_cpu"] = row["scan_cpu_ms"] / max(row[f"{eng}_cpu_ms"], 1e-9)
            for i in range(nq):
                got = np.sort(res[i])
                if not np.array_equal(got, ref[i]):
                    raise AssertionError(f"bucket search ({eng}) at radius {r} differs from the scan for query {i}: "
                                         f"{got.size} against {ref[i].size} items")
        rel = [int(np.count_nonzero(db_labels[c] == q_labels[i])) for i, c in enumerate(ref)]
        ncand = np.array([len(c) for c in ref], dtype=float)
        R = class_size[q_labels].astype(float)
        relv = np.array(rel, dtype=float)
        row["recall"] = float(np.mean(np.where(R > 0, relv / np.maximum(R, 1), 0.0)))
        row["precision"] = float(np.mean(np.where(ncand > 0, relv / np.maximum(ncand, 1), 0.0)))
        row["f1"] = float(np.mean(2 * relv / (ncand + R)))
        rows.append(row)
    return rows
