"""hashrepro.plots.mch_page: what the MCH chapter page shows, on small hand-made records."""
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from IPython.display import Markdown  # noqa: E402

from hashrepro.plots import mch_page as MP  # noqa: E402
from hashrepro.results import load_records  # noqa: E402

EMA = {"agent_baseline": "ema", "agent_reward_norm": True, "agent_entropy": 0.0}
EQ7 = {"agent_baseline": "none", "agent_reward_norm": False, "agent_entropy": 0.0}
F1 = {"K": [1, 10, 100], "f1": [0.1, 0.5, 0.8], "buckets": [1.0, 10.0, 100.0]}


def _rec(method, seed=0, bits=32, dataset="mosaic-cifar10", legacy=False, metrics=None, curves=None, config=None):
    """A run record as the MCH recipe writes it (clean, or legacy: dirty tree and no command)."""
    m = {"map": 0.6, "recall_radius0": 0.01, "precision_radius0": 0.5, "anhc": 1.0, "n_buckets": 50,
         "buckets_visited": 10.0, "buckets_nonempty": 5.0, "n_codes": 100, "bucket_search_ms": 1.0,
         "linear_scan_ms": 2.0}
    m.update(metrics or {})
    r = {"schema": 1, "paper": "mch", "method": method, "dataset": dataset, "bits": bits, "seed": seed,
         "scale": "default", "config": dict(config or {}), "protocol": {}, "metrics": m,
         "curves": {"f1_bucket": F1, **(curves or {})}, "complete": True, "device": "cpu", "wall_time_s": 1.0,
         "started": "2026-11-01T00:00:00+00:00", "finished": f"2026-11-01T00:0{seed}:00+00:00",
         "git_commit": "0" * 40, "git_dirty": False, "git_read_at": "start",
         "command": f"hashrepro sweep mch --dataset {dataset} --bits {bits} --seeds {seed} --scale default"}
    if legacy:
        r.update(git_dirty=True, command=None)
        del r["git_read_at"]
    return r


def _agent(keep_prob, reward0=-50.0):
    n = len(keep_prob)
    return {"iteration": list(range(n)), "keep_prob": list(keep_prob), "oracle_keep": [0.05] * n,
            "reward": [reward0] + [-1.0] * (n - 1)}


def _mch(base, seed=0, anhc=1.0, agent=EMA, keep_prob=(0.6, 0.5, 0.4), reward0=-50.0, corr=0.2, **kw):
    metrics = {"anhc": anhc, "keep_prob_max": max(keep_prob), "oracle_policy_reward_corr": corr, **kw.pop("metrics", {})}
    curves = {"agent": _agent(keep_prob, reward0), **kw.pop("curves", {})}
    return _rec(f"mch-{base}", seed=seed, metrics=metrics, curves=curves, config=agent, **kw)


def _frame(tmp_path, recs):
    """Records written as JSON files and read back by load_records, as the page does."""
    d = tmp_path / "mch"
    d.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(recs):
        (d / f"r{i}.json").write_text(json.dumps(r))
    return load_records(d)


# --------------------------------------------------------------------------- set-up
def test_split_diagnostics_keeps_diag_records_apart(tmp_path):
    diag = _rec("diag-crops-dch", metrics={"positive_fraction": 0.1})
    records, recs, dg = MP.split_diagnostics(_frame(tmp_path, [_rec("dch"), _mch("dch"), diag]))
    assert sorted(records["method"]) == ["dch", "mch-dch"]
    assert [r["method"] for r in recs] == list(records["method"])
    assert [r["method"] for r in dg] == ["diag-crops-dch"]


def test_split_diagnostics_without_records(tmp_path):
    records, recs, dg = MP.split_diagnostics(load_records(tmp_path / "nothing"))
    assert len(records) == 0 and recs == [] and dg == []


def test_dataset_order_mnist_mosaic_then_cifar_mosaic_then_by_name():
    recs = [_rec("dch", dataset=d) for d in ("zzz", "mosaic-cifar10", "aaa", "mosaic-mnist5k", "zzz")]
    assert MP.dataset_order(recs) == ["mosaic-mnist5k", "mosaic-cifar10", "aaa", "zzz"]
    assert MP.dataset_order([]) == []


def test_no_runs_names_what_and_the_command():
    md = MP.no_runs("the agent")
    assert isinstance(md, Markdown)
    assert md.data == f"*No run records for the agent yet; run* `{MP.SWEEP}` *and rebuild the book.*"
    assert "`python -c x`" in MP.no_runs("it", "python -c x").data


def test_settings_table_reads_both_scales_of_the_recipe():
    from hashrepro.methods import mch

    d, p = mch.Config.for_scale("default"), mch.Config.for_scale("paper")
    t = MP.settings_table(d, p)
    assert list(t.columns) == ["scale=default (CPU)", "scale=paper (GPU)", "paper"]
    assert t.loc["σ, ξ", "scale=default (CPU)"] == f"{d.sigma}, {d.xi}"
    assert t.loc["σ, ξ", "paper"] == "0.5, 0.5"
    assert t.loc["policy hidden widths", "scale=paper (GPU)"] == str(p.policy_hidden)
    assert t.loc["images / queries per class / training per class", "scale=default (CPU)"].startswith(f"{d.n_images:,} /")


# --------------------------------------------------------------------------- regime note
def _pt(base, seed, **kw):
    kw.setdefault("config", EMA)  # the recipe's default agent update (the regime table reads that one)
    return _rec(f"{base}-efficientnet_lite0", seed=seed, **kw)


