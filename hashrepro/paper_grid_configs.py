"""The Table-2 grid of the DNNH and DRSCH chapters: its configurations and their recipe configs.

:func:`paper_grid` lists the configurations (:class:`GridConfig`: paper, variant, bits, seed,
regime, dataset, scale) of both chapters' Table 2 — DNNH's ``dem``, ``fc``, ``two-subnets`` and the
comparison method CNNH* (``cnnh-star``) at 12, 24, 32 and 48 bits, DRSCH's ``dsch``, ``drsch`` and
the comparison method DSRH (``dsrh``) at the same lengths and ``bs-drsch`` trained at 64 bits — per
regime and seed; :func:`recipe_config` turns one into the recipe's ``Config``, with a schedule
shortened to a number of iterations (:func:`shortened_iterations`) when asked.

Which recipe runs a configuration: the chapter's own (:mod:`hashrepro.methods.dnnh`,
:mod:`hashrepro.methods.drsch`, whose ``variant`` it is — DSRH is ``variant="dsrh"`` of the DRSCH
recipe), except for the variants of :data:`METHOD_VARIANTS`: ``cnnh-star`` under paper ``"dnnh"`` is
CNNH* (Lai et al. §4.1), run by :mod:`hashrepro.methods.cnnh` with ``method="cnnh-star"``; its record
is a DNNH record (paper ``"dnnh"``, under ``results/dnnh/``) named as ``hashrepro sweep dnnh -p method
cnnh-star`` names it (``..._method-cnnh-star``).

What running the grid costs is :mod:`hashrepro.paper_grid_cost`; running it (and the
``hashrepro paper-grid`` command) is :mod:`hashrepro.paper_grid`, which re-exports these names.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

__all__ = ["GridConfig", "PAPERS", "REGIMES", "SEEDS", "TABLE2", "METHOD_VARIANTS", "paper_grid", "recipe_config",
           "paper_iterations", "shortened_iterations"]

PAPERS = ("dnnh", "drsch")
#: "scratch": the papers' networks (``scale="paper"``: Table 1's widths, the paper schedules);
#: "efficientnet_lite0": the frozen ImageNet backbone's pooled features with each paper's head.
REGIMES = ("scratch", "efficientnet_lite0")
SEEDS = (0, 1, 2)
#: Table 2 of each chapter: paper -> ((variant, (bits, ...)), ...); the comparison methods we
#: implemented (CNNH* in DNNH's, DSRH in DRSCH's) come last.
TABLE2: dict[str, tuple] = {
    "dnnh": (("dem", (12, 24, 32, 48)), ("fc", (12, 24, 32, 48)), ("two-subnets", (12, 24, 32, 48)),
             ("cnnh-star", (12, 24, 32, 48))),
    "drsch": (("dsch", (12, 24, 32, 48)), ("drsch", (12, 24, 32, 48)), ("bs-drsch", (64,)),
              ("dsrh", (12, 24, 32, 48))),
}
#: Variants run by another recipe than their chapter's: variant -> (module of :mod:`hashrepro.methods`,
#: its ``method`` parameter). CNNH* is a row of DNNH's Table 2 with its own recipe.
METHOD_VARIANTS: dict[str, tuple[str, str]] = {"cnnh-star": ("cnnh", "cnnh-star")}


@dataclass(frozen=True, order=True)
class GridConfig:
    """One configuration of the grid: paper, variant, bits, seed, backbone (regime), dataset, scale."""

    paper: str
    variant: str
    bits: int
    seed: int
    backbone: str = "scratch"
    dataset: str = "cifar10"
    scale: str = "paper"

    @property
    def cost_key(self) -> tuple:
        """What the cost of an iteration depends on (the seed does not)."""
        return (self.paper, self.variant, self.bits, self.backbone, self.scale)

    @property
    def measure_key(self) -> tuple:
        """The configurations that share one measurement: the code length changes only the last
        layer (a few % of an iteration), so each (paper, variant, regime) is measured once, at the
        longest code of the grid (:data:`hashrepro.paper_grid_cost.MEASURE_BITS`: the conservative
        choice)."""
        return (self.paper, self.variant, self.backbone, self.scale)

    @classmethod
    def from_record(cls, record: Mapping) -> "GridConfig":
        """The configuration a run record of the grid was run from: its ``paper``, ``bits``, ``seed``,
        ``dataset``, ``scale`` and, from its ``config``, the backbone (default "scratch") and the
        variant — the recipe's ``method`` for the variants of :data:`METHOD_VARIANTS` (a CNNH* record
        has ``config["method"] == "cnnh-star"`` and no ``variant``), else ``config["variant"]``
        (default "dem")."""
        c = record.get("config") or {}
        by_method = {m: v for v, (_, m) in METHOD_VARIANTS.items()}
        variant = by_method.get(c.get("method")) or c.get("variant") or "dem"
        return cls(str(record.get("paper")), variant, int(record["bits"]), int(record["seed"]),
                   c.get("backbone") or "scratch", str(record.get("dataset")), str(record.get("scale")))

    def label(self) -> str:
        reg = "" if self.backbone == "scratch" else f" [{self.backbone}]"
        return f"{self.paper} {self.variant} {self.bits}b{reg}"

    def run_name(self, iterations: int | None = None) -> str:
        """File stem of the record, as ``hashrepro sweep`` names the same run
        (:func:`hashrepro.sweep.run_name_for`), with ``iterations-<n>`` for a shortened schedule."""
        from .sweep import run_name_for

        params: dict = {"dataset": self.dataset, "bits": self.bits, "seed": self.seed, "scale": self.scale}
        if self.variant in METHOD_VARIANTS:  # the notebook's ``method`` parameter (variant left at its default)
            params["method"] = METHOD_VARIANTS[self.variant][1]
        elif self.paper == "drsch" or self.variant != "dem":
            params["variant"] = self.variant
        if self.backbone != "scratch":
            params["backbone"] = self.backbone
        if iterations is not None:
            params["iterations"] = int(iterations)
        return run_name_for(self.paper, params)


def _check_subset(name: str, given, valid) -> tuple:
    given = tuple(valid if given is None else given)
    bad = [g for g in given if g not in valid]
    if bad or not given:
        raise ValueError(f"{name} {list(bad) or '(empty)'} not in the paper grid; valid: {list(valid)}")
    return given


def paper_grid(papers: Sequence[str] | None = None, regimes: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None, dataset: str = "cifar10", scale: str = "paper",
               variants: Sequence[str] | None = None, bits: Sequence[int] | None = None) -> list[GridConfig]:
    """The Table-2 configurations (see the module docstring), optionally restricted.

    ``papers``, ``regimes``, ``variants`` and ``bits`` may only select from the grid (a value outside
    it is a ValueError naming the valid ones); ``seeds`` are any non-negative ints (default 0, 1, 2).
    Order: paper, regime, variant, bits, seed.
    """
    papers = _check_subset("papers", papers, PAPERS)
    regimes = _check_subset("regimes", regimes, REGIMES)
    all_variants = tuple(v for p in papers for v, _ in TABLE2[p])
    variants = _check_subset("variants", variants, all_variants)
    all_bits = tuple(sorted({b for p in papers for _, bs in TABLE2[p] for b in bs}))
    bits = _check_subset("bits", bits, all_bits)
    seeds = tuple(SEEDS if seeds is None else seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
    if scale not in ("smoke", "default", "paper"):
        raise ValueError(f"scale must be one of ('smoke', 'default', 'paper'), got {scale!r}")
    out = []
    for paper in papers:
        for regime in regimes:
            for variant, bit_list in TABLE2[paper]:
                if variant not in variants:
                    continue
                for b in bit_list:
                    if b not in bits:
                        continue
                    for s in seeds:
                        out.append(GridConfig(paper, variant, b, int(s), regime, dataset, scale))
    if not out:
        raise ValueError("the selection leaves no configuration of the paper grid (check --variants / --bits)")
    return out



# ---------------------------------------------------------------- recipe configs and schedules
def _module(paper: str, variant: str | None = None):
    """The recipe module running ``variant`` of ``paper`` (the chapter's, or :data:`METHOD_VARIANTS`')."""
    import importlib

    if variant in METHOD_VARIANTS:
        return importlib.import_module(f".methods.{METHOD_VARIANTS[variant][0]}", __package__)
    from .methods import dnnh, drsch

    return {"dnnh": dnnh, "drsch": drsch}[paper]


def recipe_config(gc: GridConfig, device: str = "auto", iterations: int | None = None):
    """The recipe's ``Config`` of ``gc`` (``for_scale(gc.scale, ...)``) on ``device``; with
    ``iterations`` a schedule shortened to that many iterations (DRSCH's absolute step schedules —
    lr step, slope and margin steps — scaled by the same factor, DSRH's included; DNNH's and CNNH*'s
    are fractions already). CNNH* (``cnnh-star``) gets :class:`hashrepro.methods.cnnh.Config` with
    ``method="cnnh-star"``, as the DNNH notebook builds it for ``-p method cnnh-star``."""
    mod = _module(gc.paper, gc.variant)
    kw = dict(dataset=gc.dataset, bits=gc.bits, seed=gc.seed, device=device)
    if gc.variant in METHOD_VARIANTS:
        kw["method"] = METHOD_VARIANTS[gc.variant][1]
    else:
        kw["variant"] = gc.variant
    if gc.backbone != "scratch":
        kw["backbone"] = gc.backbone
    if gc.paper == "dnnh":
        kw["progress"] = False
    cfg = mod.Config.for_scale(gc.scale, **kw)
    if iterations is None or iterations == cfg.iterations:
        return cfg
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if gc.paper == "drsch":
        f = iterations / cfg.iterations
        steps = {k: max(1, int(round(getattr(cfg, k) * f))) for k in ("lr_step", "slope_every", "margin_every")}
        return dataclasses.replace(cfg, iterations=int(iterations), **steps)
    return dataclasses.replace(cfg, iterations=int(iterations))


def paper_iterations(gc: GridConfig) -> int:
    """Iterations of ``gc``'s schedule at its scale (at "paper": 100,000 for DNNH and CNNH*, 800,000 for
    DRSCH and DSRH)."""
    return int(recipe_config(gc, device="cpu").iterations)


def shortened_iterations(full: int, fraction: float) -> int:
    """Iterations of a schedule of ``full`` iterations shortened by ``fraction`` (at least 1)."""
    return max(1, int(math.floor(full * fraction)))
