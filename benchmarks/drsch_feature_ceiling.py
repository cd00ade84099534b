"""What the frozen ImageNet features allow on DRSCH's CIFAR-10 protocol (issue 15): reference retrievers.

DRSCH's head on the frozen pooled EfficientNet-Lite0 features stops near mAP 0.60 (quoted: 0.615-0.631),
and a 5x longer schedule does not move it (``benchmarks/drsch_dead_bits.py``). Is that the features or
the head? This script ranks the same database with retrievers that are not short codes
(:mod:`hashrepro.feature_ceiling`: raw features; a linear and an MLP softmax classifier ranked by the
probability of a shared label; the MLP's one-hot class code), per seed, on the same split as the
chapter's runs. Weight decay is chosen on training images held out as validation; the queries give
only the reported mAP.

Records go to ``results/diagnostics/drsch_feature_ceiling/`` (apart from the chapter's records; the
DRSCH page reads them with :func:`hashrepro.plots.drsch_page.feature_ceiling_outputs`).

    python benchmarks/drsch_feature_ceiling.py [--seeds 0 1 2] [--epochs 40]
"""
from __future__ import annotations

import argparse
import sys
import time

OUT = "results/diagnostics/drsch_feature_ceiling"


def main(argv=None) -> int:
    from hashrepro.feature_ceiling import CeilingConfig, reference_maps
    from hashrepro.provenance import start_run
    from hashrepro.results import make_record, save_run
    from hashrepro.train import describe_device

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=CeilingConfig.epochs)
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args(argv)
    if a.epochs <= 0:
        ap.error(f"--epochs must be a positive integer, got {a.epochs}")
    cmd = ("python benchmarks/drsch_feature_ceiling.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    for seed in a.seeds:
        started = start_run()
        t0 = time.perf_counter()
        cfg = CeilingConfig(seed=seed, epochs=a.epochs)
        out = reference_maps(cfg, progress=lambda s: print(s, flush=True))
        rec = make_record("drsch", "feature-ceiling-efficientnet_lite0", cfg.dataset, 0, seed, "default", out["config"],
                          out["protocol"], out["metrics"], None, time.perf_counter() - t0, describe_device("cpu"),
                          cmd, started=started)
        path = save_run(rec, a.out, f"feature-ceiling_{cfg.dataset}_seed{seed}")
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
