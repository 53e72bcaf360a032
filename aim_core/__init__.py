"""aim: route AI coding work to the tools you have, with fallback and an audit.

The public API for plugin authors and for programs that embed aim. Names are
loaded on first use so that ``aim --version`` stays fast.
"""

from __future__ import annotations

from aim_core._version import __version__

# Set by the ``aim`` command line (aim_core.__main__): this process may become a child
# subreaper when it first starts a tool, so that nothing a tool started outlives it
# (aim_core.proctree.enable_subreaper); a program that embeds aim is never made one.
COMMAND_LINE = False

TYPE_CHECKING = False  # not typing's: importing typing costs ~9 ms of `aim --version`
if TYPE_CHECKING:
    from typing import Any

    from aim_core.api import run_workstream
    from aim_core.attempt import AttemptOutcome
    from aim_core.config import Settings
    from aim_core.context import AimContext
    from aim_core.errors import (
        AimError,
        AuditIntegrityError,
        ConfigError,
        SecurityError,
        WorkstreamError,
    )
    from aim_core.models import (
        AuditRecord,
        CapabilityPayload,
        Failure,
        FileChanges,
        Invocation,
        InvocationResult,
        Problem,
        ProcessResult,
        ToolDetection,
        Usage,
        Workstream,
    )
    from aim_core.plugins import hookimpl, own_tools_only
    from aim_core.runresult import RunResult

__all__ = [
    "AimContext",
    "AimError",
    "AttemptOutcome",
    "AuditIntegrityError",
    "AuditRecord",
    "CapabilityPayload",
    "ConfigError",
    "Failure",
    "FileChanges",
    "Invocation",
    "InvocationResult",
    "Problem",
    "ProcessResult",
    "RunResult",
    "SecurityError",
    "Settings",
    "ToolDetection",
    "Usage",
    "Workstream",
    "WorkstreamError",
    "__version__",
    "hookimpl",
    "own_tools_only",
    "run_workstream",
]

_WHERE = {
    "AimContext": "aim_core.context",
    "AttemptOutcome": "aim_core.attempt",
    "Settings": "aim_core.config",
    "AimError": "aim_core.errors",
    "AuditIntegrityError": "aim_core.errors",
    "ConfigError": "aim_core.errors",
    "SecurityError": "aim_core.errors",
    "WorkstreamError": "aim_core.errors",
    "AuditRecord": "aim_core.models",
    "CapabilityPayload": "aim_core.models",
    "Failure": "aim_core.models",
    "FileChanges": "aim_core.models",
    "Invocation": "aim_core.models",
    "InvocationResult": "aim_core.models",
    "Problem": "aim_core.models",
    "ProcessResult": "aim_core.models",
    "ToolDetection": "aim_core.models",
    "Usage": "aim_core.models",
    "Workstream": "aim_core.models",
    "hookimpl": "aim_core.plugins",
    "own_tools_only": "aim_core.plugins",
    "RunResult": "aim_core.runresult",
    "run_workstream": "aim_core.api",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'aim_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
