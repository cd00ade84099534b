"""SPLH: sequential projection learning for hashing (Wang, Kumar & Chang, ICML 2010)."""
from __future__ import annotations

import numpy as np
from scipy import linalg

from ._base import BaseHasher, PairwiseSimilarity, check_float, check_int

__all__ = ["SPLH"]


class SPLH(BaseHasher):
    """Sequential projection learning (semi-supervised), following the authors' ``trainSPLH.m``.

    Wang, Kumar & Chang, *Sequential projection learning for hashing with compact codes*,
    ICML 2010, §3 (Algorithm 1) and *Semi-supervised hashing for large-scale search*, TPAMI 2012.
    Linear hash ``sgn(w_k^T (x - mu))``; for bit k:

    1. ``M_k = X^T X / n + eta X_l^T S_k X_l / l`` (unsupervised variance + supervised
       pair agreement on l labelled points; ``S`` in {-1, +1});
    2. ``w_k`` = top eigenvector of ``M_k``;
    3. boost the pairs the new bit gets wrong: ``dS = u u^T`` with ``u = X_l w_k``,
       ``S_{k+1} = S_k - T(dS, S_k)`` with ``T`` keeping the entries where ``dS`` and ``S_k``
       disagree in sign (the code uses the real projections, the paper ``sgn`` and a step
       ``alpha``; we follow the code);
    4. remove the direction from the data: ``X <- X - X w_k w_k^T``.

    ``S`` is dense ``(l, l)``, so l is capped (``n_labeled``, 1000 by default).

    Parameters
    ----------
    n_bits : int (<= d).
    eta : float, weight of the supervised term (1.0; not tuned).
    n_labeled : int or None, labelled points l (1000; None: all).
    random_state : seeds the labelled subset.

    Attributes
    ----------
    mean_ (d,), projection_ (d, b).
    """

    name = "splh"
    supervised = True

    def __init__(self, n_bits: int = 32, eta: float = 1.0, n_labeled: int | None = 1000, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.eta = eta
        self.n_labeled = n_labeled

    def _validate_params(self, n, d):
        check_float(self.eta, "eta", low=0.0)
        check_int(self.n_labeled, "n_labeled", low=2, allow_none=True)
        self._check_bits_le(d, "n_features")

    def _fit(self, X, y):
        rng = self._rng()
        y = np.asarray(y)
        n, d = X.shape
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        lab = np.arange(n)
        if self.n_labeled is not None and n > self.n_labeled:
            lab = np.sort(rng.choice(n, self.n_labeled, replace=False))
        Xl = Xc[lab]
        S = PairwiseSimilarity(y[lab], pm1=True).dense().copy()
        l = Xl.shape[0]
        Wm = np.zeros((d, self.n_bits))
        Xr = Xc.copy()
        for k in range(self.n_bits):
            cov = Xr.T @ Xr / n
            CM = Xl.T @ (S @ Xl) / l
            M = cov + self.eta * CM
            M = (M + M.T) / 2
            _, vec = linalg.eigh(M, subset_by_index=[d - 1, d - 1])
            w = vec[:, 0]
            w = w * (np.sign(w[np.argmax(np.abs(w))]) or 1.0)
            Wm[:, k] = w
            u = Xl @ w
            dS = np.outer(u, u)
            mask = (S * dS) < 0
            S -= np.where(mask, dS, 0.0)
            Xr -= np.outer(Xr @ w, w)
        self.projection_ = Wm

    def _project(self, X):
        return (X - self.mean_) @ self.projection_
