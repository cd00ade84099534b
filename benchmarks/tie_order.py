"""How much does the database order move mAP when Hamming ties are broken by index?

    python benchmarks/tie_order.py                 # ITQ and LSH on CIFAR-10 GIST, 16/32/64 bits
    python benchmarks/tie_order.py --bits 12 48 --methods itq

Why: public hashing code ranks with a sort that breaks ties in Hamming distance by database
position ("ties by index"). That is harmless when the database order is unrelated to the
labels, as in the official CIFAR-10 pickles (shuffled). Our offline mirror is the JPEG
ImageFolder archive, read class folder by class folder, so the database is **sorted by class**;
then, inside a big tie group, the items of the first classes always come first, and a top-k
metric over-counts or under-counts relevant items depending on the query's class.

For each method and code length this prints, on the DDH protocol (10,000 test images as queries,
the 50,000 training images as database, mAP over the top 1,000) and on the DNNH/DRSCH protocol
(1,000 queries, mAP over the whole ranking):

* ``index``     ties by index, database in the mirror's (class-sorted) order: what records hold as ``map``
* ``shuffled``  ties by index after a seeded random permutation of the database (mean of 3)
* ``expected``  exact expectation over random orders inside tie groups (``ties="expected"``):
  what records hold as ``map_tie_aware``
and the ratio index / expected. The reference for "unbiased" is ``expected``; ``shuffled`` is a
check that the expectation is right (it must scatter around it).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from hashrepro.baselines import BASELINES
from hashrepro.baselines.experiment import _encode, load_features
from hashrepro.metrics import mean_average_precision


def one(method: str, bits: int, protocol: str, F, labels, sp, seed: int, n_shuffles: int = 3) -> dict:
    train = np.asarray(sp.train)
    hasher = BASELINES[method](n_bits=bits, random_state=seed).fit(np.asarray(F[train], dtype=np.float64))
    q = _encode(hasher, F, sp.query)
    db = _encode(hasher, F, sp.database)
    yq, ydb = labels[sp.query], labels[sp.database]
    topk = 1000 if protocol == "ddh" else None
    out = {"index": mean_average_precision(q, db, yq, ydb, topk=topk, ties="index"),
           "expected": mean_average_precision(q, db, yq, ydb, topk=topk, ties="expected")}
    rng = np.random.default_rng(seed)
    sh = []
    for _ in range(n_shuffles):
        p = rng.permutation(len(db))
        sh.append(mean_average_precision(q, db[p], yq, ydb[p], topk=topk, ties="index"))
    out["shuffled"] = float(np.mean(sh))
    out["shuffled_std"] = float(np.std(sh, ddof=1)) if n_shuffles > 1 else float("nan")
    # how class-sorted the database order is: fraction of neighbours with the same label
    out["db_sorted"] = float(np.mean(ydb[1:] == ydb[:-1]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--methods", nargs="+", default=["itq", "lsh"])
    ap.add_argument("--protocols", nargs="+", default=["ddh", "dnnh"])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(f"dataset {a.dataset}, GIST features, seed {a.seed}")
    print(f"{'protocol':8} {'method':6} {'bits':>4} {'index':>8} {'shuffled':>16} {'expected':>9} "
          f"{'index/expected':>14} {'db same-label neighbours':>25}")
    for protocol in a.protocols:
        F, labels, sp = load_features(a.dataset, "gist", protocol=protocol, seed=a.seed)
        for method in a.methods:
            for bits in a.bits:
                t = time.perf_counter()
                r = one(method, bits, protocol, F, labels, sp, a.seed)
                print(f"{protocol:8} {method:6} {bits:4d} {r['index']:8.4f} {r['shuffled']:8.4f} ± {r['shuffled_std']:.4f} "
                      f"{r['expected']:9.4f} {r['index'] / r['expected']:14.3f} {r['db_sorted']:25.3f}"
                      f"   ({time.perf_counter() - t:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
