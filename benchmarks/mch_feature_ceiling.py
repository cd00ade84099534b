"""What the frozen ImageNet features of the mosaics allow (issue 16): reference retrievers for MCH's base models.

The base models on the frozen EfficientNet-Lite0 features, or with its last block(s) fine-tuned, stand only
0.01-0.05 above the same models from scratch on the CIFAR-10 mosaic, over a random-ranking floor of about 0.50.
Is the frozen pooled feature of a whole mosaic the limit? This script ranks the same database for the same
queries with retrievers that are not short codes (:mod:`hashrepro.mch_ceiling`: raw features; a linear and an
MLP multi-label classifier ranked by the probability that two mosaics share a label), per seed, on the MCH
pretrained preset's split. Weight decay is chosen on a validation split of the training mosaics; the queries
give only the reported mAP.

Records go to ``results/diagnostics/mch_feature_ceiling/`` (apart from the chapter's records; the MCH page reads
them with :func:`hashrepro.plots.mch_page.feature_ceiling_outputs`).

    python benchmarks/mch_feature_ceiling.py [--seeds 0 1 2] [--epochs 100]
"""
from __future__ import annotations

import argparse
import sys
import time

OUT = "results/diagnostics/mch_feature_ceiling"


def main(argv=None) -> int:
    from hashrepro.mch_ceiling import MosaicCeilingConfig, mosaic_reference_maps
    from hashrepro.provenance import start_run
    from hashrepro.results import make_record, save_run
    from hashrepro.train import describe_device

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=MosaicCeilingConfig.epochs)
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args(argv)
    if a.epochs <= 0:
        ap.error(f"--epochs must be a positive integer, got {a.epochs}")
    cmd = ("python benchmarks/mch_feature_ceiling.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    for seed in a.seeds:
        started = start_run()
        t0 = time.perf_counter()
        cfg = MosaicCeilingConfig(seed=seed, epochs=a.epochs)
        out = mosaic_reference_maps(cfg, progress=lambda s: print(s, flush=True))
        rec = make_record("mch", "feature-ceiling-efficientnet_lite0", cfg.dataset, 0, seed, "default", out["config"],
                          out["protocol"], out["metrics"], None, time.perf_counter() - t0, describe_device("cpu"),
                          cmd, started=started)
        path = save_run(rec, a.out, f"feature-ceiling_{cfg.dataset}_seed{seed}")
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
