"""Shared machinery of the shallow hashers: the estimator base class, validation, kernels.

Every hasher in :mod:`hashrepro.baselines` follows the scikit-learn estimator API::

    hasher = ITQ(n_bits=32, random_state=0).fit(X_train)          # X: (n, d) float
    codes = hasher.transform(X_db)                                 # (m, 32) uint8 in {0, 1}

Supervised hashers take labels in ``fit(X, y)``: ``y`` is an int vector ``(n,)`` (single label)
or a multi-hot ``(n, C)`` matrix; two items are *similar* when they share at least one label
(the convention of :func:`hashrepro.metrics.relevance`).

:meth:`BaseHasher.decision_function` returns the real-valued responses ``(m, n_bits)`` whose
sign gives the bits (``transform`` is ``decision_function(X) > 0``), so continuous ranking and
bit-weight experiments can reuse the same estimator.
"""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

__all__ = [
    "BaseHasher",
    "label_matrix",
    "PairwiseSimilarity",
    "rbf_anchor_features",
    "sqdist",
    "check_int",
    "check_float",
    "check_choice",
]


# --------------------------------------------------------------------------- validation helpers
def check_int(value, name: str, low: int | None = None, high: int | None = None, allow_none: bool = False):
    """Return ``value`` as an int after checking ``low <= value <= high``; clear ValueError else."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_float(value, name: str, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, allow_none: bool = False):
    """Return ``value`` as a float after a range check; clear ValueError otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (not low_inclusive and value == low)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_choice(value, name: str, choices):
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(map(str, choices))}, got {value!r}")
    return value


# --------------------------------------------------------------------------- labels
def label_matrix(y, n_samples: int | None = None) -> tuple[np.ndarray, bool]:
    """Labels as a float ``(n, C)`` indicator matrix and a flag ``multilabel``.

    ``y`` is an int vector ``(n,)`` (class ids, any integers; they are mapped to columns in
    sorted order) or a multi-hot ``(n, C)`` matrix of 0/1 (bool, int or float).
    """
    y = np.asarray(y)
    if y.ndim == 1:
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
            if np.issubdtype(y.dtype, np.floating) and np.all(np.equal(np.mod(y, 1), 0)):
                y = y.astype(np.int64)
            else:
                raise ValueError(f"y: single-label targets must be integers, got dtype {y.dtype}")
        classes, inv = np.unique(y, return_inverse=True)
        Y = np.zeros((y.shape[0], classes.size), dtype=np.float64)
        Y[np.arange(y.shape[0]), inv] = 1.0
        multilabel = False
    elif y.ndim == 2:
        vals = np.unique(y)
        if not np.all(np.isin(vals, (0, 1))):
            raise ValueError("y: a 2-D y must be a multi-hot (n, C) matrix of 0/1 values, "
                             f"got values {vals[:10]}")
        Y = y.astype(np.float64)
        multilabel = True
    else:
        raise ValueError(f"y must be (n,) class ids or (n, C) multi-hot, got shape {y.shape}")
    if n_samples is not None and Y.shape[0] != n_samples:
        raise ValueError(f"y has {Y.shape[0]} rows but X has {n_samples} samples")
    return Y, multilabel


class PairwiseSimilarity:
    """The ``(n, n)`` pairwise label similarity ``S`` without always forming it.

    ``S_ij = 1`` if items i and j share a label, else 0 (``pm1=True``: +1 / -1). For single-label
    data ``S = Y Y^T`` is low rank, so ``S @ V`` costs ``O(n C k)``; multi-label data falls back to
    the dense matrix (``O(n^2)`` memory; fine for the few thousand training points these methods
    use).

    Parameters
    ----------
    y : (n,) int or (n, C) multi-hot labels.
    pm1 : bool, return ``2 S - 1`` (KSH's {-1, +1} similarity) instead of {0, 1}.
    """

    def __init__(self, y, pm1: bool = False):
        self.Y, self.multilabel = label_matrix(y)
        self.n = self.Y.shape[0]
        self.pm1 = bool(pm1)
        self._dense = None
        if self.multilabel:
            self._dense = ((self.Y @ self.Y.T) > 0).astype(np.float64)
            if self.pm1:
                self._dense = 2.0 * self._dense - 1.0

    def matmul(self, V: np.ndarray) -> np.ndarray:
        """``S @ V`` for ``V`` of shape ``(n,)`` or ``(n, k)``."""
        V = np.asarray(V, dtype=np.float64)
        if self._dense is not None:
            return self._dense @ V
        out = self.Y @ (self.Y.T @ V)
        if self.pm1:
            out = 2.0 * out - V.sum(axis=0, keepdims=V.ndim == 2)
        return out

    def dense(self, rows=None) -> np.ndarray:
        """The dense matrix (or the rows ``rows`` of it) as float64."""
        if self._dense is not None:
            return self._dense if rows is None else self._dense[rows]
        Yr = self.Y if rows is None else self.Y[rows]
        S = Yr @ self.Y.T
        return 2.0 * S - 1.0 if self.pm1 else S

    def __getitem__(self, idx) -> "PairwiseSimilarity":
        """Similarity restricted to a subset of items (rows and columns ``idx``)."""
        new = object.__new__(PairwiseSimilarity)
        new.Y = self.Y[idx]
        new.n = new.Y.shape[0]
        new.multilabel = self.multilabel
        new.pm1 = self.pm1
        new._dense = None if self._dense is None else self._dense[np.ix_(idx, idx)]
        return new


