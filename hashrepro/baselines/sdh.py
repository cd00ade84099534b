"""SDH: supervised discrete hashing (Shen, Shen, Liu & Shen, CVPR 2015)."""
from __future__ import annotations

import numpy as np

from ._base import BaseHasher, check_float, check_int, label_matrix, rbf_anchor_features, sqdist

__all__ = ["SDH"]


def _ridge(A: np.ndarray, B: np.ndarray, lam: float) -> np.ndarray:
    """``(A^T A + lam I)^-1 A^T B`` (the authors' ``RRC``)."""
    G = A.T @ A
    G[np.diag_indices_from(G)] += lam
    return np.linalg.solve(G, A.T @ B)


class SDH(BaseHasher):
    """Supervised discrete hashing with the l2 classification loss.

    Shen et al., *Supervised discrete hashing*, CVPR 2015, §2 (eqs. 3-12), following the
    authors' ``SDH.m`` and demo:

    ``min_{B,W,P} ||Y - B W||^2 + lambda ||W||^2 + nu ||B - phi(X) P||^2``, ``B in {-1,1}^{n x b}``,
    with ``phi(x)`` = RBF features on ``n_anchors`` random training anchors plus a constant 1.

    * G-step: ``W = (B^T B + lambda I)^-1 B^T Y``;
    * F-step: ``P = (phi^T phi + lambda_F I)^-1 phi^T B`` (ridge 1e-2 as the code);
    * B-step: discrete cyclic coordinate descent on ``Q = Y W^T + nu phi P``: for each bit k,
      ``b_k = sgn(q_k - B_{-k} W_{-k} w_k^T)``, up to 10 sweeps from ``B = 0``;
    * ``max_iter`` outer iterations (5) from a random ``B``; hash: ``sgn(phi(x) P)``.

    The RBF width: the demo uses ``sigma = 0.4`` "for normalized data"; here ``sigma=None``
    (default) takes the mean distance of each training point to its nearest anchor (the rule
    commented out in the same demo), which adapts to unnormalised features.

    Parameters
    ----------
    n_bits : int.
    n_anchors : int (1000).
    lam : float, lambda (1).
    nu : float, nu (1e-5).
    lam_f : float, ridge of the F-step (1e-2).
    sigma : float or None, RBF width.
    max_iter : int, outer iterations (5).
    random_state : seeds anchors and the initial B.

    Attributes
    ----------
    anchors_ (m, d), sigma_ (float), projection_ (m + 1, b) ``P``, classifier_ (b, C) ``W``.
    """

    name = "sdh"
    supervised = True

    def __init__(self, n_bits: int = 32, n_anchors: int = 1000, lam: float = 1.0, nu: float = 1e-5,
                 lam_f: float = 1e-2, sigma: float | None = None, max_iter: int = 5, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.n_anchors = n_anchors
        self.lam = lam
        self.nu = nu
        self.lam_f = lam_f
        self.sigma = sigma
        self.max_iter = max_iter

    def _validate_params(self, n, d):
        check_int(self.n_anchors, "n_anchors", low=1)
        check_float(self.lam, "lam", low=0.0)
        check_float(self.nu, "nu", low=0.0)
        check_float(self.lam_f, "lam_f", low=0.0, low_inclusive=False)
        check_float(self.sigma, "sigma", low=0.0, low_inclusive=False, allow_none=True)
        check_int(self.max_iter, "max_iter", low=1)
        if self.n_anchors > n:
            raise ValueError(f"SDH: n_anchors={self.n_anchors} exceeds the number of training "
                             f"points ({n}); use n_anchors <= {n}")

    def _features(self, X):
        F = rbf_anchor_features(X, self.anchors_, self.sigma_ ** 2)
        return np.concatenate([F, np.ones((X.shape[0], 1))], axis=1)

    def _fit(self, X, y):
        rng = self._rng()
        Y, _ = label_matrix(y)
        n = X.shape[0]
        self.anchors_ = X[rng.choice(n, self.n_anchors, replace=False)].copy()
        if self.sigma is None:
            self.sigma_ = float(np.sqrt(sqdist(X, self.anchors_).min(axis=1)).mean())
            if self.sigma_ <= 0:  # every point is an anchor
                self.sigma_ = float(np.sqrt(sqdist(X, self.anchors_)).mean())
        else:
            self.sigma_ = float(self.sigma)
        Phi = self._features(X)
        b = self.n_bits
        B = np.where(rng.standard_normal((n, b)) >= 0, 1.0, -1.0)
        W = _ridge(B, Y, self.lam)            # G-step
        P = _ridge(Phi, B, self.lam_f)        # F-step
        for _ in range(self.max_iter):
            Q = self.nu * (Phi @ P) + Y @ W.T   # (n, b)
            B = np.zeros((n, b))
            for _sweep in range(10):
                B0 = B.copy()
                for k in range(b):
                    # B_{-k} W_{-k} w_k^T = B (W w_k^T) - B_k (w_k w_k^T)
                    v = W @ W[k]
                    v[k] = 0.0
                    B[:, k] = np.where(Q[:, k] - B @ v > 0, 1.0, -1.0)
                if np.linalg.norm(B - B0) < 1e-6 * max(np.linalg.norm(B0), 1e-300):
                    break
            W = _ridge(B, Y, self.lam)
            P = _ridge(Phi, B, self.lam_f)
        self.projection_ = P
        self.classifier_ = W

    def _project(self, X):
        return self._features(X) @ self.projection_
