"""Hamming-ranking metrics: mAP@k, precision@k, PR curves, P/R within a Hamming radius."""
from __future__ import annotations

import numpy as np

from ._core import (
    EMPTY,
    TIES,
    DistanceSource,
    MatrixRelevance,
    Relevance,
    check_choice,
    check_dist,
    check_ks,
    check_rel,
    check_topk,
    integer_dist,
    iter_chunks,
    mean_with_policy,
)

__all__ = [
    "average_precision",
    "mean_average_precision",
    "precision_at_k",
    "pr_curve_topk",
    "precision_recall_within_radius",
    "pr_curve_radius",
]

_AP_DOC = """
    Definitions (DPSH / HashNet ``CalcTopMap`` convention)
    -----------------------------------------------------
    Database items are ranked by ascending distance. With k' = min(topk, ndb)
    (k' = ndb when ``topk`` is None) and rel_i the relevance of rank i::

        AP@k = (1 / R_k) * sum_{i <= k', rel_i} P@i,   P@i = (1/i) sum_{j <= i} rel_j,
        R_k  = number of relevant items in the top k'.

    The normaliser is the number of relevant items *retrieved in the top k*, not
    the number in the database (for ``topk=None`` both are R).

    ties="index"
        Equal distances are ordered by database index (a stable sort): the
        deterministic order of ``np.argsort(kind="stable")``. Public code that uses
        an unstable ``np.argsort`` gives order-dependent numbers under ties.
    ties="expected"
        The exact expectation of AP@k over uniformly random orders inside every
        group of equal distance (McSherry & Najork 2008), in closed form from the
        per-distance counts (no sorting). With ``topk``, the group cut by the k-th
        rank puts X ~ Hypergeometric items in the top k; R_k = R_before + X is
        random and the expectation is taken of the ratio itself, order by order
        (orders with R_k = 0 count 0), by summing over X.

    empty (a query whose R_k = 0: no relevant item in the top k', or with
    ``topk=None`` none in the database)
        "zero": its AP is 0 and it counts in the mean (DPSH's ``CalcTopMap``);
        "skip": it is left out of the mean (HashNet's ``mean_average_precision``).
        Under ties="expected" a query is empty when R_k = 0 for *every* tie order
        (no relevant item at a distance <= that of rank k'); otherwise it is kept
        and its orders with R_k = 0 contribute 0 to its expectation.
"""


def average_precision(dist, rel, topk=None, ties="index", empty="zero", chunk_size=None) -> np.ndarray:
    """Per-query average precision at k.

    Parameters
    ----------
    dist : (nq, ndb) distances (Hamming counts, or any real distance; lower = closer)
    rel : (nq, ndb) bool relevance
    topk : None or int
    ties : "index" | "expected"
    empty : "zero" | "skip"
    chunk_size : queries per block (default: about 2M matrix elements)

    Returns
    -------
    ap : float64 (nq,); empty queries are 0 ("zero") or nan ("skip").
    """
    check_choice(ties, "ties", TIES)
    check_choice(empty, "empty", EMPTY)
    src = DistanceSource(dist=dist)
    relsrc = MatrixRelevance(check_rel(rel, (src.nq, src.ndb)))
    k = check_topk(topk, src.ndb)
    out = np.empty(src.nq)
    for s, e, ch in iter_chunks(src, relsrc, chunk_size):
        ap, emp = ch.average_precision(k, ties)
        out[s:e] = np.where(emp, 0.0 if empty == "zero" else np.nan, ap)
    return out


average_precision.__doc__ += _AP_DOC


def mean_average_precision(
    query_codes=None,
    db_codes=None,
    query_labels=None,
    db_labels=None,
    topk=None,
    ties="index",
    empty="zero",
    dist=None,
    chunk_size=None,
    return_per_query=False,
):
    """Mean average precision at k (mAP@k) from binary codes (Hamming ranking).

    Parameters
    ----------
    query_codes : (nq, n_bits) {0,1}
    db_codes : (ndb, n_bits) {0,1}, or a :class:`hashrepro.codes.MultiCodes`
        (an item's distance is the minimum over its codes, MCH eq. 5)
    query_labels, db_labels : int (n,) or multi-hot (n, C)
    topk : None (whole database) or int (e.g. 5000, 1000)
    ties : "index" | "expected";  empty : "zero" | "skip"
    dist : (nq, ndb), optional
        A distance matrix to rank by instead of codes (e.g. continuous
        distances; record ranking="continuous" then).
    return_per_query : also return the (nq,) per-query AP (nan for skipped).

    Returns
    -------
    float (or (float, ndarray) with ``return_per_query``)
    """
    check_choice(ties, "ties", TIES)
    check_choice(empty, "empty", EMPTY)
    if query_labels is None or db_labels is None:
        raise ValueError("query_labels and db_labels are required")
    src = DistanceSource(query_codes, db_codes, dist)
    relsrc = Relevance(query_labels, db_labels)
    k = check_topk(topk, src.ndb)
    aps = np.empty(src.nq)
    emp = np.empty(src.nq, dtype=bool)
    for s, e, ch in iter_chunks(src, relsrc, chunk_size):
        aps[s:e], emp[s:e] = ch.average_precision(k, ties)
    m = mean_with_policy(aps, emp, empty)
    if return_per_query:
        return m, np.where(emp, 0.0 if empty == "zero" else np.nan, aps)
    return m


