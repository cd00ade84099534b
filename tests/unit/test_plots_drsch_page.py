"""hashrepro.plots.drsch_page: the DRSCH page's text and tables from hand-made records."""
import pandas as pd
import pytest
from IPython.display import Markdown

from hashrepro.book import no_runs
from hashrepro.methods import drsch
from hashrepro.plots import drsch_page as DP


def rec(method, bits, seed, m, ds="cifar10", wmin=0.999, wmax=1.001, flags=None, **config):
    r = {"paper": "drsch", "method": method, "dataset": ds, "bits": bits, "seed": seed, "scale": "default",
         "metrics": {"map": m, "bit_weight_abs_min": wmin, "bit_weight_abs_max": wmax}, "config": config,
         "git_dirty": False}
    if flags:
        r["flags"] = flags
    return r


def test_settings_table_reads_both_configs():
    d, p = drsch.Config.for_scale("default"), drsch.Config.for_scale("paper")
    t = DP.settings_table(d, p)
    assert list(t.columns) == ["scale=default (CPU)", "scale=paper (GPU)", "released code"]
    assert t.loc["iterations (batches of 10×10 images)", "scale=default (CPU)"] == f"{d.iterations:,}"
    assert t.loc["iterations (batches of 10×10 images)", "scale=paper (GPU)"] == "800,000"


def test_scratch_reading_ranges_from_records():
    recs = [rec("drsch", 12, 0, 0.18, wmin=0.998), rec("dsch", 24, 0, 0.20, wmax=1.006),
            rec("drsch", 12, 0, 0.80, ds="mnist"), rec("drsch-efficientnet_lite0", 12, 0, 0.6, wmin=0.2)]
    text = DP.scratch_reading(recs).data
    assert "mnist: mAP 0.800–0.800" in text and "cifar10: mAP 0.180–0.200" in text
    assert "within 0.9980–1.0060" in text          # the pretrained run's |w| is not a from-scratch one
    assert DP.scratch_reading([]) is None


def test_settings_sentence_shows_ranges():
    rs = [{"config": {"iterations": 3000, "lr": 0.01, "momentum": 0.9, "slope_every": 100}},
          {"config": {"iterations": 6000, "lr": 0.01, "momentum": 0.9, "slope_every": 100}}]
    assert DP._settings(rs) == "3,000–6,000 iterations, lr 0.01, momentum 0.9, slope/margin steps every 100"
    assert DP._settings([{}]) == "? iterations, lr ?, momentum ?, slope/margin steps every ?"


def test_pretrained_section_without_records_says_what_to_run():
    out = DP.pretrained_bs_outputs([])
    assert len(out) == 1 and "No run records for BS-DRSCH on the ImageNet backbone" in out[0].data
    assert "--variant" not in out[0].data and "-p variant bs-drsch" in out[0].data


def test_no_runs_is_one_markdown_line():
    m = no_runs("X", "hashrepro sweep x")
    assert isinstance(m, Markdown) and m.data == "*No run records for X yet; run* `hashrepro sweep x` *and rebuild the book.*"


def _bs(seed, flags=None):
    r = rec("bs-drsch-efficientnet_lite0", 64, seed, 0.5, wmin=0.1, wmax=3.0, flags=flags, iterations=3000, lr=0.01,
            momentum=0.9, slope_every=100)
    r["curves"] = {"bit_scalable": {"bits": [32, 64], "precision_at_500": [0.2, 0.3],
                                    "precision_at_500_random": [0.4, 0.3]}}
    r["metrics"]["precision_at_500"] = 0.3
    return r


