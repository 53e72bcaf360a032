"""`aim run` through the first-party plugins: the real ruff and pytest, and the guide's
Step 1.5 with the aider and jules plugins driving fake executables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .test_run import ADD, GUIDE_LINES, WS, records

VENV_BIN = os.path.dirname(sys.executable)


def git_repo(repo):
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init"],
        cwd=repo,
        check=True,
    )


def workstream(repo, name, **fields):
    path = repo / "workstreams" / f"{name}.json"
    path.write_text(json.dumps({"id": name, **fields}))
    return f"workstreams/{name}.json"


def test_real_ruff_fixes_a_file_and_real_pytest_runs_tests(repo, aim, monkeypatch):
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    env = {"AIM_LOAD_PLUGINS": "ruff,pytest"}
    (repo / "src").mkdir()
    (repo / "src" / "calc.py").write_text("import os\n\n\ndef add(a, b):\n    return a + b\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_calc.py").write_text(
        "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent / 'src'))\n"
        "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    )
    git_repo(repo)
    lint = workstream(
        repo,
        "ws-lint",
        capability="linting",
        files_scope=["src/calc.py"],
        capability_payload={"max_retries": 0},
    )
    r = aim("run", lint, cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert "[INFO] Linting completed (attempt 1)" in r.stderr
    assert "import os" not in (repo / "src" / "calc.py").read_text()

    tests = workstream(
        repo,
        "ws-tests",
        capability="testing",
        files_scope=["tests/test_calc.py"],
        capability_payload={"max_retries": 0},
    )
    r = aim("run", tests, cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert "[INFO] Testing completed (attempt 1)" in r.stderr
    # nothing the tools leave behind (caches) counts as a change outside the scope
    assert [x["failure"] for x in records(repo)] == [None, None]

    (repo / "tests" / "test_calc.py").write_text(
        (repo / "tests" / "test_calc.py").read_text().replace("== 3", "== 4")
    )
    r = aim("run", tests, cwd=repo, env=env)
    assert r.returncode == 1
    assert records(repo)[-1]["failure"] == "work_failed"
    assert "1 failed" in records(repo)[-1]["result"]["message"]


def test_guide_step_1_5_with_the_first_party_plugins(repo, aim, fake):
    fake("jules", version_output="jules v0.1.42")  # installed, never logged in
    aider = fake(
        "aider",
        version_output="aider 0.86.2",
        stdout="Applied edit to tests/staging_test_file.py\n",
        writes={"tests/staging_test_file.py": ADD},
    )
    env = {"AIM_LOAD_PLUGINS": "aider,jules,claude", "OPENAI_API_KEY": "sk-test-not-a-real-one"}
    r = aim("run", WS, cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("[")] == GUIDE_LINES
    argv = aider.work_calls[0]["argv"]
    assert "--no-auto-commits" in argv and "--yes-always" in argv
    [record] = records(repo)
    assert record["tool_id"] == "aider"
    assert record["result"]["content"]["files_created"] == ["tests/staging_test_file.py"]
    assert "sk-test-not-a-real-one" not in json.dumps(record)
    assert not list(repo.glob(".aider*"))
