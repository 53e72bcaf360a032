"""aim_core.toolkit: the public helpers every tool plugin uses."""

from __future__ import annotations

import inspect
import os
import stat
import sys

import pytest

from aim_core import (
    Failure,
    FileChanges,
    Invocation,
    InvocationResult,
    ProcessResult,
    Usage,
    toolkit,
)
from aim_core.context import AimContext
from aim_core.workspace import tree_measurer

DEPRECATED = {"file_states", "changed_files"}


def test_all_lists_exactly_the_public_helpers():
    defined = {
        name
        for name, obj in vars(toolkit).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == toolkit.__name__
    }
    assert defined - DEPRECATED == set(toolkit.__all__) - {"MAX_ARGV_PROMPT", "Readiness"}
    assert all(hasattr(toolkit, name) for name in toolkit.__all__)
    assert not DEPRECATED & set(toolkit.__all__)


@pytest.mark.parametrize(
    ("rel", "paths", "inside"),
    [
        ("a.py", ["a.py"], True),
        ("a.py", ["./a.py"], True),
        ("a.pyc", ["a.py"], False),
        ("src/pkg/m.py", ["src"], True),
        ("src/pkg/m.py", ["src/"], True),
        ("srcx/m.py", ["src"], False),
        ("src/pkg/m.py", ["src/*.py"], True),  # fnmatch: * crosses "/", as the core's scope
        ("docs/a.md", ["src/**/*.py", "docs/*.md"], True),
        ("docs/a.txt", ["src/**/*.py", "docs/*.md"], False),
        ("b.py", [], False),
        ("src/b.py", ["."], True),  # the whole repository
        ("src/b.py", ["./"], True),
        ("pages/[id].tsx", ["pages/[id].tsx"], True),  # literally that file
        ("pages/i.tsx", ["pages/[id].tsx"], True),  # and what the glob matches
    ],
)
def test_in_paths(rel, paths, inside):
    assert toolkit.in_paths(rel, paths) is inside


def measuring_context(root, **kwargs):
    return AimContext(
        root=root, environ={"PATH": os.defpath}, measure=tree_measurer(root), **kwargs
    )


def test_scoped_changes_keeps_what_changed_among_the_given_paths(tmp_path):
    (tmp_path / "src").mkdir()
    for name in ("a.py", "gone.py", "src/m.py", "other.py"):
        (tmp_path / name).write_text("x = 1\n")
    context = measuring_context(tmp_path)
    (tmp_path / "a.py").write_text("x = 2\n")
    (tmp_path / "gone.py").unlink()
    (tmp_path / "src" / "new.py").write_text("")
    (tmp_path / "other.py").write_text("changed outside\n")
    found = toolkit.scoped_changes(context, ["a.py", "gone.py", "src"])
    assert found == FileChanges(created=["src/new.py"], modified=["a.py"], deleted=["gone.py"])
    # outside an attempt (no measure) nothing is reported
    assert toolkit.scoped_changes(AimContext(root=tmp_path), ["a.py"]) == FileChanges()


def fake_program(bin_dir, name="mytool"):
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize(
    ("capability", "options", "failure", "message"),
    [
        ("testing", {}, "invalid_payload", "mytool provides only linting, not testing"),
        (
            "linting",
            {"args": {"select": "F"}},
            "invalid_payload",
            "config tools.mytool.args must be a list of arguments",
        ),
    ],
)
def test_prepare_call_refuses_before_anything_runs(tmp_path, capability, options, failure, message):
    fake_program(tmp_path / "bin")
    context = AimContext(root=tmp_path, environ={"PATH": str(tmp_path / "bin")}, options=options)
    refused = toolkit.prepare_call(
        context,
        Invocation(prompt="x"),
        capability,
        tool_id="mytool",
        program="mytool",
        capabilities=["linting"],
        install_hint="pip install mytool",
    )
    assert isinstance(refused, InvocationResult)
    assert (refused.success, refused.failure, refused.message) == (False, failure, message)


def test_prepare_call_finds_the_program_and_its_args(tmp_path):
    program = fake_program(tmp_path / "bin")
    context = AimContext(
        root=tmp_path, environ={"PATH": str(tmp_path / "bin")}, options={"args": "-x 'a b'"}
    )
    kwargs = dict(
        tool_id="mytool", program="mytool", capabilities=["linting"], install_hint="pip install it"
    )
    call = toolkit.prepare_call(context, Invocation(prompt="x"), None, **kwargs)
    assert isinstance(call, toolkit.ToolCall)
    assert (call.program, call.args) == (program, ("-x", "a b"))
    payload = Invocation(prompt="x", options={"args": ["--fast"]})  # the payload's win
    assert toolkit.prepare_call(context, payload, "linting", **kwargs).args == ("--fast",)

    missing = AimContext(root=tmp_path, environ={"PATH": str(tmp_path)})
    refused = toolkit.prepare_call(missing, Invocation(prompt="x"), None, **kwargs)
    assert refused.failure == "not_installed"
    assert refused.message == "'mytool' not found on PATH (install: pip install it)"


def test_call_result_takes_the_process_and_the_measured_changes():
    r = ProcessResult(exit_code=1, stdout="out\n", stderr="err\n", duration_sec=1.5)
    changes = FileChanges(created=["n.py"], modified=["m.py"], deleted=["d.py"])
    usage = Usage(input_tokens=10, output_tokens=2, cost_usd=0.01, model="m")
    ok = toolkit.call_result(r, None, "done", changes=changes, usage=usage, retry_after_s=None)
    assert ok.success and ok.failure is None and ok.exit_code == 1 and ok.duration_sec == 1.5
    assert ok.files_created == ("n.py",) and ok.files_modified == ("d.py", "m.py")
    assert ok.output == "out\n--- stderr ---\nerr\n" and ok.usage == usage
    bad = toolkit.call_result(r, Failure.TOOL_ERROR, "no", output="mine", retry_after_s=3)
    assert (bad.success, bad.failure, bad.output, bad.retry_after_s) == (
        False,
        "tool_error",
        "mine",
        3,
    )
    assert bad.files_created == () and bad.files_modified == ()


def test_the_deprecated_file_hashing_still_works_and_says_what_replaces_it(tmp_path):
    (tmp_path / "a.py").write_text("1\n")
    with pytest.warns(DeprecationWarning, match=r"context\.changes\(\)"):
        before = toolkit.file_states(tmp_path, ["a.py", "b.py"])
    (tmp_path / "a.py").write_text("2\n")
    (tmp_path / "b.py").write_text("new\n")
    with pytest.warns(DeprecationWarning):
        after = toolkit.file_states(tmp_path, ["a.py", "b.py"])
    with pytest.warns(DeprecationWarning, match=r"context\.changes\(\)"):
        assert toolkit.changed_files(before, after) == (["b.py"], ["a.py"])


def test_every_public_helper_is_in_the_tutorials_toolkit_table():
    from pathlib import Path

    tutorial = (Path(__file__).parents[1] / "docs" / "plugins" / "tutorial.md").read_text()
    table = tutorial.split("### The toolkit", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in toolkit.__all__ if f"`{name}" not in table]
    assert not missing, f"not in docs/plugins/tutorial.md's toolkit table: {missing}"
