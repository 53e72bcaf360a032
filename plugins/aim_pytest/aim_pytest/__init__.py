"""aim plugin for pytest: the ``testing`` capability.

Tool id ``pytest``; the program is ``pytest`` on PATH (the one of the
repository's active virtual environment). One attempt runs::

    PYTHONDONTWRITEBYTECODE=1 pytest -q -p no:cacheprovider [ARGS...] -- [FILES or test ids...]

(``ARGS`` is ``tools: {pytest: {args: [...]}}`` of the config; globs in the
files are expanded) and reports pytest's final summary line
(``"1 failed, 2 passed in 0.10s"``).
"""

from __future__ import annotations

import re
from pathlib import Path

from aim_core import Failure, InvocationResult, Problem, hookimpl, own_tools_only
from aim_core.toolkit import (
    call_result,
    detect_program,
    first_line,
    joined_output,
    not_provided,
    one_line,
    prepare_call,
    process_failure,
    program_version,
)

TOOL_ID = "pytest"
CAPABILITIES = ("testing",)
INSTALL_HINT = "pip install pytest"
LISTED = 3  # failed tests named when pytest printed no summary line

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_OUTCOME = r"\d+ (?:failed|passed|skipped|deselected|xfailed|xpassed|warnings?|errors?|rerun)"
# "1 failed, 2 passed in 0.10s", "no tests ran in 0.00s", "3 passed in 65.43s (0:01:05)";
# without -q it is centred in "=" (stripped before matching).
SUMMARY_RE = re.compile(
    rf"^(?:no tests ran|{_OUTCOME}(?:, {_OUTCOME})*) in \d+(?:\.\d+)?s(?: \([^)]*\))?$"
)
COLLECTION_RE = re.compile(r"Interrupted: (\d+ errors? during collection)")
# 'Error while loading plugin "pytest11".' (an installed plugin, pytest >= 8.4) and
# 'ERROR: Error importing plugin "name": No module named ...' (-p name, PYTEST_PLUGINS).
PLUGIN_ERROR_RE = re.compile(
    r'Error (?:while loading|importing) plugin "(?P<name>[^"]*)"(?:\.|: (?P<said>.*))?'
)
TRACEBACK = "Traceback (most recent call last):"
# "ModuleNotFoundError: No module named 'x'", "pluggy.PluginValidationError: ..."
EXCEPTION_RE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Failure)\b.*")
IMPORT_ERROR_RE = re.compile(r"^(?:[\w.]+\.)?(?:ImportError|ModuleNotFoundError)\b")


@hookimpl
def detect_tool(context):
    """pytest is ready whenever it answers ``pytest --version``."""
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program="pytest",
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
        env_passthrough=("PYTEST_*", "PY_COLORS", "NO_COLOR"),
        scratch_paths=(".pytest_cache/", "__pycache__/", ".hypothesis/", ".coverage"),
    )


