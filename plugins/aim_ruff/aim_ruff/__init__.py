"""aim plugin for ruff: the ``linting`` capability.

Tool id ``ruff``; the program is ``ruff`` on PATH. One attempt runs::

    ruff check --fix --no-cache --output-format json-lines [ARGS...] -- FILES...

(``ARGS`` is ``tools: {ruff: {args: [...]}}`` of the config; globs in ``FILES``
are expanded; without files it runs ``--no-fix`` on ``.``, and a read-only
request -- ``payload.read_only``, as a ``verify`` check sends -- gets
``--no-fix`` too) and reads the violations that remain from its JSON lines.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from aim_core import Failure, InvocationResult, Problem, hookimpl, own_tools_only
from aim_core.toolkit import (
    call_result,
    detect_program,
    failed,
    files_field,
    first_line,
    not_provided,
    prepare_call,
    process_failure,
    program_version,
    scoped_changes,
)

TOOL_ID = "ruff"
CAPABILITIES = ("linting",)
INSTALL_HINT = "pip install ruff"
PYTHON_SUFFIXES = (".py", ".pyi")
LISTED = 5  # violations named in the message; the rest are counted
# The lines of a TOML snippet in ruff's errors: "|", "2 | select = [", "  |   ^".
SNIPPET = re.compile(r"^(?:\d+\s*)?\|")


@hookimpl
def detect_tool(context):
    """ruff is ready whenever it answers ``ruff --version``."""
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program="ruff",
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
        # No RUFF_* variable: RUFF_OUTPUT_FILE would send the report into a file (in
        # the repository, and away from the parser); RUFF_OUTPUT_FORMAT and the cache
        # ones are pinned by the command line anyway.
        env_passthrough=(),
        scratch_paths=(".ruff_cache/",),
    )


@hookimpl
def get_version(tool_id, context):
    """``ruff --version`` as it prints it."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, "ruff")


@hookimpl
@own_tools_only
def validate_payload(tool_id, capability, payload, context):
    """ruff lints Python files (``.py``, ``.pyi``) and directories, nothing else."""
    if tool_id != TOOL_ID:
        return None
    problems = []
    if capability is not None and capability not in CAPABILITIES:
        message = not_provided(TOOL_ID, CAPABILITIES, capability)
        problems.append(Problem(field="capability", message=message))
    # The request's files are the payload's own, else files_scope: name what the author wrote.
    for i, name in enumerate(payload.files):
        if not _lintable(context.root, name):
            message = f"ruff lints only Python files (.py, .pyi) and directories, not {name!r}"
            problems.append(Problem(field=files_field(payload, i), message=message))
    return problems or None


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    """Run ``ruff check --fix`` once; success when no violation remains."""
    if tool_id != TOOL_ID:
        return None
    call = prepare_call(
        context,
        payload,
        capability,
        tool_id=TOOL_ID,
        program="ruff",
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
    )
    if isinstance(call, InvocationResult):
        return call
    root = Path(context.root)
    # Without files the whole repository is linted, but nothing is in scope to be fixed;
    # a read-only request (a verify check) may change nothing.
    read_only = getattr(payload, "read_only", False)  # older aim_core: no such field
    fix = "--fix" if payload.files and not read_only else "--no-fix"
    targets, missing = expand(root, payload.files or ["."])
    if missing:
        return failed(
            Failure.INVALID_PAYLOAD,
            f"ruff cannot lint {_names(missing)}: no such file or directory",
        )
    argv = [call.program, "check", fix, "--no-cache", "--output-format", "json-lines"]
    r = context.run([*argv, *call.args, "--", *targets])
    stopped = process_failure(r, "ruff")
    if stopped is not None:
        return call_result(r, *stopped)
    fixed = scoped_changes(context, [*targets, *payload.files_scope]) if fix == "--fix" else None
    failure, message = classify(r, root, targets, fixed.modified if fixed else ())
    return call_result(r, failure, message, changes=fixed)


