"""``aim status --refresh`` asks the real programs: their versions, their readiness."""

from __future__ import annotations

import json
import os


def tools_of(r) -> dict[str, dict]:
    assert r.returncode == 0, r.stderr
    return {t["tool_id"]: t for t in json.loads(r.stdout)["tools"]}


def expected(name: str, default: str) -> str:
    """The pinned version ``make e2e`` installed (its variables), else ``default``."""
    return os.environ.get(f"{name}_VERSION") or default


def test_status_reports_the_real_versions_and_states(e2e_repo):
    repo = e2e_repo
    tools = tools_of(repo.aim("status", "--refresh", "--json"))

    aider, claude, jules = tools["aider"], tools["claude-cli"], tools["jules"]
    assert aider["detected"] and aider["ready"] is not False
    assert aider["version"] == f"aider {expected('AIDER', aider['version'].split()[-1])}"
    assert aider["path"] == str(repo.tool_dirs["aider"] / "aider")
    # `claude auth status` sees the API key (the plugin passes claude its variables)
    assert claude["detected"] and claude["ready"] is True, claude
    assert claude["version"] == f"{expected('CLAUDE', claude['version'].split()[0])} (Claude Code)"
    # the npm package of jules is installed, but its program can't be fetched here
    assert jules["detected"] is True and jules["ready"] is False
    assert jules["version"] is None
    assert "'Failed to start jules binary'" in jules["reason"]

    text = repo.aim("status").stdout  # the guide's table, from the cache just written
    assert any(line.split()[:3] == ["aider", "Yes", "aider"] for line in text.splitlines())


def test_status_without_keys_says_what_each_tool_needs(e2e_repo):
    repo = e2e_repo
    repo.env = {}  # no OPENAI_API_KEY, no ANTHROPIC_API_KEY
    tools = tools_of(repo.aim("status", "--refresh", "--json"))

    assert tools["claude-cli"]["ready"] is False
    assert tools["claude-cli"]["reason"].startswith("Claude Code requires login")
    assert tools["aider"]["ready"] is False
    assert tools["aider"]["reason"].startswith("aider has no model API key")


def test_status_with_a_jules_api_key_uses_the_rest_api(e2e_repo):
    repo = e2e_repo
    repo.env["JULES_API_KEY"] = "k-e2e"
    repo.env["JULES_API_BASE"] = "http://127.0.0.1:9/v1alpha"
    jules = tools_of(repo.aim("status", "--refresh", "--json"))["jules"]

    assert jules["detected"] is True and jules["ready"] is True
    assert jules["reason"].startswith(
        "uses the Jules REST API at http://127.0.0.1:9/v1alpha (JULES_API_KEY is set)"
    )
    assert "k-e2e" not in json.dumps(jules)
