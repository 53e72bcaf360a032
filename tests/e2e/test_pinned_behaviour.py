"""What the plugins pin with the tools' own flags, seen with the real programs.

aider, given a prompt that mentions a URL, neither fetches the page nor installs
Playwright (``--no-detect-urls --disable-playwright``; ``--yes-always`` would say yes
to both). claude, whose user asks for verbose output and has hooks, still gives aim
its one result object and runs no hook (``--settings``); and when verbose output is
asked for on the command line, the array and stream-json forms are read all the same.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.stub_llm import aider_whole, tool_use

TARGET = "src/calc.py"
BEFORE = "def add(a, b):\n    return a + b\n"
AFTER = "def add(a, b):\n    return float(a) + float(b)\n"


def calc_workstream(repo, tool: str, prompt: str) -> str:
    (repo.root / "src").mkdir()
    (repo.root / TARGET).write_text(BEFORE)
    ws = repo.workstream(
        f"ws-{tool}",
        capability="refactoring",
        tool=tool,
        files_scope=[TARGET],
        capability_payload={"prompt": prompt, "max_retries": 0, "timeout_ms": 120000},
    )
    repo.commit("calc")
    return ws


def url_workstream(repo):
    page = f"{repo.stub.url}/guides/floats.html"  # the stub records any GET of it
    ws = calc_workstream(repo, "aider", f"Make add() work on floats, as {page} explains")
    repo.stub.reply = aider_whole(AFTER)
    return ws, page


def test_aider_neither_fetches_a_url_of_the_prompt_nor_installs_playwright(e2e_repo):
    repo = e2e_repo
    ws, page = url_workstream(repo)

    r = repo.aim("run", ws, tools=("aider",))

    assert r.returncode == 0, r.stdout + r.stderr
    assert (repo.root / TARGET).read_text() == AFTER
    assert repo.stub.seen(method="GET") == []  # the page was never fetched
    (request,) = repo.stub.seen("openai")  # one model call; the URL stays text in it
    assert page in json.dumps(request.body["messages"])
    log = repo.run_log()
    assert "Add URL to the chat?" not in log and "Install playwright?" not in log
    assert repo.git("status", "--porcelain", "--untracked-files=all") == f" M {TARGET}\n"


def test_control_aider_with_url_detection_on_fetches_the_page(e2e_repo):
    # what the flag prevents: with --detect-urls in the configured args (they come after
    # aim's flags), --yes-always adds the page (still no Playwright: aim's flag stays)
    repo = e2e_repo
    repo.configure(aider=repo.aider_options("--detect-urls"))
    ws, _ = url_workstream(repo)

    repo.aim("run", ws, tools=("aider",))

    assert [q.path for q in repo.stub.seen(method="GET")] == ["/guides/floats.html"]


def claude_script(repo) -> None:
    target = str((repo.root / TARGET).resolve())
    repo.stub.script = [
        [tool_use("Read", file_path=target)],
        [tool_use("Edit", file_path=target, old_string="a + b", new_string="float(a) + float(b)")],
    ]


def test_claude_with_the_users_verbose_view_and_hooks_gives_one_result_and_runs_no_hook(
    e2e_repo,
):
    repo = e2e_repo
    ws = calc_workstream(repo, "claude-cli", "Make add() work on floats")
    claude_script(repo)
    marker = repo.home / "hook-ran"
    hook = [{"hooks": [{"type": "command", "command": f"touch {marker}"}]}]
    settings = {"viewMode": "verbose", "hooks": {"UserPromptSubmit": hook, "Stop": hook}}
    (repo.home / ".claude").mkdir(exist_ok=True)
    (repo.home / ".claude" / "settings.json").write_text(json.dumps(settings))

    r = repo.aim("run", ws, tools=("claude",))

    assert r.returncode == 0, r.stdout + r.stderr
    (record,) = repo.records()
    assert (record["tool_id"], record["failure"]) == ("claude-cli", None)
    assert (repo.root / TARGET).read_text() == AFTER
    assert not marker.exists()
    log = repo.run_log()
    assert '"type":"result"' in log and '[{"type":"system"' not in log


@pytest.mark.parametrize(
    "args",
    [["--verbose"], ["--output-format", "stream-json", "--verbose"]],
    ids=["array", "stream-json"],
)
def test_claudes_other_output_forms_are_read(e2e_repo, args):
    repo = e2e_repo
    ws = calc_workstream(repo, "claude-cli", "Make add() work on floats")
    repo.configure(**{"claude-cli": {"args": args}})
    repo.commit("claude args")
    claude_script(repo)

    r = repo.aim("run", ws, tools=("claude",))

    assert r.returncode == 0, r.stdout + r.stderr
    (record,) = repo.records()
    assert (record["tool_id"], record["failure"]) == ("claude-cli", None)
    assert record["result"]["content"]["files_modified"] == [TARGET]
    assert (repo.root / TARGET).read_text() == AFTER
    assert '{"type":"system","subtype":"init"' in repo.run_log()