def classify(r, root, targets, fixed):
    """``(failure, message)`` for a ruff call that ran; failure None means success."""
    if r.exit_code not in (0, 1):
        return Failure.TOOL_ERROR, f"ruff failed (exit code {r.exit_code}): {_cause(r, root)}"
    violations, readable = parse_violations(r.stdout)
    unread = [v for v in violations if v.get("code") == "E902"]
    remaining = [v for v in violations if v.get("code") != "E902"]
    warnings = [line.strip() for line in r.stderr.splitlines() if "Failed to lint" in line]
    if unread:
        name, why = _relative(unread[0].get("filename"), root), unread[0].get("message")
        return Failure.TOOL_ERROR, f"ruff could not read {name}: {_one_line(why)}"
    if warnings:
        said = warnings[0].split("Failed to lint", 1)[1].strip()
        return Failure.TOOL_ERROR, f"ruff could not lint {_one_line(said)}"
    if remaining:
        at_least = "at least " if r.dropped_bytes or not readable else ""
        verb = "remains" if len(remaining) == 1 else "remain"
        return (
            Failure.WORK_FAILED,
            f"{at_least}{_count(len(remaining), 'lint error')} {verb}: {_listing(remaining, root)}",
        )
    if r.exit_code == 1:
        # Violations reported in a form this plugin can't read (ARGS changed the output).
        said = first_line(r.stdout, r.stderr)
        return Failure.WORK_FAILED, f"lint errors remain (ruff exit code 1): {said}"
    if "No Python files found" in r.stderr:
        return Failure.INVALID_PAYLOAD, f"ruff found no Python files to lint in {_names(targets)}"
    message = "no lint remains"
    if fixed:
        message += f" (fixed {_count(len(fixed), 'file')}: {_names(list(fixed))})"
    return None, message


# --------------------------------------------------------------------------- helpers


def parse_violations(stdout):
    """The violations of ruff's JSON lines (or a JSON array), and whether every line read."""
    text = stdout.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            pass
        else:
            return [v for v in items if isinstance(v, dict)], True
    violations, readable = [], True
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            readable = False
            continue
        if isinstance(item, dict):
            violations.append(item)
        else:
            readable = False
    return violations, readable


def expand(root, names):
    """``names`` with each glob that names no path itself (``src/**/*.py``) replaced by the
    Python files and directories it matches, and the names that match nothing."""
    targets, missing = [], []
    for name in names:
        if (root / name).exists():
            targets.append(name)
            continue
        matches = []
        if any(c in name for c in "*?["):
            try:
                found = list(root.glob(name))
            except (ValueError, NotImplementedError, OSError):  # "/abs/*.py", "../*.py"
                found = []
            matches = sorted(
                p.relative_to(root).as_posix()
                for p in found
                if p.is_dir() or p.name.endswith(PYTHON_SUFFIXES)
            )
        targets.extend(matches)
        if not matches:
            missing.append(name)
    return list(dict.fromkeys(targets)), missing


def _lintable(root, name):
    """A Python file, a directory, or a path not there yet that looks like a directory."""
    if name.endswith(PYTHON_SUFFIXES):
        return True
    path = Path(root) / name
    if path.is_dir():
        return True
    return not path.exists() and not Path(name).suffix


def _count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _names(names, limit=LISTED):
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _one_line(text, limit=120):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _relative(filename, root):
    """``filename`` relative to the repository root when it is inside it."""
    if not filename:
        return "?"
    for base in (root, root.resolve()):
        rel = os.path.relpath(filename, base)
        if not rel.startswith(".."):
            return Path(rel).as_posix()
    return filename


def _where(violation, root):
    place = _relative(violation.get("filename"), root)
    loc = violation.get("location") or {}
    if loc.get("row") is not None:
        place += f":{loc['row']}:{loc.get('column', 1)}"
    return place


def _listing(violations, root):
    items = [
        f"{_where(v, root)} {v.get('code') or v.get('name') or '?'} {_one_line(v.get('message'))}"
        for v in violations[:LISTED]
    ]
    more = len(violations) - LISTED
    return "; ".join(items) + (f" (+{more} more)" if more > 0 else "")


def _cause(r, root):
    """ruff's own reason for failing: its last ``Cause:`` lines and the error under
    them (a broken ``ruff.toml`` names the file, the line and what is wrong), else its
    first line."""
    causes, detail = [], None
    for line in r.stderr.splitlines():
        stripped = line.strip()
        if stripped.startswith("Cause:"):
            causes.append(stripped.removeprefix("Cause:").strip())
            detail = None
        elif causes and stripped and not SNIPPET.match(stripped):
            detail = stripped  # the text after a TOML snippet: "unclosed array, expected `]`"
    if not causes:
        return first_line(r.stderr, r.stdout) or "no output"
    said = ": ".join([*causes[-2:], *([detail] if detail else [])])
    return _one_line(said.replace(f"{Path(root).resolve()}/", "").replace(f"{root}/", ""), 300)
