"""Verified work: a workstream's ``verify`` checks decide whether an edit counts.

Two script tools (``first``, ``second``: fake executables on PATH whose shell
body the test writes) are routed for code_generation; the checks run through
the real pytest and ruff plugins and programs, and commands through the
process runner. Nothing of aim's is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from aim_core.paths import RULES_RELPATH
from tests.verify_kit import CALC, RIGHT, WRONG, attempts, content, repairs_with_output, write


def test_wrong_edit_is_rolled_back_and_the_fallbacks_right_edit_kept(vrepo):
    vrepo.tool("first", write(WRONG))
    vrepo.tool("second", write(RIGHT))
    result = vrepo.run("run", str(vrepo.ws(capability_payload={"max_repairs": 0})))
    assert result.exit_code == 0, result.output
    assert (vrepo.root / "calc.py").read_text() == RIGHT
    first, second = attempts(vrepo)
    assert first["failure"] == "verify_failed"
    check = content(first)["verification"]["checks"][0]
    assert check == {**check, "kind": "tests", "tool_id": "pytest", "passed": False}
    assert "1 failed" in check["summary"]
    assert content(second)["verification"]["passed"] is True
    assert content(second)["repair"] == 0
    assert content(second)["strategy"] == "sequential"
    assert content(second)["diff"] == {"files": 1, "lines_added": 1, "lines_removed": 1}
    assert "verify_failed" in result.output or "failed its checks" in result.output


def test_a_repair_carries_the_failing_output_and_succeeds(vrepo):
    # the tool writes the right code only when its instruction holds pytest's output
    vrepo.tool("first", repairs_with_output())
    vrepo.tool("second", "exit 9")
    result = vrepo.run("run", str(vrepo.ws()))
    assert result.exit_code == 0, result.output
    assert (vrepo.root / "calc.py").read_text() == RIGHT
    recs = attempts(vrepo)
    assert [r["tool_id"] for r in recs] == ["first", "first"]
    assert [content(r)["repair"] for r in recs] == [0, 1]
    assert recs[0]["failure"] == "verify_failed"
    assert recs[1]["result"]["success"] is True


def test_max_repairs_zero_goes_straight_to_the_fallback_from_the_original_files(vrepo):
    vrepo.tool("first", write(WRONG))
    vrepo.tool("second", 'grep -q "return 0" calc.py\n' + write(RIGHT))
    result = vrepo.run("run", str(vrepo.ws(capability_payload={"max_repairs": 0})))
    assert result.exit_code == 0, result.output
    assert [r["tool_id"] for r in attempts(vrepo)] == ["first", "second"]


def test_every_tool_wrong_is_exit_1_and_the_file_untouched(vrepo):
    vrepo.tool("first", write(WRONG))
    vrepo.tool("second", write(WRONG))
    result = vrepo.run("run", str(vrepo.ws()))
    assert result.exit_code == 1
    assert (vrepo.root / "calc.py").read_text() == CALC
    # first, its repair, second, its repair
    assert [r["failure"] for r in attempts(vrepo)] == ["verify_failed"] * 4


def test_lint_and_command_checks(vrepo):
    vrepo.tool("first", write("import os\n" + RIGHT))  # F401: os imported but unused
    vrepo.tool("second", write(RIGHT))
    verify = {
        "lint": ["calc.py"],
        "commands": [["python", "-c", "import calc; assert calc.add(1, 1) == 2"]],
    }
    result = vrepo.run("run", str(vrepo.ws(verify=verify, capability_payload={"max_repairs": 0})))
    assert result.exit_code == 0, result.output
    first, second = attempts(vrepo)
    checks = content(first)["verification"]["checks"]
    assert [(c["kind"], c["passed"]) for c in checks] == [("lint", False), ("command", True)]
    assert "F401" in checks[0]["summary"]
    assert content(second)["verification"]["passed"] is True
    # the lint check fixed nothing: the failed edit was undone, then the right one kept
    assert (vrepo.root / "calc.py").read_text() == RIGHT


def test_a_failing_command_names_its_last_line(vrepo):
    vrepo.tool("first", write(RIGHT))
    vrepo.tool("second", "exit 9")
    verify = {"commands": [["python", "-c", "raise SystemExit('boom')"]]}
    result = vrepo.run("run", str(vrepo.ws(verify=verify, capability_payload={"max_repairs": 0})))
    assert result.exit_code == 1
    first = attempts(vrepo)[0]
    check = content(first)["verification"]["checks"][0]
    assert check["summary"] == "exit code 1: boom"
    assert (vrepo.root / "calc.py").read_text() == CALC


def test_what_changes_while_the_checks_run_is_named_and_never_undone(vrepo):
    """A check's own files and the user's edits meanwhile cannot be told apart: aim names
    them and leaves them (reverting would lose the user's work)."""
    vrepo.tool("first", write(RIGHT))
    script = (
        "import pathlib, time; pathlib.Path('junk.txt').write_text('check'); "
        "time.sleep(2); print('ok')"
    )
    path = vrepo.ws(verify={"commands": [["python", "-c", script]]})
    proc = subprocess.Popen(
        [sys.executable, "-m", "aim_core", "run", str(path)],
        cwd=vrepo.root,
        env=vrepo.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (vrepo.root / "junk.txt").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (vrepo.root / "other.py").write_text("x = 'my edit during the checks'\n")
    (vrepo.root / "notes.md").write_text("mine\n")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert (vrepo.root / "other.py").read_text() == "x = 'my edit during the checks'\n"
    assert (vrepo.root / "notes.md").read_text() == "mine\n"
    assert (vrepo.root / "calc.py").read_text() == RIGHT
    assert "While the checks ran, these changed outside the scope" in err
    assert "other.py" in err and "notes.md" in err


def test_a_check_that_cannot_run_stops_the_workstream(vrepo):
    """pytest's usage error ("not found") is the check's fault, not the edit's: no repair,
    no fallback spending more on a check nobody can pass."""
    vrepo.tool("first", write(RIGHT))
    vrepo.tool("second", "touch ran-second")
    path = vrepo.ws(verify={"tests": ["tests/test_calc.py::test_does_not_exist"]})
    result = vrepo.run("run", str(path))
    assert result.exit_code == 1, result.output
    (record,) = attempts(vrepo)
    assert record["failure"] == "verify_failed"
    assert "the checks could not judge the edit" in record["result"]["message"]
    assert content(record)["verification"]["checks"][0]["broken"] is True
    assert not (vrepo.root / "ran-second").exists()
    assert (vrepo.root / "calc.py").read_text() == CALC


def test_no_verify_behaves_as_before(vrepo):
    vrepo.tool("first", write(WRONG))
    data = {"id": "ws-plain", "capability": "code_generation", "files_scope": ["calc.py"]}
    result = vrepo.run("run", str(vrepo.workstream(**data)))
    assert result.exit_code == 0
    (record,) = attempts(vrepo)
    assert "verification" not in (content(record) or {})


@pytest.mark.parametrize(
    ("verify", "field", "words"),
    [
        ({"tests": ["tests/test_calc.py"], "bogus": ["x"]}, "verify.bogus", "unknown field"),
        ({"tests": ["../outside.py"]}, "verify.tests[0]", "leaves the repository"),
        ({"tests": ["/etc/passwd"]}, "verify.tests[0]", "absolute path"),
        ({"lint": [".env"]}, "verify.lint[0]", "forbidden path"),
        ({"tests": ["tests/test_nope.py"]}, "verify.tests[0]", "does not exist"),
        ({"tests": "tests/test_calc.py"}, "verify.tests", "expected a list"),
        ({"commands": ["python -V"]}, "verify.commands[0]", "argument list"),
        ({"commands": [["no-such-program-xyz"]]}, "verify.commands[0][0]", "not on PATH"),
    ],
)
def test_bad_verify_is_exit_2_naming_the_field(vrepo, verify, field, words):
    vrepo.tool("first", "touch ran-first")
    path = vrepo.ws(verify=verify)
    for command in ("validate", "run"):
        result = vrepo.run(command, str(path))
        assert result.exit_code == 2, (command, result.output)
        assert field in result.output and words in result.output, (command, result.output)
        assert "Traceback" not in result.output
    assert not (vrepo.root / "ran-first").exists()


def test_a_test_node_id_and_a_test_the_tool_creates(vrepo):
    vrepo.tool(
        "first",
        write(RIGHT) + "\nprintf 'def test_new():\\n    assert True\\n' > tests/test_new.py",
    )
    verify = {"tests": ["tests/test_calc.py::test_add", "tests/test_new.py"]}
    result = vrepo.run(
        "run",
        str(vrepo.ws(verify=verify, files_scope=["calc.py"], files_create=["tests/test_new.py"])),
    )
    assert result.exit_code == 0, result.output
    assert content(attempts(vrepo)[0])["verification"]["passed"] is True


def test_no_testing_tool_refuses_before_any_tool_runs(vrepo):
    vrepo.tool("first", "touch ran-first")
    rules_path = vrepo.registry / RULES_RELPATH
    rules = json.loads(rules_path.read_text())
    rules["capabilities"]["testing"] = {"primary": "nosuchtester", "fallback": []}
    rules_path.write_text(json.dumps(rules))
    result = vrepo.run("run", str(vrepo.ws()))
    assert result.exit_code == 3, result.output
    assert "verify.tests" in result.output and "testing" in result.output
    assert not (vrepo.root / "ran-first").exists()


# --------------------------------------------------------------------------- budgets


def test_a_first_attempt_over_the_limit_does_not_start_the_fallback(vrepo):
    vrepo.tool("first", "echo COST 0.75\nexit 1")
    vrepo.tool("second", "touch ran-second\n" + write(RIGHT))
    path = vrepo.ws(verify=None, capability_payload={"max_cost_usd": 0.5, "max_retries": 3})
    result = vrepo.run("run", str(path))
    assert result.exit_code == 1, result.output
    assert not (vrepo.root / "ran-second").exists()
    records = vrepo.audit_records()
    stop = records[-1]
    assert stop["failure"] == "budget_exceeded"
    assert content(stop)["budget"]["limit_usd"] == 0.5
    assert "Cost limit reached" in result.output and "max_cost_usd" in result.output
    assert [r["tool_id"] for r in attempts(vrepo)] == ["first"]  # no retry either


def test_the_run_limit_from_the_command_line_and_the_budget_given_to_the_tool(vrepo):
    vrepo.tool("first", 'echo "left=$BUDGET_LEFT"\necho COST 0.3\nexit 1')
    vrepo.tool("second", "touch ran-second")
    path = vrepo.ws(verify=None, capability_payload={"max_retries": 3})
    result = vrepo.run("run", "--max-cost", "0.5", str(path))
    assert result.exit_code == 1, result.output
    # first (0.5 left) spent 0.3, its retry (0.2 left) spent 0.3: then nothing more
    assert [r["tool_id"] for r in attempts(vrepo)] == ["first", "first"]
    assert not (vrepo.root / "ran-second").exists()
    assert "--max-cost" in vrepo.audit_records()[-1]["result"]["content"]["budget"]["source"]
    first, retry = attempts(vrepo)
    assert "left=0.5" in first["result"]["message"]
    assert "left=0.2" in retry["result"]["message"]


# --------------------------------------------------------------------------- the report


def test_report_and_query_separate_verified_from_unverified_success(vrepo):
    vrepo.tool("first", write(WRONG))
    vrepo.tool("second", write(RIGHT))
    assert vrepo.run("run", str(vrepo.ws(capability_payload={"max_repairs": 0}))).exit_code == 0
    plain = {"id": "ws-plain", "capability": "code_generation", "files_scope": ["other.py"]}
    vrepo.tool("first", "echo 'x = 2' > other.py")
    assert vrepo.run("run", str(vrepo.workstream(**plain))).exit_code == 0

    data = vrepo.run("audit", "report", "--json").json()
    assert data["runs"] == 2 and data["success_rate"] == 1.0
    assert data["runs_with_checks"] == 1
    assert data["verified_success_rate"] == 0.5
    assert data["unverified_success_rate"] == 0.5
    assert data["verified_pass_rate"] == 1.0
    assert data["avg_time_to_verified_sec"] > 0
    assert data["by_tool"]["first"]["verified_pass_rate"] == 0.0
    assert data["by_tool"]["second"]["verified_pass_rate"] == 1.0
    assert data["by_capability"]["code_generation"]["verified_pass_rate"] == 1.0
    text = vrepo.run("audit", "report").stdout
    assert "Verified work (1 runs had verify checks)" in text
    assert "Success rate" in text  # the guide's table is still there

    failed = vrepo.run("audit", "query", "--verification", "failed").stdout.splitlines()
    assert len(failed) == 1 and "first" in failed[0] and failed[0].endswith("success=false")
    passed = vrepo.run("audit", "query", "--verification", "passed", "--format", "csv").stdout
    header, row = passed.splitlines()
    assert header.endswith(",verified,repair") and row.split(",")[-2:] == ["true", "0"]
    unchecked = vrepo.run("audit", "query", "--verification", "unchecked").stdout.splitlines()
    assert len(unchecked) == 1 and "ws-plain" in unchecked[0]


def test_a_check_the_tool_may_rewrite_is_a_warning(vrepo):
    (vrepo.root / "check.sh").write_text("#!/bin/sh\nexit 0\n")
    path = vrepo.ws(
        files_scope=["calc.py", "tests/", "check.sh"],
        verify={
            "tests": ["tests/test_calc.py"],
            "lint": ["calc.py"],  # linting the edit is what lint is for: no warning
            "commands": [["sh", "check.sh"], ["/bin/sh", "-c", "true"]],
        },
    )
    result = vrepo.run("validate", str(path))
    assert result.exit_code == 0, result.output
    assert "verify.tests[0]" in result.output and "may change the check" in result.output
    assert "verify.commands[0][1]" in result.output
    assert "verify.lint" not in result.output and "verify.commands[1]" not in result.output
    strict = vrepo.run("validate", "--strict", str(path))
    assert strict.exit_code == 0  # a warning, not an unknown field


def test_the_dry_run_shows_the_checks_and_the_race(vrepo):
    vrepo.tool("first", "touch ran")
    path = vrepo.ws(race=2, verify={"tests": ["tests/test_calc.py"], "commands": [["true"]]})
    result = vrepo.run("run", "--dry-run", str(path))
    assert result.exit_code == 0, result.output
    assert "checks: tests tests/test_calc.py; command true" in result.stdout
    assert "race: the first 2 tools at once" in result.stdout
    assert not (vrepo.root / "ran").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "abc"])
