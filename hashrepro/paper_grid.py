"""The Table-2 grid of the DNNH and DRSCH chapters as one command for a GPU machine.

    hashrepro paper-grid --estimate                       # CPU: a few iterations of every configuration,
                                                          # the projected GPU time, what fits in 10 min
    hashrepro paper-grid --device cuda --out $OUT --workers 12 --budget-minutes 10
    hashrepro paper-grid --device cpu --out /tmp/g --scale smoke --dataset digits --seeds 0   # logic check

The grid (:func:`paper_grid`), per regime (``backbone`` "scratch" — the papers' networks at
``scale="paper"`` — and "efficientnet_lite0" — the frozen ImageNet backbone's cached features with
each paper's head) and seed (0, 1, 2), on CIFAR-10:

* DNNH: variants ``dem``, ``fc``, ``two-subnets`` and the comparison method CNNH* (``cnnh-star``,
  :mod:`hashrepro.methods.cnnh`) at 12, 24, 32 and 48 bits (16 per seed);
* DRSCH: ``dsch``, ``drsch`` and the comparison method DSRH (``dsrh``, ``variant="dsrh"`` of the
  DRSCH recipe) at 12, 24, 32, 48 bits, ``bs-drsch`` trained at 64 bits (its record carries the
  64 → 12/24/32/48 truncation curve and the random-subset control) (13 per seed).

That is 29 configurations × 3 seeds × 2 regimes = 174 runs. Each is the recipe's own ``run``
(:func:`hashrepro.methods.dnnh.run`, :func:`hashrepro.methods.cnnh.run`,
:func:`hashrepro.methods.drsch.run`), saved with
:func:`hashrepro.results.save_run` as one JSON per configuration under ``<out>/results/<paper>/``
(atomic); a configuration whose record is complete is skipped (resumable). Runs go to a pool of
``workers`` processes that share the one device (concurrent CUDA contexts; with the CUDA MPS daemon
running, their kernels can overlap); the training data sits on the device (see the recipes'
``train_net`` / ``train_model``), and :func:`hashrepro.train.fit` reads the loss back only every
``log_every`` iterations on a GPU. Seed 0 of every configuration runs first, then seed 1, then 2,
longest first within a seed, so that a grid stopped by ``deadline_minutes`` is a complete table
with fewer seeds rather than a table with holes.

``budget_minutes`` shortens every schedule by the one factor that makes the *projected* total fit
(:func:`fit_fraction`; never lengthens it): iterations, and for DRSCH its step schedules (lr step,
slope and margin steps, all in absolute iterations) scaled by the same factor, DNNH's ε and lr steps
being fractions of training already (CNNH*'s too: it has DNNH's schedule), DSRH's as DRSCH's. The
records say so: ``protocol["schedule"]`` =
``{"kind": "shortened", "iterations", "paper_iterations", "fraction", "budget_minutes"}`` (and
``"kind": "paper"`` for a full schedule), and the run name carries ``_iterations-<n>``, so a
shortened record never stands in for a full one.

Three modules, one direction of imports: the configurations (:func:`paper_grid`,
:class:`GridConfig`, :func:`recipe_config`, :func:`shortened_iterations`) are
:mod:`hashrepro.paper_grid_configs`; the cost of an iteration measured on a CPU and its projection
to one GPU (:func:`measure_cost`, :func:`project`, :func:`fit_fraction`, :func:`estimate`,
:func:`format_estimate` and the projection's stated constants :data:`GPU_PEAK_TFLOPS`,
:data:`GPU_EFFICIENCY`, :data:`HOST_US_PER_OP`, :data:`DEVICE_US_PER_KERNEL`, :data:`EVAL_S`) are
:mod:`hashrepro.paper_grid_cost`; running the grid (:func:`run_grid`) and the command are here.
Every name of :data:`__all__` is importable from this module.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Sequence

# re-exported: the grid's configurations and its cost model lived here
from .paper_grid_configs import (METHOD_VARIANTS, PAPERS, REGIMES, SEEDS, TABLE2, GridConfig,  # noqa: F401
                                 _check_subset, _module, paper_grid, paper_iterations, recipe_config,
                                 shortened_iterations)
from .paper_grid_cost import (DEVICE_US_PER_KERNEL, EVAL_S, FEATURE_DIM, GPU_EFFICIENCY,  # noqa: F401
                              GPU_PEAK_TFLOPS, HOST_US_PER_OP, MEASURE_BITS, TARGET_MINUTES, _costs_by_key,
                              _gpu_s_per_it, _host_s_per_it, _key_str, _OpCounter, _train_fn, estimate,
                              fit_fraction, format_estimate, measure_cost, project)

__all__ = ["GridConfig", "PAPERS", "REGIMES", "SEEDS", "TABLE2", "METHOD_VARIANTS", "paper_grid", "recipe_config",
           "measure_cost", "project", "fit_fraction", "shortened_iterations", "run_grid", "estimate", "format_estimate",
           "GPU_PEAK_TFLOPS", "GPU_EFFICIENCY", "HOST_US_PER_OP", "DEVICE_US_PER_KERNEL", "EVAL_S",
           "TARGET_MINUTES"]


# ---------------------------------------------------------------- running the grid
def _record_path(out: Path, gc: GridConfig, iterations: int | None) -> Path:
    return out / "results" / gc.paper / f"{gc.run_name(iterations)}.json"


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def _run_one(gc: GridConfig, device: str, iterations: int | None, full: int, out: str,
             budget_minutes: float | None, threads: int | None = None) -> dict:
    """Run one configuration with the recipe's ``run`` and save its record; returns a summary."""
    import torch

    from .results import save_run

    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    cfg = recipe_config(gc, device=device, iterations=iterations)
    if gc.paper == "dnnh":  # DNNH's and CNNH*'s Config (``num_threads``)
        cfg = dataclasses.replace(cfg, num_threads=threads or None)
    elif threads:
        cfg = dataclasses.replace(cfg, threads=int(threads))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = _module(gc.paper, gc.variant).run(cfg)
    its = int(cfg.iterations)
    sched = {"kind": "paper" if its == full else "shortened", "iterations": its, "paper_iterations": full,
             "fraction": its / full}
    if its != full:
        sched["budget_minutes"] = budget_minutes
    rec["protocol"]["schedule"] = sched
    path = save_run(rec, Path(out) / "results", gc.run_name(None if its == full else its))
    m = rec["metrics"].get("map")
    return {"name": path.stem, "map": float("nan") if m is None else float(m), "seconds": time.perf_counter() - t0}


