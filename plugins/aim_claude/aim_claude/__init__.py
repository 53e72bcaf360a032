"""aim plugin for Claude Code: ``code_generation``, ``refactoring`` and ``version_checking``.

Tool id ``claude-cli`` (as the guide's rules name it); the program is
``claude`` on PATH (``npm install -g @anthropic-ai/claude-code``). Each attempt
is one ``claude -p`` call in ``dontAsk`` permission mode that may edit exactly
the files in scope; see README.md ("What it runs") for the command line and how
its JSON result maps to aim's failure classes.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from aim_claude.output import denials, is_result, parse_output, parse_usage
from aim_core import Failure, InvocationResult, Problem, hookimpl, own_tools_only
from aim_core.toolkit import (
    MAX_ARGV_PROMPT,
    call_result,
    detect_program,
    files_field,
    first_line,
    joined_output,
    launch_failure,
    one_line,
    option_args,
    prepare_call,
    program_version,
    prompt_with_files,
    request_problems,
    retry_after,
    scoped_changes,
    target_files,
    timeout_message,
    writable_files,
)

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
)
# Cloud credentials, passed only when claude is told to use that cloud
# (CLAUDE_CODE_USE_BEDROCK / CLAUDE_CODE_USE_VERTEX, themselves CLAUDE_CODE_*).
BEDROCK_PASSTHROUGH = ("AWS_*", "ANTHROPIC_BEDROCK_BASE_URL")
VERTEX_PASSTHROUGH = (
    "CLOUD_ML_REGION",
    "VERTEX_REGION_*",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "ANTHROPIC_VERTEX_BASE_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
)
INSTALL_HINT = "npm install -g @anthropic-ai/claude-code"
LOGIN_HINT = "Claude Code requires login (run 'claude' and /login, or set ANTHROPIC_API_KEY)"


def _config_dir(context) -> str:
    return context.getenv("CLAUDE_CONFIG_DIR") or os.path.join(
        context.getenv("HOME") or os.path.expanduser("~"), ".claude"
    )


def readiness(context, path):
    """``claude auth status`` answers offline in a fraction of a second: exit 0 when
    an API key, a token or a stored login is present, 1 when not logged in."""
    # detect_program's context passes claude its credential variables (without them
    # the real claude says "not logged in" to a user with ANTHROPIC_API_KEY set)
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


def _switched_on(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def env_passthrough(context) -> tuple[str, ...]:
    """The variables claude gets: its own, and a cloud's credentials only when
    ``CLAUDE_CODE_USE_BEDROCK`` / ``CLAUDE_CODE_USE_VERTEX`` says claude uses it."""
    names = ENV_PASSTHROUGH
    if _switched_on(context.getenv("CLAUDE_CODE_USE_BEDROCK")):
        names += BEDROCK_PASSTHROUGH
    if _switched_on(context.getenv("CLAUDE_CODE_USE_VERTEX")):
        names += VERTEX_PASSTHROUGH
    return names


@hookimpl
def detect_tool(context):
    """claude is found on PATH; ready when ``claude auth status`` says it is logged in."""
    config = _config_dir(context)
    return detect_program(
        context,
        tool_id=TOOL_ID,
        program=PROGRAM,
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
        env_passthrough=env_passthrough(context),
        watch_paths=(os.path.join(config, ".credentials.json"),),
        readiness=readiness,
    )


@hookimpl
def get_version(tool_id, context):
    """``claude --version`` as it prints it (``2.1.197 (Claude Code)``)."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, PROGRAM)


# --------------------------------------------------------------------------- invocation

READ_TOOLS = ("Read", "Grep", "Glob")
ENV = {
    # aim retries (and falls back); claude's own default is 10 retries over ~3 minutes.
    "CLAUDE_CODE_MAX_RETRIES": "0",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}
# Settings given on the command line: they win over the user's settings files (only
# the organisation's managed settings win over them). A settings value that fails
# claude's validation makes claude ignore the whole object, so only known keys.
# viewMode "default": "verbose" (in ~/.claude/settings.json, or "verbose": true in
# ~/.claude.json) turns --output-format json into an array of every message.
# disableAllHooks: the user's hooks run commands aim can neither see nor bound.
# env: the user's settings could set the variables below back.
SETTINGS = {"viewMode": "default", "disableAllHooks": True, "env": ENV}
# Characters special in permission rules (they follow gitignore patterns): escaped
# with a backslash so that "pages/[id].tsx" names that file and not "pages/i.tsx".
_GLOB = re.compile(r"([\\*?\[\]])")
AUTH_PHRASES = ("not logged in", "invalid api key", "please run /login", "oauth token has expired")
# Claude subscriptions answer "Claude AI usage limit reached|<epoch seconds>" when a
# usage window is exhausted; the number is when it resets.
USAGE_LIMIT = re.compile(r"usage limit reached\|(\d{9,})", re.IGNORECASE)


