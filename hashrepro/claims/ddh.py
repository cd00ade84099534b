"""DDH's claims (Song et al., 2017) as data, with the label-expansion gain of Fig. 2 they read."""
from __future__ import annotations

import numpy as np

from .evaluator import _TOL, Claim, Compare, Side, paper_value

__all__ = ["DDH"]



def _expansion_gain(record):
    """Fig. 2: expanded labels' precision minus plain kNN's at the same number of positives
    (kNN interpolated in log size), the smallest over the expanded points."""
    c = (record.get("curves") or {}).get("label_precision")
    if not c:
        return None
    kp = np.asarray(c["knn_precision"], float)
    kpos = np.asarray(c["knn_positives"], float)
    pts = [(p, e) for p, e in zip(c["expanded_positives"], c["expanded_precision"])
           if p is not None and kpos.min() <= p <= kpos.max()]
    if not pts:
        return None
    return min(e - float(np.interp(np.log(p), np.log(kpos), kp)) for p, e in pts)


_DDH_C10 = {"dataset": "cifar10", "config.task": "retrieval"}
_DDH_SHALLOW = ("lsh", "pcah", "itq", "sh", "sphh", "kmh")
_PT = "efficientnet_lite0"           # the ImageNet backbone of the pretrained regime
_DDH_PT = f"ddh-{_PT}"
_DDH_T4 = ("itq", "sh", "splh", "lfh")
_FLOWERS = {"dataset": "flowers17", "config.task": "classification"}

