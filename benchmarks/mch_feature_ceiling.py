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

OUT = "results/diagnostics/mch_feature_ceiling"


def main(argv=None) -> int:
    import dataclasses

    from hashrepro.feature_ceiling import benchmark_main
    from hashrepro.mch_ceiling import MosaicCeilingConfig, mosaic_reference_maps

    def make_config(seed, epochs):
        cfg = MosaicCeilingConfig(seed=seed)
        return cfg if epochs is None else dataclasses.replace(cfg, epochs=epochs)

    return benchmark_main(argv, paper="mch", script="benchmarks/mch_feature_ceiling.py", out=OUT,
                          make_config=make_config, measure=mosaic_reference_maps, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
