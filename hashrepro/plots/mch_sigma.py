"""Fig. 9 (a) on the ImageNet backbone: MCH-X's sensitivity to the crop ratio σ, over seeds.

The records are :func:`hashrepro.methods.mch_diagnostics.sigma_sensitivity`'s (method
``diag-sigma-<X>``), one per seed: each holds MCH-X's F1–bucket curve for every σ of the run (ξ
fixed). §5.5 reads Fig. 9 (a) as "MCH is not sensitive to σ in 0.3 < σ < 0.5"; the rule here
(:func:`sigma_verdict`): in a seed, σ is *insensitive* over [lo, hi] when the buckets visited to
reach the same F1 differ by at most ``factor`` between any two σ of that range; the verdict is
"reproduced" when every seed is insensitive, "not reproduced" when none is, "inconclusive" when
the seeds disagree, and "inconclusive (n<3)" with fewer than :data:`hashrepro.claims.MIN_SEEDS` seeds;
"not testable" when in every seed the agent keeps no crop at any σ of the range (ANHC = 1: MCH-X is
X, so every σ gives X's curve and insensitivity says nothing).

* :func:`sigma_records` -- the ``diag-sigma-…`` records of a method, dataset and length, by seed;
* :func:`sigma_table` -- per seed and σ: ANHC, the F1 level, buckets to reach it, ratio to σ = 0.5;
* :func:`sigma_verdict` -- the verdict of the rule above, as a one-line Markdown;
* :func:`sigma_figure` -- one F1–bucket panel per seed, one curve per σ (and X's, dashed).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from IPython.display import Markdown

from ..metrics.bucket import buckets_at_f1
from .mch import as_records, sensitivity

__all__ = ["sigma_records", "sigma_table", "sigma_verdict", "sigma_figure"]


def sigma_records(diag, base: str = "dch-efficientnet_lite0", dataset: str = "mosaic-cifar10",
                  bits: int = 32, agent: str = "default") -> list[dict]:
    """The latest ``diag-sigma-<base>`` record per seed for ``dataset``, ``bits`` and agent update
    ``agent`` (:func:`hashrepro.plots.mch.agent_variant`; ``"default"``: the recipe's, T = 100), by seed."""
    from ..methods.mch_agent import AGENT_DEFAULTS
    from .mch import agent_variant

    want = agent_variant({"config": dict(AGENT_DEFAULTS)}) if agent == "default" else agent
    best: dict = {}
    for r in sorted(as_records(diag), key=lambda r: str(r.get("finished", ""))):
        if (r["method"] == f"diag-sigma-{base}" and r["dataset"] == dataset and int(r["bits"]) == int(bits)
                and agent_variant(r) == want):
            best[int(r["seed"])] = r
    return [best[s] for s in sorted(best)]


def _curves(record: dict) -> dict:
    """{σ: (F1–bucket curve dict, ANHC)} of the σ-varying part of a record's sensitivity curve."""
    s = pd.DataFrame(record["curves"]["sensitivity"])
    s = s[s["vary"] == "sigma"]
    out = {}
    for sigma, g in s.groupby("sigma"):
        g = g.sort_values("K")
        out[float(sigma)] = ({"K": g["K"].tolist(), "f1": g["f1"].tolist(), "buckets": g["buckets"].tolist()},
                             float(g["anhc"].iloc[0]))
    return out


def sigma_table(records, target: float = 0.5) -> pd.DataFrame:
    """One row per (seed, σ): ``ANHC``, ``F1`` (``target``, lowered in a seed to the highest F1 every
    σ of that seed reaches), ``buckets`` to reach it (log-linear between K points,
    :func:`hashrepro.metrics.buckets_at_f1`) and ``÷ σ=0.5`` (NaN without a σ = 0.5 curve)."""
    rows = []
    for r in as_records(records):
        cur = _curves(r)
        if not cur:
            continue
        t = min([float(target)] + [max(c["f1"]) for c, _ in cur.values()])
        ref = buckets_at_f1(cur[0.5][0], t) if 0.5 in cur else float("nan")
        for sigma, (c, anhc) in sorted(cur.items()):
            b = buckets_at_f1(c, t)
            rows.append({"seed": int(r["seed"]), "σ": sigma, "ANHC": round(anhc, 3), "F1": round(t, 3),
                         "buckets": round(b, 1), "÷ σ=0.5": round(b / ref, 3) if ref and not math.isnan(ref) else math.nan})
    return pd.DataFrame(rows, columns=["seed", "σ", "ANHC", "F1", "buckets", "÷ σ=0.5"])


def sigma_verdict(table: pd.DataFrame, lo: float = 0.3, hi: float = 0.5, factor: float = 1.25) -> Markdown:
    """The verdict on "not sensitive to σ in [lo, hi]" (the module's rule) from :func:`sigma_table`."""
    from ..claims import MIN_SEEDS

    per_seed, vacuous = {}, []
    for seed, g in table.groupby("seed"):
        g = g[(g["σ"] >= lo - 1e-9) & (g["σ"] <= hi + 1e-9)]
        b = g["buckets"].astype(float)
        if len(b) >= 2 and np.isfinite(b).all() and (b > 0).all():
            per_seed[int(seed)] = float(b.max() / b.min())
            if (g["ANHC"].astype(float) == 1.0).all():
                vacuous.append(int(seed))
    n = len(per_seed)
    ok = [s for s, q in per_seed.items() if q <= factor]
    if n and len(vacuous) == n:
        verdict = "not testable: the agent keeps no crop at any σ of the range (MCH-X = X)"
    elif n < MIN_SEEDS:
        verdict = "inconclusive (n<3)"
    elif len(ok) == n:
        verdict = "reproduced"
    elif not ok:
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    spread = ", ".join(f"seed {s}: {q:.2f}×" for s, q in sorted(per_seed.items())) or "no seed"
    return Markdown(f"**Not sensitive to σ in [{lo:g}, {hi:g}] (Fig. 9 (a)): {verdict}.** Rule: in a seed, the "
                    f"buckets to reach the same F1 differ by at most {factor:g}× between the σ of that range; "
                    f"reproduced when every seed (n ≥ {MIN_SEEDS}) holds, not reproduced when none does. "
                    f"Largest ratio per seed: {spread}.")


def sigma_figure(records, chapter_records=None):
    """One panel per record (seed): MCH-X's F1–bucket curve per σ (:func:`hashrepro.plots.mch.sensitivity`),
    with X's curve dashed (the record of X alone of the same seed among ``chapter_records``, when
    there is one); None without records."""
    import matplotlib.pyplot as plt

    recs = as_records(records)
    if not recs:
        return None
    others = as_records(chapter_records) if chapter_records is not None else []
    fig, axes = plt.subplots(1, len(recs), figsize=(4.2 * len(recs), 3.5), squeeze=False)
    for ax, r in zip(axes[0], recs):
        x = r["method"].replace("diag-sigma-", "", 1)
        base = next((o for o in others if o["method"] == x and o["dataset"] == r["dataset"]
                     and int(o["bits"]) == int(r["bits"]) and int(o["seed"]) == int(r["seed"])
                     and "f1_bucket" in (o.get("curves") or {})), None)
        sensitivity(r, "sigma", ax, base)
        ax.set_title(f"MCH-{x.upper()}, {r['bits']} bits, seed {r['seed']}", fontsize=9)
    fig.tight_layout()
    return fig
