"""KSH: supervised hashing with kernels (Liu, Wang, Ji, Jiang & Chang, CVPR 2012)."""
from __future__ import annotations

import numpy as np
from scipy import linalg

from ._base import BaseHasher, PairwiseSimilarity, check_float, check_int, rbf_anchor_features, sqdist

__all__ = ["KSH", "KernelAnchors"]


class KernelAnchors:
    """Centred RBF features on random anchors, as KSH's demo code builds them.

    ``k(x, a) = exp(-||x - a||^2 / (2 sigma))`` with ``sigma`` = mean squared distance between
    training points and anchors; each of the m columns is centred with its training mean.
    """

    def __init__(self, n_anchors: int, rng: np.random.RandomState):
        self.n_anchors = n_anchors
        self.rng = rng

    def fit(self, X):
        n = X.shape[0]
        idx = self.rng.choice(n, self.n_anchors, replace=False)
        self.anchors_ = X[idx].copy()
        D = sqdist(X, self.anchors_)
        self.sigma_ = float(D.mean())
        K = np.exp(-D / (2 * self.sigma_))
        self.mean_ = K.mean(axis=0)
        return K - self.mean_

    def transform(self, X):
        return rbf_anchor_features(X, self.anchors_, self.sigma_) - self.mean_


def _phi(z):
    """KSH's sigmoid smoothing of sgn: ``2 / (1 + exp(-z)) - 1`` (= tanh(z/2))."""
    return np.tanh(z / 2.0)


