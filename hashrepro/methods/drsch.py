"""DSCH / DRSCH / BS-DRSCH (Zhang, Lin, Zhang, Zuo, Zhang, IEEE TIP 2015, arXiv 1508.04535).

One recipe, three variants:

* ``"dsch"``      triplet hinge on the weighted Hamming affinity only (λ = 0);
* ``"drsch"``     the same plus the Laplacian regulariser (λ/2)·tr(Rᵀ L R);
* ``"bs-drsch"``  DRSCH trained at ``bits`` (64), evaluated on the ``keep_bits`` bits with the
  largest |w_k| (bit-scalable hashing: "truncating the insignificant bits");
* ``"dsrh"``      the DSRH baseline (Zhao et al., CVPR 2015): the same network and schedule with
  DSRH's loss (:class:`hashrepro.losses.dsrh.DSRHLoss`: NDCG-weighted triplet ranking on the
  relaxed Hamming distance + bit balance, ``lam`` = its α, ``margin0`` = its ρ in Hamming units)
  and its hash layer 2σ(z) − 1 (slope fixed at 1, bit weights left at 1); see ``_DSRH_PRESET``.

The network, the scaled-tanh code layer with growing slope and the bit weights are in
:mod:`hashrepro.models.drsch_net`; the loss is :class:`hashrepro.losses.drsch.DRSCHLoss`; the
configuration (:class:`Config`, the presets per scale) is :mod:`hashrepro.methods.drsch_config` and
the evaluation :mod:`hashrepro.methods.drsch_eval` (both re-exported here).
The paper's text was not available: everything follows the released Caffe code as summarised in
``../shared/papers/drsch-notes.md`` (section numbers "notes §n" below), with its sign quirk and
stale-label bug available only behind ``code_faithful=True``.

Batches are P classes × K images (10 × 10 in the released code), and the loss averages over
**all** valid in-batch triplets (computed with tensor masks). Inputs are 30 × 30 crops: MNIST
is resized to 32 × 32 and grey is replicated to 3 channels; CIFAR-10 is used at 32 × 32 RGB
(the documented CIFAR equivalent of the MNIST net, see :mod:`hashrepro.models.drsch_net`).
Training crops are random (±1 px jitter), test crops central. Pixels are mapped as the released
data layer does, x = (128 − p)·0.1.

Evaluation (``run``) ranks the database three ways, each labelled in the record:

* ``"binary"`` (the main metrics, keys without suffix): Hamming distance of sign(z) on the kept
  bits;
* ``"weighted-hamming"`` (suffix ``_whamming``): Σ_k w_k² [b_ik ≠ b_jk] on the kept bits;
* ``"continuous"`` (suffix ``_continuous``): the released test code's ranking, the squared
  Euclidean distance of tanh(5z/2) (slope reset to 5, before the weight layer) on the kept bits.

BS-DRSCH's curve (``curves["bit_scalable"]``, :func:`bit_scalable_curve`) has, next to the
metrics of the top-n bits by |w|, the control of the truncation claim: ``precision_at_500_random``
(``precision_at_<precision_k>_random``), the mean Precision@500 of n bits drawn at random
(:func:`hashrepro.codes.random_bit_subsets`, ``n_random_subsets`` seeded draws).

Two regimes (``Config.backbone``)
---------------------------------
``"scratch"`` (default): the released network trained on the images (above).
``"efficientnet_lite0"``: the ImageNet EfficientNet-Lite0 frozen, its pooled 1280-d features
computed once and cached (:func:`hashrepro.features.dataset_features`; grey images repeated to
3 channels; ``backbone_input_size`` None = 160 px); on top, a trainable head
(:class:`hashrepro.models.heads.FeatureMLP`, ``head_hidden`` = (512,): Linear 1280 → 512 + ReLU)
and DRSCH's hash layer unchanged: fc8 → scaled tanh with growing slope → bit weights
(:class:`hashrepro.models.drsch_net.DRSCHFeatureNet`), the triplet + Laplacian loss, P × K batches.
No crops or flips (the features are fixed). Records are named ``<variant>-efficientnet_lite0``
(``drsch-efficientnet_lite0``, ...) and carry ``protocol["backbone"]``.
``finetune="last_block"`` (:mod:`hashrepro.finetune`) caches instead the maps that enter the
backbone's last MBConv block (192 × 5 × 5 at 160 px, the whole image resampled as one crop) and
trains that block and the head conv with the head (lr × ``finetune_lr_mult``, batch norm at
ImageNet's statistics): the CPU-sized version of the paper's training of the whole network. Records
are named ``<variant>[-<deviations>]-lastblock-efficientnet_lite0`` (:func:`record_method`).
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

import numpy as np
import torch

from ..losses.drsch import DRSCHLoss, margin_at
from ..losses.dsrh import DSRHLoss
from ..models.drsch_net import DRSCHFeatureNet, DRSCHNet, slope_at
from ..diagnostics import diagnose, flag_record
from ..recipe import LOSS_CURVE_KEY, final_loss, loss_curve, recipe_run
from ..train import ClippedSGD, PKSampler  # noqa: F401  (PKSampler: re-exported, it lived here)
from .drsch_config import (_DSRH_PRESET, _PRETRAINED_PRESETS, _SCALE_PRESETS, BACKBONES, NAMED_FIELDS,  # noqa: F401  (re-exported)
                           FINETUNES, SCALES, SOLVERS, VARIANTS, Config, deviations, method_name, paper_solver,
                           record_method)
from .drsch_eval import (DEFAULT_KS, RANKING_DOC, _SUFFIX, _dist, bit_scalable_curve,  # noqa: F401  (re-exported)
                         continuous_distance, evaluate_codes, evaluate_reid, kept_bits, top_retrievals,
                         weighted_hamming)

__all__ = ["VARIANTS", "SCALES", "SOLVERS", "BACKBONES", "Config", "build_model", "method_name", "paper_solver", "bit_scalable_curve", "PKSampler", "prepare_images", "augment_batch", "train_model",
           "encode_preactivations", "kept_bits", "top_retrievals", "weighted_hamming", "continuous_distance", "evaluate_codes",
           "run"]

#: Iterations averaged by the ``final_loss`` metric (:func:`hashrepro.recipe.final_loss`).
FINAL_LOSS_LAST = 20


def build_model(cfg: Config, in_features: int | None = None) -> DRSCHNet | DRSCHFeatureNet:
    """The network of ``cfg``: :class:`DRSCHNet` on images (``backbone="scratch"``), or
    :class:`DRSCHFeatureNet` on ``in_features``-wide backbone features (pretrained regime); with
    ``finetune="last_block"`` the ImageNet backbone's last block in front of it
    (:func:`hashrepro.finetune.imagenet_tail`; ``in_features`` is then the width of the flattened maps)."""
    if cfg.backbone == "scratch":
        return DRSCHNet(cfg.bits, in_channels=3, input_size=cfg.input_size, slope=cfg.slope0, init=cfg.init)
    if in_features is None:
        raise ValueError("build_model: the pretrained regime needs in_features (the backbone's feature width)")
    tail = None
    if cfg.finetune == "last_block":
        from ..finetune import imagenet_tail

        tail = imagenet_tail(cfg.backbone, cfg.backbone_input_size)
        width = int(np.prod(tail.map_shape))
        if int(in_features) != width:
            raise ValueError(f"build_model: finetune='last_block' takes flattened maps {tuple(tail.map_shape)} "
                             f"({width} values per image), got inputs of width {in_features}")
        in_features = tail.feat_dim
    return DRSCHFeatureNet(cfg.bits, int(in_features), cfg.head_hidden, slope=cfg.slope0, init=cfg.init, tail=tail)


# ---------------------------------------------------------------------- data
def prepare_images(images: np.ndarray, size: int = 32, chunk: int = 4096) -> torch.Tensor:
    """uint8 (N, H, W, C) → uint8 tensor (N, 3, size, size): resized (bilinear) and grey → RGB.

    Kept as uint8 to hold 70k images in ~200 MB; :func:`augment_batch` crops and normalises.
    """
    from ..train import to_tensor_images

    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        x = to_tensor_images(images[i:i + chunk], size=size, channels=3)
        out[i:i + chunk] = (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return out


def augment_batch(x: torch.Tensor, crop: int, train: bool, jitter: int = 1, flip: bool = False,
                  generator: np.random.Generator | None = None) -> torch.Tensor:
    """uint8 (N, 3, S, S) → float (N, 3, crop, crop), pixels mapped to (128 − p)·0.1 (notes §3).

    ``train``: one random crop offset within ±``jitter`` px of the centre per image and a random
    horizontal flip when ``flip``; otherwise the central crop.
    """
    from ..train import to_device

    n, _, s, _ = x.shape
    c0 = (s - crop) // 2
    if not train:
        out = x[:, :, c0:c0 + crop, c0:c0 + crop]
    else:
        rng = generator or np.random.default_rng()
        lo, hi = max(0, c0 - jitter), min(s - crop, c0 + jitter)
        oy = rng.integers(lo, hi + 1, size=n)
        ox = rng.integers(lo, hi + 1, size=n)
        out = torch.stack([x[i, :, oy[i]:oy[i] + crop, ox[i]:ox[i] + crop] for i in range(n)])
        if flip:
            f = to_device(torch.from_numpy(rng.random(n) < 0.5), out.device)
            out = torch.where(f[:, None, None, None], out.flip(-1), out)
    return (128.0 - out.float()) * 0.1


# ------------------------------------------------------------------ training
def train_model(cfg: Config, images: torch.Tensor, labels: np.ndarray, device: torch.device | str = "cpu",
                progress: bool | None = None, *, callback=None, checkpoint=None,
                checkpoint_every: int = 0) -> tuple[DRSCHNet, dict]:
    """Train the DRSCH net on prepared training images.

    Parameters
    ----------
    cfg : Config
    images : uint8 tensor (N, 3, S, S) from :func:`prepare_images`, or float (N, D) cached backbone
        features (pretrained regime: no crop, no flip; ``finetune="last_block"``: the flattened maps
        entering the backbone's last block, (N, C·h·w))
    labels : int (N,)
    progress : progress bar (None: ``cfg.progress``)
    callback : optional ``callback(iterations_done, model)`` run after every iteration (e.g. a
        validation curve, :mod:`hashrepro.convergence`); it must return the model in training mode
        and draw no random numbers; its ``state_dict()`` / ``load_state_dict(d)``, when it has
        them, are checkpointed with the run.
    checkpoint, checkpoint_every : resumable training (:func:`hashrepro.train.fit`): every
        ``checkpoint_every`` iterations the model (slope included), optimiser, LR schedule, margin,
        batch sampler and crop/flip generators are written to ``checkpoint``; a call that finds
        that file continues from it and ends with the same model as an uninterrupted run.

    Returns
    -------
    (model in eval mode, info dict with "loss" (per-iteration list), "triplet", "regulariser",
    "active_fraction" (last-iteration values), "final_slope", "final_margin", "wall_time_s").
    """
    from ..train import fit, resolve_device, seed_everything, to_device

    device = resolve_device(device)
    seed_everything(cfg.seed)
    features = images.ndim == 2
    model = build_model(cfg, int(images.shape[1]) if features else None).to(device)
    dsrh = cfg.variant == "dsrh"
    loss_fn = DSRHLoss(margin=cfg.margin0, alpha=cfg.lam) if dsrh else DRSCHLoss(
        lam=cfg.effective_lam, margin=cfg.margin0, form=cfg.form, same=cfg.same, diff=cfg.diff,
        code_faithful=cfg.code_faithful)
    groups = model.param_groups(cfg.lr, cfg.weight_decay, cfg.finetune_lr_mult) if features else \
        model.param_groups(cfg.lr, cfg.weight_decay)
    opt = ClippedSGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                      max_norm=cfg.grad_clip)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    sampler = PKSampler(labels, cfg.classes_per_batch, cfg.images_per_class, seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long).to(device)
    images = images.to(device)  # the training set resident on the device; per iteration only indices travel
    flip = cfg.flip if cfg.flip is not None else False
    state = {"margin": cfg.margin0}
    parts: dict = {}

    def step(it: int) -> torch.Tensor:
        idx = to_device(torch.from_numpy(sampler()), device)
        if features:
            xb = images[idx].float()
        else:
            xb = augment_batch(images[idx], cfg.input_size, True, cfg.jitter, flip, rng)
        yb = labels_t[idx]
        _, h, _ = model.codes(xb)
        loss = loss_fn(h, yb, state["margin"]) if dsrh else loss_fn(h, model.weights, yb, state["margin"])
        parts.update(loss_fn.last)
        return loss

    def on_iteration(it: int) -> None:
        model.set_slope(slope_at(it + 1, cfg.slope0, cfg.slope_factor, cfg.slope_every))
        state["margin"] = margin_at(it + 1, cfg.margin0, cfg.margin_step, cfg.margin_every)
        if callback is not None:
            callback(it + 1, model)

    def save_state() -> dict:
        return {"model": model.state_dict(), "sched": sched.state_dict(), "margin": state["margin"],
                "sampler_rng": sampler.rng.bit_generator.state, "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "callback": callback.state_dict() if hasattr(callback, "state_dict") else None}

    def load_state(d: dict) -> None:
        model.load_state_dict(d["model"])
        sched.load_state_dict(d["sched"])
        state["margin"] = d["margin"]
        sampler.rng.bit_generator.state = d["sampler_rng"]
        rng.bit_generator.state = d["rng"]
        torch.set_rng_state(d["torch_rng"])
        if d.get("callback") is not None and hasattr(callback, "load_state_dict"):
            callback.load_state_dict(d["callback"])

    model.train()
    ckpt = dict(checkpoint=checkpoint, state=save_state, load_state=load_state,
                checkpoint_every=checkpoint_every) if checkpoint else {}
    hist = fit(step, optimizer=opt, iterations=cfg.iterations, scheduler=sched, on_iteration=on_iteration,
               desc=f"{record_method(cfg)} {cfg.bits}b",
               progress=cfg.progress if progress is None else progress, **ckpt)
    model.eval()
    parts.update({k: v.item() for k, v in parts.items() if torch.is_tensor(v)})  # off the CPU: read back once
    info = {"loss": hist.loss, "wall_time_s": hist.wall_time_s,
            "triplet": parts.get("triplet"), "regulariser": parts.get("regulariser"),
            "active_fraction": (parts["n_active"] / parts["n_valid"]) if parts.get("n_valid") else None,
            "final_slope": float(model.code.slope), "final_margin": state["margin"]}
    return model, info


@torch.no_grad()
def encode_preactivations(model: DRSCHNet | DRSCHFeatureNet, images: torch.Tensor, crop: int, batch_size: int = 1024,
                          device: torch.device | str = "cpu") -> np.ndarray:
    """Central-crop pre-activations z (N, q) float32; sign(z) is the binary code. ``images``: uint8
    (N, 3, S, S), or float (N, D) backbone features (pretrained regime; ``crop`` unused)."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        if images.ndim == 2:
            xb = images[i:i + batch_size].float().to(device)
        else:
            xb = augment_batch(images[i:i + batch_size], crop, False).to(device)
        out.append(model.preactivation(xb).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.n_bits), np.float32)


