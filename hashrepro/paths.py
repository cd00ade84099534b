"""Where things live: the repository root, results, executed run notebooks.

Book pages execute with their own folder (``book/``) as working directory and notebooks may be
run from anywhere, so every path the project writes or reads is resolved from the repository
root found here, not from the current directory.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "results_root", "runs_root", "notebooks_root", "PAPERS"]

#: The four chapters, in book order. Each has ``notebooks/<paper>.ipynb``.
PAPERS = ("drsch", "dnnh", "ddh", "mch")


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the first folder upwards holding ``pyproject.toml`` and ``hashrepro/``.

    ``HASHREPRO_ROOT`` overrides the search. Falls back to the parent of the installed package
    (an editable install points into the checkout).
    """
    env = os.environ.get("HASHREPRO_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "hashrepro").is_dir():
            return d
    return Path(__file__).resolve().parent.parent


def results_root() -> Path:
    """``<repo>/results``: committed run records, one folder per paper."""
    return repo_root() / "results"


def runs_root() -> Path:
    """``<repo>/book/runs``: executed notebooks of the sweep, rendered by the book."""
    return repo_root() / "book" / "runs"


def notebooks_root() -> Path:
    """``<repo>/notebooks``: one parameterised notebook per paper."""
    return repo_root() / "notebooks"