def _rule_path(path: str) -> str:
    escaped = _GLOB.sub(r"\\\1", path)
    if escaped.endswith(" "):  # gitignore drops trailing spaces unless escaped
        escaped = escaped[:-1] + "\\ "
    return escaped


def edit_rules(root, paths) -> list[str]:
    """One ``Edit(//ABS/PATH)`` rule per path (``//`` = absolute from the filesystem
    root), plus the same path with symlinks resolved when it differs: claude checks
    a write against both the path it was given and the real one. A directory in
    scope stands for everything under it (``/**``)."""
    rules: dict[str, None] = {}
    for rel in paths:
        given = os.path.abspath(os.path.join(root, rel))
        for path in dict.fromkeys((given, os.path.realpath(given))):
            pattern = _rule_path(path)
            if os.path.isdir(path):
                pattern = pattern.rstrip("/") + "/**"
            rules.setdefault(f"Edit(/{pattern})", None)
    return list(rules)


def read_denials(root, forbidden) -> list[str]:
    """``Read(...)`` deny rules for the forbidden paths of the security rules, anywhere
    under the repository: claude's Read, Grep and Glob never see ``.env`` or ``.git/``
    (deny rules win over the allowed Read)."""
    base = _rule_path(os.path.abspath(root)).rstrip("/")
    rules: dict[str, None] = {}
    for pattern in forbidden:
        pattern = pattern.strip().lstrip("/")
        if not pattern:
            continue
        if pattern.endswith("/"):
            pattern += "**"
        where = f"{base}/**/{pattern}" if "/" not in pattern.rstrip("*/") else f"{base}/{pattern}"
        rules.setdefault(f"Read(/{where})", None)
        if "/" not in pattern.rstrip("*/"):
            rules.setdefault(f"Read(/{base}/{pattern})", None)
    return list(rules)


def full_prompt(payload) -> str:
    """The instruction plus the files claude may edit (it can't guess them)."""
    return prompt_with_files(
        payload,
        change="Files you may edit (edits to any other file are denied):",
        create="Files to create:",
    )


def build_argv(program, payload, options, root, prompt_on_stdin=False, forbidden=(), args=None):
    """The claude command line for one attempt (the prompt last, after ``--``);
    ``args``: the configured ones, parsed."""
    argv = [
        program,
        "-p",
        "--output-format",
        "json",
        "--permission-mode",
        "dontAsk",
        "--allowedTools",
        *READ_TOOLS,
        *edit_rules(root, target_files(payload)),
        *(["--disallowedTools", *read_denials(root, forbidden)] if forbidden else []),
        "--no-session-persistence",
        # Only the user's own settings: a repository's .claude/settings*.json must
        # not widen what aim allows (in a trusted workspace claude would apply it).
        "--setting-sources",
        "user",
        "--settings",
        json.dumps(SETTINGS, sort_keys=True),
        # No MCP server of the user's or the repository's is started: aim allows
        # none of their tools, and starting them runs programs aim does not see.
        "--strict-mcp-config",
    ]
    if options.get("model"):
        argv += ["--model", str(options["model"])]
    budget = getattr(payload, "max_cost_usd", None)  # what the workstream may still spend
    if budget is not None:
        argv += ["--max-budget-usd", f"{budget:.4f}"]
    argv += option_args(options) if args is None else list(args)
    if prompt_on_stdin:
        return argv
    # "--" ends --allowedTools' list and lets a prompt start with "-".
    return [*argv, "--", full_prompt(payload)]


def _usage_reset(text: str) -> float | None:
    m = USAGE_LIMIT.search(text)
    if not m:
        return None
    return max(0.0, int(m.group(1)) - time.time())


