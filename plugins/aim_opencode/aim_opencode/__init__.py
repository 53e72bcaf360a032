"""aim plugin for opencode: ``code_generation``, ``refactoring`` and ``version_checking``.

Tool id ``opencode``; the program is ``opencode`` on PATH (``npm install -g
opencode-ai``). Each attempt is one ``opencode run --format json --pure`` call
whose permissions are pinned through ``OPENCODE_CONFIG_CONTENT`` (the last and
strongest layer of opencode's config): edits allowed on the files in scope only,
shell, web fetches and other directories denied. See README.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from aim_core import Failure, InvocationResult, hookimpl, own_tools_only
from aim_core.toolkit import (
    MAX_ARGV_PROMPT,
    detect_program,
    joined_output,
    option_args,
    program_version,
    prompt_with_files,
    request_problems,
    target_files,
    tool_options,
)
from aim_opencode.outcome import classify, read_events, usage_of

TOOL_ID = "opencode"
PROGRAM = "opencode"
CAPABILITIES = ("code_generation", "refactoring", "version_checking")
CHANGE_CAPABILITIES = ("code_generation", "refactoring")
INSTALL_HINT = "npm install -g opencode-ai"
LOGIN_HINT = "opencode requires login (run 'opencode auth login', or set a provider's API key)"
# The providers' key variables opencode reads (models.dev's env names).
KEY_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENERATIVE_AI_API_KEY",
    "OPENROUTER_API_KEY",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
    "MISTRAL_API_KEY",
    "GITHUB_TOKEN",
    "OPENCODE_API_KEY",
)
ENV_PASSTHROUGH = (
    *KEY_VARIABLES,
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AZURE_RESOURCE_NAME",
    "AZURE_API_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "OPENCODE_*",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
)
ENV = {"OPENCODE_DISABLE_AUTOUPDATE": "true", "NO_COLOR": "1"}
STDIN_NOTE = "Follow the instructions given on standard input."


def data_dir(context) -> Path:
    """opencode's data directory (``auth.json``, sessions): ``$XDG_DATA_HOME/opencode``."""
    home = context.getenv("HOME") or os.path.expanduser("~")
    return (
        Path(context.getenv("XDG_DATA_HOME") or os.path.join(home, ".local", "share")) / "opencode"
    )


def _stored_logins(context) -> int:
    try:
        stored = json.loads((data_dir(context) / "auth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    return len(stored) if isinstance(stored, dict) else 0


def key_variable(options) -> str:
    """The variable holding the key of the provider aim configures with ``base_url``."""
    return str(options.get("api_key_env") or "OPENAI_API_KEY")


def readiness(context, path):
    """Ready with a stored login (``auth.json``), a provider key in the environment,
    or a ``base_url`` provider; files and variables only."""
    options = context.options or {}
    if options.get("base_url") and context.getenv(key_variable(options)):
        return True, None, None
    if _stored_logins(context) or any(context.getenv(v) for v in KEY_VARIABLES):
        return True, None, None
    return False, LOGIN_HINT, Failure.AUTH_REQUIRED


@hookimpl
def detect_tool(context):
    """opencode is found on PATH; ready when it has a login or a provider key."""
    options = context.settings.tool_options(TOOL_ID) if context.settings is not None else {}
    passthrough = tuple(dict.fromkeys((*ENV_PASSTHROUGH, key_variable(options))))
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program=PROGRAM,
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
        env_passthrough=passthrough,
        watch_paths=(str(data_dir(context) / "auth.json"),),
        readiness=readiness,
    )


@hookimpl
def get_version(tool_id, context):
    """``opencode --version`` as it prints it (``1.18.33``)."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, PROGRAM)


# --------------------------------------------------------------------------- invocation


def full_prompt(payload) -> str:
    """The instruction plus the files the change must stay within."""
    return prompt_with_files(payload)


def edit_rules(root, paths) -> dict[str, str]:
    """opencode's ``edit`` permission: everything denied, then each file in scope (a
    directory: everything under it) allowed; the last matching rule wins."""
    rules = {"*": "deny"}
    for rel in paths:
        rel = rel.rstrip("/")
        rules[f"{rel}/*" if Path(root, rel).is_dir() else rel] = "allow"
    return rules


def permissions(payload, root) -> dict:
    """What opencode may do in one attempt: edit the files in scope, nothing else."""
    return {
        "edit": edit_rules(root, target_files(payload)),
        "bash": "deny",
        "webfetch": "deny",
        "external_directory": "deny",
        "doom_loop": "deny",
    }


def config_content(payload, options, root, inherited: str | None = None) -> str:
    """The ``OPENCODE_CONFIG_CONTENT`` of one attempt: the user's own (if any), with
    aim's permissions, updates, sharing and snapshots laid over it."""
    try:
        config = json.loads(inherited) if inherited else {}
    except ValueError:
        config = {}
    if not isinstance(config, dict):
        config = {}
    permission = permissions(payload, root)
    config.update(autoupdate=False, share="disabled", snapshot=False, permission=permission)
    # an agent's own permission wins over the top level: pin the one aim runs
    agents = config.setdefault("agent", {}) if isinstance(config.get("agent"), dict) else {}
    config["agent"] = agents
    build = agents.get("build") if isinstance(agents.get("build"), dict) else {}
    agents["build"] = {**build, "permission": permission}
    if options.get("base_url"):
        model = str(options.get("model") or "default")
        config.setdefault("provider", {})["aim"] = {
            "npm": "@ai-sdk/openai-compatible",
            "name": "aim",
            "options": {
                "baseURL": str(options["base_url"]),
                "apiKey": "{env:" + key_variable(options) + "}",
            },
            "models": {model: {"name": model}},
        }
    return json.dumps(config)


