"""The Table-2 grid of the DNNH and DRSCH chapters as one command for a GPU machine.

    hashrepro paper-grid --estimate                       # CPU: a few iterations of every configuration,
                                                          # the projected GPU time, what fits in 10 min
    hashrepro paper-grid --device cuda --out $OUT --workers 12 --budget-minutes 10
    hashrepro paper-grid --device cpu --out /tmp/g --scale smoke --dataset digits --seeds 0   # logic check

The grid (:func:`paper_grid`), per regime (``backbone`` "scratch" — the papers' networks at
``scale="paper"`` — and "efficientnet_lite0" — the frozen ImageNet backbone's cached features with
each paper's head) and seed (0, 1, 2), on CIFAR-10:

* DNNH: variants ``dem``, ``fc``, ``two-subnets`` at 12, 24, 32 and 48 bits (12 per seed);
* DRSCH: ``dsch`` and ``drsch`` at 12, 24, 32, 48 bits, ``bs-drsch`` trained at 64 bits (its
  record carries the 64 → 12/24/32/48 truncation curve and the random-subset control) (9 per seed).

That is 21 configurations × 3 seeds × 2 regimes = 126 runs. Each is the recipe's own ``run``
(:func:`hashrepro.methods.dnnh.run`, :func:`hashrepro.methods.drsch.run`), saved with
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
being fractions of training already. The records say so: ``protocol["schedule"]`` =
``{"kind": "shortened", "iterations", "paper_iterations", "fraction", "budget_minutes"}`` (and
``"kind": "paper"`` for a full schedule), and the run name ends in ``_iterations-<n>``, so a
shortened record never stands in for a full one.

The projection (:func:`project`) and its constants, stated here and in the printed output:

* FLOPs of one training iteration are **counted** (``torch.utils.flop_counter.FlopCounterMode``
  over one iteration of :func:`hashrepro.train.fit`: forward, backward, the optimiser step; building
  the model is not counted); kernels per iteration are counted as the non-view ATen operations
  dispatched (one CUDA kernel each, at most);
* GPU: :data:`GPU_PEAK_TFLOPS` (H100/H200 SXM dense BF16 tensor-core peak) × :data:`GPU_EFFICIENCY`
  sustained on these small networks (batches of 64–100 32×32 images or 1280-d vectors) — the
  recipes train in fp32 (TF32 convolutions), so this is optimistic by up to 2× for the FLOP part;
* a per-iteration floor: every kernel costs :data:`HOST_US_PER_OP` µs of host time in its worker
  (eager PyTorch dispatch and launch; workers run in parallel, one CPU core each) and at least
  :data:`DEVICE_US_PER_KERNEL` µs of GPU time (kernels of all workers share the one GPU);
* evaluation (data loading, encoding, Hamming ranking, the metrics): :data:`EVAL_S` seconds of host
  time per configuration (from the committed CPU records' wall − train − encode time; encoding
  assumed free on the GPU), spread over the workers;
* total = max(GPU time: Σ iterations × max(FLOPs / sustained, kernels × device µs);
  host time: Σ iterations × kernels × host µs / workers) + Σ evaluation / workers.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["GridConfig", "PAPERS", "REGIMES", "SEEDS", "TABLE2", "paper_grid", "recipe_config", "measure_cost",
           "project", "fit_fraction", "shortened_iterations", "run_grid", "estimate", "format_estimate",
           "GPU_PEAK_TFLOPS", "GPU_EFFICIENCY", "HOST_US_PER_OP", "DEVICE_US_PER_KERNEL", "EVAL_S",
           "TARGET_MINUTES"]

PAPERS = ("dnnh", "drsch")
#: "scratch": the papers' networks (``scale="paper"``: Table 1's widths, the paper schedules);
#: "efficientnet_lite0": the frozen ImageNet backbone's pooled features with each paper's head.
REGIMES = ("scratch", "efficientnet_lite0")
SEEDS = (0, 1, 2)
#: Table 2 of each chapter: paper -> ((variant, (bits, ...)), ...).
TABLE2: dict[str, tuple] = {
    "dnnh": (("dem", (12, 24, 32, 48)), ("fc", (12, 24, 32, 48)), ("two-subnets", (12, 24, 32, 48))),
    "drsch": (("dsch", (12, 24, 32, 48)), ("drsch", (12, 24, 32, 48)), ("bs-drsch", (64,))),
}
#: The issue's target: both chapters' paper grids (3 seeds) in this many minutes on one GPU.
TARGET_MINUTES = 10.0

# ---------------------------------------------------------------- projection constants (stated)
#: Dense BF16 tensor-core peak of an H100/H200 SXM, TFLOP/s (vendor specification, no sparsity).
GPU_PEAK_TFLOPS = 989.0
#: Assumed sustained fraction of that peak on these small networks (all workers together).
GPU_EFFICIENCY = 0.20
#: Assumed host time per dispatched kernel in eager PyTorch (dispatch + launch), µs, per worker.
HOST_US_PER_OP = 8.0
#: Assumed minimum GPU time per kernel (launch latency + tiny-kernel occupancy), µs, all workers.
DEVICE_US_PER_KERNEL = 2.0
#: Assumed host seconds per configuration outside training (data, evaluation), per paper.
EVAL_S = {"dnnh": 20.0, "drsch": 45.0}
#: Feature width of the pretrained regime (EfficientNet-Lite0's pooled features).
FEATURE_DIM = 1280
#: The code length at which each variant's iteration is measured (its longest in Table 2).
MEASURE_BITS = {"dnnh": {"dem": 48, "fc": 48, "two-subnets": 48},
                "drsch": {"dsch": 48, "drsch": 48, "bs-drsch": 64}}


@dataclass(frozen=True, order=True)
class GridConfig:
    """One configuration of the grid: paper, variant, bits, seed, backbone (regime), dataset, scale."""

    paper: str
    variant: str
    bits: int
    seed: int
    backbone: str = "scratch"
    dataset: str = "cifar10"
    scale: str = "paper"

    @property
    def cost_key(self) -> tuple:
        """What the cost of an iteration depends on (the seed does not)."""
        return (self.paper, self.variant, self.bits, self.backbone, self.scale)

    @property
    def measure_key(self) -> tuple:
        """The configurations that share one measurement: the code length changes only the last
        layer (a few % of an iteration), so each (paper, variant, regime) is measured once, at the
        longest code of the grid (:data:`MEASURE_BITS`: the conservative choice)."""
        return (self.paper, self.variant, self.backbone, self.scale)

    def label(self) -> str:
        reg = "" if self.backbone == "scratch" else f" [{self.backbone}]"
        return f"{self.paper} {self.variant} {self.bits}b{reg}"

    def run_name(self, iterations: int | None = None) -> str:
        """File stem of the record, as ``hashrepro sweep`` names the same run
        (:func:`hashrepro.sweep.run_name_for`), with ``iterations-<n>`` for a shortened schedule."""
        from .sweep import run_name_for

        params: dict = {"dataset": self.dataset, "bits": self.bits, "seed": self.seed, "scale": self.scale}
        if self.paper == "drsch" or self.variant != "dem":
            params["variant"] = self.variant
        if self.backbone != "scratch":
            params["backbone"] = self.backbone
        if iterations is not None:
            params["iterations"] = int(iterations)
        return run_name_for(self.paper, params)


def _check_subset(name: str, given, valid) -> tuple:
    given = tuple(valid if given is None else given)
    bad = [g for g in given if g not in valid]
    if bad or not given:
        raise ValueError(f"{name} {list(bad) or '(empty)'} not in the paper grid; valid: {list(valid)}")
    return given


def paper_grid(papers: Sequence[str] | None = None, regimes: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None, dataset: str = "cifar10", scale: str = "paper",
               variants: Sequence[str] | None = None, bits: Sequence[int] | None = None) -> list[GridConfig]:
    """The Table-2 configurations (see the module docstring), optionally restricted.

    ``papers``, ``regimes``, ``variants`` and ``bits`` may only select from the grid (a value outside
    it is a ValueError naming the valid ones); ``seeds`` are any non-negative ints (default 0, 1, 2).
    Order: paper, regime, variant, bits, seed.
    """
    papers = _check_subset("papers", papers, PAPERS)
    regimes = _check_subset("regimes", regimes, REGIMES)
    all_variants = tuple(v for p in papers for v, _ in TABLE2[p])
    variants = _check_subset("variants", variants, all_variants)
    all_bits = tuple(sorted({b for p in papers for _, bs in TABLE2[p] for b in bs}))
    bits = _check_subset("bits", bits, all_bits)
    seeds = tuple(SEEDS if seeds is None else seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
    if scale not in ("smoke", "default", "paper"):
        raise ValueError(f"scale must be one of ('smoke', 'default', 'paper'), got {scale!r}")
    out = []
    for paper in papers:
        for regime in regimes:
            for variant, bit_list in TABLE2[paper]:
                if variant not in variants:
                    continue
                for b in bit_list:
                    if b not in bits:
                        continue
                    for s in seeds:
                        out.append(GridConfig(paper, variant, b, int(s), regime, dataset, scale))
    if not out:
        raise ValueError("the selection leaves no configuration of the paper grid (check --variants / --bits)")
    return out


# ---------------------------------------------------------------- recipe configs and schedules
def _module(paper: str):
    from .methods import dnnh, drsch

    return {"dnnh": dnnh, "drsch": drsch}[paper]


def recipe_config(gc: GridConfig, device: str = "auto", iterations: int | None = None):
    """The recipe's ``Config`` of ``gc`` (``for_scale(gc.scale, ...)``) on ``device``; with
    ``iterations`` a schedule shortened to that many iterations (DRSCH's absolute step schedules —
    lr step, slope and margin steps — scaled by the same factor; DNNH's are fractions already)."""
    mod = _module(gc.paper)
    kw = dict(dataset=gc.dataset, bits=gc.bits, seed=gc.seed, variant=gc.variant, device=device)
    if gc.backbone != "scratch":
        kw["backbone"] = gc.backbone
    if gc.paper == "dnnh":
        kw["progress"] = False
    cfg = mod.Config.for_scale(gc.scale, **kw)
    if iterations is None or iterations == cfg.iterations:
        return cfg
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if gc.paper == "drsch":
        f = iterations / cfg.iterations
        steps = {k: max(1, int(round(getattr(cfg, k) * f))) for k in ("lr_step", "slope_every", "margin_every")}
        return dataclasses.replace(cfg, iterations=int(iterations), **steps)
    return dataclasses.replace(cfg, iterations=int(iterations))


def paper_iterations(gc: GridConfig) -> int:
    """Iterations of ``gc``'s schedule at its scale (100,000 for DNNH and 800,000 for DRSCH at "paper")."""
    return int(recipe_config(gc, device="cpu").iterations)


# ---------------------------------------------------------------- cost of an iteration
class _OpCounter:
    """Counts the non-view ATen operations dispatched (≈ kernels launched on a GPU)."""

    def __new__(cls):
        from torch.utils._python_dispatch import TorchDispatchMode

        class Mode(TorchDispatchMode):
            def __init__(self):
                super().__init__()
                self.n = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if not getattr(func, "is_view", False):
                    self.n += 1
                return func(*args, **(kwargs or {}))

        return Mode()


def _train_fn(gc: GridConfig):
    """A function ``train(iterations)`` running the recipe's own training loop for ``gc`` on
    synthetic inputs of the right shape (CIFAR-10-sized training set, 10 classes)."""
    import torch

    from .train import seed_everything

    g = torch.Generator().manual_seed(0)
    n = 5000
    labels = torch.arange(n) % 10
    pretrained = gc.backbone != "scratch"
    base = recipe_config(dataclasses.replace(gc, dataset="cifar10") if gc.dataset != "cifar10" else gc, "cpu")
    if gc.paper == "dnnh":
        from .methods import dnnh

        x = torch.rand(n, FEATURE_DIM, generator=g) if pretrained else torch.randn(n, 3, 32, 32, generator=g)

        def train(its: int) -> None:
            cfg = dataclasses.replace(base, iterations=its, progress=False)
            dnnh.train_net(cfg, x, labels, torch.device("cpu"), seed_everything(0))
    else:
        from .methods import drsch

        x = torch.rand(n, FEATURE_DIM, generator=g) if pretrained else \
            torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)

        def train(its: int) -> None:
            cfg = dataclasses.replace(base, iterations=its, flip=not pretrained)
            drsch.train_model(cfg, x, labels.numpy(), "cpu", progress=False)
    return train


