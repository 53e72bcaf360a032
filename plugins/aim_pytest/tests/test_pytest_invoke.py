"""``invoke_capability`` and ``validate_payload`` of aim_pytest, driving the real `pytest`."""

from __future__ import annotations

import os
import re
import sys
import time

import pytest

import aim_pytest
from aim_core.context import AimContext
from aim_core.models import Invocation
from aim_core.testing import make_fake_tool
from aim_core.workspace import tree_measurer

VENV_BIN = os.path.dirname(sys.executable)

PASSING = "def test_one():\n    assert 1\n\ndef test_two():\n    assert 2\n"
FAILING = 'def test_ok():\n    assert 1\n\ndef test_bad():\n    assert 1 == 2, "nope"\n'
DURATION = r"in \d+\.\d\ds"


@pytest.fixture
def repo(tmp_path):
    """A repository with its own (empty) pytest.ini, so that pytest looks no further up."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return tmp_path


def context(root, calls=None, path=VENV_BIN, env=None, **kwargs):
    """A context like the core's: it measures what changed since it was made."""

    def record(argv, result):
        if calls is not None:
            calls.append(list(argv))

    return AimContext(
        root=root,
        environ={"PATH": path, **(env or {})},
        on_process=record,
        measure=tree_measurer(root),
        env_passthrough=("PYTEST_*",),
        **kwargs,
    )


def run_tests(root, *files, capability="testing", ctx=None):
    ctx = ctx or context(root)
    return aim_pytest.invoke_capability(
        "pytest", capability, Invocation(prompt="test", files=files), ctx
    )


def test_passing_tests_succeed_with_pytests_summary(repo):
    (repo / "test_a.py").write_text(PASSING)
    calls = []
    r = run_tests(repo, "test_a.py", ctx=context(repo, calls))
    assert r.success and r.failure is None and r.exit_code == 0
    assert re.fullmatch(rf"2 passed {DURATION}", r.message), r.message
    assert calls == [
        [os.path.join(VENV_BIN, "pytest"), "-q", "-p", "no:cacheprovider", "--", "test_a.py"]
    ]
    assert "2 passed" in r.output


def test_no_cache_and_no_bytecode_is_left_in_the_repository(repo):
    # PYTHONDONTWRITEBYTECODE comes from the plugin: the caller's environment has only PATH.
    (repo / "test_a.py").write_text(PASSING)
    (repo / "helper.py").write_text("X = 1\n")
    (repo / "test_b.py").write_text("import helper\n\ndef test_b():\n    assert helper.X\n")
    r = run_tests(repo)
    assert r.success
    assert sorted(p.name for p in repo.iterdir()) == [
        "helper.py",
        "pytest.ini",
        "test_a.py",
        "test_b.py",
    ]


def test_failing_tests_are_work_failed_with_the_summary(repo):
    (repo / "test_f.py").write_text(FAILING)
    r = run_tests(repo, "test_f.py")
    assert not r.success and r.failure == "work_failed" and r.exit_code == 1
    assert re.fullmatch(rf"1 failed, 1 passed {DURATION}", r.message), r.message
    assert "FAILED test_f.py::test_bad - AssertionError: nope" in r.output


def test_test_ids_select_tests(repo):
    (repo / "test_f.py").write_text(FAILING)
    r = run_tests(repo, "test_f.py::test_ok")
    assert r.success and re.fullmatch(rf"1 passed {DURATION}", r.message)


def test_no_files_runs_the_whole_suite(repo):
    (repo / "test_a.py").write_text(PASSING)
    (repo / "test_f.py").write_text(FAILING)
    calls = []
    r = run_tests(repo, ctx=context(repo, calls))
    assert calls[0][1:] == ["-q", "-p", "no:cacheprovider"]
    assert r.failure == "work_failed"
    assert re.fullmatch(rf"1 failed, 3 passed {DURATION}", r.message)


def test_no_tests_collected_is_a_clear_failure(repo):
    (repo / "helpers.py").write_text("X = 1\n")
    r = run_tests(repo, "helpers.py")
    assert not r.success and r.failure == "work_failed" and r.exit_code == 5
    assert re.fullmatch(rf"no tests collected \(no tests ran {DURATION}\)", r.message)


