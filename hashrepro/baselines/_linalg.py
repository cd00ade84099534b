"""Small linear-algebra helpers shared by the PCA-based hashers."""
from __future__ import annotations

import numpy as np
from scipy import linalg

__all__ = ["pca", "random_rotation", "fix_signs"]


def fix_signs(V: np.ndarray) -> np.ndarray:
    """Flip each column of ``V`` so its largest-magnitude entry is positive (determinism)."""
    idx = np.argmax(np.abs(V), axis=0)
    s = np.sign(V[idx, np.arange(V.shape[1])])
    s[s == 0] = 1.0
    return V * s


def pca(X: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal directions of ``X`` (n, d).

    Returns
    -------
    mean : (d,) the sample mean.
    W : (d, n_components) orthonormal eigenvectors of the covariance, by decreasing eigenvalue.
    eigvals : (n_components,) the matching eigenvalues (variances).
    """
    mean = X.mean(axis=0)
    Xc = X - mean
    d = X.shape[1]
    if X.shape[0] < d:  # Gram trick: fewer samples than dimensions
        G = Xc @ Xc.T / X.shape[0]
        ev, U = linalg.eigh(G)
        order = np.argsort(ev)[::-1][:n_components]
        ev, U = np.clip(ev[order], 0.0, None), U[:, order]
        W = Xc.T @ U
        W /= np.maximum(np.linalg.norm(W, axis=0, keepdims=True), 1e-12)
    else:
        C = Xc.T @ Xc / X.shape[0]
        ev, W = linalg.eigh(C, subset_by_index=[d - n_components, d - 1])
        ev, W = ev[::-1], W[:, ::-1]
        ev = np.clip(ev, 0.0, None)
    return mean, fix_signs(W), ev


def random_rotation(k: int, rng: np.random.RandomState) -> np.ndarray:
    """A random ``(k, k)`` orthogonal matrix (QR of a Gaussian matrix, as ITQ's code does)."""
    Q, R = np.linalg.qr(rng.standard_normal((k, k)))
    return Q * np.sign(np.diag(R))
