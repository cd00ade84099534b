"""Run the shallow baselines on a real dataset and write run records.

>>> from hashrepro.baselines.experiment import run                 # doctest: +SKIP
>>> record = run("itq", dataset="cifar10", bits=32, seed=0)         # doctest: +SKIP

Command line (writes ``results/baselines/<run name>.json``, skipping complete records)::

    python -m hashrepro.baselines.experiment --dataset cifar10 --bits 12 24 32 48 --seed 0

Protocols
---------
``dnnh`` (default; DNNH §4.1, also CNNH/DRSCH): 100 query images per class, 500 training
images per class, the rest (with the training images) is the database: 1,000 / 5,000 / 59,000
on CIFAR-10, 1,000 / 5,000 / 69,000 on MNIST. Supervised methods learn from the 5,000
labelled training images; unsupervised methods from the database ("the rest images as
training samples"). mAP of Hamming ranking over the whole database, ties broken by database
index.

``ddh`` (DDH §3.2, Table 2, unsupervised methods only): query = the official test set
(10,000), database = the official training set (50,000), unsupervised methods learn from the
database; mAP over the top 1,000 returned (``map``), and the full-ranking MAP of 1,000 random
queries (``map_full_subsample``; SphH's spherical-Hamming mAP@1000 also uses these 1,000).

Extra metrics in every record: ``fit_time_s``, ``encode_time_s`` (database), ``bit_balance_db``
(mean over bits of |fraction of ones - 1/2| on the database) and, for SphH,
``map_spherical`` (ranking by the spherical Hamming distance, Heo et al. eq. 4).

Features: ``gist`` (512-d, :func:`hashrepro.features.gist`; the papers' choice for CIFAR-10),
``pixels``, ``hog`` (:mod:`hashrepro.features`). Each method runs with its paper defaults
(see each class), at one thread.
"""
from __future__ import annotations

import argparse
import ast
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from . import BASELINES, SUPERVISED, UNSUPERVISED, get
from .sphh import spherical_hamming

__all__ = ["PROTOCOLS", "DEFAULT_FEATURE", "load_features", "run", "run_grid", "main", "command_for"]

#: evaluation protocols: split arguments and metric options
PROTOCOLS = {
    "dnnh": {"split": "per_class", "split_kw": {"n_query_per_class": 100, "n_train_per_class": 500},
             "database_includes_train": True, "topk": None, "unsupervised_fit": "database"},
    # DRSCH chapter: 100 queries / 500 training images per class, the database is the rest
    # (training images excluded), MAP over the whole ranking
    "drsch": {"split": "per_class", "split_kw": {"n_query_per_class": 100, "n_train_per_class": 500},
              "database_includes_train": False, "topk": None, "unsupervised_fit": "train"},
    "ddh": {"split": "official", "split_kw": {}, "database_includes_train": True, "topk": 1000,
            "unsupervised_fit": "database"},
}

#: default feature per dataset (the papers use GIST for CIFAR-10; pixels are cheap for MNIST)
DEFAULT_FEATURE = {"cifar10": "gist", "svhn": "gist", "mnist": "pixels", "mnist5k": "pixels",
                   "digits": "pixels"}

#: cap on the number of points an unsupervised method learns from (speed); SphH and KMH
#: subsample further inside (20,000 and 10,000).
MAX_UNSUPERVISED_FIT = 60000

#: queries of the full-ranking MAP computed beside a top-k MAP (protocol "ddh")
FULL_MAP_QUERIES = 1000


def _variant(overrides: dict | None) -> str:
    """"" for the default hyper-parameters, else ``key=value,...`` (sorted)."""
    return ",".join(f"{k}={overrides[k]!r}" for k in sorted(overrides or {}))


def command_for(method: str, dataset: str, bits, seed: int, feature: str, protocol: str,
                overrides: dict | None = None) -> str:
    bits = " ".join(str(b) for b in (bits if isinstance(bits, (list, tuple)) else [bits]))
    cmd = (f"python -m hashrepro.baselines.experiment --dataset {dataset} --bits {bits} --seed {seed} "
           f"--methods {method} --feature {feature} --protocol {protocol}")
    for k in sorted(overrides or {}):
        cmd += f" --set {k}={overrides[k]!r}"
    return cmd


def load_features(dataset: str, feature: str, protocol: str = "dnnh", seed: int = 0, root=None):
    """Load a dataset, split it, featurise it (cached). Returns ``(F, labels, split)`` where ``F``
    is float32 ``(N, D)`` over the whole dataset."""
    from hashrepro import data
    from hashrepro.features import dataset_features

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid protocols are {sorted(PROTOCOLS)}")
    p = PROTOCOLS[protocol]
    ds = data.load(dataset, root=root)
    sp = data.split(ds, p["split"], seed=seed, database_includes_train=p["database_includes_train"],
                    **p["split_kw"])
    F = dataset_features(ds, feature, root=root, progress=sys.stderr.isatty())
    return F, np.asarray(ds.labels), sp


