"""DRSCH's evaluation (Zhang et al., TIP 2015): BS-DRSCH's truncation to the bits with the largest
|w_k|, the three rankings of a run (binary Hamming, weighted Hamming, the released code's continuous
distance), the bit-scalable curve with its random-subset control, the Fig. 6 top-10 retrievals and
CUHK03's CMC. The recipe is :mod:`hashrepro.methods.drsch` (which re-exports these names)."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["kept_bits", "weighted_hamming", "continuous_distance", "top_retrievals", "evaluate_codes",
           "bit_scalable_curve", "evaluate_reid", "DEFAULT_KS", "RANKING_DOC"]


def kept_bits(weights: np.ndarray, n_keep: int) -> np.ndarray:
    """Indices (sorted) of the ``n_keep`` bits with the largest |w_k| (BS-DRSCH truncation)."""
    w = np.abs(np.asarray(weights, dtype=np.float64))
    if not 1 <= n_keep <= len(w):
        raise ValueError(f"n_keep must be in 1..{len(w)}, got {n_keep}")
    order = np.argsort(-w, kind="stable")
    return np.sort(order[:n_keep])


def weighted_hamming(q01: np.ndarray, db01: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_k w_k² [b_ik ≠ b_jk]: {0,1} codes (nq, b), (ndb, b), weights (b,) → float32 (nq, ndb)."""
    w2 = np.asarray(weights, dtype=np.float32) ** 2
    q = np.asarray(q01, dtype=np.float32)
    d = np.asarray(db01, dtype=np.float32)
    return ((q @ w2)[:, None] + (d @ w2)[None, :] - 2.0 * ((q * w2) @ d.T)).clip(min=0.0).astype(np.float32)


def continuous_distance(zq: np.ndarray, zdb: np.ndarray, slope: float = 5.0) -> np.ndarray:
    """Released test code's ranking: ‖tanh(a·z_q/2) − tanh(a·z_db/2)‖² with a = 5 → (nq, ndb)."""
    hq = np.tanh(slope * np.asarray(zq, np.float32) / 2)
    hd = np.tanh(slope * np.asarray(zdb, np.float32) / 2)
    return ((hq * hq).sum(1)[:, None] + (hd * hd).sum(1)[None, :] - 2.0 * hq @ hd.T).clip(min=0.0)


def top_retrievals(zq: np.ndarray, zdb: np.ndarray, yq: np.ndarray, q_ids: np.ndarray, db_ids: np.ndarray,
                   weights: np.ndarray, keep: int, n_per_class: int = 1, top: int = 10) -> dict:
    """Top-``top`` Hamming retrievals of a few queries (the data of the paper's Fig. 6).

    The first ``n_per_class`` queries of each class (in query order) are ranked by the Hamming
    distance of the ``keep`` bits with the largest |w_k| (ties by database index, as in mAP).

    zq (nq, q), zdb (ndb, q): pre-activations; yq (nq,) labels; q_ids (nq,), db_ids (ndb,): the
    dataset indices of queries and database items. Returns ``{"bits": keep, "query": [dataset
    index], "retrieved": [[dataset index] * top], "distance": [[int] * top]}``.
    """
    from ..codes import binarize, hamming

    yq = np.asarray(yq)
    if yq.ndim != 1:
        raise ValueError("top_retrievals needs single-label queries")
    pick = np.concatenate([np.flatnonzero(yq == c)[:n_per_class] for c in np.unique(yq)])
    sel = kept_bits(weights, keep)
    bq = binarize(np.ascontiguousarray(zq[pick][:, sel]), 0.0)
    bdb = binarize(np.ascontiguousarray(zdb[:, sel]), 0.0)
    D = hamming(bq, bdb)
    order = np.argsort(D, axis=1, kind="stable")[:, :top]
    return {"bits": int(keep), "query": [int(q_ids[i]) for i in pick],
            "retrieved": [[int(db_ids[j]) for j in row] for row in order],
            "distance": [[int(D[r, j]) for j in row] for r, row in enumerate(order)]}


def _metrics_module():
    from .. import metrics

    return metrics


#: precision@k cut-offs recorded (the paper's "precision vs number returned" axis goes to 1000).
DEFAULT_KS = (1, 10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)


