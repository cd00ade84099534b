"""hashrepro.plots.validation: the tables of validation-split selection records, on hand-made records."""
import json

from hashrepro.plots import validation as V


def _sel(bits, seed, maps, chosen, finished="2026-11-30T04:00:00"):
    cands = [{"label": f"margin={m:g}", "params": {"margin": m}, "validation_map": v, "train_time_s": 100.0,
              "active_triplets": 0.01 * m} for m, v in maps.items()]
    return {"paper": "dnnh", "method": "dnnh-dem-efficientnet_lite0", "dataset": "cifar10", "bits": bits,
            "seed": seed, "scale": "validation", "finished": finished, "chosen": {"margin": chosen},
            "selection": {"chosen_label": f"margin={chosen:g}", "candidates": cands}}


def test_selection_table_and_chosen_values():
    recs = [_sel(48, 0, {1.0: 0.67, 4.0: 0.79}, 4.0), _sel(12, 0, {1.0: 0.70, 2.0: 0.72}, 2.0),
            _sel(48, 0, {1.0: 0.67, 8.0: 0.80}, 8.0, finished="2026-11-30T05:00:00")]
    t = V.selection_table(recs)
    assert list(t["bits"]) == [12, 12, 48, 48, 48, 48]
    assert t[t["chosen"] == "✓"]["candidate"].tolist() == ["margin=2", "margin=4", "margin=8"]
    assert t.iloc[1]["validation mAP"] == 0.72 and t.iloc[1]["active triplets"] == 0.02
    assert V.chosen_values(recs) == {("dnnh-dem-efficientnet_lite0", 12): 2.0, ("dnnh-dem-efficientnet_lite0", 48): 8.0}
    assert V.selection_table([]).empty


def test_chosen_margin_table_per_length():
    import pandas as pd

    def run(method, bits, seed, v):
        return {"paper": "dnnh", "method": method, "dataset": "cifar10", "bits": bits, "seed": seed,
                "scale": "default", "git_dirty": False, "metrics": {"map": v}}

    sels = [{**_sel(48, 0, {1.0: 0.67, 4.0: 0.79}, 4.0), "metrics": {"chosen_validation_map": 0.79}}]
    recs = [run("dnnh-dem-efficientnet_lite0", 48, s, 0.54) for s in range(3)]
    recs += [run("dnnh-dem-margin4-efficientnet_lite0", 48, s, v) for s, v in enumerate((0.64, 0.65, 0.66))]
    paper = pd.DataFrame([{"method": "dnnh-dem", "dataset": "cifar10", "bits": 48, "metric": "map", "value": 0.581}])
    t = V.chosen_margin_table(recs, sels, paper, bits=(12, 48))
    assert t.iloc[0]["chosen margin"] == "not selected yet"
    row = t.iloc[1]
    assert (row["chosen margin"], row["validation mAP"], row["chosen − paper"]) == ("4", "0.790", "+0.069")
    assert row["chosen margin, test"] == "0.650 ± 0.010 (n=3)" and row["margin 1 (paper)"].startswith("0.540")


def test_load_selection_records(tmp_path):
    d = tmp_path / "validation"
    d.mkdir()
    from hashrepro.results import REQUIRED_KEYS

    rec = {k: None for k in REQUIRED_KEYS}
    rec.update(_sel(48, 0, {1.0: 0.6}, 1.0), complete=True, metrics={}, config={}, protocol={}, curves={})
    (d / "a.json").write_text(json.dumps(rec))
    (d / "b.json").write_text(json.dumps({**rec, "paper": "drsch"}))
    assert [r["paper"] for r in V.load_selection_records("dnnh", root=tmp_path)] == ["dnnh"]
    assert V.load_selection_records("ddh", root=tmp_path) == []


