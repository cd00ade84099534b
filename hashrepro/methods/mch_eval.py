"""MCH's evaluation beyond the headline metrics (§5.2–5.4), one function per table or figure.

The retrieval and bucket metrics of one code set are :func:`hashrepro.metrics.evaluate_codes` and
:func:`hashrepro.metrics.search_cost`; this module assembles what :func:`hashrepro.methods.mch.run`
records next to them:

* :func:`oracle_metrics` -- MCH-X with the crops a perfect agent would keep (positive eq.-6 reward);
* :func:`anhc_grid` -- ANHC over σ × ξ on a sample of the database (Table 3);
* :func:`sensitivity` -- F1–bucket curves of MCH-X for several σ (ξ fixed) and ξ (σ fixed) (Fig. 9);
* :func:`visual_examples` -- a few queries, their top 10 under MCH bucket search (Fig. 8);
* :func:`baseline_codes` -- LSH / ITQ (§5.2.1) on the same backbone features (:mod:`hashrepro.baselines`);
* :func:`backbone_protocol` -- the protocol entries of the pretrained regime.

``crops_for(sigma)`` below is the run's memo of
:func:`hashrepro.methods.mch_agent.crop_keep_probabilities` over the whole database:
(z_crops (n_db, 5, Q), p_keep (n_db, 5)).
"""
from __future__ import annotations

import numpy as np

from ..codes import MultiCodes, hamming
from ..index import BucketIndex
from ..losses.mch_reward import oracle_rewards
from ..metrics import evaluate_codes, f1_bucket_curve
from .mch_agent import extend

__all__ = ["oracle_metrics", "anhc_grid", "sensitivity", "visual_examples", "baseline_codes", "backbone_protocol"]


def oracle_metrics(cfg, loss_fn, db01, zc, pk, z_tr, y_q, y_db, y_tr, sp, q01):
    """MCH-X whose database keeps exactly the crops of ratio σ with a positive eq.-6 reward.

    db01 : (n_db, Q) {0,1}; zc, pk : the σ crops' pre-activations (n_db, 5, Q) and the policy's keep
    probabilities (n_db, 5); z_tr : (N, Q) training pre-activations; q01 : (nq, Q) query codes.
    Returns (metrics: dict of floats, the oracle's F1–bucket curve).
    """
    r_or = oracle_rewards(loss_fn, db01, zc, z_tr, y_db, y_tr, sp.database, sp.train)
    c_or, o_or, _ = extend(db01, zc, (r_or > 0).astype(np.float32), 0.5)
    m_or, c_orc = evaluate_codes(q01, MultiCodes(c_or, o_or, len(db01)), y_q, y_db, cfg.ks)
    m_or["anhc"] = float(len(c_or) / len(db01))
    m_or["positive_reward_fraction"] = float((r_or > 0).mean())
    m_or["policy_reward_corr"] = float(np.corrcoef(r_or.ravel(), pk.ravel())[0, 1]) if pk.std() > 0 else float("nan")
    return m_or, c_orc["f1_bucket"]


def anhc_grid(cfg, sub, db01, crops: dict, crop_codes) -> dict:
    """Table 3: ANHC over σ ∈ ``sigma_grid`` × ξ ∈ ``xi_grid`` on the database positions ``sub``.

    crops : {σ: (z_crops, p_keep)} over the whole database, already computed (reused on ``sub``);
    crop_codes(sigma) -> (z_crops, p_keep) of the ``sub`` items for the other σ.
    Returns columns ``sigma``, ``xi``, ``anhc`` (distinct codes per item), ``anhc_raw`` (eq. 8).
    """
    g_rows = {"sigma": [], "xi": [], "anhc": [], "anhc_raw": []}
    for sigma in cfg.sigma_grid:
        if sigma in crops:
            zs, ps = crops[sigma][0][sub], crops[sigma][1][sub]
        else:
            zs, ps = crop_codes(sigma)
        for xi in cfg.xi_grid:
            c_, _, raw = extend(db01[sub], zs, ps, xi)
            g_rows["sigma"].append(float(sigma))
            g_rows["xi"].append(float(xi))
            g_rows["anhc"].append(float(len(c_) / len(sub)))
            g_rows["anhc_raw"].append(float(raw))
    return g_rows


