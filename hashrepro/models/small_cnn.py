"""A small CNN backbone and a hash head for the 28/32-pixel tiles of the ``mosaic`` data sets.

MCH (§5.2.2) fine-tunes an ImageNet-pretrained AlexNet (conv1–fc7) and a hash layer. There are no
ImageNet weights offline and AlexNet is far too heavy for a 2-core CPU, so the MCH chapter uses
this small network instead, pretrained on the training split as a multi-label classifier (the
stand-in for "pretrained on ImageNet") and then fine-tuned end to end with each base model's
loss. The deviation is stated in the chapter.

Shapes: images (N, C, H, W) float in [0, 1]; features (N, feat_dim); relaxed codes (N, Q).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SmallCNN", "HashModel", "RELAXATIONS"]

RELAXATIONS = ("tanh", "sigmoid", "continuous")


class SmallCNN(nn.Module):
    """``[conv3×3 → BN → ReLU → maxpool2] × len(widths)`` → global average pool → FC → ReLU.

    The final ``feat_dim`` vector plays the role of AlexNet's fc7 output ``f(x)`` in MCH's state
    (eq. 3). Works for any input of at least ``2**len(widths)`` pixels per side.

    Parameters
    ----------
    in_channels : 1 (grey MNIST tiles) or 3 (CIFAR-10 tiles).
    widths : channels of the conv blocks.
    feat_dim : size of the feature vector.
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128), feat_dim: int = 256):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        if not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty tuple of positive ints, got {widths}")
        if feat_dim < 1:
            raise ValueError(f"feat_dim must be >= 1, got {feat_dim}")
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [nn.Conv2d(c, int(w), 3, padding=1, bias=False), nn.BatchNorm2d(int(w)),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = int(w)
        self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c, feat_dim), nn.ReLU(inplace=True))
        self.in_channels = in_channels
        self.feat_dim = feat_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> features (N, feat_dim)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.fc(self.pool(self.conv(x)).flatten(1))


class HashModel(nn.Module):
    """Backbone + hash layer ``z = W f(x) + c`` + a relaxation of ``sign(z)`` (MCH Table 1).

    Relaxations: ``"tanh"`` — ``tanh(β z)`` with HashNet's continuation scale ``β`` (attribute
    ``beta``, set by the training loop); ``"sigmoid"`` — KSH's ``φ(z) = 2/(1+e^{-z}) - 1``;
    ``"continuous"`` — ``tanh(z)`` (ADSH, DCH, MMHH: a continuous ``u`` with ``b = sign(u)``).
    The binary code is always ``sign(z)`` (threshold 0).

    An optional classifier ``cls`` (feat_dim → n_classes) is used only for backbone pretraining.
    """

    def __init__(self, backbone: SmallCNN, n_bits: int, relaxation: str = "tanh", n_classes: int | None = None):
        super().__init__()
        if relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {RELAXATIONS}, got {relaxation!r}")
        if n_bits < 1:
            raise ValueError(f"n_bits must be >= 1, got {n_bits}")
        self.backbone = backbone
        self.hash = nn.Linear(backbone.feat_dim, n_bits)
        self.relaxation = relaxation
        self.n_bits = n_bits
        self.beta = 1.0
        self.cls = nn.Linear(backbone.feat_dim, n_classes) if n_classes else None

    def relax(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-activations z (N, Q) -> relaxed codes (N, Q) in (-1, 1)."""
        if self.relaxation == "sigmoid":
            return 2.0 * torch.sigmoid(z) - 1.0
        if self.relaxation == "tanh":
            return torch.tanh(self.beta * z)
        return torch.tanh(z)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """f(x): (N, C, H, W) -> (N, feat_dim)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> relaxed codes u (N, Q)."""
        return self.relax(self.hash(self.backbone(x)))

    def features_and_codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> (f(x) (N, feat_dim), pre-activation z (N, Q)); ``sign(z)`` is the code."""
        f = self.backbone(x)
        return f, self.hash(f)
