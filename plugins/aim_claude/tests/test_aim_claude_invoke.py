"""Claude Code invocation against a fake ``claude`` that acts like claude 2.1 at the
process boundary: it parses ``-p``, ``--permission-mode`` and ``--allowedTools``,
allows a write only when an ``Edit(//ABS/PATH)`` rule names it (a path with
backslash-escaped glob characters, or a directory's ``/**``), lists the rest in
``permission_denials`` and prints the single JSON result object claude prints
(texts captured from claude 2.1.197 against a local stub of the Anthropic API)."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

import aim_claude
from aim_claude import output
from aim_core import Invocation, Usage
from aim_core.context import AimContext
from aim_core.workspace import tree_measurer

FAKE_CLAUDE = r"""#!PYTHON
import json, os, re, sys, time
here = os.path.dirname(os.path.abspath(__file__))
cfg = json.load(open(os.path.join(here, "claude.json")))
args = sys.argv[1:]
if args[:1] in (["--version"], ["-v"]):
    print("2.1.197 (Claude Code)"); sys.exit(0)
if args[:2] == ["auth", "status"]:
    print('{"loggedIn": true}'); sys.exit(0)
options = args[: args.index("--")] if "--" in args else args
prompt = args[args.index("--") + 1] if "--" in args else sys.stdin.read()
allowed = []
if "--allowedTools" in options:
    for a in options[options.index("--allowedTools") + 1 :]:
        if a.startswith("--"):
            break
        allowed.append(a)
mode = options[options.index("--permission-mode") + 1] if "--permission-mode" in options else "default"
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps({"argv": args, "cwd": os.getcwd(), "env": dict(os.environ),
                        "prompt": prompt, "allowed": allowed, "mode": mode}) + "\n")
def rule_allows(rule, path):
    m = re.fullmatch(r"Edit\(//(.*)\)", rule)
    if not m:
        return False
    pattern = "/" + m.group(1)
    if pattern.endswith("/**"):
        return path.startswith(re.sub(r"\\(.)", r"\1", pattern[:-3]) + "/")
    return re.sub(r"\\(.)", r"\1", pattern) == path
denials = []
for path, text in cfg.get("writes", {}).items():
    path = os.path.join(os.getcwd(), path)
    if mode in ("acceptEdits", "bypassPermissions") or any(rule_allows(r, path) for r in allowed):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").write(text)
    else:
        denials.append({"tool_name": "Write", "tool_use_id": "toolu_1",
                        "tool_input": {"file_path": path, "content": text}})
for command in cfg.get("bash", []):
    denials.append({"tool_name": "Bash", "tool_use_id": "toolu_2",
                    "tool_input": {"command": command, "description": "run"}})
time.sleep(cfg.get("sleep", 0))
if "raw" in cfg:
    sys.stdout.write(cfg["raw"]); sys.exit(cfg.get("exit_code", 1))
result = {"type": "result", "subtype": "success", "is_error": False, "api_error_status": None,
          "duration_ms": 138, "num_turns": 2, "result": "All done.", "stop_reason": "end_turn",
          "session_id": "05114a3c", "total_cost_usd": 0.0002, "permission_denials": denials,
          "terminal_reason": "completed"}
result.update(cfg.get("result", {}))
for key in cfg.get("drop", []):
    result.pop(key, None)
# Verbose output as claude 2.1.332 decides it: --verbose, else the settings' viewMode
# (managed > --settings > the user's ~/.claude/settings.json), else "verbose" in
# ~/.claude.json. It turns --output-format json into an array of every message.
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return {}
def last(name, default):  # commander: the last value of a single-value option wins
    found = [options[i + 1] for i, a in enumerate(options[:-1]) if a == name]
    return found[-1] if found else default
home = os.environ.get("HOME", "")
flag = json.loads(last("--settings", "{}"))
view = cfg.get("managed_view_mode") or flag.get("viewMode") or load(
    os.path.join(home, ".claude", "settings.json")).get("viewMode")
verbose = "--verbose" in options or (
    view == "verbose" if view else bool(load(os.path.join(home, ".claude.json")).get("verbose")))
fmt = last("--output-format", "text")
init = {"type": "system", "subtype": "init", "cwd": os.getcwd(), "session_id": "05114a3c",
        "tools": ["Read", "Edit"], "model": "claude-opus-5-5", "permissionMode": mode,
        "apiKeySource": "ANTHROPIC_API_KEY", "claude_code_version": "2.1.332"}
