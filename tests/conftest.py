"""Shared test set-up. The tests are grouped by layer:

* ``tests/unit/``: the library's pieces (codes, metrics, index, losses, data, features, backbones,
  records, claims, the recipe skeleton) on small generated inputs, seconds each;
* ``tests/recipes/``: each chapter's recipe at ``scale="smoke"``, the sweep, the CLI, bad input;
* ``tests/book/``: the notebooks under papermill, the book's tables, the site build, the set-up.

Every test is marked with its layer (``pytest -m unit``, ``-m recipes``, ``-m book``); ``slow`` and
``shared`` (needs the real dataset mirrors under ``HASHREPRO_DATA``) are declared in
``pyproject.toml``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

LAYERS = ("unit", "recipes", "book")


def pytest_configure(config):
    for layer in LAYERS:
        config.addinivalue_line("markers", f"{layer}: tests of the {layer} layer (tests/{layer}/)")


def pytest_collection_modifyitems(config, items):
    """Mark each test with the layer folder it lives in."""
    for item in items:
        parts = Path(str(item.fspath)).resolve().parts
        for layer in LAYERS:
            if layer in parts and parts[parts.index(layer) - 1] == "tests":
                item.add_marker(getattr(pytest.mark, layer))
                break
