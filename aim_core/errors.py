"""The one error family of aim.

Every error a user can cause is an :class:`AimError` carrying the exit code the
``aim`` command ends with and one sentence naming the file, the field path,
what was wrong and how to fix it. Only the CLI turns them into exit codes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_WORK_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_TOOL = 3
EXIT_AUDIT = 4
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class Interrupted(Exception):
    """A run was asked to stop (Ctrl-C or SIGTERM, or :meth:`Runner.request_stop`).

    Not an :class:`AimError`: the run ends with exit code 130 after restoring
    its files and recording the attempt as ``interrupted``.
    """


class AimError(Exception):
    """Base class of every error aim reports to a user.

    :param message: one sentence: what was wrong and how to fix it.
    :param file: the file the problem is in, if any.
    :param field: the field path inside that file (``capability_payload.timeout_ms``).
    """

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.field = field

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.field) if p]
        parts.append(self.message)
        return ": ".join(parts)


class UsageError(AimError):
    """A command was called wrongly (bad option value, missing file)."""


class WorkstreamError(AimError):
    """A workstream file is not valid; ``problems`` lists every finding."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        problems: list[str] | None = None,
    ):
        super().__init__(message, file=file, field=field)
        self.problems = problems or []


class ConfigError(AimError):
    """``aim_config.yaml`` or the coordination rules are not valid."""


class SecurityError(AimError):
    """A workstream breaks a security rule; nothing was run."""


class NoToolError(AimError):
    """No installed tool can do what the run needs (a ``verify`` check's capability,
    for one): exit code 3, nothing was run."""

    exit_code = EXIT_NO_TOOL


class AuditIntegrityError(AimError):
    """The audit log failed verification (``aim audit verify``), or an append found
    the log behind its recorded head: exit code 4."""

    exit_code = EXIT_AUDIT
