"""What the MCH chapter page (``book/mch.md``) shows, built from the run records.

The page only loads the records, calls these and displays what they return; every sentence that
states a count, a range or a seed is generated here from the records, so it cannot go stale.
Figures and the single-purpose tables (``summary_table``, ``xi_table``, ``regime_table``, …) live
in :mod:`hashrepro.plots.mch`; this module puts them together section by section.

Inputs: ``records`` is the frame of :func:`hashrepro.results.load_records` (one row per run, its
``record`` column the record dict, ``metrics.<name>`` columns), ``recs`` the same records as a list
of dicts (:func:`hashrepro.plots.mch.as_records`), ``diag`` the crop-diagnostic records
(method ``"diag-crops-<base>"``). Functions return a DataFrame, a ``Markdown``, a list of them (to
``display(*items)`` in order) or a matplotlib Figure (the page calls ``plt.show()``); a section with
no records returns an empty result or the :func:`no_runs` note.

* Setup: :func:`split_diagnostics`, :func:`dataset_order`, :func:`no_runs`.
* "Protocol and settings": :func:`settings_table`.
* "On the ImageNet backbone": :func:`regime_note` (below :func:`hashrepro.plots.mch.regime_table`) and
  :func:`claims_outputs` with ``regime="pretrained"`` (the ``mch-pt-…`` claims).
* Table 2: :func:`paper_table2`, :func:`ours_table2`.
* "X beside MCH-X": :func:`what_happened`.
* Oracle and crop diagnostics: :func:`oracle_table`, :func:`crop_diagnostic_table`,
  :func:`crop_diagnostic_text`.
* Figures 3–7 and 9, the agent's curve: :func:`radius0_figure`, :func:`f1_bucket_figure`,
  :func:`sensitivity_figure`, :func:`agent_figure`.
* Table 3 and the ξ study: :func:`table3_records`, :func:`anhc_comparison`, :func:`xi_pivot`.
* Search cost: :func:`search_cost_table`. Claims: :func:`claims_outputs`, :func:`seeds_sentence`.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict

import numpy as np
import pandas as pd
from IPython.display import Markdown

from .mch import _fmt, agent_curve, agent_variant, anhc_grid, as_records, bucket_ratio, f1_bucket, pairs, \
    paper_anhc_grid, radius0_vs_bits, sensitivity, with_agent, xi_table

__all__ = [
    "SWEEP", "METHOD_ORDER", "no_runs", "split_diagnostics", "dataset_order", "settings_table", "regime_note",
    "agent_schedule_outputs", "same_split_outputs", "paper_table2", "ours_table2", "what_happened", "oracle_table", "crop_diagnostics", "crop_diagnostic_table",
    "crop_diagnostic_text", "radius0_figure", "f1_bucket_figure", "table3_records", "anhc_comparison",
    "sensitivity_figure", "xi_pivot", "agent_figure", "search_cost_table", "REGIMES", "claims_outputs",
    "seeds_sentence", "finetune_selection_outputs", "SELECT_FINETUNE", "SELECT_WEIGHT_DECAY", "SELECTED_FIELDS",
    "chosen_finetune_outputs", "chance_outputs",
]

#: The sweep that produces the page's default runs (named where a section has no records).
SWEEP = ("hashrepro sweep mch --dataset mosaic-mnist5k mosaic-cifar10 --bits 16 32 64 --seeds 0 --scale default "
         "-p base dch -p base hashnet")
#: Row order of Table 2 (the paper's, and ours).
METHOD_ORDER = ["lsh", "itq", "ksh", "mch-ksh", "hashnet", "mch-hashnet", "adsh", "mch-adsh", "dch", "mch-dch",
                "mmhh", "mch-mmhh"]
_DATASET_PREF = ["mosaic-mnist5k", "mosaic-cifar10"]
_DATASET_NAMES = {"mosaic-cifar10": "CIFAR-10 mosaic", "mosaic-mnist5k": "MNIST mosaic"}
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def no_runs(what: str, command: str = SWEEP) -> Markdown:
    """:func:`hashrepro.book.no_runs` with the MCH sweep as the default command."""
    from ..book import no_runs as _no_runs

    return _no_runs(what, command)


def split_diagnostics(records: pd.DataFrame) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """``load_records`` frame -> ``(records, recs, diag)``: the frame without the diagnostic records
    (method ``"diag-…"``, shown in their own section only), the same as a list of dicts, and the
    diagnostic records as dicts."""
    if len(records):
        diag_rows = records["method"].str.startswith("diag-")
        diag = as_records(records[diag_rows])
        records = records[~diag_rows]
    else:
        diag = []
    return records, as_records(records), diag


def dataset_order(recs: list[dict]) -> list[str]:
    """The data sets of ``recs`` in the page's order: the MNIST mosaic, the CIFAR-10 mosaic, then the others by name."""
    return sorted({r["dataset"] for r in recs},
                  key=lambda d: (_DATASET_PREF.index(d) if d in _DATASET_PREF else len(_DATASET_PREF), d))


def settings_table(default_cfg, paper_cfg) -> pd.DataFrame:
    """"Protocol and settings": one row per setting, columns ``scale=default (CPU)``, ``scale=paper (GPU)``
    and ``paper`` (the paper's §5 values). ``default_cfg`` / ``paper_cfg``: the recipe's
    ``mch.Config.for_scale("default")`` and ``("paper")``."""
    d, p = default_cfg, paper_cfg
    rows = {
        "images / queries per class / training per class": (
            f"{d.n_images:,} / {d.n_query_per_class} / {d.n_train_per_class}",
            f"{p.n_images:,} / {p.n_query_per_class} / {p.n_train_per_class}",
            "NUS-WIDE: 2,100 queries (100/class), 10,500 training (500/class)"),
        "backbone": (f"small CNN {d.widths}, {d.feat_dim}-d features, {d.input_size}px input",
                     f"small CNN {p.widths}, {p.feat_dim}-d, {p.input_size}px",
                     "AlexNet pretrained on ImageNet, conv1–fc7 fine-tuned, 4096-d"),
        "backbone pretraining": (f"{d.pretrain_iters} Adam iterations, training mosaics + their tiles",
                                 f"{p.pretrain_iters} iterations", "ImageNet"),
        "base model training": (
            f"{d.base_iters} iterations, batch {d.batch_size}, Adam lr {d.base_lr:g} (hash layer ×{d.hash_lr_mult:g})",
            f"{p.base_iters} iterations", "each author's recommended settings"),
        "agent: T / batch / lr / momentum / wd": (
            f"{d.agent_iters} / {d.agent_batch} / {d.agent_lr:g} / {d.agent_momentum} / {d.agent_weight_decay:g}",
            f"{p.agent_iters} / {p.agent_batch} / {p.agent_lr:g} / {p.agent_momentum} / {p.agent_weight_decay:g}",
            "100 / 256 / 1e-4 / 0.9 / 5e-4"),
        "agent update": (
            f"REINFORCE, baseline '{d.agent_baseline}', normalised advantages: {d.agent_reward_norm}",
            f"baseline '{p.agent_baseline}', normalised: {p.agent_reward_norm}", "REINFORCE eq. 7, no baseline"),
        "training crops of the agent": (f"square, side ratio U({d.crop_min}, {d.crop_max}), uniform position", "same",
                                        "'randomly crop a region' (unspecified)"),
        "policy hidden widths": (str(d.policy_hidden), str(p.policy_hidden), "5 FC layers (widths not given)"),
        "σ, ξ": (f"{d.sigma}, {d.xi}", f"{p.sigma}, {p.xi}", "0.5, 0.5"),
    }
    return pd.DataFrame(rows, index=["scale=default (CPU)", "scale=paper (GPU)", "paper"]).T


