"""Command line: ``hashrepro sweep | data | bench | paper-grid | convergence | select | book``.

Examples
--------
hashrepro sweep dnnh --dataset cifar10 --bits 12 24 32 48 --seeds 0 1 2 --scale paper
hashrepro sweep all --defaults                  # every notebook once, with its embedded defaults
hashrepro sweep mch --bits 32 -p base dch -p base hashnet --jobs 2
hashrepro data list
hashrepro data show cifar10
hashrepro bench metrics
hashrepro paper-grid --estimate                 # projected GPU time of the DNNH + DRSCH Table-2 grids
hashrepro book retitle                          # title (and slim) the executed run notebooks
hashrepro convergence dnnh --bits 48 --seed 0 --max-multiple 10   # validation mAP vs iterations
hashrepro select dnnh --bits 48 -p backbone efficientnet_lite0 --grid margin=1,2,4,8   # chosen on validation
hashrepro select mch --dataset mosaic-cifar10 -p base dch -p backbone efficientnet_lite0 \\
    -p finetune last_block --grid finetune_lr_mult=0.03,0.1,0.3   # MCH's base model X, on validation

Every error is one line on stderr and a non-zero exit status (2: bad input or options, 1: a
failure while running); ``hashrepro --debug ...`` also prints the traceback.
"""
from __future__ import annotations

import argparse
import os
import re
import runpy
import shlex
import sys
import traceback
from collections import defaultdict

import yaml

from .paths import PAPERS, repo_root


class CLIError(ValueError):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``hashrepro sweep: error: ...``) instead of usage dumps."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _sweep(args: argparse.Namespace) -> int:
    from .sweep import build_grid, defaults_tasks, run_sweep

    if args.scheduler and args.engine != "dask":
        raise CLIError("--scheduler needs --engine dask")
    if args.defaults:
        grid_opts = [opt for opt, v in (("--dataset", args.dataset), ("--bits", args.bits),
                                        ("--seeds", args.seeds), ("--scale", args.scale),
                                        ("-p/--param", args.param)) if v]
        if grid_opts:
            raise CLIError(f"--defaults runs each notebook once with its own defaults and takes no grid "
                           f"options: drop {', '.join(grid_opts)}, or drop --defaults to run a grid")
        tasks = defaults_tasks(args.papers, results_dir=args.results_dir or "results/local",
                               runs_dir=args.runs_dir or "book/runs/local")
    else:
        axes: dict[str, list] = {"dataset": args.dataset, "bits": args.bits, "seed": args.seeds,
                                 "scale": args.scale}
        extra: dict[str, list] = defaultdict(list)
        for key, value in args.param or []:
            extra[key].append(yaml.safe_load(value))
        clash = set(extra) & {k for k, v in axes.items() if v is not None}
        if clash:
            raise CLIError(f"give {sorted(clash)} with its own option (--dataset, --bits, --seeds, --scale), "
                           f"not with -p")
        axes.update(extra)
        tasks = build_grid(args.papers, results_dir=args.results_dir or "results",
                           runs_dir=args.runs_dir or "book/runs", **axes)
    print(f"{len(tasks)} run(s): " + ", ".join(f"{t.paper}/{t.run_name}" for t in tasks[:6])
          + (" …" if len(tasks) > 6 else ""))
    if args.dry_run:
        for t in tasks:
            print(f"papermill notebooks/{t.paper}.ipynb {t.notebook_path} "
                  + " ".join(f"-p {k} {shlex.quote(str(v))}" for k, v in t.parameters.items()))
        return 0
    summary = run_sweep(tasks, jobs=args.jobs, engine=args.engine, scheduler=args.scheduler,
                        force=args.force, timeout=args.timeout, allow_dirty=args.allow_dirty,
                        connect_timeout=args.connect_timeout, threads=args.threads)
    print(summary.table())
    return 0 if summary.ok else 1


def _data(args: argparse.Namespace) -> int:
    from . import data

    if args.action == "list":
        for name in data.datasets():
            print(name)
        return 0
    if not args.name:
        raise CLIError(f"hashrepro data show NAME: give a dataset name; valid: {', '.join(data.datasets())}")
    ds = data.load(args.name, root=args.root)
    print(f"{ds.name}: images {tuple(ds.images.shape)} {ds.images.dtype}, labels {tuple(ds.labels.shape)}, "
          f"{len(ds.classes)} classes, multilabel={ds.multilabel}")
    return 0


def benchmarks() -> list[str]:
    """Names of the benchmarks in ``benchmarks/`` (``<name>.py``, not starting with ``_``)."""
    folder = repo_root() / "benchmarks"
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def _bench(args: argparse.Namespace) -> int:
    known = benchmarks()
    # Only a bare name from the list: never a path (``../hashrepro/version``) or another file.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_]*", args.name) or args.name not in known:
        raise CLIError(f"no benchmark {args.name!r}; valid: {', '.join(known) or '(none)'}")
    path = repo_root() / "benchmarks" / f"{args.name}.py"
    sys.argv = [str(path), *args.rest]
    runpy.run_path(str(path), run_name="__main__")
    return 0


