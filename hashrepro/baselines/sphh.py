"""SphH: spherical hashing (Heo, Lee, He, Chang & Yoon, CVPR 2012)."""
from __future__ import annotations

import numpy as np

from ._base import BaseHasher, check_float, check_int, sqdist

__all__ = ["SphH", "spherical_hamming"]


def spherical_hamming(query_bits01, db_bits01, chunk_size: int = 1024) -> np.ndarray:
    """Spherical Hamming distance ``|q xor x| / |q and x|`` (Heo et al. 2012, eq. 4), ``(nq, ndb)``.

    A pair with no common 1-bit gets ``inf`` (the authors' code uses a large constant). Returns
    float64; pass it to :func:`hashrepro.metrics.mean_average_precision` as ``dist``.
    """
    q = np.asarray(query_bits01, dtype=np.float32)
    x = np.asarray(db_bits01, dtype=np.float32)
    xs = x.sum(1)
    out = np.empty((q.shape[0], x.shape[0]), dtype=np.float64)
    for s in range(0, q.shape[0], chunk_size):
        qc = q[s:s + chunk_size]
        common = qc @ x.T
        xor = qc.sum(1)[:, None] + xs[None, :] - 2 * common
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(common > 0, xor / np.maximum(common, 1), np.inf)
        out[s:s + chunk_size] = d
    return out


class SphH(BaseHasher):
    """Spherical hashing: bit k is 1 when ``x`` lies inside hypersphere (p_k, t_k).

    Heo et al., *Spherical hashing*, CVPR 2012, §3.2 (Algorithm 1), following the authors'
    MATLAB code (``trainSpH.m``): pivots start as means of 5 random training points; each
    iteration sets every radius ``t_k`` to the median distance to ``p_k`` (so each bit is 1 on
    exactly half the training points: balanced), computes the pairwise overlaps ``o_ij``, and
    moves the pivots by the forces ``f_ij = 1/2 (o_ij - n/4)/(n/4) (p_i - p_j)``, averaged over
    the b spheres, until ``mean |o_ij - n/4| <= eps_mean n/4`` and ``std(o_ij) <= eps_std n/4``.
    Retrieval should use the spherical Hamming distance (:func:`spherical_hamming`); plain
    Hamming ranking also works on the codes.

    Parameters
    ----------
    n_bits : int, number of spheres b (>= 2).
    max_train : int or None, subsample this many training points (20,000 as libhash).
    eps_mean, eps_std : float, convergence tolerances (0.10, 0.15 as the paper).
    max_iter : int, iteration cap (the authors' loop warns after 100).
    random_state : seeds the subsample and the pivot initialisation.

    Attributes
    ----------
    pivots_ (b, d), radii_ (b,), n_iter_ (int), converged_ (bool).
    """

    name = "sphh"
    balanced = True
    distance = "spherical_hamming"

    def __init__(self, n_bits: int = 32, max_train: int | None = 20000, eps_mean: float = 0.1,
                 eps_std: float = 0.15, max_iter: int = 100, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.max_train = max_train
        self.eps_mean = eps_mean
        self.eps_std = eps_std
        self.max_iter = max_iter

    def _validate_params(self, n, d):
        check_int(self.n_bits, "n_bits", low=2)
        check_int(self.max_train, "max_train", low=10, allow_none=True)
        check_float(self.eps_mean, "eps_mean", low=0.0, low_inclusive=False)
        check_float(self.eps_std, "eps_std", low=0.0, low_inclusive=False)
        check_int(self.max_iter, "max_iter", low=1)

    @staticmethod
    def _statistics(X, pivots):
        n = X.shape[0]
        dist = sqdist(pivots, X)  # (b, n) squared; the median is the same ranking
        k = n // 2 - 1  # MATLAB sort_dist(:, N/2), 1-based
        radii2 = np.partition(dist, k, axis=1)[:, k]
        inside = (dist <= radii2[:, None]).astype(np.float64)
        O2 = inside @ inside.T
        iu = np.triu_indices(pivots.shape[0], 1)
        o = O2[iu]
        avg = np.abs(o - n / 4).mean()
        std = o.std()
        return O2, radii2, avg, std

    def _fit(self, X, y):
        rng = self._rng()
        n = X.shape[0]
        if self.max_train is not None and n > self.max_train:
            X = X[rng.choice(n, self.max_train, replace=False)]
            n = X.shape[0]
        b = self.n_bits
        pivots = np.stack([X[rng.permutation(n)[:5]].mean(0) for _ in range(b)])
        O2, radii2, avg, std = self._statistics(X, pivots)
        self.converged_ = False
        it = 0
        for it in range(1, self.max_iter + 1):
            coef = 0.5 * (O2 - n / 4) / (n / 4)  # (b, b), symmetric
            np.fill_diagonal(coef, 0.0)
            # force on i: sum_j coef_ij (p_i - p_j) / b
            forces = (coef.sum(1)[:, None] * pivots - coef @ pivots) / b
            pivots = pivots + forces
            O2, radii2, avg, std = self._statistics(X, pivots)
            if avg <= self.eps_mean * n / 4 and std <= self.eps_std * n / 4:
                self.converged_ = True
                break
        self.n_iter_ = it
        self.pivots_ = pivots
        self.radii_ = np.sqrt(radii2)

    def _project(self, X):
        # positive inside the sphere; ties (distance == radius) count as inside, as the code
        d = np.sqrt(sqdist(X, self.pivots_))
        r = self.radii_[None, :]
        return np.where(d <= r, np.maximum(r - d, 1e-12), r - d)
