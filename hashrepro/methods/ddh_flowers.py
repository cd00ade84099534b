"""DDH Table 6: object recognition on Oxford-17 Flowers with a linear SVM on the descriptors.

The paper (§3.3) trains "a multi-class SVM classifier" on DDH codes (64 and 256 bits) of the
Flowers-17 images, following Nilsback & Zisserman, and compares accuracy and SVM training time
with hand-crafted descriptors. Our protocol (``task="classification"``):

1. split: per class 40 train / 20 validation / 20 test images, seeded
   (:func:`hashrepro.data.split` protocol ``"flowers"``; the official ``datasplits.mat`` is not
   available here), images loaded at ``image_size`` (the chapter uses 64×64 on the CPU).
2. descriptor (``descriptor``): "codes" — train ``method`` (DDH, DH or DeepBit) *without labels*
   on the 680 training images (DDH: pseudo labels from ``features``, as on CIFAR-10) and use its
   codes in {−1, +1}; or a raw descriptor "hog" / "gist" / "pixels" (standardised with the
   training statistics).
3. classifier: scikit-learn ``LinearSVC`` (one-vs-rest, squared hinge) on the descriptors
   scaled to unit L2 norm per image (codes: ±1/√L); C picked from ``svm_cs``
   by validation accuracy, then refit on the training part; we report test accuracy and the
   wall time of that final fit (the paper's "training time").
"""
from __future__ import annotations

import time

import numpy as np

from . import ddh_pipeline as _ddh

__all__ = ["svm_accuracy", "run_classification"]


def svm_accuracy(x_train, y_train, x_val, y_val, x_test, y_test, cs=(0.01, 0.1, 1.0, 10.0, 100.0), seed: int = 0) -> dict:
    """Linear SVM with C chosen on the validation part. Inputs (n, d) float; labels (n,) int.

    Returns {"accuracy" (test, fraction), "val_accuracy", "svm_C", "svm_time_s" (final fit on the
    training part), "val_by_C" {C: accuracy}}.
    """
    from sklearn.svm import LinearSVC

    if len(cs) == 0:
        raise ValueError("svm_cs must hold at least one C")
    val = {}
    for c in cs:
        clf = LinearSVC(C=float(c), random_state=seed, max_iter=2000).fit(x_train, y_train)
        val[float(c)] = float((clf.predict(x_val) == y_val).mean())
    best = max(val, key=lambda c: (val[c], -c))                    # ties: the smaller C
    t = time.perf_counter()
    clf = LinearSVC(C=best, random_state=seed, max_iter=2000).fit(x_train, y_train)
    svm_time = time.perf_counter() - t
    return {"accuracy": float((clf.predict(x_test) == y_test).mean()), "val_accuracy": val[best],
            "svm_C": best, "svm_time_s": svm_time, "val_by_C": {str(k): v for k, v in val.items()}}


def _raw_descriptor(cfg, ds, idx):
    if cfg.descriptor == "pixels":
        return np.asarray(ds.images[idx], np.float32).reshape(len(idx), -1) / 255.0
    if cfg.descriptor == "efficientnet_lite0":     # the ImageNet features themselves (1280-d)
        from ..features import dataset_features
        return np.asarray(dataset_features(ds, cfg.descriptor, indices=idx, input_size=cfg.backbone_input_size), np.float32)
    return np.asarray(_ddh._handcrafted(cfg.descriptor, ds.images[idx], ds, idx), np.float32)


def run_classification(cfg, *, command: str | None = None) -> dict:
    """Table 6 for one descriptor (see the module docstring); returns a run record with
    metrics ``accuracy`` (fraction), ``accuracy_pct``, ``svm_time_s``, ``svm_C`` (the same as
    :func:`hashrepro.methods.ddh.run` of ``cfg``)."""
    from ..recipe import recipe_run

    if cfg.task != "classification":
        raise ValueError(f"run_classification runs task='classification', got task={cfg.task!r}")
    with recipe_run(type(cfg), cfg) as r:
        return _run_classification(r, command)


