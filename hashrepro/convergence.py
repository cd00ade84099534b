"""Convergence of the from-scratch rows: validation mAP against training iterations (issue 15).

The chapters' from-scratch tables (DNNH, DRSCH; ``backbone="scratch"``, ``scale="default"``)
train for 1,200 (DNNH) and 300 (DRSCH) iterations, far fewer than the papers. This module says how
far those numbers are from converged: it trains the same recipe on a schedule up to
``max_multiple`` × as long and records the mAP of a **validation split carved from the training
images** at a handful of log-spaced iterations.

Validation split (:func:`validation_split`)
    The recipe's own split (seeded by ``cfg.seed``) gives training, query and database images;
    ``n_val_per_class`` (50) training images per class (500 on CIFAR-10) are held out as
    validation queries and never take a gradient step; the rest (4,500 on CIFAR-10) are the rows
    that train. The validation database is those training rows (default), or, with
    ``n_val_database_per_class``, another held-out part of the training images. The query set
    and the database of the paper's protocol are never used.

Schedule extension (:func:`extend_schedule`)
    One long run per curve: the default recipe with ``iterations`` × ``max_multiple`` and
    **every schedule length scaled by the same factor**, so that the long run ends at the same
    learning rate, ε / slope / margin as the default one. DNNH: the LR steps are fractions of
    training (0.7, 0.9) and ε shrinks every 20,000 × iterations / 100,000, so both stretch by
    themselves (an explicit ``epsilon_every`` is multiplied). DRSCH: ``lr_step``,
    ``slope_every`` and ``margin_every`` are multiplied. The curve's points before the end are
    therefore mid-schedule (a higher LR and a larger ε / smaller slope than at the end).
    Because of that, the default schedule's own number is measured separately: the **anchor**,
    the unchanged default schedule trained on the same training rows and seed, evaluated on the
    same validation split (``curves["default_schedule"]``).

Verdicts (:func:`convergence_verdict`, :func:`default_schedule_verdict`)
    Rule, with ``min_gain`` = :data:`MIN_GAIN` = 0.01 (absolute validation mAP):

    * a curve is ``"converged"`` when its last doubling of iterations raised validation mAP by
      less than ``min_gain``: mAP(T) − mAP(T') < 0.01, T the last point, T' the latest point at or
      below T / 2; otherwise ``"still rising"`` (one seed; no standard error);
    * the default schedule is ``"still rising"`` as soon as any point of the schedule
      ``max_multiple`` × as long is at least ``min_gain`` above the anchor (the default schedule's
      own validation mAP), and ``"converged"`` when that schedule finished with no point
      ``min_gain`` above it (a partial record with no such point cannot say yet).

Resumable
    With ``checkpoint_dir`` the run writes ``anchor.pt`` / ``long.pt`` checkpoints (every
    ``checkpoint_every`` iterations; net, optimiser, LR schedule, annealed ε / slope / margin,
    batch samplers, random generators and the curve points so far) and ``anchor.json`` (the
    anchor's result, atomic). A killed run started again with the same arguments continues from
    the last checkpoint and gives the same curve as an uninterrupted run; a folder holding a run
    of another configuration is refused. With ``record_path`` the record is rewritten
    (atomically) after every curve point; ``metrics["finished"]`` = 0 and
    ``metrics["iterations_done"]`` say how far a partial record got.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from functools import reduce
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["RECIPES", "DEFAULT_SETTINGS", "EVAL_MULTIPLES", "MIN_GAIN", "VERDICT_RULE", "default_config",
           "extend_schedule", "base_lr_at", "validation_split", "eval_iterations", "convergence_curve", "convergence_verdict",
           "default_schedule_verdict", "record_name", "save_curve_record", "load_curve_record"]

RECIPES = ("dnnh", "drsch")
#: The issue's rows: DNNH (DEM) at 48 bits and DRSCH at 32 bits, CIFAR-10, from scratch.
DEFAULT_SETTINGS = {"dnnh": dict(dataset="cifar10", bits=48, variant="dem"),
                    "drsch": dict(dataset="cifar10", bits=32, variant="drsch")}
#: Evaluation points, in multiples of the default schedule's length (kept up to ``max_multiple``).
EVAL_MULTIPLES = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7, 10)
#: Absolute validation-mAP gain under which a doubling (or the longer schedule) counts as converged.
MIN_GAIN = 0.01
VERDICT_RULE = ("curve: 'converged' when the last doubling of iterations raised validation mAP by less than "
                f"{MIN_GAIN} (absolute; mAP at the last point minus mAP at the latest point at or below half its "
                "iterations), else 'still rising'; default schedule: 'converged' when the max_multiple-times longer "
                f"schedule, finished, has no point {MIN_GAIN} or more above the default schedule's validation mAP; 'still rising' as soon "
                "as one point (mid-schedule or the end) is")


# ---------------------------------------------------------------------- configuration
def _module(paper: str):
    if paper not in RECIPES:
        raise ValueError(f"paper must be one of {RECIPES}, got {paper!r}")
    from .methods import dnnh, drsch

    return dnnh if paper == "dnnh" else drsch


def default_config(paper: str, scale: str = "default", **overrides: Any):
    """The recipe's ``Config.for_scale(scale)`` with the issue's row (:data:`DEFAULT_SETTINGS`:
    CIFAR-10, DNNH DEM 48 bits / DRSCH 32 bits), then ``overrides``."""
    mod = _module(paper)
    kw = dict(DEFAULT_SETTINGS[paper])
    kw.update(overrides)
    return mod.Config.for_scale(scale, **kw)


def extend_schedule(paper: str, cfg, multiple: float):
    """``cfg`` with ``iterations`` × ``multiple`` and every schedule length scaled alike (module doc).

    DNNH: LR steps are fractions of training and ε's period scales with ``iterations`` already
    (an explicit ``epsilon_every`` is multiplied); DRSCH: ``lr_step``, ``slope_every``,
    ``margin_every`` are multiplied (rounded, ≥ 1).
    """
    if not (isinstance(multiple, (int, float, np.integer, np.floating)) and multiple > 0):
        raise ValueError(f"multiple must be a positive number, got {multiple!r}")
    _module(paper)
    scaled = lambda v: max(1, int(round(v * multiple)))  # noqa: E731
    if paper == "dnnh":
        kw = {"iterations": scaled(cfg.iterations)}
        if cfg.epsilon_every is not None:
            kw["epsilon_every"] = scaled(cfg.epsilon_every)
        return dataclasses.replace(cfg, **kw)
    return dataclasses.replace(cfg, iterations=scaled(cfg.iterations), lr_step=scaled(cfg.lr_step),
                               slope_every=scaled(cfg.slope_every), margin_every=scaled(cfg.margin_every))


def base_lr_at(paper: str, cfg, iterations_done: int) -> float:
    """The base learning rate after ``iterations_done`` steps of ``cfg``'s schedule (DNNH:
    ``lr`` × ``lr_gamma`` per passed step at round(f × iterations), f in ``lr_steps``; DRSCH:
    ``lr`` × ``lr_gamma`` ^ ⌊iterations_done / lr_step⌋). Per-layer multipliers not included."""
    _module(paper)
    if paper == "dnnh":
        k = sum(1 for m in sorted({int(round(f * cfg.iterations)) for f in cfg.lr_steps}) if m <= iterations_done)
    else:
        k = iterations_done // cfg.lr_step
    return float(cfg.lr * cfg.lr_gamma ** k)


def eval_iterations(default_iterations: int, max_multiple: float,
                    multiples: Sequence[float] = EVAL_MULTIPLES) -> list[int]:
    """Iterations to evaluate at: round(m × default) for the ``multiples`` ≤ ``max_multiple``,
    plus the end of the long schedule (sorted, unique, ≥ 1)."""
    end = max(1, int(round(default_iterations * max_multiple)))
    its = {max(1, int(round(default_iterations * m))) for m in multiples if m <= max_multiple}
    its.add(end)
    return sorted(i for i in its if i <= end)


def validation_split(labels: np.ndarray, train_idx: np.ndarray, n_val_per_class: int = 50, seed: int = 0,
                     n_val_database_per_class: int | None = None) -> dict:
    """Carve a validation split out of the training images only.

    Parameters
    ----------
    labels : int (N,) single-label classes of the whole dataset, or multi-hot (N, C) (multi-label
        sets, MCH's mosaics: see below)
    train_idx : int (n_train,) dataset indices of the recipe's training images
    n_val_per_class : validation queries per class, held out of the training images
    seed : seeds the draw (``numpy.random.default_rng((seed, 15))``)
    n_val_database_per_class : None (the validation database is the training rows that remain)
        or a count per class of further held-out training images forming the database

    Multi-label ``labels`` are drawn the way MCH's ``multilabel_balanced`` split draws its
    queries (§5.1, :mod:`hashrepro.data.splits`): for each class c = 0, 1, … in turn,
    ``n_val_per_class`` training images holding c that are not drawn yet; then the validation
    database the same way. A class with too few such images left is an error.

    Returns
    -------
    dict of sorted int64 dataset indices: ``"fit"`` (rows that take gradient steps),
    ``"val_query"``, ``"val_database"`` (``val_database`` is ``fit`` when
    ``n_val_database_per_class`` is None).
    """
    labels = np.asarray(labels)
    if labels.ndim not in (1, 2):
        raise ValueError(f"validation_split needs classes (N,) or multi-hot labels (N, C), got shape {labels.shape}")
    train_idx = np.asarray(train_idx, dtype=np.int64)
    for name, v in (("n_val_per_class", n_val_per_class), ("n_val_database_per_class", n_val_database_per_class)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    rng = np.random.default_rng((int(seed), 15))
    n_db = int(n_val_database_per_class or 0)
    if labels.ndim == 2:
        return _multilabel_validation_split(labels, train_idx, int(n_val_per_class), n_db, rng)
    val_q, val_db, fit = [], [], []
    for c in np.unique(labels[train_idx]):
        rows = train_idx[labels[train_idx] == c]
        need = n_val_per_class + n_db
        if len(rows) <= need:
            raise ValueError(f"class {c} has {len(rows)} training images; holding out {need} per class would leave "
                             "none to train on: lower n_val_per_class / n_val_database_per_class")
        perm = rng.permutation(rows)
        val_q.append(perm[:n_val_per_class])
        val_db.append(perm[n_val_per_class:need])
        fit.append(perm[need:])
    out = {"fit": np.sort(np.concatenate(fit)), "val_query": np.sort(np.concatenate(val_q))}
    out["val_database"] = np.sort(np.concatenate(val_db)) if n_db else out["fit"]
    return out


def _multilabel_validation_split(Y: np.ndarray, train_idx: np.ndarray, n_val: int, n_db: int, rng) -> dict:
    """:func:`validation_split` of multi-hot labels: per class in turn, among the training images
    holding it that are not drawn yet (queries first, then the validation database)."""
    avail = np.zeros(len(Y), dtype=bool)
    avail[train_idx] = True
    present = np.flatnonzero(Y[train_idx].any(0))

    def draw(per_class: int, what: str) -> np.ndarray:
        out = []
        for c in present:
            cand = np.flatnonzero(avail & (Y[:, c] > 0))
            if len(cand) < per_class:
                raise ValueError(f"class {c} has {len(cand)} training images left for the {what}, fewer than "
                                 f"{per_class}: lower n_val_per_class / n_val_database_per_class")
            take = rng.permutation(cand)[:per_class]
            avail[take] = False
            out.append(take)
        return np.sort(np.concatenate(out)).astype(np.int64) if out else np.zeros(0, np.int64)

    val_q = draw(n_val, "validation queries")
    val_db = draw(n_db, "validation database") if n_db else None
    fit = np.flatnonzero(avail).astype(np.int64)
    if len(fit) == 0:
        raise ValueError("holding out the validation split leaves no training image to train on: lower "
                         "n_val_per_class / n_val_database_per_class")
    return {"fit": fit, "val_query": val_q, "val_database": val_db if val_db is not None else fit}


# ---------------------------------------------------------------------- verdicts
def _points(curve: dict) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(curve, dict) and "curves" in curve:  # a record
        curve = curve["curves"]["validation_map"]
    try:
        its = np.asarray(curve["iterations"], dtype=np.float64)
        vals = np.asarray(curve["validation_map"], dtype=np.float64)
    except (KeyError, TypeError):
        raise ValueError("a curve is {'iterations': [...], 'validation_map': [...]} (or a convergence record)") from None
    if its.shape != vals.shape or its.ndim != 1:
        raise ValueError(f"iterations and validation_map must be equal-length lists, got {its.shape} and {vals.shape}")
    order = np.argsort(its, kind="stable")
    return its[order], vals[order]


def convergence_verdict(curve: dict, min_gain: float = MIN_GAIN) -> str:
    """``"converged"`` or ``"still rising"`` by the last doubling of iterations (module doc).

    ``curve``: ``{"iterations": [...], "validation_map": [...]}`` (or a convergence record, whose
    ``curves["validation_map"]`` is used). mAP(T) − mAP(T') < ``min_gain`` → ``"converged"``,
    T the last point, T' the latest point with iterations ≤ T / 2. A curve without such a point is
    an error (it cannot say).
    """
    its, vals = _points(curve)
    if len(its) == 0:
        raise ValueError("convergence_verdict: the curve has no points")
    half = np.flatnonzero(its <= its[-1] / 2)
    if len(half) == 0:
        raise ValueError(f"convergence_verdict: no point at or below half the last iterations ({its[-1]:g} / 2); "
                         "the curve cannot say whether its last doubling still raised the validation mAP")
    return "converged" if vals[-1] - vals[half[-1]] < min_gain else "still rising"


def default_schedule_verdict(record: dict, min_gain: float = MIN_GAIN) -> str:
    """Is the default schedule's number converged? Compares the long curve with the anchor
    (``curves["default_schedule"]``, the default schedule's own validation mAP):

    * ``"still rising"`` as soon as any point of the longer schedule (mid-schedule or its end)
      is at least ``min_gain`` above the anchor: more training has already bought ``min_gain``;
    * ``"converged"`` when the long schedule finished and no point is ``min_gain`` above it;
    * otherwise (a partial record with no such point yet) a ``ValueError``: it cannot say yet.
    """
    try:
        anchor = float(record["curves"]["default_schedule"]["validation_map"][0])
    except (KeyError, IndexError, TypeError):
        raise ValueError("default_schedule_verdict needs a record with curves['default_schedule'] (anchor=True)") from None
    _, vals = _points(record)
    if len(vals) and float(np.max(vals)) - anchor >= min_gain:
        return "still rising"
    if not len(vals) or not record.get("metrics", {}).get("finished"):
        raise ValueError("default_schedule_verdict cannot say yet: the long schedule has not reached its end "
                         f"({record.get('metrics', {}).get('iterations_done')} of "
                         f"{record.get('metrics', {}).get('iterations_planned')} iterations) and no point so far is "
                         f"{min_gain} above the default schedule's validation mAP")
    return "converged"


# ---------------------------------------------------------------------- recipes
def recipe_threads(cfg) -> int:
    """Set torch's CPU threads to the recipe's own field (``num_threads`` or ``threads``, when it has
    one and it is set); return the previous count, for the caller to restore."""
    old = torch.get_num_threads()
    threads = getattr(cfg, "num_threads", None) or getattr(cfg, "threads", None)
    if threads:
        torch.set_num_threads(int(threads))
    return old


class _Recipe:
    """Data, training and validation of one recipe on the validation split (:func:`validation_split`):
    trains on the fit rows only, evaluates validation queries against the validation database.
    Both regimes (``cfg.backbone``): images (scratch) or the cached pooled backbone features
    (pretrained; ``x_fit`` (n_fit, D)); used by the curves here and by
    :mod:`hashrepro.validation_select`. ``last_active``: DNNH's active-triplet fractions of the last
    :meth:`train` (None for DRSCH)."""

    def __init__(self, paper: str, cfg, n_val_per_class: int, n_val_database_per_class: int | None):
        from .train import resolve_device

        self.paper, self.cfg = paper, cfg
        self.mod = _module(paper)
        self.device = resolve_device(cfg.device)
        if paper == "dnnh":
            from . import data

            ds = data.load(cfg.dataset, root=cfg.data_root)
            sp = self.mod._split(ds, cfg)
            train, query, database = (np.asarray(a, dtype=np.int64) for a in (sp.train, sp.query, sp.database))
        else:
            ds, sp, _, train, query, database = self.mod._load_split(cfg)
        self.ds, self.labels = ds, np.asarray(ds.labels)
        self.split_protocol = dict(getattr(sp, "protocol", {}) or {})
        self.train_idx, self.query, self.database = train, query, database
        self.val = validation_split(self.labels, train, n_val_per_class, cfg.seed, n_val_database_per_class)
        fit, vq, vdb = self.val["fit"], self.val["val_query"], self.val["val_database"]
        self.y_fit = self.labels[fit]
        self.feats, self.backbone_meta, self.last_active = None, {}, None
        if paper == "dnnh" and cfg.backbone != "scratch":  # pretrained: cached (N, D) features, no pixel mean
            self.feats, self.backbone_meta, _ = self.mod._backbone_features(ds, cfg)
            self.x_fit = torch.from_numpy(np.ascontiguousarray(self.feats[fit], dtype=np.float32)).to(self.device)
            self.y_fit_t = torch.as_tensor(self.y_fit).to(self.device)
        elif paper == "dnnh":
            x = self.mod._prepare(ds.images[fit], cfg, None)
            self.mean = x.mean(dim=(0, 2, 3))
            self.x_fit = (x - self.mean.view(1, -1, 1, 1)).to(self.device)
            self.y_fit_t = torch.as_tensor(self.y_fit).to(self.device)
        elif cfg.backbone != "scratch":  # DRSCH pretrained: features of the rows, no crop, no flip
            self.flip = False
            self._inputs: dict = {}
            self._use_inputs(cfg)
            self.backbone_meta = self._inputs[cfg.finetune][3]
        else:
            self.flip = cfg.flip if cfg.flip is not None else (ds.images.shape[-1] == 3)
            self.x_fit = self.mod.prepare_images(ds.images[fit], cfg.resize_to)
            self.x_vq = self.mod.prepare_images(ds.images[vq], cfg.resize_to)
            self.x_vdb = self.x_fit if vdb is fit else self.mod.prepare_images(ds.images[vdb], cfg.resize_to)

    def _use_inputs(self, cfg) -> None:
        """DRSCH pretrained: the fit / validation inputs of ``cfg`` (pooled features, or the maps entering
        the last block when ``cfg.finetune`` says so; each read once) become ``x_fit``, ``x_vq``, ``x_vdb``."""
        if cfg.finetune not in self._inputs:
            fit, vq, vdb = self.val["fit"], self.val["val_query"], self.val["val_database"]
            x_fit, meta = self.mod._backbone_features(self.ds, cfg, fit)
            x_vq = self.mod._backbone_features(self.ds, cfg, vq)[0]
            x_vdb = x_fit if vdb is fit else self.mod._backbone_features(self.ds, cfg, vdb)[0]
            self._inputs[cfg.finetune] = (x_fit, x_vq, x_vdb, meta)
        self.x_fit, self.x_vq, self.x_vdb, _ = self._inputs[cfg.finetune]

    def train(self, cfg, callback, checkpoint, checkpoint_every, progress):
        """Train ``cfg`` on the fit rows; ``callback(it, model)`` after every iteration. Returns the loss list."""
        from .train import seed_everything

        ck = dict(callback=callback, checkpoint=checkpoint, checkpoint_every=checkpoint_every)
        if self.paper == "dnnh":
            gen = seed_everything(cfg.seed)
            _, hist, self.last_active = self.mod.train_net(dataclasses.replace(cfg, progress=progress), self.x_fit,
                                                           self.y_fit_t, self.device, gen, **ck)
            return list(hist.loss)
        if cfg.backbone != "scratch":
            self._use_inputs(cfg)  # a grid over finetune: each candidate on its own inputs
        _, info = self.mod.train_model(dataclasses.replace(cfg, flip=self.flip), self.x_fit, self.y_fit, self.device,
                                       progress, **ck)
        return list(info["loss"])

    def validation_map(self, model) -> float:
        """mAP of Hamming ranking (binary codes, full ranking, ties by database index) of the
        validation queries against the validation database; the model is left in training mode."""
        from .codes import binarize
        from .metrics import evaluate

        vq, vdb = self.val["val_query"], self.val["val_database"]
        cfg = self.cfg
        try:
            if self.paper == "dnnh" and self.feats is not None:
                model.eval()
                fq = self.mod._encode_features(model, self.feats, vq, cfg, self.device, role="query")
                fdb = self.mod._encode_features(model, self.feats, vdb, cfg, self.device, role="database")
                bq, bdb = binarize(fq, threshold=0.5), binarize(fdb, threshold=0.5)
            elif self.paper == "dnnh":
                model.eval()
                fq = self.mod._encode(model, self.ds.images[vq], cfg, self.mean, self.device, role="query")
                fdb = self.mod._encode(model, self.ds.images[vdb], cfg, self.mean, self.device, role="database")
                bq, bdb = binarize(fq, threshold=0.5), binarize(fdb, threshold=0.5)
            else:
                zq = self.mod.encode_preactivations(model, self.x_vq, cfg.input_size, cfg.eval_batch_size, self.device)
                zdb = self.mod.encode_preactivations(model, self.x_vdb, cfg.input_size, cfg.eval_batch_size, self.device)
                w = model.weights.detach().cpu().numpy()
                sel = self.mod.kept_bits(w, cfg.eval_bits)
                bq = binarize(np.ascontiguousarray(zq[:, sel]), 0.0)
                bdb = binarize(np.ascontiguousarray(zdb[:, sel]), 0.0)
            ev = evaluate(bq, bdb, self.labels[vq], self.labels[vdb], topk=None, radius=2,
                          ks=(min(100, len(vdb)),))
            return float(ev["map"])
        finally:
            model.train()


class _CurveCallback:
    """Evaluates at the chosen iterations; its points and compute time travel in the checkpoints."""

    def __init__(self, eval_at: Sequence[int], evaluate: Callable[[Any], float], lr: Callable[[int], float],
                 on_point: Callable[[], None] | None = None):
        self.eval_at = set(int(i) for i in eval_at)
        self.evaluate, self.lr, self.on_point = evaluate, lr, on_point
        self.points: list[dict] = []
        self.elapsed_before = 0.0
        self.eval_s = 0.0
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t0

    def __call__(self, it: int, model) -> None:
        if it not in self.eval_at:
            return
        t = time.perf_counter()
        value = self.evaluate(model)
        self.eval_s += time.perf_counter() - t
        self.points.append({"iterations": int(it), "validation_map": float(value), "lr": float(self.lr(it)),
                            "elapsed_s": float(self.elapsed()), "eval_s": float(self.eval_s)})
        if self.on_point is not None:
            self.on_point()

    def state_dict(self) -> dict:
        return {"points": [dict(p) for p in self.points], "elapsed_s": self.elapsed(), "eval_s": self.eval_s}

    def load_state_dict(self, d: dict) -> None:
        self.points = [dict(p) for p in d["points"]]
        self.elapsed_before, self.eval_s = float(d["elapsed_s"]), float(d["eval_s"])
        self.t0 = time.perf_counter()


# ---------------------------------------------------------------------- records
def record_name(paper: str, cfg, max_multiple: float) -> str:
    """File stem of a convergence record, e.g. ``dnnh-dem_cifar10_48b_seed0_convergence_max-multiple-10``."""
    from .results import run_name

    mod = _module(paper)
    return run_name(mod.method_name(cfg.variant, cfg.backbone), cfg.dataset, cfg.bits, cfg.seed, "convergence",
                    max_multiple=max_multiple)


def save_curve_record(record: dict, path: str | Path) -> Path:
    """Write a convergence record to ``path`` (JSON, atomic). A dirty tree's diff (``git_patch``) goes
    once to ``<folder>/patches/<sha256>.patch`` and the record keeps that relative path."""
    from .atomic import atomic_write
    from .results import PATCH_DIR, to_jsonable

    path = Path(path)
    record = dict(record)
    patch = record.get("git_patch")
    if isinstance(patch, str) and not patch.startswith(PATCH_DIR + "/"):
        rel = f"{PATCH_DIR}/{record.get('git_diff_sha256')}.patch"
        if not (path.parent / rel).is_file():
            atomic_write(path.parent / rel, patch)
        record["git_patch"] = rel
    return atomic_write(path, json.dumps(to_jsonable(record), indent=1) + "\n")


def load_curve_record(path: str | Path) -> dict:
    """Read a convergence record written by :func:`save_curve_record`."""
    from .results import load_run

    return load_run(path)


def _subsample(loss: list[float], n: int = 200) -> dict:
    """The record's training-loss curve (:func:`hashrepro.recipe.loss_curve`: window means; records
    written before it drop the last partial window)."""
    from .recipe import loss_curve

    return loss_curve(loss, n)


# ---------------------------------------------------------------------- the run
def convergence_curve(paper: str, cfg=None, eval_at: Sequence[int] | None = None, max_multiple: float = 10,
                      checkpoint_dir: str | Path | None = None, checkpoint_every: int | None = None,
                      n_val_per_class: int = 50, n_val_database_per_class: int | None = None, anchor: bool = True,
                      record_path: str | Path | None = None, progress: bool | None = True,
                      command: str | None = None) -> dict:
    """Validation mAP against iterations for one from-scratch recipe; returns the record.

    Parameters
    ----------
    paper : "dnnh" | "drsch"
    cfg : the recipe's Config of the **default** schedule (None: :func:`default_config`); only
        ``backbone="scratch"``.
    eval_at : iterations to evaluate at (None: :func:`eval_iterations` of the default length:
        0.1, 0.25, 0.5, 1, 2, 3, 5, 7, 10 × up to ``max_multiple``); each in 1..the long schedule's end.
    max_multiple : the long schedule is ``max_multiple`` × the default (:func:`extend_schedule`).
    checkpoint_dir : folder of the resumable state (module doc); None: not resumable.
    checkpoint_every : iterations between checkpoints (None: the gcd of ``eval_at``, so that
        every evaluation is followed by a checkpoint).
    n_val_per_class, n_val_database_per_class : :func:`validation_split`.
    anchor : also train the unchanged default schedule on the same rows (its validation mAP is
        ``curves["default_schedule"]``, needed by :func:`default_schedule_verdict`).
    record_path : when given, the record is written there (atomically) after every curve point
        and at the end.
    command : how the run was started (recorded).

    Returns
    -------
    record (:func:`hashrepro.results.make_record`; ``scale="convergence"``) with
    ``curves["validation_map"]`` = {"iterations", "validation_map", "multiple", "lr", "elapsed_s"},
    ``curves["default_schedule"]`` (anchor), ``curves["train_loss"]``; metrics
    ``iterations_done``, ``iterations_planned``, ``finished`` (1/0), ``default_iterations``,
    ``validation_map_final``, ``default_schedule_validation_map``, ``gain_over_default``,
    ``last_doubling_gain``, ``seconds_per_iteration``, ``compute_time_s``; and
    ``record["convergence"]`` = {"verdict", "default_schedule_verdict", "rule", "schedule"}.
    """
    from .results import make_record, start_run
    from .train import describe_device

    run_start = start_run()
    t_start = time.perf_counter()
    mod = _module(paper)
    if cfg is None:
        cfg = default_config(paper)
    if not isinstance(cfg, mod.Config):
        raise ValueError(f"cfg must be a hashrepro.methods.{paper}.Config, got {type(cfg).__name__}")
    if cfg.backbone != "scratch":
        raise ValueError(f"convergence curves are for the from-scratch rows: cfg.backbone must be 'scratch', "
                         f"got {cfg.backbone!r}")
    if paper == "drsch" and cfg.variant == "bs-drsch":
        raise ValueError("convergence curves cover variant 'drsch' or 'dsch' (BS-DRSCH evaluates truncated codes)")
    if not (isinstance(max_multiple, (int, float, np.integer, np.floating)) and max_multiple >= 1):
        raise ValueError(f"max_multiple must be a number >= 1 (the long schedule is that many times the default), "
                         f"got {max_multiple!r}")
    base_its = int(cfg.iterations)
    if base_its < 1:
        raise ValueError(f"cfg.iterations must be >= 1 (the default schedule's length), got {base_its}")
    long_cfg = extend_schedule(paper, cfg, max_multiple)
    end = int(long_cfg.iterations)
    eval_at = eval_iterations(base_its, max_multiple) if eval_at is None else sorted({int(i) for i in eval_at})
    if not eval_at or eval_at[0] < 1 or eval_at[-1] > end:
        raise ValueError(f"eval_at must be iterations in 1..{end} (the long schedule's end), got {eval_at}")
    if checkpoint_every is None:
        checkpoint_every = reduce(math.gcd, eval_at)
    if not isinstance(checkpoint_every, (int, np.integer)) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    old_threads = recipe_threads(cfg)
    try:
        recipe = _Recipe(paper, cfg, n_val_per_class, n_val_database_per_class)
        val = recipe.val
        fingerprint = {"paper": paper, "default_config": cfg.to_dict(), "long_config": long_cfg.to_dict(),
                       "eval_at": eval_at, "checkpoint_every": int(checkpoint_every), "n_val_per_class": n_val_per_class,
                       "n_val_database_per_class": n_val_database_per_class, "anchor": bool(anchor)}
        fingerprint = json.loads(json.dumps(fingerprint, default=str))
        ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if ckdir is not None:
            from .atomic import atomic_write

            meta = ckdir / "meta.json"
            if meta.is_file():
                saved = json.loads(meta.read_text())
                if saved != fingerprint:
                    diff = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
                    raise ValueError(f"checkpoint_dir {ckdir} holds a run of another configuration (differs in "
                                     f"{diff}); use another folder or delete that one")
            else:
                atomic_write(meta, json.dumps(fingerprint, indent=1) + "\n")

        device_s = describe_device(recipe.device)
        schedule_doc = (f"long run = the default recipe with iterations x {max_multiple:g} and every schedule "
                        + ("length (LR steps at fractions of training, epsilon period) scaled alike"
                           if paper == "dnnh" else "length (lr_step, slope_every, margin_every) scaled alike")
                        + "; intermediate points are mid-schedule; the default schedule itself is the anchor")
        protocol = {"validation": "held out of the training images only (never the queries or the test database)",
                    "n_val_per_class": int(n_val_per_class),
                    "validation_database": ("the training rows that take gradient steps" if n_val_database_per_class
                                            is None else f"{n_val_database_per_class} further held-out training "
                                                         "images per class"),
                    "n_fit": int(len(val["fit"])), "n_val_query": int(len(val["val_query"])),
                    "n_val_database": int(len(val["val_database"])), "n_train_recipe": int(len(recipe.train_idx)),
                    "n_query_recipe_unused": int(len(recipe.query)), "split": "per_class", "split_seed": int(cfg.seed),
                    "topk": None, "ties": "index", "empty": "zero", "ranking": "binary",
                    "metric": "validation mAP of Hamming ranking (binary codes, full validation database)"}

        state: dict[str, Any] = {"anchor": None, "loss": []}
        long_cb: _CurveCallback | None = None

        def build_record() -> dict:
            pts = long_cb.points if long_cb is not None else []
            done = pts[-1]["iterations"] if pts else 0
            finished = bool(pts) and done == end
            curve = {"iterations": [p["iterations"] for p in pts], "validation_map": [p["validation_map"] for p in pts],
                     "multiple": [p["iterations"] / base_its for p in pts], "lr": [p["lr"] for p in pts],
                     "elapsed_s": [p["elapsed_s"] for p in pts]}
            curves: dict[str, Any] = {"validation_map": curve}
            metrics: dict[str, float] = {"default_iterations": base_its, "iterations_planned": end,
                                         "iterations_done": done, "points_done": len(pts),
                                         "points_planned": len(eval_at), "finished": int(finished),
                                         "max_multiple": float(max_multiple)}
            if pts:
                train_s = pts[-1]["elapsed_s"] - pts[-1]["eval_s"]
                metrics.update(validation_map_final=pts[-1]["validation_map"], compute_time_s=pts[-1]["elapsed_s"],
                               eval_time_s=pts[-1]["eval_s"], seconds_per_iteration=train_s / max(done, 1))
            a = state["anchor"]
            if a is not None:
                curves["default_schedule"] = {"iterations": [a["iterations"]], "validation_map": [a["validation_map"]]}
                metrics["default_schedule_validation_map"] = a["validation_map"]
                metrics["default_schedule_compute_time_s"] = a["elapsed_s"]
                if pts:
                    metrics["gain_over_default"] = pts[-1]["validation_map"] - a["validation_map"]
            if state["loss"]:
                curves["train_loss"] = _subsample(state["loss"])
            verdict = default_verdict = None
            try:
                verdict = convergence_verdict(curve)
                metrics["last_doubling_gain"] = curve["validation_map"][-1] - [
                    v for i, v in zip(curve["iterations"], curve["validation_map"]) if i <= curve["iterations"][-1] / 2][-1]
            except ValueError:
                pass
            config = {"default_schedule": cfg.to_dict(), "long_schedule": long_cfg.to_dict(),
                      "max_multiple": max_multiple, "eval_at": eval_at, "checkpoint_every": int(checkpoint_every),
                      "n_val_per_class": n_val_per_class, "n_val_database_per_class": n_val_database_per_class,
                      "anchor": bool(anchor), "schedule_extension": schedule_doc}
            rec = make_record(paper=paper, method=mod.method_name(cfg.variant, cfg.backbone), dataset=cfg.dataset,
                              bits=int(cfg.bits), seed=int(cfg.seed), scale="convergence", config=config,
                              protocol=protocol, metrics=metrics, curves=curves,
                              wall_time_s=time.perf_counter() - t_start, device=device_s,
                              command=command or f"hashrepro.convergence.convergence_curve({paper!r}, ...)",
                              started=run_start)
            if a is not None:
                try:
                    default_verdict = default_schedule_verdict(rec)
                except ValueError:  # a partial record that cannot say yet
                    default_verdict = None
            rec["convergence"] = {"verdict": verdict, "default_schedule_verdict": default_verdict, "rule": VERDICT_RULE,
                                  "schedule": schedule_doc,
                                  "status": ("finished" if finished else f"partial: {done} of {end} iterations, "
                                             f"{len(pts)} of {len(eval_at)} points")}
            return rec

        def write() -> None:
            if record_path is not None:
                save_curve_record(build_record(), record_path)

        # 1. the anchor: the default schedule itself, same rows, same seed
        if anchor:
            anchor_file = ckdir / "anchor.json" if ckdir is not None else None
            if anchor_file is not None and anchor_file.is_file():
                state["anchor"] = json.loads(anchor_file.read_text())
            else:
                cb = _CurveCallback([base_its], recipe.validation_map, lambda it: base_lr_at(paper, cfg, it))
                recipe.train(cfg, cb, ckdir / "anchor.pt" if ckdir is not None else None, checkpoint_every, progress)
                state["anchor"] = dict(cb.points[-1])
                if anchor_file is not None:
                    from .atomic import atomic_write

                    atomic_write(anchor_file, json.dumps(state["anchor"]) + "\n")

        # 2. the long schedule, evaluated at eval_at
        long_cb = _CurveCallback(eval_at, recipe.validation_map, lambda it: base_lr_at(paper, long_cfg, it),
                                 on_point=write)
        state["loss"] = recipe.train(long_cfg, long_cb, ckdir / "long.pt" if ckdir is not None else None,
                                     checkpoint_every, progress)
        record = build_record()
        if record_path is not None:
            save_curve_record(record, record_path)
        return record
    finally:
        torch.set_num_threads(old_threads)

