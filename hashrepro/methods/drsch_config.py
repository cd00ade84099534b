"""DSCH / DRSCH / BS-DRSCH / DSRH's configuration (Zhang et al., TIP 2015): the recipe's variants,
scales and regimes, the presets per scale (the released solver, the CPU schedule, smoke) with the
pretrained regime's and DSRH's changes, :class:`Config` (overrides, validation) and the record
name of a run (:func:`method_name`). The recipe is :mod:`hashrepro.methods.drsch` (which
re-exports these names); its evaluation :mod:`hashrepro.methods.drsch_eval`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..finetune import FINETUNE_TAG, check_finetune

#: What DRSCH can fine-tune of the ImageNet backbone (:data:`hashrepro.finetune.FINETUNES` less MCH's
#: "last_4_blocks").
FINETUNES = ("none", "last_block")
from ..params import check_seed
from ..recipe import RecipeConfig

__all__ = ["VARIANTS", "SCALES", "BACKBONES", "FINETUNES", "Config", "method_name", "record_method", "deviations",
           "NAMED_FIELDS"]

VARIANTS = ("dsch", "drsch", "bs-drsch", "dsrh")
SCALES = ("smoke", "default", "paper")
#: "scratch": the released network on the images; "efficientnet_lite0": the frozen ImageNet
#: backbone's cached pooled features + a trainable head + DRSCH's hash layer.
BACKBONES = ("scratch", "efficientnet_lite0")

#: Schedules per scale. "paper" is the released solver (notes §4) and annealing (notes §1–2);
#: "default" is the CPU schedule (see ``Config.for_scale``); "smoke" runs in seconds for tests.
_SCALE_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(iterations=800_000, lr=1 / 300, momentum=0.0, lr_step=50_000, lr_gamma=1 / 3, grad_clip=None,
                  slope_every=10_000, margin_every=10_000, eval_batch_size=1024),
    "default": dict(iterations=300, lr=1 / 3000, momentum=0.9, lr_step=100, lr_gamma=1 / 3, grad_clip=5.0,
                    slope_every=10, margin_every=10, eval_batch_size=1024),
    "smoke": dict(iterations=6, lr=1 / 3000, momentum=0.9, lr_step=100, lr_gamma=1 / 3,
                  slope_every=2, margin_every=2, n_query_per_class=5, n_train_per_class=20,
                  max_database=300, precision_k=100, eval_batch_size=256),
}
#: What the pretrained regime changes in a scale's preset (see ``Config.for_scale``).
_PRETRAINED_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(init="default"),
    "default": dict(iterations=3000, lr=0.01, lr_step=1000, slope_every=100, margin_every=100, init="default"),
    "smoke": dict(init="default"),
}
#: ``solver="paper"``: the released solver's settings (``_SCALE_PRESETS["paper"]``, notes §4) at another
#: scale's length -- these are taken as they are ...
SOLVER_SETTINGS = ("lr", "momentum", "lr_gamma", "grad_clip")
#: ... and these step schedules are scaled by (the run's iterations / 800,000), as ``hashrepro
#: paper-grid`` shortens a paper schedule (:func:`hashrepro.paper_grid_configs.recipe_config`).
SOLVER_STEPS = ("lr_step", "slope_every", "margin_every")
#: ``preset``: the scale's own solver; ``paper``: the released solver shortened to the scale's length.
SOLVERS = ("preset", "paper")
#: Record-name tag of ``solver="paper"`` at a scale other than "paper" (:func:`method_name`).
SOLVER_TAG = "solver-paper"

#: What variant "dsrh" changes (see ``Config.for_scale``): DSRH's hash layer 2σ(z) − 1 (slope 1,
#: never grown), a fixed margin ρ = 2 Hamming units (the DRSCH schedule's last margin C = 8 in
#: its units: C/4) and the balance weight α = 1 (``lam``); ρ and α are assumed, not the paper's.
_DSRH_PRESET: dict[str, Any] = dict(slope0=1.0, slope_factor=1.0, margin0=2.0, margin_step=0.0, lam=1.0)


@dataclass
class Config(RecipeConfig):
    """All parameters of a DSCH / DRSCH / BS-DRSCH run (validated on construction).

    Use :meth:`for_scale` to get the smoke / default / paper schedule with overrides.

    Data and protocol
        dataset, seed, device; protocol "per_class" with ``n_query_per_class`` (100) queries and
        ``n_train_per_class`` (500) training images per class (notes §7), the database being the
        rest (``database_includes_train=False``) or the rest plus the training images
        (``True``; the released code used the training set itself as the database).
        ``max_database`` subsamples the database (tests only; None keeps it all).
    Model
        bits (q trained), variant, keep_bits (BS-DRSCH: bits kept at test, None = all),
        input_size (30), flip (random horizontal flip in training; None = on for colour data,
        off for digits; the released code flips always), jitter (±px of the random crop).
    Loss
        lam (λ of DRSCH; ignored by DSCH; α of DSRH's balance term), form ("affinity" | "distance"), same/diff (S values),
        code_faithful (released sign quirk + stale labels), margin0/margin_step/margin_every
        (C = margin0 + margin_step·⌊it/margin_every⌋), slope0/slope_factor/slope_every
        (a = slope0·slope_factor^⌊it/slope_every⌋).
    Optimiser
        SGD with lr, momentum, weight_decay (per-layer multipliers of the released prototxt),
        step decay ×lr_gamma every lr_step iterations, for ``iterations`` steps of P × K images;
        grad_clip: clip the total gradient norm (None: off, as in the released code).
        solver: "preset" (the scale's) or "paper": the released solver (lr 1/300, momentum 0, no
        clipping) at the scale's length, its lr/slope/margin step schedules scaled by iterations /
        800,000 (:data:`SOLVER_SETTINGS`, :data:`SOLVER_STEPS`; named ``-solver-paper`` in the record).
    Evaluation
        topk (None = full ranking), precision_k (500), keep_list (bit counts of the
        bit-scalable curve), n_random_subsets (seeded random draws of as many bits per point of
        that curve: the control of the truncation claim).
    Backbone
        backbone ("scratch" | "efficientnet_lite0": frozen ImageNet features, cached),
        backbone_input_size (pixels fed to the backbone; None = its default 160), head_hidden
        (widths of the trainable head on the features; input_size, resize_to, jitter, flip unused),
        finetune ("none": the backbone frozen, the head on cached pooled features; "last_block": its
        last MBConv block and head conv fine-tuned on the cached maps that enter that block,
        :mod:`hashrepro.finetune`) at lr × ``finetune_lr_mult`` (0.1, set as in the MCH chapter, not tuned).
    Run
        threads (CPU threads while the run lasts, restored after; None = leave), progress (bar).
    """

    dataset: str = "mnist5k"
    bits: int = 32
    variant: str = "drsch"
    keep_bits: int | None = None
    seed: int = 0
    scale: str = "default"
    device: str = "auto"
    # protocol
    protocol: str = "per_class"
    n_query_per_class: int = 100
    n_train_per_class: int = 500
    database_includes_train: bool = False
    max_database: int | None = None
    # batches / input
    classes_per_batch: int = 10
    images_per_class: int = 10
    input_size: int = 30
    resize_to: int = 32
    jitter: int = 1
    flip: bool | None = None
    # loss
    lam: float = 1e-4
    form: str = "affinity"
    same: float = 1.0
    diff: float = 0.001
    code_faithful: bool = False
    margin0: float = 5.0
    margin_step: float = 0.1
    margin_every: int = 10
    slope0: float = 5.0
    slope_factor: float = 1.1
    slope_every: int = 10
    # optimiser
    iterations: int = 300
    lr: float = 1 / 3000
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_step: int = 100
    lr_gamma: float = 1 / 3
    grad_clip: float | None = 5.0
    solver: str = "preset"
    init: str = "caffe"
    # evaluation
    topk: int | None = None
    precision_k: int = 500
    keep_list: tuple = (8, 12, 16, 24, 32, 48, 64)
    n_random_subsets: int = 5
    eval_batch_size: int = 1024
    threads: int | None = None
    # backbone (the two regimes)
    backbone: str = "scratch"
    backbone_input_size: int | None = None
    head_hidden: tuple = (512,)
    finetune: str = "none"
    finetune_lr_mult: float = 0.1
    progress: bool | None = None

    PRESETS = _SCALE_PRESETS
    #: ``for_scale`` ignores overrides whose value is None (the notebook's "unset").
    DROP_NONE_OVERRIDES = True
    THREADS_FIELD = "threads"

    def validate(self) -> None:
        bad = self.invalid
        self.check_choice("variant", VARIANTS)
        self.check_choice("scale", SCALES)
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)) or self.bits <= 0:
            bad("bits", "bits must be a positive int")
        self.bits = int(self.bits)
        self.seed = check_seed(self.seed)
        if self.keep_bits is not None:
            if self.variant != "bs-drsch":
                bad("keep_bits", f"keep_bits is for variant='bs-drsch' only (got variant={self.variant!r}); "
                                 "set keep_bits=None")
            if not 1 <= int(self.keep_bits) <= self.bits:
                bad("keep_bits", f"keep_bits must be in 1..bits={self.bits}")
            self.keep_bits = int(self.keep_bits)
        self.check_choice("form", ("affinity", "distance"))
        if self.lam < 0:
            bad("lam", "lam must be >= 0")
        for name in ("iterations", "classes_per_batch", "images_per_class", "lr_step", "margin_every",
                     "slope_every", "n_query_per_class", "n_train_per_class", "precision_k", "eval_batch_size",
                     "n_random_subsets"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < (0 if name == "iterations" else 1):
                bad(name, f"{name} must be a positive int")
        if self.classes_per_batch < 2 or self.images_per_class < 2:
            bad("classes_per_batch", "classes_per_batch and images_per_class must be >= 2 so that triplets exist; "
                f"got {self.classes_per_batch} x {self.images_per_class}")
        if self.lr <= 0:
            bad("lr", "lr must be > 0")
        if not 0 <= self.momentum < 1:
            bad("momentum", "momentum must be in [0, 1)")
        if self.jitter < 0 or self.input_size > self.resize_to:
            bad("input_size", f"need input_size <= resize_to and jitter >= 0; got input_size={self.input_size}, "
                              f"resize_to={self.resize_to}, jitter={self.jitter}")
        self.keep_list = tuple(int(k) for k in self.keep_list if 1 <= int(k) <= self.bits) or (self.bits,)
        self.check_choice("backbone", BACKBONES)
        if self.backbone_input_size is not None and (not isinstance(self.backbone_input_size, (int, np.integer))
                                                     or self.backbone_input_size < 16):
            bad("backbone_input_size", "backbone_input_size must be None (the backbone's default) or an int >= 16 "
                "(pixels)")
        if isinstance(self.head_hidden, str):  # from a command line: "[2048]", "[]"
            import yaml

            try:
                self.head_hidden = yaml.safe_load(self.head_hidden)
            except yaml.YAMLError:
                bad("head_hidden", f"head_hidden must be a list of positive ints, e.g. [2048], got {self.head_hidden!r}")
            if isinstance(self.head_hidden, int):
                self.head_hidden = [self.head_hidden]
        if not isinstance(self.head_hidden, (list, tuple)):
            bad("head_hidden", f"head_hidden must be a list of positive ints, e.g. [2048], got {self.head_hidden!r}")
        self.head_hidden = tuple(self.head_hidden)
        if any(not isinstance(h, (int, np.integer)) or h < 1 for h in self.head_hidden):
            bad("head_hidden", "head_hidden must be a tuple of positive ints (widths)")
        self.head_hidden = tuple(int(h) for h in self.head_hidden)
        why = check_finetune(self.finetune, self.backbone, FINETUNES)
        if why:
            bad("finetune", why)
        self.check_choice("solver", SOLVERS)
        if not float(self.finetune_lr_mult) > 0:
            bad("finetune_lr_mult", f"finetune_lr_mult must be > 0, got {self.finetune_lr_mult!r}")

    # ------------------------------------------------------------------ scales
    @classmethod
    def presets(cls, scale: str, overrides) -> dict:
        """The schedule of a scale (:data:`_SCALE_PRESETS`), then the pretrained regime's and DSRH's
        changes (:data:`_PRETRAINED_PRESETS`, :data:`_DSRH_PRESET`); ``for_scale`` ignores ``None`` overrides.

        * ``"paper"``: the released solver: SGD lr 1/300, momentum 0, weight decay 5e-4, ×1/3
          every 50k iterations, 800k iterations; slope ×1.1 and margin +0.1 every 10k (notes §1–4).
          For a GPU machine (days on a CPU).
        * ``"default"``: the CPU schedule: 300 iterations of 10 × 10 images (6 epochs of the
          5,000 training images; 1/2667 of the paper's 800k iterations), SGD lr 1/3000 with
          momentum 0.9, ×1/3 every 100 iterations, gradients clipped to a total norm of 5; the
          slope and margin schedules are compressed 1000× (a step every 10 iterations) so that
          they end where the paper schedule is at 300k iterations: a = 5·1.1³⁰ ≈ 87 and C = 8.
          Chosen on a validation split of MNIST's official training images (never the query
          set): the released lr 1/300 (momentum 0) diverges in PyTorch within 20 iterations
          (unbounded bit weights and (128 − p)·0.1 inputs), 1/3000 without momentum learns too
          slowly, and without clipping a 64-bit model collapsed to one code once the slope grew.
        * ``"smoke"``: a few iterations on a tiny split (tests; numbers meaningless).

        With ``backbone="efficientnet_lite0"`` (cached features; only the head and the hash layer
        train: an iteration of 10 × 10 at 64 bits costs ≤ 30 ms of CPU time on one core):
        ``"default"`` runs 3,000 iterations (60 epochs of CIFAR-10's 5,000 training images,
        ≤ 2 min of training) with SGD lr 0.01, momentum 0.9, ×1/3 every 1,000, clipping at 5, and
        the slope/margin steps every 100 iterations, so that they end where the scratch default
        ends (a = 5·1.1³⁰ ≈ 87, C = 8); the head is initialised with PyTorch's default
        (``init="default"``: the released σ = 0.1 saturates the tanh on the 1280 non-negative
        features). lr 0.01 is 30× the scratch default (a small MLP on fixed features, not a
        conv net on (128 − p)·0.1 pixels); checked only for stability on the digits features
        (bit weights move, no divergence), not tuned. ``"paper"`` keeps the released solver
        (800k iterations) with that initialisation; ``"smoke"`` is unchanged.

        ``solver="paper"`` replaces the scale's solver by the released one at the scale's length
        (:func:`paper_solver`): with the backbone at ``"default"``, 3,000 iterations of lr 1/300,
        momentum 0, no clipping, ×1/3 every 188, slope and margin steps every 38 -- the setting in
        which no bit went dead (``benchmarks/drsch_dead_bits.py``, control ``paper-settings-short``).
        """
        kw = dict(_SCALE_PRESETS[scale])
        if overrides.get("backbone") not in (None, "scratch"):
            kw.update(_PRETRAINED_PRESETS[scale])
        if overrides.get("solver") == "paper" and scale != "paper":
            kw.update(paper_solver(int(overrides.get("iterations") or kw["iterations"])))
        if overrides.get("variant") == "dsrh":
            kw.update(_DSRH_PRESET)
        return kw

    @property
    def effective_lam(self) -> float:
        """λ actually used: 0 for DSCH."""
        return 0.0 if self.variant == "dsch" else float(self.lam)

    @property
    def eval_bits(self) -> int:
        """Code length evaluated: ``keep_bits`` for BS-DRSCH (default all bits), else ``bits``."""
        return self.keep_bits if (self.variant == "bs-drsch" and self.keep_bits) else self.bits


#: Config fields whose value, when it differs from the run's preset (scale, backbone, variant), is part
#: of the record name (:func:`method_name`): hyperparameters chosen on a validation split
#: (:mod:`hashrepro.validation_select`) are deviations and never mix with the preset's runs.
NAMED_FIELDS = ("margin0", "lam", "lr", "slope_factor", "head_hidden", "weight_decay")


def _fmt(v) -> str:
    if isinstance(v, (tuple, list)):
        return "x".join(_fmt(x) for x in v) or "none"
    return f"{float(v):g}" if isinstance(v, (int, float, np.integer, np.floating)) else str(v)


def paper_solver(iterations: int) -> dict:
    """The released solver's settings for a run of ``iterations`` (``solver="paper"``): the paper
    preset's :data:`SOLVER_SETTINGS` as they are, its :data:`SOLVER_STEPS` × iterations / 800,000
    (rounded, at least 1). ``paper_solver(3000)``: lr 1/300, momentum 0, grad_clip None, lr_step 188,
    slope_every 38, margin_every 38."""
    paper = _SCALE_PRESETS["paper"]
    f = int(iterations) / paper["iterations"]
    out = {k: paper[k] for k in SOLVER_SETTINGS}
    out.update({k: max(1, int(round(paper[k] * f))) for k in SOLVER_STEPS})
    return out


def deviations(cfg: "Config") -> dict:
    """{field: value} of :data:`NAMED_FIELDS` where ``cfg`` differs from
    ``Config.for_scale(cfg.scale, variant=cfg.variant, backbone=cfg.backbone, solver=cfg.solver,
    iterations=cfg.iterations)``, in that order."""
    ref = Config.for_scale(cfg.scale, variant=cfg.variant, backbone=cfg.backbone, solver=cfg.solver,
                           iterations=cfg.iterations if cfg.solver == "paper" else None)
    out = {}
    for k in NAMED_FIELDS:
        a, b = getattr(cfg, k), getattr(ref, k)
        same = tuple(a) == tuple(b) if isinstance(a, (tuple, list)) else float(a) == float(b)
        if not same:
            out[k] = tuple(a) if isinstance(a, (tuple, list)) else float(a)
    return out


def method_name(variant: str, backbone: str = "scratch", deviations: dict | None = None,
                finetune: str = "none", solver: str = "preset") -> str:
    """Record name: the variant (``dsch``, ``drsch``, ``bs-drsch``, ``dsrh``); with hyperparameters
    other than the preset's (``deviations``: :func:`deviations` of the run's Config, e.g. chosen on a
    validation split) each ``-<field>-<value>`` (``drsch-lam-0.01-lr-0.03``: a deviation, so that such
    runs never mix with the preset's in a table or claim); ``-solver-paper`` with the released solver
    at a shorter scale (``solver="paper"``, :func:`paper_solver`); ``-lastblock`` when the backbone's last
    block is fine-tuned (``finetune="last_block"``); the backbone appended on a pretrained
    backbone (``drsch-efficientnet_lite0``, ``drsch-margin0-13-efficientnet_lite0``,
    ``drsch-head_hidden-2048-lastblock-efficientnet_lite0``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    bad = set(deviations or {}) - set(NAMED_FIELDS)
    if bad:
        raise ValueError(f"deviations may name {NAMED_FIELDS} only, got {sorted(bad)}")
    why = check_finetune(finetune, backbone, FINETUNES)
    if why:
        raise ValueError(why)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    name = variant + "".join(f"-{k}-{_fmt(v)}" for k, v in (deviations or {}).items())
    name += f"-{SOLVER_TAG}" if solver == "paper" else ""
    name += f"-{FINETUNE_TAG}" if finetune == "last_block" else ""
    return name if backbone == "scratch" else f"{name}-{backbone}"


def record_method(cfg: "Config") -> str:
    """The record name of a run of ``cfg`` (:func:`method_name` of its variant, backbone,
    :func:`deviations`, finetune and solver -- ``"paper"`` at the paper scale is its preset, unnamed):
    the one place a DRSCH run's name is made."""
    solver = cfg.solver if cfg.scale != "paper" else "preset"
    return method_name(cfg.variant, cfg.backbone, deviations(cfg), cfg.finetune, solver)
