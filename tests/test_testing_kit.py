"""The plugin authors' kit (aim_core.testing): its fixtures, AimResult, the conformance suite
and `aim plugin new`. The fixtures are used here exactly as a plugin's own tests use them
(they come from aim-core's pytest11 entry point)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from aim_core.testing import AimPluginTests, AimResult, sample_records
from aim_core.testing.rules import RULES

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
ECHOER = '''
"""A tool plugin for the kit's tests: the program `echoer`, for code_generation."""
from aim_core import Failure, InvocationResult, hookimpl
from aim_core.toolkit import detect_program, first_line


@hookimpl
def detect_tool(context):
    return detect_program(context, tool_id="echoer", program="echoer",
                          capabilities=["code_generation"], install_hint="pip install echoer")


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    if tool_id != "echoer":
        return None
    r = context.run([context.which("echoer") or "echoer", *payload.files])
    if r.exit_code == 0:
        return InvocationResult(success=True, message="echoed", exit_code=0)
    return InvocationResult(success=False, message=first_line(r.stderr) or "failed",
                            exit_code=r.exit_code, failure=Failure.TOOL_ERROR)
'''


@pytest.fixture
def echoer(tmp_path, monkeypatch):
    """The ECHOER plugin as an importable module that is not installed."""
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / "aim_echoer.py").write_text(ECHOER)
    spec = importlib.util.spec_from_file_location("aim_echoer", folder / "aim_echoer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "aim_echoer", module)
    return module


def echo_workstream(project):
    return project.workstream(
        id="ws-echo",
        capability="code_generation",
        files_scope=["src/a.py"],
        capability_payload={"prompt": "echo it", "max_retries": 0},
    )


ECHO_RULES = {"capabilities": {"code_generation": {"primary": "echoer", "fallback": []}}}

# --------------------------------------------------------------------------- aim_project


def test_aim_project_is_an_isolated_repository_made_by_aim_init(
    aim_project, fake_tool, aim_test_env, tmp_path
):
    project = aim_project()
    assert project.root == tmp_path / "repo"
    assert (project.root / "config" / "aim_config.yaml").is_file()
    assert (project.registry / "AIM_cross-tool" / "AIM_coordination-rules.json").is_file()
    assert (project.root / "workstreams" / "staging_test" / "ws-aim-validation.json").is_file()
    assert os.environ["HOME"] == str(aim_test_env.home)
    assert not [n for n in os.environ if n.startswith("AIM_") and n != "AIM_CACHE_DIR"]
    assert os.environ["PATH"].split(os.pathsep)[0] == str(fake_tool.bin_dir)
    status = project.run("status", "--json").assert_success().json()
    assert Path(status["root"]) == project.root


def test_aim_project_overrides_files_rules_and_config(aim_project):
    project = aim_project(
        files={"src/a.py": "x = 1\n"},
        rules={"capabilities": {"linting": {"primary": "pylint", "fallback": []}}},
        config={"default_timeout_ms": 1234, "tools": {"ruff": {"args": ["--x"]}}},
        plugins=[],
    )
    assert project.read("src/a.py") == "x = 1\n"
    route = project.run("status", "--json").json()["routing"]
    assert route["linting"] == {"primary": "pylint", "fallback": []}
    assert route["code_generation"]["primary"] == "jules"  # the rest is aim init's
    settings = project.open().settings
    assert settings.default_timeout_ms == 1234
    assert settings.tool_options("ruff") == {"args": ["--x"]}
    second = aim_project()
    assert second.root != project.root and second.root.name == "repo-2"


def test_write_workstream_and_audit_records(aim_project, fake_tool, echoer):
    fake_tool("echoer")
    project = aim_project(files={"src/a.py": "a\n"}, rules=ECHO_RULES, plugins=[echoer])
    ws = echo_workstream(project)
    assert json.loads(ws.read_text())["id"] == "ws-echo"
    assert project.workstream(tasks=["x"]).name == "ws-test-2.json"
    assert project.audit_records() == []
    project.run("run", ws).assert_success()
    [record] = project.audit_records()
    assert record["tool_id"] == "echoer" and record["result"]["success"] is True


def test_plugins_loads_only_the_plugins_named(aim_project):
    listed = aim_project(plugins=["ruff"]).run("plugins", "--json").json()
    status = {p["name"]: p["status"] for p in listed}
    assert status["ruff"] == "loaded"
    assert {s for n, s in status.items() if n not in ("ruff", "aim.security")} <= {"blocked"}
    only_builtins = aim_project(plugins=[]).run("plugins", "--json").json()
    assert {p["status"] for p in only_builtins} <= {"essential", "blocked"}


def test_plugins_takes_a_module_that_is_not_installed(aim_project, fake_tool, echoer):
    fake_tool("echoer", version="4.5.6")
    project = aim_project(plugins=[echoer])
    status = project.run("status", "--json").assert_success().json()
    [tool] = [t for t in status["tools"] if t["tool_id"] == "echoer"]
    assert tool["plugin"] == "aim_echoer" and tool["version"] == "echoer 4.5.6"


def test_plugins_rejects_unknown_names_and_objects(aim_project):
    with pytest.raises(ValueError, match="no installed aim plugin is named 'nope'"):
        aim_project(plugins=["nope"])
    with pytest.raises(TypeError, match="Register an object defined in a test"):
        aim_project(plugins=[object()])


def test_run_workstream_in_process_with_an_in_test_plugin(
    aim_project, fake_tool, aim_plugin_manager, audit_capture
):
    from aim_core import InvocationResult, hookimpl
    from aim_core.toolkit import detect_program

    class Inline:
        @hookimpl
        def detect_tool(self, context):
            return detect_program(
                context,
                tool_id="echoer",
                program="echoer",
                capabilities=["code_generation"],
                install_hint="-",
            )

        @hookimpl
        def invoke_capability(self, tool_id, payload, context):
            r = context.run([context.which("echoer"), *payload.files])
            return InvocationResult(success=r.exit_code == 0, message="inline", exit_code=0)

    fake_tool("echoer")
    assert aim_plugin_manager.register(Inline(), "inline").status == "loaded"
    project = aim_project(files={"src/a.py": "a\n"}, rules=ECHO_RULES)
    result = project.run_workstream(echo_workstream(project), plugins=aim_plugin_manager)
    assert result.exit_code == 0
    [record] = audit_capture.records
    assert record["tool_id"] == "echoer" and record["result"]["message"].startswith("Code gen")
    assert record == project.audit_records()[0]


# --------------------------------------------------------------------------- AimResult


def test_aim_result_assertions_explain_themselves():
    r = AimResult(["run", "ws.json"], 3, "out line\n", "[INFO] a\n[ERROR] no tool\n", 0.1)
    assert r.assert_exit(3) is r
    with pytest.raises(AssertionError) as e:
        r.assert_success()
    assert "`aim run ws.json` exited 3, expected 0" in str(e.value)
    assert "[ERROR] no tool" in str(e.value) and "out line" in str(e.value)
    r.fnmatch_lines(["*ERROR* no tool"], stream="stderr")
    r.fnmatch_lines(["out *", "*INFO* a"], stream="both")
    r.no_fnmatch_line("*Traceback*", stream="stderr")
    with pytest.raises(pytest.fail.Exception, match="remains unmatched: 'nothing like this'"):
        r.fnmatch_lines(["nothing like this"])
    with pytest.raises(AssertionError, match="printed no JSON"):
        r.json()
    with pytest.raises(ValueError, match="stream must be"):
        r.fnmatch_lines(["x"], stream="stdin")


# --------------------------------------------------------------------------- fake_tool


def test_fake_tool_is_a_real_program_first_on_path(fake_tool, tmp_path):
    tool = fake_tool("mytool", version="2.0", stdout="hi\n", writes={"out.txt": "made"})
    assert shutil.which("mytool") == str(tool.path)
    version = subprocess.run(["mytool", "--version"], capture_output=True, text=True)
    assert version.stdout == "mytool 2.0\n"
    done = subprocess.run(["mytool", "a", "b"], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout == "hi\n" and (tmp_path / "out.txt").read_text() == "made"
    assert [c["argv"] for c in tool.calls] == [["--version"], ["a", "b"]]
    assert tool.work_calls == [{"argv": ["a", "b"], "cwd": str(tmp_path)}]
    login = fake_tool("other", needs_login=True)
    assert subprocess.run([str(login.path), "x"], capture_output=True).returncode == 1
    fake_tool.remove("other")
    assert shutil.which("other") is None


# --------------------------------------------------------------------------- plugin manager


def test_aim_plugin_manager_is_fresh_with_the_builtins(aim_plugin_manager):
    assert [n for n, i in aim_plugin_manager.infos.items() if i.status != "essential"] == []

    class Typo:
        from aim_core import hookimpl

        @hookimpl
        def detect_tools(self, context):
            return None

    info = aim_plugin_manager.register(Typo(), "typo")
    assert info.status == "broken" and "did you mean 'detect_tool'" in info.error


def test_audit_capture_sees_the_records_of_aim_subprocesses(
    aim_project, fake_tool, echoer, audit_capture
):
    fake_tool("echoer", runs=[{"exit_code": 1, "stderr": "boom\n"}, {"exit_code": 0}])
    project = aim_project(files={"src/a.py": "a\n"}, rules=ECHO_RULES, plugins=[echoer])
    project.run("run", echo_workstream(project)).assert_exit(1)
    project.run("run", echo_workstream(project)).assert_success()
    assert [(r["failure"], r["result"]["message"]) for r in audit_capture.records] == [
        ("tool_error", "boom"),
        (None, "Code generation completed (attempt 1)"),
    ]
    assert audit_capture.records == project.audit_records()
    audit_capture.clear()
    assert audit_capture.records == []


# --------------------------------------------------------------------------- conformance


def test_sample_records_cover_every_kind_of_record():
    records = sample_records()
    assert {"success", "security-refusal", "no-tool-available", "interrupted", "unsealed"} <= set(
        records
    )
    assert records["no-tool-available"].tool_id is None
    assert records["unsealed"].seq is None and records["success"].hash


class TestEchoerConformance(AimPluginTests):
    """A small well-behaved tool plugin passes the suite (the fixture module is set below)."""

    tool_id = "echoer"

    @pytest.fixture(autouse=True)
    def _plugin(self, echoer, monkeypatch):
        monkeypatch.setattr(type(self), "plugin", echoer)


class TestSqliteSinkConformance(AimPluginTests):
    """The audit-sink example (examples/sqlite_sink) passes the suite as a tool-less plugin."""

    tool_id = None

    @pytest.fixture(autouse=True)
    def _plugin(self, monkeypatch, tmp_path):
        path = REPO / "examples" / "sqlite_sink" / "aim_sqlite_sink.py"
        spec = importlib.util.spec_from_file_location("aim_sqlite_sink", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setenv("AIM_SQLITE_SINK_DB", str(tmp_path / "audit.db"))
        monkeypatch.setattr(type(self), "plugin", module)


BROKEN_PLUGIN = '''
"""Breaks one rule per hook, on purpose."""
import shutil
import subprocess

