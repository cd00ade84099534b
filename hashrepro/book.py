"""Tables for the book's shared pages: the introduction's "paper vs ours" summary and the
reproduce page's list of runs (commands, hardware, wall times), all read from run records; and
the executed run notebooks: their titles, their image sizes and each chapter's runs index.

The chapters draw their own tables (``hashrepro.results.compare``); this module only gathers
across chapters.

Run notebooks (``book/runs/<paper>/<run_name>.ipynb``, written by the sweep) are not listed in
the book's navigation: each chapter has one index page (``book/runs/<paper>/index.md``) whose
table, :func:`runs_index_html`, links every executed notebook with its headline metrics. Each
notebook's first heading names the run (:func:`run_title`), set by the sweep when it writes the
notebook, or afterwards by ``hashrepro book retitle`` (:func:`retitle_runs`).
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .paths import PAPERS, repo_root, results_root, runs_root

__all__ = ["all_records", "runs_table", "claims_table", "claims_counts", "provenance_line",
           "run_title", "finish_run_notebook", "retitle_runs", "slim_images", "runs_index",
           "runs_index_html", "HEADLINE_METRICS", "no_runs", "table_or_no_runs",
           "runs_outputs"]


# The claims and their verdicts live in hashrepro.claims (one list per paper, one evaluator);
# this module only gathers them for the introduction.


def all_records() -> pd.DataFrame:
    """Every committed run record under ``results/<paper>/`` as one DataFrame (may be empty)."""
    from .results import load_records

    frames = []
    root = results_root()
    for sub in sorted(p for p in root.glob("*") if p.is_dir() and p.name != "local"):
        df = load_records(sub)
        if len(df):
            frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def runs_table(records: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run: chapter, method, dataset, bits, seed, scale, device, wall time, the commit
    (10 characters), ``tree`` (clean / dirty / unknown, at the start of the run for new records),
    ``provenance`` (:func:`hashrepro.results.provenance_status`: clean, dirty with its saved
    patch, or legacy with the reasons) and the command."""
    from .results import provenance_status

    records = all_records() if records is None else records
    cols = ["paper", "method", "dataset", "bits", "seed", "scale", "device", "wall_time_s", "git_commit", "tree",
            "provenance", "command"]
    if records is None or not len(records):
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({c: records[c] if c in records else None for c in cols[:9] + ["command"]})
    out["wall_time_s"] = pd.to_numeric(out["wall_time_s"], errors="coerce").round(1)
    out["git_commit"] = [str(c)[:10] if isinstance(c, str) and c else "—" for c in out["git_commit"]]
    dirty = records["git_dirty"] if "git_dirty" in records else pd.Series([None] * len(records))
    out["tree"] = ["dirty" if d is True else ("clean" if d is False else "unknown") for d in dirty]
    recs = records["record"] if "record" in records else [dict(r) for _, r in records.iterrows()]
    out["provenance"] = [provenance_status(r) for r in recs]
    out["command"] = out["command"].fillna("—")
    return out[cols].sort_values(["paper", "dataset", "method", "bits", "seed"]).reset_index(drop=True)


def provenance_line(records: pd.DataFrame | None = None) -> str:
    """One sentence on how many of ``records`` are tied to their code, e.g. "Of 60 run records,
    12 are clean, 0 dirty with a saved patch and 48 legacy (no command: 47, …)"."""
    from collections import Counter

    t = runs_table(records)
    if not len(t):
        return "No run records yet."
    status = [p.split(":")[0] for p in t["provenance"]]
    reasons = Counter(r.strip() for p in t["provenance"] if p.startswith("legacy:")
                      for r in p.split(":", 1)[1].split(","))
    n = len(t)
    text = (f"Of {n} run records, {status.count('clean')} are clean, {status.count('dirty')} ran on a dirty tree "
            f"with the diff saved, and {status.count('legacy')} are *legacy*")
    if reasons:
        text += " (" + ", ".join(f"{k}: {v}" for k, v in reasons.most_common()) + ")"
    return text + " (the *Reproduce* page lists each run's commit, tree and command)."


