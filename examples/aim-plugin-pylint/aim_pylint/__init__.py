"""aim plugin for pylint: the ``linting`` capability, the guide's fallback after ruff.

Tool id ``pylint``; the program is ``pylint`` (3.0 or newer) on PATH. One attempt runs::

    pylint --output-format=json2 --score=n --reports=n --recursive=y --persistent=n
           [ARGS...] -- FILES...

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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aim_core import Failure, InvocationResult, Problem, ProcessResult, hookimpl, own_tools_only
from aim_core.toolkit import (
    call_result,
    detect_program,
    files_field,
    first_line,
    not_provided,
    prepare_call,
    process_failure,
    program_version,
)

TOOL_ID = "pylint"
PROGRAM = "pylint"
CAPABILITIES = ("linting",)
INSTALL_HINT = "pip install pylint"
LISTED = 5  # messages named in the one-line summary; the rest are counted
# What the report is read from, pinned over pylint's configuration files: one JSON
# report and nothing else on stdout (no score, no text reports), every file under a
# directory, and no statistics file written (pylint's "persistent" data).
PINNED = ("--output-format=json2", "--score=n", "--reports=n", "--recursive=y", "--persistent=n")
USAGE_ERROR = 32  # pylint's exit status is a bit field; 32 is "usage error"
# Where pylint reports a problem of its own setup (a plugin that does not load, E0013).
SETUP_PATH = "Command line or configuration file"
# ".pylintrc:1:0: F0011: error while parsing the configuration: ...", printed as text
FATAL_TEXT = re.compile(r":\d+:\d+: F\d{4}: ")


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
@own_tools_only
def validate_payload(tool_id, capability, payload, context):
    """pylint lints Python files (``.py``) and directories, nothing else."""
    if tool_id != TOOL_ID:
        return None
    problems = []
    if capability is not None and capability not in CAPABILITIES:
        message = not_provided(TOOL_ID, CAPABILITIES, capability)
        problems.append(Problem(field="capability", message=message))
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
    call = prepare_call(
        context,
        payload,
        capability,
        tool_id=TOOL_ID,
        program=PROGRAM,
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
    )
    if isinstance(call, InvocationResult):  # refused before anything ran
        return call
    argv = [call.program, *PINNED, *call.args]
    r = context.run([*argv, "--", *(payload.files or ["."])])
    # not started, interrupted, timed out, killed; else what pylint said
    return call_result(r, *(process_failure(r, PROGRAM) or classify(r)))


def classify(r: ProcessResult) -> tuple[Failure | None, str]:
    """``(failure, message)`` for a pylint that ran to its end; failure None = success."""
    if r.exit_code & USAGE_ERROR:
        return (
            Failure.INVALID_PAYLOAD,
            f"pylint refused its command line (check tools.pylint.args and pylint's "
            f"configuration; pylint 3.0 or newer is needed): {_usage_error(r)}",
        )
    text_before, messages = parse_report(r.stdout)
    said = [line.strip() for line in [*text_before, *r.stderr.splitlines()]]
    # a pyproject.toml that does not parse (pylint goes on with its defaults), a .pylintrc
    # that does not parse (F0011): printed as text, before the JSON report
    broken = [line for line in said if line.startswith("Failed to load") or FATAL_TEXT.search(line)]
    if broken:
        return Failure.TOOL_ERROR, f"pylint could not read its configuration: {broken[0]}"
    if messages is None:
        said = first_line(r.stderr, r.stdout) or f"exit code {r.exit_code}"
        return Failure.TOOL_ERROR, f"pylint's report could not be read: {said}"
    setup = [m for m in messages if m.get("path") == SETUP_PATH]
    messages = [m for m in messages if m.get("path") != SETUP_PATH]
    broken = [m for m in setup if m.get("type") in ("error", "fatal")]
    if broken:  # a plugin that does not load, an unknown option
        m = broken[0]
        return (
            Failure.TOOL_ERROR,
            f"pylint's configuration is broken: {m.get('messageId')} {_one_line(m)}",
        )
    fatal = [m for m in messages if m.get("type") == "fatal"]
    if fatal:
        m = fatal[0]
        # F0001: a file or module that does not exist; anything else fatal is pylint failing.
        failure = Failure.INVALID_PAYLOAD if m.get("messageId") == "F0001" else Failure.TOOL_ERROR
        return failure, f"pylint could not lint {m.get('path')}: {_one_line(m)}"
    if messages:
        messages.sort(key=_position)
        n = len(messages)
        noun = "lint message remains" if n == 1 else "lint messages remain"
        return Failure.WORK_FAILED, f"{n} {noun}: {listing(messages)}"
    return None, "no lint remains"


# --------------------------------------------------------------------------- helpers


def parse_messages(stdout: str) -> list[dict[str, Any]] | None:
    """The messages of pylint's ``json2`` report (or of the older ``json`` list), or None
    when the output is not such a report."""
    return parse_report(stdout)[1]


def parse_report(stdout: str) -> tuple[list[str], list[dict[str, Any]] | None]:
    """The text lines pylint printed before its JSON report (a configuration it could
    not parse is reported that way), and the report's messages (None: no report)."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(("{", "["))), len(lines))
    before = [line for line in lines[:start] if line.strip()]
    try:
        data = json.loads("\n".join(lines[start:]))
    except ValueError:
        return before, None
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]
    if not isinstance(data, list):
        return before, None
    return before, [m for m in data if isinstance(m, dict)]


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


def _usage_error(r: ProcessResult) -> str:
    """pylint's ``pylint: error: ...`` line (its reason), else its first line."""
    for line in (r.stderr + "\n" + r.stdout).splitlines():
        if line.startswith("pylint: error:"):
            return line.strip()
    return first_line(r.stderr, r.stdout) or "usage error"


def _lintable(root: Path, name: str) -> bool:
    """A Python file, a directory, or a path not there yet that looks like a directory."""
    if name.endswith(".py"):
        return True
    path = root / name
    if path.is_dir():
        return True
    return not path.exists() and not Path(name).suffix
