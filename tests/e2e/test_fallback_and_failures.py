"""The real aider and claude against the stub's failures: fallback from one to the
other, aider's diff edit format, a hanging provider cut by aim's timeout, rate limits
retried, and how claude's errors are classified."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import psutil
import pytest

from tests.e2e.conftest import GUIDE_WS, wait_for
from tests.e2e.stub_llm import aider_search_replace, aider_whole, tool_result_text, tool_use

ADD = '''def add(a, b):
    """Return the sum of a and b."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        raise TypeError("add() takes numbers")
    return a + b
'''
TARGET = "tests/staging_test_file.py"


def lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[")]


def outcome(records: list[dict]) -> list[tuple]:
    return [(r["tool_id"], r["attempt"], r["failure"], r["result"]["success"]) for r in records]


def test_aider_401_is_auth_required_and_claude_writes_the_file_with_tool_use_turns(e2e_repo):
    repo = e2e_repo
    repo.stub.set_mode("401", api="openai")
    target = (repo.root / TARGET).resolve()
    repo.stub.script = [
        [tool_use("Read", file_path=str((repo.root / "config" / "aim_config.yaml").resolve()))],
        [tool_use("Write", file_path=str(target), content=ADD)],
    ]

    r = repo.aim("run", GUIDE_WS)

    assert r.returncode == 0, r.stdout + r.stderr
    assert target.read_text() == ADD
    assert outcome(repo.records()) == [
        ("aider", 1, "auth_required", False),  # not retried: the key is wrong
        ("claude-cli", 1, None, True),
    ]
    assert lines(r.stderr)[-4:] == [
        "[INFO] Falling back to direct tool invocation: aider",
        "[WARNING] aider failed (attempt 1): AuthenticationError: The API provider is not "
        "able to authenticate you. Check your API key.",
        "[INFO] Falling back to tool: claude-cli",
        "[INFO] Code generation completed (attempt 1)",
    ]
    final = repo.records()[-1]["result"]
    assert final["message"] == "Code generation completed (attempt 1)"
    assert final["content"]["files_created"] == [TARGET]
    # claude really went through the turns: Read, then Write, then its final answer
    assert [bool(t.get("is_error")) for t in repo.stub.tool_results] == [False, False]
    assert "File created successfully" in tool_result_text(repo.stub.tool_results[1])
    calls = repo.stub.seen("anthropic")
    assert len(calls) == 3 and all(c.streaming and c.offers_tools for c in calls)
    assert calls[0].headers.get("x-api-key") == "sk-ant-stub"
    assert repo.aider_leftovers() == []
    assert repo.git("status", "--porcelain", "--untracked-files=all") == f"?? {TARGET}\n"


def test_refactoring_with_aiders_diff_edit_format_on_an_existing_file(e2e_repo):
    repo = e2e_repo
    (repo.root / TARGET).parent.mkdir()
    (repo.root / TARGET).write_text(ADD)
    # diff edit format, and the stub's answer as one JSON body (not streamed) this time
    repo.configure(aider=repo.aider_options("--no-stream", edit_format="diff"))
    refactored = (
        "def _check_number(value):\n"
        "    if not isinstance(value, (int, float)):\n"
        '        raise TypeError("add() takes numbers")\n'
        "\n"
        "\n"
        + ADD.replace(
            "    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):\n"
            '        raise TypeError("add() takes numbers")\n',
            "    _check_number(a)\n    _check_number(b)\n",
        )
    )
    repo.stub.reply = aider_search_replace(ADD, refactored)

    ws = repo.workstream(
        "ws-refactor",
        capability="refactoring",
        tool="aider",
        files_scope=[TARGET],
        capability_payload={
            "prompt": "Move the numeric type check of add() into a helper _check_number(value)",
            "timeout_ms": 60000,
            "max_retries": 0,
        },
    )
    repo.commit("add() and a refactoring workstream")
    r = repo.aim("run", ws)

    assert r.returncode == 0, r.stdout + r.stderr
    assert (repo.root / TARGET).read_text() == refactored
    assert lines(r.stderr) == [
        "[INFO] Executing capability 'refactoring' via AIM",
        "[INFO] AIM routing to primary tool: aider",
        "[INFO] Refactoring completed (attempt 1)",
    ]
    (record,) = repo.records()
    assert record["result"]["content"]["files_modified"] == [TARGET]
    (request,) = repo.stub.seen("openai")
    assert not request.streaming
    system = request.body["messages"][0]["content"]
    assert "SEARCH/REPLACE" in system  # aider asked for its diff format
    assert repo.git("status", "--porcelain") == f" M {TARGET}\n"
    assert repo.aider_leftovers() == []


def _watch_tree(pid: int, seen: dict[int, tuple], stop: threading.Event) -> None:
    """Record every descendant of the ``aim`` command ``pid`` (start time, command
    line) until ``stop``: of ``pid`` itself, and of the run server's worker when the
    command is served (aim_core/resident.py; one command at a time in these tests)."""
    from aim_core.resident_client import servers

    try:
        roots = [psutil.Process(pid)]
    except psutil.Error:
        return
    where = os.environ["AIM_RESIDENT_DIR"]
    while not stop.is_set():
        children = []
        for root in [*roots, *_processes(servers(where).values())]:
            with contextlib.suppress(psutil.Error):
                children += root.children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.Error):
                if "aim_core.resident" in " ".join(child.cmdline()):
                    continue  # aim's run server, started by a command: not a tool's
            if child.pid not in seen:
                with contextlib.suppress(psutil.Error):
                    seen[child.pid] = (child.create_time(), " ".join(child.cmdline()))
        time.sleep(0.02)


def _processes(pids) -> list[psutil.Process]:
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            out.append(psutil.Process(pid))
    return out


def _alive(pid: int, started: float) -> bool:
    try:
        p = psutil.Process(pid)
        return p.create_time() == started and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_hanging_provider_is_cut_by_aims_timeout_and_no_process_is_left(e2e_repo):
    repo = e2e_repo
    repo.stub.set_mode("hang", api="openai")
    # aider needs 3-6 s to reach the model on a busy 2-core machine: the limit leaves
    # it time to be hanging on the stub when aim cuts it
    timeout_s = 12.0
    ws = repo.workstream(
        "ws-hang",
        capability="code_generation",
        tool="aider",
        files_scope=[TARGET],
        files_create=[TARGET],
        capability_payload={
            "prompt": "Create add(a, b)",
            "timeout_ms": int(timeout_s * 1000),
            "max_retries": 0,
        },
    )

    seen: dict[int, tuple] = {}
    stop = threading.Event()
    began = time.monotonic()
    proc = repo.popen("run", ws, tools=("aider", "jules"))
    watcher = threading.Thread(target=_watch_tree, args=(proc.pid, seen, stop), daemon=True)
    watcher.start()
    out, err = proc.communicate(timeout=120)
    wall = time.monotonic() - began
    stop.set()
    watcher.join()

    assert proc.returncode == 1, out + err
    (record,) = repo.records()
    assert (record["tool_id"], record["failure"]) == ("aider", "timeout")
    assert record["result"]["message"].startswith("aider did not finish in time (stopped after 12")
    # the attempt ended within a second or two of its limit, aider's tree with it
    assert timeout_s <= record["result"]["content"]["duration_sec"] < timeout_s + 2.0
    assert wall < timeout_s + 8.0
    hung = repo.stub.seen("openai")
    assert hung and all(h.mode == "hang" for h in hung)  # aider was waiting on the stub
    assert any("aider" in cmdline for _, cmdline in seen.values()), seen
    left = [(pid, cmd) for pid, (started, cmd) in seen.items() if _alive(pid, started)]
    assert left == [], f"processes left behind: {left}"
    assert not (repo.root / TARGET).exists()  # aider's empty file was restored away
    assert repo.aider_leftovers() == []


def test_429_is_rate_limited_and_retried_as_configured(e2e_repo):
    repo = e2e_repo
    repo.stub.set_mode("429", api="openai")
    repo.stub.reply = aider_whole(ADD)
    ws = repo.workstream(
        "ws-rate",
        capability="code_generation",
        tool="aider",
        files_scope=[TARGET],
        files_create=[TARGET],
        # aider needs 3-6 s to start on a busy 2-core machine, and the retry must finish
        capability_payload={"prompt": "Create add(a, b)", "timeout_ms": 12000, "max_retries": 1},
    )

    proc = repo.popen("run", ws, tools=("aider", "jules"))
    # While aider backs off on its own, aim's time limit ends the attempt; once that
    # attempt is recorded, the provider recovers for the retry.
    first = wait_for(repo.records, timeout=60)
    repo.stub.set_mode("ok", api="openai")
    out, err = proc.communicate(timeout=120)

    assert first and first[0]["failure"] == "rate_limited", first
    assert proc.returncode == 0, out + err
    assert outcome(repo.records()) == [
        ("aider", 1, "rate_limited", False),
        ("aider", 2, None, True),
    ]
    assert repo.records()[0]["result"]["message"] == (
        "RateLimitError: The API provider has rate limited you. Try again later or check "
        "your quotas."
    )
    assert repo.records()[1]["result"]["message"] == "Code generation completed (attempt 2)"
    assert "[INFO] Retrying aider in 1 s" in lines(err)  # the provider's "try again in 1s"
    limited = [r for r in repo.stub.seen("openai") if r.mode == "429"]
    assert len(limited) >= 2  # aider's own retries, until aim's limit
    assert (repo.root / TARGET).read_text() == ADD


@pytest.mark.parametrize(
    ("mode", "failure", "said"),
    [
        ("401", "auth_required", "Invalid API key"),
        ("429", "rate_limited", "429"),
        ("500", "tool_error", "500"),
        ("down", "tool_error", ""),
    ],
    ids=["401", "429", "500", "down"],
)
def test_claudes_errors_are_classified(e2e_repo, mode, failure, said):
    repo = e2e_repo
    repo.stub.set_mode(mode, api=None if mode == "down" else "anthropic")
    ws = repo.workstream(
        "ws-claude",
        capability="code_generation",
        tool="claude-cli",
        files_scope=[TARGET],
        files_create=[TARGET],
        capability_payload={"prompt": "Create add(a, b)", "timeout_ms": 60000, "max_retries": 0},
    )

    r = repo.aim("run", ws, tools=("claude",))

    assert r.returncode == 1, r.stdout + r.stderr
    (record,) = repo.records()
    assert (record["tool_id"], record["failure"]) == ("claude-cli", failure)
    assert said in record["result"]["message"]
    assert record["result"]["content"]["duration_sec"] < 30  # claude's own retries are off
    if mode != "down":
        assert len(repo.stub.seen("anthropic")) == 1  # one request: aim does the retrying
    assert not (repo.root / TARGET).exists()