def claims_table(records: pd.DataFrame | None = None) -> pd.DataFrame:
    """The introduction's summary: every chapter's claims judged by :mod:`hashrepro.claims`
    (``chapter, claim, verdict, seeds, evidence``). ``records``: all records (default: the
    committed ones, :func:`all_records`); each chapter gets its own and the shallow baselines."""
    from .claims import summary_table

    if records is None:
        return summary_table()
    by_paper = {}
    for paper in PAPERS:
        if not len(records) or "paper" not in records:
            by_paper[paper] = []
            continue
        keep = records["paper"].isin([paper, "baselines"] if paper in ("dnnh", "drsch") else [paper])
        by_paper[paper] = records[keep]
    return summary_table(by_paper)


def claims_counts(summary: pd.DataFrame) -> str:
    """"12 claims: 3 reproduced, 5 not reproduced, …" for a :func:`claims_table` (or a chapter's
    ``hashrepro.claims.claims_table``), so the sentence is computed, not written."""
    if not len(summary):
        return "no claims"
    v = summary["verdict"].value_counts()
    return f"{len(summary)} claims: " + ", ".join(f"{n} {k}" for k, n in v.items())


# --------------------------------------------------------------------------- run notebooks

#: Parameters that say where a run writes or runs, not what it is: left out of titles.
_NOT_IN_TITLE = ("results_dir", "run_name", "device")
#: The grid axes, in title order; other parameters follow as "name value", sorted by name.
_TITLE_AXES = ("dataset", "bits", "seed", "scale")
#: Metadata key under which a run notebook keeps its title and its chapter's original heading.
_META = "hashrepro"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def run_title(paper: str, parameters: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    """The title of one executed run notebook: what it is, in one line.

    ``DNNH run · cifar10 · 48 bits · seed 0 · default · variant two-subnets``: the chapter, then
    dataset, bits, seed and scale (taken from ``defaults``, the notebook's own parameter defaults,
    when the run did not set them), then every other parameter the run set, sorted by name.
    Parameters that only say where the run writes (``results_dir``, ``run_name``, ``device``) are
    left out. A run that set none of its parameters (``hashrepro sweep --defaults``) ends in
    ``(notebook defaults)``. Two runs of a sweep grid always get different titles, since their run
    names differ in the same parameters.
    """
    given = {k: v for k, v in parameters.items() if k not in _NOT_IN_TITLE}
    defaults = dict(defaults or {})
    parts = []
    for axis in _TITLE_AXES:
        if axis in given:
            value = given.pop(axis)
        elif axis in defaults:
            value = defaults[axis]
        else:
            continue
        value = _fmt_value(value)
        parts.append({"bits": f"{value} bits", "seed": f"seed {value}"}.get(axis, value))
    parts += [f"{k} {_fmt_value(v)}" for k, v in sorted(given.items())]
    title = f"{paper.upper()} run · " + (" · ".join(parts) if parts else "notebook defaults")
    if parts and not ({k for k in parameters if k not in _NOT_IN_TITLE}):
        title += " (notebook defaults)"
    return title


def _notebook_defaults(nb) -> dict[str, Any]:
    """Default values of the notebook's cell tagged ``parameters`` (simple literals only;
    :func:`hashrepro.provenance.parameters_cell_defaults`)."""
    from .provenance import parameters_cell_defaults

    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return parameters_cell_defaults(cell.source, non_literal="skip")
    return {}


def _set_title(nb, paper: str, title: str, run_name: str | None, index_link: bool = False) -> None:
    """Make ``title`` the notebook's first heading; the chapter's own heading moves to a line below.

    Idempotent: the first markdown cell as the chapter notebook had it is kept in the notebook
    metadata (``hashrepro.chapter_cell``) and the new cell is always made from it.
    """
    import nbformat

    meta = nb.metadata.setdefault(_META, {})
    first = nb.cells[0] if nb.cells and nb.cells[0].cell_type == "markdown" else None
    if "chapter_cell" not in meta:
        meta["chapter_cell"] = first.source if first is not None else None
    original = meta["chapter_cell"]
    chapter_title, rest = "", ""
    if original:
        head, _, rest = original.partition("\n")
        if head.startswith("# "):
            chapter_title = head[2:].strip()
        else:
            rest = original
    record = f" Its record: `results/{paper}/{run_name}.json`." if run_name else ""
    link = f" [All {paper.upper()} runs](index.md)." if index_link else ""
    lines = [f"# {title}", "",
             f"*An executed run of the chapter notebook `notebooks/{paper}.ipynb`"
             + (f" ({chapter_title})" if chapter_title else "") + f".{record}*{link}"]
    source = "\n".join(lines) + ("\n" + rest if rest.strip() else "")
    if first is not None:
        first.source = source
    else:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(source))
    meta["title"] = title
    meta["paper"] = paper
    if run_name:
        meta["run_name"] = run_name


