"""The lock table of live runs (``runs/active/`` in the repository's machine-local
state directory, outside the repository): which runs are alive and what they touch.

Each run holds an OS lock on ``active/<run_id>.lock`` for its whole life and
describes itself in ``active/<run_id>.json`` (its scope, the snapshot of the
attempt in progress, the tool's pid). Two runs whose scopes overlap never
work at the same time; a run whose lock is free has died, and the next aim
command restores what it left (:mod:`aim_core.recovery`).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from aim_core.errors import Interrupted
from aim_core.locks import FileLock, is_free
from aim_core.scope import Scope

ACTIVE = "active"
RECENT = "recent"  # entries of runs that ended lately: their changes are theirs, not ours
RECENT_KEEP_S = 24 * 3600
MTIME_SLACK_S = 5.0  # a file's mtime and time.time() may disagree by a clock tick or two
TABLE_LOCK = ".table.lock"
HEARTBEAT_S = 0.25


def _write_json(path: Path, data: dict[str, Any], memo: dict[str, str] | None = None) -> None:
    """Write ``data`` with every string redacted (``memo``: strings already redacted)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_redacted(data, {} if memo is None else memo)), encoding="utf-8")
    os.replace(tmp, path)


def _redacted(value: Any, memo: dict[str, str]) -> Any:
    """``value`` with each string -- dict keys included -- redacted on its own
    (:func:`~aim_core.security.redact_data` of that string); ``memo`` keeps what each
    string became, so an entry rewritten many times (the heartbeat) scans each string once."""
    if isinstance(value, str):
        clean = memo.get(value)
        if clean is None:
            from aim_core.security import redact_data

            clean = memo[value] = redact_data(value, entropy=False)
        return clean
    if isinstance(value, dict):
        return {_redacted(k, memo): _redacted(v, memo) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v, memo) for v in value]
    return value


