"""Datasets, their official formats, split protocols and synthetic multi-label mosaics.

>>> from hashrepro import data
>>> ds = data.load("mnist5k")                                  # doctest: +SKIP
>>> sp = data.split(ds, "per_class", seed=0)                   # doctest: +SKIP
>>> ds.images[sp.train].shape                                  # doctest: +SKIP

``load(name, root=None, **kw)`` returns a :class:`Dataset` (images uint8 (N, H, W, C), labels
int64 (N,) or multi-hot uint8 (N, C)). The data root is ``root``, else ``$HASHREPRO_DATA``,
else ``<repo>/data``; caches go to ``$HASHREPRO_CACHE``, else ``<data root>/cache``, else
``~/.cache/hashrepro`` (see :mod:`hashrepro.data.paths`). ``data/README.md`` says how to obtain
each dataset and where to put it.
"""
from .base import ChecksumError, CorruptDataError, Dataset, DatasetNotFoundError
from .paths import cache_root, data_root
from .registry import datasets, describe, load, register
from .splits import PROTOCOLS, Split, check_split, split
from .mosaic import make_mosaic
from . import cifar, cuhk03, embedded, flowers, listfile, mnist, mosaic, svhn  # noqa: F401  (register)

__all__ = ["Dataset", "DatasetNotFoundError", "ChecksumError", "CorruptDataError", "load", "datasets", "describe",
           "register", "split", "Split", "PROTOCOLS", "check_split", "make_mosaic", "data_root",
           "cache_root"]