def _load_split(cfg: Config):
    from .. import data

    ds = data.load(cfg.dataset)
    if ds.multilabel:
        raise ValueError(f"dataset {cfg.dataset!r} is multi-label; this recipe's P x K sampler needs single-label "
                         "data (NUS-WIDE: not run here, data not available offline)")
    protocol = "cuhk03" if ds.name == "cuhk03" else cfg.protocol
    kw = {} if protocol == "cuhk03" else dict(n_query_per_class=cfg.n_query_per_class,
                                              n_train_per_class=cfg.n_train_per_class)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small embedded sets scale the per-class counts (recorded in sp.protocol)
        sp = data.split(ds, protocol, seed=cfg.seed, database_includes_train=cfg.database_includes_train, **kw)
    db = np.asarray(sp.database)
    if cfg.max_database is not None and len(db) > cfg.max_database:
        db = np.sort(np.random.default_rng(cfg.seed).choice(db, cfg.max_database, replace=False))
    return ds, sp, protocol, np.asarray(sp.train), np.asarray(sp.query), db


def _flatten(ev: dict, metrics: dict, curves: dict) -> None:
    for ranking, res in ev.items():
        sfx = _SUFFIX[ranking]
        for k, v in res.items():
            if k == "curves":
                for cname, c in v.items():
                    curves[cname + sfx] = c
            else:
                metrics[k + sfx] = float(v)