def test_regime_note_counts_the_seeds_of_the_imagenet_cells():
    none = MP.regime_note([_rec("dch")]).data  # from-scratch records only
    assert none.startswith("CIFAR-10 mosaic, 32 bits, σ = ξ = 0.5; no run in this regime yet. The oracle keeps")
    one = MP.regime_note([_pt("dch", 0), _pt("mch-dch", 0), _pt("ksh", 0), _rec("dch", seed=1)]).data
    assert "; one seed per cell so far, so no claim is judged in this regime yet. " in one
    mixed = MP.regime_note([_pt("dch", 0), _pt("dch", 1), _pt("ksh", 0)]).data
    assert "; 1–2 seeds per cell so far, so no claim is judged in this regime yet. " in mixed
    full = MP.regime_note([_pt("dch", s) for s in range(3)] + [_pt("mch-dch", s) for s in range(3)]).data
    assert "; three seeds per cell. The oracle" in full


def test_regime_note_other_setting_and_legacy_only_cells():
    recs = [_pt("dch", s, legacy=True) for s in range(2)]  # legacy records are shown in the table: counted
    assert "two seeds per cell so far" in MP.regime_note(recs).data
    # another code length or data set: not this table's cells
    assert "no run in this regime yet" in MP.regime_note(recs, bits=16).data
    other = MP.regime_note([_pt("dch", 0, dataset="mosaic-mnist5k")], dataset="mosaic-mnist5k", bits=32).data
    assert other.startswith("MNIST mosaic, 32 bits") and "one seed per cell" in other


def test_agent_schedule_is_part_of_the_agent_update():
    from hashrepro.methods import mch
    from hashrepro.methods.mch_agent import AGENT_ITERS_BY_SCALE
    from hashrepro.plots.mch import agent_variant

    # the data the plots read agrees with the recipe's presets
    for scale, t in AGENT_ITERS_BY_SCALE.items():
        assert mch.Config.for_scale(scale).agent_iters == t
    assert agent_variant(_rec("mch-dch", config={**EMA, "agent_iters": 100})) == "baseline ema + norm"
    assert agent_variant(_rec("mch-dch", config={**EMA, "agent_iters": 2000})) == "baseline ema + norm + T 2000"
    assert agent_variant(_rec("mch-dch", config={**EQ7, "agent_iters": 300})) == "eq. 7 + T 300"
    smoke = {**_rec("mch-dch", config={**EMA, "agent_iters": 5}), "scale": "smoke"}
    assert agent_variant(smoke) == "baseline ema + norm"  # the smoke preset's own T
    assert agent_variant({"config": dict(EMA)}) == "baseline ema + norm"  # no schedule stored: the default


def test_regime_table_and_note_read_one_agent_update():
    from hashrepro.plots.mch import regime_table

    long = {**EMA, "agent_iters": 2000}
    # X alone is the same for both agents (one file, written by whichever run came last)
    recs = [_pt("dch", s, config=long, metrics={"map": 0.6}) for s in range(3)]
    recs += [_pt("mch-dch", s, config=EMA, metrics={"map": 0.6, "anhc": 1.0}) for s in range(3)]
    recs += [_pt("mch-dch", s, config=long, metrics={"map": 0.62, "anhc": 1.5}) for s in range(3)]
    row = regime_table(recs, bases=("dch",)).iloc[0]
    assert row["X, ImageNet"] == "0.600 (n=3)" and row["ANHC (ImageNet)"] == "1.000 (n=3)"
    row = regime_table(recs, bases=("dch",), agent="baseline ema + norm + T 2000").iloc[0]
    assert row["X, ImageNet"] == "0.600 (n=3)" and row["ANHC (ImageNet)"] == "1.500 (n=3)"
    assert row["MCH-X, ImageNet"] == "0.620 (n=3)"
    assert regime_table(recs, bases=("dch",), agent=None).iloc[0]["ANHC (ImageNet)"] == "1.250 (n=6)"
    assert "; three seeds per cell." in MP.regime_note(recs, agent="baseline ema + norm + T 2000").data
    table, note = MP.agent_schedule_outputs(recs, iters=2000)
    assert table.iloc[-2]["ANHC (ImageNet)"] == "1.500 (n=3)" and "three seeds per cell" in note.data
    none = MP.agent_schedule_outputs(recs, iters=500)
    assert len(none) == 1 and "-p agent_iters 500" in none[0].data


# --------------------------------------------------------------------------- Table 2
def test_paper_table2_in_method_order():
    t2 = pd.DataFrame({"method": ["mch-dch", "dch", "lsh"], "dataset": ["coco"] * 3, "bits": [32] * 3,
                       "value": [0.71234, 0.70001, 0.5]})
    head, tab = MP.paper_table2(t2)
    assert head.data.startswith("**Paper, Table 2**")
    assert list(tab.index) == MP.METHOD_ORDER
    assert tab.loc["dch", ("coco", 32)] == 0.7 and tab.loc["mch-dch", ("coco", 32)] == 0.7123
    assert np.isnan(tab.loc["ksh", ("coco", 32)])


