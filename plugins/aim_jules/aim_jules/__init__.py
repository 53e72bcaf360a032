"""aim plugin for Google Jules: ``code_generation`` and ``version_checking``.

Tool id ``jules``; the program is ``jules`` on PATH (``npm install -g
@google/jules``, then ``jules login``), or the Jules REST API when
``JULES_API_KEY`` is set.
"""

from __future__ import annotations

import os

from aim_core import Failure, hookimpl
from aim_core.toolkit import detect_program, program_version

TOOL_ID = "jules"
CAPABILITIES = ("code_generation", "version_checking")
ENV_PASSTHROUGH = ("JULES_API_KEY", "JULES_API_BASE", "JULES_*")
LOGIN_HINT = "Jules requires login (run 'jules login')"


def credentials_file(context) -> str:
    """Where ``jules login`` keeps its token when no system keyring is used."""
    home = context.getenv("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".jules", "cache", "oauth_creds.json")


def readiness(context, path):
    """Logged in when an API key is set or the login's credentials file exists."""
    if context.getenv("JULES_API_KEY") or os.path.exists(credentials_file(context)):
        return True, None, None
    return False, LOGIN_HINT, Failure.AUTH_REQUIRED


def explain_failure(result) -> str | None:
    """The npm package downloads the real program on first use; say so when that failed."""
    if "Failed to start jules binary" in result.stderr + result.stdout:
        return (
            "jules is installed but its program could not be fetched or started "
            "('Failed to start jules binary'); it downloads from storage.googleapis.com "
            "on first use: allow that, or reinstall @google/jules"
        )
    return None


@hookimpl
def detect_tool(context):
    """jules is found on PATH; ready when logged in (or ``JULES_API_KEY`` is set)."""
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program="jules",
        capabilities=CAPABILITIES,
        install_hint="npm install -g @google/jules",
        version_args=("version",),
        env_passthrough=ENV_PASSTHROUGH,
        watch_paths=(credentials_file(context),),
        readiness=readiness,
        explain_failure=explain_failure,
    )


@hookimpl
def get_version(tool_id, context):
    """``jules version`` as it prints it."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, "jules", ("version",))
