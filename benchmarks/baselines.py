"""Fit and encode times of the shallow baselines (hashrepro.baselines).

    HASHREPRO_DATA=/path/to/datasets python benchmarks/baselines.py          # CIFAR-10 GIST, 32 bits
    python benchmarks/baselines.py --synthetic                               # no dataset needed

Setting (issue 4): CIFAR-10 GIST features (512-d, :func:`hashrepro.features.gist`, cached),
the DNNH split (seed 0): every method is fitted on the 5,000 training images (500 per class;
labels used by the supervised ones) and encodes the 59,000 database images, at 32 bits, one
thread. Each method runs with its defaults (the papers' settings, see each class); the
"subsample" column says when a method fits on fewer points than it is given. The reference
for the ratio columns is LSH (centring plus one random projection): ``fit x LSH`` is a
method's fit time over LSH's, ``encode x LSH`` likewise for encoding the database.

``--synthetic`` replaces the images by random 512-d non-negative features with 10 Gaussian
classes (for a machine without the dataset); the timings are then only indicative.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np


def load_cifar_gist(seed: int):
    from hashrepro.baselines.experiment import load_features

    F, labels, sp = load_features("cifar10", "gist", "dnnh", seed)
    return (np.asarray(F[sp.train], dtype=np.float64), labels[sp.train],
            np.asarray(F[sp.database], dtype=np.float64), "CIFAR-10 GIST (DNNH split)")


def synthetic(seed: int, n_train=5000, n_db=59000, d=512, n_classes=10):
    rng = np.random.default_rng(seed)
    centers = rng.gamma(2.0, 0.05, (n_classes, d))
    def draw(n):
        y = rng.integers(0, n_classes, n)
        return np.abs(centers[y] + 0.05 * rng.standard_normal((n, d))), y
    Xtr, ytr = draw(n_train)
    Xdb, _ = draw(n_db)
    return Xtr, ytr, Xdb, "synthetic 512-d (10 Gaussian classes)"


SUBSAMPLE = {"ksh": "l=2000 labelled", "bre": "1000 points", "splh": "l=1000 labelled",
             "kmh": "10000 (all 5000 here)", "sphh": "20000 (all 5000 here)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--synthetic", action="store_true", help="random features instead of CIFAR-10 GIST")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits
    import torch

    from hashrepro.baselines import BASELINES, get

    torch.set_num_threads(args.threads)
    methods = args.methods or list(BASELINES)
    if "lsh" not in methods:
        methods = ["lsh"] + methods
    if args.synthetic:
        Xtr, ytr, Xdb, what = synthetic(args.seed)
    else:
        try:
            Xtr, ytr, Xdb, what = load_cifar_gist(args.seed)
        except Exception as exc:  # no dataset: say so and use synthetic data
            print(f"CIFAR-10 not available ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                  "using --synthetic", file=sys.stderr)
            Xtr, ytr, Xdb, what = synthetic(args.seed)
    print(f"# hashrepro.baselines: fit on {len(Xtr)} x {Xtr.shape[1]}, encode {len(Xdb)} database items, "
          f"{args.bits} bits; {what}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} thread(s), "
          f"numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}")
    rows = []
    with threadpool_limits(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in methods:
            h = get(name, n_bits=args.bits, random_state=args.seed)
            c0, t0 = time.process_time(), time.perf_counter()
            h.fit(Xtr, ytr if h.supervised else None)
            fit_wall, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
            c0, t0 = time.process_time(), time.perf_counter()
            codes = h.transform(Xdb)
            enc_wall, enc_cpu = time.perf_counter() - t0, time.process_time() - c0
            assert codes.shape == (len(Xdb), args.bits) and codes.dtype == np.uint8
            rows.append((name, fit_wall, fit_cpu, enc_wall, enc_cpu))
    ref_fit = max(rows[0][2], 1e-6)
    ref_enc = max(rows[0][4], 1e-6)
    print(f"{'method':<8} {'sup':>3} {'fit s':>8} {'fit cpu s':>9} {'fit x LSH':>10} {'encode s':>9} "
          f"{'enc cpu s':>9} {'us/item':>8} {'encode x LSH':>12}  subsample")
    for name, fw, fc, ew, ec in rows:
        sup = "yes" if BASELINES[name].supervised else "no"
        print(f"{name:<8} {sup:>3} {fw:8.2f} {fc:9.2f} {fc / ref_fit:10.0f} {ew:9.2f} {ec:9.2f} "
              f"{1e6 * ec / len(Xdb):8.2f} {ec / ref_enc:12.1f}  {SUBSAMPLE.get(name, '')}")
    print("# ratios use CPU time (the machine is shared; wall time varies with the load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
