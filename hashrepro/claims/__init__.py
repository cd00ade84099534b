"""The papers' claims as data, and one evaluator that judges them on paired seeds.

The data model, the rule and the evaluator are in :mod:`hashrepro.claims.evaluator` (see its
docstring for the rule); each chapter's claims are a declarative list in its own module
(:mod:`~hashrepro.claims.dnnh`, :mod:`~hashrepro.claims.drsch`, :mod:`~hashrepro.claims.ddh`,
:mod:`~hashrepro.claims.mch`). Everything public is available from here::

    from hashrepro import claims
    claims.claims_table("dnnh", records)            # one row per claim: verdict, evidence
    claims.checks_table("mch", records)
    claims.summary_table()                          # every chapter, from results/ (the intro)
"""
from __future__ import annotations

from .ddh import DDH
from .dnnh import DNNH
from .drsch import DRSCH
from .evaluator import (CLAIMS, LEGACY_COLUMN, MIN_SEEDS, RANDOM_SUBSET_KEY, RULE, VERDICTS, Claim, Compare, Side, Verdict,
                        checks_table, claims_table, decide, evaluate, evaluate_paper, is_legacy, load_paper_records,
                        paper_value, prepare_records, seed_counts, summary_table)
from .mch import MCH

__all__ = ["VERDICTS", "MIN_SEEDS", "RULE", "Side", "Compare", "Claim", "Verdict", "CLAIMS", "paper_value",
           "is_legacy", "decide", "evaluate", "evaluate_paper", "claims_table", "checks_table", "summary_table",
           "prepare_records", "load_paper_records", "seed_counts", "RANDOM_SUBSET_KEY", "LEGACY_COLUMN", "DNNH", "DRSCH", "DDH", "MCH"]

CLAIMS.update({"drsch": DRSCH, "dnnh": DNNH, "ddh": DDH, "mch": MCH})
