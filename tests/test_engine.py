"""The engine as objects: hooks through pluggy (wrappers, order, tracing), a runner
that owns its stop event, sinks flushed before exit, refusals' ``refused_paths``,
and the shape of ``aim_core`` itself (no import cycle, small functions)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import aim_core
from aim_core import InvocationResult, hookimpl
from aim_core.toolkit import detect_program

ROUTE = {"capabilities": {"linting": {"primary": "lintx", "fallback": []}}}
AIM_CORE = Path(aim_core.__file__).parent


class Recorder:
    """Plugins that note the order in which their hooks ran."""

    def __init__(self, calls: list[str]):
        self.calls = calls


def test_wrapper_runs_around_the_owner_and_tryfirst_comes_first(
    aim_project, fake_tool, aim_plugin_manager
):
    fake_tool("lintx", writes={"src/a.py": "x = 2\n"})
    calls: list[str] = []

    class Tool:
        @hookimpl
        def detect_tool(self, context):
            return detect_program(
                context,
                tool_id="lintx",
                program="lintx",
                capabilities=["linting"],
                install_hint="x",
            )

        @hookimpl
        def invoke_capability(self, tool_id, capability, payload, context):
            calls.append("invoke")
            r = context.run([context.which("lintx")])
            return InvocationResult(success=r.exit_code == 0, message="ok", exit_code=r.exit_code)

        @hookimpl
        def validate_payload(self, tool_id):
            calls.append(f"validate:normal:{tool_id}")

    class Wrapper:
        @hookimpl(wrapper=True)
        def invoke_capability(self, tool_id):
            calls.append("wrapper:before")
            result = yield
            calls.append(f"wrapper:after:{result.message}")
            return result

    class First:
        @hookimpl(tryfirst=True)
        def validate_payload(self, tool_id):
            calls.append(f"validate:first:{tool_id}")

    class Last:
        @hookimpl(trylast=True)
        def validate_payload(self, tool_id):
            calls.append(f"validate:last:{tool_id}")

    aim_plugin_manager.register(First(), "first")  # registered first: pluggy calls it last
    aim_plugin_manager.register(Tool(), "tool")
    aim_plugin_manager.register(Last(), "last")
    aim_plugin_manager.register(Wrapper(), "wrapper")
    project = aim_project(files={"src/a.py": "x = 1\n"}, rules=ROUTE, plugins=[])
    ws = project.workstream(capability="linting", files_scope=["src/a.py"])
    result = project.run_workstream(ws, plugins=aim_plugin_manager)
    assert result.success, result.message
    assert aim_plugin_manager.infos["wrapper"].status == "loaded"
    per_tool = [c for c in calls if c.startswith("validate:") and c.endswith(":lintx")]
    assert per_tool == ["validate:first:lintx", "validate:normal:lintx", "validate:last:lintx"]
    i = calls.index("invoke")
    assert calls[i - 1] == "wrapper:before"
    assert calls[i + 1] == "wrapper:after:ok"


def test_old_style_hookwrapper_is_refused_at_load_naming_plugin_hook_and_option(
    aim_plugin_manager,
):
    class Old:
        @hookimpl(hookwrapper=True)
        def invoke_capability(self):
            yield

    info = aim_plugin_manager.register(Old(), "old-wrapper")
    assert info.status == "broken"
    assert "invoke_capability" in info.error and "hookwrapper=True" in info.error
    assert "wrapper=True" in info.error


def test_pluggy_tracing_sees_hook_calls(aim_project, fake_tool, aim_plugin_manager):
    fake_tool("lintx")
    aim_plugin_manager.register(_lint_tool_plugin(), "tool")
    lines: list[str] = []
    aim_plugin_manager.trace(lines.append)
    project = aim_project(rules=ROUTE, plugins=[]).open()
    project.use_plugins(aim_plugin_manager)
    project.detect(refresh=True)
    assert any("detect_tool" in line for line in lines)


def test_hook_names_come_from_the_specs():
    from aim_core import hookspecs
    from aim_core.plugins import HOOK_NAMES

    specs = {n for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, "aim_spec")}
    assert set(HOOK_NAMES) == specs
    assert "audit_flush" in HOOK_NAMES


def test_get_version_context_names_the_tool(aim_project, fake_tool, aim_plugin_manager):
    fake_tool("lintx")
    seen: list[object] = []

    class Tool:
        @hookimpl
        def detect_tool(self, context):
            from aim_core import ToolDetection

            return ToolDetection(
                tool_id="lintx", capabilities=["linting"], installed=True, path="/x"
            )

        @hookimpl
        def get_version(self, tool_id, context):
            seen.append(context.tool_id)
            return "lintx 9"

    aim_plugin_manager.register(Tool(), "tool")
    project = aim_project(rules=ROUTE, plugins=[]).open()
    project.use_plugins(aim_plugin_manager)
    report = project.detect(refresh=True)
    assert report.tools["lintx"].detection.version == "lintx 9"
    assert seen == ["lintx"]


# --------------------------------------------------------------------------- the runner


def _lint_tool_plugin():
    class Tool:
        @hookimpl
        def detect_tool(self, context):
            return detect_program(
                context,
                tool_id="lintx",
                program="lintx",
                capabilities=["linting"],
                install_hint="x",
            )

        @hookimpl
        def invoke_capability(self, tool_id, capability, payload, context):
            r = context.run([context.which("lintx")])
            return InvocationResult(
                success=r.exit_code == 0,
                message="done" if r.exit_code == 0 else "failed",
                exit_code=r.exit_code,
                failure=None if r.exit_code == 0 else "tool_error",
            )

    return Tool()


def test_run_workstream_works_after_an_interrupted_run_in_the_same_process(
    aim_project, fake_tool, aim_plugin_manager
):
    from aim_core.runner import Runner
    from aim_core.workstream import load_workstream

    slow = fake_tool("lintx", sleep=30, writes={"src/a.py": "x = 'slow'\n"})
    aim_plugin_manager.register(_lint_tool_plugin(), "tool")
    project = aim_project(files={"src/a.py": "x = 1\n"}, rules=ROUTE, plugins=[])
    ws_path = project.workstream(capability="linting", files_scope=["src/a.py"])
    opened = project.open()
    opened.use_plugins(aim_plugin_manager)
    runner = Runner(opened)
    loaded = load_workstream(ws_path, root=opened.root)
    box = {}
    t = threading.Thread(target=lambda: box.update(r=runner.run(loaded.workstream)))
    t.start()
    deadline = time.monotonic() + 20
    while (
        not [c for c in slow.calls if "--version" not in c["argv"]] and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    runner.request_stop()
    t.join(30)
    assert box["r"].exit_code == 130
    assert project.read("src/a.py") == "x = 1\n"

    fake_tool("lintx", writes={"src/a.py": "x = 'fast'\n"})
    result = Runner(opened).run(loaded.workstream)
    assert result.exit_code == 0, result.message
    assert project.read("src/a.py") == "x = 'fast'\n"
    assert [r["failure"] for r in project.audit_records()] == ["interrupted", None]

    # the public function, in the same process, after the interrupted run: the real ruff
    other = aim_project(files={"ok.py": "x = 1\n"}, plugins=["ruff"])
    ws = other.workstream(capability="linting", files_scope=["ok.py"])
    again = aim_core.run_workstream(ws, root=other.root, environ=other.environ())
    assert again.exit_code == 0, again.message
    assert again.tool_id == "ruff"


def test_run_workstream_never_changes_the_settings_of_others(aim_project):
    from aim_core.config import Settings

    project = aim_project(rules=ROUTE, plugins=[])
    opened = project.open()
    before = opened.settings
    ws = project.workstream(capability="linting", files_scope=["src/a.py"])
    project.write("src/a.py", "x = 1\n")
    result = aim_core.run_workstream(
        ws,
        root=project.root,
        settings=Settings(enable_audit_logging=False),
        environ=project.environ(),
    )
    assert result.exit_code == 3
    assert opened.settings is before
    assert project.audit_records() == []  # the settings given were used


# --------------------------------------------------------------------------- audit flush

QUEUED_SINK = """
import json, queue, threading, time, os
from aim_core import hookimpl

