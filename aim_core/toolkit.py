"""Helpers for tool plugins: detecting a program, reading options, telling what
changed, turning a tool's output into one clean line. Every first-party plugin
uses them; they are public and stable, like the rest of ``aim_core``'s API::

    from aim_core.toolkit import detect_program

    @hookimpl
    def detect_tool(context):
        return detect_program(context, tool_id="mytool", program="mytool",
                              capabilities=["linting"], install_hint="pip install mytool")
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aim_core.models import Failure, Problem, ProcessResult, ToolDetection

if TYPE_CHECKING:
    from aim_core.context import AimContext

VERSION_TIMEOUT_S = 10.0

Readiness = Callable[["AimContext", str], tuple[bool | None, str | None, Failure | None]]


def first_line(*texts: str) -> str:
    """The first non-empty line of the first text that has one."""
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return ""


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
        called when the version answered; cheap checks only (a credentials
        file, an environment variable), no network. Its ``context`` passes the
        ``env_passthrough`` variables to the processes it runs and holds the
        tool's options (``tools: {tool_id: ...}``).
    :param explain_failure: turns the output of a failed version call into the
        reason shown to the user (the default is the program's first line).
    :returns: a :class:`~aim_core.ToolDetection`; a program that is found but
        fails to answer its version is installed and not ready
        (``unavailable``), with its own first line of output as the reason.
    """
    import attrs

    # the tool's own variables and options reach its version and readiness calls
    options = context.settings.tool_options(tool_id) if context.settings is not None else {}
    context = attrs.evolve(
        context,
        env_passthrough=tuple(env_passthrough),
        options=dict(options),
        tool_id=tool_id,
    )
    common = {
        "tool_id": tool_id,
        "capabilities": tuple(capabilities),
        "env_passthrough": tuple(env_passthrough),
        "scratch_paths": tuple(scratch_paths),
        "watch_paths": tuple(watch_paths),
    }
    path = context.which(program)
    if path is None:
        return ToolDetection(
            installed=False,
            reason=f"'{program}' not found on PATH (install: {install_hint})",
            **common,
        )
    r = context.run([path, *version_args], timeout_s=VERSION_TIMEOUT_S)
    if r.timed_out:
        return ToolDetection(
            installed=True,
            path=path,
            ready=False,
            failure=Failure.UNAVAILABLE,
            reason=f"'{program} {' '.join(version_args)}' did not answer in time",
            **common,
        )
    if r.exit_code != 0:
        said = first_line(r.stderr, r.stdout) or f"exit code {r.exit_code}"
        reason = explain_failure(r) if explain_failure else None
        return ToolDetection(
            installed=True,
            path=path,
            ready=False,
            failure=Failure.UNAVAILABLE,
            reason=reason or f"'{program}' does not start: {said}",
            **common,
        )
    version = first_line(r.stdout, r.stderr) or None
    ready, reason, failure = (None, None, None)
    if readiness is not None:
        ready, reason, failure = readiness(context, path)
    return ToolDetection(
        installed=True,
        path=path,
        version=version,
        ready=ready,
        reason=reason,
        failure=failure if ready is False else None,
        **common,
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

# (size, sha256) of a file; None when the path is absent (or unreadable).
FileState = tuple[int, str] | None
# Files hashed under a directory in scope, at most (a scope of "." in a huge repository).
MAX_SNAPSHOT_FILES = 5000


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


def _digest(path: Path) -> FileState:
    try:
        h = hashlib.sha256()
        size = 0
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
        return (size, h.hexdigest())
    except OSError:
        return None


def file_states(root: os.PathLike[str] | str, paths: Iterable[str]) -> dict[str, FileState]:
    """The content state of each path (a directory stands for every file under it)."""
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
    """``(created, modified)`` between two snapshots; a deleted file counts as modified."""
    created: list[str] = []
    modified: list[str] = []
    for rel in sorted(set(before) | set(after)):
        old, new = before.get(rel), after.get(rel)
        if old == new:
            continue
        (created if old is None else modified).append(rel)
    return created, modified


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
    """One line for a message: whitespace collapsed, secrets redacted, at most ``limit``."""
    line = redact(" ".join((text or "").split()))
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
        served = ", ".join(capabilities)
        problems.append(
            Problem(field="capability", message=f"{tool} does {served}, not {capability}")
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
