"""Run chapter notebooks over a grid with papermill: resumable, parallel, optionally on Dask.

A *task* is one notebook run with one set of parameters. Its outputs are

* the run record ``results/<paper>/<run_name>.json`` (written atomically by the notebook through
  :func:`hashrepro.results.save_run`), and
* the executed notebook ``book/runs/<paper>/<run_name>.ipynb`` (written to a temporary file and
  renamed into place only when the run succeeded).

A task counts as done only when both exist and the record is complete, so an interrupted sweep
rerun redoes exactly the runs that did not finish, and a half-written file is never trusted.

Two sweeps may share one results folder: before a task runs, the sweep creates the lock file
``results/<paper>/<run_name>.json.lock`` atomically (``O_CREAT | O_EXCL``) holding its pid and
host; another sweep that finds the lock of a live process skips the task (status ``busy``), and
a lock left by a dead process on this host is taken over. A sweep refuses a git tree with
uncommitted changes to tracked files unless ``allow_dirty=True`` (``--allow-dirty``); the diff
is then saved as ``<results_dir>/patches/<diff_sha256>.patch`` beside the records that name it.

Example
-------
>>> from hashrepro.sweep import build_grid, run_sweep           # doctest: +SKIP
>>> tasks = build_grid("dnnh", dataset=["cifar10"], bits=[12, 24], seed=[0], scale=["default"])
>>> summary = run_sweep(tasks, jobs=2)

Layout: the grid, the task runner and :func:`run_sweep` here; lock files in
:mod:`hashrepro.sweep.locks`, the dirty-tree check in :mod:`hashrepro.sweep.git_tree`, the
engines (inline, process pool, Dask) in :mod:`hashrepro.sweep.engines`.
"""
from __future__ import annotations

import ast
import itertools
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..atomic import atomic_write
from ..paths import PAPERS, notebooks_root, repo_root
from ..run_names import run_name_for
from .engines import _DaskEngine, _InlineEngine, _PoolEngine
from .errors import SweepError, _one_line
from .git_tree import check_git_tree
from .locks import TaskLock

__all__ = [
    "Task",
    "TaskResult",
    "SweepSummary",
    "notebook_parameters",
    "build_grid",
    "defaults_tasks",
    "run_name_for",
    "is_done",
    "execute_task",
    "run_sweep",
    "SweepError",
    "TaskLock",
    "describe_failure",
    "check_git_tree",
]

#: Order of the grid axes in run names.
GRID_AXES = ("dataset", "bits", "seed", "scale")
#: Parameters every chapter notebook must declare (the sweep sets them).
REQUIRED_PARAMETERS = ("results_dir", "run_name")


@dataclass(frozen=True)
class Task:
    """One notebook run.

    Attributes
    ----------
    paper : chapter name (``notebooks/<paper>.ipynb``).
    parameters : papermill parameters, including ``results_dir`` and ``run_name``.
    record_path, notebook_path : where the run's record and executed notebook end up.
    """

    paper: str
    parameters: dict
    run_name: str
    record_path: str
    notebook_path: str

    @property
    def notebook(self) -> Path:
        return notebooks_root() / f"{self.paper}.ipynb"


@dataclass
class TaskResult:
    """What happened to one task.

    ``status`` is ``done``, ``skipped`` (its record was already complete), ``busy`` (another live
    sweep holds its lock and is running it) or ``failed``; ``error`` is one line saying why.
    """

    task: Task
    status: str
    wall_time_s: float = 0.0
    error: str = ""
    record: dict | None = None
    notebook_json: str | None = None


