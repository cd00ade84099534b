"""DDH on the frozen ImageNet features: which head and schedule, chosen on a validation split.

    python benchmarks/ddh_pretrained_schedule.py                       # 16 and 64 bits, all configs
    python benchmarks/ddh_pretrained_schedule.py --bits 64 --configs 6 7

The validation split is carved from the CIFAR-10 **training** images only: 100 per class (1,000)
are the validation queries, the other 49,000 are the database and the (unlabelled) training set.
The test images, the chapter's queries, are never touched. For each configuration this prints
mAP@1000 on the validation queries, the final loss and the training time, next to ITQ, PCAH and
SphH on the same features and split (the reference the claims compare DDH against). The
pseudo labels are built once (Algorithm 1, K1 = 15, K2 = 6, PCA 128) and shared by every
configuration, so only the head and the schedule vary.

The numbers behind ``hashrepro.methods.ddh.Config.head_hidden``'s default and the DDH chapter's
schedule discussion come from this script.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

#: (head_hidden, optimizer, lr, iterations)
CONFIGS = [((), "adam", 1e-3, 3000), ((), "sgd", 1e-3, 3000), ((1024,), "adam", 1e-4, 3000),
           ((), "adam", 1e-3, 10000), ((), "adam", 1e-4, 3000), ((1024,), "sgd", 1e-3, 3000),
           ((), "sgd", 1e-3, 19500), ((), "sgd", 1e-3, 58500), ((), "adam", 1e-3, 19500)]


def main(argv=None) -> None:
    import torch

    from hashrepro.baselines import BASELINES
    from hashrepro.data import load
    from hashrepro.features import dataset_features
    from hashrepro.methods import ddh as D
    from hashrepro.metrics import mean_average_precision
    from hashrepro.pseudolabels import build_pseudo_labels, label_precision

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--configs", type=int, nargs="+", default=list(range(len(CONFIGS))),
                    help=f"indices into CONFIGS (0..{len(CONFIGS) - 1})")
    ap.add_argument("--per-class", type=int, default=100, help="validation queries per class")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = load("cifar10")
    tr = ds.official_split["train"]
    X = np.asarray(dataset_features(ds, "efficientnet_lite0", indices=tr), dtype=np.float32)
    y = ds.labels[tr]
    rng = np.random.default_rng(0)
    val = np.concatenate([rng.choice(np.flatnonzero(y == c), args.per_class, replace=False) for c in np.unique(y)])
    rest = np.setdiff1d(np.arange(len(y)), val)
    Xtr, ytr = X[rest], y[rest]
    print(f"validation split of the CIFAR-10 training images: {len(val)} queries, {len(rest)} database/training")
    for bits in args.bits:
        for name in ("itq", "pcah", "sphh"):
            h = BASELINES[name](n_bits=bits, random_state=0).fit(Xtr)
            m = mean_average_precision(h.transform(X[val]), h.transform(Xtr), y[val], ytr, topk=1000)
            print(f"{bits:>3}b {name:<28} val mAP@1000 {m:.4f}", flush=True)
    t = time.perf_counter()
    pl = build_pseudo_labels(D._pca(Xtr, 128, 0), 15, 6, expand=True)
    print(f"pseudo labels: precision {label_precision(pl.S, ytr):.3f} (K1-NN {label_precision(pl.S1, ytr):.3f}), "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    xt = torch.from_numpy(Xtr)
    for bits in args.bits:
        for i in args.configs:
            head, opt, lr, its = CONFIGS[i]
            cfg = D.Config.for_scale("default", dataset="cifar10", backbone="efficientnet_lite0", bits=bits,
                                     progress=False, head_hidden=head, optimizer=opt, lr=lr, iterations=its)
            sampler = D._PairSampler(len(rest), cfg.batch_size, S=pl.S, mode=cfg.pair_sampling, seed=0)
            net = D._build_net(cfg, X.shape[1], 0, None)
            t = time.perf_counter()
            hist = D.train_ddh(cfg, net, xt, sampler, "cpu")
            _, qb = D.encode_codes(net, torch.from_numpy(X[val]), "cpu")
            _, dbb = D.encode_codes(net, xt, "cpu")
            m = mean_average_precision(qb, dbb, y[val], ytr, topk=1000)
            print(f"{bits:>3}b [{i}] head {head or '()'} {opt} lr {lr:g} {its} it: val mAP@1000 {m:.4f}, "
                  f"final loss {np.mean(hist['loss'][-50:]):.2f}, {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
