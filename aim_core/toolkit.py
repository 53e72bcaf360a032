"""Helpers for tool plugins: detecting a program, checking a request, running one
attempt, turning a tool's output into one clean line. Every first-party plugin
uses them; the names in ``__all__`` are public and stable, like the rest of
``aim_core``'s API::

    from aim_core.toolkit import call_result, detect_program, prepare_call, process_failure

    @hookimpl
    def detect_tool(context):
        return detect_program(context, tool_id="mytool", program="mytool",
                              capabilities=["linting"], install_hint="pip install mytool")

    @hookimpl
    def invoke_capability(tool_id, capability, payload, context):
        if tool_id != "mytool":
            return None
        call = prepare_call(context, payload, capability, tool_id="mytool",
                            program="mytool", capabilities=["linting"],
                            install_hint="pip install mytool")
        if isinstance(call, InvocationResult):  # refused before anything ran
            return call
        r = context.run([call.program, *call.args, "--", *payload.files])
        stopped = process_failure(r, "mytool")  # not started, timed out, killed
        if stopped is not None:
            return call_result(r, *stopped)
        if r.exit_code != 0:
            return call_result(r, Failure.WORK_FAILED, first_line(r.stdout) or "lint remains")
        return call_result(r, None, "no lint remains", changes=context.changes())

What the tool changed is measured by the core: call ``context.changes()`` (or
:func:`scoped_changes`) after the tool ran; never hash files yourself.
"""

from __future__ import annotations

import fnmatch
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import frozen

from aim_core.digest import file_sha256
from aim_core.display import strip_ansi
from aim_core.models import (
    Failure,
    FileChanges,
    InvocationResult,
    Problem,
    ProcessResult,
    ToolDetection,
    Usage,
)

if TYPE_CHECKING:
    from aim_core.context import AimContext

__all__ = [
    "MAX_ARGV_PROMPT",
    "Readiness",
    "ToolCall",
    "call_result",
    "detect_program",
    "failed",
    "files_field",
    "first_line",
    "in_paths",
    "joined_output",
    "json_lines",
    "launch_failure",
    "not_provided",
    "one_line",
    "option_args",
    "prepare_call",
    "process_failure",
    "program_version",
    "prompt_with_files",
    "redact",
    "request_problems",
    "retry_after",
    "scoped_changes",
    "target_files",
    "timeout_message",
    "tool_options",
    "writable_files",
]

VERSION_TIMEOUT_S = 10.0

Readiness = Callable[["AimContext", str], tuple[bool | None, str | None, Failure | None]]


def first_line(*texts: str) -> str:
    """The first non-empty line of the first text that has one, without ANSI colours."""
    for text in texts:
        for line in strip_ansi(text or "").splitlines():
            if line.strip():
                return line.strip()
    return ""


def _detection_start(
    context: AimContext,
    tool_id: str,
    capabilities: Sequence[str],
    env_passthrough: Sequence[str],
    scratch_paths: Sequence[str],
    watch_paths: Sequence[str],
) -> tuple[AimContext, ToolDetection]:
    """The context a tool's detection runs with (its own variables and options reach its
    version and readiness calls) and its detection as far as known without running it."""
    import attrs

    options = context.settings.tool_options(tool_id) if context.settings is not None else {}
    context = attrs.evolve(
        context, env_passthrough=tuple(env_passthrough), options=dict(options), tool_id=tool_id
    )
    base = ToolDetection(
        tool_id=tool_id,
        capabilities=tuple(capabilities),
        installed=False,
        env_passthrough=tuple(env_passthrough),
        scratch_paths=tuple(scratch_paths),
        watch_paths=tuple(watch_paths),
    )
    return context, base