class ActiveRun:
    """This process's entry in the lock table."""

    def __init__(self, table: RunTable, run_id: str, entry: dict[str, Any], lock: FileLock):
        self.table = table
        self.run_id = run_id
        self.entry = entry
        self._lock = lock
        self._write_lock = threading.Lock()
        self._memo: dict[str, str] = {}  # string -> redacted, for the rewrites of the entry

    @property
    def path(self) -> Path:
        return self.table.active / f"{self.run_id}.json"

    def update(self, **fields: Any) -> None:
        """Change the entry (atomically), e.g. the snapshot or the tool's pid."""
        with self._write_lock:
            self.entry.update(fields)
            _write_json(self.path, self.entry, self._memo)

    @contextlib.contextmanager
    def heartbeat(self, every_s: float = HEARTBEAT_S) -> Iterator[None]:
        """While the block runs, write ``alive_at`` (wall time) every ``every_s``: after
        a crash, recovery knows until when the attempt's changes were the tool's."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(every_s):
                with contextlib.suppress(OSError):
                    self.update(alive_at=time.time())

        self.update(alive_at=time.time())
        t = threading.Thread(target=beat, name=f"aim-heartbeat-{self.run_id}", daemon=True)
        t.start()
        try:
            yield
        finally:
            done.set()
            t.join()
            with contextlib.suppress(OSError):
                self.update(alive_at=time.time())

    def release(self) -> None:
        """Leave the table: the entry moves to ``recent/``, the lock goes."""
        recent = self.table.runs_dir / RECENT
        recent.mkdir(exist_ok=True)
        entry = {**self.entry, "finished": time.time()}
        _write_json(recent / f"{self.run_id}.json", entry, self._memo)
        self.path.unlink(missing_ok=True)
        self._lock.release()
        (self.table.active / f"{self.run_id}.lock").unlink(missing_ok=True)


def _listing(directory: Path) -> list[tuple[str, float]]:
    """``(path, mtime)`` of the ``*.json`` files in ``directory`` (none if it is missing)."""
    out: list[tuple[str, float]] = []
    try:
        with os.scandir(directory) as it:
            for e in it:
                if e.name.endswith(".json"):
                    with contextlib.suppress(OSError):  # removed meanwhile
                        out.append((e.path, e.stat(follow_symlinks=False).st_mtime))
    except OSError:
        pass
    return out


class RunTable:
    """The table of live runs of one registry."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self.active = runs_dir / ACTIVE

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, each with ``"alive"`` telling whether its run still holds its lock."""
        out: list[dict[str, Any]] = []
        if not self.active.is_dir():
            return out
        for p in sorted(self.active.glob("*.json")):
            try:
                entry = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            entry["alive"] = not is_free(self.active / f"{p.stem}.lock")
            out.append(entry)
        return out

    def join(
        self,
        run_id: str,
        root: Path,
        scope: Iterable[str],
        *,
        info: dict[str, Any] | None = None,
        on_wait: Callable[[dict[str, Any]], None] | None = None,
        poll_s: float = 0.2,
        stop: threading.Event | None = None,
        recover: Callable[[], object] | None = None,
    ) -> ActiveRun:
        """Enter the table, first waiting while a live run's scope overlaps ours; a dead
        run whose scope overlaps ours is recovered first (``recover``), so its restore
        never lands on our work."""
        self.active.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.active / f"{run_id}.lock")
        lock.acquire()
        mine = Scope(root, scope)
        entry = {"run_id": run_id, "pid": os.getpid(), "scope": list(scope), **(info or {})}
        waited_for: str | None = None
        while True:
            with FileLock(self.runs_dir / TABLE_LOCK):
                blocker = next(
                    (
                        e
                        for e in self.entries()
                        if (e["alive"] or recover is not None)
                        and e["run_id"] != run_id
                        and mine.overlaps(Scope(root, e.get("scope", [])))
                    ),
                    None,
                )
                if blocker is None:
                    run = ActiveRun(self, run_id, entry, lock)
                    run.update(started=time.time())
                    return run
            if not blocker["alive"] and recover is not None:
                recover()
                continue
            if on_wait is not None and blocker["run_id"] != waited_for:
                on_wait(blocker)
                waited_for = blocker["run_id"]
            if stop is not None and stop.wait(poll_s):
                lock.release()
                raise Interrupted()
            if stop is None:
                time.sleep(poll_s)

    def other_scopes(self, run_id: str, since: float) -> list[str]:
        """The scope entries of every other run alive now or at any time after ``since``
        (the changes in them are those runs', not ours to judge)."""
        out: list[str] = []
        for e in self.entries():
            if e["alive"] and e["run_id"] != run_id:
                out.extend(e.get("scope", []))
        now = time.time()
        for path, mtime in _listing(self.runs_dir / RECENT):
            if mtime < since - MTIME_SLACK_S:
                # written when its run ended (release), before ``since``: not read, so
                # an attempt costs the same after a day of thousands of runs
                if now - mtime > RECENT_KEEP_S:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    e = json.load(f)
            except (OSError, ValueError):
                continue
            if e.get("finished", 0) >= since and e.get("run_id") != run_id:
                out.extend(e.get("scope", []))
        return out

    def dead(self) -> list[dict[str, Any]]:
        """Entries of runs that died (their lock is free)."""
        return [e for e in self.entries() if not e["alive"]]

    @contextlib.contextmanager
    def claim(self, run_id: str) -> Iterator[dict[str, Any] | None]:
        """Hold a dead run's lock while recovering it: yields its entry, or None when
        it is alive or another aim command recovers (or recovered) it already."""
        lock = FileLock(self.active / f"{run_id}.lock")
        if not lock.acquire(blocking=False):
            yield None
            return
        try:
            path = self.active / f"{run_id}.json"
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                entry = None
            yield entry
        finally:
            lock.release()

    def forget(self, run_id: str) -> None:
        """Remove a dead run's entry."""
        (self.active / f"{run_id}.json").unlink(missing_ok=True)
        (self.active / f"{run_id}.lock").unlink(missing_ok=True)
