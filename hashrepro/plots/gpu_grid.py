"""The DNNH / DRSCH paper grid as run on a GPU machine (``hashrepro paper-grid``, issue 15).

Its records live apart from the CPU ones, under ``results/gpu/<date>/<paper>/`` (with the device
and grid logs in ``results/gpu/<date>/logs/call<k>/``): they are at ``scale="paper"`` with a
*shortened* schedule (``protocol["schedule"]["kind"] == "shortened"``), which must neither replace
the CPU cells of the chapter tables nor enter the claims as if it were the paper's schedule.

* :func:`load_gpu_records` — the records of one chapter;
* :func:`gpu_grid_table` — per method and code length: the paper, our CPU default-scale cells
  (clean records) and the GPU cells, in both regimes (from scratch at the paper's width; the frozen
  ImageNet backbone);
* :func:`gpu_speed_table` — measured time per training iteration and per evaluation;
* :func:`full_grid_minutes` — the whole grid at the papers' schedules, projected from the measured costs;
* :func:`grid_calls` — what each device call did (from its logs); :func:`gpu_sentence` — the
  sentence under the table (schedule, seeds, device, provenance), generated from the records.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .regimes import PRETRAINED, _as_dicts, _fmt, paper_value, pretrained_name, regime_cells

__all__ = ["load_gpu_records", "gpu_grid_table", "gpu_speed_table", "grid_calls", "gpu_sentence", "schedule",
           "full_grid_minutes", "gpu_summary_outputs"]


def load_gpu_records(paper: str, root: str | Path | None = None) -> list[dict]:
    """Every complete record of ``paper`` under ``<results>/gpu/*/<paper>/`` (all dates), as dicts."""
    from ..paths import results_root
    from ..results import load_records

    base = Path(root) if root is not None else results_root() / "gpu"
    out: list[dict] = []
    for d in sorted(base.glob(f"*/{paper}")) if base.is_dir() else []:
        out += _as_dicts(load_records(d))
    return out


def schedule(record: Mapping) -> dict:
    """``record["protocol"]["schedule"]`` (``{"kind": "shortened" | "paper", "iterations",
    "paper_iterations", "fraction", ...}``), or ``{}`` for records without one."""
    return dict((record.get("protocol") or {}).get("schedule") or {})


def _cell(records: list[dict], method: str, dataset: str, metric: str) -> dict | None:
    """Mean ± std over seeds of ``metric`` (one value per seed, the latest), with the schedule and
    whether any record was written from a dirty tree."""
    by_seed: dict[int, tuple[str, float, Mapping]] = {}
    flagged = [r for r in records if r.get("method") == method and r.get("dataset") == dataset and r.get("flags")]
    for r in records:
        if r.get("method") != method or r.get("dataset") != dataset or r.get("flags"):
            continue            # degenerate runs never enter a mean (as in the chapter tables)
        v = (r.get("metrics") or {}).get(metric)
        if v is None or not np.isfinite(v):
            continue
        s = int(r.get("seed", 0))
        if s not in by_seed or str(r.get("finished", "")) > by_seed[s][0]:
            by_seed[s] = (str(r.get("finished", "")), float(v), r)
    if not by_seed:
        return None if not flagged else {"mean": float("nan"), "std": float("nan"), "n": 0, "flagged": len(flagged),
                                         "dirty": any(r.get("git_dirty") is not False for r in flagged),
                                         "iterations": sorted({schedule(r).get("iterations") for r in flagged} - {None}),
                                         "flag": str(flagged[0]["flags"][0]).split(":")[0]}
    x = np.array([v for _, v, _ in by_seed.values()])
    recs = [r for _, _, r in by_seed.values()]
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else float("nan"), "n": len(x),
            "dirty": any(r.get("git_dirty") is not False for r in recs),
            "iterations": sorted({schedule(r).get("iterations") for r in recs} - {None}),
            "flagged": len(flagged)}


def _fmt_gpu(cell: dict | None) -> str:
    from ..results import format_mean_std

    if not cell:
        return "not run"
    if cell["n"] == 0:
        text = f"flagged ({cell['flagged']} runs: {cell['flag']})"
    else:
        text = format_mean_std(cell["mean"], cell["std"], 3, cell["n"])
        if cell["flagged"]:
            text += f" + {cell['flagged']} flagged"
    return text + (" dirty" if cell["dirty"] else "")


