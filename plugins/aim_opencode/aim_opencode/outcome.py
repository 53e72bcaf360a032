"""What one ``opencode run --format json`` call did: its JSON events, read into an outcome.

opencode prints one JSON object per line (``packages/opencode/src/cli/cmd/run.ts``):
``{"type", "timestamp", "sessionID", ...}`` with ``type`` ``step_start``,
``tool_use`` (``part.tool``, ``part.state.status`` ``completed`` | ``error``),
``text``, ``reasoning``, ``step_finish`` (``part.tokens`` ``{input, output,
reasoning, cache}``, ``part.cost`` in USD), ``error`` (``error.name`` and
``error.data`` -- ``message``, ``statusCode``, ``responseHeaders``) and ``done``.
A provider error exits 1; a denied or failed tool call, or a model that never
edited, exits **0** -- so the outcome comes from the events and the files.
"""

from __future__ import annotations

import re
from typing import Any

from attrs import define, field

from aim_core import Failure, Usage
from aim_core.toolkit import first_line, json_lines, one_line, process_failure, retry_after

EDIT_TOOLS = ("edit", "write", "patch", "multiedit", "apply_patch")
AUTH_NAMES = ("ProviderAuthError",)
UNAVAILABLE_NAMES = ("ProviderModelNotFoundError", "ProviderInitError", "ConfigInvalidError")
AUTH = re.compile(
    r"\b401\b|\b403\b|unauthorized|invalid[_ ]api[_ ]key|incorrect api key|api key|"
    r"auth login|not authenticated",
    re.IGNORECASE,
)
RATE = re.compile(r"\b429\b|rate[_ -]?limit|too many requests|quota|overloaded", re.IGNORECASE)
# A tool call refused by a permission rule (opencode's words), not a failed edit.
DENIED = re.compile(r"permission|denied|rejected", re.IGNORECASE)
UNAVAILABLE = re.compile(r"model not found|provider .* not found|unknown model", re.IGNORECASE)


@define
class Events:
    """The parts of opencode's event stream aim uses."""

    parsed: int = 0
    errors: list[dict[str, Any]] = field(factory=list)
    texts: list[str] = field(factory=list)
    edits: list[str] = field(factory=list)
    edits_failed: list[str] = field(factory=list)
    rejected: list[str] = field(factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_events(stdout: str) -> Events:
    """Every JSON line of ``stdout`` that is one of opencode's events."""
    ev = Events()
    for obj in json_lines(stdout):
        if not isinstance(obj.get("type"), str):
            continue
        ev.parsed += 1
        part = obj.get("part") if isinstance(obj.get("part"), dict) else {}
        kind = obj["type"]
        if kind == "error":
            error = obj.get("error")
            ev.errors.append(error if isinstance(error, dict) else {"name": str(error)})
        elif kind == "text" and isinstance(part.get("text"), str):
            ev.texts.append(part["text"])
        elif kind == "tool_use" and part.get("tool") in EDIT_TOOLS:
            state = part.get("state") or {}
            where = str((state.get("input") or {}).get("filePath") or part.get("tool"))
            if state.get("status") == "completed":
                ev.edits.append(where)
            elif DENIED.search(str(state.get("error") or "")):
                ev.rejected.append(f"edit {where}")
            else:
                ev.edits_failed.append(where)
        elif kind == "step_finish":
            tokens = part.get("tokens") or {}
            if _number(tokens.get("input")):
                ev.input_tokens = (ev.input_tokens or 0) + int(tokens["input"])
            if _number(tokens.get("output")):
                ev.output_tokens = (ev.output_tokens or 0) + int(tokens["output"])
            if _number(part.get("cost")):
                ev.cost_usd = (ev.cost_usd or 0.0) + float(part["cost"])
        elif kind == "done":
            ev.rejected += [str(p) for p in obj.get("rejected") or []]
    return ev


def usage_of(ev: Events, model: str | None) -> Usage | None:
    """Tokens and cost summed over opencode's ``step_finish`` events."""
    if ev.input_tokens is None and ev.output_tokens is None and ev.cost_usd is None:
        return None
    return Usage(
        input_tokens=ev.input_tokens,
        output_tokens=ev.output_tokens,
        cost_usd=round(ev.cost_usd, 6) if ev.cost_usd is not None else None,
        model=model,
    )


def error_message(error: dict[str, Any]) -> str:
    """An error event's own words (``data.message``, else its name)."""
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    return str(data.get("message") or error.get("name") or "opencode reported an error")


def error_failure(error: dict[str, Any]) -> tuple[Failure, float | None]:
    """The failure class (and advised wait) of one of opencode's error events."""
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    name = str(error.get("name") or "")
    status = data.get("statusCode")
    said = error_message(error)
    if name in AUTH_NAMES or status in (401, 403) or (status is None and AUTH.search(said)):
        return Failure.AUTH_REQUIRED, None
    if status == 429 or RATE.search(said):
        headers = {str(k).lower(): v for k, v in (data.get("responseHeaders") or {}).items()}
        wait = None
        if "retry-after" in headers:
            wait = retry_after(f"retry-after: {headers['retry-after']}")
        return Failure.RATE_LIMITED, wait if wait is not None else retry_after(said)
    if name in UNAVAILABLE_NAMES or UNAVAILABLE.search(said):
        return Failure.UNAVAILABLE, None
    return Failure.TOOL_ERROR, None


def classify(
    r: Any, ev: Events, changed: bool, wants_change: bool
) -> tuple[Failure | None, str, float | None]:
    """``(failure, message, retry_after_s)`` for one finished call; failure None = success."""
    stopped = process_failure(r, "opencode")
    if stopped is not None:
        failure, message = stopped
        if failure is Failure.TIMEOUT and ev.errors:
            cause, wait = error_failure(ev.errors[-1])
            if cause is Failure.RATE_LIMITED:
                return cause, one_line(error_message(ev.errors[-1])), wait
        return failure, message, None
    if ev.errors:
        failure, wait = error_failure(ev.errors[-1])
        return failure, one_line(error_message(ev.errors[-1])), wait
    if ev.parsed == 0 and r.exit_code != 0:
        said = first_line(r.stderr, r.stdout) or f"opencode exited with code {r.exit_code}"
        failure = Failure.AUTH_REQUIRED if AUTH.search(said) else Failure.TOOL_ERROR
        if UNAVAILABLE.search(said):
            failure = Failure.UNAVAILABLE
        return failure, one_line(said), None
    if r.exit_code != 0:
        return Failure.TOOL_ERROR, f"opencode exited with code {r.exit_code}", None
    if changed or not wants_change:
        said = first_line(ev.texts[-1]) if ev.texts else "opencode finished"
        return None, one_line(said), None
    if ev.edits_failed and not ev.edits:
        shown = ", ".join(ev.edits_failed[:3])
        return Failure.WORK_FAILED, one_line(f"opencode's edits failed: {shown}"), None
    message = "opencode made no change to the files in scope"
    if ev.rejected:
        message += f"; permissions rejected: {', '.join(ev.rejected[:3])}"
    return Failure.TOOL_ERROR, one_line(message), None
