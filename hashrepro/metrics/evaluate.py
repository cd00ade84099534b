"""One call that every chapter notebook makes: :func:`evaluate`."""
from __future__ import annotations

import numpy as np

from ..codes import MultiCodes
from ._core import EMPTY, TIES, DistanceSource, Relevance, check_choice, check_topk, iter_chunks, mean_with_policy
from .ranking import _pr_topk_accumulate, _pr_topk_result, _RadiusAcc

__all__ = ["evaluate"]

DEFAULT_KS = (1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def _topk_grid(ndb, n=40):
    g = np.unique(np.round(np.geomspace(1, max(ndb, 1), n)).astype(np.int64))
    return g[(g >= 1) & (g <= ndb)]


def evaluate(
    query_codes=None,
    db_codes=None,
    query_labels=None,
    db_labels=None,
    topk=None,
    radius=2,
    ks=DEFAULT_KS,
    ties="index",
    empty="zero",
    dist=None,
    ranking=None,
    chunk_size=None,
) -> dict:
    """Evaluate retrieval in one pass over the queries (Hamming ranking by default).

    Parameters
    ----------
    query_codes : (nq, n_bits) {0,1};  db_codes : (ndb, n_bits) {0,1} or MultiCodes
    query_labels, db_labels : int (n,) (same label = relevant) or multi-hot (n, C) (share >= 1)
    topk : None or int, the cut of mAP@k (see :func:`mean_average_precision`)
    radius : Hamming radius of the scalar "precision_radius{r}" / "recall_radius{r}"
    ks : cut-offs of the precision@k curve (values above ndb are dropped). Precision@k
        averages over *all* queries (a query with no relevant item has P@k = 0, a
        well-defined value), exactly as :func:`precision_at_k`; the "pr_topk" curve
        (precision and recall of the top k on a geometric grid of k) follows ``empty``.
    ties : "index" | "expected";  empty : "zero" | "skip" (both as in mean_average_precision)
    dist : (nq, ndb), optional: rank by these distances instead of codes.
    ranking : recorded protocol; "binary" with codes. With ``dist`` it defaults to
        "continuous"; pass ranking="binary" when ``dist`` is a Hamming matrix (then the
        radius metrics are computed too).

    Returns
    -------
    dict::

        {"map": float, "map_tie_aware": float (only with ties="index" and integer
         distances: the same mAP with ties="expected"), "precision_radius2": float, "recall_radius2": float,
         "precision_at_1": float, "precision_at_5": float, ... (one per k in ks),
         "n_empty_queries": float,
         "curves": {"pr_radius": {"radius", "precision", "recall", "n_returned", ...},
                    "precision_at_k": {"k": [...], "precision": [...]},
                    "pr_topk": {"k": [...], "precision": [...], "recall": [...]}},
         "protocol": {"topk", "ties", "empty", "ranking", "radius", "n_query",
                      "n_database", "n_bits", "multi_code"}}

    Every top-level entry except "curves" and "protocol" is a float, ready for a run
    record's "metrics". Radius metrics are omitted under continuous ranking. Curves
    are lists (JSON-ready).
    """
    check_choice(ties, "ties", TIES)
    check_choice(empty, "empty", EMPTY)
    if query_labels is None or db_labels is None:
        raise ValueError("query_labels and db_labels are required")
    src = DistanceSource(query_codes, db_codes, dist)
    if dist is None:
        if ranking not in (None, "binary"):
            raise ValueError("ranking must be 'binary' when codes are given")
        ranking = "binary"
    else:
        ranking = "continuous" if ranking is None else check_choice(ranking, "ranking", ("binary", "continuous"))
        if ranking == "binary" and not src.integer:
            raise ValueError("ranking='binary' needs an integer (Hamming) distance matrix")
    relsrc = Relevance(query_labels, db_labels)
    ndb, nq = src.ndb, src.nq
    k = check_topk(topk, ndb)
    ks_arr = np.array([x for x in ks if 1 <= int(x) <= ndb], dtype=np.int64)
    grid = _topk_grid(ndb)
    all_ks = np.union1d(ks_arr, grid)
    use_radius = ranking == "binary"
    n_bits = src.n_bits if src.n_bits is not None else (src.n_bins - 1 if src.integer else None)
    if use_radius:
        radius = int(radius)
        if not 0 <= radius <= n_bits:
            raise ValueError(f"radius must be in 0..{n_bits}, got {radius}")
        racc = _RadiusAcc(n_bits, empty)
    aps = np.empty(nq)
    emp = np.empty(nq, bool)
    # With ties broken by database index, also the tie-aware value (expected AP over a
    # uniformly random order inside each tie group): the two differ when the database
    # order is correlated with the labels (e.g. a class-sorted archive) and groups are big.
    tie_aware = ties == "index" and src.integer
    aps_e = np.empty(nq) if tie_aware else None
    emp_e = np.empty(nq, bool) if tie_aware else None

    def gen():
        for s, e, ch in iter_chunks(src, relsrc, chunk_size):
            aps[s:e], emp[s:e] = ch.average_precision(k, ties)
            if tie_aware:
                aps_e[s:e], emp_e[s:e] = ch.average_precision(k, "expected")
            if use_radius:
                racc.update(ch)
            yield s, e, ch

    p_all = np.zeros(all_ks.size)
    P, Rc, used = _pr_topk_accumulate(src, relsrc, all_ks, ties, empty, chunk_size, chunks=gen(), p_all=p_all)
    prk = _pr_topk_result(all_ks, P, Rc, used)
    p_at_k = p_all / max(nq, 1)  # precision@k over all queries, as precision_at_k()
    sel = np.searchsorted(all_ks, ks_arr)
    out = {"map": mean_with_policy(aps, emp, empty)}
    if tie_aware:
        out["map_tie_aware"] = mean_with_policy(aps_e, emp_e, empty)
    curves = {}
    if use_radius:
        pr = racc.result()
        out[f"precision_radius{radius}"] = float(pr["precision"][radius])
        out[f"recall_radius{radius}"] = float(pr["recall"][radius])
        curves["pr_radius"] = {c: v.tolist() for c, v in pr.items()}
    for kk, j in zip(ks_arr, sel):
        out[f"precision_at_{int(kk)}"] = float(p_at_k[j])
    out["n_empty_queries"] = float(emp.sum())
    curves["precision_at_k"] = {"k": ks_arr.astype(float).tolist(), "precision": p_at_k[sel].tolist()}
    curves["pr_topk"] = {c: v.tolist() for c, v in prk.items()}
    out["curves"] = curves
    out["protocol"] = {
        "topk": topk,
        "ties": ties,
        "empty": empty,
        "ranking": ranking,
        "radius": radius if use_radius else None,
        "n_query": int(nq),
        "n_database": int(ndb),
        "n_bits": None if n_bits is None else int(n_bits),
        "multi_code": isinstance(db_codes, MultiCodes),
    }
    return out