def detect_program(
    context: AimContext,
    *,
    tool_id: str,
    program: str,
    capabilities: Sequence[str],
    install_hint: str,
    version_args: Sequence[str] = ("--version",),
    env_passthrough: Sequence[str] = (),
    scratch_paths: Sequence[str] = (),
    watch_paths: Sequence[str] = (),
    readiness: Readiness | None = None,
    explain_failure: Callable[[ProcessResult], str | None] | None = None,
) -> ToolDetection:
    """Find ``program`` on PATH, ask its version and, optionally, whether it is ready.

    :param install_hint: the command that installs the program, shown when it
        is missing (``"pip install aider-chat"``).
    :param version_args: the arguments that make it print its version.
    :param readiness: ``readiness(context, path) -> (ready, reason, failure)``,
        called when the version answered; cheap checks only (a credentials file,
        a variable), no network. Its ``context`` passes the ``env_passthrough``
        variables and holds the tool's options (``tools: {tool_id: ...}``).
    :param explain_failure: the reason shown for a failed version call's output
        (the default is the program's first line).
    :returns: a :class:`~aim_core.ToolDetection`; a program that is found but
        fails to answer its version is installed and not ready
        (``unavailable``), with its own first line of output as the reason.
    """
    import attrs

    context, base = _detection_start(
        context, tool_id, capabilities, env_passthrough, scratch_paths, watch_paths
    )
    path = context.which(program)
    if path is None:
        return attrs.evolve(base, reason=f"'{program}' not found on PATH (install: {install_hint})")
    r = context.run([path, *version_args], timeout_s=VERSION_TIMEOUT_S)
    if r.timed_out or r.exit_code != 0:
        if r.timed_out:
            reason = f"'{program} {' '.join(version_args)}' did not answer in time"
        else:
            said = first_line(r.stderr, r.stdout) or f"exit code {r.exit_code}"
            explained = explain_failure(r) if explain_failure else None
            reason = explained or f"'{program}' does not start: {said}"
        return attrs.evolve(
            base, installed=True, path=path, ready=False, failure=Failure.UNAVAILABLE, reason=reason
        )
    ready, why, failure = (None, None, None)
    if readiness is not None:
        ready, why, failure = readiness(context, path)
    return attrs.evolve(
        base,
        installed=True,
        path=path,
        version=first_line(r.stdout, r.stderr) or None,
        ready=ready,
        reason=why,
        failure=failure if ready is False else None,
    )


def program_version(
    context: AimContext, program: str, version_args: Sequence[str] = ("--version",)
) -> str | None:
    """What ``program --version`` prints (its first line), or None when it can't say."""
    path = context.which(program)
    if path is None:
        return None
    r = context.run([path, *version_args], timeout_s=VERSION_TIMEOUT_S)
    if r.exit_code != 0:
        return None
    return first_line(r.stdout, r.stderr) or None


# --------------------------------------------------------------------------- invoking

# Prompts longer than this go through a file or stdin, never argv: Linux refuses a
# single argument over 128 KiB (MAX_ARG_STRLEN) and the core allows 1 MiB payloads.
MAX_ARGV_PROMPT = 100_000


def tool_options(payload: Any, context: Any) -> dict[str, Any]:
    """The tool's config section: ``context.options`` overlaid by ``payload.options``."""
    options: dict[str, Any] = dict(context.options or {})
    options.update(payload.options or {})
    return options


def option_args(options: Mapping[str, Any]) -> list[str]:
    """``options["args"]`` as a list of arguments (a string is split like a shell would).

    :raises ValueError: when ``args`` is neither a list of values nor a string.
    """
    args = options.get("args") or []
    if isinstance(args, str):
        import shlex

        return shlex.split(args)
    if isinstance(args, (list, tuple)) and all(
        isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in args
    ):
        return [str(a) for a in args]
    raise ValueError(f"the tool's args option must be a list of arguments, got {args!r}")


def target_files(payload: Any) -> list[str]:
    """``payload.files`` then the ``files_create`` not already listed, in order."""
    seen: dict[str, None] = {}
    for rel in (*payload.files, *payload.files_create):
        seen.setdefault(rel, None)
    return list(seen)


def writable_files(payload: Any) -> list[str]:
    """Every path the tool may change: scope, files to create and files to work on."""
    seen: dict[str, None] = {}
    for rel in (*payload.files_scope, *payload.files_create, *payload.files):
        seen.setdefault(rel, None)
    return list(seen)


