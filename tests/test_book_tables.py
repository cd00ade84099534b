"""The shared book tables: verdict wording, the claims summary and the runs table."""
from __future__ import annotations

import math

import pytest

from hashrepro import book
from hashrepro.results import load_records, make_record, paper_table, save_run


@pytest.mark.parametrize("delta,expected", [(0.0, "reproduced"), (0.019, "reproduced"), (-0.02, "reproduced"),
                                            (0.05, "ours higher"), (-0.05, "ours lower"),
                                            (-0.2, "ours much lower"), (float("nan"), "not run")])
def test_verdict(delta, expected):
    assert book.verdict(delta) == expected


def test_verdict_lower_is_better_flips():
    assert book.verdict(0.05, higher_is_better=False) == "ours lower"


def test_claims_table_from_records(tmp_path):
    paper = paper_table("dnnh_table2")
    ref = paper[(paper.method == "dnnh-dem") & (paper.dataset == "cifar10") & (paper.metric == "map")]
    bits = sorted(ref.bits.unique())[:2]
    for b in bits:
        for seed, offset in ((0, -0.01), (1, 0.01)):
            value = float(ref[ref.bits == b].value.iloc[0]) + offset - 0.05
            rec = make_record("dnnh", "dnnh-dem", "cifar10", int(b), seed, "default", {}, {"split": "per_class"},
                              {"map": value}, {}, 1.0, "cpu")
            save_run(rec, tmp_path, f"r{b}_{seed}")
    records = load_records(tmp_path)
    claims = [c for c in book.CLAIMS if c.chapter == "dnnh" and c.paper_method == "dnnh-dem"]
    table = book.claims_table(records, claims)
    row = table.iloc[0]
    assert row["mean delta"] == pytest.approx(-0.05, abs=1e-9)
    assert row["verdict"] == "ours lower"
    assert row["paper"].count("b ") == len(bits)


def test_claims_table_without_records_says_not_run():
    import pandas as pd

    table = book.claims_table(pd.DataFrame())
    assert set(table["verdict"]) <= {"not run", "paper table missing"}
    assert all(math.isnan(x) for x in table["mean delta"])


def test_runs_table_columns(tmp_path):
    rec = make_record("toy", "toy", "digits", 8, 0, "smoke", {}, {}, {"map": 0.5}, {}, 2.345, "cpu")
    save_run(rec, tmp_path, "x")
    t = book.runs_table(load_records(tmp_path))
    assert list(t.columns)[:4] == ["paper", "method", "dataset", "bits"]
    assert t.loc[0, "wall_time_s"] == pytest.approx(2.3)
