"""MCH's base models as heads on cached ImageNet features (the pretrained regime of the MCH chapter).

With the backbone frozen and the pooled feature of every crop cached
(:func:`hashrepro.crop_features.cached_crop_features`), a base model of MCH Table 1 is the part of
the network after the backbone. :class:`FeatureBackbone` takes the backbone's place in
:class:`hashrepro.models.small_cnn.HashModel` (which adds the hash layer and the Table-1
relaxation), so the deep base models (HashNet, ADSH, DCH, MMHH) train the same code on features
instead of images; :class:`KSHOnFeatures` wraps KSH's kernel map (:class:`KSHModel`, the shallow
base model of both regimes) the same way.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .heads import FeatureMLP

__all__ = ["FeatureBackbone", "TunedTail", "TunedFeatureBackbone", "KSHModel", "KSHOnFeatures"]


class FeatureBackbone(nn.Module):
    """Pre-computed features → standardised features (→ optional FC + ReLU layers): (N, D) → (N, feat_dim).

    ``mean`` / ``std`` (D,) are buffers (the training images' statistics, so that one learning rate
    suits every feature); ``hidden`` = ``()`` puts the hash layer directly on the standardised
    backbone features (the choice the DDH chapter made on a validation split). ``feat_dim`` is the
    output width (what :class:`~hashrepro.models.small_cnn.HashModel` reads).
    """

    def __init__(self, in_dim: int, mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
                 hidden: tuple = ()):
        super().__init__()
        d = int(in_dim)
        if d < 1:
            raise ValueError(f"in_dim must be >= 1, got {in_dim}")
        self.register_buffer("mean", torch.zeros(d) if mean is None else torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.ones(d) if std is None else torch.as_tensor(std, dtype=torch.float32))
        if self.mean.shape != (d,) or self.std.shape != (d,):
            raise ValueError(f"mean and std must have shape ({d},), got {tuple(self.mean.shape)}, {tuple(self.std.shape)}")
        self.mlp = FeatureMLP(d, tuple(hidden))
        self.in_dim = d
        self.feat_dim = self.mlp.fc_dim

    @classmethod
    def fit(cls, feats: torch.Tensor, hidden: tuple = (), eps: float = 1e-6) -> "FeatureBackbone":
        """Standardisation fitted on ``feats`` (N, D) (the training images' whole-image features)."""
        feats = torch.as_tensor(feats, dtype=torch.float32)
        if feats.dim() != 2 or len(feats) < 2:
            raise ValueError(f"feats must be (N, D) with N >= 2, got {tuple(feats.shape)}")
        return cls(feats.shape[1], feats.mean(0), feats.std(0).clamp_min(eps), hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) float -> (N, feat_dim)
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected features (N, {self.in_dim}), got {tuple(x.shape)}")
        return self.mlp((x - self.mean) / self.std)


class TunedTail(nn.Module):
    """The last blocks of the ImageNet EfficientNet-Lite0, fine-tuned on cached maps (MCH's
    ``finetune="last_block"``): flattened maps before block ``start`` (N, C·h·w) → blocks
    ``start``… → head conv + BN + ReLU6 → global average pool → (N, 1280).

    The layers are copies of ``net``'s (their ImageNet weights are the starting point). Batch norm
    keeps its ImageNet statistics (eval mode even while training: batches of 64 crops of 4 × 4
    maps are too small to re-estimate them); its affine parameters train.
    """

    def __init__(self, net: nn.Module, start: int, map_shape: tuple):
        super().__init__()
        import copy

        self.start = int(start)
        self.map_shape = tuple(int(v) for v in map_shape)
        self.blocks = nn.ModuleList(copy.deepcopy(list(net._blocks[self.start:])))
        self.conv_head = copy.deepcopy(net._conv_head)
        self.bn = copy.deepcopy(net._bn1)
        self.feat_dim = int(self.bn.num_features)

    def train(self, mode: bool = True) -> "TunedTail":
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C·h·w) float -> (N, feat_dim)
        x = x.view(x.shape[0], *self.map_shape)
        for block in self.blocks:
            x = block(x)
        return nn.functional.relu6(self.bn(self.conv_head(x))).mean(dim=(2, 3))


class TunedFeatureBackbone(nn.Module):
    """:class:`TunedTail` then :class:`FeatureBackbone` (the standardisation of the frozen pooled
    features, fitted on the training images): (N, C·h·w) → (N, feat_dim). What a base model trains
    with ``finetune="last_block"``; afterwards every cached crop's maps go through ``tail`` once and
    the hasher codes the re-encoded pooled features with ``head`` (the same numbers)."""

    def __init__(self, tail: TunedTail, head: FeatureBackbone):
        super().__init__()
        self.tail, self.head = tail, head
        self.feat_dim = head.feat_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.tail(x))


class KSHModel(nn.Module):
    """KSH's hash function on backbone features (Liu et al. 2012; KSH_demo.m):
    ``z = Aᵀ k̄(f)``, ``k(f, a) = exp(-||f - a||² / (2 σ_k))`` over ``m`` random anchors, kernel
    columns centred with the training means; ``σ_k`` = mean squared feature–anchor distance.
    Relaxation (MCH Table 1): sigmoid smoothing ``φ(z) = 2/(1 + e^{-z}) - 1``.

    anchors : (m, D) anchor features; n_bits : Q; train_feats : (N, D) training features (for
    ``σ_k`` and the kernel means). ``A`` (m, Q) is the learned projection.
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


class KSHOnFeatures(nn.Module):
    """KSH on pre-computed features: ``features_and_codes(x) = (f, ksh(f))`` with ``f = backbone(x)``.

    ``ksh`` maps (N, feat_dim) → pre-activations (N, Q) (:class:`KSHModel`)."""

    def __init__(self, backbone: nn.Module, ksh: nn.Module):
        super().__init__()
        self.backbone, self.ksh = backbone, ksh

    def features_and_codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        return f, self.ksh(f)
