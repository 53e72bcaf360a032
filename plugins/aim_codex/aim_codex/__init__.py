"""aim plugin for OpenAI's Codex CLI: ``code_generation``, ``refactoring``, ``version_checking``.

Tool id ``codex``; the program is ``codex`` on PATH (``npm install -g @openai/codex``).
Each attempt is one ``codex exec --json`` call, sandboxed to the repository
(``--sandbox workspace-write``, no network, no /tmp), approvals off, with every
setting aim relies on pinned on the command line (``-c``) so that the user's
``~/.codex/config.toml`` cannot change it. See README.md ("What it runs").
"""

from __future__ import annotations

import os
from pathlib import Path

from aim_codex.outcome import classify, read_events, usage_of
from aim_core import Failure, InvocationResult, hookimpl, own_tools_only
from aim_core.toolkit import (
    MAX_ARGV_PROMPT,
    detect_program,
    joined_output,
    option_args,
    program_version,
    prompt_with_files,
    request_problems,
    tool_options,
)

TOOL_ID = "codex"
PROGRAM = "codex"
CAPABILITIES = ("code_generation", "refactoring", "version_checking")
INSTALL_HINT = "npm install -g @openai/codex"
LOGIN_HINT = "Codex requires login (run 'codex login', or set CODEX_API_KEY)"
# What codex reads: its API key for `exec` (CODEX_API_KEY; OPENAI_API_KEY only through
# a provider's env_key), an access token, its home (auth.json, sessions), Azure's key.
ENV_PASSTHROUGH = (
    "CODEX_API_KEY",
    "CODEX_ACCESS_TOKEN",
    "CODEX_HOME",
    "OPENAI_API_KEY",
    "AZURE_OPENAI_API_KEY",
)
CHANGE_CAPABILITIES = ("code_generation", "refactoring")
# Settings pinned on every call (`-c key=TOML`): no approval prompt can block, writes
# stay in the repository (not /tmp, not $TMPDIR), no network from commands, no
# notification program, no update check.
PINNED = (
    'approval_policy="never"',
    'sandbox_mode="workspace-write"',
    "sandbox_workspace_write.network_access=false",
    "sandbox_workspace_write.exclude_slash_tmp=true",
    "sandbox_workspace_write.exclude_tmpdir_env_var=true",
    "notify=[]",
    "check_for_update_on_startup=false",
)
ENV = {"NO_COLOR": "1"}


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def codex_home(context) -> Path:
    """Where codex keeps its login and state: ``$CODEX_HOME``, else ``~/.codex``."""
    home = context.getenv("HOME") or os.path.expanduser("~")
    return Path(context.getenv("CODEX_HOME") or os.path.join(home, ".codex"))


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
        return True
    except ValueError:
        return False


def home_problem(context) -> str | None:
    """Why codex's home can't be used: inside the repository it would put its login
    and sessions among the files aim protects."""
    home = codex_home(context)
    if _inside(home, Path(context.root)):
        return (
            f"CODEX_HOME ({home}) is inside the repository; set CODEX_HOME to a directory "
            "outside it"
        )
    return None


def key_variable(options) -> str:
    """The variable holding the key of the provider aim configures with ``base_url``."""
    return str(options.get("api_key_env") or "OPENAI_API_KEY")


def readiness(context, path):
    """Ready with CODEX_API_KEY, a ``base_url`` provider whose key is set, or a login
    (``codex login status``: offline, exit 0 when logged in, 1 with "Not logged in")."""
    problem = home_problem(context)
    if problem:
        return False, problem, Failure.UNAVAILABLE
    options = context.options or {}
    if context.getenv("CODEX_API_KEY") or context.getenv("CODEX_ACCESS_TOKEN"):
        return True, None, None
    if options.get("base_url") and context.getenv(key_variable(options)):
        return True, None, None
    r = context.run([path, "login", "status"], timeout_s=10)
    if r.exit_code == 0:
        return True, None, None
    if "not logged in" in (r.stdout + r.stderr).lower():
        return False, LOGIN_HINT, Failure.AUTH_REQUIRED
    return None, None, None