@dataclass
class SweepSummary:
    """Counts and per-run results of a sweep; ``ok`` is False if any run failed."""

    results: list[TaskResult] = field(default_factory=list)
    wall_time_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    def table(self) -> str:
        lines = [f"{'status':8s} {'wall (s)':>9s}  run"]
        for r in self.results:
            lines.append(f"{r.status:8s} {r.wall_time_s:9.1f}  {r.task.paper}/{r.task.run_name}"
                         + (f"  ({r.error.splitlines()[-1][:300]})" if r.error else ""))
        busy = f"{self.count('busy')} running in another sweep, " if self.count("busy") else ""
        lines.append(f"{self.count('done')} done, {self.count('skipped')} skipped, {busy}"
                     f"{self.count('failed')} failed in {self.wall_time_s:.1f} s")
        return "\n".join(lines)


def notebook_parameters(paper_or_path: str | os.PathLike) -> dict[str, Any]:
    """Names and default values of a notebook's ``parameters`` cell (via papermill).

    Raises ValueError when the notebook does not exist or has no tagged parameters cell.
    """
    import papermill

    path = Path(paper_or_path)
    if path.suffix != ".ipynb":
        path = notebooks_root() / f"{paper_or_path}.ipynb"
    if not path.is_file():
        known = sorted(p.stem for p in notebooks_root().glob("*.ipynb"))
        raise ValueError(f"no notebook {path}; known chapters: {', '.join(known) or '(none)'}")
    params = papermill.inspect_notebook(str(path))
    if not params:
        raise ValueError(f"{path} has no cell tagged 'parameters'")
    from ..provenance import _notebook_defaults

    unparsed = sorted(set(_notebook_defaults(str(path), path.stat().st_mtime)) - set(params))
    if unparsed:  # papermill skips a line it cannot parse (e.g. an "=" in its comment) and would reject -p
        raise ValueError(f"papermill cannot parse the parameters cell line(s) of {', '.join(unparsed)} in {path} "
                         "(papermill reads 'name = value  # comment'; keep '=' out of the comment)")
    out = {}
    for name, info in params.items():
        default = info.get("default")
        out[name] = _literal(default)
    return out


def _literal(text: Any) -> Any:
    """A parameter's default source text as a Python value (the text itself if not a literal)."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _check_parameters(paper: str, names: Iterable[str]) -> dict[str, Any]:
    declared = notebook_parameters(paper)
    missing_required = [r for r in REQUIRED_PARAMETERS if r not in declared]
    if missing_required:
        raise ValueError(f"notebooks/{paper}.ipynb must declare {missing_required} in its parameters cell")
    unknown = sorted(set(names) - set(declared))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for notebooks/{paper}.ipynb; "
            f"valid: {', '.join(sorted(declared))}")
    return declared


def _validate_task_parameters(paper: str, params: dict) -> None:
    """The chapter's own parameter check (``hashrepro.params.validate_task_parameters``), when the
    package has one: wrong types or values fail here, before any notebook starts (ValueError)."""
    try:
        from ..params import validate_task_parameters
    except ImportError:  # older checkouts have no hashrepro.params
        return
    validate_task_parameters(paper, params)


def _expand_papers(papers: str | Sequence[str]) -> list[str]:
    if isinstance(papers, str):
        papers = [papers]
    out: list[str] = []
    for p in papers:
        if p == "all":
            out.extend(x for x in PAPERS if (notebooks_root() / f"{x}.ipynb").is_file())
        elif (notebooks_root() / f"{p}.ipynb").is_file():
            out.append(p)
        else:
            known = sorted(x.stem for x in notebooks_root().glob("*.ipynb"))
            raise ValueError(f"unknown paper {p!r}; valid: all, {', '.join(known)}")
    return out


def build_grid(
    papers: str | Sequence[str],
    results_dir: str = "results",
    runs_dir: str = "book/runs",
    **axes: Sequence[Any] | Any,
) -> list[Task]:
    """The cross product of the given parameter axes, for each paper.

    Parameters
    ----------
    papers : a chapter name, a list of them, or ``"all"``.
    results_dir, runs_dir : output folders, relative to the repository root.
    **axes : parameter name → list of values (a scalar means one value), e.g.
        ``dataset=["cifar10"], bits=[12, 24], seed=[0, 1], scale=["default"], variant=["dem", "fc"]``.
        Every name must be a parameter of the notebook (checked: unknown names are an error).
    """
    axes = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in axes.items() if v is not None}
    for k, v in axes.items():
        if not v:
            raise ValueError(f"axis {k!r} has no values")
    tasks = []
    for paper in _expand_papers(papers):
        _check_parameters(paper, axes)
        names = list(axes)
        for combo in itertools.product(*(axes[n] for n in names)):
            params = dict(zip(names, combo))
            name = run_name_for(paper, params)
            params.update(results_dir=results_dir, run_name=name)
            _validate_task_parameters(paper, params)
            tasks.append(Task(paper, params, name,
                              str(Path(results_dir) / paper / f"{name}.json"),
                              str(Path(runs_dir) / paper / f"{name}.ipynb")))
    names = [t.paper + "/" + t.run_name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError("two grid points map to the same run name; give distinct values")
    return tasks


def defaults_tasks(papers: str | Sequence[str] = "all", results_dir: str = "results/local",
                   runs_dir: str = "book/runs/local") -> list[Task]:
    """One task per notebook with its own small defaults (the embedded-data run)."""
    tasks = []
    for paper in _expand_papers(papers):
        _check_parameters(paper, [])
        name = f"{paper}_defaults"
        params = {"results_dir": results_dir, "run_name": name}
        _validate_task_parameters(paper, params)
        tasks.append(Task(paper, params, name, str(Path(results_dir) / paper / f"{name}.json"),
                          str(Path(runs_dir) / f"{paper}.ipynb")))
    return tasks


def _record_complete(path: Path) -> bool:
    from ..results import is_complete

    return is_complete(path)


def is_done(task: Task, root: Path | None = None) -> bool:
    """True when the task's record is complete and its executed notebook exists."""
    root = root or repo_root()
    return _record_complete(root / task.record_path) and (root / task.notebook_path).is_file()


