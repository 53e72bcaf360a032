"""The real claude edits only the files in scope: the permissions aim passes it
(``--permission-mode dontAsk`` with one ``Edit(...)`` rule per file) make claude
itself refuse a write elsewhere -- the stub LLM gets the refusal back as the tool's
result -- instead of aim having to revert it afterwards."""

from __future__ import annotations

from tests.e2e.stub_llm import tool_result_text, tool_use

TARGET = "src/calc.py"
BEFORE = "def add(a, b):\n    return a + b\n"
AFTER = "def add(a, b):\n    return float(a) + float(b)\n"


def setup_repo(repo):
    (repo.root / "src").mkdir()
    (repo.root / TARGET).write_text(BEFORE)
    ws = repo.workstream(
        "ws-claude-scope",
        capability="refactoring",
        tool="claude-cli",
        files_scope=[TARGET],
        capability_payload={"prompt": "Make add() work on floats", "max_retries": 0},
    )
    repo.commit("calc")
    return ws


def test_a_write_outside_the_scope_is_denied_by_claude_itself(e2e_repo):
    repo = e2e_repo
    ws = setup_repo(repo)
    target = str((repo.root / TARGET).resolve())
    elsewhere = str((repo.root / "README.md").resolve())
    touched = str((repo.root / "touched.txt").resolve())
    repo.stub.script = [
        [tool_use("Read", file_path=target)],
        [tool_use("Edit", file_path=target, old_string="a + b", new_string="float(a) + float(b)")],
        [tool_use("Write", file_path=elsewhere, content="# pwned\n")],
        [tool_use("Bash", command=f"touch {touched}", description="touch a file")],
    ]

    r = repo.aim("run", ws, tools=("claude",))

    assert r.returncode == 0, r.stdout + r.stderr
    assert (repo.root / TARGET).read_text() == AFTER
    assert not (repo.root / "README.md").exists()
    assert not (repo.root / "touched.txt").exists()
    results = repo.stub.tool_results
    assert [bool(t.get("is_error")) for t in results] == [False, False, True, True]
    assert "don't ask mode" in tool_result_text(results[2])  # the Write, refused by claude
    # nothing had to be reverted: the attempt is a success, not "out_of_scope"
    (record,) = repo.records()
    assert (record["tool_id"], record["failure"]) == ("claude-cli", None)
    assert record["result"]["message"] == "Refactoring completed (attempt 1)"
    assert record["result"]["content"]["files_modified"] == [TARGET]
    log = repo.run_log()
    # the tool's lines, marked as the tool's in the run log
    assert f"| --- permission denials ---\n| Write {elsewhere}\n| Bash touch {touched}" in log
    assert repo.git("status", "--porcelain", "--untracked-files=all") == f" M {TARGET}\n"


def test_when_every_write_is_denied_the_message_names_them(e2e_repo):
    repo = e2e_repo
    ws = setup_repo(repo)
    elsewhere = str((repo.root / "other.py").resolve())
    repo.stub.script = [[tool_use("Write", file_path=elsewhere, content="x = 1\n")]]

    r = repo.aim("run", ws, tools=("claude",))

    assert r.returncode == 1, r.stdout + r.stderr
    (record,) = repo.records()
    assert (record["tool_id"], record["failure"]) == ("claude-cli", "tool_error")
    assert record["result"]["message"] == (
        f"claude made no change to the files in scope; denied: Write {elsewhere}"
    )
    assert not (repo.root / "other.py").exists()
    assert (repo.root / TARGET).read_text() == BEFORE