_q = queue.Queue()
OUT = os.environ["QUEUED_SINK_OUT"]

def _worker():
    while True:
        record = _q.get()
        time.sleep(0.3)  # a slow remote service
        with open(OUT, "a") as f:
            f.write(json.dumps(record.to_dict()) + "\\n")
        _q.task_done()

threading.Thread(target=_worker, daemon=True).start()

@hookimpl
def audit_sink(record):
    _q.put(record)
"""

FLUSH = """

@hookimpl
def audit_flush(timeout_s):
    _q.join()
"""


@pytest.mark.parametrize("flushes", [True, False], ids=["with-audit_flush", "without"])
def test_a_queueing_sink_gets_every_record_through_the_console_script(
    aim_project, fake_tool, tmp_path, flushes
):
    aim = shutil.which("aim") or str(Path(sys.executable).parent / "aim")
    project = aim_project(files={"a.py": "x = 1\n"}, plugins=[])
    module = project.env.site / "queued_sink_plugin.py"
    module.write_text(QUEUED_SINK + (FLUSH if flushes else ""), encoding="utf-8")
    project.env.add_entry_point("queued-sink", "queued_sink_plugin")
    out = tmp_path / "sink.jsonl"
    ws = project.workstream(tool="nosuchtool", capability="linting", files_scope=["a.py"])
    env = project.environ()
    env.pop("AIM_LOAD_PLUGINS", None)
    env["QUEUED_SINK_OUT"] = str(out)
    done = subprocess.run(
        [aim, "run", str(ws)], cwd=project.root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    written = project.audit_records()
    assert written
    got = out.read_text().splitlines() if out.exists() else []
    if flushes:
        assert len(got) == len(written)
    else:
        assert len(got) < len(written)  # what the flush point is for


# --------------------------------------------------------------------------- refused_paths


def _refusal(project, **fields):
    ws = project.workstream(capability="linting", **fields)
    result = project.run("run", ws)
    assert result.exit_code == 2, result.stderr
    record = project.audit_records()[-1]
    assert record["failure"] == "invalid_payload" and record["tool_id"] is None
    return record["result"]["content"].get("refused_paths")


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        ("forbidden", {"files_scope": [".env"]}, ["/.env"]),
        ("forbidden-in-dir", {"files_scope": ["src/.env"]}, ["/src/.env"]),
        ("traversal", {"files_scope": ["../outside.py"]}, ["/../outside.py"]),
        ("absolute", {"files_scope": ["/etc/passwd"]}, ["/etc/passwd"]),
        ("symlink", {"files_scope": ["link.py"]}, ["/link.py"]),
        ("glob", {"files_scope": ["src/*"]}, ["/src/*"]),
        ("whitelist", {"files_scope": ["notes.exe"]}, ["/notes.exe"]),
        ("size", {"files_scope": ["big.py"]}, ["/big.py"]),
        (
            "files_create",
            {"files_scope": ["a.py"], "files_create": ["secrets/.env"]},
            ["/secrets/.env"],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_refused_paths_is_in_the_record_for_every_kind_of_refusal(
    aim_project, tmp_path, kind, fields, expected
):
    rules = {"security": {"allowed_file_patterns": ["*.py", "*.md", ".env", "*"]}}
    if kind == "whitelist":
        rules = {"security": {"allowed_file_patterns": ["*.py"]}}
    project = aim_project(
        files={"a.py": "x = 1\n", "src/b.py": "y = 1\n", "notes.exe": "z\n"},
        rules={**ROUTE, **rules} if kind == "whitelist" else ROUTE,
        plugins=[],
    )
    (tmp_path / "outside.py").write_text("secret = 1\n")
    os.symlink(tmp_path / "outside.py", project.root / "link.py")
    project.write("big.py", "x = 1\n" * 400_000)
    assert _refusal(project, **fields) == expected


# --------------------------------------------------------------------------- the code's shape


def _modules() -> dict[str, Path]:
    out = {}
    for p in AIM_CORE.rglob("*.py"):
        parts = p.relative_to(AIM_CORE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every aim_core module ``module`` imports, at the top or inside functions;
    imports under ``if TYPE_CHECKING:`` are left out (they never run)."""
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for n in node.orelse:
                visit(n)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("aim_core"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            if base.startswith("aim_core"):
                for a in node.names:
                    full = f"{base}.{a.name}"
                    found.add(full if full in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in known and m != module}


def test_aim_core_has_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def dfs(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend([*stack[stack.index(nxt) :], nxt])
                return True
            if nxt not in state and dfs(nxt, [*stack, nxt]):
                return True
        state[node] = 2
        return False

    for m in sorted(graph):
        if m not in state and dfs(m, [m]):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from aim_core.b import x\n")
    b.write_text("from aim_core.a import f\n")
    known = {"aim_core.a", "aim_core.b"}
    assert _imports("aim_core.a", a, known) == {"aim_core.b"}
    assert _imports("aim_core.b", b, known) == {"aim_core.a"}


DATA_TABLES = {("aim_core/testing/records.py", "sample_records")}


def test_functions_are_short_and_take_few_positional_parameters():
    too_long, too_many = [], []
    for path in sorted(AIM_CORE.rglob("*.py")):
        rel = path.relative_to(AIM_CORE.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if (rel, node.name) in DATA_TABLES:
                continue
            lines = node.end_lineno - node.lineno + 1
            positional = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
            positional = [a for a in positional if a not in ("self", "cls")]
            if lines > 60:
                too_long.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
            if len(positional) > 6:
                too_many.append(f"{rel}:{node.lineno} {node.name} ({len(positional)} positional)")
    assert not too_long, "functions over 60 lines:\n" + "\n".join(too_long)
    assert not too_many, "functions with more than 6 positional parameters:\n" + "\n".join(too_many)


def test_runner_stays_small():
    assert len((AIM_CORE / "runner.py").read_text().splitlines()) <= 400


def test_no_module_level_stop_flag_in_the_engine():
    import aim_core.runner as runner

    assert not hasattr(runner, "STOP")
    assert not hasattr(runner, "request_stop")