def measure_cost(gc: GridConfig, iterations: int = 1) -> dict:
    """Cost of one training iteration of ``gc`` on this CPU (the recipe's loop, synthetic inputs).

    Returns ``{"cpu_s_per_it", "flops_per_it", "kernels_per_it"}``. Only what
    :func:`hashrepro.train.fit` runs is measured (building the model and the data is not): one
    iteration under ``FlopCounterMode`` and the op counter (FLOPs and non-view ATen operations of
    forward, backward, optimiser and schedule steps; it also warms the kernels up), then
    ``iterations`` timed ones, timed in **CPU time** of this process (``time.process_time``; with one
    thread that is the loop's cost, not inflated when other processes share the cores).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from . import train as train_mod

    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    run = _train_fn(gc)
    orig_fit = train_mod.fit
    seen: dict = {}

    def counted_fit(*a, **k):
        ops = _OpCounter()
        with FlopCounterMode(display=False) as fc, ops:
            out = orig_fit(*a, **k)
        seen.update(flops=fc.get_total_flops(), kernels=ops.n)
        return out

    def timed_fit(*a, **k):
        t0 = time.process_time()
        out = orig_fit(*a, **k)
        seen["cpu_s"] = time.process_time() - t0
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            train_mod.fit = counted_fit
            run(1)
            train_mod.fit = timed_fit
            run(iterations)
        finally:
            train_mod.fit = orig_fit
    return {"cpu_s_per_it": seen["cpu_s"] / iterations, "flops_per_it": float(seen["flops"]),
            "kernels_per_it": int(seen["kernels"])}


# ---------------------------------------------------------------- projection
def _gpu_s_per_it(cost: dict) -> float:
    sustained = GPU_PEAK_TFLOPS * 1e12 * GPU_EFFICIENCY
    return max(cost["flops_per_it"] / sustained, cost["kernels_per_it"] * DEVICE_US_PER_KERNEL * 1e-6)


def _host_s_per_it(cost: dict) -> float:
    return cost["kernels_per_it"] * HOST_US_PER_OP * 1e-6


def project(rows: Iterable[tuple[GridConfig, int, dict]], workers: int) -> dict:
    """Projected GPU wall time of ``rows`` = (config, iterations, cost) run by ``workers`` processes
    on one GPU (model in the module docstring). Returns seconds: ``gpu`` (device-bound training),
    ``host`` (launch-bound training, per worker), ``eval`` (per worker) and ``total``."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    gpu = host = ev = 0.0
    for gc, its, cost in rows:
        gpu += its * _gpu_s_per_it(cost)
        host += its * _host_s_per_it(cost)
        ev += EVAL_S.get(gc.paper, 30.0)
    return {"gpu": gpu, "host": host / workers, "eval": ev / workers,
            "total": max(gpu, host / workers) + ev / workers}


