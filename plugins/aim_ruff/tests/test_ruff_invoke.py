"""``invoke_capability`` and ``validate_payload`` of aim_ruff, driving the real `ruff`."""

from __future__ import annotations

import os
import sys
import time

import pytest

import aim_ruff
from aim_core.context import AimContext
from aim_core.models import Invocation
from aim_core.testing import make_fake_tool
from aim_core.workspace import tree_measurer

VENV_BIN = os.path.dirname(sys.executable)

CLEAN = 'print("hi")\n'
FIXABLE = 'import os\n\nprint("hi")\n'  # F401, safely fixable
UNFIXABLE = "import os\n\nprint(y)\n"  # F401 is fixed, F821 remains


@pytest.fixture
def repo(tmp_path):
    """A repository whose ruff.toml pins the rules (ruff's defaults change between versions)
    and stops ruff from looking for a configuration above it."""
    (tmp_path / "ruff.toml").write_text('[lint]\nselect = ["F"]\n')
    return tmp_path


def context(root, calls=None, path=VENV_BIN, **kwargs):
    """A context like the core's: it measures what changed since it was made."""

    def record(argv, result):
        if calls is not None:
            calls.append(list(argv))

    return AimContext(
        root=root,
        environ={"PATH": path},
        on_process=record,
        measure=tree_measurer(root),
        **kwargs,
    )


def lint(root, *files, capability="linting", ctx=None, **payload):
    ctx = ctx or context(root)
    return aim_ruff.invoke_capability(
        "ruff", capability, Invocation(prompt="lint", files=files, **payload), ctx
    )


def test_fixable_lint_is_fixed(repo):
    (repo / "a.py").write_text(FIXABLE)
    calls = []
    r = lint(repo, "a.py", ctx=context(repo, calls))
    assert r.success and r.failure is None and r.exit_code == 0
    assert r.message == "no lint remains (fixed 1 file: a.py)"
    assert r.files_modified == ("a.py",)
    assert (repo / "a.py").read_text() == '\nprint("hi")\n'
    assert calls == [
        [
            os.path.join(VENV_BIN, "ruff"),
            *("check", "--fix", "--no-cache", "--output-format", "json-lines", "--", "a.py"),
        ]
    ]
    assert not (repo / ".ruff_cache").exists()


def test_clean_file_is_a_success_that_changes_nothing(repo):
    (repo / "a.py").write_text(CLEAN)
    r = lint(repo, "a.py")
    assert r.success and r.message == "no lint remains" and r.files_modified == ()
    assert (repo / "a.py").read_text() == CLEAN


def test_remaining_lint_is_work_failed_and_listed(repo):
    (repo / "src").mkdir()
    (repo / "src" / "b.py").write_text(UNFIXABLE)
    r = lint(repo, "src/b.py")
    assert not r.success and r.failure == "work_failed" and r.exit_code == 1
    # (positions are those after ruff's fixes)
    assert r.message == "1 lint error remains: src/b.py:2:7 F821 Undefined name `y`"
    assert '"code":"F821"' in r.output
    # what could be fixed was fixed (the core restores the file since the attempt failed)
    assert r.files_modified == ("src/b.py",)
    assert (repo / "src" / "b.py").read_text() == "\nprint(y)\n"


def test_long_lists_of_remaining_lint_are_capped(repo):
    (repo / "c.py").write_text("".join(f"print(name{i})\n" for i in range(7)))
    r = lint(repo, "c.py")
    assert r.failure == "work_failed"
    assert r.message == (
        "7 lint errors remain: c.py:1:7 F821 Undefined name `name0`; "
        "c.py:2:7 F821 Undefined name `name1`; c.py:3:7 F821 Undefined name `name2`; "
        "c.py:4:7 F821 Undefined name `name3`; c.py:5:7 F821 Undefined name `name4` (+2 more)"
    )