def _seed_phrase(counts: list[int]) -> str:
    """"one seed", "two seeds", "1–3 seeds" from the seed counts of the cells."""
    lo, hi = min(counts), max(counts)
    if lo == hi:
        return f"{_NUMBERS.get(hi, hi)} seed" + ("s" if hi != 1 else "")
    return f"{lo}–{hi} seeds"


def regime_note(recs, dataset: str = "mosaic-cifar10", bits: int = 32,
                bases=("ksh", "hashnet", "adsh", "dch", "mmhh"), backbone: str = "efficientnet_lite0",
                agent: str | None = "default") -> Markdown:
    """The sentence under the regime table (:func:`hashrepro.plots.mch.regime_table`): the setting,
    how many seeds its ImageNet-backbone cells hold (counted from ``recs``), whether a claim can be
    judged there (it needs :data:`hashrepro.claims.MIN_SEEDS` seeds), and how to read the oracle.
    ``agent``: as in :func:`hashrepro.plots.mch.regime_table`."""
    from ..claims import MIN_SEEDS

    methods = {m for x in bases for m in (f"{x}-{backbone}", f"mch-{x}-{backbone}")}
    seeds = defaultdict(set)
    for r in with_agent(as_records(recs), agent):
        if r["method"] in methods and r["dataset"] == dataset and int(r["bits"]) == int(bits):
            seeds[r["method"]].add(int(r["seed"]))
    counts = [len(s) for s in seeds.values()]
    if not counts:
        state = "no run in this regime yet"
    elif max(counts) < MIN_SEEDS:
        state = f"{_seed_phrase(counts)} per cell so far, so no claim is judged in this regime yet"
    else:
        state = f"{_seed_phrase(counts)} per cell"
    return Markdown(f"{_DATASET_NAMES.get(dataset, dataset)}, {bits} bits, σ = ξ = 0.5; {state}. The oracle keeps "
                    "exactly the crops whose eq.-6 reward is positive: where it beats the agent, a better agent could "
                    "have won; where it does not, the crops cannot help.")


def agent_schedule_outputs(recs, iters: int = 2000, dataset: str = "mosaic-cifar10", bits: int = 32) -> list:
    """The ImageNet-backbone regime table (:func:`hashrepro.plots.mch.regime_table`) and its note for
    the runs whose agent trained ``iters`` iterations instead of T = 100 (agent update
    ``"baseline ema + norm + T <iters>"``, :func:`hashrepro.plots.mch.agent_variant`), or a
    :func:`no_runs` line with the command that makes them."""
    from .mch import regime_table

    variant = f"{agent_variant({'config': {'agent_baseline': 'ema', 'agent_reward_norm': True}})} + T {iters}"
    if not any(agent_variant(r) == variant and r["dataset"] == dataset and int(r["bits"]) == int(bits)
               for r in as_records(recs) if str(r["method"]).startswith("mch-")):
        return [no_runs(f"the agent trained for T = {iters:,}",
                        f"hashrepro sweep mch --dataset {dataset} --bits {bits} --seeds 0 1 2 --scale default "
                        f"-p backbone efficientnet_lite0 -p base ksh -p base hashnet -p base adsh -p base dch "
                        f"-p base mmhh -p agent_iters {iters}")]
    table = regime_table(recs, dataset=dataset, bits=bits, agent=variant)
    return [table, regime_note(recs, dataset=dataset, bits=bits, agent=variant)]


def _by_seed(recs: list[dict], method: str, dataset: str, bits: int, metric: str = "map") -> dict[int, float]:
    """{seed: metric} of ``method``'s records (the latest per seed by ``finished``)."""
    out: dict[int, tuple] = {}
    for r in recs:
        if r["method"] == method and r["dataset"] == dataset and int(r["bits"]) == int(bits):
            v = (r.get("metrics") or {}).get(metric)
            if v is not None and np.isfinite(v) and (int(r["seed"]) not in out
                                                     or str(r.get("finished", "")) >= out[int(r["seed"])][0]):
                out[int(r["seed"])] = (str(r.get("finished", "")), float(v))
    return {s: v for s, (_, v) in sorted(out.items())}


#: How the page names the claims' rule (:func:`hashrepro.claims.evaluator.decide`) for "higher by a margin".
MARGIN_RULE = "in every seed, with the mean beyond twice its standard error"


def _tally_margin(model: str, diffs: list[float], margin: float, judged: list, higher: list) -> None:
    """Judge one model's paired per-seed differences by the claims' rule
    (:func:`hashrepro.claims.evaluator.decide` on ``diff − margin``: claims ``mch-pt-base-map``,
    ``mch-pt-ft-base-map`` …): with ≥ 3 seeds it is judged (appended to ``judged``), and higher
    (appended to ``higher``) when the rule reads reproduced."""
    from ..claims.evaluator import MIN_SEEDS, decide

    if len(diffs) >= MIN_SEEDS:
        judged.append(model)
        if decide([d - margin for d in diffs])[0] == "reproduced":
            higher.append(model)


def same_split_outputs(recs, dataset: str = "mosaic-cifar10", bits: int = 32,
                       bases=("ksh", "hashnet", "adsh", "dch", "mmhh"), backbone: str = "efficientnet_lite0",
                       margin: float = 0.02) -> list:
    """X trained from scratch on the pretrained regime's split (``<x>-mosaic2000-q20-t80``: the same
    mosaics, queries and database per seed) beside X on the ImageNet backbone, and LSH / ITQ on each
    regime's features: per method the mean mAP of each side, the paired difference per seed, and
    whether the backbone is higher by more than ``margin`` by the claims' rule (claim ``mch-pt-base-map``).
    A table and a sentence counted from the records, or a :func:`no_runs` line with the command."""
    from ..claims.mch import PRETRAINED_SPLIT

    recs = [r for r in as_records(recs) if not str(r["method"]).startswith("mch-")]
    rows, higher, judged = [], [], []
    for x in (*bases, "lsh", "itq"):
        scratch = _by_seed(recs, f"{x}-{PRETRAINED_SPLIT}", dataset, bits)
        pt = _by_seed(recs, f"{x}-{backbone}", dataset, bits)
        seeds = sorted(set(scratch) & set(pt))
        if not seeds:
            continue
        diffs = [pt[s] - scratch[s] for s in seeds]
        rows.append({"model": x, "scratch CNN, same mosaics": f"{np.mean([scratch[s] for s in seeds]):.3f}",
                     "ImageNet backbone": f"{np.mean([pt[s] for s in seeds]):.3f}",
                     "ImageNet − scratch, per seed": " / ".join(f"{d:+.3f}" for d in diffs),
                     "seeds": ", ".join(map(str, seeds))})
        if x in bases:
            _tally_margin(x, diffs, margin, judged, higher)
    if not rows:
        return [no_runs("the from-scratch base models on the backbone's 2,000-mosaic split",
                        f"hashrepro sweep mch --dataset {dataset} --bits {bits} --seeds 0 1 2 --scale default "
                        "-p base ksh -p base hashnet -p base adsh -p base dch -p base mmhh -p n_images 2000 "
                        "-p n_query_per_class 20 -p n_train_per_class 80")]
    lsh = next((r for r in rows if r["model"] == "lsh"), None)
    text = (f"{_DATASET_NAMES.get(dataset, dataset)}, {bits} bits, mAP of X alone (no agent). On the same mosaics "
            f"the ImageNet backbone is higher by more than {margin:g} {MARGIN_RULE} for {len(higher)} of "
            f"{len(judged)} base models with ≥ 3 seeds" + (f" ({', '.join(higher)})" if higher else "") + ".")
    if lsh is not None:
        text += (f" LSH, which learns nothing, measures the features themselves: {lsh['scratch CNN, same mosaics']} "
                 f"on the scratch CNN's against {lsh['ImageNet backbone']} on the ImageNet backbone's.")
    return [pd.DataFrame(rows), Markdown(text)]


