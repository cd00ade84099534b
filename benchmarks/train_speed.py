"""Training speed of the DNNH and DRSCH recipes on this machine's CPU: fp32 vs bf16 autocast vs
channels-last (vs both), with the ratio against today's loop (fp32, contiguous NCHW) in one run.

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py                 # speed table only
    OMP_NUM_THREADS=1 python benchmarks/train_speed.py --iterations 40 --threads 1
    OMP_NUM_THREADS=1 python benchmarks/train_speed.py --map-check      # + mAP at equal schedule

Loops timed (each is the recipe's own training function, ``dnnh.train_net`` or
``drsch.train_model``, at the recipe's ``"default"`` scale; only ``iterations`` is changed):

* ``dnnh-scratch``     DNNH DEM at 48 bits, NIN at width 1/4 on 32×32 images, batch 64;
* ``drsch-scratch``    DRSCH at 32 bits on 32×32 uint8 images (30×30 crops), batch 10 × 10;
* ``dnnh-pretrained``  DNNH DEM at 48 bits on 1280-d cached backbone features, batch 64;
* ``drsch-pretrained`` DRSCH at 32 bits on 1280-d cached backbone features, batch 10 × 10.

The inputs are synthetic (random images / features of the training-set size, 10 classes): the
time of an iteration does not depend on the pixel values. Each (loop, variant) first runs
``--warmup`` iterations (oneDNN primitive creation), then ``--iterations`` timed ones; images/s
= iterations × batch size ÷ the **CPU time** of the process during the timed call (``time.process_time``:
with one thread it is the cost of the loop, and unlike wall time it does not grow when other
processes share the cores; it includes building the model, a few ms).

Variants: ``fp32`` (today's loop, the reference), ``bf16`` (``torch.autocast("cpu",
dtype=torch.bfloat16)`` around the whole training call: forward in bf16 where autocast allows,
parameters and optimiser state stay fp32), ``channels_last`` (model and images in
``torch.channels_last``; only for the convolutional scratch loops) and ``bf16+cl``.

``--map-check`` then trains the variants that were faster than fp32 by at least
``--min-speedup`` for real (``run`` of the recipe on ``--dataset``, default scale but
``--map-iterations`` iterations, seeds ``--seeds``) and prints mAP mean ± std per variant, so that a
faster variant is judged at equal schedule against seed noise.
"""
from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

LOOPS = ("dnnh-scratch", "drsch-scratch", "dnnh-pretrained", "drsch-pretrained")
VARIANTS = ("fp32", "bf16", "channels_last", "bf16+cl")


@contextlib.contextmanager
def variant_context(variant: str, module):
    """Apply ``variant`` to the recipe ``module`` (``hashrepro.methods.dnnh`` / ``drsch``) while
    inside: autocast for bf16, and a ``build_model`` that returns a channels-last model for cl."""
    orig = module.build_model
    if "cl" in variant or variant == "channels_last":
        def build_cl(*a, **k):
            return orig(*a, **k).to(memory_format=torch.channels_last)
        module.build_model = build_cl
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if variant.startswith("bf16") else contextlib.nullcontext()
    try:
        with ctx:
            yield
    finally:
        module.build_model = orig


def _applies(loop: str, variant: str) -> bool:
    return not (loop.endswith("pretrained") and variant in ("channels_last", "bf16+cl"))


def time_loop(loop: str, variant: str, iterations: int, warmup: int) -> dict:
    """Images/s of one recipe loop under one variant (synthetic data, default-scale config)."""
    from hashrepro.methods import dnnh, drsch
    from hashrepro.train import seed_everything

    g = torch.Generator().manual_seed(0)
    n = 5000
    labels = torch.arange(n) % 10
    if loop.startswith("dnnh"):
        pretrained = loop.endswith("pretrained")
        x = torch.rand(n, 1280, generator=g) if pretrained else torch.randn(n, 3, 32, 32, generator=g)
        if "cl" in variant and not pretrained:
            x = x.contiguous(memory_format=torch.channels_last)
        kw = {"backbone": "efficientnet_lite0"} if pretrained else {}
        cfg = dnnh.Config.for_scale("default", dataset="cifar10", bits=48, progress=False, **kw)
        batch = cfg.batch_size

        def train(its):
            import dataclasses
            c = dataclasses.replace(cfg, iterations=its)
            t0 = time.process_time()
            dnnh.train_net(c, x, labels, torch.device("cpu"), seed_everything(0))
            return time.process_time() - t0
        module = dnnh
    else:
        pretrained = loop.endswith("pretrained")
        x = torch.rand(n, 1280, generator=g) if pretrained else torch.randint(0, 256, (n, 3, 32, 32), generator=g,
                                                                              dtype=torch.uint8)
        kw = {"backbone": "efficientnet_lite0"} if pretrained else {}
        cfg = drsch.Config.for_scale("default", dataset="cifar10", bits=32, flip=True, **kw)
        batch = cfg.classes_per_batch * cfg.images_per_class

        def train(its):
            import dataclasses
            c = dataclasses.replace(cfg, iterations=its)
            t0 = time.process_time()
            drsch.train_model(c, x, labels.numpy(), "cpu", progress=False)
            return time.process_time() - t0
        module = drsch
    with variant_context(variant, module):
        train(warmup)
        wall = train(iterations)
    return {"loop": loop, "variant": variant, "s_per_it": wall / iterations, "img_per_s": iterations * batch / wall}