class KSH(BaseHasher):
    """Kernel-based supervised hashing.

    Liu et al., *Supervised hashing with kernels*, CVPR 2012, §3 (Algorithm 1), following the
    authors' ``KSH_demo.m`` / ``OptProjectionFast.m``. Hash functions
    ``h_k(x) = sgn(a_k^T kbar(x))`` over m centred RBF anchor features (:class:`KernelAnchors`).
    The code inner products should reconstruct ``r S`` (``S`` in {-1, +1}, r = n_bits): bits are
    learned one at a time against the residual ``R_k = r S - sum_{t<k} b_t b_t^T``:

    1. spectral initialisation: top generalised eigenvector of ``(K^T R K, K^T K)``, scaled so
       ``a^T K^T K a = l``;
    2. refinement: minimise ``-phi(K a)^T R phi(K a)`` (``phi(z) = 2/(1+e^-z) - 1``) by
       Nesterov-accelerated gradient descent with backtracking, at most ``max_iter`` steps,
       stopping when the objective changes by less than ``tol`` per sample;
    3. keep whichever of the two gives the larger ``b^T R b`` for ``b = sgn(K a)``.

    ``S`` is never formed for single-label data (``R v = r Y (Y^T v) - ... `` is low rank), so all
    training points can be used (the demo uses l = 2000).

    Parameters
    ----------
    n_bits : int.
    n_anchors : int (300).
    max_train : int or None, number of labelled training points l (2000 as the demo; None: all).
    max_iter : int, gradient steps per bit (500).
    tol : float, stop when the objective changes by less than ``tol`` per training sample
        (``|f_t - f_{t-1}| / l <= tol``; 1e-2 as ``OptProjectionFast.m``).
    random_state : seeds anchors and the training subsample.

    Attributes
    ----------
    kernel_ : KernelAnchors,  projection_ : (m, b) array ``A``.
    """

    name = "ksh"
    supervised = True

    def __init__(self, n_bits: int = 32, n_anchors: int = 300, max_train: int | None = 2000,
                 max_iter: int = 500, tol: float = 1e-2, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.n_anchors = n_anchors
        self.max_train = max_train
        self.max_iter = max_iter
        self.tol = tol

    def _validate_params(self, n, d):
        check_int(self.n_anchors, "n_anchors", low=2)
        check_int(self.max_train, "max_train", low=2, allow_none=True)
        check_int(self.max_iter, "max_iter", low=0)
        check_float(self.tol, "tol", low=0.0)
        if self.n_anchors > n:
            raise ValueError(f"KSH: n_anchors={self.n_anchors} exceeds the number of training "
                             f"points ({n}); use n_anchors <= {n}")

    def _fit(self, X, y):
        rng = self._rng()
        y = np.asarray(y)
        n = X.shape[0]
        if self.max_train is not None and n > self.max_train:
            idx = np.sort(rng.choice(n, self.max_train, replace=False))
            X, y = X[idx], y[idx]
            n = self.max_train
        self.kernel_ = KernelAnchors(self.n_anchors, rng)
        K = self.kernel_.fit(X)  # (l, m)
        S = PairwiseSimilarity(y, pm1=True)
        r = self.n_bits
        l, m = K.shape
        B = np.zeros((l, 0))
        A = np.zeros((m, r))
        KK = K.T @ K
        KK_reg = KK + 1e-6 * np.trace(KK) / m * np.eye(m)
        self.objective_ = []

        def Rmul(V):  # R @ V with R = r S - B B^T
            return r * S.matmul(V) - B @ (B.T @ V)

        for k in range(r):
            # 1) spectral initialisation
            RK = Rmul(K)
            M = K.T @ RK
            M = (M + M.T) / 2
            _, vec = linalg.eigh(M, KK_reg, subset_by_index=[m - 1, m - 1])
            a0 = vec[:, 0]
            a0 = a0 * np.sqrt(l / max(a0 @ KK @ a0, 1e-300))
            # 2) gradient refinement
            a1 = self._refine(K, Rmul, a0)
            b0 = np.where(K @ a0 > 0, 1.0, -1.0)
            b1 = np.where(K @ a1 > 0, 1.0, -1.0)
            v0 = b0 @ Rmul(b0)
            v1 = b1 @ Rmul(b1)
            a, b = (a1, b1) if v1 > v0 else (a0, b0)
            self.objective_.append(float(max(v0, v1)))
            A[:, k] = a
            B = np.concatenate([B, b[:, None]], axis=1)
        self.projection_ = A

    def _refine(self, K, Rmul, a0):
        """Minimise ``f(a) = -phi(Ka)^T R phi(Ka)`` by Nesterov's accelerated gradient with
        backtracking, as ``OptProjectionFast.m``: the inverse step ``beta`` only grows (doubling
        until the quadratic upper bound holds, at most 50 times), and the loop stops when
        ``|f_t - f_{t-1}| / l <= tol`` or after ``max_iter`` steps."""
        l = K.shape[0]
        K = np.asarray(K, dtype=np.float32)  # float32 matrix-vector products: 2x less memory traffic

        def f_only(a):
            p = _phi((K @ a.astype(np.float32)).astype(np.float64))
            return -p @ Rmul(p)

        a_prev = a0.copy()
        a_cur = a0.copy()
        f_prev = f_only(a0)
        delta_prev, delta_cur = 0.0, 1.0
        beta = 1.0
        for _ in range(self.max_iter):
            alpha = (delta_prev - 1.0) / delta_cur
            v = a_cur + alpha * (a_cur - a_prev)
            p = _phi((K @ v.astype(np.float32)).astype(np.float64))
            Rp = Rmul(p)
            gv = -p @ Rp
            dgv = -(K.T @ (Rp * (1.0 - p * p)).astype(np.float32)).astype(np.float64)
            gg = dgv @ dgv
            found = False
            for j in range(51):
                b = (2.0 ** j) * beta
                z = v - dgv / b
                gz = f_only(z)
                if gz <= gv - gg / (2.0 * b):
                    found = True
                    beta = b
                    a_prev, a_cur = a_cur, z
                    break
            if not found:
                break
            delta_prev, delta_cur = delta_cur, (1.0 + np.sqrt(1.0 + 4.0 * delta_cur ** 2)) / 2.0
            if abs(gz - f_prev) / l <= self.tol:
                break
            f_prev = gz
        return a_cur

    def _project(self, X):
        return self.kernel_.transform(X) @ self.projection_
