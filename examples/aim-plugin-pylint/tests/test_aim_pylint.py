"""aim_pylint's hooks, through the real `aim` command and the real `pylint`.

Only the plugin authors' kit is used: ``aim_project`` (a repository made by
``aim init``, HOME and AIM_* isolated), ``fake_tool`` for the cases the real
pylint can't be made to show, and ``AimResult``'s assertions.
"""

from __future__ import annotations

import os
import shutil
import sys

import aim_pylint
import pytest

CLEAN = '"""Arithmetic."""\n\n\ndef add(a, b):\n    """Return a + b."""\n    return a + b\n'
BROKEN = (
    '"""Arithmetic."""\n\nimport os\n\n\n'
    'def add(a, b):\n    """Return a + b."""\n    return a + b + c\n'
)


def installed_pylint():
    """The real pylint: on PATH, or beside this Python (its virtual environment)."""
    return shutil.which("pylint") or shutil.which("pylint", path=os.path.dirname(sys.executable))


@pytest.fixture
def real_pylint(aim_test_env):
    """The real pylint, linked into the fake tools' bin directory (first on PATH)."""
    found = installed_pylint()
    if found is None:
        pytest.skip("pylint is not installed (pip install pylint)")
    (aim_test_env.bin_dir / "pylint").symlink_to(found)
    return found


def lint_workstream(project, *files, **payload):
    return project.workstream(
        id="ws-lint",
        tool="pylint",  # direct invocation: this test is about pylint, not the routing
        files_scope=list(files),
        capability_payload={"timeout_ms": 120000, **payload},
    )


def test_status_lists_pylint_with_its_plugin_and_version(aim_project, real_pylint):
    project = aim_project(plugins=[aim_pylint])
    status = project.run("status", "--json").assert_success().json()
    [tool] = [t for t in status["tools"] if t["tool_id"] == "pylint"]
    assert tool["plugin"] == "pylint" and tool["detected"] is True
    assert tool["version"].startswith("pylint ") and tool["capabilities"] == ["linting"]
    assert status["routing"]["linting"] == {"primary": "ruff", "fallback": ["pylint"]}
    project.run("status").fnmatch_lines(["pylint *Yes*pylint *"])


def test_clean_file_is_a_success(aim_project, real_pylint):
    project = aim_project(files={"src/calc.py": CLEAN}, plugins=[aim_pylint])
    result = project.run("run", lint_workstream(project, "src/calc.py"))
    result.assert_success()
    [record] = project.audit_records()
    assert record["tool_id"] == "pylint" and record["result"]["success"] is True
    assert project.read("src/calc.py") == CLEAN


def test_remaining_messages_are_work_failed_and_listed(aim_project, real_pylint):
    project = aim_project(files={"src/calc.py": BROKEN}, plugins=[aim_pylint])
    result = project.run("run", lint_workstream(project, "src/calc.py"))
    result.assert_exit(1)
    [record] = project.audit_records()
    assert record["failure"] == "work_failed"
    assert record["result"]["message"] == (
        "2 lint messages remain: src/calc.py:3:0 W0611 Unused import os; "
        "src/calc.py:8:19 E0602 Undefined variable 'c'"
    )


def test_config_args_reach_pylint(aim_project, real_pylint):
    project = aim_project(
        files={"src/calc.py": BROKEN},
        config={"tools": {"pylint": {"args": ["--disable=W0611"]}}},
        plugins=[aim_pylint],
    )
    project.run("run", lint_workstream(project, "src/calc.py")).assert_exit(1)
    assert project.audit_records()[0]["result"]["message"].startswith(
        "1 lint message remains: src/calc.py:8:19 E0602"
    )


def test_direct_hook_call_with_a_context_from_the_project(aim_project, real_pylint):
    from aim_core import Invocation

    project = aim_project(files={"a.py": BROKEN})
    ctx = project.context(tool_id="pylint")
    result = aim_pylint.invoke_capability(
        "pylint", "linting", Invocation(prompt="lint", files=["a.py", "missing.py"]), ctx
    )
    assert result.failure == "invalid_payload"
    assert result.message == "pylint could not lint missing.py: No module named missing.py"