def slim_images(nb, max_width: int = 1100, min_bytes: int = 40_000) -> tuple[int, int]:
    """Shrink the PNG figures of a notebook's outputs in place; returns (bytes before, bytes after).

    A PNG larger than ``min_bytes`` is scaled down to at most ``max_width`` pixels wide and
    stored as the smaller of an optimised PNG and a 256-colour palette PNG (matplotlib figures
    have few colours), and only when that is smaller. Run notebooks are rendered into the site
    and copied into it for download, so their figures are most of its size.
    """
    from PIL import Image

    before = after = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            b64 = data.get("image/png")
            if not b64:
                continue
            b64 = "".join(b64) if isinstance(b64, list) else b64
            raw = base64.b64decode(b64)
            before += len(raw)
            if len(raw) <= min_bytes:
                after += len(raw)
                continue
            img = Image.open(io.BytesIO(raw))
            img.load()
            if img.width > max_width:
                img = img.resize((max_width, max(1, round(img.height * max_width / img.width))), Image.LANCZOS)
            if img.mode not in ("RGB", "RGBA"):
                img = img.convert("RGBA")
            if img.mode == "RGBA" and img.getextrema()[3][0] == 255:
                img = img.convert("RGB")
            candidates = []
            for im in (img, img.quantize(256, method=Image.Quantize.FASTOCTREE if img.mode == "RGBA"
                                         else Image.Quantize.MEDIANCUT)):
                bio = io.BytesIO()
                im.save(bio, "PNG", optimize=True)
                candidates.append(bio.getvalue())
            best = min(candidates, key=len)
            if len(best) < 0.95 * len(raw):
                data["image/png"] = base64.b64encode(best).decode("ascii") + "\n"
                md = out.setdefault("metadata", {}).get("image/png")
                if isinstance(md, dict):
                    md.pop("width", None)
                    md.pop("height", None)
                after += len(best)
            else:
                after += len(raw)
    return before, after


def _write_notebook_atomic(nb, path: Path) -> None:
    """Write notebook ``nb`` to ``path`` atomically (:func:`hashrepro.atomic.atomic_write`)."""
    import nbformat

    from .atomic import atomic_write
    text = nbformat.writes(nb)
    atomic_write(path, text if text.endswith("\n") else text + "\n")   # as nbformat.write does


