"""DNNH's claims (Lai et al., CVPR 2015) as data: one :class:`~hashrepro.claims.evaluator.Claim` per sentence."""
from __future__ import annotations

from .evaluator import _C10, _TOL, Claim, Compare, Side, paper_value

__all__ = ["DNNH"]

_BASE_DNNH = {"paper": "baselines", "config.protocol": "dnnh", "dataset": "cifar10"}


def _is_margin_run(method) -> bool:
    """DNNH DEM on the ImageNet backbone with a triplet margin other than eq. 2's 1
    (:func:`hashrepro.methods.dnnh.method_name`: ``dnnh-dem-margin<m>-efficientnet_lite0``)."""
    return str(method).startswith("dnnh-dem-margin") and str(method).endswith("-efficientnet_lite0")


DNNH = (
    Claim("dnnh-map", "dnnh", "MAP 0.552 / 0.566 / 0.558 / 0.581 at 12–48 bits on CIFAR-10 (Table 2)",
          (Compare(Side("dnnh-dem", where=_C10), paper_value("dnnh_table2", "dnnh-dem", "cifar10"), margin=-_TOL,
                   label="ours − paper + 0.02"),)),
    Claim("dnnh-fc-map", "dnnh", "DNNH-FC's MAP on CIFAR-10 (Table 3, within 0.02)",
          (Compare(Side("dnnh-fc", where=_C10), paper_value("dnnh_table3", "dnnh-fc", "cifar10"), margin=-_TOL,
                   label="ours − paper + 0.02"),)),
    Claim("dnnh-vs-ksh", "dnnh", "61.3–82.2% higher MAP than KSH (the best hand-crafted competitor) on CIFAR-10 (§4.2)",
          (Compare(Side("dnnh-dem", where=_C10), paper_value("dnnh_table2", "ksh", "cifar10", factor=1.613),
                   label="ours − 1.613 × paper KSH"),),
          note="against the paper's KSH numbers (GIST)"),
    Claim("dnnh-vs-cnnh", "dnnh", "9.6–14.0% higher MAP than the best of CNNH / CNNH* on CIFAR-10 (§4.2)",
          (Compare(Side("dnnh-dem", where=_C10), paper_value("dnnh_table2", ("cnnh*", "cnnh"), "cifar10",
                                                             factor=1.096),
                   label="ours − 1.096 × paper CNNH(*)"),),
          note="against the paper's CNNH / CNNH* numbers; our CNNH* re-run is judged in the claim 'DNNH beats CNNH*'"),
    Claim("dnnh-dem-vs-fc", "dnnh", "DEM beats the FC alternative at every bit length (Table 3, Fig. 8)",
          (Compare(Side("dnnh-dem", where=_C10), Side("dnnh-fc", where=_C10), label="DEM − FC"),),
          missing="needs runs of dnnh-fc on CIFAR-10"),
    Claim("dnnh-shared-vs-two", "dnnh", "one shared sub-network beats two independent ones (Table 4)",
          (Compare(Side("dnnh-dem", where=_C10), Side("dnnh-two-subnets", where=_C10), label="shared − two"),),
          missing="needs runs of dnnh-two-subnets on CIFAR-10"),
    Claim("dnnh-vs-our-ksh", "dnnh", "DNNH beats KSH run on the same split (GIST features; §4.2's ordering)",
          (Compare(Side("dnnh-dem", where=_C10), Side("ksh", where={**_BASE_DNNH, "config.variant": None}),
                   label="DNNH − our KSH"),),
          missing="needs the baselines runner's KSH on the dnnh protocol"),
    Claim("dnnh-offline", "dnnh", "results on SVHN and NUS-WIDE (Tables 2, 3, 5; Figs. 5, 7)",
          untestable="not run: data not available offline"),
) + (
    # the pretrained regime (issue 15): DNNH's head, module and loss on the frozen ImageNet backbone
    Claim("dnnh-pt-map", "dnnh", "[ImageNet backbone] MAP 0.552 / 0.566 / 0.558 / 0.581 at 12–48 bits on CIFAR-10 "
          "(Table 2, within 0.02 or above)",
          (Compare(Side("dnnh-dem-efficientnet_lite0", where=_C10), paper_value("dnnh_table2", "dnnh-dem", "cifar10"),
                   margin=-_TOL, label="ours − paper + 0.02"),)),
    Claim("dnnh-pt-margin-map", "dnnh", "[ImageNet backbone, triplet margin chosen on a validation split] MAP "
          "0.552 / 0.566 / 0.558 / 0.581 at 12–48 bits on CIFAR-10 (Table 2, within 0.02 or above)",
          (Compare(Side(where={**_C10, "method": _is_margin_run}, label="DNNH (DEM), chosen margin"),
                   paper_value("dnnh_table2", "dnnh-dem", "cifar10"), margin=-_TOL, label="ours − paper + 0.02"),),
          missing="needs runs with the margin chosen on validation (hashrepro select dnnh ... --grid margin=..., "
                  "then -p margin <chosen> -p backbone efficientnet_lite0)",
          note="a deviation: eq. 2's margin is 1; one margin per code length, chosen on held-out training images"),
    Claim("dnnh-pt-dem-vs-fc", "dnnh", "[ImageNet backbone] DEM beats the FC alternative at every bit length (Table 3)",
          (Compare(Side("dnnh-dem-efficientnet_lite0", where=_C10), Side("dnnh-fc-efficientnet_lite0", where=_C10),
                   label="DEM − FC"),),
          missing="needs runs of dnnh-fc-efficientnet_lite0 on CIFAR-10"),
    Claim("dnnh-pt-shared-vs-two", "dnnh", "[ImageNet backbone] one shared sub-network beats two independent ones (Table 4)",
          (Compare(Side("dnnh-dem-efficientnet_lite0", where=_C10),
                   Side("dnnh-two-subnets-efficientnet_lite0", where=_C10), label="shared − two"),),
          missing="needs runs of dnnh-two-subnets-efficientnet_lite0 on CIFAR-10"),
) + (
    # issue 18: CNNH* re-run here (hashrepro.methods.cnnh: stage 1 codes, then DNNH's sub-network fitted to
    # them) on DNNH's split, schedule and evaluation, in both regimes
    Claim("dnnh-vs-cnnh-star", "dnnh", "DNNH beats CNNH*, the two-stage method, at every bit length on CIFAR-10 "
          "(Table 2: 0.552–0.581 vs 0.472–0.489)",
          (Compare(Side("dnnh-dem", where=_C10), Side("cnnh-star", where=_C10), label="DNNH − CNNH*"),),
          missing="needs runs of cnnh-star on CIFAR-10 (notebooks/dnnh.ipynb -p method cnnh-star)"),
    Claim("dnnh-pt-vs-cnnh-star", "dnnh", "[ImageNet backbone] DNNH beats CNNH*, the two-stage method, at every bit "
          "length on CIFAR-10 (Table 2)",
          (Compare(Side("dnnh-dem-efficientnet_lite0", where=_C10), Side("cnnh-star-efficientnet_lite0", where=_C10),
                   label="DNNH − CNNH*"),),
          missing="needs runs of cnnh-star-efficientnet_lite0 on CIFAR-10 "
                  "(-p method cnnh-star -p backbone efficientnet_lite0)"),
)