def model_of(options) -> str | None:
    """``provider/model`` for ``--model``: the ``aim`` provider's with ``base_url``."""
    model = options.get("model")
    if options.get("base_url"):
        return f"aim/{model or 'default'}"
    return str(model) if model else None


def build_argv(program, payload, options, prompt_on_stdin=False):
    """The opencode command line for one attempt (the message last, after ``--``)."""
    argv = [program, "run", "--format", "json", "--pure", "--agent", "build"]
    model = model_of(options)
    if model:
        argv += ["--model", model]
    argv += option_args(options)
    return [*argv, "--", STDIN_NOTE if prompt_on_stdin else full_prompt(payload)]


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    """One ``opencode run --format json`` call with pinned permissions (see README.md)."""
    if tool_id != TOOL_ID:
        return None
    program = context.which(PROGRAM)
    if program is None:
        return InvocationResult(
            success=False,
            message=f"'opencode' not found on PATH (install: {INSTALL_HINT})",
            failure=Failure.NOT_INSTALLED,
        )
    options = tool_options(payload, context)
    env = dict(ENV)
    inherited = context.getenv("OPENCODE_CONFIG_CONTENT")
    env["OPENCODE_CONFIG_CONTENT"] = config_content(payload, options, context.root, inherited)
    # merged over the config's permissions by opencode: the user's own value would win
    env["OPENCODE_PERMISSION"] = json.dumps(permissions(payload, context.root))
    prompt = full_prompt(payload)
    on_stdin = len(prompt.encode()) > MAX_ARGV_PROMPT
    argv = build_argv(program, payload, options, prompt_on_stdin=on_stdin)
    r = context.run(argv, cwd=context.root, env=env, stdin=prompt if on_stdin else None)
    changes = context.changes()
    events = read_events(r.stdout)
    failure, message, wait = classify(r, events, bool(changes), capability in CHANGE_CAPABILITIES)
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
        usage=usage_of(events, model_of(options)),
    )


@hookimpl
@own_tools_only
def validate_payload(tool_id, capability, payload, context):
    """opencode needs an instruction, and files to change for code generation and refactoring."""
    if tool_id != TOOL_ID:
        return None
    return request_problems(
        payload,
        capability,
        tool="opencode",
        capabilities=CAPABILITIES,
        files_needed=(
            "may change only the files it is given" if capability in CHANGE_CAPABILITIES else None
        ),
    )