turn = {"type": "assistant", "message": {"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-opus-5-5", "content": [{"type": "text", "text": result.get("result")}],
        "usage": {"input_tokens": 100, "output_tokens": 50}}, "session_id": "05114a3c"}
if fmt == "stream-json" and not verbose:
    print("Error: When using --print, --output-format=stream-json requires --verbose",
          file=sys.stderr)
    sys.exit(1)
if fmt == "stream-json":
    for message in (init, turn, result):
        print(json.dumps(message))
elif verbose:
    print(json.dumps([init, turn, result]))
else:
    print(json.dumps(result))
sys.exit(1 if result.get("is_error") else 0)
"""


class FakeClaude:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        bin_dir.mkdir(parents=True, exist_ok=True)
        path = bin_dir / "claude"
        path.write_text(FAKE_CLAUDE.replace("PYTHON", sys.executable, 1))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def configure(self, **cfg):
        (self.bin_dir / "claude.json").write_text(json.dumps(cfg))
        return self

    @property
    def calls(self):
        log = self.bin_dir / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "pages").mkdir(parents=True)
    (root / "hello.py").write_text('print("hello")\n')
    (root / "other.py").write_text("A = 1\n")
    (root / "pages" / "[id].tsx").write_text("old\n")
    (root / "pages" / "i.tsx").write_text("old\n")
    return root


@pytest.fixture
def claude(tmp_path):
    return FakeClaude(tmp_path / "bin").configure()


def ctx(tmp_path, root, *, seconds=30.0, options=None):
    """A context like the core's: it measures what changed in the repository since."""
    environ = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "UNRELATED_SECRET": "s3cr3t",
    }
    return AimContext(
        root=root,
        environ=environ,
        options=options or {},
        deadline=time.monotonic() + seconds,
        env_passthrough=aim_claude.ENV_PASSTHROUGH,
        measure=tree_measurer(root),
    )


def invoke(tmp_path, root, payload=None, **kwargs):
    payload = payload or Invocation(prompt="Say hello world", files=["hello.py"])
    return aim_claude.invoke_capability(
        "claude-cli", "code_generation", payload, ctx(tmp_path, root, **kwargs)
    )


def test_success_edits_only_the_files_in_scope(tmp_path, repo, claude):
    claude.configure(writes={"hello.py": "print('hello world')\n", "new/made.py": "B = 1\n"})
    payload = Invocation(
        prompt="-Say hello world",
        files=["hello.py"],
        files_create=["new/made.py"],
        options={"model": "sonnet", "base_url": "http://127.0.0.1:9", "args": ["--effort", "low"]},
    )
    r = invoke(tmp_path, repo, payload)
    assert r.success and r.failure is None and r.exit_code == 0
    assert r.files_modified == ("hello.py",) and r.files_created == ("new/made.py",)

    (call,) = claude.calls
    argv = call["argv"]
    assert call["cwd"] == str(repo)
    assert argv[0] == "-p" and argv[argv.index("--output-format") + 1] == "json"
    assert call["mode"] == "dontAsk" and "acceptEdits" not in argv
    assert "--dangerously-skip-permissions" not in argv
    assert call["allowed"] == [
        "Read",
        "Grep",
        "Glob",
        f"Edit(/{repo}/hello.py)",
        f"Edit(/{repo}/new/made.py)",
    ]
    assert "--no-session-persistence" in argv and "--strict-mcp-config" in argv
    assert argv[argv.index("--setting-sources") + 1] == "user"
    assert json.loads(argv[argv.index("--settings") + 1]) == {
        "viewMode": "default",
        "disableAllHooks": True,
        "env": {
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        },
    }
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert argv.index("--effort") > argv.index("--setting-sources")
    # the prompt is last, after "--", and names the files claude may touch
    assert argv[-2] == "--" and call["prompt"].startswith("-Say hello world")
    assert "- hello.py" in call["prompt"] and "- new/made.py" in call["prompt"]
    env = call["env"]
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert env["DISABLE_TELEMETRY"] == env["DISABLE_AUTOUPDATER"] == "1"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-test" and "UNRELATED_SECRET" not in env


def test_edit_rules_name_exactly_the_files_in_scope(tmp_path, repo):
    payload = Invocation(
        prompt="x",
        files=["hello.py", "pages/[id].tsx", "pages", "a b/c*d?.py"],
        files_scope=["hello.py", "pages/[id].tsx", "pages", "a b/c*d?.py", "other.py"],
        files_create=["hello.py", "new.py"],
    )
    rules = aim_claude.edit_rules(repo, aim_claude.target_files(payload))
    assert rules == [
        f"Edit(/{repo}/hello.py)",
        f"Edit(/{repo}/pages/\\[id\\].tsx)",  # glob characters escaped: that file only
        f"Edit(/{repo}/pages/**)",  # a directory in scope: everything under it
        f"Edit(/{repo}/a b/c\\*d\\?.py)",
        f"Edit(/{repo}/new.py)",
    ]
    assert all(r.startswith("Edit(//") for r in rules)  # "//" = absolute from the root


