"""CNNH / CNNH* / CNNH+: the two-stage deep hashing baseline of DNNH's Table 2.

Xia, Pan, Lai, Liu, Yan, *Supervised Hashing for Image Retrieval via Image Representation
Learning*, AAAI 2014 (CNNH), as Lai et al. (DNNH, CVPR 2015, §4.1) re-implemented it: "CNNH*"
uses CNNH's first stage and, in the second stage, "the same stack of convolution-pooling layers
as in Table 1, except for modifying the size of the last convolution to bits × 1 × 1 and using
an average pooling layer of size bits × 1 × 1 as the output layer".

Stage 1: approximate codes from the labels
------------------------------------------
With S ∈ {−1, 1}^{n×n} the label similarity of the n training images (+1 same class, −1
otherwise; :func:`hashrepro.pseudolabels.class_similarity`), CNNH learns

    min_H  ‖S − (1/q) H Hᵀ‖²_F   over  H ∈ [−1, 1]^{n×q}   (the relaxation of H ∈ {−1, 1}^{n×q})

by **random coordinate descent with Newton directions** (CNNH §"Stage 1"): entries H_ij are
visited one at a time in a random order (a new permutation of all n·q entries per sweep); with
L = H Hᵀ − q S, changing H_ij by d changes the objective (times q²) by the quartic

    Δ(d) = 4 d (L H)_ij + 2 d² (L_ii + ‖H_·j‖² + H_ij²) + 4 H_ij d³ + d⁴,

whose derivatives at 0 are g' = 4 (L H)_ij and g'' = 4 (‖H_·j‖² + H_ij² + L_ii); the step is the
Newton step d = −g'/g'', clipped so that H_ij + d stays in [−1, 1]. After the last sweep,
H ← sign(H) (0 → +1). Initialisation: H uniform in [−1, 1] (seeded).

What we implemented beyond / differently from the paper (:func:`stage1_codes`):

* **Safeguarded step** (``safeguard=True``, default): the paper takes the Newton step blindly,
  which can *raise* the quartic objective (g'' ≤ 0 happens, since L_ii = ‖h_i‖² − q ≤ 0 on the
  box). We evaluate Δ(d) exactly and halve d until Δ(d) < 0 (at most 30 halvings, else the entry
  is left unchanged); when g'' ≤ 0 the first trial step is the box end in the descent direction.
  The relaxed objective is thereby non-increasing entry by entry. ``safeguard=False`` is the
  paper's plain clipped Newton step.
* **Bookkeeping** instead of storing the n × n matrix L: (L H)_ij = (H G)_ij − q (S H)_ij with
  G = HᵀH (q × q) kept up to date; for single-label data S = 2 Y Yᵀ − 1 (Y one-hot), so
  (S H)_i = 2 C_{c(i)} − T with per-class sums C and the total T of the rows of H: an update costs
  O(q) instead of O(n) (same arithmetic as the paper's, exact up to rounding). Multi-label
  labels (or an explicit S) use a dense path with S H stored (O(n) per update).
* **Stopping**: at most ``sweeps`` sweeps, earlier when a sweep lowers the objective by less than
  ``tol`` (relative). The paper gives no count.

Stage 2: a network that predicts H
----------------------------------
``backbone="scratch"`` (CNNH*): DNNH's NIN sub-network (:class:`hashrepro.models.nin.NINSubNetwork`,
built by its builder) with its last 1×1 convolution (50·q channels + ReLU in DNNH) replaced by a
1×1 convolution to ``bits`` channels **without** ReLU, followed by the global average pool: the
pooled outputs are the q logits z (N, q) (:class:`CNNHNet`). The loss (``loss``):

* ``"bce"`` (default): the **cross-entropy** of σ(z) against the target bits (H + 1)/2 — CNNH
  trains its output units with a cross-entropy loss against the approximate codes;
* ``"mse"``: the squared error ‖z − H‖² (a Euclidean regression to the ±1 targets).

Codes: b = 1 where z > 0 (σ(z) > 0.5; for ``mse`` z is closer to +1 than to −1). CNNH+
(``method="cnnh-plus"``): ``n_classes`` extra outputs trained with the softmax cross-entropy on
the class labels (weight ``class_weight``), not used for the codes.

Same optimisation and protocol as DNNH (:mod:`hashrepro.methods.dnnh`, reused, not duplicated):
its per-class split (100 queries / 500 training images per class, the database all non-query
images), its image preparation (Caffe mean subtraction, 32×32), SGD momentum 0.9, batch 64,
weight decay 5e-4, the lr and its steps, and the evaluation (MAP of Hamming ranking,
precision within radius 2, precision at k) through :func:`hashrepro.metrics.evaluate`.

``backbone="efficientnet_lite0"``: the frozen ImageNet backbone's cached pooled features
(:func:`hashrepro.features.dataset_features`, as DNNH's pretrained regime); the last 1×1
convolution to ``bits`` channels + average pool becomes a linear layer 1280 → bits on the pooled
features (exact: a 1×1 convolution commutes with average pooling, and there is no ReLU here).
Records: ``cnnh-star`` / ``cnnh-plus``, with ``-efficientnet_lite0`` on the pretrained backbone,
under ``results/dnnh/`` (paper ``"dnnh"``: it is a row of DNNH's Table 2).

The chapter notebook (``notebooks/dnnh.ipynb``) picks the recipe with its ``method`` parameter
through :func:`chapter_recipe`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models.cnnh_net import CNNHNet
from ..params import check_seed
from ..recipe import RecipeConfig, bit_mean, final_loss, loss_curve, recipe_run
from . import dnnh as _dnnh
from .cnnh_stage1 import stage1_codes, stage1_objective

__all__ = ["Config", "SCALES", "BACKBONES", "METHODS", "LOSSES", "CNNHNet", "stage1_codes", "stage1_objective",
           "method_name", "build_model", "train_net", "run", "chapter_recipe", "describe", "CHAPTER_METHODS"]

SCALES = _dnnh.SCALES
BACKBONES = _dnnh.BACKBONES
#: CNNH* (codes only) and CNNH+ (codes + class labels as extra outputs).
METHODS = ("cnnh-star", "cnnh-plus")
LOSSES = ("bce", "mse")
#: The ``method`` parameter of the DNNH chapter notebook.
CHAPTER_METHODS = ("dnnh",) + METHODS


# ============================================================================ config
@dataclass
class Config(RecipeConfig):
    """Every parameter of a CNNH* / CNNH+ run. Build with :meth:`for_scale`; validated on creation.

    Data / protocol (DNNH's, §4.1)
        dataset, data_root, n_query_per_class=100, n_train_per_class=500,
        database_includes_train=True, topk (None = all; 5000 on NUS-WIDE), radius=2, ks.
    Method
        method ("cnnh-star" | "cnnh-plus"), bits, loss ("bce" cross-entropy to the target bits |
        "mse" regression to ±1), class_weight (CNNH+: weight of the class cross-entropy).
    Stage 1
        stage1_sweeps (max sweeps), stage1_tol (relative decrease that stops it), stage1_safeguard.
    Model / backbone
        width, input_size (scratch; as DNNH), backbone ("scratch" | "efficientnet_lite0"),
        backbone_input_size.
    Optimisation (DNNH's)
        iterations, batch_size=64, lr, lr_steps, lr_gamma, momentum=0.9, weight_decay=5e-4.
    Run
        seed, scale, device, num_threads, eval_batch_size, progress.
    """

    dataset: str = "mnist5k"
    bits: int = 48
    seed: int = 0
    scale: str = "default"
    method: str = "cnnh-star"
    device: str = "auto"
    data_root: str | None = None
    n_query_per_class: int = 100
    n_train_per_class: int = 500
    database_includes_train: bool = True
    topk: int | None = None
    radius: int = 2
    ks: tuple = tuple(range(100, 1001, 100))
    loss: str = "bce"
    class_weight: float = 1.0
    stage1_sweeps: int = 50
    stage1_tol: float = 1e-4
    stage1_safeguard: bool = True
    width: float = 0.25
    input_size: int = 32
    backbone: str = "scratch"
    backbone_input_size: int | None = None
    iterations: int = 1200
    batch_size: int = 64
    lr: float = 0.03
    lr_steps: tuple = (0.7, 0.9)
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    num_threads: int | None = 1
    eval_batch_size: int = 500
    progress: bool | None = None

    #: DNNH's schedules (:attr:`hashrepro.methods.dnnh.Config.PRESETS`), so that the two rows of Table 2
    #: differ only in the method; smoke runs at most 20 stage-1 sweeps; the paper scale keeps no centring.
    PRESETS = {
        "smoke": {**_dnnh.Config.PRESETS["smoke"], "stage1_sweeps": 20},
        "default": dict(_dnnh.Config.PRESETS["default"]),
        "paper": dict(width=1.0, iterations=100_000, num_threads=None, lr=0.01),
    }

    @classmethod
    def presets(cls, scale: str, overrides) -> dict:
        """Presets of ``scale`` as DNNH's (:meth:`hashrepro.methods.dnnh.Config.presets`):

        ``"smoke"``: seconds (width 1/16, 15 iterations, 10 queries / 30 training images per class,
        20 stage-1 sweeps at most). ``"default"``: width 1/4 of Table 1, 1,200 iterations of 64
        (scratch) or :data:`hashrepro.methods.dnnh.PRETRAINED_ITERATIONS` = 5,000 on the frozen
        ImageNet features, lr 0.03. ``"paper"``: Table 1's widths, 100,000 iterations, lr 0.01.
        Stage 1 runs up to 50 sweeps (stopping when one lowers the objective by < 0.01 %) at
        every scale: on CIFAR-10's 5,000 training images that is seconds.
        """
        return _dnnh.Config.presets.__func__(cls, scale, overrides)

    def validate(self) -> None:
        self.ks = tuple(int(k) for k in self.ks)
        self.lr_steps = tuple(float(f) for f in self.lr_steps)
        bad = self.invalid
        if self.method not in METHODS:
            bad("method", f"valid: {METHODS}")
        if self.scale not in SCALES:
            bad("scale", f"valid: {SCALES}")
        if self.loss not in LOSSES:
            bad("loss", f"valid: {LOSSES} (cross-entropy to the target bits | regression to ±1)")
        if self.backbone not in BACKBONES:
            bad("backbone", f"valid: {BACKBONES}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)) or self.bits < 1:
            bad("bits", "must be a positive integer (the paper uses 12, 24, 32, 48)")
        check_seed(self.seed)
        from ..models.nin import SUPPORTED_INPUT_SIZES

        if self.input_size not in SUPPORTED_INPUT_SIZES:
            bad("input_size", f"valid: {SUPPORTED_INPUT_SIZES}")
        for name in ("width", "lr"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        if not self.class_weight >= 0:
            bad("class_weight", "must be >= 0")
        if isinstance(self.stage1_sweeps, bool) or not isinstance(self.stage1_sweeps, (int, np.integer)) \
                or self.stage1_sweeps < 0:
            bad("stage1_sweeps", "must be an int >= 0")
        if not self.stage1_tol >= 0:
            bad("stage1_tol", "must be >= 0")
        if not isinstance(self.iterations, (int, np.integer)) or self.iterations < 0:
            bad("iterations", "must be an int >= 0")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            bad("batch_size", "must be an int >= 1")
        if not 0 <= self.momentum < 1:
            bad("momentum", "must be in [0, 1)")
        if self.weight_decay < 0:
            bad("weight_decay", "must be >= 0")
        if any(not 0 < f < 1 for f in self.lr_steps):
            bad("lr_steps", "fractions of training strictly between 0 and 1")
        if self.topk is not None and self.topk < 1:
            bad("topk", "must be None (rank the whole database) or >= 1")
        if self.n_query_per_class < 1 or self.n_train_per_class < 1:
            bad("n_query_per_class", "per-class counts must be >= 1")
        if self.backbone_input_size is not None and (not isinstance(self.backbone_input_size, (int, np.integer))
                                                     or self.backbone_input_size < 16):
            bad("backbone_input_size", "must be None (the backbone's default) or an int >= 16 (pixels)")


def method_name(method: str = "cnnh-star", backbone: str = "scratch") -> str:
    """Record name: ``cnnh-star`` / ``cnnh-plus``, with ``-efficientnet_lite0`` on the pretrained backbone."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    return method if backbone == "scratch" else f"{method}-{backbone}"


def build_model(cfg: Config, in_channels: int, n_classes: int = 0) -> CNNHNet:
    """The network of ``cfg``; ``in_channels``: image channels (scratch) or the feature width
    (pretrained regime); ``n_classes`` extra outputs for CNNH+."""
    extra = int(n_classes) if cfg.method == "cnnh-plus" else 0
    if cfg.backbone != "scratch":
        return CNNHNet(cfg.bits, n_classes=extra, in_features=int(in_channels))
    return CNNHNet(cfg.bits, in_channels=int(in_channels), input_size=cfg.input_size, width=cfg.width,
                   n_classes=extra)


def train_net(cfg: Config, x_train: torch.Tensor, targets: torch.Tensor, y_train: torch.Tensor | None, device,
              gen: torch.Generator, n_classes: int = 0):
    """Stage 2: fit the network to the stage-1 codes. Returns ``(net, history)``.

    x_train : (N, C, S, S) images (mean subtracted) or (N, D) pooled features, on ``device``;
    targets : (N, bits) float in {−1, +1} (stage-1 codes); y_train : (N,) int class ids (CNNH+).
    """
    from ..train import History, batches, fit

    n = int(x_train.shape[0])
    net = build_model(cfg, int(x_train.shape[1]), n_classes).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    milestones = sorted({int(round(f * cfg.iterations)) for f in cfg.lr_steps})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg.lr_gamma)
    batch_iter = batches(n, min(cfg.batch_size, n), gen)
    bits = cfg.bits

    def step(it: int) -> torch.Tensor:
        idx = next(batch_iter).to(device)
        out = net(x_train[idx])
        z, t = out[:, :bits], targets[idx]
        if cfg.loss == "bce":
            loss = nn.functional.binary_cross_entropy_with_logits(z, (t + 1) / 2)
        else:
            loss = ((z - t) ** 2).sum(1).mean()
        if net.n_classes:
            loss = loss + cfg.class_weight * nn.functional.cross_entropy(out[:, bits:], y_train[idx])
        return loss

    net.train()
    hist = fit(step, optimizer=opt, iterations=cfg.iterations, scheduler=sched,
               desc=f"{method_name(cfg.method, cfg.backbone)} {cfg.dataset} {cfg.bits}b", progress=cfg.progress) \
        if cfg.iterations > 0 else History()
    return net, hist


def _logits(net: CNNHNet, x_chunks, device, batch_size: int) -> np.ndarray:
    """Hash logits (N, bits) float32 of an iterable of input tensors (chunk by chunk)."""
    from ..train import encode

    net.eval()
    outs = [encode(net.hash_logits, x, batch_size=batch_size, device=device) for x in x_chunks]
    outs = [o for o in outs if o.size]
    return np.concatenate(outs) if outs else np.zeros((0, net.bits), np.float32)


def _chunks_images(images, cfg: Config, mean):
    chunk = max(cfg.eval_batch_size, 1) * 8
    for i in range(0, len(images), chunk):
        yield _dnnh._prepare(images[i:i + chunk], cfg, mean)


def _chunks_features(feats, idx, cfg: Config):
    chunk = max(cfg.eval_batch_size, 1) * 8
    for i in range(0, len(idx), chunk):
        yield torch.from_numpy(np.ascontiguousarray(feats[idx[i:i + chunk]], dtype=np.float32))


# ============================================================================ the run
def run(cfg: Config | None = None, *, command: str | None = None, **overrides) -> dict:
    """Stage 1, stage 2 and DNNH's evaluation; return the run record (paper ``"dnnh"``).

    ``run(Config.for_scale("smoke", dataset="digits"))`` or ``run(scale="smoke", dataset="cifar10", bits=12)``;
    the set-up and wrap-up are DNNH's (:func:`hashrepro.recipe.recipe_run`, its split, inputs,
    metrics and protocol).

    Metrics: DNNH's (``map``, ``precision_radius2``, ``recall_radius2``, precision at k,
    ``train_time_s``, ``encode_time_s``, ``final_loss`` (last 50 iterations), ``bit_mean`` (also
    under its legacy name ``bit_balance``), ``saturated_fraction``: share of database σ(z) within
    0.01 of 0 or 1) plus ``stage1_objective`` (‖S − HHᵀ/q‖²/n² of the
    binary stage-1 codes, the mean squared error per pair), ``stage1_objective_relaxed``,
    ``stage1_sweeps``, ``stage1_time_s``, ``stage1_map`` (MAP of the stage-1 codes ranking the
    training set against itself: how good the targets are) and ``target_bit_agreement`` (share
    of training-set bits the network reproduces). Curves: the evaluation curves, ``train_loss``
    and ``stage1_objective`` (per sweep).
    """
    from .. import data
    from ..codes import binarize
    from ..diagnostics import diagnose, flag_record
    from ..metrics import evaluate

    with recipe_run(Config, cfg, overrides) as r:
        cfg, device, gen = r.cfg, r.device, r.generator
        ds = data.load(cfg.dataset, root=cfg.data_root)
        sp = _dnnh._split(ds, cfg)
        train_idx, query_idx, db_idx = (np.asarray(a, dtype=np.int64) for a in (sp.train, sp.query, sp.database))
        labels = np.asarray(ds.labels)
        y_tr = labels[train_idx]

        # ---- stage 1
        codes_tr, s1 = stage1_codes(y_tr, cfg.bits, sweeps=cfg.stage1_sweeps, tol=cfg.stage1_tol, seed=cfg.seed,
                                    safeguard=cfg.stage1_safeguard)
        b01 = (codes_tr > 0).astype(np.uint8)
        s1_map = float(evaluate(b01, b01, y_tr, y_tr, radius=cfg.radius, ks=())["map"]) if len(y_tr) > 1 else float("nan")

        # ---- stage 2
        x_train, mean, feats, backbone_meta, feature_read_s = _dnnh._training_inputs(ds, train_idx, cfg, device)
        if feats is not None:
            backbone_meta["backbone_head"] = f"linear {feats.shape[1]} -> bits (the last 1x1 conv + average pool)"
        targets = torch.from_numpy(codes_tr.astype(np.float32)).to(device)
        n_classes = 0
        y_t = None
        if cfg.method == "cnnh-plus":
            if y_tr.ndim != 1:
                raise ValueError("method='cnnh-plus' needs single-label data (class ids); got multi-hot labels")
            classes, y_idx = np.unique(y_tr, return_inverse=True)
            n_classes = len(classes)
            y_t = torch.from_numpy(y_idx.astype(np.int64)).to(device)
        net, hist = train_net(cfg, x_train, targets, y_t, device, gen, n_classes)
        fit_train = _logits(net, [x_train.cpu()], device, cfg.eval_batch_size)
        agreement = float(np.mean((fit_train > 0) == (codes_tr > 0))) if fit_train.size else float("nan")
        del x_train

        # ---- encode and evaluate (DNNH's protocol)
        t_enc = time.perf_counter()
        if feats is None:
            z_q = _logits(net, _chunks_images(ds.images[query_idx], cfg, mean), device, cfg.eval_batch_size)
            z_db = _logits(net, _chunks_images(ds.images[db_idx], cfg, mean), device, cfg.eval_batch_size)
        else:
            z_q = _logits(net, _chunks_features(feats, query_idx, cfg), device, cfg.eval_batch_size)
            z_db = _logits(net, _chunks_features(feats, db_idx, cfg), device, cfg.eval_batch_size)
        encode_time = time.perf_counter() - t_enc
        q_codes = binarize(z_q, threshold=0.0)
        db_codes = binarize(z_db, threshold=0.0)
        ev = evaluate(q_codes, db_codes, labels[query_idx], labels[db_idx], topk=cfg.topk, radius=cfg.radius,
                      ks=cfg.ks)

        metrics = _dnnh._eval_metrics(ev)
        sig = 1.0 / (1.0 + np.exp(-np.clip(z_db, -50, 50)))
        metrics.update(
            train_time_s=float(hist.wall_time_s), encode_time_s=float(encode_time),
            final_loss=final_loss(hist.loss, _dnnh.FINAL_LOSS_LAST),
            bit_mean=bit_mean(db_codes),
            bit_balance=bit_mean(db_codes),  # legacy name of bit_mean
            saturated_fraction=float(np.mean((sig < 0.01) | (sig > 0.99))) if sig.size else float("nan"),
            stage1_objective=float(s1["objective_binary"] / s1["n_pairs"]),
            stage1_objective_relaxed=float(s1["objective"][-1] / s1["n_pairs"]),
            stage1_sweeps=float(s1["sweeps"]), stage1_time_s=float(s1["time_s"]), stage1_map=s1_map,
            target_bit_agreement=agreement,
        )
        if feature_read_s is not None:
            metrics["backbone_feature_read_s"] = float(feature_read_s)
        curves = dict(ev.get("curves", {}))
        curves["train_loss"] = loss_curve(hist.loss)
        curves["stage1_objective"] = {"sweep": list(range(len(s1["objective"]))),
                                      "objective": [v / s1["n_pairs"] for v in s1["objective"]]}

        protocol = _dnnh._protocol(sp, train_idx, query_idx, db_idx, cfg, ev, backbone_meta)
        protocol["stage1"] = ("CNNH random coordinate descent (Newton step, clipped to [-1, 1]"
                              + (", safeguarded" if cfg.stage1_safeguard else "") + f"), path {s1['path']}")
        protocol["stage2_loss"] = {"bce": "cross-entropy of sigmoid(z) to (H+1)/2",
                                   "mse": "squared error of z to H"}[cfg.loss]
        record = r.record(paper="dnnh", method=method_name(cfg.method, cfg.backbone),
                          config=_dnnh._jsonable(cfg.to_dict()), protocol=protocol, metrics=metrics,
                          curves=_dnnh._jsonable(curves), command=command)
        flag_record(record, diagnose(db_codes, hist.loss, labels=labels[db_idx]))
        return record


# ============================================================================ the chapter notebook
def chapter_recipe(method: str, scale: str, variant: str = "dem", **overrides):
    """The DNNH chapter notebook's ``method`` parameter: ``(recipe module, config)``.

    ``method="dnnh"``: :mod:`hashrepro.methods.dnnh` with ``variant``; ``"cnnh-star"`` /
    ``"cnnh-plus"``: this module (``variant`` must stay at DNNH's default ``"dem"``; DNNH-only
    keys in ``overrides`` are an error from :meth:`Config.for_scale`).
    """
    if method not in CHAPTER_METHODS:
        raise ValueError(f"method must be one of {CHAPTER_METHODS}, got {method!r}")
    if method == "dnnh":
        return _dnnh, _dnnh.Config.for_scale(scale, variant=variant, **overrides)
    if variant != "dem":
        raise ValueError(f"variant={variant!r} is a DNNH option (dem | fc | two-subnets); with method={method!r} "
                         "leave it at 'dem'")
    import sys

    return sys.modules[__name__], Config.for_scale(scale, method=method, **overrides)


def describe(cfg) -> str:
    """One line on what a config of either recipe will run (printed by the notebook)."""
    if isinstance(cfg, Config):
        return (f"{method_name(cfg.method, cfg.backbone)} on {cfg.dataset}: {cfg.bits} bits, stage 1 up to "
                f"{cfg.stage1_sweeps} sweeps, stage 2 {cfg.iterations} iterations ({cfg.loss}), width {cfg.width}, "
                f"lr {cfg.lr}")
    return (f"{_dnnh.method_name(cfg.variant, cfg.backbone, cfg.margin)} on {cfg.dataset}: {cfg.bits} bits, {cfg.iterations} "
            f"iterations, width {cfg.width}, lr {cfg.lr}, eps shrinks every {cfg.epsilon_every_effective} iterations")
