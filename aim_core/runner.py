"""``aim run`` for one workstream: the candidate loop, the retry and repair policy.

A :class:`Runner` owns what the runs of one command share: the stop event, the live
runs, the cooldowns, the plugins (through the project), the audit emitter and the
cost limit. :meth:`Runner.run` checks the request once, then tries the candidates
in order (the rules' primary, the workstream's ``tool``, the fallbacks; the first K at
once with a race), each try an :class:`~.attempt.Attempt`; the first success ends it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from aim_core.attempt import Attempt, AttemptOutcome
from aim_core.budget import BudgetStop, RunBudget, record_stop
from aim_core.budget import check as budget_check
from aim_core.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WORK_FAILED,
    AimError,
    Interrupted,
)
from aim_core.models import Failure, Invocation, Workstream
from aim_core.paths import AUDIT_DIRNAME, RUNS_DIRNAME
from aim_core.request import invocation_for, new_run_id, with_feedback
from aim_core.retry import Cooldowns, attempt_delay
from aim_core.router import announce, capability_for
from aim_core.runendings import interrupted_message, nothing_available
from aim_core.runresult import RunResult, exit_code_for
from aim_core.runstate import EventSink, RunState

if TYPE_CHECKING:
    from aim_core.project import Project
    from aim_core.router import Candidate

log = logging.getLogger("aim")

__all__ = ["Cooldowns", "RunResult", "Runner", "exit_code_for", "new_run_id"]


class Runner:
    """Runs workstreams of one project; reusable, and safe for several threads at once.

    :param project: the repository, its settings, rules and plugins.
    :param cooldowns: shared with other runners, or a new one.
    :param on_event: ``on_event(workstream_id, kind, data)`` for each ``attempt``,
        ``check``, ``skip`` and ``done`` of every run (progress views).
    :param budget: the cost limit of everything this runner runs (default: the
        config's ``max_cost_usd``).
    :param race: race this many candidates of every workstream (``aim run --race``;
        default: each workstream's ``race``, else one tool at a time).
    """

    def __init__(
        self,
        project: Project,
        *,
        cooldowns: Cooldowns | None = None,
        on_event: Callable[[str, str, dict[str, Any]], None] | None = None,
        budget: RunBudget | None = None,
        race: int | None = None,
    ):
        self.project = project
        self.cooldowns = cooldowns or Cooldowns()
        self.budget = budget or RunBudget(project.settings.max_cost_usd)
        self.race = race
        self.stop = threading.Event()
        self.stop_noted = False  # by a signal handler (no lock); run_graph then stops
        self.on_event = on_event
        self._live: set[RunState] = set()
        self._lock = threading.Lock()

    def request_stop(self) -> None:
        """Stop every run of this runner: kill their tools' trees; each run then restores
        its files, records the attempt as ``interrupted`` and ends with exit code 130."""
        self.stop.set()
        with self._lock:
            runs = list(self._live)
        for run in runs:
            for attempt in [run.current, *run.racing]:
                if attempt is not None:
                    attempt.stop_tool()

    def close(self) -> None:
        """Let the audit sinks flush what they queued (``audit_flush``)."""
        self.project.audit.flush()

    def run(
        self, ws: Workstream, *, source: str | None = None, run_id: str | None = None
    ) -> RunResult:
        """Run one loaded workstream. Bad input raises :class:`~aim_core.AimError`
        (exit code 2); everything else is in the :class:`RunResult`."""
        project = self.project
        if not project.has_registry:
            raise AimError(
                f"no registry at {project.registry}; run 'aim init' in the repository root first"
            )
        routed = bool(ws.capability) and project.settings.enable_aim
        if not routed and not ws.tool:
            raise AimError(
                "AIM routing is off (enable_aim: false) and the workstream names no `tool` to "
                "invoke directly; add a tool or set enable_aim: true",
                file=source,
                field="tool",
            )
        from aim_core.recovery import recover_dead_runs

        project.audit.check_head()  # a log cut short is exit 4 before any tool runs
        recover_dead_runs(project)
        run = self._new_run(ws, source, run_id or new_run_id(), routed)
        with self._lock:
            self._live.add(run)
        try:
            result = self._route(run)
        except Interrupted:
            result = run.result(False, EXIT_INTERRUPTED, interrupted_message(run))
        finally:
            with self._lock:
                self._live.discard(run)
            if run.active is not None:
                run.active.release()
            _tidy(project.runs_state / run.run_id)
            project.audit.sync_head()
        run.runlog.write(f"run {run.run_id}: exit {result.exit_code}: {result.message}")
        run.on_event("done", {"success": result.success, "exit_code": result.exit_code})
        if project.settings.enable_audit_logging:
            from aim_core.audit.prune import prune_if_due

            retention = project.settings.audit_log_retention_days
            prune_if_due(project.registry / AUDIT_DIRNAME, retention)
        return attrs.evolve(result, source=source, log_path=str(run.runlog.path))

    def _new_run(self, ws: Workstream, source: str | None, run_id: str, routed: bool) -> RunState:
        from aim_core.runlog import RunLog

        runs_dir = self.project.registry / RUNS_DIRNAME
        runlog = RunLog(runs_dir / f"{run_id}.log", RunLog.secrets_from_env(self.project.environ))
        runlog.write(f"run {run_id}: workstream {ws.id} ({source or 'in memory'})")
        on_event: EventSink | None = None
        if self.on_event is not None:
            forward = self.on_event
            on_event = lambda kind, data: forward(ws.id, kind, data)  # noqa: E731
        run = RunState(
            project=self.project,
            ws=ws,
            run_id=run_id,
            capability=ws.capability if routed else None,
            routed=routed,
            runlog=runlog,
            stop=self.stop,
            source=source,
        )
        if on_event is not None:
            run.on_event = on_event
        return run

    # ----------------------------------------------------------------- the candidate loop

    def _route(self, run: RunState) -> RunResult:
        from aim_core import admission

        request = invocation_for(run.ws, self.project.settings)
        if run.routed:
            log.info(f"Executing capability '{run.ws.capability}' via AIM")
        else:
            why = "enable_aim: false" if run.ws.capability else "no capability"
            log.info(f"Invoking tool '{run.ws.tool}' directly ({why})")
        problems = admission.workstream_problems(self.project, request, run.capability)
        if problems:
            admission.refuse(run, request, problems)
        if run.ws.verify:  # the checks' module is imported only for work that has checks
            from aim_core.checks import check_tools_for

            run.check_tools = check_tools_for(run, request)
        queued = list(enumerate(self._candidates(run)))
        size = 1  # one tool at a time needs no import of the races' module
        if not queued or self.race or (run.ws.race or 1) != 1:
            from aim_core.race import race_size

            size = race_size(self.race, run, len(queued))
        self._join_table(run)
        last: AttemptOutcome | None = None
        if size > 1:
            last, queued = self._race(run, queued, size)
            if last is not None and last.success:
                return self._finished(run, last)
        for n, cand in queued:
            announce(cand, n)
            prepared = self._prepare(run, cand)
            if prepared is None:
                continue
            last = self._try_tool(run, cand, *prepared)
            if last.success:
                return self._finished(run, last)
            if last.failure is not None and (last.failure.ends_workstream or last.check_broken):
                break
        if last is None:
            return nothing_available(run, request)
        return self._finished(run, last)

    def _prepare(self, run: RunState, cand: Candidate) -> tuple[str | None, Invocation] | None:
        """The capability and request for ``cand``, or None when it is skipped (not
        usable now, or it objects to the request; the skip is recorded)."""
        from aim_core import admission
        from aim_core.security import redact_prompt

        if not self._usable(run, cand):
            return None
        capability = capability_for(run.capability, cand)
        payload = redact_prompt(
            invocation_for(run.ws, self.project.settings, cand.tool_id),
            self.project.rules.security,
        )
        objections = admission.tool_problems(self.project, cand.tool_id, capability, payload)
        if objections:
            text = f"{cand.tool_id} cannot take this request: {admission.describe(objections)}"
            run.skip(cand.tool_id, Failure.INVALID_PAYLOAD, text)
            return None
        return capability, payload

    def _race(
        self, run: RunState, queued: list[tuple[int, Candidate]], size: int
    ) -> tuple[AttemptOutcome | None, list[tuple[int, Candidate]]]:
        """Race the first ``size`` usable candidates; the race's result (the winner, or
        the last failure) and the candidates left for one at a time."""
        from aim_core.race import Race

        entries: list[tuple[Candidate, str | None, Invocation]] = []
        while queued and len(entries) < size:
            n, cand = queued.pop(0)
            announce(cand, n)
            prepared = self._prepare(run, cand)
            if prepared is not None:
                entries.append((cand, *prepared))
        if not entries:
            return None, queued
        stop, _left = self._budget(run)
        if stop is not None:
            return record_stop(run, stop, entries[0][2], entries[0][0].tool_id), []
        race = Race(run, entries, affordable=lambda: self._budget(run)[0] is None)
        run.attempts.extend(outcomes := race.run_race())
        for outcome in outcomes:
            self.budget.add(outcome.usage.cost_usd if outcome.usage else None)
        return race.result(outcomes), ([] if race.spoiled else queued)  # spoiled: no more

    def _join_table(self, run: RunState) -> None:
        from aim_core.recovery import recover_dead_runs
        from aim_core.runlocks import RunTable

        table = RunTable(self.project.runs_state)
        run.active = table.join(
            run.run_id,
            self.project.root,
            run.ws.writable_files(),
            info={"workstream_id": run.ws.id},
            on_wait=run.waiting,
            stop=self.stop,
            recover=lambda: recover_dead_runs(self.project),
        )
        run.done_waiting()

    def _candidates(self, run: RunState) -> list[Candidate]:
        from aim_core.router import candidates, recheck_negative

        report = self.project.detect()
        found = candidates(self.project.rules, report, run.capability, run.ws.tool)
        found = recheck_negative(self.project, found, run.capability)
        if not found:
            raise AimError(
                f"no tool is routed for capability '{run.capability}' and no plugin serves it; "
                "add it to the coordination rules or set `tool`",
                field="capability",
            )
        return found

    def _usable(self, run: RunState, cand: Candidate) -> bool:
        """Whether ``cand`` can be invoked now; when not, the skip is recorded."""
        if not cand.usable or cand.state is None:
            run.skip(cand.tool_id, cand.skip, cand.reason)
            return False
        if self.cooldowns.cooling(cand.tool_id):
            reason = (
                f"{cand.tool_id} failed {self.cooldowns.failures} times in this run; cooling down"
            )
            run.skip(cand.tool_id, Failure.UNAVAILABLE, reason)
            return False
        if "invoke_capability" not in self.project.plugins.infos[cand.state.plugin].hooks:
            reason = (
                f"the {cand.state.plugin} plugin detects {cand.tool_id} but cannot run it "
                "(it has no invoke_capability); upgrade the plugin"
            )
            run.skip(cand.tool_id, Failure.UNAVAILABLE, reason)
            return False
        return True

    # ----------------------------------------------------------------- the retry policy

    def _try_tool(
        self, run: RunState, cand: Candidate, capability: str | None, payload: Invocation
    ) -> AttemptOutcome:
        """Try one tool: up to ``max_retries`` retries of retryable failures and up to
        ``max_repairs`` repairs of edits that failed their checks; the last attempt."""
        outcome: AttemptOutcome | None = None
        n = repairs = 0
        request, repairing = payload, False
        while True:
            stop, left = self._budget(run)
            if stop is not None:
                return record_stop(run, stop, payload, cand.tool_id)
            if repairing:
                log.info(f"Asking {cand.tool_id} to repair its edit with the failing output")
            n += 1
            outcome = self._attempt(
                run, cand, capability, attrs.evolve(request, max_cost_usd=left), n, repairs
            )
            if outcome.success:
                log.info(outcome.message)
                return outcome
            failure = outcome.failure or Failure.TOOL_ERROR
            if self._blames_tool(failure, payload):
                self.cooldowns.failed(cand.tool_id)
            log.warning(f"{cand.tool_id} failed (attempt {n}): {outcome.message}")
            if outcome.check_broken:
                break
            if failure is Failure.VERIFY_FAILED and repairs < payload.max_repairs:
                repairs += 1
                assert outcome.verification is not None
                request, repairing = with_feedback(payload, outcome.verification.feedback()), True
                continue
            repairing = False
            if not failure.retryable or n - repairs > payload.max_retries:
                break
            if self.cooldowns.cooling(cand.tool_id):
                break
            delay = attempt_delay(n - repairs, outcome.retry_after_s)
            log.info(f"Retrying {cand.tool_id} in {delay:g} s")
            if self.stop.wait(delay):
                raise Interrupted()
        return outcome

    def _attempt(
        self,
        run: RunState,
        cand: Candidate,
        capability: str | None,
        payload: Invocation,
        n: int,
        repair: int,
    ) -> AttemptOutcome:
        attempt = Attempt(run, cand, capability, payload, n, repair=repair)
        run.current = attempt
        try:
            outcome = attempt.execute()
        finally:
            run.current = None
        run.attempts.append(outcome)
        self.budget.add(outcome.usage.cost_usd if outcome.usage else None)
        return outcome

    # ----------------------------------------------------------------- checks and budgets

    def _budget(self, run: RunState) -> tuple[BudgetStop | None, float | None]:
        return budget_check(run.ws.payload.max_cost_usd, run.spent_usd, self.budget)

    def _blames_tool(self, failure: Failure, payload: Invocation) -> bool:
        """Whether a failure counts toward the tool's cooldown: its health, not the work,
        and not a timeout the workstream's own shorter ``timeout_ms`` caused."""
        if not failure.counts_against_tool:
            return False
        default_ms = self.project.settings.default_timeout_ms
        return not (failure is Failure.TIMEOUT and payload.timeout_ms < default_ms)

    # ----------------------------------------------------------------- endings

    def _finished(self, run: RunState, last: AttemptOutcome) -> RunResult:
        if not last.success:
            log.error(last.message)
        code = EXIT_OK if last.success else EXIT_WORK_FAILED
        return run.result(last.success, code, last.message, last)


def _tidy(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()  # the run's snapshot directory, empty once every attempt ended
