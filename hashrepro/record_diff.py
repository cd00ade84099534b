"""Compare two run records number by number: did a change of code change a result?

Issue 14's target for a refactor is "every committed number unchanged": re-run a sample of
records from the new commit and compare them *exactly* with the committed ones. Two records of
the same configuration differ legitimately in when and where they ran (wall and CPU times, start
and finish stamps, commit, command, package versions, device string); everything else — config,
protocol, metrics, curves, method, dataset, bits, seed, scale, flags — must be identical.

Use::

    from hashrepro.record_diff import diff_records
    diff_records(old, new)            # [] when identical, else one line per differing field

    python -m hashrepro.record_diff results/drsch/a.json /tmp/rerun/drsch/a.json [--tolerance 0]

The command prints one line per difference and exits 1 when there is any (0 when identical, 2 on
bad input).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["VOLATILE_KEYS", "is_volatile", "diff_records", "diff_files", "main"]

#: Top-level record keys that say when/where/with what a run happened, not what it computed.
VOLATILE_KEYS = frozenset({
    "command", "git_commit", "git_dirty", "git_diff_sha256", "git_patch", "git_read_at", "git_source", "versions",
    "device", "wall_time_s", "started", "finished", "complete", "schema",
})
#: Keys at any depth whose values are timings (seconds, throughput) or machine-dependent.
_VOLATILE_LEAF = re.compile(r"(^|_)(time|times|wall|seconds|elapsed|per_s|throughput)(_|$)|_s$|_ms$|^timing|"
                            r"^device$|^num_threads$|^threads$|read_s$|^host")


def is_volatile(path: str) -> bool:
    """True when the dotted ``path`` names a timing or provenance field (left out of the comparison).

    ``metrics.train_time_s``, ``wall_time_s``, ``protocol.feature_read_s``, ``config.device`` are
    volatile; ``metrics.map`` or ``curves.loss`` are not.
    """
    parts = path.split(".")
    if parts[0] in VOLATILE_KEYS:
        return True
    return any(_VOLATILE_LEAF.search(p) for p in parts[1:])


def _close(a: float, b: float, tol: float) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if tol == 0:
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _walk(a: Any, b: Any, path: str, tol: float, out: list[str], limit: int) -> None:
    if len(out) >= limit or (path and is_volatile(path)):
        return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if is_volatile(p):
                continue
            if k not in a:
                out.append(f"{p}: only in the second record")
            elif k not in b:
                out.append(f"{p}: only in the first record")
            else:
                _walk(a[k], b[k], p, tol, out, limit)
        return
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} vs {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{path}[{i}]", tol, out, limit)
        return
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        if not _close(float(a), float(b), tol):
            out.append(f"{path}: {a!r} vs {b!r}")
        return
    if a != b:
        out.append(f"{path}: {a!r} vs {b!r}")


def diff_records(first: Mapping, second: Mapping, tolerance: float = 0.0,
                 ignore: Iterable[str] = (), limit: int = 50) -> list[str]:
    """Differences between two records, one line each (``[]`` when they computed the same thing).

    first, second : run records (dicts as written by :func:`hashrepro.results.save_run`).
    tolerance : relative tolerance on numbers (0 = exact, the default: a refactor must not move a
        single bit of a result on the same machine).
    ignore : further dotted paths (prefixes) to leave out, e.g. ``"config.progress"``.
    limit : stop after this many differences.
    """
    if not isinstance(first, Mapping) or not isinstance(second, Mapping):
        raise TypeError(f"records must be dicts, got {type(first).__name__} and {type(second).__name__}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 (0 = exact), got {tolerance}")
    ignore = tuple(ignore)
    out: list[str] = []
    _walk(first, second, "", float(tolerance), out, limit)
    return [d for d in out if not any(d.startswith(i) for i in ignore)]


def _load(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no record at {p} (give the path of a run record .json)")
    try:
        rec = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not JSON ({exc.msg} at line {exc.lineno}); give a run record .json") from None
    if not isinstance(rec, dict) or "metrics" not in rec:
        raise ValueError(f"{p} is not a run record (a JSON object with 'metrics')")
    return rec


def diff_files(first: str, second: str, tolerance: float = 0.0, ignore: Iterable[str] = ()) -> list[str]:
    """:func:`diff_records` of two record files."""
    return diff_records(_load(first), _load(second), tolerance=tolerance, ignore=ignore)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hashrepro.record_diff",
                                 description="Compare two run records, leaving out timings and provenance.")
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--tolerance", type=float, default=0.0, help="relative tolerance on numbers (default 0: exact)")
    ap.add_argument("--ignore", action="append", default=[], help="dotted path prefix to leave out (repeatable)")
    args = ap.parse_args(argv)
    try:
        diffs = diff_files(args.first, args.second, args.tolerance, args.ignore)
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for d in diffs:
        print(d)
    print(f"{'identical' if not diffs else f'{len(diffs)} difference(s)'}: {args.first} vs {args.second}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
