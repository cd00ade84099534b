"""How far can any ranking on the frozen ImageNet features of the mosaics get? Reference retrievers
for MCH's base models (issue 16).

On the CIFAR-10 mosaic the base models on the ImageNet backbone (frozen, or with the last block(s)
fine-tuned) stand 0.01-0.05 above the same models trained from scratch, and a random ranking already
scores about 0.50 (:func:`hashrepro.methods.mch_data.relevant_fraction`). Is the frozen backbone's
pooled feature of a whole mosaic the limit? This module ranks the same database for the same queries
(the pretrained preset's split of one seed: 200 queries, 1,800 database mosaics including the 800
training ones, relevance = sharing ≥ 1 label, MCH §5.1) with retrievers that are not short codes:

* ``euclidean``: the raw 1,280-d pooled features, Euclidean distance (no training).
* ``linear-p``, ``mlp-p``: a multi-label classifier on the training mosaics' features (one logistic
  output per class, binary cross-entropy; linear, or one hidden ReLU layer of ``hidden`` units), and
  the database ranked by the probability that the two mosaics share a label, under the classifier
  and independent classes:

      P(share ≥ 1 label | q, x) = 1 - prod_c (1 - p_c(f_q) p_c(f_x))        (p: sigmoid outputs, (C,))

  With calibrated probabilities this ranking maximises the expected precision at every depth, so it is
  the natural upper reference for a hash learnt from the same labels on the same features (an
  estimate, not a bound: a code could in principle do better than this classifier).

Each classifier's weight decay is chosen on a validation split of the training mosaics
(``val_fraction`` of them as validation queries against the rest as the database, as
:mod:`hashrepro.mch_select` does), by the validation mAP of the same ranking; the queries give only
the reported mAP.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = ["MosaicCeilingConfig", "MOSAIC_RETRIEVERS", "shared_label_probability", "fit_multilabel",
           "mosaic_reference_maps"]

#: Retrievers measured by :func:`mosaic_reference_maps`, in the order they are reported.
MOSAIC_RETRIEVERS = ("euclidean", "linear-p", "mlp-p")


@dataclass(frozen=True)
class MosaicCeilingConfig:
    """One measurement: the MCH pretrained preset's split of ``dataset`` for ``seed``, the frozen
    backbone's pooled whole-mosaic features (the cache the MCH runs read)."""

    dataset: str = "mosaic-cifar10"
    seed: int = 0
    backbone: str = "efficientnet_lite0"
    backbone_input_size: int | None = None  # None: the MCH preset's (112 px)
    scale: str = "default"  # the MCH preset whose split is measured
    hidden: int = 1024
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decays: tuple = (1e-4, 1e-3, 1e-2, 1e-1)
    val_fraction: float = 0.2

    def __post_init__(self):
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if int(self.epochs) <= 0 or int(self.batch_size) <= 0:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs!r} and {self.batch_size!r}")


def shared_label_probability(p_query: np.ndarray, p_db: np.ndarray) -> np.ndarray:
    """P(share ≥ 1 label) (nq, ndb) from per-class probabilities (nq, C) and (ndb, C), classes
    independent: ``1 - prod_c (1 - p_q,c p_x,c)`` (computed in log space, float64)."""
    pq, px = np.asarray(p_query, np.float64), np.asarray(p_db, np.float64)
    if pq.ndim != 2 or px.ndim != 2 or pq.shape[1] != px.shape[1]:
        raise ValueError(f"expected probabilities (nq, C) and (ndb, C), got {pq.shape} and {px.shape}")
    log_none = np.zeros((len(pq), len(px)))
    for c in range(pq.shape[1]):
        log_none += np.log1p(-np.clip(np.outer(pq[:, c], px[:, c]), 0.0, 1.0 - 1e-12))
    return 1.0 - np.exp(log_none)


def fit_multilabel(x: torch.Tensor, y: torch.Tensor, hidden: int, weight_decay: float, epochs: int,
                   batch_size: int, lr: float, seed: int) -> torch.nn.Module:
    """A multi-label classifier on features ``x`` (N, D) float32 with multi-hot labels ``y`` (N, C)
    float32: one logistic output per class, binary cross-entropy
    (:func:`hashrepro.feature_ceiling.fit_classifier`). Returns the module in eval mode (logits (N, C))."""
    from .feature_ceiling import fit_classifier

    return fit_classifier(x, y, int(y.shape[1]), hidden, weight_decay, epochs, batch_size, lr, seed,
                          loss=torch.nn.functional.binary_cross_entropy_with_logits)