def describe_failure(exc: BaseException, timeout: float | None = None) -> str:
    """One line saying why a notebook run failed (the reason, not a traceback's last line).

    * a cell over the per-cell ``timeout`` → ``timed out after 1 s in one cell ...``
    * an exception inside the notebook → ``<ExceptionName>: <message> (cell [n])``
    * a dead kernel → ``the kernel died ...``; anything else → ``<ExceptionName>: <message>``
    """
    name = type(exc).__name__
    if name == "CellTimeoutError":
        limit = f"{timeout:g} s" if timeout else "the per-cell time limit"
        return f"timed out after {limit} in one cell (raise --timeout, or leave it out for no limit)"
    if name == "DeadKernelError":
        return f"the kernel died (out of memory or killed): {_one_line(str(exc), 200)}"
    if name == "PapermillExecutionError":
        ename = getattr(exc, "ename", "") or "Error"
        evalue = _one_line(getattr(exc, "evalue", "") or "")
        cell = getattr(exc, "exec_count", None)
        return f"{ename}: {evalue}" + (f" (cell [{cell}])" if cell is not None else "")
    msg = _one_line(str(exc))
    return f"{name}: {msg}" if msg else name


def execute_task(task: Task, root: str | None = None, threads: int | None = None,
                 timeout: int | None = None) -> TaskResult:
    """Execute one notebook with papermill (in the calling process; a kernel is started).

    The notebook writes its run record itself; the executed notebook gets a title naming the run
    (:func:`hashrepro.book.finish_run_notebook`), is written to a temporary file and renamed into
    ``task.notebook_path`` on success. On failure the partial notebook is kept under
    ``_build/sweep-failed/`` for inspection and nothing is written to the run folders; the
    result's ``error`` is one line (:func:`describe_failure`). The record and notebook text are
    returned so that a driver on another machine can store them.
    """
    import papermill

    from ..book import finish_run_notebook

    root_p = Path(root) if root else repo_root()
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(threads)
    os.environ["HASHREPRO_ROOT"] = str(root_p)
    final_nb = root_p / task.notebook_path
    final_nb.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = root_p / "_build" / "sweep-tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp_nb = tmp_dir / f"{task.paper}-{task.run_name}-{os.getpid()}.ipynb"
    record_path = root_p / task.record_path
    if record_path.exists() and not _record_complete(record_path):
        record_path.unlink()  # a half-written record from an interrupted run is never trusted
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(root_p / "notebooks" / f"{task.paper}.ipynb"), str(tmp_nb),
            parameters=task.parameters, cwd=str(root_p), kernel_name="python3",
            progress_bar=False, log_output=False, execution_timeout=timeout)
        wall = time.perf_counter() - t0
        if not _record_complete(record_path):
            raise RuntimeError(f"the notebook finished but wrote no complete record at {task.record_path}")
        finish_run_notebook(tmp_nb, task.paper, task.parameters,
                            index_link=task.paper in PAPERS and Path(task.notebook_path).parent.name == task.paper)
        text = tmp_nb.read_text()
        os.replace(tmp_nb, final_nb)
        return TaskResult(task, "done", wall, record=json.loads(record_path.read_text()), notebook_json=text)
    except BaseException as exc:  # noqa: BLE001 - reported, never swallowed silently
        wall = time.perf_counter() - t0
        failed = root_p / "_build" / "sweep-failed"
        failed.mkdir(parents=True, exist_ok=True)
        kept = failed / f"{task.paper}-{task.run_name}.ipynb"
        if tmp_nb.exists():
            shutil.move(str(tmp_nb), kept)
        if isinstance(exc, KeyboardInterrupt):
            raise
        msg = describe_failure(exc, timeout)
        if kept.exists():
            msg += f"; partial notebook: {kept.relative_to(root_p)}"
        return TaskResult(task, "failed", wall, error=msg)