def test_ours_table2_mean_std_n_and_no_records(tmp_path):
    assert MP.ours_table2(load_records(tmp_path / "none"))[0].data.startswith("*No run records for the mosaics yet")
    recs = [_rec("dch", seed=0, metrics={"map": 0.6}), _rec("dch", seed=1, metrics={"map": 0.7}),
            _rec("lsh", seed=0, metrics={"map": 0.3}), _rec("zzz", metrics={"map": 0.1})]
    head, tab = MP.ours_table2(_frame(tmp_path, recs))
    assert "mean ± std over seeds" in head.data
    assert list(tab.index) == ["lsh", "dch"]  # the page's order; methods outside it are left out
    assert tab.loc["dch", ("mosaic-cifar10", 32)] == f"0.6500 ± {np.std([0.6, 0.7], ddof=1):.4f} (n=2)"
    assert tab.loc["lsh", ("mosaic-cifar10", 32)] == "0.3000"  # one seed: no std, no n


# --------------------------------------------------------------------------- "What happened"
def test_what_happened_states_counts_and_ranges_from_the_records():
    recs = [_rec("dch", seed=0), _mch("dch", seed=0, anhc=1.0, keep_prob=(0.5, 0.04, 0.01), reward0=-120.0, corr=0.1),
            _rec("dch", seed=1), _mch("dch", seed=1, anhc=1.2, keep_prob=(0.5, 0.3, 0.2), reward0=-50.0, corr=0.3),
            _rec("hashnet"), _mch("hashnet", anhc=1.0, agent=EQ7, keep_prob=(0.3, 0.2, 0.01), reward0=-80.0,
                                  corr=float("nan"))]
    text = MP.what_happened(recs).data
    assert text.startswith("**What happened.** With the agent update *baseline ema + norm* (2 runs on mosaic-cifar10)")
    assert "ANHC at σ = ξ = 0.5 is 1.000–1.200 (≤ 1.01 in 1 runs)" in text
    assert "the largest keep probability of any database crop is 0.500" in text
    assert "with their true eq.-6 reward is 0.10–0.30" in text
    assert "fell below 0.05 within the T = 100 iterations in 1 runs (in ≤ 5 iterations: MCH-DCH 32 bits: 2). " in text
    # eq. 7 comes after the other updates; a NaN correlation is left out of the range
    assert text.index("*baseline ema + norm*") < text.index("With the agent update *eq. 7* (1 runs on mosaic-cifar10)")
    assert "reward is nan–nan" in text and "(in ≤ 5 iterations: MCH-HASHNET 32 bits: 3)" in text
    assert "the first batch's mean sampled reward is -50 to -120 units" in text
    assert "Degenerate base models" not in text


def test_what_happened_degenerate_base_and_one_seed():
    recs = [_rec("mmhh", metrics={"n_buckets": 1}), _mch("mmhh", keep_prob=(0.5, 0.5), reward0=3.0)]
    text = MP.what_happened(recs).data
    assert "(1 runs on mosaic-cifar10)" in text and "within the T = 100 iterations in 0 runs. " in text
    assert "reward is nan to nan units" in text  # no negative first reward
    assert " **Degenerate base models:** MMHH on mosaic-cifar10 at 32 bits put every database image" in text


def test_what_happened_without_pairs_has_only_the_explanation():
    text = MP.what_happened([_rec("dch")]).data
    assert "With the agent update" not in text and text.startswith("**What happened.** Eq. 7 without a baseline")


# --------------------------------------------------------------------------- diagnostics
def test_oracle_table_rows_only_for_records_with_the_oracle():
    assert len(MP.oracle_table([_rec("dch"), _mch("dch")])) == 0
    oracle = {"oracle_map": 0.61234, "oracle_positive_reward_fraction": 0.08, "oracle_anhc": 2.0,
              "oracle_recall_radius0": 0.02}
    orc = {"K": [1, 10, 100], "f1": [0.1, 0.5, 0.8], "buckets": [1.0, 5.0, 50.0]}
    t = MP.oracle_table([_rec("dch"), _mch("dch", metrics=oracle, curves={"f1_bucket_oracle": orc})])
    row = t.iloc[0]
    assert (row["base"], row["agent"], row["mAP oracle"], row["mAP X"]) == ("dch", "baseline ema + norm", 0.6123, 0.6)
    assert row["buckets oracle/X at equal F1"] == 0.5  # 5 buckets against 10 at F1 = 0.5
    t = MP.oracle_table([_rec("dch"), _mch("dch", metrics=oracle)])  # no oracle curve: no ratio
    assert np.isnan(t.iloc[0]["buckets oracle/X at equal F1"])


DIAG = {"positive_fraction": 0.083, "reward_pos_per_item": 4.86, "reward_neg_per_item": -454.26,
        "positive_fraction_objects1": 0.0, "positive_fraction_objects4": 0.2328, "d_tile_same_class": 16.0,
        "d_tile_other_class": 18.0, "d_whole_same_class": 8.5, "d_whole_other_class": 12.0}


def test_crop_diagnostic_table_and_text():
    d = _rec("diag-crops-hashnet", metrics=DIAG)
    t = MP.crop_diagnostic_table([d])
    assert t[0]["base"] == "hashnet" and t[0]["crops with reward > 0"] == 0.083
    assert t[0]["Σ negative rewards / image"] == -454.3
    assert "reward > 0, 4 object(s)" in t.index and "reward > 0, 2 object(s)" not in t.index
    text = MP.crop_diagnostic_text(d).data
    assert text.startswith("Read it as follows (HASHNET, 32 bits). Only 8.3% of the crops have a positive reward")
    assert "sum to 4.9 per image against -454.3" in text and "four-object mosaic in 23.3%" in text
    assert "coded at a median 16 bits" in text and "sits at 8 and 12" in text  # 8.5 rounds to even
    partial = {k: v for k, v in DIAG.items() if k != "positive_fraction_objects4"}
    assert "four-object mosaic in nan%" in MP.crop_diagnostic_text(_rec("diag-crops-x", metrics=partial)).data


