"""LSH: random-hyperplane locality-sensitive hashing."""
from __future__ import annotations

import numpy as np

from ._base import BaseHasher

__all__ = ["LSH"]


class LSH(BaseHasher):
    """Locality-sensitive hashing with random hyperplanes (sign random projections).

    Charikar, *Similarity estimation techniques from rounding algorithms*, STOC 2002 (ref. [2]
    of DNNH; Gionis, Indyk & Motwani, VLDB 1999 for LSH in general). Bit k is
    ``sgn(w_k^T (x - mu))`` with ``w_k ~ N(0, I_d)`` and ``mu`` the training mean (the usual
    centring of the hashing baselines' code; without it most bits are constant on non-negative
    features such as GIST).

    Parameters
    ----------
    n_bits : int, code length b.
    center : bool (default True), subtract the training mean before projecting.
    random_state : int, RandomState or None.

    Attributes
    ----------
    mean_ : (d,) training mean (zeros if ``center=False``).
    projections_ : (d, b) Gaussian projection matrix.
    """

    name = "lsh"

    def __init__(self, n_bits: int = 32, center: bool = True, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.center = center

    def _fit(self, X, y):
        rng = self._rng()
        self.mean_ = X.mean(axis=0) if self.center else np.zeros(X.shape[1])
        self.projections_ = rng.standard_normal((X.shape[1], self.n_bits))

    def _project(self, X):
        return (X - self.mean_) @ self.projections_