def _order(configs: Sequence[GridConfig], cost_s: dict | None) -> list[GridConfig]:
    """Seed by seed; within a seed the longest first (by ``cost_s[config]`` when known)."""
    cost_s = cost_s or {}
    return sorted(configs, key=lambda gc: (gc.seed, -cost_s.get(gc, 0.0), gc))


def run_grid(configs: Sequence[GridConfig], out: str | os.PathLike, device: str = "auto", workers: int = 1,
             threads: int | None = 1, fraction: float = 1.0, budget_minutes: float | None = None,
             deadline_minutes: float | None = None, cost_s: dict | None = None, log=print) -> dict:
    """Run ``configs`` (records under ``<out>/results/<paper>/``), skipping complete records.

    ``fraction`` < 1 shortens every schedule (:func:`shortened_iterations`); ``workers`` > 1 runs a
    spawn-based process pool sharing ``device``; no configuration starts after ``deadline_minutes``.
    ``threads``: torch CPU threads per worker. Returns counts ``{"done", "skipped", "failed",
    "not_started"}`` and ``failures`` (name → one-line error).
    """
    from .results import is_complete
    from .train import resolve_device

    resolve_device(device)  # a clear error here, not in every worker, when CUDA is asked for but absent
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    out = Path(out)
    todo, skipped = [], 0
    for gc in _order(configs, cost_s):
        full = paper_iterations(gc)
        its = None if fraction >= 1 else shortened_iterations(full, fraction)
        if its is not None and its >= full:
            its = None
        if is_complete(_record_path(out, gc, its)):
            skipped += 1
            continue
        todo.append((gc, its, full))
    log(f"paper grid: {len(configs)} configuration(s), {skipped} already done, {len(todo)} to run on {device} "
        f"with {workers} worker(s)" + (f", schedules x {fraction:.4f}" if fraction < 1 else ""))
    t_end = None if deadline_minutes is None else time.monotonic() + 60.0 * deadline_minutes
    res = {"done": 0, "skipped": skipped, "failed": 0, "not_started": 0, "failures": {}}

    def report(gc, fut_or_result, err=None):
        if err is not None:
            res["failed"] += 1
            msg = " ".join(str(err).split())[:300]
            res["failures"][gc.run_name()] = f"{type(err).__name__}: {msg}"
            log(f"  FAILED {gc.label()} seed {gc.seed}: {type(err).__name__}: {msg}")
        else:
            res["done"] += 1
            log(f"  done {fut_or_result['name']}: map {fut_or_result['map']:.4f}, {fut_or_result['seconds']:.0f} s")

    args = lambda gc, its, full: (gc, device, its, full, str(out), budget_minutes, threads)  # noqa: E731
    if workers == 1:
        for i, (gc, its, full) in enumerate(todo):
            if t_end is not None and time.monotonic() > t_end:
                res["not_started"] = len(todo) - i
                break
            try:
                report(gc, _run_one(*args(gc, its, full)))
            except Exception as exc:  # noqa: BLE001 - one failed configuration does not stop the grid
                report(gc, None, exc)
    else:
        import multiprocessing as mp

        queue = list(todo)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(threads or 1,)) as pool:
            running = {}
            while queue or running:
                while queue and len(running) < workers and (t_end is None or time.monotonic() < t_end):
                    gc, its, full = queue.pop(0)
                    running[pool.submit(_run_one, *args(gc, its, full))] = gc
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    gc = running.pop(fut)
                    try:
                        report(gc, fut.result())
                    except Exception as exc:  # noqa: BLE001
                        report(gc, None, exc)
            res["not_started"] = len(queue)
    log(f"paper grid: {res['done']} done, {res['skipped']} skipped (already done), {res['failed']} failed, "
        f"{res['not_started']} not started (deadline)")
    return res


