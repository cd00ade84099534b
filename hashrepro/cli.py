"""Command line: ``hashrepro sweep | data | bench``.

Examples
--------
hashrepro sweep dnnh --dataset cifar10 --bits 12 24 32 48 --seeds 0 1 2 --scale paper
hashrepro sweep all --defaults                  # every notebook once, with its embedded defaults
hashrepro sweep mch --bits 32 -p base dch -p base hashnet --jobs 2
hashrepro data list
hashrepro data show cifar10
hashrepro bench metrics
"""
from __future__ import annotations

import argparse
import runpy
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from .paths import repo_root


def _sweep(args: argparse.Namespace) -> int:
    from .sweep import build_grid, defaults_tasks, run_sweep

    if args.defaults:
        tasks = defaults_tasks(args.papers)
    else:
        axes: dict[str, list] = {"dataset": args.dataset, "bits": args.bits, "seed": args.seeds,
                                 "scale": args.scale}
        extra: dict[str, list] = defaultdict(list)
        for key, value in args.param or []:
            extra[key].append(yaml.safe_load(value))
        clash = set(extra) & {k for k, v in axes.items() if v is not None}
        if clash:
            raise SystemExit(f"give {sorted(clash)} with its own option, not with -p")
        axes.update(extra)
        tasks = build_grid(args.papers, results_dir=args.results_dir, runs_dir=args.runs_dir, **axes)
    print(f"{len(tasks)} run(s): " + ", ".join(f"{t.paper}/{t.run_name}" for t in tasks[:6])
          + (" …" if len(tasks) > 6 else ""))
    if args.dry_run:
        for t in tasks:
            print(f"papermill notebooks/{t.paper}.ipynb {t.notebook_path} "
                  + " ".join(f"-p {k} {shlex.quote(str(v))}" for k, v in t.parameters.items()))
        return 0
    summary = run_sweep(tasks, jobs=args.jobs, engine=args.engine, scheduler=args.scheduler,
                        force=args.force, timeout=args.timeout)
    print(summary.table())
    return 0 if summary.ok else 1


def _data(args: argparse.Namespace) -> int:
    from . import data

    if args.action == "list":
        for name in data.datasets():
            print(name)
        return 0
    if not args.name:
        raise SystemExit("hashrepro data show NAME")
    ds = data.load(args.name, root=args.root)
    print(f"{ds.name}: images {tuple(ds.images.shape)} {ds.images.dtype}, labels {tuple(ds.labels.shape)}, "
          f"{len(ds.classes)} classes, multilabel={ds.multilabel}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    path = repo_root() / "benchmarks" / f"{args.name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in (repo_root() / "benchmarks").glob("*.py"))
        raise SystemExit(f"no benchmark {args.name!r}; known: {', '.join(known)}")
    sys.argv = [str(path), *args.rest]
    runpy.run_path(str(path), run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hashrepro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    sw = sub.add_parser("sweep", help="run chapter notebooks over a grid with papermill")
    sw.add_argument("papers", nargs="+", help="chapter name(s) (drsch dnnh ddh mch) or 'all'")
    sw.add_argument("--dataset", nargs="+")
    sw.add_argument("--bits", nargs="+", type=int)
    sw.add_argument("--seeds", nargs="+", type=int)
    sw.add_argument("--scale", nargs="+", choices=["smoke", "default", "paper"])
    sw.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                    help="another notebook parameter; repeat a name to add grid values")
    sw.add_argument("--defaults", action="store_true",
                    help="run each notebook once with its own defaults (embedded data)")
    sw.add_argument("--jobs", type=int, default=1, help="parallel runs (processes)")
    sw.add_argument("--engine", choices=["local", "dask"], default="local")
    sw.add_argument("--scheduler", help="Dask scheduler address (with --engine dask)")
    sw.add_argument("--results-dir", default="results")
    sw.add_argument("--runs-dir", default="book/runs")
    sw.add_argument("--force", action="store_true", help="rerun runs whose record is complete")
    sw.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    sw.add_argument("--dry-run", action="store_true", help="print the papermill commands only")
    sw.set_defaults(func=_sweep)

    da = sub.add_parser("data", help="list or inspect datasets")
    da.add_argument("action", choices=["list", "show"])
    da.add_argument("name", nargs="?")
    da.add_argument("--root", default=None, help="data root (default $HASHREPRO_DATA or data/)")
    da.set_defaults(func=_data)

    be = sub.add_parser("bench", help="run a benchmark from benchmarks/")
    be.add_argument("name", help="metrics | index | baselines")
    be.add_argument("rest", nargs=argparse.REMAINDER)
    be.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"hashrepro: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
