"""Network-in-Network sub-network and hash heads of DNNH (Lai et al., CVPR 2015).

The paper (§3.2, Table 1) encodes every image of a triplet with a *shared* stack of
convolutions in the Network-in-Network (NIN) style: a convolution with a large receptive field
followed by a 1×1 convolution (a per-pixel linear map of the channels), three times with max
pooling in between, then a 3×3 convolution, a last 1×1 convolution with ``50 × bits`` channels
and a global average pooling that replaces fully connected layers. Every convolution is
followed by a ReLU. The pooled ``50 q`` features go to a hash head:

* :class:`DivideAndEncode` (§3.3, Fig. 2a): ``q`` slices of 50 features, one 50→1 fully
  connected layer per slice (eq. 4), a sigmoid with slope β (eq. 5) and the piecewise
  threshold ``g`` with half-width ε (eq. 6), concatenated into a q-dimensional code in [0, 1].
* :class:`FCEncoder` (Fig. 2b, the "FC" ablation of §4.3): one fully connected layer
  ``50q → q`` followed by the sigmoid.

Input sizes
-----------
:func:`nin_layers` gives the layer table for three input sizes, derived the same way:

``224`` (Table 1, images of 256×256 cropped to 224×224 as in Caffe)
    conv 11×11/4 (96) → conv 1×1 (96) → max 3×3/2 → conv 5×5/1 pad 2 (256) → conv 1×1 → max
    3×3/2 → conv 3×3/1 pad 1 (384) → conv 1×1 → max 3×3/2 → conv 3×3/1 pad 1 (1024) →
    conv 1×1 (50q) → ave pool 6×6. Output sizes 54, 54, 27, 27, 27, 13, 13, 13, 6, 6, 6, 1
    exactly as Table 1. (Table 1 prints "5×5/2" for the second convolution, but its output size
    27×27 from a 27×27 input implies stride 1; we follow the output sizes.) Pools use Caffe's
    ceil rounding.
``32`` (CIFAR-10, SVHN; derived here)
    A 32×32 image is already ~7× smaller than the 224 crop, so the 11×11/4 stem that shrinks
    224→54 is replaced by a 5×5/1 convolution with padding 2 (as NIN itself does on CIFAR-10),
    which keeps 32×32. Everything else is Table 1 unchanged: the three 3×3/2 max pools take
    32→16→8→4, and the average pool is 4×4. Channels 96, 256, 384, 1024, 50q as in Table 1.
``28`` (MNIST-sized)
    The 32×32 configuration applied to 28×28: 28→14→7→3 (ceil rounding), average pool 3×3.
    (The method module resizes MNIST to 32×32 by default instead, which gives exactly the
    CIFAR-10 network; both are supported.)

``width`` scales the hidden channel counts (96, 256, 384, 1024) for CPU-sized runs; the last
1×1 convolution always has ``50 × bits`` channels as in the paper.

Pretrained regime
-----------------
On a frozen ImageNet backbone whose pooled features are cached (``DNNHNet(..., in_features=1280)``),
the NIN stack is replaced by :class:`FeatureProjection`: the paper's last layer, the 1×1
convolution to ``50 q`` channels with its ReLU, becomes a linear layer ``d → 50 q`` + ReLU on the
*pooled* features. A 1×1 convolution is linear per pixel, so it commutes with average pooling;
the only difference from conv → ReLU → pool is that the ReLU comes after the pooling. The
divide-and-encode module, the FC and two-sub-network ablations are unchanged on top of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "LayerSpec",
    "nin_layers",
    "layer_table",
    "NINSubNetwork",
    "piecewise_threshold",
    "DivideAndEncode",
    "FCEncoder",
    "MeanCenter",
    "FeatureProjection",
    "DNNHNet",
    "SUPPORTED_INPUT_SIZES",
]

SUPPORTED_INPUT_SIZES = (28, 32, 224)
FEATURES_PER_BIT = 50
_TABLE1_CHANNELS = (96, 256, 384, 1024)


@dataclass(frozen=True)
class LayerSpec:
    """One row of Table 1: layer type, kernel, stride, padding, output channels and size."""

    type: str  # "convolution" | "max pool" | "ave pool"
    kernel: int
    stride: int
    padding: int
    out_channels: int
    out_size: int

    @property
    def filter(self) -> str:
        return f"{self.kernel}×{self.kernel}/{self.stride}"

    @property
    def output(self) -> str:
        return f"{self.out_channels} × {self.out_size} × {self.out_size}"


def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _pool_out(n: int, k: int, s: int) -> int:  # Caffe's ceil rounding
    return int(math.ceil((n - k) / s)) + 1


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def nin_layers(input_size: int, bits: int, width: float = 1.0) -> list[LayerSpec]:
    """Layer table of the shared sub-network (Table 1 and its 32×32 / 28×28 derivations).

    Parameters
    ----------
    input_size : 224 (the paper's 256×256 images, cropped), 32 (CIFAR-10/SVHN) or 28 (MNIST).
    bits : number of hash bits q; the last 1×1 convolution has ``50 q`` channels.
    width : multiplier of the hidden channel counts 96/256/384/1024 (1.0 = the paper).

    Returns
    -------
    list of :class:`LayerSpec`, in order, ending with the average pool of size 1×1.
    """
    if input_size not in SUPPORTED_INPUT_SIZES:
        raise ValueError(f"input_size must be one of {SUPPORTED_INPUT_SIZES}, got {input_size!r}")
    if not isinstance(bits, (int,)) or bits < 1:
        raise ValueError(f"bits must be a positive integer, got {bits!r}")
    if not (width > 0):
        raise ValueError(f"width must be > 0, got {width!r}")
    c1, c2, c3, c4 = (_scaled(c, width) for c in _TABLE1_CHANNELS)
    rows: list[LayerSpec] = []
    n = input_size

    def conv(k, s, p, c):
        nonlocal n
        n = _conv_out(n, k, s, p)
        rows.append(LayerSpec("convolution", k, s, p, c, n))

    def maxpool():
        nonlocal n
        n = _pool_out(n, 3, 2)
        rows.append(LayerSpec("max pool", 3, 2, 0, rows[-1].out_channels, n))

    if input_size == 224:
        conv(11, 4, 0, c1)
    else:
        conv(5, 1, 2, c1)
    conv(1, 1, 0, c1)
    maxpool()
    conv(5, 1, 2, c2)
    conv(1, 1, 0, c2)
    maxpool()
    conv(3, 1, 1, c3)
    conv(1, 1, 0, c3)
    maxpool()
    conv(3, 1, 1, c4)
    conv(1, 1, 0, FEATURES_PER_BIT * bits)
    k = n
    n = 1
    rows.append(LayerSpec("ave pool", k, 1, 0, FEATURES_PER_BIT * bits, 1))
    return rows


def layer_table(input_size: int, bits: int, width: float = 1.0):
    """:func:`nin_layers` as a pandas DataFrame with Table 1's columns (type, filter size/stride, output size)."""
    import pandas as pd

    rows = nin_layers(input_size, bits, width)
    return pd.DataFrame({"type": [r.type for r in rows], "filter size/stride": [r.filter for r in rows],
                         "output size": [r.output for r in rows]})


class NINSubNetwork(nn.Module):
    """The shared stack of convolutions (§3.2): images (N, C, H, W) → features (N, 50·bits).

    Parameters
    ----------
    bits : q, the code length; the output has ``50 q`` features (the last 1×1 conv, average pooled).
    in_channels : 3 for colour, 1 for grey images.
    input_size : 28, 32 or 224 (see :func:`nin_layers`); inputs must be input_size × input_size.
    width : multiplier of the hidden channel counts (1.0 = Table 1).

    Every convolution is followed by a ReLU ("all the convolution layers use rectification
    activation", Table 1 caption), including the last 1×1 convolution, so features are ≥ 0.
    """

    def __init__(self, bits: int, in_channels: int = 3, input_size: int = 32, width: float = 1.0):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.specs = nin_layers(input_size, bits, width)
        self.bits = bits
        self.input_size = input_size
        self.out_features = FEATURES_PER_BIT * bits
        layers: list[nn.Module] = []
        c = in_channels
        for spec in self.specs:
            if spec.type == "convolution":
                layers += [nn.Conv2d(c, spec.out_channels, spec.kernel, spec.stride, spec.padding), nn.ReLU(inplace=True)]
                c = spec.out_channels
            elif spec.type == "max pool":
                layers.append(nn.MaxPool2d(spec.kernel, spec.stride, ceil_mode=True))
            else:
                layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, input_size, input_size) float → (N, 50·bits) non-negative features."""
        if x.ndim != 4 or x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(f"expected images of shape (N, C, {self.input_size}, {self.input_size}), got {tuple(x.shape)}")
        return self.features(x).flatten(1)


def piecewise_threshold(s: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Eq. 6: g(s) = 0 if s < 0.5 − ε, s if 0.5 − ε ≤ s ≤ 0.5 + ε, 1 if s > 0.5 + ε.

    The gradient is 1 inside the band and 0 outside (the constant pieces), as in the paper.
    ε ≥ 0.5 makes g the identity on [0, 1]; ε = 0 is a hard step.
    """
    if not torch.is_tensor(epsilon) and epsilon < 0:  # a tensor ε (a GPU buffer) is not read back
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    lo, hi = 0.5 - epsilon, 0.5 + epsilon
    zero = torch.zeros((), dtype=s.dtype, device=s.device)
    one = torch.ones((), dtype=s.dtype, device=s.device)
    return torch.where(s < lo, zero, torch.where(s > hi, one, s))