def test_pretrained_section_flags_and_gpu_counter_evidence():
    recs = [_bs(0, flags=["constant_bits: 33 of 64 bits take one value"]), _bs(1),
            rec("drsch-efficientnet_lite0", 48, 0, 0.5, flags=["constant_bits: 20 of 48 bits ..."], iterations=3000,
                lr=0.01, momentum=0.9, slope_every=100)]
    gpu = [rec("drsch-efficientnet_lite0", 48, 0, 0.58, iterations=16320, lr=0.0033, momentum=0.0, slope_every=204)]
    out = DP.pretrained_bs_outputs(recs, gpu)
    head, table, warn = out[0].data, out[1], out[2].data
    assert "|w| from 0.10 to 3.00 across 2 runs" in head
    assert isinstance(table, pd.DataFrame) and list(table["bits kept"]) == [32, 64]
    assert table.loc[0, "random n bits"] == pytest.approx(0.4)
    assert warn.startswith("**Read with care: 1 of these 2 runs are flagged")
    assert "(33 of 64 bits take one value)" in warn and "DRSCH at 48 bits on the backbone: 1 of 1 runs" in warn
    assert "16,320 iterations, lr 0.0033, momentum 0" in warn and "gave 0 flagged of 1 runs" in warn
    assert len(out) == 5 and all(isinstance(x, Markdown) for x in out[3:])   # the two truncation claims
    no_gpu = DP.pretrained_bs_outputs(recs)[2].data
    assert "Why is not diagnosed yet" in no_gpu


def test_dead_bits_table_groups_controls_cpu_and_gpu():
    cfg_cpu = dict(iterations=3000, lr=0.01, momentum=0.9)
    cpu = [rec("drsch-efficientnet_lite0", 48, s, 0.5, flags=["constant_bits: ..."], **cfg_cpu) for s in (0, 1)]
    cpu += [rec("drsch-efficientnet_lite0", 24, 0, 0.6, **cfg_cpu)]                 # other length: not used
    ctrl = [rec("drsch-efficientnet_lite0", 48, s, m, **dict(cfg_cpu, iterations=16320)) for s, m in ((0, 0.58), (1, 0.60))]
    for r in ctrl:
        r["protocol"] = {"control": "long-cpu-settings"}
    gpu = [rec("drsch-efficientnet_lite0", 48, 0, 0.59, iterations=16320, lr=0.0033, momentum=0.0)]
    t = DP.dead_bits_table(ctrl, cpu, gpu).set_index("setting")
    assert list(t.index) == ["CPU (scale=default)", "control: long-cpu-settings", "GPU (scale=paper, shortened)"]
    assert t.loc["CPU (scale=default)", "flagged"] == "2 of 2" and t.loc["CPU (scale=default)", "mAP (unflagged)"] == "—"
    assert t.loc["CPU (scale=default)", "mAP (all runs)"] == "0.500 (n=2)"
    assert t.loc["control: long-cpu-settings", "iterations"] == "16,320"
    assert t.loc["control: long-cpu-settings", "mAP (unflagged)"] == "0.590 (n=2)"
    assert t.loc["GPU (scale=paper, shortened)", "lr"] == "0.0033" and t.loc["GPU (scale=paper, shortened)", "momentum"] == "0"
    assert DP.dead_bits_table([], [], []).empty


def test_finetune_outputs_pairs_seeds_counts_flags_and_reads_the_quoted_numbers():
    from hashrepro.claims.drsch import LAST_BLOCK_TUNED, TUNED_ON_HELD_OUT

    quoted = pd.DataFrame([{"method": "drsch", "dataset": "cifar10", "bits": b, "metric": "map", "value": v}
                           for b, v in ((12, 0.615), (32, 0.629))])
    assert "-p finetune last_block" in DP.finetune_outputs([], quoted)[0].data
    recs = [rec(TUNED_ON_HELD_OUT, 32, s, v) for s, v in ((0, 0.60), (1, 0.61), (2, 0.62))]
    recs += [rec(LAST_BLOCK_TUNED, 32, s, v) for s, v in ((0, 0.63), (1, 0.64), (2, 0.65))]
    for r, (wall, read) in zip(recs[-3:], ((1500, 0.0), (1320, 1.0), (3600, 2040.0))):  # seed 2 extracted the maps
        r.update(wall_time_s=wall)
        r["metrics"]["backbone_feature_read_s"] = read
    recs += [rec(LAST_BLOCK_TUNED, 12, 0, 0.70), rec(LAST_BLOCK_TUNED, 12, 1, 0.2, flags=["constant_bits: 5"]),
             {**rec(LAST_BLOCK_TUNED, 12, 2, 0.9), "git_dirty": True}]          # a dirty run never counts
    table, text = DP.finetune_outputs(recs, quoted, bits=(12, 32))
    row32 = table.set_index("bits").loc[32]
    assert row32["tuned − frozen, per seed"] == "+0.030 / +0.030 / +0.030"
    assert row32["tuned − quoted"] == "+0.011" and row32["quoted"] == 0.629
    assert row32["min / tuned run"] == "24"  # (1500 + 1319 + 1560) / 3 s: the one-off extraction left out
    row12 = table.set_index("bits").loc[12]
    assert row12["last block tuned"].endswith("+ 1 flagged") and row12["tuned − frozen, per seed"] == "—"
    assert row32["tuned − frozen, every seed (†: a side flagged)"] == "+0.030 / +0.030 / +0.030"
    assert "1 of 5 tuned, 0 of 3 frozen" in text.data  # the dirty 12-bit run is not counted
    assert "best fine-tuned length is 32 bits at 0.640" in text.data and "at or above the quoted number at 32" in text.data