def chance_outputs(dataset: str = "mosaic-cifar10", seeds=(0,)) -> list:
    """The mAP floor of a random ranking on both regimes' splits (:func:`hashrepro.methods.mch_data.relevant_fraction`:
    the mean share of database items relevant to a query), per seed; the mosaics are rebuilt from the
    data (a few seconds per split). A one-line Markdown."""
    from ..methods import mch
    from ..methods.mch_data import relevant_fraction

    parts = []
    for label, kw in (("the from-scratch preset's 4,000 mosaics", {}),
                      ("the backbone's 2,000 mosaics", {"backbone": "efficientnet_lite0"})):
        v = [relevant_fraction(mch.Config.for_scale("default", dataset=dataset, seed=s, **kw)) for s in seeds]
        parts.append(f"{np.mean(v):.3f} on {label}" + (f" ({' / '.join(f'{x:.3f}' for x in v)})" if len(v) > 1 else ""))
    return [Markdown(f"**The floor.** A random ranking scores about the share of relevant database items (seed"
                     f"{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}): " + "; ".join(parts)
                     + ". A mosaic holds about two labels, so about half the database shares one with any query "
                     "(relevant = at least one shared label, §5.1), and every mAP in this chapter is read against "
                     "that floor.")]


#: The validation choice of the tuned block's learning-rate multiple, one base model (repeat with -p base ...).
SELECT_FINETUNE = ("hashrepro select mch --dataset mosaic-cifar10 --bits 32 --seed 1 -p base dch -p backbone "
                   "efficientnet_lite0 -p finetune last_block --grid finetune_lr_mult=0.03,0.1,0.3")
SELECT_WEIGHT_DECAY = ("hashrepro select mch --dataset mosaic-cifar10 --bits 32 --seed 1 -p base hashnet -p backbone "
                       "efficientnet_lite0 -p finetune last_block --grid base_weight_decay=0,0.1,1,3,10")
#: The X training fields chosen on validation that the page shows: field -> (what it is, the command
#: that chooses it when no selection record exists).
SELECT_DEPTH = ("hashrepro select mch --dataset mosaic-cifar10 --bits 32 --seed 1 -p base dch -p backbone "
                "efficientnet_lite0 -p finetune_lr_mult 0.03 -p base_weight_decay 0.1 --grid "
                "finetune=none,last_block,last_4_blocks")
SELECTED_FIELDS = {"finetune_lr_mult": ("the tuned block's learning rate", SELECT_FINETUNE),
                   "base_weight_decay": ("X's decoupled weight decay", SELECT_WEIGHT_DECAY),
                   "finetune": ("how much of the backbone X tunes", SELECT_DEPTH)}


def _value(v) -> str:
    """A chosen value as the page writes it: numbers with ``:g``, names as they are."""
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _selections_over(selections, field: str) -> dict:
    """The latest selection record per (starting run name, bits, seed) whose grid is over ``field``."""
    latest = {}
    for r in sorted(selections, key=lambda r: str(r.get("finished") or "")):
        if field in ((r.get("selection") or {}).get("grid") or {}):
            latest[(r["method"], int(r["bits"]), int(r["seed"]))] = r
    return latest


def _selection_configs(r: dict, field: str):
    """(X's configuration before the selection, the same with the chosen value of ``field``), both
    :class:`hashrepro.methods.mch.Config`, from a selection record's recipe config; their run names are
    :func:`hashrepro.methods.mch.record_method` of each."""
    import dataclasses

    from ..methods import mch

    rc = (r.get("config") or {}).get("recipe") or {}
    keep = {f.name for f in dataclasses.fields(mch.Config)} & (
        {"base", "backbone", "finetune"} | set(mch.NAMED_FIELDS) | set(mch.SPLIT_FIELDS))
    cfg = mch.Config.for_scale(rc.get("scale") or "default", **{k: v for k, v in rc.items() if k in keep and v is not None})
    v = r["chosen"][field]
    return cfg, dataclasses.replace(cfg, **{field: v if isinstance(v, str) else float(v)})


def _sweep_command(cfg, dataset: str, bits) -> str:
    """The sweep that makes ``cfg``'s test runs (seeds 0–2) at ``bits``: its base model, backbone,
    fine-tuning and every X training field that differs from the preset (:func:`hashrepro.methods.mch.tuned_fields`)."""
    from ..methods import mch

    params = "".join(f" -p {k} {v:g}" for k, v in mch.tuned_fields(cfg).items())
    tune = f" -p finetune {cfg.finetune}" if cfg.finetune != "none" else ""
    return (f"hashrepro sweep mch --dataset {dataset} --bits {bits} --seeds 0 1 2 --scale default "
            f"-p backbone {cfg.backbone}{tune} -p base {cfg.base}{params}")


def finetune_selection_outputs(selections, field: str = "finetune_lr_mult") -> list:
    """A training field of X chosen on a validation split of the training mosaics
    (:mod:`hashrepro.mch_select`: X alone, queries never used), e.g. the tuned block's learning rate
    (``finetune_lr_mult`` × the base model's) or X's decoupled weight decay (``base_weight_decay``;
    :data:`SELECTED_FIELDS`): one line naming each choice against the value the runs had before, and
    the table of every candidate's validation mAP (:func:`hashrepro.plots.validation.selection_table`).
    ``selections``: MCH selection records (:func:`hashrepro.plots.validation.load_selection_records`);
    those whose grid is not over ``field`` are left out. Returns what to display."""
    from .validation import selection_table

    what, command = SELECTED_FIELDS[field]
    latest = _selections_over(selections, field)
    if not latest:
        return [no_runs(f"the validation choice of {what}", command)]
    parts = []
    for (method, bits, seed), r in sorted(latest.items()):
        gain = r["metrics"].get("gain_over_current")
        before = getattr(_selection_configs(r, field)[0], field)
        parts.append(f"{method} ({bits} bits, seed {seed}): {_value(r['chosen'][field])}"
                     + (f" (+{gain:.4f} over {_value(before)})" if gain else f" (the value before, {_value(before)})"))
    table = selection_table(list(latest.values())).drop(columns=["active triplets"])
    return [Markdown("**Chosen on validation** (argmax of the validation mAP; a tie keeps the value the runs "
                     "had before): " + "; ".join(parts) + "."), table]


