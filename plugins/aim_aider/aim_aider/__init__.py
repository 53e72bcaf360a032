"""aim plugin for aider: ``code_generation``, ``refactoring`` and ``version_checking``.

Tool id ``aider``; the program is ``aider`` on PATH (``pip install aider-chat``).
Each attempt is one non-interactive ``aider --message`` call on the files in
scope; see README.md ("What it runs") for the exact command and how its output
maps to aim's failure classes.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from aim_aider.usage import parse_usage
from aim_core import Failure, InvocationResult, Problem, hookimpl, own_tools_only
from aim_core.toolkit import (
    MAX_ARGV_PROMPT,
    call_result,
    detect_program,
    files_field,
    first_line,
    launch_failure,
    one_line,
    option_args,
    prepare_call,
    program_version,
    request_problems,
    retry_after,
    scoped_changes,
    target_files,
    timeout_message,
    writable_files,
)

TOOL_ID = "aider"
CAPABILITIES = ("code_generation", "refactoring", "version_checking")
INSTALL_HINT = "pip install aider-chat"

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
        install_hint=INSTALL_HINT,
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


# --------------------------------------------------------------------------- invocation

# Flags of every call: one message, no questions, no commits, no git side effects, no
# network besides the model, nothing written into the repository, no other program
# started. They come before the configured args (which can still turn one back on)
# and win over the user's and the repository's .aider.conf.yml. aider 0.83 or newer.
BASE_FLAGS = (
    "--yes-always",
    "--no-auto-commits",
    "--no-dirty-commits",
    "--no-gitignore",
    "--no-check-update",
    "--no-analytics",
    "--no-show-model-warnings",
    "--no-show-release-notes",
    "--no-pretty",
    "--no-fancy-input",
    "--map-tokens",
    "0",
    "--no-restore-chat-history",
    # aim snapshots, checks and restores the files itself. In a git repository aider
    # would `git add` every file it creates (aim's restore leaves the index alone) and
    # outside one --yes-always would make it create a repository.
    "--no-git",
    # --yes-always already answers "no" to running shell commands; don't even ask.
    "--no-suggest-shell-commands",
    # A URL in the prompt: aider offers to add the page, and --yes-always says yes, then
    # yes again to installing Playwright (pip, then a browser download).
    "--no-detect-urls",
    "--disable-playwright",
    # Lint and test commands (aider's or the user's lint-cmd/test-cmd) run after an edit
    # and ask the model for more edits: aim routes linting and testing itself.
    "--no-auto-lint",
    "--no-auto-test",
    # What a .aider.conf.yml could switch on: a watcher, a browser UI, the clipboard,
    # a notification command, a dry run (no edit would be written), cache pings
    # (more model calls after the answer).
    "--no-watch-files",
    "--no-gui",
    "--no-copy-paste",
    "--no-notifications",
    "--no-dry-run",
    "--cache-keepalive-pings",
    "0",
)

# Variables set for every call. COLUMNS: aider's console wraps lines at 80 columns,
# which would split "Applied edit to <long path>". BROWSER: --yes-always says yes to
# "Open URL for more info?"; a no-op browser keeps that (and the OpenRouter login
# page) from opening on the user's desktop.
ENV = {
    "TERM": "dumb",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "COLUMNS": "10000",
}
if os.name == "posix":
    ENV["BROWSER"] = "true"

APPLIED = re.compile(r"^Applied edit to (.+?)\s*$", re.MULTILINE)
LITELLM_ERROR = re.compile(r"litellm\.(\w+):\s*(.*)")
NO_KEY = "No LLM model was specified and no API keys were provided"
EDIT_FORMAT = "The LLM did not conform to the edit format"
# litellm errors that say aider's model settings are wrong: the same call can't
# succeed on a retry, another tool may.
CONFIG_ERRORS = ("NotFoundError", "BadRequestError", "UnsupportedParamsError")
# aider's own one-sentence explanations (aider/exceptions.py), used as messages
# because the exception text itself may quote the key that was refused.
DESCRIPTIONS = {
    "AuthenticationError": "The API provider is not able to authenticate you. Check your API key.",
    "RateLimitError": (
        "The API provider has rate limited you. Try again later or check your quotas."
    ),
    "BadGatewayError": "The API provider's servers are down or overloaded.",
    "InternalServerError": "The API provider's servers are down or overloaded.",
    "ServiceUnavailableError": "The API provider's servers are down or overloaded.",
    "Timeout": (
        "The API provider timed out without returning a response. They may be down or overloaded."
    ),
}


def build_argv(program, payload, options, history_dir, message_file=None, args=None):
    """The aider command line for one attempt (``args``: the configured ones, parsed)."""
    prompt = ["--message-file", message_file] if message_file else [f"--message={payload.prompt}"]
    argv = [
        program,
        *prompt,
        *BASE_FLAGS,
        "--chat-history-file",
        os.path.join(history_dir, "chat.history.md"),
        "--input-history-file",
        os.path.join(history_dir, "input.history"),
        "--llm-history-file",
        os.path.join(history_dir, "llm.history"),
        # written even with --no-analytics when a .aider.conf.yml names one
        "--analytics-log",
        os.path.join(history_dir, "analytics.jsonl"),
    ]
    if options.get("model"):
        argv += ["--model", str(options["model"])]
    if options.get("base_url"):
        argv += ["--openai-api-base", str(options["base_url"])]
    argv += option_args(options) if args is None else list(args)
    # "--" so that a file named like an option stays a file.
    return [*argv, "--", *target_files(payload)]


def _last_litellm_error(text):
    found = None
    for m in LITELLM_ERROR.finditer(text):
        found = m
    if found is None:
        return None, ""
    name, said = found.group(1), found.group(2).strip()
    # litellm repeats the class name: "AuthenticationError: AuthenticationError: ..."
    said = said.removeprefix(f"{name}:").strip()
    return name, said


def _error_message(name, said):
    description = DESCRIPTIONS.get(name)
    if description:
        return f"{name}: {description}"
    return one_line(f"{name}: {said}" if said else name)


def aider_root(root, files):
    """The directory aider names files relative to. Without git it is the common
    directory of the files it was given (for one file: that file's directory)."""
    paths = [os.path.abspath(os.path.join(root, f)) for f in files]
    if len(paths) == 1:
        return os.path.dirname(paths[0])
    return os.path.commonpath(paths) if paths else os.path.abspath(root)


def _same_file(applied, target, bases):
    """Whether aider's ``Applied edit to <applied>`` names ``target`` (an absolute path)."""
    return any(
        os.path.normpath(os.path.join(base, applied)) == os.path.normpath(target) for base in bases
    )


def classify(result, root, watched, changed, bases=()):
    """``(failure, message, retry_after_s)`` for one finished aider call; failure None =
    success. ``changed``: the files in scope the call changed, as the core measured them."""
    text = f"{result.stdout}\n{result.stderr}"
    launch = launch_failure(result, "aider")
    if launch is not None:
        return (*launch, None)
    error, said = _last_litellm_error(text)
    wait = retry_after(text)
    if NO_KEY in text:
        return Failure.AUTH_REQUIRED, f"{NO_KEY}.", None
    if error == "AuthenticationError":
        return Failure.AUTH_REQUIRED, _error_message(error, said), None
    if result.timed_out:
        if error == "RateLimitError":  # aider was still backing off when time ran out
            return Failure.RATE_LIMITED, _error_message(error, said), wait
        return Failure.TIMEOUT, timeout_message("aider", result), None

    changed = set(changed)
    applied = [m.group(1) for m in APPLIED.finditer(result.stdout)]
    bases = (str(root), *bases)
    applied_targets = [
        rel for rel in changed if any(_same_file(a, Path(root, rel), bases) for a in applied)
    ]
    if applied_targets and result.exit_code == 0:
        return None, f"aider applied edits to {', '.join(sorted(applied_targets))}", None

    if error == "RateLimitError":
        return Failure.RATE_LIMITED, _error_message(error, said), wait
    if error in CONFIG_ERRORS or "LLM Provider NOT provided" in text:
        return Failure.UNAVAILABLE, _error_message(error or "BadRequestError", said), None
    if error:
        return Failure.TOOL_ERROR, _error_message(error, said), None
    if result.exit_code != 0:
        said = first_line(result.stderr, result.stdout) or f"exit code {result.exit_code}"
        if "usage: aider" in text and "error:" in text:
            # argparse: the configured args are wrong; retrying can't help.
            said = next((ln for ln in text.splitlines() if "error:" in ln), said)
            return Failure.UNAVAILABLE, one_line(said), None
        said = f"aider exited with code {result.exit_code}: {said}"
        return Failure.TOOL_ERROR, one_line(said), None
    if EDIT_FORMAT in text:
        return Failure.TOOL_ERROR, f"{EDIT_FORMAT}.", None
    outside = [a for a in applied if not any(_same_file(a, Path(root, w), bases) for w in watched)]
    if outside:
        said = f"aider edited no file in scope (it edited {', '.join(outside[:5])})"
        return Failure.TOOL_ERROR, one_line(said), None
    if not watched:
        return Failure.TOOL_ERROR, "aider was given no file to work on", None
    return Failure.TOOL_ERROR, "aider made no change to the files in scope", None


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    """One ``aider --message`` call on the files in scope (see README.md)."""
    if tool_id != TOOL_ID:
        return None
    call = prepare_call(
        context,
        payload,
        capability,
        tool_id=TOOL_ID,
        program="aider",
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
    )
    if isinstance(call, InvocationResult):
        return call
    root = Path(context.root)
    import tempfile  # only when the tool runs: not on every aim command's start

    history_dir = tempfile.mkdtemp(prefix="aim-aider-")
    try:
        message_file = None
        if len(payload.prompt.encode()) > MAX_ARGV_PROMPT:
            message_file = os.path.join(history_dir, "message.txt")
            Path(message_file).write_text(payload.prompt, encoding="utf-8")
        argv = build_argv(call.program, payload, call.options, history_dir, message_file, call.args)
        result = context.run(argv, cwd=root, env=dict(ENV))
    finally:
        shutil.rmtree(history_dir, ignore_errors=True)
    # Every file aider may change (the core allows files_scope too), not only targets.
    watched = writable_files(payload)
    changes = scoped_changes(context, watched)
    changed = [*changes.created, *changes.modified, *changes.deleted]
    bases = (aider_root(root, target_files(payload)),)
    failure, message, wait = classify(result, root, watched, changed, bases)
    return call_result(
        result,
        failure,
        message,
        changes=changes,
        retry_after_s=wait,
        usage=parse_usage(f"{result.stdout}\n{result.stderr}"),
    )


@hookimpl
@own_tools_only
def validate_payload(tool_id, capability, payload, context):
    """aider needs a prompt and at least one file, and takes files, not directories."""
    if tool_id != TOOL_ID:
        return None
    problems = request_problems(
        payload,
        capability,
        tool="aider",
        capabilities=CAPABILITIES,
        files_needed="needs at least one file to work on",
    )
    for i, rel in enumerate(payload.files):
        if Path(context.root, rel).is_dir():
            problems.append(
                Problem(
                    field=files_field(payload, i),
                    message=f"'{rel}' is a directory; aider takes files: list the files to change",
                )
            )
    return problems
