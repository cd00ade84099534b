"""MLH: minimal loss hashing (Norouzi & Fleet, ICML 2011)."""
from __future__ import annotations

import numpy as np

from ._base import BaseHasher, check_float, check_int, label_matrix

__all__ = ["MLH", "loss_adjusted_inference"]


def _hinge_loss(m: np.ndarray, s: np.ndarray, rho: float, lam: float) -> np.ndarray:
    """MLH's hinge-like loss (paper eq. 3): similar pairs ``max(m - rho + 1, 0)``, dissimilar
    pairs ``lam * max(rho - m + 1, 0)``; ``m`` Hamming distances, broadcast with ``s``."""
    return np.where(s, np.maximum(m - rho + 1, 0.0), lam * np.maximum(rho - m + 1, 0.0))


def loss_adjusted_inference(Z1: np.ndarray, Z2: np.ndarray, s: np.ndarray, rho: float, lam: float):
    """``argmax_{g, g'} loss(||g - g'||_H, s) + g^T z + g'^T z'`` for each pair (MLH §4, eq. 9).

    For a fixed number m of differing bits the best pair takes, per bit, the better of
    "same sign" (value ``|z_k + z'_k|``) or "different sign" (``|z_k - z'_k|``); the m differing
    bits are those with the largest ``|z_k - z'_k| - |z_k + z'_k|``. Exact, O(q log q) per pair.

    Parameters
    ----------
    Z1, Z2 : (P, q) responses ``W x``, ``W x'``;  s : (P,) bool similar;  rho, lam : loss params.

    Returns
    -------
    G1, G2 : (P, q) in {-1, +1}.
    """
    P, q = Z1.shape
    same = np.abs(Z1 + Z2)
    diff = np.abs(Z1 - Z2)
    gain = diff - same
    sg = -np.sort(-gain, axis=1)  # descending
    cg = np.concatenate([np.zeros((P, 1)), np.cumsum(sg, axis=1)], axis=1)
    m = np.arange(q + 1)[None, :]
    total = cg + _hinge_loss(m, s[:, None], rho, lam)
    mbest = np.argmax(total, axis=1)
    kth = np.take_along_axis(sg, np.maximum(mbest - 1, 0)[:, None], axis=1)
    differ = (gain >= kth) & (mbest[:, None] > 0)  # the mbest largest gains (ties: measure zero)
    sgn_same = np.where(Z1 + Z2 >= 0, 1.0, -1.0)
    sgn_diff = np.where(Z1 - Z2 >= 0, 1.0, -1.0)
    G1 = np.where(differ, sgn_diff, sgn_same)
    G2 = np.where(differ, -sgn_diff, sgn_same)
    return G1, G2


class MLH(BaseHasher):
    """Minimal loss hashing: linear hash ``sgn(W [x; 1])`` trained on a hinge loss of Hamming
    distances through a structural-SVM-like upper bound.

    Norouzi & Fleet, *Minimal loss hashing for compact binary codes*, ICML 2011, §3-4: the
    empirical loss ``sum_pairs loss(||b(x) - b(x')||_H, s)`` (eq. 3, threshold ``rho``, weight
    ``lam`` for dissimilar pairs) is bounded by
    ``max_{g,g'} [loss + g^T W x + g'^T W x'] - max_h h^T W x - max_h' h'^T W x'`` (eq. 7),
    minimised by stochastic gradient descent with exact loss-adjusted inference
    (:func:`loss_adjusted_inference`), weight decay and momentum, as the authors' code. Each
    minibatch takes ``batch_size`` training points and all pairs among them (similar = shared
    label). Inputs are centred and scaled to unit mean norm.

    ``rho`` and ``lam`` were validated per dataset in the paper; here they have fixed defaults
    (``rho = max(1, n_bits // 4)``, ``lam = 0.5``), not tuned (tuning on the query set is not
    allowed; a validation split of the training set would be the faithful way).

    Parameters
    ----------
    n_bits : int.
    rho : int or None, loss threshold (None: ``max(1, n_bits // 4)``).
    lam : float, weight of the dissimilar-pair loss (0.5).
    learning_rate : float (0.1), momentum : float (0.9), weight_decay : float (1e-4).
    batch_size : int, points per minibatch (100), n_epochs : int (20).
    random_state : seeds the initial W (``0.1 N(0,1)``, as the code) and the batches.

    Attributes
    ----------
    mean_ (d,), scale_ (float), weights_ (d + 1, b).
    """

    name = "mlh"
    supervised = True

    def __init__(self, n_bits: int = 32, rho: int | None = None, lam: float = 0.5,
                 learning_rate: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-4,
                 batch_size: int = 100, n_epochs: int = 20, random_state=None):
        super().__init__(n_bits=n_bits, random_state=random_state)
        self.rho = rho
        self.lam = lam
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.n_epochs = n_epochs

    def _validate_params(self, n, d):
        check_int(self.rho, "rho", low=1, high=self.n_bits, allow_none=True)
        check_float(self.lam, "lam", low=0.0)
        check_float(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False)
        check_float(self.momentum, "momentum", low=0.0, high=0.999)
        check_float(self.weight_decay, "weight_decay", low=0.0)
        check_int(self.batch_size, "batch_size", low=2)
        check_int(self.n_epochs, "n_epochs", low=1)

    def _aug(self, X):
        Z = (X - self.mean_) / self.scale_
        return np.concatenate([Z, np.ones((Z.shape[0], 1))], axis=1)

    def _fit(self, X, y):
        rng = self._rng()
        Y, _ = label_matrix(y)
        n, d = X.shape
        self.mean_ = X.mean(axis=0)
        self.scale_ = float(np.linalg.norm(X - self.mean_, axis=1).mean()) or 1.0
        Xa = self._aug(X)
        rho = self.rho if self.rho is not None else max(1, self.n_bits // 4)
        self.rho_ = rho
        W = np.concatenate([0.1 * rng.standard_normal((d, self.n_bits)), np.zeros((1, self.n_bits))])
        V = np.zeros_like(W)
        bs = min(self.batch_size, n)
        iu, ju = np.triu_indices(bs, 1)
        from scipy import sparse
        P = iu.size
        E1t = sparse.csr_matrix((np.ones(P), (iu, np.arange(P))), shape=(bs, P))
        E2t = sparse.csr_matrix((np.ones(P), (ju, np.arange(P))), shape=(bs, P))
        self.loss_curve_ = []
        for _ in range(self.n_epochs):
            perm = rng.permutation(n)
            epoch_loss = 0.0
            for s in range(0, n - bs + 1, bs):
                idx = perm[s:s + bs]
                Xb = Xa[idx]
                Zb = Xb @ W
                sim = (Y[idx[iu]] * Y[idx[ju]]).sum(1) > 0
                G1, G2 = loss_adjusted_inference(Zb[iu], Zb[ju], sim, rho, self.lam)
                Hb = np.where(Zb >= 0, 1.0, -1.0)
                # gradient of the bound: sum_pairs (g x^T + g' x'^T - h x^T - h' x'^T)
                coef = E1t @ (G1 - Hb[iu]) + E2t @ (G2 - Hb[ju])  # (bs, b) per-point sums
                grad = Xb.T @ coef / iu.size + self.weight_decay * W
                V = self.momentum * V - self.learning_rate * grad
                W = W + V
                m = (Hb[iu] != Hb[ju]).sum(1)
                epoch_loss += float(_hinge_loss(m, sim, rho, self.lam).mean())
            self.loss_curve_.append(epoch_loss / max(1, n // bs))
        self.weights_ = W

    def _project(self, X):
        return self._aug(X) @ self.weights_
