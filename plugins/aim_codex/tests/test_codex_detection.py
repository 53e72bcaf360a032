"""codex detection against fake ``codex`` executables answering like codex 0.171
(``codex --version`` → ``codex-cli 0.171.0``; ``codex login status`` → ``Not logged in``
and exit 1 without a login)."""

from __future__ import annotations

import aim_codex
from aim_core.context import AimContext
from aim_core.testing import make_fake_tool

VERSION = "codex-cli 0.171.0"


def ctx(tmp_path, **env):
    (tmp_path / "repo").mkdir(exist_ok=True)
    environ = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path / "home"), **env}
    return AimContext(root=tmp_path / "repo", environ=environ)


def fake(tmp_path, **run):
    return make_fake_tool(tmp_path / "bin", "codex", version_output=VERSION, **run)


def test_logged_out(tmp_path):
    tool = fake(tmp_path, exit_code=1, stderr="Not logged in\n")
    found = aim_codex.detect_tool(ctx(tmp_path))
    assert (found.installed, found.version, found.ready) == (True, VERSION, False)
    assert found.failure == "auth_required"
    assert found.reason == "Codex requires login (run 'codex login', or set CODEX_API_KEY)"
    assert tool.work_calls[0]["argv"] == ["login", "status"]


def test_logged_in(tmp_path):
    fake(tmp_path, stdout="Logged in using ChatGPT\n")
    found = aim_codex.detect_tool(ctx(tmp_path))
    assert found.ready is True and found.reason is None
    assert found.watch_paths == (str(tmp_path / "home" / ".codex" / "auth.json"),)


def test_an_api_key_is_ready_without_asking_codex(tmp_path):
    tool = fake(tmp_path, exit_code=1, stderr="Not logged in\n")
    found = aim_codex.detect_tool(ctx(tmp_path, CODEX_API_KEY="sk-x"))
    assert found.ready is True and tool.work_calls == []
    assert {"CODEX_API_KEY", "CODEX_HOME", "OPENAI_API_KEY"} <= set(found.env_passthrough)


def test_a_login_status_it_does_not_understand_leaves_readiness_unknown(tmp_path):
    fake(tmp_path, exit_code=2, stderr="error: unrecognized subcommand 'login'\n")
    assert aim_codex.detect_tool(ctx(tmp_path)).ready is None


def test_codex_home_inside_the_repository_is_not_ready(tmp_path):
    fake(tmp_path)
    found = aim_codex.detect_tool(
        ctx(tmp_path, CODEX_API_KEY="k", CODEX_HOME=str(tmp_path / "repo" / ".codex"))
    )
    assert (found.ready, found.failure) == (False, "unavailable")
    assert "CODEX_HOME" in found.reason


def test_not_installed_says_how_to_install(tmp_path):
    found = aim_codex.detect_tool(ctx(tmp_path))
    assert found.installed is False
    assert found.reason == "'codex' not found on PATH (install: npm install -g @openai/codex)"
