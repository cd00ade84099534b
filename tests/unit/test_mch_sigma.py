"""hashrepro.plots.mch_sigma: Fig. 9 (a) on hand-made diag-sigma records (table, verdict rule, figure)."""
import math

import matplotlib
import pytest

matplotlib.use("Agg")

from hashrepro.plots import mch_sigma as S  # noqa: E402


def _sens(buckets_by_sigma):
    """A sensitivity curve: for each σ, F1 0.1 / 0.5 / 0.8 at buckets b, 10b, 100b (ANHC = 1 + σ)."""
    c = {k: [] for k in ("vary", "sigma", "xi", "K", "f1", "buckets", "anhc")}
    for sigma, b in buckets_by_sigma.items():
        for k, (f1, mult) in enumerate([(0.1, 1), (0.5, 10), (0.8, 100)]):
            for key, v in zip(c, ("sigma", sigma, 0.5, float(k + 1), f1, b * mult, 1 + sigma)):
                c[key].append(v)
    c["vary"].append("xi"), c["sigma"].append(0.5), c["xi"].append(0.1), c["K"].append(1.0)
    c["f1"].append(0.9), c["buckets"].append(1.0), c["anhc"].append(3.0)  # a ξ row: ignored here
    return c


def _rec(seed, buckets_by_sigma, method="diag-sigma-dch-efficientnet_lite0", bits=32):
    return {"paper": "mch", "method": method, "dataset": "mosaic-cifar10", "bits": bits, "seed": seed,
            "scale": "default", "config": {"agent_baseline": "ema", "agent_reward_norm": True},
            "finished": f"2026-11-30T00:0{seed}:00", "curves": {"sensitivity": _sens(buckets_by_sigma)}}


def test_records_table_and_ratios():
    recs = [_rec(1, {0.3: 2.0, 0.5: 1.0, 0.7: 4.0}), _rec(0, {0.3: 1.0, 0.5: 1.0}),
            _rec(0, {0.3: 1.0, 0.5: 1.0}, bits=16), _rec(0, {0.5: 1.0}, method="diag-crops-dch")]
    sel = S.sigma_records(recs)
    assert [r["seed"] for r in sel] == [0, 1]
    t = S.sigma_table(sel)
    row = t[(t["seed"] == 1) & (t["σ"] == 0.3)].iloc[0]
    assert row["F1"] == 0.5 and row["buckets"] == 20.0 and row["÷ σ=0.5"] == 2.0 and row["ANHC"] == 1.3
    assert len(t) == 5  # the ξ row is not a σ row


def test_verdict_rule_over_seeds():
    same = {0.3: 1.0, 0.5: 1.1, 0.7: 9.0}  # within 1.25× on [0.3, 0.5]; σ = 0.7 outside the range
    far = {0.3: 1.0, 0.5: 2.0}
    v = S.sigma_verdict(S.sigma_table([_rec(s, same) for s in range(3)])).data
    assert v.startswith("**Not sensitive to σ in [0.3, 0.5] (Fig. 9 (a)): reproduced.**") and "seed 2: 1.10×" in v
    assert ": not reproduced.**" in S.sigma_verdict(S.sigma_table([_rec(s, far) for s in range(3)])).data
    mixed = [_rec(0, same), _rec(1, far), _rec(2, same)]
    assert ": inconclusive.**" in S.sigma_verdict(S.sigma_table(mixed)).data
    assert ": inconclusive (n<3).**" in S.sigma_verdict(S.sigma_table(mixed[:2])).data
    assert ": reproduced.**" in S.sigma_verdict(S.sigma_table([_rec(s, far) for s in range(3)]), factor=2.0).data


def test_verdict_not_testable_when_no_crop_is_kept():
    def flat(seed):
        r = _rec(seed, {0.3: 1.0, 0.5: 1.0})
        r["curves"]["sensitivity"]["anhc"] = [1.0] * len(r["curves"]["sensitivity"]["anhc"])
        return r

    v = S.sigma_verdict(S.sigma_table([flat(s) for s in range(3)])).data
    assert ": not testable: the agent keeps no crop at any σ of the range (MCH-X = X).**" in v


def test_records_of_one_agent_update():
    ema = {"agent_baseline": "ema", "agent_reward_norm": True, "agent_entropy": 0.0, "agent_iters": 100}
    recs = [{**_rec(0, {0.5: 1.0}), "config": ema, "scale": "default"},
            {**_rec(0, {0.5: 2.0}), "config": {**ema, "agent_iters": 2000}, "scale": "default",
             "finished": "2026-11-30T09:00:00"}]
    assert S.sigma_records(recs)[0]["config"]["agent_iters"] == 100
    assert S.sigma_records(recs, agent="baseline ema + norm + T 2000")[0]["config"]["agent_iters"] == 2000


def test_figure_with_and_without_records():
    import matplotlib.pyplot as plt

    assert S.sigma_figure([]) is None
    x = {"method": "dch-efficientnet_lite0", "dataset": "mosaic-cifar10", "bits": 32, "seed": 0,
         "curves": {"f1_bucket": {"K": [1, 2], "f1": [0.2, 0.4], "buckets": [1.0, 5.0]}}}
    fig = S.sigma_figure([_rec(0, {0.3: 1.0, 0.5: 1.0})], [x])
    ax = fig.axes[0]
    assert ax.get_title() == "MCH-DCH-EFFICIENTNET_LITE0, 32 bits, seed 0" and len(ax.lines) == 3
    plt.close(fig)
    assert not math.isnan(S.sigma_table([_rec(0, {0.3: 1.0, 0.5: 1.0})])["÷ σ=0.5"].iloc[0])


def test_sigma_sensitivity_bad_sigmas():
    from hashrepro.methods.mch_diagnostics import sigma_sensitivity

    with pytest.raises(ValueError, match=r"sigmas must be crop ratios in \(0, 1\]"):
        sigma_sensitivity(scale="smoke", dataset="mosaic-digits", sigmas=(0.0, 2.0))
