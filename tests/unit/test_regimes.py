"""hashrepro.plots.regimes: both training regimes beside the paper, from clean records only."""
import pandas as pd
import pytest

from hashrepro.plots import regimes as R


def _rec(method, bits, seed, value, scale="default", dirty=False, flags=None):
    r = {"paper": "dnnh", "method": method, "dataset": "cifar10", "bits": bits, "seed": seed, "scale": scale,
         "git_dirty": dirty, "metrics": {"map": value}, "wall_time_s": 10.0}
    if flags:
        r["flags"] = flags
    return r


PAPER = pd.DataFrame([{"method": "dnnh-dem", "dataset": "cifar10", "bits": 12, "metric": "map", "value": 0.552}])


def test_legacy_records_fill_a_cell_only_when_no_clean_one_exists_and_are_marked():
    recs = [_rec("dnnh-dem", 12, 0, 0.2, dirty=True), _rec("dnnh-dem", 24, 0, 0.3, dirty=True),
            _rec("dnnh-dem", 24, 1, 0.4)]
    cells = R.regime_cells(recs, "dnnh-dem", "cifar10")
    assert cells[12]["legacy"] and cells[12]["mean"] == pytest.approx(0.2)
    assert not cells[24]["legacy"] and cells[24]["n"] == 1 and cells[24]["mean"] == pytest.approx(0.4)
    t = R.regime_table(recs, None, {"DNNH": ("dnnh-dem", None)}, bits=(12,))
    assert t.iloc[0]["scratch"].endswith("legacy")


def test_cells_mean_std_over_seeds_and_only_clean_unflagged_records():
    recs = [_rec("dnnh-dem-efficientnet_lite0", 12, s, v) for s, v in enumerate((0.50, 0.52, 0.54))]
    recs += [_rec("dnnh-dem-efficientnet_lite0", 12, 3, 0.99, dirty=True),      # dirty: ignored
             _rec("dnnh-dem-efficientnet_lite0", 12, 4, 0.99, flags=["collapsed"]),  # flagged: ignored
             _rec("dnnh-dem-efficientnet_lite0", 12, 5, 0.99, scale="smoke")]     # smoke: ignored
    cells = R.regime_cells(recs, "dnnh-dem-efficientnet_lite0", "cifar10")
    assert cells[12]["n"] == 3 and cells[12]["mean"] == pytest.approx(0.52)
    assert cells[12]["std"] == pytest.approx(0.02)


def test_flagged_runs_are_counted_not_averaged():
    recs = [_rec("drsch", 48, s, 0.6, flags=["constant_bits: 30 of 48 bits"]) for s in range(3)]
    recs += [_rec("drsch", 12, 0, 0.5), _rec("drsch", 12, 1, 0.9, flags=["collapsed"])]
    cells = R.regime_cells(recs, "drsch", "cifar10")
    assert cells[48]["n"] == 0 and cells[48]["n_flagged"] == 3
    assert cells[12]["n"] == 1 and cells[12]["mean"] == pytest.approx(0.5) and cells[12]["n_flagged"] == 1
    t = R.regime_table(recs, None, {"DRSCH": ("dsch", None)}, bits=(12,))  # no pretrained records: not run
    assert t.iloc[0]["pretrained"] == "not run yet"
    t = R.regime_table([dict(r, method="drsch-efficientnet_lite0") for r in recs], None,
                       {"DRSCH": ("drsch", None)}, bits=(12, 48))
    assert t.iloc[1]["pretrained"] == "flagged (3 runs: constant_bits)"
    assert t.iloc[0]["pretrained"].endswith("+ 1 flagged")
    # a setting run on the backbone only: its pretrained records named, no scratch cell
    tuned = [_rec("drsch-lastblock-efficientnet_lite0", 48, s, 0.7) for s in range(3)]
    t = R.regime_table(recs + tuned, None, {"DRSCH, tuned": (None, None, "drsch-lastblock-efficientnet_lite0")},
                       bits=(48,))
    assert t.iloc[0]["scratch"] == "—" and t.iloc[0]["pretrained"].startswith("0.700") and "(n=3)" in t.iloc[0]["pretrained"]


def test_paper_scale_preferred_over_default_for_the_same_bits():
    recs = [_rec("dnnh-dem", 12, 0, 0.2), _rec("dnnh-dem", 12, 0, 0.5, scale="paper")]
    assert R.regime_cells(recs, "dnnh-dem", "cifar10")[12]["scale"] == "paper"
    # ... unless the paper-scale records are all dirty and a clean default-scale one exists
    recs = [_rec("dnnh-dem", 12, 0, 0.2), _rec("dnnh-dem", 12, 0, 0.5, scale="paper", dirty=True),
            _rec("dnnh-dem", 24, 0, 0.5, scale="paper", dirty=True)]
    cells = R.regime_cells(recs, "dnnh-dem", "cifar10")
    assert cells[12]["scale"] == "default" and not cells[12]["legacy"] and cells[12]["mean"] == pytest.approx(0.2)
    assert cells[24]["scale"] == "paper" and cells[24]["legacy"]
    # clean runs that are all flagged are not replaced by dirty ones: the cell says "flagged"
    fl = [_rec("dnnh-dem", 48, s, 0.6, flags=["constant_bits: 30 of 48 bits"]) for s in range(3)]
    c48 = R.regime_cells(fl + [_rec("dnnh-dem", 48, 0, 0.58, scale="paper", dirty=True)], "dnnh-dem", "cifar10")[48]
    assert c48["n"] == 0 and c48["n_flagged"] == 3
    # a benchmark's runs are not the chapter's rows, whatever scale they are labelled with
    bench = dict(_rec("dnnh-dem", 12, 1, 0.9, scale="paper"), command="python benchmarks/drsch_dead_bits.py --seeds 1")
    assert R.regime_cells(recs + [bench], "dnnh-dem", "cifar10")[12]["mean"] == pytest.approx(0.2)


def test_table_has_paper_scratch_pretrained_and_delta():
    recs = [_rec("dnnh-dem", 12, 0, 0.25)] + [_rec("dnnh-dem-efficientnet_lite0", 12, s, 0.55 + 0.01 * s) for s in range(3)]
    t = R.regime_table(recs, PAPER, {"DNNH": ("dnnh-dem", "dnnh-dem")}, bits=(12, 24))
    row = t[t["bits"] == 12].iloc[0]
    assert row["paper"] == "0.552" and row["scratch"].startswith("0.250")
    assert row["pretrained"].startswith("0.560") and "n=3" in row["pretrained"]
    assert row["pretrained − paper"] == "+0.008"
    assert t[t["bits"] == 24].iloc[0]["pretrained"] == "not run yet"


def test_seed_sentence_counts_from_records():
    recs = [_rec("dnnh-dem", 12, 0, 0.25)] + [_rec("dnnh-dem-efficientnet_lite0", b, s, 0.5)
                                            for b in (12, 24) for s in range(3)]
    s = R.seed_sentence(recs, ["dnnh-dem"])
    assert "from scratch: 1 seed per cell (1 cell)" in s
    assert "on the ImageNet backbone: 3 seeds per cell (2 cells)" in s
