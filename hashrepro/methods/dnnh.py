"""DNNH: Lai, Pan, Liu, Yan, *Simultaneous Feature Learning and Hash Coding with Deep Neural
Networks*, CVPR 2015. The whole recipe, from dataset to run record.

Pipeline (paper section in brackets)

1. Split (§4.1): 100 queries and 500 training images per class; the database is all non-query
   images (training images included, as in CNNH; ``database_includes_train`` switches it)
   (:func:`hashrepro.data.split` protocol ``"per_class"``). NUS-WIDE: MAP within the top 5,000.
2. Network: the NIN shared sub-network (§3.2, Table 1; 32×32 derivation in
   :mod:`hashrepro.models.nin`) with a divide-and-encode module (§3.3), or the FC / two-sub-network
   ablations (§4.3, §4.4). Images are scaled to [0, 1] and the training-set mean per channel is
   subtracted (Caffe's mean subtraction). MNIST-sized inputs are resized to 32×32 by default.
3. Training: in-batch triplets from the class labels (§4.1 "randomly constructed based on the
   image class labels"), triplet ranking loss eq. 2 with margin 1, SGD momentum 0.9, batch 64,
   weight decay 0.0005 (§4.1). ε of eq. 6 starts at 0.5 and shrinks by 20% every 20,000
   iterations; a shorter schedule shrinks it at the same *fractions* of training
   (every ``20000 × iterations / paper_iterations`` iterations).
4. Prediction (§3.4): b = sign(F(I) − 0.5), i.e. bit = 1 where F(I) > 0.5.
5. Evaluation: MAP of Hamming ranking (Table 2), precision within Hamming radius 2,
   precision–recall of Hamming ranking, precision at the top k (Figs. 5–8), via
   :func:`hashrepro.metrics.evaluate`.

What the paper leaves open and we chose (each is a ``Config`` field, recorded in the run record):
the learning rate and its schedule, β of eq. 5, the number of iterations
(``paper_iterations``; the text only says ε shrinks "after every 20,000 iterations"), the
initialisation, and whether the two-sub-network variant duplicates the divide-and-encode module.
One addition that is not in the paper, on by default at the CPU scales: ``center=True``
(mean-centring of the hash layer's pre-activations; see :class:`hashrepro.models.nin.MeanCenter`).

Two regimes (``Config.backbone``)
---------------------------------
``"scratch"`` (default): the paper's NIN network trained from scratch on the images (above).

``"efficientnet_lite0"``: the pretrained regime. The ImageNet EfficientNet-Lite0
(:mod:`hashrepro.models.backbones`) is frozen and its pooled 1280-d features are computed once
and cached (:func:`hashrepro.features.dataset_features`; grey images are repeated to 3 channels;
``backbone_input_size`` = None uses the backbone's 160 px). On top of them, the paper's own head
and loss: the last 1×1 convolution to 50·q channels + ReLU becomes a linear layer 1280 → 50·q +
ReLU on the **pooled** features (:class:`hashrepro.models.nin.FeatureProjection`; deviation: a
1×1 convolution and average pooling commute, only the ReLU's position differs), then the
divide-and-encode module, or the FC encoder, or — for two sub-networks — two separate
projections for the query (P) and the positive/negative/database side (Q) feeding the shared
module; the triplet ranking loss, ε schedule and prediction are unchanged. No pixel mean is
subtracted (the features are the input); no data augmentation. Schedule: see :meth:`Config.for_scale`.
Records are named ``dnnh-<variant>-efficientnet_lite0`` and carry ``protocol["backbone"]``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..losses.triplet import TripletRankingLoss
from ..models.nin import FEATURES_PER_BIT, SUPPORTED_INPUT_SIZES, VARIANTS, DNNHNet
from ..diagnostics import diagnose, flag_record
from ..params import check_seed
from ..recipe import RecipeConfig, bit_mean, final_loss, loss_curve, recipe_run

#: Iterations averaged by the ``final_loss`` metric (:func:`hashrepro.recipe.final_loss`).
FINAL_LOSS_LAST = 50

__all__ = ["Config", "SCALES", "BACKBONES", "PAPER_EPSILON_EVERY", "PRETRAINED_ITERATIONS", "FINAL_LOSS_LAST", "run",
           "build_model", "train_net", "epsilon_at", "method_name"]

SCALES = ("smoke", "default", "paper")
#: "scratch": the paper's NIN network trained on the images (the faithful rows);
#: "efficientnet_lite0": the ImageNet backbone, frozen, pooled features cached, DNNH's head on top.
BACKBONES = ("scratch", "efficientnet_lite0")
#: Iterations of 64 of the pretrained regime's "default" scale (see ``Config.for_scale``).
PRETRAINED_ITERATIONS = 5_000
#: §4.1: "decrease it by 20% after every 20,000 iterations".
PAPER_EPSILON_EVERY = 20_000
#: Datasets whose MAP is computed within the top 5,000 returned (Table 2 caption).
_TOPK_5000 = ("nuswide21", "nuswide")


@dataclass
class Config(RecipeConfig):
    """Every parameter of a DNNH run. Build with :meth:`for_scale`; validated on creation.

    Data / protocol
        dataset, data_root (None: ``HASHREPRO_DATA``), n_query_per_class=100,
        n_train_per_class=500, database_includes_train=True (the database is every non-query
        image, training images included, as in CNNH whose protocol DNNH follows), topk (None = all; 5000 on NUS-WIDE),
        radius=2, ks (precision at the top k).
    Model
        variant ("dem" | "fc" | "two-subnets"), bits, width (channel multiplier of Table 1;
        1.0 = paper), input_size (32; MNIST is resized to it), beta (eq. 5),
        epsilon0=0.5, epsilon_decay=0.8, epsilon_every (None: scaled, see module doc),
        center (mean-centre the hash-layer pre-activations, not in the paper; True at the
        smoke/default scales where, without it, most bits stay constant over all images — see
        :class:`hashrepro.models.nin.MeanCenter`; False at the paper scale).
    Backbone
        backbone ("scratch" = the NIN network on images | "efficientnet_lite0" = the frozen
        ImageNet backbone's cached pooled features + :class:`~hashrepro.models.nin.FeatureProjection`;
        ``width`` and ``input_size`` are then unused), backbone_input_size (pixels fed to the
        backbone; None = its default, 160).
    Optimisation
        iterations, paper_iterations (the length the ε schedule refers to), batch_size=64,
        lr, lr_steps (fractions of training where lr is multiplied by lr_gamma), momentum=0.9,
        weight_decay=5e-4, margin=1.0, triplets ("all" in-batch triplets | "random").
    Run
        seed, scale, device ("auto" | "cpu" | "cuda"), num_threads (CPU threads; None = leave),
        eval_batch_size, progress.
    """

    dataset: str = "mnist5k"
    bits: int = 48
    seed: int = 0
    scale: str = "default"
    variant: str = "dem"
    device: str = "auto"
    data_root: str | None = None
    # protocol (§4.1)
    n_query_per_class: int = 100
    n_train_per_class: int = 500
    database_includes_train: bool = True
    topk: int | None = None
    radius: int = 2
    ks: tuple = tuple(range(100, 1001, 100))
    # model (§3.2, §3.3)
    width: float = 0.25
    input_size: int = 32
    beta: float = 1.0
    epsilon0: float = 0.5
    epsilon_decay: float = 0.8
    epsilon_every: int | None = None
    center: bool = True
    # backbone (the two regimes)
    backbone: str = "scratch"
    backbone_input_size: int | None = None
    # optimisation (§4.1)
    iterations: int = 1200
    paper_iterations: int = 100_000
    batch_size: int = 64
    lr: float = 0.03
    lr_steps: tuple = (0.7, 0.9)
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    margin: float = 1.0
    triplets: str = "all"
    # run
    num_threads: int | None = 1
    eval_batch_size: int = 500
    progress: bool | None = None

    PRESETS = {
        "smoke": dict(width=0.0625, iterations=15, batch_size=32, n_query_per_class=10, n_train_per_class=30,
                      ks=(10, 20, 50)),
        "default": dict(width=0.25, iterations=1200),
        "paper": dict(width=1.0, iterations=100_000, num_threads=None, center=False, lr=0.01),
    }

    # ------------------------------------------------------------------ construction
    @classmethod
    def presets(cls, scale: str, overrides) -> dict:
        """Presets of ``scale`` (:attr:`PRESETS`) plus those that depend on the overrides.

        ``"smoke"``: seconds, for tests (tiny network, 15 iterations).
        ``"default"``: CPU-sized (width 1/4 of Table 1's channels, 1,200 iterations ≈ 2–4 min of
        training on one core at 48 bits); far shorter than the paper's schedule.
        ``"paper"``: Table 1's widths, ``paper_iterations`` = 100,000 iterations (ε shrinks 4×) and
        the paper's module exactly (``center=False``, lr 0.01), for a GPU.

        With ``backbone="efficientnet_lite0"`` (cached features; only the head trains: an
        iteration of 64 at 48 bits costs ≤ 40 ms of CPU time on one core, measured on the shared
        2-core machine; two sub-networks ≤ 45 ms): ``"default"`` runs
        :data:`PRETRAINED_ITERATIONS` = 5,000 iterations of 64 (64 epochs of CIFAR-10's 5,000
        training images, 1/20 of the paper's 100,000; ≤ 4 min of training, so one run with
        encoding and evaluation stays well under 10 min; ε shrinks at the paper's fractions, every
        1,000 iterations, 0.5 → 0.5·0.8⁴ as in the paper) with lr 0.03 and ``center=True`` (the
        scratch default's optimiser; on the partial CIFAR-10 features, three classes, a validation
        split of training images reached mAP 0.87 after 1,000 iterations with 0.3% of the triplets
        still active); ``"paper"`` the paper's 100,000 iterations (≈ 1 h on a CPU core, minutes on
        a GPU) with lr 0.01 and ``center=False``; ``"smoke"`` is unchanged. NUS-WIDE: ``topk``
        5000 unless given (Table 2 caption).
        """
        base = dict(cls.PRESETS[scale])
        if overrides.get("backbone", cls.backbone) != "scratch" and scale == "default":
            base.update(iterations=PRETRAINED_ITERATIONS)
        if "topk" not in overrides and overrides.get("dataset", cls.dataset) in _TOPK_5000:
            base["topk"] = 5000
        return base

    def validate(self) -> None:
        self.ks = tuple(int(k) for k in self.ks)
        self.lr_steps = tuple(float(f) for f in self.lr_steps)
        bad = self.invalid
        if self.variant not in VARIANTS:
            bad("variant", f"valid: {VARIANTS}")
        if self.scale not in SCALES:
            bad("scale", f"valid: {SCALES}")
        if not isinstance(self.bits, (int, np.integer)) or self.bits < 1:
            bad("bits", "must be a positive integer (the paper uses 12, 24, 32, 48)")
        check_seed(self.seed)
        if self.input_size not in SUPPORTED_INPUT_SIZES:
            bad("input_size", f"valid: {SUPPORTED_INPUT_SIZES}")
        for name in ("width", "beta", "lr", "epsilon_decay"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        if not 0 <= self.epsilon0 <= 0.5:
            bad("epsilon0", "must be in [0, 0.5] (0.5 makes g the identity on [0, 1])")
        if self.iterations < 0 or self.paper_iterations < 1:
            bad("iterations", "iterations must be >= 0 and paper_iterations >= 1")
        if self.batch_size < 2:
            bad("batch_size", "must be >= 2 (triplets are built inside a batch)")
        if not 0 <= self.momentum < 1:
            bad("momentum", "must be in [0, 1)")
        if self.weight_decay < 0 or self.margin < 0:
            bad("weight_decay", "weight_decay and margin must be >= 0")
        if self.triplets not in ("all", "random"):
            bad("triplets", "valid: 'all', 'random'")
        if self.epsilon_every is not None and self.epsilon_every < 1:
            bad("epsilon_every", "must be >= 1 or None (scaled from the paper's 20,000)")
        if any(not 0 < f < 1 for f in self.lr_steps):
            bad("lr_steps", "fractions of training strictly between 0 and 1")
        if self.topk is not None and self.topk < 1:
            bad("topk", "must be None (rank the whole database) or >= 1")
        if self.n_query_per_class < 1 or self.n_train_per_class < 1:
            bad("n_query_per_class", "per-class counts must be >= 1")
        if self.backbone not in BACKBONES:
            bad("backbone", f"valid: {BACKBONES}")
        if self.backbone_input_size is not None and (not isinstance(self.backbone_input_size, (int, np.integer))
                                                     or self.backbone_input_size < 16):
            bad("backbone_input_size", "must be None (the backbone's default) or an int >= 16 (pixels)")

    # ------------------------------------------------------------------ derived
    @property
    def epsilon_every_effective(self) -> int:
        """Iterations between two ε shrinks: ``epsilon_every`` or 20,000 scaled to ``iterations``."""
        if self.epsilon_every is not None:
            return int(self.epsilon_every)
        return max(1, int(round(PAPER_EPSILON_EVERY * self.iterations / self.paper_iterations)))

    def derived(self) -> dict:
        return {"epsilon_every_effective": self.epsilon_every_effective}


#: The triplet margin of eq. 2 (§3.1: ``max(0, ‖F(I) − F(I⁺)‖² − ‖F(I) − F(I⁻)‖² + 1)``).
PAPER_MARGIN = 1.0


def method_name(variant: str, backbone: str = "scratch", margin: float = PAPER_MARGIN) -> str:
    """Record name of a variant: ``dnnh-dem``, ``dnnh-fc``, ``dnnh-two-subnets``; with another triplet
    margin than the paper's 1 its value (``dnnh-dem-margin2``: a deviation, e.g. a margin chosen on a
    validation split, :mod:`hashrepro.validation_select`), so such runs never mix with the paper's in a
    table or claim; on a pretrained backbone with its name appended (``dnnh-dem-efficientnet_lite0``,
    ``dnnh-dem-margin2-efficientnet_lite0``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    name = f"dnnh-{variant}" + ("" if float(margin) == PAPER_MARGIN else f"-margin{float(margin):g}")
    return name if backbone == "scratch" else f"{name}-{backbone}"


def epsilon_at(it: int, cfg: Config) -> float:
    """ε of eq. 6 during iteration ``it`` (0-based): ε0 · decay^⌊it / every⌋ (§4.1)."""
    return cfg.epsilon0 * cfg.epsilon_decay ** (it // cfg.epsilon_every_effective)


def build_model(cfg: Config, in_channels: int) -> DNNHNet:
    """The network of ``cfg.variant`` (see :class:`hashrepro.models.nin.DNNHNet`).

    ``in_channels``: image channels (``backbone="scratch"``) or the width of the cached backbone
    features (pretrained regime: the sub-networks are :class:`~hashrepro.models.nin.FeatureProjection`).
    """
    if cfg.backbone != "scratch":
        return DNNHNet(cfg.bits, cfg.variant, beta=cfg.beta, epsilon=cfg.epsilon0, center=cfg.center,
                       in_features=int(in_channels))
    return DNNHNet(cfg.bits, cfg.variant, in_channels=in_channels, input_size=cfg.input_size,
                   width=cfg.width, beta=cfg.beta, epsilon=cfg.epsilon0, center=cfg.center)


# ---------------------------------------------------------------------- helpers
def _prepare(images: np.ndarray, cfg: Config, mean: torch.Tensor | None) -> torch.Tensor:
    """uint8 (N, H, W, C) → float (N, C, S, S): [0, 1], resized to input_size, mean subtracted."""
    from ..train import to_tensor_images

    size = cfg.input_size if images.shape[1] != cfg.input_size or images.shape[2] != cfg.input_size else None
    x = to_tensor_images(images, size=size)
    if mean is not None:
        x = x - mean.view(1, -1, 1, 1)
    return x


def _encode(net: DNNHNet, images: np.ndarray, cfg: Config, mean: torch.Tensor, device, role: str) -> np.ndarray:
    """Approximate codes F(I) (N, bits) float32 in [0, 1], converting images chunk by chunk."""
    from ..train import encode

    chunk = max(cfg.eval_batch_size, 1) * 8
    outs = []
    for i in range(0, len(images), chunk):
        x = _prepare(images[i:i + chunk], cfg, mean)
        outs.append(encode(lambda b: net(b, role=role), x, batch_size=cfg.eval_batch_size, device=device))
    if not outs:
        return np.zeros((0, cfg.bits), np.float32)
    return np.concatenate(outs)


def _encode_features(net: DNNHNet, feats: np.ndarray, idx: np.ndarray, cfg: Config, device, role: str) -> np.ndarray:
    """Pretrained regime: approximate codes F(I) (len(idx), bits) float32 of the cached features
    ``feats[idx]`` (feats: (N, D), e.g. a memmap), chunk by chunk."""
    from ..train import encode

    chunk = max(cfg.eval_batch_size, 1) * 8
    outs = []
    for i in range(0, len(idx), chunk):
        x = torch.from_numpy(np.ascontiguousarray(feats[idx[i:i + chunk]], dtype=np.float32))
        outs.append(encode(lambda b: net(b, role=role), x, batch_size=cfg.eval_batch_size, device=device))
    if not outs:
        return np.zeros((0, cfg.bits), np.float32)
    return np.concatenate(outs)


def _backbone_features(ds, cfg: Config):
    """Cached pooled backbone features of every image of ``ds`` ((N, D) float32, maybe a memmap)
    and what the record says about them."""
    from ..features import backbone_cache_info, dataset_features

    t0 = time.perf_counter()
    feats = dataset_features(ds, cfg.backbone, input_size=cfg.backbone_input_size)
    info = backbone_cache_info(ds, cfg.backbone, input_size=cfg.backbone_input_size) or {}
    meta = {"backbone": f"{cfg.backbone} (ImageNet, frozen; pooled features cached)",
            "backbone_input_size": info.get("input_size"), "backbone_normalisation": info.get("normalisation"),
            "backbone_weights_sha256": info.get("weights_sha256"), "backbone_feature_dim": int(feats.shape[1]),
            "backbone_head": f"linear {feats.shape[1]} -> {FEATURES_PER_BIT}*bits + ReLU on the pooled features"}
    return feats, {k: v for k, v in meta.items() if v is not None}, time.perf_counter() - t0


def _split(ds, cfg: Config):
    from .. import data

    return data.split(ds, "per_class", seed=cfg.seed, database_includes_train=cfg.database_includes_train,
                      n_query_per_class=cfg.n_query_per_class, n_train_per_class=cfg.n_train_per_class)


#: Kept for callers of the old name: :func:`hashrepro.recipe.loss_curve`.
_subsample_curve = loss_curve


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def train_net(cfg: Config, x_train: torch.Tensor, y_train: torch.Tensor, device, gen: torch.Generator, *,
              callback=None, checkpoint=None, checkpoint_every: int = 0):
    """Build the network of ``cfg`` and train it (§4.1); return ``(net, history, active)``.

    x_train : (N, C, S, S) float images, mean subtracted (scratch) or (N, D) float pooled backbone
        features (pretrained regime), on ``device``; y_train : (N,) int labels on ``device``;
    gen : the seeded torch generator that draws batches and triplets.
    ``history`` is :class:`hashrepro.train.History` (loss per iteration, wall time); ``active`` the
    fraction of in-batch triplets with a positive loss, per iteration.
    callback : optional ``callback(iterations_done, net)`` run after every iteration (e.g. a
        validation curve, :mod:`hashrepro.convergence`); it must return the net in training mode and
        draw nothing from ``gen``; its ``state_dict()`` / ``load_state_dict(d)``, when it has them,
        are checkpointed with the run.
    checkpoint, checkpoint_every : resumable training (:func:`hashrepro.train.fit`): every
        ``checkpoint_every`` iterations the net (ε included), optimiser, LR schedule, batch sampler
        and random generators are written to ``checkpoint``; a call that finds that file continues
        from it and ends with the same network as an uninterrupted run.
    """
    from ..train import Batches, History, fit, to_device

    n = int(x_train.shape[0])
    net = build_model(cfg, int(x_train.shape[1])).to(device)
    loss_fn = TripletRankingLoss(margin=cfg.margin, triplets=cfg.triplets)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    milestones = sorted({int(round(f * cfg.iterations)) for f in cfg.lr_steps})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg.lr_gamma)
    batch_iter = Batches(n, min(cfg.batch_size, n), gen)  # the batches of train.batches, resumable
    active: list[float] = []

    def step(it: int) -> torch.Tensor:
        idx = to_device(next(batch_iter), device)  # the data are on the device; only the indices travel
        xb, yb = x_train[idx], y_train[idx]
        if net.asymmetric:  # §4.4: anchors through P, positives/negatives through Q
            loss = loss_fn(net(xb, role="query"), yb, codes_other=net(xb, role="database"), generator=gen)
        else:
            loss = loss_fn(net(xb), yb, generator=gen)
        active.append(loss_fn.last_stats.get("active", 0.0))
        return loss

    def on_iteration(it: int) -> None:
        net.set_epsilon(epsilon_at(it + 1, cfg))
        if callback is not None:
            callback(it + 1, net)

    def state() -> dict:
        return {"net": net.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                "torch_rng": torch.get_rng_state(), "batches": batch_iter.state_dict(), "active": list(active),
                "callback": callback.state_dict() if hasattr(callback, "state_dict") else None}

    def load_state(d: dict) -> None:
        net.load_state_dict(d["net"])
        sched.load_state_dict(d["sched"])
        gen.set_state(d["gen"])
        torch.set_rng_state(d["torch_rng"])
        batch_iter.load_state_dict(d["batches"])
        active[:] = d["active"]
        if d.get("callback") is not None and hasattr(callback, "load_state_dict"):
            callback.load_state_dict(d["callback"])

    net.set_epsilon(epsilon_at(0, cfg))
    net.train()
    ckpt = dict(checkpoint=checkpoint, state=state, load_state=load_state, checkpoint_every=checkpoint_every) \
        if checkpoint else {}
    hist = fit(step, optimizer=opt, iterations=cfg.iterations, scheduler=sched, on_iteration=on_iteration,
               desc=f"{method_name(cfg.variant, cfg.backbone, cfg.margin)} {cfg.dataset} {cfg.bits}b", progress=cfg.progress,
               **ckpt) if cfg.iterations > 0 else History()
    if active and torch.is_tensor(active[0]):  # off the CPU: device tensors, read back once
        active[:] = torch.stack([torch.as_tensor(a).float() for a in active]).cpu().tolist()
    return net, hist, active


# ---------------------------------------------------------------------- the run
def run(cfg: Config | None = None, *, command: str | None = None, **overrides) -> dict:
    """Train and evaluate DNNH once; return the run record (:func:`hashrepro.results.make_record`).

    ``run(Config.for_scale("smoke", dataset="digits"))``, ``run(cfg, command="papermill ...")`` or
    ``run(scale="smoke", dataset="mnist5k", bits=12)`` (keyword overrides build
    ``Config.for_scale(scale, **overrides)``; with a ``cfg`` they replace its fields). Set-up and
    wrap-up: :func:`hashrepro.recipe.recipe_run`.

    The record's metrics: ``map``, ``precision_radius2`` (and recall), ``train_time_s``,
    ``encode_time_s``, ``final_loss`` (mean loss of the last :data:`FINAL_LOSS_LAST` = 50
    iterations), ``active_triplets`` (fraction with positive loss, last 50 iterations),
    ``bit_mean`` (mean of the database bits, ideal 0.5; also under its legacy name
    ``bit_balance``) and ``saturated_fraction`` (share of F(I) values that the piecewise threshold
    has made exactly 0 or 1). Curves: the evaluation curves of :func:`hashrepro.metrics.evaluate`
    plus ``train_loss`` (:func:`hashrepro.recipe.loss_curve`).
    """
    from .. import data
    from ..codes import binarize
    from ..metrics import evaluate

    with recipe_run(Config, cfg, overrides) as r:
        cfg, device, gen = r.cfg, r.device, r.generator
        ds = data.load(cfg.dataset, root=cfg.data_root)
        sp = _split(ds, cfg)
        train_idx, query_idx, db_idx = (np.asarray(a, dtype=np.int64) for a in (sp.train, sp.query, sp.database))
        labels = np.asarray(ds.labels)

        x_train, mean, feats, backbone_meta, feature_read_s = _training_inputs(ds, train_idx, cfg, device)
        y_train = torch.as_tensor(labels[train_idx]).to(device)

        net, hist, active = train_net(cfg, x_train, y_train, device, gen)
        del x_train

        # encode (§3.4) and evaluate
        t_enc = time.perf_counter()
        net.eval()
        if feats is None:
            f_query = _encode(net, ds.images[query_idx], cfg, mean, device, role="query")
            f_db = _encode(net, ds.images[db_idx], cfg, mean, device, role="database")
        else:
            f_query = _encode_features(net, feats, query_idx, cfg, device, role="query")
            f_db = _encode_features(net, feats, db_idx, cfg, device, role="database")
        encode_time = time.perf_counter() - t_enc
        q_codes = binarize(f_query, threshold=0.5)
        db_codes = binarize(f_db, threshold=0.5)
        ev = evaluate(q_codes, db_codes, labels[query_idx], labels[db_idx], topk=cfg.topk,
                      radius=cfg.radius, ks=cfg.ks)

        metrics = _eval_metrics(ev)
        metrics.update(
            train_time_s=float(hist.wall_time_s),
            encode_time_s=float(encode_time),
            final_loss=final_loss(hist.loss, FINAL_LOSS_LAST),
            active_triplets=float(np.mean(active[-50:])) if active else float("nan"),
            bit_mean=bit_mean(db_codes),
            bit_balance=bit_mean(db_codes),  # legacy name of bit_mean (DNNH pages and tests read it)
            saturated_fraction=float(np.mean((f_db == 0) | (f_db == 1))) if f_db.size else float("nan"),
            final_epsilon=float(net.head.epsilon),
        )
        if feature_read_s is not None:
            metrics["backbone_feature_read_s"] = float(feature_read_s)
        curves = dict(ev.get("curves", {}))
        curves["train_loss"] = loss_curve(hist.loss)

        protocol = _protocol(sp, train_idx, query_idx, db_idx, cfg, ev, backbone_meta)
        record = r.record(paper="dnnh", method=method_name(cfg.variant, cfg.backbone, cfg.margin),
                          config=_jsonable(cfg.to_dict()), protocol=protocol, metrics=metrics,
                          curves=_jsonable(curves), command=command)
        # a collapsed or diverged run is flagged in its record, never reported as a normal number
        flag_record(record, diagnose(db_codes, hist.loss, labels=labels[db_idx]))
        return record


def _training_inputs(ds, train_idx: np.ndarray, cfg, device):
    """The training inputs of DNNH's two regimes (shared with CNNH*):
    ``(x_train, mean, feats, backbone_meta, feature_read_s)``.

    Scratch: x_train (N, C, S, S) float images on ``device`` with the Caffe-style mean (per channel,
    training set; ``mean`` (C,)) subtracted; ``feats`` None. Pretrained: x_train (N, D) the cached
    pooled backbone features of the training images; ``feats`` all of them (a memmap), ``mean`` None.
    """
    if cfg.backbone == "scratch":
        x_train = _prepare(ds.images[train_idx], cfg, None)
        mean = x_train.mean(dim=(0, 2, 3))
        return (x_train - mean.view(1, -1, 1, 1)).to(device), mean, None, {}, None
    feats, backbone_meta, feature_read_s = _backbone_features(ds, cfg)
    x_train = torch.from_numpy(np.ascontiguousarray(feats[train_idx], dtype=np.float32)).to(device)
    return x_train, None, feats, backbone_meta, feature_read_s


def _eval_metrics(ev: dict) -> dict:
    """The scalar metrics of :func:`hashrepro.metrics.evaluate`'s result, ``map`` first."""
    metrics = {"map": float(ev["map"]), "precision_radius2": float(ev["precision_radius2"])}
    for k, v in ev.items():
        if k not in ("map", "precision_radius2", "curves", "protocol") and isinstance(v, (int, float, np.floating)):
            metrics[k] = float(v)
    return metrics


def _protocol(sp, train_idx, query_idx, db_idx, cfg, ev: dict, backbone_meta: dict) -> dict:
    """The record's protocol of DNNH's per-class split and evaluation (shared with CNNH*)."""
    protocol = {"split": "per_class", **_jsonable(dict(getattr(sp, "protocol", {}) or {})),
                "n_train": int(len(train_idx)), "n_query": int(len(query_idx)), "n_database": int(len(db_idx)),
                "database_includes_train": bool(cfg.database_includes_train)}
    protocol.update(_jsonable(ev.get("protocol", {})))
    protocol.setdefault("ranking", "binary")
    protocol.update(backbone_meta)
    return protocol