def test_a_missing_path_is_a_tool_error_with_pytests_line(repo):
    r = run_tests(repo, "nope.py")
    assert r.failure == "tool_error" and r.exit_code == 4
    assert r.message == "pytest usage error: file or directory not found: nope.py"


def test_an_unknown_argument_is_a_tool_error_with_pytests_line(repo):
    (repo / "test_a.py").write_text(PASSING)
    calls = []
    r = run_tests(repo, "test_a.py", ctx=context(repo, calls, options={"args": ["--bogus"]}))
    assert calls[0][-3:] == ["--bogus", "--", "test_a.py"]
    assert r.failure == "tool_error" and r.exit_code == 4
    assert r.message == "pytest usage error: unrecognized arguments: --bogus"


def test_a_conftest_that_fails_to_import_is_a_tool_error_that_says_why(repo):
    (repo / "conftest.py").write_text("import nosuchmodule\n")
    (repo / "test_a.py").write_text(PASSING)
    r = run_tests(repo)
    assert r.failure == "tool_error" and r.exit_code == 4
    assert r.message.startswith("pytest usage error: ImportError while loading conftest ")
    assert r.message.endswith("(ModuleNotFoundError: No module named 'nosuchmodule')")


def test_an_internal_error_is_a_tool_error_with_the_exception(repo):
    (repo / "conftest.py").write_text(
        'def pytest_collection_modifyitems(items):\n    raise RuntimeError("boom")\n'
    )
    (repo / "test_a.py").write_text(PASSING)
    r = run_tests(repo)
    assert r.failure == "tool_error" and r.exit_code == 3
    assert r.message == "pytest internal error: RuntimeError: boom"


def test_an_exit_from_a_test_is_a_tool_error(repo):
    (repo / "test_x.py").write_text(
        'import pytest\n\ndef test_x():\n    pytest.exit("stop here")\n'
    )
    r = run_tests(repo)
    assert r.failure == "tool_error" and r.exit_code == 2
    assert r.message == "pytest was interrupted: _pytest.outcomes.Exit: stop here"


def test_a_test_module_that_does_not_import_is_work_failed(repo):
    (repo / "test_a.py").write_text(PASSING)
    (repo / "test_broken.py").write_text("import nosuchmodule\n")
    r = run_tests(repo)
    assert r.failure == "work_failed" and r.exit_code == 2
    assert r.message == "1 error during collection: test_broken.py"


def test_a_run_past_the_deadline_times_out(repo):
    (repo / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(60)\n")
    start = time.monotonic()
    r = run_tests(repo, ctx=context(repo, deadline=time.monotonic() + 1.5))
    assert time.monotonic() - start < 15
    assert r.failure == "timeout" and not r.success
    assert r.message.startswith("pytest did not finish in time (stopped after ")


def test_the_summary_is_found_when_args_make_pytest_verbose_and_coloured(repo):
    (repo / "test_f.py").write_text(FAILING)
    ctx = context(repo, options={"args": "-v --color=yes"})
    r = run_tests(repo, "test_f.py", ctx=ctx)
    assert "\x1b[" in r.output and "=====" in r.output
    assert r.failure == "work_failed"
    assert re.fullmatch(rf"1 failed, 1 passed {DURATION}", r.message), r.message


def test_failed_tests_are_named_when_pytest_prints_no_summary(repo):
    (repo / "test_f.py").write_text(FAILING)
    r = run_tests(repo, "test_f.py", ctx=context(repo, options={"args": ["-q"]}))  # -qq
    assert r.failure == "work_failed" and r.message == "tests failed: test_f.py::test_bad"


def test_a_missing_program_is_not_installed(repo):
    empty = repo / "bin"
    empty.mkdir()
    calls = []
    r = run_tests(repo, ctx=context(repo, calls, path=str(empty)))
    assert r.failure == "not_installed" and calls == []
    assert r.message == "'pytest' not found on PATH (install: pip install pytest)"


def installed_plugin(site, body):
    """An installed distribution whose pytest11 entry point is the module ``body`` makes."""
    info = site / "badplug-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nbadplug = badplug_mod\n")
    (site / "badplug_mod.py").write_text(body)
    return {"PYTHONPATH": str(site)}


