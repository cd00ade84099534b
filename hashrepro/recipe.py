"""The recipe skeleton shared by the chapters: one Config base, one run set-up, one wrap-up.

Every chapter's recipe (``hashrepro.methods.<paper>``) has the same shape::

    @dataclass
    class Config(RecipeConfig):
        PRESETS = {"smoke": {...}, "default": {...}, "paper": {...}}   # presets per scale, as data
        dataset: str = "mnist5k"
        ...
        def validate(self): ...                                      # self.invalid(name, what is valid)

    def run(cfg: Config | None = None, *, command: str | None = None, **overrides) -> dict:
        with recipe_run(Config, cfg, overrides) as r:                 # start_run() first, seed, device, threads
            cfg = r.cfg
            ...                                                       # the paper's method, top to bottom
            return r.record(paper=..., method=..., protocol=..., metrics=..., curves=...)

``run(Config.for_scale("smoke", dataset="digits"))``, ``run(cfg, command="papermill ...")`` or
``run(scale="smoke", dataset="digits", bits=12)`` (keyword overrides build
``Config.for_scale(scale, **overrides)``; with a ``cfg`` they replace its fields).

Shared metrics (one definition each; a recipe passes its own window explicitly so that its committed
numbers stay as they were):

* ``final_loss`` = :func:`final_loss` (mean training loss of the last ``last`` iterations; DNNH and
  CNNH* use 50, DRSCH/DSRH and DDH/DH/DeepBit 20; the window is stated in the recipe).
* ``bit_mean`` = :func:`bit_mean`: the mean of all database bits in {0, 1} (ideal 0.5). DNNH and CNNH*
  records also keep it under the legacy name ``bit_balance``.
* ``bit_imbalance`` = :func:`bit_imbalance`: the mean over bits of |P(bit = 1) − 0.5| (ideal 0, worst
  0.5). DDH records also keep it under the legacy name ``bit_balance``, which therefore means the mean
  bit in DNNH's records but |p − 0.5| in DDH's: read the new names.

Companion records: a run may produce records of other methods beside its own (MCH: the base model
alone, LSH and ITQ on the same features). They travel in ``record["companions"]``
(:data:`COMPANIONS_KEY`; :func:`with_companions`, :func:`companions`) and are saved, each as its own
record file, by :func:`save_with_companions`; the saved main record has no ``companions`` key.

Loss curve: one format, ``curves["train_loss"] = {"iteration": [...], "loss": [...]}`` written by
:func:`loss_curve` (means over ≤ 200 equal windows, ``iteration`` = the window's last iteration);
:func:`read_loss_curve` also reads the older records (DRSCH's ``curves["loss"]``, every n-th value).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np
import torch

__all__ = ["RecipeConfig", "RecipeRun", "recipe_run", "resolve_config", "final_loss", "bit_mean", "bit_imbalance",
           "loss_curve", "read_loss_curve", "LOSS_CURVE_KEY", "SCALES", "COMPANIONS_KEY", "with_companions",
           "companions", "save_with_companions"]

SCALES = ("smoke", "default", "paper")
#: The key of the training-loss curve in ``record["curves"]``.
LOSS_CURVE_KEY = "train_loss"
_LEGACY_LOSS_KEYS = ("loss", "base_loss")  # DRSCH's and MCH's older records (every n-th value)


# ============================================================================ Config base
class RecipeConfig:
    """Mixin for a recipe's ``@dataclass`` Config: presets per scale, overrides, validation, ``to_dict``.

    Class attributes (data, not code):
        ``SCALES``: the valid scales; ``PRESETS``: ``{scale: {field: value}}`` applied before the
        overrides; ``DROP_NONE_OVERRIDES``: ignore overrides whose value is None (DRSCH's notebook
        passes None for "unset"); ``THREADS_FIELD``: the field holding the CPU thread count that
        :func:`recipe_run` sets (None: leave torch's setting).
    Hooks:
        :meth:`presets` (presets that depend on the overrides, e.g. the pretrained regime's
        schedule when ``backbone`` is not ``"scratch"``), :meth:`validate` (checks; call
        :meth:`invalid` for a one-line error; may normalise fields), :meth:`derived` (values
        computed from the fields that :meth:`to_dict` records too).
    """

    SCALES: ClassVar[tuple] = SCALES
    PRESETS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    DROP_NONE_OVERRIDES: ClassVar[bool] = False
    THREADS_FIELD: ClassVar[str | None] = "num_threads"

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> tuple:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def check_fields(cls, names) -> None:
        """One-line error for names that are not fields, listing the valid ones."""
        valid = cls.field_names()
        unknown = sorted(set(names) - set(valid))
        if unknown:
            raise ValueError(f"unknown Config field(s) {unknown}; valid: {', '.join(valid)}")

    @classmethod
    def check_scale(cls, scale) -> None:
        if scale not in cls.SCALES:
            raise ValueError(f"scale must be one of {cls.SCALES}, got {scale!r}")

    @classmethod
    def presets(cls, scale: str, overrides: Mapping[str, Any]) -> dict:
        """Field values of ``scale`` before the overrides: ``PRESETS[scale]``. Override to add
        presets that depend on the overrides (the backbone, the dataset)."""
        return dict(cls.PRESETS.get(scale, {}))

    @classmethod
    def for_scale(cls, scale: str = "default", **overrides: Any):
        """The presets of ``scale`` (:meth:`presets`), then ``overrides`` (any field)."""
        cls.check_scale(scale)
        if cls.DROP_NONE_OVERRIDES:
            overrides = {k: v for k, v in overrides.items() if v is not None}
        cls.check_fields(overrides)
        kw = cls.presets(scale, overrides)
        kw.update(overrides)
        kw["scale"] = scale
        cls.check_fields(kw)
        return cls(**kw)

    def replace(self, **overrides: Any):
        """A copy with ``overrides`` (validated; unknown fields are a one-line error)."""
        type(self).check_fields(overrides)
        return dataclasses.replace(self, **overrides)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every field (raise :meth:`invalid`); may normalise (tuples, ints). Hook."""
        self.check_scale(getattr(self, "scale", self.SCALES[0]))

    def invalid(self, name: str, valid: str):
        """Raise the one-line error ``Config.<name>=<value> is invalid; <valid>``."""
        raise ValueError(f"Config.{name}={getattr(self, name, None)!r} is invalid; {valid}")

    def check_choice(self, name: str, choices) -> None:
        if getattr(self, name) not in choices:
            self.invalid(name, f"{name} must be one of {tuple(choices)}")

    # ------------------------------------------------------------------ records
    def derived(self) -> dict:
        """Values computed from the fields that the record's config should show too. Hook."""
        return {}

    def to_dict(self) -> dict:
        """Every field (tuples as lists) and :meth:`derived`: the record's ``config``."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d.update(self.derived())
        return d


def resolve_config(config_cls, cfg=None, overrides: Mapping[str, Any] | None = None):
    """The config of a run: ``cfg`` with ``overrides`` replaced, or, without ``cfg``,
    ``config_cls.for_scale(overrides.pop("scale", "default"), **overrides)`` (the scale's presets,
    not the default ones, so ``run(scale="smoke")`` is a smoke run)."""
    overrides = dict(overrides or {})
    if cfg is None:
        return config_cls.for_scale(overrides.pop("scale", "default"), **overrides)
    if not isinstance(cfg, config_cls):
        raise ValueError(f"cfg must be a {config_cls.__module__}.{config_cls.__qualname__} "
                         f"(e.g. Config.for_scale('smoke')), got {type(cfg).__name__}")
    if overrides:
        if "scale" in overrides and overrides["scale"] != cfg.scale:
            raise ValueError(f"scale={overrides['scale']!r} with a given cfg of scale {cfg.scale!r}: build the "
                             "config with Config.for_scale(scale, ...) instead (the presets differ)")
        cfg = cfg.replace(**overrides)
    cfg.validate()
    return cfg


# ============================================================================ run set-up and wrap-up
@dataclasses.dataclass
class RecipeRun:
    """What :func:`recipe_run` set up: the config, the code it started with (``started``, a
    :class:`hashrepro.results.RunStart`), the device, the seeded torch generator, the start times."""

    cfg: Any
    started: Any
    device: torch.device
    generator: torch.Generator
    t0: float
    c0: float

    def elapsed(self) -> float:
        """Wall seconds since the set-up."""
        return time.perf_counter() - self.t0

    def cpu_time(self) -> float:
        """CPU seconds of this process (all threads) since the set-up."""
        return time.process_time() - self.c0

    def record(self, *, paper: str, method: str, protocol: Mapping, metrics: Mapping, curves: Mapping | None,
               config: Mapping | None = None, dataset: str | None = None, bits: int | None = None,
               seed: int | None = None, scale: str | None = None, command: str | None = None,
               device: torch.device | str | None = None, wall_time_s: float | None = None) -> dict:
        """The run record (:func:`hashrepro.results.make_record`): config (default ``cfg.to_dict()``),
        dataset / bits / seed / scale (default from ``cfg``), the wall time (default: since the
        set-up), the device, ``command`` and the start read by :func:`recipe_run`."""
        from .results import make_record
        from .train import describe_device

        cfg = self.cfg
        return make_record(
            paper=paper, method=method, dataset=cfg.dataset if dataset is None else dataset,
            bits=int(cfg.bits if bits is None else bits), seed=int(cfg.seed if seed is None else seed),
            scale=cfg.scale if scale is None else scale, config=cfg.to_dict() if config is None else config,
            protocol=protocol, metrics=metrics, curves=curves,
            wall_time_s=float(self.elapsed() if wall_time_s is None else wall_time_s),
            device=describe_device(self.device if device is None else device), command=command,
            started=self.started)


@contextlib.contextmanager
def recipe_run(config_cls, cfg=None, overrides: Mapping[str, Any] | None = None, *,
               device: str | None = None, seed: bool = True) -> Iterator[RecipeRun]:
    """Set up a run; restore torch's thread count when it ends (normally or by an exception).

    In order: :func:`hashrepro.results.start_run` (the commit and diff the run starts with: read
    first), the config (:func:`resolve_config`), the start times, the device (``device`` or
    ``cfg.device``; :func:`hashrepro.train.resolve_device`), the CPU threads (``cfg.<THREADS_FIELD>``
    when set and the device is the CPU), the seeds (:func:`hashrepro.train.seed_everything` with
    ``cfg.seed``, unless ``seed=False``).
    """
    from .results import start_run
    from .train import resolve_device, seed_everything

    started = start_run()
    cfg = resolve_config(config_cls, cfg, overrides)
    t0, c0 = time.perf_counter(), time.process_time()
    dev = resolve_device(getattr(cfg, "device", "auto") if device is None else device)
    old_threads = torch.get_num_threads()
    n_threads = getattr(cfg, config_cls.THREADS_FIELD, None) if config_cls.THREADS_FIELD else None
    try:
        if n_threads and dev.type == "cpu":
            torch.set_num_threads(int(n_threads))
        gen = seed_everything(cfg.seed) if seed else torch.Generator()
        yield RecipeRun(cfg=cfg, started=started, device=dev, generator=gen, t0=t0, c0=c0)
    finally:
        torch.set_num_threads(old_threads)


# ============================================================================ companion records
#: The key of a record's companion records (records of other methods from the same run).
COMPANIONS_KEY = "companions"


def with_companions(record: dict, companion_records) -> dict:
    """Attach ``companion_records`` (complete records, :func:`hashrepro.results.make_record`) to
    ``record`` under :data:`COMPANIONS_KEY`; returns ``record``."""
    comps = list(companion_records)
    for c in comps:
        if not isinstance(c, Mapping) or "method" not in c or "paper" not in c:
            raise ValueError(f"a companion must be a run record (hashrepro.results.make_record), got "
                             f"{type(c).__name__}")
    record[COMPANIONS_KEY] = comps
    return record


def companions(record: Mapping) -> list:
    """The companion records of ``record`` (``[]`` when it has none)."""
    return list(record.get(COMPANIONS_KEY) or [])


def save_with_companions(record: Mapping, results_dir, run_name: str | None = None) -> list:
    """Save ``record`` and each of its companions (:func:`companions`) as its own record file;
    return the paths, the main record's first.

    The main record goes to ``results_dir/<paper>/<run_name>.json`` without the companions key,
    each companion to its default name (:func:`hashrepro.results.run_name` of its method, dataset,
    bits, seed and scale), all through :func:`hashrepro.results.save_run` (atomic writes,
    :func:`hashrepro.atomic.atomic_write`). ``record`` itself is left as it is.
    """
    from .results import save_run

    if not isinstance(record, Mapping):
        raise ValueError(f"record must be a dict (from make_record), got {type(record).__name__}")
    main = {k: v for k, v in record.items() if k != COMPANIONS_KEY}
    paths = [save_run(main, results_dir, run_name)]
    paths += [save_run(c, results_dir) for c in companions(record)]
    return paths


# ============================================================================ shared metrics
def final_loss(losses, last: int) -> float:
    """Mean training loss of the last ``last`` iterations (NaN without any). Each recipe states its
    window: DNNH / CNNH* 50, DRSCH / DSRH / DDH / DH / DeepBit 20."""
    if last < 1:
        raise ValueError(f"last must be >= 1 (iterations averaged), got {last!r}")
    losses = list(losses) if losses is not None else []
    return float(np.mean(losses[-last:])) if losses else float("nan")


def bit_mean(codes01) -> float:
    """Mean of all bits of ``codes01`` (N, q) in {0, 1} (ideal 0.5; NaN when empty)."""
    codes01 = np.asarray(codes01)
    return float(codes01.mean()) if codes01.size else float("nan")


def bit_imbalance(codes01) -> float:
    """Mean over the q bits of |P(bit = 1) − 0.5| for codes (N, q) in {0, 1} (ideal 0, worst 0.5)."""
    codes01 = np.asarray(codes01)
    return float(np.abs(codes01.mean(0) - 0.5).mean())


# ============================================================================ the loss curve
def loss_curve(losses, n_points: int = 200) -> dict:
    """The training-loss curve of a record: the mean of ``losses`` over ≤ ``n_points`` equal
    windows, ``{"iteration": [last iteration of each window (1-based)], "loss": [mean]}``."""
    if losses is None or len(losses) == 0:
        return {"iteration": [], "loss": []}
    v = np.asarray(losses, dtype=np.float64)
    w = max(1, int(math.ceil(len(v) / n_points)))
    n = len(v) // w * w
    its, means = [], []
    for i in range(0, n, w):
        its.append(i + w)
        means.append(float(v[i:i + w].mean()))
    if n < len(v):
        its.append(len(v))
        means.append(float(v[n:].mean()))
    return {"iteration": its, "loss": means}


def read_loss_curve(record_or_curves: Mapping) -> dict | None:
    """``{"iteration", "loss"}`` of a record (or its ``curves``): ``curves["train_loss"]``, or the
    legacy ``curves["loss"]`` of older DRSCH records or ``curves["base_loss"]`` of older MCH records
    (every n-th value, iterations from 0). None
    when the record has no loss curve."""
    curves = record_or_curves.get("curves", record_or_curves) or {}
    for key in (LOSS_CURVE_KEY, *_LEGACY_LOSS_KEYS):
        c = curves.get(key)
        if isinstance(c, Mapping) and "loss" in c and "iteration" in c:
            return {"iteration": list(c["iteration"]), "loss": list(c["loss"])}
    return None