def _backbone_features(ds, cfg: Config, rows: np.ndarray) -> tuple[torch.Tensor, dict]:
    """Cached pooled backbone features of ``ds[rows]`` as float32 (len(rows), D), or with
    ``finetune="last_block"`` the cached maps entering the backbone's last block (len(rows), C·h·w)
    (:func:`hashrepro.finetune.cached_image_maps`), and what the record says about them (protocol
    entries + ``backbone_feature_read_s``)."""
    from ..features import backbone_cache_info, dataset_features
    from ..finetune import FINETUNE_START, cached_image_maps
    from ..models.backbones import backbone_spec

    t0 = time.perf_counter()
    tuned = cfg.finetune == "last_block"
    if tuned:
        feats = cached_image_maps(ds, rows, cfg.backbone, cfg.backbone_input_size, progress=bool(cfg.progress))
    else:
        feats = dataset_features(ds, cfg.backbone, indices=rows, input_size=cfg.backbone_input_size)
    x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    info = backbone_cache_info(ds, cfg.backbone, input_size=cfg.backbone_input_size) or {}
    hidden = " -> ".join(str(h) for h in cfg.head_hidden)
    head_in = backbone_spec(cfg.backbone).feature_dim if tuned else x.shape[1]  # the tail pools to the spec's width
    head = (f"FeatureMLP {head_in} -> {hidden} (ReLU)" if cfg.head_hidden else "none") \
        + f" -> fc8 {cfg.bits} -> scaled tanh -> bit weights"
    meta = {"backbone": f"{cfg.backbone} (ImageNet, frozen; pooled features cached)",
            "backbone_input_size": info.get("input_size"), "backbone_normalisation": info.get("normalisation"),
            "backbone_weights_sha256": info.get("weights_sha256"), "backbone_feature_dim": int(x.shape[1]),
            "backbone_head": head, "backbone_feature_read_s": time.perf_counter() - t0}
    if tuned:
        meta.update(backbone=(f"{cfg.backbone} (ImageNet; blocks {FINETUNE_START}.. + head conv fine-tuned with the "
                              f"head at lr x {cfg.finetune_lr_mult:g}, batch norm at ImageNet statistics; the maps "
                              f"entering block {FINETUNE_START} cached)"),
                    backbone_head=f"last block + head conv + pool -> {head}",
                    finetune="last_block: the whole image resampled as one crop (hashrepro.crop_features.crop_resize)")
    return x, {k: v for k, v in meta.items() if v is not None}


