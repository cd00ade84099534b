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
   baseline and normalised advantages at lr 1e-3 (a deviation, see :func:`train_agent`).
3. **Out-of-sample extension** (§4.3): database image + 5 crops (4 corners, centre) of side
   ratio σ; a crop's code is kept when the policy's keep probability is ≥ ξ; the whole image's
   code is always kept. σ = ξ = 0.5.
4. **Search** (§2.1, Algorithm 1): :class:`hashrepro.index.BucketIndex` with several codes per
   database item; the query is encoded with one code (its whole image). Metrics: R@H=0, P@H=0
   (Figs. 3–4), mAP (Table 2), F1–bucket curves (Figs. 5–7), ANHC (eq. 8, Table 3), σ/ξ
   sensitivity (Fig. 9), bucket search cost against a linear scan.

:func:`run` does all of it for one base model and returns the MCH-X run record; the base model's
own single-code record and the LSH / ITQ baselines on the same backbone features come with it in
``record["companions"]`` (the notebook saves each).

Deviations from the paper (stated in the chapter): a small CNN pretrained on the training split
as a multi-label classifier stands in for ImageNet AlexNet (no weights offline, 2-core CPU);
Adam for the base models (the authors' SGD settings are for fine-tuning AlexNet); synthetic
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
(:func:`crop_plan`, :func:`prepare_features`: run it alone, in the background, to fill the cache).
LSH and ITQ run on the same whole-image features; the agent's state (eq. 3) uses the standardised
features of the image and the crop. Records are named ``<method>-efficientnet_lite0`` (``mch-dch-
efficientnet_lite0``, ``dch-efficientnet_lite0``, ``lsh-efficientnet_lite0``) and carry
``protocol["backbone"]``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..losses.pairwise import (ADSHLoss, PairwiseHashLoss, _sign, hamming_distance_pm1, hashnet_beta,
                               make_loss, pair_weights, similarity)
from ..models.policy import KEEP, PolicyNet, build_state
from ..models.small_cnn import HashModel, SmallCNN
from ..crop_features import crop_resize
from ..diagnostics import diagnose, flag_record
from ..params import check_seed

__all__ = [
    "BASES",
    "PAPER_DATASETS",
    "Config",
    "parse_dataset",
    "load_data",
    "crop_boxes",
    "random_crop_boxes",
    "crop_resize",
    "BACKBONES",
    "PRETRAINED_INPUT_SIZE",
    "method_name",
    "crop_plan",
    "prepare_features",
    "CropBank",
    "FeatureHasher",
    "DeepHasher",
    "KSHHasher",
    "train_base",
    "AgentResult",
    "compute_rewards",
    "AGENT_BASELINES",
    "policy_gradient_loss",
    "train_agent",
    "extend",
    "evaluate_codes",
    "run",
]

BASES = ("ksh", "hashnet", "adsh", "dch", "mmhh")
#: "scratch": the small CNN trained on the mosaics; "efficientnet_lite0": the ImageNet backbone,
#: frozen, the pooled features of every crop cached, the base models as heads on them.
BACKBONES = ("scratch", "efficientnet_lite0")
#: Input side of the ImageNet backbone in the pretrained regime (see the module docstring).
PRETRAINED_INPUT_SIZE = 112
#: Baselines of the agent's REINFORCE update: "none" (eq. 7 as printed), "batch" (leave-one-out
#: mean of the batch's rewards), "ema" (moving average of earlier iterations' rewards).
AGENT_BASELINES = ("none", "batch", "ema")
#: The paper's data sets (§5.1): loaders and protocols exist in hashrepro.data, not run offline.
PAPER_DATASETS = ("nuswide21", "coco", "mirflickr25k")
_RELAX = {"ksh": "sigmoid", "hashnet": "tanh", "adsh": "continuous", "dch": "continuous", "mmhh": "continuous"}


# --------------------------------------------------------------------------- configuration
@dataclass
class Config:
    """All parameters of one MCH run (validated in ``__post_init__``).

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
    # variance reduction for REINFORCE (deviation: eq. 7 has none; "none" + False is the paper's)
    agent_baseline: str = "ema"
    agent_reward_norm: bool = True
    agent_entropy: float = 0.0
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

    def __post_init__(self):
        self.base = str(self.base).lower()
        if self.base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {self.base!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES} ('scratch': the small CNN trained on the "
                             f"mosaics; 'efficientnet_lite0': the frozen ImageNet backbone), got {self.backbone!r}")
        if self.backbone_input_size is not None and (isinstance(self.backbone_input_size, bool) or not isinstance(
                self.backbone_input_size, (int, np.integer)) or self.backbone_input_size < 16):
            raise ValueError("backbone_input_size must be None (the pretrained regime's "
                             f"{PRETRAINED_INPUT_SIZE} px) or an int >= 16 (pixels), got {self.backbone_input_size!r}")
        if self.scale not in ("smoke", "default", "paper"):
            raise ValueError(f"scale must be 'smoke', 'default' or 'paper', got {self.scale!r}")
        if not isinstance(self.bits, (int, np.integer)) or not 1 <= int(self.bits) <= 64:
            raise ValueError(f"bits must be an integer in 1..64 (the bucket index keys), got {self.bits!r}")
        self.bits = int(self.bits)
        self.seed = check_seed(self.seed)
        for name in ("sigma", "xi"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
            setattr(self, name, v)
        if not 0 < self.crop_min <= self.crop_max <= 1:
            raise ValueError(f"need 0 < crop_min <= crop_max <= 1, got {self.crop_min}, {self.crop_max}")
        if self.reward_scale not in ("sum", "mean"):
            raise ValueError(f"reward_scale must be 'sum' (eq. 6) or 'mean', got {self.reward_scale!r}")
        if self.agent_baseline not in AGENT_BASELINES:
            raise ValueError(f"agent_baseline must be one of {AGENT_BASELINES} ('none' is the paper's eq. 7), "
                             f"got {self.agent_baseline!r}")
        self.agent_reward_norm = bool(self.agent_reward_norm)
        if float(self.agent_entropy) < 0:
            raise ValueError(f"agent_entropy must be >= 0, got {self.agent_entropy}")
        if not float(self.mmhh_gamma) > 0:
            raise ValueError(f"mmhh_gamma must be > 0 (1 = MCH Table 1, 10 = MMHH's README), got {self.mmhh_gamma}")
        if not 0.0 <= float(self.agent_ema) < 1.0:
            raise ValueError(f"agent_ema must be in [0, 1), got {self.agent_ema}")
        for name in ("n_images", "grid", "input_size", "feat_dim", "batch_size", "agent_batch",
                     "agent_iters", "ksh_anchors", "ksh_samples", "adsh_outer", "adsh_omega"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pretrain_iters", "base_iters", "reward_pairs", "n_visual", "grid_items"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("widths", "policy_hidden", "ks", "sigma_grid", "xi_grid", "sens_sigmas", "sens_xis",
                     "crop_ratios", "head_hidden"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.backbone != "scratch":
            for name in ("sigma_grid", "sens_sigmas", "crop_ratios"):
                if any(not 0.0 < float(v) <= 1.0 for v in getattr(self, name)):
                    raise ValueError(f"{name} must hold crop ratios in (0, 1], got {getattr(self, name)}")
            if not 0.0 < self.sigma:
                raise ValueError(f"sigma must be in (0, 1] in the pretrained regime, got {self.sigma}")
            if not self.agent_ratios():
                raise ValueError(f"no crop_ratios {self.crop_ratios} lie in [crop_min, crop_max] = "
                                 f"[{self.crop_min}, {self.crop_max}]: the agent would have no crops to try")
        if any(int(k) < 1 for k in self.ks):
            raise ValueError(f"ks must be positive, got {self.ks}")
        parse_dataset(self.dataset)

    def agent_ratios(self) -> tuple:
        """The crop ratios the agent draws from in the pretrained regime: ``crop_ratios`` within
        [crop_min, crop_max]."""
        return tuple(float(r) for r in self.crop_ratios if self.crop_min <= float(r) <= self.crop_max)

    @property
    def backbone_size(self) -> int:
        """Pixels per side fed to the ImageNet backbone (pretrained regime)."""
        return int(self.backbone_input_size or PRETRAINED_INPUT_SIZE)

    @classmethod
    def for_scale(cls, scale: str = "default", **overrides) -> "Config":
        """Presets: ``smoke`` (seconds, tests), ``default`` (CPU, a couple of minutes on 2 cores),
        ``paper`` (the paper's split sizes and §5.2.2 agent settings, longer training; GPU).

        With ``backbone="efficientnet_lite0"`` at ``default`` (the ``pretrained`` preset): a
        **smaller CIFAR-10 mosaic database**, 2,000 mosaics (20 queries and 80 training images per
        class: about 200 queries, 800 training images, a database of 1,800), because every crop must
        go through the ImageNet backbone once and the scratch default's 4,000 mosaics need 63,000
        crops per seed (the mosaic depends on the seed): 16-32 min on a free core at 33-65 crops/s
        (112 px), hours on the shared machine, where the extraction ran at about 2 crops/s beside
        the prioritised sweeps; ``grid_items`` = 200 for Table 3 and ``sens_sigmas`` = (0.5,)
        (Fig. 9 varies ξ; σ is varied by Table 3's ANHC grid): 21,920 crops for seed 0
        (:func:`crop_plan`). The base models train ``base_iters`` = 2,000 iterations of 64 (a head
        on cached features: about a millisecond an iteration) instead of 500. Any of these can be
        overridden (e.g. ``n_images=4000, n_query_per_class=40, n_train_per_class=150,
        grid_items=500, sens_sigmas=(0.3, 0.5, 0.7)``: the scratch default's mosaic and split)."""
        presets = {
            "smoke": dict(n_images=240, n_query_per_class=3, n_train_per_class=8, input_size=16,
                          widths=(8, 16), feat_dim=32, pretrain_iters=10, base_iters=10, batch_size=32,
                          agent_iters=5, agent_batch=32, policy_hidden=(32, 32, 16, 16), ksh_anchors=30,
                          ksh_samples=80, adsh_outer=2, adsh_omega=60, ks=(1, 5, 20, 80),
                          sigma_grid=(0.5, 1.0), xi_grid=(0.5, 1.0), grid_items=40, sens_sigmas=(0.5,),
                          sens_xis=(0.5,), n_visual=2, cache=False),
            "default": {},
            # the pretrained regime's default (with backbone != "scratch"): a smaller mosaic, see below
            "pretrained": dict(n_images=2000, n_query_per_class=20, n_train_per_class=80, grid_items=200,
                               sens_sigmas=(0.5,), base_iters=2000),
            "paper": dict(n_images=20000, n_query_per_class=100, n_train_per_class=500, input_size=64,
                          widths=(32, 64, 128, 256), feat_dim=512, pretrain_iters=5000, base_iters=10000,
                          adsh_outer=50, ks=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
                          grid_items=2000, sens_sigmas=(0.1, 0.3, 0.5, 0.7, 0.9),
                          sens_xis=(0.01, 0.1, 0.3, 0.5, 0.7, 0.9)),
        }
        if scale not in ("smoke", "default", "paper"):
            raise ValueError(f"scale must be one of ['default', 'paper', 'smoke'], got {scale!r}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown Config field(s) {unknown}; valid: {sorted(names)}")
        kw = dict(presets[scale])
        if overrides.get("backbone", cls.backbone) != "scratch" and scale == "default":
            kw.update(presets["pretrained"])
        kw.update(overrides)
        return cls(scale=scale, **kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def parse_dataset(name: str) -> dict:
    """``"mosaic-cifar10"`` -> ``{"kind": "mosaic", "base": "cifar10"}``; paper sets -> kind "paper".

    Raises ValueError naming the valid forms.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset must be a non-empty string, got {name!r}")
    if name.startswith("mosaic-") or name.startswith("mosaic:"):
        base = name[len("mosaic-"):]
        if not base:
            raise ValueError("mosaic dataset needs a base set, e.g. 'mosaic-mnist5k' or 'mosaic-cifar10'")
        return {"kind": "mosaic", "base": base}
    if name == "mosaic":
        return {"kind": "mosaic", "base": "mnist5k"}
    if name in PAPER_DATASETS:
        return {"kind": "paper", "name": name}
    raise ValueError(f"dataset must be 'mosaic-<base>' (e.g. mosaic-mnist5k, mosaic-cifar10) or one of "
                     f"the paper's sets {PAPER_DATASETS}, got {name!r}")


# --------------------------------------------------------------------------- data
def load_data(cfg: Config):
    """Load the data set and the MCH split (§5.1). Returns ``(dataset, split)``.

    Mosaic: ``hashrepro.data.load("mosaic", base=<base>, grid, n=n_images, seed)``. Split:
    ``multilabel_balanced`` with ``n_query_per_class`` / ``n_train_per_class``, training drawn
    from the database (``database_includes_train=True``, as the paper). The paper's sets use
    their own protocol (NUS-WIDE: 100 / 500 per class; COCO, MIRFLICKR: 5,000 / 10,000 uniform).
    """
    from .. import data as hdata

    key = (cfg.dataset, cfg.grid, cfg.n_images, cfg.seed, cfg.n_query_per_class, cfg.n_train_per_class,
           os.environ.get("HASHREPRO_DATA"))
    if _DATA_MEMO.get("key") == key:
        return _DATA_MEMO["value"]
    spec = parse_dataset(cfg.dataset)
    if spec["kind"] == "mosaic":
        ds = hdata.load("mosaic", base=spec["base"], grid=cfg.grid, n=cfg.n_images, seed=cfg.seed)
        kw = dict(n_query_per_class=cfg.n_query_per_class, n_train_per_class=cfg.n_train_per_class)
    else:
        ds = hdata.load(spec["name"])
        kw = ({} if spec["name"] != "nuswide21" else
              dict(n_query_per_class=cfg.n_query_per_class, n_train_per_class=cfg.n_train_per_class))
    sp = hdata.split(ds, "multilabel_balanced", seed=cfg.seed, database_includes_train=True, **kw)
    _DATA_MEMO.clear()
    _DATA_MEMO.update(key=key, value=(ds, sp))
    return ds, sp


_DATA_MEMO: dict = {}  # the last data set loaded (the notebook draws Fig. 8 from it after run())


def _images_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> uint8 tensor (N, C, H, W) (kept as bytes; crops are made per batch)."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


def mosaic_tiles(ds, idx: np.ndarray, size: int):
    """The occupied tiles of mosaic images ``idx`` as object-centric images for backbone pretraining.

    Returns (float (M, C, size, size) in [0, 1], one-hot uint8 (M, n_classes)); empty arrays when
    ``ds`` has no tile layout (not a mosaic).
    """
    tiles = ds.meta.get("tiles") if isinstance(ds.meta, dict) else None
    if tiles is None:
        return None, None
    th, tw = ds.meta["tile_shape"]
    tiles = np.asarray(tiles)[idx]
    rows, gy, gx = np.nonzero(tiles >= 0)
    imgs = np.stack([ds.images[idx[r], y * th:(y + 1) * th, x * tw:(x + 1) * tw] for r, y, x in zip(rows, gy, gx)])
    y = np.zeros((len(rows), ds.n_classes), dtype=np.uint8)
    y[np.arange(len(rows)), tiles[rows, gy, gx]] = 1
    return crop_resize(_images_tensor(imgs), None, size), y


# --------------------------------------------------------------------------- crops
def crop_boxes(height: int, width: int, sigma: float) -> np.ndarray:
    """The 5 crops of §4.3: four corners and the centre, each of side ratio ``sigma``.

    Returns float (5, 4) boxes ``(x1, y1, x2, y2)`` in pixel coordinates (order: top-left,
    top-right, bottom-left, bottom-right, centre). ``sigma = 1`` gives the whole image 5 times.
    """
    if not 0.0 < sigma <= 1.0:
        raise ValueError(f"sigma must be in (0, 1], got {sigma}")
    ch, cw = sigma * height, sigma * width
    oy, ox = (height - ch) / 2.0, (width - cw) / 2.0
    return np.array([[0, 0, cw, ch], [width - cw, 0, width, ch], [0, height - ch, cw, height],
                     [width - cw, height - ch, width, height], [ox, oy, ox + cw, oy + ch]], dtype=np.float32)


def random_crop_boxes(n: int, height: int, width: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """One random square-ratio crop per image (Algorithm 2): side ratio ~ U(lo, hi), position uniform.

    Returns float (n, 4) boxes ``(x1, y1, x2, y2)``.
    """
    r = rng.uniform(lo, hi, size=n)
    ch, cw = r * height, r * width
    y1 = rng.uniform(0, 1, size=n) * (height - ch)
    x1 = rng.uniform(0, 1, size=n) * (width - cw)
    return np.stack([x1, y1, x1 + cw, y1 + ch], 1).astype(np.float32)


# --------------------------------------------------------------------------- hashers
class _ImageCrops:
    """Crops of images for a hasher whose ``embed(images_u8, boxes)`` codes pixel boxes (scratch)."""

    def embed_crop(self, images_u8: torch.Tensor, sigma: float, pos: int):
        """Crop ``pos`` (0..4: top-left, top-right, bottom-left, bottom-right, centre) of ratio
        ``sigma`` of every image -> (f (N, D), z (N, Q))."""
        n, _, h, w = images_u8.shape
        return self.embed(images_u8, np.repeat(crop_boxes(h, w, sigma)[pos:pos + 1], n, axis=0))

    def embed_random_crops(self, images_u8: torch.Tensor, cfg: "Config", rng: np.random.Generator):
        """One random crop per image (Algorithm 2: ratio ~ U(crop_min, crop_max), position uniform)."""
        n, _, h, w = images_u8.shape
        return self.embed(images_u8, random_crop_boxes(n, h, w, cfg.crop_min, cfg.crop_max, rng))


def _crop_method(hasher, name: str):
    """``hasher.<name>``, or the image-crop version of it for a hasher that only has ``embed(images,
    boxes)`` (any object coding pixel boxes)."""
    fn = getattr(hasher, name, None)
    if fn is not None:
        return fn
    return getattr(_ImageCrops, name).__get__(hasher)


class DeepHasher(_ImageCrops):
    """A trained deep base model: images -> (features f(x), pre-activations z); code = sign(z)."""

    def __init__(self, model: HashModel, input_size: int, device: torch.device):
        self.model, self.input_size, self.device = model, input_size, device

    @torch.no_grad()
    def embed(self, images_u8: torch.Tensor, boxes=None, batch_size: int = 512):
        """uint8 (N, C, H, W) [+ boxes (N, 4)] -> (f float (N, D), z float (N, Q)) numpy."""
        self.model.eval()
        fs, zs = [], []
        for i in range(0, len(images_u8), batch_size):
            bx = None if boxes is None else boxes[i:i + batch_size]
            x = crop_resize(images_u8[i:i + batch_size], bx, self.input_size).to(self.device)
            f, z = self.model.features_and_codes(x)
            fs.append(f.float().cpu())
            zs.append(z.float().cpu())
        return torch.cat(fs).numpy(), torch.cat(zs).numpy()


class KSHModel(nn.Module):
    """KSH's hash function on backbone features (Liu et al. 2012; KSH_demo.m):
    ``z = Aᵀ k̄(f)``, ``k(f, a) = exp(-||f - a||² / (2 σ_k))`` over ``m`` random anchors, kernel
    columns centred with the training means; ``σ_k`` = mean squared feature–anchor distance.
    Relaxation (Table 1): sigmoid smoothing ``φ(z) = 2/(1 + e^{-z}) - 1``.
    """

    def __init__(self, anchors: torch.Tensor, n_bits: int, train_feats: torch.Tensor):
        super().__init__()
        self.register_buffer("anchors", anchors)
        d2 = torch.cdist(train_feats, anchors).pow(2)
        self.register_buffer("sigma_k", d2.mean().clamp_min(1e-12))
        k = torch.exp(-d2 / (2 * self.sigma_k))
        self.register_buffer("mean", k.mean(0))
        self.A = nn.Parameter(torch.randn(anchors.shape[0], n_bits) / math.sqrt(anchors.shape[0]))

    def kernel(self, f: torch.Tensor) -> torch.Tensor:
        """(N, D) -> centred kernel features (N, m)."""
        return torch.exp(-torch.cdist(f, self.anchors).pow(2) / (2 * self.sigma_k)) - self.mean

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """(N, D) features -> pre-activations z (N, Q)."""
        return self.kernel(f) @ self.A


class KSHHasher(_ImageCrops):
    """KSH on frozen backbone features: images -> (f(x), z = KSH(f(x)))."""

    def __init__(self, backbone: SmallCNN, ksh: KSHModel, input_size: int, device: torch.device):
        self.backbone, self.ksh, self.input_size, self.device = backbone, ksh, input_size, device

    @torch.no_grad()
    def embed(self, images_u8: torch.Tensor, boxes=None, batch_size: int = 512):
        self.backbone.eval()
        fs, zs = [], []
        for i in range(0, len(images_u8), batch_size):
            bx = None if boxes is None else boxes[i:i + batch_size]
            x = crop_resize(images_u8[i:i + batch_size], bx, self.input_size).to(self.device)
            f = self.backbone(x)
            fs.append(f.float().cpu())
            zs.append(self.ksh(f).float().cpu())
        return torch.cat(fs).numpy(), torch.cat(zs).numpy()


class CropBank:
    """Cached pooled backbone features of whole images and of their crops (pretrained regime).

    whole : (N_all, D) features of every dataset row (the whole image), indexed by dataset row.
    groups : {σ: (rows (n,) sorted int64 dataset rows, feats (n, 5, D))}, the 5 crops of
        :func:`crop_boxes` of ratio σ of those rows. σ = 1 is the whole image.
    """

    def __init__(self, whole: np.ndarray, groups: dict):
        self.whole_feats = whole
        self.groups = {float(k): (np.asarray(r, dtype=np.int64), f) for k, (r, f) in groups.items()}
        self.dim = int(whole.shape[1])

    def whole(self, rows) -> np.ndarray:
        """(n,) dataset rows -> float32 (n, D)."""
        return np.asarray(self.whole_feats[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def _pos(self, sigma: float, rows: np.ndarray):
        sigma = float(sigma)
        if sigma not in self.groups:
            raise ValueError(f"no cached crops of ratio {sigma}; cached ratios: {sorted(self.groups)} "
                             "(crop_plan decides which ratios are extracted)")
        have, feats = self.groups[sigma]
        i = np.searchsorted(have, rows)
        ok = (i < len(have)) & (have[np.minimum(i, len(have) - 1)] == rows)
        if not ok.all():
            raise ValueError(f"crops of ratio {sigma} are not cached for dataset rows {rows[~ok][:5].tolist()}...")
        return i, feats

    def crop(self, rows, sigma: float, pos) -> np.ndarray:
        """Features of crop ``pos`` (int, or (n,) ints in 0..4) of ratio ``sigma`` of ``rows``: (n, D)."""
        rows = np.asarray(rows, dtype=np.int64)
        if float(sigma) == 1.0:
            return self.whole(rows)
        i, feats = self._pos(sigma, rows)
        pos = np.broadcast_to(np.asarray(pos, dtype=np.int64), rows.shape)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for c in np.unique(pos):  # one memmap gather per crop position
            m = pos == c
            order = np.argsort(i[m], kind="stable")
            sel = np.flatnonzero(m)[order]
            out[sel] = feats[i[m][order], int(c)]
        return out


class FeatureHasher:
    """A base model on cached features: dataset rows (or crops of them) -> (f, z); code = sign(z).

    model : has ``features_and_codes(x)`` on (n, D) backbone features (a
    :class:`~hashrepro.models.small_cnn.HashModel` over a
    :class:`~hashrepro.models.mch_heads.FeatureBackbone`, or
    :class:`~hashrepro.models.mch_heads.KSHOnFeatures`). ``f`` is the standardised feature the
    agent's state uses (eq. 3).
    """

    def __init__(self, model: nn.Module, bank: CropBank, device: torch.device):
        self.model, self.bank, self.device = model, bank, device

    @torch.no_grad()
    def _code(self, x: np.ndarray, batch_size: int = 4096):
        self.model.eval()
        fs, zs = [], []
        for i in range(0, len(x), batch_size):
            f, z = self.model.features_and_codes(torch.from_numpy(x[i:i + batch_size]).to(self.device))
            fs.append(f.float().cpu())
            zs.append(z.float().cpu())
        if not fs:
            return np.zeros((0, self.bank.dim), np.float32), np.zeros((0, 0), np.float32)
        return torch.cat(fs).numpy(), torch.cat(zs).numpy()

    @staticmethod
    def _rows(rows) -> np.ndarray:
        return rows.numpy().astype(np.int64) if isinstance(rows, torch.Tensor) else np.asarray(rows, dtype=np.int64)

    def embed(self, rows, boxes=None):
        """Whole images of dataset ``rows`` -> (f (n, D'), z (n, Q)). ``boxes`` must be None (crops:
        :meth:`embed_crop`)."""
        if boxes is not None:
            raise ValueError("FeatureHasher codes cached crops only: use embed_crop(rows, sigma, pos)")
        return self._code(self.bank.whole(self._rows(rows)))

    def embed_crop(self, rows, sigma: float, pos):
        """Crop ``pos`` of ratio ``sigma`` of every row -> (f, z)."""
        return self._code(self.bank.crop(self._rows(rows), sigma, pos))

    def embed_random_crops(self, rows, cfg: "Config", rng: np.random.Generator):
        """One crop per row drawn from the finite set: ratio uniform on ``cfg.agent_ratios()``,
        position uniform on the 5 boxes (the pretrained regime's Algorithm 2)."""
        rows = self._rows(rows)
        ratios = np.asarray(cfg.agent_ratios())
        sig = ratios[rng.integers(0, len(ratios), size=len(rows))]
        pos = rng.integers(0, 5, size=len(rows))
        x = np.empty((len(rows), self.bank.dim), dtype=np.float32)
        for r in np.unique(sig):
            m = sig == r
            x[m] = self.bank.crop(rows[m], float(r), pos[m])
        return self._code(x)


def method_name(name: str, backbone: str = "scratch") -> str:
    """Record name of a method in a regime: ``mch-dch`` / ``dch`` / ``lsh`` from scratch,
    ``mch-dch-efficientnet_lite0`` etc. on the ImageNet backbone."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    return name if backbone == "scratch" else f"{name}-{backbone}"


def _grid_sample(cfg: "Config", n_db: int):
    """Table 3's sample of database positions and the generator that drew it (the run keeps drawing
    Fig. 8's queries from the same generator). Returns (sorted positions (m,), rng)."""
    rng = np.random.default_rng(cfg.seed + 5)
    sub = np.sort(rng.choice(n_db, min(cfg.grid_items, n_db), replace=False))
    return sub, rng


def crop_plan(cfg: "Config", ds, sp) -> list:
    """The crops the pretrained regime extracts, in extraction order: a list of ``(sigma, rows)``
    (sigma None = the whole images of every dataset row; otherwise the 5 boxes of ratio σ of the
    sorted dataset ``rows``). A ratio's rows are the union of what needs it: σ = ``sigma`` and
    ``sens_sigmas`` on the database (and training) rows (§4.3, Fig. 9), the agent's
    ``crop_ratios`` on the training rows (Algorithm 2), the other σ of ``sigma_grid`` on Table 3's
    sample of ``grid_items`` database items. Crops: ``sum(len(rows) * (1 if sigma is None else 5))``."""
    db, tr = np.asarray(sp.database, dtype=np.int64), np.asarray(sp.train, dtype=np.int64)
    sub, _ = _grid_sample(cfg, len(db))
    need: dict = {}

    def add(sigma, rows):
        sigma = float(sigma)
        if sigma != 1.0:  # σ = 1 is the whole image
            need[sigma] = np.union1d(need.get(sigma, np.zeros(0, np.int64)), rows).astype(np.int64)

    for sigma in (cfg.sigma, *cfg.sens_sigmas):
        add(sigma, np.union1d(db, tr))
    for sigma in cfg.agent_ratios():
        add(sigma, tr)
    for sigma in cfg.sigma_grid:
        add(sigma, db[sub])
    first = [float(cfg.sigma)] + [float(r) for r in cfg.agent_ratios()]
    order = sorted(need, key=lambda v: (v not in first, first.index(v) if v in first else 0, v))
    return [(None, np.arange(len(ds.images), dtype=np.int64))] + [(sigma, need[sigma]) for sigma in order]


def prepare_features(cfg: "Config", ds=None, sp=None, progress: bool | None = None):
    """Extract (or read) every cached crop feature the pretrained-regime run of ``cfg`` needs.

    Each group of :func:`crop_plan` is one resumable cache file
    (:func:`hashrepro.crop_features.cached_crop_features`); run this alone in the background to
    fill the cache (``nohup python -c "from hashrepro.methods import mch;
    mch.prepare_features(mch.Config.for_scale('default', dataset='mosaic-cifar10',
    backbone='efficientnet_lite0', seed=0))"``), then the runs read it.

    Returns (bank: :class:`CropBank`, info: dict with ``extraction_s`` (seconds spent extracting in
    this call), ``n_crops`` (crops in the plan), ``cached`` (nothing had to be extracted)).
    """
    from ..crop_features import cached_crop_features, crop_cache_key
    from ..features import features_cache_dir

    if cfg.backbone == "scratch":
        raise ValueError("prepare_features is for the pretrained regime (backbone='efficientnet_lite0')")
    if ds is None or sp is None:
        ds, sp = load_data(cfg)
    h, w = ds.images.shape[1], ds.images.shape[2]
    prog = cfg.progress if progress is None else progress
    kw = dict(backbone=cfg.backbone, pretrained="imagenet", input_size=cfg.backbone_size, cache=cfg.cache,
              progress=prog if prog is not None else True, device="cpu" if str(cfg.device) == "cpu" else "auto")
    t_extract, n_crops, cached = 0.0, 0, True
    whole, groups = None, {}
    for sigma, rows in crop_plan(cfg, ds, sp):
        boxes = (np.array([[0.0, 0.0, float(w), float(h)]], dtype=np.float32) if sigma is None
                 else crop_boxes(h, w, sigma))
        n_crops += len(rows) * len(boxes)
        hit = False
        if cfg.cache:
            key = crop_cache_key(ds, boxes, rows, cfg.backbone, "imagenet", cfg.backbone_size)
            hit = (features_cache_dir() / f"{key['stem']}.npy").is_file()
        t0 = time.perf_counter()
        feats = cached_crop_features(ds, boxes, rows, **kw)
        if not hit:
            cached = False
            t_extract += time.perf_counter() - t0
        if sigma is None:
            whole = feats[:, 0]
        else:
            groups[sigma] = (rows, feats)
    return CropBank(whole, groups), {"extraction_s": float(t_extract), "n_crops": int(n_crops), "cached": cached}


def _bits01(z: np.ndarray) -> np.ndarray:
    """Pre-activations (N, Q) -> {0,1} uint8 codes (N, Q): 1 where z >= 0 (sign(0) = +1)."""
    return (np.asarray(z) >= 0).astype(np.uint8)


def _pm1(z: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.where(np.asarray(z) >= 0, 1.0, -1.0).astype(np.float32))


# --------------------------------------------------------------------------- training
def _cache_path(cfg: Config, tag: str, extra: dict) -> Path | None:
    """Cache file for a pretrained backbone: ``$HASHREPRO_CACHE`` or ``<repo>/data/cache/mch`` in a
    checkout (git-ignored), else ``~/.cache/hashrepro/mch`` (never inside the data mirror, which may
    be read-only or shared)."""
    if not cfg.cache:
        return None
    from ..paths import repo_root

    key = json.dumps({"tag": tag, **extra}, sort_keys=True, default=str)
    h = hashlib.sha1(key.encode()).hexdigest()[:16]
    if os.environ.get("HASHREPRO_CACHE"):
        root = Path(os.environ["HASHREPRO_CACHE"])
    elif (repo_root() / "pyproject.toml").is_file():
        root = repo_root() / "data" / "cache" / "mch"
    else:
        root = Path.home() / ".cache" / "hashrepro" / "mch"
    return root / f"{tag}-{h}.pt"


def pretrain_backbone(cfg: Config, x_train: torch.Tensor, y_train: np.ndarray, device: torch.device,
                      generator: torch.Generator, x_tiles: torch.Tensor | None = None,
                      y_tiles: np.ndarray | None = None):
    """The stand-in for "AlexNet pretrained on ImageNet": the small CNN trained as a multi-label
    classifier (sigmoid cross-entropy) on the training split — the whole training images and,
    when given, their single object tiles (``x_tiles``, one-hot ``y_tiles``), the way ImageNet is
    an object-centric set that teaches a backbone to recognise an object filling the frame.
    Only the training split is used; the hashing stages never see the tiles. Cached on disk
    (keyed by every setting that affects it) so the 16/32/64-bit runs of one data set share it.

    Returns (backbone state_dict, wall seconds, cached: bool).
    """
    from ..train import fit

    extra = dict(dataset=cfg.dataset, n=cfg.n_images, grid=cfg.grid, seed=cfg.seed, nq=cfg.n_query_per_class,
                 nt=cfg.n_train_per_class, size=cfg.input_size, widths=cfg.widths, feat=cfg.feat_dim,
                 iters=cfg.pretrain_iters, lr=cfg.pretrain_lr, bs=cfg.batch_size, tiles=x_tiles is not None, v=2)
    path = _cache_path(cfg, "backbone", extra)
    if path is not None and path.exists():
        return torch.load(path, map_location="cpu", weights_only=True), 0.0, True
    c = x_train.shape[1]
    net = SmallCNN(c, cfg.widths, cfg.feat_dim).to(device)
    head = nn.Linear(cfg.feat_dim, y_train.shape[1]).to(device)
    y = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=cfg.pretrain_lr)
    n = len(x_train)

    if x_tiles is not None and len(x_tiles):
        yt = torch.from_numpy(np.asarray(y_tiles, dtype=np.float32))
    else:
        x_tiles = None

    def step(it):
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=generator)
        xb, yb = x_train[idx], y[idx]
        if x_tiles is not None:
            half = max(1, len(idx) // 2)
            tdx = torch.randint(0, len(x_tiles), (half,), generator=generator)
            xb, yb = torch.cat([xb[:len(idx) - half], x_tiles[tdx]]), torch.cat([yb[:len(idx) - half], yt[tdx]])
        return F.binary_cross_entropy_with_logits(head(net(xb.to(device))), yb.to(device))

    net.train()
    hist = fit(step, optimizer=opt, iterations=cfg.pretrain_iters, desc="pretrain backbone", progress=cfg.progress)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
    return state, hist.wall_time_s, False


def _loss_kwargs(cfg: Config) -> dict:
    """Loss options a base model takes from the Config (only MMHH's γ so far)."""
    if cfg.base == "mmhh":
        return {"gamma": float(cfg.mmhh_gamma)}
    return {}


def _new_backbone(cfg: Config, in_dim: int) -> nn.Module:
    """An untrained backbone of the regime: the small CNN on ``in_dim`` image channels (scratch) or
    a :class:`~hashrepro.models.mch_heads.FeatureBackbone` on ``in_dim``-d cached features."""
    if cfg.backbone == "scratch":
        return SmallCNN(in_dim, cfg.widths, cfg.feat_dim)
    from ..models.mch_heads import FeatureBackbone

    return FeatureBackbone(in_dim, hidden=cfg.head_hidden)


def train_base(cfg: Config, backbone_state: dict, x_train: torch.Tensor, y_train: np.ndarray,
               device: torch.device, generator: torch.Generator, bank: "CropBank | None" = None):
    """Learn the base hashing model (Algorithm 2, first line) with its Table-1 loss.

    Parameters
    ----------
    x_train : float (N, C, S, S) whole training images at the network input size (scratch), or
        float (N, D) their cached backbone features (pretrained regime: ``bank`` given).
    y_train : (N, C) multi-hot labels.
    backbone_state : state dict of :func:`_new_backbone` (the pretrained small CNN, or the
        standardisation of the cached features).
    bank : the cached crop features (pretrained regime); the hasher then codes dataset rows.

    Returns
    -------
    (hasher, info) where ``hasher.embed`` maps images to (features, pre-activations) and ``info``
    holds ``loss`` (per iteration), ``wall_time_s`` and, for ADSH, ``V`` (N, Q) the learned
    ±1 database codes of the training images.
    """
    from ..train import fit

    q = cfg.bits
    n = len(x_train)
    c = x_train.shape[1]
    s_all = similarity(y_train)  # (N, N)
    t0 = time.perf_counter()
    info: dict = {}
    if cfg.base == "ksh":
        backbone = _new_backbone(cfg, c).to(device)
        backbone.load_state_dict(backbone_state)
        backbone.eval()
        with torch.no_grad():
            feats = torch.cat([backbone(x_train[i:i + 512].to(device)) for i in range(0, n, 512)])
        rng = np.random.default_rng(cfg.seed)
        m = min(cfg.ksh_anchors, n)
        anchors = feats[torch.from_numpy(rng.choice(n, m, replace=False))]
        ksh = KSHModel(anchors, q, feats).to(device)
        lab = torch.from_numpy(rng.choice(n, min(cfg.ksh_samples, n), replace=False))
        kf = ksh.kernel(feats[lab]).detach()
        s = s_all[lab][:, lab].to(device)
        loss_fn = make_loss("ksh", q)
        opt = torch.optim.Adam([ksh.A], lr=1e-2)

        def step(it):
            return loss_fn(2 * torch.sigmoid(kf @ ksh.A) - 1, None, s)

        hist = fit(step, optimizer=opt, iterations=max(cfg.base_iters, 1), desc="KSH", progress=cfg.progress)
        info["loss"] = hist.loss
        if bank is None:
            hasher = KSHHasher(backbone, ksh.eval(), cfg.input_size, device)
        else:
            from ..models.mch_heads import KSHOnFeatures

            hasher = FeatureHasher(KSHOnFeatures(backbone, ksh.eval()), bank, device)
    else:
        model = HashModel(_new_backbone(cfg, c), q, _RELAX[cfg.base]).to(device)
        model.backbone.load_state_dict(backbone_state)
        loss_fn = make_loss(cfg.base, q, **_loss_kwargs(cfg)).to(device)
        groups = [{"params": list(model.backbone.parameters()), "lr": cfg.base_lr},
                  {"params": list(model.hash.parameters()), "lr": cfg.base_lr * cfg.hash_lr_mult}]
        opt = torch.optim.Adam([g for g in groups if g["params"]])
        model.train()
        bs = min(cfg.batch_size, n)
        if cfg.base == "adsh":
            hist_loss = _train_adsh(cfg, model, loss_fn, opt, x_train, s_all, device, generator, info)
        else:
            # HashNet continuation β_t = (1 + γ t)^0.5 every 200 iterations over 10k iterations
            # (β ends ≈ 7.1); rescaled so that our shorter schedule ends at the same β.
            gamma_eff = 0.005 * 10000.0 / max(cfg.base_iters, 1)
            step_eff = max(1, int(round(200 * cfg.base_iters / 10000.0)))

            def step(it):
                idx = torch.randint(0, n, (bs,), generator=generator)
                u = model(x_train[idx].to(device))
                return loss_fn(u, None, s_all[idx][:, idx].to(device))

            def on_it(it):
                if cfg.base == "hashnet":
                    model.beta = hashnet_beta(it + 1, step=step_eff, gamma=gamma_eff)

            hist_loss = fit(step, optimizer=opt, iterations=cfg.base_iters, on_iteration=on_it,
                            desc=cfg.base, progress=cfg.progress).loss
        info["loss"] = hist_loss
        model.eval()
        hasher = DeepHasher(model, cfg.input_size, device) if bank is None else FeatureHasher(model, bank, device)
    info["wall_time_s"] = time.perf_counter() - t0
    return hasher, info


def _train_adsh(cfg, model, loss_fn: ADSHLoss, opt, x_train, s_all, device, generator, info):
    """ADSH's alternating optimisation (Jiang & Li 2018; ADSH_pytorch): T_out outer iterations;
    each samples Ω (|Ω| = adsh_omega) training points as queries, trains the network on
    Σ_{i∈Ω, j} (u_iᵀ v_j − Q s̃_ij)² + γ ||v_i − u_i||² (``base_iters / T_out`` mini-batches), then
    updates the database codes V column by column in closed form."""
    from ..train import fit

    q = cfg.bits
    n = len(x_train)
    g = np.random.default_rng(cfg.seed + 1)
    V = torch.from_numpy(np.where(g.random((n, q)) < 0.5, -1.0, 1.0).astype(np.float32))
    s_pm = 2.0 * s_all - 1.0  # ±1 similarities (Table 1: Q(2s − 1))
    inner = max(1, cfg.base_iters // cfg.adsh_outer)
    losses: list[float] = []
    for outer in range(cfg.adsh_outer):
        omega = torch.from_numpy(g.choice(n, min(cfg.adsh_omega, n), replace=False))
        bs = min(cfg.batch_size, len(omega))
        Vd = V.to(device)

        def step(it):
            sel = omega[torch.randint(0, len(omega), (bs,), generator=generator)]
            u = model(x_train[sel].to(device))
            return loss_fn(u, Vd, s_all[sel].to(device), v_self=Vd[sel])

        model.train()
        losses += fit(step, optimizer=opt, iterations=inner, desc=f"ADSH {outer + 1}/{cfg.adsh_outer}",
                      progress=cfg.progress).loss
        model.eval()
        with torch.no_grad():
            U = torch.cat([model(x_train[omega[i:i + 512]].to(device)).cpu() for i in range(0, len(omega), 512)])
        barU = torch.zeros(n, q)
        barU[omega] = U
        Qm = -2.0 * q * s_pm[omega].T @ U - 2.0 * loss_fn.gamma * barU  # (n, Q)
        for k in range(q):
            rest = [j for j in range(q) if j != k]
            vk = -_sign(2.0 * V[:, rest] @ (U[:, rest].T @ U[:, k]) + Qm[:, k])
            V[:, k] = vk
    info["V"] = V
    return losses


# --------------------------------------------------------------------------- agent
def compute_rewards(loss_fn: PairwiseHashLoss, b_db: torch.Tensor, b_crop: torch.Tensor,
                    b_query: torch.Tensor, s: torch.Tensor, w: torch.Tensor | None,
                    self_mask: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """Reward of keeping each crop's code (eq. 6, case a = keep), with eq. 5's distance.

    ``R_i = scale · Σ_j w_ij [L(d_ij, s_ij) − L(d*_ij, s_ij)]``,
    ``d_ij = d_H(b_i, b_j)``, ``d*_ij = min(d_H(b_i, b_j), d_H(b*_i, b_j))``.

    Parameters
    ----------
    loss_fn : the base model's loss (its ``pair_loss`` = Table-1 ``L``).
    b_db : (n, Q) ±1 database-side codes of the batch images (whole image).
    b_crop : (n, Q) ±1 codes of their crops.
    b_query : (m, Q) ±1 codes of the other training points (the queries ``x_j``).
    s : (n, m) similarities; w : (n, m) pair weights or None (all ones).
    self_mask : (n, m) bool, True where j is i itself (excluded), or None.
    scale : multiplies the sum (N/m when the j's are a sample of the N training points).

    Returns
    -------
    float (n,) rewards (the discard action's reward is 0).
    """
    d = hamming_distance_pm1(b_db, b_query)
    d_star = torch.minimum(d, hamming_distance_pm1(b_crop, b_query))
    gain = loss_fn.pair_loss(d, s) - loss_fn.pair_loss(d_star, s)
    if w is not None:
        gain = gain * w
    if self_mask is not None:
        gain = gain.masked_fill(self_mask, 0.0)
    return scale * gain.sum(1)


def policy_gradient_loss(probs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                         baseline: torch.Tensor | float | None = None, scale: float = 1.0,
                         entropy: float = 0.0) -> torch.Tensor:
    """Surrogate loss whose gradient is minus the REINFORCE estimate of eq. 7 (minimise it to
    ascend the expected reward), with an optional baseline, scale and entropy bonus.

    ``loss = -(1/n) Σ_i log π(a_i|h_i) (R_i − b_i) / scale − entropy · (1/n) Σ_i H(π(·|h_i))``.

    Parameters
    ----------
    probs : (n, 2) action probabilities π(·|h_i) (with grad); actions : (n,) sampled actions.
    rewards : (n,) rewards of the sampled actions (eq. 6).
    baseline : None (eq. 7 as printed), a float, or (n,) per-sample values. It must not depend on
        ``a_i`` (a constant, a moving average of earlier iterations, or the leave-one-out mean of the
        *other* samples); then ``E[∇ log π(a|h) b] = b Σ_a ∇π(a|h) = 0`` and the expected gradient
        is that of eq. 7 (Williams 1992, §4): the baseline only lowers the variance.
    scale : positive number the advantage is divided by (reward normalisation: a step size; it must
        not depend on the current actions to keep the direction unbiased).
    entropy : weight of an entropy bonus (biased: it pulls π towards uniform; 0 = none).
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    adv = rewards.to(probs.dtype)
    if baseline is not None:
        adv = adv - torch.as_tensor(baseline, dtype=probs.dtype, device=probs.device)
    adv = adv.detach() / scale
    logp = torch.log(probs.gather(1, actions.to(probs.device)[:, None]).squeeze(1).clamp_min(1e-12))
    loss = -(logp * adv).mean()
    if entropy:
        ent = -(probs * torch.log(probs.clamp_min(1e-12))).sum(1).mean()
        loss = loss - entropy * ent
    return loss


@dataclass
class AgentResult:
    """The trained policy and its learning curve."""

    policy: PolicyNet
    reward: list = field(default_factory=list)       # mean reward of the sampled actions, per iteration
    keep_rate: list = field(default_factory=list)    # fraction of "keep" actions sampled
    keep_prob: list = field(default_factory=list)    # mean π(keep | h)
    oracle_keep: list = field(default_factory=list)  # fraction of crops whose keep-reward is > 0
    wall_time_s: float = 0.0


def _check_agent(t: torch.Tensor, what: str, it: int, cfg: Config) -> None:
    """Stop with a clear error when the agent's training has diverged (non-finite values)."""
    if not torch.isfinite(t).all():
        from ..train import NonFiniteLossError

        raise NonFiniteLossError(
            f"the MCH agent diverged at iteration {it}: non-finite values in its {what}; agent_lr={cfg.agent_lr:g} "
            "is too large (the paper's range is 1e-5..1e-3; default 1e-3)")


def train_agent(cfg: Config, hasher, loss_fn: PairwiseHashLoss, train_u8: torch.Tensor,
                f_train: np.ndarray, z_train: np.ndarray, b_db_train: torch.Tensor, y_train: np.ndarray,
                device: torch.device, seed: int) -> AgentResult:
    """Algorithm 2 (agent learning step) with REINFORCE (eq. 7).

    For t = 1..T: sample a mini-batch B of training images; a random crop per image (side ratio
    ~ U(crop_min, crop_max)); state eq. 3 from the base model's features and codes; sample
    a ~ π_θ(·|h); reward eq. 6 against all N training points (or ``reward_pairs`` sampled ones,
    rescaled by N/m); θ ← θ + lr ∇ (1/|B|) Σ log π(a_i|h_i) (R_i − b) / s (SGD, momentum, weight
    decay; :func:`policy_gradient_loss`).

    **Deviation (variance reduction).** Eq. 7 has no baseline (b = 0, s = 1: ``agent_baseline=
    "none"``, ``agent_reward_norm=False``). Most crops have a negative eq.-6 reward of a large
    magnitude (a sum over N pairs), so without a baseline every sampled "keep" gives a big push
    down on π(keep) and a "discard" gives no signal at all; the policy collapses to discarding
    everything within a few tens of iterations, before it can tell the few positive-reward crops
    apart. The default subtracts a baseline b (``"ema"``: a moving average, decay ``agent_ema``,
    of the mean sampled reward of *earlier* iterations; ``"batch"``: the leave-one-out mean of the
    other samples of the batch) and divides by s, a moving average of earlier batches' reward
    standard deviation (``agent_reward_norm``; at t = 1 the first batch's own). Neither depends on
    the current actions, so the expected update direction is eq. 7's. ``agent_entropy`` adds an
    optional (biased) entropy bonus. With normalised advantages the step is measured in reward
    standard deviations, not in raw reward units (eq. 6 sums over N pairs: tens to 10⁵ units), so
    the default learning rate is 1e-3, the top of §5.2.2's range, instead of the paper's start
    1e-4 (at 1e-4 a normalised update barely moves π in T = 100 iterations). The paper's agent:
    ``agent_baseline="none", agent_reward_norm=False, agent_lr=1e-4``.

    ``b_db_train`` (N, Q) ±1 are the database-side codes of the training images (for ADSH the
    learned V; otherwise sign of the network), ``z_train`` their query-side pre-activations.
    ``train_u8``: the training images, uint8 (N, C, H, W) (scratch), or their dataset rows (N,)
    for a :class:`FeatureHasher` (pretrained regime: the crops are drawn from the cached set).
    """
    t0 = time.perf_counter()
    n = len(train_u8)
    q = cfg.bits
    rng = np.random.default_rng(seed + 7)
    gen = torch.Generator().manual_seed(seed + 7)
    b_query = _pm1(z_train)
    s_full = similarity(y_train)
    n_pos = float(s_full.sum())
    n_neg = float(s_full.numel() - n_pos)
    weighted = loss_fn.weighted
    f_train_t = torch.from_numpy(np.ascontiguousarray(f_train))
    state_dim = 2 * f_train.shape[1] + 2 * q
    policy = PolicyNet(state_dim, cfg.policy_hidden).to(device)
    opt = torch.optim.SGD(policy.parameters(), lr=cfg.agent_lr, momentum=cfg.agent_momentum,
                          weight_decay=cfg.agent_weight_decay)
    res = AgentResult(policy)
    bs = min(cfg.agent_batch, n)
    from tqdm.auto import tqdm

    ema_mean: float | None = None  # moving averages of earlier iterations' sampled rewards
    ema_var: float | None = None
    for _ in tqdm(range(cfg.agent_iters), desc="agent", disable=(not cfg.progress) if cfg.progress is not None else None,
                  leave=False, mininterval=2.0):
        idx = torch.from_numpy(rng.choice(n, bs, replace=False))
        f_crop, z_crop = _crop_method(hasher, "embed_random_crops")(train_u8[idx], cfg, rng)
        b_crop = _pm1(z_crop)
        h = build_state(f_train_t[idx], torch.from_numpy(f_crop), b_query[idx], b_crop).to(device)
        # reward (eq. 6) against the other training points
        if cfg.reward_pairs and cfg.reward_pairs < n:
            js = torch.from_numpy(rng.choice(n, cfg.reward_pairs, replace=False))
            scale = n / cfg.reward_pairs
        else:
            js = torch.arange(n)
            scale = 1.0
        s = s_full[idx][:, js]
        w = pair_weights(s, "balanced", n_pos=n_pos, n_neg=n_neg) if weighted else None
        mask = idx[:, None] == js[None, :]
        r_keep = compute_rewards(loss_fn, b_db_train[idx], b_crop, b_query[js], s, w, mask, scale)
        if cfg.reward_scale == "mean":
            r_keep = r_keep / n
        policy.train()
        probs = policy(h)
        _check_agent(probs, "keep probabilities", len(res.reward), cfg)
        a = torch.multinomial(probs.detach().cpu(), 1, generator=gen).squeeze(1)
        reward = torch.where(a == KEEP, r_keep, torch.zeros_like(r_keep)).to(device)
        r_mean, r_var = float(reward.mean()), float(reward.var(unbiased=False)) if len(reward) > 1 else 0.0
        loo = (reward.sum() - reward) / max(len(reward) - 1, 1)  # leave-one-out batch mean
        if cfg.agent_baseline == "batch":
            baseline = loo
        elif cfg.agent_baseline == "ema":
            baseline = loo if ema_mean is None else ema_mean
        else:
            baseline = None  # eq. 7 as printed
        scale = 1.0
        if cfg.agent_reward_norm:
            scale = math.sqrt(r_var if ema_var is None else ema_var)
            scale = scale if scale > 1e-8 else 1.0
        loss = policy_gradient_loss(probs, a, reward, baseline, scale, cfg.agent_entropy)  # eq. 7 (ascent)
        _check_agent(loss, "policy-gradient loss", len(res.reward), cfg)
        if ema_mean is None:
            ema_mean, ema_var = r_mean, r_var
        else:
            ema_var = cfg.agent_ema * ema_var + (1 - cfg.agent_ema) * (r_var + (r_mean - ema_mean) ** 2)
            ema_mean = cfg.agent_ema * ema_mean + (1 - cfg.agent_ema) * r_mean
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        res.reward.append(float(reward.mean()))
        res.keep_rate.append(float((a == KEEP).float().mean()))
        res.keep_prob.append(float(probs[:, KEEP].mean().detach()))
        res.oracle_keep.append(float((r_keep > 0).float().mean()))
    policy.eval()
    res.wall_time_s = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------- out-of-sample
@torch.no_grad()
def crop_keep_probabilities(hasher, policy: PolicyNet, images_u8: torch.Tensor, f_whole: np.ndarray,
                            z_whole: np.ndarray, sigma: float, device: torch.device):
    """Codes and keep probabilities of the 5 crops of ratio σ of every image (§4.3).

    ``images_u8``: uint8 (N, C, H, W) images, or dataset rows (N,) for a :class:`FeatureHasher`.
    Returns (z_crops float (N, 5, Q), p_keep float (N, 5)).
    """
    n = len(images_u8)
    q = z_whole.shape[1]
    z_all = np.empty((n, 5, q), dtype=np.float32)
    p_all = np.empty((n, 5), dtype=np.float32)
    policy.eval()
    b_whole = _pm1(z_whole)
    f_whole_t = torch.from_numpy(f_whole)
    for c in range(5):
        f_c, z_c = _crop_method(hasher, "embed_crop")(images_u8, sigma, c)
        st = build_state(f_whole_t, torch.from_numpy(f_c), b_whole, _pm1(z_c)).to(device)
        p = torch.cat([policy.keep_probability(st[i:i + 4096]).cpu() for i in range(0, n, 4096)])
        z_all[:, c] = z_c
        p_all[:, c] = p.numpy()
    return z_all, p_all


def extend(b_whole01: np.ndarray, z_crops: np.ndarray, p_keep: np.ndarray, xi: float,
           dedupe: bool = True):
    """Out-of-sample extension (§4.3): every item keeps its whole-image code plus the crop codes
    whose keep probability is ≥ ξ.

    Parameters
    ----------
    b_whole01 : (N, Q) {0,1} whole-image codes.
    z_crops : (N, 5, Q) crop pre-activations; p_keep : (N, 5) keep probabilities.
    dedupe : merge codes of one item that are equal (they live in the same bucket).

    Returns
    -------
    (codes01 (m, Q) uint8, owners (m,) int64, anhc_raw float) — ``anhc_raw`` is eq. 8 literally
    (1 + mean number of kept crops); the deduplicated count is ``len(codes01) / N``.
    """
    n, q = b_whole01.shape
    crops01 = _bits01(z_crops.reshape(-1, q)).reshape(n, 5, q)
    keep = p_keep >= xi
    anhc_raw = 1.0 + float(keep.sum()) / max(n, 1)
    codes = [b_whole01]
    owners = [np.arange(n)]
    for c in range(5):
        sel = np.flatnonzero(keep[:, c])
        codes.append(crops01[sel, c])
        owners.append(sel)
    codes01 = np.concatenate(codes).astype(np.uint8)
    own = np.concatenate(owners).astype(np.int64)
    if dedupe and len(own):
        packed = np.packbits(codes01, axis=1)
        key = np.concatenate([own[:, None].astype(np.int64).view(np.uint8).reshape(len(own), 8), packed], 1)
        _, first = np.unique(key, axis=0, return_index=True)
        first = np.sort(first)
        codes01, own = codes01[first], own[first]
    order = np.argsort(own, kind="stable")
    return codes01[order], own[order], anhc_raw


@torch.no_grad()
def oracle_rewards(loss_fn: PairwiseHashLoss, db01: np.ndarray, z_crops: np.ndarray, z_train: np.ndarray,
                   y_db: np.ndarray, y_train: np.ndarray, db_index: np.ndarray, train_index: np.ndarray,
                   chunk: int = 512) -> np.ndarray:
    """Eq.-6 reward of keeping each database crop, computed exactly against the training images.

    A diagnostic, not part of MCH: it uses the database items' labels, which the method never
    sees. Keeping exactly the crops with a positive reward is what a perfect agent would do, so
    the "oracle" MCH bounds what any policy can gain with this base model and these crops.

    db01 : (n, Q) {0,1} database whole-image codes; z_crops : (n, 5, Q) crop pre-activations;
    z_train : (N, Q) training (query-side) pre-activations; y_* labels; ``db_index`` /
    ``train_index`` dataset indices (to leave an item's own pair out). Returns float (n, 5).
    """
    n = len(db01)
    b_db = torch.from_numpy(np.where(db01 > 0, 1.0, -1.0).astype(np.float32))
    b_q = _pm1(z_train)
    s_full = similarity(y_db, y_train)
    n_pos = float(similarity(y_train).sum())
    n_neg = float(len(y_train) ** 2 - n_pos)
    out = np.zeros((n, z_crops.shape[1]), dtype=np.float32)
    tr = torch.from_numpy(np.asarray(train_index))
    for a in range(0, n, chunk):
        e = min(n, a + chunk)
        s = s_full[a:e]
        w = pair_weights(s, "balanced", n_pos=n_pos, n_neg=n_neg) if loss_fn.weighted else None
        mask = torch.from_numpy(np.asarray(db_index[a:e]))[:, None] == tr[None, :]
        for c in range(z_crops.shape[1]):
            out[a:e, c] = compute_rewards(loss_fn, b_db[a:e], _pm1(z_crops[a:e, c]), b_q, s, w, mask).numpy()
    return out


# --------------------------------------------------------------------------- evaluation
def buckets_at_f1(curve: dict, target: float) -> float:
    """Buckets visited to reach F1 = ``target`` on an F1–bucket curve (log-linear interpolation
    between the two K points around it); NaN when the curve never reaches ``target``."""
    f1 = np.asarray(curve["f1"], dtype=float)
    b = np.asarray(curve["buckets"], dtype=float)
    hit = np.flatnonzero(f1 >= target)
    if hit.size == 0:
        return float("nan")
    j = int(hit[0])
    if j == 0 or f1[j] == f1[j - 1]:
        return float(b[j])
    t = (target - f1[j - 1]) / (f1[j] - f1[j - 1])
    lb0, lb1 = math.log(max(b[j - 1], 1.0)), math.log(max(b[j], 1.0))
    return float(math.exp(lb0 + t * (lb1 - lb0)))


def evaluate_codes(query01: np.ndarray, db, y_query: np.ndarray, y_db: np.ndarray, ks, f1_targets=(0.3, 0.5)):
    """Retrieval metrics of one code set (single codes (n, Q) or a ``MultiCodes`` database).

    Returns (metrics: dict of floats, curves: dict). Metrics: ``map`` (whole database, ties by
    index), ``precision_radius0`` / ``recall_radius0`` (P@H=0, R@H=0: Figs. 3–4),
    ``precision_radius2`` / ``recall_radius2``, ``f1_max`` and ``buckets_at_f1_<t>`` (buckets
    visited to reach F1 = t on the F1–bucket curve, NaN if never reached). Curves: ``pr_radius``,
    ``f1_bucket`` (Algorithm 1 at every K: "K", "f1", "precision", "recall", "buckets", "radius").
    """
    from ..codes import MultiCodes
    from ..metrics import evaluate, f1_bucket_curve

    ev = evaluate(query01, db, y_query, y_db, radius=2, ks=(10, 100))
    pr = ev["curves"]["pr_radius"]
    n_items = db.n_items if isinstance(db, MultiCodes) else len(db)
    kk = sorted({int(k) for k in ks if 1 <= int(k) <= n_items})
    f1b = f1_bucket_curve(query01, db, y_query, y_db, ks=kk)
    f1b = {k: np.asarray(v).tolist() for k, v in f1b.items()}
    m = {
        "map": float(ev["map"]),
        "map_tie_aware": float(ev.get("map_tie_aware", float("nan"))),
        "precision_radius0": float(pr["precision"][0]),
        "recall_radius0": float(pr["recall"][0]),
        "precision_radius2": float(ev["precision_radius2"]),
        "recall_radius2": float(ev["recall_radius2"]),
        "f1_max": float(np.max(f1b["f1"])),
    }
    for t in f1_targets:
        m[f"buckets_at_f1_{t:g}"] = buckets_at_f1(f1b, t)
    return m, {"pr_radius": {k: list(map(float, v)) for k, v in pr.items()}, "f1_bucket": f1b}


def search_cost(query01: np.ndarray, db, k: int, repeat: int = 1) -> dict:
    """Bucket search (Algorithm 1, :class:`hashrepro.index.BucketIndex`) against a linear scan.

    Returns floats: ``bucket_search_ms`` and ``linear_scan_ms`` (per query, best of ``repeat``),
    ``buckets_visited`` and ``buckets_nonempty`` (mean per query), ``codes_per_query_scan``
    (codes a linear scan compares: all of them) and ``n_codes`` / ``n_buckets`` of the index.
    """
    from ..codes import MultiCodes, hamming
    from ..index import BucketIndex

    if isinstance(db, MultiCodes):
        codes, owners, n_items = db.codes, db.owners, db.n_items
    else:
        codes, owners, n_items = db, np.arange(len(db)), len(db)
    k = int(min(k, n_items))
    idx = BucketIndex(codes, owners)
    best_b = best_l = float("inf")
    res = None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        res = idx.search_detailed(query01, k)
        best_b = min(best_b, time.perf_counter() - t0)
        t0 = time.perf_counter()
        d = hamming(query01, codes)
        if len(codes) != n_items:  # min over each item's codes (eq. 5)
            dm = np.full((len(query01), n_items), np.iinfo(np.uint16).max, dtype=np.uint16)
            np.minimum.at(dm.T, owners, d.T)
            d = dm
        np.argsort(d, axis=1, kind="stable")[:, :k]
        best_l = min(best_l, time.perf_counter() - t0)
    nq = max(len(query01), 1)
    return {"bucket_search_ms": 1e3 * best_b / nq, "linear_scan_ms": 1e3 * best_l / nq,
            "buckets_visited": float(np.mean(np.asarray(res.buckets_visited, dtype=float))),
            "buckets_nonempty": float(np.mean(res.buckets_nonempty)),
            "codes_per_query_scan": float(len(codes)), "n_codes": float(len(codes)),
            "n_buckets": float(idx.n_buckets), "search_k": float(k)}


def _baseline_codes(name: str, n_bits: int, f_train: np.ndarray, f_query: np.ndarray, f_db: np.ndarray, seed: int):
    """LSH / ITQ (unsupervised shallow baselines of §5.2.1) on the same backbone features."""
    try:
        if name == "lsh":
            from ..baselines.lsh import LSH as Est
        else:
            from ..baselines.itq import ITQ as Est
        est = Est(n_bits=n_bits, random_state=seed).fit(f_train)
        return np.asarray(est.transform(f_query), dtype=np.uint8), np.asarray(est.transform(f_db), dtype=np.uint8)
    except ImportError:  # pragma: no cover - the baselines package is another helper's
        rng = np.random.default_rng(seed)
        mu = f_train.mean(0)
        if name == "lsh":
            W = rng.standard_normal((f_train.shape[1], n_bits))
        else:
            _, _, vt = np.linalg.svd(f_train - mu, full_matrices=False)
            P = vt[:n_bits].T
            V = (f_train - mu) @ P
            R = np.linalg.qr(rng.standard_normal((n_bits, n_bits)))[0]
            for _ in range(50):
                B = np.where(V @ R >= 0, 1.0, -1.0)
                u, _, wt = np.linalg.svd(B.T @ V)
                R = (u @ wt).T
            W = P @ R
        return (((f_query - mu) @ W) >= 0).astype(np.uint8), (((f_db - mu) @ W) >= 0).astype(np.uint8)


def _make_record(method, cfg, protocol, metrics, curves, wall, device_str, command=None, started=None):
    from ..results import make_record

    return make_record(paper="mch", method=method, dataset=cfg.dataset, bits=cfg.bits, seed=cfg.seed,
                       scale=cfg.scale, config=cfg.to_dict(), protocol=protocol, metrics=metrics, curves=curves,
                       wall_time_s=wall, device=device_str, command=command, started=started)


def _clean(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()}


# --------------------------------------------------------------------------- the recipe
def run(cfg: Config | None = None, **overrides) -> dict:
    """Run MCH with one base model end to end and return the MCH-X run record.

    Steps: load + split (:func:`load_data`); pretrain the backbone (cached); learn the base model
    (:func:`train_base`); learn the agent (:func:`train_agent`); encode queries (whole image) and
    the database (whole image + 5 crops of ratio σ, kept when P(keep) ≥ ξ: :func:`extend`);
    evaluate single-code X and multi-code MCH-X (:func:`evaluate_codes`: mAP, P/R@H=0,
    F1–bucket); ANHC; the σ × ξ ANHC grid (Table 3) on ``grid_items`` database items; F1–bucket
    sensitivity to σ and ξ (Fig. 9); bucket search cost against a linear scan; Fig. 8 data.

    Returns
    -------
    dict
        The ``mch-<base>`` run record (:func:`hashrepro.results.make_record`), with
        ``record["companions"]``: the records of the base model alone (``<base>``) and, when
        ``cfg.baselines``, LSH and ITQ on the pretrained backbone features. Save each.
    """
    from ..codes import MultiCodes
    from ..results import start_run
    from ..train import describe_device, resolve_device, seed_everything

    run_start = start_run()  # the code this run starts with (commit, diff)
    if cfg is None:
        cfg = Config.for_scale(overrides.pop("scale", "default"), **overrides)
    elif overrides:
        raise ValueError("give a Config or keyword overrides, not both")
    t_start = time.perf_counter()
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    dev_str = describe_device(device)
    ds, sp = load_data(cfg)
    Y = ds.label_matrix()
    y_tr, y_q, y_db = Y[sp.train], Y[sp.query], Y[sp.database]
    bank = None
    if cfg.backbone == "scratch":
        u8 = _images_tensor(ds.images)  # what the hashers code: images (scratch) or dataset rows
        x_train = crop_resize(u8[sp.train], None, cfg.input_size)
        # 1. backbone (stand-in for ImageNet AlexNet), then the base model (Table 1)
        xt, yt = mosaic_tiles(ds, sp.train, cfg.input_size) if cfg.pretrain_tiles else (None, None)
        backbone_state, t_pre, cached = pretrain_backbone(cfg, x_train, y_tr, device,
                                                          torch.Generator().manual_seed(cfg.seed + 1), xt, yt)
    else:
        # 1. the frozen ImageNet backbone: cached pooled features of the whole images and crops
        from ..models.mch_heads import FeatureBackbone

        bank, feat_info = prepare_features(cfg, ds, sp)
        t_pre, cached = feat_info["extraction_s"], feat_info["cached"]
        u8 = torch.arange(len(ds.images))
        x_train = torch.from_numpy(bank.whole(sp.train))
        torch.manual_seed(cfg.seed + 1)
        backbone_state = FeatureBackbone.fit(x_train, cfg.head_hidden).state_dict()
    torch.manual_seed(cfg.seed + 2)
    hasher, info = train_base(cfg, backbone_state, x_train, y_tr, device, torch.Generator().manual_seed(cfg.seed + 3),
                              bank)
    loss_fn = make_loss(cfg.base, cfg.bits, **_loss_kwargs(cfg))

    # 2. encode whole images
    f_tr, z_tr = hasher.embed(u8[sp.train])
    f_q, z_q = hasher.embed(u8[sp.query])
    f_db, z_db = hasher.embed(u8[sp.database])
    q01 = _bits01(z_q)
    db01 = _bits01(z_db)
    b_db_train = _pm1(z_tr)
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
        r_or = oracle_rewards(loss_fn, db01, zc, z_tr, y_db, y_tr, sp.database, sp.train)
        c_or, o_or, _ = extend(db01, zc, (r_or > 0).astype(np.float32), 0.5)
        m_or, c_orc = evaluate_codes(q01, MultiCodes(c_or, o_or, len(db01)), y_q, y_db, cfg.ks)
        m_or["anhc"] = float(len(c_or) / len(db01))
        m_or["positive_reward_fraction"] = float((r_or > 0).mean())
        m_or["policy_reward_corr"] = float(np.corrcoef(r_or.ravel(), pk.ravel())[0, 1]) if pk.std() > 0 else float("nan")
        c_mch["f1_bucket_oracle"] = c_orc["f1_bucket"]
    k_cost = int(min(100, len(db01)))
    m_base.update(search_cost(q01, db01, k_cost))
    m_mch.update(search_cost(q01, mc, k_cost))
    if cfg.oracle:
        m_mch.update({f"oracle_{k}": v for k, v in m_or.items()})
    m_mch["anhc"] = float(len(codes) / len(db01))
    m_mch["anhc_raw"] = float(anhc_raw)
    m_base["anhc"] = 1.0

    # Table 3: ANHC over σ × ξ on a subset of the database
    sub, rng = _grid_sample(cfg, len(sp.database))
    g_rows = {"sigma": [], "xi": [], "anhc": [], "anhc_raw": []}
    for sigma in cfg.sigma_grid:
        if sigma in crops:
            zs, ps = crops[sigma][0][sub], crops[sigma][1][sub]
        else:
            zs, ps = crop_keep_probabilities(hasher, policy, u8[sp.database[sub]], f_db[sub], z_db[sub], sigma, device)
        for xi in cfg.xi_grid:
            c_, _, raw = extend(db01[sub], zs, ps, xi)
            g_rows["sigma"].append(float(sigma))
            g_rows["xi"].append(float(xi))
            g_rows["anhc"].append(float(len(c_) / len(sub)))
            g_rows["anhc_raw"].append(float(raw))

    # Fig. 9: F1–bucket sensitivity to σ (ξ fixed) and ξ (σ fixed)
    sens = {"vary": [], "sigma": [], "xi": [], "K": [], "f1": [], "buckets": [], "anhc": []}

    def add_sens(vary, sigma, xi):
        z_, p_ = crops_for(sigma)
        c_, o_, _ = extend(db01, z_, p_, xi)
        from ..metrics import f1_bucket_curve

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

    # Fig. 8: a few queries, their top 10 under MCH bucket search, distances under X and MCH-X
    vis = {"query": [], "rank": [], "item": [], "relevant": [], "d_base": [], "d_mch": [], "n_codes": []}
    if cfg.n_visual:
        from ..codes import hamming
        from ..index import BucketIndex

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

    protocol = dict(sp.protocol)
    protocol.update({"topk": None, "ties": "index", "empty": "zero", "ranking": "binary",
                     "n_train": int(len(sp.train)), "n_query": int(len(sp.query)),
                     "n_database": int(len(sp.database)), "database_includes_train": True,
                     "query_codes": "one code per query (whole image)",
                     "search": "hash bucket search, MCH Algorithm 1 (hashrepro.index.BucketIndex)",
                     "relevance": "share >= 1 label"})
    if bank is not None:
        from hashrepro.models.backbones import backbone_spec, imagenet_weights_path, weights_sha256

        protocol.update({
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
            "n_images": int(len(ds.images))})
    proto_mch = dict(protocol, database_codes=f"whole image + 5 crops (sigma={cfg.sigma:g}) kept when "
                                             f"P(keep) >= xi={cfg.xi:g}; equal codes of an item merged")
    proto_base = dict(protocol, database_codes="one code per item (whole image)" +
                      ("; training images stored with ADSH's learned codes V" if cfg.base == "adsh" else ""))
    timing = {"pretrain_s": float(t_pre), "pretrain_cached": float(cached), "base_train_s": float(info["wall_time_s"]),
              "agent_train_s": float(agent.wall_time_s), "extension_s": float(t_ext)}
    if bank is not None:
        timing["feature_crops"] = float(feat_info["n_crops"])
    m_mch.update(timing)
    m_mch["agent_final_keep_prob"] = float(np.mean(agent.keep_prob[-10:])) if agent.keep_prob else float("nan")
    m_mch["agent_oracle_keep"] = float(np.mean(agent.oracle_keep)) if agent.oracle_keep else float("nan")
    m_mch["keep_prob_mean"] = float(pk.mean())
    m_mch["keep_prob_max"] = float(pk.max())
    m_base.update({k: v for k, v in timing.items() if k != "extension_s" and k != "agent_train_s"})
    loss_hist = list(map(float, info["loss"]))
    stride = max(1, len(loss_hist) // 200)
    base_curve = {"iteration": list(range(0, len(loss_hist), stride)), "loss": loss_hist[::stride]}
    agent_curve = {"iteration": list(range(len(agent.reward))), "reward": agent.reward,
                   "keep_prob": agent.keep_prob, "keep_rate": agent.keep_rate, "oracle_keep": agent.oracle_keep}
    wall = time.perf_counter() - t_start
    from ..results import reproduce_command

    command = reproduce_command("mch", cfg.to_dict())  # the one definition (hashrepro.results)
    rec_mch = _make_record(method_name(f"mch-{cfg.base}", cfg.backbone), cfg, proto_mch, _clean(m_mch),
                           {**c_mch, "anhc_grid": g_rows, "sensitivity": sens, "agent": agent_curve,
                            "visual": vis, "base_loss": base_curve}, wall, dev_str, command, run_start)
    rec_base = _make_record(method_name(cfg.base, cfg.backbone), cfg, proto_base, _clean(m_base), {**c_base, "base_loss": base_curve}, wall,
                            dev_str, command, run_start)
    # a collapsed or diverged run is flagged in its record, never reported as a normal number
    base_flags = diagnose(db01, loss_hist, labels=y_db)
    flag_record(rec_base, base_flags)
    keys = {f.split(":", 1)[0] for f in base_flags}
    flag_record(rec_mch, base_flags + [f for f in diagnose(codes, labels=y_db, what="database codes (whole image "
                                                          "and kept crops)") if f.split(":", 1)[0] not in keys])
    companions = [rec_base]
    if cfg.baselines:
        if bank is None:
            f_tr0, f_q0, f_db0 = _backbone_features(cfg, backbone_state, u8, sp, device)
        else:  # the ImageNet backbone's pooled whole-image features
            f_tr0, f_q0, f_db0 = (bank.whole(part).astype(np.float64) for part in (sp.train, sp.query, sp.database))
        for name in ("lsh", "itq"):
            tb = time.perf_counter()
            bq, bdb = _baseline_codes(name, cfg.bits, f_tr0, f_q0, f_db0, cfg.seed)
            m_b, c_b = evaluate_codes(bq, bdb, y_q, y_db, cfg.ks)
            m_b.update(search_cost(bq, bdb, k_cost))
            m_b["anhc"] = 1.0
            proto_b = dict(protocol, database_codes="one code per item (whole image); features: pretrained backbone")
            companions.append(flag_record(
                _make_record(method_name(name, cfg.backbone), cfg, proto_b, _clean(m_b), c_b, time.perf_counter() - tb + t_pre, dev_str,
                             command, run_start), diagnose(bdb, labels=y_db)))
    rec_mch["companions"] = companions
    return rec_mch


def _backbone_features(cfg, backbone_state, u8, sp, device):
    """Pretrained-backbone features (the "AlexNet fc7" of the shallow baselines) of train/query/db."""
    net = SmallCNN(u8.shape[1], cfg.widths, cfg.feat_dim).to(device)
    net.load_state_dict(backbone_state)
    net.eval()
    out = []
    with torch.no_grad():
        for part in (sp.train, sp.query, sp.database):
            fs = [net(crop_resize(u8[part[i:i + 512]], None, cfg.input_size).to(device)).cpu()
                  for i in range(0, len(part), 512)]
            out.append(torch.cat(fs).numpy().astype(np.float64))
    return out
