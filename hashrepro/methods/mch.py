"""MCH: Multiple Code Hashing for efficient hash bucket search (Li, Jiang, Li).

The recipe, section by section of the paper:

1. **Base hashing model** (§4.1, Table 1): KSH (shallow, on backbone features), HashNet, ADSH,
   DCH or MMHH (deep, end to end), each with its Table-1 loss, relaxation and regulariser
   (:mod:`hashrepro.losses.pairwise`) and pair weights ``w_ij`` where the method has them.
2. **Agent** (§4.2, Algorithm 2): for every training image a random crop ``x*``; state
   ``h = [f(x); f(x*); b; b*]`` (eq. 3); actions keep / discard the crop's code; reward eq. 6 =
   the base model's own loss summed over the other training points, with the asymmetric
   distance ``d*_ij = min(d(b_i, b_j), d(b*_i, b_j))`` of eq. 5; a five-layer FC policy with BN,
   ReLU and softmax (:class:`hashrepro.models.policy.PolicyNet`); REINFORCE (eq. 7) with SGD,
   momentum 0.9, weight decay 5e-4, T = 100, batch 256 (§5.2.2); by default with a moving-average
   baseline and normalised advantages at lr 1e-3 (a deviation, see
   :func:`hashrepro.methods.mch_agent.train_agent`).
3. **Out-of-sample extension** (§4.3): database image + 5 crops (4 corners, centre) of side
   ratio σ; a crop's code is kept when the policy's keep probability is ≥ ξ; the whole image's
   code is always kept. σ = ξ = 0.5.
4. **Search** (§2.1, Algorithm 1): :class:`hashrepro.index.BucketIndex` with several codes per
   database item; the query is encoded with one code (its whole image). Metrics: R@H=0, P@H=0
   (Figs. 3–4), mAP (Table 2), F1–bucket curves (Figs. 5–7), ANHC (eq. 8, Table 3), σ/ξ
   sensitivity (Fig. 9), bucket search cost against a linear scan.

:func:`run` does all of it for one base model and returns the MCH-X run record; the base model's
own single-code record and the LSH / ITQ baselines on the same backbone features are its companion
records (``record["companions"]``, :func:`hashrepro.recipe.with_companions`), which
:func:`hashrepro.recipe.save_with_companions` saves one file each.

Deviations from the paper (stated in the chapter): a small CNN pretrained on the training split
as a multi-label classifier stands in for ImageNet AlexNet (no weights offline, 2-core CPU);
Adam for the base models (AdamW with ``base_weight_decay`` > 0; the authors' SGD settings are for fine-tuning AlexNet); synthetic
mosaics instead of NUS-WIDE / MS-COCO / MIRFLICKR (not available offline); shorter schedules at
``scale="default"``; KSH's projection is learned by gradient descent on its Table-1 loss rather
than by the sequential spectral + Nesterov bit-wise solver; the agent's REINFORCE update subtracts a
moving-average baseline and divides by a moving reward standard deviation, at learning rate 1e-3
(eq. 7 has neither; ``agent_baseline="none", agent_reward_norm=False, agent_lr=1e-4`` is the paper's).

Two regimes (``Config.backbone``)
---------------------------------
``"scratch"`` (default): the small CNN above, pretrained on the training split and fine-tuned by
the deep base models, on ``input_size`` = 32-px crops.

``"efficientnet_lite0"``: the paper's regime, an ImageNet-pretrained backbone
(:mod:`hashrepro.models.backbones`; EfficientNet-Lite0 stands in for AlexNet). **Choice: the
backbone is frozen and every crop's pooled 1,280-d feature is computed once and cached**; the base
models are heads on those features (:class:`hashrepro.models.mch_heads.FeatureBackbone`: the
features standardised with the training images' means and standard deviations, then the base
model's hash layer; KSH's kernel map on the same standardised features). Why: on the 2-core CPU one
backbone pass costs 20-50 ms per crop (``benchmarks/backbone_input.py``), and the agent alone codes
T x batch = 25,600 crops per run, the extension 5 per database image per σ: fine-tuning the last
blocks would re-run the backbone on every crop after every update (hours per run), while frozen
features make a crop's code a lookup + one linear layer. The crop set must then be finite, and it
is: the extension's crops are the 5 boxes (4 corners, centre) of ratio σ (§4.3), and the agent's
random crops (Algorithm 2: ratio ~ U(crop_min, crop_max), position uniform) become a draw from the
same 5 boxes at the ratios ``crop_ratios`` = (0.3, 0.5, 0.7) that lie in [crop_min, crop_max]
(deviation: 15 crops per image instead of a continuum). Each crop is cut from the mosaic and
resampled to ``backbone_input_size`` = :data:`PRETRAINED_INPUT_SIZE` = 112 px (the backbone's
default is 160: 112 px extracts 2-4x faster on this CPU, 48 against 13 img/s on one thread under
load, at 0.68 against 0.75 CIFAR-10 linear-probe accuracy), with the whole image through the same
path (box = the image). Cached per σ group by :func:`hashrepro.crop_features.cached_crop_features`
(resumable; keyed by weights, input size, normalisation, pixels, boxes and rows): the whole images
of every row; σ = ``sigma``, ``sens_sigmas`` and ``crop_ratios`` on the database and training
rows; the other σ of ``sigma_grid`` on Table 3's sample of ``grid_items`` database items
(:func:`~hashrepro.methods.mch_data.crop_plan`, :func:`~hashrepro.methods.mch_data.prepare_features`: run it
alone, in the background, to fill the cache).
LSH and ITQ run on the same whole-image features; the agent's state (eq. 3) uses the standardised
features of the image and the crop. Records are named ``<method>-efficientnet_lite0`` (``mch-dch-
efficientnet_lite0``, ``dch-efficientnet_lite0``, ``lsh-efficientnet_lite0``) and carry
``protocol["backbone"]``.

Where the pieces live
---------------------
This module holds the :class:`Config` (a :class:`hashrepro.recipe.RecipeConfig`: presets per
scale as data) and :func:`run` (the recipe skeleton's ``run(cfg=None, *, command=None, **overrides)``,
set up and wrapped up by :func:`hashrepro.recipe.recipe_run`); the pieces are in their layers:
crops and the crop bank in :mod:`hashrepro.data.crops`; the hashers in
:mod:`hashrepro.models.mch_hashers` (KSH's kernel map in :mod:`hashrepro.models.mch_heads`, the
policy in :mod:`hashrepro.models.policy`); the reward (eq. 6) and REINFORCE (eq. 7) losses in
:mod:`hashrepro.losses.mch_reward`; the bucket metrics in :mod:`hashrepro.metrics.bucket`; the data
set, split and crop features of a run in :mod:`hashrepro.methods.mch_data`; base-model training in
:mod:`hashrepro.methods.mch_train`; the agent and the out-of-sample extension in
:mod:`hashrepro.methods.mch_agent`; Table 3, Fig. 8, Fig. 9, the oracle and the LSH / ITQ baselines
in :mod:`hashrepro.methods.mch_eval`.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..codes import MultiCodes, binarize
from ..crop_features import crop_resize
from ..data.crops import images_tensor, mosaic_tiles
from ..diagnostics import diagnose, flag_record
from ..losses.mch_reward import codes_pm1
from ..losses.pairwise import make_loss
from ..metrics import evaluate_codes, search_cost
from ..models.mch_heads import FeatureBackbone
from ..params import check_seed
from ..recipe import LOSS_CURVE_KEY, RecipeConfig, loss_curve, recipe_run, with_companions
from .mch_agent import AGENT_DEFAULTS, crop_keep_probabilities, extend, train_agent
from .mch_data import PAPER_DATASETS, crop_plan, grid_sample, load_data, parse_dataset, prepare_features
from .mch_eval import anhc_grid, backbone_protocol, baseline_codes, oracle_metrics, sensitivity, visual_examples
from .mch_train import backbone_features, loss_kwargs, pretrain_backbone, train_base

__all__ = [
    "BASES",
    "BACKBONES",
    "PAPER_DATASETS",
    "PRETRAINED_INPUT_SIZE",
    "AGENT_BASELINES",
    "AGENT_DEFAULTS",
    "Config",
    "FINETUNES",
    "FINETUNE_START",
    "name_tag",
    "record_method",
    "parse_dataset",
    "load_data",
    "method_name",
    "split_tag",
    "pretrained_split_tag",
    "SPLIT_FIELDS",
    "crop_plan",
    "prepare_features",
    "run",
]

BASES = ("ksh", "hashnet", "adsh", "dch", "mmhh")
#: "scratch": the small CNN trained on the mosaics; "efficientnet_lite0": the ImageNet backbone,
#: frozen, the pooled features of every crop cached, the base models as heads on them.
BACKBONES = ("scratch", "efficientnet_lite0")
#: What trains of the ImageNet backbone (pretrained regime; :mod:`hashrepro.finetune`): "none" = frozen
#: (the heads sit on cached pooled features); "last_block" = its last MBConv block and head conv,
#: fine-tuned by the deep base models (HashNet, ADSH, DCH, MMHH; KSH is a kernel map on fixed features)
#: on the cached maps that enter that block (192 x 4 x 4 at 112 px); after training every cached crop's
#: maps go through the tuned block once and everything downstream (the agent's state, the extension,
#: the evaluation) codes those re-encoded features. LSH and ITQ stay on the frozen features (they are
#: not run: their records are the frozen runs'). "last_4_blocks" = the same with the last four blocks
#: (12-15) on the maps entering block 12 (same shape), about 4x the last block's training cost.
from ..finetune import (FINETUNE_START, FINETUNE_TAG, FINETUNES, check_finetune, finetune_start,  # noqa: E402,F401
                        finetune_tag)  # (re-exported)
#: Input side of the ImageNet backbone in the pretrained regime (see the module docstring).
PRETRAINED_INPUT_SIZE = 112
#: Baselines of the agent's REINFORCE update: "none" (eq. 7 as printed), "batch" (leave-one-out
#: mean of the batch's rewards), "ema" (moving average of earlier iterations' rewards).
AGENT_BASELINES = ("none", "batch", "ema")


# --------------------------------------------------------------------------- configuration
@dataclass
class Config(RecipeConfig):
    """All parameters of one MCH run (validated on creation: :meth:`validate`).

    Build with :meth:`for_scale` (presets :attr:`PRESETS`, plus :attr:`PRETRAINED_DEFAULT` at
    ``scale="default"`` with an ImageNet ``backbone``: :meth:`presets`).

    Data: ``dataset`` is ``"mosaic-<base>"`` (``mosaic-mnist5k``, ``mosaic-mnist``,
    ``mosaic-cifar10``, …: a ``grid``×``grid`` mosaic of ``n_images`` images built from that
    single-label set, 1 … grid² objects each) or one of the paper's sets (``nuswide21``,
    ``coco``, ``mirflickr25k``; need the real files). Split: ``multilabel_balanced`` (MCH §5.1:
    ``n_query_per_class`` queries and ``n_train_per_class`` training images per class, training
    drawn from the database, which includes it).
    """

    dataset: str = "mosaic-mnist5k"
    bits: int = 32
    base: str = "dch"
    seed: int = 0
    scale: str = "default"
    device: str = "auto"
    sigma: float = 0.5
    xi: float = 0.5
    # data
    n_images: int = 4000
    grid: int = 2
    n_query_per_class: int = 40
    n_train_per_class: int = 150
    input_size: int = 32
    # backbone: "scratch" (the small CNN below) or "efficientnet_lite0" (ImageNet, frozen, cached
    # crop features; see the module docstring), its input side (None: PRETRAINED_INPUT_SIZE), the
    # agent's finite crop ratios and the hidden layers of the feature head (pretrained regime only)
    backbone: str = "scratch"
    backbone_input_size: int | None = None
    crop_ratios: tuple = (0.3, 0.5, 0.7)
    head_hidden: tuple = ()
    # pretrained regime: "none" (the backbone frozen, the heads on cached pooled features) or
    # "last_block" / "last_4_blocks" (its last MBConv block / last four blocks + head conv fine-tuned
    # by the deep base models on cached maps, at base_lr x finetune_lr_mult; see FINETUNES)
    finetune: str = "none"
    finetune_lr_mult: float = 0.1
    # decoupled weight decay of X's optimiser (AdamW; 0: Adam, the preset), every deep base model's
    # parameters (head, hash layer and a tuned block); KSH's projection is not decayed
    base_weight_decay: float = 0.0
    # the scratch backbone (stand-in for ImageNet AlexNet) and its pretraining
    widths: tuple = (16, 32, 64)
    feat_dim: int = 128
    pretrain_iters: int = 400
    pretrain_lr: float = 1e-3
    pretrain_tiles: bool = True
    # base model
    base_iters: int = 500
    batch_size: int = 64
    base_lr: float = 1e-3
    hash_lr_mult: float = 10.0
    ksh_anchors: int = 300
    ksh_samples: int = 2000
    adsh_outer: int = 10
    adsh_omega: int = 2000
    # MMHH's t-distribution scale γ (see MMHHLoss): 10 is what MMHH's authors recommend (README);
    # 1 is the form MCH Table 1 prints, which collapses every code into one bucket on our data
    mmhh_gamma: float = 10.0
    # agent (§5.2.2)
    agent_iters: int = 100
    agent_batch: int = 256
    agent_lr: float = 1e-3  # the top of §5.2.2's range [1e-5, 1e-3] (the paper starts at 1e-4): see train_agent
    agent_momentum: float = 0.9
    agent_weight_decay: float = 5e-4
    policy_hidden: tuple = (512, 256, 128, 64)
    crop_min: float = 0.3
    crop_max: float = 0.7
    reward_pairs: int = 0
    reward_scale: str = "sum"
    # variance reduction for REINFORCE (deviation: eq. 7 has none; "none" + False is the paper's);
    # the defaults are data (AGENT_DEFAULTS in mch_agent) so that the claims read them without the recipe
    agent_baseline: str = AGENT_DEFAULTS["agent_baseline"]
    agent_reward_norm: bool = AGENT_DEFAULTS["agent_reward_norm"]
    agent_entropy: float = AGENT_DEFAULTS["agent_entropy"]
    agent_ema: float = 0.9
    # evaluation
    ks: tuple = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
    sigma_grid: tuple = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
    xi_grid: tuple = (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
    grid_items: int = 500
    sens_sigmas: tuple = (0.3, 0.5, 0.7)
    sens_xis: tuple = (0.01, 0.1, 0.5, 0.9)
    baselines: bool = True
    oracle: bool = True
    n_visual: int = 4
    cache: bool = True
    progress: bool | None = None

    #: Presets per scale: ``smoke`` (seconds, tests), ``default`` (CPU, a couple of minutes on 2
    #: cores), ``paper`` (the paper's split sizes and §5.2.2 agent settings, longer training; GPU).
    PRESETS = {
        "smoke": dict(n_images=240, n_query_per_class=3, n_train_per_class=8, input_size=16,
                      widths=(8, 16), feat_dim=32, pretrain_iters=10, base_iters=10, batch_size=32,
                      agent_iters=5, agent_batch=32, policy_hidden=(32, 32, 16, 16), ksh_anchors=30,
                      ksh_samples=80, adsh_outer=2, adsh_omega=60, ks=(1, 5, 20, 80),
                      sigma_grid=(0.5, 1.0), xi_grid=(0.5, 1.0), grid_items=40, sens_sigmas=(0.5,),
                      sens_xis=(0.5,), n_visual=2, cache=False),
        "default": {},
        "paper": dict(n_images=20000, n_query_per_class=100, n_train_per_class=500, input_size=64,
                      widths=(32, 64, 128, 256), feat_dim=512, pretrain_iters=5000, base_iters=10000,
                      adsh_outer=50, ks=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
                      grid_items=2000, sens_sigmas=(0.1, 0.3, 0.5, 0.7, 0.9),
                      sens_xis=(0.01, 0.1, 0.3, 0.5, 0.7, 0.9)),
    }
    #: The pretrained regime's ``default`` (``backbone`` not ``"scratch"``), applied over
    #: ``PRESETS["default"]``: a smaller mosaic and a longer head schedule (see :meth:`presets`).
    PRETRAINED_DEFAULT = dict(n_images=2000, n_query_per_class=20, n_train_per_class=80, grid_items=200,
                              sens_sigmas=(0.5,), base_iters=2000)
    #: MCH has no thread-count field: the notebook sets torch's threads itself.
    THREADS_FIELD = None
    #: The notebook passes ``agent_iters=None`` / ``sens_sigmas=None`` for "the scale's preset".
    DROP_NONE_OVERRIDES = True

    @classmethod
    def presets(cls, scale: str, overrides) -> dict:
        """``PRESETS[scale]``, and with ``backbone="efficientnet_lite0"`` at ``default``
        :attr:`PRETRAINED_DEFAULT`: a **smaller CIFAR-10 mosaic database**, 2,000 mosaics (20
        queries and 80 training images per class: about 200 queries, 800 training images, a
        database of 1,800), because every crop must go through the ImageNet backbone once and the
        scratch default's 4,000 mosaics need 63,000 crops per seed (the mosaic depends on the
        seed): 16-32 min on a free core at 33-65 crops/s (112 px), hours on the shared machine,
        where the extraction ran at about 2 crops/s beside the prioritised sweeps; ``grid_items`` =
        200 for Table 3 and ``sens_sigmas`` = (0.5,) (Fig. 9 varies ξ; σ is varied by Table 3's
        ANHC grid): 21,920 crops for seed 0 (:func:`~hashrepro.methods.mch_data.crop_plan`). The
        base models train ``base_iters`` = 2,000 iterations of 64 (a head on cached features: about
        a millisecond an iteration) instead of 500. Any of these can be overridden (e.g.
        ``n_images=4000, n_query_per_class=40, n_train_per_class=150, grid_items=500,
        sens_sigmas=(0.3, 0.5, 0.7)``: the scratch default's mosaic and split)."""
        kw = dict(cls.PRESETS[scale])
        if scale == "default" and overrides.get("backbone", cls.backbone) != "scratch":
            kw.update(cls.PRETRAINED_DEFAULT)
        return kw

    def validate(self) -> None:
        """Check every field (one-line errors naming the valid values); normalise ``base`` (lower
        case), ``bits``/``seed`` (int), ``sigma``/``xi`` (float), the tuple fields."""
        bad = self.invalid
        self.base = str(self.base).lower()
        if self.base not in BASES:
            bad("base", f"base must be one of {BASES}")
        if self.backbone not in BACKBONES:
            bad("backbone", f"backbone must be one of {BACKBONES} ('scratch': the small CNN trained on the "
                            "mosaics; 'efficientnet_lite0': the frozen ImageNet backbone)")
        if self.backbone_input_size is not None and (isinstance(self.backbone_input_size, bool) or not isinstance(
                self.backbone_input_size, (int, np.integer)) or self.backbone_input_size < 16):
            bad("backbone_input_size", "backbone_input_size must be None (the pretrained regime's "
                                       f"{PRETRAINED_INPUT_SIZE} px) or an int >= 16 (pixels)")
        self.check_scale(self.scale)
        if not isinstance(self.bits, (int, np.integer)) or not 1 <= int(self.bits) <= 64:
            bad("bits", "bits must be an integer in 1..64 (the bucket index keys)")
        self.bits = int(self.bits)
        self.seed = check_seed(self.seed)
        for name in ("sigma", "xi"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                bad(name, f"{name} must be in [0, 1]")
            setattr(self, name, v)
        if not 0 < self.crop_min <= self.crop_max <= 1:
            bad("crop_min", f"need 0 < crop_min <= crop_max <= 1, got crop_min={self.crop_min}, "
                            f"crop_max={self.crop_max}")
        if self.reward_scale not in ("sum", "mean"):
            bad("reward_scale", "reward_scale must be 'sum' (eq. 6) or 'mean'")
        if self.agent_baseline not in AGENT_BASELINES:
            bad("agent_baseline", f"agent_baseline must be one of {AGENT_BASELINES} ('none' is the paper's eq. 7)")
        self.agent_reward_norm = bool(self.agent_reward_norm)
        if float(self.agent_entropy) < 0:
            bad("agent_entropy", "agent_entropy must be >= 0")
        if not float(self.mmhh_gamma) > 0:
            bad("mmhh_gamma", "mmhh_gamma must be > 0 (1 = MCH Table 1, 10 = MMHH's README)")
        if not 0.0 <= float(self.agent_ema) < 1.0:
            bad("agent_ema", "agent_ema must be in [0, 1)")
        for name in ("n_images", "grid", "input_size", "feat_dim", "batch_size", "agent_batch",
                     "agent_iters", "ksh_anchors", "ksh_samples", "adsh_outer", "adsh_omega"):
            if int(getattr(self, name)) < 1:
                bad(name, f"{name} must be >= 1")
        for name in ("pretrain_iters", "base_iters", "reward_pairs", "n_visual", "grid_items"):
            if int(getattr(self, name)) < 0:
                bad(name, f"{name} must be >= 0")
        for name in ("widths", "policy_hidden", "ks", "sigma_grid", "xi_grid", "sens_sigmas", "sens_xis",
                     "crop_ratios", "head_hidden"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.backbone != "scratch":
            for name in ("sigma_grid", "sens_sigmas", "crop_ratios"):
                if any(not 0.0 < float(v) <= 1.0 for v in getattr(self, name)):
                    bad(name, f"{name} must hold crop ratios in (0, 1]")
            if not 0.0 < self.sigma:
                bad("sigma", "sigma must be in (0, 1] in the pretrained regime")
            if not self.agent_ratios():
                bad("crop_ratios", f"no crop_ratios lie in [crop_min, crop_max] = [{self.crop_min}, "
                                   f"{self.crop_max}]: the agent would have no crops to try")
        why = check_finetune(self.finetune, self.backbone)
        if why:
            bad("finetune", why)
        if self.finetune != "none" and self.base == "ksh":
            bad("finetune", "KSH is a kernel map on fixed features (MCH §5): finetune applies to hashnet, adsh, dch, mmhh")
        if not float(self.finetune_lr_mult) > 0:
            bad("finetune_lr_mult", "finetune_lr_mult must be > 0")
        if not float(self.base_weight_decay) >= 0:
            bad("base_weight_decay", "base_weight_decay must be >= 0")
        if any(int(k) < 1 for k in self.ks):
            bad("ks", "ks must be positive")
        parse_dataset(self.dataset)

    def agent_ratios(self) -> tuple:
        """The crop ratios the agent draws from in the pretrained regime: ``crop_ratios`` within
        [crop_min, crop_max]."""
        return tuple(float(r) for r in self.crop_ratios if self.crop_min <= float(r) <= self.crop_max)

    @property
    def backbone_size(self) -> int:
        """Pixels per side fed to the ImageNet backbone (pretrained regime)."""
        return int(self.backbone_input_size or PRETRAINED_INPUT_SIZE)


#: The Config fields that define the mosaic database and its split (the evaluation protocol).
SPLIT_FIELDS = ("n_images", "n_query_per_class", "n_train_per_class")


def split_tag(cfg: "Config") -> str:
    """``""`` when ``cfg``'s mosaic split (:data:`SPLIT_FIELDS`) is its regime's preset at its scale,
    else ``"mosaic<n_images>-q<n_query_per_class>-t<n_train_per_class>"`` (e.g. the from-scratch
    models on the pretrained regime's 2,000-mosaic split: ``mosaic2000-q20-t80``), so that runs on
    another split never mix with the preset's in a table or claim (:func:`method_name`)."""
    preset = {f.name: f.default for f in dataclasses.fields(Config) if f.name in SPLIT_FIELDS}
    preset.update({k: v for k, v in Config.presets(cfg.scale, {"backbone": cfg.backbone}).items()
                   if k in SPLIT_FIELDS})
    if all(int(getattr(cfg, k)) == int(preset[k]) for k in SPLIT_FIELDS):
        return ""
    return f"mosaic{int(cfg.n_images)}-q{int(cfg.n_query_per_class)}-t{int(cfg.n_train_per_class)}"


#: Training fields of the base model X that name a run when they differ from the regime's preset
#: (e.g. a value chosen on validation by ``hashrepro select mch``, :mod:`hashrepro.mch_select`), so that
#: such runs never mix with the preset's in a table or claim (:func:`tuning_tag`).
NAMED_FIELDS = ("base_iters", "base_lr", "finetune_lr_mult", "base_weight_decay")


def tuned_fields(cfg: "Config") -> dict[str, float]:
    """X's training fields (:data:`NAMED_FIELDS`) whose value in ``cfg`` is not the regime's preset at
    ``cfg``'s scale, in that order: ``{"finetune_lr_mult": 0.3}``."""
    preset = {f.name: f.default for f in dataclasses.fields(Config) if f.name in NAMED_FIELDS}
    preset.update({k: v for k, v in Config.presets(cfg.scale, {"backbone": cfg.backbone}).items()
                   if k in NAMED_FIELDS})
    return {k: float(getattr(cfg, k)) for k in NAMED_FIELDS if float(getattr(cfg, k)) != float(preset[k])}


def tuning_tag(cfg: "Config") -> str:
    """``""`` when X's training fields (:data:`NAMED_FIELDS`) are the regime's preset at ``cfg``'s scale,
    else ``"<field>-<value>"`` for each that differs (``finetune_lr_mult-0.3``; :func:`tuned_fields`)."""
    return "-".join(f"{k}-{v:g}" for k, v in tuned_fields(cfg).items())


def name_tag(cfg: "Config") -> str:
    """What names a run beyond its base model and backbone: the split (:func:`split_tag`), X's training
    fields where they are not the preset's (:func:`tuning_tag`) and, when the backbone's last block is
    fine-tuned, ``lastblock`` (``dch-lastblock-efficientnet_lite0``,
    ``dch-finetune_lr_mult-0.3-lastblock-efficientnet_lite0``; the last four blocks: ``last4blocks``), so that such runs never mix with the
    preset's or the frozen-backbone runs in a table or claim."""
    return "-".join(t for t in (split_tag(cfg), tuning_tag(cfg), finetune_tag(cfg.finetune))
                    if t)


def record_method(cfg: "Config", name: str | None = None) -> str:
    """The record name of ``name`` (default: the base model ``cfg.base``; ``"mch-dch"``, ``"lsh"``...) in
    ``cfg``'s regime, split and fine-tuning (:func:`method_name` with :func:`name_tag`):
    ``dch-lastblock-efficientnet_lite0``. The one place a run's record names are made."""
    return method_name(cfg.base if name is None else name, cfg.backbone, name_tag(cfg))


def pretrained_split_tag(backbone: str = "efficientnet_lite0", scale: str = "default") -> str:
    """The tag (:func:`split_tag`) of a from-scratch run on ``backbone``'s preset split at ``scale``
    (``mosaic2000-q20-t80`` at ``default``): the same mosaics, queries and database as the pretrained
    runs, so that the two regimes' base models are compared on one protocol."""
    split = {k: v for k, v in Config.presets(scale, {"backbone": backbone}).items() if k in SPLIT_FIELDS}
    return split_tag(Config.for_scale(scale, backbone="scratch", **split))


def method_name(name: str, backbone: str = "scratch", split: str = "") -> str:
    """Record name of a method in a regime: ``mch-dch`` / ``dch`` / ``lsh`` from scratch,
    ``mch-dch-efficientnet_lite0`` etc. on the ImageNet backbone; a mosaic split other than the
    regime's preset (``split``: :func:`split_tag`) is named before the backbone
    (``dch-mosaic2000-q20-t80``)."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    name = f"{name}-{split}" if split else name
    return name if backbone == "scratch" else f"{name}-{backbone}"


# --------------------------------------------------------------------------- the recipe
def run(cfg: Config | None = None, *, command: str | None = None, **overrides) -> dict:
    """Run MCH with one base model end to end and return the MCH-X run record.

    ``run(Config.for_scale("smoke", dataset="mosaic-digits"))``, ``run(cfg, command="papermill ...")``
    or ``run(scale="smoke", dataset="mosaic-digits", bits=16)`` (keyword overrides build
    ``Config.for_scale(scale, **overrides)``; with a ``cfg`` they replace its fields). Set-up and
    wrap-up: :func:`hashrepro.recipe.recipe_run`. ``command`` (default: the papermill command of
    ``cfg``, :func:`hashrepro.results.reproduce_command`) goes into all four records.

    Steps: load + split (:func:`~hashrepro.methods.mch_data.load_data`); pretrain the backbone
    (cached) or read the cached ImageNet crop features; learn the base model
    (:func:`~hashrepro.methods.mch_train.train_base`); learn the agent
    (:func:`~hashrepro.methods.mch_agent.train_agent`); encode queries (whole image) and the
    database (whole image + 5 crops of ratio σ, kept when P(keep) ≥ ξ:
    :func:`~hashrepro.methods.mch_agent.extend`); evaluate single-code X and multi-code MCH-X
    (:func:`hashrepro.metrics.evaluate_codes`: mAP, P/R@H=0, F1–bucket); ANHC; the σ × ξ ANHC grid
    (Table 3) on ``grid_items`` database items; F1–bucket sensitivity to σ and ξ (Fig. 9); bucket
    search cost against a linear scan (:func:`hashrepro.metrics.search_cost`); Fig. 8 data.

    MCH records have no ``final_loss`` or bit statistic; the base model's training loss is the
    record's loss curve in the one format (``curves["train_loss"]``, :func:`hashrepro.recipe.loss_curve`);
    records written before it have ``curves["base_loss"]`` (every n-th value), which
    :func:`hashrepro.recipe.read_loss_curve` still reads.

    Returns
    -------
    dict
        The ``mch-<base>`` run record (:func:`hashrepro.results.make_record`) with its companion
        records (:func:`hashrepro.recipe.with_companions`, ``record["companions"]``): the base model
        alone (``<base>``) and, when ``cfg.baselines``, LSH and ITQ on the pretrained backbone
        features. Save all with :func:`hashrepro.recipe.save_with_companions`.
    """
    from ..results import reproduce_command

    with recipe_run(Config, cfg, overrides) as r:
        cfg, device = r.cfg, r.device
        ds, sp = load_data(cfg)
        Y = ds.label_matrix()
        y_tr, y_q, y_db = Y[sp.train], Y[sp.query], Y[sp.database]
        bank = None
        if cfg.backbone == "scratch":
            u8 = images_tensor(ds.images)  # what the hashers code: images (scratch) or dataset rows
            x_train = crop_resize(u8[sp.train], None, cfg.input_size)
            # 1. backbone (stand-in for ImageNet AlexNet), then the base model (Table 1)
            xt, yt = mosaic_tiles(ds, sp.train, cfg.input_size) if cfg.pretrain_tiles else (None, None)
            backbone_state, t_pre, cached = pretrain_backbone(cfg, x_train, y_tr, device,
                                                              torch.Generator().manual_seed(cfg.seed + 1), xt, yt)
        else:
            # 1. the frozen ImageNet backbone: cached pooled features of the whole images and crops
            bank, feat_info = prepare_features(cfg, ds, sp)
            t_pre, cached = feat_info["extraction_s"], feat_info["cached"]
            u8 = torch.arange(len(ds.images))
            x_train = torch.from_numpy(bank.whole(sp.train))
            torch.manual_seed(cfg.seed + 1)
            backbone_state = FeatureBackbone.fit(x_train, cfg.head_hidden).state_dict()
            if cfg.finetune != "none":  # the deep base model trains on the maps entering the tuned blocks
                maps_bank, maps_info = prepare_features(cfg, ds, sp, upto=finetune_start(cfg.finetune))
                t_pre += maps_info["extraction_s"]
                cached = cached and maps_info["cached"]
                feat_info["n_crops"] += maps_info["n_crops"]
                x_train = torch.from_numpy(maps_bank.whole(sp.train))
        torch.manual_seed(cfg.seed + 2)
        hasher, info = train_base(cfg, backbone_state, x_train, y_tr, device,
                                  torch.Generator().manual_seed(cfg.seed + 3),
                                  maps_bank if cfg.finetune != "none" else bank)
        loss_fn = make_loss(cfg.base, cfg.bits, **loss_kwargs(cfg))

        # 2. encode whole images
        f_tr, z_tr = hasher.embed(u8[sp.train])
        f_q, z_q = hasher.embed(u8[sp.query])
        f_db, z_db = hasher.embed(u8[sp.database])
        q01 = binarize(z_q)
        db01 = binarize(z_db)
        b_db_train = codes_pm1(z_tr)
        if cfg.base == "adsh":  # asymmetric: training images are stored with their learned codes V
            V = info["V"]
            b_db_train = V
            pos = np.searchsorted(sp.database, sp.train)
            ok = (pos < len(sp.database)) & (sp.database[np.minimum(pos, len(sp.database) - 1)] == sp.train)
            db01[pos[ok]] = (V[torch.from_numpy(ok)] > 0).numpy().astype(np.uint8)

        # 3. agent (Algorithm 2)
        torch.manual_seed(cfg.seed + 4)
        agent = train_agent(cfg, hasher, loss_fn, u8[sp.train], f_tr, z_tr, b_db_train, y_tr, device, cfg.seed)
        policy = agent.policy

        # 4. out-of-sample extension (§4.3) for the database
        t0 = time.perf_counter()
        crops: dict[float, tuple] = {}

        def crops_for(sigma):
            if sigma not in crops:
                crops[sigma] = crop_keep_probabilities(hasher, policy, u8[sp.database], f_db, z_db, sigma, device)
            return crops[sigma]

        zc, pk = crops_for(cfg.sigma)
        codes, owners, anhc_raw = extend(db01, zc, pk, cfg.xi)
        mc = MultiCodes(codes, owners, len(db01))
        t_ext = time.perf_counter() - t0

        # 5. evaluation: base (single code) and MCH (multi-code)
        m_base, c_base = evaluate_codes(q01, db01, y_q, y_db, cfg.ks)
        m_mch, c_mch = evaluate_codes(q01, mc, y_q, y_db, cfg.ks)
        if cfg.oracle:
            m_or, f1_bucket_oracle = oracle_metrics(cfg, loss_fn, db01, zc, pk, z_tr, y_q, y_db, y_tr, sp, q01)
            c_mch["f1_bucket_oracle"] = f1_bucket_oracle
        k_cost = int(min(100, len(db01)))
        m_base.update(search_cost(q01, db01, k_cost))
        m_mch.update(search_cost(q01, mc, k_cost))
        if cfg.oracle:
            m_mch.update({f"oracle_{k}": v for k, v in m_or.items()})
        m_mch["anhc"] = float(len(codes) / len(db01))
        m_mch["anhc_raw"] = float(anhc_raw)
        m_base["anhc"] = 1.0

        # Table 3: ANHC over σ × ξ on a subset of the database
        sub, rng = grid_sample(cfg, len(sp.database))
        g_rows = anhc_grid(cfg, sub, db01, crops, lambda sigma: crop_keep_probabilities(
            hasher, policy, u8[sp.database[sub]], f_db[sub], z_db[sub], sigma, device))
        # Fig. 9: F1–bucket sensitivity to σ (ξ fixed) and ξ (σ fixed)
        sens = sensitivity(cfg, crops_for, q01, db01, y_q, y_db)
        # Fig. 8: a few queries, their top 10 under MCH bucket search, distances under X and MCH-X
        vis = visual_examples(cfg, rng, mc, q01, db01, sp, Y)

        # 6. the records: protocol, timings, curves; the base model X and the baselines as companions
        protocol = dict(sp.protocol)
        protocol.update({"topk": None, "ties": "index", "empty": "zero", "ranking": "binary",
                         "n_train": int(len(sp.train)), "n_query": int(len(sp.query)),
                         "n_database": int(len(sp.database)), "database_includes_train": True,
                         "query_codes": "one code per query (whole image)",
                         "search": "hash bucket search, MCH Algorithm 1 (hashrepro.index.BucketIndex)",
                         "relevance": "share >= 1 label"})
        if bank is not None:
            protocol.update(backbone_protocol(cfg, bank, len(ds.images)))
            if cfg.finetune != "none":
                protocol["finetune"] = (f"{cfg.finetune}: blocks {finetune_start(cfg.finetune)}.. + head conv of the ImageNet backbone "
                                        f"fine-tuned with the base model (lr x {cfg.finetune_lr_mult:g}, batch norm "
                                        "statistics frozen) on cached maps; every crop re-encoded once after training")
        proto_mch = dict(protocol, database_codes=f"whole image + 5 crops (sigma={cfg.sigma:g}) kept when "
                                                 f"P(keep) >= xi={cfg.xi:g}; equal codes of an item merged")
        proto_base = dict(protocol, database_codes="one code per item (whole image)" +
                          ("; training images stored with ADSH's learned codes V" if cfg.base == "adsh" else ""))
        timing = {"pretrain_s": float(t_pre), "pretrain_cached": float(cached), **(
                      {"reencode_s": float(info["reencode_s"])} if "reencode_s" in info else {}),
                  "base_train_s": float(info["wall_time_s"]), "agent_train_s": float(agent.wall_time_s),
                  "extension_s": float(t_ext)}
        if bank is not None:
            timing["feature_crops"] = float(feat_info["n_crops"])
        m_mch.update(timing)
        m_mch["agent_final_keep_prob"] = float(np.mean(agent.keep_prob[-10:])) if agent.keep_prob else float("nan")
        m_mch["agent_oracle_keep"] = float(np.mean(agent.oracle_keep)) if agent.oracle_keep else float("nan")
        m_mch["keep_prob_mean"] = float(pk.mean())
        m_mch["keep_prob_max"] = float(pk.max())
        m_base.update({k: v for k, v in timing.items() if k != "extension_s" and k != "agent_train_s"})
        loss_hist = list(map(float, info["loss"]))
        base_curve = loss_curve(loss_hist)  # the base model's training loss, in the one curve format
        agent_curve = {"iteration": list(range(len(agent.reward))), "reward": agent.reward,
                       "keep_prob": agent.keep_prob, "keep_rate": agent.keep_rate, "oracle_keep": agent.oracle_keep}
        wall = r.elapsed()
        if command is None:
            command = reproduce_command("mch", cfg.to_dict())  # the one definition (hashrepro.results)
        rec_mch = r.record(paper="mch", method=record_method(cfg, f"mch-{cfg.base}"), protocol=proto_mch,
                           metrics=_clean(m_mch), curves={**c_mch, "anhc_grid": g_rows, "sensitivity": sens,
                                                          "agent": agent_curve, "visual": vis,
                                                          LOSS_CURVE_KEY: base_curve},
                           command=command, wall_time_s=wall)
        rec_base = r.record(paper="mch", method=record_method(cfg), protocol=proto_base,
                            metrics=_clean(m_base), curves={**c_base, LOSS_CURVE_KEY: base_curve}, command=command,
                            wall_time_s=wall)
        # a collapsed or diverged run is flagged in its record, never reported as a normal number
        base_flags = diagnose(db01, loss_hist, labels=y_db)
        flag_record(rec_base, base_flags)
        keys = {f.split(":", 1)[0] for f in base_flags}
        mch_flags = diagnose(codes, labels=y_db, what="database codes (whole image and kept crops)")
        flag_record(rec_mch, base_flags + [f for f in mch_flags if f.split(":", 1)[0] not in keys])
        companions = [rec_base]
        if cfg.baselines and cfg.finetune == "none":  # fine-tuning changes no LSH / ITQ input
            companions += _baseline_records(r, cfg, backbone_state, bank, u8, sp, y_q, y_db, k_cost, protocol,
                                            t_pre, command)
        return with_companions(rec_mch, companions)


def _baseline_records(r, cfg: Config, backbone_state, bank, u8, sp, y_q, y_db, k_cost: int, protocol: dict,
                      t_pre: float, command: str) -> list[dict]:
    """LSH and ITQ on the whole-image features of the run's backbone (the scratch CNN's, or the
    ImageNet backbone's pooled features): one record each, wall time = its own + the backbone's."""
    if bank is None:
        f_tr0, f_q0, f_db0 = backbone_features(cfg, backbone_state, u8, sp, r.device)
    else:  # the ImageNet backbone's pooled whole-image features
        f_tr0, f_q0, f_db0 = (bank.whole(part).astype(np.float64) for part in (sp.train, sp.query, sp.database))
    out = []
    for name in ("lsh", "itq"):
        tb = time.perf_counter()
        bq, bdb = baseline_codes(name, cfg.bits, f_tr0, f_q0, f_db0, cfg.seed)
        m_b, c_b = evaluate_codes(bq, bdb, y_q, y_db, cfg.ks)
        m_b.update(search_cost(bq, bdb, k_cost))
        m_b["anhc"] = 1.0
        proto_b = dict(protocol, database_codes="one code per item (whole image); features: pretrained backbone")
        rec_b = r.record(paper="mch", method=record_method(cfg, name), protocol=proto_b, metrics=_clean(m_b),
                         curves=c_b, command=command, wall_time_s=time.perf_counter() - tb + t_pre)
        out.append(flag_record(rec_b, diagnose(bdb, labels=y_db)))
    return out


def _clean(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()}