@pytest.mark.parametrize(
    ("files", "cause"),
    [
        (
            {".pylintrc": "[MAIN]\nload-plugins=no_such_pylint_plugin\n"},
            "pylint's configuration is broken: E0013 Plugin 'no_such_pylint_plugin' is "
            "impossible to load",
        ),
        (
            {".pylintrc": "[MAIN\njobs=2\n"},
            "pylint could not read its configuration: .pylintrc:1:0: F0011: error while "
            "parsing the configuration",
        ),
        (
            {"pyproject.toml": "[tool.pylint.main\n"},
            "pylint could not read its configuration: Failed to load 'pyproject.toml': ",
        ),
    ],
    ids=["plugin-does-not-load", "pylintrc-syntax", "pyproject-syntax"],
)
def test_a_broken_configuration_is_a_tool_error_naming_the_cause_not_lint(
    aim_project, real_pylint, files, cause
):
    from aim_core import Invocation

    project = aim_project(files={"a.py": BROKEN, **files})
    ctx = project.context(tool_id="pylint")
    result = aim_pylint.invoke_capability(
        "pylint", "linting", Invocation(prompt="lint", files=["a.py"]), ctx
    )
    assert result.failure == "tool_error", result.output
    assert result.message.startswith(cause)


def test_a_bad_value_in_the_configuration_is_refused_naming_it(aim_project, real_pylint):
    from aim_core import Invocation

    project = aim_project(
        files={"a.py": CLEAN, "pyproject.toml": '[tool.pylint.main]\njobs = "x"\n'}
    )
    ctx = project.context(tool_id="pylint")
    result = aim_pylint.invoke_capability(
        "pylint", "linting", Invocation(prompt="lint", files=["a.py"]), ctx
    )
    assert result.failure == "invalid_payload"
    assert result.message.endswith("pylint: error: argument --jobs/-j: invalid int value: 'x'")


def test_pylints_own_configuration_cannot_change_the_report_nor_write_statistics(
    aim_project, aim_test_env, real_pylint
):
    rc = "[MAIN]\npersistent=yes\n\n[REPORTS]\nreports=yes\nscore=yes\noutput-format=text\n"
    project = aim_project(files={"src/calc.py": BROKEN, ".pylintrc": rc}, plugins=[aim_pylint])
    project.run("run", lint_workstream(project, "src/calc.py")).assert_exit(1)
    [record] = project.audit_records()
    assert record["failure"] == "work_failed"
    assert record["result"]["message"].startswith("2 lint messages remain: src/calc.py:3:0 W0611")
    written = [*aim_test_env.home.rglob("*.stats"), *project.root.rglob("*.stats")]
    assert written == []


def test_validate_payload_names_the_field(aim_project):
    from aim_core import Invocation

    project = aim_project()
    payload = Invocation(prompt="lint", files=["src/a.py", "README.md"], files_scope=["x"])
    [problem] = aim_pylint.validate_payload("pylint", "linting", payload, project.context())
    assert problem.field == "capability_payload.files[1]"
    assert "not 'README.md'" in problem.message
    assert aim_pylint.validate_payload("ruff", "linting", payload, project.context()) is None


def test_a_usage_error_is_invalid_payload(aim_project, fake_tool):
    fake_tool("pylint", exit_code=32, stderr="pylint: error: Unrecognized option found: bogus\n")
    project = aim_project(files={"a.py": CLEAN}, plugins=[aim_pylint])
    project.run("run", lint_workstream(project, "a.py")).assert_exit(1)
    [record] = project.audit_records()
    assert record["failure"] == "invalid_payload"
    assert record["result"]["message"].endswith("Unrecognized option found: bogus")


def test_unreadable_output_is_a_tool_error_and_is_retried(aim_project, fake_tool):
    pylint = fake_tool("pylint", exit_code=2, stdout="Traceback (most recent call last):\n")
    project = aim_project(files={"a.py": CLEAN}, plugins=[aim_pylint])
    ws = lint_workstream(project, "a.py", max_retries=1)
    project.run("run", ws).assert_exit(1)
    assert [r["failure"] for r in project.audit_records()] == ["tool_error", "tool_error"]
    assert len(pylint.work_calls) == 2
    assert pylint.work_calls[0]["argv"] == [
        *("--output-format=json2", "--score=n", "--reports=n", "--recursive=y"),
        *("--persistent=n", "--", "a.py"),
    ]