@hookimpl
def get_version(tool_id, context):
    """``pytest --version`` as it prints it."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, "pytest")


@hookimpl
@own_tools_only
def validate_payload(tool_id, capability, payload, context):
    """pytest takes any path or test id; it objects only to a capability it lacks."""
    if tool_id != TOOL_ID:
        return None
    if capability is not None and capability not in CAPABILITIES:
        message = not_provided(TOOL_ID, CAPABILITIES, capability)
        return [Problem(field="capability", message=message)]
    return None


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    """Run pytest once; success when pytest says every collected test passed."""
    if tool_id != TOOL_ID:
        return None
    call = prepare_call(
        context,
        payload,
        capability,
        tool_id=TOOL_ID,
        program="pytest",
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
    )
    if isinstance(call, InvocationResult):
        return call
    argv = [call.program, "-q", "-p", "no:cacheprovider", *call.args]
    if payload.files:
        argv += ["--", *expand(context.root, payload.files)]
    r = context.run(argv, env={"PYTHONDONTWRITEBYTECODE": "1"})
    return call_result(r, *(process_failure(r, "pytest") or classify(r)))


def classify(r):
    """``(failure, message)`` for a pytest that ran to its end; failure None = success."""
    text = _ANSI.sub("", joined_output(r.stdout, r.stderr))
    summary = summary_line(text)
    not_started = start_failure(r, summary)
    if not_started is not None:
        return not_started
    code = r.exit_code
    if code == 0:
        return None, summary or "all tests passed"
    if code == 1:
        return Failure.WORK_FAILED, summary or _failed_tests(text)
    if code == 5:
        return Failure.WORK_FAILED, f"no tests collected ({summary or 'no tests ran'})"
    if code == 6:
        return Failure.WORK_FAILED, f"too many warnings ({summary or 'max warnings'})"
    if code == 2:
        collection = COLLECTION_RE.search(text)
        if collection:
            # The test code itself does not import or parse: the work is broken, and
            # running pytest again would say the same.
            errors = _listed(text, "ERROR ")
            return Failure.WORK_FAILED, collection.group(1) + (f": {errors}" if errors else "")
        return Failure.TOOL_ERROR, f"pytest was interrupted: {_interruption(text)}"
    if code == 3:
        return Failure.TOOL_ERROR, f"pytest internal error: {_internal_error(r)}"
    if code == 4:
        return Failure.TOOL_ERROR, f"pytest usage error: {_usage_error(r)}"
    said = first_line(r.stderr, r.stdout) or "no output"
    return Failure.TOOL_ERROR, f"pytest failed (exit code {code}): {said}"


def start_failure(r, summary):
    """``(failure, message)`` when pytest could not start at all, else None.

    An installed plugin that fails to import stops pytest before any test:
    current pytest says ``Error while loading plugin "..."`` (exit 3) or
    ``Error importing plugin "...": ...`` (``-p NAME``, exit 4); older ones die
    with a Python traceback (exit 1, nothing on stdout). That is the test runner
    being unusable here (``unavailable``: another runner may do), never the tests
    failing. A crash with another exception is a ``tool_error``.
    """
    if summary is not None or r.exit_code == 0:
        return None
    err = _ANSI.sub("", r.stderr)
    m = PLUGIN_ERROR_RE.search(err)
    if m:
        cause = _error_line(err) or m.group("said") or "it fails to import"
        return Failure.UNAVAILABLE, one_line(
            f'pytest cannot start: plugin "{m.group("name")}" fails to load: {cause}'
        )
    if not r.stdout.strip() and TRACEBACK in err:
        last = _error_line(err) or first_line(*reversed(err.splitlines())) or "no output"
        if IMPORT_ERROR_RE.match(last):
            return Failure.UNAVAILABLE, one_line(f"pytest cannot start: {last}")
        return Failure.TOOL_ERROR, one_line(f"pytest crashed: {last}")
    return None


def expand(root, names):
    """``names`` with each glob that names no path itself (``tests/test_*.py``) replaced by
    what it matches; test ids (``a.py::test_x[1]``) and unmatched names stay as they are."""
    root = Path(root)
    out = []
    for name in names:
        matches = []
        if "::" not in name and any(c in name for c in "*?[") and not (root / name).exists():
            try:
                matches = sorted(p.relative_to(root).as_posix() for p in root.glob(name))
            except (ValueError, NotImplementedError, OSError):  # "/abs/*.py"
                matches = []
        out.extend(matches or [name])
    return list(dict.fromkeys(out))


def summary_line(text):
    """pytest's final summary line (``"1 failed, 2 passed in 0.10s"``), or None."""
    for line in reversed(text.splitlines()):
        candidate = line.strip().strip("=").strip()
        if SUMMARY_RE.match(candidate):
            return candidate
    return None


# --------------------------------------------------------------------------- helpers


def _listed(text, prefix):
    """The ids pytest's short summary lists with ``prefix`` ("FAILED ", "ERROR ")."""
    ids = [
        line[len(prefix) :].split(" - ", 1)[0].strip()
        for line in text.splitlines()
        if line.startswith(prefix)
    ]
    shown = ", ".join(ids[:LISTED])
    return shown + (f" (+{len(ids) - LISTED} more)" if len(ids) > LISTED else "")


def _failed_tests(text):
    """The message for failed tests when pytest printed no summary (``-qq``)."""
    failed = _listed(text, "FAILED ")
    return f"tests failed: {failed}" if failed else "tests failed (pytest exit code 1)"


def _interruption(text):
    """pytest's ``!!!!! reason !!!!!`` line."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("!!") and stripped.strip("! "):
            return stripped.strip("! ")
    return first_line(text) or "no output"


def _internal_error(r):
    """The exception of pytest's ``INTERNALERROR>`` traceback (its last line), else the
    ``E   ...`` line of its error report, else its first line."""
    text = _ANSI.sub("", f"{r.stdout}\n{r.stderr}")
    lines = [
        line.removeprefix("INTERNALERROR>").strip()
        for line in text.splitlines()
        if line.startswith("INTERNALERROR>")
    ]
    lines = [line for line in lines if line]
    if lines:
        return lines[-1]
    return _error_line(text) or first_line(r.stderr, r.stdout) or "no output"


def _error_line(text):
    """The exception line of a traceback: pytest's last ``E   Error: ...`` line, else
    Python's last ``Error: ...`` line after ``Traceback (most recent call last):``."""
    lines = text.splitlines()
    marked = [line[1:].strip() for line in lines if line.startswith("E ") and line[1:].strip()]
    if marked:
        return marked[-1]
    if TRACEBACK in text:
        after = text.rsplit(TRACEBACK, 1)[1].splitlines()
        raised = [ln.strip() for ln in after if EXCEPTION_RE.match(ln)]
        if raised:
            return raised[-1]
    return None


def _usage_error(r):
    """pytest's own reason: ``pytest: error: ...``, else its ``ERROR: ...`` line, else its
    first line with the ``E   ...`` line that explains it (a conftest that fails to import)."""
    text = _ANSI.sub("", r.stderr + "\n" + r.stdout)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("pytest: error:"):
            return line.removeprefix("pytest: error:").strip()
    for line in lines:
        if line.startswith("ERROR:") and not line.startswith("ERROR: usage:"):
            return line.removeprefix("ERROR:").strip()
    if not lines:
        return "no output"
    detail = next((line[1:].strip() for line in lines if line.startswith("E ")), None)
    return f"{lines[0]} ({detail})" if detail else lines[0]