def test_an_installed_plugin_that_fails_to_import_is_unavailable_and_names_the_cause(
    repo, tmp_path_factory
):
    # pytest >= 8.4 says 'Error while loading plugin "..."' and exits 3, with nothing on stdout
    env = installed_plugin(tmp_path_factory.mktemp("site"), "import no_such_dep_xyz\n")
    (repo / "test_a.py").write_text(PASSING)
    r = run_tests(repo, ctx=context(repo, env=env))
    assert r.exit_code in (1, 3) and not r.success
    assert r.failure == "unavailable"
    assert r.message.startswith("pytest cannot start")
    assert r.message.endswith("ModuleNotFoundError: No module named 'no_such_dep_xyz'")


def test_an_installed_plugin_that_raises_on_import_is_unavailable(repo, tmp_path_factory):
    env = installed_plugin(tmp_path_factory.mktemp("site"), "raise ImportError('needs libfoo')\n")
    (repo / "test_a.py").write_text(PASSING)
    r = run_tests(repo, ctx=context(repo, env=env))
    assert r.failure == "unavailable"
    assert r.message.endswith("ImportError: needs libfoo")


def test_a_plugin_named_with_p_that_is_missing_is_unavailable(repo):
    (repo / "test_a.py").write_text(PASSING)
    r = run_tests(repo, ctx=context(repo, env={"PYTEST_ADDOPTS": "-p no_such_plugin_xyz"}))
    assert (r.failure, r.exit_code) == ("unavailable", 4)
    assert r.message == (
        'pytest cannot start: plugin "no_such_plugin_xyz" fails to load: '
        "No module named 'no_such_plugin_xyz'"
    )


# What pytest 7.4.4 printed (exit 1, stdout empty) when an installed plugin failed to
# import: an uncaught traceback, once inside a warning and once for real.
OLD_PYTEST_STDERR = """\
/venv/lib/python3.11/site-packages/_pytest/config/__init__.py:331: PluggyTeardownRaisedWarning: A plugin raised an exception during an old-style hookwrapper teardown.
Plugin: helpconfig, Hook: pytest_cmdline_parse
ModuleNotFoundError: No module named 'does_not_exist_xyz'
For more information see https://pluggy.readthedocs.io/en/stable/api_reference.html#pluggy.PluggyTeardownRaisedWarning
  config = pluginmanager.hook.pytest_cmdline_parse(
Traceback (most recent call last):
  File "/venv/bin/pytest", line 8, in <module>
    sys.exit(console_main())
             ^^^^^^^^^^^^^^
  File "/venv/lib/python3.11/site-packages/_pytest/config/__init__.py", line 1305, in _preparse
    self.pluginmanager.load_setuptools_entrypoints("pytest11")
  File "/venv/lib/python3.11/site-packages/pluggy/_manager.py", line 521, in load_setuptools_entrypoints
    plugin = ep.load()
             ^^^^^^^^^
  File "/site/badplug_mod.py", line 1, in <module>
    import does_not_exist_xyz
ModuleNotFoundError: No module named 'does_not_exist_xyz'
"""


def test_an_old_pytest_that_dies_importing_a_plugin_is_unavailable_not_failed_tests(
    repo, tmp_path_factory
):
    bin_dir = tmp_path_factory.mktemp("bin")
    make_fake_tool(bin_dir, "pytest", exit_code=1, stderr=OLD_PYTEST_STDERR)
    r = run_tests(repo, ctx=context(repo, path=str(bin_dir)))
    assert (r.failure, r.exit_code) == ("unavailable", 1)
    assert r.message == (
        "pytest cannot start: ModuleNotFoundError: No module named 'does_not_exist_xyz'"
    )


def test_an_old_pytest_that_crashes_otherwise_is_a_tool_error(repo, tmp_path_factory):
    bin_dir = tmp_path_factory.mktemp("bin")
    crash = "Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'rootdir'\n"
    make_fake_tool(bin_dir, "pytest", exit_code=1, stderr=crash)
    r = run_tests(repo, ctx=context(repo, path=str(bin_dir)))
    assert (r.failure, r.message) == ("tool_error", "pytest crashed: KeyError: 'rootdir'")


