"""aim plugin for Google's Gemini CLI: ``code_generation``, ``refactoring``, ``version_checking``.

Tool id ``gemini-cli``; the program is ``gemini`` on PATH (``npm install -g
@google/gemini-cli``). Each attempt is one headless ``gemini -p`` call with JSON
output, in ``auto_edit`` approval mode (file edits approved, shell commands and
every other tool that would ask denied), extensions off. See README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
from aim_gemini.outcome import classify, read_result, usage_of

TOOL_ID = "gemini-cli"
PROGRAM = "gemini"
CAPABILITIES = ("code_generation", "refactoring", "version_checking")
CHANGE_CAPABILITIES = ("code_generation", "refactoring")
INSTALL_HINT = "npm install -g @google/gemini-cli"
LOGIN_HINT = "Gemini CLI requires login (run 'gemini' and sign in, or set GEMINI_API_KEY)"
# The variables Gemini CLI's authentication reads (packages/core/src/core/contentGenerator.ts,
# packages/cli/src/config/auth.ts), its endpoints, its home and its model.
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
ENV_PASSTHROUGH = (
    *KEY_VARIABLES,
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_GCA",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_PROJECT_ID",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_VERTEX_BASE_URL",
    "GEMINI_API_KEY_AUTH_MECHANISM",
    "GEMINI_MODEL",
    "GEMINI_CLI_HOME",
    "CLOUD_SHELL",
    "GEMINI_CLI_USE_COMPUTE_ADC",
)
# Set for every call: no telemetry, no colour, no update nag.
ENV = {"GEMINI_TELEMETRY_ENABLED": "false", "NO_COLOR": "1", "NO_BROWSER": "true"}
STDIN_NOTE = "Follow the instructions given on standard input."


def gemini_dir(context) -> Path:
    """Gemini CLI's settings and login: ``$GEMINI_CLI_HOME/.gemini``, else ``~/.gemini``."""
    home = context.getenv("GEMINI_CLI_HOME") or context.getenv("HOME") or os.path.expanduser("~")
    return Path(home) / ".gemini"


