"""MCH's agent: the state of eq. 3 and the policy network of §4.2.

The policy is "a multi-layer perceptron with a Softmax layer in the end ... five fully-connected
layers ... ReLU ... Batch Normalization" (MCH §4.2). Input: the state
``h_i = [f(x_i); f(x_i*); b_i; b_i*]`` (eq. 3), of size ``2·feat_dim + 2Q``; output: the
distribution ``π_θ(a | h)`` over the two actions. Action convention (eq. 6 and the text around
it): ``a = 1`` keeps the crop's code ``b_i*``, ``a = 0`` discards it (eq. 4 prints the opposite
labels, a typo: with it eq. 6 would reward discarding).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["PolicyNet", "build_state", "KEEP", "DISCARD"]

KEEP = 1
DISCARD = 0


def build_state(f_whole: torch.Tensor, f_crop: torch.Tensor, b_whole: torch.Tensor,
                b_crop: torch.Tensor) -> torch.Tensor:
    """State vector of eq. 3: ``h = [[f(x); f(x*)]; [b; b*]]``.

    f_whole, f_crop : (N, D) features; b_whole, b_crop : (N, Q) codes in {-1, +1}.
    Returns (N, 2D + 2Q) float.
    """
    if f_whole.shape != f_crop.shape or b_whole.shape != b_crop.shape or f_whole.shape[0] != b_whole.shape[0]:
        raise ValueError(f"state parts disagree: f {tuple(f_whole.shape)}/{tuple(f_crop.shape)}, "
                         f"b {tuple(b_whole.shape)}/{tuple(b_crop.shape)}")
    return torch.cat([f_whole, f_crop, b_whole.to(f_whole.dtype), b_crop.to(f_whole.dtype)], dim=1)


class PolicyNet(nn.Module):
    """Five fully connected layers; BN + ReLU after the first four; softmax over 2 actions.

    Parameters
    ----------
    state_dim : size of the state (2·feat_dim + 2Q).
    hidden : the four hidden widths (five FC layers in all).
    """

    def __init__(self, state_dim: int, hidden: tuple[int, int, int, int] = (512, 256, 128, 64)):
        super().__init__()
        if state_dim < 1:
            raise ValueError(f"state_dim must be >= 1, got {state_dim}")
        if len(hidden) != 4 or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden must be 4 positive widths (5 FC layers in all), got {hidden}")
        layers: list[nn.Module] = []
        c = state_dim
        for h in hidden:
            layers += [nn.Linear(c, int(h)), nn.BatchNorm1d(int(h)), nn.ReLU(inplace=True)]
            c = int(h)
        layers.append(nn.Linear(c, 2))
        self.net = nn.Sequential(*layers)
        self.state_dim = state_dim

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h (N, state_dim) -> logits (N, 2)."""
        if h.dim() != 2 or h.shape[1] != self.state_dim:
            raise ValueError(f"state must have shape (N, {self.state_dim}), got {tuple(h.shape)}")
        return self.net(h)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (N, state_dim) -> π(a | h) (N, 2), rows sum to 1 (softmax); column 1 = keep."""
        return torch.softmax(self.logits(h), dim=1)

    def keep_probability(self, h: torch.Tensor) -> torch.Tensor:
        """(N, state_dim) -> P(keep) (N,)."""
        return self.forward(h)[:, KEEP]