def test_failing_tests_that_print_a_traceback_to_stderr_are_still_work_failed(
    repo, tmp_path_factory
):
    bin_dir = tmp_path_factory.mktemp("bin")
    make_fake_tool(
        bin_dir,
        "pytest",
        exit_code=1,
        stdout="F\nFAILED test_a.py::test_x - ImportError\n1 failed in 0.01s\n",
        stderr="Traceback (most recent call last):\nImportError: from a test\n",
    )
    r = run_tests(repo, ctx=context(repo, path=str(bin_dir)))
    assert (r.failure, r.message) == ("work_failed", "1 failed in 0.01s")


def test_another_capability_is_refused(repo):
    calls = []
    r = run_tests(repo, capability="linting", ctx=context(repo, calls))
    assert r.failure == "invalid_payload" and calls == []
    assert r.message == "pytest provides only testing, not linting"
    problems = aim_pytest.validate_payload(
        "pytest", "linting", Invocation(prompt=""), context(repo)
    )
    assert [(p.field, p.message) for p in problems] == [
        ("capability", "pytest provides only testing, not linting")
    ]


def test_any_path_or_test_id_is_accepted(repo):
    payload = Invocation(prompt="", files=["tests/", "doc/usage.txt", "test_a.py::test_one[1]"])
    assert aim_pytest.validate_payload("pytest", "testing", payload, context(repo)) is None
    assert aim_pytest.validate_payload("pytest", None, payload, context(repo)) is None


def test_other_tool_ids_are_not_answered(repo):
    payload = Invocation(prompt="", files=["test_a.py"])
    ctx = context(repo)
    assert aim_pytest.invoke_capability("ruff", "testing", payload, ctx) is None
    assert aim_pytest.validate_payload("ruff", "linting", payload, ctx) is None
    assert aim_pytest.validate_payload(None, None, payload, ctx) is None


@pytest.mark.parametrize(
    ("output", "summary"),
    [
        (".F\n1 failed, 1 passed in 0.10s\n", "1 failed, 1 passed in 0.10s"),
        ("==== 3 passed, 1 warning in 0.02s ====\n", "3 passed, 1 warning in 0.02s"),
        ("\nno tests ran in 0.00s\n", "no tests ran in 0.00s"),
        ("2 passed in 65.43s (0:01:05)\n", "2 passed in 65.43s (0:01:05)"),
        (
            "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 warnings, 1 error in 0.02s\n",
            "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 warnings, 1 error in 0.02s",
        ),
        # a test's own output that looks like a summary comes before the real one
        (
            "1 passed in 9.99s\nFAILED t.py::x\n1 failed in 0.01s\nwarning: trailing\n",
            "1 failed in 0.01s",
        ),
        ("FAILED t.py::x - assert 0\n", None),
    ],
)
def test_summary_line(output, summary):
    assert aim_pytest.summary_line(output) == summary


def test_globs_are_expanded_and_test_ids_are_kept(repo):
    (repo / "tests").mkdir()
    (repo / "tests" / "test_a.py").write_text(PASSING)
    (repo / "tests" / "test_b.py").write_text(PASSING)
    (repo / "test_p.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('n', [1, 2])\ndef test_n(n):\n    assert n\n"
    )
    calls = []
    r = run_tests(repo, "tests/test_*.py", "test_p.py::test_n[2]", ctx=context(repo, calls))
    assert calls[0][-4:] == ["--", "tests/test_a.py", "tests/test_b.py", "test_p.py::test_n[2]"]
    assert r.success and re.fullmatch(rf"5 passed {DURATION}", r.message), r.message


def test_a_glob_that_matches_nothing_is_passed_on_and_reported_by_pytest(repo):
    r = run_tests(repo, "tests/test_*.py")
    assert r.failure == "tool_error" and r.exit_code == 4
    assert r.message == "pytest usage error: file or directory not found: tests/test_*.py"
