"""The deployment guide's Phase 1 (Steps 1.4 to 1.6) with the real programs.

jules is installed but cannot work (the npm package's launcher cannot fetch its
program offline), aim says so, falls back to aider -- the workstream's own tool --
and the real aider writes ``tests/staging_test_file.py`` from the stub LLM's answer.
"""

from __future__ import annotations

import re
import stat
import sys

import pytest

from tests.e2e.conftest import GUIDE_WS
from tests.e2e.stub_llm import aider_whole

ADD = '''def add(a, b):
    """Return the sum of a and b; TypeError for non-numbers."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        raise TypeError("add() takes numbers")
    return a + b
'''
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def guide_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[")]


def assert_guide_outcome(repo, r, head_before: str) -> None:
    assert r.returncode == 0, r.stdout + r.stderr
    target = repo.root / "tests" / "staging_test_file.py"
    assert target.read_text() == ADD

    # the audit record of Step 1.6, field by field
    (record,) = repo.records()
    assert TIMESTAMP.match(record["timestamp"])
    assert record["actor"] == "pipeline"
    assert record["tool_id"] == "aider"
    assert record["capability"] == "code_generation"
    assert record["payload"] == {
        "prompt": "Create a simple add(a, b) function with error handling and docstring",
        "files": ["tests/staging_test_file.py"],
        "timeout_ms": 60000,
    }
    assert record["result"]["success"] is True
    assert record["result"]["message"] == "Code generation completed (attempt 1)"
    content = record["result"]["content"]
    assert content["files_modified"] == []
    assert content["files_created"] == ["tests/staging_test_file.py"]
    assert content["exit_code"] == 0
    assert [s["tool_id"] for s in content["skipped"]] == ["jules"]

    # what the real aider leaves behind: the new file, nothing else, no commit
    assert repo.aider_leftovers() == []
    assert repo.git("status", "--porcelain", "--untracked-files=all") == (
        "?? tests/staging_test_file.py\n"
    )
    assert repo.git("rev-parse", "HEAD") == head_before
    (request,) = repo.stub.seen("openai")  # one model call, streamed, for the stub model
    assert request.streaming and request.body["model"] == "stub-model"
    assert request.headers.get("Authorization") == "Bearer sk-stub-openai"


@pytest.mark.parametrize("endpoint", ["config", "environment"])
def test_phase1_jules_not_working_falls_back_to_the_real_aider(e2e_repo, endpoint):
    repo = e2e_repo
    if endpoint == "environment":  # OPENAI_API_BASE instead of tools.aider.base_url
        options = repo.aider_options()
        del options["base_url"]
        repo.configure(aider=options)
        repo.env["OPENAI_API_BASE"] = repo.stub.openai_base
        repo.commit("the model's endpoint from the environment")
    repo.stub.reply = aider_whole(ADD)
    head = repo.git("rev-parse", "HEAD")

    r = repo.aim("run", GUIDE_WS)

    assert guide_lines(r.stderr) == [
        "[INFO] Executing capability 'code_generation' via AIM",
        "[INFO] AIM routing to primary tool: jules",
        "[WARNING] jules is installed but its program could not be fetched or started "
        "('Failed to start jules binary'); it downloads from storage.googleapis.com on "
        "first use: allow that, or reinstall @google/jules",
        "[INFO] Falling back to direct tool invocation: aider",
        "[INFO] Code generation completed (attempt 1)",
    ]
    assert_guide_outcome(repo, r, head)
    (skip,) = repo.records()[0]["result"]["content"]["skipped"]
    assert skip["failure"] == "unavailable"  # installed but not working: not "logged out"


FAKE_JULES = """#!{python}
import sys
if sys.argv[1:] == ["version"]:
    print("jules v0.1.42")
    sys.exit(0)
sys.stderr.write("Trying to make a GET request without a valid client (did you forget to login?)\\n")
sys.exit(1)
"""


def test_phase1_with_a_jules_that_needs_login_prints_the_guides_warning(e2e_repo, tmp_path):
    repo = e2e_repo
    fake = tmp_path / "fake-jules" / "jules"
    fake.parent.mkdir()
    fake.write_text(FAKE_JULES.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    repo.extra_path = [fake.parent]  # before the real (offline) jules
    repo.stub.reply = aider_whole(ADD)
    head = repo.git("rev-parse", "HEAD")

    r = repo.aim("run", GUIDE_WS)

    assert guide_lines(r.stderr) == [
        "[INFO] Executing capability 'code_generation' via AIM",
        "[INFO] AIM routing to primary tool: jules",
        "[WARNING] Jules requires login (run 'jules login')",
        "[INFO] Falling back to direct tool invocation: aider",
        "[INFO] Code generation completed (attempt 1)",
    ]
    assert_guide_outcome(repo, r, head)
    (skip,) = repo.records()[0]["result"]["content"]["skipped"]
    assert skip == {
        "tool_id": "jules",
        "failure": "auth_required",
        "reason": "Jules requires login (run 'jules login')",
    }