# --------------------------------------------------------------------------- kernels
def sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(len(A), len(B))``, clipped at 0."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    np.maximum(d, 0.0, out=d)
    return d


def rbf_anchor_features(X: np.ndarray, anchors: np.ndarray, sigma2: float, chunk: int = 8192) -> np.ndarray:
    """``exp(-||x - a||^2 / (2 sigma2))`` for every row of ``X`` and anchor: ``(n, m)`` float64."""
    out = np.empty((X.shape[0], anchors.shape[0]), dtype=np.float64)
    for s in range(0, X.shape[0], chunk):
        d = sqdist(X[s:s + chunk], anchors)
        np.exp(-d / (2.0 * sigma2), out=d)
        out[s:s + chunk] = d
    return out


# --------------------------------------------------------------------------- base estimator
class BaseHasher(TransformerMixin, BaseEstimator):
    """Base class: ``fit(X, y=None)``, ``decision_function(X)``, ``transform(X)`` -> {0,1} codes.

    Subclasses implement ``_fit(X, y)`` (``X`` validated float64 ``(n, d)``) and
    ``_project(X)`` returning real responses ``(m, n_bits)``; bit ``k`` is 1 where the response
    is > 0. They set the class attribute ``supervised`` and may override ``_validate_params``.

    Attributes (after fit)
    ----------------------
    n_features_in_ : int, the input dimension ``d``.
    n_bits_ : int, the code length.
    """

    #: whether ``fit`` needs labels ``y``
    supervised: bool = False
    #: whether the method promises (approximately) balanced bits (each bit 1 on ~half the data)
    balanced: bool = False
    #: short name used in run records and tables
    name: str = "hasher"

    def __init__(self, n_bits: int = 32, random_state=None):
        self.n_bits = n_bits
        self.random_state = random_state

    # -- to override ---------------------------------------------------------------------
    def _validate_params(self, n_samples: int, n_features: int) -> None:  # noqa: D401
        """Check hyper-parameters against the data; raise ValueError with a clear message."""

    def _fit(self, X: np.ndarray, y) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _project(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------
    def fit(self, X, y=None):
        """Learn the hash functions.

        Parameters
        ----------
        X : array (n, d) of float features.
        y : None for unsupervised hashers; ``(n,)`` int class ids or ``(n, C)`` multi-hot labels
            for supervised ones (required).

        Returns
        -------
        self
        """
        X = check_array(X, dtype=np.float64, ensure_min_samples=2, ensure_min_features=1)
        n, d = X.shape
        check_int(self.n_bits, "n_bits", low=1, high=4096)
        if self.supervised:
            if y is None:
                raise ValueError(f"{type(self).__name__} is supervised: fit(X, y) needs labels y "
                                 "((n,) class ids or (n, C) multi-hot)")
            label_matrix(y, n_samples=n)  # validates
        self._validate_params(n, d)
        self.n_features_in_ = d
        self.n_bits_ = int(self.n_bits)
        self._fit(X, y if self.supervised else None)
        return self

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "n_bits_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} was fitted "
                             f"with {self.n_features_in_}")
        return X

    def decision_function(self, X) -> np.ndarray:
        """Real-valued bit responses ``(m, n_bits)`` (float64); bit = response > 0."""
        X = self._check_X(X)
        return self._project(X)

    def transform(self, X) -> np.ndarray:
        """Binary codes ``(m, n_bits)`` uint8 in {0, 1}."""
        return (self.decision_function(X) > 0).astype(np.uint8)

    def encode(self, X) -> np.ndarray:
        """Alias of :meth:`transform`."""
        return self.transform(X)

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y, **fit_params).transform(X)

    def _rng(self):
        return check_random_state(self.random_state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self.supervised
        return tags

    # -- helpers -------------------------------------------------------------------------
    def _check_bits_le(self, limit: int, what: str) -> None:
        if self.n_bits > limit:
            raise ValueError(f"{type(self).__name__}: n_bits={self.n_bits} exceeds {what} ({limit}); "
                             f"use n_bits <= {limit}")