def _selected_auth(context) -> str | None:
    try:
        settings = json.loads((gemini_dir(context) / "settings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    selected = ((settings.get("security") or {}).get("auth") or {}).get("selectedType")
    if selected is None:
        selected = settings.get("selectedAuthType")  # settings of older versions
    return selected if isinstance(selected, str) else None


def readiness(context, path):
    """Ready when a key or a Google login is there; without either the headless call
    can only fail (exit 41). Files and variables only: no process, no network."""
    if any(context.getenv(v) for v in KEY_VARIABLES):
        return True, None, None
    if context.getenv("GOOGLE_GENAI_USE_VERTEXAI") == "true" and context.getenv(
        "GOOGLE_CLOUD_PROJECT"
    ):
        return True, None, None
    if (gemini_dir(context) / "oauth_creds.json").exists():
        return True, None, None
    if _selected_auth(context) or context.getenv("GOOGLE_GENAI_USE_GCA") == "true":
        return None, None, None  # configured some other way: can't tell cheaply
    return False, LOGIN_HINT, Failure.AUTH_REQUIRED


@hookimpl
def detect_tool(context):
    """gemini is found on PATH; ready when a key or a login is there."""
    where = gemini_dir(context)
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program=PROGRAM,
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
        env_passthrough=ENV_PASSTHROUGH,
        watch_paths=(str(where / "oauth_creds.json"), str(where / "settings.json")),
        readiness=readiness,
    )


@hookimpl
def get_version(tool_id, context):
    """``gemini --version`` as it prints it (``0.61.0``)."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, PROGRAM)


# --------------------------------------------------------------------------- invocation


def full_prompt(payload) -> str:
    """The instruction plus the files the change must stay within."""
    return prompt_with_files(payload)


EDIT_TOOLS = ("write_file", "replace")
_REGEX_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}/])")


def _js_regex(text: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\1", text)


def file_path_patterns(root, rel: str) -> list[str]:
    """Policy ``argsPattern``s matching ``"file_path"`` naming ``rel`` -- as given,
    with ``./`` and absolute under ``root``; a directory: anything under it. Gemini CLI
    matches them against the arguments as stable JSON whose top-level pairs are wrapped
    in NUL bytes (``packages/core/src/policy/stable-stringify.ts``); its policy loader
    refuses groups such as ``(?:...)``, hence one pattern per form."""
    rel = rel.rstrip("/")
    tail = '/[^"]*' if Path(root, rel).is_dir() else ""
    forms = (rel, f"./{rel}", f"{str(root).rstrip('/')}/{rel}")
    return [
        f'\\x00"file_path":"{_js_regex(json.dumps(form, ensure_ascii=False)[1:-1])}{tail}"\\x00'
        for form in dict.fromkeys(forms)
    ]


def policy_toml(root, paths) -> str:
    """A user-tier policy (``--policy``): gemini's edit tools may write the files in
    scope and nothing else, whatever the approval mode allows."""
    rules = []
    for tool in EDIT_TOOLS:
        rules.append((tool, '\\x00"file_path":', "deny", 100))
        for rel in paths:
            rules += [(tool, pattern, "allow", 200) for pattern in file_path_patterns(root, rel)]
    blocks = [
        f"[[rule]]\ntoolName = {json.dumps(tool)}\nargsPattern = {json.dumps(pattern)}\n"
        f'decision = "{decision}"\npriority = {priority}\n'
        for tool, pattern, decision, priority in rules
    ]
    return "\n".join(blocks)


def build_argv(program, payload, options, prompt_on_stdin=False, policy=None):
    """The gemini command line for one attempt."""
    argv = [
        program,
        "--output-format",
        "json",
        "--approval-mode",
        "auto_edit",
        # auto_edit counts only in a trusted folder (else gemini falls back to asking,
        # which headless means denying every edit); aim's scope check still holds.
        "--skip-trust",
        "--extensions",
        "none",
    ]
    if policy:
        argv += ["--policy", str(policy)]
    if options.get("model"):
        argv += ["--model", str(options["model"])]
    argv += option_args(options)
    return [*argv, "--prompt", STDIN_NOTE if prompt_on_stdin else full_prompt(payload)]


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    """One headless ``gemini -p`` call on the repository (see README.md)."""
    if tool_id != TOOL_ID:
        return None
    program = context.which(PROGRAM)
    if program is None:
        return InvocationResult(
            success=False,
            message=f"'gemini' not found on PATH (install: {INSTALL_HINT})",
            failure=Failure.NOT_INSTALLED,
        )
    options = tool_options(payload, context)
    env = dict(ENV)
    if options.get("base_url"):
        env["GOOGLE_GEMINI_BASE_URL"] = str(options["base_url"])
    prompt = full_prompt(payload)
    on_stdin = len(prompt.encode()) > MAX_ARGV_PROMPT
    # the policy lives outside the repository, for this call only
    import tempfile  # only when the tool runs: not on every aim command's start

    where = tempfile.mkdtemp(prefix="aim-gemini-")
    try:
        policy = Path(where, "aim-scope.toml")
        policy.write_text(policy_toml(context.root, target_files(payload)), encoding="utf-8")
        argv = build_argv(program, payload, options, prompt_on_stdin=on_stdin, policy=policy)
        r = context.run(argv, cwd=context.root, env=env, stdin=prompt if on_stdin else None)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    changes = context.changes()
    result = read_result(r.stdout, r.stderr)
    failure, message, wait = classify(r, result, bool(changes), capability in CHANGE_CAPABILITIES)
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
        usage=usage_of(result),
    )


@hookimpl
@own_tools_only
def validate_payload(tool_id, capability, payload, context):
    """gemini needs an instruction, and files to change for code generation and refactoring."""
    if tool_id != TOOL_ID:
        return None
    return request_problems(
        payload,
        capability,
        tool="gemini-cli",
        capabilities=CAPABILITIES,
        files_needed=(
            "may change only the files it is given" if capability in CHANGE_CAPABILITIES else None
        ),
    )
