"""MCH's data: the data set and split of a run (§5.1) and, in the pretrained regime, the crops it codes.

* :func:`parse_dataset`, :func:`load_data` -- ``Config.dataset`` -> (dataset, split) with MCH's
  ``multilabel_balanced`` protocol (training drawn from the database);
* :func:`grid_sample` -- Table 3's sample of database items;
* :func:`crop_plan`, :func:`prepare_features` -- which crops the pretrained regime passes through
  the frozen ImageNet backbone and their cached features (a :class:`~hashrepro.data.crops.CropBank`).

Every function takes the run's :class:`hashrepro.methods.mch.Config` (``cfg``).
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..data.crops import CropBank, crop_boxes

__all__ = ["PAPER_DATASETS", "parse_dataset", "load_data", "relevant_fraction", "grid_sample", "crop_plan",
           "prepare_features"]

#: The paper's data sets (§5.1): loaders and protocols exist in hashrepro.data, not run offline.
PAPER_DATASETS = ("nuswide21", "coco", "mirflickr25k")


def parse_dataset(name: str) -> dict:
    """``"mosaic-cifar10"`` -> ``{"kind": "mosaic", "base": "cifar10"}``; paper sets -> kind "paper".

    Raises ValueError naming the valid forms.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset must be a non-empty string, got {name!r}")
    if name.startswith("mosaic-") or name.startswith("mosaic:"):
        base = name[len("mosaic-"):]
        if not base:
            raise ValueError("mosaic dataset needs a base set, e.g. 'mosaic-mnist5k' or 'mosaic-cifar10'")
        return {"kind": "mosaic", "base": base}
    if name == "mosaic":
        return {"kind": "mosaic", "base": "mnist5k"}
    if name in PAPER_DATASETS:
        return {"kind": "paper", "name": name}
    raise ValueError(f"dataset must be 'mosaic-<base>' (e.g. mosaic-mnist5k, mosaic-cifar10) or one of "
                     f"the paper's sets {PAPER_DATASETS}, got {name!r}")


def load_data(cfg):
    """Load the data set and the MCH split (§5.1). Returns ``(dataset, split)``.

    The last data set loaded is kept in memory (the notebook draws Fig. 8 from it after ``run``).

    Mosaic: ``hashrepro.data.load("mosaic", base=<base>, grid, n=n_images, seed)``. Split:
    ``multilabel_balanced`` with ``n_query_per_class`` / ``n_train_per_class``, training drawn
    from the database (``database_includes_train=True``, as the paper). The paper's sets use
    their own protocol (NUS-WIDE: 100 / 500 per class; COCO, MIRFLICKR: 5,000 / 10,000 uniform).
    """
    from .. import data as hdata

    key = (cfg.dataset, cfg.grid, cfg.n_images, cfg.seed, cfg.n_query_per_class, cfg.n_train_per_class,
           os.environ.get("HASHREPRO_DATA"))
    if _DATA_MEMO.get("key") == key:
        return _DATA_MEMO["value"]
    spec = parse_dataset(cfg.dataset)
    if spec["kind"] == "mosaic":
        ds = hdata.load("mosaic", base=spec["base"], grid=cfg.grid, n=cfg.n_images, seed=cfg.seed)
        kw = dict(n_query_per_class=cfg.n_query_per_class, n_train_per_class=cfg.n_train_per_class)
    else:
        ds = hdata.load(spec["name"])
        kw = ({} if spec["name"] != "nuswide21" else
              dict(n_query_per_class=cfg.n_query_per_class, n_train_per_class=cfg.n_train_per_class))
    sp = hdata.split(ds, "multilabel_balanced", seed=cfg.seed, database_includes_train=True, **kw)
    _DATA_MEMO.clear()
    _DATA_MEMO.update(key=key, value=(ds, sp))
    return ds, sp


_DATA_MEMO: dict = {}  # the last data set loaded (the notebook draws Fig. 8 from it after run())


def relevant_fraction(cfg, ds=None, sp=None) -> float:
    """The mean over queries of the fraction of database items relevant to the query (sharing ≥ 1
    label, §5.1) on ``cfg``'s split: about the mAP of a random ranking, the floor every mAP of the
    chapter should be read against (multi-label mosaics have a high one). ``ds``, ``sp``: the data and
    split of ``cfg`` when already loaded (else :func:`load_data`)."""
    if ds is None or sp is None:
        ds, sp = load_data(cfg)
    Y = ds.label_matrix().astype(np.float32)
    q, db = np.asarray(sp.query), np.asarray(sp.database)
    return float(((Y[q] @ Y[db].T) > 0).mean())


def grid_sample(cfg, n_db: int):
    """Table 3's sample of database positions and the generator that drew it (the run keeps drawing
    Fig. 8's queries from the same generator). Returns (sorted positions (m,), rng)."""
    rng = np.random.default_rng(cfg.seed + 5)
    sub = np.sort(rng.choice(n_db, min(cfg.grid_items, n_db), replace=False))
    return sub, rng