def fit_fraction(rows: Sequence[tuple[GridConfig, int, dict]], workers: int, budget_s: float) -> float:
    """The largest factor f ≤ 1 by which every schedule can be multiplied so that the projected
    total fits in ``budget_s`` seconds (0 when evaluation alone does not fit)."""
    p = project(rows, workers)
    train = p["total"] - p["eval"]
    if p["total"] <= budget_s:
        return 1.0
    if train <= 0 or budget_s <= p["eval"]:
        return 0.0
    return min(1.0, (budget_s - p["eval"]) / train)


def shortened_iterations(full: int, fraction: float) -> int:
    """Iterations of a schedule of ``full`` iterations shortened by ``fraction`` (at least 1)."""
    return max(1, int(math.floor(full * fraction)))


def _costs_by_key(configs: Sequence[GridConfig], iterations: int, costs: dict | None = None,
                  log=None) -> dict:
    """Cost of every configuration (key :func:`_key_str`), measuring each ``measure_key`` once at
    its longest code (``costs`` given: only what is missing)."""
    costs = dict(costs or {})
    measured: dict = {}
    for gc in configs:
        key = _key_str(gc)
        if key in costs:
            continue
        if gc.measure_key not in measured:
            rep = dataclasses.replace(gc, bits=MEASURE_BITS[gc.paper][gc.variant])
            t0 = time.process_time()
            measured[gc.measure_key] = measure_cost(rep, iterations)
            if log:
                log(f"  measured {rep.label():40s} {measured[gc.measure_key]['cpu_s_per_it']:.3f} CPU s/it "
                    f"({time.process_time() - t0:.0f} CPU s)")
        costs[key] = dict(measured[gc.measure_key], measured_at_bits=MEASURE_BITS[gc.paper][gc.variant])
    return costs


