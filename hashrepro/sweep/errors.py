"""The error a sweep that cannot start raises, and the one-line messages it gives."""
from __future__ import annotations

import re

__all__ = ["SweepError"]


class SweepError(ValueError):
    """A sweep that cannot start: bad options, a dirty tree, an unreachable scheduler."""


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _one_line(text: str, limit: int = 400) -> str:
    """``text`` without colour codes and with its non-blank lines joined, cut at ``limit``."""
    text = _ANSI.sub("", str(text))
    out = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return out if len(out) <= limit else out[: limit - 1] + "…"
