"""The DRSCH network (Zhang et al., TIP 2015, arXiv 1508.04535) as in the released Caffe code.

Only the MNIST network ships with the authors' code (``prototxt/triplet/triplet_train.prototxt``,
see ``../shared/papers/drsch-notes.md`` §1). It is reproduced layer by layer here:

===========  =====================================================  ==================
layer        definition                                             output (30×30 in)
===========  =====================================================  ==================
input        3 × 30 × 30 crop (grey MNIST replicated to 3 channels)  3 × 30 × 30
conv1        32 filters 5×5, stride 2 → ReLU → avg-pool 2, stride 1  32 × 12 × 12
conv2        64 filters 5×5, stride 1 → ReLU → avg-pool 2, stride 1  64 × 7 × 7
conv3        128 filters 5×5, stride 1 → ReLU → avg-pool 2, stride 1 128 × 2 × 2 = 512
fc7          512 outputs, **no** nonlinearity                        512
fc8          q outputs (the pre-activation ``z``)                   q
code layer   scaled tanh h = 2σ(a·z) − 1 = tanh(a·z/2), a grows      q, in (−1, 1)
bit weights  r = w ⊙ h, one weight per bit, w initialised to 1       q
===========  =====================================================  ==================

**CIFAR-10 equivalent (documented choice, the authors' CIFAR net is not released).** CIFAR-10
images are 32 × 32 × 3, so the same network takes 30 × 30 RGB crops of them unchanged
(``input_size=30, in_channels=3``): the released net already expects 3 × 30 × 30 inputs, so the
only difference from MNIST is that the three channels carry colour instead of a replicated grey
image. This keeps one architecture for both datasets, as the paper's single framework figure
suggests; it is smaller than the nets of the era (e.g. the CNNH/DNNH CIFAR nets) and is
recorded as a deviation in the chapter.

For other input sizes the flattened feature size is computed, so ``DRSCHNet(input_size=48)``
also works (fc7 then has more inputs).

**Pretrained regime.** :class:`DRSCHFeatureNet` puts the same hash layer on pooled features of a
frozen ImageNet backbone (cached): a trainable head (:class:`hashrepro.models.heads.FeatureMLP`,
fully connected + ReLU, in place of the convolutions and fc7) → fc8 (q) → scaled tanh → bit
weights, with the same methods as :class:`DRSCHNet` so that the recipe trains either.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ScaledTanh", "BitWeights", "DRSCHNet", "DRSCHFeatureNet", "slope_at"]


def slope_at(iteration: int, slope0: float = 5.0, factor: float = 1.1, every: int = 10_000) -> float:
    """Slope a of the scaled tanh after ``iteration`` steps: ``slope0 · factor^⌊iteration/every⌋``.

    The released code uses ``slope0=5`` (``sigm_para``), ``factor=1.1`` (``sigm_decay``) and
    ``every=10000`` (``iter_decay``); after 800k iterations a ≈ 5·1.1⁸⁰ ≈ 10⁴ (notes §1).
    """
    if every <= 0:
        raise ValueError(f"every must be a positive number of iterations, got {every}")
    if slope0 <= 0 or factor <= 0:
        raise ValueError(f"slope0 and factor must be > 0, got slope0={slope0}, factor={factor}")
    return float(slope0 * factor ** (int(iteration) // int(every)))


class ScaledTanh(nn.Module):
    """Code layer h = 2σ(a·z) − 1 = tanh(a·z / 2) with a slope ``a`` held as a buffer.

    The slope is a buffer (saved in ``state_dict``, moved with ``.to``) and is changed by the
    training loop with :meth:`set_slope` (the "tanh-like relaxation" of sign(); notes §1).

    Shapes: z (N, q) → h (N, q) in (−1, 1).
    """

    def __init__(self, slope: float = 5.0):
        super().__init__()
        if slope <= 0:
            raise ValueError(f"slope must be > 0, got {slope}")
        self.register_buffer("slope", torch.tensor(float(slope)))

    def set_slope(self, slope: float) -> None:
        if slope <= 0 or not math.isfinite(slope):
            raise ValueError(f"slope must be a positive finite number, got {slope}")
        self.slope.fill_(float(slope))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.slope * z / 2)

    def extra_repr(self) -> str:
        return f"slope={float(self.slope):.4g}"


class BitWeights(nn.Module):
    """Element-wise bit weights r = w ⊙ h (Caffe ``elewise_product`` layer; notes §1).

    One trainable weight per bit, initialised to 1, with **no** positivity or normalisation
    constraint: only w_k² enters the loss and the weighted Hamming distance, and BS-DRSCH ranks
    bits by |w_k|.

    Shapes: h (N, q) → r (N, q).
    """

    def __init__(self, n_bits: int):
        super().__init__()
        if n_bits <= 0:
            raise ValueError(f"n_bits must be positive, got {n_bits}")
        self.weight = nn.Parameter(torch.ones(n_bits))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.weight


class _WeightedCodeOutput:
    """The output end shared by :class:`DRSCHNet` and :class:`DRSCHFeatureNet`: the scaled-tanh
    code layer ``self.code`` and the bit weights ``self.bit_weights`` after ``preactivation``."""

    def set_slope(self, slope: float) -> None:
        self.code.set_slope(slope)

    @property
    def weights(self) -> torch.Tensor:
        """Bit weights w (q,)."""
        return self.bit_weights.weight

    def codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (z, h, r), each (N, q): pre-activation, relaxed code, weighted relaxed code."""
        z = self.preactivation(x)
        h = self.code(z)
        return z, h, self.bit_weights(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weighted relaxed codes r = w ⊙ tanh(a·z/2), shape (N, q)."""
        return self.codes(x)[2]


class DRSCHNet(_WeightedCodeOutput, nn.Module):
    """The released DRSCH network (see the module docstring for the layer table).

    Parameters
    ----------
    n_bits : int
        q, the number of hash bits (fc8 outputs).
    in_channels : int
        3 as in the released code (grey images are replicated to 3 channels); 1 is allowed.
    input_size : int
        Side of the square input crop (30 in the released code). Must be ≥ 22.
    fc_dim : int
        fc7 width (512).
    slope : float
        Initial slope a of the scaled tanh (5).
    init : "caffe" | "default"
        "caffe": Gaussian σ = 0.01 for conv weights, σ = 0.1 for fc weights, zero biases, as in
        the released prototxt; "default": PyTorch's default (Kaiming-uniform) initialisation.

    ``forward(x)`` takes x (N, C, H, W) and returns the weighted relaxed codes r (N, q);
    :meth:`codes` returns (z, h, r) for the loss, the binary codes (sign of z) and the
    released code's continuous features (h before the weight layer).
    """

    def __init__(self, n_bits: int = 64, in_channels: int = 3, input_size: int = 30, fc_dim: int = 512,
                 slope: float = 5.0, init: str = "caffe"):
        super().__init__()
        if not isinstance(n_bits, int) or n_bits <= 0:
            raise ValueError(f"n_bits must be a positive int, got {n_bits!r}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        if input_size < 22:
            raise ValueError(f"input_size must be >= 22 (three 5x5 convs and pools, no padding), got {input_size}")
        if init not in ("caffe", "default"):
            raise ValueError(f"init must be 'caffe' or 'default', got {init!r}")
        self.n_bits = n_bits
        self.in_channels = in_channels
        self.input_size = input_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, stride=2), nn.ReLU(inplace=True), nn.AvgPool2d(2, stride=1),
            nn.Conv2d(32, 64, 5, stride=1), nn.ReLU(inplace=True), nn.AvgPool2d(2, stride=1),
            nn.Conv2d(64, 128, 5, stride=1), nn.ReLU(inplace=True), nn.AvgPool2d(2, stride=1),
        )
        side = self.feature_side(input_size)
        self.n_features = 128 * side * side
        self.fc7 = nn.Linear(self.n_features, fc_dim)  # no nonlinearity after fc7 (released prototxt)
        self.fc8 = nn.Linear(fc_dim, n_bits)
        self.code = ScaledTanh(slope)
        self.bit_weights = BitWeights(n_bits)
        if init == "caffe":
            self.reset_parameters_caffe()

    @staticmethod
    def feature_side(input_size: int) -> int:
        """Spatial side after the three conv/pool stages (30 → 13 → 12 → 8 → 7 → 3 → 2)."""
        s = (input_size - 5) // 2 + 1
        s = s - 1
        s = s - 4 - 1
        s = s - 4 - 1
        if s < 1:
            raise ValueError(f"input_size {input_size} is too small for the DRSCH net")
        return s

    def reset_parameters_caffe(self) -> None:
        """Gaussian init of the released prototxt: conv σ=0.01, fc σ=0.1, biases 0 (notes §1)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.1)
                nn.init.zeros_(m.bias)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """SGD parameter groups with the released per-layer multipliers (notes §1).

        Weight-decay multipliers: conv weights 0.1, fc weights 0.5, bit weights 0.5, biases 0;
        every learning-rate multiplier is 1.
        """
        conv_w, fc_w, biases = [], [], []
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                conv_w.append(m.weight)
                biases.append(m.bias)
        for m in (self.fc7, self.fc8):
            fc_w.append(m.weight)
            biases.append(m.bias)
        return [
            {"params": conv_w, "lr": lr, "weight_decay": 0.1 * weight_decay},
            {"params": fc_w, "lr": lr, "weight_decay": 0.5 * weight_decay},
            {"params": [self.bit_weights.weight], "lr": lr, "weight_decay": 0.5 * weight_decay},
            {"params": biases, "lr": lr, "weight_decay": 0.0},
        ]

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """z = fc8(fc7(features(x))): (N, C, H, W) → (N, q). sign(z) gives the binary code."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        f = self.features(x).flatten(1)
        if f.shape[1] != self.n_features:
            raise ValueError(f"input of side {x.shape[-1]} gives {f.shape[1]} features; this net was built for "
                             f"input_size={self.input_size} ({self.n_features} features)")
        return self.fc8(self.fc7(f))



class DRSCHFeatureNet(_WeightedCodeOutput, nn.Module):
    """DRSCH's hash layer on pooled backbone features (the pretrained regime).

    ==========  ===========================================================  ===========
    layer       definition                                                   output
    ==========  ===========================================================  ===========
    (tail)      ``tail`` only: the backbone's last block + head conv + pool,  d (1280)
                on cached maps (N, C·h·w) (:mod:`hashrepro.finetune`)
    input       pooled features of the frozen backbone (cached)              d (1280)
    head        :class:`~hashrepro.models.heads.FeatureMLP`: Linear + ReLU    hidden[-1]
                per width in ``hidden`` (``()``: none, fc8 on the features)
    fc8         q outputs (the pre-activation ``z``)                         q
    code layer  scaled tanh h = tanh(a·z/2), a grows (:class:`ScaledTanh`)  q
    bit weights r = w ⊙ h (:class:`BitWeights`, w initialised to 1)         q
    ==========  ===========================================================  ===========

    Parameters
    ----------
    n_bits : q.  in_features : d, the backbone's feature width.  hidden : head widths (512: the
    released fc7's width; unlike fc7 the head has a ReLU, two stacked linear maps being one).
    slope : initial slope a.  init : "default" (PyTorch's Kaiming-uniform, the preset: the released
    σ = 0.1 Gaussian saturates the tanh on 1280 non-negative features) or "caffe" (σ = 0.1, zero biases).
    tail : None (the input is pooled features) or a module mapping flattened maps (N, C·h·w) to
    pooled features (N, d) that trains with the head (a :class:`~hashrepro.models.mch_heads.TunedTail`,
    ``finetune="last_block"``); it must have ``map_shape`` (C, h, w) and ``feat_dim`` = d.

    The interface is :class:`DRSCHNet`'s: ``preactivation(x)`` (N, d) → z (N, q), ``codes(x)`` →
    (z, h, r), ``forward(x)`` → r, ``weights``, ``set_slope``, ``param_groups(lr, weight_decay)``.
    """

    def __init__(self, n_bits: int = 64, in_features: int = 1280, hidden: tuple = (512,), slope: float = 5.0,
                 init: str = "default", tail: nn.Module | None = None):
        super().__init__()
        from .heads import FeatureMLP

        if not isinstance(n_bits, int) or n_bits <= 0:
            raise ValueError(f"n_bits must be a positive int, got {n_bits!r}")
        if not isinstance(in_features, int) or in_features <= 0:
            raise ValueError(f"in_features must be a positive int (the backbone's feature width), got {in_features!r}")
        if init not in ("caffe", "default"):
            raise ValueError(f"init must be 'caffe' or 'default', got {init!r}")
        if tail is not None and int(tail.feat_dim) != in_features:
            raise ValueError(f"the tail outputs {tail.feat_dim} features but in_features is {in_features}")
        self.n_bits = n_bits
        self.in_features = in_features
        self.tail = tail
        self.input_width = in_features if tail is None else math.prod(int(v) for v in tail.map_shape)
        self.head = FeatureMLP(in_features, tuple(hidden))
        self.fc8 = nn.Linear(self.head.fc_dim, n_bits)
        self.code = ScaledTanh(slope)
        self.bit_weights = BitWeights(n_bits)
        if init == "caffe":
            for m in (*self.head.modules(), self.fc8):
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.1)
                    nn.init.zeros_(m.bias)

    def param_groups(self, lr: float, weight_decay: float, tail_lr_mult: float = 0.1) -> list[dict]:
        """SGD groups with the released multipliers for fully connected layers: weights 0.5 × weight
        decay, bit weights 0.5 ×, biases 0; with a ``tail``, its parameters at ``lr × tail_lr_mult``
        with the released conv layers' 0.1 × weight decay."""
        linears = [m for m in (*self.head.modules(), self.fc8) if isinstance(m, nn.Linear)]
        groups = [
            {"params": [m.weight for m in linears], "lr": lr, "weight_decay": 0.5 * weight_decay},
            {"params": [self.bit_weights.weight], "lr": lr, "weight_decay": 0.5 * weight_decay},
            {"params": [m.bias for m in linears], "lr": lr, "weight_decay": 0.0},
        ]
        if self.tail is not None:
            groups.append({"params": list(self.tail.parameters()), "lr": lr * tail_lr_mult,
                           "weight_decay": 0.1 * weight_decay})
        return groups

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """z = fc8(head(x)): features (N, d) → (N, q) (with a ``tail``: maps (N, C·h·w) → tail → head).
        sign(z) gives the binary code."""
        if x.ndim != 2 or x.shape[1] != self.input_width:
            what = "pooled features" if self.tail is None else f"flattened maps {tuple(self.tail.map_shape)}"
            raise ValueError(f"expected {what} of shape (N, {self.input_width}), got {tuple(x.shape)}")
        return self.fc8(self.head(x if self.tail is None else self.tail(x)))

