"""One builder for run names (the file stems of run records and run notebooks).

Every run name has the shape ``<head>_<dataset>_<bits>b_seed<seed>_<scale>`` followed by
``_<key>-<value>`` for each extra parameter in sorted key order. :func:`build_run_name` builds
it; the two public spellings differ only in how a part is written, which is kept so that no
committed record changes its name:

* :func:`run_name` (``style="record"``; :func:`hashrepro.results.save_run`'s default name, the
  baselines runner, the convergence records): the head is the *method*; every part, keys
  included, has each run of characters outside ``[A-Za-z0-9.+=-]`` replaced by ``-``
  (``"adsh-efficientnet_lite0"`` -> ``"adsh-efficientnet-lite0"``); bits and seed are ints.
* :func:`run_name_for` (``style="sweep"``; ``hashrepro sweep`` and ``hashrepro paper-grid``): the
  head is the *paper*; values have ``/`` replaced by ``-`` and spaces removed, keys are kept as
  they are (``"..._backbone-efficientnet_lite0"``); the axes present in the parameters are used,
  ``results_dir``, ``run_name`` and ``device`` never.

Floats are written with ``:g`` in both styles, a list or tuple as its parts joined by ``-``
(``sens_sigmas-0.3-0.5-0.7``), an empty one as ``none``.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["build_run_name", "run_name", "run_name_for", "SWEEP_SKIP"]

#: Parameters never part of a sweep's run name (where the run writes, which device).
SWEEP_SKIP = ("results_dir", "run_name", "device")
_STYLES = ("record", "sweep")


def _seq(value: Any, part) -> str | None:
    """A list or tuple value (e.g. ``sens_sigmas=[0.3, 0.5, 0.7]``) as its parts joined by ``-``;
    an empty one (e.g. ``head_hidden=()``, no hidden layer) as ``none``."""
    if not isinstance(value, (list, tuple)):
        return None
    return "-".join(part(v) for v in value) or "none"


def _no_empty(value: Any) -> Any:
    """``value`` with every empty list / tuple inside a dict written ``"none"`` (it would vanish)."""
    if isinstance(value, dict):
        return {k: _no_empty(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_empty(v) for v in value] if len(value) else "none"
    return value


def _record_part(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return _seq(value, _record_part)
    if isinstance(value, dict):
        value = _no_empty(value)  # e.g. a selection grid {"head_hidden": [[], [512]]}: "head-hidden-none-512"
    s = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+=-]+", "-", s).strip("-") or "x"


def _sweep_part(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return _seq(value, _sweep_part)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("/", "-").replace(" ", "")


def build_run_name(head: str, axes: Mapping[str, Any], extra: Mapping[str, Any] | None = None, *,
                   style: str = "record") -> str:
    """``<head>_<dataset>_<bits>b_seed<seed>_<scale>[_<key>-<value>...]``.

    ``axes``: the values of ``dataset``, ``bits``, ``seed``, ``scale`` (an axis left out is left
    out of the name); ``extra``: further parameters, written in sorted key order; ``style``:
    ``"record"`` or ``"sweep"`` (see the module docstring: how the parts are written).
    """
    if style not in _STYLES:
        raise ValueError(f"style must be one of {_STYLES}, got {style!r}")
    if style == "record":
        part, key_part, whole = _record_part, _record_part, (lambda v: str(int(v)))
        parts = [part(head)]
    else:
        part, key_part, whole = _sweep_part, str, _sweep_part
        parts = [str(head)]
    if "dataset" in axes:
        parts.append(part(axes["dataset"]))
    if "bits" in axes:
        parts.append(f"{whole(axes['bits'])}b")
    if "seed" in axes:
        parts.append(f"seed{whole(axes['seed'])}")
    if "scale" in axes:
        parts.append(part(axes["scale"]))
    extra = dict(extra or {})
    parts += [f"{key_part(k)}-{part(extra[k])}" for k in sorted(extra)]
    return "_".join(parts)


def run_name(method: str, dataset: str, bits: int, seed: int, scale: str, **extra: Any) -> str:
    """Deterministic file stem of a run record: ``<method>_<dataset>_<bits>b_seed<seed>_<scale>``, then
    ``_<key>-<value>`` for each extra parameter in sorted key order.

    >>> run_name("dnnh-dem", "cifar10", 48, 0, "default")
    'dnnh-dem_cifar10_48b_seed0_default'
    >>> run_name("mch-dch", "mosaic", 32, 1, "smoke", sigma=0.5)
    'mch-dch_mosaic_32b_seed1_smoke_sigma-0.5'
    """
    return build_run_name(method, {"dataset": dataset, "bits": bits, "seed": seed, "scale": scale}, extra,
                          style="record")


def run_name_for(paper: str, parameters: Mapping[str, Any]) -> str:
    """Deterministic run name of a sweep task from its grid parameters.

    ``<paper>_<dataset>_<bits>b_seed<seed>_<scale>`` followed by ``_<key>-<value>`` for every other
    parameter in sorted order (``results_dir``, ``run_name`` and ``device`` excluded), e.g.
    ``dnnh_cifar10_48b_seed0_default_variant-fc``.
    """
    p = dict(parameters)
    axes = {k: p.pop(k) for k in ("dataset", "bits", "seed", "scale") if k in p}
    extra = {k: v for k, v in p.items() if k not in SWEEP_SKIP}
    return build_run_name(paper, axes, extra, style="sweep")