def _run_classification(r, command: str | None) -> dict:
    """Table 6 inside the set-up ``r`` (:func:`hashrepro.recipe.recipe_run`)."""
    from ..data import split
    from ..recipe import bit_imbalance, final_loss

    cfg, device = r.cfg, r.device
    metrics: dict = {}
    info: dict = {}
    if cfg.descriptor == "codes" and cfg.method == "ddh":
        prep = _ddh.prepare(cfg)
        ds, train, proto = prep["ds"], prep["train"], dict(prep["protocol"])
        metrics.update(prep["metrics"])
        info.update(prep["info"])
        sampler = _ddh._PairSampler(len(train), cfg.batch_size, S=prep["S"],
                                    labels=ds.labels[train] if cfg.supervised else None,
                                    mode=cfg.pair_sampling, seed=cfg.seed)
        x8 = prep["x8_train"]                 # images (N, C, H, W), or cached features (N, D) when pretrained
        net = _ddh._build_net(cfg, int(x8.shape[1]), int(x8.shape[2]) if x8.ndim == 4 else 0, prep["backbone"])
        hist = _ddh.train_ddh(cfg, net, x8, sampler, device)
        info["train_wall_time_s"] = hist["wall_time_s"]
        metrics["final_loss"] = final_loss(hist["loss"], _ddh.FINAL_LOSS_LAST)

        def encode(idx):
            return _ddh.encode_codes(net, _ddh._inputs(cfg, ds, idx), device)[1]
    else:
        ds, train, _, _, proto = _ddh._load_and_split(cfg)
        if cfg.descriptor == "codes":
            from .ddh_deep_baselines import fit_deep_baseline
            encode, binfo = fit_deep_baseline(cfg, ds, train, device)
            loss = binfo.pop("loss")
            binfo.pop("parts")
            metrics["final_loss"] = final_loss(loss, _ddh.FINAL_LOSS_LAST)
            info.update(binfo)
        else:
            encode = None
    sp = split(ds, "flowers", seed=cfg.seed)
    if not np.array_equal(sp.train, np.asarray(train)):
        raise RuntimeError("the flowers split used for training differs from the SVM split")
    parts = {"train": sp.train, "val": sp.val, "test": sp.query}
    te = time.perf_counter()
    if encode is not None:
        X = {k: 2.0 * encode(v).astype(np.float32) - 1.0 for k, v in parts.items()}       # codes in {−1, +1}
        metrics["bit_imbalance"] = bit_imbalance(X["train"] > 0)   # of the training codes
        metrics["bit_balance"] = metrics["bit_imbalance"]            # legacy name of bit_imbalance
    else:
        X = {k: _raw_descriptor(cfg, ds, v) for k, v in parts.items()}
        mu, sd = X["train"].mean(0), X["train"].std(0) + 1e-6
        X = {k: (v - mu) / sd for k, v in X.items()}
    # every descriptor scaled to unit L2 norm per image (codes: ±1/√L), so that one C grid fits
    # all of them and liblinear's dual solver converges in well under a second
    X = {k: v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for k, v in X.items()}
    info["descriptor_wall_time_s"] = time.perf_counter() - te
    metrics["descriptor_dim"] = int(X["train"].shape[1])
    y = {k: ds.labels[v] for k, v in parts.items()}
    res = svm_accuracy(X["train"], y["train"], X["val"], y["val"], X["test"], y["test"], cfg.svm_cs, cfg.seed)
    val_by_c = res.pop("val_by_C")
    metrics.update(res)
    metrics["accuracy_pct"] = 100.0 * res["accuracy"]
    metrics.update(_ddh.numeric_info(info))
    metrics["cpu_time_s"] = r.cpu_time()
    protocol = dict(proto)
    protocol.update(split="flowers", n_train=int(len(sp.train)), n_val=int(len(sp.val)), n_test=int(len(sp.query)),
                    image_size=cfg.image_size, evaluated="multi-class linear SVM (LinearSVC, one-vs-rest) "
                    "test accuracy; C picked on the validation part, refit on the training part",
                    svm_time="wall time of the final LinearSVC fit on the training part")
    for k in ("topk", "n_query", "n_database"):
        protocol.pop(k, None)
    method = cfg.method if cfg.descriptor == "codes" else cfg.descriptor
    if cfg.descriptor == "codes" and cfg.backbone != "scratch":
        method += f"-{cfg.backbone}"
    bits = int(cfg.bits) if cfg.descriptor == "codes" else 0
    curves = {"svm_val_accuracy": {"C": [float(c) for c in val_by_c], "accuracy": list(val_by_c.values())}}
    return r.record(paper=_ddh.PAPER, method=method, bits=bits, config=_ddh.config_with_info(cfg, info),
                    protocol=protocol, metrics=metrics, curves=curves, command=command)