def map_check(loop: str, variant: str, dataset: str, iterations: int, seeds) -> list[float]:
    """mAP of the recipe's ``run`` (default scale, ``iterations``) under ``variant``, one per seed."""
    from hashrepro.methods import dnnh, drsch

    out = []
    for seed in seeds:
        pretrained = loop.endswith("pretrained")
        kw = {"backbone": "efficientnet_lite0"} if pretrained else {}
        if loop.startswith("dnnh"):
            cfg = dnnh.Config.for_scale("default", dataset=dataset, bits=48, seed=seed, iterations=iterations,
                                        progress=False, **kw)
            module = dnnh
        else:
            cfg = drsch.Config.for_scale("default", dataset=dataset, bits=32, seed=seed, iterations=iterations, **kw)
            module = drsch
        with variant_context(variant, module), __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("ignore")
            rec = module.run(cfg)
        out.append(float(rec["metrics"]["map"]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS))
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--iterations", type=int, default=12, help="timed iterations per (loop, variant)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--map-check", action="store_true")
    ap.add_argument("--map-loops", nargs="+", choices=LOOPS, default=None,
                    help="loops for the mAP check (default: every loop with a faster variant)")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--map-iterations", type=int, default=300)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--min-speedup", type=float, default=1.15)
    args = ap.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--iterations and --threads must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    isa = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    print(f"# torch {torch.__version__}, {args.threads} thread(s), CPU capability {isa}; "
          f"{args.warmup} warm-up + {args.iterations} timed iterations per row; synthetic inputs")
    rows = []
    print(f"{'loop':18s} {'variant':14s} {'CPU ms/it':>9s} {'img/s':>8s} {'ratio':>6s}")
    for loop in args.loops:
        ref = None
        for variant in args.variants:
            if not _applies(loop, variant):
                continue
            try:
                r = time_loop(loop, variant, args.iterations, args.warmup)
            except Exception as exc:  # noqa: BLE001 - a variant the recipe does not support is a result
                msg = " ".join(str(exc).split())[:110]
                print(f"{loop:18s} {variant:14s} {'fails':>9s}  {type(exc).__name__}: {msg}", flush=True)
                continue
            if variant == "fp32":
                ref = r["img_per_s"]
            r["ratio"] = r["img_per_s"] / ref if ref else float("nan")
            rows.append(r)
            print(f"{loop:18s} {variant:14s} {1000 * r['s_per_it']:9.1f} {r['img_per_s']:8.0f} {r['ratio']:6.2f}",
                  flush=True)
    if args.map_check:
        faster = [(r["loop"], r["variant"]) for r in rows if r["variant"] != "fp32" and r["ratio"] >= args.min_speedup]
        loops = args.map_loops or sorted({lp for lp, _ in faster})
        print(f"\n# mAP at equal schedule: {args.dataset}, default scale, {args.map_iterations} iterations, "
              f"seeds {args.seeds}")
        for loop in loops:
            for variant in ["fp32"] + [v for lp, v in faster if lp == loop]:
                t0 = time.perf_counter()
                maps = map_check(loop, variant, args.dataset, args.map_iterations, args.seeds)
                print(f"{loop:18s} {variant:14s} mAP {np.mean(maps):.4f} ± {np.std(maps):.4f}  "
                      f"({', '.join(f'{m:.4f}' for m in maps)}; {time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
