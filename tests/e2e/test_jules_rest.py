"""The jules plugin's REST mode end to end: ``aim run`` with ``JULES_API_KEY`` against
the Jules API stub -- a session created for the repository's GitHub origin, its
activities polled, its patch applied with ``git apply``, the scope enforced."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import GUIDE_WS
from tests.e2e.stub_jules import StubJules
from tests.e2e.stub_llm import aider_whole

ADD = '''def add(a, b):
    """Return the sum of a and b."""
    return a + b
'''
TARGET = "tests/staging_test_file.py"
LOGIN = "Jules requires login (run 'jules login')"


@pytest.fixture
def jules_api():
    with StubJules() as stub:
        stub.repos["acme/widgets"] = "main"
        yield stub


@pytest.fixture
def repo(e2e_repo, jules_api):
    e2e_repo.git("remote", "add", "origin", "git@github.com:acme/widgets.git")
    e2e_repo.env["JULES_API_KEY"] = jules_api.api_key
    e2e_repo.env["JULES_API_BASE"] = jules_api.base_url
    e2e_repo.configure(aider=e2e_repo.aider_options(), jules={"poll_interval_s": 0.1})
    e2e_repo.commit("poll Jules quickly")
    return e2e_repo


def patch_for(repo, files: dict[str, str]) -> str:
    """The unified diff (as ``git diff`` writes it) that turns the repository's files
    into ``files``; the working tree is left as it was."""
    new = [f for f in files if not (repo.root / f).exists()]
    old = {f: (repo.root / f).read_text() for f in files if f not in new}
    for name, text in files.items():
        (repo.root / name).parent.mkdir(parents=True, exist_ok=True)
        (repo.root / name).write_text(text)
    repo.git("add", "--intent-to-add", *new)
    patch = repo.git("diff")
    repo.git("reset", "-q", "--", *new)
    for name in new:
        (repo.root / name).unlink()
    for name, text in old.items():
        (repo.root / name).write_text(text)
    assert repo.git("status", "--porcelain") == ""
    return patch


def lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[")]


def test_a_session_is_created_polled_and_its_patch_applied(repo, jules_api):
    jules_api.patch = patch_for(repo, {TARGET: ADD})
    head = repo.git("rev-parse", "HEAD")

    r = repo.aim("run", GUIDE_WS)

    assert r.returncode == 0, r.stdout + r.stderr
    assert lines(r.stderr) == [
        "[INFO] Executing capability 'code_generation' via AIM",
        "[INFO] AIM routing to primary tool: jules",
        "[INFO] Code generation completed (attempt 1)",
    ]
    assert (repo.root / TARGET).read_text() == ADD
    (record,) = repo.records()
    assert record["tool_id"] == "jules" and record["result"]["success"] is True
    assert record["result"]["content"]["files_created"] == [TARGET]

    # what the API saw: the repository's source, one session, polled until completed
    assert [(q.method, q.path) for q in jules_api.requests[:2]] == [
        ("GET", "sources/github/acme/widgets"),
        ("POST", "sessions"),
    ]
    body = jules_api.requests[1].body
    assert body["sourceContext"] == {
        "source": "sources/github/acme/widgets",
        "githubRepoContext": {"startingBranch": "main"},
    }
    assert body["prompt"].startswith(
        "Create a simple add(a, b) function with error handling and docstring"
    )
    assert f"- {TARGET}" in body["prompt"] and body["requirePlanApproval"] is False
    (sid,) = jules_api.sessions
    assert jules_api.sessions[sid].state == "COMPLETED"
    polls = jules_api.seen("GET", f"sessions/{sid}/activities")
    assert len(polls) == len(jules_api.states) - 1  # until the activities say completed
    assert {q.api_key for q in jules_api.requests} == {jules_api.api_key}
    # applied to the working tree only: no commit, nothing staged
    assert repo.git("status", "--porcelain", "--untracked-files=all") == f"?? {TARGET}\n"
    assert repo.git("rev-parse", "HEAD") == head
    assert jules_api.api_key not in repo.run_log()


def test_a_patch_outside_the_scope_is_refused_and_nothing_is_applied(repo, jules_api):
    gitignore = (repo.root / ".gitignore").read_text()
    jules_api.patch = patch_for(repo, {TARGET: ADD, ".gitignore": gitignore + "*.log\n"})
    # the base URL from the config this time (it wins over JULES_API_BASE)
    repo.env["JULES_API_BASE"] = "http://127.0.0.1:9/v1alpha"
    repo.configure(
        aider=repo.aider_options(),
        jules={"poll_interval_s": 0.1, "base_url": jules_api.base_url},
    )
    repo.commit("the Jules API's URL in the config")

    r = repo.aim("run", GUIDE_WS, tools=())  # no aider or claude to fall back to

    assert r.returncode == 1, r.stdout + r.stderr
    (record,) = repo.records()
    assert (record["tool_id"], record["failure"]) == ("jules", "out_of_scope")
    assert record["result"]["message"] == (
        "jules' patch changes files outside the scope (.gitignore); not applied"
    )
    assert (repo.root / ".gitignore").read_text() == gitignore
    assert not (repo.root / TARGET).exists()
    assert repo.git("status", "--porcelain", "--untracked-files=all") == ""
    assert len(jules_api.seen("POST", "sessions")) == 1


def test_a_refused_key_is_the_guides_login_warning_and_aider_takes_over(repo, jules_api):
    jules_api.mode = "no_credentials"
    repo.stub.reply = aider_whole(ADD)

    r = repo.aim("run", GUIDE_WS)

    assert r.returncode == 0, r.stdout + r.stderr
    records = repo.records()
    assert [(x["tool_id"], x["failure"]) for x in records] == [
        ("jules", "auth_required"),
        ("aider", None),
    ]
    said = records[0]["result"]["message"]
    assert said == f"{LOGIN}; the Jules API refused the key in JULES_API_KEY (401 UNAUTHENTICATED)"
    assert f"[WARNING] jules failed (attempt 1): {said}" in lines(r.stderr)
    assert "[INFO] Falling back to direct tool invocation: aider" in lines(r.stderr)
    assert (repo.root / TARGET).read_text() == ADD
    assert jules_api.seen("POST", "sessions") == []  # refused at the first request
