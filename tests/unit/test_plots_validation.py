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


def test_variant_rows_from_the_run_records():
    recs = [{"method": "dnnh-dem-margin4-efficientnet_lite0"}, {"method": "dnnh-dem-margin4-efficientnet_lite0"},
            {"method": "dnnh-dem-margin0.5"}, {"method": "dnnh-fc-margin2-efficientnet_lite0"},
            {"method": "dnnh-dem-efficientnet_lite0"}]
    rows = V.variant_rows(recs)
    assert rows == {"DNNH (DEM), margin 0.5 (chosen on validation)": ("dnnh-dem-margin0.5", "dnnh-dem"),
                    "DNNH (DEM), margin 4 (chosen on validation)": ("dnnh-dem-margin4", "dnnh-dem")}
    assert V.variant_rows([]) == {}


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
