"""Helpers for tool plugins: detecting a program the way every first-party plugin does.

Public and stable, like the rest of ``aim_core``'s API::

    from aim_core.toolkit import detect_program

    @hookimpl
    def detect_tool(context):
        return detect_program(context, tool_id="mytool", program="mytool",
                              capabilities=["linting"], install_hint="pip install mytool")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aim_core.models import Failure, ProcessResult, ToolDetection

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
        file, an environment variable), no network.
    :param explain_failure: turns the output of a failed version call into the
        reason shown to the user (the default is the program's first line).
    :returns: a :class:`~aim_core.ToolDetection`; a program that is found but
        fails to answer its version is installed and not ready
        (``unavailable``), with its own first line of output as the reason.
    """
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