DDH = (
    Claim("ddh-map", "ddh", "DDH's mAP@1000 on CIFAR-10 (Table 2, within 0.02)",
          (Compare(Side("ddh", where=_DDH_C10), paper_value("ddh_table2", "DDH", "cifar10"), margin=-_TOL,
                   label="ours − paper + 0.02"),)),
    Claim("ddh-vs-unsupervised", "ddh", "DDH beats all unsupervised baselines at every length on CIFAR-10 (Table 2)",
          tuple(Compare(Side("ddh", where=_DDH_C10), Side(m, where={**_DDH_C10, "config.features": "gist"}),
                        label=f"DDH − {m}") for m in _DDH_SHALLOW)
          + tuple(Compare(Side("ddh", where=_DDH_C10), Side(m, where={**_DDH_C10, "config.dh_input": "backbone"}),
                          label=f"DDH − {m}") for m in ("dh", "deepbit"))),
    Claim("ddh-vs-deepbit", "ddh", "DDH beats DeepBit by about 25 mAP points (§3.2 observation 1)",
          (Compare(Side("ddh", where=_DDH_C10), Side("deepbit", where={**_DDH_C10, "config.dh_input": "backbone"}),
                   margin={16: 0.5 * 0.253, 32: 0.5 * 0.237, 64: 0.5 * 0.258},
                   label="DDH − DeepBit − half the paper's gap"),),
          note="the gap must reach half the paper's (0.253 / 0.237 / 0.258)"),
    Claim("ddh-baselines-length", "ddh", "DH and DeepBit improve with the code length (Table 2)",
          tuple(Compare(Side(m, where={**_DDH_C10, "config.dh_input": "backbone"}, bits=64),
                        Side(m, where={**_DDH_C10, "config.dh_input": "backbone"}, bits=16),
                        label=f"{m} 64 b − 16 b") for m in ("dh", "deepbit"))),
    Claim("ddh-deep-features", "ddh", "Shallow hashers do better on deep features than on hand-crafted ones (Table 4 text)",
          tuple(Compare(Side(m, where={**_DDH_C10, "config.features": "contrastive"}),
                        Side(m, where={**_DDH_C10, "config.features": "gist"}), label=f"{m}: deep − GIST")
                for m in ("itq", "sh"))),
    Claim("ddh-vs-table4", "ddh", "DDH beats shallow hashers on deep features, supervised SPLH/LFH included (Table 4)",
          tuple(Compare(Side("ddh", where=_DDH_C10), Side(m, where={**_DDH_C10, "config.features": "contrastive"}),
                        label=f"DDH − {m}+CNN") for m in _DDH_T4)),
    Claim("ddh-expansion", "ddh", "Expansion raises label precision over plain kNN (Fig. 2)",
          tuple(Compare(Side(f"ddh-labels-{f}", metric=_expansion_gain), Side(const=0.0),
                        label=f"{f}: expanded − kNN at equal size")
                for f in ("gist", "contrastive", "hog", "kmeans", "pixels"))),
    Claim("ddh-flowers-vs-hog", "ddh", "64-bit DDH codes classify Flowers-17 better than HOG (Table 6)",
          (Compare(Side("ddh", metric="accuracy", where=_FLOWERS, bits=64),
                   Side("hog", metric="accuracy", where=_FLOWERS), label="DDH 64 b − HOG"),)),
    Claim("ddh-flowers-256", "ddh", "256-bit codes classify better than 64-bit codes (Table 6)",
          (Compare(Side("ddh", metric="accuracy", where=_FLOWERS, bits=256),
                   Side("ddh", metric="accuracy", where=_FLOWERS, bits=64), label="256 b − 64 b"),)),
    Claim("ddh-svm-time", "ddh", "An SVM on binary codes trains faster than on a real-valued descriptor (Table 6)",
          tuple(Compare(Side("hog", metric="svm_time_s", where=_FLOWERS),
                        Side("ddh", metric="svm_time_s", where=_FLOWERS, bits=b), label=f"HOG − DDH {b} b (s)")
                for b in (64, 256)),
          note="the paper: 0.12 / 0.30 s against 4 s"),
    Claim("ddh-offline", "ddh", "NUS-WIDE results (Tables 3 and 5)", untestable="not run: data not available offline"),
) + (
    # the paper's setting: ImageNet features for the labels and an ImageNet-initialised network
    # (ours: EfficientNet-Lite0, frozen, its pooled features cached; head + hash layer trained)
    Claim("ddh-pt-map", "ddh", "[ImageNet backbone] DDH's mAP@1000 on CIFAR-10 (Table 2, within 0.02 or above)",
          (Compare(Side(_DDH_PT, where=_DDH_C10), paper_value("ddh_table2", "DDH", "cifar10"), margin=-_TOL,
                   label="ours − paper + 0.02"),)),
    Claim("ddh-pt-vs-shallow", "ddh",
          "[ImageNet backbone] DDH beats every unsupervised shallow hasher run on the same ImageNet features (Table 2)",
          tuple(Compare(Side(_DDH_PT, where={**_DDH_C10, "bits": b}),
                        Side(m, where={**_DDH_C10, "config.features": _PT, "bits": b}), label=f"DDH − {m}")
                for m in _DDH_SHALLOW for b in (16, 32, 64))),
    Claim("ddh-pt-vs-table4", "ddh",
          "[ImageNet backbone] DDH beats shallow hashers on the ImageNet features, supervised SPLH/LFH included (Table 4)",
          tuple(Compare(Side(_DDH_PT, where={**_DDH_C10, "bits": b}),
                        Side(m, where={**_DDH_C10, "config.features": _PT, "bits": b}), label=f"DDH − {m}+CNN")
                for m in _DDH_T4 for b in (12, 24, 32, 48))),
    Claim("ddh-pt-expansion", "ddh", "[ImageNet backbone] Expansion raises label precision over plain kNN (Fig. 2)",
          (Compare(Side(f"ddh-labels-{_PT}", metric=_expansion_gain), Side(const=0.0),
                   label="expanded − kNN at equal size"),)),
    Claim("ddh-pt-flowers-vs-hog", "ddh", "[ImageNet backbone] 64-bit DDH codes classify Flowers-17 better than HOG (Table 6)",
          (Compare(Side(_DDH_PT, metric="accuracy", where=_FLOWERS, bits=64),
                   Side("hog", metric="accuracy", where=_FLOWERS), label="DDH 64 b − HOG"),)),
    Claim("ddh-pt-flowers-256", "ddh", "[ImageNet backbone] 256-bit codes classify better than 64-bit codes (Table 6)",
          (Compare(Side(_DDH_PT, metric="accuracy", where=_FLOWERS, bits=256),
                   Side(_DDH_PT, metric="accuracy", where=_FLOWERS, bits=64), label="256 b − 64 b"),)),
)