# --------------------------------------------------------------------------- Table 3, ξ, cost
def _grid(ones=True):
    sig, xi, an = [], [], []
    for s in (0.3, 0.5, 1.0):
        for x in (0.1, 0.5):
            sig.append(s)
            xi.append(x)
            an.append(1.0 if s == 1.0 and ones else 1.0 + s * x + (0.01 if s == 1.0 else 0.0))
    return {"sigma": sig, "xi": xi, "anhc": an}


T3 = pd.DataFrame({"metric": ["anhc[sigma=0.5,xi=0.5]", "anhc[sigma=0.5,xi=0.1]", "anhc[sigma=0.3,xi=0.5]"],
                   "value": [1.31, 1.62, 1.2], "method": "mch-dch", "dataset": "coco", "bits": 32})


def test_table3_records_and_anhc_comparison():
    recs = [_mch("dch", curves={"anhc_grid": _grid()}), _mch("dch", seed=1), _mch("hashnet", curves={"anhc_grid": _grid()})]
    cand = MP.table3_records(recs)
    assert [(r["method"], r["seed"]) for r in cand] == [("mch-dch", 0)]
    head, grid, text = MP.anhc_comparison(cand, T3)
    assert head.data == "**Ours**, mosaic-cifar10, seed 0, agent update *baseline ema + norm*:"
    assert grid.loc[0.5, 0.1] == 1.05
    assert text.data == ("ANHC(σ = 0.5, ξ = 0.5) = 1.250 (paper 1.31); ANHC(σ = 0.5, ξ = 0.1) = 1.050 (paper 1.62); "
                         "ANHC(σ = 0.3, ξ = 0.5) = 1.150 (paper 1.20); σ = 1: exactly 1 for every ξ (paper 1.00).")
    r = _mch("dch", curves={"anhc_grid": _grid(ones=False)})
    assert MP.anhc_comparison([r], T3)[2].data.endswith("σ = 1: 1.110–1.510 (paper 1.00).")
    assert MP.anhc_comparison([], T3) == []


def _sens():
    rows = {"vary": [], "sigma": [], "xi": [], "K": [], "f1": [], "buckets": [], "anhc": []}
    for xi, b in ((0.1, 2.0), (0.5, 10.0)):
        for k, f in zip(F1["K"], F1["f1"]):
            for key, v in (("vary", "xi"), ("sigma", 0.5), ("xi", xi), ("K", k), ("f1", f),
                           ("buckets", b * k), ("anhc", 1 + xi)):
                rows[key].append(v)
    return rows


def test_xi_pivot_anhc_and_bucket_ratio_per_xi():
    assert len(MP.xi_pivot([_rec("dch"), _mch("dch")])) == 0  # no sensitivity curves
    t = MP.xi_pivot([_rec("dch"), _mch("dch", curves={"sensitivity": _sens()})])
    row = t.loc[("mosaic-cifar10", 32, "dch")]
    assert row[("ANHC", 0.1)] == 1.1 and row[("buckets MCH/X", 0.1)] == 2.0 and row[("buckets MCH/X", 0.5)] == 10.0


def test_search_cost_table_means_over_seeds(tmp_path):
    recs = [_rec("dch", seed=0, metrics={"bucket_search_ms": 1.0}), _rec("dch", seed=1, metrics={"bucket_search_ms": 2.0})]
    t = MP.search_cost_table(_frame(tmp_path, recs))
    assert list(t.columns) == ["buckets_visited", "buckets_nonempty", "n_codes", "n_buckets",
                               "bucket_search_ms", "linear_scan_ms"]
    assert t.loc[("mosaic-cifar10", 32, "dch"), "bucket_search_ms"] == 1.5


# --------------------------------------------------------------------------- figures
def test_figures_none_without_records_and_drawn_with_them():
    assert MP.radius0_figure([], []) is None and MP.f1_bucket_figure([], []) is None
    assert MP.sensitivity_figure([], []) is None and MP.agent_figure([_rec("dch")]) is None
    recs = [_rec("dch"), _mch("dch", curves={"sensitivity": _sens()})]
    try:
        assert len(MP.radius0_figure(recs, ["mosaic-cifar10"]).axes) == 2
        assert len(MP.f1_bucket_figure(recs, ["mosaic-cifar10"]).axes) == 1
        fig = MP.sensitivity_figure(recs, [recs[1]])
        assert fig.axes[1].get_title().startswith("mosaic-cifar10: MCH-DCH, 32 bits: varying ξ")
        fig = MP.agent_figure(recs, bits=32)
        assert fig.axes[0].get_title() == "MCH-DCH, mosaic-cifar10"
        assert MP.agent_figure(recs, bits=16) is None
    finally:
        plt.close("all")


# --------------------------------------------------------------------------- claims and seeds
class _Cfg:
    def __init__(self, cfg):
        self.cfg = cfg

    def to_dict(self):
        return dict(self.cfg)