def finish_run_notebook(path: str | os.PathLike, paper: str, parameters: Mapping[str, Any] | None = None,
                        slim: bool = True, index_link: bool = False) -> str:
    """Give an executed run notebook its title (:func:`run_title`) and shrink its figures
    (:func:`slim_images`); rewrites ``path`` atomically and returns the title.

    ``parameters`` are the papermill parameters of the run; by default those papermill stored in
    the notebook's metadata. ``index_link`` adds a link to the chapter's runs index
    (``index.md`` beside the notebook in ``book/runs/<paper>/``). Running it twice changes
    nothing the second time.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if parameters is None:
        parameters = nb.metadata.get("papermill", {}).get("parameters", {}) or {}
    title = run_title(paper, parameters, _notebook_defaults(nb))
    _set_title(nb, paper, title, parameters.get("run_name"), index_link)
    if slim:
        slim_images(nb)
    _write_notebook_atomic(nb, path)
    return title


def retitle_runs(papers=None, runs_dir: str | os.PathLike | None = None, echo=print) -> dict[str, str]:
    """Title (and slim) every executed run notebook already under ``book/runs/<paper>/``
    (and ``book/runs/local/<paper>.ipynb``): the one-off for notebooks written before the sweep
    set titles. Returns {notebook path: title}; raises ValueError when two titles clash."""
    base = Path(runs_dir) if runs_dir else runs_root()
    papers = list(PAPERS) if papers in (None, "all") else ([papers] if isinstance(papers, str) else list(papers))
    unknown = sorted(set(papers) - set(PAPERS))
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; valid: {', '.join(PAPERS)}")
    titles: dict[str, str] = {}
    for paper in papers:
        paths = sorted((base / paper).glob("*.ipynb"))
        if (base / "local" / f"{paper}.ipynb").is_file():
            paths.append(base / "local" / f"{paper}.ipynb")
        for nb_path in paths:
            size = nb_path.stat().st_size
            titles[str(nb_path)] = finish_run_notebook(nb_path, paper, index_link=nb_path.parent.name == paper)
            echo(f"{nb_path.relative_to(base)}: {titles[str(nb_path)]}  "
                 f"({size / 1e6:.2f} MB -> {nb_path.stat().st_size / 1e6:.2f} MB)")
    seen: dict[str, str] = {}
    for p, t in titles.items():
        if t in seen:
            raise ValueError(f"two run notebooks share the title {t!r}: {seen[t]} and {p}")
        seen[t] = p
    return titles


#: Headline metrics of each chapter's runs index, in column order (shown when any run has them).
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "drsch": ("map", "map_tie_aware", "precision_radius2"),
    "dnnh": ("map", "map_tie_aware", "precision_radius2"),
    "ddh": ("map", "map_tie_aware", "label_precision", "accuracy"),
    "mch": ("map", "map_tie_aware", "anhc", "buckets_at_f1_0.5"),
}


def _notebook_meta(path: Path) -> tuple[dict, dict]:
    """(papermill parameters, hashrepro metadata) of an executed notebook."""
    with open(path) as f:
        meta = json.load(f).get("metadata", {})
    return meta.get("papermill", {}).get("parameters", {}) or {}, meta.get(_META, {}) or {}


def runs_index(paper: str, results_dir: str | os.PathLike | None = None,
               runs_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per executed run notebook of a chapter, joined with its run record.

    Columns: ``run`` (the notebook's title without the chapter prefix), ``notebook`` (its file
    name), ``method``, ``dataset``, ``bits``, ``seed``, ``scale``, the chapter's
    :data:`HEADLINE_METRICS` present in any record, ``wall_time_min``, ``flags`` (the record's
    diagnostics, e.g. ``one_bucket: ...``; empty for a healthy run) and ``record`` (False when the
    notebook's record ``results/<paper>/<run_name>.json`` is missing). Sorted by dataset, method,
    bits, seed.
    """
    from .results import is_complete

    if paper not in PAPERS:
        raise ValueError(f"unknown chapter {paper!r}; valid: {', '.join(PAPERS)}")
    rdir = Path(results_dir) if results_dir else results_root() / paper
    ndir = Path(runs_dir) if runs_dir else runs_root() / paper
    rows = []
    for nb_path in sorted(ndir.glob("*.ipynb")):
        params, meta = _notebook_meta(nb_path)
        title = meta.get("title") or run_title(paper, params)
        rec_path = rdir / f"{nb_path.stem}.json"
        rec = json.loads(rec_path.read_text()) if is_complete(rec_path) else {}
        row = {"run": title.split(" · ", 1)[-1] if " · " in title else title, "notebook": nb_path.name,
               "method": rec.get("method", ""),
               "dataset": rec.get("dataset", params.get("dataset", "")),
               "bits": rec.get("bits", params.get("bits")), "seed": rec.get("seed", params.get("seed")),
               "scale": rec.get("scale", params.get("scale", ""))}
        for m in HEADLINE_METRICS.get(paper, ("map",)):
            row[m] = (rec.get("metrics") or {}).get(m)
        wall = rec.get("wall_time_s")
        row["wall_time_min"] = round(float(wall) / 60, 1) if isinstance(wall, (int, float)) else None
        row["flags"] = list(rec.get("flags") or [])
        row["record"] = bool(rec)
        rows.append(row)
    cols = (["run", "notebook", "method", "dataset", "bits", "seed", "scale"]
            + list(HEADLINE_METRICS.get(paper, ("map",))) + ["wall_time_min", "flags", "record"])
    df = pd.DataFrame(rows, columns=cols)
    metrics = [m for m in HEADLINE_METRICS.get(paper, ("map",)) if df[m].notna().any()]
    df = df.drop(columns=[m for m in HEADLINE_METRICS.get(paper, ("map",)) if m not in metrics])
    if len(df):
        df = df.sort_values(["dataset", "method", "bits", "seed", "run"], key=lambda c: c.astype(str),
                            ignore_index=True)
    return df


