"""PCAH: sign of the top principal components."""
from __future__ import annotations

from ._base import BaseHasher
from ._linalg import pca

__all__ = ["PCAH"]


class PCAH(BaseHasher):
    """PCA hashing: bit k = ``sgn(v_k^T (x - mu))`` for the top-b principal directions ``v_k``.

    The standard baseline of Wang, Kumar & Chang, *Semi-supervised hashing for large-scale
    search*, TPAMI 2012 (and Gong & Lazebnik's ITQ paper, CVPR 2011, §2). Projections are zero-mean on the
    training data, so bits are roughly (not exactly) balanced.

    Parameters
    ----------
    n_bits : int, code length b (at most d).
    random_state : unused (PCAH is deterministic); kept for a uniform API.

    Attributes
    ----------
    mean_ : (d,) training mean;  components_ : (d, b);  explained_variance_ : (b,).
    """

    name = "pcah"

    def _validate_params(self, n, d):
        self._check_bits_le(min(n, d), "min(n_samples, n_features)")

    def _fit(self, X, y):
        self.mean_, self.components_, self.explained_variance_ = pca(X, self.n_bits)

    def _project(self, X):
        return (X - self.mean_) @ self.components_
