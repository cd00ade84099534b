"""Why DRSCH on the frozen ImageNet features leaves bits dead at 48 bits (issue 15): schedule length
or settings?

On the CPU (``scale="default"``: 3,000 iterations, lr 0.01 with momentum 0.9, gradient clipping,
slope and margin steps every 100 iterations) every DRSCH run at 48 bits and every BS-DRSCH run at
64 bits on the backbone is flagged ``constant_bits`` (most bits take one value over the whole
database); on the GPU (the paper-scale settings, lr 0.0033 without momentum or clipping, the
released step schedule, shortened to 16,320 iterations) none is. Two controls, 48 bits, seeds 0-2:

* ``long-cpu-settings``: the CPU settings, 16,320 iterations, every step schedule (lr step, slope
  and margin steps) stretched by the same factor (16,320 / 3,000);
* ``paper-settings-short``: the paper-scale settings shortened to the CPU's 3,000 iterations (as
  ``hashrepro paper-grid`` shortens: step schedules scaled by the same factor).

Records (the recipe's own ``run``, so the diagnostics flags are the chapter's) go to
``results/diagnostics/drsch_dead_bits/`` -- apart from the chapter's records, so these
non-standard schedules never fill a table cell or a claim. The DRSCH page reads them
(:func:`hashrepro.plots.drsch_page.dead_bits_outputs`). Nothing here looks at the queries: the flag
is computed on the database codes.

    python benchmarks/drsch_dead_bits.py [--seeds 0 1 2] [--controls long-cpu-settings paper-settings-short]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings

CONTROLS = ("long-cpu-settings", "paper-settings-short")
LONG_ITERATIONS = 16320      # what the GPU run's 10-minute budget gave DRSCH (x 0.0204 of 800,000)
OUT = "results/diagnostics/drsch_dead_bits"


def control_config(control: str, seed: int, bits: int = 48):
    """The DRSCH Config of one control (see the module docstring)."""
    from hashrepro.methods import drsch
    from hashrepro.paper_grid import GridConfig, recipe_config

    if control == "long-cpu-settings":
        cfg = drsch.Config.for_scale("default", dataset="cifar10", bits=bits, seed=seed, variant="drsch",
                                     backbone="efficientnet_lite0")
        f = LONG_ITERATIONS / cfg.iterations
        steps = {k: max(1, int(round(getattr(cfg, k) * f))) for k in ("lr_step", "slope_every", "margin_every")}
        return dataclasses.replace(cfg, iterations=LONG_ITERATIONS, **steps)
    if control == "paper-settings-short":
        cpu_its = drsch.Config.for_scale("default", backbone="efficientnet_lite0").iterations
        return recipe_config(GridConfig("drsch", "drsch", bits, seed, "efficientnet_lite0", "cifar10", "paper"),
                             device="cpu", iterations=cpu_its)
    raise ValueError(f"control {control!r} is not one of {CONTROLS}")


def main(argv=None) -> int:
    from hashrepro.methods import drsch
    from hashrepro.results import save_run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--controls", nargs="+", choices=CONTROLS, default=list(CONTROLS))
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args(argv)
    cmd = "python benchmarks/drsch_dead_bits.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for control in a.controls:
        for seed in a.seeds:
            cfg = control_config(control, seed)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = drsch.run(dataclasses.replace(cfg, device="cpu"), command=cmd.strip())
            rec["protocol"]["control"] = control
            path = save_run(rec, a.out, f"drsch_cifar10_48b_seed{seed}_{control}")
            flags = "; ".join(rec.get("flags", [])) or "not flagged"
            print(f"{control:22s} seed {seed}: map {rec['metrics']['map']:.4f}, {cfg.iterations} it, "
                  f"{time.perf_counter() - t0:.0f} s, {flags} -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