def test_claims_outputs_default_update_first_and_provenance(tmp_path):
    recs = [_rec("dch"), _mch("dch", agent=EQ7), _rec("dch", seed=1), _mch("dch", seed=1),
            _rec("dch", seed=2), _mch("dch", seed=2)]
    out = MP.claims_outputs(recs, _frame(tmp_path, recs), _Cfg(EMA))
    heads = [o.data for o in out if isinstance(o, Markdown)]
    assert heads[0] == "**Agent update *baseline ema + norm*** (2 MCH runs; the default):"
    assert heads[1] == ("**Agent update *eq. 7*** (1 MCH runs; the paper's eq. 7, runs made before the "
                        "baseline option):")
    assert heads[-1].startswith("**How a verdict is reached.** ") and "Of 6 run records, 6 are clean" in heads[-1]
    assert all(isinstance(o, pd.DataFrame) and "verdict" in o.columns for o in (out[1], out[3]))


def test_claims_outputs_no_pairs_and_legacy_only(tmp_path):
    recs = [_rec("dch", legacy=True), _rec("dch", seed=1, legacy=True)]
    out = MP.claims_outputs(recs, _frame(tmp_path, recs), _Cfg(EMA))
    assert len(out) == 2 and isinstance(out[0], pd.DataFrame)
    assert set(out[0]["verdict"]) <= {"not testable here"}
    assert "Of 2 run records, 0 are clean, 0 ran on a dirty tree with the diff saved, and 2 are *legacy*" in out[1].data


def test_claims_outputs_per_regime(tmp_path):
    pt = "-efficientnet_lite0"
    scratch = [r for s in range(3) for r in (_rec("dch", seed=s), _mch("dch", seed=s))]
    backbone = [{**r, "method": r["method"] + pt} for s in range(3) for r in (_rec("hashnet", seed=s),
                                                                            _mch("hashnet", seed=s))]
    frame = _frame(tmp_path, scratch + backbone)
    out = MP.claims_outputs(scratch + backbone, frame, _Cfg(EMA), regime="pretrained")
    assert out[0].data == "**Agent update *baseline ema + norm*** (3 MCH runs on the ImageNet backbone; the default):"
    table = out[1]
    assert len(table) == 11 and table["claim"].str.startswith("[ImageNet backbone] ").all()
    assert out[-1].data.startswith("**How a verdict is reached.** With the rule of *Claims* below")
    # the from-scratch section counts and judges its own runs only, and points to the other regime
    out = MP.claims_outputs(scratch + backbone, frame, _Cfg(EMA))
    assert out[0].data == "**Agent update *baseline ema + norm*** (3 MCH runs; the default):"
    assert not out[1]["claim"].str.contains("ImageNet backbone").any() and len(out[1]) == 8
    assert "judged in *On the ImageNet backbone* above" in out[-1].data
    with pytest.raises(ValueError, match="regime must be one of 'scratch', 'pretrained'; got 'imagenet'"):
        MP.claims_outputs(scratch, frame, _Cfg(EMA), regime="imagenet")


def test_seeds_sentence_from_the_records():
    assert MP.seeds_sentence([]) is None
    recs = [_rec("dch", seed=s) for s in (2, 0)] + [_rec("lsh", seed=1), _rec("dch", bits=16, dataset="mosaic-mnist5k")]
    assert MP.seeds_sentence(recs).data == ("Seeds per data set and code length (every method of the setting): "
                                            "mosaic-cifar10 32 b: 0, 1, 2; mosaic-mnist5k 16 b: 0.")
    assert MP.seeds_sentence([_rec("dch", legacy=True)]).data.endswith("mosaic-cifar10 32 b: 0.")


@pytest.mark.parametrize("fn", [MP.what_happened, MP.oracle_table, MP.xi_pivot])
def test_sections_accept_a_load_records_frame(tmp_path, fn):
    frame = _frame(tmp_path, [_rec("dch"), _mch("dch")])
    assert fn(frame) is not None


def test_same_split_outputs_pairs_x_per_seed_on_one_split():
    split, pt = "-mosaic2000-q20-t80", "-efficientnet_lite0"
    recs = ([_rec("dch" + split, seed=s, metrics={"map": v}) for s, v in enumerate([0.60, 0.61, 0.60])]
            + [_rec("dch" + pt, seed=s, metrics={"map": v}) for s, v in enumerate([0.65, 0.64, 0.66])]
            + [_rec("ksh" + split, seed=s, metrics={"map": 0.62}) for s in range(3)]
            + [_rec("ksh" + pt, seed=s, metrics={"map": v}) for s, v in enumerate([0.63, 0.65, 0.63])]
            + [_rec("lsh" + split, seed=0, metrics={"map": 0.59}), _rec("lsh" + pt, seed=0, metrics={"map": 0.53})]
            + [_rec("dch", seed=0, metrics={"map": 0.1})]            # the scratch preset's split: not paired
            + [_mch("dch" + pt, seed=0, metrics={"map": 0.9})])       # MCH-X: not X
    table, text = MP.same_split_outputs(recs)
    row = table.set_index("model").loc["dch"]
    assert row["scratch CNN, same mosaics"] == "0.603" and row["ImageNet backbone"] == "0.650"
    assert row["ImageNet − scratch, per seed"] == "+0.050 / +0.030 / +0.060" and row["seeds"] == "0, 1, 2"
    assert list(table["model"]) == ["ksh", "dch", "lsh"]
    assert "higher by more than 0.02 in every seed, with the mean beyond twice its standard error for 1 of 2 base models with ≥ 3 seeds (dch)" in text.data
    assert "0.590 on the scratch CNN's against 0.530 on the ImageNet backbone's" in text.data
    none = MP.same_split_outputs([_rec("dch", seed=0)])
    assert len(none) == 1 and "-p n_images 2000" in none[0].data


