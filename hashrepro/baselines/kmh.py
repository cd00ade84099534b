"""KMH: k-means hashing, an affinity-preserving quantiser (He, Wen & Sun, CVPR 2013)."""
from __future__ import annotations

import numpy as np
from scipy import optimize

from ._base import BaseHasher, check_float, check_int, sqdist
from ._linalg import pca

__all__ = ["KMH"]


def _lut(b: int) -> np.ndarray:
    """(2^b, b) table of the binary codes of 0 .. 2^b-1, most significant bit first."""
    idx = np.arange(2 ** b)
    return ((idx[:, None] >> np.arange(b - 1, -1, -1)[None, :]) & 1).astype(np.uint8)


def _balanced_partition(eigvals: np.ndarray, M: int) -> np.ndarray:
    """Order of the PCA dimensions so that M consecutive groups have balanced log-variance.

    The greedy rule of the authors' ``balanced_partition.m`` (from OPQ's parametric solution):
    walk the dimensions by decreasing variance and give each to the non-full subspace with the
    smallest running sum of ``log(eigval)`` (shifted positive).
    """
    D = eigvals.size
    per = D // M
    f = np.log(eigvals + 1e-20)
    f = f - f.min() + 1
    tables = [[] for _ in range(M)]
    sums = np.zeros(M)
    cur = 0
    for d in range(D):
        tables[cur].append(d)
        sums[cur] += f[d]
        if len(tables[cur]) == per:
            sums[cur] = np.inf
        if d < D - 1:
            cur = int(np.argmin(sums))
    return np.concatenate([np.asarray(t, dtype=int) for t in tables])


