"""The usage ledger: ``aim audit report`` and ``aim audit query --usage`` sum
``result.content.usage`` by tool, capability, workstream and run, over records written
through the real audit log; records without usage are not counted."""

from __future__ import annotations

import json

import pytest

from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.records import build_record
from aim_core.models import Invocation, Usage

# (run, workstream, tool, capability, success, usage)
ATTEMPTS = [
    (
        "r1",
        "ws-a",
        "claude-cli",
        "code_generation",
        False,
        Usage(input_tokens=120, output_tokens=30, cost_usd=0.0021, model="sonnet"),
    ),
    ("r1", "ws-a", "codex", "code_generation", False, None),  # a 401: nothing reported
    (
        "r1",
        "ws-a",
        "gemini-cli",
        "code_generation",
        True,
        Usage(input_tokens=300, output_tokens=150, model="gemini-2.5-pro"),
    ),
    (
        "r2",
        "ws-b",
        "opencode",
        "refactoring",
        True,
        Usage(input_tokens=200, output_tokens=100, cost_usd=0.0015, model="aim/stub"),
    ),
    ("r3", "ws-c", "aider", "refactoring", True, None),  # a record from before the ledger
]


@pytest.fixture
def ledger_repo(repo):
    log = JsonlAuditLog(repo / "aim" / ".AIM_ai-tools-registry" / "AIM_audit")
    for run, ws, tool, capability, success, usage in ATTEMPTS:
        rec = build_record(
            actor="pipeline",
            run_id=run,
            workstream_id=ws,
            tool_id=tool,
            capability=capability,
            payload=Invocation(prompt="p", files=["a.py"]),
            success=success,
            message="m",
            attempt=1,
            failure=None if success else "tool_error",
            extra_content={"usage": usage.to_dict()} if usage else None,
        )
        log.append(rec.to_dict())
    log.sync_head()
    return repo


def sums(records, input_tokens, output_tokens, cost_usd):
    return {
        "records": records,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": cost_usd,
    }


def test_report_sums_usage_by_tool_capability_workstream_and_run(ledger_repo, aim):
    r = aim("audit", "report", "--json", cwd=ledger_repo)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    usage = data["usage"]
    assert usage["total"] == sums(3, 620, 280, 0.0036)
    assert usage["by_tool"] == {
        "claude-cli": sums(1, 120, 30, 0.0021),
        "gemini-cli": sums(1, 300, 150, None),  # gemini reports no cost
        "opencode": sums(1, 200, 100, 0.0015),
    }
    assert usage["by_capability"] == {
        "code_generation": sums(2, 420, 180, 0.0021),
        "refactoring": sums(1, 200, 100, 0.0015),
    }
    assert usage["by_workstream"]["ws-a"] == sums(2, 420, 180, 0.0021)
    assert usage["by_run"] == {"r1": sums(2, 420, 180, 0.0021), "r2": sums(1, 200, 100, 0.0015)}
    # the existing keys keep their shape and gain a usage entry where there is one
    assert data["by_tool"]["gemini-cli"]["usage"] == sums(1, 300, 150, None)
    assert "usage" not in data["by_tool"]["aider"] and data["by_tool"]["aider"]["attempts"] == 1
    assert data["by_capability"]["refactoring"]["usage"] == sums(1, 200, 100, 0.0015)
    assert data["runs"] == 3

    text = aim("audit", "report", cwd=ledger_repo).stdout
    assert "Usage (as the tools reported it)" in text
    assert any(
        line.split()[:2] == ["tool", "opencode"] and "cost   $0.0015" in line
        for line in text.splitlines()
    )


def test_query_usage_follows_the_filters(ledger_repo, aim):
    r = aim(
        "audit",
        "query",
        "--usage",
        "--format",
        "json",
        "--capability",
        "code_generation",
        cwd=ledger_repo,
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["total"] == sums(2, 420, 180, 0.0021)
    assert set(data["by_tool"]) == {"claude-cli", "gemini-cli"}
    assert data["by_run"] == {"r1": sums(2, 420, 180, 0.0021)}

    text = aim("audit", "query", "--usage", "--run", "r2", cwd=ledger_repo).stdout
    assert text.splitlines()[1].split()[:7] == ["total", "records", "1", "in", "200", "out", "100"]
    assert "By workstream:" in text and "ws-b" in text

    bad = aim("audit", "query", "--usage", "--format", "csv", cwd=ledger_repo)
    assert bad.returncode == 2 and "--usage prints a table or json" in bad.stderr


def test_no_usage_anywhere_is_an_empty_ledger(repo, aim):
    data = json.loads(aim("audit", "report", "--json", cwd=repo).stdout)
    assert data["usage"]["total"] == sums(0, 0, 0, None)
    assert "Usage (as" not in aim("audit", "report", cwd=repo).stdout
