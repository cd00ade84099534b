"""LFH: supervised hashing with latent factor models (Zhang, Zhang, Li & Guo, SIGIR 2014)."""
from __future__ import annotations

import numpy as np

from ._base import BaseHasher, PairwiseSimilarity, check_float, check_int

__all__ = ["LFH"]


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class LFH(BaseHasher):
    """Latent factor hashing.

    Zhang et al., *Supervised hashing with latent factor models*, SIGIR 2014, §3:

    * likelihood ``p(s_ij | U) = a_ij^s_ij (1 - a_ij)^(1 - s_ij)`` with ``a_ij = sigmoid(Theta_ij)``,
      ``Theta_ij = 1/2 U_i^T U_j`` (eq. 1-2), Gaussian prior ``U ~ N(0, beta I)``; maximise the
      log posterior (eq. 3);
    * row-wise surrogate Newton updates: ``U_i <- U_i - g_i H_i^-1`` with the gradient
      ``g_i = 1/2 sum_j (s_ij - a_ij) U_j - U_i / beta`` and the fixed lower bound of the Hessian
      ``H_i = -1/16 sum_j U_j^T U_j - I / beta`` (eq. 6-8: ``a (1 - a) <= 1/4``);
    * stochastic learning (§3.4): each update uses ``n_sampled`` random columns j (the paper
      samples O(Q) pairs per point), rescaled to the full sum;
    * out-of-sample extension: ridge regression ``W = (X^T X + alpha I)^-1 X^T U`` on centred
      features; hash ``sgn((x - mu) W)``.

    Our implementation updates rows in blocks of ``block_size`` (each block sees the latest
    U), a Gauss-Seidel compromise between the paper's one-row-at-a-time loop and speed.

    Parameters
    ----------
    n_bits : int.
    beta : float, prior variance (10).
    n_iter : int, sweeps over all rows (30).
    n_sampled : int or None, columns sampled per update (None: ``max(50, 10 * n_bits)``; 0 or
        >= n: all pairs, the full LFH).
    block_size : int, rows updated together (256).
    alpha : float, ridge of the out-of-sample regression (1.0).
    max_train : int or None, training points used (None: all).
    random_state : seeds U's initialisation, sampling and the row order.

    Attributes
    ----------
    mean_ (d,), projection_ (d, b), latent_ (n, b) the learned U.
    """

    name = "lfh"
    supervised = True

    def __init__(self, n_bits: int = 32, beta: float = 10.0, n_iter: int = 30, n_sampled: int | None = None,
                 block_size: int = 256, alpha: float = 1.0, max_train: int | None = None, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.beta = beta
        self.n_iter = n_iter
        self.n_sampled = n_sampled
        self.block_size = block_size
        self.alpha = alpha
        self.max_train = max_train

    def _validate_params(self, n, d):
        check_float(self.beta, "beta", low=0.0, low_inclusive=False)
        check_int(self.n_iter, "n_iter", low=1)
        check_int(self.n_sampled, "n_sampled", low=0, allow_none=True)
        check_int(self.block_size, "block_size", low=1)
        check_float(self.alpha, "alpha", low=0.0)
        check_int(self.max_train, "max_train", low=2, allow_none=True)

    def _fit(self, X, y):
        rng = self._rng()
        y = np.asarray(y)
        n = X.shape[0]
        if self.max_train is not None and n > self.max_train:
            idx = np.sort(rng.choice(n, self.max_train, replace=False))
            X, y = X[idx], y[idx]
            n = X.shape[0]
        S = PairwiseSimilarity(y)
        q = self.n_bits
        ns = self.n_sampled if self.n_sampled is not None else max(50, 10 * q)
        if ns == 0 or ns >= n:
            ns = n
        U = rng.standard_normal((n, q))
        inv_beta = 1.0 / self.beta
        self.loglik_ = []
        for _ in range(self.n_iter):
            order = rng.permutation(n)
            for s in range(0, n, self.block_size):
                rows = order[s:s + self.block_size]
                cols = np.arange(n) if ns == n else rng.choice(n, ns, replace=False)
                scale = n / cols.size
                Uc = U[cols]
                Sb = S.Y[rows] @ S.Y[cols].T if not S.multilabel else S.dense(rows)[:, cols]
                Sb = (Sb > 0).astype(np.float64)
                A = _sigmoid(0.5 * U[rows] @ Uc.T)
                g = 0.5 * scale * (Sb - A) @ Uc - inv_beta * U[rows]
                H = -(scale / 16.0) * (Uc.T @ Uc) - inv_beta * np.eye(q)
                U[rows] = U[rows] - np.linalg.solve(H, g.T).T
            # monitor the (sampled) log-likelihood on a few rows
            r = rng.choice(n, min(n, 500), replace=False)
            T = 0.5 * U[r] @ U[r].T
            Sr = (S.Y[r] @ S.Y[r].T > 0) if not S.multilabel else S.dense(r)[:, r] > 0
            self.loglik_.append(float((Sr * T - np.logaddexp(0, T)).mean()))
        self.latent_ = U
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        Gm = Xc.T @ Xc
        Gm[np.diag_indices_from(Gm)] += self.alpha
        self.projection_ = np.linalg.solve(Gm, Xc.T @ U)

    def _project(self, X):
        return (X - self.mean_) @ self.projection_