def test_syntax_error_is_work_failed(repo):
    (repo / "s.py").write_text("x = (\n")
    r = lint(repo, "s.py")
    assert r.failure == "work_failed" and r.exit_code == 1
    assert r.message.startswith("1 lint error remains: s.py:2:1 invalid-syntax ")


def test_remaining_lint_fails_even_when_args_force_exit_zero(repo):
    (repo / "b.py").write_text(UNFIXABLE)
    r = lint(repo, "b.py", ctx=context(repo, options={"args": ["--exit-zero"]}))
    assert r.exit_code == 0
    assert r.failure == "work_failed" and r.message.startswith(
        "1 lint error remains: b.py:2:7 F821"
    )


def test_no_files_lints_the_repository_root_without_fixing(repo):
    # nothing is in scope, so nothing may be changed: lint is reported, not fixed
    (repo / "pkg").mkdir()
    (repo / "pkg" / "a.py").write_text(FIXABLE)
    (repo / "b.py").write_text(UNFIXABLE)
    calls = []
    r = lint(repo, ctx=context(repo, calls))
    assert calls[0][1:3] == ["check", "--no-fix"] and calls[0][-2:] == ["--", "."]
    assert r.failure == "work_failed" and r.files_modified == ()
    assert r.message == (
        "3 lint errors remain: b.py:1:8 F401 `os` imported but unused; "
        "b.py:3:7 F821 Undefined name `y`; pkg/a.py:1:8 F401 `os` imported but unused"
    )
    assert (repo / "pkg" / "a.py").read_text() == FIXABLE


def test_no_files_and_no_lint_is_a_success(repo):
    (repo / "a.py").write_text(CLEAN)
    r = lint(repo)
    assert r.success and r.message == "no lint remains"


def test_globs_are_expanded_to_python_files(repo):
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "a.py").write_text(FIXABLE)
    (repo / "src" / "pkg" / "b.py").write_text(FIXABLE)
    (repo / "src" / "notes.txt").write_text("not python\n")
    calls = []
    r = lint(repo, "src/**/*.py", "src/*", ctx=context(repo, calls))
    assert calls[0][-4:] == ["--", "src/a.py", "src/pkg/b.py", "src/pkg"]
    assert r.success and r.files_modified == ("src/a.py", "src/pkg/b.py")
    assert (repo / "src" / "pkg" / "b.py").read_text() == '\nprint("hi")\n'


def test_a_glob_that_matches_nothing_is_a_missing_path(repo):
    calls = []
    r = lint(repo, "src/**/*.py", ctx=context(repo, calls))
    assert r.failure == "invalid_payload" and calls == []
    assert r.message == "ruff cannot lint src/**/*.py: no such file or directory"


def test_config_args_reach_ruff(repo):
    (repo / "a.py").write_text(FIXABLE)
    calls = []
    ctx = context(repo, calls, options={"args": ["--select", "F821"]})
    r = lint(repo, "a.py", ctx=ctx)
    assert calls[0][-4:] == ["--select", "F821", "--", "a.py"]
    assert r.success and r.files_modified == ()  # F401 not selected: nothing to fix
    assert (repo / "a.py").read_text() == FIXABLE


def test_config_args_as_one_string_are_split(repo):
    (repo / "a.py").write_text(FIXABLE)
    calls = []
    r = lint(repo, "a.py", ctx=context(repo, calls, options={"args": "--select F821"}))
    assert r.success and calls[0][-4:] == ["--select", "F821", "--", "a.py"]


def test_config_args_of_the_wrong_shape_are_invalid(repo):
    (repo / "a.py").write_text(FIXABLE)
    calls = []
    r = lint(repo, "a.py", ctx=context(repo, calls, options={"args": {"select": "F"}}))
    assert r.failure == "invalid_payload" and calls == []
    assert r.message == "config tools.ruff.args must be a list of arguments"


