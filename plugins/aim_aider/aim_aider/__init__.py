"""aim plugin for aider: ``code_generation``, ``refactoring`` and ``version_checking``.

Tool id ``aider``; the program is ``aider`` on PATH (``pip install aider-chat``).
"""

from __future__ import annotations

import os

from aim_core import Failure, hookimpl
from aim_core.toolkit import detect_program, program_version

TOOL_ID = "aider"
CAPABILITIES = ("code_generation", "refactoring", "version_checking")

# The model providers' key variables aider (through litellm) reads.
KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENROUTER_API_KEY",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
    "XAI_API_KEY",
    "COHERE_API_KEY",
    "AZURE_API_KEY",
    "AIDER_OPENAI_API_KEY",
    "AIDER_ANTHROPIC_API_KEY",
    "AIDER_API_KEY",
)
ENV_PASSTHROUGH = (
    *KEY_VARIABLES,
    "OPENAI_API_BASE",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "OLLAMA_API_BASE",
    "AZURE_API_BASE",
    "AZURE_API_VERSION",
    "AIDER_*",
    "LITELLM_*",
)
# Files where aider also finds keys (it loads .env from home and the git root).
KEY_FILES = (".env", ".aider.conf.yml")


def readiness(context, path):
    """Ready unless no model key can be found anywhere aider would look.

    Without any key (and no ``--model``) aider waits five minutes for a
    browser login, so a machine with no key at all is reported as needing one.
    """
    if any(context.getenv(v) for v in KEY_VARIABLES):
        return None, None, None
    options = context.options or {}
    if options.get("api_key") or any("api-key" in str(a) for a in options.get("args", [])):
        return None, None, None
    home = context.getenv("HOME") or os.path.expanduser("~")
    for base in (home, str(context.root)):
        if any(os.path.exists(os.path.join(base, f)) for f in KEY_FILES):
            return None, None, None
    return (
        False,
        "aider has no model API key (set OPENAI_API_KEY or ANTHROPIC_API_KEY, "
        "or pass one in tools.aider.args)",
        Failure.AUTH_REQUIRED,
    )


@hookimpl
def detect_tool(context):
    """aider is found on PATH; ready unless it has no model key at all."""
    home = context.getenv("HOME") or os.path.expanduser("~")
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program="aider",
        capabilities=CAPABILITIES,
        install_hint="pip install aider-chat",
        env_passthrough=ENV_PASSTHROUGH,
        scratch_paths=(".aider.chat.history.md", ".aider.input.history", ".aider.tags.cache.v4/"),
        watch_paths=tuple(os.path.join(home, f) for f in KEY_FILES),
        readiness=readiness,
    )


@hookimpl
def get_version(tool_id, context):
    """``aider --version`` as it prints it (``aider 0.86.2``)."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, "aider")