def run(cfg: Config | None = None, *, command: str | None = None, **overrides: Any) -> dict:
    """Train and evaluate one DSCH / DRSCH / BS-DRSCH / DSRH model; return a run record.

    ``run(Config.for_scale("smoke", dataset="digits"))`` or ``run(scale="smoke", dataset="mnist5k", bits=16)``
    (keyword overrides build ``Config.for_scale(scale, ...)``; set-up and wrap-up:
    :func:`hashrepro.recipe.recipe_run`; ``cfg.progress`` shows a progress bar).

    The record's ``bits`` is the evaluated code length (``keep_bits`` for BS-DRSCH); the trained
    length is ``protocol["bits_trained"]``. Metrics: ``map``, ``precision_radius2``,
    ``precision_at_<k>`` (binary Hamming ranking), ``map_whamming``/``precision_at_<k>_whamming``
    (weighted Hamming) and ``map_continuous``/... (released code's ranking), ``final_loss`` (mean
    loss of the last :data:`FINAL_LOSS_LAST` = 20 iterations); curves
    ``pr_radius``, ``precision_at_k`` (+ the suffixed rankings), ``bit_scalable`` (BS-DRSCH: the
    metrics of the top-n bits by |w| for n in ``keep_list``), ``bit_weights`` (sorted by |w|) and
    ``train_loss`` (:func:`hashrepro.recipe.loss_curve`; records before it have ``loss``, read both
    with :func:`hashrepro.recipe.read_loss_curve`). On ``cuhk03`` the metrics are CMC ranks
    (``cmc_rank1`` ...) instead.
    """
    with recipe_run(Config, cfg, overrides) as r:
        return _run(r, command)


