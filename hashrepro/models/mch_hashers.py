"""MCH's trained base models as hashers: images (or cached crops) -> (features f(x), pre-activations z).

A hasher is what MCH's agent and out-of-sample extension see of the base model (§4.2–4.3): the
feature ``f(x)`` that enters the state of eq. 3 and the pre-activations ``z`` whose sign is the
code (:func:`hashrepro.codes.binarize`). Every hasher has ``embed(x) -> (f (N, D), z (N, Q))``
numpy float arrays for whole images, and ``embed_crop(x, sigma, pos)`` /
``embed_random_crops(x, cfg, rng)`` for crops:

* scratch regime (images in, :class:`~hashrepro.data.crops.ImageCrops` cuts the boxes):
  :class:`DeepHasher` (a deep base model, :class:`~hashrepro.models.small_cnn.HashModel`) and
  :class:`KSHHasher` (KSH on the frozen small CNN's features);
* pretrained regime (dataset rows in, the crops' backbone features cached in a
  :class:`~hashrepro.data.crops.CropBank`): :class:`FeatureHasher`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..crop_features import crop_resize
from ..data.crops import CropBank, ImageCrops
from .mch_heads import KSHModel
from .small_cnn import HashModel, SmallCNN

__all__ = ["DeepHasher", "KSHHasher", "FeatureHasher"]


class DeepHasher(ImageCrops):
    """A trained deep base model: images -> (features f(x), pre-activations z); code = sign(z)."""

    def __init__(self, model: HashModel, input_size: int, device: torch.device):
        self.model, self.input_size, self.device = model, input_size, device

    @torch.no_grad()
    def embed(self, images_u8: torch.Tensor, boxes=None, batch_size: int = 512):
        """uint8 (N, C, H, W) [+ boxes (N, 4)] -> (f float (N, D), z float (N, Q)) numpy."""
        self.model.eval()
        fs, zs = [], []
        for i in range(0, len(images_u8), batch_size):
            bx = None if boxes is None else boxes[i:i + batch_size]
            x = crop_resize(images_u8[i:i + batch_size], bx, self.input_size).to(self.device)
            f, z = self.model.features_and_codes(x)
            fs.append(f.float().cpu())
            zs.append(z.float().cpu())
        return torch.cat(fs).numpy(), torch.cat(zs).numpy()


class KSHHasher(ImageCrops):
    """KSH on frozen backbone features: images -> (f(x), z = KSH(f(x)))."""

    def __init__(self, backbone: SmallCNN, ksh: KSHModel, input_size: int, device: torch.device):
        self.backbone, self.ksh, self.input_size, self.device = backbone, ksh, input_size, device

    @torch.no_grad()
    def embed(self, images_u8: torch.Tensor, boxes=None, batch_size: int = 512):
        """uint8 (N, C, H, W) [+ boxes (N, 4)] -> (f float (N, D), z float (N, Q)) numpy."""
        self.backbone.eval()
        fs, zs = [], []
        for i in range(0, len(images_u8), batch_size):
            bx = None if boxes is None else boxes[i:i + batch_size]
            x = crop_resize(images_u8[i:i + batch_size], bx, self.input_size).to(self.device)
            f = self.backbone(x)
            fs.append(f.float().cpu())
            zs.append(self.ksh(f).float().cpu())
        return torch.cat(fs).numpy(), torch.cat(zs).numpy()


class FeatureHasher:
    """A base model on cached features: dataset rows (or crops of them) -> (f, z); code = sign(z).

    model : has ``features_and_codes(x)`` on (n, D) backbone features (a
    :class:`~hashrepro.models.small_cnn.HashModel` over a
    :class:`~hashrepro.models.mch_heads.FeatureBackbone`, or
    :class:`~hashrepro.models.mch_heads.KSHOnFeatures`). ``f`` is the standardised feature the
    agent's state uses (eq. 3).
    """

    def __init__(self, model: nn.Module, bank: CropBank, device: torch.device):
        self.model, self.bank, self.device = model, bank, device

    @torch.no_grad()
    def _code(self, x: np.ndarray, batch_size: int = 4096):
        self.model.eval()
        fs, zs = [], []
        for i in range(0, len(x), batch_size):
            f, z = self.model.features_and_codes(torch.from_numpy(x[i:i + batch_size]).to(self.device))
            fs.append(f.float().cpu())
            zs.append(z.float().cpu())
        if not fs:
            return np.zeros((0, self.bank.dim), np.float32), np.zeros((0, 0), np.float32)
        return torch.cat(fs).numpy(), torch.cat(zs).numpy()

    @staticmethod
    def _rows(rows) -> np.ndarray:
        return rows.numpy().astype(np.int64) if isinstance(rows, torch.Tensor) else np.asarray(rows, dtype=np.int64)

    def embed(self, rows, boxes=None):
        """Whole images of dataset ``rows`` -> (f (n, D'), z (n, Q)). ``boxes`` must be None (crops:
        :meth:`embed_crop`)."""
        if boxes is not None:
            raise ValueError("FeatureHasher codes cached crops only: use embed_crop(rows, sigma, pos)")
        return self._code(self.bank.whole(self._rows(rows)))

    def embed_crop(self, rows, sigma: float, pos):
        """Crop ``pos`` of ratio ``sigma`` of every row -> (f, z)."""
        return self._code(self.bank.crop(self._rows(rows), sigma, pos))

    def embed_random_crops(self, rows, cfg, rng: np.random.Generator):
        """One crop per row drawn from the finite set: ratio uniform on ``cfg.agent_ratios()``,
        position uniform on the 5 boxes (the pretrained regime's Algorithm 2)."""
        rows = self._rows(rows)
        ratios = np.asarray(cfg.agent_ratios())
        sig = ratios[rng.integers(0, len(ratios), size=len(rows))]
        pos = rng.integers(0, 5, size=len(rows))
        x = np.empty((len(rows), self.bank.dim), dtype=np.float32)
        for r in np.unique(sig):
            m = sig == r
            x[m] = self.bank.crop(rows[m], float(r), pos[m])
        return self._code(x)