def test_finetune_outputs_pair_any_two_named_configurations():
    from hashrepro.claims.drsch import LAST_BLOCK_TUNED, WEIGHT_DECAY_LAST_BLOCK, WEIGHT_DECAY_ON_HELD_OUT

    quoted = pd.DataFrame([{"method": "drsch", "dataset": "cifar10", "bits": 32, "metric": "map", "value": 0.629}])
    kw = dict(tuned_method=WEIGHT_DECAY_LAST_BLOCK, frozen_method=WEIGHT_DECAY_ON_HELD_OUT,
              frozen_label="frozen, weight decay 0.05", extra_params="-p weight_decay 0.05")
    only_other = [rec(LAST_BLOCK_TUNED, 32, s, 0.9) for s in range(3)]     # another tuned configuration: not read
    todo = DP.finetune_outputs(only_other, quoted, bits=(32,), **kw)[0].data
    assert "-p weight_decay 0.05 -p finetune last_block" in todo
    recs = only_other + [rec(WEIGHT_DECAY_ON_HELD_OUT, 32, s, v) for s, v in ((0, 0.618), (1, 0.622), (2, 0.615))]
    recs += [rec(WEIGHT_DECAY_LAST_BLOCK, 32, s, v) for s, v in ((0, 0.640), (1, 0.641), (2, 0.641))]
    table, text = DP.finetune_outputs(recs, quoted, bits=(32,), **kw)
    row = table.set_index("bits").loc[32]
    assert row["tuned − frozen, per seed"] == "+0.022 / +0.019 / +0.026" and row["tuned − quoted"] == "+0.012"
    assert row["frozen, weight decay 0.05"].startswith("0.618")
    assert "best fine-tuned length is 32 bits at 0.641" in text.data


def test_paper_solver_section_reads_its_own_runs_and_judges_both_claims():
    cfg = dict(iterations=3000, lr=1 / 300, momentum=0.0, slope_every=38)
    solver_recs = []
    for seed in (0, 1, 2):
        bs = rec("bs-drsch-solver-paper-efficientnet_lite0", 64, seed, 0.55, wmin=0.2, wmax=2.0, **cfg)
        # top-|w| bits keep 0.50 at 32 bits, random bits 0.40: both claims are decided on these alone
        bs["curves"] = {"bit_scalable": {"bits": [32, 64], "precision_at_500": [0.50 + 0.01 * seed, 0.6],
                                         "precision_at_500_random": [0.40, 0.6]}}
        d32 = rec("drsch-solver-paper-efficientnet_lite0", 32, seed, 0.52 + 0.01 * seed, **cfg)
        d32["metrics"]["precision_at_500"] = 0.51
        solver_recs += [bs, d32]
    for r in solver_recs:
        r.update(git_commit="0123abcd", command="papermill notebooks/drsch.ipynb out.ipynb -p solver paper")
    preset = _bs(0)   # the preset's runs never enter this section
    out = DP.paper_solver_bs_outputs(solver_recs + [preset])
    head, table = out[0].data, out[1]
    assert "the released solver at 3,000 iterations, lr 0.0033, momentum 0, slope/margin steps every 38" in head
    assert "32 bits 0.530 ± 0.010 (n=3); 64 bits 0.550 ± 0.000 (n=3)" in head and "0 of 6" in head
    assert list(table.columns) == ["bits kept", "BS-DRSCH (64→n), top |w|", "random n bits",
                                   "DRSCH (same solver) trained at n", "ratio", "seeds"]
    assert table.loc[0, "random n bits"] == pytest.approx(0.4) and table.loc[0, "seeds"] == 3
    trunc, weights = out[2].data, out[3].data
    assert "the released solver at 3,000 iterations] truncated BS-DRSCH" in trunc and ": reproduced**" in trunc
    assert "top-|w| bits beat a random subset: reproduced**" in weights
    empty = DP.paper_solver_bs_outputs([preset])
    assert len(empty) == 1 and "-p solver paper" in empty[0].data