def crop_plan(cfg, ds, sp) -> list:
    """The crops the pretrained regime extracts, in extraction order: a list of ``(sigma, rows)``
    (sigma None = the whole images of every dataset row; otherwise the 5 boxes of ratio σ of the
    sorted dataset ``rows``). A ratio's rows are the union of what needs it: σ = ``sigma`` and
    ``sens_sigmas`` on the database (and training) rows (§4.3, Fig. 9), the agent's
    ``crop_ratios`` on the training rows (Algorithm 2), the other σ of ``sigma_grid`` on Table 3's
    sample of ``grid_items`` database items. Crops: ``sum(len(rows) * (1 if sigma is None else 5))``."""
    db, tr = np.asarray(sp.database, dtype=np.int64), np.asarray(sp.train, dtype=np.int64)
    sub, _ = grid_sample(cfg, len(db))
    need: dict = {}

    def add(sigma, rows):
        sigma = float(sigma)
        if sigma != 1.0:  # σ = 1 is the whole image
            need[sigma] = np.union1d(need.get(sigma, np.zeros(0, np.int64)), rows).astype(np.int64)

    for sigma in (cfg.sigma, *cfg.sens_sigmas):
        add(sigma, np.union1d(db, tr))
    for sigma in cfg.agent_ratios():
        add(sigma, tr)
    for sigma in cfg.sigma_grid:
        add(sigma, db[sub])
    first = [float(cfg.sigma)] + [float(r) for r in cfg.agent_ratios()]
    order = sorted(need, key=lambda v: (v not in first, first.index(v) if v in first else 0, v))
    return [(None, np.arange(len(ds.images), dtype=np.int64))] + [(sigma, need[sigma]) for sigma in order]


def prepare_features(cfg, ds=None, sp=None, progress: bool | None = None, upto: int | None = None,
                     whole_only: bool = False):
    """Extract (or read) every cached crop feature the pretrained-regime run of ``cfg`` needs.

    Each group of :func:`crop_plan` is one resumable cache file
    (:func:`hashrepro.crop_features.cached_crop_features`); run this alone in the background to
    fill the cache (``nohup python -c "from hashrepro.methods import mch;
    mch.prepare_features(mch.Config.for_scale('default', dataset='mosaic-cifar10',
    backbone='efficientnet_lite0', seed=0))"``), then the runs read it.

    ``upto``: the flattened feature maps before block ``upto`` instead of the pooled features (the
    input of the fine-tuned blocks, ``cfg.finetune``; :func:`hashrepro.crop_features.crop_map_shape`),
    the same crops, one more cache file per group.

    ``whole_only``: only the first group (the whole images of every row, the same cache file), no
    crops: what the base model alone needs (:mod:`hashrepro.mch_select`).

    Returns (bank: :class:`CropBank`, info: dict with ``extraction_s`` (seconds spent extracting in
    this call), ``n_crops`` (crops in the plan), ``cached`` (nothing had to be extracted)).
    """
    from ..crop_features import cached_crop_features, crop_cache_key
    from ..features import features_cache_dir

    if cfg.backbone == "scratch":
        raise ValueError("prepare_features is for the pretrained regime (backbone='efficientnet_lite0')")
    if ds is None or sp is None:
        ds, sp = load_data(cfg)
    h, w = ds.images.shape[1], ds.images.shape[2]
    prog = cfg.progress if progress is None else progress
    kw = dict(backbone=cfg.backbone, pretrained="imagenet", input_size=cfg.backbone_size, cache=cfg.cache,
              progress=prog if prog is not None else True, device="cpu" if str(cfg.device) == "cpu" else "auto",
              upto=upto)
    t_extract, n_crops, cached = 0.0, 0, True
    whole, groups = None, {}
    plan = crop_plan(cfg, ds, sp)
    for sigma, rows in (plan[:1] if whole_only else plan):
        boxes = (np.array([[0.0, 0.0, float(w), float(h)]], dtype=np.float32) if sigma is None
                 else crop_boxes(h, w, sigma))
        n_crops += len(rows) * len(boxes)
        hit = False
        if cfg.cache:
            key = crop_cache_key(ds, boxes, rows, cfg.backbone, "imagenet", cfg.backbone_size, upto=upto)
            hit = (features_cache_dir() / f"{key['stem']}.npy").is_file()
        t0 = time.perf_counter()
        feats = cached_crop_features(ds, boxes, rows, **kw)
        if not hit:
            cached = False
            t_extract += time.perf_counter() - t0
        if sigma is None:
            whole = feats[:, 0]
        else:
            groups[sigma] = (rows, feats)
    return CropBank(whole, groups), {"extraction_s": float(t_extract), "n_crops": int(n_crops), "cached": cached}
