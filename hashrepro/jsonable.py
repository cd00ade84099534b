"""Plain JSON types for run records (:func:`to_jsonable`); re-exported by :mod:`hashrepro.results`."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(obj: Any, _where: str = "value") -> Any:
    """Convert ``obj`` to plain JSON types: numpy arrays/scalars, tuples, sets, paths, dataclasses,
    torch tensors and devices are converted; other objects become ``str(obj)``.

    Non-finite floats are kept (written as ``NaN``/``Infinity``, which Python's json reads back).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, f"{_where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{_where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return [to_jsonable(v, _where) for v in sorted(obj, key=repr)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj), _where)
    mod = type(obj).__module__
    if mod.startswith("torch"):
        if hasattr(obj, "detach"):
            return obj.detach().cpu().numpy().tolist()
        return str(obj)
    return str(obj)
