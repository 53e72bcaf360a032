"""One test per hook (``test_hook_<name>``), each driving the hook through the core as a
plugin author meets it: a plugin defined in the test, registered with the kit's
``aim_plugin_manager``, a repository from ``aim_project`` and fake tool executables.

tests/test_plugin_docs.py checks that every hookspec has its test here.
"""

from __future__ import annotations

import logging

from aim_core import Failure, InvocationResult, Problem, ToolDetection, hookimpl
from aim_core.status import collect
from aim_core.toolkit import detect_program

ROUTE = {"capabilities": {"linting": {"primary": "first", "fallback": ["second"]}}}


class Tool:
    """A tool plugin for tests: detects a fake program and runs it through context.run."""

    def __init__(self, tool_id: str, **answers):
        self.tool_id = tool_id
        self.answers = answers  # e.g. problems=[...] for validate_payload
        self.calls: list[tuple] = []

    @hookimpl
    def detect_tool(self, context):
        return detect_program(
            context,
            tool_id=self.tool_id,
            program=self.tool_id,
            capabilities=["linting"],
            install_hint=f"pip install {self.tool_id}",
        )

    @hookimpl
    def invoke_capability(self, tool_id, capability, payload, context):
        if tool_id != self.tool_id:
            return None
        self.calls.append(("invoke", tool_id, capability, payload))
        r = context.run([context.which(tool_id), *payload.files])
        if r.exit_code == 0:
            return InvocationResult(success=True, message="clean", exit_code=0)
        return InvocationResult(
            success=False, message="lint remains", exit_code=r.exit_code, failure="work_failed"
        )

    @hookimpl
    def validate_payload(self, tool_id, capability, payload):
        if tool_id != self.tool_id:
            return None
        self.calls.append(("validate", tool_id, capability))
        return self.answers.get("problems")


def linting_project(aim_project):
    project = aim_project(files={"src/a.py": "x = 1\n"}, rules=ROUTE, plugins=[])
    ws = project.workstream(
        id="ws-lint",
        capability="linting",
        files_scope=["src/a.py"],
        capability_payload={"max_retries": 0},
    )
    return project, ws


def test_hook_detect_tool(aim_project, fake_tool, aim_plugin_manager):
    fake_tool("first", version="1.2.3")
    aim_plugin_manager.register(Tool("first"), "first-plugin")
    aim_plugin_manager.register(Tool("second"), "second-plugin")  # its program is missing

    class Raises:
        @hookimpl
        def detect_tool(self, context):
            raise RuntimeError("boom")

    aim_plugin_manager.register(Raises(), "raises")
    project = aim_project(rules=ROUTE, plugins=[]).open()
    project.use_plugins(aim_plugin_manager)
    data = collect(project, refresh=True)
    tools = {t["tool_id"]: t for t in data["tools"]}
    assert tools["first"]["plugin"] == "first-plugin" and tools["first"]["detected"] is True
    assert tools["first"]["version"] == "first 1.2.3"
    assert tools["second"]["detected"] is False
    assert tools["second"]["reason"] == "'second' not found on PATH (install: pip install second)"
    assert data["plugins_broken"] == [
        {
            "name": "raises",
            "distribution": None,
            "error": "detect_tool raised RuntimeError: boom",
            "fix": None,
        }
    ]


def test_hook_get_version(aim_project, aim_plugin_manager):
    asked = []

    class Versioned:
        @hookimpl
        def detect_tool(self):
            return [
                ToolDetection(tool_id="quiet", capabilities=["linting"], installed=True),
                ToolDetection(
                    tool_id="loud", capabilities=["linting"], installed=True, version="loud 2"
                ),
            ]

        @hookimpl
        def get_version(self, tool_id, context):
            asked.append(tool_id)
            return "quiet 9.1" if tool_id == "quiet" else None

    aim_plugin_manager.register(Versioned(), "versioned")
    project = aim_project(plugins=[]).open()
    project.use_plugins(aim_plugin_manager)
    tools = {t["tool_id"]: t for t in collect(project, refresh=True)["tools"]}
    assert tools["quiet"]["version"] == "quiet 9.1"
    assert tools["loud"]["version"] == "loud 2"
    assert asked == ["quiet"]  # only where detection left the version empty


