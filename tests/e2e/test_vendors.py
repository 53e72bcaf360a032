"""The real codex, gemini-cli and opencode against the loopback stub
(:mod:`tests.e2e.stub_agents`): each writes the file it is asked for, a 401 is
``auth_required``, a 429 is retried, a hang is cut with its whole process tree, and
one ``aim run`` falls back across three vendors (claude 429 → codex 401 → gemini)."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.stub_agents import write
from tests.e2e.test_fallback_and_failures import _alive, _watch_tree, lines, outcome

TARGET = "src/add.py"
ADD = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n'
# tool id -> (program, the stub protocol it speaks)
VENDORS = {
    "codex": ("codex", "responses"),
    "gemini-cli": ("gemini", "gemini"),
    "opencode": ("opencode", "openai"),
}


@pytest.fixture
def vendors(e2e_repo):
    """The repository, with codex, gemini-cli and opencode configured for the stub."""
    repo = e2e_repo
    stub = repo.stub
    repo.configure(
        aider=repo.aider_options(),
        codex={"model": "stub-model", "base_url": stub.openai_base},
        **{"gemini-cli": {"base_url": stub.url}},
        opencode={"model": "stub-model", "base_url": stub.openai_base},
    )
    repo.env.update(
        GEMINI_API_KEY="k-stub-gemini",
        # offline: opencode must not ask models.dev for its model list
        OPENCODE_DISABLE_MODELS_FETCH="true",
    )
    # Gemini CLI 0.61 takes GOOGLE_GEMINI_BASE_URL for a "gateway" login that its
    # headless mode then rejects ("Invalid auth method selected."): a user of a
    # custom endpoint selects the API-key login in ~/.gemini/settings.json.
    settings = repo.home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    stub.agent_script = [[write(TARGET, ADD)]]
    repo.commit("configure the vendors' CLIs")
    return repo


def direct(repo, tool_id: str, **payload) -> str:
    """A workstream that invokes ``tool_id`` directly, creating TARGET."""
    ws = repo.workstream(
        f"ws-{tool_id}",
        tool=tool_id,
        files_scope=[TARGET],
        files_create=[TARGET],
        capability_payload={
            "prompt": "Create add(a, b) in src/add.py",
            "timeout_ms": 90000,
            "max_retries": 0,
            **payload,
        },
    )
    repo.commit(f"workstream for {tool_id}")
    return ws


@pytest.mark.parametrize("tool_id", list(VENDORS))
def test_each_cli_writes_the_file_it_is_asked_for(vendors, tool_id):
    repo = vendors
    r = repo.aim("run", direct(repo, tool_id), tools=(VENDORS[tool_id][0],))

    assert r.returncode == 0, r.stdout + r.stderr
    assert (repo.root / TARGET).read_text() == ADD
    (record,) = repo.records()
    assert (record["tool_id"], record["failure"], record["result"]["success"]) == (
        tool_id,
        None,
        True,
    )
    assert record["result"]["content"]["files_created"] == [TARGET]
    usage = record["result"]["content"].get("usage")
    if usage is not None:  # once the engine records what the plugin reported
        assert usage["input_tokens"] >= 100 and usage["output_tokens"] >= 50
    served = repo.stub.seen(VENDORS[tool_id][1])
    assert served and all(s.mode == "ok" for s in served)
    # nothing but the file: no caches, sessions or settings of the tool in the repository
    assert repo.git("status", "--porcelain", "--untracked-files=all") == f"?? {TARGET}\n"


@pytest.mark.parametrize("tool_id", list(VENDORS))
def test_a_401_is_auth_required_and_not_retried(vendors, tool_id):
    repo = vendors
    api = VENDORS[tool_id][1]
    repo.stub.set_mode("401", api=api)
    r = repo.aim("run", direct(repo, tool_id, max_retries=2), tools=(VENDORS[tool_id][0],))

    assert r.returncode == 1, r.stdout + r.stderr
    assert outcome(repo.records()) == [(tool_id, 1, "auth_required", False)]
    assert not (repo.root / TARGET).exists()


def test_a_429_is_rate_limited_and_retried(vendors):
    repo = vendors
    repo.stub.set_mode("429", api="responses")
    proc = repo.popen("run", direct(repo, "codex", max_retries=1), tools=("codex",))
    first = wait_for(repo.records, timeout=60)
    repo.stub.set_mode("ok", api="responses")  # the provider recovers for the retry
    out, err = proc.communicate(timeout=120)

    assert first and first[0]["failure"] == "rate_limited", first
    assert proc.returncode == 0, out + err
    assert outcome(repo.records()) == [
        ("codex", 1, "rate_limited", False),
        ("codex", 2, None, True),
    ]
    assert repo.records()[0]["result"]["message"] == (
        "exceeded retry limit, last status: 429 Too Many Requests"
    )
    assert any(line.startswith("[INFO] Retrying codex in") for line in lines(err))
    # one request per attempt: codex's own retries are off, aim does the retrying
    assert [s.mode for s in repo.stub.seen("responses")] == ["429", "ok", "ok"]
    assert (repo.root / TARGET).read_text() == ADD


@pytest.mark.parametrize("tool_id", ["codex", "gemini-cli"])
def test_a_hang_is_cut_by_the_timeout_and_no_process_is_left(vendors, tool_id):
    repo = vendors
    repo.stub.set_mode("hang", api=VENDORS[tool_id][1])
    timeout_s = 8.0
    ws = direct(repo, tool_id, timeout_ms=int(timeout_s * 1000))
    seen: dict[int, tuple] = {}
    stop = threading.Event()
    began = time.monotonic()
    proc = repo.popen("run", ws, tools=(VENDORS[tool_id][0],))
    watcher = threading.Thread(target=_watch_tree, args=(proc.pid, seen, stop), daemon=True)
    watcher.start()
    out, err = proc.communicate(timeout=120)
    stop.set()
    watcher.join()

    assert proc.returncode == 1, out + err
    (record,) = repo.records()
    assert (record["tool_id"], record["failure"]) == (tool_id, "timeout")
    assert timeout_s <= record["result"]["content"]["duration_sec"] < timeout_s + 3.0
    assert time.monotonic() - began < timeout_s + 15.0
    assert any(s.mode == "hang" for s in repo.stub.seen(VENDORS[tool_id][1]))
    program = VENDORS[tool_id][0]
    assert any(program in cmd for _, cmd in seen.values()), seen
    left = [(pid, cmd) for pid, (started, cmd) in seen.items() if _alive(pid, started)]
    assert left == [], f"processes left behind: {left}"
    assert not (repo.root / TARGET).exists()


def test_one_run_falls_back_across_three_vendors(vendors):
    repo = vendors
    rules = repo.root / "aim" / ".AIM_ai-tools-registry" / "AIM_cross-tool"
    path = rules / "AIM_coordination-rules.json"
    data = json.loads(path.read_text())
    data["capabilities"]["code_generation"] = {
        "primary": "claude-cli",
        "fallback": ["codex", "gemini-cli", "opencode"],
    }
    path.write_text(json.dumps(data, indent=2))
    repo.stub.set_mode("429", api="anthropic")
    repo.stub.set_mode("401", api="responses")
    ws = repo.workstream(
        "ws-cross-vendor",
        capability="code_generation",
        files_scope=[TARGET],
        files_create=[TARGET],
        capability_payload={
            "prompt": "Create add(a, b) in src/add.py",
            "timeout_ms": 90000,
            "max_retries": 0,
        },
    )
    repo.commit("rules: claude first, then the other vendors")

    r = repo.aim("run", ws, tools=("claude", "codex", "gemini", "opencode"))

    assert r.returncode == 0, r.stdout + r.stderr
    assert outcome(repo.records()) == [
        ("claude-cli", 1, "rate_limited", False),
        ("codex", 1, "auth_required", False),
        ("gemini-cli", 1, None, True),
    ]
    assert (repo.root / TARGET).read_text() == ADD
    assert lines(r.stderr)[-1] == "[INFO] Code generation completed (attempt 1)"
    assert "[INFO] Falling back to tool: gemini-cli" in lines(r.stderr)
    report = json.loads(repo.aim("audit", "report", "--json").stdout)
    assert report["runs"] == 1 and report["by_tool"]["gemini-cli"]["successes"] == 1
    usage = [rec["result"]["content"].get("usage") for rec in repo.records()]
    assert usage[-1] and usage[-1]["input_tokens"] > 0  # gemini's JSON events
    assert report["usage"]["total"]["input_tokens"] == sum(
        (u or {}).get("input_tokens") or 0 for u in usage
    )
    assert report["usage"]["by_tool"]["gemini-cli"]["input_tokens"] == usage[-1]["input_tokens"]


def test_status_reports_the_vendors_versions_and_readiness(vendors):
    repo = vendors
    tools = {
        t["tool_id"]: t
        for t in json.loads(repo.aim("status", "--refresh", "--json").stdout)["tools"]
    }
    expected = {
        "codex": f"codex-cli {os.environ.get('CODEX_VERSION', '')}".strip(),
        "gemini-cli": os.environ.get("GEMINI_VERSION"),
        "opencode": os.environ.get("OPENCODE_VERSION"),
    }
    for tool_id, version in expected.items():
        t = tools[tool_id]
        assert t["detected"] and t["ready"] is True, t
        if version:
            assert t["version"] == version
    repo.env = {}  # no keys at all
    bare = {
        t["tool_id"]: t
        for t in json.loads(repo.aim("status", "--refresh", "--json").stdout)["tools"]
    }
    assert (
        bare["codex"]["reason"] == "Codex requires login (run 'codex login', or set CODEX_API_KEY)"
    )
    assert bare["opencode"]["ready"] is False
    assert bare["opencode"]["reason"].startswith("opencode requires login")