def _run(r, command: str | None) -> dict:
    """The body of :func:`run` inside its set-up ``r`` (:class:`hashrepro.recipe.RecipeRun`)."""
    cfg, device = r.cfg, r.device
    ds, sp, protocol_name, tr, qu, db = _load_split(cfg)
    needed = np.unique(np.concatenate([tr, qu, db]))
    backbone_meta: dict = {}
    if cfg.backbone == "scratch":
        imgs = prepare_images(ds.images[needed], cfg.resize_to)
        flip = cfg.flip if cfg.flip is not None else (ds.images.shape[-1] == 3)
    else:  # pretrained regime: the cached pooled features of the frozen backbone are the input
        imgs, backbone_meta = _backbone_features(ds, cfg, needed)
        flip = False
    take = lambda ix: np.searchsorted(needed, ix)  # noqa: E731  (positions of dataset indices in `needed`)
    labels = np.asarray(ds.labels)
    train_cfg = dataclasses.replace(cfg, flip=flip)
    model, info = train_model(train_cfg, imgs[take(tr)], labels[tr], device)
    zq = encode_preactivations(model, imgs[take(qu)], cfg.input_size, cfg.eval_batch_size, device)
    zdb = encode_preactivations(model, imgs[take(db)], cfg.input_size, cfg.eval_batch_size, device)
    del imgs
    w = model.weights.detach().cpu().numpy().astype(np.float64)
    metrics: dict[str, float] = {}
    curves: dict[str, dict] = {}
    reid = protocol_name == "cuhk03"
    if reid:
        _flatten(evaluate_reid(zq, zdb, labels[qu], labels[db], w, cfg.eval_bits, seed=cfg.seed), metrics, curves)
    else:
        _flatten(evaluate_codes(zq, zdb, labels[qu], labels[db], w, cfg.eval_bits, cfg.topk, cfg.precision_k),
                 metrics, curves)
    if cfg.variant == "bs-drsch" and not reid:
        # Hamming ranking only (a weighted ranking would need a float sort per point); with the
        # random-bit-subset control of the truncation claim
        curves["bit_scalable"] = bit_scalable_curve(zq, zdb, labels[qu], labels[db], w, cfg.keep_list, cfg.topk,
                                                    cfg.precision_k, n_random=cfg.n_random_subsets, seed=cfg.seed)
    if not reid and not ds.multilabel:
        # Fig. 6: top-10 of one query per class, with the evaluated codes and, for BS-DRSCH,
        # with the 32 most significant of its bits (the paper's 64 -> 32 panel).
        curves["top10"] = top_retrievals(zq, zdb, labels[qu], qu, db, w, cfg.eval_bits)
        if cfg.variant == "bs-drsch" and cfg.bits > 32 and cfg.eval_bits != 32:
            curves["top10_keep32"] = top_retrievals(zq, zdb, labels[qu], qu, db, w, 32)
    order = np.argsort(-np.abs(w), kind="stable")
    curves["bit_weights"] = {"bit": [int(i) for i in order], "weight": [float(w[i]) for i in order]}
    loss = np.asarray(info["loss"], dtype=np.float64)
    curves[LOSS_CURVE_KEY] = loss_curve(loss)
    metrics["final_loss"] = final_loss(loss, FINAL_LOSS_LAST)
    metrics["train_time_s"] = float(info["wall_time_s"])
    metrics["bit_weight_abs_min"] = float(np.abs(w).min())
    metrics["bit_weight_abs_max"] = float(np.abs(w).max())
    protocol = {"split": protocol_name, "n_train": int(len(tr)), "n_query": int(len(qu)), "n_database": int(len(db)),
                "database_includes_train": bool(cfg.database_includes_train), "topk": cfg.topk, "ties": "index",
                "empty": "zero", "ranking": "binary", "radius": 2, "rankings": RANKING_DOC,
                "bits_trained": cfg.bits, "bits_evaluated": cfg.eval_bits,
                "bit_selection": "top |w_k|" if cfg.eval_bits < cfg.bits else "all",
                "seed_split": cfg.seed}
    protocol.update({k: v for k, v in backbone_meta.items() if k != "backbone_feature_read_s"})
    if "backbone_feature_read_s" in backbone_meta:
        metrics["backbone_feature_read_s"] = float(backbone_meta["backbone_feature_read_s"])
    if reid:
        protocol.update(ties=None, empty=None, radius=None, evaluation="CMC, single-gallery-shot, 10 draws")
    detail = getattr(sp, "protocol", None)
    if isinstance(detail, dict):
        protocol["split_detail"] = {k: v for k, v in detail.items() if isinstance(v, (int, float, str, bool))}
    config = cfg.to_dict()
    config.update(flip_used=bool(flip), effective_lam=cfg.effective_lam, final_slope=info["final_slope"],
                  final_margin=info["final_margin"])
    record = r.record(paper="drsch", method=record_method(cfg), bits=cfg.eval_bits,
                      config=config, protocol=protocol, metrics=metrics, curves=curves, command=command)
    # a collapsed or diverged run is flagged in its record, never reported as a normal number
    db_codes = (zdb[:, kept_bits(w, cfg.eval_bits)] > 0).astype(np.uint8)
    return flag_record(record, diagnose(db_codes, loss, labels=labels[db]))
