"""Hyperparameters chosen on a validation split, never on the queries (issue 15).

The pretrained DNNH rows miss the issue's target (MAP ≥ 0.581) with the paper's triplet margin:
eq. 2 of the paper (§3.1, "Triplet Ranking Loss and Optimization") is
``max(0, ‖F(I) − F(I⁺)‖² − ‖F(I) − F(I⁻)‖² + 1)`` over q sigmoid outputs in [0, 1]^q, i.e. a
margin of 1 in squared (Hamming-like) distance; at 48 bits on the frozen EfficientNet-Lite0
features it is satisfied by ~99% of the in-batch triplets after a few hundred iterations and
learning stops. Whether a larger margin (or another schedule) helps is a hyperparameter
question, and it is answered here the honest way:

* the recipe's own split (seeded by ``cfg.seed``) gives training, query and database images; the
  validation split (:func:`hashrepro.convergence.validation_split`) holds ``n_val_per_class``
  training images per class out as validation queries; the remaining training rows train and are
  the validation database (DNNH's protocol, whose test database includes the training images), or,
  with ``n_val_database_per_class``, that many further held-out training images per class are the
  validation database (DRSCH's protocol, whose test database excludes them: otherwise the
  validation ranking rewards codes that separate the images the head was trained on);
* every candidate of the grid (the product of its values, e.g. ``{"margin": [1, 2, 4, 8]}``) is
  trained on those rows only, with the same seed (same initialisation and batches), and scored by
  the validation mAP of Hamming ranking (:func:`hashrepro.metrics.evaluate`, binary codes, full
  validation database, ties by index), as the convergence curves score their points;
* the chosen value is the argmax; a tie goes to the config's current value (the paper's, e.g.
  margin 1), else to the first candidate in grid order.

The query set and the test database are never used: neither for training nor for the choice
(MCH's test database includes the training images; none of its other images is used).
Training and evaluation are :class:`hashrepro.convergence._Recipe` (one place for "train on the
fit rows, evaluate on validation"), in both regimes: ``backbone="scratch"`` (images) and
``backbone="efficientnet_lite0"`` (cached pooled features; only the head trains). Recipes: DNNH
and DRSCH (its ``margin0`` / ``margin_step`` / ``lr`` ... are tunable the same way), and MCH,
whose base hashing model X alone is trained and scored (:mod:`hashrepro.mch_select`: multi-label
validation split, X's training fields only, ``finetune_lr_mult`` / ``base_iters`` / ...).

Records: :func:`record_name` (``<method>_<dataset>_<bits>b_seed<seed>_validation_grid-...``),
written by ``hashrepro select`` to ``results/validation/``.
"""
from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any, Callable, Mapping

import numpy as np
import torch

__all__ = ["PAPERS", "FIXED_FIELDS", "default_config", "fixed_fields", "tunable_fields", "candidates",
           "candidate_label", "select_on_validation", "record_name", "base_method"]

#: The recipes a selection covers.
PAPERS = ("dnnh", "drsch", "mch")

#: Config fields a grid may not vary (DNNH, DRSCH; MCH: :func:`hashrepro.mch_select.fixed_fields`): they
#: define the data, the split, the encoding or the evaluation (the validation split and its prepared
#: inputs are built once, from the base config).
FIXED_FIELDS = ("dataset", "data_root", "seed", "scale", "device", "bits", "variant", "keep_bits", "backbone",
                "backbone_input_size", "protocol", "n_query_per_class", "n_train_per_class",
                "database_includes_train", "max_database", "topk", "radius", "ks", "precision_k", "keep_list",
                "n_random_subsets", "input_size", "resize_to", "flip", "eval_batch_size", "progress",
                "num_threads", "threads")
SELECTION_RULE = ("argmax of the validation mAP over the candidates; a tie goes to the config's current value "
                  "(the paper's), else to the first candidate in grid order")


def _is_mch(cfg) -> bool:
    from .methods import mch

    return isinstance(cfg, mch.Config)


def _config_class(paper: str):
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {PAPERS}, got {paper!r}")
    if paper == "mch":
        from .methods import mch

        return mch.Config
    from .convergence import _module

    return _module(paper).Config


def default_n_val_per_class(paper: str) -> int:
    """Validation queries per class when none is given: 50 (DNNH, DRSCH), MCH's
    :data:`hashrepro.mch_select.N_VAL_PER_CLASS` (its training split is smaller)."""
    if paper == "mch":
        from .mch_select import N_VAL_PER_CLASS

        return N_VAL_PER_CLASS
    return 50


