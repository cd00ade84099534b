"""Why MCH's agent keeps few crops on the mosaics: the eq.-6 rewards and the crop codes.

A diagnostic for the MCH chapter, not part of the method. For one base model it trains X exactly
as :func:`hashrepro.methods.mch.run` does (same seeds, so the same X as the run of the same
config), codes the 5 crops of ratio σ of a sample of database images (§4.3) and reports:

* the eq.-6 reward of keeping each crop, computed against the training images as the oracle of
  :func:`~hashrepro.losses.mch_reward.oracle_rewards` does: the fraction of positive rewards, the sum of
  the positive and of the negative rewards per image, both by number of objects in the mosaic;
* how well a crop that shows exactly one object (the four corner crops at σ = 0.5 are the mosaic
  tiles) is coded: the median Hamming distance of its code to the whole-image codes of the
  single-object training mosaics of its own class and of the other classes, against the same
  distances for the single-object database images' own whole-image codes.

It uses the tile layout of the mosaics (``ds.meta["tiles"]``), which the method never sees.
:func:`crop_diagnostic` returns a run record (``method = "diag-crops-<base>"``).

:func:`sigma_sensitivity` is Fig. 9 (a) (§5.5) for one base model: the MCH run of ``cfg`` with the
out-of-sample extension's F1–bucket curve at several crop ratios σ (ξ fixed), returned as a
``diag-sigma-<X>`` record, so that it stands beside the chapter's runs without being counted as one.
"""
from __future__ import annotations

import numpy as np
import torch

from ..codes import binarize
from ..crop_features import crop_resize
from ..data.crops import crop_boxes, images_tensor, mosaic_tiles
from ..losses.mch_reward import codes_pm1, oracle_rewards
from ..losses.pairwise import hamming_distance_pm1, make_loss
from ..recipe import COMPANIONS_KEY, recipe_run
from . import mch as M
from .mch_data import load_data
from .mch_train import pretrain_backbone, train_base

__all__ = ["crop_diagnostic", "sigma_sensitivity"]


def crop_diagnostic(cfg: M.Config | None = None, n_items: int = 600, *, command: str | None = None,
                    **overrides) -> dict:
    """Train X as :func:`hashrepro.methods.mch.run` does and diagnose its crops; return a record.

    ``cfg`` and ``overrides`` as in :func:`hashrepro.methods.mch.run` (set-up:
    :func:`hashrepro.recipe.recipe_run`); ``command`` defaults to the ``python -c`` call of this
    function with the config's dataset, bits, base and seed.

    Metrics: ``positive_fraction`` (all crops), ``positive_fraction_objects<k>`` and
    ``reward_pos_per_item_objects<k>`` / ``reward_neg_per_item_objects<k>`` (occupied corner crops of
    mosaics with k objects), ``reward_pos_per_item`` / ``reward_neg_per_item`` (all crops), and the
    median Hamming distances ``d_tile_same_class`` / ``d_tile_other_class`` (tile crop code to the
    single-object training mosaics' codes) and ``d_whole_same_class`` / ``d_whole_other_class``
    (the same for single-object database mosaics' whole-image codes).
    """
    with recipe_run(M.Config, cfg, overrides) as run:
        return _crop_diagnostic(run, n_items, command)


