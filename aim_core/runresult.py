"""``RunResult``: what a workstream run came to, and the exit code of several."""

from __future__ import annotations

from typing import Any

import attrs
from attrs import frozen

from aim_core.attempt import AttemptOutcome
from aim_core.errors import (
    EXIT_AUDIT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NO_TOOL,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_WORK_FAILED,
)


@frozen(kw_only=True)
class RunResult:
    """What a workstream run came to; ``aim run --json`` prints one per workstream.

    ``attempts`` are the invocations made, in order; ``skipped`` the candidates
    not invoked (``{tool_id, failure, reason}``); ``duration_sec`` the wall time,
    ``waited_sec`` the part of it spent waiting for other runs on the same files
    (seconds).
    """

    run_id: str
    workstream_id: str | None
    capability: str | None
    success: bool
    exit_code: int
    message: str
    tool_id: str | None = None
    attempts: tuple[AttemptOutcome, ...] = ()
    skipped: tuple[dict[str, Any], ...] = ()
    files_created: tuple[str, ...] = ()
    files_modified: tuple[str, ...] = ()
    duration_sec: float = 0.0
    waited_sec: float = 0.0
    log_path: str | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = attrs.asdict(self, recurse=False)
        data["attempts"] = [a.to_json() for a in self.attempts]
        for key in ("skipped", "files_created", "files_modified"):
            data[key] = [dict(x) if isinstance(x, dict) else x for x in data[key]]
        return data


def exit_code_for(results: list[RunResult]) -> int:
    """With several workstreams the highest-priority code wins: 2, 4, 70, 1, 3 (then 130,
    0); any other code a run ended with comes before 0."""
    codes = {r.exit_code for r in results}
    first = (EXIT_USAGE, EXIT_AUDIT, EXIT_INTERNAL, EXIT_WORK_FAILED, EXIT_NO_TOOL)
    order = (*first, EXIT_INTERRUPTED)
    for code in (*order, *sorted(codes - {EXIT_OK, *order})):
        if code in codes:
            return code
    return EXIT_OK
