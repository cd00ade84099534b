"""DDH: Deep Discrete Hashing with self-supervised pairwise labels (Song, He, Fan, Gao 2017).

Recipe (``run(cfg, *, command=None, **overrides) -> run record``):

1. data and split: CIFAR-10 uses the common unsupervised protocol ("official"): the 10,000
   official test images are the queries, the 50,000 training images the database, and the
   hasher trains on the database images *without their labels* (``n_train`` of them; all by
   default). Datasets without an official split (mnist5k, digits) take ``n_query_per_class``
   queries per class and use the rest as database and training set.
2. features of the training images (``features``): "kmeans" (single-layer k-means features of
   Coates et al. 2011 learned on the training images), "contrastive" (a CNN-F-like backbone
   trained with SimCLR's NT-Xent on the training images, :mod:`hashrepro.models.contrastive`), "pixels",
   "hog"/"gist" (:mod:`hashrepro.features`), or "resnet" (the paper's ImageNet ResNet-50 pool5,
   §2.1; its weights are not available offline, so this path raises a clear error here).
   Features wider than ``knn_pca_dim`` are PCA-reduced before the cosine K-NN (speed).
3. pseudo pairwise labels by Algorithm 1 (K1, K2; :mod:`hashrepro.pseudolabels`), or the class
   labels with ``supervised=True`` (the supervised variant of Table 5).
4. network: CNN-F-like backbone (Table 1, reduced for small images: :mod:`hashrepro.models.cnnf`)
   + hash layer z = Wᵀφ(x) + c (eq. 11), initialised from the contrastive backbone
   (``init="contrastive"``, our stand-in for the ImageNet CNN-F initialisation of §2.4), trained
   on eq. 12 (:class:`hashrepro.losses.ddh.DDHLoss`, λ1 = 15, λ2 = 1e-5) with SGD, lr 0.001,
   batch 128 (§3.2). Mini-batches are half anchors, half one pseudo-positive of each anchor
   (``pair_sampling="anchor_positive"``); with uniform batches (``"uniform"``, the paper's "we
   sample a mini-batch of points") a batch of 128 out of 50,000 holds almost no positive pair.
5. codes b = sgn(z) (eq. 4) for queries and database; mAP over the top 1,000 (Table 2), precision
   within Hamming radius 2, P/R curves (Fig. 3) via :func:`hashrepro.metrics.evaluate`; also the
   label precision of the pseudo labels (Fig. 2) against the true training labels (measurement
   only, never used for training).

The contrastive backbone and its features depend on the training images and SSL settings but
not on the code length, so they are cached (``cache_dir``, default ``<cache root>/ddh``) and the
16/32/64-bit runs of a sweep share one pretraining; the record says whether the cache was hit
and how long the pretraining took when it ran.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from ..recipe import LOSS_CURVE_KEY, bit_imbalance, final_loss, loss_curve, recipe_run

from .ddh_config import (BACKBONES, DESCRIPTORS, FEATURES, METHOD_PAPER_NAMES, METHODS, PAPER,  # noqa: F401
                         PRETRAINED_ITERATIONS, SCALES, SHALLOW, SHALLOW_PAPER_NAMES, SMALL_DATASETS,
                         TABLE4_BASELINES, TABLE4_PAPER_NAMES, TASKS, Config)
from .ddh_pipeline import (FINAL_LOSS_LAST, _PairSampler, _build_net, _handcrafted, _inputs,  # noqa: F401
                           _kmeans_cached, _load_and_split, compute_features, config_with_info,
                           contrastive_features_all, encode_codes, kmeans_features, numeric_info, prepare,
                           resnet_pool5_features, train_ddh)

__all__ = ["Config", "run", "run_shallow", "FINAL_LOSS_LAST", "FEATURES", "compute_features", "prepare", "train_ddh", "encode_codes",
           "resnet_pool5_features"]


def run(cfg: Config | None = None, *, command: str | None = None, **overrides) -> dict:
    """Run one configuration of the DDH chapter end to end and return its run record.

    ``run(Config.for_scale("smoke", dataset="digits"))``, ``run(cfg, command="papermill ...")`` or
    ``run(scale="smoke", dataset="mnist5k", bits=16)`` (keyword overrides build
    ``Config.for_scale(scale, **overrides)``, the scale's presets; with a ``cfg`` they replace its
    fields). The set-up and wrap-up are :func:`hashrepro.recipe.recipe_run`'s; the configuration picks
    the pipeline: DDH (below), a shallow hasher of Table 2/4 on the label features (``baseline``,
    :func:`_run_shallow`), DH / DeepBit (``method``, :mod:`hashrepro.methods.ddh_deep_baselines`),
    or Table 6's classification (``task``, :mod:`hashrepro.methods.ddh_flowers`).

    Shared metrics: ``final_loss`` (mean loss of the last :data:`FINAL_LOSS_LAST` = 20 iterations),
    ``bit_imbalance`` (mean over bits of |P(bit = 1) − 0.5| of the database codes; also under its
    legacy name ``bit_balance``), ``cpu_time_s``; curve ``train_loss`` (:func:`hashrepro.recipe.loss_curve`).
    """
    with recipe_run(Config, cfg, overrides) as r:
        cfg = r.cfg
        if cfg.task == "classification":
            from .ddh_flowers import _run_classification
            return _run_classification(r, command)
        if cfg.baseline is not None:
            return _run_shallow(r, command)
        if cfg.method != "ddh":
            from .ddh_deep_baselines import _run_deep_baseline
            return _run_deep_baseline(r, command)
        return _run_ddh(r, command)


def run_shallow(cfg: Config, *, command: str | None = None) -> dict:
    """A shallow hasher of Table 2 / 4 (``cfg.baseline``): :func:`run` of a config with a baseline."""
    if cfg.baseline is None:
        raise ValueError("run_shallow needs cfg.baseline (one of the shallow hashers); got None")
    return run(cfg, command=command)


def _run_shallow(r, command: str | None) -> dict:
    """A shallow hasher of Table 2 (``cfg.baseline``) on the label features ``cfg.features`` of the
    training images; queries and database encoded from the same features. Returns a run record."""
    from ..baselines import BASELINES
    from ..metrics import evaluate, mean_average_precision

    cfg = r.cfg
    ds, train, query, database, proto = _load_and_split(cfg)
    need = np.unique(np.concatenate([train, query, database]))
    pos = {int(j): i for i, j in enumerate(need)}
    key_extra = {"dataset": cfg.dataset, "all": hashlib.sha256(need.tobytes()).hexdigest()[:16],
                 "train": hashlib.sha256(np.asarray(train).tobytes()).hexdigest()[:16]}
    info: dict = {"features": cfg.features}
    tf = time.perf_counter()
    if cfg.features == "kmeans":
        feats, extra = _kmeans_cached(cfg, ds.images[need], key_extra, fit_images=ds.images[train])
        feats = np.sqrt(np.maximum(feats, 0))
        info.update(extra)
    elif cfg.features in ("gist", "hog"):
        feats = _handcrafted(cfg.features, ds.images[need], ds, need)
    elif cfg.features == "pixels":
        feats = np.asarray(ds.images[need], dtype=np.float32).reshape(len(need), -1) / 255.0
    elif cfg.features == "contrastive":
        feats, extra = contrastive_features_all(cfg, ds, train, need)
        info.update(extra)
    elif cfg.features == "efficientnet_lite0":
        from ..features import dataset_features
        feats = np.asarray(dataset_features(ds, cfg.features, indices=need, input_size=cfg.backbone_input_size),
                           dtype=np.float32)
        protocol_backbone = f"{cfg.features} (ImageNet, frozen; pooled features cached)"
        info["backbone"] = protocol_backbone
    else:
        raise ValueError(f"baseline runs support features kmeans, gist, hog, pixels, contrastive, "
                         f"efficientnet_lite0; got {cfg.features!r}")
    info["feature_wall_time_s"] = time.perf_counter() - tf
    rows = lambda idx: feats[[pos[int(j)] for j in idx]]                     # noqa: E731
    hasher = BASELINES[cfg.baseline](n_bits=int(cfg.bits), random_state=cfg.seed)
    tt = time.perf_counter()
    if getattr(hasher, "supervised", False):
        # SPLH / LFH (Table 4): their usual protocol, class labels of a labelled subset
        fit_idx = train
        if cfg.baseline_max_train is not None and cfg.baseline_max_train < len(train):
            fit_idx = np.sort(np.random.default_rng(cfg.seed + 2).choice(train, cfg.baseline_max_train, replace=False))
        hasher.fit(rows(fit_idx), ds.labels[fit_idx])
        info["supervision"] = f"class labels of {len(fit_idx)} training images"
        info["n_labelled"] = int(len(fit_idx))
    else:
        hasher.fit(rows(train))
        info["supervision"] = "none"
    info["train_wall_time_s"] = time.perf_counter() - tt
    qb, dbb = hasher.transform(rows(query)), hasher.transform(rows(database))
    qy, dby = ds.labels[query], ds.labels[database]
    ev = evaluate(qb, dbb, qy, dby, topk=cfg.topk, radius=2)
    metrics = {"map": float(ev["map"]), "map_tie_aware": float(ev["map_tie_aware"]),
               "precision_radius2": float(ev["precision_radius2"])}
    if cfg.map_all:
        metrics["map_all_skip_empty"] = float(mean_average_precision(qb, dbb, qy, dby, topk=None, empty="skip"))
    metrics.update({k: float(v) for k, v in info.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    metrics["cpu_time_s"] = r.cpu_time()
    protocol = dict(proto)
    protocol.update(ev.get("protocol", {}))
    return r.record(paper=PAPER, method=cfg.baseline, config=config_with_info(cfg, info), protocol=protocol,
                    metrics=metrics, curves=dict(ev.get("curves", {})), command=command, device="cpu")


def _run_ddh(r, command: str | None) -> dict:
    """DDH itself (module docstring, steps 1–5) inside the set-up ``r``."""
    from ..metrics import evaluate

    cfg = r.cfg
    prep = prepare(cfg)
    ds, device = prep["ds"], prep["device"]
    metrics, curves, info = prep["metrics"], prep["curves"], prep["info"]
    protocol = dict(prep["protocol"])
    method = "ddh-supervised" if cfg.supervised else "ddh"
    if cfg.backbone != "scratch":
        method += f"-{cfg.backbone}"
    if cfg.labels_only:
        method = f"ddh-labels-{cfg.features}"
        protocol.update(topk=None, ties="index", empty="zero", ranking="none",
                        evaluated="pseudo-label precision on the training images")
    else:
        train = prep["train"]
        sampler = _PairSampler(len(train), cfg.batch_size, S=prep["S"],
                               labels=ds.labels[train] if cfg.supervised else None,
                               mode=cfg.pair_sampling, seed=cfg.seed)
        x_train = prep["x8_train"]            # images (N, C, H, W), or features (N, D) when pretrained
        in_ch, size = int(x_train.shape[1]), int(x_train.shape[2]) if x_train.ndim == 4 else 0
        net = _build_net(cfg, in_ch, size, prep["backbone"])
        hist = train_ddh(cfg, net, prep["x8_train"], sampler, device)
        info["train_wall_time_s"] = hist["wall_time_s"]
        t_enc = time.perf_counter()
        q8, db8 = _inputs(cfg, ds, prep["query"]), _inputs(cfg, ds, prep["database"])
        _, qb = encode_codes(net, q8, device)
        _, dbb = encode_codes(net, db8, device)
        info["encode_wall_time_s"] = time.perf_counter() - t_enc
        t_ev = time.perf_counter()
        qy, dby = ds.labels[prep["query"]], ds.labels[prep["database"]]
        ev = evaluate(qb, dbb, qy, dby, topk=cfg.topk, radius=2)
        metrics["map"] = float(ev["map"])
        metrics["map_tie_aware"] = float(ev["map_tie_aware"])  # ties="expected" (class-sorted db)
        metrics["precision_radius2"] = float(ev["precision_radius2"])
        for name, c in ev.get("curves", {}).items():
            curves[name] = c
        protocol.update(ev.get("protocol", {}))
        if cfg.map_all:
            from ..metrics import mean_average_precision
            metrics["map_all_skip_empty"] = float(mean_average_precision(qb, dbb, qy, dby, topk=None, empty="skip"))
        info["eval_wall_time_s"] = time.perf_counter() - t_ev
        metrics["final_loss"] = final_loss(hist["loss"], FINAL_LOSS_LAST)
        metrics["bit_imbalance"] = bit_imbalance(dbb)
        metrics["bit_balance"] = metrics["bit_imbalance"]   # legacy name of bit_imbalance in DDH records
        curves[LOSS_CURVE_KEY] = loss_curve(hist["loss"])
    metrics.update(numeric_info(info))
    metrics["cpu_time_s"] = r.cpu_time()   # all threads of this process
    record = r.record(paper=PAPER, method=method, bits=int(cfg.bits) if not cfg.labels_only else 0,
                      config=config_with_info(cfg, info), protocol=protocol, metrics=metrics, curves=curves,
                      command=command, device=device)
    if not cfg.labels_only:
        from ..diagnostics import diagnose, flag_record
        flag_record(record, diagnose(dbb, hist["loss"], labels=dby))
    return record
