"""Sphinx extension for the book (``_config.yml``: ``sphinx: extra_extensions: [hashrepro.sphinx_ext]``).

Two things:

* **Math offline.** MathJax is served from the site itself, not a CDN, so equations render on
  a cluster node or a plane. The files come from the ``sphinx-mathjax-offline`` package
  (MathJax 3.2); only what ``tex-chtml.js`` loads is copied (the combined component, its CHTML
  fonts, the TeX extensions it autoloads, the menu and accessibility components with the
  English speech maps): about 3 MB instead of the package's 24 MB.
* **Run notebooks outside the navigation.** Executed run notebooks (``runs/<paper>/*.ipynb``)
  are built and linked from each chapter's runs index page but are not part of any toctree, so
  the sidebar lists one "runs" page per chapter instead of hundreds of runs. They are marked
  orphan here, which keeps ``-W`` builds free of "document isn't included in any toctree".
"""
from __future__ import annotations

import importlib
import shutil
from pathlib import Path

#: MathJax path in the site, relative to ``_static`` (Sphinx's ``mathjax_path`` convention).
MATHJAX_PATH = "mathjax/tex-chtml.js"
#: What ``tex-chtml.js`` may load at run time, relative to the MathJax folder.
MATHJAX_FILES = ("tex-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y",
                 "sre/mathmaps/base.json", "sre/mathmaps/en.json")


def mathjax_source() -> Path:
    """The MathJax folder shipped by the ``sphinx-mathjax-offline`` package."""
    try:
        mod = importlib.import_module("sphinx-mathjax-offline")
    except ImportError:
        raise ImportError("the book needs the 'sphinx-mathjax-offline' package for offline math: "
                          "pip install sphinx-mathjax-offline (it is in pyproject.toml)") from None
    return Path(mod.__file__).resolve().parent / "static" / "mathjax"


def copy_mathjax(outdir: str | Path) -> Path:
    """Copy the MathJax subset into ``<outdir>/_static/mathjax``; returns that folder."""
    src = mathjax_source()
    dst = Path(outdir) / "_static" / "mathjax"
    for rel in MATHJAX_FILES:
        s, d = src / rel, dst / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            shutil.copy2(s, d)
    return dst


def _config_inited(app, config) -> None:
    mathjax_source()  # fail early, with the fix, when the package is missing
    config.mathjax_path = MATHJAX_PATH


def _build_finished(app, exc) -> None:
    if exc is None and app.builder.format == "html":
        copy_mathjax(app.outdir)


def is_run_notebook(docname: str) -> bool:
    """``runs/<paper>/<run_name>`` (executed run notebooks), not the chapters' ``index`` pages."""
    parts = docname.split("/")
    return len(parts) == 3 and parts[0] == "runs" and parts[2] != "index"


def _doctree_read(app, doctree) -> None:
    env = app.env
    if is_run_notebook(env.docname):
        env.metadata[env.docname]["orphan"] = True


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("build-finished", _build_finished)
    app.connect("doctree-read", _doctree_read, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