def _store_locally(result: TaskResult, root: Path) -> None:
    """Make sure a remote worker's outputs exist on this machine (no-op on a shared disk)."""
    if result.status != "done":
        return
    rec = root / result.task.record_path
    if not _record_complete(rec) and result.record is not None:
        atomic_write(rec, json.dumps(result.record, indent=1))
    nb = root / result.task.notebook_path
    if not nb.is_file() and result.notebook_json is not None:
        atomic_write(nb, result.notebook_json)


def _lock_for(task: Task, root: Path) -> TaskLock:
    return TaskLock(root / f"{task.record_path}.lock", run=f"{task.paper}/{task.run_name}")


def _positive(name: str, value: Any, kind=int, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        raise SweepError(f"{name} must be a positive {'integer' if kind is int else 'number'}, got {value!r}")
    return kind(value)


def run_sweep(
    tasks: Sequence[Task],
    jobs: int = 1,
    engine: str = "local",
    scheduler: str | None = None,
    force: bool = False,
    timeout: int | None = None,
    progress: bool | None = None,
    echo=print,
    allow_dirty: bool = False,
    connect_timeout: float = 10.0,
    threads: int | None = None,
) -> SweepSummary:
    """Run the tasks that are not done yet; return a :class:`SweepSummary`.

    Parameters
    ----------
    jobs : parallel notebook runs (processes) on this machine, or Dask workers of a local cluster.
    engine : ``"local"`` (a process pool) or ``"dask"`` (Dask distributed: ``scheduler`` is the
        address of an existing cluster, e.g. ``tcp://head:8786``; without one a ``LocalCluster``
        with ``jobs`` worker processes is started). Workers must have this repository and its
        environment; outputs are copied back to this machine when they do not share its disk.
    force : rerun tasks even when their record is complete.
    timeout : per-cell time limit in seconds (None: no limit).
    allow_dirty : run from a git tree with uncommitted changes (the diff is saved beside the
        records, see :func:`check_git_tree`); without it such a tree is refused.
    connect_timeout : seconds to wait for the Dask ``scheduler`` before giving up.
    threads : CPU threads per run (OMP/MKL/OpenBLAS). None: ``$OMP_NUM_THREADS`` when it is set,
        else the machine's cores divided by ``jobs``. On a machine shared with other work, more
        threads than free cores makes small-tensor training many times slower (OpenMP threads
        spin-wait for each other; measured: DRSCH on cached features 850 s per run with 2 threads
        on a loaded 2-core machine against 77 s on an idle one).

    Tasks locked by another live sweep (:class:`TaskLock`) are reported ``busy`` and not run.
    Raises :class:`SweepError` for bad options, a dirty tree or an unreachable scheduler.
    """
    from tqdm.auto import tqdm

    jobs = _positive("jobs", jobs)
    timeout = _positive("timeout", timeout, allow_none=True)
    connect_timeout = _positive("connect_timeout", connect_timeout, kind=float)
    if engine not in ("local", "dask"):
        raise SweepError(f"engine must be 'local' or 'dask', got {engine!r}")
    if scheduler and engine != "dask":
        raise SweepError("a scheduler address needs engine='dask' (--engine dask)")
    root = repo_root()
    check_git_tree(root, allow_dirty, {t.parameters.get("results_dir", "results") for t in tasks})
    summary = SweepSummary()
    t0 = time.perf_counter()
    todo = []
    for t in tasks:
        if not force and is_done(t, root):
            summary.results.append(TaskResult(t, "skipped"))
        else:
            todo.append(t)
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // jobs)
    threads = _positive("threads", threads)
    n_total = len(tasks)
    for r in summary.results:
        echo(f"[skip] {r.task.paper}/{r.task.run_name} (complete record exists)")
    if not todo:
        summary.wall_time_s = time.perf_counter() - t0
        return summary
    if engine == "dask":
        eng = _DaskEngine(jobs, scheduler, connect_timeout)
    elif jobs == 1:
        eng = _InlineEngine()
    else:
        eng = _PoolEngine(jobs)
    bar = tqdm(total=n_total, initial=n_total - len(todo), desc="sweep", unit="run",
               disable=(not progress) if progress is not None else None, file=sys.stderr)

    def report(res: TaskResult):
        summary.results.append(res)
        bar.update(1)
        line = (f"[{len(summary.results)}/{n_total}] {res.status:7s} {res.wall_time_s:8.1f} s  "
                f"{res.task.paper}/{res.task.run_name}")
        if res.error:
            line += f"\n    {res.error.splitlines()[-1][:400]}"
        tqdm.write(line) if echo is print else echo(line)

    pending = list(todo)
    running: dict[Any, tuple[Task, TaskLock]] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                t = pending.pop(0)
                if not force and is_done(t, root):  # finished by another sweep meanwhile
                    report(TaskResult(t, "skipped"))
                    continue
                lock = _lock_for(t, root)
                owner = lock.acquire()
                if owner is not None:
                    where = f"pid {owner.get('pid')} on {owner.get('host')}"
                    report(TaskResult(t, "busy", error=f"another sweep ({where}) is running it; its lock is "
                                                       f"{t.record_path}.lock"))
                    continue
                if not force and is_done(t, root):  # another sweep finished it just before we locked it
                    lock.release()
                    report(TaskResult(t, "skipped"))
                    continue
                try:
                    fut = eng.submit(execute_task, t, str(root), threads, timeout)
                except BaseException:
                    lock.release()
                    raise
                running[fut] = (t, lock)
            if not running:
                break
            for fut in eng.wait_first(list(running)):
                t, lock = running.pop(fut)
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died, a pickling error
                    res = TaskResult(t, "failed", error=describe_failure(exc, timeout))
                if eng.remote:
                    _store_locally(res, root)
                lock.release()
                report(res)
    finally:
        for _t, lock in running.values():
            lock.release()
        eng.close()
        bar.close()
        summary.wall_time_s = time.perf_counter() - t0
    return summary