def _crop_diagnostic(run, n_items: int, command: str | None) -> dict:
    """The body of :func:`crop_diagnostic` inside its set-up (``run``: a :class:`hashrepro.recipe.RecipeRun`)."""
    cfg, device = run.cfg, run.device
    ds, sp = load_data(cfg)
    tiles_all = ds.meta.get("tiles") if isinstance(ds.meta, dict) else None
    if tiles_all is None or cfg.grid != 2:
        raise ValueError("crop_diagnostic needs a 2x2 mosaic data set (its corner crops at σ = 0.5 are the tiles)")
    u8 = images_tensor(ds.images)
    Y = ds.label_matrix()
    y_tr, y_db = Y[sp.train], Y[sp.database]
    x_train = crop_resize(u8[sp.train], None, cfg.input_size)
    xt, yt = mosaic_tiles(ds, sp.train, cfg.input_size) if cfg.pretrain_tiles else (None, None)
    backbone_state, _, _ = pretrain_backbone(cfg, x_train, y_tr, device,
                                             torch.Generator().manual_seed(cfg.seed + 1), xt, yt)
    torch.manual_seed(cfg.seed + 2)
    hasher, _ = train_base(cfg, backbone_state, x_train, y_tr, device, torch.Generator().manual_seed(cfg.seed + 3))
    loss_fn = make_loss(cfg.base, cfg.bits)

    rng = np.random.default_rng(cfg.seed + 5)
    sub = np.sort(rng.choice(len(sp.database), min(n_items, len(sp.database)), replace=False))
    db_idx = sp.database[sub]
    f_tr, z_tr = hasher.embed(u8[sp.train])
    f_db, z_db = hasher.embed(u8[db_idx])
    zc, _ = _crop_codes(hasher, u8[db_idx], 0.5)
    r = oracle_rewards(loss_fn, binarize(z_db), zc, z_tr, y_db[sub], y_tr, db_idx, sp.train)

    tiles = np.asarray(tiles_all)[db_idx]  # (n, 2, 2): class or -1
    corner = np.stack([tiles[:, 0, 0], tiles[:, 0, 1], tiles[:, 1, 0], tiles[:, 1, 1]], 1)  # crop order
    n_obj = (tiles >= 0).reshape(len(sub), -1).sum(1)
    m: dict = {"n_items": float(len(sub)), "n_crops": float(r.size),
               "positive_fraction": float((r > 0).mean()),
               "reward_pos_per_item": float(r.clip(min=0).sum() / len(sub)),
               "reward_neg_per_item": float(r.clip(max=0).sum() / len(sub))}
    for k in range(1, 5):
        sel = n_obj == k
        rc = r[sel, :4][corner[sel] >= 0]
        if rc.size:
            m[f"positive_fraction_objects{k}"] = float((rc > 0).mean())
            m[f"reward_pos_per_item_objects{k}"] = float(rc.clip(min=0).sum() / max(sel.sum(), 1))
            m[f"reward_neg_per_item_objects{k}"] = float(rc.clip(max=0).sum() / max(sel.sum(), 1))

    # codes of single-object crops against the single-object training mosaics
    b_tr = codes_pm1(z_tr)
    single_tr = y_tr.sum(1) == 1
    cls_tr = np.where(single_tr, y_tr.argmax(1), -1)
    d_same, d_other = [], []
    for c in range(4):
        occ = np.flatnonzero(corner[:, c] >= 0)
        if not len(occ):
            continue
        d = hamming_distance_pm1(codes_pm1(zc[occ, c]), b_tr[torch.from_numpy(single_tr)]).numpy()
        cl = cls_tr[single_tr]
        for row, i in zip(d, occ):
            if (cl == corner[i, c]).any() and (cl != corner[i, c]).any():
                d_same.append(np.median(row[cl == corner[i, c]]))
                d_other.append(np.median(row[cl != corner[i, c]]))
    single_db = np.flatnonzero(y_db[sub].sum(1) == 1)
    w_same, w_other = [], []
    if len(single_db):
        d = hamming_distance_pm1(codes_pm1(z_db[single_db]), b_tr[torch.from_numpy(single_tr)]).numpy()
        cl = cls_tr[single_tr]
        for row, i in zip(d, single_db):
            c_i = int(y_db[sub][i].argmax())
            if (cl == c_i).any() and (cl != c_i).any():
                w_same.append(np.median(row[cl == c_i]))
                w_other.append(np.median(row[cl != c_i]))
    m.update({"d_tile_same_class": float(np.median(d_same)) if d_same else float("nan"),
              "d_tile_other_class": float(np.median(d_other)) if d_other else float("nan"),
              "d_whole_same_class": float(np.median(w_same)) if w_same else float("nan"),
              "d_whole_other_class": float(np.median(w_other)) if w_other else float("nan")})
    protocol = dict(sp.protocol, n_items=int(len(sub)), crops="5 crops of ratio 0.5 (4 corners = the tiles, centre)",
                    reward="eq. 6 against all training images, pair weights of the base loss (oracle_rewards)",
                    distances="median Hamming distance to the single-object training mosaics' whole-image codes")
    if command is None:
        command = (f"python -c \"from hashrepro.methods.mch_diagnostics import crop_diagnostic; "
                   f"crop_diagnostic(dataset='{cfg.dataset}', bits={cfg.bits}, base='{cfg.base}', seed={cfg.seed})\"")
    return run.record(paper="mch", method=f"diag-crops-{cfg.base}", protocol=protocol, metrics=m, curves={},
                      command=command)