def gpu_grid_table(gpu_records, cpu_records, paper: pd.DataFrame | None, methods: Mapping[str, tuple[str, str | None]],
                   dataset: str = "cifar10", bits: Iterable[int] = (12, 24, 32, 48), metric: str = "map",
                   backbone: str = PRETRAINED) -> pd.DataFrame:
    """Paper | CPU and GPU from scratch | CPU and GPU on the pretrained backbone, per method and bits.

    ``methods``: ``{label: (our from-scratch record name, the paper table's method name or None)}``
    (as :func:`hashrepro.plots.regimes.regime_table`); ``paper``: long-format paper numbers or None.
    CPU cells are :func:`~hashrepro.plots.regimes.regime_cells` of the CPU records (clean records;
    "legacy" marks older ones); GPU cells are "mean ± std (n=k)" over seeds, "dirty" when a record
    was written from a tree that differed from its commit; degenerate runs (``record["flags"]``)
    are counted ("+ k flagged"), never averaged. A method without GPU records is left out.
    Columns: ``method, bits, paper, CPU scratch, GPU scratch, CPU pretrained, GPU pretrained``.
    """
    gpu = _as_dicts(gpu_records)
    rows = []
    for label, (scratch, paper_name) in methods.items():
        pt = pretrained_name(scratch, backbone)
        if not any(r.get("method") in (scratch, pt) for r in gpu):
            continue
        cpu_sc, cpu_pt = regime_cells(cpu_records, scratch, dataset, metric), regime_cells(cpu_records, pt, dataset, metric)
        for b in bits:
            p = paper_value(paper, paper_name, dataset, b, metric)
            at_b = [r for r in gpu if int(r.get("bits", -1)) == b]
            rows.append({"method": label, "bits": b, "paper": "—" if p is None else f"{p:.3f}",
                         "CPU scratch": _fmt(cpu_sc.get(b)), "GPU scratch": _fmt_gpu(_cell(at_b, scratch, dataset, metric)),
                         "CPU pretrained": _fmt(cpu_pt.get(b)), "GPU pretrained": _fmt_gpu(_cell(at_b, pt, dataset, metric))})
    return pd.DataFrame(rows, columns=["method", "bits", "paper", "CPU scratch", "GPU scratch", "CPU pretrained",
                                       "GPU pretrained"])


def gpu_speed_table(gpu_records) -> pd.DataFrame:
    """Measured cost per configuration kind on the GPU: runs, training iterations, milliseconds per
    training iteration (``metrics.train_time_s`` / iterations: with the other workers sharing the
    GPU), seconds of evaluation per run (wall − training) and wall seconds per run (means)."""
    groups: dict = defaultdict(list)
    for r in _as_dicts(gpu_records):
        its = schedule(r).get("iterations") or (r.get("config") or {}).get("iterations")
        train = (r.get("metrics") or {}).get("train_time_s")
        if not its or train is None:
            continue
        regime = "pretrained" if str(r.get("method", "")).endswith(PRETRAINED) else "from scratch"
        groups[(r.get("paper"), r.get("method"), regime)].append((float(train), float(r.get("wall_time_s", np.nan)), int(its)))
    rows = []
    for (paper, method, regime), v in sorted(groups.items()):
        tr, wall, its = (np.array(x, dtype=float) for x in zip(*v))
        rows.append({"paper": paper, "method": method, "regime": regime, "runs": len(v),
                     "iterations": int(np.median(its)), "ms / iteration": round(float(np.mean(1e3 * tr / its)), 2),
                     "evaluation (s)": round(float(np.mean(wall - tr)), 1), "wall (s)": round(float(np.mean(wall)), 1)})
    return pd.DataFrame(rows, columns=["paper", "method", "regime", "runs", "iterations", "ms / iteration",
                                       "evaluation (s)", "wall (s)"])


_DONE = re.compile(r"^\s*done (\S+):", re.M)


def _grid_config(r: Mapping):
    from ..paper_grid import GridConfig

    return GridConfig.from_record(r)  # CNNH*'s variant is its config's ``method``


def _projected_s(names: list[str], gpu_records, costs: Mapping, workers: int) -> float:
    """The stated-constant projection (:func:`hashrepro.paper_grid.project`) of the runs ``names``
    (run names as the grid log prints them), with the per-iteration ``costs`` of the CPU estimate."""
    from ..paper_grid import _key_str, project

    by_name = {}
    for r in _as_dicts(gpu_records):
        gc = _grid_config(r)
        by_name[gc.run_name(schedule(r).get("iterations"))] = (gc, int(schedule(r).get("iterations") or 0))
    rows = [(gc, its, costs[_key_str(gc)]) for gc, its in (by_name[n] for n in names if n in by_name)]
    return float(project(rows, workers)["total"]) if rows else float("nan")


