"""Per-task lock files, so that two sweeps can share one results folder (:class:`TaskLock`)."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

__all__ = ["TaskLock"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


class TaskLock:
    """A lock file claiming one task for one sweep: ``<record>.json.lock`` holding JSON
    ``{"pid", "host", "started", "run"}``.

    :meth:`acquire` creates the file atomically (``O_CREAT | O_EXCL``), so of two sweeps racing
    for a task exactly one wins. A lock whose pid is dead on this host, or an unreadable lock
    older than ``stale_after_s`` (a sweep killed while writing it), is stale and is taken over.
    A lock from another host is never judged stale (its pid means nothing here): delete it by
    hand if that sweep is gone.
    """

    stale_after_s = 60.0

    def __init__(self, path: str | os.PathLike, run: str = ""):
        self.path = Path(path)
        self.run = run
        self.held = False

    def _info(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": self.run}

    def owner(self) -> dict | None:
        """The lock's content (``{}`` when unreadable), or None when there is no lock."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError:
            return {}
        try:
            info = json.loads(text)
            return info if isinstance(info, dict) else {}
        except ValueError:
            return {}

    def is_stale(self, info: dict) -> bool:
        """True when ``info`` (from :meth:`owner`) names no live owner."""
        pid, host = info.get("pid"), info.get("host")
        if isinstance(pid, int) and host:
            return host == socket.gethostname() and not _pid_alive(pid)
        try:  # unreadable or half-written: stale once it is old
            return time.time() - self.path.stat().st_mtime > self.stale_after_s
        except FileNotFoundError:
            return True

    def acquire(self) -> dict | None:
        """Take the lock: None on success, else the live owner's info (``pid``, ``host``, ...)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = self.owner()
                if info is None:
                    continue  # released meanwhile: try again
                if not self.is_stale(info):
                    return info
                # Take a stale lock over, unless it changed since we judged it (then judge again).
                if self.owner() == info:
                    self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self._info(), f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return None
        return self.owner() or {"pid": None, "host": None}

    def release(self) -> None:
        """Remove the lock if this process holds it (never another sweep's lock)."""
        if not self.held:
            return
        self.held = False
        info = self.owner()
        if info is not None and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)