mean_average_precision.__doc__ += _AP_DOC


def _relevant_in_topk(ch, ks, ties):
    return ch.relevant_in_topk_index(ks) if ties == "index" else ch.relevant_in_topk_expected(ks)


def precision_at_k(dist, rel, ks=None, ties="index", chunk_size=None) -> np.ndarray:
    """Mean precision of the top k, for every k in ``ks``.

    P@k = (#relevant in the top k) / k, averaged over all queries (a query with no
    relevant item counts 0). ``ties="index"``: ties ordered by database index;
    ``ties="expected"``: expectation over random orders inside tie groups (the cut
    group contributes m * r / n relevant items in expectation).

    dist, rel : (nq, ndb);  ks : ints in 1..ndb (default 1..ndb: the full curve)
    Returns float64 (len(ks),).
    """
    check_choice(ties, "ties", TIES)
    src = DistanceSource(dist=dist)
    relsrc = MatrixRelevance(check_rel(rel, (src.nq, src.ndb)))
    ks = check_ks(ks, src.ndb)
    acc = np.zeros(ks.size)
    for s, e, ch in iter_chunks(src, relsrc, chunk_size):
        acc += _relevant_in_topk(ch, ks, ties).sum(axis=0)
    return acc / max(src.nq, 1) / ks


def pr_curve_topk(dist, rel, ks=None, ties="index", empty="zero", chunk_size=None) -> dict:
    """Precision and recall of the top k for every k in ``ks`` (PR curve by top-k).

    precision = #relevant in top k / k;  recall = #relevant in top k / R.
    Queries with R = 0: recall 0 and counted ("zero") or left out of both means ("skip").

    Returns dict of float64 arrays: "k", "precision", "recall".
    """
    check_choice(ties, "ties", TIES)
    check_choice(empty, "empty", EMPTY)
    src = DistanceSource(dist=dist)
    relsrc = MatrixRelevance(check_rel(rel, (src.nq, src.ndb)))
    ks = check_ks(ks, src.ndb)
    P, Rc, nq_used = _pr_topk_accumulate(src, relsrc, ks, ties, empty, chunk_size)
    return _pr_topk_result(ks, P, Rc, nq_used)


def _pr_topk_accumulate(src, relsrc, ks, ties, empty, chunk_size, chunks=None, p_all=None):
    """Sums over queries of P@k and R@k (queries kept by the empty policy);
    ``p_all`` (optional array) receives the P@k sum over all queries."""
    P = np.zeros(ks.size)
    Rc = np.zeros(ks.size)
    used = 0
    it = chunks if chunks is not None else iter_chunks(src, relsrc, chunk_size)
    for s, e, ch in it:
        cnt = _relevant_in_topk(ch, ks, ties)
        R = ch.n_relevant.astype(np.float64)
        keep = np.ones(ch.n, bool) if empty == "zero" else R > 0
        P += (cnt[keep] / ks).sum(axis=0)
        if p_all is not None:
            p_all += (cnt / ks).sum(axis=0)
        Rc += (cnt[keep] / np.maximum(R[keep], 1)[:, None]).sum(axis=0)
        used += int(keep.sum())
    return P, Rc, used


def _pr_topk_result(ks, P, Rc, used):
    d = max(used, 1)
    nanv = np.nan if used == 0 else 1.0
    return {"k": ks.astype(np.float64), "precision": P / d * nanv, "recall": Rc / d * nanv}


