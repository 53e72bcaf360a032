"""Claude Code detection against fake ``claude`` executables that answer like the real one."""

from __future__ import annotations

import sys

import aim_claude
from aim_core.context import AimContext
from aim_core.testing import make_fake_tool

LOGGED_IN = '{"loggedIn": true, "authMethod": "api_key"}'
LOGGED_OUT = '{"loggedIn": false}'


def ctx(tmp_path):
    return AimContext(root=tmp_path, environ={"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)})


def test_logged_in(tmp_path):
    tool = make_fake_tool(
        tmp_path / "bin", "claude", version_output="2.1.197 (Claude Code)", stdout=LOGGED_IN
    )
    found = aim_claude.detect_tool(ctx(tmp_path))
    assert found.tool_id == "claude-cli" and found.installed and found.ready is True
    assert found.version == "2.1.197 (Claude Code)"
    assert tool.work_calls[0]["argv"] == ["auth", "status"]
    assert "ANTHROPIC_API_KEY" in found.env_passthrough
    assert aim_claude.get_version("claude-cli", ctx(tmp_path)) == "2.1.197 (Claude Code)"


def test_logged_out_is_auth_required(tmp_path):
    make_fake_tool(tmp_path / "bin", "claude", stdout=LOGGED_OUT, exit_code=1)
    found = aim_claude.detect_tool(ctx(tmp_path))
    assert found.ready is False and found.failure == "auth_required"
    assert found.reason.startswith("Claude Code requires login")


def test_old_claude_without_auth_status_is_unknown(tmp_path):
    make_fake_tool(tmp_path / "bin", "claude", stderr="error: unknown command 'auth'", exit_code=2)
    assert aim_claude.detect_tool(ctx(tmp_path)).ready is None


def test_not_installed(tmp_path):
    found = aim_claude.detect_tool(ctx(tmp_path))
    assert not found.installed and "npm install -g @anthropic-ai/claude-code" in found.reason


def test_forbidden_paths_are_denied_to_reads():
    argv = aim_claude.build_argv(
        "claude",
        type("P", (), {"prompt": "p", "files": ("a.py",), "files_create": ()})(),
        {},
        "/repo",
        forbidden=[".git/", ".env"],
    )
    denied = argv[argv.index("--disallowedTools") + 1 : argv.index("--no-session-persistence")]
    assert denied == [
        "Read(//repo/**/.git/**)",
        "Read(//repo/.git/**)",
        "Read(//repo/**/.env)",
        "Read(//repo/.env)",
    ]
    assert "Edit(//repo/a.py)" in argv


AUTH_STATUS_BY_ENV = """#!{python}
import json, os, sys
if sys.argv[1:] == ["--version"]:
    print("2.1.332 (Claude Code)")
    sys.exit(0)
key = os.environ.get("ANTHROPIC_API_KEY")  # what the real `claude auth status` looks at
print(json.dumps({{"loggedIn": bool(key), "authMethod": "api_key" if key else "none"}}))
sys.exit(0 if key else 1)
"""


def test_auth_status_sees_the_callers_api_key(tmp_path):
    # detect_program passes the tool its own variables; without them the
    # real claude answered "not logged in" to a user whose ANTHROPIC_API_KEY was set.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text(AUTH_STATUS_BY_ENV.format(python=sys.executable))
    claude.chmod(0o755)
    environ = {"PATH": str(bin_dir), "HOME": str(tmp_path), "ANTHROPIC_API_KEY": "sk-ant-x"}
    found = aim_claude.detect_tool(AimContext(root=tmp_path, environ=environ))
    assert found.ready is True, found.reason
    del environ["ANTHROPIC_API_KEY"]
    found = aim_claude.detect_tool(AimContext(root=tmp_path, environ=environ))
    assert found.ready is False and found.failure == "auth_required"


def test_the_workstreams_budget_left_is_passed_as_claudes_own_limit():
    from aim_core import Invocation

    def argv(**kw):
        payload = Invocation(prompt="p", files=("a.py",), files_scope=("a.py",), **kw)
        return aim_claude.build_argv("claude", payload, {}, "/repo")

    limited = argv(max_cost_usd=0.25)
    assert limited[limited.index("--max-budget-usd") + 1] == "0.2500"
    assert "--max-budget-usd" not in argv()
