"""Running a workstream's ``verify`` checks after a tool's edit.

``tests`` and ``lint`` go through aim's own plugins -- the ``testing`` and
``linting`` capabilities, routed by the coordination rules like any work -- as
read-only requests (``Invocation.read_only``: nothing may be changed or fixed);
``commands`` run through the core's process runner, never a shell, with the
same environment allow-list. Each check is bounded by the workstream's time
limit and killed with the attempt when the user stops it. Their results are
recorded in the attempt's audit record (``result.content.verification``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import frozen

from aim_core.errors import NoToolError
from aim_core.models import Failure, Invocation, InvocationResult, Verify

if TYPE_CHECKING:
    import threading

    from aim_core.context import AimContext
    from aim_core.project import Project
    from aim_core.router import Candidate
    from aim_core.runstate import RunState

log = logging.getLogger("aim")

CAPABILITY = {"tests": "testing", "lint": "linting"}
# A check tool failing this way says the check is wrong, not the edit (pytest's usage
# error "not found: tests/t.py::nope", a test runner that cannot start).
CHECK_BROKEN = (
    Failure.TOOL_ERROR,
    Failure.UNAVAILABLE,
    Failure.INVALID_PAYLOAD,
    Failure.NOT_INSTALLED,
    Failure.AUTH_REQUIRED,
)
FEEDBACK_CHARS = 4000  # of each failing check's output, in a repair's instruction
SUMMARY_CHARS = 200

ContextFactory = Callable[..., "AimContext"]
EventSink = Callable[[str, dict[str, Any]], None]


@frozen(kw_only=True)
class CheckOutcome:
    """One check after one edit.

    ``kind`` is ``tests``, ``lint`` or ``command``; ``target`` what was checked
    (the files, or the command line); ``tool_id`` the tool that ran it (None for a
    command); ``summary`` one redacted line (pytest's ``"1 failed, 2 passed in
    0.10s"``); ``output`` the end of its output (redacted, at most
    :data:`FEEDBACK_CHARS`), for a repair's instruction; ``duration_sec`` wall time.
    """

    kind: str
    target: str
    tool_id: str | None
    passed: bool
    summary: str
    output: str = ""
    duration_sec: float = 0.0
    broken: bool = False  # the check itself could not run (a usage error, no tool)

    def to_record(self) -> dict[str, Any]:
        """The shape of one entry of ``result.content.verification.checks``."""
        return {
            "kind": self.kind,
            "target": self.target,
            "tool_id": self.tool_id,
            "passed": self.passed,
            "summary": self.summary,
            "duration_sec": round(self.duration_sec, 3),
            **({"broken": True} if self.broken else {}),
        }


@frozen(kw_only=True)
class Verification:
    """Every check of one edit, in the order run (tests, lint, commands)."""

    checks: tuple[CheckOutcome, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def broken(self) -> tuple[CheckOutcome, ...]:
        """The checks that could not run at all: no edit can pass them."""
        return tuple(c for c in self.checks if c.broken)

    @property
    def failed(self) -> tuple[CheckOutcome, ...]:
        """The checks that did not pass."""
        return tuple(c for c in self.checks if not c.passed)

    def summary(self) -> str:
        """``tests tests/test_calc.py (pytest): 1 failed, 1 passed in 0.05s; ...``."""
        return "; ".join(
            f"{c.kind} {c.target}" + (f" ({c.tool_id})" if c.tool_id else "") + f": {c.summary}"
            for c in self.failed
        )

    def feedback(self) -> str:
        """What a repair attempt's instruction adds: each failing check and its output."""
        parts = []
        for c in self.failed:
            head = f"The check `{c.kind}: {c.target}` failed: {c.summary}"
            parts.append(f"{head}\n{c.output}".rstrip() if c.output else head)
        return "\n\n".join(parts)

    def to_record(self) -> dict[str, Any]:
        """``result.content.verification``: ``{"passed": bool, "checks": [...]}``."""
        return {"passed": self.passed, "checks": [c.to_record() for c in self.checks]}


