"""What one ``codex exec --json`` call did: its JSONL events, read into an outcome.

codex prints one JSON object per line (``codex-rs/exec/src/exec_events.rs``):
``thread.started``, ``turn.started``, ``item.started`` / ``item.completed``
(``agent_message``, ``file_change`` with ``changes`` and ``status``,
``command_execution``, ``error`` -- a non-fatal notice), ``error`` (a retry
notice or the fatal error), ``turn.completed`` with ``usage`` and
``turn.failed`` with ``error.message``. The exit code says little: a turn that
ended without ``turn.completed`` can still exit 0, and a failed turn exits 1
whatever the cause, so the failure class comes from the events' words.
"""

from __future__ import annotations

import re
from typing import Any

from attrs import define, field

from aim_core import Failure, Usage
from aim_core.toolkit import first_line, json_lines, one_line, process_failure, retry_after

AUTH = re.compile(
    r"\b401\b|\b403\b|unauthorized|forbidden|invalid[_ ]api[_ ]key|incorrect api key|"
    r"not logged in|please (re-?)?log ?in|refresh token|token (has )?expired|codex login",
    re.IGNORECASE,
)
RATE = re.compile(
    r"\b429\b|too many requests|rate[_ -]?limit|usage limit|try again (in|at)|quota",
    re.IGNORECASE,
)
# The account can't be used until someone acts (credits, spend cap): no retry helps.
BLOCKED = re.compile(r"out of credits|spend cap|billing", re.IGNORECASE)
CONFIG = re.compile(
    r"error loading config|unexpected argument|invalid value|unknown (model|provider)|"
    r"model .* (does not exist|not found)|unsupported",
    re.IGNORECASE,
)


@define
class Events:
    """The parts of codex's event stream aim uses."""

    parsed: int = 0
    completed: bool = False
    failed: str | None = None
    errors: list[str] = field(factory=list)
    notices: list[str] = field(factory=list)
    messages: list[str] = field(factory=list)
    edited: list[str] = field(factory=list)
    edits_failed: list[str] = field(factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None


def _add(total: int | None, value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return total
    return (total or 0) + value


def read_events(stdout: str) -> Events:
    """Every JSON line of ``stdout`` that is one of codex's events (others are skipped)."""
    ev = Events()
    for obj in json_lines(stdout):
        if not isinstance(obj.get("type"), str):
            continue
        ev.parsed += 1
        kind = obj["type"]
        if kind == "turn.completed":
            ev.completed = True
            usage = obj.get("usage") or {}
            ev.input_tokens = _add(ev.input_tokens, usage.get("input_tokens"))
            ev.output_tokens = _add(ev.output_tokens, usage.get("output_tokens"))
        elif kind == "turn.failed":
            ev.failed = str((obj.get("error") or {}).get("message") or "codex's turn failed")
        elif kind == "error":
            ev.errors.append(str(obj.get("message") or ""))
        elif kind == "item.completed":
            _item(ev, obj.get("item") or {})
    return ev


def _item(ev: Events, item: dict[str, Any]) -> None:
    kind = item.get("type")
    if kind == "agent_message" and isinstance(item.get("text"), str):
        ev.messages.append(item["text"])
    elif kind == "error":
        ev.notices.append(str(item.get("message") or ""))
    elif kind == "file_change":
        paths = [str(c.get("path")) for c in item.get("changes") or [] if isinstance(c, dict)]
        if item.get("status") == "completed":
            ev.edited += paths
        else:
            ev.edits_failed += paths


def usage_of(ev: Events, model: str | None) -> Usage | None:
    """Tokens summed over codex's ``turn.completed`` events (codex reports no cost)."""
    if ev.input_tokens is None and ev.output_tokens is None:
        return None
    return Usage(input_tokens=ev.input_tokens, output_tokens=ev.output_tokens, model=model)


def api_failure(said: str) -> tuple[Failure, float | None]:
    """The failure class (and advised wait) of one of codex's error texts."""
    if AUTH.search(said):
        return Failure.AUTH_REQUIRED, None
    if BLOCKED.search(said):
        return Failure.UNAVAILABLE, None
    if RATE.search(said):
        return Failure.RATE_LIMITED, retry_after(said)
    if CONFIG.search(said):
        return Failure.UNAVAILABLE, None
    return Failure.TOOL_ERROR, None


def classify(
    r: Any, ev: Events, changed: bool, wants_change: bool
) -> tuple[Failure | None, str, float | None]:
    """``(failure, message, retry_after_s)`` for one finished call; failure None = success.

    :param changed: whether a file in scope changed (``context.changes()``).
    :param wants_change: whether the capability asks for a change (not version checking).
    """
    stopped = process_failure(r, "codex")
    if stopped is not None:
        failure, message = stopped
        # codex retries a rate limit by itself ("Reconnecting... 3/5 (... 429 ...)"):
        # cut off while doing so, the attempt was rate limited, not slow.
        if failure is Failure.TIMEOUT and ev.errors and RATE.search(ev.errors[-1]):
            return Failure.RATE_LIMITED, one_line(ev.errors[-1]), retry_after(ev.errors[-1])
        return failure, message, None
    if ev.parsed == 0:
        said = first_line(r.stderr, r.stdout) or f"codex exited with code {r.exit_code}"
        failure, wait = api_failure(said)
        if failure is Failure.TOOL_ERROR and r.exit_code == 2:  # clap: usage error
            failure = Failure.UNAVAILABLE
        return failure, one_line(said), wait
    if ev.failed is not None or r.exit_code != 0:
        said = ev.failed or (ev.errors[-1] if ev.errors else None)
        said = said or first_line(r.stderr) or f"codex exited with code {r.exit_code}"
        failure, wait = api_failure(said)
        return failure, one_line(said), wait
    if not ev.completed:  # exit 0, yet the turn never completed
        said = ev.errors[-1] if ev.errors else "codex ended without completing its turn"
        failure, wait = api_failure(said)
        return failure, one_line(said), wait
    if changed or not wants_change:
        said = first_line(ev.messages[-1]) if ev.messages else "codex finished"
        return None, one_line(said), None
    if ev.edits_failed and not ev.edited:
        shown = ", ".join(ev.edits_failed[:3])
        return Failure.WORK_FAILED, one_line(f"codex's edits failed: {shown}"), None
    message = "codex made no change to the files in scope"
    if ev.edited:
        message += f" (it changed {', '.join(ev.edited[:3])})"
    return Failure.TOOL_ERROR, one_line(message), None