def _dist(ranking: str, bq, bdb, zq, zdb, w) -> np.ndarray:
    from ..codes import hamming

    if ranking == "binary":
        return hamming(bq, bdb)
    if ranking == "weighted-hamming":
        return weighted_hamming(bq, bdb, w)
    if ranking == "continuous":
        return continuous_distance(zq, zdb)
    raise ValueError(f"ranking must be 'binary', 'weighted-hamming' or 'continuous', got {ranking!r}")


def evaluate_codes(zq: np.ndarray, zdb: np.ndarray, yq: np.ndarray, ydb: np.ndarray, weights: np.ndarray,
                   keep: int, topk: int | None = None, precision_k: int = 500,
                   rankings: tuple = ("binary", "weighted-hamming", "continuous"),
                   ks: tuple = DEFAULT_KS, query_chunk: int = 200) -> dict:
    """Retrieval metrics of the ``keep`` bits with the largest |w_k| under each ranking.

    Parameters
    ----------
    zq, zdb : float (nq, q), (ndb, q) pre-activations (codes are sign(z))
    yq, ydb : int (nq,), (ndb,) labels (or multi-hot)
    weights : (q,) bit weights w
    keep : number of bits kept (top |w|); ``q`` keeps all
    rankings : subset of "binary" (Hamming of sign codes; :func:`hashrepro.metrics.evaluate`,
        radius metrics included), "weighted-hamming" (Σ w_k² [b_ik ≠ b_jk]) and "continuous"
        (released test code: ‖tanh(5z_q/2) − tanh(5z_db/2)‖²); the last two are evaluated in
        query chunks (``query_chunk`` × ndb float32 distances at a time).

    Returns
    -------
    {ranking: {"map", "precision_at_<k>" for k in ks, ("precision_radius2", "recall_radius2":
    binary only), "curves": {"precision_at_k", ("pr_radius": binary only)}}}
    """
    from ..codes import binarize

    metrics = _metrics_module()
    sel = kept_bits(weights, keep)
    bq = binarize(np.ascontiguousarray(zq[:, sel]), 0.0)
    bdb = binarize(np.ascontiguousarray(zdb[:, sel]), 0.0)
    w = np.asarray(weights)[sel]
    n_db = len(ydb)
    ks = tuple(sorted({int(k) for k in (*ks, precision_k) if 1 <= int(k) <= n_db})) or (n_db,)
    out = {}
    for ranking in rankings:
        if ranking == "binary":
            ev = metrics.evaluate(bq, bdb, yq, ydb, topk=topk, radius=2, ks=ks)
            res = {k: float(v) for k, v in ev.items() if k not in ("curves", "protocol")}
            res["curves"] = {"precision_at_k": ev["curves"]["precision_at_k"], "pr_radius": ev["curves"]["pr_radius"]}
            out[ranking] = res
            continue
        nq = len(yq)
        ap = np.empty(nq)
        pk = np.zeros(len(ks))
        for s in range(0, nq, query_chunk):
            e = min(nq, s + query_chunk)
            dist = _dist(ranking, bq[s:e], bdb, zq[s:e][:, sel], zdb[:, sel], w)
            rel = metrics.relevance(yq[s:e], ydb)
            ap[s:e] = metrics.average_precision(dist, rel, topk=topk)
            pk += np.asarray(metrics.precision_at_k(dist, rel, ks), dtype=np.float64) * (e - s)
        pk /= max(nq, 1)
        res = {"map": float(np.mean(ap)) if nq else float("nan")}
        res.update({f"precision_at_{k}": float(v) for k, v in zip(ks, pk)})
        res["curves"] = {"precision_at_k": {"k": [float(k) for k in ks], "precision": [float(v) for v in pk]}}
        out[ranking] = res
    return out


