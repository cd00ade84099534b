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

OUT = "results/diagnostics/drsch_feature_ceiling"


def main(argv=None) -> int:
    import dataclasses

    from hashrepro.feature_ceiling import benchmark_main
    from hashrepro.feature_ceiling import CeilingConfig, reference_maps

    def make_config(seed, epochs):
        cfg = CeilingConfig(seed=seed)
        return cfg if epochs is None else dataclasses.replace(cfg, epochs=epochs)

    return benchmark_main(argv, paper="drsch", script="benchmarks/drsch_feature_ceiling.py", out=OUT,
                          make_config=make_config, measure=reference_maps, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
