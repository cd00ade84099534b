"""CNNH*'s stage-2 network (Xia et al., AAAI 2014, as DNNH §4.1 re-implemented it): DNNH's NIN
sub-network with its last 1×1 convolution replaced by a 1×1 convolution to ``bits`` channels and a
global average pool; on a frozen backbone's pooled features, a linear layer. The recipe is
:mod:`hashrepro.methods.cnnh`."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["CNNHNet"]


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
        from .nin import NINSubNetwork

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