from aim_core import InvocationResult, ToolDetection, hookimpl


@hookimpl
def detect_tool(context):
    path = shutil.which("broken")  # raises below when absent
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return ToolDetection(tool_id="broken", capabilities=["linter"], installed=True,
                         version=version)


@hookimpl
def get_version(tool_id, context):
    return "broken 1.0"  # for every tool id


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    if tool_id != "broken":
        return None
    r = context.run(["broken", *payload.files])
    return InvocationResult(success=r.exit_code == 0, message="done\\nand more")


@hookimpl
def validate_payload(tool_id, capability, payload, context):
    return ["not a Problem"]


@hookimpl
def audit_sink(record):
    record.payload["seen"] = True
'''


def test_a_broken_plugin_fails_the_suite_naming_each_rule(pytester):
    pytester.makepyfile(aim_broken=BROKEN_PLUGIN)
    pytester.makepyfile(
        test_broken="""
        import aim_broken
        from aim_core.testing import AimPluginTests

        class TestBroken(AimPluginTests):
            plugin = aim_broken
            tool_id = "broken"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 10 and "passed" in outcomes
    broken_rules = {
        rule
        for rule in RULES
        if f"aim plugin rule [{rule}] broken: {RULES[rule]}" in result.stdout.str()
    }
    assert broken_rules == {
        "detect-never-raises",
        "known-capabilities",
        "foreign-tools",
        "failure-classes",
        "validate-payload",
        "audit-sink",
        "processes",
    }
    output = result.stdout.str()
    for detail in [
        "'broken' declares the capability 'linter' (did you mean 'linting'?)",
        "get_version('aim-conformance-other-tool') returned 'broken 1.0'",
        "the message is 'done\\nand more'; give one line the user reads",
        "audit_sink changed the 'success' record it was given",
        "validate_payload(None, 'code_generation') returned ['not a Problem']",
    ]:
        assert detail in output, detail
    result.stdout.fnmatch_lines(["*detect_tool(context): subprocess.Popen *aim_broken.py:*"])


def test_a_plugin_that_registers_wrongly_fails_the_registers_rule(pytester):
    pytester.makepyfile(
        aim_typo="""
        from aim_core import hookimpl

        @hookimpl
        def detect_tools(context):
            return None
        """,
        test_typo="""
        import aim_typo
        from aim_core.testing import AimPluginTests

        class TestTypo(AimPluginTests):
            plugin = aim_typo
            tool_id = "typo"
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "*aim plugin rule [[]registers] broken*",
            "*hook implementation 'detect_tools' matches no aim hook (did you mean 'detect_tool'?)",
        ]
    )


def test_a_suite_without_a_plugin_says_what_to_set(pytester):
    pytester.makepyfile(
        test_empty="""
        from aim_core.testing import AimPluginTests

        class TestEmpty(AimPluginTests):
            tool_id = "x"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "registers")
    result.stdout.fnmatch_lines(["*TestEmpty: set `plugin = your_plugin_module`*"])


# --------------------------------------------------------------------------- aim plugin new


def test_plugin_new_writes_a_package_whose_tests_pass(aim_project, tmp_path):
    project = aim_project(plugins=[])
    where = tmp_path / "out" / "aim-plugin-greeter"
    result = project.run(
        "plugin", "new", "greeter", "--capability", "code_generation", "--path", str(where)
    ).assert_success()
    result.fnmatch_lines(
        [
            f"Created aim-plugin-greeter in {where}",
            "  wrote pyproject.toml",
            "  wrote README.md",
            "  wrote aim_greeter/__init__.py",
            "  wrote tests/test_aim_greeter.py",
            "Next: cd *, then pip install -e '.[[]test]', pytest, aim plugins (lists 'greeter')*",
        ]
    )
    pyproject = (where / "pyproject.toml").read_text()
    assert '[project.entry-points.aim]\ngreeter = "aim_greeter"' in pyproject
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W,I,UP,B", "."],
        cwd=where,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout.splitlines()[-1] and "failed" not in tests.stdout


@pytest.mark.parametrize(
    "args,error",
    [
        (["Bad Name"], "'Bad Name' cannot name a plugin"),
        (["core"], "'core' is taken by aim itself"),
        (["ok", "--capability", "Not-A-Name"], "'Not-A-Name' cannot name a capability"),
    ],
    ids=["bad-name", "reserved", "bad-capability"],
)
def test_plugin_new_refuses_bad_names(aim_project, args, error):
    project = aim_project(plugins=[])
    result = project.run("plugin", "new", *args).assert_exit(2)
    assert error in result.stderr


def test_plugin_new_never_overwrites(aim_project):
    project = aim_project(plugins=[])
    project.write("aim-plugin-x/keep.txt", "mine")
    result = project.run("plugin", "new", "x").assert_exit(2)
    assert "the directory exists and is not empty" in result.stderr
    assert project.read("aim-plugin-x/keep.txt") == "mine"


# --------------------------------------------------------------------------- the issue's "done when"


def fresh_venv(where: Path) -> Path:
    """A new virtual environment that sees this one's packages (aim-core, pytest, pip,
    setuptools) through symlinks, but none of its aim plugins; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    new_site = Path(subprocess.check_output([str(python), "-c", ask], text=True).strip())
    main_site = Path(sysconfig.get_paths()["purelib"])
    plugins = {
        info.parent.name.split("-")[0]
        for info in main_site.glob("*.dist-info/entry_points.txt")
        if "[aim]" in info.read_text(encoding="utf-8", errors="replace")
    }
    for entry in main_site.iterdir():
        if entry.name == "__pycache__" or any(p in entry.name for p in plugins):
            continue
        (new_site / entry.name).symlink_to(entry)
    return python


@pytest.mark.slow
def test_a_plugin_made_outside_the_repo_works_in_a_fresh_venv(tmp_path_factory, aim_test_env):
    outside = tmp_path_factory.mktemp("outside")
    assert REPO not in outside.parents
    package = outside / "aim-plugin-hello"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AIM_LOAD_PLUGINS")}

    def run(*argv, cwd, check=True):
        done = subprocess.run(
            [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        if check:
            assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
        return done

    python = fresh_venv(outside / "venv")
    run(python, "-m", "aim_core", "plugin", "new", "hello", "--path", package, cwd=outside)
    run(
        python,
        *("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"),
        package,
        cwd=outside,
    )
    # Discovered: `aim plugins` in a repository lists it, and only it (a fresh venv).
    repo = outside / "repo"
    run(python, "-m", "aim_core", "init", "--path", repo, cwd=outside)
    listed = json.loads(run(python, "-m", "aim_core", "plugins", "--json", cwd=repo).stdout)
    assert {p["name"]: p["status"] for p in listed} == {
        "aim.security": "essential",
        "hello": "loaded",
    }
    [hello] = [p for p in listed if p["name"] == "hello"]
    assert hello["distribution"] == "aim-plugin-hello" and hello["tools"] == ["hello"]
    # Its tests, which use only the kit's fixtures and the conformance suite, pass.
    tests = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
    assert tests.stdout.splitlines()[-1].startswith("19 passed, 1 skipped")
    # Broken on purpose, it fails the conformance suite naming the rule.
    module = package / "aim_hello" / "__init__.py"
    module.write_text(
        module.read_text().replace("capabilities=CAPABILITIES", 'capabilities=["greet"]')
    )
    broken = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package, check=False)
    assert broken.returncode == 1
    assert "aim plugin rule [known-capabilities] broken" in broken.stdout
    assert "'hello' declares the capability 'greet'" in broken.stdout