def chosen_finetune_outputs(recs, selections, field: str = "finetune_lr_mult", dataset: str = "mosaic-cifar10",
                            bits=(16, 32, 64), margin: float = 0.02) -> list:
    """Test runs with a value of ``field`` chosen on validation (:func:`finetune_selection_outputs`) other
    than the one the runs had before (run names from :func:`hashrepro.methods.mch.record_method`, e.g.
    ``<x>-finetune_lr_mult-0.03-lastblock-<backbone>``) beside those earlier tuned runs and X from scratch
    on the same mosaics, per base model and length: the means, the paired differences per seed (chosen −
    before, chosen − scratch), and whether the chosen runs are higher than from scratch by more than
    ``margin`` by the claims' rule (claim ``mch-pt-ft-base-map``) with ≥ 3 seeds. A table and a
    sentence, or a :func:`no_runs` line per choice still to run; nothing when every choice kept the value."""
    from ..claims.mch import PRETRAINED_SPLIT

    from ..methods import mch

    chosen = {}
    for r in sorted(_selections_over(selections, field).values(), key=lambda r: str(r.get("finished") or "")):
        cfg, pick_cfg = _selection_configs(r, field)
        chosen[cfg.base] = (cfg, pick_cfg)
    chosen = {x: c for x, c in chosen.items() if getattr(c[0], field) != getattr(c[1], field)}
    if not chosen:
        return []
    ok = [r for r in as_records(recs) if not r.get("flags")]
    rows, passed, judged, missing = [], [], [], []
    for x, (cfg, pick_cfg) in sorted(chosen.items()):
        before, v = float(getattr(cfg, field)), float(getattr(pick_cfg, field))
        for b in bits:
            pick = _by_seed(ok, mch.record_method(pick_cfg), dataset, b)
            if not pick:
                missing.append((pick_cfg, v, b))
                continue
            prev = _by_seed(ok, mch.record_method(cfg), dataset, b)
            scratch = _by_seed(ok, f"{x}-{PRETRAINED_SPLIT}", dataset, b)
            vs_prev = [pick[s] - prev[s] for s in sorted(set(pick) & set(prev))]
            vs_scratch = [pick[s] - scratch[s] for s in sorted(set(pick) & set(scratch))]

            def mean(d: dict) -> str:
                return f"{np.mean(list(d.values())):.3f} (n={len(d)})" if d else "—"

            rows.append({"model": x, "bits": b, field: f"{before:g} → {v:g}", "scratch CNN, same mosaics": mean(scratch),
                         "tuned, before": mean(prev), "tuned, chosen": mean(pick),
                         "chosen − before, per seed": " / ".join(f"{d:+.3f}" for d in vs_prev) or "—",
                         "chosen − scratch, per seed": " / ".join(f"{d:+.3f}" for d in vs_scratch) or "—"})
            _tally_margin(f"{x} {b}", vs_scratch, margin, judged, passed)
    out = []
    if rows:
        out += [pd.DataFrame(rows), Markdown(
            f"{_DATASET_NAMES.get(dataset, dataset)}, mAP of X alone (no agent), runs with the chosen "
            f"{field} (`{', '.join(sorted(mch.record_method(c[1]) for c in chosen.values()))}`). Higher than from scratch on the "
            f"same mosaics by more than {margin:g} {MARGIN_RULE}: {len(passed)} of {len(judged)} settings with ≥ 3 "
            f"seeds" + (f" ({', '.join(passed)})" if passed else "") + ".")]
    for pick_cfg, v, b in missing:
        out.append(no_runs(f"{mch.record_method(pick_cfg)} (the chosen {field} {v:g}) at {b} bits",
                           _sweep_command(pick_cfg, dataset, b)))
    return out


def four_blocks_outputs(recs, dataset: str = "mosaic-cifar10", bits=(16, 32, 64), margin: float = 0.02) -> list:
    """X with the backbone's last *four* blocks fine-tuned (``finetune="last_4_blocks"``; run names
    :data:`hashrepro.claims.mch.FOUR_BLOCKS`: the training fields of ``CHOSEN_ON_VALIDATION``) beside the
    same X with the last block tuned and X from scratch on the same mosaics, per base model and length
    where four-block runs exist: the means, the paired differences per seed (four blocks − last block,
    four blocks − scratch), the agent's ANHC (MCH-X, σ = ξ = 0.5), a run's wall time, and how many settings
    are higher than from scratch by more than ``margin`` by the claims' rule (claim ``mch-pt-ft4-base-map``) with
    ≥ 3 seeds. A table and a sentence, or one :func:`no_runs` line with the command."""
    from ..claims.mch import CHOSEN_ON_VALIDATION, FOUR_BLOCKS, PRETRAINED_SPLIT

    ok = [r for r in as_records(recs) if not r.get("flags")]
    rows, judged, passed = [], [], []
    for x, name in FOUR_BLOCKS.items():
        for b in bits:
            four = _by_seed(ok, name, dataset, b)
            if not four:
                continue
            one = _by_seed(ok, CHOSEN_ON_VALIDATION[x], dataset, b)
            scratch = _by_seed(ok, f"{x}-{PRETRAINED_SPLIT}", dataset, b)
            anhc = _by_seed(ok, f"mch-{name}", dataset, b, "anhc")
            wall = [float(r.get("wall_time_s", np.nan)) for r in ok
                    if r["method"] == f"mch-{name}" and r["dataset"] == dataset and int(r["bits"]) == int(b)]
            vs_one = [four[s] - one[s] for s in sorted(set(four) & set(one))]
            vs_scratch = [four[s] - scratch[s] for s in sorted(set(four) & set(scratch))]

            def mean(d: dict) -> str:
                return f"{np.mean(list(d.values())):.3f} (n={len(d)})" if d else "—"

            rows.append({"model": x, "bits": b, "scratch CNN, same mosaics": mean(scratch),
                         "last block tuned": mean(one), "last four blocks tuned": mean(four),
                         "four − one block, per seed": " / ".join(f"{d:+.3f}" for d in vs_one) or "—",
                         "four blocks − scratch, per seed": " / ".join(f"{d:+.3f}" for d in vs_scratch) or "—",
                         "ANHC of MCH-X": mean(anhc), "min / run": f"{np.nanmean(wall) / 60:.1f}" if wall else "—"})
            _tally_margin(f"{x} {b}", vs_scratch, margin, judged, passed)
    if not rows:
        return [no_runs("the base models with the backbone's last four blocks fine-tuned",
                        f"hashrepro sweep mch --dataset {dataset} --bits 32 --seeds 0 1 2 --scale default -p backbone "
                        "efficientnet_lite0 -p finetune last_4_blocks -p base dch -p finetune_lr_mult 0.03 "
                        "-p base_weight_decay 0.1")]
    return [pd.DataFrame(rows), Markdown(
        f"{_DATASET_NAMES.get(dataset, dataset)}, mAP of X alone (no agent). With the last four blocks tuned, higher "
        f"than from scratch on the same mosaics by more than {margin:g} {MARGIN_RULE}: {len(passed)} of {len(judged)} "
        "settings with ≥ 3 seeds" + (f" ({', '.join(passed)})" if passed else "") + ".")]


#: The reference retrievers of :mod:`hashrepro.mch_ceiling`, as the page names them.
CEILING_LABELS = {"euclidean": "raw pooled features, Euclidean",
                  "linear-p": "linear multi-label classifier, P(share a label)",
                  "mlp-p": "MLP (1,024 ReLU) multi-label classifier, P(share a label)"}