def runs_index_html(paper: str, results_dir=None, runs_dir=None, digits: int = 3) -> "Any":
    """The chapter's runs index as an HTML table (an IPython ``HTML`` object): one row per
    executed run notebook, its title linking to the rendered notebook (``<run_name>.html`` beside
    the index page), then its method, dataset, bits, seed, scale, headline metrics and wall time."""
    from IPython.display import HTML

    df = runs_index(paper, results_dir, runs_dir)
    n_records = len(list((Path(results_dir) if results_dir else results_root() / paper).glob("*.json")))
    if not len(df):
        return HTML(f"<p>No executed run notebooks for {html.escape(paper.upper())} yet: "
                    f"<code>hashrepro sweep {html.escape(paper)} ...</code> writes them.</p>")
    metric_cols = [c for c in df.columns if c in HEADLINE_METRICS.get(paper, ())]
    any_flags = bool(df["flags"].map(bool).any())
    head = ["run", "method", *metric_cols, "wall (min)"] + (["flags"] if any_flags else [])
    out = ['<table class="hashrepro-runs">', "<thead><tr>"
           + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in df.to_dict("records"):  # (not itertuples: metric names such as buckets_at_f1_0.5)
        href = html.escape(Path(r["notebook"]).with_suffix(".html").name, quote=True)
        cells = [f'<a href="{href}">{html.escape(str(r["run"]))}</a>'
                 + ("" if r["record"] else " <em>(no record)</em>")]
        for c in ("method",):
            v = r[c]
            cells.append("" if v is None or (isinstance(v, float) and math.isnan(v)) else html.escape(str(v)))
        for m in metric_cols:
            v = r[m]
            cells.append("" if v is None or (isinstance(v, float) and math.isnan(v))
                         else f"{float(v):,.0f}" if abs(float(v)) >= 100 else f"{float(v):.{digits}f}")
        w = r["wall_time_min"]
        cells.append("" if w is None or (isinstance(w, float) and math.isnan(w)) else f"{w:g}")
        if any_flags:  # a flagged run's numbers are not normal results: say so beside them
            cells.append(", ".join(f'<strong title="{html.escape(f, quote=True)}">{html.escape(f.split(":")[0])}</strong>'
                                   for f in r["flags"]))
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    extra = n_records - int(df["record"].sum())
    note = (f"<p>{len(df)} executed run notebooks; {int(df['record'].sum())} of them have their record in "
            f"<code>results/{html.escape(paper)}/</code>"
            + (f", which also holds {extra} records written beside them (companion runs, baselines)"
               if extra > 0 else "") + ".</p>")
    return HTML(note + "\n".join(out))


def no_runs(what: str, command: str):
    """The note a page shows where a section has no run records: what is missing and the command
    that makes it (an IPython ``Markdown``)."""
    from IPython.display import Markdown

    return Markdown(f"*No run records for {what} yet; run* `{command}` *and rebuild the book.*")


def table_or_no_runs(df, what: str, command: str):
    """``df`` when it has rows, else :func:`no_runs` (what a page section displays either way)."""
    return no_runs(what, command) if df is None or not len(df) else df


def runs_outputs(records: pd.DataFrame | None = None) -> list:
    """The "Every run in results/" section of the Reproduce page: the provenance sentence, runs and
    wall time per chapter and device, and every run (:func:`runs_table`, styled); a one-line note
    when there is no record yet. Returns the list of things to display."""
    from IPython.display import Markdown

    runs = runs_table(records)
    out: list = [Markdown(provenance_line(records))]
    if not len(runs):
        return out + [Markdown("No run records yet: run a sweep (above).")]
    totals = runs.groupby(["paper", "device"], dropna=False)["wall_time_s"].agg(["count", "sum"])
    totals.columns = ["runs", "wall time (s)"]
    return out + [totals, runs.style.hide(axis="index").format({"wall_time_s": "{:.1f}"})]
