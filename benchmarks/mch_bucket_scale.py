"""Benchmark: MCH hash bucket search against a linear scan at 10^4-10^6 items (issue 16).

The MCH records store metrics, not codes, and their database (1,800 mosaic images) is too small for
bucket search to matter. This benchmark draws a **synthetic** database from the generative model of
:mod:`hashrepro.bucket_scale` (C class prototypes + independent bit flips; MCH-X = each item's whole
code plus crop codes drawn from its class), fitted to statistics of the committed records of one
base model on the ImageNet backbone (default MMHH, seeds 0-2): code length, distinct buckets per
code of X and of MCH-X, the fraction of the database within radius 2 of a query, and ANHC (see the
module docstring for what is matched and what is not). It grows the database to each ``--sizes``
(items; X stores one code per item, MCH-X about ANHC codes per item) and measures, on one thread,
for Hamming radius 0, 1, 2:

* bucket search: ``BucketIndex.range_search`` with ``method="enumerate"`` (hash-table look-ups of
  every code within the radius, MCH §2.1) and the library default ``method="auto"``;
* the reference, a linear scan: ``MultiCodes.min_hamming`` (packed popcount distances to every
  code, minimum over an item's codes) and a threshold;

and prints ms/query, buckets probed, non-empty buckets, candidates, the ratio scan / bucket, and
recall / F1 (relevant = same synthetic class) for X and MCH-X. Every query's candidate set from
each bucket engine is checked against the scan's (brute force). The record (JSON) and the printed
log go to ``results/benchmarks/`` (atomic writes) with the commit, dirty flag, command and wall time.

    OMP_NUM_THREADS=1 python benchmarks/mch_bucket_scale.py [--bits 16 32 64] [--sizes 10000 100000 1000000]
        [--queries 500 500 200] [--base mmhh] [--out results/benchmarks/mch_bucket_scale]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hashrepro.atomic import atomic_write  # noqa: E402
from hashrepro.bucket_scale import fit_model, measure, measured_stats, sample_stats  # noqa: E402
from hashrepro.codes import MultiCodes  # noqa: E402
from hashrepro.jsonable import to_jsonable  # noqa: E402
from hashrepro.paths import repo_root  # noqa: E402
from hashrepro.provenance import git_info, package_versions  # noqa: E402

HEADER = (f"{'bits':>4} {'db':6} {'items':>9} {'codes':>9} {'r':>1} {'probed':>6} {'nonempty':>8} {'cand':>8} "
          f"{'scan ms':>8} {'enum ms':>8} {'auto ms':>8} {'scan/enum':>9} {'scan/auto':>9} {'recall':>7} {'F1':>7}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64])
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", nargs="+", type=int, default=[500, 500, 200],
                    help="queries per size (one value per --sizes entry)")
    ap.add_argument("--base", default="mmhh")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/benchmarks/mch_bucket_scale",
                    help="path stem: <out>.json (record) and <out>.txt (log)")
    a = ap.parse_args(argv)
    if len(a.queries) != len(a.sizes):
        raise SystemExit(f"--queries needs one value per --sizes entry ({len(a.sizes)}), got {len(a.queries)}")
    if any(b < 1 or b > 64 for b in a.bits):
        raise SystemExit(f"--bits must lie in 1..64, got {a.bits}")
    cmd = "python benchmarks/mch_bucket_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    git = git_info()
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    log = io.StringIO()

    def say(s=""):
        print(s, flush=True)
        log.write(s + "\n")

    say(f"# command: {cmd.strip()}")
    say(f"# commit {git['commit']} (dirty: {git['dirty']}); {started:%Y-%m-%d %H:%M} UTC; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; {os.cpu_count()} CPU cores (shared); "
        f"numpy {np.__version__}")
    say("# SYNTHETIC database (hashrepro.bucket_scale): class prototypes + bit flips fitted to the "
        f"{a.base.upper()} records on the ImageNet backbone")
    say("# reference: linear scan (MultiCodes.min_hamming + threshold); ratios = scan ms / bucket ms")
    models, rows = {}, []
    for bits in a.bits:
        st = measured_stats(repo_root() / "results" / "mch", a.base, bits)
        model = fit_model(st, seed=a.seed)
        got = sample_stats(model, st.n_items, seed=a.seed)
        models[bits] = {"measured": st.__dict__, "model": model.to_dict(), "achieved": got}
        say(f"\n{bits} bits: model C={model.n_classes} classes, p={model.p:.4f}, crops kept with "
            f"rho={model.keep_rate:.3f}, p_crop={model.p_crop:.4f}")
        for k in ("buckets_per_code_x", "ball2_fraction", "anhc", "buckets_per_code_mch", "ball0_fraction",
                  "ball1_fraction"):
            tag = "matched" if k not in ("ball0_fraction", "ball1_fraction") else "not matched"
            say(f"  {k:22s} records {getattr(st, k):.5f}  synthetic ({st.n_items} items) {got[k]:.5f}  ({tag})")
        say(HEADER)
        for n, nq in zip(a.sizes, a.queries):
            rng = np.random.default_rng([a.seed, bits, n])
            db, y = model.sample(n, rng)
            q, yq = model.sample(nq, rng)
            dbs = [("X", MultiCodes.single(db))]
            if model.keep_rate > 0:
                dbs.append(("MCH-X", model.crops(db, y, rng)))
            del db
            for name, mc in dbs:
                for row in measure(mc, q, yq, y):
                    row.update(bits=bits, db=name)
                    rows.append(row)
                    say(f"{bits:4d} {name:6} {row['n_items']:9,d} {row['n_codes']:9,d} {row['radius']:1d} "
                        f"{row['buckets_probed']:6,.0f} {row['nonempty_buckets']:8.1f} {row['candidates']:8.1f} "
                        f"{row['scan_ms']:8.3f} {row['enumerate_ms']:8.3f} {row['auto_ms']:8.3f} "
                        f"{row['scan_over_enumerate']:9.2f} {row['scan_over_auto']:9.2f} {row['recall']:7.4f} "
                        f"{row['f1']:7.4f}")
            del dbs
    wall = time.perf_counter() - t_start
    n_checked = sum(r["n_queries"] for r in rows)
    say(f"\n# candidate sets of both bucket engines identical to the linear scan's for all {n_checked:,} "
        f"(query, radius, database) cases; wall time {wall:.0f} s")
    rec = {"benchmark": "mch_bucket_scale", "synthetic": True, "base": a.base, "backbone": "efficientnet_lite0",
           "command": cmd.strip(), "git_commit": git["commit"], "git_dirty": git["dirty"],
           "started": started.isoformat(timespec="seconds"), "wall_time_s": wall,
           "threads": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count(),
           "machine": platform.processor() or platform.machine(), "versions": package_versions(),
           "reference": "linear scan: MultiCodes.min_hamming (packed popcount, min over an item's codes) + threshold",
           "engines": {"enumerate": "BucketIndex.range_search(method='enumerate'): hash look-ups of every code "
                                    "within the radius", "auto": "BucketIndex.range_search(method='auto')"},
           "relevance": "same synthetic class", "checked_cases": n_checked,
           "models": {str(k): v for k, v in models.items()}, "rows": rows}
    out = repo_root() / a.out if not os.path.isabs(a.out) else a.out
    atomic_write(f"{out}.json", json.dumps(to_jsonable(rec), indent=1) + "\n")
    atomic_write(f"{out}.txt", log.getvalue())
    print(f"wrote {out}.json and {out}.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
