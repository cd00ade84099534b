"""Validation of notebook parameters and of the common recipe options.

A notebook's ``parameters`` cell declares every parameter with its default; papermill injects the
values passed with ``-p`` as plain assignments in a cell right after it, and only *logs*
"Passed unknown parameter" for a name the cell does not declare. Each notebook therefore ends its
``parameters`` cell with a snapshot of its namespace::

    _declared = dict(globals())  # the parameters above; the next cell checks the -p values against them

and calls, in its next cell (which runs after papermill's injected one)::

    check_parameters(globals(), _declared, "notebooks/drsch.ipynb")

so that

* an unknown or mistyped name (``-p bitz 32``) is an error naming the close match and listing the
  valid parameters with their types,
* a wrongly typed value (``-p bits 32.7``, ``-p seed 1.5``, ``-p bits abc``) is an error instead of
  being silently truncated by ``int()`` further down.

:func:`validate_task_parameters` applies the same rules to a sweep's grid before anything runs
(reading the declared defaults from the notebook file).

Type rules, from the default's type: ``int`` takes an int (not a bool, not a float, even 32.0);
``float`` takes an int or a float; ``bool`` takes a bool; ``str`` takes a str; ``list``/``tuple``
take a list or tuple; ``dict`` takes a dict; a ``None`` default takes None or any of
str/int/float/bool/list/tuple/dict (its meaning is the recipe's to check). Names starting with
``_``, the kernel's own names (``In``, ``Out``, ``get_ipython``, ``exit``, ``quit``) and
papermill's ``PAPERMILL_*`` paths are not parameters.
"""
from __future__ import annotations

import difflib
import numbers
from typing import Any, Mapping, MutableMapping

__all__ = ["declared_parameters", "check_parameters", "NOTEBOOK_SCALE_ENV", "SCALES", "check_value", "describe_parameters",
           "validate_task_parameters", "check_seed", "type_name", "SEED_MAX"]

#: Largest accepted seed: recipes derive further seeds as ``seed + small offset`` and numpy's
#: legacy generators need values below 2**32.
SEED_MAX = 2**31 - 1

#: The recipes' scales, smallest first (every chapter notebook has a ``scale`` parameter).
SCALES = ("smoke", "default", "paper")
#: Environment variable that replaces a notebook's *default* scale (one not passed with ``-p``):
#: ``make test`` sets it to ``smoke`` so that nbval executes every chapter notebook top to bottom in
#: seconds; ``make book`` and papermill leave it unset and run the notebooks' own defaults.
NOTEBOOK_SCALE_ENV = "HASHREPRO_NOTEBOOK_SCALE"

#: Names the IPython kernel puts in a notebook's namespace.
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit"}
_INJECTED_PREFIX = "PAPERMILL_"
_PLAIN = (str, numbers.Number, type(None), list, tuple, dict)
#: ids of the snapshots already checked for unknown names (see :func:`check_parameters`).
_CHECKED: set[int] = set()


def _is_parameter_name(name: str) -> bool:
    return not name.startswith("_") and name not in _KERNEL_NAMES and not name.startswith(_INJECTED_PREFIX)


def _is_parameter_value(value: Any) -> bool:
    return isinstance(value, _PLAIN)


def declared_parameters(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: default}`` of the parameters in a namespace snapshot, in definition order.

    Every public name holding a plain value (str, number, bool, None, list, tuple, dict) is a
    parameter; modules, functions and the kernel's names are not.
    """
    return {k: v for k, v in snapshot.items() if _is_parameter_name(k) and _is_parameter_value(v)}


def type_name(default: Any) -> str:
    """The type a parameter accepts, as shown in messages (``int``, ``float``, ``str | None``...)."""
    if default is None:
        return "any (default None)"
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, numbers.Integral):
        return "int"
    if isinstance(default, numbers.Real):
        return "float"
    if isinstance(default, (list, tuple)):
        return "list"
    return type(default).__name__


def describe_parameters(declared: Mapping[str, Any]) -> str:
    """``"dataset: str, bits: int, ..."`` in the cell's order."""
    return ", ".join(f"{k}: {type_name(v)}" for k, v in declared.items())