def bit_scalable_curve(zq: np.ndarray, zdb: np.ndarray, yq: np.ndarray, ydb: np.ndarray, weights: np.ndarray,
                       keep_list, topk: int | None = None, precision_k: int = 500, n_random: int = 5,
                       seed: int = 0) -> dict:
    """BS-DRSCH's bit-scalable curve with its random-subset control (Hamming ranking only).

    For each n in ``keep_list``: the metrics of the n bits with the largest |w_k| (the
    truncation, :func:`evaluate_codes`) and, as the control of the claim that the weights pick the
    bits worth keeping, the metrics of n bits drawn at random (:func:`hashrepro.codes.random_bit_subsets`,
    ``n_random`` draws seeded by ``seed``; mean and standard deviation over the draws). At n = q
    (all bits) both are the same code and the control equals the truncation.

    Parameters
    ----------
    zq, zdb : float (nq, q), (ndb, q) pre-activations (codes are sign(z))
    yq, ydb : labels (nq,), (ndb,)
    weights : (q,) bit weights w
    keep_list : bit counts n (each in 1..q)

    Returns
    -------
    dict of lists aligned with ``"bits"``: ``"map"``, ``"precision_at_<k>"``, ``"precision_radius2"``
    (top-|w| bits) and ``"precision_at_<k>_random"`` (= :data:`hashrepro.claims.RANDOM_SUBSET_KEY`
    for k = 500), ``"precision_at_<k>_random_std"``, ``"map_random"``; plus ``"random_draws"`` and
    ``"random_seed"``.
    """
    from ..codes import binarize, random_bit_subsets

    metrics = _metrics_module()
    q = int(np.asarray(zq).shape[1])
    pk = f"precision_at_{precision_k}"
    out: dict[str, Any] = {"bits": [], "map": [], pk: [], "precision_radius2": [], f"{pk}_random": [],
                           f"{pk}_random_std": [], "map_random": []}
    for n in keep_list:
        n = int(n)
        e = evaluate_codes(zq, zdb, yq, ydb, weights, n, topk, precision_k, rankings=("binary",),
                           ks=(precision_k,))["binary"]
        out["bits"].append(n)
        for key in ("map", pk, "precision_radius2"):
            out[key].append(float(e[key]))
        if n >= q:  # every bit: the random subset is the same code
            prec, maps = [float(e[pk])], [float(e["map"])]
        else:
            prec, maps = [], []
            for sel in random_bit_subsets(q, n, n_random, seed):
                bq = binarize(np.ascontiguousarray(zq[:, sel]), 0.0)
                bdb = binarize(np.ascontiguousarray(zdb[:, sel]), 0.0)
                ev = metrics.evaluate(bq, bdb, yq, ydb, topk=topk, radius=2, ks=(precision_k,))
                prec.append(float(ev[pk]))
                maps.append(float(ev["map"]))
        out[f"{pk}_random"].append(float(np.mean(prec)))
        out[f"{pk}_random_std"].append(float(np.std(prec)))
        out["map_random"].append(float(np.mean(maps)))
    out["random_draws"] = int(n_random)
    out["random_seed"] = int(seed)
    return out


def evaluate_reid(zq: np.ndarray, zg: np.ndarray, qid: np.ndarray, gid: np.ndarray, weights: np.ndarray,
                  keep: int, ranks: tuple = (1, 5, 10, 20), seed: int = 0,
                  rankings: tuple = ("binary", "weighted-hamming")) -> dict:
    """CMC (rank 1/5/10/20) of re-identification by hashing codes (paper Table 1, CUHK03).

    Query images from one camera, gallery images from the other; single-gallery-shot CMC
    averaged over 10 random gallery draws (:func:`hashrepro.metrics.cmc`). Returns
    {ranking: {"cmc_rank1", ..., "curves": {"cmc": {"rank", "cmc"}}}}.
    """
    from ..codes import binarize

    metrics = _metrics_module()
    sel = kept_bits(weights, keep)
    bq = binarize(np.ascontiguousarray(zq[:, sel]), 0.0)
    bg = binarize(np.ascontiguousarray(zg[:, sel]), 0.0)
    w = np.asarray(weights)[sel]
    out = {}
    for ranking in rankings:
        dist = _dist(ranking, bq, bg, zq[:, sel], zg[:, sel], w)
        c = metrics.cmc(dist, qid, gid, ranks=ranks, single_gallery_shot=True, seed=seed)
        res = {f"cmc_rank{r}": float(c[f"rank{r}"]) for r in ranks}
        res["curves"] = {"cmc": {"rank": [float(x) for x in c["rank"][:50]], "cmc": [float(x) for x in c["cmc"][:50]]}}
        out[ranking] = res
    return out


_SUFFIX = {"binary": "", "weighted-hamming": "_whamming", "continuous": "_continuous"}

RANKING_DOC = {
    "": "binary: Hamming distance of sign(z) on the kept bits",
    "_whamming": "weighted-hamming: sum_k w_k^2 [b_ik != b_jk] on the kept bits",
    "_continuous": "continuous: released test code, squared Euclidean distance of tanh(5 z / 2) on the kept bits "
                   "(slope reset to 5, before the weight layer)",
}
