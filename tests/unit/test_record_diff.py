"""hashrepro.record_diff: what counts as a changed result between two records."""
import json

import pytest

from hashrepro.record_diff import diff_records, is_volatile, main


def _rec(**over):
    r = {"paper": "dnnh", "method": "dnnh-dem", "bits": 12, "seed": 0, "scale": "smoke",
         "config": {"lr": 0.03, "device": "auto", "ks": [10, 20]},
         "metrics": {"map": 0.25, "train_time_s": 1.5, "final_loss": float("nan")},
         "curves": {"loss": [1.0, 0.5]}, "wall_time_s": 3.0, "git_commit": "a" * 40, "started": "t0"}
    r.update(over)
    return r


def test_identical_apart_from_timings_and_provenance():
    a = _rec()
    b = _rec(wall_time_s=9.0, git_commit="b" * 40, started="t1",
             metrics={"map": 0.25, "train_time_s": 7.0, "final_loss": float("nan")})
    assert diff_records(a, b) == []


def test_a_changed_number_deep_in_curves_is_reported_with_its_path():
    a, b = _rec(), _rec(curves={"loss": [1.0, 0.5000001]})
    assert diff_records(a, b) == ["curves.loss[1]: 0.5 vs 0.5000001"]
    assert diff_records(a, b, tolerance=1e-5) == []


def test_missing_keys_and_lengths():
    a = _rec()
    b = _rec(metrics={"map": 0.25, "final_loss": float("nan"), "extra": 1})
    assert diff_records(a, b) == ["metrics.extra: only in the second record"]
    c = _rec(curves={"loss": [1.0]})
    assert diff_records(a, c) == ["curves.loss: length 2 vs 1"]


def test_volatile_paths():
    assert is_volatile("wall_time_s") and is_volatile("metrics.encode_time_s")
    assert is_volatile("config.device") and is_volatile("protocol.backbone_feature_read_s")
    assert is_volatile("metrics.bucket_search_ms")
    assert not is_volatile("metrics.map") and not is_volatile("config.ks") and not is_volatile("bits")


def test_cli_exit_codes(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_rec()))
    b.write_text(json.dumps(_rec(metrics={"map": 0.3, "final_loss": 0.1})))
    assert main([str(a), str(a)]) == 0
    assert main([str(a), str(b)]) == 1
    assert "metrics.map: 0.25 vs 0.3" in capsys.readouterr().out
    assert main([str(a), str(tmp_path / "missing.json")]) == 2
    assert "no record at" in capsys.readouterr().err


def test_bad_arguments():
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        diff_records(_rec(), _rec(), tolerance=-1)
    with pytest.raises(TypeError, match="records must be dicts"):
        diff_records([], _rec())