def test_feature_ceiling_outputs_average_clean_seeds_and_compare_with_quoted_and_ours():
    def ceil(seed, mlp, dirty=False):
        return {"paper": "drsch", "method": "feature-ceiling-efficientnet_lite0", "dataset": "cifar10", "bits": 0,
                "seed": seed, "git_dirty": dirty,
                "metrics": {"map_euclidean": 0.27, "map_linear-p": 0.69, "map_mlp-p": mlp, "map_mlp-class": 0.54,
                            "test_acc_linear": 0.77, "test_acc_mlp": 0.78, "chosen_wd_linear": 0.01,
                            "chosen_wd_mlp": 1e-3 * (seed + 1)}}
    quoted = pd.DataFrame({"method": ["drsch"] * 2, "dataset": ["cifar10"] * 2, "bits": [12, 48],
                           "metric": ["map"] * 2, "value": [0.615, 0.631]})
    ours = [rec("drsch-head_hidden-2048-efficientnet_lite0", 32, s, v) for s, v in enumerate((0.60, 0.61, 0.62))]
    ours += [rec("drsch-efficientnet_lite0", 24, s, 0.59) for s in range(3)]
    t, text = DP.feature_ceiling_outputs([ceil(0, 0.70), ceil(1, 0.72), ceil(2, 0.9, dirty=True)], ours, quoted)
    row = t.set_index("retriever").loc[DP.CEILING_LABELS["mlp-p"]]
    assert (row["mAP"], row["n"], row["query accuracy"]) == ("0.710 ± 0.014", 2, "0.780")   # the dirty seed left out
    assert row["weight decay (chosen on validation)"] == "0.001/0.002"
    assert "reaches 0.710, +0.079 against the best quoted DRSCH number (0.631)" in text.data
    assert "best clean three-seed DRSCH cell on the same frozen features is 0.610 (32 bits" in text.data
    (only,) = DP.feature_ceiling_outputs([ceil(0, 0.7, dirty=True)], ours, quoted)
    assert "benchmarks/drsch_feature_ceiling.py" in only.data


def test_run_time_outputs_one_sentence_per_clean_timing_record_or_the_command():
    from hashrepro.claims.drsch import WEIGHT_DECAY_LAST_BLOCK

    rec = {"paper": "drsch", "method": WEIGHT_DECAY_LAST_BLOCK, "bits": 32, "seed": 0, "wall_time_s": 870.0,
           "device": "cpu (2 threads, 2 cores)", "git_commit": "c97af14abc", "git_dirty": False,
           "metrics": {"map": 0.6447, "train_time_s": 740.0}}
    text = DP.run_time_outputs([rec, {**rec, "seed": 1, "git_dirty": True}, {**rec, "method": "other"}])[0].data
    assert "32 bits, seed 0: **14.5 min** per run (12.3 min of training)" in text and "mAP 0.645" in text
    assert "seed 1" not in text and "c97af14" in text   # dirty and other-method records are left out
    none = DP.run_time_outputs([{**rec, "git_dirty": True}])
    assert len(none) == 1 and "--results-dir results/diagnostics/drsch_run_time" in str(none[0].data)
