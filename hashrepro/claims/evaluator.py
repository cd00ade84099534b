"""The papers' claims as data, and one evaluator that judges them on paired seeds.

A :class:`Claim` is a sentence of a paper and the comparisons that test it. A comparison
(:class:`Compare`) sets a side ``a`` against a side ``b`` (:class:`Side`: run records of one
method, or a constant such as a paper's published number) and says what the claim asserts:
``a − b·factor > margin``. Records are paired by (dataset, bits, scale, seed); a constant pairs
with every seed of the other side. Each group of pairs that share dataset, bits and scale is a
*setting*.

The rule (:data:`RULE`), one vocabulary for every chapter (:data:`VERDICTS`):

* a setting with fewer than :data:`MIN_SEEDS` (3) paired seeds is ``"inconclusive (n<3)"``;
* **reproduced**: the claimed sign holds in every paired seed *and* the mean paired difference
  exceeds twice its standard error (sample std / √n);
* **not reproduced**: the opposite sign holds in every paired seed with the same strength;
* **inconclusive**: anything else;
* a claim over several settings (bit lengths, datasets, baselines) is reproduced when every
  setting is, not reproduced when at least one setting is, and inconclusive otherwise
  (``"inconclusive (n<3)"`` when only settings with too few seeds stand in the way);
* **not testable here**: no record can test it (data not available offline, runs missing, or a
  metric the records do not carry; the reason is given).

Records flagged as degenerate (``record["flags"]`` non-empty, e.g. codes collapsed to one
bucket) are left out before pairing; the evidence says how many. So are records not tied to
clean code (:func:`is_legacy`: ``git_dirty`` true or unknown, no commit, or no command): "a
record whose git_dirty is true does not count for any target". The evidence says how many of
them the claim's comparisons would have used; ``include_legacy=True`` (every evaluating
function takes it) counts them again, for pages that want to show what they say.

Statements that hold by construction (ANHC cannot fall as ξ falls; σ = 1 crops are the whole
image) are :class:`Claim` objects with ``kind="check"``: they are evaluated per record
(``"holds"`` / ``"fails"``) and shown apart from the claims, never counted as reproductions.

Use::

    from hashrepro import claims
    claims.claims_table("dnnh", records)            # one row per claim: verdict, evidence
    claims.checks_table("mch", records)
    claims.claims_table("mch", records, ids=["mch-pt-r0", "mch-pt-map"])   # only these claims
    claims.summary_table()                          # every chapter, from results/ (the intro)

Layout: this module (:mod:`hashrepro.claims.evaluator`) is the data model and the evaluator; each
chapter's claims are a declarative list in :mod:`hashrepro.claims.dnnh`, ``.drsch``, ``.ddh`` and
``.mch``, collected into :data:`CLAIMS` by the package ``hashrepro.claims``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

__all__ = ["VERDICTS", "MIN_SEEDS", "RULE", "Side", "Compare", "Claim", "Verdict", "CLAIMS", "paper_value", "is_legacy",
           "decide", "evaluate", "evaluate_paper", "claims_table", "checks_table", "summary_table", "prepare_records",
           "load_paper_records", "seed_counts", "RANDOM_SUBSET_KEY", "LEGACY_COLUMN"]

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not testable here")
MIN_SEEDS = 3
RULE = ("A claim is *reproduced* when, in every setting it covers, the claimed sign holds in every paired seed and "
        "the mean paired difference exceeds twice its standard error; *not reproduced* when, in at least one "
        "setting, the opposite sign holds in every paired seed with the same strength; *inconclusive* otherwise "
        f"(*inconclusive (n<3)* where fewer than {MIN_SEEDS} seeds are paired); *not testable here* when no record "
        "can test it. Records flagged as degenerate are left out, and so are records not tied to clean code "
        "(a dirty or unknown work tree, no commit or no command: dirty or legacy records); the evidence says how "
        "many.")
#: The BS-DRSCH control the truncation claim needs: in ``curves["bit_scalable"]``, a list aligned
#: with ``bits``: Precision@500 of ``n`` bits drawn at random (mean over draws) instead of the
#: ``n`` bits with the largest |w|.
RANDOM_SUBSET_KEY = "precision_at_500_random"
_SCALE_ORDER = {"paper": 0, "default": 1, "smoke": 2}
#: Every chapter's claims and checks, by paper (filled by the package ``hashrepro.claims`` from
#: its per-paper modules).
CLAIMS: dict[str, tuple] = {}
#: Shared by the per-paper claim lists: CIFAR-10 records, the tolerance of "within 0.02".
_C10 = {"dataset": "cifar10"}
_TOL = 0.02


# --------------------------------------------------------------------------- the data model
@dataclass(frozen=True)
class Side:
    """One side of a comparison.

    Either records: ``method`` (exact record method), ``where`` (dotted record paths → required
    value, e.g. ``{"dataset": "cifar10", "config.features": "gist"}``), ``metric`` (a name in
    ``record["metrics"]``, or a callable record → float, or → {bits: float} for a record that
    holds several code lengths), ``bits`` (fix the code length: then records are paired across
    lengths, by dataset and seed only). Or a constant: ``const`` (a float, or {bits: float}).
    ``factor`` multiplies the side's values.
    """

    method: str | None = None
    metric: str | Callable[[dict], Any] = "map"
    where: Mapping[str, Any] = field(default_factory=dict)
    bits: int | None = None
    const: float | Mapping[int, float] | None = None
    factor: float = 1.0
    label: str = ""

    def name(self) -> str:
        if self.label:
            return self.label
        if self.const is not None:
            return "paper" if isinstance(self.const, Mapping) else f"{self.const:g}"
        return str(self.method) + (f" {self.bits}b" if self.bits is not None else "")


@dataclass(frozen=True)
class Compare:
    """The claim ``a − b × b.factor > margin`` (``margin``: a number or {bits: number}); or, with
    ``diff``, ``diff(record_a, record_b) > margin`` for a paired quantity that needs both records."""

    a: Side
    b: Side
    margin: float | Mapping[int, float] = 0.0
    diff: Callable[[dict, dict], float] | None = None
    label: str = ""


@dataclass(frozen=True)
class Claim:
    """One sentence of a paper and the comparisons that test it.

    ``kind``: ``"claim"`` or ``"check"`` (holds by construction: judged per record, shown apart).
    ``untestable``: the reason the claim cannot be tested in this environment (no comparison
    needed). ``missing``: what to say when no record carries what the comparisons need.
    """

    id: str
    paper: str
    text: str
    comparisons: tuple[Compare, ...] = ()
    kind: str = "claim"
    untestable: str | None = None
    missing: str | None = None
    note: str = ""
    check_tol: float = 1e-9


@dataclass
class Verdict:
    """The evaluation of one claim: ``verdict`` (one of :data:`VERDICTS`, or ``"inconclusive
    (n<3)"``; checks: ``"holds"`` / ``"fails"`` / ``"not testable here"``), the settings' details
    (``cells``: label, n, mean, se, verdict) and a one-line ``evidence``."""

    claim: Claim
    verdict: str
    evidence: str
    cells: list = field(default_factory=list)
    n_min: int = 0
    excluded: int = 0
    legacy: int = 0


def paper_value(table: str, method: str | Iterable[str], dataset: str, metric: str = "map", factor: float = 1.0,
                label: str | None = None) -> Side:
    """A constant side from a paper table (``hashrepro/papers/<table>.csv``): {bits: value} for
    ``method`` on ``dataset`` (several methods: the largest value at each length)."""
    from ..results import paper_table

    methods = (method,) if isinstance(method, str) else tuple(method)
    try:
        t = paper_table(table)
    except (FileNotFoundError, ValueError):
        return Side(const={}, factor=factor, label=label or f"paper {'/'.join(methods)}")
    t = t[t["method"].isin(methods) & (t["dataset"] == dataset) & (t["metric"] == metric)]
    vals = t.groupby("bits")["value"].max()
    return Side(const={int(b): float(v) for b, v in vals.items()}, factor=factor,
                label=label or f"paper {'/'.join(methods)}")


# --------------------------------------------------------------------------- records
def _as_records(records) -> list[dict]:
    if records is None:
        return []
    if isinstance(records, pd.DataFrame):
        return list(records["record"]) if "record" in records.columns and len(records) else []
    if isinstance(records, dict):
        return [records]
    return list(records)


def _get(record: Mapping, path: str, default=None):
    cur: Any = record
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _matches(record: Mapping, side: Side) -> bool:
    if side.method is not None and record.get("method") != side.method:
        return False
    if side.bits is not None and int(record.get("bits", -1)) != int(side.bits):
        return False
    for path, want in side.where.items():
        got = _get(record, path)
        if callable(want):
            if not want(got):
                return False
        elif isinstance(want, tuple):
            if got not in want:
                return False
        elif got != want:
            return False
    return True


def _values(record: dict, side: Side) -> dict[int, float]:
    """{bits: value} of one record for a side (empty when the metric is missing or not finite)."""
    if callable(side.metric):
        v = side.metric(record)
    else:
        v = (record.get("metrics") or {}).get(side.metric)
    out = v if isinstance(v, Mapping) else {int(record.get("bits", 0)): v}
    res = {}
    for b, x in out.items():
        try:
            x = float(x)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            res[int(b)] = x * side.factor
    return res


def _latest(records: list[dict]) -> list[dict]:
    """One record per (method, dataset, bits, seed, scale): the most recently finished."""
    best: dict = {}
    for r in sorted(records, key=lambda r: str(r.get("finished", ""))):
        best[(r.get("method"), r.get("dataset"), r.get("bits"), r.get("seed"), r.get("scale"))] = r
    return list(best.values())


def _side_table(records: list[dict], side: Side, fixed_bits: bool) -> dict[tuple, tuple[float, dict]]:
    """{(dataset, bits or None, scale, seed): (value, record)} for a record side."""
    out: dict = {}
    for r in sorted(records, key=lambda r: str(r.get("finished", ""))):  # the latest record wins
        if not _matches(r, side):
            continue
        for b, v in _values(r, side).items():
            key = (r.get("dataset"), None if fixed_bits else b, r.get("scale"), int(r.get("seed", 0)))
            out[key] = (v, r)
    return out


def _margin(margin, bits) -> float:
    if isinstance(margin, Mapping):
        return float(margin.get(bits, float("nan"))) if bits is not None else float("nan")
    return float(margin)


def _pairs(records: list[dict], cmp: Compare) -> dict[tuple, list[float]]:
    """{(dataset, bits, scale): [paired difference − margin per seed]}."""
    fixed = cmp.a.bits is not None or cmp.b.bits is not None
    sides = []
    for side in (cmp.a, cmp.b):
        sides.append(None if side.const is not None else _side_table(records, side, fixed))
    out: dict[tuple, list[float]] = {}
    if sides[0] is None and sides[1] is None:
        return out
    keys = sides[0].keys() if sides[0] is not None else sides[1].keys()
    if sides[0] is not None and sides[1] is not None:
        keys = sides[0].keys() & sides[1].keys()
    for key in sorted(keys, key=lambda k: tuple(map(str, k))):
        ds, b, scale, seed = key
        vals, recs = [], []
        for side, table in zip((cmp.a, cmp.b), sides):
            if table is None:
                c = side.const
                v = c.get(b) if isinstance(c, Mapping) else c
                if v is None:
                    break
                vals.append(float(v) * side.factor)
                recs.append(None)
            else:
                vals.append(table[key][0])
                recs.append(table[key][1])
        if len(vals) < 2:
            continue
        m = _margin(cmp.margin, b)
        if math.isnan(m):
            continue
        d = cmp.diff(recs[0], recs[1]) if cmp.diff is not None else vals[0] - vals[1]
        if d is None or not math.isfinite(float(d)):
            continue
        out.setdefault((ds, b, scale), []).append(float(d) - m)
    return out


def _scale_pick(cells: dict) -> dict:
    """Per (dataset, bits): the most faithful scale present only (paper > default > smoke)."""
    best: dict = {}
    for (ds, b, scale) in cells:
        r = _SCALE_ORDER.get(scale, 9)
        if (ds, b) not in best or r < best[(ds, b)]:
            best[(ds, b)] = r
    return {k: v for k, v in cells.items() if _SCALE_ORDER.get(k[2], 9) == best[(k[0], k[1])]}


def decide(diffs: Iterable[float], min_seeds: int = MIN_SEEDS) -> tuple[str, int, float, float]:
    """The rule on one setting: (verdict, n, mean, standard error) of paired differences whose
    claimed sign is positive."""
    d = np.asarray(list(diffs), dtype=float)
    n = len(d)
    if n == 0:
        return "not testable here", 0, float("nan"), float("nan")
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    if n < min_seeds:
        return "inconclusive (n<3)", n, mean, se
    if (d > 0).all() and mean > 2 * se:
        return "reproduced", n, mean, se
    if (d < 0).all() and -mean > 2 * se:
        return "not reproduced", n, mean, se
    return "inconclusive", n, mean, se


def _combine(verdicts: list[str]) -> str:
    if not verdicts:
        return "not testable here"
    if any(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if all(v in ("reproduced", "inconclusive (n<3)") for v in verdicts):
        return "inconclusive (n<3)"
    return "inconclusive"


def _cell_label(cmp: Compare, ds, b) -> str:
    what = cmp.label or f"{cmp.a.name()} vs {cmp.b.name()}"
    where = f"{ds}" + (f" {b}b" if b else "")
    return f"{what}, {where}" if what else where


def _fmt_cell(c: dict) -> str:
    se = "" if math.isnan(c["se"]) else f" ± {c['se']:.3f}"
    return f"{c['label']}: {c['mean']:+.3f}{se} (n={c['n']})"


# --------------------------------------------------------------------------- evaluation
def _flagged(r: Mapping) -> bool:
    return bool(r.get("flags"))


def is_legacy(r: Mapping) -> bool:
    """True for a record that counts for no claim: its work tree was dirty (or its state is
    unknown), or it names no commit, or it has no command (records made before runs were tied to
    their code)."""
    return r.get("git_dirty") is not False or not r.get("git_commit") or not r.get("command")


def _uses(claim: Claim, r: Mapping) -> bool:
    """Whether a record matches a record side of one of the claim's comparisons."""
    return any(side.const is None and _matches(r, side) for cmp in claim.comparisons for side in (cmp.a, cmp.b))


def evaluate(claim: Claim, records, *, include_legacy: bool = False) -> Verdict:
    """Judge one claim on run records (list of dicts or a ``load_records`` DataFrame).

    Flagged records are left out; so are dirty or legacy records (:func:`is_legacy`) unless
    ``include_legacy``. The evidence says how many of each were left out (legacy: those a
    comparison of the claim would have used)."""
    recs = _as_records(records)
    excluded = sum(_flagged(r) for r in recs)
    recs = [r for r in recs if not _flagged(r)]
    note = f"; {excluded} flagged record(s) left out" if excluded else ""
    if claim.untestable:
        return Verdict(claim, "not testable here", claim.untestable, excluded=excluded)
    legacy = sum(1 for r in recs if is_legacy(r) and _uses(claim, r))
    if include_legacy:
        note += f"; {legacy} dirty or legacy record(s) counted (include_legacy=True)" if legacy else ""
    else:
        recs = [r for r in recs if not is_legacy(r)]
        note += f"; {legacy} dirty or legacy record(s) left out" if legacy else ""
    if claim.kind == "check":
        v = _evaluate_check(claim, recs, note, excluded)
        v.legacy = legacy
        return v
    cells = []
    for cmp in claim.comparisons:
        for (ds, b, scale), diffs in sorted(_scale_pick(_pairs(recs, cmp)).items(),
                                            key=lambda kv: tuple(map(str, kv[0]))):
            v, n, mean, se = decide(diffs)
            cells.append({"label": _cell_label(cmp, ds, b), "dataset": ds, "bits": b, "scale": scale, "n": n,
                          "mean": mean, "se": se, "verdict": v})
    if not cells:
        why = ("no clean run record tests it" if legacy and not include_legacy
               else claim.missing or "no run records test it")
        return Verdict(claim, "not testable here", why + note, excluded=excluded, legacy=legacy)
    verdict = _combine([c["verdict"] for c in cells])
    counts = pd.Series([c["verdict"] for c in cells]).value_counts()
    head = (f"{len(cells)} setting(s): " + ", ".join(f"{k} {v}" for k, v in counts.items())
            if len(cells) > 1 else "")
    shown = cells if len(cells) <= 8 else sorted(cells, key=lambda c: c["verdict"] == "reproduced")[:8]
    more = "" if len(shown) == len(cells) else f"; … ({len(cells) - len(shown)} more)"
    evidence = (head + ("; " if head else "") + "; ".join(_fmt_cell(c) for c in shown) + more
                + ("" if not claim.note else f". {claim.note}") + note)
    return Verdict(claim, verdict, evidence, cells, min(c["n"] for c in cells), excluded, legacy)


def _evaluate_check(claim: Claim, recs: list[dict], note: str, excluded: int) -> Verdict:
    vals, failed = [], []
    for cmp in claim.comparisons:
        for (ds, b, _), diffs in _pairs(recs, cmp).items():
            vals.extend(diffs)
            bad = [d for d in diffs if d < -claim.check_tol]
            if bad:
                failed.append(f"{_cell_label(cmp, ds, b)} ({len(bad)} of {len(diffs)}, down to {min(bad):+.3g})")
    if not vals:
        return Verdict(claim, "not testable here", (claim.missing or "no run records") + note, excluded=excluded)
    ok = sum(v >= -claim.check_tol for v in vals)
    verdict = "holds" if ok == len(vals) else "fails"
    evidence = (f"holds in {ok} of {len(vals)} runs" + (f"; fails in {'; '.join(failed)}" if failed else "")
                + ("" if not claim.note else f". {claim.note}") + note)
    return Verdict(claim, verdict, evidence, [], len(vals), excluded)


def _selected(paper: str, ids: Iterable[str] | None) -> tuple:
    """The chapter's claims and checks, in their order; with ``ids``, only those (each must exist)."""
    if paper not in CLAIMS:
        raise ValueError(f"no claims for paper {paper!r}; papers: {', '.join(CLAIMS)}")
    if ids is None:
        return CLAIMS[paper]
    ids = [ids] if isinstance(ids, str) else list(ids)
    known = [c.id for c in CLAIMS[paper]]
    bad = [i for i in ids if i not in known]
    if bad:
        raise ValueError(f"no claim {bad[0]!r} in chapter {paper!r}; its claim ids: {', '.join(known)}")
    return tuple(c for c in CLAIMS[paper] if c.id in ids)


def evaluate_paper(paper: str, records=None, kind: str | None = "claim", *, include_legacy: bool = False,
                   ids: Iterable[str] | None = None, **prepare_kw) -> list[Verdict]:
    """Every claim (``kind="claim"``), check (``"check"``) or both (None) of one chapter.
    ``records`` default: the committed records (:func:`load_paper_records`); ``include_legacy``:
    count dirty and legacy records too (:func:`evaluate`); ``ids``: only the claims with these ids
    (e.g. one regime's, ``hashrepro.claims.mch.MCH_PRETRAINED``), in the chapter's order."""
    claims = _selected(paper, ids)
    recs = load_paper_records(paper, **prepare_kw) if records is None else prepare_records(
        paper, records, **prepare_kw)
    return [evaluate(c, recs, include_legacy=include_legacy) for c in claims if kind is None or c.kind == kind]


def _frame(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([{"claim": v.claim.text, "verdict": v.verdict, "evidence": v.evidence} for v in verdicts],
                        columns=["claim", "verdict", "evidence"])


#: Column that :func:`claims_table` adds with ``legacy_column=True``.
LEGACY_COLUMN = "if legacy records counted"


def claims_table(paper: str, records=None, *, include_legacy: bool = False, legacy_column: bool = False,
                 ids: Iterable[str] | None = None, **prepare_kw) -> pd.DataFrame:
    """One row per claim of ``paper``: ``claim, verdict, evidence`` (clean records only unless
    ``include_legacy``; ``ids``: only these claims, :func:`evaluate_paper`).

    ``legacy_column``: add :data:`LEGACY_COLUMN`, the verdict the same rule gives when the dirty and
    legacy records are counted too ("same" where it does not change), so that a page can show what
    the older evidence said without letting it decide.
    """
    verdicts = evaluate_paper(paper, records, "claim", include_legacy=include_legacy, ids=ids, **prepare_kw)
    frame = _frame(verdicts)
    if legacy_column and not include_legacy:
        with_legacy = evaluate_paper(paper, records, "claim", include_legacy=True, ids=ids, **prepare_kw)
        frame.insert(2, LEGACY_COLUMN, [w.verdict if w.verdict != v.verdict else "same"
                                        for v, w in zip(verdicts, with_legacy)])
    return frame


def checks_table(paper: str, records=None, *, include_legacy: bool = False, ids: Iterable[str] | None = None,
                 **prepare_kw) -> pd.DataFrame:
    """One row per check (holds by construction) of ``paper``: ``claim, verdict, evidence`` (``ids``:
    only these, :func:`evaluate_paper`)."""
    return _frame(evaluate_paper(paper, records, "check", include_legacy=include_legacy, ids=ids, **prepare_kw))


def summary_table(records_by_paper: Mapping[str, Any] | None = None, *, include_legacy: bool = False) -> pd.DataFrame:
    """Every chapter's claims (not the checks): ``chapter, claim, verdict, seeds, evidence``
    (``seeds``: the fewest paired seeds of any setting; 0 when not testable). Clean records only
    unless ``include_legacy``."""
    from ..paths import PAPERS

    rows = []
    for paper in PAPERS:
        recs = None if records_by_paper is None else records_by_paper.get(paper)
        for v in evaluate_paper(paper, recs, include_legacy=include_legacy):
            rows.append({"chapter": paper, "claim": v.claim.text, "verdict": v.verdict, "seeds": v.n_min,
                         "evidence": v.evidence})
    return pd.DataFrame(rows, columns=["chapter", "claim", "verdict", "seeds", "evidence"])


# --------------------------------------------------------------------------- per-paper record sets
_DDH_DEFAULTS = {"task": "retrieval", "features": "gist", "dh_input": "backbone", "method": "ddh", "backbone": "scratch"}


def prepare_records(paper: str, records, agent: str | None = "default") -> list[dict]:
    """The records a chapter's claims are judged on, as dicts.

    ``ddh``: older records get the config values they ran with (task, features, dh_input);
    ``drsch``: a full-length BS-DRSCH run also stands for DRSCH at that length
    (:func:`hashrepro.plots.drsch.with_full_length_bs_as_drsch`); ``mch``: diagnostics left out
    and, with ``agent`` (default: the recipe's default agent update; None: all), only the runs of
    that agent update (:func:`hashrepro.plots.mch.agent_variant`).
    """
    recs = _as_records(records)
    if paper == "ddh":
        out = []
        for r in recs:
            cfg = dict(r.get("config") or {})
            for k, v in _DDH_DEFAULTS.items():
                if cfg.get(k) is None:
                    cfg[k] = v
            out.append({**r, "config": cfg})
        return out
    if paper == "drsch":
        from ..plots.drsch import with_full_length_bs_as_drsch

        return with_full_length_bs_as_drsch(recs)
    if paper == "mch":
        recs = [r for r in recs if not str(r.get("method", "")).startswith("diag-")]
        from ..plots.mch import with_agent

        return with_agent(recs, agent)
    return recs


def load_paper_records(paper: str, **prepare_kw) -> list[dict]:
    """The committed records of a chapter (``results/<paper>``, plus ``results/baselines`` for
    the chapters whose claims use the shallow baselines), prepared by :func:`prepare_records`."""
    from ..paths import results_root
    from ..results import load_records

    recs = _as_records(load_records(results_root() / paper))
    if paper in ("dnnh", "drsch"):
        recs += _as_records(load_records(results_root() / "baselines"))
    return prepare_records(paper, recs, **prepare_kw)


def seed_counts(records, group: Iterable[str] = ("method", "dataset", "bits")) -> pd.DataFrame:
    """How many seeds each setting has: one row per ``group`` value with ``n`` and ``seeds``
    (for sentences on the pages that state counts, so that they are generated, not written)."""
    recs = _latest([r for r in _as_records(records) if not _flagged(r)])
    group = list(group)
    rows: dict = {}
    for r in recs:
        key = tuple(r.get(g) for g in group)
        rows.setdefault(key, set()).add(int(r.get("seed", 0)))
    out = pd.DataFrame([{**dict(zip(group, k)), "n": len(s), "seeds": sorted(s)} for k, s in rows.items()],
                       columns=group + ["n", "seeds"])
    return out.sort_values(group, key=lambda s: s.astype(str)).reset_index(drop=True)
