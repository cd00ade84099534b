"""The :class:`Dataset` container and the errors every loader raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["Dataset", "DatasetNotFoundError", "ChecksumError", "CorruptDataError", "not_found"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where the loader looked. The message names every path that
    was tried and how to obtain the data."""


class ChecksumError(ValueError):
    """A file's SHA-256 differs from the one listed in ``SHA256SUMS``."""


class CorruptDataError(ValueError):
    """A data file is truncated, corrupt or not in the expected format. The message names the
    file (and the archive member) and what was expected."""


def not_found(name: str, looked: Iterable[str | Path], how: str) -> DatasetNotFoundError:
    """Build the error for a missing dataset: name, every path looked at, how to get it."""
    lines = "\n".join(f"  - {p}" for p in looked)
    return DatasetNotFoundError(
        f"dataset {name!r} not found. Looked at:\n{lines}\n"
        f"How to obtain it: {how}\n"
        "Set HASHREPRO_DATA (or pass root=...) to the folder holding it; see data/README.md."
    )


@dataclass
class Dataset:
    """An image dataset held in memory.

    Attributes
    ----------
    name : str
        Registry name (``"cifar10"``, ``"mosaic"``, ...).
    images : uint8 ndarray, shape (N, H, W, C)
        C = 1 for grey-level images, 3 for colour.
    labels : ndarray
        int64 (N,) class indices for single-label sets; uint8 multi-hot (N, n_classes) when
        ``multilabel``.
    classes : list[str]
        Class names, ``len(classes) == n_classes``.
    multilabel : bool
    official_split : dict[str, int64 ndarray]
        Index arrays of the official partition, e.g. ``{"train": ..., "test": ...}``;
        empty when the dataset has none.
    meta : dict
        Loader-specific extras (source path and format, per-tile layout of mosaics,
        identities/cameras/test sets of CUHK03, relative paths of list-file sets, ...).
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: list
    multilabel: bool = False
    official_split: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {self.images.shape}")
        if self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {self.images.dtype}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")
        if self.multilabel and (self.labels.ndim != 2 or self.labels.shape[1] != len(self.classes)):
            raise ValueError(f"multi-hot labels must be (N, {len(self.classes)}), got {self.labels.shape}")
        if not self.multilabel and self.labels.ndim != 1:
            raise ValueError(f"single-label labels must be (N,), got {self.labels.shape}")
        self.official_split = {k: np.asarray(v, dtype=np.int64) for k, v in self.official_split.items()}

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple:
        """(H, W, C)."""
        return tuple(self.images.shape[1:])

    def label_matrix(self) -> np.ndarray:
        """Multi-hot uint8 (N, n_classes) view of the labels (one-hot for single-label sets)."""
        if self.multilabel:
            return self.labels.astype(np.uint8, copy=False)
        out = np.zeros((len(self), self.n_classes), dtype=np.uint8)
        out[np.arange(len(self)), self.labels] = 1
        return out

    def subset(self, idx: Any, name: str | None = None) -> "Dataset":
        """A new Dataset with the rows ``idx`` (official split and meta are dropped)."""
        idx = np.asarray(idx)
        return Dataset(name or self.name, self.images[idx], self.labels[idx], list(self.classes),
                       self.multilabel, {}, {"parent": self.name})

    def __repr__(self) -> str:
        split = ", ".join(f"{k}={len(v)}" for k, v in self.official_split.items())
        kind = "multi-label" if self.multilabel else "single-label"
        return (f"Dataset({self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
                f"{self.n_classes} classes, {kind}, official_split={{{split}}})")