def test_a_bracketed_file_name_is_allowed_and_its_glob_lookalike_is_not(tmp_path, repo, claude):
    claude.configure(writes={"pages/[id].tsx": "new\n", "pages/i.tsx": "BAD\n"})
    r = invoke(tmp_path, repo, Invocation(prompt="x", files=["pages/[id].tsx"]))
    assert r.success and r.files_modified == ("pages/[id].tsx",)
    assert (repo / "pages" / "i.tsx").read_text() == "old\n"
    assert f"Write {repo}/pages/i.tsx" in r.output


def test_a_symlinked_root_gets_rules_for_both_paths(tmp_path, repo):
    link = tmp_path / "link"
    link.symlink_to(repo)
    rules = aim_claude.edit_rules(link, ["hello.py"])
    assert rules == [f"Edit(/{link}/hello.py)", f"Edit(/{repo}/hello.py)"]


def test_no_change_is_a_tool_error_naming_what_was_denied(tmp_path, repo, claude):
    claude.configure(writes={"other.py": "A = 2\n"}, bash=["touch x"])
    r = invoke(tmp_path, repo)
    assert (r.success, r.failure, r.exit_code) == (False, "tool_error", 0)
    assert r.message.startswith("claude made no change to the files in scope")
    assert f"Write {repo}/other.py" in r.message
    assert (repo / "other.py").read_text() == "A = 1\n"
    assert "--- permission denials ---" in r.output
    assert f"Write {repo}/other.py" in r.output and "Bash touch x" in r.output


def test_not_logged_in_is_auth_required(tmp_path, repo, claude):
    claude.configure(result={"is_error": True, "result": "Not logged in · Please run /login"})
    r = invoke(tmp_path, repo)
    assert (r.failure, r.exit_code) == ("auth_required", 1)
    assert r.message == "Not logged in · Please run /login"


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_auth_required(tmp_path, repo, claude, status):
    claude.configure(
        result={
            "is_error": True,
            "api_error_status": status,
            "result": "Invalid API key · Fix external API key",
        }
    )
    assert invoke(tmp_path, repo).failure == "auth_required"


def test_rate_limit(tmp_path, repo, claude):
    said = "API Error: Request rejected (429) · Number of request tokens has exceeded your per-minute rate limit"
    claude.configure(result={"is_error": True, "api_error_status": 429, "result": said})
    r = invoke(tmp_path, repo)
    assert r.failure == "rate_limited" and r.message == said and r.retry_after_s is None


def test_rate_limit_with_advice_passes_it_on(tmp_path, repo, claude):
    claude.configure(
        result={
            "is_error": True,
            "api_error_status": 429,
            "result": "API Error: Request rejected (429) · Rate limited, please try again in 30s",
        }
    )
    assert invoke(tmp_path, repo).retry_after_s == 30.0


def test_usage_limit_says_when_it_resets(tmp_path, repo, claude):
    reset = int(time.time()) + 3600
    claude.configure(result={"is_error": True, "result": f"Claude AI usage limit reached|{reset}"})
    r = invoke(tmp_path, repo)
    assert r.failure == "rate_limited" and 3500 < r.retry_after_s <= 3600


def test_other_api_errors_are_tool_errors_with_claudes_words(tmp_path, repo, claude):
    said = "API Error: 500 Internal server error"
    claude.configure(result={"is_error": True, "api_error_status": 500, "result": said})
    r = invoke(tmp_path, repo)
    assert (r.failure, r.message) == ("tool_error", said)


def test_max_turns_without_a_result_text(tmp_path, repo, claude):
    claude.configure(
        result={
            "is_error": True,
            "subtype": "error_max_turns",
            "errors": ["Reached maximum number of turns (2)"],
        },
        drop=["result"],
    )
    r = invoke(tmp_path, repo)
    assert (r.failure, r.message) == ("tool_error", "Reached maximum number of turns (2)")


def test_output_that_is_not_json_is_a_tool_error_with_its_first_line(tmp_path, repo, claude):
    claude.configure(raw="error: unknown option '--bogus'\n(Did you mean --debug?)\n", exit_code=1)
    r = invoke(tmp_path, repo)
    assert (r.failure, r.message) == ("tool_error", "error: unknown option '--bogus'")


