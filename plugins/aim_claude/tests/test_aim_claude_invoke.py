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
from aim_core import Invocation
from aim_core.context import AimContext

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
    assert "--no-session-persistence" in argv
    assert argv[argv.index("--setting-sources") + 1] == "user"
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
