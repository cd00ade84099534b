"""Executed run notebooks in the book: a title per run, slim figures, one runs index per chapter
outside the sidebar, and math served from the site (issue 17, cases 7 and 8)."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from hashrepro import book
from hashrepro.paths import PAPERS

ROOT = Path(__file__).resolve().parents[2]


def test_run_title_names_the_run():
    t = book.run_title("dnnh", {"dataset": "cifar10", "bits": 48, "seed": 0, "scale": "default",
                                "variant": "fc", "results_dir": "results", "run_name": "x", "device": "cuda"})
    assert t == "DNNH run · cifar10 · 48 bits · seed 0 · default · variant fc"
    # Axes the run did not set come from the notebook's defaults, in the same order.
    t = book.run_title("mch", {"bits": 32, "base": "dch"}, {"dataset": "mosaic-mnist5k", "seed": 0,
                                                           "scale": "default", "bits": 16})
    assert t == "MCH run · mosaic-mnist5k · 32 bits · seed 0 · default · base dch"
    # A --defaults run is told apart from a grid run with the same values.
    t = book.run_title("ddh", {"results_dir": "results/local", "run_name": "ddh_defaults"},
                       {"dataset": "mnist5k", "bits": 32, "seed": 0, "scale": "default"})
    assert t == "DDH run · mnist5k · 32 bits · seed 0 · default (notebook defaults)"


def _png(width: int, height: int, seed: int = 0) -> str:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 6, size=(height, width, 1), dtype=np.uint8) * 40  # few colours, like a figure
    arr = np.concatenate([arr, arr[::-1], 255 - arr], axis=2)
    bio = io.BytesIO()
    Image.fromarray(arr, "RGB").save(bio, "PNG")
    return base64.b64encode(bio.getvalue()).decode()


def _run_notebook(path: Path, params: dict, png: str) -> None:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell('dataset = "mnist5k"\nbits = 48\nseed = 0\nscale = "default"\nvariant = "dem"')
    p.metadata["tags"] = ["parameters"]
    out = nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})
    fig = nbformat.v4.new_code_cell("plot()", outputs=[out])
    nb.cells = [nbformat.v4.new_markdown_cell("# DNNH: divide-and-encode deep hashing\n\nOne run of ..."), p, fig]
    nb.metadata["papermill"] = {"parameters": params}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_finish_run_notebook_titles_links_and_slims_once(tmp_path):
    path = tmp_path / "runs" / "dnnh" / "dnnh_cifar10_12b.ipynb"
    big = _png(1800, 600)
    _run_notebook(path, {"dataset": "cifar10", "bits": 12, "results_dir": "results",
                         "run_name": "dnnh_cifar10_12b"}, big)
    title = book.finish_run_notebook(path, "dnnh", index_link=True)
    assert title == "DNNH run · cifar10 · 12 bits · seed 0 · default"
    nb = nbformat.read(path, as_version=4)
    head = nb.cells[0].source
    assert head.startswith(f"# {title}\n")
    assert "(DNNH: divide-and-encode deep hashing)" in head and "One run of ..." in head
    assert "`results/dnnh/dnnh_cifar10_12b.json`" in head and "[All DNNH runs](index.md)" in head
    from PIL import Image

    raw = base64.b64decode(nb.cells[2].outputs[0].data["image/png"])
    assert Image.open(io.BytesIO(raw)).width == 1100 and len(raw) < 0.7 * len(base64.b64decode(big))
    text = path.read_text()
    assert book.finish_run_notebook(path, "dnnh", index_link=True) == title
    assert path.read_text() == text  # idempotent: no nested titles, no second re-encoding


def test_runs_index_html_takes_metric_names_that_are_not_identifiers(tmp_path, monkeypatch):
    from hashrepro.results import make_record

    monkeypatch.setitem(book.HEADLINE_METRICS, "mch", ("map", "buckets_at_f1_0.5"))
    runs, results = tmp_path / "runs", tmp_path / "results"
    results.mkdir()
    _run_notebook(runs / "mch_x.ipynb", {"dataset": "mosaic", "bits": 16, "run_name": "mch_x"}, _png(64, 64))
    rec = make_record(paper="mch", method="mch-dch", dataset="mosaic", bits=16, seed=0, scale="default", config={},
                      protocol={}, metrics={"map": 0.5, "buckets_at_f1_0.5": 12.0}, curves={}, wall_time_s=1.0,
                      device="cpu")
    (results / "mch_x.json").write_text(json.dumps(rec))
    html = book.runs_index_html("mch", results_dir=results, runs_dir=runs).data
    assert "<th>buckets_at_f1_0.5</th>" in html and "<td>12.000</td>" in html and "<th>flags</th>" not in html
    # A run whose diagnostics flagged it says so in the index.
    rec["flags"] = ["one_bucket: all 500 codes are identical"]
    (results / "mch_x.json").write_text(json.dumps(rec))
    html = book.runs_index_html("mch", results_dir=results, runs_dir=runs).data
    assert "<th>flags</th>" in html and '<strong title="one_bucket: all 500 codes are identical">one_bucket</strong>' in html


def test_runs_index_links_each_notebook_with_its_metrics(tmp_path):
    from hashrepro.results import make_record

    runs, results = tmp_path / "book" / "runs" / "dnnh", tmp_path / "results" / "dnnh"
    results.mkdir(parents=True)
    for bits, m in ((12, 0.25), (48, 0.5)):
        name = f"dnnh_cifar10_{bits}b_seed0_default"
        _run_notebook(runs / f"{name}.ipynb", {"dataset": "cifar10", "bits": bits, "seed": 0,
                                               "scale": "default", "run_name": name}, _png(64, 64))
        book.finish_run_notebook(runs / f"{name}.ipynb", "dnnh")
        rec = make_record(paper="dnnh", method="dnnh-dem", dataset="cifar10", bits=bits, seed=0, scale="default",
                          config={}, protocol={}, metrics={"map": m, "precision_radius2": m / 2}, curves={},
                          wall_time_s=120.0, device="cpu")
        (results / f"{name}.json").write_text(json.dumps(rec))
    (results / "companion.json").write_text(json.dumps({**rec, "method": "itq"}))
    _run_notebook(runs / "dnnh_svhn_12b_seed0_default.ipynb", {"dataset": "svhn", "bits": 12}, _png(64, 64))
    df = book.runs_index("dnnh", results_dir=results, runs_dir=runs)
    assert list(df["notebook"]) == ["dnnh_cifar10_12b_seed0_default.ipynb", "dnnh_cifar10_48b_seed0_default.ipynb",
                                    "dnnh_svhn_12b_seed0_default.ipynb"]
    assert list(df["map"][:2]) == [0.25, 0.5] and list(df["record"]) == [True, True, False]
    assert df["run"][0] == "cifar10 · 12 bits · seed 0 · default" and "map_tie_aware" not in df
    html = book.runs_index_html("dnnh", results_dir=results, runs_dir=runs).data
    assert '<a href="dnnh_cifar10_48b_seed0_default.html">cifar10 · 48 bits · seed 0 · default</a>' in html
    assert "<td>0.500</td>" in html and "(no record)" in html and "1 records written beside them" in html
    with pytest.raises(ValueError, match="unknown chapter 'toy'"):
        book.runs_index("toy")


def test_committed_run_notebooks_have_unique_titles_naming_the_run():
    titles: dict[str, Path] = {}
    for paper in PAPERS:
        for path in sorted((ROOT / "book" / "runs" / paper).glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            params = nb.metadata.get("papermill", {}).get("parameters", {})
            want = book.run_title(paper, params, book._notebook_defaults(nb))
            first = nb.cells[0].source.splitlines()[0]
            assert first == f"# {want}", f"{path.relative_to(ROOT)}: first heading {first!r}, want {want!r} " \
                                         f"(run `hashrepro book retitle`)"
            assert want not in titles, f"{path} and {titles[want]} share the title {want!r}"
            titles[want] = path


def test_toc_lists_one_runs_index_per_chapter_not_every_run():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    text = (ROOT / "book" / "_toc.yml").read_text()
    for paper in PAPERS:
        assert f"runs/{paper}/*" not in text
        chapter = next(c for part in toc["parts"] for c in part["chapters"] if c["file"] == paper)
        assert {"file": f"runs/{paper}/index"} in chapter["sections"]
        page = (ROOT / "book" / "runs" / paper / "index.md").read_text()
        assert f'runs_index_html("{paper}")' in page
    from hashrepro.sphinx_ext import is_run_notebook

    assert is_run_notebook("runs/dnnh/dnnh_cifar10_12b_seed0_default")
    assert not is_run_notebook("runs/dnnh/index") and not is_run_notebook("dnnh")


def test_math_is_served_from_the_site(tmp_path):
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "hashrepro.sphinx_ext" in cfg["sphinx"]["extra_extensions"]
    assert cfg["only_build_toc_files"] is False  # run notebooks are built outside the toctree
    from hashrepro import sphinx_ext

    out = sphinx_ext.copy_mathjax(tmp_path)
    assert out == tmp_path / "_static" / "mathjax"
    assert (out / "tex-chtml.js").stat().st_size > 500_000
    assert list((out / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_Main-Regular.woff"))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert size < 6e6, f"MathJax subset is {size / 1e6:.1f} MB"
    assert not sphinx_ext.MATHJAX_PATH.startswith(("http:", "https:", "//"))
