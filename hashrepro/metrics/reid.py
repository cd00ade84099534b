"""Cumulative matching characteristic (CMC) for person re-identification (e.g. CUHK03, as in DRSCH)."""
from __future__ import annotations

import numpy as np

from ..codes import as_numpy
from ._core import TIES, check_choice, check_dist

__all__ = ["cmc"]


def cmc(
    dist,
    query_ids,
    gallery_ids,
    ranks=(1, 5, 10, 20),
    single_gallery_shot=True,
    n_repeats=10,
    seed=0,
    ties="index",
    query_cams=None,
    gallery_cams=None,
) -> dict:
    """CMC curve: fraction of queries whose true match is within the top r.

    single_gallery_shot=True (the CUHK03 protocol, Li et al. CVPR 2014)
        Each repeat draws one gallery image per identity at random (``seed``);
        a query's rank is the rank of its identity's drawn image among the drawn
        images. Results are averaged over ``n_repeats`` draws.
    single_gallery_shot=False
        All gallery images; the rank is that of the first correct match. With
        ``query_cams``/``gallery_cams``, gallery images of the query's identity
        taken by the query's camera are ignored (Market-1501 style).

    Queries whose identity has no gallery image are left out (reported as
    "n_valid_queries").

    ties="index": equal distances ordered by gallery index;
    ties="expected": the probability over random orders inside tie groups, in
    closed form (single shot: P(rank <= r) = clip((r - a) / (t + 1), 0, 1) with a
    strictly closer and t tied others; multi shot: the rank of the first correct
    item in a tie group of c correct and w wrong items).

    Parameters
    ----------
    dist : (nq, ng) distances; query_ids (nq,), gallery_ids (ng,) identities
    ranks : ranks to report (1-based)

    Returns
    -------
    dict: "rank" (1..max rank, float64), "cmc" (float64 curve),
    "rank1", "rank5", ... (floats for ``ranks``), "n_valid_queries".
    """
    check_choice(ties, "ties", TIES)
    D = check_dist(dist).astype(np.float64)
    nq, ng = D.shape
    qid = as_numpy(query_ids, "query_ids").ravel()
    gid = as_numpy(gallery_ids, "gallery_ids").ravel()
    if qid.shape[0] != nq or gid.shape[0] != ng:
        raise ValueError(f"query_ids must have {nq} entries and gallery_ids {ng} (matching dist {D.shape})")
    ranks = np.atleast_1d(as_numpy(ranks, "ranks")).astype(np.int64)
    if ranks.size == 0 or ranks.min() < 1:
        raise ValueError("ranks must be positive ints")
    cams = query_cams is not None or gallery_cams is not None
    if cams and (query_cams is None or gallery_cams is None):
        raise ValueError("give both query_cams and gallery_cams, or neither")
    if cams and single_gallery_shot:
        raise ValueError("camera filtering is only supported with single_gallery_shot=False")
    ids, ginv = np.unique(gid, return_inverse=True)
    max_rank = int(len(ids) if single_gallery_shot else ng)
    curve_len = max(max_rank, int(ranks.max()))
    r_axis = np.arange(1, curve_len + 1)
    valid = np.isin(qid, ids)
    nvalid = int(valid.sum())
    acc = np.zeros(curve_len)
    if nvalid == 0:
        raise ValueError("no query identity appears in the gallery")
    if single_gallery_shot:
        rng = np.random.default_rng(seed)
        n_rep = int(n_repeats)
        if n_rep < 1:
            raise ValueError("n_repeats must be >= 1")
        order = np.argsort(ginv, kind="stable")
        counts = np.bincount(ginv, minlength=len(ids))
        starts = np.cumsum(counts) - counts
        qpos = np.searchsorted(ids, qid)
        for _ in range(n_rep):
            pick = order[starts + (rng.random(len(ids)) * counts).astype(np.int64)]  # one per identity, sorted by id
            for i in np.flatnonzero(valid):
                d = D[i, pick]
                t = qpos[i]
                dt = d[t]
                a = np.sum(d < dt)
                ties_ = np.sum(d == dt) - 1
                if ties == "index":
                    before = np.sum((d == dt) & (pick < pick[t]))
                    acc += r_axis >= a + before + 1
                else:
                    acc += np.clip((r_axis - a) / (ties_ + 1.0), 0.0, 1.0)
        acc /= n_rep
    else:
        qc = as_numpy(query_cams, "query_cams").ravel() if cams else None
        gc = as_numpy(gallery_cams, "gallery_cams").ravel() if cams else None
        for i in np.flatnonzero(valid):
            d = D[i]
            ok = np.ones(ng, bool)
            if cams:
                ok &= ~((gid == qid[i]) & (gc == qc[i]))
            corr = ok & (gid == qid[i])
            if not corr.any():
                nvalid -= 1
                continue
            wrong = ok & ~corr
            dstar = d[corr].min()
            a = np.sum(wrong & (d < dstar))
            grp_c = np.sum(corr & (d == dstar))
            grp_w = np.sum(wrong & (d == dstar))
            if ties == "index":
                first = np.flatnonzero(corr & (d == dstar))[0]
                b = np.sum(wrong & (d == dstar) & (np.arange(ng) < first))
                acc += r_axis >= a + b + 1
            else:
                # P(#wrong before the first correct in the group >= j) = prod_{u<j} (w-u)/(c+w-u)
                j = np.arange(grp_w + 1)
                surv = np.concatenate([[1.0], np.cumprod((grp_w - j[:-1]) / (grp_c + grp_w - j[:-1]))]) if grp_w else np.ones(1)
                # P(rank <= r) = P(W <= r - a - 1) = 1 - P(W >= r - a)
                need = r_axis - a  # W must be < need
                p = np.where(need <= 0, 0.0, 1.0)
                inside = (need >= 1) & (need <= grp_w)
                p[inside] = 1.0 - surv[need[inside]]
                acc += p
        if nvalid == 0:
            raise ValueError("no query has a valid gallery match after camera filtering")
    curve = acc / nvalid
    out = {"rank": r_axis.astype(np.float64), "cmc": curve, "n_valid_queries": float(nvalid)}
    for r in ranks:
        out[f"rank{int(r)}"] = float(curve[min(int(r), curve_len) - 1])
    return out