def not_provided(tool: str, capabilities: Sequence[str], capability: str) -> str:
    """The one line for a capability the tool does not serve."""
    return f"{tool} provides only {', '.join(capabilities)}, not {capability}"


@frozen(kw_only=True)
class ToolCall:
    """What :func:`prepare_call` checked and found for one attempt.

    ``program`` is the program's full path, ``options`` the tool's options
    (:func:`tool_options`), ``args`` their ``args`` as a list (:func:`option_args`).
    """

    program: str
    options: Mapping[str, Any]
    args: tuple[str, ...]


def prepare_call(
    context: AimContext,
    payload: Any,
    capability: str | None,
    *,
    tool_id: str,
    program: str,
    capabilities: Sequence[str],
    install_hint: str,
) -> ToolCall | InvocationResult:
    """What every ``invoke_capability`` checks before its tool runs.

    :returns: a :class:`ToolCall`, or the failed :class:`~aim_core.InvocationResult`
        to return as it is: ``invalid_payload`` for a capability the tool does not
        serve or an ``args`` option that is not a list of arguments,
        ``not_installed`` (with ``install_hint``) when ``program`` is not on PATH.
    """
    if capability is not None and capability not in capabilities:
        return failed(Failure.INVALID_PAYLOAD, not_provided(tool_id, capabilities, capability))
    options = tool_options(payload, context)
    try:
        args = option_args(options)
    except ValueError:
        return failed(
            Failure.INVALID_PAYLOAD, f"config tools.{tool_id}.args must be a list of arguments"
        )
    path = context.which(program)
    if path is None:
        return failed(
            Failure.NOT_INSTALLED, f"'{program}' not found on PATH (install: {install_hint})"
        )
    return ToolCall(program=path, options=options, args=tuple(args))


def failed(failure: Failure, message: str) -> InvocationResult:
    """An attempt that ended before (or without) running its tool."""
    return InvocationResult(success=False, message=message, failure=failure)


def call_result(
    result: ProcessResult,
    failure: Failure | None,
    message: str,
    *,
    changes: FileChanges | None = None,
    output: str | None = None,
    retry_after_s: float | None = None,
    usage: Usage | None = None,
) -> InvocationResult:
    """The :class:`~aim_core.InvocationResult` of an attempt whose tool ran.

    Success exactly when ``failure`` is None; exit code and duration come from
    ``result``, ``output`` defaults to its stdout then stderr
    (:func:`joined_output`); ``changes`` (deleted files count as modified) fill
    ``files_created`` and ``files_modified``.
    """
    changes = changes or FileChanges()
    return InvocationResult(
        success=failure is None,
        message=message,
        exit_code=result.exit_code,
        files_created=changes.created,
        files_modified=sorted((*changes.modified, *changes.deleted)),
        duration_sec=result.duration_sec,
        failure=failure,
        output=joined_output(result.stdout, result.stderr) if output is None else output,
        retry_after_s=retry_after_s,
        usage=usage,
    )


_GLOB_CHARS = frozenset("*?[")


def in_paths(rel: str, paths: Iterable[str]) -> bool:
    """Whether the repository-relative ``rel`` is one of ``paths`` -- a file, a
    directory (everything under it) or a glob, as ``files_scope`` names them. A name
    is first taken literally (``pages/[id].tsx`` is that file), then as a glob."""
    for entry in paths:
        entry = entry.replace("\\", "/").removeprefix("./").rstrip("/")
        if entry in ("", ".") or rel == entry or rel.startswith(entry + "/"):
            return True
        if _GLOB_CHARS & set(entry) and fnmatch.fnmatchcase(rel, entry):
            return True
    return False


def scoped_changes(context: AimContext, paths: Iterable[str]) -> FileChanges:
    """``context.changes()`` limited to ``paths`` (see :func:`in_paths`): what the
    tool changed among the files it was given, measured by the core."""
    paths = list(paths)
    found = context.changes()
    return FileChanges(
        created=[p for p in found.created if in_paths(p, paths)],
        modified=[p for p in found.modified if in_paths(p, paths)],
        deleted=[p for p in found.deleted if in_paths(p, paths)],
    )


