"""MCH: the base hashing model's training hyperparameters chosen on a validation split.

What is chosen. MCH (Li, Jiang, Li) learns in two steps: the base hashing model X (§4.1, "Base
Hashing Model Learning Step"; Table 1: KSH, HashNet, ADSH, DCH or MMHH on the training images;
Algorithm 2, first line) and then the agent that decides which crop codes to keep (§4.2), which
takes X as given. Whether the runs with the ImageNet backbone's last block fine-tuned
(``finetune="last_block"``) beat the frozen and scratch ones hinges on how X is trained
(``finetune_lr_mult``, ``base_iters``, ``base_lr``, ...), so a selection trains **X alone**: no
agent, no crops, no out-of-sample extension. (The paper sets X's hyperparameters "by following
the suggestions of the corresponding authors" and chooses its own σ, ξ "based on results of a
validation strategy", §5.2.2.)

Protocol (:class:`MCHValidation`, which :func:`hashrepro.validation_select.select_on_validation`
uses for ``paper="mch"``; it writes the record, ``hashrepro select mch ...``):

* the recipe's own data and split (:func:`hashrepro.methods.mch_data.load_data`: mosaics seeded by
  ``cfg.seed``; ``multilabel_balanced`` queries and training images; the test database
  *includes* the training images, ``database_includes_train=True``, as in the paper);
* the validation split (:func:`hashrepro.convergence.validation_split`, multi-label: per class in
  turn, as the split draws its queries) holds ``n_val_per_class`` (default
  :data:`N_VAL_PER_CLASS`) training images per class out as validation queries; X trains on the
  remaining "fit" rows, which are also the validation database, mirroring the test database that
  includes the training images (with ``n_val_database_per_class``, that many further held-out
  training images per class are the validation database instead: nothing in it was trained on).
  ADSH stores the fit rows in the validation database with its learned codes V, as the recipe
  stores its training images;
* every candidate starts from the seeds :func:`hashrepro.methods.mch.run` uses (feature
  standardisation / scratch backbone ``seed + 1``, X's initialisation ``seed + 2``, its batches
  ``seed + 3``), is trained by :func:`hashrepro.methods.mch_train.train_base` on the fit rows only,
  and is scored by the validation mAP of Hamming ranking of one whole-image code per image
  (:func:`hashrepro.metrics.evaluate`: full validation database, ties by index, relevant = share
  ≥ 1 label), the number the base model's own record reports as ``map``;
* regimes: ``backbone="efficientnet_lite0"`` reads the cached whole-image features (pooled, or the
  maps entering the last block with ``finetune="last_block"``; the runs' cache files, whole
  images only) and fits the feature standardisation on the fit rows; ``backbone="scratch"``
  pretrains the small CNN on the fit rows (never the runs' cached backbone, which saw every
  training image), once per distinct pretraining setting.

The query set and the test database's other images are never used.

Grid fields: :data:`TUNABLE` (X's training) only. Every other Config field is refused with a
one-line error (:func:`fixed_fields`): they define the data and split (``dataset``, ``n_images``,
``grid``, ``n_query_per_class``, ``n_train_per_class``, ``seed``), the encoding (``bits``,
``base``, ``backbone``, ``backbone_input_size``, ``input_size``), the agent and the extension,
which are not trained here (``sigma``, ``xi``, ``crop_*``, ``agent_*``, ``policy_hidden``,
``reward_*``), or the evaluation and the run (``ks``, ``sigma_grid``, ``xi_grid``, ``grid_items``,
``sens_*``, ``baselines``, ``oracle``, ``n_visual``, ``cache``, ``progress``, ``device``,
``scale``). KSH is a kernel map on fixed features: its grids are over ``base_iters``,
``ksh_anchors``, ``ksh_samples`` (``finetune="last_block"`` with KSH is a Config error).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

__all__ = ["TUNABLE", "N_VAL_PER_CLASS", "fixed_fields", "MCHValidation"]

#: The Config fields of the base model X's training a grid may vary (all others are refused).
TUNABLE = ("base_iters", "base_lr", "batch_size", "hash_lr_mult", "finetune", "finetune_lr_mult", "base_weight_decay",
           "head_hidden",
           "mmhh_gamma", "ksh_anchors", "ksh_samples", "adsh_outer", "adsh_omega",
           # the scratch regime's small CNN, pretrained on the fit rows (the stand-in for ImageNet)
           "widths", "feat_dim", "pretrain_iters", "pretrain_lr", "pretrain_tiles")
#: Default validation queries per class: the pretrained regime's default split trains on 80 images
#: per class (800 mosaics on CIFAR-10), of which 10 per class (about 100) are held out.
N_VAL_PER_CLASS = 10
REFUSED_WHY = ("is not a training hyperparameter of MCH's base model X (it defines the data, split, encoding, "
               "the agent or the evaluation)")
#: Fields a scratch backbone's pretraining depends on (one pretraining per distinct value).
_PRETRAIN_KEY = ("widths", "feat_dim", "pretrain_iters", "pretrain_lr", "pretrain_tiles", "batch_size")
#: Training-loss window of ``final_loss`` (as DNNH's).
LOSS_WINDOW = 50


def fixed_fields(cfg) -> tuple[str, ...]:
    """The MCH Config fields a grid may not vary: every field but :data:`TUNABLE`."""
    return tuple(f.name for f in dataclasses.fields(cfg) if f.name not in TUNABLE)


class MCHValidation:
    """MCH's data on the validation split; :meth:`score` trains X on the fit rows and returns its
    validation mAP (module docstring). Attributes: ``val`` (:func:`~hashrepro.convergence.validation_split`),
    ``train_idx``, ``query``, ``database`` (the recipe's split), ``device``, ``protocol_extra``."""

    def __init__(self, cfg, n_val_per_class: int, n_val_database_per_class: int | None,
                 progress: bool | None = None):
        from .convergence import validation_split
        from .crop_features import crop_resize
        from .data.crops import images_tensor
        from .methods.mch_data import load_data
        from .train import resolve_device

        self.cfg, self.progress = cfg, progress
        self.device = resolve_device(cfg.device)
        ds, sp = load_data(cfg)
        self.ds, self.sp = ds, sp
        self.Y = ds.label_matrix()
        self.train_idx, self.query, self.database = (np.asarray(a, dtype=np.int64)
                                                     for a in (sp.train, sp.query, sp.database))
        self.val = validation_split(self.Y, self.train_idx, n_val_per_class, cfg.seed, n_val_database_per_class)
        self.held_out_db = n_val_database_per_class is not None
        self._banks: dict = {}
        self._pretrained: dict = {}
        fit = self.val["fit"]
        self.protocol_extra: dict = {
            "queries": "never used: not for training, not for the choice (nor the test database's images "
                       "outside the training split; MCH's test database includes the training images)",
            "trained": "the base hashing model X alone (MCH §4.1, Table 1; Algorithm 2, first line): no agent, "
                       "no crops, no out-of-sample extension",
            "codes": "one code per image (whole image), queries and validation database",
            "relevance": "share >= 1 label",
            "split": "multilabel_balanced (per class in turn, among the training images holding it)",
            "test_protocol": "database_includes_train=True (MCH §5.1): the default validation database "
                             "(the fit rows) mirrors it",
            "n_database_recipe_unused": int(len(np.setdiff1d(self.database, self.train_idx))),
            "seeds": "as hashrepro.methods.mch.run: standardisation / scratch backbone seed+1, X's "
                     "initialisation seed+2, its batches seed+3"}
        if cfg.base == "adsh" and not self.held_out_db:
            self.protocol_extra["adsh_database"] = "fit rows stored with ADSH's learned codes V (as the recipe)"
        if cfg.backbone == "scratch":
            self.rows = images_tensor(ds.images)  # what the hasher codes: images
            self.x_fit = crop_resize(self.rows[fit], None, cfg.input_size)
            self.protocol_extra["backbone_pretraining"] = ("small CNN pretrained on the fit rows only "
                                                           "(not the runs' cached backbone)")
        else:
            from .finetune import FINETUNE_STARTS
            from .methods.mch_eval import backbone_protocol

            self.rows = torch.arange(len(ds.images))  # what the hasher codes: dataset rows
            meta = backbone_protocol(cfg, self._bank(None), len(ds.images))
            meta.pop("agent_crops", None)
            meta["backbone"] = (f"{cfg.backbone} (ImageNet; whole-image features cached; with finetune=last_block "
                                "or last_4_blocks those blocks train on the cached maps)")
            meta["standardisation"] = "fitted on the fit rows"
            meta["finetune"] = ("a candidate's finetune: 'last_block' / 'last_4_blocks' trains blocks "
                                f"{FINETUNE_STARTS['last_block']}.. / {FINETUNE_STARTS['last_4_blocks']}.. + head conv "
                                "with X at base_lr x finetune_lr_mult on cached whole-image maps (batch norm "
                                "statistics frozen), then codes the re-encoded features; 'none': X is a head on "
                                "the cached pooled features")
            self.protocol_extra.update(meta)

    def _bank(self, upto):
        """Whole-image features of every row (``upto`` None: pooled; else the maps entering block ``upto``)."""
        from .methods.mch_data import prepare_features

        if upto not in self._banks:
            self._banks[upto] = prepare_features(self.cfg, self.ds, self.sp, progress=self.progress, upto=upto,
                                                 whole_only=True)[0]
        return self._banks[upto]

    def _backbone_state(self, cfg, progress):
        fit = self.val["fit"]
        if cfg.backbone != "scratch":
            from .models.mch_heads import FeatureBackbone

            torch.manual_seed(cfg.seed + 1)
            return FeatureBackbone.fit(torch.from_numpy(self._bank(None).whole(fit)), cfg.head_hidden).state_dict()
        key = tuple(repr(getattr(cfg, k)) for k in _PRETRAIN_KEY)
        if key not in self._pretrained:
            from .data.crops import mosaic_tiles
            from .methods.mch_train import pretrain_backbone

            xt, yt = mosaic_tiles(self.ds, fit, cfg.input_size) if cfg.pretrain_tiles else (None, None)
            # cache off: the runs' cache key does not name the rows, and their backbone saw every training image
            self._pretrained[key] = pretrain_backbone(cfg.replace(cache=False, progress=progress), self.x_fit,
                                                      self.Y[fit], self.device,
                                                      torch.Generator().manual_seed(cfg.seed + 1), xt, yt)[0]
        return self._pretrained[key]

    def score(self, cfg, progress: bool | None = None) -> dict:
        """Train X of ``cfg`` on the fit rows; its validation mAP and training numbers."""
        from .codes import binarize
        from .diagnostics import diagnose
        from .finetune import finetune_start
        from .methods.mch_train import train_base
        from .metrics import evaluate
        from .recipe import final_loss

        cfg = cfg.replace(progress=progress)
        fit, vq, vdb = self.val["fit"], self.val["val_query"], self.val["val_database"]
        state = self._backbone_state(cfg, progress)
        if cfg.backbone == "scratch":
            x, bank = self.x_fit, None
        else:
            bank = self._bank(finetune_start(cfg.finetune))
            x = torch.from_numpy(bank.whole(fit))
        torch.manual_seed(cfg.seed + 2)
        hasher, info = train_base(cfg, state, x, self.Y[fit], self.device,
                                  torch.Generator().manual_seed(cfg.seed + 3), bank)
        t0 = time.perf_counter()
        q01 = binarize(hasher.embed(self.rows[vq])[1])
        if cfg.base == "adsh" and not self.held_out_db:  # the fit rows are the database: ADSH's V
            db01 = (info["V"] > 0).numpy().astype(np.uint8)
        else:
            db01 = binarize(hasher.embed(self.rows[vdb])[1])
        ev = evaluate(q01, db01, self.Y[vq], self.Y[vdb], topk=None, radius=2, ks=(min(100, len(vdb)),))
        loss = [float(v) for v in info["loss"]]
        out = {"validation_map": float(ev["map"]), "final_loss": final_loss(loss, LOSS_WINDOW),
               "train_time_s": float(info["wall_time_s"]), "eval_time_s": time.perf_counter() - t0,
               "flags": diagnose(db01, loss, labels=self.Y[vdb], what="validation database codes")}
        if "reencode_s" in info:
            out["reencode_time_s"] = float(info["reencode_s"])
        return out