def classify(r, result, changed):
    """``(failure, message, retry_after_s)``; failure None means success."""
    launch = launch_failure(r, "claude")
    if launch is not None:
        return (*launch, None)
    if r.timed_out:
        return Failure.TIMEOUT, timeout_message("claude", r), None
    if result is None:
        said = first_line(r.stdout, r.stderr) or f"claude exited with code {r.exit_code}"
        if any(p in said.lower() for p in AUTH_PHRASES):
            return Failure.AUTH_REQUIRED, one_line(said), None
        return Failure.TOOL_ERROR, one_line(said), None
    said = result.get("result")
    if not isinstance(said, str) or not said.strip():
        errors = result.get("errors") or []
        said = "; ".join(str(e) for e in errors) or str(result.get("subtype") or "error")
    is_error = result.get("is_error") is True or str(result.get("subtype", "")).startswith("error")
    if is_error:
        status = result.get("api_error_status")
        low = said.lower()
        if status in (401, 403) or any(p in low for p in AUTH_PHRASES):
            return Failure.AUTH_REQUIRED, one_line(said), None
        usage_reset = _usage_reset(said)
        if status == 429 or usage_reset is not None or "rate limit" in low:
            wait = usage_reset if usage_reset is not None else retry_after(said)
            return Failure.RATE_LIMITED, one_line(said), wait
        return Failure.TOOL_ERROR, one_line(said), None
    if changed:
        return None, one_line(said) or "claude finished", None
    message = "claude made no change to the files in scope"
    denied = denials(result)
    if denied:
        shown = ", ".join(denied[:3]) + (f" (+{len(denied) - 3} more)" if len(denied) > 3 else "")
        message += f"; denied: {shown}"
    return Failure.TOOL_ERROR, one_line(message), None


def run_log(r, result) -> str:
    """claude's output plus its permission denials, one per line, for the run log."""
    text = joined_output(r.stdout, r.stderr)
    if result is not None:
        denied = denials(result)
        if denied:
            text = text.rstrip("\n") + "\n--- permission denials ---\n"
            text += "".join(f"{line}\n" for line in denied)
    return text


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    """One ``claude -p`` call that may edit the files in scope and nothing else."""
    if tool_id != TOOL_ID:
        return None
    call = prepare_call(
        context,
        payload,
        capability,
        tool_id=TOOL_ID,
        program=PROGRAM,
        capabilities=CAPABILITIES,
        install_hint=INSTALL_HINT,
    )
    if isinstance(call, InvocationResult):
        return call
    root = Path(context.root)
    env = dict(ENV)
    if call.options.get("base_url"):
        env["ANTHROPIC_BASE_URL"] = str(call.options["base_url"])
    prompt = full_prompt(payload)
    on_stdin = len(prompt.encode()) > MAX_ARGV_PROMPT
    forbidden = (context.security or {}).get("forbidden_paths", ())
    argv = build_argv(
        call.program,
        payload,
        call.options,
        root,
        prompt_on_stdin=on_stdin,
        forbidden=forbidden,
        args=call.args,
    )
    r = context.run(argv, cwd=root, env=env, stdin=prompt if on_stdin else None)
    changes = scoped_changes(context, writable_files(payload))
    messages = parse_output(r.stdout)
    result = next((m for m in reversed(messages) if is_result(m)), None)
    changed = [*changes.created, *changes.modified, *changes.deleted]
    failure, message, wait = classify(r, result, changed)
    return call_result(
        r,
        failure,
        message,
        changes=changes,
        output=run_log(r, result),
        retry_after_s=wait,
        usage=parse_usage(messages),
    )


@hookimpl
@own_tools_only
def validate_payload(tool_id, capability, payload, context):
    """claude needs a prompt and files it may edit, named so a permission rule can hold them."""
    if tool_id != TOOL_ID:
        return None
    problems = request_problems(
        payload,
        capability,
        tool="claude-cli",
        capabilities=CAPABILITIES,
        files_needed="may edit only the files it is given",
    )
    named = [(files_field(payload, i), f) for i, f in enumerate(payload.files)]
    named += [(f"files_create[{i}]", f) for i, f in enumerate(payload.files_create)]
    for where, rel in named:
        if "\n" in rel or "\r" in rel or ("," in rel and ("(" in rel or ")" in rel)):
            problems.append(
                Problem(
                    field=where,
                    message=f"claude's --allowedTools cannot name {rel!r} (a comma together "
                    "with parentheses, or a line break); rename the file or use another tool",
                )
            )
    return problems