def test_deadline_is_a_timeout(tmp_path, repo, claude):
    claude.configure(sleep=30)
    start = time.monotonic()
    r = invoke(tmp_path, repo, seconds=0.5)
    assert time.monotonic() - start < 10
    assert (r.failure, r.exit_code) == ("timeout", None)


def test_a_long_prompt_goes_on_stdin(tmp_path, repo, claude):
    claude.configure(writes={"hello.py": "x\n"})
    prompt = "change it " * 20000
    r = invoke(tmp_path, repo, Invocation(prompt=prompt, files=["hello.py"]))
    assert r.success
    (call,) = claude.calls
    assert "--" not in call["argv"] and call["prompt"].startswith(prompt.rstrip())


def test_not_installed(tmp_path, repo):
    assert invoke(tmp_path, repo).failure == "not_installed"


def test_other_tool_ids_are_not_answered(tmp_path, repo, claude):
    payload = Invocation(prompt="x", files=["hello.py"])
    context = ctx(tmp_path, repo)
    assert aim_claude.invoke_capability("aider", "code_generation", payload, context) is None
    assert aim_claude.validate_payload("aider", "code_generation", payload, context) is None
    assert claude.calls == []


def test_validate_payload(tmp_path, repo):
    context = ctx(tmp_path, repo)
    ok = Invocation(prompt="x", files=["hello.py", "pages/[id].tsx"])
    assert aim_claude.validate_payload("claude-cli", "refactoring", ok, context) == []
    nothing = aim_claude.validate_payload(
        "claude-cli", "refactoring", Invocation(prompt="x"), context
    )
    assert [p.field for p in nothing] == ["capability_payload.files"]
    odd = Invocation(prompt="x", files=["ok.py"], files_create=["f(1),x.py"])
    (problem,) = aim_claude.validate_payload("claude-cli", "code_generation", odd, context)
    assert problem.field == "files_create[0]" and "--allowedTools" in problem.message


# ------------------------------------------------------------------ output forms, usage

# claude 2.1.332's result object against the LLM stub (tests/e2e/stub_llm.py), trimmed.
REAL_RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "api_error_status": None,
    "result": "Done: the change is made.",
    "num_turns": 3,
    "total_cost_usd": 0.0142,
    "usage": {
        "input_tokens": 300,
        "cache_creation_input_tokens": 1200,
        "cache_read_input_tokens": 4000,
        "output_tokens": 150,
        "service_tier": "standard",
    },
    "modelUsage": {
        "claude-haiku-4-5": {
            "inputTokens": 80,
            "outputTokens": 10,
            "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0,
            "costUSD": 0.0001,
        },
        "claude-opus-5-5": {
            "inputTokens": 300,
            "outputTokens": 150,
            "cacheReadInputTokens": 4000,
            "cacheCreationInputTokens": 1200,
            "costUSD": 0.0141,
        },
    },
    "permission_denials": [],
    "terminal_reason": "completed",
}
REAL_USAGE = Usage(
    input_tokens=80 + 300 + 4000 + 1200,
    output_tokens=160,
    cost_usd=0.0142,
    model="claude-opus-5-5",
)


def write_settings(home, **settings):
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps(settings))


@pytest.mark.parametrize(
    "user_setting",
    [
        lambda home: write_settings(home, viewMode="verbose"),
        lambda home: (home / ".claude.json").write_text('{"verbose": true}'),
    ],
    ids=["settings-viewMode-verbose", "claude.json-verbose"],
)
def test_the_users_verbose_setting_does_not_change_the_output_form(
    tmp_path, repo, claude, user_setting
):
    user_setting(tmp_path)  # HOME is tmp_path
    claude.configure(writes={"hello.py": "print('hello world')\n"}, result=REAL_RESULT)
    r = invoke(tmp_path, repo)
    assert r.success and r.files_modified == ("hello.py",)
    assert r.output.lstrip().startswith("{")  # aim's --settings won: one result object
    # (without aim's --settings, the fake -- like claude 2.1.332 -- prints the array)