def test_finetune_outputs_pair_the_tuned_runs_with_scratch_on_one_split():
    split, pt, ft = "-mosaic2000-q20-t80", "-efficientnet_lite0", "-lastblock-efficientnet_lite0"
    recs = ([_rec("dch" + split, seed=s, metrics={"map": v}) for s, v in enumerate([0.60, 0.61, 0.60])]
            + [_rec("dch" + pt, seed=s, metrics={"map": 0.62}) for s in range(3)]
            + [_rec("dch" + ft, seed=s, metrics={"map": v}) for s, v in enumerate([0.65, 0.64, 0.66])]
            + [_mch("dch" + ft, seed=s, metrics={"anhc": 1.5}) for s in range(3)]
            + [_rec("adsh" + split, seed=s, metrics={"map": 0.62}) for s in range(3)]
            + [_rec("adsh" + ft, seed=s, metrics={"map": 0.63}) for s in range(2)]
            + [dict(_rec("adsh" + ft, seed=2, metrics={"map": 0.99}), flags=["constant_bits: 9 of 32 bits"])])
    table, text = MP.finetune_outputs(recs)
    row = table.set_index("model").loc["dch"]
    assert row["scratch CNN, same mosaics"] == "0.603 (n=3)" and row["ImageNet, frozen"] == "0.620 (n=3)"
    assert row["ImageNet, last block tuned"] == "0.650 (n=3)" and row["ANHC of MCH-X (tuned)"] == "1.500 (n=3)"
    assert row["tuned − scratch, per seed"] == "+0.050 / +0.030 / +0.060"
    assert table.set_index("model").loc["adsh", "ImageNet, last block tuned"] == "0.630 (n=2)"  # flagged: out
    assert row["tuned − frozen, per seed"] == "+0.030 / +0.020 / +0.040"
    assert "for 1 of 1 base models with ≥ 3 seeds (dch)" in text.data and "1 flagged run(s) left out" in text.data
    assert "higher in 3 of 3 seed pairs" in text.data
    none = MP.finetune_outputs([_rec("dch" + pt, seed=0)])
    assert len(none) == 1 and "-p finetune last_block" in none[0].data


def test_finetune_selection_outputs_name_each_choice_and_keep_the_latest():
    from hashrepro.plots import mch_page as MP

    def sel(method, chosen, maps, finished, grid_field="finetune_lr_mult"):
        cands = [{"label": f"{grid_field}={v:g}", "params": {grid_field: v}, "validation_map": m, "train_time_s": 60.0}
                 for v, m in zip((0.03, 0.1, 0.3), maps)]
        return {"paper": "mch", "method": method, "dataset": "mosaic-cifar10", "bits": 32, "seed": 1,
                "finished": finished, "chosen": {grid_field: chosen},
                "config": {"recipe": {"base": method.split("-")[0], "backbone": "efficientnet_lite0",
                                      "finetune": "last_block", "scale": "default", "finetune_lr_mult": 0.1}},
                "metrics": {"gain_over_current": max(maps) - maps[1]},
                "selection": {"grid": {grid_field: [0.03, 0.1, 0.3]}, "chosen_label": f"{grid_field}={chosen:g}",
                              "candidates": cands}}

    old = sel("dch-lastblock-efficientnet_lite0", 0.03, [0.7, 0.6, 0.5], "2026-11-29T10:00:00")
    new = sel("dch-lastblock-efficientnet_lite0", 0.3, [0.60, 0.61, 0.64], "2026-11-30T10:00:00")
    keep = sel("adsh-lastblock-efficientnet_lite0", 0.1, [0.5, 0.6, 0.6], "2026-11-30T10:00:00")
    other = sel("hashnet-lastblock-efficientnet_lite0", 1e-3, [0.5, 0.6, 0.6], "2026-11-30T10:00:00", "base_lr")
    head, table = MP.finetune_selection_outputs([old, new, keep, other])
    assert ("adsh-lastblock-efficientnet_lite0 (32 bits, seed 1): 0.1 (the value before, 0.1); "
            "dch-lastblock-efficientnet_lite0 (32 bits, seed 1): 0.3 (+0.0300 over 0.1)") in head.data
    assert "hashnet" not in head.data and "active triplets" not in table.columns
    assert len(table) == 6 and list(table[table["chosen"] == "✓"]["candidate"]) == ["finetune_lr_mult=0.1",
                                                                                  "finetune_lr_mult=0.3"]
    assert "hashrepro select mch" in MP.finetune_selection_outputs([other])[0].data
    depth = {"paper": "mch", "method": "dch-efficientnet_lite0", "dataset": "mosaic-cifar10", "bits": 32, "seed": 1,
             "finished": "2026-12-01T10:00:00", "chosen": {"finetune": "last_block"},
             "config": {"recipe": {"base": "dch", "backbone": "efficientnet_lite0", "finetune": "none", "scale": "default",
                                   "finetune_lr_mult": 0.03, "base_weight_decay": 0.1}},
             "metrics": {"gain_over_current": 0.0117},
             "selection": {"grid": {"finetune": ["none", "last_block", "last_4_blocks"]}, "chosen_label": "finetune=last_block",
                           "candidates": [{"label": f"finetune={v}", "params": {"finetune": v}, "validation_map": m,
                                           "train_time_s": 60.0} for v, m in
                                          (("none", 0.7314), ("last_block", 0.7431), ("last_4_blocks", 0.7392))]}}
    head, table = MP.finetune_selection_outputs([depth, new], field="finetune")
    assert "dch-efficientnet_lite0 (32 bits, seed 1): last_block (+0.0117 over none)" in head.data and "0.3" not in head.data
    assert list(table[table["chosen"] == "✓"]["candidate"]) == ["finetune=last_block"]


