"""aim plugin for Claude Code: ``code_generation``, ``refactoring`` and ``version_checking``.

Tool id ``claude-cli`` (as the guide's rules name it); the program is
``claude`` on PATH (``npm install -g @anthropic-ai/claude-code``).
"""

from __future__ import annotations

import json
import os

from aim_core import Failure, hookimpl
from aim_core.toolkit import detect_program, program_version

TOOL_ID = "claude-cli"
PROGRAM = "claude"
CAPABILITIES = ("code_generation", "refactoring", "version_checking")
ENV_PASSTHROUGH = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "CLAUDE_CODE_*",
    "CLAUDE_CONFIG_DIR",
    "DISABLE_TELEMETRY",
    "DISABLE_AUTOUPDATER",
    "DISABLE_ERROR_REPORTING",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "CLOUD_ML_REGION",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
LOGIN_HINT = "Claude Code requires login (run 'claude' and /login, or set ANTHROPIC_API_KEY)"


def _config_dir(context) -> str:
    return context.getenv("CLAUDE_CONFIG_DIR") or os.path.join(
        context.getenv("HOME") or os.path.expanduser("~"), ".claude"
    )


def readiness(context, path):
    """``claude auth status`` answers offline in a fraction of a second: exit 0 when
    an API key, a token or a stored login is present, 1 when not logged in."""
    r = context.run([path, "auth", "status"], timeout_s=10)
    if r.exit_code == 0:
        return True, None, None
    if r.exit_code == 1:
        try:
            logged_in = json.loads(r.stdout).get("loggedIn")
        except (ValueError, AttributeError):
            logged_in = None
        if logged_in is False or "not logged in" in (r.stdout + r.stderr).lower():
            return False, LOGIN_HINT, Failure.AUTH_REQUIRED
    return None, None, None  # an older claude without `auth status`: can't tell cheaply


@hookimpl
def detect_tool(context):
    """claude is found on PATH; ready when ``claude auth status`` says it is logged in."""
    config = _config_dir(context)
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program=PROGRAM,
        capabilities=CAPABILITIES,
        install_hint="npm install -g @anthropic-ai/claude-code",
        env_passthrough=ENV_PASSTHROUGH,
        watch_paths=(os.path.join(config, ".credentials.json"),),
        readiness=readiness,
    )


@hookimpl
def get_version(tool_id, context):
    """``claude --version`` as it prints it (``2.1.197 (Claude Code)``)."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, PROGRAM)