def feature_ceiling_outputs(ceiling_records, recs, dataset: str = "mosaic-cifar10", bits: int = 32) -> list:
    """What the frozen features of the mosaics allow (``benchmarks/mch_feature_ceiling.py``,
    :mod:`hashrepro.mch_ceiling`): per seed, the mAP of each reference retriever and of a random ranking
    (the share of relevant database items), beside X at ``bits`` bits from scratch on the same mosaics and
    X with every training choice made on validation (``CHOSEN_ON_VALIDATION``). Only clean ceiling records
    count; flagged runs are left out. A table (rows: retrievers and models; columns: seeds and their mean)
    and a sentence counted from it, or the command."""
    from ..claims.mch import CHOSEN_ON_VALIDATION, PRETRAINED_SPLIT

    ceil = [r for r in as_records(ceiling_records) if r.get("dataset") == dataset and r.get("git_dirty") is False]
    if not ceil:
        return [Markdown("*No reference-retriever record yet; run* `python benchmarks/mch_feature_ceiling.py "
                         "--seeds 0 1 2` *(commit first) and rebuild the book.*")]
    latest = {}
    for r in sorted(ceil, key=lambda r: str(r.get("finished") or "")):
        latest[int(r["seed"])] = r["metrics"]
    seeds = sorted(latest)
    rows = [("random ranking (share of relevant items)", {s: latest[s]["relevant_fraction"] for s in seeds})]
    rows += [(label, {s: latest[s][f"map_{k}"] for s in seeds if f"map_{k}" in latest[s]})
             for k, label in CEILING_LABELS.items()]
    ok = [r for r in as_records(recs) if not r.get("flags")]
    models = {}
    for x, name in CHOSEN_ON_VALIDATION.items():
        models[f"{x}, scratch CNN, same mosaics ({bits} bits)"] = _by_seed(ok, f"{x}-{PRETRAINED_SPLIT}", dataset, bits)
        models[f"{x}, last block tuned, chosen on validation ({bits} bits)"] = _by_seed(ok, name, dataset, bits)
    rows += [(k, {s: v for s, v in d.items() if s in latest}) for k, d in models.items()]
    table = pd.DataFrame([{"retriever / model": k, **{f"seed {s}": (f"{d[s]:.3f}" if s in d else "—") for s in seeds},
                           "mean": f"{np.mean(list(d.values())):.3f}" if d else "—"} for k, d in rows])
    mean = {k: float(np.mean(list(d.values()))) for k, d in rows if d}
    best_ref = max((k for k in CEILING_LABELS.values() if k in mean), key=lambda k: mean[k], default=None)
    tuned = {k: v for k, v in mean.items() if "chosen on validation" in k}
    scratch = {k: v for k, v in mean.items() if "scratch CNN" in k}
    text = [f"mAP on the MCH pretrained preset's split (seeds {', '.join(map(str, seeds))}: the same queries and "
            "database as the chapter's runs; the classifiers' weight decay chosen on a validation split of the "
            "training mosaics)."]
    if best_ref is not None and tuned and scratch:
        floor = mean[rows[0][0]]

        def way(v: float) -> str:  # share of the way from the random ranking to the best reference
            return f"{100 * (v - floor) / (mean[best_ref] - floor):.0f} %"

        text.append(f"The best reference ranking reaches {mean[best_ref]:.3f}; at {bits} bits the tuned base models "
                    f"reach {min(tuned.values()):.3f}–{max(tuned.values()):.3f} and the same models from scratch "
                    f"{min(scratch.values()):.3f}–{max(scratch.values()):.3f} (means), over a random ranking at "
                    f"{floor:.3f}: the tuned models go {way(min(tuned.values()))}–{way(max(tuned.values()))} of the way "
                    f"from the random ranking to that reference, the scratch ones {way(min(scratch.values()))}–"
                    f"{way(max(scratch.values()))}.")
    return [table, Markdown(" ".join(text))]


def finetune_outputs(recs, dataset: str = "mosaic-cifar10", bits: int = 32,
                     bases=("hashnet", "adsh", "dch", "mmhh"), backbone: str = "efficientnet_lite0",
                     margin: float = 0.02) -> list:
    """X with the ImageNet backbone's last block fine-tuned (``<x>-lastblock-<backbone>``,
    ``finetune="last_block"``) beside X from scratch on the same mosaics (``<x>-mosaic2000-q20-t80``)
    and X on the frozen backbone (``<x>-<backbone>``): per base model the mean mAP of each, the paired
    differences tuned − scratch and tuned − frozen per seed, the agent's ANHC of the tuned runs (MCH-X, σ = ξ = 0.5), the
    wall time of a tuned run, and how many base models are higher than from scratch by more than
    ``margin`` by the claims' rule (claim ``mch-pt-ft-base-map``). Flagged runs (e.g. constant bits) are
    left out and counted. A table and a sentence, or a :func:`no_runs` line with the command."""
    from ..claims.mch import FINETUNE_TAG, PRETRAINED_SPLIT

    recs = as_records(recs)
    ok = [r for r in recs if not r.get("flags")]
    rows, higher, judged = [], [], []
    above_frozen = [0, 0]  # (seed pairs with tuned > frozen, seed pairs)
    n_flagged = sum(1 for r in recs if r.get("flags") and f"-{FINETUNE_TAG}-" in str(r["method"])
                    and r["dataset"] == dataset and int(r["bits"]) == int(bits))
    for x in bases:
        tuned = _by_seed(ok, f"{x}-{FINETUNE_TAG}-{backbone}", dataset, bits)
        if not tuned:
            continue
        scratch = _by_seed(ok, f"{x}-{PRETRAINED_SPLIT}", dataset, bits)
        frozen = _by_seed(ok, f"{x}-{backbone}", dataset, bits)
        anhc = _by_seed(ok, f"mch-{x}-{FINETUNE_TAG}-{backbone}", dataset, bits, "anhc")
        wall = [float(r.get("wall_time_s", np.nan)) for r in ok
                if r["method"] == f"mch-{x}-{FINETUNE_TAG}-{backbone}" and r["dataset"] == dataset
                and int(r["bits"]) == int(bits)]
        seeds = sorted(set(tuned) & set(scratch))
        diffs = [tuned[s] - scratch[s] for s in seeds]
        vs_frozen = [tuned[s] - frozen[s] for s in sorted(set(tuned) & set(frozen))]
        above_frozen[0] += sum(d > 0 for d in vs_frozen)
        above_frozen[1] += len(vs_frozen)

        def mean(d: dict) -> str:
            return f"{np.mean(list(d.values())):.3f} (n={len(d)})" if d else "—"

        rows.append({"model": x, "scratch CNN, same mosaics": mean(scratch), "ImageNet, frozen": mean(frozen),
                     "ImageNet, last block tuned": mean(tuned),
                     "tuned − scratch, per seed": " / ".join(f"{d:+.3f}" for d in diffs) or "—",
                     "tuned − frozen, per seed": " / ".join(f"{d:+.3f}" for d in vs_frozen) or "—",
                     "ANHC of MCH-X (tuned)": mean(anhc),
                     "min / run": f"{np.nanmean(wall) / 60:.1f}" if wall else "—"})
        _tally_margin(x, diffs, margin, judged, higher)
    if not rows:
        return [no_runs("the base models with the backbone's last block fine-tuned",
                        f"hashrepro sweep mch --dataset {dataset} --bits {bits} --seeds 0 1 2 --scale default "
                        f"-p backbone {backbone} -p finetune last_block -p base hashnet -p base adsh -p base dch "
                        "-p base mmhh")]
    text = (f"{_DATASET_NAMES.get(dataset, dataset)}, {bits} bits, mAP of X alone (no agent). With the last block "
            f"fine-tuned, X is higher than from scratch on the same mosaics by more than {margin:g} {MARGIN_RULE} for "
            f"{len(higher)} of {len(judged)} base models with ≥ 3 seeds" + (f" ({', '.join(higher)})" if higher else "")
            + f". Against the frozen backbone, fine-tuning is higher in {above_frozen[0]} of {above_frozen[1]} "
            "seed pairs." + (f" {n_flagged} flagged run(s) left out." if n_flagged else ""))
    return [pd.DataFrame(rows), Markdown(text)]


