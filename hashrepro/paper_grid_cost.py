"""What the paper grid costs: one training iteration measured on a CPU, projected to one GPU.

:func:`measure_cost` runs one iteration of a configuration's own training loop (the recipe's
``train_net`` / ``train_model`` through :func:`hashrepro.train.fit`, on synthetic inputs of the
right shape) and counts it; :func:`project` turns the counts into a GPU time for the grid;
:func:`fit_fraction` is the factor by which every schedule must be shortened to fit a budget;
:func:`estimate` and :func:`format_estimate` are ``hashrepro paper-grid --estimate``. The
configurations are :mod:`hashrepro.paper_grid_configs`; running them is :mod:`hashrepro.paper_grid`
(which re-exports these names).

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
  assumed free on the GPU), spread over the workers; the comparison methods take their chapter's
  (CNNH*'s stage 1 — the approximate codes from the labels, once per run, before its training
  loop — is counted there: about 1 s on CIFAR-10's 5,000 training images, the mean
  ``stage1_time_s`` of the committed default-scale CNNH* records being 0.8–1.3 s, well inside
  DNNH's 20 s; DSRH's evaluation is DRSCH's);
* total = max(GPU time: Σ iterations × max(FLOPs / sustained, kernels × device µs);
  host time: Σ iterations × kernels × host µs / workers) + Σ evaluation / workers.

Beside the projection, :func:`project` gives a **floor** that no implementation of these networks can
beat on that GPU: Σ iterations × counted FLOPs / the *full* BF16 peak (no launches, perfect fusion,
batching of seeds and lengths, 100 % utilisation), per (paper, regime) too. When the floor alone
exceeds the target, the target cannot be met at the paper's schedules by any change of the code,
only by shorter schedules (:func:`fit_fraction`) or more GPUs, and the estimate says so.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Iterable, Sequence

from .paper_grid_configs import GridConfig, paper_iterations, recipe_config, shortened_iterations

__all__ = ["measure_cost", "project", "fit_fraction", "estimate", "format_estimate", "GPU_PEAK_TFLOPS",
           "GPU_EFFICIENCY", "HOST_US_PER_OP", "DEVICE_US_PER_KERNEL", "EVAL_S", "TARGET_MINUTES", "FEATURE_DIM",
           "MEASURE_BITS"]

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
MEASURE_BITS = {"dnnh": {"dem": 48, "fc": 48, "two-subnets": 48, "cnnh-star": 48},
                "drsch": {"dsch": 48, "drsch": 48, "bs-drsch": 64, "dsrh": 48}}


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
    synthetic inputs of the right shape (CIFAR-10-sized training set, 10 classes).

    DNNH: :func:`hashrepro.methods.dnnh.train_net` on (5000, 3, 32, 32) Gaussian images or (5000,
    1280) features; CNNH*: its stage 2, :func:`hashrepro.methods.cnnh.train_net`, on the same inputs
    with random ±1 targets (5000, bits) standing in for the stage-1 codes (stage 1 runs once per run,
    outside the loop: counted in the evaluation, see the module docstring); DRSCH and DSRH
    (``variant="dsrh"``: DSRH's loss in the same loop): :func:`hashrepro.methods.drsch.train_model`
    on (5000, 3, 32, 32) uint8 images or (5000, 1280) features."""
    import torch

    from .train import seed_everything

    g = torch.Generator().manual_seed(0)
    n = 5000
    labels = torch.arange(n) % 10
    pretrained = gc.backbone != "scratch"
    base = recipe_config(dataclasses.replace(gc, dataset="cifar10") if gc.dataset != "cifar10" else gc, "cpu")
    if gc.variant == "cnnh-star":
        from .methods import cnnh

        x = torch.rand(n, FEATURE_DIM, generator=g) if pretrained else torch.randn(n, 3, 32, 32, generator=g)
        targets = torch.randint(0, 2, (n, base.bits), generator=g).float() * 2 - 1

        def train(its: int) -> None:
            cfg = dataclasses.replace(base, iterations=its, progress=False)
            cnnh.train_net(cfg, x, targets, None, torch.device("cpu"), seed_everything(0))
    elif gc.paper == "dnnh":
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
    floor: dict[str, float] = {}
    for gc, its, cost in rows:
        gpu += its * _gpu_s_per_it(cost)
        host += its * _host_s_per_it(cost)
        ev += EVAL_S.get(gc.paper, 30.0)
        part = f"{gc.paper} {gc.backbone}"
        floor[part] = floor.get(part, 0.0) + its * cost["flops_per_it"] / (GPU_PEAK_TFLOPS * 1e12)
    return {"gpu": gpu, "host": host / workers, "eval": ev / workers,
            "total": max(gpu, host / workers) + ev / workers,
            "flop_floor": sum(floor.values()), "flop_floor_by_part": floor}


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
        f"floor for any implementation (the counted FLOPs at 100% of the {GPU_PEAK_TFLOPS:g} TFLOP/s BF16 peak, "
        f"no launch cost, evaluation free): {p['flop_floor'] / 60:.1f} min ("
        + ", ".join(f"{k} {v / 60:.1f}" for k, v in sorted(p["flop_floor_by_part"].items(), key=lambda kv: -kv[1]))
        + ")" + (f"; above the {est['target_s'] / 60:g}-min target, so no change of the code meets it at these "
                 "schedules: only shorter schedules or more GPUs do" if p["flop_floor"] > est["target_s"] else ""),
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