def default_config(paper: str, scale: str = "default", **overrides: Any):
    """The Config a ``hashrepro select`` grid starts from: DNNH / DRSCH
    :func:`hashrepro.convergence.default_config` (the issue's rows), MCH ``Config.for_scale(scale,
    **overrides)`` (its own defaults); unknown fields are a one-line error."""
    if paper == "mch":
        return _config_class(paper).for_scale(scale, **overrides)
    from .convergence import default_config as recipe_default

    _config_class(paper)
    return recipe_default(paper, scale, **overrides)


def fixed_fields(cfg) -> tuple[str, ...]:
    """The Config fields of ``cfg`` a grid may not vary: :data:`FIXED_FIELDS` (DNNH, DRSCH), or every
    field but MCH's base-model training fields (:func:`hashrepro.mch_select.fixed_fields`)."""
    if _is_mch(cfg):
        from .mch_select import fixed_fields as mch_fixed

        return mch_fixed(cfg)
    return FIXED_FIELDS


def tunable_fields(cfg) -> list[str]:
    """The Config fields of ``cfg`` a grid may vary (every field but :func:`fixed_fields`), sorted."""
    import dataclasses

    fixed = fixed_fields(cfg)
    return sorted(f.name for f in dataclasses.fields(cfg) if f.name not in fixed)