def paper_table2(t2: pd.DataFrame) -> list:
    """The paper's Table 2 (``paper_table("mch_table2")``): a heading and the mAP grid, methods as rows in
    :data:`METHOD_ORDER`, (data set, bits) as columns."""
    pt = t2.pivot_table(index="method", columns=["dataset", "bits"], values="value")
    return [Markdown("**Paper, Table 2** (mAP, NUS-WIDE / MS-COCO / MIRFLICKR; not run here):"),
            pt.reindex(METHOD_ORDER).round(4)]


def ours_table2(records: pd.DataFrame) -> list:
    """Our Table 2 on the mosaics: a heading and mAP as "mean ± std (n=k)" per method × (data set, bits)
    (std and n only where a cell has several seeds); :func:`no_runs` when there is no record."""
    if not len(records):
        return [no_runs("the mosaics")]
    df = records[["method", "dataset", "bits", "seed", "metrics.map"]].copy()
    ours = df.groupby(["method", "dataset", "bits"])["metrics.map"].agg(["mean", "std", "count"]).reset_index()
    ours["ours"] = [_fmt(m, s if c > 1 else float("nan"), c) for m, s, c in zip(ours["mean"], ours["std"], ours["count"])]
    tab = ours.pivot_table(index="method", columns=["dataset", "bits"], values="ours", aggfunc="first")
    return [Markdown("**Ours** (mAP on the mosaics; mean ± std over seeds, n seeds in brackets when > 1):"),
            tab.reindex([m for m in METHOD_ORDER if m in tab.index])]


# --------------------------------------------------------------------------- "What happened"
def _collapse_iter(record: dict, level: float = 0.05):
    """The first iteration (1-based) at which the agent's mean π(keep) fell below ``level``, or None."""
    kp = record["curves"]["agent"]["keep_prob"]
    return next((i + 1 for i, p in enumerate(kp) if p < level), None)


def _variant_sentence(variant: str, rs: list[dict]) -> str:
    """One agent update's runs: ANHC range, largest keep probability, correlation with the true
    reward, and how many agents collapsed (π(keep) < 0.05) within T iterations."""
    an = [r["metrics"]["anhc"] for r in rs]
    kp = [r["metrics"].get("keep_prob_max", float("nan")) for r in rs]
    dsets = ", ".join(sorted({r["dataset"] for r in rs}))
    its = [_collapse_iter(r) for r in rs]
    fast = [f"{r['method'].upper()} {r['bits']} bits: {i}" for r, i in zip(rs, its) if i is not None and i <= 5]
    cc = [r["metrics"].get("oracle_policy_reward_corr", float("nan")) for r in rs]
    cc = [c for c in cc if not math.isnan(c)] or [float("nan")]
    return (f"With the agent update *{variant}* ({len(rs)} runs on {dsets}), ANHC at σ = ξ = 0.5 is "
            f"{min(an):.3f}–{max(an):.3f} (≤ 1.01 in {sum(x <= 1.01 for x in an)} runs), the largest keep "
            f"probability of any database crop is {np.nanmax(kp):.3f}, the correlation of the database crops' "
            f"π(keep) with their true eq.-6 reward is {min(cc):.2f}–{max(cc):.2f}, and mean π(keep) fell below "
            f"0.05 within the T = 100 iterations in {sum(i is not None for i in its)} runs"
            + (f" (in ≤ 5 iterations: {'; '.join(fast)})" if fast else "") + ". ")


def _eq7_explanation(mch_recs: list[dict]) -> str:
    """Why eq. 7 collapses: the range of the first batch's (negative) mean sampled reward, then the reading."""
    r0 = [r["curves"]["agent"]["reward"][0] for r in mch_recs]
    r0 = [x for x in r0 if x < 0] or [float("nan")]
    return (f"Eq. 7 without a baseline collapses for a numerical reason: the first batch's mean sampled reward is "
            f"{max(r0):.0f} to {min(r0):.3g} units (a sum over N pairs), so a few SGD steps at learning rate 1e-4 push "
            "π(keep) towards 0 for every crop, after which \"keep\" is hardly sampled again. "
            "With the baseline and normalised advantages the updates are scale-free, the agent learns which "
            "crops are better (a higher correlation with the true reward, notably for HashNet, whose eq.-7 agent "
            "collapsed before learning anything) and moves steadily towards what eq. 6 asks for, but on our data "
            "that is still to discard nearly every crop: "
            "only a few per cent of the crops have a positive reward (oracle table below), their gains are "
            "small next to the losses of the others, and the state does not tell the good crops apart well "
            "enough (the correlations above), so for almost every state the "
            "expected reward of keeping is negative. The baseline changes the variance and scale of the update, "
            "not its target; the diagnostic below shows why the crops are so poor. Where ANHC is 1, MCH-X stores "
            "only the whole-image codes and its numbers equal X's; the ξ table further down shows what the same "
            "agents give at lower thresholds.")


def _degenerate_sentence(recs: list[dict]) -> str:
    """The base models (not MCH-X) whose codes put the whole database into one bucket; "" if none."""
    collapsed = [r for r in recs if not r["method"].startswith("mch-") and r["metrics"].get("n_buckets", 2) <= 1]
    if not collapsed:
        return ""
    return (" **Degenerate base models:** " + ", ".join(
        f"{r['method'].upper()} on {r['dataset']} at {r['bits']} bits" for r in collapsed)
        + " put every database image into a single bucket (mAP at chance, R@H=0 = 1). For MMHH this is a "
        "property of Table 1's form (t-distribution scale γ = 1, see the base-model table above); with the "
        "authors' γ = 10 it does not collapse. Such a row says nothing about MCH.")


def what_happened(recs) -> Markdown:
    """"What happened": for each agent update (the paper's eq. 7 last) the numbers of its MCH-X runs
    (paired with their X, :func:`hashrepro.plots.mch.pairs`), why eq. 7 collapses (the first
    batch's reward), and the degenerate base models. Every count and range is read from ``recs``."""
    recs = as_records(recs)
    by_var = defaultdict(list)
    for _, m in pairs(recs):
        by_var[agent_variant(m)].append(m)
    text = "**What happened.** "
    for v, rs in sorted(by_var.items(), key=lambda kv: kv[0] == "eq. 7"):
        text += _variant_sentence(v, rs)
    text += _eq7_explanation([r for rs in by_var.values() for r in rs])
    text += _degenerate_sentence(recs)
    return Markdown(text)


