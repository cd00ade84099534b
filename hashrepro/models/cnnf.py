"""CNN-F-like backbone (DDH Table 1) and the DDH hash layer (DDH eq. 4, eq. 11).

The DDH paper (Song et al. 2017, §2.2, Table 1) uses CNN-F (Chatfield et al. 2014) on
224×224 ImageNet-sized inputs:

============  ==========================================================
layer         Table 1 (224×224 input)
============  ==========================================================
conv1         64 × 11×11, stride 4, pad 0, LRN, pool 2×2
conv2         256 × 5×5, stride 1, pad 2, LRN, pool 2×2
conv3         256 × 3×3, stride 1, pad 1
conv4         256 × 3×3, stride 1, pad 1
conv5         256 × 3×3, stride 1, pad 1, pool 2×2
full6         4096
full7         4096
hash layer    L  (z = Wᵀ φ(x) + c, b = sgn(z))
============  ==========================================================

:class:`CNNF` keeps the seven-layer layout (five convolutions with LRN after the first two,
three 2×2 max-pools, two fully connected layers, ReLU everywhere) and reduces it for small
inputs (32×32 CIFAR-10, 28×28 MNIST), because an 11×11 stride-4 first layer would turn a 32×32
image into a 6×6 map and the 4096-wide layers would not train on a 2-core CPU:

* ``input_size <= 64``: conv1 is 5×5 stride 1 pad 2 (instead of 11×11 stride 4), so the three
  pools give 32→16→8→4 (28→14→7→3); all other kernel sizes, strides, paddings, LRN and pool
  positions are as in Table 1.
* widths are ``width`` × (1, 4, 4, 4, 4) for conv1–conv5 (Table 1: width = 64) and ``fc_dim``
  for full6/full7 (Table 1: 4096). The defaults used by :mod:`hashrepro.methods.ddh` at
  ``scale="default"`` are much narrower (see its ``Config``); ``CNNF.paper()`` builds the
  Table 1 sizes.
* ``input_size > 64`` uses the Table 1 first layer (11×11 stride 4 pad 0).
* dropout after full6/full7 (as in CNN-F) is configurable (default 0: the CPU schedules are
  short).

No ImageNet weights are available on these machines; :func:`load_imagenet_cnnf` says so.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["CNNF", "LRN", "HashLayer", "DDHNet", "sgn", "load_imagenet_cnnf"]


class LRN(nn.Module):
    """Local response normalisation across channels, same formula as ``nn.LocalResponseNorm``:

    b_c = a_c / (k + α/n · Σ_{c' ∈ window(c)} a_{c'}²)^β,  window = c − n//2 … c + (n−1)//2.

    The channel-window sum is one 1×1 convolution with a fixed banded (C, C) matrix, about 2.5×
    faster on the CPU than ``nn.LocalResponseNorm`` (which pads and average-pools in 3-D).
    Input/output (N, C, H, W).
    """

    def __init__(self, channels: int, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        idx = torch.arange(channels)
        lo = idx[:, None] - size // 2
        hi = idx[:, None] + (size - 1) // 2
        band = ((idx[None, :] >= lo) & (idx[None, :] <= hi)).float()
        self.register_buffer("band", band[:, :, None, None], persistent=False)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        div = nn.functional.conv2d(x * x, self.band).mul(self.alpha / self.size).add(self.k).pow(self.beta)
        return x / div


def sgn(z: torch.Tensor) -> torch.Tensor:
    """DDH eq. 4: b = +1 if u >= 0 else -1 (note: 0 maps to +1, unlike ``torch.sign``).

    z : (N, L) float → (N, L) float in {-1, +1}.
    """
    return torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


class CNNF(nn.Module):
    """CNN-F-like feature extractor φ(x; θ) (DDH Table 1, reduced for small images).

    Parameters
    ----------
    in_channels : 1 or 3.
    input_size : image side (32 for CIFAR-10, 28 for MNIST, 224 for the paper's inputs).
    width : conv1 channels; conv2–conv5 get 4 × width (Table 1: 64 → 64, 256, 256, 256, 256).
    fc_dim : width of full6 and full7 (Table 1: 4096).
    lrn : local response normalisation after conv1 and conv2 (Table 1).
    dropout : dropout probability after full6 and full7.

    Input (N, C, H, W) float, output φ(x) (N, fc_dim) (after the full7 ReLU).
    """

    def __init__(self, in_channels: int = 3, input_size: int = 32, width: int = 64, fc_dim: int = 4096,
                 lrn: bool = True, dropout: float = 0.0):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        if input_size < 16:
            raise ValueError(f"input_size must be >= 16 (three 2x2 pools), got {input_size}")
        if width < 1 or fc_dim < 1:
            raise ValueError(f"width and fc_dim must be positive, got width={width}, fc_dim={fc_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.input_size, self.width, self.fc_dim = in_channels, input_size, width, fc_dim
        w1, w = width, 4 * width
        small = input_size <= 64
        conv1 = nn.Conv2d(in_channels, w1, 5, stride=1, padding=2) if small else nn.Conv2d(in_channels, w1, 11, stride=4)

        def norm(c):
            return LRN(c) if lrn else nn.Identity()

        self.features = nn.Sequential(
            conv1, nn.ReLU(inplace=True), norm(w1), nn.MaxPool2d(2),
            nn.Conv2d(w1, w, 5, padding=2), nn.ReLU(inplace=True), norm(w), nn.MaxPool2d(2),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, in_channels, input_size, input_size)).numel()
        self.n_flat = n_flat
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_flat, fc_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),   # full6
            nn.Linear(fc_dim, fc_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),   # full7
        )

        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (Kaiming) normal initialisation for the ReLU layers, zero biases. PyTorch's default
        (uniform, a = √5) shrinks activations layer by layer, and a randomly initialised CNN-F
        then maps every image to nearly the same φ."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @classmethod
    def paper(cls, in_channels: int = 3, input_size: int = 224) -> "CNNF":
        """The Table 1 sizes (64/256 channels, 4096-wide full6/full7)."""
        return cls(in_channels=in_channels, input_size=input_size, width=64, fc_dim=4096)

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """conv5 output after its pool, flattened: (N, n_flat)."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.fc(self.features(x))


class HashLayer(nn.Linear):
    """DDH eq. 11: z = Wᵀ φ(x) + c with W ∈ R^{D×L}, c ∈ R^L. (N, D) → (N, L) real-valued z."""

    def __init__(self, in_features: int, n_bits: int):
        if n_bits < 1:
            raise ValueError(f"n_bits must be >= 1, got {n_bits}")
        super().__init__(in_features, n_bits)

    def regulariser(self) -> torch.Tensor:
        """‖W‖²_F + ‖c‖² (the λ2 term of eq. 12, before the factor λ2/2)."""
        return self.weight.pow(2).sum() + self.bias.pow(2).sum()


class DDHNet(nn.Module):
    """Backbone + hash layer. ``forward`` returns z (N, L); ``codes`` returns b = sgn(z) (eq. 4).

    backbone : any module mapping images (N, C, H, W) → (N, D) with attribute ``fc_dim`` = D
        (e.g. :class:`CNNF`).
    phi_norm : standardise φ (BatchNorm1d without affine parameters) before the hash layer.
    """

    def __init__(self, backbone: nn.Module, n_bits: int, phi_norm: bool = True):
        super().__init__()
        self.backbone = backbone
        # standardise φ per feature (BatchNorm without affine parameters: batch statistics in
        # training, running statistics at test time). Not in the paper: ImageNet CNN-F has
        # well-scaled full7 activations; a randomly initialised or self-supervised backbone does
        # not, and the quartic pair term of eq. 10 then diverges.
        self.phi_norm = nn.BatchNorm1d(int(backbone.fc_dim), affine=False) if phi_norm else nn.Identity()
        self.hash = HashLayer(int(backbone.fc_dim), n_bits)
        self.n_bits = n_bits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x) after the optional standardisation, (N, D)."""
        return self.phi_norm(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hash(self.features(x))

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """b = sgn(z) in {-1, +1}, shape (N, L) (DDH §2.5, out-of-sample extension)."""
        return sgn(self.forward(x))


def load_imagenet_cnnf(*args, **kwargs):
    """ImageNet-pretrained CNN-F weights (the paper's initialisation, §2.4).

    Always raises: the MatConvNet ``imagenet-vgg-f`` weights the paper used are not bundled
    and cannot be downloaded on these offline machines. The chapter initialises the backbone
    from the self-supervised contrastive model instead (see :mod:`hashrepro.models.contrastive`).
    """
    raise RuntimeError(
        "ImageNet-pretrained CNN-F weights (MatConvNet imagenet-vgg-f, used by DDH §2.4) are not "
        "available offline on this machine; use init='contrastive' (self-supervised on the "
        "training images) or init='random'.")