def prepare_features(configs: Sequence[GridConfig], log=print) -> None:
    """Compute (or find) the backbone feature caches the pretrained rows need, once, before the
    workers start (so that they do not all extract the same features)."""
    from . import data
    from .features import dataset_features

    seen = set()
    for gc in configs:
        if gc.backbone == "scratch" or (gc.dataset, gc.backbone) in seen:
            continue
        seen.add((gc.dataset, gc.backbone))
        t0 = time.perf_counter()
        dataset_features(data.load(gc.dataset), gc.backbone)
        log(f"features {gc.dataset} {gc.backbone}: ready ({time.perf_counter() - t0:.0f} s)")


def main_cli(args) -> int:
    """``hashrepro paper-grid`` (see :func:`hashrepro.cli.build_parser`)."""
    configs = paper_grid(args.papers, args.regimes, args.seeds, dataset=args.dataset, scale=args.scale,
                         variants=args.variants, bits=args.bits)
    log = lambda s: print(s, flush=True)  # noqa: E731
    costs = None
    if args.costs:
        try:
            costs = json.loads(Path(args.costs).read_text())["costs"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"--costs {args.costs}: not a cost file written by --estimate --save-costs "
                             f"({type(exc).__name__})") from None
    if args.estimate:
        import torch

        torch.set_num_threads(args.threads or 1)
        log(f"estimate: {len(configs)} runs, {len({gc.measure_key for gc in configs})} measurements, "
            f"{args.estimate_iterations} timed CPU iteration(s) each ({torch.get_num_threads()} thread(s))")
        est = estimate(configs, args.workers, args.estimate_iterations, args.budget_minutes, costs, log)
        print(format_estimate(est), flush=True)
        if args.save_costs:
            from .atomic import atomic_write

            atomic_write(args.save_costs, json.dumps({"costs": est["costs"], "note": "hashrepro paper-grid "
                                                      "--estimate: per-iteration cost on a CPU"}, indent=1) + "\n")
        return 0
    fraction, cost_s = 1.0, None
    if args.budget_minutes is not None:
        costs = _costs_by_key(configs, args.estimate_iterations, costs, log)
        rows = [(gc, paper_iterations(gc), costs[_key_str(gc)]) for gc in configs]
        fraction = fit_fraction(rows, args.workers, 60.0 * args.budget_minutes)
        if fraction <= 0:
            raise ValueError(f"--budget-minutes {args.budget_minutes:g}: the projected evaluation alone does not "
                             f"fit; give more minutes or --workers")
        cost_s = {gc: its * max(_gpu_s_per_it(c), _host_s_per_it(c)) for gc, its, c in rows}
        log(f"budget {args.budget_minutes:g} min: schedules x {fraction:.4f} (projected)")
    if any(gc.backbone != "scratch" for gc in configs):
        prepare_features(configs, log)
    res = run_grid(configs, args.out, device=args.device, workers=args.workers, threads=args.threads,
                   fraction=fraction, budget_minutes=args.budget_minutes, deadline_minutes=args.deadline_minutes,
                   cost_s=cost_s, log=log)
    return 0 if res["failed"] == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["paper-grid", *sys.argv[1:]]))