def _encode(hasher, F, idx, chunk: int = 8192):
    """Codes of the rows ``idx`` of ``F``, in chunks (bounded float64 copies)."""
    idx = np.asarray(idx)
    return np.concatenate([hasher.transform(np.asarray(F[idx[s:s + chunk]], dtype=np.float64))
                           for s in range(0, len(idx), chunk)], axis=0)


def run(method: str, dataset: str = "cifar10", bits: int = 32, seed: int = 0, feature: str | None = None,
        protocol: str = "dnnh", params: dict | None = None, root=None, _cache: dict | None = None) -> dict:
    """Fit one baseline, encode query and database, evaluate, return a run record.

    Parameters
    ----------
    method : a name of :data:`hashrepro.baselines.BASELINES` (``"itq"``, ``"ksh"``, ...).
    dataset : registry name (``"cifar10"``, ``"mnist"``, ``"mnist5k"``, ...).
    bits, seed : code length; seed of the split and of the method.
    feature : ``"gist"``, ``"pixels"``, ``"hog"`` (default per dataset: :data:`DEFAULT_FEATURE`).
    protocol : ``"dnnh"``, ``"drsch"`` or ``"ddh"`` (see :data:`PROTOCOLS`).
    params : extra hyper-parameters for the estimator.

    Returns
    -------
    dict, a complete run record (:func:`hashrepro.results.make_record`) with ``paper="baselines"``.
    """
    from hashrepro.metrics import evaluate, mean_average_precision
    from hashrepro.results import make_record

    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; valid names are {', '.join(BASELINES)}")
    feature = feature or DEFAULT_FEATURE.get(dataset, "gist")
    p = PROTOCOLS.get(protocol)
    if p is None:
        raise ValueError(f"unknown protocol {protocol!r}; valid protocols are {sorted(PROTOCOLS)}")
    cls = BASELINES[method]
    if protocol == "ddh" and cls.supervised:
        raise ValueError("the ddh protocol compares unsupervised methods only "
                         f"({', '.join(UNSUPERVISED)})")
    key = (dataset, feature, protocol, seed)
    if _cache is not None and key in _cache:
        F, labels, sp = _cache[key]
    else:
        F, labels, sp = load_features(dataset, feature, protocol, seed, root)
        if _cache is not None:
            _cache.clear()
            _cache[key] = (F, labels, sp)
    t_start = time.time()
    if cls.supervised:
        fit_idx, fit_on = sp.train, "labelled train"
    else:
        fit_idx, fit_on = (sp.database, "database") if p["unsupervised_fit"] == "database" else (sp.train, "train")
        if len(fit_idx) > MAX_UNSUPERVISED_FIT:
            fit_idx = np.sort(np.random.RandomState(seed).choice(fit_idx, MAX_UNSUPERVISED_FIT, replace=False))
    params = dict(params or {})
    overrides = dict(params)
    default_anchors = BASELINES[method]().get_params().get("n_anchors")
    if default_anchors is not None and "n_anchors" not in params and default_anchors > len(fit_idx) // 2:
        params["n_anchors"] = max(2, len(fit_idx) // 2)  # small datasets: fewer anchors than points
        warnings.warn(f"{method}: {len(fit_idx)} training points; using n_anchors={params['n_anchors']}",
                      stacklevel=2)
    hasher = get(method, n_bits=bits, random_state=seed, **params)
    Xfit = np.asarray(F[fit_idx], dtype=np.float64)
    t0 = time.time()
    hasher.fit(Xfit, labels[fit_idx] if cls.supervised else None)
    fit_time = time.time() - t0
    t0 = time.time()
    db_codes = _encode(hasher, F, sp.database)
    encode_time = time.time() - t0
    q_codes = _encode(hasher, F, sp.query)
    ev = evaluate(q_codes, db_codes, labels[sp.query], labels[sp.database], topk=p["topk"])
    metrics = {k: v for k, v in ev.items() if k not in ("curves", "protocol")}
    metrics["fit_time_s"] = fit_time
    metrics["encode_time_s"] = encode_time
    metrics["bit_balance_db"] = float(np.abs(db_codes.mean(0) - 0.5).mean())
    if p["topk"] is not None:
        # also the full-ranking MAP on a fixed subsample of queries (DH/DeepBit report full MAP;
        # DDH Table 2 copies their numbers, see book/baselines.md)
        sub = np.sort(np.random.RandomState(seed).choice(len(q_codes), min(len(q_codes), FULL_MAP_QUERIES),
                                                         replace=False))
        metrics["map_full_subsample"] = mean_average_precision(q_codes[sub], db_codes, labels[sp.query][sub],
                                                               labels[sp.database], topk=None)
        metrics["n_query_full_subsample"] = float(len(sub))
    if method == "sphh":  # the method's own distance (Heo et al. eq. 4)
        ql, dl = labels[sp.query], labels[sp.database]
        if p["topk"] is not None:  # a float ranking of 10,000 x 50,000 is slow: the query subsample
            q_codes, ql = q_codes[sub], ql[sub]
        total = 0.0
        step = max(1, int(2e7 // max(len(db_codes), 1)))  # bounded (chunk, ndb) float matrices
        for s0 in range(0, len(q_codes), step):
            D = spherical_hamming(q_codes[s0:s0 + step], db_codes)
            D[np.isinf(D)] = 1e9
            total += len(D) * mean_average_precision(dist=D, query_labels=ql[s0:s0 + step], db_labels=dl,
                                                     topk=p["topk"])
        metrics["map_spherical"] = total / len(q_codes)  # protocol "ddh": on the query subsample
    protocol_rec = dict(sp.protocol)
    protocol_rec.update(ev["protocol"])
    protocol_rec.update(name=protocol, fit_on=fit_on, n_fit=int(len(fit_idx)))
    config = {"method": method, "feature": feature, "feature_dim": int(F.shape[1]), "protocol": protocol,
              "params": hasher.get_params(), "supervised": bool(cls.supervised), "fit_on": fit_on,
              "n_fit": int(len(fit_idx)), "overrides": overrides, "variant": _variant(overrides)}
    try:
        import torch
        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        threads = 1
    return make_record("baselines", method, dataset, int(bits), int(seed), "default", config, protocol_rec,
                       metrics, ev.get("curves"), time.time() - t_start, f"cpu ({threads} thread(s))",
                       command=command_for(method, dataset, bits, seed, feature, protocol, overrides))


def _run_name(method, dataset, bits, seed, feature, protocol, overrides=None):
    from hashrepro.results import run_name

    extra = dict(overrides or {})
    if feature != DEFAULT_FEATURE.get(dataset, "gist"):
        extra["feature"] = feature
    if protocol != "dnnh":
        extra["protocol"] = protocol
    return run_name(method, dataset, bits, seed, "default", **extra)


def run_grid(dataset: str, bits=(12, 24, 32, 48), seed: int = 0, methods=None, feature: str | None = None,
             protocol: str = "dnnh", results_dir: str | os.PathLike = "results", skip_existing: bool = True,
             root=None, verbose: bool = True, params: dict | None = None) -> list[Path]:
    """Run every (method, bits) and save the records under ``results_dir/baselines/``; complete
    records are skipped (an interrupted grid resumes). Returns the record paths."""
    from hashrepro.results import is_complete, save_run

    feature = feature or DEFAULT_FEATURE.get(dataset, "gist")
    methods = list(methods or (UNSUPERVISED if protocol == "ddh" else BASELINES))
    from hashrepro.results import _resolve  # repository-relative results dir

    out = []
    cache: dict = {}
    for method in methods:
        for b in bits:
            name = _run_name(method, dataset, b, seed, feature, protocol, params)
            path = _resolve(results_dir) / "baselines" / f"{name}.json"
            if skip_existing and path.exists() and is_complete(path):
                if verbose:
                    print(f"skip {name} (complete record exists)", flush=True)
                out.append(path)
                continue
            t = time.time()
            rec = run(method, dataset, b, seed, feature, protocol, params=params, root=root, _cache=cache)
            path = save_run(rec, results_dir, name)
            if verbose:
                m = rec["metrics"]
                print(f"{name}: map={m['map']:.4f} fit={m['fit_time_s']:.1f}s encode={m['encode_time_s']:.1f}s "
                      f"total={time.time() - t:.1f}s", flush=True)
            out.append(path)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hashrepro.baselines.experiment",
                                 description="Shallow hashing baselines on a real dataset -> run records "
                                             "in <results-dir>/baselines/")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--bits", type=int, nargs="+", default=[12, 24, 32, 48])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", default=None,
                    help=f"subset of {', '.join(BASELINES)} (default: all; unsupervised only for --protocol ddh)")
    ap.add_argument("--feature", default=None, help="gist | pixels | hog (default: gist for CIFAR-10, pixels for MNIST)")
    ap.add_argument("--protocol", default="dnnh", choices=sorted(PROTOCOLS))
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (default 1)")
    ap.add_argument("--force", action="store_true", help="rerun even when a complete record exists")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a hyper-parameter (Python literal), e.g. --set max_train=None; "
                         "recorded as a variant (its own run name)")
    args = ap.parse_args(argv)
    params = {}
    for item in args.set:
        if "=" not in item:
            ap.error(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            params[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            params[k] = v
    bad = [m for m in (args.methods or []) if m not in BASELINES]
    if bad:
        ap.error(f"unknown method(s) {bad}; valid: {', '.join(BASELINES)}")
    from threadpoolctl import threadpool_limits

    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:  # pragma: no cover
        pass
    with threadpool_limits(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        run_grid(args.dataset, args.bits, args.seed, args.methods, args.feature, args.protocol,
                 args.results_dir, skip_existing=not args.force, params=params or None)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