def grid_calls(logs_dir: str | Path, gpu_records=None, costs: Mapping | None = None, workers: int = 12) -> pd.DataFrame:
    """One row per device call from ``<logs_dir>/call<k>/{device,paper_grid}.log`` (what
    ``scripts/device_paper_grid.sh`` writes): runs finished, seconds for the feature extraction and
    for the grid, whether CUDA MPS was on, the GPU named by ``nvidia-smi``. With ``gpu_records``
    and ``costs`` (``benchmarks/paper_grid_costs.json``'s ``"costs"``) also ``projected (s)``, what
    the stated constants projected for the runs that call finished, and ``measured / projected``."""
    rows = []
    for d in sorted(Path(logs_dir).glob("call*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        dev = (d / "device.log").read_text() if (d / "device.log").exists() else ""
        grid = (d / "paper_grid.log").read_text() if (d / "paper_grid.log").exists() else ""
        g0 = re.search(r"== (\d+) s: grid", dev)
        g1 = re.search(r"grid exit \d+ after (\d+) s", dev)
        feat = re.search(r"features: ([\d.]+) s", dev)
        gpu = re.search(r"^(NVIDIA [^,]+),", dev, re.M)
        rows.append({"call": d.name, "runs done": len(_DONE.findall(grid)),
                     "features (s)": float(feat.group(1)) if feat else float("nan"),
                     "grid (s)": int(g1.group(1)) - int(g0.group(1)) if g0 and g1 else float("nan"),
                     "MPS": "on" if "MPS: on" in dev else "off", "GPU": gpu.group(1) if gpu else "?"})
        if gpu_records is not None and costs is not None:
            proj = _projected_s(_DONE.findall(grid), gpu_records, costs, workers)
            rows[-1]["projected (s)"] = round(proj)
            rows[-1]["measured / projected"] = round(rows[-1]["grid (s)"] / proj, 2)
    cols = ["call", "runs done", "features (s)", "grid (s)", "MPS", "GPU"]
    return pd.DataFrame(rows, columns=cols + (["projected (s)", "measured / projected"]
                                               if gpu_records is not None and costs is not None else []))


def gpu_sentence(gpu_records) -> str:
    """What the GPU cells are, counted from the records: runs, seeds, schedules, device, commit and
    tree state — so the page cannot go stale."""
    recs = _as_dicts(gpu_records)
    if not recs:
        return "No GPU records yet: run `scripts/device_paper_grid.sh` on a GPU machine."
    seeds = sorted({int(r.get("seed", 0)) for r in recs})
    devices = sorted({str(r.get("device", "?")) for r in recs})
    scheds = defaultdict(set)
    for r in recs:
        s = schedule(r)
        if s.get("iterations"):
            scheds[r.get("paper")].add((s.get("iterations"), s.get("paper_iterations"), s.get("fraction")))
    parts = [f"{p.upper()} {its:,} of {full:,} iterations (× {f:g})" for p, v in sorted(scheds.items())
             for its, full, f in sorted(v)]
    commits = sorted({str(r.get("git_commit"))[:7] for r in recs})
    dirty = sum(r.get("git_dirty") is not False for r in recs)
    state = (f"all {len(recs)} written from a clean tree" if not dirty else
             f"{dirty} of {len(recs)} marked dirty (they count for no claim or target)")
    return (f"{len(recs)} runs on {', '.join(devices)}; seeds {', '.join(map(str, seeds))}; schedules "
            f"{'; '.join(parts) or 'as recorded'}; commit {', '.join(commits)}, {state}.")


def full_grid_minutes(gpu_records, workers: int = 12) -> dict:
    """The whole paper grid (:func:`hashrepro.paper_grid.paper_grid`: 174 runs) at the papers' full
    schedules, projected from what the GPU runs *measured* instead of the stated constants: per
    configuration kind (paper, variant, regime) its measured ms per training iteration (with the
    other workers sharing the GPU, as in the run) × the paper's iterations, plus its measured
    evaluation seconds, summed and divided by ``workers``. Returns ``{"train", "eval", "total"}``
    in minutes and ``"kinds_missing"`` (kinds of the grid with no GPU record: not counted)."""
    from ..paper_grid import paper_grid, paper_iterations

    per_kind: dict = defaultdict(list)  # (paper, variant, backbone) -> [(s per iteration, evaluation s)]
    for r in _as_dicts(gpu_records):
        train, its = (r.get("metrics") or {}).get("train_time_s"), schedule(r).get("iterations")
        if train is None or not its:
            continue
        gc = _grid_config(r)
        per_kind[(gc.paper, gc.variant, gc.backbone)].append((float(train) / int(its),
                                                               float(r.get("wall_time_s", np.nan)) - float(train)))
    train = ev = 0.0
    missing = set()
    for gc in paper_grid():
        k = (gc.paper, gc.variant, gc.backbone)
        if k not in per_kind:
            missing.add(k)
            continue
        s_it, s_ev = (float(np.mean(x)) for x in zip(*per_kind[k]))
        train += paper_iterations(gc) * s_it
        ev += s_ev
    return {"train": train / workers / 60, "eval": ev / workers / 60, "total": (train + ev) / workers / 60,
            "kinds_missing": sorted(missing)}


def committed_costs() -> dict:
    """The per-iteration costs measured on the CPU and committed (``benchmarks/paper_grid_costs.json``'s
    ``"costs"``, written by ``hashrepro paper-grid --estimate``)."""
    import json

    from ..paths import repo_root

    return json.loads((repo_root() / "benchmarks" / "paper_grid_costs.json").read_text())["costs"]


def gpu_summary_outputs(date: str, papers=("dnnh", "drsch"), workers: int = 12) -> list:
    """The Reproduce page's GPU section for the device run of ``date`` (``results/gpu/<date>/``):
    the calls against the stated projection (:func:`grid_calls` with the committed CPU cost file
    ``benchmarks/paper_grid_costs.json``), the measured speed (:func:`gpu_speed_table`) and the
    sentence with the whole grid projected from the measured costs (:func:`full_grid_minutes`).
    Returns the list of things to display."""
    from IPython.display import Markdown

    from ..paths import results_root

    recs = [r for p in papers for r in load_gpu_records(p)]
    costs = committed_costs()
    full = full_grid_minutes(recs, workers)
    calls = grid_calls(results_root() / "gpu" / date / "logs", recs, costs, workers)
    mps = ", ".join(f"{c} {'with' if m == 'on' else 'without'} MPS" for c, m in zip(calls["call"], calls["MPS"]))
    text = (f"Measured: {gpu_sentence(recs)} Milliseconds per training iteration are per worker, with the "
            "other workers sharing the GPU; they are several times the projection's floor of 8 µs of host time "
            "per kernel. **The grid at the papers' schedules, projected from these measured costs: "
            f"{full['total']:.0f} minutes** ({full['train']:.0f} of training, {full['eval']:.0f} of evaluation, "
            f"{workers} workers) against the 10-minute target, from the mean cost over the calls ({mps})")
    if full["kinds_missing"]:
        names = sorted({f"{p} {v}" + ("" if b == "scratch" else f" [{b}]") for p, v, b in full["kinds_missing"]})
        text += f"; not counted, having no GPU record yet: {', '.join(names)}"
    text += "."
    return [calls, gpu_speed_table(recs), Markdown(text)]


def flop_floor_sentence(costs: Mapping | None = None, target_minutes: float | None = None) -> str:
    """What no implementation can beat: the counted FLOPs of the paper grid (174 runs, and the 126 runs
    without the comparison methods CNNH* and DSRH) at the papers' schedules, at 100 % of one H200's
    dense BF16 peak (``flop_floor`` of :func:`hashrepro.paper_grid_cost.project`), against the target.
    ``costs``: the per-iteration costs (default: the committed ``benchmarks/paper_grid_costs.json``)."""
    from ..paper_grid_configs import paper_grid
    from ..paper_grid_cost import GPU_PEAK_TFLOPS, TARGET_MINUTES, estimate

    if costs is None:
        costs = committed_costs()
    target = TARGET_MINUTES if target_minutes is None else float(target_minutes)
    whole = paper_grid()
    core = [gc for gc in whole if gc.variant not in ("cnnh-star", "dsrh")]
    parts = []
    for grid in (core, whole):
        p = estimate(grid, workers=1, costs=dict(costs))["projection"]
        top = max(p["flop_floor_by_part"].items(), key=lambda kv: kv[1])
        parts.append((len(grid), p["flop_floor"] / 60, top))
    (n_core, m_core, top_core), (n_all, m_all, _) = parts
    paper, backbone = top_core[0].split(" ", 1)
    top_name = f"{paper.upper()} " + ("from scratch" if backbone == "scratch" else f"on {backbone}")
    verdict = ("so the target cannot be met at the papers' schedules by any change of the code (CUDA graphs, fused "
               "or batched models remove launch cost, not arithmetic); only shorter schedules or more GPUs meet it"
               if m_core > target else "so launch cost, not arithmetic, is what stands between the code and the target")
    return (f"The floor under any implementation of these training loops: their counted FLOPs at the papers' "
            f"schedules take **{m_core:.1f} minutes** for the {n_core}-run grid ({top_name} alone "
            f"{top_core[1] / 60:.1f}) and {m_all:.1f} minutes for all {n_all} runs at 100 % of one H200's "
            f"{GPU_PEAK_TFLOPS:g} TFLOP/s dense BF16 peak, with no launch cost and free evaluation, against the "
            f"{target:g}-minute target; {verdict}. The recipes train in fp32, so the real floor is higher.")
