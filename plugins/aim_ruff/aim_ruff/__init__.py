"""aim plugin for ruff: the ``linting`` capability.

Tool id ``ruff``; the program is ``ruff`` on PATH.
"""

from __future__ import annotations

from aim_core import hookimpl
from aim_core.toolkit import detect_program, program_version

TOOL_ID = "ruff"
CAPABILITIES = ("linting",)


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
