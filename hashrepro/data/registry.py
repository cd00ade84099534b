"""A small registry of dataset loaders, in the spirit of ``torchvision.datasets``.

>>> from hashrepro import data
>>> data.datasets()                       # doctest: +SKIP
['cifar10', 'coco', 'cuhk03', 'digits', 'flowers17', 'mirflickr25k', 'mnist', ...]
>>> ds = data.load("mnist5k")             # doctest: +SKIP
"""
from __future__ import annotations

from typing import Callable

from .base import Dataset

__all__ = ["register", "load", "datasets", "describe"]

_LOADERS: dict[str, Callable[..., Dataset]] = {}
_DOCS: dict[str, str] = {}


def register(name: str, doc: str = "") -> Callable:
    """Decorator: ``@register("mnist")`` makes ``load("mnist", root, **kw)`` call the function
    with ``root=<resolved root or None>`` and the keyword arguments."""

    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in _LOADERS and _LOADERS[name] is not fn:
            raise ValueError(f"dataset {name!r} is already registered")
        _LOADERS[name] = fn
        _DOCS[name] = doc or (fn.__doc__ or "").strip().splitlines()[0]
        return fn

    return deco


def datasets() -> list[str]:
    """Sorted names of all registered datasets."""
    return sorted(_LOADERS)


def describe() -> dict[str, str]:
    """``{name: one-line description}`` for every registered dataset."""
    return {k: _DOCS[k] for k in datasets()}


def load(name: str, root=None, **kw) -> Dataset:
    """Load dataset ``name``.

    Parameters
    ----------
    name : str
        One of :func:`datasets`.
    root : path, optional
        Data root; default ``$HASHREPRO_DATA`` or ``<repo>/data`` (see ``hashrepro.data.paths``).
    **kw
        Loader options (``download=True``, ``size=...``, ``source=...``, mosaic's ``base``,
        ``grid``, ``n``, ``seed``, ...); see each loader's docstring.

    Returns
    -------
    Dataset
        ``images`` uint8 (N, H, W, C), ``labels`` int64 (N,) or multi-hot uint8 (N, C).

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid names).
    FileNotFoundError
        (:class:`DatasetNotFoundError`) the files are missing; the message says where the
        loader looked and how to obtain them.
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names are: {', '.join(datasets())}")
    return _LOADERS[name](root=root, **kw)
