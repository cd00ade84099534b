"""SH: spectral hashing with analytic eigenfunctions (Weiss, Torralba & Fergus, NIPS 2008)."""
from __future__ import annotations

import numpy as np

from ._base import BaseHasher
from ._linalg import pca

__all__ = ["SH"]


class SH(BaseHasher):
    """Spectral hashing.

    Weiss, Torralba & Fergus, *Spectral hashing*, NIPS 2008, §3-4, following the authors'
    ``trainSH.m`` / ``compressSH.m``:

    1. PCA to ``p = min(b, d)`` directions (``X W``; the code does not centre, the box below
       absorbs the offset).
    2. Fit a box ``[mn_j, mx_j]`` per PCA direction (the data's min and max, ±eps).
    3. Enumerate the 1-D eigenfunctions ``Phi_k(x_j) = sin(pi/2 + k pi (x_j - mn_j)/(mx_j - mn_j))``
       with eigenvalue ``-(k pi / (mx_j - mn_j))^2``, ``k = 1 .. ceil((b+1) R_j / max R)``; keep
       the b with the smallest ``|eigenvalue|`` (skipping the constant mode).
    4. Bit = ``Phi(x) > 0`` (the paper's eq. 7 thresholded at zero).

    Parameters
    ----------
    n_bits : int, code length b.
    random_state : unused (deterministic).

    Attributes
    ----------
    components_ (d, p), mn_ (p,), mx_ (p,), modes_ (b, p) int: mode of each bit on each direction
    (one non-zero per row).
    """

    name = "sh"

    def _validate_params(self, n, d):
        pass

    def _fit(self, X, y):
        b = self.n_bits
        npca = min(b, X.shape[1])
        _, W, _ = pca(X, npca)
        Z = X @ W
        eps = np.finfo(float).eps
        mn = Z.min(axis=0) - eps
        mx = Z.max(axis=0) + eps
        R = mx - mn
        max_mode = np.ceil((b + 1) * R / R.max()).astype(int)
        n_modes = int(max_mode.sum() - max_mode.size + 1)
        modes = np.ones((n_modes, npca), dtype=np.int64)
        m = 1
        for i in range(npca):
            modes[m:m + max_mode[i] - 1, i] = np.arange(2, max_mode[i] + 1)
            m += max_mode[i] - 1
        modes -= 1
        omega0 = np.pi / R
        omegas = modes * omega0[None, :]
        eigval = -(omegas ** 2).sum(axis=1)
        order = np.argsort(-eigval, kind="stable")
        self.modes_ = modes[order[1:b + 1]]
        if self.modes_.shape[0] < b:
            raise ValueError(f"SH: only {self.modes_.shape[0]} eigenfunctions available for n_bits={b}")
        self.components_, self.mn_, self.mx_ = W, mn, mx

    def _project(self, X):
        Z = X @ self.components_ - self.mn_
        omega0 = np.pi / (self.mx_ - self.mn_)
        omegas = self.modes_ * omega0[None, :]  # (b, p)
        U = np.empty((X.shape[0], self.modes_.shape[0]))
        for i in range(self.modes_.shape[0]):
            U[:, i] = np.prod(np.sin(Z * omegas[i] + np.pi / 2), axis=1)
        return U