def route_checks(project: Project, verify: Verify | None) -> dict[str, Candidate]:
    """The tool that runs each kind of plugin check (``tests``, ``lint``), chosen once
    per run by the rules. Raises :class:`~aim_core.errors.NoToolError` (exit 3) when a
    kind has no usable tool: aim refuses rather than calling unverified work a success."""
    from aim_core.router import candidates

    chosen: dict[str, Candidate] = {}
    if not verify:
        return chosen
    report = project.detect()
    for kind, capability in CAPABILITY.items():
        if not getattr(verify, kind):
            continue
        found = candidates(project.rules, report, capability, None)
        usable = [
            c
            for c in found
            if c.usable
            and c.state is not None
            and "invoke_capability" in project.plugins.infos[c.state.plugin].hooks
        ]
        if not usable:
            why = "; ".join(f"{c.tool_id}: {c.reason}" for c in found) or "no plugin serves it"
            raise NoToolError(
                f"no tool can run the `{capability}` capability these checks need ({why}); "
                "install one (aim status shows the hints), or remove the checks",
                field=f"verify.{kind}",
            )
        chosen[kind] = usable[0]
    return chosen


def check_tools_for(run: RunState, request: Invocation) -> dict[str, Candidate]:
    """:func:`route_checks` for a run, before any tool runs; with no tool for a kind,
    the refusal is recorded and :class:`~aim_core.errors.NoToolError` raised (exit 3)."""
    try:
        return route_checks(run.project, run.ws.verify)
    except NoToolError as e:
        run.record(
            tool_id=None, payload=request, message=str(e), attempt=0, failure=Failure.NOT_INSTALLED
        )
        raise


class CheckRunner:
    """Runs the checks of one edit in ``root`` (the directory the tool worked in).

    :param project: the repository (plugins, environment, secrets to redact).
    :param tools: what :func:`route_checks` chose.
    :param timeout_s: the time limit of each check.
    :param make_context: ``make_context(tool_id=..., deadline=..., env_passthrough=...)``
        -> the :class:`~aim_core.context.AimContext` of a check (the attempt's process
        hooks, so that stopping the attempt stops its checks).
    :param on_event: ``on_event("check", {...})`` before and after each check.
    :param stopped: true once the attempt was cut short (its checks' failures are not
        reported then).
    :param stop: the run's stop event: a check's plugin still busy once it is set is
        left behind (its process was killed by the attempt).
    """

    def __init__(
        self,
        project: Project,
        tools: Mapping[str, Candidate],
        *,
        timeout_s: float,
        make_context: ContextFactory,
        on_event: EventSink | None = None,
        workstream_id: str | None = None,
        stopped: Callable[[], bool] = lambda: False,
        stop: threading.Event | None = None,
    ):
        self.project = project
        self.tools = tools
        self.timeout_s = timeout_s
        self.make_context = make_context
        self.on_event = on_event or (lambda kind, data: None)
        self.workstream_id = workstream_id
        self.stopped = stopped
        self.stop = stop  # the run's: a plugin still busy when it is set is left behind
        # Python reads and writes bytecode only under aim's own cache (outside the
        # repository), so a .pyc a tool planted in the tree cannot answer for its source.
        prefix = project.runs_state.parent / "pycache"
        self.env = {"PYTHONPYCACHEPREFIX": str(prefix), "PYTHONDONTWRITEBYTECODE": ""}

    def run(self, verify: Verify, root: Path) -> Verification:
        """Run every check of ``verify`` in ``root``; a failing one does not stop the
        others (a repair sees them all)."""
        done: list[CheckOutcome] = []
        for kind in ("tests", "lint"):
            targets: tuple[str, ...] = getattr(verify, kind)
            if targets:
                done.append(
                    self._announced(
                        kind, " ".join(targets), partial(self._plugin, kind, targets, root)
                    )
                )
        for argv in verify.commands:
            line = " ".join(argv)
            done.append(self._announced("command", line, partial(self._command, argv, root)))
        return Verification(checks=tuple(done))

    def _announced(self, kind: str, target: str, check: Callable[[], CheckOutcome]) -> CheckOutcome:
        tool = self.tools.get(kind)
        tool_id = tool.tool_id if tool is not None else None
        event = {"kind": kind, "target": target, "tool_id": tool_id}
        self.on_event("check", {**event, "state": "running"})
        log.info(f"Checking {kind}: {target}" + (f" with {tool_id}" if tool_id else ""))
        outcome = check()
        state = "passed" if outcome.passed else "failed"
        self.on_event("check", {**event, "state": state, "summary": outcome.summary})
        if not outcome.passed and not self.stopped():  # a race's loser: killed, not failed
            log.warning(f"Check failed: {kind} {target}: {outcome.summary}")
        return outcome

    def _plugin(self, kind: str, targets: tuple[str, ...], root: Path) -> CheckOutcome:
        cand = self.tools[kind]
        assert cand.state is not None
        began = time.monotonic()
        request = Invocation(
            prompt=f"Run the {kind} checks of the workstream (change nothing).",
            files=targets,
            read_only=True,  # a check fixes nothing
            timeout_ms=int(self.timeout_s * 1000),
            max_retries=0,
            workstream_id=self.workstream_id,
        )
        ctx = self.make_context(
            root=root,
            tool_id=cand.tool_id,
            deadline=began + self.timeout_s,
            env_passthrough=cand.state.detection.env_passthrough,
            env=self.env,
        )
        args = {"tool_id": cand.tool_id, "capability": CAPABILITY[kind], "payload": request}
        from aim_core.plugins import PLUGIN_GRACE_S

        call = self.project.plugins.call(
            "invoke_capability",
            cand.state.plugin,
            {**args, "context": ctx},
            timeout_s=self.timeout_s + PLUGIN_GRACE_S,
            stop=self.stop,
        )
        environ = self.project.environ
        target = " ".join(targets)
        value = call.value if call.ok else None
        if not isinstance(value, InvocationResult):
            said = "did not finish in time" if call.timed_out else f"failed: {call.error}"
            return CheckOutcome(
                kind=kind,
                target=target,
                tool_id=cand.tool_id,
                passed=False,
                summary=one_line(f"the {cand.state.plugin} plugin {said}", environ),
                duration_sec=time.monotonic() - began,
            )
        return CheckOutcome(
            kind=kind,
            target=target,
            tool_id=cand.tool_id,
            passed=value.success,
            summary=one_line(
                _here(value.message, root) or ("failed", "passed")[value.success], environ
            ),
            output=""
            if value.success
            else _clean(_here(value.output, root), environ, FEEDBACK_CHARS),
            duration_sec=time.monotonic() - began,
            broken=not value.success and value.failure in CHECK_BROKEN,
        )

    def _command(self, argv: tuple[str, ...], root: Path) -> CheckOutcome:
        began = time.monotonic()
        ctx = self.make_context(
            root=root, tool_id=None, deadline=began + self.timeout_s, env=self.env
        )
        r = ctx.run(list(argv))
        environ = self.project.environ
        output = "\n".join(t for t in (r.stdout, r.stderr) if t.strip())
        if r.timed_out:
            summary = f"did not finish in {self.timeout_s:g} s (stopped)"
        elif r.exit_code == 0:
            summary = "exit code 0"
        else:
            last = [ln for ln in output.splitlines() if ln.strip()]
            summary = f"exit code {r.exit_code}" + (f": {last[-1].strip()}" if last else "")
        passed = r.exit_code == 0 and not r.timed_out
        return CheckOutcome(
            kind="command",
            target=" ".join(argv),
            tool_id=None,
            passed=passed,
            summary=one_line(summary, environ),
            output="" if passed else _clean(output, environ, FEEDBACK_CHARS),
            duration_sec=time.monotonic() - began,
        )