# --------------------------------------------------------------------------- deprecated

# (size, sha256) of a file; None when the path is absent (or unreadable).
FileState = tuple[int, str] | None
# Files hashed under a directory in scope, at most (a scope of "." in a huge repository).
MAX_SNAPSHOT_FILES = 5000


def file_states(root: os.PathLike[str] | str, paths: Iterable[str]) -> dict[str, FileState]:
    """The content state of each path (a directory stands for every file under it).

    Deprecated (0.1.1; removed in 0.2): the core measures what a tool changed; call
    ``context.changes()`` or :func:`scoped_changes` after the tool ran instead.
    """
    warnings.warn(
        "aim_core.toolkit.file_states is deprecated: call context.changes() "
        "(or toolkit.scoped_changes) after the tool ran",
        DeprecationWarning,
        stacklevel=2,
    )
    state: dict[str, FileState] = {}
    for rel in paths:
        full = Path(root, rel)
        if not full.is_dir():
            state[rel] = _digest(full) if full.is_file() else None
            continue
        for dirpath, dirnames, filenames in os.walk(full):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for name in sorted(filenames):
                if len(state) >= MAX_SNAPSHOT_FILES:
                    return state
                f = Path(dirpath, name)
                state[f.relative_to(root).as_posix()] = _digest(f)
    return state


def changed_files(
    before: Mapping[str, FileState], after: Mapping[str, FileState]
) -> tuple[list[str], list[str]]:
    """``(created, modified)`` between two snapshots; a deleted file counts as modified.

    Deprecated (0.1.1; removed in 0.2) with :func:`file_states`: use ``context.changes()``.
    """
    warnings.warn(
        "aim_core.toolkit.changed_files is deprecated: call context.changes() after the tool ran",
        DeprecationWarning,
        stacklevel=2,
    )
    created: list[str] = []
    modified: list[str] = []
    for rel in sorted(set(before) | set(after)):
        old, new = before.get(rel), after.get(rel)
        if old == new:
            continue
        (created if old is None else modified).append(rel)
    return created, modified


def _digest(path: Path) -> FileState:
    try:
        return file_sha256(path)
    except OSError:
        return None


# --------------------------------------------------------------------------- messages

_UNITS = (
    ("milliseconds", 0.001),
    ("millisecond", 0.001),
    ("ms", 0.001),
    ("hours", 3600.0),
    ("hour", 3600.0),
    ("h", 3600.0),
    ("minutes", 60.0),
    ("minute", 60.0),
    ("mins", 60.0),
    ("min", 60.0),
    ("m", 60.0),
    ("seconds", 1.0),
    ("second", 1.0),
    ("secs", 1.0),
    ("sec", 1.0),
    ("s", 1.0),
)
_RETRY_PHRASE = re.compile(r"(?:try again in|retry[- ]after|retry in)\s*:?\s*", re.IGNORECASE)
_DURATION_PART = re.compile(
    r"(\d+(?:\.\d+)?)\s*(" + "|".join(u for u, _ in _UNITS) + r")?(?![a-z])", re.IGNORECASE
)


def retry_after(text: str) -> float | None:
    """Seconds a tool said to wait ("try again in 1s", "retry after 20 seconds",
    "try again in 6m0s", "retry-after: 30"); the last such advice wins."""
    found: float | None = None
    factor = dict(_UNITS)
    for phrase in _RETRY_PHRASE.finditer(text or ""):
        pos, total, matched = phrase.end(), 0.0, False
        while True:
            m = _DURATION_PART.match(text, pos)
            if not m:
                break
            total += float(m.group(1)) * factor[(m.group(2) or "s").lower()]
            matched, pos = True, m.end()
        if matched:
            found = total
    return found


_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")  # https://user:token@host/...


def redact(text: str) -> str:
    """``text`` with credentials replaced by ``[REDACTED]`` (the core's scanner: keys,
    tokens, keyword assignments, private keys) and credentials dropped from URLs."""
    from aim_core.credentials import redact as redact_credentials

    return redact_credentials(_URL_CREDENTIALS.sub("", text))