def _probs(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(net(x)).numpy()


def mosaic_reference_maps(cfg: MosaicCeilingConfig, progress=print) -> dict:
    """mAP of every retriever of :data:`MOSAIC_RETRIEVERS` on one seed's split (module docstring).

    Returns ``{"metrics": {"map_<retriever>": float, "val_map_<model>_wd<wd>": float,
    "chosen_wd_<model>": float, "seconds_<retriever>": float, "relevant_fraction": float},
    "protocol": {...}, "config": {...}}``."""
    from .methods import mch
    from .methods.mch_data import load_data, prepare_features, relevant_fraction
    from .metrics import mean_average_precision

    mcfg = mch.Config.for_scale(cfg.scale, dataset=cfg.dataset, backbone=cfg.backbone, seed=cfg.seed, progress=False,
                                backbone_input_size=cfg.backbone_input_size)
    ds, sp = load_data(mcfg)
    bank = prepare_features(mcfg, ds, sp, whole_only=True)[0]
    Y = ds.label_matrix().astype(np.float32)
    train, query, db = (np.asarray(v, dtype=np.int64) for v in (sp.train, sp.query, sp.database))
    feats = {k: np.asarray(bank.whole(rows), dtype=np.float32) for k, rows in
             (("train", train), ("query", query), ("db", db))}
    mu, sd = feats["train"].mean(0), feats["train"].std(0) + 1e-6
    t = {k: torch.from_numpy((v - mu) / sd) for k, v in feats.items()}
    ytr = torch.from_numpy(Y[train])
    metrics: dict = {"relevant_fraction": relevant_fraction(mcfg, ds, sp)}

    t0 = time.perf_counter()
    q, x = feats["query"].astype(np.float64), feats["db"].astype(np.float64)
    d2 = (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * q @ x.T
    metrics["map_euclidean"] = mean_average_precision(query_labels=Y[query], db_labels=Y[db], dist=d2)
    metrics["seconds_euclidean"] = time.perf_counter() - t0
    progress(f"seed {cfg.seed}: euclidean mAP {metrics['map_euclidean']:.4f}")

    rng = np.random.default_rng(cfg.seed)
    n_val = max(1, int(round(cfg.val_fraction * len(train))))
    val = np.sort(rng.choice(len(train), n_val, replace=False))
    fit = np.setdiff1d(np.arange(len(train)), val)
    for model, hidden in (("linear", 0), ("mlp", cfg.hidden)):
        t0 = time.perf_counter()
        val_map = {}
        for wd in cfg.weight_decays:
            net = fit_multilabel(t["train"][fit], ytr[fit], hidden, wd, cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed)
            pv, pf = _probs(net, t["train"][val]), _probs(net, t["train"][fit])
            val_map[wd] = mean_average_precision(query_labels=Y[train[val]], db_labels=Y[train[fit]],
                                                 dist=-shared_label_probability(pv, pf))
            metrics[f"val_map_{model}_wd{wd:g}"] = val_map[wd]
        wd = max(cfg.weight_decays, key=lambda w: (val_map[w], -cfg.weight_decays.index(w)))
        metrics[f"chosen_wd_{model}"] = wd
        net = fit_multilabel(t["train"], ytr, hidden, wd, cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed)
        pq, pdb = _probs(net, t["query"]), _probs(net, t["db"])
        metrics[f"map_{model}-p"] = mean_average_precision(query_labels=Y[query], db_labels=Y[db],
                                                           dist=-shared_label_probability(pq, pdb))
        metrics[f"seconds_{model}-p"] = time.perf_counter() - t0
        progress(f"seed {cfg.seed}: {model} (wd {wd:g}, validation mAP {val_map[wd]:.4f}) "
                 f"mAP by P(share a label) {metrics[f'map_{model}-p']:.4f}")
    protocol = dict(sp.protocol, n_database=int(len(db)), n_train=int(len(train)), n_query=int(len(query)),
                    relevance="share >= 1 label", database_includes_train=True,
                    features=f"{cfg.backbone} (ImageNet, frozen) pooled features of the whole mosaic at "
                             f"{mcfg.backbone_size} px, the MCH runs' cache; standardised on the training mosaics",
                    ranking={"euclidean": "Euclidean distance of the raw pooled features",
                             "linear-p": "-P(share a label), linear logistic per class",
                             "mlp-p": f"-P(share a label), MLP {cfg.hidden} ReLU, logistic per class"},
                    model_selection=f"weight decay by validation mAP: {cfg.val_fraction:g} of the training mosaics "
                                    "as queries against the rest; queries never used")
    return {"metrics": metrics, "protocol": protocol, "config": asdict(cfg)}
