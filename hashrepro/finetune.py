"""Fine-tuning the ImageNet backbone's last block on cached feature maps (the CPU-sized version of the
papers' whole-network fine-tuning), shared by the MCH and DRSCH recipes.

With the backbone frozen, a recipe trains a head on cached *pooled* features. With
``finetune="last_block"`` it caches instead the feature maps that *enter* EfficientNet-Lite0's last
MBConv block (block :data:`FINETUNE_START` of 16; :func:`hashrepro.crop_features.crop_map_shape`:
192 × 4 × 4 at 112 px, 192 × 5 × 5 at 160 px) and trains that block and the head conv
(:class:`hashrepro.models.mch_heads.TunedTail`, :func:`imagenet_tail`) together with the head, at
the head's learning rate × ``finetune_lr_mult``. Every earlier block stays frozen, so the maps are
computed once (:func:`cached_image_maps` for whole images, ``cached_crop_features(upto=...)`` for
crops). A run with a tuned block is named with :data:`FINETUNE_TAG`
(``drsch-lastblock-efficientnet_lite0``, ``dch-lastblock-efficientnet_lite0``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["FINETUNES", "FINETUNE_START", "FINETUNE_TAG", "FINETUNE_STARTS", "FINETUNE_TAGS", "finetune_start",
           "finetune_tag", "imagenet_tail", "cached_image_maps", "check_finetune"]

#: What trains of the ImageNet backbone: "none" = frozen (heads on cached pooled features);
#: "last_block" = its last MBConv block and head conv, on the cached maps that enter that block;
#: "last_4_blocks" = its last four MBConv blocks (12-15, the second half of stage 6 and stage 7) and
#: head conv, on the cached maps that enter block 12 (MCH only; same map shape, 192 x 4 x 4 at 112 px).
FINETUNES = ("none", "last_block", "last_4_blocks")
#: The block whose input maps are cached, per fine-tuning mode (EfficientNet-Lite0 has 16 blocks).
FINETUNE_STARTS = {"last_block": 15, "last_4_blocks": 12}
#: What a record name carries, per fine-tuning mode.
FINETUNE_TAGS = {"last_block": "lastblock", "last_4_blocks": "last4blocks"}
#: The last-block mode's start block and name tag (the mode every recipe has).
FINETUNE_START = FINETUNE_STARTS["last_block"]
FINETUNE_TAG = FINETUNE_TAGS["last_block"]


def finetune_start(finetune: str) -> int | None:
    """The first fine-tuned block of ``finetune`` (the block whose input maps are cached); None for "none"."""
    return FINETUNE_STARTS.get(finetune)


def finetune_tag(finetune: str) -> str:
    """What a run name carries for ``finetune``: "" (frozen), "lastblock" or "last4blocks"."""
    return FINETUNE_TAGS.get(finetune, "")


def check_finetune(finetune: str, backbone: str, choices: tuple = FINETUNES) -> str | None:
    """The one-line reason ``finetune`` is invalid with ``backbone`` (and one of ``choices``, the modes a
    recipe supports), or None when it is valid."""
    if finetune not in choices:
        what = {"none": "the backbone frozen", "last_block": "its last block fine-tuned on cached maps",
                "last_4_blocks": "its last four blocks fine-tuned on cached maps"}
        return (f"finetune must be one of {choices} ("
                + "; ".join(f"{c!r}: {what[c]}" for c in choices) + f"), got {finetune!r}")
    if finetune != "none" and backbone == "scratch":
        return ("finetune applies to the ImageNet backbone (backbone='efficientnet_lite0'); the scratch network "
                "trains whole anyway")
    return None


def imagenet_tail(backbone: str = "efficientnet_lite0", input_size: int | None = None, start: int = FINETUNE_START):
    """The ImageNet backbone's blocks from ``start`` (default :data:`FINETUNE_START`; see
    :func:`finetune_start`) on with its head conv, ready to fine-tune: a :class:`~hashrepro.models.mch_heads.TunedTail` mapping flattened maps
    (N, C·h·w) at ``input_size`` pixels (None: the backbone's default) to pooled features (N, 1280)."""
    from .crop_features import crop_map_shape
    from .models.backbones import get_backbone
    from .models.mch_heads import TunedTail

    net = get_backbone(backbone, pretrained="imagenet")
    return TunedTail(net, start, crop_map_shape(backbone, input_size, start))


def cached_image_maps(dataset, indices=None, backbone: str = "efficientnet_lite0", input_size: int | None = None,
                      progress: bool = True) -> np.ndarray:
    """The maps entering block :data:`FINETUNE_START` of whole images: float32 (len(indices), C·h·w).

    One cache file per dataset (every row, so that any split's rows are read from it), made by
    :func:`hashrepro.crop_features.cached_crop_features` with the one box that covers the image
    (resampled to ``input_size`` as the crops are; resumable; 60,000 CIFAR-10 images at 160 px:
    1.15 GB, about 30 min on one core). ``indices`` None: every row.
    """
    from .crop_features import _indices, cached_crop_features

    h, w = (int(v) for v in dataset.images.shape[1:3])
    maps = cached_crop_features(dataset, [[0.0, 0.0, float(w), float(h)]], None, backbone, input_size=input_size,
                                upto=FINETUNE_START, progress=progress)
    return maps[:, 0, :] if indices is None else maps[_indices(dataset, indices), 0, :]