def test_four_blocks_outputs_pair_four_blocks_with_the_chosen_last_block_and_scratch():
    from hashrepro.claims.mch import CHOSEN_ON_VALIDATION, FOUR_BLOCKS

    four, one, split = FOUR_BLOCKS["dch"], CHOSEN_ON_VALIDATION["dch"], "dch-mosaic2000-q20-t80"
    assert four == one.replace("-lastblock-", "-last4blocks-")
    recs = ([_rec(split, seed=s, metrics={"map": v}) for s, v in enumerate([0.60, 0.61, 0.60])]
            + [_rec(one, seed=s, metrics={"map": v}) for s, v in enumerate([0.62, 0.63, 0.61])]
            + [_rec(four, seed=s, metrics={"map": v}) for s, v in enumerate([0.65, 0.64, 0.66])]
            + [dict(_mch(four, seed=s, metrics={"anhc": 1.2}), wall_time_s=1200.0) for s in range(3)]
            + [_rec(four, seed=s, bits=64, metrics={"map": 0.7}) for s in range(2)]
            + [dict(_rec(four, seed=2, bits=64, metrics={"map": 0.99}), flags=["constant_bits: 9 of 64 bits"])])
    table, text = MP.four_blocks_outputs(recs)
    row = table.set_index(["model", "bits"]).loc[("dch", 32)]
    assert row["last four blocks tuned"] == "0.650 (n=3)" and row["last block tuned"] == "0.620 (n=3)"
    assert row["four − one block, per seed"] == "+0.030 / +0.010 / +0.050"
    assert row["four blocks − scratch, per seed"] == "+0.050 / +0.030 / +0.060"
    assert row["ANHC of MCH-X"] == "1.200 (n=3)" and row["min / run"] == "20.0"
    assert table.set_index(["model", "bits"]).loc[("dch", 64), "last four blocks tuned"] == "0.700 (n=2)"  # flagged: out
    assert "by more than 0.02 in every seed, with the mean beyond twice its standard error: 1 of 1 settings with ≥ 3 seeds (dch 32)" in text.data
    none = MP.four_blocks_outputs([_rec(one, seed=0)])
    assert len(none) == 1 and "-p finetune last_4_blocks" in none[0].data


def test_feature_ceiling_outputs_put_the_references_beside_the_models_per_seed():
    from hashrepro.claims.mch import CHOSEN_ON_VALIDATION

    def ceil(seed, lin, dirty=False):
        return {"paper": "mch", "method": "feature-ceiling-efficientnet_lite0", "dataset": "mosaic-cifar10",
                "bits": 0, "seed": seed, "git_dirty": dirty, "finished": f"2026-12-01T0{seed}",
                "metrics": {"relevant_fraction": 0.5, "map_euclidean": 0.49, "map_linear-p": lin, "map_mlp-p": lin + 0.01}}

    assert "benchmarks/mch_feature_ceiling.py" in MP.feature_ceiling_outputs([ceil(0, 0.7, dirty=True)], [])[0].data
    recs = ([_rec("dch-mosaic2000-q20-t80", seed=s, metrics={"map": v}) for s, v in enumerate([0.60, 0.62, 0.64])]
            + [_rec(CHOSEN_ON_VALIDATION["dch"], seed=s, metrics={"map": 0.66}) for s in range(2)]
            + [_rec(CHOSEN_ON_VALIDATION["dch"], seed=5, metrics={"map": 0.99})])       # no reference at seed 5
    table, text = MP.feature_ceiling_outputs([ceil(0, 0.70), ceil(1, 0.72), ceil(1, 0.0, dirty=True)], recs)
    t = table.set_index("retriever / model")
    assert list(t.columns) == ["seed 0", "seed 1", "mean"]
    assert t.loc["MLP (1,024 ReLU) multi-label classifier, P(share a label)", "mean"] == "0.720"
    assert t.loc["dch, scratch CNN, same mosaics (32 bits)"].tolist() == ["0.600", "0.620", "0.610"]
    assert t.loc["dch, last block tuned, chosen on validation (32 bits)", "mean"] == "0.660"
    assert t.loc["hashnet, last block tuned, chosen on validation (32 bits)", "mean"] == "—"
    assert "best reference ranking reaches 0.720" in text.data and "random ranking at 0.500" in text.data
    assert "tuned base models reach 0.660–0.660" in text.data
    assert "the tuned models go 73 %–73 % of the way" in text.data and "the scratch ones 50 %–50 %" in text.data


