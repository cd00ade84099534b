"""One training loop for every chapter: seeding, device, progress bar, checkpoints, NaN guard.

Methods in :mod:`hashrepro.methods` build a model, a loss and a batch sampler, and hand them to
:func:`fit`. Encoding (images → codes) goes through :func:`encode` so every chapter binarises
the same way.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = [
    "seed_everything",
    "resolve_device",
    "describe_device",
    "to_tensor_images",
    "fit",
    "encode",
    "History",
    "NonFiniteLossError",
    "Batches",
    "PKSampler",
    "ClippedSGD",
]


class NonFiniteLossError(FloatingPointError):
    """Raised by :func:`fit` when the loss becomes NaN or infinite."""


#: Iterations between two read-backs of the loss in :func:`fit` on a GPU (``log_every=None``).
LOG_EVERY = 100


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a seeded ``torch.Generator``.

    Parameters
    ----------
    seed : int
        Non-negative seed. The same seed gives the same split, initialisation and batches
        on the same device (GPU kernels may still be non-deterministic).
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:1"`` into a ``torch.device``.

    ``"auto"`` picks CUDA when available, else the CPU. Asking for CUDA on a machine without
    it is an error (not a silent fallback), so a run record never lies about its device.
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for but CUDA is not available; use 'auto' or 'cpu'")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    return torch.device(device)


def describe_device(device: torch.device) -> str:
    """Human-readable device string for run records, e.g. ``'cpu (2 threads)'``."""
    device = resolve_device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def to_tensor_images(images: np.ndarray, size: int | None = None, channels: int | None = None) -> torch.Tensor:
    """uint8 images (N, H, W, C) → float tensor (N, C, H, W) in [0, 1].

    Parameters
    ----------
    images : ndarray uint8, shape (N, H, W, C) or (N, H, W)
    size : optional int, resize (bilinear) to size × size.
    channels : optional 1 or 3; grey images are replicated to 3 channels when 3 is asked.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C) or (N, H, W), got {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)
    if channels is not None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        elif x.shape[1] == 3 and channels == 1:
            x = x.mean(dim=1, keepdim=True)
    if size is not None and (x.shape[2] != size or x.shape[3] != size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


@dataclass
class History:
    """Loss per iteration and wall time of a :func:`fit` call."""

    loss: list[float] = field(default_factory=list)
    iterations: int = 0
    wall_time_s: float = 0.0
    extra: dict = field(default_factory=dict)


def fit(
    step: Callable[[int], torch.Tensor],
    parameters: Iterable[torch.nn.Parameter] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    iterations: int = 1000,
    scheduler=None,
    on_iteration: Callable[[int], None] | None = None,
    checkpoint: str | Path | None = None,
    state: Callable[[], dict] | None = None,
    load_state: Callable[[dict], None] | None = None,
    checkpoint_every: int = 0,
    desc: str = "train",
    progress: bool | None = None,
    log_every: int | None = None,
) -> History:
    """Run ``iterations`` optimisation steps.

    Parameters
    ----------
    step : callable(it) -> scalar loss tensor
        Draws a batch, runs the model, returns the loss (the graph attached).
    optimizer : torch optimizer over the parameters (built with SGD by the method).
    scheduler : optional LR scheduler, stepped once per iteration.
    on_iteration : optional callable(it) run after each step (e.g. anneal β, ε, margins).
    checkpoint, state, load_state, checkpoint_every : optional resumable checkpointing;
        ``state()`` returns a dict of state dicts, ``load_state(d)`` restores it. The checkpoint
        is written atomically every ``checkpoint_every`` iterations and resumed from if present.
    progress : show a tqdm bar (None: only on a terminal).
    log_every : read the losses back to the host every ``log_every`` iterations (one transfer, one
        host synchronisation) instead of after every iteration. None: every iteration when the loss
        is on the CPU (free there), every :data:`LOG_EVERY` iterations on a GPU. The NaN guard then
        runs at each read-back and still names the first non-finite iteration.

    Returns
    -------
    History with the loss of every iteration.

    Raises
    ------
    NonFiniteLossError if the loss is NaN/inf (the NaN guard), naming the iteration.
    """
    if optimizer is None:
        if parameters is None:
            raise ValueError("fit needs an optimizer or parameters")
        optimizer = torch.optim.SGD(parameters, lr=1e-3, momentum=0.9)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    hist = History()
    start_it = 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists() and load_state is not None:
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        load_state(saved["state"])
        optimizer.load_state_dict(saved["optimizer"])
        start_it = int(saved["iteration"])
        hist.loss = list(saved.get("loss", []))
    if log_every is not None and (isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1):
        raise ValueError(f"log_every must be None or a positive int, got {log_every!r}")
    pending: list[tuple[int, torch.Tensor]] = []  # (iteration, loss still on the device)

    def read_back() -> None:
        """Move the pending losses to ``hist.loss`` in one transfer; the NaN guard."""
        if not pending:
            return
        values = torch.stack([v for _, v in pending]).float().cpu().tolist()
        its = [i for i, _ in pending]
        pending.clear()
        for i, v in zip(its, values):
            if not math.isfinite(v):
                raise NonFiniteLossError(f"loss became {v} at iteration {i}; lower the learning rate")
        hist.loss.extend(values)

    t0 = time.perf_counter()
    bar = tqdm(range(start_it, iterations), desc=desc, disable=(not progress) if progress is not None else None,
               mininterval=2.0, leave=False)
    for it in bar:
        optimizer.zero_grad(set_to_none=True)
        loss = step(it)
        every = log_every if log_every is not None else (1 if loss.device.type == "cpu" else LOG_EVERY)
        if every == 1 and not torch.isfinite(loss):
            raise NonFiniteLossError(f"loss became {loss.item()} at iteration {it}; lower the learning rate")
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if on_iteration is not None:
            on_iteration(it)
        if every == 1:
            hist.loss.append(float(loss.detach()))
        else:  # no host synchronisation in this iteration unless it is a read-back one
            pending.append((it, loss.detach()))
            if len(pending) >= every or it + 1 == iterations:
                read_back()
        if it % 50 == 0 and hist.loss:
            bar.set_postfix(loss=f"{hist.loss[-1]:.4f}")
        if ckpt is not None and state is not None and checkpoint_every and (it + 1) % checkpoint_every == 0:
            read_back()
            tmp = ckpt.with_suffix(ckpt.suffix + ".tmp")
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state": state(), "optimizer": optimizer.state_dict(), "iteration": it + 1,
                        "loss": hist.loss}, tmp)
            os.replace(tmp, ckpt)
    hist.iterations = iterations
    hist.wall_time_s = time.perf_counter() - t0
    return hist


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``t.to(device)`` that does not stall the host on a GPU: a CPU tensor is staged in pinned
    memory and copied with ``non_blocking=True`` (the caching host allocator keeps the staging
    buffer alive until the copy has run). On the CPU, or already on ``device``: ``t.to(device)``."""
    device = torch.device(device)
    if device.type == "cpu" or t.device == device or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


@torch.no_grad()
def encode(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Run ``model`` over ``images`` (N, C, H, W) in batches; return its outputs (N, D) as float32.

    The caller binarises (``hashrepro.codes.binarize``) with the threshold its paper uses.
    """
    device = resolve_device(device)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    outs = []
    for i in range(0, len(images), batch_size):
        xb = images[i:i + batch_size].to(device)
        outs.append(model(xb).float().cpu())
    if was_training and hasattr(model, "train"):
        model.train()
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(outs).numpy()


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless random mini-batches of indices into ``range(n)`` (epoch-wise permutations)."""
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield perm[i:i + batch_size]


class Batches:
    """Resumable form of :func:`batches`: the same index batches for the same ``generator``, plus
    ``state_dict()`` / ``load_state_dict(d)`` (the current epoch's permutation and position) so that
    a checkpointed run continues with exactly the batches an uninterrupted run would draw. The
    generator's own state is the caller's to save (``generator.get_state()``)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = int(n), int(batch_size), generator
        self._stop = self.n - self.batch_size + 1 if self.n >= self.batch_size else 1
        self.perm: torch.Tensor | None = None
        self.pos = 0

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> torch.Tensor:
        if self.perm is None or self.pos >= self._stop:
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
        out = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return out

    def state_dict(self) -> dict:
        return {"perm": None if self.perm is None else self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, d: dict) -> None:
        self.perm = None if d["perm"] is None else d["perm"].clone()
        self.pos = int(d["pos"])


class PKSampler:
    """Batches of P classes × K images (DRSCH's released ``data_layer.cpp``: 10 × 10, drsch-notes §3).

    Each call draws P distinct classes (among those with ≥ 2 images) and K distinct images of
    each (with replacement only when a class has fewer than K). Returns int64 indices (P·K,)
    into the training set, grouped by class.
    """

    def __init__(self, labels: np.ndarray, classes_per_batch: int, images_per_class: int, seed: int = 0):
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError("PKSampler needs single-label int labels (N,); multi-label data has no P x K classes")
        self.by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.by_class = [ix for ix in self.by_class if len(ix) >= 2]
        if len(self.by_class) < 2:
            raise ValueError("PKSampler needs at least 2 classes with >= 2 images each")
        self.p = min(int(classes_per_batch), len(self.by_class))
        self.k = int(images_per_class)
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> np.ndarray:
        cls = self.rng.choice(len(self.by_class), size=self.p, replace=False)
        out = []
        for c in cls:
            ix = self.by_class[c]
            out.append(self.rng.choice(ix, size=self.k, replace=len(ix) < self.k))
        return np.concatenate(out)


class ClippedSGD(torch.optim.SGD):
    """SGD that first rescales the gradient to a total norm of at most ``max_norm`` (None: plain SGD).
    ``last_grad_norm``: the norm before clipping at the last step (a device tensor off the CPU)."""

    def __init__(self, params, max_norm: float | None = None, **kw):
        super().__init__(params, **kw)
        self.max_norm = max_norm
        self.last_grad_norm = float("nan")

    def step(self, closure=None):
        if self.max_norm is not None:
            params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm)
            # a GPU keeps the norm on the device (float() would synchronise the host every step)
            self.last_grad_norm = float(norm) if norm.device.type == "cpu" else norm.detach()
        return super().step(closure)
