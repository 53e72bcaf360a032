"""The deployment guide's routing table, end to end: linting goes to ruff and falls back to
pylint when ruff is missing. Needs aim-plugin-ruff (installed with aim's own plugins)."""

from __future__ import annotations

import os
import shutil
import sys

import aim_pylint
import pytest

CLEAN = '"""Arithmetic."""\n\n\ndef add(a, b):\n    """Return a + b."""\n    return a + b\n'

pytest.importorskip("aim_ruff", reason="the fallback needs aim-plugin-ruff")


@pytest.fixture
def path_without_ruff(aim_test_env, monkeypatch):
    """PATH with the real pylint and without any ruff."""
    pylint = shutil.which("pylint") or shutil.which("pylint", path=os.path.dirname(sys.executable))
    if pylint is None:
        pytest.skip("pylint not installed")
    (aim_test_env.bin_dir / "pylint").symlink_to(pylint)
    dirs = [
        d
        for d in os.environ["PATH"].split(os.pathsep)
        if d and not os.access(os.path.join(d, "ruff"), os.X_OK)
    ]
    monkeypatch.setenv("PATH", os.pathsep.join([str(aim_test_env.bin_dir), *dirs]))
    assert shutil.which("ruff") is None


def test_status_shows_ruff_missing_and_pylint_ready(aim_project, path_without_ruff):
    project = aim_project(plugins=["ruff", aim_pylint])
    tools = {t["tool_id"]: t for t in project.run("status", "--json").json()["tools"]}
    assert tools["ruff"]["detected"] is False and tools["ruff"]["plugin"] == "ruff"
    assert tools["pylint"]["detected"] is True and tools["pylint"]["plugin"] == "pylint"
    route = project.run("route", "linting").assert_success()
    route.fnmatch_lines(["Capability: linting", "  1. ruff *skip*", "  2. pylint *would run"])


def test_linting_falls_back_to_pylint_when_ruff_is_missing(aim_project, path_without_ruff):
    project = aim_project(files={"src/calc.py": CLEAN}, plugins=["ruff", aim_pylint])
    ws = project.workstream(
        id="ws-lint-calc",
        capability="linting",
        files_scope=["src/calc.py"],
        capability_payload={"timeout_ms": 120000},
    )
    result = project.run("run", ws).assert_success()
    result.fnmatch_lines(
        [
            "*INFO* Executing capability 'linting' via AIM",
            "*INFO* AIM routing to primary tool: ruff",
            "*WARNING* 'ruff' not found on PATH (install: pip install ruff)",
            "*INFO* Falling back to tool: pylint",
            "*INFO* Linting completed (attempt 1)",
        ],
        stream="stderr",
    )
    [record] = project.audit_records()
    assert record["tool_id"] == "pylint" and record["capability"] == "linting"
    assert record["result"]["message"] == "Linting completed (attempt 1)"
    assert record["result"]["content"]["skipped"] == [
        {
            "tool_id": "ruff",
            "failure": "not_installed",
            "reason": "'ruff' not found on PATH (install: pip install ruff)",
        }
    ]