def test_a_bad_max_cost_is_exit_2(vrepo, value):
    vrepo.tool("first", "touch ran")
    result = vrepo.run("run", "--max-cost", value, str(vrepo.ws()))
    assert result.exit_code == 2 and "--max-cost" in result.output
    assert not (vrepo.root / "ran").exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"max_cost_usd": 0}, "capability_payload.max_cost_usd"),
        ({"max_cost_usd": "1"}, "capability_payload.max_cost_usd"),
        ({"max_cost_usd": True}, "capability_payload.max_cost_usd"),
        ({"max_repairs": 6}, "capability_payload.max_repairs"),
        ({"max_repairs": -1}, "capability_payload.max_repairs"),
    ],
)
def test_bad_repairs_and_cost_limits_name_the_field(vrepo, payload, field):
    result = vrepo.run("validate", str(vrepo.ws(capability_payload=payload)))
    assert result.exit_code == 2 and field in result.output, result.output


@pytest.mark.parametrize("cost", ["nan", "-5", "inf"])
def test_a_cost_that_cannot_be_true_is_not_counted_and_not_recorded(vrepo, cost):
    """A NaN would switch the limit off (and is not JSON); a negative cost would give
    credit: neither is taken from the tool. (``inf`` is not finite either.)"""
    vrepo.tool("first", f"echo COST {cost}\nexit 1")
    vrepo.tool("second", "echo COST 0.75\nexit 1")
    path = vrepo.ws(verify=None, capability_payload={"max_cost_usd": 0.5, "max_retries": 0})
    result = vrepo.run("run", str(path))
    assert result.exit_code == 1, result.output
    records = vrepo.audit_records()  # every line is JSON
    first = next(r for r in records if r.get("tool_id") == "first")
    assert content(first).get("usage") is None
    # first's cost counted as nothing: the fallback still started
    assert [r["tool_id"] for r in attempts(vrepo)] == ["first", "second"]
    assert "nan" not in vrepo.run("audit", "report").stdout.lower()


