"""How a run ends when no tool could take the work: no tool available (exit 3),
every candidate refused the request as written (exit 2), or the user stopped it
(exit 130)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aim_core.errors import EXIT_NO_TOOL, EXIT_USAGE
from aim_core.models import Failure, Invocation
from aim_core.runresult import RunResult

if TYPE_CHECKING:
    from aim_core.runstate import RunState

log = logging.getLogger("aim")


def nothing_available(run: RunState, request: Invocation) -> RunResult:
    """No candidate could be invoked: record why, exit 3 (or 2 when they all refused
    the request itself)."""
    kinds = [s["failure"] for s in run.skipped]
    if kinds and all(k == Failure.INVALID_PAYLOAD.value for k in kinds):
        return unacceptable(run, request)
    failure = next((f for f in ("auth_required", "unavailable") if f in kinds), "not_installed")
    tried = "; ".join(f"{s['tool_id']}: {s['reason']}" for s in run.skipped)
    what = f"capability '{run.capability}'" if run.capability else f"tool '{run.ws.tool}'"
    message = (
        f"No tool could run {what} ({tried}). Install or log in to one of them, "
        "then check with 'aim status'."
    )
    run.record(tool_id=None, payload=request, message=message, attempt=0, failure=Failure(failure))
    log.error(message)
    return run.result(False, EXIT_NO_TOOL, message)


def unacceptable(run: RunState, request: Invocation) -> RunResult:
    """Every candidate refused the request itself: bad input (exit 2), not a missing tool."""
    reasons = "; ".join(s["reason"] for s in run.skipped)
    message = f"No tool accepts this workstream as written: {reasons}. Fix the workstream."
    run.record(
        tool_id=None,
        payload=request,
        message=message,
        attempt=0,
        failure=Failure.INVALID_PAYLOAD,
    )
    log.error(message)
    return run.result(False, EXIT_USAGE, message)


def interrupted_message(run: RunState) -> str:
    """What a stopped run says: its interrupted attempt's words (what was restored and
    reverted), or that no tool was running then."""
    last = run.attempts[-1] if run.attempts else None
    if last is not None and last.failure is Failure.INTERRUPTED:
        return last.message
    if last is None:
        return "Interrupted before any tool ran: nothing was changed"
    return "Interrupted between attempts: what the earlier ones changed was already undone"
