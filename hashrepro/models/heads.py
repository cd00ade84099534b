"""Trainable heads that sit on cached backbone features (the CPU schedule of the pretrained regime).

With an ImageNet backbone frozen, its pooled features are computed once
(:func:`hashrepro.features.dataset_features`) and a chapter trains only what the paper puts after
the backbone. :class:`FeatureMLP` plays the part of DDH's full6/full7 (CNN-F, Table 1) on top of
the pooled EfficientNet-Lite0 features; a hash layer then follows (e.g. :class:`hashrepro.models.cnnf.DDHNet`).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeatureMLP"]


class FeatureMLP(nn.Module):
    """Fully connected layers with ReLU on pre-computed features: (N, in_dim) → (N, fc_dim).

    hidden : widths of the layers, e.g. ``(1024,)``; ``()`` is the identity (the hash layer then
        sits directly on the backbone features). ``fc_dim`` is the output width (what
        :class:`~hashrepro.models.cnnf.DDHNet` reads).
    dropout : dropout before every layer (training only).
    """

    def __init__(self, in_dim: int, hidden: tuple = (1024,), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        d = int(in_dim)
        for h in hidden:
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(d, int(h)), nn.ReLU(inplace=True)]
            d = int(h)
        self.net = nn.Sequential(*layers)
        self.fc_dim = d
        self.in_dim = int(in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, in_dim) float -> (N, fc_dim)
        return self.net(x)