class KMH(BaseHasher):
    """K-means hashing in a product space.

    He, Wen & Sun, *K-means hashing: an affinity-preserving quantization method for learning
    binary compact codes*, CVPR 2013, following the authors' MATLAB demo (``trainKMH.m``,
    ``affinity_preserving_KM.m``, ``eval_one_center.m``):

    * Centre and PCA-rotate the data (all dimensions), reorder the principal directions into
      ``M = b / bits_per_subspace`` subspaces of equal size with balanced variance (OPQ's
      parametric solution).
    * In each subspace learn ``k = 2^bits_per_subspace`` codewords ``c_i`` whose index ``i`` is
      the code, minimising (paper eq. 8) ``E = E_quan + 2 lambda E_aff`` with
      ``E_quan = 1/n sum_x ||x - c_i(x)||^2`` and
      ``E_aff = sum_ij n_i n_j / n^2 (||c_i - c_j|| - s sqrt(h(i, j)) )^2`` (``h`` = Hamming
      distance of the indices, ``s`` = 2 x the PCAH scale), alternating the assignment step and
      an update of the codewords (quasi-Newton).
    * Initialise with PCAH: codewords on the hypercube ``+-scale`` of the subspace's top
      ``bits_per_subspace`` principal directions.
    * Encode: nearest codeword per subspace, concatenate the indices' bits.

    Differences from the authors' code: the update step minimises the same cost jointly over
    all codewords with scipy's L-BFGS (analytic gradient, 50 steps) instead of updating each
    codeword in turn with MATLAB ``fminunc`` (same fixed points, far fewer solver calls); when the dimension is not divisible by ``M`` the
    lowest-variance principal directions are dropped (e.g. 512 -> 510 for 24 bits); ``n_bits``
    not divisible by ``bits_per_subspace`` gives the last subspace fewer bits.

    Parameters
    ----------
    n_bits : int, code length b.
    bits_per_subspace : int (4, the paper's choice).
    lam : float, lambda of eq. 8 (10 in the paper; libhash uses 1000).
    n_iter : int, alternations (50).
    max_train : int or None, subsample of training points (speed).
    random_state : seeds the subsample.

    Attributes
    ----------
    mean_ (d,), rotation_ (d, D'), subspaces_ list of index arrays into D', codewords_ list of
    (2^b_m, d_m) arrays, bits_ list of ints.
    """

    name = "kmh"

    def __init__(self, n_bits: int = 32, bits_per_subspace: int = 4, lam: float = 10.0,
                 n_iter: int = 50, max_train: int | None = 10000, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.bits_per_subspace = bits_per_subspace
        self.lam = lam
        self.n_iter = n_iter
        self.max_train = max_train

    def _validate_params(self, n, d):
        check_int(self.bits_per_subspace, "bits_per_subspace", low=1, high=8)
        check_float(self.lam, "lam", low=0.0)
        check_int(self.n_iter, "n_iter", low=0)
        check_int(self.max_train, "max_train", low=16, allow_none=True)
        M = -(-self.n_bits // self.bits_per_subspace)
        if d < self.n_bits:
            raise ValueError(f"KMH: n_bits={self.n_bits} needs at least n_bits input dimensions, got {d}")
        if n < 2 ** self.bits_per_subspace:
            raise ValueError(f"KMH: need at least {2 ** self.bits_per_subspace} training points, got {n}")
        del M

    # -- one subspace ---------------------------------------------------------------------
    @staticmethod
    def _objective(c_flat, k, dd, sum_x, n_table, n, dh, lam):
        """``E_quan + lam * sum_{i != j} w_ij err_ij^2`` over all codewords, and its gradient.

        Its gradient in each codeword equals that of the authors' per-codeword cost
        ``E_quan_j + 2 lam n_j sum_i n_i err_ij^2 / n^2`` (``eval_one_center.m``)."""
        C = c_flat.reshape(k, dd)
        e_quan = ((-2 * sum_x + n_table[:, None] * C) * C).sum() / n
        diff = C[:, None, :] - C[None, :, :]            # (k, k, dd)
        euc = np.sqrt((diff ** 2).sum(-1))               # (k, k)
        w = n_table[:, None] * n_table[None, :] / n / n
        err = euc - dh
        np.fill_diagonal(err, 0.0)
        e_aff = (w * err ** 2).sum()
        g_quan = (-2 * sum_x + 2 * n_table[:, None] * C) / n
        with np.errstate(divide="ignore", invalid="ignore"):
            coef = np.where(euc > 0, w * err / np.where(euc > 0, euc, 1.0), 0.0)
        # d/dC_a sum_ij w_ij err_ij^2 = 4 sum_j w_aj err_aj (C_a - C_j)/euc_aj   (w, err symmetric)
        g_aff = 4 * (coef[:, :, None] * diff).sum(1)
        return e_quan + lam * e_aff, (g_quan + lam * g_aff).ravel()

    def _train_subspace(self, Xs: np.ndarray, bsub: int):
        n, dd = Xs.shape
        k = 2 ** bsub
        lut = _lut(bsub)
        # local PCA (the subspace is PCA-aligned already up to ordering) and PCAH initialisation
        mu, W, _ = pca(Xs, dd)
        Z = (Xs - mu) @ W
        codes = np.where(Z[:, :bsub] > 0, 1.0, -1.0)
        scale = float((Z[:, :bsub] * codes).sum() / (codes ** 2).sum())
        cproj = np.zeros((k, dd))
        cproj[:, :bsub] = (2.0 * lut - 1.0) * scale
        centers = cproj  # work in the local PCA frame
        h = (lut[:, None, :] != lut[None, :, :]).sum(-1)
        dh = 2 * scale * np.sqrt(h)  # distances between the +-scale hypercube vertices
        for _ in range(self.n_iter):
            idx = np.argmin(sqdist(Z, centers), axis=1)
            n_table = np.bincount(idx, minlength=k).astype(np.float64)
            sum_x = np.zeros((k, dd))
            np.add.at(sum_x, idx, Z)
            res = optimize.minimize(self._objective, centers.ravel(), jac=True, method="L-BFGS-B",
                                    args=(k, dd, sum_x, n_table, n, dh, self.lam),
                                    options={"maxiter": 50})
            centers = res.x.reshape(k, dd)
        return centers @ W.T + mu

    def _fit(self, X, y):
        rng = self._rng()
        n, d = X.shape
        if self.max_train is not None and n > self.max_train:
            X = X[rng.choice(n, self.max_train, replace=False)]
        bps = self.bits_per_subspace
        bits = [bps] * (self.n_bits // bps) + ([self.n_bits % bps] if self.n_bits % bps else [])
        M = len(bits)
        D = (min(d, X.shape[0] - 1) // M) * M
        self.mean_, R, ev = pca(X, D)
        order = _balanced_partition(ev, M)
        self.rotation_ = R[:, order]
        Z = (X - self.mean_) @ self.rotation_
        per = D // M
        self.subspaces_ = [np.arange(m * per, (m + 1) * per) for m in range(M)]
        self.bits_ = bits
        self.codewords_ = [self._train_subspace(Z[:, sub], bm) for sub, bm in zip(self.subspaces_, bits)]

    def _project(self, X):
        Z = (X - self.mean_) @ self.rotation_
        out = []
        for sub, C, bm in zip(self.subspaces_, self.codewords_, self.bits_):
            idx = np.argmin(sqdist(Z[:, sub], C), axis=1)
            out.append(_lut(bm)[idx].astype(np.float64))
        # responses: +1 for a 1-bit, -1 for a 0-bit (KMH has no margin per bit)
        return np.concatenate(out, axis=1) * 2.0 - 1.0