def test_a_bad_rule_in_args_is_a_tool_error_with_ruffs_cause(repo):
    (repo / "a.py").write_text(CLEAN)
    r = lint(repo, "a.py", ctx=context(repo, options={"args": ["--select", "BADRULE"]}))
    assert r.failure == "tool_error" and r.exit_code == 2
    assert r.message == (
        "ruff failed (exit code 2): Unknown rule selector `BADRULE` in `select` from the CLI"
    )
    assert "ruff failed" in r.output


@pytest.mark.parametrize(
    ("config", "text", "cause"),
    [
        (
            "ruff.toml",
            '[lint]\nselect = ["F"\n',
            "Failed to parse ruff.toml: TOML parse error at line 2, column 14: "
            "unclosed array, expected `]`",
        ),
        (
            "ruff.toml",
            '[lint]\nselectt = ["F"]\n',
            "Failed to parse ruff.toml: TOML parse error at line 2, column 1: "
            "unknown field `selectt`, expected one of ",
        ),
        (
            "pyproject.toml",
            "[tool.ruff.lint]\nselect = 3\n",
            "Failed to parse pyproject.toml: TOML parse error at line 2, column 10: "
            "invalid type: integer `3`, expected a sequence",
        ),
    ],
    ids=["ruff.toml-syntax", "ruff.toml-unknown-field", "pyproject-wrong-type"],
)
def test_a_broken_configuration_is_a_tool_error_naming_the_cause(repo, config, text, cause):
    (repo / "ruff.toml").unlink()
    (repo / config).write_text(text)
    (repo / "a.py").write_text(UNFIXABLE)
    r = lint(repo, "a.py")
    assert (r.failure, r.exit_code) == ("tool_error", 2)
    assert r.message.startswith(f"ruff failed (exit code 2): {cause}")
    assert (repo / "a.py").read_text() == UNFIXABLE


def test_a_missing_path_is_invalid_and_ruff_is_not_run(repo):
    # (ruff itself exits 0 for it with only a warning when E902 is not selected)
    (repo / "a.py").write_text(FIXABLE)
    calls = []
    r = lint(repo, "a.py", "nope.py", "gone/", ctx=context(repo, calls))
    assert r.failure == "invalid_payload" and not r.success
    assert r.message == "ruff cannot lint nope.py, gone/: no such file or directory"
    assert calls == [] and (repo / "a.py").read_text() == FIXABLE


def test_a_file_ruff_cannot_read_is_a_tool_error_not_a_success(repo):
    # Without E902 selected ruff exits 0 and only warns on stderr.
    (repo / "bad.py").write_bytes(b'x = "\xff"\n')
    r = lint(repo, "bad.py")
    assert r.exit_code == 0
    assert r.failure == "tool_error"
    assert r.message == "ruff could not lint bad.py: stream did not contain valid UTF-8"


def test_a_file_ruff_cannot_read_is_a_tool_error_with_e902_selected(repo):
    (repo / "bad.py").write_bytes(b'x = "\xff"\n')
    (repo / "b.py").write_text(UNFIXABLE)
    ctx = context(repo, options={"args": ["--select", "E902,F"]})
    r = lint(repo, "bad.py", "b.py", ctx=ctx)
    assert r.exit_code == 1
    assert r.failure == "tool_error"
    assert r.message == "ruff could not read bad.py: stream did not contain valid UTF-8"


def test_a_directory_without_python_files_is_invalid(repo):
    (repo / "docs").mkdir()
    (repo / "docs" / "README.md").write_text("# hi\n")
    r = lint(repo, "docs")
    assert r.exit_code == 0 and r.failure == "invalid_payload"
    assert r.message == "ruff found no Python files to lint in docs"


def test_a_missing_program_is_not_installed(repo):
    (repo / "a.py").write_text(CLEAN)
    empty = repo / "bin"
    empty.mkdir()
    calls = []
    r = lint(repo, "a.py", ctx=context(repo, calls, path=str(empty)))
    assert r.failure == "not_installed" and calls == []
    assert r.message == "'ruff' not found on PATH (install: pip install ruff)"