@pytest.mark.parametrize(
    ("how", "first"),
    [
        ({"managed_view_mode": "verbose"}, "["),  # managed settings outrank aim's --settings
        ({"args": ["--verbose"]}, "["),  # a configured --verbose
        ({"args": ["--output-format", "stream-json", "--verbose"]}, '{"type": "system"'),
    ],
    ids=["array-managed-settings", "array-verbose-arg", "stream-json-arg"],
)
def test_every_output_form_is_read(tmp_path, repo, claude, how, first):
    options = {"args": how.pop("args")} if "args" in how else None
    claude.configure(writes={"hello.py": "print('hello world')\n"}, result=REAL_RESULT, **how)
    r = invoke(tmp_path, repo, options=options)
    assert r.output.startswith(first)
    assert (r.success, r.failure, r.message) == (True, None, "Done: the change is made.")
    assert r.files_modified == ("hello.py",)
    assert r.usage == REAL_USAGE


def test_an_error_in_the_array_form_is_classified(tmp_path, repo, claude):
    said = "Invalid API key · Fix external API key"
    claude.configure(
        managed_view_mode="verbose",
        result={"is_error": True, "api_error_status": 401, "result": said},
    )
    r = invoke(tmp_path, repo)
    assert r.output.startswith("[")
    assert (r.failure, r.message) == ("auth_required", said)


def test_a_denial_in_the_array_form_is_named(tmp_path, repo, claude):
    claude.configure(managed_view_mode="verbose", writes={"other.py": "A = 2\n"})
    r = invoke(tmp_path, repo)
    assert r.failure == "tool_error" and f"denied: Write {repo}/other.py" in r.message


@pytest.mark.parametrize(
    ("stdout", "result"),
    [
        ('{"type": "result", "is_error": false, "result": "ok"}', "ok"),
        ('[{"type": "system"}, {"type": "result", "is_error": false, "result": "ok"}]', "ok"),
        ('{"type": "system"}\n{"type": "assistant"}\n{"type": "result", "result": "ok"}\n', "ok"),
        # an older array without "type": the result is the element that says is_error
        ('[{"role": "user"}, {"role": "system", "is_error": false, "result": "ok"}]', "ok"),
        ("error: unknown option '--bogus'", None),
        ("[1, 2]", None),
        ("", None),
    ],
    ids=["object", "array", "stream-json", "old-array", "text", "odd-array", "empty"],
)
def test_parse_result(stdout, result):
    found = output.parse_result(stdout)
    assert (found or {}).get("result") == result


def test_usage_from_the_result_alone_and_the_session_model():
    messages = [
        {"type": "system", "subtype": "init", "model": "claude-sonnet-5"},
        {
            "type": "result",
            "is_error": False,
            "total_cost_usd": 0.002,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 3},
        },
    ]
    assert output.parse_usage(messages) == Usage(
        input_tokens=15, output_tokens=3, cost_usd=0.002, model="claude-sonnet-5"
    )
    assert output.parse_usage([{"type": "system"}]) is None


# ------------------------------------------------------------------ cloud credentials

CLOUD_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE12",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_REGION": "us-east-1",
    "GOOGLE_APPLICATION_CREDENTIALS": "/home/u/gcp.json",
    "CLOUD_ML_REGION": "us-east5",
    "ANTHROPIC_VERTEX_PROJECT_ID": "proj",
}
AWS = {k for k in CLOUD_ENV if k.startswith("AWS_")}
GOOGLE = {"GOOGLE_APPLICATION_CREDENTIALS", "CLOUD_ML_REGION", "ANTHROPIC_VERTEX_PROJECT_ID"}


@pytest.mark.parametrize(
    ("switch", "passed"),
    [
        ({}, set()),
        ({"CLAUDE_CODE_USE_BEDROCK": "0"}, set()),
        ({"CLAUDE_CODE_USE_BEDROCK": "1"}, AWS),
        ({"CLAUDE_CODE_USE_VERTEX": "true"}, GOOGLE),
    ],
    ids=["direct-api", "bedrock-off", "bedrock", "vertex"],
)
def test_cloud_credentials_reach_claude_only_when_it_uses_that_cloud(
    aim_project, aim_test_env, switch, passed
):
    claude = FakeClaude(aim_test_env.bin_dir).configure(writes={"hello.py": "print('hi')\n"})
    project = aim_project(files={"hello.py": "print('hello')\n"}, plugins=[aim_claude])
    ws = project.workstream(
        tool="claude-cli", files_scope=["hello.py"], capability_payload={"prompt": "say hi"}
    )
    env = {**CLOUD_ENV, **switch, "ANTHROPIC_API_KEY": "sk-ant-test"}
    project.run("run", ws, env=env).assert_success()
    work = [c for c in claude.calls if c["argv"][:1] == ["-p"]]
    (call,) = work
    assert {k for k in CLOUD_ENV if k in call["env"]} == passed
    for name in passed:
        assert call["env"][name] == CLOUD_ENV[name]
