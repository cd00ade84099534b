"""Retrieval metrics for learning to hash.

Ranking is by Hamming distance of binary codes unless a distance matrix is passed
explicitly (then record ``ranking="continuous"``). Every metric states its tie
policy (``ties="index"``: stable by database index; ``ties="expected"``: exact
expectation over random orders inside groups of equal distance) and what a query
with no relevant item counts as (``empty="zero"`` or ``"skip"``).

Relevance: int labels (n,) -> same label; multi-hot (n, C) -> share >= 1 label.
"""
from ._core import relevance
from .bucket import anhc, bucket_rank, buckets_at_f1, evaluate_codes, f1_bucket_curve, search_cost
from .evaluate import evaluate
from .ranking import (
    average_precision,
    mean_average_precision,
    pr_curve_radius,
    pr_curve_topk,
    precision_at_k,
    precision_recall_within_radius,
)
from .reid import cmc

__all__ = [
    "relevance",
    "average_precision",
    "mean_average_precision",
    "precision_at_k",
    "pr_curve_topk",
    "pr_curve_radius",
    "precision_recall_within_radius",
    "f1_bucket_curve",
    "bucket_rank",
    "anhc",
    "buckets_at_f1",
    "evaluate_codes",
    "search_cost",
    "cmc",
    "evaluate",
]