# --------------------------------------------------------------------------- diagnostics
def oracle_table(recs) -> pd.DataFrame:
    """The oracle agent beside X, one row per (X, MCH-X) pair whose record has the oracle metrics:
    positive-reward fraction, corr(policy, reward), ANHC, mAP and R@H=0 of X and the oracle, and the
    buckets the oracle visits per bucket X visits at equal F1. Empty when no record has them."""
    rows = []
    for xb, xm in pairs(recs):
        m = xm["metrics"]
        if "oracle_map" not in m:
            continue
        r_or = bucket_ratio(xb, xm, curve="f1_bucket_oracle") if "f1_bucket_oracle" in xm["curves"] else {}
        rows.append({"dataset": xm["dataset"], "bits": xm["bits"], "base": xb["method"], "agent": agent_variant(xm),
                     "crops with reward > 0": round(m["oracle_positive_reward_fraction"], 4),
                     "corr(policy, reward)": round(m.get("oracle_policy_reward_corr", float("nan")), 3),
                     "ANHC oracle": round(m["oracle_anhc"], 3),
                     "mAP X": round(xb["metrics"]["map"], 4), "mAP oracle": round(m["oracle_map"], 4),
                     "R@H=0 X": round(xb["metrics"]["recall_radius0"], 5),
                     "R@H=0 oracle": round(m["oracle_recall_radius0"], 5),
                     "buckets oracle/X at equal F1": round(r_or.get("ratio", float("nan")), 3)})
    return pd.DataFrame(rows)


def _diag_base(record: dict) -> str:
    return record["method"].replace("diag-crops-", "")


def crop_diagnostics(diag: list[dict]) -> list[dict]:
    """The crop diagnostic's records (method ``diag-crops-…``) among ``diag``
    (:func:`split_diagnostics`; the σ sensitivity's ``diag-sigma-…`` are :mod:`hashrepro.plots.mch_sigma`'s)."""
    return [r for r in diag if str(r["method"]).startswith("diag-crops-")]


def crop_diagnostic_table(diag: list[dict]) -> pd.DataFrame:
    """The crop diagnostic (:func:`hashrepro.methods.mch_diagnostics.crop_diagnostic`), one column per
    record: positive-reward fraction (overall and by number of objects), the summed positive and
    negative rewards per image, and the median Hamming distances of tile crops and whole images
    to their own and the other classes."""
    rows = []
    for r in diag:
        m = r["metrics"]
        row = {"dataset": r["dataset"], "bits": r["bits"], "base": _diag_base(r),
               "crops with reward > 0": round(m["positive_fraction"], 3),
               "Σ positive rewards / image": round(m["reward_pos_per_item"], 1),
               "Σ negative rewards / image": round(m["reward_neg_per_item"], 1)}
        for k in range(1, 5):
            if f"positive_fraction_objects{k}" in m:
                row[f"reward > 0, {k} object(s)"] = round(m[f"positive_fraction_objects{k}"], 3)
        row["d(tile crop, own class)"] = m["d_tile_same_class"]
        row["d(tile crop, other classes)"] = m["d_tile_other_class"]
        row["d(whole, own class)"] = m["d_whole_same_class"]
        row["d(whole, other classes)"] = m["d_whole_other_class"]
        rows.append(row)
    return pd.DataFrame(rows).T


def crop_diagnostic_text(record: dict) -> Markdown:
    """How to read the crop diagnostic, with the numbers of one diagnostic ``record``."""
    m = record["metrics"]
    nan = float("nan")
    return Markdown(
        f"Read it as follows ({_diag_base(record).upper()}, {record['bits']} bits). "
        f"Only {m['positive_fraction']:.1%} of the crops have a positive reward, and their gains sum to "
        f"{m['reward_pos_per_item']:.1f} per image against {m['reward_neg_per_item']:.1f} for the losses of the others: "
        "keeping a crop the agent cannot single out with near certainty costs far more than it can gain. "
        f"A crop of a one-object mosaic has a positive reward in {m.get('positive_fraction_objects1', nan):.1%} "
        "of cases (the whole image already is that object), one of a four-object mosaic in "
        f"{m.get('positive_fraction_objects4', nan):.1%}: multi-object images are where crops help, as the "
        "paper's Figure 1 argues. But a tile crop is "
        f"coded at a median {m['d_tile_same_class']:.0f} bits from the single-object images of its own class and "
        f"{m['d_tile_other_class']:.0f} from the others, where a whole single-object image sits at "
        f"{m['d_whole_same_class']:.0f} and {m['d_whole_other_class']:.0f}: the base models, fine-tuned on whole "
        "mosaics where an object fills a quarter of a 32-pixel input, code a full-frame object poorly. With "
        "ImageNet features and real photographs (objects at every scale) crops are coded far better; this is the "
        "main way our stand-in falls short of the paper's setting for MCH.")


# --------------------------------------------------------------------------- figures
def radius0_figure(recs, datasets: list[str]):
    """Figs. 3–4: one row per data set, R@H=0 (left) and P@H=0 (right) against bits; None without data sets."""
    import matplotlib.pyplot as plt

    if not datasets:
        return None
    fig, axes = plt.subplots(len(datasets), 2, figsize=(9, 3.3 * len(datasets)), squeeze=False)
    for i, d in enumerate(datasets):
        radius0_vs_bits(recs, d, "recall_radius0", axes[i, 0])
        radius0_vs_bits(recs, d, "precision_radius0", axes[i, 1])
    fig.tight_layout()
    return fig


def f1_bucket_figure(recs, datasets: list[str]):
    """Figs. 5–7: F1–bucket curves, one row per data set and one column per code length of ``recs``
    (with the oracle agent's curves); None without data sets or records."""
    import matplotlib.pyplot as plt

    bits_run = sorted({int(r["bits"]) for r in as_records(recs)})
    if not (datasets and bits_run):
        return None
    fig, axes = plt.subplots(len(datasets), len(bits_run), figsize=(4.6 * len(bits_run), 3.6 * len(datasets)),
                             squeeze=False)
    for i, d in enumerate(datasets):
        for j, b in enumerate(bits_run):
            f1_bucket(recs, d, b, ax=axes[i, j], legend=True, oracle=True)
    fig.tight_layout()
    return fig


def table3_records(recs, method: str = "mch-dch", bits: int = 32) -> list[dict]:
    """The records our Table 3 and Figure 9 are drawn from: ``method`` at ``bits`` with an ANHC grid."""
    return [r for r in as_records(recs) if r["method"] == method and int(r["bits"]) == bits
            and "anhc_grid" in r["curves"]]


def anhc_comparison(cand: list[dict], t3: pd.DataFrame) -> list:
    """Our Table 3 for every record of ``cand`` (:func:`table3_records`): a heading (data set, seed,
    agent update), the σ × ξ ANHC grid, and a sentence setting the paper's cells (σ, ξ) = (0.5, 0.5),
    (0.5, 0.1), (0.3, 0.5) and the σ = 1 row beside ours. ``t3``: ``paper_table("mch_table3")``."""
    pg = paper_anhc_grid(t3)
    out = []
    for r in cand:
        out.append(Markdown(f"**Ours**, {r['dataset']}, seed {r['seed']}, agent update *{agent_variant(r)}*:"))
        g = anhc_grid(r)
        out.append(g.round(3))
        parts = []
        for sg, x in ((0.5, 0.5), (0.5, 0.1), (0.3, 0.5)):
            if sg in g.index and x in g.columns:
                parts.append(f"ANHC(σ = {sg}, ξ = {x}) = {g.loc[sg, x]:.3f} (paper {pg.loc[sg, x]:.2f})")
        if 1.0 in g.index:
            parts.append("σ = 1: " + ("exactly 1 for every ξ" if np.allclose(g.loc[1.0].values, 1.0)
                                       else f"{g.loc[1.0].min():.3f}–{g.loc[1.0].max():.3f}") + " (paper 1.00)")
        out.append(Markdown("; ".join(parts) + "."))
    return out


