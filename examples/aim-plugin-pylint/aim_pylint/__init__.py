"""aim plugin for pylint: the ``linting`` capability, the guide's fallback after ruff.

Tool id ``pylint``; the program is ``pylint`` (3.0 or newer) on PATH. One attempt runs::

    pylint --output-format=json2 --score=n --recursive=y [ARGS...] -- FILES...

(``ARGS`` is ``tools: {pylint: {args: [...]}}`` of the config; without files it
lints ``.``) and reads the messages from its JSON. pylint fixes nothing: the
attempt succeeds when pylint reports no message, and otherwise fails with
``work_failed`` and the first messages in one line. pylint's own configuration
(``.pylintrc``, ``[tool.pylint]`` in ``pyproject.toml``) applies as usual.

Built only from aim's public API (``aim_core`` and ``aim_core.toolkit``), as
docs/plugins/tutorial.md describes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aim_core import Failure, InvocationResult, Problem, hookimpl
from aim_core.toolkit import (
    detect_program,
    files_field,
    first_line,
    joined_output,
    option_args,
    process_failure,
    program_version,
    tool_options,
)

TOOL_ID = "pylint"
PROGRAM = "pylint"
CAPABILITIES = ("linting",)
INSTALL_HINT = "pip install pylint"
LISTED = 5  # messages named in the one-line summary; the rest are counted
USAGE_ERROR = 32  # pylint's exit status is a bit field; 32 is "usage error"


@hookimpl
def detect_tool(context):
    """pylint is ready whenever it answers ``pylint --version``."""
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program=PROGRAM,
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
        env_passthrough=("PYLINTRC", "PYLINTHOME"),
    )


@hookimpl
def get_version(tool_id, context):
    """The first line of ``pylint --version`` (``"pylint 3.3.1"``)."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, PROGRAM)


@hookimpl
def validate_payload(tool_id, capability, payload, context):
    """pylint lints Python files (``.py``) and directories, nothing else."""
    if tool_id != TOOL_ID:
        return None
    problems = []
    if capability is not None and capability not in CAPABILITIES:
        problems.append(Problem(field="capability", message=_not_provided(capability)))
    for i, name in enumerate(payload.files):
        if not _lintable(Path(context.root), name):
            message = f"pylint lints only Python files (.py) and directories, not {name!r}"
            problems.append(Problem(field=files_field(payload, i), message=message))
    return problems or None


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    """Run pylint once; success when it reports no message."""
    if tool_id != TOOL_ID:
        return None
    if capability is not None and capability not in CAPABILITIES:
        return _failed(Failure.INVALID_PAYLOAD, _not_provided(capability))
    try:
        args = option_args(tool_options(payload, context))
    except ValueError:
        return _failed(
            Failure.INVALID_PAYLOAD, "config tools.pylint.args must be a list of arguments"
        )
    program = context.which(PROGRAM)
    if program is None:
        return _failed(
            Failure.NOT_INSTALLED, f"'{PROGRAM}' not found on PATH (install: {INSTALL_HINT})"
        )
    argv = [program, "--output-format=json2", "--score=n", "--recursive=y", *args]
    r = context.run([*argv, "--", *(payload.files or ["."])])
    output = joined_output(r.stdout, r.stderr)

    def result(failure, message):
        return InvocationResult(
            success=failure is None,
            message=message,
            exit_code=r.exit_code,
            failure=failure,
            output=output,
            duration_sec=r.duration_sec,
        )

    stopped = process_failure(r, PROGRAM)  # not started, interrupted, timed out, killed
    if stopped is not None:
        return result(*stopped)
    if r.exit_code & USAGE_ERROR:
        said = first_line(r.stderr, r.stdout) or "usage error"
        return result(
            Failure.INVALID_PAYLOAD,
            f"pylint refused its command line (check tools.pylint.args; pylint 3.0 or newer "
            f"is needed): {said}",
        )
    messages = parse_messages(r.stdout)
    if messages is None:
        said = first_line(r.stderr, r.stdout) or f"exit code {r.exit_code}"
        return result(Failure.TOOL_ERROR, f"pylint's report could not be read: {said}")
    fatal = [m for m in messages if m.get("type") == "fatal"]
    if fatal:
        m = fatal[0]
        # F0001: a file or module that does not exist; anything else fatal is pylint failing.
        failure = Failure.INVALID_PAYLOAD if m.get("messageId") == "F0001" else Failure.TOOL_ERROR
        return result(failure, f"pylint could not lint {m.get('path')}: {_one_line(m)}")
    if messages:
        messages.sort(key=_position)
        n = len(messages)
        noun = "lint message remains" if n == 1 else "lint messages remain"
        return result(Failure.WORK_FAILED, f"{n} {noun}: {listing(messages)}")
    return result(None, "no lint remains")


# --------------------------------------------------------------------------- helpers


def parse_messages(stdout: str) -> list[dict[str, Any]] | None:
    """The messages of pylint's ``json2`` report (or of the older ``json`` list), or None
    when the output is not such a report."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]
    if not isinstance(data, list):
        return None
    return [m for m in data if isinstance(m, dict)]


def listing(messages: Sequence[Mapping[str, Any]], limit: int = LISTED) -> str:
    """``path:line:column ID message`` for the first messages, then how many more."""
    items = []
    for m in messages[:limit]:
        code = m.get("messageId") or m.get("message-id") or m.get("symbol") or "?"
        items.append(f"{m.get('path')}:{m.get('line')}:{m.get('column')} {code} {_one_line(m)}")
    more = len(messages) - limit
    return "; ".join(items) + (f" (+{more} more)" if more > 0 else "")


def _position(message: Mapping[str, Any]) -> tuple[str, int, int]:
    line, column = message.get("line"), message.get("column")
    return (
        str(message.get("path") or ""),
        line if isinstance(line, int) else 0,
        column if isinstance(column, int) else 0,
    )


def _one_line(message: Mapping[str, Any], limit: int = 120) -> str:
    text = " ".join(str(message.get("message") or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failed(failure: Failure, message: str) -> InvocationResult:
    return InvocationResult(success=False, message=message, failure=failure)


def _not_provided(capability: str) -> str:
    return f"pylint provides only {', '.join(CAPABILITIES)}, not {capability}"


def _lintable(root: Path, name: str) -> bool:
    """A Python file, a directory, or a path not there yet that looks like a directory."""
    if name.endswith(".py"):
        return True
    path = root / name
    if path.is_dir():
        return True
    return not path.exists() and not Path(name).suffix