def test_hook_invoke_capability(aim_project, fake_tool, aim_plugin_manager):
    first = fake_tool("first")
    tool = Tool("first")
    aim_plugin_manager.register(tool, "first-plugin")
    project, ws = linting_project(aim_project)
    result = project.run_workstream(ws, plugins=aim_plugin_manager)
    assert result.exit_code == 0
    [(_, tool_id, capability, payload)] = [c for c in tool.calls if c[0] == "invoke"]
    assert (tool_id, capability) == ("first", "linting")
    assert payload.files == ("src/a.py",) and payload.workstream_id == "ws-lint"
    assert first.work_calls[0]["argv"] == ["src/a.py"]
    [record] = project.audit_records()
    assert record["tool_id"] == "first"
    assert record["result"]["message"] == "Linting completed (attempt 1)"


def test_hook_invoke_capability_work_failed_ends_the_workstream(
    aim_project, fake_tool, aim_plugin_manager
):
    fake_tool("first", exit_code=1)
    second = fake_tool("second")
    aim_plugin_manager.register(Tool("first"), "first-plugin")
    aim_plugin_manager.register(Tool("second"), "second-plugin")
    project, ws = linting_project(aim_project)
    result = project.run_workstream(ws, plugins=aim_plugin_manager)
    assert result.exit_code == 1
    assert [r["failure"] for r in project.audit_records()] == [Failure.WORK_FAILED.value]
    assert second.work_calls == []


def test_hook_validate_payload(aim_project, fake_tool, aim_plugin_manager):
    first_program = fake_tool("first")
    fake_tool("second")
    objection = Problem(field="files_scope[0]", message="first takes only .txt files")
    first = Tool("first", problems=[objection])
    aim_plugin_manager.register(first, "first-plugin")
    aim_plugin_manager.register(Tool("second"), "second-plugin")
    project, ws = linting_project(aim_project)
    result = project.run_workstream(ws, plugins=aim_plugin_manager)
    assert result.exit_code == 0
    assert ("validate", "first", "linting") in first.calls
    assert first_program.work_calls == []  # the objection moved the run on
    [record] = project.audit_records()
    assert record["tool_id"] == "second"
    assert record["result"]["content"]["skipped"] == [
        {
            "tool_id": "first",
            "failure": "invalid_payload",
            "reason": "first cannot take this request: files_scope[0]: first takes only .txt files",
        }
    ]


def test_hook_audit_sink(aim_project, fake_tool, aim_plugin_manager, audit_capture, caplog):
    fake_tool("first")
    aim_plugin_manager.register(Tool("first"), "first-plugin")

    class Raises:
        @hookimpl
        def audit_sink(self, record):
            raise OSError("disk full")

    aim_plugin_manager.register(Raises(), "raising-sink")
    project, ws = linting_project(aim_project)
    aim_log = logging.getLogger("aim")  # the CLI stops propagation; listen on it directly
    aim_log.addHandler(caplog.handler)
    try:
        result = project.run_workstream(ws, plugins=aim_plugin_manager)
    finally:
        aim_log.removeHandler(caplog.handler)
    assert result.exit_code == 0
    [record] = audit_capture.records
    assert record == project.audit_records()[0]  # sealed: seq, hash, timestamp
    assert record["seq"] == 1 and record["hash"] and record["tool_id"] == "first"
    assert (
        "audit sink 'raising-sink' failed (audit_sink raised OSError: disk full); "
        "the run and the JSONL log go on" in caplog.messages
    )


def test_hook_audit_flush(aim_project, fake_tool, aim_plugin_manager, caplog):
    fake_tool("first")
    aim_plugin_manager.register(Tool("first"), "first-plugin")
    seen: list[str] = []

    class Queued:
        def __init__(self):
            self.queue: list[dict] = []

        @hookimpl
        def audit_sink(self, record):
            self.queue.append(record.to_dict())  # held back, as a batching sink does

        @hookimpl
        def audit_flush(self, timeout_s):
            seen.extend(r["tool_id"] for r in self.queue)
            self.queue.clear()
            assert timeout_s > 0

    class Raises:
        @hookimpl
        def audit_flush(self):
            raise OSError("network down")

    aim_plugin_manager.register(Queued(), "queued")
    aim_plugin_manager.register(Raises(), "raising-flush")
    project, ws = linting_project(aim_project)
    aim_log = logging.getLogger("aim")
    aim_log.addHandler(caplog.handler)
    try:
        result = project.run_workstream(ws, plugins=aim_plugin_manager)
    finally:
        aim_log.removeHandler(caplog.handler)
    assert result.exit_code == 0
    assert seen == ["first"]  # flushed once the run ended, every record
    assert any("'raising-flush' could not flush" in m for m in caplog.messages)
