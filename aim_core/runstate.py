"""``RunState``: what one workstream run holds while it goes, and how it is recorded.

One per workstream run (a :class:`~aim_core.runner.Runner` may run several at
once with ``-j``): the workstream, the run id, its log, its entry in the lock
table, the skipped candidates not yet on the record, and the attempts made.
Every audit record of the run is built here, from typed values.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aim_core.models import Failure, FileChanges, Invocation, Problem, Usage, Workstream

if TYPE_CHECKING:
    from aim_core.attempt import Attempt, AttemptOutcome
    from aim_core.project import Project
    from aim_core.router import Candidate
    from aim_core.runlocks import ActiveRun
    from aim_core.runlog import RunLog
    from aim_core.runresult import RunResult

EventSink = Callable[[str, dict[str, Any]], None]


def _no_events(kind: str, data: dict[str, Any]) -> None:
    return None


def _rooted(path: str) -> str:
    """``src/.env`` -> ``/src/.env``: refused paths are written from the repository root."""
    text = path.replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return "/" + text.lstrip("/")


log = logging.getLogger("aim")


class RunState:
    """One workstream run in progress (internal to the engine; compared by identity)."""

    __slots__ = (
        "active",
        "attempts",
        "capability",
        "check_tools",
        "current",
        "on_event",
        "pending",
        "project",
        "racing",
        "routed",
        "run_id",
        "runlog",
        "skipped",
        "source",
        "started",
        "stop",
        "wait_began",
        "waited",
        "ws",
    )

    def __init__(
        self,
        *,
        project: Project,
        ws: Workstream,
        run_id: str,
        capability: str | None,
        routed: bool,
        runlog: RunLog,
        stop: threading.Event,
        source: str | None = None,
        active: ActiveRun | None = None,
        on_event: EventSink = _no_events,
    ) -> None:
        self.project = project
        self.ws = ws
        self.run_id = run_id
        self.capability = capability
        self.routed = routed
        self.runlog = runlog
        self.stop = stop
        self.source = source
        self.started: float = time.monotonic()
        self.waited: float = 0.0  # seconds spent waiting for runs on the same files
        self.wait_began: float | None = None
        self.active = active
        self.skipped: list[dict[str, Any]] = []  # every skip of the run
        self.pending: list[dict[str, Any]] = []  # skips not yet on a record
        self.attempts: list[AttemptOutcome] = []
        self.current: Attempt | None = None  # the attempt in progress, for request_stop()
        self.racing: list[Attempt] = []  # the candidates of a race in progress
        self.on_event = on_event
        self.check_tools: dict[str, Candidate] = {}  # verify: kind -> tool

    def waiting(self, entry: Mapping[str, Any]) -> None:
        """``RunTable.join``'s ``on_wait``: say which run this one waits for (``entry``,
        that run's row of the table); the wait is timed until :meth:`done_waiting`."""
        if self.wait_began is None:
            self.wait_began = time.monotonic()
        log.info(
            f"Waiting for run {entry['run_id']} ({entry.get('workstream_id')}), "
            "which works on the same files"
        )

    def done_waiting(self) -> None:
        """The run has its place in the table: :attr:`waited` is how long it waited."""
        if self.wait_began is not None:
            self.waited = time.monotonic() - self.wait_began

    @property
    def spent_usd(self) -> float:
        """What the attempts of this run cost, as their tools reported (US dollars)."""
        return sum(a.usage.cost_usd for a in self.attempts if a.usage and a.usage.cost_usd)

    def skip(self, tool_id: str, failure: Failure | None, reason: str | None) -> None:
        """A candidate not invoked: said on stderr, listed in the next record."""
        import logging

        failure = failure or Failure.UNAVAILABLE
        reason = reason or failure.value
        logging.getLogger("aim").warning(reason)
        self.runlog.write(f"skip {tool_id}: {failure.value}: {reason}")
        entry = {"tool_id": tool_id, "failure": failure.value, "reason": reason}
        self.skipped.append(entry)
        self.pending.append(entry)

    def record(
        self,
        *,
        tool_id: str | None,
        payload: Invocation | None,
        message: str,
        attempt: int,
        failure: Failure | None,
        capability: str | None = None,
        exit_code: int | None = None,
        duration_sec: float = 0.0,
        changes: FileChanges | None = None,
        usage: Usage | None = None,
        refused: Sequence[Problem] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Append one audit record of this run (success exactly when ``failure`` is None)."""
        from aim_core.audit.records import build_record

        content = dict(extra or {})
        refused_paths = sorted({_rooted(p.path) for p in refused if p.path})
        if refused_paths:
            content["refused_paths"] = refused_paths
        if usage is not None:
            content["usage"] = usage.to_dict()
        changes = changes or FileChanges()
        record = build_record(
            actor=self.project.settings.actor,
            run_id=self.run_id,
            workstream_id=self.ws.id,
            tool_id=tool_id,
            capability=capability or self.capability or self.ws.capability,
            payload=payload,
            success=failure is None,
            message=message,
            attempt=attempt,
            failure=failure.value if failure else None,
            exit_code=exit_code,
            duration_sec=duration_sec,
            files_created=list(changes.created),
            files_modified=[*changes.modified, *changes.deleted],
            skipped=self.pending,
            extra_content=content or None,
        )
        self.pending = []
        self.project.audit.emit(record)

    def result(
        self, success: bool, code: int, message: str, last: AttemptOutcome | None = None
    ) -> RunResult:
        """The run's :class:`~aim_core.runresult.RunResult` as it ends now."""
        from aim_core.errors import EXIT_INTERRUPTED
        from aim_core.runresult import RunResult

        if code == EXIT_INTERRUPTED:
            self.runlog.write(message)
        return RunResult(
            run_id=self.run_id,
            workstream_id=self.ws.id,
            capability=self.capability,
            success=success,
            exit_code=code,
            message=message,
            tool_id=last.tool_id if last is not None else None,
            attempts=tuple(self.attempts),
            skipped=tuple(self.skipped),
            files_created=last.files_created if last is not None else (),
            files_modified=last.files_modified if last is not None else (),
            duration_sec=time.monotonic() - self.started,
            waited_sec=self.waited,
            log_path=str(self.runlog.path),
        )