def sensitivity(cfg, crops_for, q01, db01, y_q, y_db) -> dict:
    """Fig. 9: F1–bucket curves of MCH-X for σ ∈ ``sens_sigmas`` (ξ = ``cfg.xi``) and ξ ∈ ``sens_xis``
    (σ = ``cfg.sigma``). Returns long-format columns ``vary``, ``sigma``, ``xi``, ``K``, ``f1``,
    ``buckets``, ``anhc``."""
    sens = {"vary": [], "sigma": [], "xi": [], "K": [], "f1": [], "buckets": [], "anhc": []}

    def add_sens(vary, sigma, xi):
        z_, p_ = crops_for(sigma)
        c_, o_, _ = extend(db01, z_, p_, xi)
        kk = sorted({int(k) for k in cfg.ks if 1 <= int(k) <= len(db01)})
        cur = f1_bucket_curve(q01, MultiCodes(c_, o_, len(db01)), y_q, y_db, ks=kk)
        for j in range(len(kk)):
            sens["vary"].append(vary)
            sens["sigma"].append(float(sigma))
            sens["xi"].append(float(xi))
            sens["K"].append(float(cur["K"][j]))
            sens["f1"].append(float(cur["f1"][j]))
            sens["buckets"].append(float(cur["buckets"][j]))
            sens["anhc"].append(float(len(c_) / len(db01)))

    for sigma in cfg.sens_sigmas:
        add_sens("sigma", sigma, cfg.xi)
    for xi in cfg.sens_xis:
        add_sens("xi", cfg.sigma, xi)
    return sens


def visual_examples(cfg, rng: np.random.Generator, mc: MultiCodes, q01, db01, sp, Y) -> dict:
    """Fig. 8: ``n_visual`` queries drawn with ``rng``, their top 10 under MCH bucket search and the
    distances under X (one code) and MCH-X (min over the item's codes). Columns: ``query``, ``item``
    (dataset rows), ``rank``, ``relevant``, ``d_base``, ``d_mch``, ``n_codes``."""
    vis = {"query": [], "rank": [], "item": [], "relevant": [], "d_base": [], "d_mch": [], "n_codes": []}
    if not cfg.n_visual:
        return vis
    qsel = np.sort(rng.choice(len(sp.query), min(cfg.n_visual, len(sp.query)), replace=False))
    items, _ = BucketIndex(mc.codes, mc.owners).search(q01[qsel], min(10, len(db01)))
    d_mch_all = mc.min_hamming(q01[qsel])
    d_base_all = hamming(q01[qsel], db01)
    for r, (qi, its) in enumerate(zip(qsel, items)):
        for rank, it in enumerate(its):
            vis["query"].append(int(sp.query[qi]))
            vis["rank"].append(rank)
            vis["item"].append(int(sp.database[it]))
            vis["relevant"].append(bool((Y[sp.query[qi]] & Y[sp.database[it]]).any()))
            vis["d_base"].append(int(d_base_all[r, it]))
            vis["d_mch"].append(int(d_mch_all[r, it]))
            vis["n_codes"].append(int(mc.codes_per_item[it]))
    return vis


def baseline_codes(name: str, n_bits: int, f_train: np.ndarray, f_query: np.ndarray, f_db: np.ndarray, seed: int):
    """LSH or ITQ (the unsupervised shallow baselines of §5.2.1, :mod:`hashrepro.baselines`) fitted on
    ``f_train`` (N, D); returns the {0,1} codes (uint8) of ``f_query`` (nq, D) and ``f_db`` (n, D)."""
    if name == "lsh":
        from ..baselines.lsh import LSH as Est
    elif name == "itq":
        from ..baselines.itq import ITQ as Est
    else:
        raise ValueError(f"baseline must be 'lsh' or 'itq', got {name!r}")
    est = Est(n_bits=n_bits, random_state=seed).fit(f_train)
    return np.asarray(est.transform(f_query), dtype=np.uint8), np.asarray(est.transform(f_db), dtype=np.uint8)


def backbone_protocol(cfg, bank, n_images: int) -> dict:
    """Protocol entries of the pretrained regime: the frozen ImageNet backbone, its input, weights,
    feature width, the head on it, the agent's finite crop set and the crop resampling."""
    from ..models.backbones import backbone_spec, imagenet_weights_path, weights_sha256

    return {
        "backbone": f"{cfg.backbone} (ImageNet, frozen; pooled features of every crop cached)",
        "backbone_input_size": cfg.backbone_size,
        "backbone_normalisation": backbone_spec(cfg.backbone).normalisation,
        "backbone_weights_sha256": weights_sha256(imagenet_weights_path(cfg.backbone)),
        "backbone_feature_dim": int(bank.dim),
        "backbone_head": ("standardised features -> " + "".join(f"FC {h} + ReLU -> " for h in cfg.head_hidden)
                          + ("KSH kernel map (anchors) -> sign" if cfg.base == "ksh" else
                             f"linear {cfg.bits} -> sign")),
        "agent_crops": (f"one of the 5 boxes (4 corners, centre) at a ratio drawn from {list(cfg.agent_ratios())} "
                        "(a finite set, cached; the paper: ratio and position uniform)"),
        "crop_resampling": f"box resampled to {cfg.backbone_size} px (bilinear, 2x2 average)",
        "n_images": int(n_images)}