def test_chosen_config_table_one_choice_applied_to_every_length():
    def run(method, bits, seed, v):
        return {"paper": "drsch", "method": method, "dataset": "cifar10", "bits": bits, "seed": seed,
                "scale": "default", "git_dirty": False, "metrics": {"map": v}}

    def name_of(chosen, sel):
        lr = chosen.get("lr", sel.get("base_lr", 0.01))
        return "drsch-efficientnet_lite0" if lr == 0.01 else f"drsch-lr-{lr:g}-efficientnet_lite0"

    cands = [{"label": f"lr={lr:g}", "params": {"lr": lr}, "validation_map": v} for lr, v in ((0.01, 0.81), (0.03, 0.83))]
    sel = {"paper": "drsch", "method": "drsch-efficientnet_lite0", "dataset": "cifar10", "bits": 32, "seed": 0,
           "finished": "2026-11-30T07:00", "chosen": {"lr": 0.03}, "metrics": {"chosen_validation_map": 0.83},
           "selection": {"chosen_label": "lr=0.03", "candidates": cands}}
    recs = [run("drsch-efficientnet_lite0", b, s, 0.60) for b in (12, 32) for s in range(3)]
    recs += [run("drsch-lr-0.03-efficientnet_lite0", 32, s, v) for s, v in enumerate((0.63, 0.64, 0.65))]
    t = V.chosen_config_table(recs, [sel], "drsch-efficientnet_lite0", name_of, {12: 0.615, 32: 0.629}, bits=(12, 32))
    r12, r32 = t.iloc[0], t.iloc[1]
    assert (r32["chosen"], r32["chosen at"], r32["validation mAP (chosen / grid start)"]) == ("lr=0.03", "32 bits, seed 0",
                                                                                         "0.830 / 0.810")
    assert r32["chosen, test"] == "0.640 ± 0.010 (n=3)" and r32["chosen − reference"] == "+0.011"
    assert r12["chosen at"] == "32 bits, seed 0" and r12["chosen, test"] == "not run yet"
    assert r12["preset, test"].startswith("0.600") and r12["chosen − reference"] == "—"
    assert V.chosen_config_table(recs, [], "drsch-efficientnet_lite0", name_of).iloc[0]["chosen"] == "not selected yet"
    flagged = [dict(run("drsch-efficientnet_lite0", 48, s, 0.6), flags=["constant_bits: 3 of 48 bits"]) for s in range(3)]
    t = V.chosen_config_table(recs + flagged, [sel], "drsch-efficientnet_lite0", name_of, bits=(48,))
    assert t.iloc[0]["preset, test"] == "flagged only (3 runs: constant_bits)"


def test_a_selection_made_on_top_of_a_choice_is_followed():
    """preset --(lr grid)--> lr 0.03 --(slope grid from lr 0.03)--> slope 1.0: the table follows both steps."""
    def name_of(chosen, sel):
        cfg = {"lr": 0.01, "slope": 1.1, **sel["base"], **chosen}
        parts = ([f"lr-{cfg['lr']:g}"] if cfg["lr"] != 0.01 else []) + ([f"slope-{cfg['slope']:g}"]
                                                                          if cfg["slope"] != 1.1 else [])
        return "-".join(["drsch", *parts, "efficientnet_lite0"])

    def sel(method, base, field, vals, chosen, finished):
        cands = [{"label": f"{field}={v:g}", "params": {field: v}, "validation_map": m} for v, m in vals]
        best = max(m for _, m in vals)
        return {"method": method, "dataset": "cifar10", "bits": 32, "seed": 0, "finished": finished, "base": base,
                "chosen": {field: chosen}, "metrics": {"chosen_validation_map": best},
                "selection": {"chosen_label": f"{field}={chosen:g}", "candidates": cands}}

    s1 = sel("drsch-efficientnet_lite0", {}, "lr", [(0.01, 0.59), (0.03, 0.61)], 0.03, "2026-11-30T10:00")
    s2 = sel("drsch-lr-0.03-efficientnet_lite0", {"lr": 0.03}, "slope", [(1.1, 0.61), (1.0, 0.62)], 1.0,
             "2026-11-30T10:10")
    chain = V.selection_chain([s2, s1], "drsch-efficientnet_lite0", 48, name_of)
    assert [c[2] for c in chain] == ["drsch-lr-0.03-efficientnet_lite0", "drsch-lr-0.03-slope-1-efficientnet_lite0"]
    runs = [{"paper": "drsch", "method": "drsch-lr-0.03-slope-1-efficientnet_lite0", "dataset": "cifar10", "bits": 48,
             "seed": s, "scale": "default", "git_dirty": False, "metrics": {"map": 0.63}} for s in range(3)]
    row = V.chosen_config_table(runs, [s1, s2], "drsch-efficientnet_lite0", name_of, {48: 0.631}, bits=(48,)).iloc[0]
    assert row["chosen"] == "lr=0.03 → slope=1" and row["chosen at"] == "32 bits, seed 0"
    assert row["validation mAP (chosen / grid start)"] == "0.610 / 0.590 → 0.620 / 0.610"
    assert row["chosen, test"] == "0.630 ± 0.000 (n=3)" and row["chosen − reference"] == "-0.001"
    # a selection that keeps its start ends the chain; a loop cannot run forever
    s3 = sel("drsch-lr-0.03-slope-1-efficientnet_lite0", {"lr": 0.03, "slope": 1.0}, "slope", [(1.0, 0.62)], 1.0,
             "2026-11-30T10:20")
    assert len(V.selection_chain([s1, s2, s3], "drsch-efficientnet_lite0", 32, name_of)) == 3