PLANT = """
import importlib.util, pathlib, py_compile, sys
pathlib.Path("right_src.py").write_text({right!r})
target = importlib.util.cache_from_source("calc.py")
py_compile.compile("right_src.py", cfile=target, dfile="calc.py",
                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
pathlib.Path("right_src.py").unlink()
pathlib.Path("calc.py").write_text({wrong!r})
"""


def test_a_planted_bytecode_cannot_answer_for_the_source(vrepo):
    """The tool writes wrong source and, in the existing git-ignored __pycache__, the
    bytecode of right source (unchecked: Python would never compare it to the source).
    The checks read bytecode only from aim's own cache, so they see the wrong source."""
    (vrepo.root / ".gitignore").write_text("__pycache__/\n")
    (vrepo.root / "__pycache__").mkdir()
    subprocess.run(["git", "-C", str(vrepo.root), "add", ".gitignore"], check=True)
    subprocess.run(["git", "-C", str(vrepo.root), "commit", "-qm", "ignore"], check=True)
    script = vrepo.env.bin_dir / "plant.py"
    script.write_text(PLANT.format(right=RIGHT, wrong=WRONG))
    vrepo.tool("first", f'"{sys.executable}" "{script}"')
    vrepo.tool("second", "exit 9")
    result = vrepo.run("run", str(vrepo.ws(capability_payload={"max_repairs": 0})))
    assert result.exit_code == 1, result.output
    assert attempts(vrepo)[0]["failure"] == "verify_failed"


