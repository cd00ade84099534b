"""How far can any code on the frozen ImageNet features get? Reference retrievers for DRSCH (issue 15).

DRSCH on the frozen pooled EfficientNet-Lite0 features stops at mAP 0.58-0.61, below the quoted
0.615-0.631 (DRSCH summary, Table 1, CIFAR-10). This module measures what the *features* allow on
the same protocol (notes §7: 100 queries and 500 training images per class, the database being the
rest of CIFAR-10 without the training images), with retrievers that are not bound to a short code:

* ``euclidean``: the raw 1,280-d features, Euclidean distance (no training).
* ``linear-p``, ``mlp-p``: a softmax classifier on the training features (linear, or one hidden
  ReLU layer as wide as DRSCH's head, 2,048), and the database ranked by the probability that a
  database item has the query's label under the classifier, ``p_q · p_db`` (eq. below). With
  calibrated probabilities this is the ranking that maximises the expected precision at every
  depth for single-label relevance, so it is the natural upper reference for a hash learnt from
  the same labels on the same features (an estimate, not a proof: a code could in principle be
  better than this classifier).
* ``mlp-class``: the MLP's predicted class as the code (one-hot: two items are at distance 0 when
  their predicted classes are equal, else at the same larger distance),
  Hamming ranking with ties in expected order; what a perfect hashing head on that classifier
  would give.

    score(q, x) = sum_c p(c | f_q) p(c | f_x)          (p: softmax of the classifier, (C,))

The classifiers' weight decay is chosen on a validation split carved from the training images
(``n_val_per_class`` per class); the queries are used only for the reported mAP.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

__all__ = ["CeilingConfig", "RETRIEVERS", "benchmark_main", "fit_classifier", "fit_softmax", "label_agreement", "reference_maps"]

#: Retrievers measured by :func:`reference_maps`, in the order they are reported.
RETRIEVERS = ("euclidean", "linear-p", "mlp-p", "mlp-class")


@dataclass(frozen=True)
class CeilingConfig:
    """One measurement: DRSCH's CIFAR-10 protocol, one seed, the frozen backbone's pooled features."""

    dataset: str = "cifar10"
    seed: int = 0
    backbone: str = "efficientnet_lite0"
    backbone_input_size: int | None = None
    n_query_per_class: int = 100
    n_train_per_class: int = 500
    n_val_per_class: int = 50
    hidden: int = 2048
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decays: tuple = (1e-4, 1e-3, 1e-2)
    max_database: int | None = None
    extra: dict = field(default_factory=dict)


def fit_classifier(x: torch.Tensor, y: torch.Tensor, n_out: int, hidden: int, weight_decay: float, epochs: int,
                   batch_size: int, lr: float, seed: int, loss=torch.nn.functional.cross_entropy) -> torch.nn.Module:
    """A classifier on features ``x`` (N, D) float32 with targets ``y`` (whatever ``loss(logits, y)``
    takes: (N,) int64 for the default cross-entropy, (N, C) multi-hot float32 for binary cross-entropy):
    linear (``hidden=0``) or D -> hidden (ReLU) -> ``n_out``. Adam, ``epochs`` passes of shuffled
    batches. Returns the trained module in eval mode (logits (N, n_out))."""
    g = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    d = x.shape[1]
    net = (torch.nn.Linear(d, n_out) if hidden == 0 else
           torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out)))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    n = x.shape[0]
    net.train()
    for _ in range(int(epochs)):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            loss_value = loss(net(x[idx]), y[idx])
            opt.zero_grad()
            loss_value.backward()
            opt.step()
    return net.eval()


def fit_softmax(x: torch.Tensor, y: torch.Tensor, n_classes: int, hidden: int, weight_decay: float, epochs: int,
                batch_size: int, lr: float, seed: int) -> torch.nn.Module:
    """A softmax classifier on features ``x`` (N, D) float32 with labels ``y`` (N,) int64
    (:func:`fit_classifier` with cross-entropy): logits (N, C)."""
    return fit_classifier(x, y, n_classes, hidden, weight_decay, epochs, batch_size, lr, seed)


def label_agreement(p_query: np.ndarray, p_db: np.ndarray) -> np.ndarray:
    """Distance ``-(p_q · p_db)`` (nq, ndb) from class probabilities (nq, C) and (ndb, C): the
    negative probability that the two share a label (smaller = more likely relevant)."""
    return -(np.asarray(p_query, np.float64) @ np.asarray(p_db, np.float64).T)


def _probs(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(net(x), dim=1).numpy()


def _choose_weight_decay(cfg: CeilingConfig, x: torch.Tensor, y: torch.Tensor, n_classes: int, hidden: int,
                         rng: np.random.Generator) -> tuple[float, dict]:
    """The weight decay with the highest accuracy on ``n_val_per_class`` training images per class
    held out (ties: the first in ``cfg.weight_decays``); returns it and every candidate's accuracy."""
    yn = y.numpy()
    val = np.concatenate([rng.choice(np.flatnonzero(yn == c), cfg.n_val_per_class, replace=False)
                          for c in range(n_classes)])
    fit = np.setdiff1d(np.arange(len(yn)), val)
    acc = {}
    for wd in cfg.weight_decays:
        net = fit_softmax(x[fit], y[fit], n_classes, hidden, wd, cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed)
        with torch.no_grad():
            acc[wd] = float((net(x[val]).argmax(1) == y[val]).float().mean())
    best = max(cfg.weight_decays, key=lambda w: (acc[w], -cfg.weight_decays.index(w)))
    return best, acc