def candidates(cfg, grid: Mapping[str, Any]) -> list[dict]:
    """The product of ``grid``'s values, in grid order: ``{"margin": [1, 2], "lr": [0.1]}`` →
    ``[{"margin": 1, "lr": 0.1}, {"margin": 2, "lr": 0.1}]``. One-line ``ValueError`` on an empty
    grid, an unknown or fixed field (naming the valid ones), an empty or repeated value list."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("the grid is empty: give at least one field with values, e.g. {'margin': [1, 2, 4, 8]}")
    valid = tunable_fields(cfg)
    for field, values in grid.items():
        if field not in valid:
            if field not in fixed_fields(cfg):
                why = f"is not a field of {type(cfg).__module__}.Config"
            elif _is_mch(cfg):
                from .mch_select import REFUSED_WHY as why
            else:
                why = "is fixed by the validation split (data, split, encoding, evaluation)"
            raise ValueError(f"grid field {field!r} {why}; valid: {', '.join(valid)}")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
            raise ValueError(f"grid field {field!r} needs a non-empty list of values, got {values!r}")
        if len({repr(v) for v in values}) != len(values):
            raise ValueError(f"grid field {field!r} repeats a value: {list(values)}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(list(grid[k]) for k in keys))]


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "-".join(_value(x) for x in v) or "none"
    return str(v)


def candidate_label(params: Mapping[str, Any]) -> str:
    """``margin=4`` / ``lr=0.01,margin=4`` (fields in grid order): the key inside ``validation_map[...]``."""
    return ",".join(f"{k}={_value(v)}" for k, v in params.items())


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) if not isinstance(a, (list, tuple)) else list(a) == list(b)
    except Exception:  # noqa: BLE001 - incomparable values are different
        return False


def _sha(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


def record_name(paper: str, cfg, grid: Mapping[str, Any], n_val_per_class: int | None = None,
                n_val_database_per_class: int | None = None) -> str:
    """File stem of a selection record, e.g.
    ``dnnh-dem-efficientnet-lite0_cifar10_48b_seed0_validation_grid-margin-1-2-4-8_schedule-default``
    (``_n_val_per_class-<n>`` when it is not 50; ``_n-val-database-per-class-<n>`` when the validation
    database is held out, see :func:`select_on_validation`); an empty grid value reads ``none``.
    ``n_val_per_class`` None: :func:`default_n_val_per_class`."""
    from .run_names import run_name

    if n_val_per_class is None:
        n_val_per_class = default_n_val_per_class(paper)
    extra: dict[str, Any] = {"grid": {k: list(v) for k, v in grid.items()}, "schedule": cfg.scale}
    if n_val_per_class != 50:
        extra["n_val_per_class"] = n_val_per_class
    if n_val_database_per_class is not None:
        extra["n_val_database_per_class"] = int(n_val_database_per_class)
    return run_name(base_method(paper, cfg), cfg.dataset, _bits(cfg), cfg.seed, "validation",
                    **extra)


def base_method(paper: str, cfg) -> str:
    """The record name of the configuration a grid starts from: the preset's
    (``drsch-efficientnet_lite0``), or with the fields it already changes (a selection made on top of
    an earlier choice, e.g. ``-p head_hidden [2048]``: ``drsch-head_hidden-2048-efficientnet_lite0``;
    DNNH: ``dnnh-dem-margin4-efficientnet_lite0``; MCH: the base model's record name,
    :func:`hashrepro.methods.mch.record_method`, e.g. ``dch-lastblock-efficientnet_lite0``). A
    selection record carries it as ``method``, so a chain of selections can be followed
    (:func:`hashrepro.plots.validation.chosen_config_table`)."""
    from .convergence import _module

    if paper == "mch":
        from .methods import mch

        return mch.record_method(cfg)
    mod = _module(paper)
    if paper == "drsch":
        return mod.record_method(cfg)
    return mod.method_name(cfg.variant, cfg.backbone, cfg.margin)


def _bits(cfg) -> int:
    return int(getattr(cfg, "eval_bits", cfg.bits))


def _length_field(paper: str) -> str:
    return "base_iters" if paper == "mch" else "iterations"


def _score(recipe, cfg, progress) -> dict:
    """DNNH / DRSCH: train ``cfg`` on the fit rows (:class:`hashrepro.convergence._Recipe`) and
    evaluate its validation mAP at the end."""
    from .convergence import _CurveCallback
    from .recipe import final_loss

    cb = _CurveCallback([int(cfg.iterations)], recipe.validation_map, lambda it: float("nan"))
    loss = recipe.train(cfg, cb, None, 0, progress)
    last = cb.points[-1]
    res = {"validation_map": float(last["validation_map"]), "final_loss": final_loss(loss, 50),
           "train_time_s": float(last["elapsed_s"] - last["eval_s"]), "eval_time_s": float(last["eval_s"])}
    if recipe.last_active is not None and len(recipe.last_active):
        res["active_triplets"] = float(np.mean(recipe.last_active[-50:]))
    return res


def select_on_validation(paper: str, cfg, grid: Mapping[str, list], n_val_per_class: int | None = None,
                         progress: bool | None = None, log: Callable[[str], None] | None = None,
                         command: str | None = None, n_val_database_per_class: int | None = None) -> dict:
    """Train every candidate of ``grid`` on the fit rows, score it on the validation split, pick one.

    Parameters
    ----------
    paper : "dnnh" | "drsch" | "mch" (MCH: its base hashing model X only, :mod:`hashrepro.mch_select`)
    cfg : the recipe's Config (either backbone); the base of every candidate (only the grid's
        fields change: :func:`candidates`). ``cfg.iterations`` (MCH: ``cfg.base_iters``) ≥ 1.
    grid : field → list of values, e.g. ``{"margin": [1, 2, 4, 8]}`` (DNNH's eq. 2 margin),
        ``{"finetune_lr_mult": [0.03, 0.1, 0.3]}`` (MCH).
    n_val_per_class : validation queries per class held out of the training images
        (:func:`hashrepro.convergence.validation_split`); None: 50 (DNNH, DRSCH), 10 (MCH).
    n_val_database_per_class : None: the validation database is the fit rows (it mirrors a test
        protocol whose database includes the training images: DNNH's, MCH's); a count: that many
        further training images per class are held out as the validation database, so that neither
        side of a validation ranking was trained on (it mirrors a protocol whose database excludes
        the training images: DRSCH's, notes §7). The fit rows shrink by as many.
    progress : training progress bars; ``log``: called with one line per finished candidate.
    command : how the run was started (recorded).

    Returns
    -------
    record (:func:`hashrepro.results.make_record`; ``scale="validation"``): metrics
    ``validation_map[<label>]`` per candidate (label: :func:`candidate_label`, e.g. ``margin=4``),
    ``final_loss[<label>]``, ``train_time_s[<label>]`` (and DNNH's ``active_triplets[<label>]``, the
    fraction of in-batch triplets with a positive loss over the last 50 iterations),
    ``chosen_validation_map``, ``chosen_index``; ``record["chosen"]`` = the chosen field values;
    ``record["selection"]`` = {"rule", "grid", "candidates": [{"params", "validation_map", ...}]}
    (MCH's candidates also carry ``flags``, :func:`hashrepro.diagnostics.diagnose` of the validation
    database codes and the loss); protocol: the split's sizes and index fingerprints, "queries":
    never used.
    """
    from .convergence import _Recipe, recipe_threads
    from .results import make_record, start_run
    from .train import describe_device

    run_start = start_run()
    t_start = time.perf_counter()
    cls = _config_class(paper)
    if not isinstance(cfg, cls):
        raise ValueError(f"cfg must be a hashrepro.methods.{paper}.Config, got {type(cfg).__name__}")
    if paper == "drsch" and cfg.variant == "bs-drsch":
        raise ValueError("selection covers DRSCH variants 'drsch', 'dsch', 'dsrh' (BS-DRSCH evaluates truncated codes)")
    if n_val_per_class is None:
        n_val_per_class = default_n_val_per_class(paper)
    cands = candidates(cfg, grid)
    cfgs = [cfg.replace(**c) for c in cands]  # one-line errors for bad values (Config.validate)
    length = _length_field(paper)
    for c, cc in zip(cands, cfgs):
        if int(getattr(cc, length)) < 1:
            raise ValueError(f"candidate {candidate_label(c)} trains for {getattr(cc, length)} iterations "
                             f"({length}); need >= 1")
    labels_ = [candidate_label(c) for c in cands]
    old_threads = recipe_threads(cfg)
    try:
        if paper == "mch":
            from .mch_select import MCHValidation

            recipe = MCHValidation(cfg, n_val_per_class, n_val_database_per_class, progress)
            score = recipe.score
            extra = dict(recipe.protocol_extra)
        else:
            recipe = _Recipe(paper, cfg, n_val_per_class, n_val_database_per_class)
            score = lambda cc, progress: _score(recipe, cc, progress)  # noqa: E731
            extra = {"split": "per_class"}
            extra.update({k: v for k, v in recipe.backbone_meta.items() if k != "backbone_feature_read_s"})
        val = recipe.val
        results = []
        for params, label, cc in zip(cands, labels_, cfgs):
            t0 = time.perf_counter()
            res = {"params": dict(params), "label": label, **score(cc, progress)}
            res["wall_time_s"] = time.perf_counter() - t0
            results.append(res)
            if log is not None:
                log(f"{label}: validation mAP {res['validation_map']:.4f} (final loss {res['final_loss']:.4g}, "
                    f"{res['train_time_s']:.0f} s)")
        best = max(r["validation_map"] for r in results)
        tied = [i for i, r in enumerate(results) if r["validation_map"] == best]
        current = [i for i in tied if all(_same(getattr(cfg, k), v) for k, v in cands[i].items())]
        chosen = (current or tied)[0]

        metrics: dict[str, float] = {}
        for r in results:
            for key in ("validation_map", "final_loss", "train_time_s", "active_triplets"):
                if key in r:
                    metrics[f"{key}[{r['label']}]"] = r[key]
        metrics.update(chosen_validation_map=results[chosen]["validation_map"], chosen_index=chosen,
                       n_candidates=len(results))
        current_label = candidate_label({k: getattr(cfg, k) for k in grid})
        if current_label in labels_:
            metrics["gain_over_current"] = best - results[labels_.index(current_label)]["validation_map"]
        fit, vq, vdb = val["fit"], val["val_query"], val["val_database"]
        protocol = {"validation": "held out of the training images only (hashrepro.convergence.validation_split)",
                    "queries": "never used: not for training, not for the choice (the test database neither)",
                    "n_val_per_class": int(n_val_per_class),
                    "validation_database": ("the training rows that take gradient steps"
                                            if n_val_database_per_class is None else
                                            f"{int(n_val_database_per_class)} further training images per class, "
                                            "held out (never trained on)"),
                    "n_fit": int(len(fit)), "n_val_query": int(len(vq)), "n_val_database": int(len(vdb)),
                    "n_train_recipe": int(len(recipe.train_idx)), "n_query_recipe_unused": int(len(recipe.query)),
                    "fit_sha256_16": _sha(fit), "val_query_sha256_16": _sha(vq),
                    "val_database_sha256_16": _sha(vdb), "split_seed": int(cfg.seed), "topk": None,
                    "ties": "index", "empty": "zero", "ranking": "binary",
                    "metric": "validation mAP of Hamming ranking (binary codes, full validation database)",
                    "same_seed": "every candidate starts from the same seed (initialisation, batches)",
                    "selection": SELECTION_RULE}
        protocol.update(extra)
        config = {"recipe": cfg.to_dict(), "grid": {k: list(v) for k, v in grid.items()}, "schedule": cfg.scale,
                  "n_val_per_class": int(n_val_per_class), "paper": paper}
        if n_val_database_per_class is not None:
            config["n_val_database_per_class"] = int(n_val_database_per_class)
        rec = make_record(paper=paper, method=base_method(paper, cfg), dataset=cfg.dataset,
                          bits=_bits(cfg), seed=int(cfg.seed), scale="validation", config=config, protocol=protocol,
                          metrics=metrics, curves={}, wall_time_s=time.perf_counter() - t_start,
                          device=describe_device(recipe.device),
                          command=command or f"hashrepro.validation_select.select_on_validation({paper!r}, ...)",
                          started=run_start)
        rec["chosen"] = dict(cands[chosen])
        rec["selection"] = {"rule": SELECTION_RULE, "grid": config["grid"], "chosen_label": labels_[chosen],
                            "candidates": results}
        return rec
    finally:
        torch.set_num_threads(old_threads)
