"""aim plugin for pytest: the ``testing`` capability.

Tool id ``pytest``; the program is ``pytest`` on PATH (the one of the
repository's active virtual environment).
"""

from __future__ import annotations

from aim_core import hookimpl
from aim_core.toolkit import detect_program, program_version

TOOL_ID = "pytest"
CAPABILITIES = ("testing",)


@hookimpl
def detect_tool(context):
    """pytest is ready whenever it answers ``pytest --version``."""
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program="pytest",
        capabilities=CAPABILITIES,
        install_hint="pip install pytest",
        env_passthrough=("PYTEST_*", "PY_COLORS", "NO_COLOR"),
        scratch_paths=(".pytest_cache/", "__pycache__/", ".hypothesis/", ".coverage"),
    )


@hookimpl
def get_version(tool_id, context):
    """``pytest --version`` as it prints it."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, "pytest")
