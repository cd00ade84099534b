"""Health checks of a finished training run: collapsed codes and diverged losses.

A run whose codes collapse (every item in one bucket, most bits constant, far fewer distinct codes
than classes) still yields a number (mAP of a constant ranking is the share of relevant items,
0.516 on the MCH mosaics), and that number must never be reported as a normal result. The
recipes call :func:`diagnose` on their database codes and loss curve and attach the flags with
:func:`flag_record`: ``record["flags"]`` is a list of one-line strings, each starting with a
stable key (``one_bucket``, ``constant_bits``, ``few_codes``, ``loss_nonfinite``,
``loss_diverged``) followed by ``": "`` and the evidence; a healthy run has no ``flags`` key.
Book pages and notebooks show flagged runs as such (:func:`is_flagged`, :func:`flag_text`).

Rules (thresholds are module constants):

* ``one_bucket``: all N >= 2 codes are identical;
* ``constant_bits``: at least :data:`CONSTANT_BITS_FRACTION` of the bits take one value in every code;
* ``few_codes``: with C classes known, fewer than ``max(2, ceil(C * FEW_CODES_FRACTION))`` distinct
  codes (the codes cannot even tell half of the classes apart);
* ``loss_nonfinite``: a NaN or infinite value in the loss curve;
* ``loss_diverged``: the mean loss over the last :data:`LOSS_WINDOW` of the curve exceeds
  :data:`DIVERGENCE_FACTOR` times the magnitude of the mean over the first one (and the first).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Mapping, MutableMapping

import numpy as np

__all__ = ["check_codes", "check_loss", "diagnose", "n_classes_of", "flag_record", "is_flagged", "flag_text",
           "CollapsedRunError", "CONSTANT_BITS_FRACTION", "FEW_CODES_FRACTION", "DIVERGENCE_FACTOR",
           "LOSS_WINDOW"]

CONSTANT_BITS_FRACTION = 0.5
FEW_CODES_FRACTION = 0.5
DIVERGENCE_FACTOR = 10.0
LOSS_WINDOW = 0.1


class CollapsedRunError(RuntimeError):
    """Raised by :func:`flag_record` with ``strict=True`` when a run is flagged."""


def check_codes(codes01, n_classes: int | None = None, what: str = "database codes") -> list[str]:
    """Flags for collapsed binary codes.

    Parameters
    ----------
    codes01 : {0,1} array (N, n_bits) (a torch tensor or ±1 codes are accepted: > 0 is a 1 bit)
    n_classes : number of classes C, for the ``few_codes`` rule (None: rule skipped)
    what : how the messages name the codes

    Returns
    -------
    list of flag strings (empty when healthy)
    """
    from .codes import as_numpy

    c = as_numpy(codes01, "codes01")
    if c.ndim != 2:
        raise ValueError(f"codes01 must be (N, n_bits), got shape {c.shape}")
    c = (c > 0).astype(np.uint8)
    n, b = c.shape
    if n < 2 or b < 1:
        return []
    flags = []
    distinct = int(np.unique(np.packbits(c, axis=1), axis=0).shape[0])
    if distinct == 1:
        flags.append(f"one_bucket: all {n:,} {what} are identical (one bucket); the ranking is constant "
                     "and its metrics measure nothing")
    ones = c.mean(axis=0)
    constant = int(np.sum((ones == 0) | (ones == 1)))
    if distinct > 1 and constant >= CONSTANT_BITS_FRACTION * b:
        flags.append(f"constant_bits: {constant} of {b} bits take one value in every one of the {n:,} {what}")
    if distinct > 1 and n_classes is not None and n_classes >= 2:
        need = max(2, math.ceil(n_classes * FEW_CODES_FRACTION))
        if distinct < min(need, n):
            flags.append(f"few_codes: only {distinct} distinct {what} among {n:,} items of {n_classes} classes "
                         f"(fewer than {need})")
    return flags


def check_loss(loss: Iterable[float] | None, what: str = "training loss") -> list[str]:
    """Flags for a loss curve (one value per iteration): non-finite values, divergence."""
    if loss is None:
        return []
    x = np.asarray(list(loss), dtype=np.float64).ravel()
    if x.size == 0:
        return []
    flags = []
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        flags.append(f"loss_nonfinite: the {what} is {x[first]} at iteration {first} "
                     f"({int(bad.sum())} non-finite values)")
        return flags
    w = max(1, int(round(LOSS_WINDOW * x.size)))
    if x.size >= 2 * w and x.size >= 4:
        start, end = float(x[:w].mean()), float(x[-w:].mean())
        if end > start and end > DIVERGENCE_FACTOR * abs(start) and end - start > 1e-12:
            flags.append(f"loss_diverged: the {what} rose from {start:.4g} (first {w} iterations) to {end:.4g} "
                         f"(last {w}), more than {DIVERGENCE_FACTOR:g}x; lower the learning rate")
    return flags


def n_classes_of(labels) -> int:
    """Number of classes of int labels (N,) (distinct values) or multi-hot labels (N, C) (C)."""
    y = np.asarray(labels)
    return int(y.shape[1]) if y.ndim == 2 else int(np.unique(y).size)


def diagnose(codes01=None, loss=None, n_classes: int | None = None, what: str = "database codes",
             loss_what: str = "training loss", labels=None) -> list[str]:
    """:func:`check_codes` and :func:`check_loss` together (either may be None).

    ``labels`` (int (N,) or multi-hot (N, C)) may be given instead of ``n_classes``."""
    out = []
    if n_classes is None and labels is not None:
        n_classes = n_classes_of(labels)
    if codes01 is not None:
        out += check_codes(codes01, n_classes, what)
    out += check_loss(loss, loss_what)
    return out


def flag_record(record: MutableMapping[str, Any], flags: Iterable[str], strict: bool = False) -> MutableMapping:
    """Attach ``flags`` to a run record (``record["flags"]``, merged with any there) and warn.

    With ``strict=True`` a flagged run raises :class:`CollapsedRunError` instead. A record with
    no flag is returned unchanged (no ``flags`` key). Returns ``record``.
    """
    flags = [str(f) for f in flags]
    if not flags:
        return record
    name = f"{record.get('paper', '?')}/{record.get('method', '?')} {record.get('dataset', '')} " \
           f"{record.get('bits', '')} bits seed {record.get('seed', '')}"
    if strict:
        raise CollapsedRunError(f"{name}: {'; '.join(flags)}")
    merged = list(record.get("flags") or [])
    merged += [f for f in flags if f not in merged]
    record["flags"] = merged
    warnings.warn(f"run {name} is FLAGGED, its metrics are not a valid result: {'; '.join(flags)}",
                  RuntimeWarning, stacklevel=2)
    return record


def is_flagged(record: Mapping[str, Any]) -> bool:
    """Whether a run record carries flags (a collapsed or diverged run)."""
    return bool(record.get("flags"))


def flag_text(record: Mapping[str, Any]) -> str:
    """The flags' keys joined for a table cell (``"one_bucket, loss_diverged"``); "" when healthy."""
    return ", ".join(str(f).split(":", 1)[0] for f in (record.get("flags") or []))