def _crop_codes(hasher, images_u8: torch.Tensor, sigma: float):
    """(z (N, 5, Q), f (N, 5, D)) of the 5 crops of §4.3."""
    n, _, h, w = images_u8.shape
    boxes = crop_boxes(h, w, sigma)
    zs, fs = [], []
    for c in range(5):
        f, z = hasher.embed(images_u8, np.repeat(boxes[c:c + 1], n, axis=0))
        zs.append(z)
        fs.append(f)
    return np.stack(zs, 1), np.stack(fs, 1)


def sigma_sensitivity(cfg: M.Config | None = None, sigmas=(0.3, 0.5, 0.7), *, command: str | None = None,
                      **overrides) -> dict:
    """Fig. 9 (a) (§5.5): MCH-X's F1–bucket curve for each crop ratio σ in ``sigmas`` (ξ = ``cfg.xi``)
    and each ξ of ``cfg.sens_xis`` (σ = ``cfg.sigma``), from one MCH run of ``cfg`` (and
    ``overrides``) with ``sens_sigmas = sigmas`` (:func:`hashrepro.methods.mch_eval.sensitivity`).

    The run is :func:`hashrepro.methods.mch.run` itself (same seeds, so the same X and agent as the
    chapter's run of that config, up to the features of the added crops, which come from their own
    cache files); on the ImageNet backbone the crops of every σ are extracted once and cached
    (:func:`hashrepro.methods.mch_data.prepare_features`). The returned record has ``method =
    "diag-sigma-<X>"`` (``<X>`` = the base model's method name, e.g. ``dch-efficientnet_lite0``),
    the run's metrics and its ``sensitivity`` curve only, no companions; ``command`` defaults to the
    ``python -c`` call of this function."""
    base_cfg = cfg if cfg is not None else M.Config.for_scale(overrides.pop("scale", "default"), **overrides)
    if cfg is not None and overrides:
        base_cfg = cfg.replace(**overrides)
    sigmas = tuple(float(v) for v in sigmas)
    if not sigmas or any(not 0.0 < v <= 1.0 for v in sigmas):
        raise ValueError(f"sigmas must be crop ratios in (0, 1], e.g. (0.3, 0.5, 0.7); got {sigmas!r}")
    run_cfg = base_cfg.replace(sens_sigmas=sigmas, baselines=False)
    if command is None:
        command = (f"python -c \"from hashrepro.methods.mch_diagnostics import sigma_sensitivity; "
                   f"sigma_sensitivity(scale='{run_cfg.scale}', dataset='{run_cfg.dataset}', bits={run_cfg.bits}, base='{run_cfg.base}', "
                   f"backbone='{run_cfg.backbone}', seed={run_cfg.seed}, sigmas={sigmas!r}, "
                   f"agent_iters={run_cfg.agent_iters})\"")
    rec = M.run(run_cfg, command=command)
    x = M.record_method(run_cfg)
    out = {k: v for k, v in rec.items() if k != COMPANIONS_KEY}
    out["method"] = f"diag-sigma-{x}"
    out["curves"] = {"sensitivity": rec["curves"]["sensitivity"], "f1_bucket": rec["curves"].get("f1_bucket")}
    out["protocol"] = dict(rec.get("protocol") or {}, diagnostic="Fig. 9 (a): F1-bucket curve of MCH-X per crop ratio "
                           "sigma (xi fixed) and per xi (sigma fixed), one MCH run")
    return out
