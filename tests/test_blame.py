"""Trust II, blame where it belongs: cooldowns count a tool's health, not the work or a
workstream's own tight time limit; a request no tool accepts is bad input (exit 2)."""

from __future__ import annotations

import pytest


@pytest.fixture
def repo(scripted_repo):
    return scripted_repo


def _ws(repo, ident, **payload):
    return repo.workstream(
        id=ident,
        capability="code_generation",
        files_scope=[f"{ident}.py"],
        tasks=["x"],
        capability_payload={"max_retries": 0, **payload},
    )


def test_a_workstreams_own_tight_timeout_does_not_cool_a_healthy_tool_down(repo):
    repo.tool('sleep 1\nfor f in "$@"; do echo ok > "$f"; done')
    tight = [_ws(repo, f"tight{n}", timeout_ms=300, max_retries=2) for n in range(2)]
    relaxed = _ws(repo, "relaxed", timeout_ms=60000)
    result = repo.run("run", *tight, relaxed, "-j", "1")
    records = repo.audit_records()
    timeouts = [r for r in records if r["failure"] == "timeout"]
    assert len(timeouts) >= 4  # the tool was cut off by the workstreams' own limits
    last = [r for r in records if r["workstream_id"] == "relaxed"]
    assert last and last[-1]["result"]["success"] is True, result.stderr
    assert repo.read("relaxed.py") == "ok\n"


def test_work_that_fails_does_not_cool_the_tool_down(repo):
    repo.tool('for f in "$@"; do echo bad > "$f"; done\nexit 1')  # work_failed every time
    failing = [_ws(repo, f"fail{n}") for n in range(3)]
    repo.run("run", *failing, "-j", "1")
    repo.tool('for f in "$@"; do echo ok > "$f"; done')
    result = repo.run("run", *failing, _ws(repo, "fourth"), "-j", "1")
    assert result.exit_code == 0, result.stderr
    assert "cooling down" not in result.stderr


def test_a_tool_that_keeps_crashing_is_still_cooled_down(repo):
    """The control: failures that say something about the tool do count."""
    path = repo.env.bin_dir / "scripttool"
    path.write_text("#!/bin/sh\nkill -SEGV $$\n")
    path.chmod(0o755)
    plugin = repo.env.site / "aim_scripttool_plugin.py"
    plugin.write_text(plugin.read_text().replace('else "work_failed"', 'else "tool_error"'))
    wss = [_ws(repo, f"crash{n}") for n in range(4)]
    result = repo.run("run", *wss, "-j", "1")
    assert "work_failed" not in (repo.env.site / "aim_scripttool_plugin.py").read_text()
    assert "cooling down" in result.stderr


def test_a_request_no_tool_accepts_is_bad_input_naming_the_field(aim_project, fake_tool):
    fake_tool("aider", version="aider 0.86.2")
    project = aim_project(files={"a.py": "x = 1\n"}, plugins=["aider"])
    ws = project.workstream(id="ws-noinstr", tool="aider", files_scope=["a.py"])
    result = project.run("run", ws, env={"OPENAI_API_KEY": "test-key-for-a-fake-aider"})
    assert result.exit_code == 2, result.stderr
    assert "install or log in" not in result.stderr.lower()
    assert "Fix the workstream" in result.stderr
    assert "prompt" in result.stderr or "tasks" in result.stderr  # the field to fill in
