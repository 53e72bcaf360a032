"""What one ``gemini -p ... --output-format json`` call did, read into an outcome.

Gemini CLI (``packages/cli/src/nonInteractiveCli.ts``, ``utils/errors.ts``) prints
one JSON object: on success ``{"session_id", "response", "stats"}`` on stdout;
on an error ``{"session_id", "error": {"type", "message", "code"}}`` on stderr,
after any stack trace, and exits with ``code`` -- a fatal class (41
authentication, 42 input, 44 sandbox, 52 config, 53 turn limit, 54 tool, 55
untrusted workspace) or the API's HTTP status (401 exits 145: the status modulo
256). An empty or blocked model answer (``"type": "INVALID_STREAM"``) is
reported in ``error`` of a stdout object that exits **0**.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aim_core import Failure, Usage
from aim_core.toolkit import first_line, one_line, process_failure, retry_after

AUTH_CODES = (41, 401, 403)
UNAVAILABLE_CODES = (42, 44, 52, 55)
AUTH = re.compile(
    r"UNAUTHENTICATED|PERMISSION_DENIED|API key not valid|invalid api key|"
    r"auth method|login|\b401\b|\b403\b",
    re.IGNORECASE,
)
RATE = re.compile(r"RESOURCE_EXHAUSTED|\b429\b|quota|rate limit|too many requests", re.IGNORECASE)
RETRY_DELAY = re.compile(r'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"')
EDIT_TOOLS = ("write_file", "replace", "edit")


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last JSON object in ``text`` that starts a line (gemini pretty-prints it,
    possibly after a stack trace), or None."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if not lines[i].startswith("{"):
            continue
        try:
            obj = json.loads("\n".join(lines[i:]))
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def read_result(stdout: str, stderr: str) -> dict[str, Any] | None:
    """gemini's JSON answer: stdout's object, else the error object on stderr."""
    return last_json_object(stdout) or last_json_object(stderr)


def error_text(error: dict[str, Any]) -> str:
    """The error's own words: the API's message when gemini passes the API's JSON on."""
    said = str(error.get("message") or error.get("type") or "error")
    try:
        inner = json.loads(said)
    except ValueError:
        return said
    if isinstance(inner, dict) and isinstance(inner.get("error"), dict):
        return str(inner["error"].get("message") or said)
    return said


def usage_of(result: dict[str, Any] | None) -> Usage | None:
    """Tokens over every model in ``stats.models`` (``prompt`` in, ``candidates`` out);
    the model is the one that used the most. Gemini CLI reports no cost."""
    models = ((result or {}).get("stats") or {}).get("models") or {}
    if not isinstance(models, dict) or not models:
        return None
    totals = {}
    for name, metrics in models.items():
        tokens = (metrics or {}).get("tokens") or {}
        totals[name] = (int(tokens.get("prompt") or 0), int(tokens.get("candidates") or 0))
    model = max(totals, key=lambda m: sum(totals[m]))
    return Usage(
        input_tokens=sum(t[0] for t in totals.values()),
        output_tokens=sum(t[1] for t in totals.values()),
        model=model,
    )


def failed_edits(result: dict[str, Any] | None) -> bool:
    """Whether gemini tried to edit and every edit failed (``stats.tools.byName``)."""
    by_name = (((result or {}).get("stats") or {}).get("tools") or {}).get("byName") or {}
    edits = [by_name[t] for t in EDIT_TOOLS if isinstance(by_name.get(t), dict)]
    return bool(edits) and all(not e.get("success") and e.get("fail") for e in edits)


def api_failure(said: str, code: Any) -> tuple[Failure, float | None]:
    """The failure class (and advised wait) of one of gemini's errors."""
    if code in AUTH_CODES or AUTH.search(said):
        return Failure.AUTH_REQUIRED, None
    if code == 429 or RATE.search(said):
        m = RETRY_DELAY.search(said)
        return Failure.RATE_LIMITED, float(m.group(1)) if m else retry_after(said)
    if code in UNAVAILABLE_CODES:
        return Failure.UNAVAILABLE, None
    return Failure.TOOL_ERROR, None


def classify(
    r: Any, result: dict[str, Any] | None, changed: bool, wants_change: bool
) -> tuple[Failure | None, str, float | None]:
    """``(failure, message, retry_after_s)`` for one finished call; failure None = success."""
    stopped = process_failure(r, "gemini")
    if stopped is not None:
        failure, message = stopped
        # gemini backs off on 429 by itself (up to 10 tries): cut off doing so = rate limited
        if failure is Failure.TIMEOUT and RATE.search(r.stderr):
            return Failure.RATE_LIMITED, "gemini was still retrying a rate limit (429)", None
        return failure, message, None
    error = (result or {}).get("error")
    if isinstance(error, dict):
        raw = str(error.get("message") or "")
        said = error_text(error)
        failure, wait = api_failure(raw, error.get("code"))
        return failure, one_line(said), wait
    if result is None or r.exit_code != 0:
        said = first_line(r.stderr, r.stdout) or f"gemini exited with code {r.exit_code}"
        failure, wait = api_failure(r.stderr, r.exit_code)
        return failure, one_line(said), wait
    if changed or not wants_change:
        said = first_line(str(result.get("response") or "")) or "gemini finished"
        return None, one_line(said), None
    if failed_edits(result):
        # gemini's stats don't say why: a file outside the scope (refused by aim's
        # policy) or an edit that did not apply -- another tool may do better
        message = "gemini's edits failed or were refused (only the files in scope may change)"
        return Failure.TOOL_ERROR, message, None
    return Failure.TOOL_ERROR, "gemini made no change to the files in scope", None