def _slice_ids(d: int, q: int) -> torch.Tensor:
    """Footnote 4: d = q·s + c → the first c slices have s + 1 features, the other q − c have s."""
    if d < q:
        raise ValueError(f"need at least one feature per bit: in_features={d} < bits={q}")
    s, c = divmod(d, q)
    lengths = [s + 1] * c + [s] * (q - c)
    return torch.repeat_interleave(torch.arange(q), torch.tensor(lengths))


class MeanCenter(nn.Module):
    """Subtract the mean of each pre-activation over the mini-batch (running mean at eval).

    Not in the paper: an optional fix (``center=True``) for bits that are constant over all
    images. The features entering the hash layer are non-negative (ReLU, then average pooling)
    and strongly correlated across images, so ``c = W x`` starts with a common component larger
    than its variation between images; the bit is then the same for every image, the triplet
    loss cannot see it (its gradient is 2(b⁻ − b⁺) = 0) and, once the piecewise threshold
    saturates it, it never moves. Centring ``c`` (mean-only batch normalisation, no scaling, no
    learned parameters) makes every bit split the batch from the first iteration.
    """

    def __init__(self, n: int, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(n))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        if self.training and c.shape[0] > 1:
            m = c.mean(0)
            with torch.no_grad():
                self.running_mean.lerp_(m.detach(), self.momentum)
            return c - m
        return c - self.running_mean


