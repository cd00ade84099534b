"""The shared book tables: the claims summary and the runs table."""
from __future__ import annotations

import pytest

from hashrepro import book
from hashrepro.results import load_records, make_record, paper_table, save_run


def test_claims_table_from_records(tmp_path):
    """The intro's summary is hashrepro.claims' evaluator over every chapter (the old per-number
    verdicts "ours lower" etc. are gone)."""
    paper = paper_table("dnnh_table2")
    ref = paper[(paper.method == "dnnh-dem") & (paper.dataset == "cifar10") & (paper.metric == "map")]
    bits = sorted(ref.bits.unique())[:2]
    for b in bits:
        for seed, offset in ((0, -0.01), (1, 0.01), (2, 0.0)):
            value = float(ref[ref.bits == b].value.iloc[0]) + offset - 0.05
            rec = make_record("dnnh", "dnnh-dem", "cifar10", int(b), seed, "default", {}, {"split": "per_class"},
                              {"map": value}, {}, 1.0, "cpu",  # a clean tree: only those count for claims
                              git={"commit": "0123abcd", "dirty": False, "diff_sha256": None, "patch": None})
            save_run(rec, tmp_path, f"r{b}_{seed}")
    records = load_records(tmp_path)
    table = book.claims_table(records)
    assert list(table.columns) == ["chapter", "claim", "verdict", "seeds", "evidence"]
    assert set(table["chapter"]) == {"drsch", "dnnh", "ddh", "mch"}
    row = table[table["claim"].str.startswith("MAP 0.552")].iloc[0]
    assert row["verdict"] == "not reproduced" and row["seeds"] == 3  # 0.04-0.06 below the paper in every seed
    assert "(n=3)" in row["evidence"]
    assert book.claims_counts(table).startswith(f"{len(table)} claims: ")


def test_claims_table_without_records_says_not_testable():
    import pandas as pd

    table = book.claims_table(pd.DataFrame())
    assert set(table["verdict"]) == {"not testable here"}
    assert (table["seeds"] == 0).all()


def test_runs_table_columns(tmp_path):
    rec = make_record("toy", "toy", "digits", 8, 0, "smoke", {}, {}, {"map": 0.5}, {}, 2.345, "cpu")
    save_run(rec, tmp_path, "x")
    t = book.runs_table(load_records(tmp_path))
    assert list(t.columns)[:4] == ["paper", "method", "dataset", "bits"]
    assert t.loc[0, "wall_time_s"] == pytest.approx(2.3)
    # commit, clean/dirty and provenance per run (toy records have no command: legacy)
    assert {"git_commit", "tree", "provenance", "command"} <= set(t.columns)
    assert t.loc[0, "tree"] in ("clean", "dirty", "unknown")
    assert t.loc[0, "provenance"].startswith("legacy: no command")
    assert "Of 1 run records, 0 are clean" in book.provenance_line(load_records(tmp_path))
