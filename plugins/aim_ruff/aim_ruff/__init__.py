"""aim plugin for ruff: the ``linting`` capability.

Tool id ``ruff``; the program is ``ruff`` on PATH. One attempt runs::

    ruff check --fix --no-cache --output-format json-lines [ARGS...] -- FILES...

(``ARGS`` is ``tools: {ruff: {args: [...]}}`` of the config; globs in ``FILES``
are expanded; without files it runs ``--no-fix`` on ``.``) and reads the
violations that remain from its JSON lines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from aim_core import Failure, InvocationResult, Problem, hookimpl
from aim_core.toolkit import (
    changed_files,
    detect_program,
    file_states,
    files_field,
    first_line,
    joined_output,
    option_args,
    process_failure,
    program_version,
    tool_options,
)

TOOL_ID = "ruff"
CAPABILITIES = ("linting",)
PYTHON_SUFFIXES = (".py", ".pyi")
LISTED = 5  # violations named in the message; the rest are counted


@hookimpl
def detect_tool(context):
    """ruff is ready whenever it answers ``ruff --version``."""
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program="ruff",
        capabilities=CAPABILITIES,
        install_hint="pip install ruff",
        env_passthrough=("RUFF_*",),
        scratch_paths=(".ruff_cache/",),
    )


@hookimpl
def get_version(tool_id, context):
    """``ruff --version`` as it prints it."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, "ruff")


@hookimpl
def validate_payload(tool_id, capability, payload, context):
    """ruff lints Python files (``.py``, ``.pyi``) and directories, nothing else."""
    if tool_id != TOOL_ID:
        return None
    problems = []
    if capability is not None and capability not in CAPABILITIES:
        problems.append(Problem(field="capability", message=_not_provided(capability)))
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
    if capability is not None and capability not in CAPABILITIES:
        return _failed(Failure.INVALID_PAYLOAD, _not_provided(capability))
    try:
        args = option_args(tool_options(payload, context))
    except ValueError:
        return _failed(
            Failure.INVALID_PAYLOAD, "config tools.ruff.args must be a list of arguments"
        )
    root = Path(context.root)
    # Without files the whole repository is linted, but nothing is in scope to be fixed.
    fix = "--fix" if payload.files else "--no-fix"
    targets, missing = expand(root, payload.files or ["."])
    if missing:
        return _failed(
            Failure.INVALID_PAYLOAD,
            f"ruff cannot lint {_names(missing)}: no such file or directory",
        )
    before = file_states(root, [*targets, *payload.files_scope]) if payload.files else {}
    program = context.which("ruff") or "ruff"
    argv = [program, "check", fix, "--no-cache", "--output-format", "json-lines", *args]
    r = context.run([*argv, "--", *targets])
    output = joined_output(r.stdout, r.stderr)
    fixed = tuple(changed_files(before, file_states(root, before))[1])

    def result(failure, message):
        return InvocationResult(
            success=failure is None,
            message=message,
            exit_code=r.exit_code,
            failure=failure,
            output=output,
            duration_sec=r.duration_sec,
            files_modified=fixed,
        )

    stopped = process_failure(r, "ruff")
    if stopped is not None:
        return result(*stopped)
    if r.exit_code not in (0, 1):
        return result(Failure.TOOL_ERROR, f"ruff failed (exit code {r.exit_code}): {_cause(r)}")

    violations, readable = parse_violations(r.stdout)
    unread = [v for v in violations if v.get("code") == "E902"]
    remaining = [v for v in violations if v.get("code") != "E902"]
    warnings = [line.strip() for line in r.stderr.splitlines() if "Failed to lint" in line]
    if unread:
        name, why = _relative(unread[0].get("filename"), root), unread[0].get("message")
        return result(Failure.TOOL_ERROR, f"ruff could not read {name}: {_one_line(why)}")
    if warnings:
        said = warnings[0].split("Failed to lint", 1)[1].strip()
        return result(Failure.TOOL_ERROR, f"ruff could not lint {_one_line(said)}")
    if remaining:
        at_least = "at least " if r.dropped_bytes or not readable else ""
        return result(
            Failure.WORK_FAILED,
            f"{at_least}{_count(len(remaining), 'lint error')} "
            f"{'remains' if len(remaining) == 1 else 'remain'}: {_listing(remaining, root)}",
        )
    if r.exit_code == 1:
        # Violations reported in a form this plugin can't read (ARGS changed the output).
        return result(
            Failure.WORK_FAILED,
            f"lint errors remain (ruff exit code 1): {first_line(r.stdout, r.stderr)}",
        )
    if "No Python files found" in r.stderr:
        return result(
            Failure.INVALID_PAYLOAD, f"ruff found no Python files to lint in {_names(targets)}"
        )
    message = "no lint remains"
    if fixed:
        message += f" (fixed {_count(len(fixed), 'file')}: {_names(fixed)})"
    return result(None, message)


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


def _failed(failure, message):
    return InvocationResult(success=False, message=message, failure=failure)


def _not_provided(capability):
    return f"ruff provides only {', '.join(CAPABILITIES)}, not {capability}"


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


def _cause(r):
    """ruff's own reason for failing: its ``Cause:`` line, else its first line."""
    for line in r.stderr.splitlines():
        stripped = line.strip()
        if stripped.startswith("Cause:"):
            return stripped.removeprefix("Cause:").strip()
    return first_line(r.stderr, r.stdout) or "no output"