def sensitivity_figure(recs, cand: list[dict]):
    """Fig. 9 for the last record of ``cand``: F1–bucket curves over σ (left) and ξ (right), with
    its base model's curve; None when ``cand`` is empty."""
    import matplotlib.pyplot as plt

    if not cand:
        return None
    r = cand[-1]
    base_rec = next((x for x, m in pairs(recs) if m is r), None)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    sensitivity(r, "sigma", axes[0], base_rec)
    sensitivity(r, "xi", axes[1], base_rec)
    axes[0].set_title(f"{r['dataset']}: " + axes[0].get_title(), fontsize=9)
    axes[1].set_title(f"{r['dataset']}: " + axes[1].get_title(), fontsize=9)
    fig.tight_layout()
    return fig


def xi_pivot(recs) -> pd.DataFrame:
    """"Buckets against codes": ANHC and buckets MCH/X for each ξ (σ = 0.5), one row per (data set,
    bits, base), from :func:`hashrepro.plots.mch.xi_table`; rounded to 3 digits; empty without data."""
    xt = xi_table(recs)
    if not len(xt):
        return xt
    xi_rows = xt[xt["vary"] == "xi"]
    return xi_rows.pivot_table(index=["dataset", "bits", "base"], columns="ξ",
                               values=["ANHC", "buckets MCH/X"]).round(3)


def agent_figure(recs, bits: int = 32):
    """The learning curve of every MCH-X agent at ``bits`` (one panel each); None when there is none."""
    import matplotlib.pyplot as plt

    agents = [m for _, m in pairs(recs) if int(m["bits"]) == bits]
    if not agents:
        return None
    fig, axes = plt.subplots(1, len(agents), figsize=(4.6 * len(agents), 3.2), squeeze=False)
    for ax, r in zip(axes[0], agents):
        agent_curve(r, ax)
        ax.set_title(f"{r['method'].upper()}, {r['dataset']}", fontsize=9)
    fig.tight_layout()
    return fig


def search_cost_table(records: pd.DataFrame) -> pd.DataFrame:
    """Search cost at K = 100 per (data set, bits, method), mean over seeds: buckets visited and
    non-empty, codes and buckets in the index, and ms per query of bucket search and linear scan."""
    cols = ["buckets_visited", "buckets_nonempty", "n_codes", "n_buckets", "bucket_search_ms", "linear_scan_ms"]
    cost = records[["method", "dataset", "bits"] + [f"metrics.{c}" for c in cols]].copy()
    cost.columns = ["method", "dataset", "bits"] + cols
    return cost.groupby(["dataset", "bits", "method"]).mean().round(3)


# --------------------------------------------------------------------------- claims
#: The page's two claims tables: the from-scratch claims (section *Claims*) and their ImageNet-backbone
#: counterparts (section *On the ImageNet backbone*); :func:`claims_outputs` takes one of these.
REGIMES = ("scratch", "pretrained")


def _regime_claims(regime: str):
    """(claim ids, whether a record is of the regime) for ``regime`` in :data:`REGIMES`."""
    from ..claims.mch import BACKBONE, FINETUNE_TAG, MCH_PRETRAINED, MCH_SCRATCH

    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {', '.join(map(repr, REGIMES))}; got {regime!r}")
    pretrained = regime == "pretrained"
    claims = MCH_PRETRAINED if pretrained else MCH_SCRATCH
    # from-scratch runs on another mosaic split (``dch-mosaic2000-q20-t80``: :func:`hashrepro.methods.mch.split_tag`)
    # are the pretrained claims' reference, not from-scratch chapter runs; runs with the last block fine-tuned
    # (``-lastblock-``) are judged by their own claim only, not counted with the frozen backbone's runs
    return [c.id for c in claims], (lambda r: str(r["method"]).endswith(f"-{BACKBONE}") == pretrained
                                    and "-mosaic" not in str(r["method"]) and f"-{FINETUNE_TAG}-" not in str(r["method"]))


def _variant_gloss(variant: str) -> str:
    """What a non-default agent update is, for the claims tables' headings."""
    if variant == "eq. 7":
        return "; the paper's eq. 7, runs made before the baseline option"
    t = re.search(r"\+ T (\d+)$", variant)
    if t:
        return (f"; the default update trained for T = {int(t.group(1)):,} iterations instead of §5.2.2's 100, "
                "until its training reward levels off (a deviation)")
    return ""


def claims_outputs(recs, records: pd.DataFrame, default_cfg, regime: str = "scratch") -> list:
    """A claims section for one ``regime`` (:data:`REGIMES`): one claims table per agent update of the
    regime's MCH runs (the recipe's default first, with the number of its MCH runs), then how a
    verdict is reached (from scratch: the rule and the provenance of ``records``; on the ImageNet
    backbone: how its runs are paired, pointing to the rule). ``default_cfg``:
    ``mch.Config.for_scale("default")`` (names the default agent update)."""
    from .. import claims as CL
    from ..book import provenance_line

    ids, in_regime = _regime_claims(regime)
    default_agent = agent_variant({"config": default_cfg.to_dict()})
    agents = [agent_variant(m) for _, m in pairs(recs) if in_regime(m)]
    variants = sorted(set(agents), key=lambda v: (v != default_agent, v))
    where = " on the ImageNet backbone" if regime == "pretrained" else ""
    out = []
    for v in variants:
        out.append(Markdown(f"**Agent update *{v}*** ({agents.count(v)} MCH runs{where}"
                            + ("; the default" if v == default_agent else _variant_gloss(v)) + "):"))
        out.append(CL.claims_table("mch", recs, agent=v, legacy_column=True, ids=ids))
    if not variants:
        out.append(CL.claims_table("mch", recs, legacy_column=True, ids=ids))
    if regime == "pretrained":
        out.append(Markdown("**How a verdict is reached.** With the rule of *Claims* below, on the runs on the "
                            "ImageNet backbone only: each (data set, bits, base model) is a setting; MCH-X on the "
                            "backbone is paired with X on the backbone of the same run, and LSH / ITQ use the "
                            "backbone's features. The base-model claims pair X on the backbone (frozen, or with its "
                            "last block fine-tuned) with X trained from scratch on the same 2,000 mosaics (same seed: "
                            "same mosaics, queries and database)."))
        return out
    out.append(Markdown("**How a verdict is reached.** " + CL.RULE + " Each (data set, bits, base model) is a setting; "
                        "MCH-X is paired with X of the same run. The same claims on the ImageNet backbone are "
                        "judged in *On the ImageNet backbone* above. " + provenance_line(records)))
    return out


def seeds_sentence(recs) -> Markdown | None:
    """"Seeds per data set and code length (every method of the setting): …", from the records; None without any."""
    from ..claims import seed_counts

    counts = seed_counts(recs, ("dataset", "bits"))
    if not len(counts):
        return None
    return Markdown("Seeds per data set and code length (every method of the setting): " + "; ".join(
        f"{r.dataset} {r.bits} b: {', '.join(map(str, r.seeds))}" for r in counts.itertuples()) + ".")