def _key_str(gc: GridConfig) -> str:
    return "|".join(str(v) for v in gc.cost_key)


def estimate(configs: Sequence[GridConfig], workers: int, iterations: int = 1, budget_minutes: float | None = None,
             costs: dict | None = None, log=None) -> dict:
    """Measure (or take from ``costs``) the cost of every distinct configuration of ``configs`` and
    project the grid; returns ``{"rows", "projection", "fraction", "costs", ...}`` for
    :func:`format_estimate`. Writes nothing."""
    costs = _costs_by_key(configs, iterations, costs, log)
    rows = [(gc, paper_iterations(gc), costs[_key_str(gc)]) for gc in configs]
    target_s = 60.0 * (budget_minutes if budget_minutes is not None else TARGET_MINUTES)
    return {"rows": rows, "workers": workers, "projection": project(rows, workers), "target_s": target_s,
            "fraction": fit_fraction(rows, workers, target_s), "costs": costs,
            "budget_minutes": budget_minutes}


def format_estimate(est: dict) -> str:
    """The dry-run table: one line per distinct configuration (seeds share a cost), then the totals,
    the constants of the projection, the verdict against the target and what would fit."""
    rows, workers, p = est["rows"], est["workers"], est["projection"]
    groups: dict = {}
    for gc, its, cost in rows:  # one line per measurement (seeds and code lengths share one)
        groups.setdefault(gc.measure_key, [gc, its, cost, 0])[3] += 1
    lines = [f"{'configuration':44s} {'runs':>5s} {'CPU s/it':>9s} {'GFLOP/it':>9s} {'kernels/it':>10s} "
             f"{'paper its':>10s} {'GPU s/it':>9s} {'GPU min (1 run)':>15s}"]
    for gc, its, cost, n in groups.values():
        g = max(_gpu_s_per_it(cost), _host_s_per_it(cost))
        label = f"{gc.paper} {gc.variant} (measured at {cost.get('measured_at_bits', gc.bits)}b)" + \
            ("" if gc.backbone == "scratch" else f" [{gc.backbone}]")
        lines.append(f"{label:44s} {n:5d} {cost['cpu_s_per_it']:9.3f} {cost['flops_per_it'] / 1e9:9.2f} "
                     f"{cost['kernels_per_it']:10d} {its:10d} {g * 1e3:7.3f}ms {its * g / 60 + EVAL_S.get(gc.paper, 30) / 60:15.1f}")
    sustained = GPU_PEAK_TFLOPS * GPU_EFFICIENCY
    lines += [
        "",
        f"projection model: GPU s/it = max(FLOPs / ({GPU_PEAK_TFLOPS:g} TFLOP/s BF16 peak x {GPU_EFFICIENCY:g} sustained "
        f"= {sustained:g} TFLOP/s), kernels x {DEVICE_US_PER_KERNEL:g} us); host floor = kernels x "
        f"{HOST_US_PER_OP:g} us per worker; evaluation {', '.join(f'{k} {v:g} s' for k, v in EVAL_S.items())} "
        f"of host time per configuration; {workers} worker process(es) share the GPU.",
        "  FLOPs and kernels are counted on this CPU (FlopCounterMode, non-view ATen ops; forward + backward + "
        "optimiser step of one fit() iteration); CPU s/it is process CPU time; each (paper, variant, regime) is "
        "measured once at its longest code (the code length changes only the last layer); the recipes train "
        "in fp32 (TF32 convolutions on a GPU), so the FLOP part is optimistic by up to 2x.",
        f"{len(rows)} runs: GPU-bound training {p['gpu'] / 60:.1f} min, launch-bound training "
        f"{p['host'] / 60:.1f} min per worker, evaluation {p['eval'] / 60:.1f} min per worker",
        f"projected total on one H200-class GPU: {p['total'] / 60:.1f} min "
        f"(target {est['target_s'] / 60:g} min: {'fits' if p['total'] <= est['target_s'] else 'does NOT fit'})",
    ]
    f = est["fraction"]
    if f < 1.0:
        per_paper: dict = {}
        for gc, its, _ in rows:
            per_paper.setdefault((gc.paper, its), 0)
        fits = ", ".join(f"{paper} {shortened_iterations(its, f):,} of {its:,} iterations"
                         for paper, its in sorted(per_paper))
        if f > 0:
            lines.append(f"what fits in {est['target_s'] / 60:g} min: every schedule x {f:.4f} ({fits}); "
                         f"--budget-minutes {est['target_s'] / 60:g} runs that, records marked "
                         f"protocol['schedule']['kind'] = 'shortened'")
        else:
            lines.append(f"nothing fits in {est['target_s'] / 60:g} min: evaluation alone takes "
                         f"{p['eval'] / 60:.1f} min; use more workers or fewer configurations")
    return "\n".join(lines)


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
    if gc.paper == "dnnh":
        cfg = dataclasses.replace(cfg, num_threads=threads or None)
    elif threads:
        cfg = dataclasses.replace(cfg, threads=int(threads))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = _module(gc.paper).run(cfg)
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
