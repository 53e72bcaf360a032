"""The conformance suite: the contract of aim's hooks, checked against one plugin.

::

    from aim_core.testing import AimPluginTests
    import aim_mytool

    class TestMyTool(AimPluginTests):
        plugin = aim_mytool          # the module (or object) with the @hookimpl functions
        tool_id = "mytool"           # the tool it provides; None for an audit sink only
        program = "mytool"           # the executable it looks for (default: tool_id)

Each test checks one rule of :data:`RULES` and fails with
:class:`PluginRuleBroken`, whose message starts with the rule's id and sentence.
The hooks are called the way the core calls them (one implementation at a
time, with only the arguments it names) with a real :class:`~aim_core.AimContext`
whose PATH holds either nothing or a fake executable named ``program`` (a
real program that answers ``--version``, exits 0, fails or hangs as told), in
a temporary repository that is the current directory, with HOME isolated.
Every call is watched: a process started other than through ``context.run``
breaks the ``processes`` rule.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from aim_core.models import Problem
from aim_core.testing.records import sample_records
from aim_core.testing.rules import (
    FOREIGN_TOOL,
    RULES,
    ConformanceHarness,
    PluginRuleBroken,
    broken,
    changed_files,
    check_result,
    file_tree,
    is_within,
    known_capabilities,
    short,
)

__all__ = ["RULES", "AimPluginTests", "PluginRuleBroken", "sample_records"]

# --------------------------------------------------------------------------- the suite

SCENARIOS = {
    "program-absent": None,
    "program-works": {"version": "9.9.9"},
    "program-fails-to-start": {
        "version_exit": 1,
        "version_output": "",
        "version_stderr": "Error: cannot start (broken installation)\n",
        "exit_code": 1,
        "stderr": "Error: cannot start (broken installation)\n",
    },
}


class AimPluginTests:
    """The contract of aim's hooks, checked against ``plugin``. Subclass it in a test module::

        class TestMyTool(AimPluginTests):
            plugin = aim_mytool
            tool_id = "mytool"

    Class attributes: ``plugin`` (required), ``tool_id`` (the tool the plugin provides,
    None for a plugin without tools, such as an audit sink), ``program`` (the executable
    it looks for on PATH; default ``tool_id``), ``extra_capabilities`` (capability names
    beyond the five known ones that the plugin serves on purpose), ``hook_timeout_s``
    (the deadline given to each call, default 20 s). Tests of hooks the plugin does not
    implement are skipped.
    """

    plugin: ClassVar[Any] = None
    tool_id: ClassVar[str | None] = None
    program: ClassVar[str | None] = None
    extra_capabilities: ClassVar[Sequence[str]] = ()
    hook_timeout_s: ClassVar[float] = 20.0

    @pytest.fixture
    def aim_conformance(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> ConformanceHarness:
        """The harness of one conformance test."""
        if self.plugin is None:
            pytest.fail(
                f"{type(self).__name__}: set `plugin = your_plugin_module` (and `tool_id`) "
                "on the class",
                pytrace=False,
            )
        return ConformanceHarness(self, tmp_path, monkeypatch)

    def _capabilities(self, h: ConformanceHarness, tool_id: str) -> tuple[str, ...]:
        if "detect_tool" not in h.info.hooks:
            return ("code_generation",)
        try:
            answers = h.detect(present=True)
        except PluginRuleBroken:  # detect_tool's own tests report it
            answers = []
        mine = [d for d in answers if d.tool_id == tool_id]
        return (mine[0].capabilities if mine else ()) or ("code_generation",)

    # ----------------------------------------------------------------- registration

    def test_plugin_registers_with_aim(self, aim_conformance: ConformanceHarness) -> None:
        aim_conformance.require_registered()

    # ----------------------------------------------------------------- detect_tool

    @pytest.mark.parametrize("situation", list(SCENARIOS))
    def test_detect_tool_never_raises(
        self, aim_conformance: ConformanceHarness, situation: str
    ) -> None:
        h = aim_conformance
        h.require_hook("detect_tool")
        behaviour = SCENARIOS[situation]
        if behaviour is not None:
            h.fake(**behaviour)
        for d in h.detect(present=behaviour is not None):
            if d.installed is False and d.ready is True:
                raise broken("detect-answers", f"{d.tool_id!r} is not installed yet ready=True")
            if d.ready is False and not (d.reason or "").strip():
                raise broken(
                    "detect-answers",
                    f"{d.tool_id!r} is not ready without a reason; say in one sentence how "
                    "to fix it",
                )
        h.done()

    def test_detect_tool_reports_a_missing_program_as_not_installed(
        self, aim_conformance: ConformanceHarness
    ) -> None:
        h = aim_conformance
        h.require_hook("detect_tool")
        tool_id = h.require_tool()
        mine = h.own(h.detect(present=False), tool_id, "no program on PATH")
        if mine.installed is not False:
            raise broken(
                "detect-absent",
                f"with an empty PATH and HOME, detect_tool says {tool_id!r} is installed "
                f"(installed={mine.installed!r}, path={mine.path!r})",
            )
        h.done()

    def test_detect_tool_declares_known_capabilities(
        self, aim_conformance: ConformanceHarness
    ) -> None:
        from aim_core.suggest import did_you_mean

        h = aim_conformance
        h.require_hook("detect_tool")
        tool_id = h.require_tool()
        h.fake(version="9.9.9")
        answers = h.detect(present=True)
        h.own(answers, tool_id, f"a working {h.program!r} on PATH")
        known = known_capabilities() | set(self.extra_capabilities)
        for d in answers:
            if not d.capabilities:
                raise broken("known-capabilities", f"{d.tool_id!r} declares no capability")
            for cap in d.capabilities:
                if not isinstance(cap, str) or cap not in known:
                    hint = did_you_mean(cap, sorted(known)) if isinstance(cap, str) else ""
                    raise broken(
                        "known-capabilities",
                        f"{d.tool_id!r} declares the capability {cap!r}{hint}; known: "
                        f"{', '.join(sorted(known))} (a new capability on purpose goes in "
                        "`extra_capabilities`)",
                    )
        h.done()

    # ----------------------------------------------------------------- get_version

    @pytest.mark.parametrize("situation", ["program-absent", "program-works"])
    def test_get_version_answers_a_string_or_none(
        self, aim_conformance: ConformanceHarness, situation: str
    ) -> None:
        h = aim_conformance
        tool_id = h.require_tool()
        h.require_hook("get_version")
        present = situation == "program-works"
        if present:
            h.fake(version="9.9.9")
        ctx = h.context(present=present, tool_id=tool_id)
        value = h.call("get_version", "version", tool_id=tool_id, context=ctx)
        if value is not None and not isinstance(value, str):
            raise broken("version", f"get_version({tool_id!r}) returned {short(value)}")
        h.done()

    # ----------------------------------------------------------------- ownership

    def test_hooks_return_none_for_tools_the_plugin_does_not_own(
        self, aim_conformance: ConformanceHarness
    ) -> None:
        h = aim_conformance
        h.require_registered()
        if not {"get_version", "invoke_capability"} & set(h.info.hooks):
            pytest.skip("the plugin implements neither get_version nor invoke_capability")
        if h.program:
            h.fake(version="9.9.9")
        if "get_version" in h.info.hooks:
            ctx = h.context(present=True, tool_id=FOREIGN_TOOL)
            value = h.call("get_version", "foreign-tools", tool_id=FOREIGN_TOOL, context=ctx)
            if value is not None:
                raise broken(
                    "foreign-tools", f"get_version({FOREIGN_TOOL!r}) returned {short(value)}"
                )
        if "invoke_capability" in h.info.hooks:
            for capability in ("code_generation", "linting"):
                value = h.call(
                    "invoke_capability",
                    "foreign-tools",
                    tool_id=FOREIGN_TOOL,
                    capability=capability,
                    payload=h.payload(),
                    context=h.context(present=True, tool_id=FOREIGN_TOOL),
                )
                if value is not None:
                    raise broken(
                        "foreign-tools",
                        f"invoke_capability({FOREIGN_TOOL!r}, {capability!r}) returned "
                        f"{short(value)}; the core calls only the owner, but a plugin must "
                        "not act for tools it does not own",
                    )
        h.done()

    # ----------------------------------------------------------------- invoke_capability

    def test_invoke_capability_fails_with_a_failure_class_when_the_program_is_missing(
        self, aim_conformance: ConformanceHarness
    ) -> None:
        h = aim_conformance
        tool_id = h.require_tool()
        h.require_hook("invoke_capability")
        capability = self._capabilities(h, tool_id)[0]
        situation = f"no {h.program!r} on PATH"
        result = h.call(
            "invoke_capability",
            "not-installed",
            tool_id=tool_id,
            capability=capability,
            payload=h.payload(),
            context=h.context(present=False, tool_id=tool_id),
        )
        if check_result(result, situation).success:
            raise broken(
                "not-installed", f"with {situation}, invoke_capability({tool_id!r}) says success"
            )
        h.done()

    @pytest.mark.parametrize("outcome", ["program-succeeds", "program-fails"])
    def test_invoke_capability_results_use_failure_classes(
        self, aim_conformance: ConformanceHarness, outcome: str
    ) -> None:
        h = aim_conformance
        tool_id = h.require_tool()
        h.require_hook("invoke_capability")
        for capability in self._capabilities(h, tool_id):
            if outcome == "program-succeeds":
                h.fake(version="9.9.9", stdout="done\n")
                does = "exits 0"
            else:
                h.fake(version="9.9.9", exit_code=1, stderr="Error: something went wrong\n")
                does = "fails (exit 1)"
            situation = f"{h.program!r} that {does}, capability {capability!r}"
            payload = h.payload()
            before = file_tree(h.root)
            result = h.call(
                "invoke_capability",
                "failure-classes",
                tool_id=tool_id,
                capability=capability,
                payload=payload,
                context=h.context(present=True, tool_id=tool_id),
            )
            check_result(result, situation)
            allowed = (*payload.files, *payload.files_scope, *payload.files_create)
            changed = changed_files(before, file_tree(h.root))
            outside = [p for p in changed if not is_within(p, allowed)]
            if outside:
                raise broken(
                    "scope",
                    f"with {situation}, invoke_capability changed {', '.join(outside)} "
                    f"(the payload's files: {', '.join(allowed)})",
                )
        h.done()

    def test_invoke_capability_returns_by_the_deadline(
        self, aim_conformance: ConformanceHarness
    ) -> None:
        h = aim_conformance
        tool_id = h.require_tool()
        h.require_hook("invoke_capability")
        capability = self._capabilities(h, tool_id)[0]
        h.fake(version="9.9.9", sleep=120)
        deadline_s = 1.0
        result = h.call(
            "invoke_capability",
            "deadline",
            timeout_s=deadline_s,
            tool_id=tool_id,
            capability=capability,
            payload=h.payload(timeout_ms=int(deadline_s * 1000)),
            context=h.context(present=True, tool_id=tool_id, timeout_s=deadline_s),
        )
        situation = f"{h.program!r} that hangs, a {deadline_s:g} s deadline"
        if check_result(result, situation).success:
            raise broken(
                "deadline",
                f"{h.program!r} hung past the deadline, yet invoke_capability says success",
            )
        h.done()

    # ----------------------------------------------------------------- validate_payload

    def test_validate_payload_returns_problems_or_none(
        self, aim_conformance: ConformanceHarness
    ) -> None:
        h = aim_conformance
        h.require_hook("validate_payload")
        own = self.tool_id
        cases: list[tuple[str | None, str | None]] = [(None, "code_generation")]
        if own:
            cases += [(own, c) for c in self._capabilities(h, own)] + [(own, None)]
        cases += [(FOREIGN_TOOL, "code_generation"), (FOREIGN_TOOL, "linting")]
        for tool_id, capability in cases:
            before = file_tree(h.root)
            value = h.call(
                "validate_payload",
                "validate-payload",
                tool_id=tool_id,
                capability=capability,
                payload=h.payload(),
                context=h.context(present=True, tool_id=tool_id),
            )
            where = f"validate_payload({tool_id!r}, {capability!r})"
            if value is not None and not (
                isinstance(value, (list, tuple)) and all(isinstance(p, Problem) for p in value)
            ):
                raise broken(
                    "validate-payload",
                    f"{where} returned {short(value)}; return None or a list of "
                    "aim_core.Problem(field=..., message=...)",
                )
            changed = changed_files(before, file_tree(h.root))
            if changed:
                raise broken("validate-payload", f"{where} changed {', '.join(changed)}")
            if tool_id == FOREIGN_TOOL and value:
                raise broken(
                    "validate-foreign",
                    f"{where} objected ({value[0].field}: {value[0].message}); an objection "
                    "moves the run off that other tool",
                )
        h.done()

    # ----------------------------------------------------------------- audit_sink

    def test_audit_sink_accepts_every_record_kind(
        self, aim_conformance: ConformanceHarness
    ) -> None:
        from aim_core.audit.emit import SINK_TIMEOUT_S

        h = aim_conformance
        h.require_hook("audit_sink")
        for kind, record in sample_records().items():
            before = copy.deepcopy(record.to_dict())
            value = h.call("audit_sink", "audit-sink", timeout_s=SINK_TIMEOUT_S, record=record)
            if value is not None:
                raise broken(
                    "audit-sink", f"audit_sink returned {short(value)} for a {kind!r} record"
                )
            if record.to_dict() != before:
                raise broken("audit-sink", f"audit_sink changed the {kind!r} record it was given")
        h.done()

    # ----------------------------------------------------------------- processes

    def test_starts_processes_only_through_context_run(
        self, aim_conformance: ConformanceHarness
    ) -> None:
        h = aim_conformance
        h.require_registered()
        tool_id = self.tool_id or FOREIGN_TOOL
        if h.program:
            h.fake(version="9.9.9")
        calls: dict[str, dict[str, Any]] = {
            "detect_tool": {"context": h.context(present=True)},
            "get_version": {"tool_id": tool_id, "context": h.context(present=True)},
            "validate_payload": {
                "tool_id": tool_id,
                "capability": "code_generation",
                "payload": h.payload(),
                "context": h.context(present=True, tool_id=tool_id),
            },
            "audit_sink": {"record": sample_records()["success"]},
        }
        if self.tool_id and "invoke_capability" in h.info.hooks:
            calls["invoke_capability"] = {
                "tool_id": tool_id,
                "capability": self._capabilities(h, tool_id)[0],
                "payload": h.payload(),
                "context": h.context(present=True, tool_id=tool_id),
            }
        for hook, kwargs in calls.items():
            if hook in h.info.hooks:
                with contextlib.suppress(PluginRuleBroken):  # other rules have their own tests
                    h.call(hook, "processes", **kwargs)
        h.done()