def _here(text: str, root: Path) -> str:
    """``text`` with the directory the check ran in written as the repository's own
    paths (a race's copy lives elsewhere: its path means nothing to the reader)."""
    return text.replace(f"{root}/", "") if text else text


def _clean(text: str, environ: Mapping[str, str], limit: int) -> str:
    """The end of ``text``, printable and without credentials."""
    from aim_core.audit.records import printable
    from aim_core.display import strip_ansi
    from aim_core.security import redact_text

    text = text[-limit * 2 :] if len(text) > limit * 2 else text
    cleaned = redact_text(printable(strip_ansi(text)), environ)
    return cleaned[-limit:] if len(cleaned) > limit else cleaned


def one_line(text: str, environ: Mapping[str, str]) -> str:
    """The first meaningful line of ``text``, redacted and capped."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return _clean(line, environ, SUMMARY_CHARS)


def add_touched(
    verification: Verification, touched: list[str], environ: Mapping[str, str]
) -> Verification:
    """``verification`` with one more, failed check: files in scope changed while the
    checks ran (by a check, or by you), so what passed is not what is there. Marked
    broken: no other tool can do better, and nothing is undone."""
    names = ", ".join(touched)
    changed = CheckOutcome(
        kind="scope",
        target=one_line(names, environ),
        tool_id=None,
        passed=False,
        broken=True,
        summary=one_line(
            f"{names} changed while the checks ran (by a check, or by you): what they "
            "passed is not what is there; left as it is",
            environ,
        ),
    )
    return Verification(checks=(*verification.checks, changed))
