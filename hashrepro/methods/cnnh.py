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

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..params import check_seed
from . import dnnh as _dnnh

__all__ = ["Config", "SCALES", "BACKBONES", "METHODS", "LOSSES", "CNNHNet", "stage1_codes", "stage1_objective",
           "method_name", "build_model", "train_net", "run", "chapter_recipe", "describe", "CHAPTER_METHODS"]

SCALES = _dnnh.SCALES
BACKBONES = _dnnh.BACKBONES
#: CNNH* (codes only) and CNNH+ (codes + class labels as extra outputs).
METHODS = ("cnnh-star", "cnnh-plus")
LOSSES = ("bce", "mse")
#: The ``method`` parameter of the DNNH chapter notebook.
CHAPTER_METHODS = ("dnnh",) + METHODS


# ============================================================================ stage 1
def _sweep_impl(H, G, C, T, cls, SHt, S, order, q, safeguard, dense):  # pragma: no cover - compiled
    """One sweep of coordinate descent over the entries ``order`` (flat indices i·q + j).

    H (n, q) float64 in [−1, 1]; G = HᵀH (q, q); single-label: C (n_classes, q) class sums of the
    rows of H, T (q,) their total, cls (n,) class ids; dense: SHt = (S H)ᵀ (q, n), S (n, n).
    Everything is updated in place. Returns the number of entries changed.
    """
    changed = 0
    for t in range(order.shape[0]):
        i = order[t] // q
        j = order[t] % q
        x = H[i, j]
        hg = 0.0
        rn = 0.0
        for l in range(q):
            hg += H[i, l] * G[l, j]
            rn += H[i, l] * H[i, l]
        if dense:
            sh = SHt[j, i]
            sii = S[i, i]
        else:
            sh = 2.0 * C[cls[i], j] - T[j]
            sii = 1.0
        a = hg - q * sh                 # (L H)_ij
        lii = rn - q * sii              # L_ii
        g1 = 4.0 * a
        g2 = 4.0 * (G[j, j] + x * x + lii)
        if g2 > 0.0:
            d = -g1 / g2
        elif g1 > 0.0:
            d = -2.0
        elif g1 < 0.0:
            d = 2.0
        else:
            d = 0.0
        if x + d > 1.0:
            d = 1.0 - x
        if x + d < -1.0:
            d = -1.0 - x
        if safeguard and d != 0.0:
            c2 = 2.0 * (lii + G[j, j] + x * x)
            ok = False
            for _ in range(31):
                delta = 4.0 * d * a + c2 * d * d + 4.0 * x * d * d * d + d * d * d * d
                if delta < 0.0:
                    ok = True
                    break
                d *= 0.5
            if not ok:
                d = 0.0
        if d == 0.0:
            continue
        changed += 1
        # G = HᵀH: row/column j change by d·H[i, :], G_jj by 2dx + d²
        for l in range(q):
            if l != j:
                G[j, l] += d * H[i, l]
                G[l, j] += d * H[i, l]
        G[j, j] += 2.0 * d * x + d * d
        if dense:
            for k in range(S.shape[0]):
                SHt[j, k] += S[k, i] * d
        else:
            C[cls[i], j] += d
            T[j] += d
        H[i, j] = x + d
    return changed


try:  # numba is a declared dependency (the metrics kernels use it); fall back to plain Python
    import os as _os

    if _os.environ.get("HASHREPRO_NO_NUMBA", "") not in ("", "0"):
        raise ImportError("disabled by HASHREPRO_NO_NUMBA")
    from numba import njit as _njit

    _sweep = _njit(cache=True, nogil=True)(_sweep_impl)
except ImportError:  # pragma: no cover
    _sweep = _sweep_impl