def test_a_ruff_that_hangs_times_out(repo, tmp_path_factory):
    (repo / "a.py").write_text(CLEAN)
    bin_dir = tmp_path_factory.mktemp("bin")
    make_fake_tool(bin_dir, "ruff", sleep=30)
    ctx = context(repo, path=str(bin_dir), deadline=time.monotonic() + 1)
    start = time.monotonic()
    r = lint(repo, "a.py", ctx=ctx)
    assert time.monotonic() - start < 10
    assert r.failure == "timeout" and not r.success
    assert r.message.startswith("ruff did not finish in time (stopped after ")


def test_another_capability_is_refused(repo):
    calls = []
    r = lint(repo, "a.py", capability="code_generation", ctx=context(repo, calls))
    assert r.failure == "invalid_payload" and calls == []
    assert r.message == "ruff provides only linting, not code_generation"


def test_other_tool_ids_are_not_answered(repo):
    payload = Invocation(prompt="", files=["README.md"])
    ctx = context(repo)
    assert aim_ruff.invoke_capability("pytest", "linting", payload, ctx) is None
    assert aim_ruff.validate_payload("pytest", "linting", payload, ctx) is None
    assert aim_ruff.validate_payload(None, None, payload, ctx) is None


def test_validate_objects_to_files_that_are_not_python(repo):
    (repo / "src").mkdir()
    (repo / "Makefile").write_text("all:\n")
    files = ["a.py", "b.pyi", "README.md", "src", ".", "Makefile", "future_pkg", "notes.txt"]
    problems = aim_ruff.validate_payload(
        "ruff", "linting", Invocation(prompt="", files=files), context(repo)
    )
    assert [(p.field, p.message) for p in problems] == [
        (
            "capability_payload.files[2]",
            "ruff lints only Python files (.py, .pyi) and directories, not 'README.md'",
        ),
        (
            "capability_payload.files[5]",
            "ruff lints only Python files (.py, .pyi) and directories, not 'Makefile'",
        ),
        (
            "capability_payload.files[7]",
            "ruff lints only Python files (.py, .pyi) and directories, not 'notes.txt'",
        ),
    ]


def test_validate_names_files_scope_when_the_files_came_from_it(repo):
    payload = Invocation(prompt="", files=["a.py", "a.md"], files_scope=["a.py", "a.md"])
    problems = aim_ruff.validate_payload("ruff", "linting", payload, context(repo))
    assert [p.field for p in problems] == ["files_scope[1]"]


def test_validate_accepts_python_files_and_objects_to_other_capabilities(repo):
    payload = Invocation(prompt="", files=["a.py", "pkg/b.pyi"])
    assert aim_ruff.validate_payload("ruff", "linting", payload, context(repo)) is None
    assert aim_ruff.validate_payload("ruff", None, payload, context(repo)) is None
    problems = aim_ruff.validate_payload("ruff", "testing", payload, context(repo))
    assert [(p.field, p.message) for p in problems] == [
        ("capability", "ruff provides only linting, not testing")
    ]


def test_the_callers_ruff_variables_cannot_redirect_the_report(repo):
    (repo / "a.py").write_text(UNFIXABLE)
    environ = {"PATH": VENV_BIN, "RUFF_OUTPUT_FILE": "report.txt", "RUFF_OUTPUT_FORMAT": "full"}
    detected = aim_ruff.detect_tool(AimContext(root=repo, environ=environ))
    ctx = AimContext(
        root=repo,
        environ=environ,
        env_passthrough=detected.env_passthrough,
        measure=tree_measurer(repo),
    )
    r = lint(repo, "a.py", ctx=ctx)
    assert r.failure == "work_failed"
    assert r.message == "1 lint error remains: a.py:2:7 F821 Undefined name `y`"
    assert not (repo / "report.txt").exists()
