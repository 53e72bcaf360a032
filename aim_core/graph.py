"""``aim run`` with several workstreams: a graph by ``depends_on``, ``-j`` in parallel.

A workstream runs when everything it depends on succeeded; a failed (or
skipped) dependency skips its dependents, with the reason. A dependency that
is not part of this command counts as met only if the audit shows it
succeeded before. Two workstreams whose files overlap never work at the same
time (the run lock table makes the second wait).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from aim_core.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_WORK_FAILED, AimError
from aim_core.log import current_workstream
from aim_core.models import Workstream
from aim_core.project import Project
from aim_core.request import new_run_id
from aim_core.runner import Runner
from aim_core.runresult import RunResult, exit_code_for
from aim_core.values import Value
from aim_core.workstream import (
    check_graph,
    display_path,
    expand_paths,
    repository_ids,
    verdict_for,
)

log = logging.getLogger("aim")
STOP_POLL_S = 0.1  # how often the graph's loop looks for a stop a signal noted


def succeeded_before(project: Project, ids: set[str]) -> set[str]:
    """Which of ``ids`` have a successful record in the audit log."""
    if not ids:
        return set()
    from aim_core.audit.jsonl import JsonlAuditLog
    from aim_core.paths import AUDIT_DIRNAME

    found: set[str] = set()
    needles = {i: f'"workstream_id":{json.dumps(i)}'.encode() for i in ids}
    for _, _, line in JsonlAuditLog(project.registry / AUDIT_DIRNAME).iter_lines():
        for ident, needle in needles.items():
            if needle in line and b'"success":true' in line:
                found.add(ident)
    return found


class Loaded(Value):
    """A valid workstream and how to name its file in messages."""

    __slots__ = ("display", "workstream")
    workstream: Workstream
    display: str

    def __init__(self, *, workstream: Workstream, display: str) -> None:
        self._init(workstream=workstream, display=display)


def load_all(project: Project, paths: list[Path]) -> list[Loaded]:
    """Load and check every file; raise :class:`AimError` listing every problem."""
    files = expand_paths(paths)
    if not files:
        raise AimError("no workstream files found in the paths given")
    caps = project.known_capabilities()
    verdicts = [
        verdict_for(f, display_path(f, project.root), known_capabilities=caps, root=project.root)
        for f in files
    ]
    verdicts = check_graph(verdicts, repository_ids(project.root))
    problems = [e for v in verdicts for e in v.errors]
    for v in verdicts:
        for w in v.warnings:
            log.warning(w)
    if problems:
        from aim_core.errors import WorkstreamError

        raise WorkstreamError(problems[0], problems=problems)
    return [Loaded(workstream=v.workstream, display=v.display) for v in verdicts if v.workstream]


def _skipped(v: Loaded, reason: str) -> RunResult:
    ws = v.workstream
    return RunResult(
        run_id="",
        workstream_id=ws.id if ws else None,
        capability=ws.capability if ws else None,
        success=False,
        exit_code=EXIT_WORK_FAILED,
        message=f"Skipped: {reason}",
        source=v.display,
    )


class PlannedTool(Value):
    """One candidate of a dry run: the tool, its role, and what would happen to it
    (``state``: ``would run``, ``fallback, ready``, ``skip (<failure>): <reason>``)."""

    __slots__ = ("role", "state", "tool_id")
    tool_id: str
    role: str
    state: str

    def __init__(self, *, tool_id: str, role: str, state: str) -> None:
        self._init(tool_id=tool_id, role=role, state=state)


class PlannedRun(Value):
    """What ``aim run --dry-run`` shows for one workstream: ``what`` is ``capability
    linting`` or ``tool ruff directly``; ``checks`` such as ``tests tests/test_calc.py``
    or ``command python -m mypy x.py``."""

    __slots__ = (
        "checks",
        "depends_on",
        "may_change",
        "race",
        "source",
        "tools",
        "what",
        "workstream_id",
    )
    workstream_id: str
    source: str
    what: str
    depends_on: tuple[str, ...]
    tools: tuple[PlannedTool, ...]
    may_change: tuple[str, ...]
    checks: tuple[str, ...]
    race: int

    def __init__(
        self,
        *,
        workstream_id: str,
        source: str,
        what: str,
        depends_on: tuple[str, ...],
        tools: tuple[PlannedTool, ...],
        may_change: tuple[str, ...],
        checks: tuple[str, ...] = (),
        race: int = 1,
    ) -> None:
        self._init(
            workstream_id=workstream_id,
            source=source,
            what=what,
            depends_on=depends_on,
            tools=tools,
            may_change=may_change,
            checks=checks,
            race=race,
        )


def plan(project: Project, verdicts: list[Loaded]) -> list[PlannedRun]:
    """The dry run: each workstream in dependency order with its candidate tools."""
    from aim_core.router import candidates

    report = project.detect()
    out = []
    for v in _topological(verdicts):
        ws = v.workstream
        routed = bool(ws.capability) and project.settings.enable_aim
        tools, first = [], True
        for c in candidates(project.rules, report, ws.capability if routed else None, ws.tool):
            if c.usable:
                state = "would run" if first else "fallback, ready"
                first = False
            else:
                state = f"skip ({c.skip.value if c.skip else 'unavailable'}): {c.reason}"
            tools.append(PlannedTool(tool_id=c.tool_id, role=c.role, state=state))
        out.append(
            PlannedRun(
                workstream_id=ws.id,
                source=v.display,
                what=f"capability {ws.capability}" if routed else f"tool {ws.tool} directly",
                depends_on=ws.depends_on,
                tools=tuple(tools),
                may_change=tuple(ws.writable_files()),
                checks=_checks_of(ws),
                race=ws.race or 1,
            )
        )
    return out


def _checks_of(ws: Workstream) -> tuple[str, ...]:
    if not ws.verify:
        return ()
    out = [f"{kind} {' '.join(getattr(ws.verify, kind))}" for kind in ("tests", "lint")]
    out += [f"command {' '.join(argv)}" for argv in ws.verify.commands]
    return tuple(line for line in out if line.split(" ", 1)[1:] != [""])


def run_graph(
    runner: Runner,
    verdicts: list[Loaded],
    *,
    jobs: int = 1,
    on_result: Callable[[RunResult], None] | None = None,
) -> int:
    """Run every workstream as a graph by ``depends_on``, up to ``jobs`` at once.

    :param runner: runs each workstream (its ``on_event`` hears ``start`` too).
    :param on_result: called with each :class:`RunResult` as it is known (skipped
        ones included), in the order they end.
    :returns: the exit code of the whole (:func:`exit_code_for`; 130 when stopped).
    """
    state = _GraphState(runner, verdicts, on_result)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="aim-run") as pool:
        while state.pending or state.running:
            state.start_ready(pool, jobs)
            if not state.running:
                if state.pending and not _stopping(runner):
                    continue  # progress was made above; re-examine
                break
            state.collect()
    if state.interrupted or _stopping(runner):
        for ident in state.pending:
            state.results[ident] = _skipped(state.by_id[ident], "interrupted before it started")
        return EXIT_INTERRUPTED
    return exit_code_for(list(state.results.values()))


class _GraphState:
    def __init__(
        self,
        runner: Runner,
        verdicts: list[Loaded],
        on_result: Callable[[RunResult], None] | None,
    ):
        self.runner = runner
        self.by_id: dict[str, Loaded] = {v.workstream.id: v for v in verdicts}
        external = {d for v in verdicts for d in v.workstream.depends_on if d not in self.by_id}
        self.met_outside = succeeded_before(runner.project, external)
        self.results: dict[str, RunResult] = {}
        self.pending = dict(self.by_id)
        self.running: dict[Future[RunResult], str] = {}
        self.on_result = on_result or (lambda r: None)
        self.interrupted = False
        self.prefix = len(self.by_id) > 1

    def start_ready(self, pool: ThreadPoolExecutor, jobs: int) -> None:
        for ident in list(self.pending):
            ws: Workstream = self.pending[ident].workstream
            blocked = _blocked_by(ws, self.results, self.by_id, self.met_outside)
            if blocked is not None:
                self.results[ident] = _skipped(self.pending.pop(ident), blocked)
                self.on_result(self.results[ident])
                log.warning(f"{ident}: {self.results[ident].message}")
            elif (
                all(d in self.met_outside or _ok(self.results.get(d)) for d in ws.depends_on)
                and len(self.running) < jobs
                and not _stopping(self.runner)
            ):
                v = self.pending.pop(ident)
                if self.runner.on_event is not None:
                    self.runner.on_event(ident, "start", {})
                self.running[pool.submit(_run_one, self.runner, v, self.prefix)] = ident

    def collect(self) -> None:
        runner = self.runner
        try:
            if runner.stop_noted and not runner.stop.is_set():
                runner.request_stop()  # a signal asked for it (see Runner.stop_noted)
            done, _ = wait(list(self.running), timeout=STOP_POLL_S, return_when=FIRST_COMPLETED)
        except KeyboardInterrupt:  # where SIGINT raises (a program embedding aim)
            self.interrupted = True
            runner.request_stop()
            return
        for fut in done:
            ident = self.running.pop(fut)
            self.results[ident] = _result(fut, self.by_id[ident])
            self.on_result(self.results[ident])


def _stopping(runner: Runner) -> bool:
    """Stopped, or a signal asked for it (``Runner.stop_noted``)."""
    return runner.stop.is_set() or runner.stop_noted


def _ok(result: RunResult | None) -> bool:
    return result is not None and result.success


def _blocked_by(
    ws: Workstream,
    results: dict[str, RunResult],
    by_id: dict[str, Loaded],
    met_outside: set[str],
) -> str | None:
    for dep in ws.depends_on:
        if dep in by_id:
            r = results.get(dep)
            if r is not None and not r.success:
                return f"its dependency {dep} did not succeed"
        elif dep not in met_outside:
            return (
                f"its dependency {dep} is not part of this run and the audit shows no "
                "successful run of it; run it first or pass its file too"
            )
    return None


def _run_one(runner: Runner, v: Loaded, prefix: bool) -> RunResult:
    token = current_workstream.set(v.workstream.id if prefix else None)
    try:
        return runner.run(v.workstream, run_id=new_run_id(), source=v.display)
    finally:
        current_workstream.reset(token)


def _result(fut: Future[RunResult], v: Loaded) -> RunResult:
    try:
        r = fut.result()
    except AimError as e:
        log.error(str(e))
        return RunResult(
            run_id="",
            workstream_id=v.workstream.id,
            capability=v.workstream.capability,
            success=False,
            exit_code=e.exit_code,
            message=str(e),
            source=v.display,
        )
    except Exception as e:  # a bug: keep the other workstreams going, report it
        log.error(f"{v.workstream.id}: internal error: {type(e).__name__}: {e}")
        return RunResult(
            run_id="",
            workstream_id=v.workstream.id,
            capability=v.workstream.capability,
            success=False,
            exit_code=EXIT_INTERNAL,
            message=f"internal error: {type(e).__name__}: {e}",
            source=v.display,
        )
    import attrs

    return attrs.evolve(r, source=v.display)


def _topological(verdicts: list[Loaded]) -> list[Loaded]:
    by_id = {v.workstream.id: v for v in verdicts}
    out: list[Loaded] = []
    seen: set[str] = set()
    for v in verdicts:  # depth first, without recursion: a chain may be thousands long
        root = v.workstream.id
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(by_id[root].workstream.depends_on))]
        while stack:
            ident, deps = stack[-1]
            d = next(deps, None)
            if d is None:
                stack.pop()
                out.append(by_id[ident])
                continue
            if d in seen or d not in by_id:
                continue
            seen.add(d)
            stack.append((d, iter(by_id[d].workstream.depends_on)))
    return out