def reference_maps(cfg: CeilingConfig, progress=print) -> dict:
    """mAP of every retriever of :data:`RETRIEVERS` on one seed's split (see the module docstring).

    Returns ``{"metrics": {"map_<retriever>": float, "val_acc_<model>_wd<wd>": float,
    "test_acc_<model>": float, "chosen_wd_<model>": float, "seconds_<retriever>": float},
    "protocol": {...}, "config": {...}}``."""
    from . import data
    from .features import dataset_features
    from .metrics import mean_average_precision

    ds = data.load(cfg.dataset)
    sp = data.split(ds, "per_class", seed=cfg.seed, database_includes_train=False,
                    n_query_per_class=cfg.n_query_per_class, n_train_per_class=cfg.n_train_per_class)
    train, query, db = np.asarray(sp.train), np.asarray(sp.query), np.asarray(sp.database)
    if cfg.max_database is not None and len(db) > cfg.max_database:
        db = np.sort(np.random.default_rng(cfg.seed).choice(db, cfg.max_database, replace=False))
    labels = np.asarray(ds.labels)
    n_classes = int(labels.max()) + 1
    feats = {name: np.asarray(dataset_features(ds, cfg.backbone, indices=rows, input_size=cfg.backbone_input_size),
                              dtype=np.float32) for name, rows in (("train", train), ("query", query), ("db", db))}
    mu, sd = feats["train"].mean(0), feats["train"].std(0) + 1e-6
    t = {k: torch.from_numpy((v - mu) / sd) for k, v in feats.items()}
    ytr = torch.from_numpy(labels[train].astype(np.int64))
    yq, ydb = labels[query], labels[db]
    metrics: dict = {}

    t0 = time.perf_counter()
    q, x = feats["query"].astype(np.float64), feats["db"].astype(np.float64)
    d2 = (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * q @ x.T
    metrics["map_euclidean"] = mean_average_precision(query_labels=yq, db_labels=ydb, dist=d2)
    metrics["seconds_euclidean"] = time.perf_counter() - t0
    progress(f"seed {cfg.seed}: euclidean mAP {metrics['map_euclidean']:.4f}")

    for model, hidden in (("linear", 0), ("mlp", cfg.hidden)):
        t0 = time.perf_counter()
        wd, acc = _choose_weight_decay(cfg, t["train"], ytr, n_classes, hidden, np.random.default_rng(cfg.seed))
        for w, a in acc.items():
            metrics[f"val_acc_{model}_wd{w:g}"] = a
        metrics[f"chosen_wd_{model}"] = wd
        net = fit_softmax(t["train"], ytr, n_classes, hidden, wd, cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed)
        pq, pdb = _probs(net, t["query"]), _probs(net, t["db"])
        metrics[f"test_acc_{model}"] = float((pq.argmax(1) == yq).mean())
        metrics[f"map_{model}-p"] = mean_average_precision(query_labels=yq, db_labels=ydb,
                                                           dist=label_agreement(pq, pdb))
        metrics[f"seconds_{model}-p"] = time.perf_counter() - t0
        progress(f"seed {cfg.seed}: {model} (wd {wd:g}, val acc {acc[wd]:.3f}) "
                 f"mAP by P(same label) {metrics[f'map_{model}-p']:.4f}")
        if model == "mlp":
            cq, cdb = pq.argmax(1), pdb.argmax(1)
            metrics["map_mlp-class"] = mean_average_precision(query_labels=yq, db_labels=ydb, ties="expected",
                                                              dist=(cq[:, None] != cdb[None, :]).astype(np.float32))
            progress(f"seed {cfg.seed}: mlp class code mAP {metrics['map_mlp-class']:.4f}")
    protocol = dict(sp.protocol, n_database=int(len(db)), n_train=int(len(train)), n_query=int(len(query)),
                    ranking={"euclidean": "Euclidean distance of the raw pooled features",
                             "linear-p": "-(p_q . p_db), linear softmax",
                             "mlp-p": f"-(p_q . p_db), MLP {cfg.hidden} ReLU",
                             "mlp-class": "predicted class equal or not (a one-hot class code), ties expected"},
                    model_selection=f"weight decay by accuracy on {cfg.n_val_per_class} training images per "
                                    "class held out; queries never used")
    return {"metrics": metrics, "protocol": protocol, "config": asdict(cfg)}


def benchmark_main(argv, *, paper: str, script: str, out: str, make_config, measure, description: str) -> int:
    """The command line shared by the feature-ceiling benchmarks (``benchmarks/drsch_feature_ceiling.py``,
    ``benchmarks/mch_feature_ceiling.py``): ``--seeds``, ``--epochs``, ``--out``; per seed ``make_config(seed,
    epochs)`` -> ``measure(cfg, progress)`` (a dict with ``metrics``, ``protocol``, ``config``) -> one record
    ``feature-ceiling-<backbone>`` of ``paper`` saved under ``out`` with the command, commit and wall time."""
    import argparse
    import sys

    from .provenance import start_run
    from .results import make_record, save_run
    from .train import describe_device

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=make_config(0, None).epochs)
    ap.add_argument("--out", default=out)
    a = ap.parse_args(argv)
    if a.epochs <= 0:
        ap.error(f"--epochs must be a positive integer, got {a.epochs}")
    cmd = (f"python {script} " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    for seed in a.seeds:
        started = start_run()
        t0 = time.perf_counter()
        cfg = make_config(seed, a.epochs)
        res = measure(cfg, progress=lambda s: print(s, flush=True))
        rec = make_record(paper, f"feature-ceiling-{cfg.backbone}", cfg.dataset, 0, seed, "default", res["config"],
                          res["protocol"], res["metrics"], None, time.perf_counter() - t0, describe_device("cpu"),
                          cmd, started=started)
        path = save_run(rec, a.out, f"feature-ceiling_{cfg.dataset}_seed{seed}")
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    return 0
