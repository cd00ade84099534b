"""Split protocols: which images train the hasher, which are queries, which form the database.

``split(dataset, protocol, seed=0, database_includes_train=False, **kw)`` returns a
:class:`Split` of sorted int64 index arrays. Query, val and database are always disjoint; train
is disjoint from all of them, except that ``database_includes_train=True`` puts the training
images into the database too (several papers do this; the run record says which).

Protocols
---------
``"per_class"`` (DNNH §4.1, DRSCH): per class ``n_query_per_class`` (100) queries and
    ``n_train_per_class`` (500) training images (optional ``n_val_per_class``); the rest is the
    database. DNNH's database is "the rest" *including* the training images: pass
    ``database_includes_train=True`` for it.
``"official"`` (DDH): query = the official test part, database = the official train part,
    train = ``n_train`` images sampled from the database (default: all of it, which needs
    ``database_includes_train=True``, DDH's unsupervised protocol). With list-file sets that ship
    ``database.txt``/``test.txt``/``train.txt``, those lists are used as they are.
``"multilabel_balanced"`` (MCH §5.1): class-balanced sampling for multi-label sets. For each
    class in turn, ``n_query_per_class`` (100) images holding that class are drawn from those not
    yet drawn (NUS-WIDE: 21 × 100 = 2,100 queries); the rest is the database, from which
    ``n_train_per_class`` (500) per class are drawn the same way (10,500). With ``n_query`` /
    ``n_train`` instead, queries and training images are drawn uniformly (MS-COCO and
    MIRFLICKR: 5,000 / 10,000, the default for ``coco`` and ``mirflickr25k``). MCH samples the
    training set *from* the database: pass ``database_includes_train=True`` for the paper.
``"flowers"`` (DDH §3.1): per class 40 train, 20 val, 20 query (test), seeded; the database is
    the training part (nothing else is left), recorded as ``database_includes_train=True``.
    ``official=True, trial=1..3`` uses ``datasplits.mat`` when the loader found it.
``"cuhk03"``: classic re-id split ``trial`` (0..19) of 100 test identities; query = their
    images from the first camera of the pair, database (gallery) = those from the second
    (``single_shot=True``: one random gallery image per identity); train = all other identities.

Small datasets: when a class (or the set) is too small for the requested counts, all counts are
scaled by one factor so that at most half of the smallest class is taken, a warning says so,
and ``protocol["scaled"]`` / ``protocol["requested"]`` record it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .base import Dataset

__all__ = ["Split", "split", "PROTOCOLS", "check_split"]

PROTOCOLS = ("per_class", "official", "multilabel_balanced", "flowers", "cuhk03")
_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Split:
    """Index arrays (sorted int64) into a Dataset, and the protocol that made them.

    ``protocol`` holds at least ``split`` (the name), ``seed``, ``n_train``, ``n_query``,
    ``n_database``, ``n_val``, ``database_includes_train`` (as run records want them)."""

    train: np.ndarray
    query: np.ndarray
    database: np.ndarray
    val: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    protocol: dict = field(default_factory=dict)

    def sizes(self) -> dict:
        return {"train": len(self.train), "query": len(self.query),
                "database": len(self.database), "val": len(self.val)}

    def __repr__(self) -> str:
        s = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return f"Split({self.protocol.get('split')!r}, seed={self.protocol.get('seed')}, {s})"


def check_split(s: Split, n: int | None = None) -> None:
    """Raise AssertionError unless the parts are disjoint as promised (and inside ``range(n)``)."""
    parts = {"train": s.train, "query": s.query, "database": s.database, "val": s.val}
    for k, v in parts.items():
        if len(np.unique(v)) != len(v):
            raise AssertionError(f"{k} has repeated indices")
        if n is not None and len(v) and (v.min() < 0 or v.max() >= n):
            raise AssertionError(f"{k} has indices outside 0..{n - 1}")
    pairs = [("query", "database"), ("query", "train"), ("query", "val"), ("val", "train"),
             ("val", "database")]
    if not s.protocol.get("database_includes_train", False):
        pairs.append(("train", "database"))
    for a, b in pairs:
        if np.intersect1d(parts[a], parts[b]).size:
            raise AssertionError(f"{a} and {b} overlap")


def _warn(msg: str) -> None:
    """Warn, attributing the warning to the first caller outside this module."""
    import sys

    level, f = 2, sys._getframe(1)
    while f is not None and f.f_globals.get("__name__") == __name__:
        f, level = f.f_back, level + 1
    warnings.warn(msg, UserWarning, stacklevel=level)


def _sorted(a) -> np.ndarray:
    return np.sort(np.asarray(a, dtype=np.int64))


def _scale(requested: dict, smallest: int, what: str, frac: float = 0.5) -> tuple[dict, bool]:
    """Scale counts by one factor so that their sum is at most ``frac * smallest``."""
    need = sum(requested.values())
    budget = int(frac * smallest)
    if need <= budget or need == 0:
        return dict(requested), False
    s = budget / need
    got = {k: (max(1, int(v * s)) if v > 0 else 0) for k, v in requested.items()}
    while sum(got.values()) > max(budget, 1):  # the max(1, .) floors overshot a tiny budget
        k = max(got, key=lambda k: got[k])
        if got[k] <= 1:
            raise ValueError(f"{what}: {smallest} images are too few for one of each of "
                             f"{[k for k, v in requested.items() if v > 0]}")
        got[k] -= 1
    _warn(f"{what}: only {smallest} images available, too few for "
                  f"{', '.join(f'{k}={v}' for k, v in requested.items())}; scaled by {s:.3f} to "
                  f"{', '.join(f'{k}={v}' for k, v in got.items())}")
    return got, True


def _finish(train, query, database, val, proto: dict, n: int) -> Split:
    s = Split(_sorted(train), _sorted(query), _sorted(database), _sorted(val), proto)
    proto.update(n_train=len(s.train), n_query=len(s.query), n_database=len(s.database), n_val=len(s.val))
    check_split(s, n)
    return s


def _per_class(ds: Dataset, rng, proto, dbit, n_query_per_class=100, n_train_per_class=500,
               n_val_per_class=0, _name="per_class"):
    if ds.multilabel:
        raise ValueError(f"protocol {_name!r} needs single-label data; {ds.name} is multi-label: "
                         "use 'multilabel_balanced'")
    sizes = np.bincount(ds.labels, minlength=ds.n_classes)
    present = np.flatnonzero(sizes)
    req = {"n_query_per_class": int(n_query_per_class), "n_train_per_class": int(n_train_per_class),
           "n_val_per_class": int(n_val_per_class)}
    if any(v < 0 for v in req.values()):
        raise ValueError(f"counts must be >= 0, got {req}")
    frac = 1.0 if _name == "flowers" else 0.5
    got, scaled = _scale(req, int(sizes[present].min()), f"{_name} split of {ds.name} (smallest class)", frac)
    nq, nt, nv = got["n_query_per_class"], got["n_train_per_class"], got["n_val_per_class"]
    q, t, v, rest = [], [], [], []
    for c in present:
        perm = rng.permutation(np.flatnonzero(ds.labels == c))
        q.append(perm[:nq])
        t.append(perm[nq:nq + nt])
        v.append(perm[nq + nt:nq + nt + nv])
        rest.append(perm[nq + nt + nv:])
    q, t, v, rest = (np.concatenate(x) if x else _EMPTY for x in (q, t, v, rest))
    proto.update(got, scaled=scaled, requested=req)
    return t, q, v, rest


def _protocol_per_class(ds, rng, proto, dbit, **kw):
    t, q, v, rest = _per_class(ds, rng, proto, dbit, **kw)
    db = np.concatenate([rest, t]) if dbit else rest
    return t, q, db, v


def _protocol_flowers(ds, rng, proto, dbit, n_train_per_class=40, n_val_per_class=20,
                      n_query_per_class=20, official=False, trial=1):
    if official:
        sp = ds.meta.get("datasplits") or {}
        if f"trn{trial}" not in sp:
            raise ValueError("official=True needs the official datasplits.mat beside the flowers17 "
                             f"images (trials 1..3); found splits {sorted(sp)}")
        t, v, q = sp[f"trn{trial}"], sp.get(f"val{trial}", _EMPTY), sp.get(f"tst{trial}", _EMPTY)
        rest = np.setdiff1d(np.arange(len(ds)), np.concatenate([t, v, q]))
        proto.update(official=True, trial=trial)
    else:
        t, q, v, rest = _per_class(ds, rng, proto, dbit, n_query_per_class=n_query_per_class,
                                   n_train_per_class=n_train_per_class,
                                   n_val_per_class=n_val_per_class, _name="flowers")
    if dbit or len(rest) == 0:
        db = np.concatenate([rest, t])
        if not dbit:
            proto["database_includes_train"] = True
            proto["note"] = ("flowers: every image is train, val or query, so the database is the "
                             "training part (DDH's classification-style protocol)")
    else:
        db = rest
    return t, q, db, v


def _protocol_official(ds, rng, proto, dbit, n_train=None):
    off = ds.official_split
    if "query" in off and "database" in off:
        q, db = off["query"], off["database"]
    elif "test" in off and "train" in off:
        q, db = off["test"], off["train"]
    else:
        raise ValueError(f"{ds.name} has no official train/test (or database/query) partition "
                         f"(official_split keys: {sorted(off)}); use 'per_class' or "
                         "'multilabel_balanced'")
    v = off.get("val", _EMPTY)
    if "database" in off and "train" in off:
        pool = off["train"]
        proto["train_from"] = "official train list"
    else:
        pool = db
        proto["train_from"] = "sampled from the database"
    if n_train is None:
        t = pool
    else:
        if n_train > len(pool):
            raise ValueError(f"n_train={n_train} but only {len(pool)} images to sample from")
        t = rng.choice(pool, size=int(n_train), replace=False)
    q = np.setdiff1d(q, v)
    if dbit:
        db = np.setdiff1d(db, np.concatenate([q, v]))
    else:
        db = np.setdiff1d(db, np.concatenate([t, q, v]))
        t = np.setdiff1d(t, np.concatenate([q, v]))
        if len(db) == 0:
            raise ValueError("official protocol: training on the whole database leaves no database "
                             "when database_includes_train=False; pass database_includes_train=True "
                             "(DDH's unsupervised protocol) or n_train=<int>")
    proto["n_train_requested"] = n_train
    return t, q, db, v


def _balanced_draw(Y: np.ndarray, candidates: np.ndarray, per_class: int, rng, what: str):
    """Draw ``per_class`` not-yet-drawn images holding class c, for c = 0, 1, … in turn."""
    avail = np.zeros(len(Y), dtype=bool)
    avail[candidates] = True
    out = []
    short = []
    for c in range(Y.shape[1]):
        cand = np.flatnonzero(avail & (Y[:, c] > 0))
        take = rng.permutation(cand)[:per_class]
        if len(take) < per_class:
            short.append((c, len(take)))
        avail[take] = False
        out.append(take)
    if short:
        _warn(f"{what}: classes with fewer than {per_class} images left: "
                      f"{', '.join(f'{c} ({k})' for c, k in short[:10])}"
                      + (" ..." if len(short) > 10 else ""))
    return np.concatenate(out) if out else _EMPTY


def _protocol_multilabel(ds, rng, proto, dbit, n_query_per_class=None, n_train_per_class=None,
                         n_query=None, n_train=None):
    Y = ds.label_matrix()
    labeled = np.flatnonzero(Y.any(1))
    per = n_query_per_class is not None or n_train_per_class is not None
    tot = n_query is not None or n_train is not None
    if per and tot:
        raise ValueError("give either n_query_per_class/n_train_per_class (class-balanced) or "
                         "n_query/n_train (uniform), not both")
    if not per and not tot:
        if ds.name in ("coco", "mirflickr25k"):
            n_query, n_train, tot = 5000, 10000, True
        else:
            n_query_per_class, n_train_per_class, per = 100, 500, True
    C = Y.shape[1]
    if per:
        req = {"n_query_per_class": int(n_query_per_class or 0), "n_train_per_class": int(n_train_per_class or 0)}
        got, scaled = _scale({k: v * C for k, v in req.items()}, len(labeled),
                             f"multilabel_balanced split of {ds.name} ({C} classes)")
        got = {k: (max(1, v // C) if req[k] else 0) for k, v in got.items()} if scaled else req
        q = _balanced_draw(Y, labeled, got["n_query_per_class"], rng, "query draw")
        db = np.setdiff1d(labeled, q)
        t = _balanced_draw(Y, db, got["n_train_per_class"], rng, "train draw")
        proto.update(got, sampling="class-balanced", scaled=scaled, requested=req)
    else:
        req = {"n_query": int(n_query or 0), "n_train": int(n_train or 0)}
        got, scaled = _scale(req, len(labeled), f"multilabel_balanced split of {ds.name}")
        perm = rng.permutation(labeled)
        q = perm[:got["n_query"]]
        db = perm[got["n_query"]:]
        t = rng.choice(db, size=got["n_train"], replace=False)
        proto.update({"n_query_total": got["n_query"], "n_train_total": got["n_train"]},
                     sampling="uniform", scaled=scaled, requested=req)
    if not dbit:
        db = np.setdiff1d(db, t)
    return t, q, db, _EMPTY


def _protocol_cuhk03(ds, rng, proto, dbit, trial=0, single_shot=False, n_val_identities=0):
    ts = ds.meta.get("testsets")
    cam = ds.meta.get("camera")
    if not ts or cam is None:
        raise ValueError(f"protocol 'cuhk03' needs meta['testsets'] and meta['camera'] (the cuhk03 "
                         f"loader provides them); {ds.name} has none")
    if not 0 <= trial < len(ts):
        raise ValueError(f"trial must be in 0..{len(ts) - 1}, got {trial}")
    test_ids = np.asarray(ts[trial])
    is_test = np.isin(ds.labels, test_ids)
    q = np.flatnonzero(is_test & (cam == 0))
    g = np.flatnonzero(is_test & (cam == 1))
    if single_shot:
        g = np.asarray([rng.choice(g[ds.labels[g] == i]) for i in np.unique(ds.labels[g])], dtype=np.int64)
    train_ids = np.setdiff1d(np.unique(ds.labels[~is_test]), test_ids)
    val_ids = rng.choice(train_ids, size=int(n_val_identities), replace=False) if n_val_identities else _EMPTY
    v = np.flatnonzero(np.isin(ds.labels, val_ids))
    t = np.flatnonzero(~is_test & ~np.isin(ds.labels, val_ids))
    db = np.concatenate([g, t]) if dbit else g
    proto.update(trial=trial, single_shot=single_shot, n_test_identities=len(test_ids),
                 n_val_identities=int(n_val_identities), query_camera=0, gallery_camera=1)
    return t, q, db, v


_IMPL = {"per_class": _protocol_per_class, "official": _protocol_official,
         "multilabel_balanced": _protocol_multilabel, "flowers": _protocol_flowers,
         "cuhk03": _protocol_cuhk03}


def split(dataset: Dataset, protocol: str, seed: int = 0, database_includes_train: bool = False,
          **kw) -> Split:
    """Split ``dataset`` into train / query / database (/ val) index sets.

    Parameters
    ----------
    dataset : Dataset
    protocol : str
        One of :data:`PROTOCOLS` (see the module docstring for each, with its paper).
    seed : int
        Seeds ``numpy.random.default_rng``: same dataset, protocol, seed and options, same split.
    database_includes_train : bool
        Put the training images into the database as well.
    **kw
        Protocol options (``n_query_per_class``, ``n_train_per_class``, ``n_val_per_class``,
        ``n_query``, ``n_train``, ``official``, ``trial``, ``single_shot``, ...).

    Returns
    -------
    Split
        ``train``, ``query``, ``database``, ``val``: sorted int64 index arrays; ``protocol``:
        a dict for the run record.
    """
    if protocol not in _IMPL:
        raise ValueError(f"unknown protocol {protocol!r}; valid protocols are: {', '.join(PROTOCOLS)}")
    rng = np.random.default_rng(seed)
    proto = {"split": protocol, "dataset": dataset.name, "seed": seed,
             "database_includes_train": bool(database_includes_train)}
    try:
        t, q, db, v = _IMPL[protocol](dataset, rng, proto, bool(database_includes_train), **kw)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise ValueError(f"protocol {protocol!r}: {e}") from None
        raise
    return _finish(t, q, db, v, proto, len(dataset))
