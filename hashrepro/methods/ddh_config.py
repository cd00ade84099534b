"""DDH's configuration (Song, He, Fan, Gao 2017): the constants of the recipe and :class:`Config`
(presets per scale, overrides, validation). The recipe is :mod:`hashrepro.methods.ddh`; the data,
feature, network and training steps are :mod:`hashrepro.methods.ddh_pipeline`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..recipe import RecipeConfig

__all__ = ['BACKBONES', 'Config', 'DESCRIPTORS', 'FEATURES', 'METHODS', 'METHOD_PAPER_NAMES', 'PAPER', 'PRETRAINED_ITERATIONS', 'SCALES', 'SHALLOW', 'SHALLOW_PAPER_NAMES', 'SMALL_DATASETS', 'TABLE4_BASELINES', 'TABLE4_PAPER_NAMES', 'TASKS']

FEATURES = ("kmeans", "contrastive", "pixels", "hog", "gist", "resnet", "efficientnet_lite0")
#: "scratch": the paper's CNN-F-like network trained from our contrastive init (the faithful rows);
#: "efficientnet_lite0": the ImageNet backbone, frozen, its pooled features cached, a trainable
#: head (``head_hidden``, the part of CNN-F after its body) + the hash layer on top (paper setting).
BACKBONES = ("scratch", "efficientnet_lite0")
SCALES = ("smoke", "default", "paper")
#: iterations of 128 on cached features in the pretrained regime (50 epochs of 50,000, §3.2)
PRETRAINED_ITERATIONS = 19500
#: shallow unsupervised hashers of Table 2 (hashrepro.baselines names → the paper's row names)
SHALLOW = ("lsh", "pcah", "itq", "sh", "sphh", "kmh")
#: embedded datasets that get a lighter "default" schedule (notebook defaults)
SMALL_DATASETS = ("mnist5k", "digits")
SHALLOW_PAPER_NAMES = {"lsh": "LSH", "pcah": "PCAH", "itq": "PCA-ITQ", "sh": "SH", "sphh": "SphH", "kmh": "KMH"}
#: shallow hashers of Table 4 ("non-deep hashing on deep features"); splh and lfh are supervised
TABLE4_BASELINES = ("itq", "sh", "splh", "lfh")
TABLE4_PAPER_NAMES = {"itq": "ITQ+CNN", "sh": "SH+CNN", "splh": "SPLH+CNN", "lfh": "LFH+CNN"}
#: deep hashers selectable with ``method`` (DDH and the deep unsupervised rows of Table 2)
METHODS = ("ddh", "dh", "deepbit")
METHOD_PAPER_NAMES = {"ddh": "DDH", "dh": "DH", "deepbit": "DeepBit"}
TASKS = ("retrieval", "classification")
DESCRIPTORS = ("codes", "hog", "gist", "pixels", "efficientnet_lite0")
PAPER = "ddh"


#: the embedded datasets' lighter "default" schedule (the notebook's own defaults must finish in a few
#: minutes on 2 cores; 300 iterations of 128 are still ~10 epochs of their 4,000 training images)
_SMALL_DATASET_PRESET = dict(iterations=300, ssl_iterations=150)


@dataclass
class Config(RecipeConfig):
    """All parameters of a DDH run. ``Config.for_scale(scale, **overrides)`` gives the presets.

    Data / protocol
        dataset, seed, n_train (training images drawn from the database; None = all),
        n_query_per_class (datasets without an official split), n_query / n_database (optional
        subsampling of queries / database, smoke tests only), topk (mAP cut-off; 1000 = Table 2).
    Pseudo labels (§2.1)
        features (one of FEATURES), k1, k2, expand (False = plain K1-NN), knn_pca_dim,
        supervised (S from class labels, Table 5), label_curve (compute Fig. 2 curve),
        label_ks (K values of that curve), labels_only (stop after the pseudo labels:
        a label-quality record without hashing), baseline (None, or a shallow hasher of
        Table 2 — lsh, pcah, itq, sh, sphh, kmh — trained on the *same* label features, for
        the "same features for all methods" comparison; the run then has no network).
    Other methods / tasks of the paper's tables
        method ("ddh" | "dh" | "deepbit": DDH or the deep unsupervised baselines of Table 2,
        :mod:`hashrepro.methods.ddh_deep_baselines`, on the same backbone and schedule;
        dh_* / deepbit_* are their loss weights, DH's tanh layer widths ``dh_hidden``, its input
        ``dh_input`` ("backbone", or "gist": the original DH, an MLP on GIST), DeepBit's stage-2
        share and rotation angles), baseline_max_train (the supervised shallow hashers of
        Table 4, splh and lfh, learn from the class labels of this many training images:
        their usual protocol; the unsupervised ones use all training images),
        task ("retrieval" | "classification": Table 6, a linear SVM on the descriptors,
        :mod:`hashrepro.methods.ddh_flowers`), descriptor ("codes" of ``method``, or a raw
        "hog" / "gist" / "pixels" descriptor with bits = 0), svm_cs (C grid, picked on the
        validation part), image_size (load the images at this side, e.g. 64 for Flowers-17).
    Network (Table 1)
        width (conv1 channels; Table 1: 64), fc_dim (full6/full7; Table 1: 4096), lrn, init
        ("contrastive" | "random" | "imagenet" — the last raises offline for CNN-F).
    Pretrained regime (the paper's setting with an ImageNet network we have offline)
        backbone ("scratch" | "efficientnet_lite0": frozen ImageNet EfficientNet-Lite0, pooled
        1,280-d features cached by :func:`hashrepro.features.dataset_features`; the labels come
        from the same features and the hash layer (after ``head_hidden`` layers, default none) is
        trained on them for the paper's 50 epochs, 19,500 SGD iterations of 128),
        backbone_input_size (None: the backbone's default, 160 px), head_hidden.
    Training (§2.4, §3.2)
        bits, iterations, batch_size (128), lr (0.001), momentum, optimizer ("sgd" | "adam"),
        lambda1 (15), lambda2 (1e-5), pair_sampling ("anchor_positive" | "uniform"),
        grad_clip (clip the global gradient norm; None = plain SGD as in the paper. The quartic
        pair term of eq. 10 diverged with plain SGD on our backbones: gradient norms of 10²–10³).
    Contrastive backbone
        ssl_iterations, ssl_batch_size, ssl_lr, ssl_temperature.
    k-means features
        kmeans_centroids, kmeans_stride.
    Other
        device, cache_dir (None: <cache root>/ddh; "" disables), map_all (also mAP over the whole
        database for queries with a relevant item, the public code's protocol), progress.
    """

    dataset: str = "mnist5k"
    bits: int = 32
    seed: int = 0
    scale: str = "default"
    device: str = "auto"
    # protocol
    n_train: int | None = None
    n_query_per_class: int = 100
    n_query: int | None = None
    n_database: int | None = None
    topk: int | None = 1000
    # pseudo labels
    features: str = "gist"
    k1: int = 15
    k2: int = 6
    expand: bool = True
    knn_pca_dim: int | None = 128
    supervised: bool = False
    label_curve: bool = False
    label_ks: tuple = (5, 10, 15, 20, 30, 50, 100)
    label_expand_max_k: int = 20
    labels_only: bool = False
    baseline: str | None = None
    baseline_max_train: int | None = 5000
    # which deep hasher (ddh | dh | deepbit) and which task (retrieval | classification, Table 6)
    method: str = "ddh"
    task: str = "retrieval"
    descriptor: str = "codes"
    image_size: int | None = None
    # DH (Liong et al. 2015, eq. 3): λ1 variance, λ2 orthogonality, λ3 weight decay, tanh layers
    dh_lambda1: float = 100.0
    dh_lambda2: float = 1e-3
    dh_lambda3: float = 1e-3
    dh_hidden: tuple = (128,)
    dh_input: str = "backbone"
    dh_centre: bool = True
    dh_freeze_norm: bool = True
    dh_train_backbone: bool = False
    # DeepBit (Lin et al. 2016): α quantisation, β balance, γ rotation; stage-2 share, angles
    deepbit_alpha: float = 1.0
    deepbit_beta: float = 1.0
    deepbit_gamma: float = 1.0
    deepbit_stage2_fraction: float = 1 / 11
    deepbit_angles: tuple = (-10.0, -5.0, 5.0, 10.0)
    # Table 6: linear SVM on the descriptors (C picked on the validation part)
    svm_cs: tuple = (0.01, 0.1, 1.0, 10.0, 100.0)
    # network
    width: int = 8
    fc_dim: int = 256
    lrn: bool = True
    init: str = "contrastive"
    backbone: str = "scratch"
    backbone_input_size: int | None = None
    # pretrained regime: layers between the frozen ImageNet features and the hash layer. () = the
    # hash layer sits on the pooled 1,280-d features, as DDH's hash layer sits on the pretrained
    # fc7 of CNN-F. Chosen on a validation split of the CIFAR-10 *training* images (1,000 of them
    # as queries against the other 49,000; never the test queries), 16 bits, 3,000 SGD iterations:
    # mAP@1000 0.511 with (), 0.493 with (1024,) (Adam 1e-4; SGD 1e-3 too slow on 2 cores);
    # 0.521 with () after 19,500 iterations; ITQ on the same features 0.485.
    head_hidden: tuple = ()
    # training
    iterations: int = 800
    batch_size: int = 128
    lr: float = 1e-3
    momentum: float = 0.9
    optimizer: str = "sgd"
    lambda1: float = 15.0
    lambda2: float = 1e-5
    pair_sampling: str = "anchor_positive"
    grad_clip: float | None = 10.0
    # k-means features (Coates et al. 2011)
    kmeans_centroids: int = 256
    kmeans_stride: int = 2
    # contrastive backbone
    ssl_iterations: int = 600
    ssl_batch_size: int = 128
    ssl_lr: float = 1e-3
    ssl_temperature: float = 0.5
    # misc
    cache_dir: str | None = None
    map_all: bool = True
    progress: bool | None = None

    PRESETS = {
        "smoke": dict(width=4, fc_dim=32, iterations=10, batch_size=32, ssl_iterations=3, ssl_batch_size=32,
                      n_train=600, n_query=100, n_database=600, k1=5, k2=3, knn_pca_dim=32, label_ks=(3, 5, 10),
                      label_expand_max_k=5, lrn=False),
        "default": {},
        "paper": dict(width=64, fc_dim=4096, iterations=19500, ssl_iterations=20000, ssl_batch_size=512,
                      kmeans_centroids=1600, kmeans_stride=1),
    }
    THREADS_FIELD = None   # DDH leaves torch's thread count as it is

    def validate(self) -> "Config":
        from ..params import check_seed
        bad = self.invalid
        check_seed(self.seed)
        self.check_choice("backbone", BACKBONES)
        self.check_choice("scale", SCALES)
        if self.baseline is not None and self.baseline not in SHALLOW + TABLE4_BASELINES:
            bad("baseline", f"baseline must be None or one of {SHALLOW + TABLE4_BASELINES[2:]}")
        self.check_choice("method", METHODS)
        self.check_choice("task", TASKS)
        self.check_choice("descriptor", DESCRIPTORS)
        if self.image_size is not None and (not isinstance(self.image_size, (int, np.integer)) or self.image_size < 16):
            bad("image_size", "image_size must be None or an integer >= 16")
        if self.dh_input not in ("backbone", "gist"):
            bad("dh_input", "dh_input must be 'backbone' or 'gist'")
        for name in ("dh_lambda1", "dh_lambda2", "dh_lambda3", "deepbit_alpha", "deepbit_beta", "deepbit_gamma"):
            if getattr(self, name) < 0:
                bad(name, "DH / DeepBit loss weights must be >= 0")
        if not 0.0 <= self.deepbit_stage2_fraction < 1.0:
            bad("deepbit_stage2_fraction", "deepbit_stage2_fraction must be in [0, 1)")
        self.dh_hidden = tuple(int(h) for h in self.dh_hidden)
        self.deepbit_angles = tuple(float(a) for a in self.deepbit_angles)
        self.svm_cs = tuple(float(c) for c in self.svm_cs)
        self.check_choice("features", FEATURES)
        self.head_hidden = tuple(int(h) for h in self.head_hidden)
        if any(h < 1 for h in self.head_hidden):
            bad("head_hidden", "head_hidden widths must be positive integers")
        if self.backbone != "scratch" and self.method != "ddh" and self.task == "retrieval" and self.baseline is None:
            bad("method", f"backbone={self.backbone!r} runs method='ddh' (and the shallow baselines via `baseline`); "
                f"method={self.method!r} is implemented for backbone='scratch' only")
        self.check_choice("init", ("contrastive", "random", "imagenet"))
        self.check_choice("optimizer", ("sgd", "adam"))
        self.check_choice("pair_sampling", ("anchor_positive", "uniform"))
        raw = self.task == "classification" and self.descriptor != "codes"
        if not (isinstance(self.bits, (int, np.integer)) and (self.bits >= 1 or ((self.labels_only or raw) and self.bits == 0))):
            bad("bits", "bits must be a positive integer (0 allowed with labels_only or a raw descriptor)")
        for name in ("k1", "k2", "iterations", "batch_size", "width", "fc_dim", "ssl_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < (0 if name == "iterations" else 1):
                bad(name, f"{name} must be a positive integer")
        if self.ssl_iterations < 0:
            bad("ssl_iterations", "ssl_iterations must be >= 0")
        for name in ("lr", "ssl_lr"):
            if getattr(self, name) <= 0:
                bad(name, "learning rates must be > 0")
        for name in ("lambda1", "lambda2"):
            if getattr(self, name) < 0:
                bad(name, "lambda1, lambda2 must be >= 0")
        if self.topk is not None and self.topk < 1:
            bad("topk", "topk must be None or >= 1")
        if self.batch_size < 2:
            bad("batch_size", "batch_size must be >= 2 (pairs are formed inside a batch)")
        self.label_ks = tuple(int(k) for k in self.label_ks)
        return self

    @classmethod
    def for_scale(cls, scale: str = "default", **overrides) -> "Config":
        """The presets of ``scale`` (:meth:`presets`), then ``overrides``; ``features=None`` keeps the preset's."""
        if "features" in overrides and overrides["features"] is None:
            overrides.pop("features")
        return super().for_scale(scale, **overrides)

    @classmethod
    def presets(cls, scale: str, overrides) -> dict:
        """Presets (:attr:`PRESETS`, plus those of the embedded datasets and of the pretrained regime).

        "smoke": seconds (tests): tiny net, 10 iterations, 3 SSL iterations, small subsets.
        "default": CPU-sized (2 cores) [on the embedded mnist5k/digits: 300 DDH and 150 SSL
            iterations, so that the notebook's own defaults stay a few minutes]: width 8 (Table 1: 64), fc 256 (4096), 800 DDH
            iterations of 128 (≈ 2 epochs of 50,000), 600 SSL iterations of 128; labels from
            512-d GIST (the best source we measured offline on CIFAR-10: K1-NN precision
            0.446 vs 0.409 k-means, 0.32 pixels, 0.22 contrastive; see the chapter).
        "paper": Table 1 widths (64/256, 4096), §3.2 hyper-parameters, 50 epochs of the
            50,000 CIFAR-10 training images (19,500 iterations of 128) — for a GPU. The paper's
            own label features / initialisation (ImageNet ResNet-50, ImageNet CNN-F) are
            ``features="resnet", init="imagenet"``, which raise offline; the preset keeps the
            contrastive stand-ins so that it runs here.
        Pretrained regime (``backbone`` not "scratch"): labels from the backbone's own ImageNet
        features (§2.1 uses the ImageNet network's features), ``init="imagenet"``, and the paper's
        50 epochs (:data:`PRETRAINED_ITERATIONS`) at every scale but smoke.
        """
        base: dict = {}
        if scale != "smoke" and overrides.get("dataset", cls.dataset) in SMALL_DATASETS:
            base.update(_SMALL_DATASET_PRESET)
        base.update(cls.PRESETS[scale])
        if overrides.get("backbone", cls.backbone) != "scratch":
            base.update(features=overrides.get("backbone"), init="imagenet")
            if scale != "smoke":
                base.update(iterations=PRETRAINED_ITERATIONS)
        return base