def test_chosen_finetune_outputs_pair_the_chosen_ratio_with_the_preset_and_scratch():
    from hashrepro.plots import mch_page as MP

    def sel(method, chosen):
        return {"paper": "mch", "method": method, "bits": 32, "seed": 1, "finished": "2026-11-30T10:00:00",
                "chosen": {"finetune_lr_mult": chosen}, "selection": {"grid": {"finetune_lr_mult": [0.03, 0.1]}},
                "config": {"recipe": {"base": method.split("-")[0], "backbone": "efficientnet_lite0",
                                      "finetune": "last_block", "scale": "default", "finetune_lr_mult": 0.1}}}

    split, ft = "-mosaic2000-q20-t80", "-lastblock-efficientnet_lite0"
    chosen = "-finetune_lr_mult-0.03" + ft
    recs = ([_rec("dch" + split, bits=b, seed=s, metrics={"map": 0.60}) for s in range(3) for b in (16, 32)]
            + [_rec("dch" + ft, bits=b, seed=s, metrics={"map": 0.63}) for s in range(3) for b in (16, 32)]
            + [_rec("dch" + chosen, bits=32, seed=s, metrics={"map": v}) for s, v in enumerate([0.64, 0.615, 0.65])]
            + [_rec("dch" + chosen, bits=16, seed=s, metrics={"map": 0.64}) for s in range(3)])
    sels = [sel("dch-lastblock-efficientnet_lite0", 0.03), sel("adsh-lastblock-efficientnet_lite0", 0.1)]
    table, text, todo = MP.chosen_finetune_outputs(recs, sels)
    row = table.set_index(["model", "bits"]).loc[("dch", 32)]
    assert row["tuned, chosen"] == "0.635 (n=3)" and row["tuned, before"] == "0.630 (n=3)"
    assert row["finetune_lr_mult"] == "0.1 → 0.03"
    assert row["chosen − before, per seed"] == "+0.010 / -0.015 / +0.020"
    assert row["chosen − scratch, per seed"] == "+0.040 / +0.015 / +0.050"
    assert "1 of 2 settings with ≥ 3 seeds (dch 16)" in text.data       # +0.015 at 32 bits
    assert "-p finetune_lr_mult 0.03" in todo.data and "--bits 64" in todo.data and "adsh" not in text.data
    assert MP.chosen_finetune_outputs(recs, [sels[1]]) == []             # every choice kept the preset


def test_chosen_weight_decay_outputs_start_from_the_selections_own_configuration():
    """A weight-decay selection that started from DCH with the tuned-block ratio 0.03 compares its chosen
    runs with those 0.03 runs (not the preset's) and names the sweep with both fields."""
    from hashrepro.methods import mch
    from hashrepro.plots import mch_page as MP

    sel = {"paper": "mch", "method": "dch-finetune_lr_mult-0.03-lastblock-efficientnet_lite0", "bits": 32, "seed": 1,
           "dataset": "mosaic-cifar10",
           "finished": "2026-12-01T10:00:00", "chosen": {"base_weight_decay": 1.0},
           "metrics": {"gain_over_current": 0.004},
           "selection": {"grid": {"base_weight_decay": [0.0, 0.1, 1.0]}, "chosen_label": "base_weight_decay=1",
                         "candidates": [{"label": f"base_weight_decay={v:g}", "params": {"base_weight_decay": v},
                                         "validation_map": m, "train_time_s": 60.0}
                                        for v, m in ((0.0, 0.70), (0.1, 0.701), (1.0, 0.704))]},
           "config": {"recipe": {"base": "dch", "backbone": "efficientnet_lite0", "finetune": "last_block",
                                 "scale": "default", "finetune_lr_mult": 0.03, "base_weight_decay": None}}}
    head, table = MP.finetune_selection_outputs([sel], field="base_weight_decay")
    assert "dch-finetune_lr_mult-0.03-lastblock-efficientnet_lite0 (32 bits, seed 1): 1 (+0.0040 over 0)" in head.data
    chosen = "dch-finetune_lr_mult-0.03-base_weight_decay-1-lastblock-efficientnet_lite0"
    assert mch.record_method(mch.Config.for_scale("default", base="dch", backbone="efficientnet_lite0",
                                                  finetune="last_block", finetune_lr_mult=0.03,
                                                  base_weight_decay=1.0)) == chosen
    split = "-mosaic2000-q20-t80"
    recs = ([_rec("dch" + split, bits=32, seed=s, metrics={"map": 0.60}) for s in range(3)]
            + [_rec("dch-finetune_lr_mult-0.03-lastblock-efficientnet_lite0", bits=32, seed=s, metrics={"map": 0.63})
               for s in range(3)]
            + [_rec(chosen, bits=32, seed=s, metrics={"map": 0.65}) for s in range(3)])
    table, text, todo16, todo64 = MP.chosen_finetune_outputs(recs, [sel], field="base_weight_decay")
    row = table.set_index(["model", "bits"]).loc[("dch", 32)]
    assert row["tuned, before"] == "0.630 (n=3)" and row["chosen − before, per seed"] == "+0.020 / +0.020 / +0.020"
    assert row["base_weight_decay"] == "0 → 1"
    assert "1 of 1 settings with ≥ 3 seeds (dch 32)" in text.data
    assert ("--bits 16 --seeds 0 1 2 --scale default -p backbone efficientnet_lite0 -p finetune last_block -p base dch "
            "-p finetune_lr_mult 0.03 -p base_weight_decay 1") in todo16.data
    assert MP.finetune_selection_outputs([], field="base_weight_decay")[0].data.count("base_weight_decay=0,0.1,1") == 1


def test_margin_tally_is_the_claims_rule_not_only_every_seed():
    """+0.045 / +0.024 / +0.022 clear a 0.02 margin in every seed, but the mean excess (0.0103) is
    within twice its standard error (0.0148): the claims read inconclusive, and so does the page."""
    from hashrepro.claims.evaluator import decide

    judged, higher = [], []
    MP._tally_margin("dch 16", [0.045, 0.024, 0.022], 0.02, judged, higher)
    MP._tally_margin("dch 64", [0.030, 0.037, 0.023], 0.02, judged, higher)
    MP._tally_margin("few", [0.5, 0.5], 0.02, judged, higher)
    assert judged == ["dch 16", "dch 64"] and higher == ["dch 64"]
    assert decide([0.025, 0.004, 0.002])[0] == "inconclusive"