def _paper_grid(args: argparse.Namespace) -> int:
    from .paper_grid import main_cli

    if args.save_costs and not args.estimate:
        raise CLIError("--save-costs goes with --estimate")
    if args.seeds is not None and any(s < 0 for s in args.seeds):
        raise CLIError(f"--seeds must be non-negative integers, got {args.seeds}")
    return main_cli(args)


def _run_options(p, results_dir: str) -> None:
    """The options ``convergence`` and ``select`` share: where the record goes, device, threads,
    progress bar, and whether a dirty tree may run."""
    p.add_argument("--results-dir", default=results_dir, help="where the record goes")
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument("--threads", type=_positive_int, default=1, help="CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--allow-dirty", action="store_true",
                   help="run from a git tree with uncommitted changes (the diff is saved beside the record)")


def _convergence(args: argparse.Namespace) -> int:
    from .convergence import convergence_curve, default_config, record_name
    from .paths import repo_root
    from .results import _resolve
    from .sweep import check_git_tree

    results_dir = _resolve(args.results_dir)
    check_git_tree(repo_root(), args.allow_dirty, [str(results_dir)])
    over = {"bits": args.bits, "seed": args.seed, "dataset": args.dataset, "device": args.device}
    over = {k: v for k, v in over.items() if v is not None}
    if args.threads is not None:
        over["num_threads" if args.paper == "dnnh" else "threads"] = args.threads
    cfg = default_config(args.paper, args.scale, **over)
    name = record_name(args.paper, cfg, args.max_multiple)
    ckdir = args.checkpoint_dir or (repo_root() / "data" / "cache" / "convergence" / name)
    path = results_dir / f"{name}.json"
    print(f"{args.paper}: {name} -> {path} (checkpoints in {ckdir})", flush=True)
    rec = convergence_curve(args.paper, cfg, eval_at=args.eval_at, max_multiple=args.max_multiple,
                            checkpoint_dir=ckdir, n_val_per_class=args.n_val_per_class, anchor=not args.no_anchor,
                            record_path=path, progress=not args.no_progress,
                            command="hashrepro " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    c = rec["curves"]["validation_map"]
    for it, v in zip(c["iterations"], c["validation_map"]):
        print(f"  {it:>7d} iterations  validation mAP {v:.4f}")
    print(f"verdict: {rec['convergence']['verdict']}; default schedule: {rec['convergence']['default_schedule_verdict']}")
    return 0


def _parse_grid(items: list[str]) -> dict[str, list]:
    """``["margin=1,2,4,8", "lr=0.01,0.03"]`` → ``{"margin": [1, 2, 4, 8], "lr": [0.01, 0.03]}`` (YAML values)."""
    grid: dict[str, list] = {}
    for item in items:
        key, eq, values = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise CLIError(f"--grid takes FIELD=V1,V2,... (e.g. margin=1,2,4,8), got {item!r}")
        if key in grid:
            raise CLIError(f"--grid field {key!r} given twice; give all its values once: {key}=V1,V2,...")
        vals = [yaml.safe_load(v) for v in values.split(",") if v.strip()]
        if not vals:
            raise CLIError(f"--grid {key}= has no values (e.g. {key}=1,2,4,8)")
        grid[key] = vals
    return grid


def _select(args: argparse.Namespace) -> int:
    import torch

    from .convergence import save_curve_record
    from .results import _resolve
    from .sweep import check_git_tree
    from .validation_select import candidates, default_config, record_name, select_on_validation

    grid = _parse_grid(args.grid)
    over: dict = {}
    for key, value in args.param or []:
        if key in over:
            raise CLIError(f"-p {key} given twice")
        over[key] = yaml.safe_load(value)
    for key, value in (("bits", args.bits), ("seed", args.seed), ("dataset", args.dataset), ("device", args.device)):
        if value is not None:
            if key in over:
                raise CLIError(f"give {key} with --{key}, not with -p")
            over[key] = value
    if args.paper != "mch":  # MCH's Config has no thread field: torch's threads are set around the run
        over["num_threads" if args.paper == "dnnh" else "threads"] = args.threads
    cfg = default_config(args.paper, args.scale, **over)
    candidates(cfg, grid)  # a bad grid: one line before any data is read
    name = record_name(args.paper, cfg, grid, args.n_val_per_class, args.n_val_database_per_class)
    results_dir = _resolve(args.results_dir)
    check_git_tree(repo_root(), args.allow_dirty, [str(results_dir)])
    path = results_dir / f"{name}.json"
    print(f"{args.paper}: {name} -> {path}", flush=True)
    old_threads = torch.get_num_threads()
    if args.paper == "mch":
        torch.set_num_threads(args.threads)
    try:
        rec = select_on_validation(args.paper, cfg, grid, n_val_per_class=args.n_val_per_class,
                                   n_val_database_per_class=args.n_val_database_per_class,
                                   progress=not args.no_progress, log=lambda line: print("  " + line, flush=True),
                                   command="hashrepro " + " ".join(shlex.quote(a) for a in args.argv))
    finally:
        torch.set_num_threads(old_threads)
    save_curve_record(rec, path)
    print(f"chosen: {rec['selection']['chosen_label']} (validation mAP {rec['metrics']['chosen_validation_map']:.4f})")
    return 0


def _book(args: argparse.Namespace) -> int:
    from .book import retitle_runs

    titles = retitle_runs(args.papers or None)
    print(f"{len(titles)} run notebook(s) titled")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hashrepro", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def debug_flag(p):
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="print the traceback of an error")

    sw = sub.add_parser("sweep", help="run chapter notebooks over a grid with papermill")
    sw.add_argument("papers", nargs="+", help="chapter name(s) (drsch dnnh ddh mch) or 'all'")
    sw.add_argument("--dataset", nargs="+")
    sw.add_argument("--bits", nargs="+", type=int)
    sw.add_argument("--seeds", nargs="+", type=int)
    sw.add_argument("--scale", nargs="+", choices=["smoke", "default", "paper"])
    sw.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                    help="another notebook parameter; repeat a name to add grid values")
    sw.add_argument("--defaults", action="store_true",
                    help="run each notebook once with its own defaults (embedded data); no grid options")
    sw.add_argument("--jobs", type=_positive_int, default=1, help="parallel runs (processes)")
    sw.add_argument("--threads", type=_positive_int, default=None,
                    help="CPU threads per run (default: $OMP_NUM_THREADS if set, else cores / jobs)")
    sw.add_argument("--engine", choices=["local", "dask"], default="local")
    sw.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://head:8786 (with --engine dask)")
    sw.add_argument("--connect-timeout", type=_positive_float, default=10.0,
                    help="seconds to wait for the Dask scheduler (default 10)")
    sw.add_argument("--results-dir", default=None,
                    help="where records go (default results, or results/local with --defaults)")
    sw.add_argument("--runs-dir", default=None,
                    help="where executed notebooks go (default book/runs, or book/runs/local with --defaults)")
    sw.add_argument("--force", action="store_true", help="rerun runs whose record is complete")
    sw.add_argument("--timeout", type=_positive_int, default=None, help="per-cell timeout in seconds")
    sw.add_argument("--allow-dirty", action="store_true",
                    help="run from a git tree with uncommitted changes (the diff is saved beside the records)")
    sw.add_argument("--dry-run", action="store_true", help="print the papermill commands only")
    debug_flag(sw)
    sw.set_defaults(func=_sweep)

    da = sub.add_parser("data", help="list or inspect datasets")
    da.add_argument("action", choices=["list", "show"])
    da.add_argument("name", nargs="?")
    da.add_argument("--root", default=None, help="data root (default $HASHREPRO_DATA or data/)")
    debug_flag(da)
    da.set_defaults(func=_data)

    be = sub.add_parser("bench", help="run a benchmark from benchmarks/")
    be.add_argument("name", help="a benchmark in benchmarks/: " + ", ".join(benchmarks()))
    be.add_argument("rest", nargs=argparse.REMAINDER)
    debug_flag(be)
    be.set_defaults(func=_bench)

    pg = sub.add_parser("paper-grid", help="the Table-2 grid of DNNH and DRSCH (both regimes, 3 seeds) on one "
                                           "device, or --estimate its GPU time from a few CPU iterations")
    pg.add_argument("--papers", nargs="+", choices=["dnnh", "drsch"], default=None)
    pg.add_argument("--regimes", nargs="+", choices=["scratch", "efficientnet_lite0"], default=None,
                    help="backbone regimes (default both)")
    pg.add_argument("--variants", nargs="+", default=None, help="a subset of the Table-2 variants")
    pg.add_argument("--bits", nargs="+", type=_positive_int, default=None, help="a subset of the Table-2 lengths")
    pg.add_argument("--seeds", nargs="+", type=int, default=None, help="default 0 1 2")
    pg.add_argument("--dataset", default="cifar10")
    pg.add_argument("--scale", choices=["smoke", "default", "paper"], default="paper")
    pg.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    pg.add_argument("--out", default=".", help="records go under OUT/results/<paper>/ (default: the repository)")
    pg.add_argument("--workers", type=_positive_int, default=1, help="processes sharing the device")
    pg.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads per worker")
    pg.add_argument("--estimate", "--dry-run", dest="estimate", action="store_true",
                    help="time a few CPU iterations of every configuration and print the projected GPU time; "
                         "writes no records")
    pg.add_argument("--estimate-iterations", type=_positive_int, default=2,
                    help="timed CPU iterations per distinct configuration (default 2)")
    pg.add_argument("--budget-minutes", type=_positive_float, default=None,
                    help="shorten every schedule so that the projected total fits (records marked shortened)")
    pg.add_argument("--deadline-minutes", type=_positive_float, default=None,
                    help="start no configuration after this many minutes")
    pg.add_argument("--costs", default=None, help="per-iteration costs from --estimate --save-costs (no re-measuring)")
    pg.add_argument("--save-costs", default=None, help="with --estimate: write the measured costs to this JSON")
    debug_flag(pg)
    pg.set_defaults(func=_paper_grid)

    cv = sub.add_parser("convergence", help="validation mAP vs iterations of a from-scratch recipe (resumable)")
    cv.add_argument("paper", choices=["dnnh", "drsch"])
    cv.add_argument("--dataset", default=None, help="default cifar10")
    cv.add_argument("--bits", type=_positive_int, default=None, help="default 48 (dnnh) / 32 (drsch)")
    cv.add_argument("--seed", type=int, default=None, help="default 0")
    cv.add_argument("--scale", choices=["smoke", "default"], default="default",
                    help="the schedule that is extended (default: the tables' 'default')")
    cv.add_argument("--max-multiple", type=_positive_float, default=10.0,
                    help="the long schedule is this many times the default one (default 10)")
    cv.add_argument("--eval-at", nargs="+", type=_positive_int, default=None,
                    help="iterations to evaluate at (default 0.1 0.25 0.5 1 2 3 5 7 10 x the default)")
    cv.add_argument("--n-val-per-class", type=_positive_int, default=50,
                    help="validation queries per class, held out of the training images (default 50)")
    cv.add_argument("--no-anchor", action="store_true", help="skip the default-schedule anchor run")
    cv.add_argument("--checkpoint-dir", default=None,
                    help="resumable state (default data/cache/convergence/<record name>); rerun to continue")
    _run_options(cv, "results/convergence")
    debug_flag(cv)
    cv.set_defaults(func=_convergence)

    se = sub.add_parser("select", help="choose hyperparameters on a validation split of the training images "
                                       "(never the queries); mch: its base hashing model X alone (MCH §4.1)")
    se.add_argument("paper", choices=["dnnh", "drsch", "mch"])
    se.add_argument("--grid", action="append", required=True, metavar="FIELD=V1,V2,...",
                    help="values of a Config field to try (repeat for a product), e.g. margin=1,2,4,8 "
                         "(mch: X's training fields only, e.g. finetune_lr_mult=0.03,0.1,0.3 or base_iters=...)")
    se.add_argument("--dataset", default=None, help="default cifar10 (dnnh, drsch) / mosaic-mnist5k (mch)")
    se.add_argument("--bits", type=_positive_int, default=None, help="default 48 (dnnh) / 32 (drsch, mch)")
    se.add_argument("--seed", type=int, default=None, help="default 0")
    se.add_argument("--scale", choices=["smoke", "default", "paper"], default="default")
    se.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                    help="another Config field of every candidate, e.g. -p backbone efficientnet_lite0")
    se.add_argument("--n-val-per-class", type=_positive_int, default=None,
                    help="validation queries per class, held out of the training images (default 50; mch: 10)")
    se.add_argument("--n-val-database-per-class", type=_positive_int, default=None,
                    help="hold out this many further training images per class as the validation database "
                         "(mirrors a test database without the training images, DRSCH's); default: the "
                         "validation database is the rows that train (DNNH's and MCH's protocol)")
    _run_options(se, "results/validation")
    debug_flag(se)
    se.set_defaults(func=_select)

    bo = sub.add_parser("book", help="maintain the book's executed run notebooks")
    bo.add_argument("action", choices=["retitle"],
                    help="retitle: give every run notebook under book/runs a title naming the run, "
                         "and shrink its figures")
    bo.add_argument("papers", nargs="*",
                    help=f"chapters (default all): {' '.join(PAPERS)}")
    debug_flag(bo)
    bo.set_defaults(func=_book)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if isinstance(exc, ValueError):  # bad input: its message says it all
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # recorded as the run's command
    debug = bool(getattr(args, "debug", False) or os.environ.get("HASHREPRO_DEBUG"))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("hashrepro: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error is reported, in one line
        if debug:
            traceback.print_exc()
        hint = "" if debug or isinstance(exc, ValueError) else " (hashrepro --debug ... shows the traceback)"
        print(f"hashrepro: error: {_one_line(exc)}{hint}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


if __name__ == "__main__":
    sys.exit(main())
