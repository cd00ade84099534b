"""The project's packaging: pyproject.toml and environment.yml agree; the CLI is wired."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _norm(req: str) -> str:
    return req.replace(" ", "").lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    got = [p for p in pip_section if not p.startswith("-e")]
    assert sorted(map(_norm, got)) == sorted(map(_norm, wanted)), (
        "environment.yml pip list differs from pyproject.toml: "
        f"only in yml {sorted(set(map(_norm, got)) - set(map(_norm, wanted)))}, "
        f"only in pyproject {sorted(set(map(_norm, wanted)) - set(map(_norm, got)))}")
    assert "python=3.11" in env["dependencies"]


def test_required_packages_declared_with_torch_ranges_that_admit_local_wheels():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = {_name(r): Requirement(r) for r in project["dependencies"]}
    for pkg in ["jupyterlab", "jupyter-book", "papermill", "torch", "torchvision", "numpy",
                "matplotlib", "seaborn", "pandas", "nbval", "scikit-learn", "faiss-cpu", "mlxtend",
                "tqdm"]:
        assert pkg in reqs, f"{pkg} missing from pyproject dependencies"
    assert reqs["torch"].specifier.contains("2.14.1")
    assert reqs["torchvision"].specifier.contains("0.29.1")
    assert reqs["jupyter-book"].specifier.contains("1.0.4")
    assert not reqs["jupyter-book"].specifier.contains("2.0.0"), "Jupyter Book 2 does not read _config.yml"


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "hashrepro.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for sub in ("sweep", "data", "bench"):
        assert sub in out


def test_config_and_toc_in_place():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "force"
    assert any("runs" in p for p in cfg["execute"]["exclude_patterns"]), "run notebooks must not re-execute"
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for page in files + [toc["root"]]:
        assert (ROOT / "book" / f"{page}.md").exists() or (ROOT / "book" / f"{page}.ipynb").exists(), page
    for paper in ("drsch", "dnnh", "ddh", "mch"):
        assert paper in files
        assert (ROOT / "notebooks" / f"{paper}.ipynb").exists(), f"notebooks/{paper}.ipynb missing"