def one_line(text: str, limit: int = 300) -> str:
    """One line for a message: ANSI colours removed, whitespace collapsed, secrets
    redacted, at most ``limit``."""
    line = redact(" ".join(strip_ansi(text or "").split()))
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def launch_failure(result: Any, program: str) -> tuple[Failure, str] | None:
    """``(failure, message)`` when the program did not get to run at all, else None."""
    said = first_line(result.stderr, result.stdout)
    if result.interrupted:
        return Failure.INTERRUPTED, f"{program} was interrupted"
    if result.exit_code == 127 and not result.stdout.strip():
        return Failure.NOT_INSTALLED, f"'{program}' is not installed" + (
            f": {said}" if said else ""
        )
    if result.exit_code == 126 and not result.stdout.strip():
        return Failure.UNAVAILABLE, f"'{program}' cannot be started" + (f": {said}" if said else "")
    return None


def timeout_message(program: str, result: Any) -> str:
    """The one line for a call stopped at the attempt's time limit."""
    return f"{program} did not finish in time (stopped after {result.duration_sec:.1f}s)"


def prompt_with_files(
    payload: Any,
    *,
    change: str = "Change only these files:",
    create: str = "Create these files:",
) -> str:
    """The instruction, then the files the tool may change and those it must create
    (an agent can't guess them), each list under its heading."""
    lines = [payload.prompt.rstrip()]
    existing = [f for f in payload.files if f not in payload.files_create]
    if existing:
        lines += ["", change, *(f"- {f}" for f in existing)]
    if payload.files_create:
        lines += ["", create, *(f"- {f}" for f in payload.files_create)]
    return "\n".join(lines)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` that is a JSON object, in order (an agent CLI's event
    stream); other lines -- progress, warnings, half a line -- are skipped."""
    import json

    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
    return found


def joined_output(stdout: str, stderr: str) -> str:
    """stdout, then stderr under a marker when there is any: the text for the run log."""
    if stderr.strip():
        return f"{stdout.rstrip()}\n--- stderr ---\n{stderr.rstrip()}\n"
    return stdout


def process_failure(result: Any, program: str) -> tuple[Failure, str] | None:
    """``(failure, message)`` when the process did not get to do its work -- not
    started, interrupted, timed out, killed by a signal -- else None."""
    launch = launch_failure(result, program)
    if launch is not None:
        return launch
    if result.timed_out:
        return Failure.TIMEOUT, timeout_message(program, result)
    if result.exit_code is None:
        return Failure.TOOL_ERROR, f"{program} ended without an exit code"
    if result.exit_code < 0:
        return Failure.TOOL_ERROR, f"{program} was killed by signal {-result.exit_code}"
    return None


# --------------------------------------------------------------------------- validating


def files_field(payload: Any, index: int) -> str:
    """The field path a workstream used for ``payload.files[index]``: its scope's entry
    when the files came from ``files_scope``, else its payload's."""
    if payload.files_scope and tuple(payload.files) == tuple(payload.files_scope):
        return f"files_scope[{index}]"
    return f"capability_payload.files[{index}]"


def request_problems(
    payload: Any,
    capability: str | None,
    *,
    tool: str,
    capabilities: Sequence[str],
    files_needed: str | None = None,
) -> list[Problem]:
    """What an AI tool objects to in any request: a capability it does not serve, no
    instruction, and -- with ``files_needed`` (why, in a few words) -- no file to work on."""
    problems = []
    if capability is not None and capability not in capabilities:
        problems.append(
            Problem(field="capability", message=not_provided(tool, capabilities, capability))
        )
    if not (payload.prompt or "").strip():
        problems.append(
            Problem(
                field="capability_payload.prompt",
                message=f"{tool} needs an instruction: set capability_payload.prompt or tasks",
            )
        )
    if files_needed and not target_files(payload):
        problems.append(
            Problem(
                field="capability_payload.files",
                message=f"{tool} {files_needed}: list them in capability_payload.files, "
                "files_scope or files_create",
            )
        )
    return problems