@hookimpl
def detect_tool(context):
    """codex is found on PATH; ready when it has a key or a login."""
    options = context.settings.tool_options(TOOL_ID) if context.settings is not None else {}
    passthrough = tuple(dict.fromkeys((*ENV_PASSTHROUGH, key_variable(options))))
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program=PROGRAM,
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
        env_passthrough=passthrough,
        watch_paths=(str(codex_home(context) / "auth.json"),),
        readiness=readiness,
    )


@hookimpl
def get_version(tool_id, context):
    """``codex --version`` as it prints it (``codex-cli 0.171.0``)."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, PROGRAM)


# --------------------------------------------------------------------------- invocation


def full_prompt(payload) -> str:
    """The instruction plus the files the change must stay within."""
    return prompt_with_files(payload)


def provider_args(options) -> list[str]:
    """With ``base_url``: an ``aim`` provider for that endpoint (Responses API, key from
    ``api_key_env``), with codex's own retries off -- aim retries and falls back."""
    base_url = options.get("base_url")
    if not base_url:
        return []
    table = {
        "name": '"aim"',
        "base_url": _toml_string(str(base_url)),
        "env_key": _toml_string(key_variable(options)),
        "wire_api": '"responses"',
        "request_max_retries": "0",
        "stream_max_retries": "0",
        "supports_websockets": "false",
    }
    args = ["-c", 'model_provider="aim"']
    for key, value in table.items():
        args += ["-c", f"model_providers.aim.{key}={value}"]
    return args


def build_argv(program, payload, options, root, prompt_on_stdin=False):
    """The codex command line for one attempt (the prompt last, after ``--``)."""
    argv = [
        program,
        "exec",
        "--json",
        "--color",
        "never",
        "--skip-git-repo-check",
        "--ephemeral",
        "--ignore-rules",
        "--sandbox",
        "workspace-write",
    ]
    for setting in PINNED:
        argv += ["-c", setting]
    argv += ["-C", str(root)]
    if options.get("model"):
        argv += ["-m", str(options["model"])]
    argv += provider_args(options)
    argv += option_args(options)
    return [*argv, "--", "-" if prompt_on_stdin else full_prompt(payload)]


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    """One ``codex exec --json`` call, sandboxed to the repository (see README.md)."""
    if tool_id != TOOL_ID:
        return None
    program = context.which(PROGRAM)
    if program is None:
        return InvocationResult(
            success=False,
            message=f"'codex' not found on PATH (install: {INSTALL_HINT})",
            failure=Failure.NOT_INSTALLED,
        )
    problem = home_problem(context)
    if problem:
        return InvocationResult(success=False, message=problem, failure=Failure.UNAVAILABLE)
    options = tool_options(payload, context)
    prompt = full_prompt(payload)
    on_stdin = len(prompt.encode()) > MAX_ARGV_PROMPT
    argv = build_argv(program, payload, options, context.root, prompt_on_stdin=on_stdin)
    r = context.run(argv, cwd=context.root, env=dict(ENV), stdin=prompt if on_stdin else None)
    changes = context.changes()
    events = read_events(r.stdout)
    failure, message, wait = classify(r, events, bool(changes), capability in CHANGE_CAPABILITIES)
    model = str(options["model"]) if options.get("model") else None
    return InvocationResult(
        success=failure is None,
        message=message,
        exit_code=r.exit_code,
        files_created=changes.created,
        files_modified=changes.modified,
        duration_sec=r.duration_sec,
        failure=failure,
        output=joined_output(r.stdout, r.stderr),
        retry_after_s=wait,
        usage=usage_of(events, model),
    )


@hookimpl
@own_tools_only
def validate_payload(tool_id, capability, payload, context):
    """codex needs an instruction, and files to change for code generation and refactoring."""
    if tool_id != TOOL_ID:
        return None
    return request_problems(
        payload,
        capability,
        tool="codex",
        capabilities=CAPABILITIES,
        files_needed=(
            "may change only the files it is given" if capability in CHANGE_CAPABILITIES else None
        ),
    )