@pytest.mark.parametrize("target", ["tests", "tests/", "tests/test_link_*.py"])
def test_a_directory_or_glob_check_cannot_reach_outside_through_a_link(vrepo, target):
    outside = vrepo.root.parent / "outside_test.py"
    outside.write_text("def test_outside():\n    open('/tmp/never', 'w')\n")
    (vrepo.root / "tests" / "test_link_out.py").symlink_to(outside)
    vrepo.tool("first", "touch ran")
    result = vrepo.run("run", str(vrepo.ws(verify={"tests": [target]})))
    assert result.exit_code == 2, result.output
    assert "verify.tests[0]" in result.output and "test_link_out.py" in result.output
    assert not (vrepo.root / "ran").exists()


def test_an_edit_changed_while_its_checks_ran_is_neither_kept_as_verified_nor_undone(vrepo):
    """A check that edits the file in scope (or you, meanwhile): what passed is not what
    is there. The attempt fails, nothing of that file is undone, no other tool runs."""
    vrepo.tool("first", write(RIGHT))
    vrepo.tool("second", "touch ran-second")
    verify = {
        "tests": ["tests/test_calc.py"],
        "commands": [["/bin/sh", "-c", "echo '# appended by a check' >> calc.py"]],
    }
    result = vrepo.run("run", str(vrepo.ws(verify=verify)))
    assert result.exit_code == 1, result.output
    assert (vrepo.root / "calc.py").read_text() == RIGHT + "# appended by a check\n"
    (record,) = attempts(vrepo)
    assert record["failure"] == "verify_failed"
    scope = content(record)["verification"]["checks"][-1]
    assert scope["kind"] == "scope" and scope["broken"] is True
    assert "calc.py changed while the checks ran" in scope["summary"]
    assert not (vrepo.root / "ran-second").exists()