def check_value(name: str, value: Any, default: Any) -> str | None:
    """Why ``value`` does not suit a parameter whose default is ``default``; None when it does."""
    if default is None:
        ok = _is_parameter_value(value)
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, numbers.Integral):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif isinstance(default, numbers.Real):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, type(default))
    if ok:
        return None
    hint = ""
    if isinstance(default, numbers.Integral) and not isinstance(default, bool) and isinstance(value, float):
        hint = " (a whole number is needed; it is not rounded)"
    return f"parameter {name!r} must be {type_name(default)}, got {type(value).__name__} {value!r}{hint}"


def _problems(given: Mapping[str, Any], declared: Mapping[str, Any]) -> list[str]:
    out = []
    for name, value in given.items():
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1, cutoff=0.6)
            out.append(f"unknown parameter {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            continue
        why = check_value(name, value, declared[name])
        if why:
            out.append(why)
    return out


def _raise(problems: list[str], declared: Mapping[str, Any], where: str) -> None:
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)}. Valid parameters: {describe_parameters(declared)}")


def check_parameters(namespace: Mapping[str, Any], snapshot: Mapping[str, Any], where: str = "notebook") -> None:
    """Check the parameters papermill injected into ``namespace`` against the parameters cell.

    ``snapshot`` is ``dict(globals())`` taken at the end of the ``parameters`` cell. A name that
    appeared after it (papermill's injected cell) and is not a declared parameter is an error; so
    is a declared parameter whose value does not suit its default's type (module docstring).
    Unknown names are looked for only at the first call with a given snapshot, so re-running the
    cell by hand in an interactive session never mistakes the notebook's own later variables for
    parameters.

    Raises ValueError with one line: what is wrong, and every valid parameter with its type.
    """
    if not isinstance(snapshot, Mapping):
        raise ValueError(f"{where}: _declared was overwritten (passed with -p?); it is not a parameter. "
                         "Re-run the parameters cell")
    declared = declared_parameters(snapshot)
    given = {k: namespace[k] for k in declared if k in namespace}
    if id(snapshot) not in _CHECKED:
        # papermill injects plain values (str, numbers, bools, None, lists, dicts); names bound to
        # modules or functions (the import of this checker) are not injected parameters
        given.update({k: v for k, v in namespace.items()
                      if k not in snapshot and _is_parameter_name(k) and _is_parameter_value(v)})
        _CHECKED.add(id(snapshot))
    _raise(_problems(given, declared), declared, where)
    _apply_scale_override(namespace, declared, where)


def _apply_scale_override(namespace: Mapping[str, Any], declared: Mapping[str, Any], where: str) -> None:
    """Honour :data:`NOTEBOOK_SCALE_ENV` for a notebook whose ``scale`` is still its declared default.

    A scale passed with ``-p scale ...`` is never replaced. Prints one line when it applies, so the
    executed notebook says which scale ran; an unknown value is a one-line ValueError.
    """
    import os

    wanted = os.environ.get(NOTEBOOK_SCALE_ENV, "").strip()
    if not wanted or "scale" not in declared or namespace.get("scale") != declared["scale"]:
        return
    if wanted not in SCALES:
        raise ValueError(f"{where}: {NOTEBOOK_SCALE_ENV}={wanted!r} is not a scale; valid: {', '.join(SCALES)}")
    if wanted != declared["scale"] and isinstance(namespace, MutableMapping):
        namespace["scale"] = wanted
        print(f"scale: {wanted} (from {NOTEBOOK_SCALE_ENV}; the notebook's default is {declared['scale']!r})")


def validate_task_parameters(paper: str, params: Mapping[str, Any]) -> None:
    """Check a sweep task's parameters against ``notebooks/<paper>.ipynb`` before it runs.

    Same rules as :func:`check_parameters` (names must be declared in the notebook's parameters
    cell; values must suit the defaults' types). Names starting with ``_`` in the cell are
    internal (``_declared``) and not parameters.

    Raises ValueError (one line) listing every valid parameter with its type.
    """
    from .sweep import notebook_parameters

    declared = {k: v for k, v in notebook_parameters(paper).items() if _is_parameter_name(k)}
    _raise(_problems(dict(params), declared), declared, f"notebooks/{paper}.ipynb")


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed as an int in ``0..SEED_MAX``; anything else is a ValueError naming the valid range."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= SEED_MAX:
        raise ValueError(f"{name} must be an int in 0..{SEED_MAX}, got {seed!r}")
    return int(seed)