class DivideAndEncode(nn.Module):
    """Divide-and-encode module (§3.3, Fig. 2a): (N, d) features → (N, q) approximate codes in [0, 1].

    The d features are cut into q contiguous slices (50 each when d = 50q; uneven lengths by
    footnote 4 otherwise). Slice i goes through its own 50→1 fully connected layer
    ``c_i = W_i x^(i)`` (eq. 4, no bias as written), a sigmoid ``1 / (1 + exp(−β c))`` (eq. 5)
    and the piecewise threshold g with half-width ε (eq. 6, only when ``threshold=True``).

    ``epsilon`` is a buffer: the method shrinks it during training (×0.8 every 20,000
    iterations in the paper); ``threshold`` is applied in both train and eval mode (the paper's
    prediction network of Fig. 4 is the same network; codes are then quantised at 0.5).
    """

    def __init__(self, in_features: int, bits: int, beta: float = 1.0, epsilon: float = 0.5,
                 threshold: bool = True, bias: bool = False, center: bool = False):
        super().__init__()
        if bits < 1:
            raise ValueError(f"bits must be >= 1, got {bits}")
        if not (beta > 0):
            raise ValueError(f"beta must be > 0, got {beta}")
        self.in_features, self.bits, self.beta, self.threshold = in_features, bits, float(beta), threshold
        self.register_buffer("slice_id", _slice_ids(in_features, bits), persistent=False)
        self.register_buffer("epsilon", torch.tensor(float(epsilon)))
        lengths = torch.bincount(self.slice_id, minlength=bits).float()
        # each 50→1 layer initialised like nn.Linear(50, 1): U(−1/√fan_in, 1/√fan_in)
        bound = (1.0 / lengths.sqrt())[self.slice_id]
        self.weight = nn.Parameter((torch.rand(in_features) * 2 - 1) * bound)
        self.bias = nn.Parameter(torch.zeros(bits)) if bias else None
        self.center = MeanCenter(bits) if center else None

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """c = fc_i(x^(i)) for every slice i: (N, d) → (N, q)."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected features of shape (N, {self.in_features}), got {tuple(x.shape)}")
        src = x * self.weight  # its dtype, not x's, under autocast (bf16 x, fp32 weight)
        out = src.new_zeros(x.shape[0], self.bits).index_add_(1, self.slice_id, src)
        if self.bias is not None:
            out = out + self.bias
        if self.center is not None:
            out = self.center(out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.beta * self.pre_activation(x))
        if self.threshold:
            # off the CPU the buffer itself (float() would synchronise the host every forward)
            s = piecewise_threshold(s, float(self.epsilon) if s.device.type == "cpu" else self.epsilon.to(s.dtype))
        return s

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, bits={self.bits}, beta={self.beta}, "
                f"epsilon={float(self.epsilon):.4f}, threshold={self.threshold}, center={self.center is not None}")


class FCEncoder(nn.Module):
    """The "FC" alternative (Fig. 2b, §4.3): fully connected d → q, then the sigmoid of eq. 5.

    No piecewise threshold: Fig. 2(b) is "a fully-connected layer followed by a sigmoid layer".
    """

    def __init__(self, in_features: int, bits: int, beta: float = 1.0, center: bool = False):
        super().__init__()
        if not (beta > 0):
            raise ValueError(f"beta must be > 0, got {beta}")
        self.fc = nn.Linear(in_features, bits)
        self.center = MeanCenter(bits) if center else None
        self.beta = float(beta)
        self.bits = bits
        self.register_buffer("epsilon", torch.tensor(0.5))  # unused; uniform API with DivideAndEncode

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        c = self.fc(x)
        return self.center(c) if self.center is not None else c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.beta * self.pre_activation(x))


class FeatureProjection(nn.Module):
    """DNNH's last 1×1 convolution on pooled backbone features: (N, d) float → (N, 50·bits) ≥ 0.

    The pretrained regime's stand-in for :class:`NINSubNetwork`: ``ReLU(W x + b)`` with W of shape
    (50·bits, d). The paper's 1×1 convolution to ``50 q`` channels, its ReLU and the global average
    pool (conv → ReLU → pool) become pool → linear → ReLU here, because the backbone's features are
    already pooled: a 1×1 convolution commutes with average pooling, only the ReLU's position
    differs. Initialised as the NIN convolutions (He normal, fan-in; zero bias).
    """

    def __init__(self, in_features: int, bits: int):
        super().__init__()
        if not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features must be a positive int (the backbone's feature width), got {in_features!r}")
        if not isinstance(bits, int) or bits < 1:
            raise ValueError(f"bits must be a positive integer, got {bits!r}")
        self.in_features = in_features
        self.bits = bits
        self.out_features = FEATURES_PER_BIT * bits
        self.linear = nn.Linear(in_features, self.out_features)
        nn.init.kaiming_normal_(self.linear.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, in_features) pooled features → (N, 50·bits) non-negative features."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected pooled features of shape (N, {self.in_features}), got {tuple(x.shape)}")
        return torch.relu(self.linear(x))


VARIANTS = ("dem", "fc", "two-subnets")


class DNNHNet(nn.Module):
    """The DNNH network for one of the three variants: images → approximate codes (N, q) in [0, 1].

    variant
        ``"dem"``: one shared sub-network + divide-and-encode module (the proposed method).
        ``"fc"``: shared sub-network + :class:`FCEncoder` (Fig. 2b, Table 3).
        ``"two-subnets"``: a query sub-network P for I and a sub-network Q shared by I⁺ and I⁻
        (§4.4, Tables 4–5). Both feed one divide-and-encode module (the paper does not say
        whether the module is duplicated; we share it). At prediction, queries are encoded with
        P and database images with Q (asymmetric hashing).

    ``center=True`` adds :class:`MeanCenter` before the sigmoid (not in the paper).

    ``in_features`` (the pretrained regime): the network's input is pooled backbone features
    (N, in_features) and each sub-network is a :class:`FeatureProjection` (linear → 50·bits, ReLU)
    instead of the NIN stack; ``in_channels``, ``input_size`` and ``width`` are then unused. For
    ``"two-subnets"`` the query and the database sides get separate projections.

    Call ``net(x)`` (or ``net(x, role="database")``) for database/positive/negative codes and
    ``net(x, role="query")`` for query/anchor codes; both are the same for the shared variants.
    """

    def __init__(self, bits: int, variant: str = "dem", in_channels: int = 3, input_size: int = 32,
                 width: float = 1.0, beta: float = 1.0, epsilon: float = 0.5, threshold: bool = True,
                 center: bool = False, in_features: int | None = None):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.bits = bits
        self.in_features = in_features
        if in_features is None:
            def make():
                return NINSubNetwork(bits, in_channels, input_size, width)
        else:
            def make():
                return FeatureProjection(in_features, bits)
        self.subnet = make()
        self.query_subnet = make() if variant == "two-subnets" else None
        d = self.subnet.out_features
        if variant == "fc":
            self.head: nn.Module = FCEncoder(d, bits, beta, center=center)
        else:
            self.head = DivideAndEncode(d, bits, beta, epsilon, threshold, center=center)

    @property
    def asymmetric(self) -> bool:
        return self.query_subnet is not None

    def set_epsilon(self, epsilon: float) -> None:
        """Set ε of the piecewise threshold (no effect for the FC variant)."""
        self.head.epsilon.fill_(float(epsilon))

    def forward(self, x: torch.Tensor, role: str = "database") -> torch.Tensor:
        """x: (N, C, H, W) images (or (N, in_features) pooled features) → (N, bits) in [0, 1].
        role: "database" (Q) or "query" (P)."""
        if role not in ("database", "query"):
            raise ValueError(f"role must be 'database' or 'query', got {role!r}")
        net = self.query_subnet if (role == "query" and self.query_subnet is not None) else self.subnet
        return self.head(net(x))