def _as_labels(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim not in (1, 2) or y.shape[0] < 1:
        raise ValueError(f"labels must be int class ids (n,) or multi-hot (n, C), got shape {y.shape}")
    return y


def stage1_objective(H: np.ndarray, labels=None, S: np.ndarray | None = None) -> float:
    """‖S − H Hᵀ/q‖²_F for codes or relaxed codes H (n, q) and S from ``labels`` (+1 / −1, see
    :func:`hashrepro.pseudolabels.class_similarity`) or given (n, n). O(n² q); for checks."""
    from ..pseudolabels import class_similarity

    H = np.asarray(H, dtype=np.float64)
    if S is None:
        y = _as_labels(labels)
        S = class_similarity(y, np.arange(len(y)), negative=-1.0)
    S = np.asarray(S, dtype=np.float64)
    q = H.shape[1]
    return float(np.sum((S - H @ H.T / q) ** 2))


def _objective_fast(H, G, SH, q, s_sq) -> float:
    """‖HHᵀ − qS‖²/q² from G = HᵀH and SH = S H: ‖G‖² − 2q·⟨H, SH⟩ + q²‖S‖², over q²."""
    return float((np.sum(G * G) - 2.0 * q * np.sum(H * SH) + q * q * s_sq) / (q * q))


def stage1_codes(labels=None, bits: int = 12, *, S: np.ndarray | None = None, sweeps: int = 50,
                 tol: float = 1e-4, seed: int = 0, safeguard: bool = True) -> tuple[np.ndarray, dict]:
    """CNNH stage 1: approximate codes H ∈ {−1, 1}^{n×q} with H Hᵀ/q ≈ S (module docstring).

    Parameters
    ----------
    labels : int (n,) class ids (fast path, O(q) per update) or multi-hot (n, C) (dense S from
        :func:`hashrepro.pseudolabels.class_similarity`: +1 when sharing a label, −1 otherwise).
    bits : q.
    S : optional explicit similarity (n, n), symmetric (then ``labels`` is ignored; dense path).
    sweeps : maximum number of sweeps (each visits all n·q entries once, in a new random order).
    tol : stop when a sweep lowers the objective by less than ``tol`` × its value.
    seed : initialisation and visiting order.
    safeguard : halve a step until it lowers the objective (True, default) or take the paper's
        clipped Newton step as is (False).

    Returns
    -------
    (codes int8 (n, q) in {−1, +1}, info) with info: ``objective`` (list: ‖S − HHᵀ/q‖² of the
    relaxed H at the start and after each sweep), ``objective_binary`` (of the returned codes),
    ``sweeps`` (run), ``changed`` (entries changed per sweep), ``time_s``, ``path``
    ("classes" | "dense"), ``n_pairs`` (n²).
    """
    from ..pseudolabels import class_similarity

    if not isinstance(bits, (int, np.integer)) or bits < 1:
        raise ValueError(f"bits must be a positive int, got {bits!r}")
    if not isinstance(sweeps, (int, np.integer)) or sweeps < 0:
        raise ValueError(f"sweeps must be an int >= 0, got {sweeps!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    seed = check_seed(seed)
    q = int(bits)
    t0 = time.perf_counter()
    if S is not None:
        S = np.ascontiguousarray(S, dtype=np.float64)
        if S.ndim != 2 or S.shape[0] != S.shape[1] or not np.allclose(S, S.T):
            raise ValueError(f"S must be a symmetric (n, n) matrix, got shape {S.shape}")
        n = S.shape[0]
        dense = True
    else:
        if labels is None:
            raise ValueError("stage1_codes needs labels (n,) / (n, C) or an explicit S (n, n)")
        y = _as_labels(labels)
        n = y.shape[0]
        dense = y.ndim == 2
        if dense:
            S = np.ascontiguousarray(class_similarity(y, np.arange(n), negative=-1.0), dtype=np.float64)
    rng = np.random.default_rng(seed)
    H = rng.uniform(-1.0, 1.0, size=(n, q))
    if dense:
        cls = np.zeros(n, dtype=np.int64)
        s_sq = float(np.sum(S * S))
    else:
        _, cls = np.unique(y, return_inverse=True)
        cls = cls.astype(np.int64)
        s_sq = float(n) * n
        S = np.zeros((1, 1))
    n_cls = int(cls.max()) + 1

    def state(H):
        G = H.T @ H
        if dense:
            SH = S @ H
            C, T = np.zeros((1, q)), np.zeros(q)
        else:
            C = np.zeros((n_cls, q))
            np.add.at(C, cls, H)
            T = H.sum(0)
            SH = 2.0 * C[cls] - T
        return G, C, T, SH

    G, C, T, SH = state(H)
    objective = [_objective_fast(H, G, SH, q, s_sq)]
    changed = []
    done = 0
    for _ in range(int(sweeps)):
        G, C, T, SH = state(H)   # fresh sums each sweep: no drift of the running updates
        SHt = np.ascontiguousarray(SH.T) if dense else np.zeros((1, 1))
        order = rng.permutation(n * q).astype(np.int64)
        changed.append(int(_sweep(H, G, C, T, cls, SHt, S, order, q, bool(safeguard), dense)))
        done += 1
        G, C, T, SH = state(H)
        objective.append(_objective_fast(H, G, SH, q, s_sq))
        prev = objective[-2]
        if prev - objective[-1] <= tol * max(abs(prev), 1e-12):
            break
    codes = np.where(H >= 0, 1, -1).astype(np.int8)
    B = codes.astype(np.float64)
    Gb, Cb, Tb, SHb = state(B)
    info = {"objective": [float(v) for v in objective], "objective_binary": _objective_fast(B, Gb, SHb, q, s_sq),
            "sweeps": done, "changed": changed, "time_s": time.perf_counter() - t0,
            "path": "dense" if dense else "classes", "n_pairs": int(n) * int(n), "safeguard": bool(safeguard)}
    return codes, info


# ============================================================================ stage 2: the network
class CNNHNet(nn.Module):
    """CNNH*'s network: images (or pooled backbone features) → (N, bits + n_classes) outputs.

    Scratch (``in_features=None``): DNNH's NIN sub-network (:class:`~hashrepro.models.nin.NINSubNetwork`
    with ``input_size``, ``width``) whose last 1×1 convolution is replaced by a 1×1 convolution to
    ``bits + n_classes`` channels with no ReLU, then the global average pool (DNNH §4.1's CNNH*).
    Pretrained (``in_features=D``): a linear layer D → bits + n_classes on the pooled features (the
    same 1×1 convolution, commuted with the pool).

    ``forward(x)`` returns all outputs (N, bits + n_classes); the first ``bits`` are the hash
    logits z (code bit = z > 0), the rest CNNH+'s class logits.
    """

    def __init__(self, bits: int, in_channels: int = 3, input_size: int = 32, width: float = 1.0,
                 n_classes: int = 0, in_features: int | None = None):
        super().__init__()
        from ..models.nin import NINSubNetwork

        if not isinstance(bits, (int, np.integer)) or bits < 1:
            raise ValueError(f"bits must be a positive int, got {bits!r}")
        if not isinstance(n_classes, (int, np.integer)) or n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0, got {n_classes!r}")
        self.bits, self.n_classes = int(bits), int(n_classes)
        out = self.bits + self.n_classes
        if in_features is None:
            base = NINSubNetwork(self.bits, in_channels, input_size, width)
            layers = list(base.features)
            last = layers[-3]
            assert isinstance(last, nn.Conv2d) and isinstance(layers[-2], nn.ReLU), "unexpected NIN layout"
            conv = nn.Conv2d(last.in_channels, out, 1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear")
            nn.init.zeros_(conv.bias)
            self.body = nn.Sequential(*layers[:-3], conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
            self.input_size = int(input_size)
        else:
            if not isinstance(in_features, (int, np.integer)) or in_features < 1:
                raise ValueError(f"in_features must be a positive int (the backbone's feature width), got {in_features!r}")
            self.body = nn.Linear(int(in_features), out)
            self.input_size = None
        self.in_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, S, S) images or (N, in_features) features → (N, bits + n_classes)."""
        if self.in_features is None:
            if x.ndim != 4 or x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
                raise ValueError(f"expected images of shape (N, C, {self.input_size}, {self.input_size}), "
                                 f"got {tuple(x.shape)}")
        elif x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected pooled features of shape (N, {self.in_features}), got {tuple(x.shape)}")
        return self.body(x)

    def hash_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The q hash outputs z (N, bits)."""
        return self(x)[:, :self.bits]


# ============================================================================ config
@dataclass
class Config:
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

    def __post_init__(self):
        self.ks = tuple(int(k) for k in self.ks)
        self.lr_steps = tuple(float(f) for f in self.lr_steps)
        self.validate()

    @classmethod
    def for_scale(cls, scale: str = "default", **overrides) -> "Config":
        """Config for a scale, then ``overrides`` (any field). The schedules are DNNH's
        (:meth:`hashrepro.methods.dnnh.Config.for_scale`), so that the two rows of Table 2 differ
        only in the method:

        ``"smoke"``: seconds (width 1/16, 15 iterations, 10 queries / 30 training images per class,
        20 stage-1 sweeps at most). ``"default"``: width 1/4 of Table 1, 1,200 iterations of 64
        (scratch) or :data:`hashrepro.methods.dnnh.PRETRAINED_ITERATIONS` = 5,000 on the frozen
        ImageNet features, lr 0.03. ``"paper"``: Table 1's widths, 100,000 iterations, lr 0.01.
        Stage 1 runs up to 50 sweeps (stopping when one lowers the objective by < 0.01 %) at
        every scale: on CIFAR-10's 5,000 training images that is seconds.
        """
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown Config field(s) {sorted(unknown)}; valid: "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        base: dict = {"scale": scale}
        if scale == "smoke":
            base.update(width=0.0625, iterations=15, batch_size=32, n_query_per_class=10, n_train_per_class=30,
                        ks=(10, 20, 50), stage1_sweeps=20)
        elif scale == "default":
            base.update(width=0.25, iterations=1200)
        else:
            base.update(width=1.0, iterations=100_000, num_threads=None, lr=0.01)
        if overrides.get("backbone", cls.backbone) != "scratch" and scale == "default":
            base.update(iterations=_dnnh.PRETRAINED_ITERATIONS)
        base.update(overrides)
        if "topk" not in overrides and base.get("dataset", cls.dataset) in _dnnh._TOPK_5000:
            base["topk"] = 5000
        return cls(**base)

    def validate(self) -> None:
        def bad(name, valid):
            raise ValueError(f"Config.{name}={getattr(self, name)!r} is invalid; {valid}")

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

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["ks"] = list(self.ks)
        d["lr_steps"] = list(self.lr_steps)
        return d


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
def run(cfg: Config | None = None, command: str | None = None, **overrides) -> dict:
    """Stage 1, stage 2 and DNNH's evaluation; return the run record (paper ``"dnnh"``).

    ``run(Config.for_scale("smoke", dataset="digits"))`` or ``run(dataset="cifar10", bits=12)``.

    Metrics: DNNH's (``map``, ``precision_radius2``, ``recall_radius2``, precision at k,
    ``train_time_s``, ``encode_time_s``, ``final_loss``, ``bit_balance``, ``saturated_fraction``:
    share of database σ(z) within 0.01 of 0 or 1) plus ``stage1_objective`` (‖S − HHᵀ/q‖²/n² of the
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
    from ..results import make_record, start_run
    from ..train import describe_device, resolve_device, seed_everything

    run_start = start_run()  # the code this run starts with (commit, diff)
    if cfg is None:
        cfg = Config.for_scale(overrides.pop("scale", "default"), **overrides)
    elif overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    cfg.validate()
    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    old_threads = torch.get_num_threads()
    if cfg.num_threads and device.type == "cpu":
        torch.set_num_threads(int(cfg.num_threads))
    try:
        gen = seed_everything(cfg.seed)
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
        if cfg.backbone == "scratch":
            feats, backbone_meta, feature_read_s = None, {}, None
            x_train = _dnnh._prepare(ds.images[train_idx], cfg, None)
            mean = x_train.mean(dim=(0, 2, 3))
            x_train = (x_train - mean.view(1, -1, 1, 1)).to(device)
        else:
            feats, backbone_meta, feature_read_s = _dnnh._backbone_features(ds, cfg)
            backbone_meta["backbone_head"] = f"linear {feats.shape[1]} -> bits (the last 1x1 conv + average pool)"
            mean = None
            x_train = torch.from_numpy(np.ascontiguousarray(feats[train_idx], dtype=np.float32)).to(device)
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

        metrics = {"map": float(ev["map"]), "precision_radius2": float(ev["precision_radius2"])}
        for k, v in ev.items():
            if k not in ("map", "precision_radius2", "curves", "protocol") and isinstance(v, (int, float, np.floating)):
                metrics[k] = float(v)
        loss_tail = hist.loss[-50:] if hist.loss else [float("nan")]
        sig = 1.0 / (1.0 + np.exp(-np.clip(z_db, -50, 50)))
        metrics.update(
            train_time_s=float(hist.wall_time_s), encode_time_s=float(encode_time),
            final_loss=float(np.mean(loss_tail)),
            bit_balance=float(db_codes.mean()) if db_codes.size else float("nan"),
            saturated_fraction=float(np.mean((sig < 0.01) | (sig > 0.99))) if sig.size else float("nan"),
            stage1_objective=float(s1["objective_binary"] / s1["n_pairs"]),
            stage1_objective_relaxed=float(s1["objective"][-1] / s1["n_pairs"]),
            stage1_sweeps=float(s1["sweeps"]), stage1_time_s=float(s1["time_s"]), stage1_map=s1_map,
            target_bit_agreement=agreement,
        )
        if feature_read_s is not None:
            metrics["backbone_feature_read_s"] = float(feature_read_s)
        curves = dict(ev.get("curves", {}))
        curves["train_loss"] = _dnnh._subsample_curve(hist.loss)
        curves["stage1_objective"] = {"sweep": list(range(len(s1["objective"]))),
                                      "objective": [v / s1["n_pairs"] for v in s1["objective"]]}

        protocol = {"split": "per_class", **_dnnh._jsonable(dict(getattr(sp, "protocol", {}) or {})),
                    "n_train": int(len(train_idx)), "n_query": int(len(query_idx)), "n_database": int(len(db_idx)),
                    "database_includes_train": bool(cfg.database_includes_train)}
        protocol.update(_dnnh._jsonable(ev.get("protocol", {})))
        protocol.setdefault("ranking", "binary")
        protocol.update(backbone_meta)
        protocol["stage1"] = ("CNNH random coordinate descent (Newton step, clipped to [-1, 1]"
                              + (", safeguarded" if cfg.stage1_safeguard else "") + f"), path {s1['path']}")
        protocol["stage2_loss"] = {"bce": "cross-entropy of sigmoid(z) to (H+1)/2",
                                   "mse": "squared error of z to H"}[cfg.loss]
        config = _dnnh._jsonable(cfg.to_dict())
        wall = time.perf_counter() - t_start
        record = make_record(
            paper="dnnh", method=method_name(cfg.method, cfg.backbone), dataset=cfg.dataset, bits=int(cfg.bits),
            seed=int(cfg.seed), scale=cfg.scale, config=config, protocol=protocol, metrics=metrics,
            curves=_dnnh._jsonable(curves), wall_time_s=float(wall), device=describe_device(device),
            command=command, started=run_start)
        flag_record(record, diagnose(db_codes, hist.loss, labels=labels[db_idx]))
        return record
    finally:
        torch.set_num_threads(old_threads)


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
    return (f"{_dnnh.method_name(cfg.variant, cfg.backbone)} on {cfg.dataset}: {cfg.bits} bits, {cfg.iterations} "
            f"iterations, width {cfg.width}, lr {cfg.lr}, eps shrinks every {cfg.epsilon_every_effective} iterations")