def precision_recall_within_radius(
    dist=None,
    rel=None,
    n_bits=None,
    empty="zero",
    chunk_size=None,
    *,
    query_codes=None,
    db_codes=None,
    query_labels=None,
    db_labels=None,
) -> dict:
    """Precision and recall of Hamming-ball retrieval for every radius r = 0..n_bits.

    A query returns the items with distance <= r (hash lookup within radius r).
    Per query: precision = relevant returned / returned (**0 when nothing is
    returned**: the common convention for "precision within Hamming radius 2"
    in CNNH/DNNH-era evaluation code; the papers do not spell it out, and
    "precision_nonempty" below gives the other reading);
    recall = relevant returned / relevant in the database. A query with no
    relevant item has recall 0 and counts ("zero") or is left out of every mean
    ("skip"). Independent of tie order (a radius takes whole tie groups).

    Parameters
    ----------
    dist : (nq, ndb) integer Hamming distances (or min distances over multi-codes)
    rel : (nq, ndb) bool
    n_bits : code length (default: max distance)
    query_codes, db_codes, query_labels, db_labels : keyword-only alternative to
        (dist, rel): Hamming distances and relevance are then computed in query
        chunks, never as full matrices.

    Returns
    -------
    dict of float64 arrays over r = 0..n_bits:
      "radius", "precision", "recall", "n_returned" (mean items returned),
      "precision_nonempty" (mean precision over queries that return >= 1 item; nan if none),
      "frac_returning" (fraction of queries returning >= 1 item)
    """
    check_choice(empty, "empty", EMPTY)
    if dist is None:  # from codes, chunk by chunk (no full matrices)
        if rel is not None or query_labels is None or db_labels is None:
            raise ValueError("give (dist, rel), or query_codes, db_codes, query_labels and db_labels")
        src = DistanceSource(query_codes, db_codes)
        acc = _RadiusAcc(src.n_bits, empty)
        for s, e, ch in iter_chunks(src, Relevance(query_labels, db_labels), chunk_size):
            acc.update(ch)
        return acc.result()
    d = check_dist(dist)
    di, nb = integer_dist(d)
    if di is None:
        raise ValueError("precision_recall_within_radius needs non-negative integer (Hamming) distances")
    if n_bits is None:
        n_bits = nb - 1
    if n_bits < nb - 1:
        raise ValueError(f"n_bits={n_bits} is smaller than the largest distance {nb - 1}")
    src = DistanceSource(dist=di)
    src.n_bins = int(n_bits) + 1
    relsrc = MatrixRelevance(check_rel(rel, di.shape))
    acc = _RadiusAcc(int(n_bits), empty)
    for s, e, ch in iter_chunks(src, relsrc, chunk_size):
        acc.update(ch)
    return acc.result()


pr_curve_radius = precision_recall_within_radius


class _RadiusAcc:
    def __init__(self, n_bits, empty):
        self.nb = n_bits + 1
        self.empty = empty
        z = lambda: np.zeros(self.nb)  # noqa: E731
        self.P, self.Pne, self.R, self.ret, self.nret = z(), z(), z(), z(), z()
        self.used = 0

    def update(self, ch):
        N, Rr = ch.hist
        nb = self.nb
        if N.shape[1] < nb:  # pad (distances below n_bits only)
            pad = np.zeros((ch.n, nb - N.shape[1]))
            N, Rr = np.hstack([N, pad]), np.hstack([Rr, pad])
        cN = np.cumsum(N, axis=1)
        cR = np.cumsum(Rr, axis=1)
        Rtot = cR[:, -1]
        keep = np.ones(ch.n, bool) if self.empty == "zero" else Rtot > 0
        cN, cR, Rtot = cN[keep], cR[keep], Rtot[keep]
        prec = np.where(cN > 0, cR / np.maximum(cN, 1), 0.0)
        self.P += prec.sum(axis=0)
        self.Pne += np.where(cN > 0, prec, 0).sum(axis=0)
        self.nret += (cN > 0).sum(axis=0)
        self.R += (cR / np.maximum(Rtot, 1)[:, None]).sum(axis=0)
        self.ret += cN.sum(axis=0)
        self.used += int(keep.sum())

    def result(self):
        u = self.used
        nanv = np.nan if u == 0 else 1.0
        d = max(u, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            pne = np.where(self.nret > 0, self.Pne / np.maximum(self.nret, 1), np.nan)
        return {
            "radius": np.arange(self.nb, dtype=np.float64),
            "precision": self.P / d * nanv,
            "recall": self.R / d * nanv,
            "n_returned": self.ret / d * nanv,
            "precision_nonempty": pne,
            "frac_returning": self.nret / d * nanv,
        }
