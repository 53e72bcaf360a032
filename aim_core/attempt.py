"""One attempt of one tool: workspace → run table → invoke → measured changes →
scope check → keep or restore → audit, returning a typed :class:`AttemptOutcome`.

Every path that invokes a tool ends with exactly one audit record of the
attempt: success, a failure, or ``interrupted`` when the user stopped it. What
went wrong travels as typed values (:class:`~aim_core.models.Failure`, paths,
:class:`~aim_core.models.FileChanges`) from the check to the record.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from attrs import field, frozen

from aim_core import process, proctree
from aim_core.errors import Interrupted
from aim_core.gitmeta import GitState
from aim_core.models import Failure, FileChanges, Invocation, InvocationResult, Usage
from aim_core.paths import AUDIT_DIRNAME, RUNS_DIRNAME
from aim_core.scope import Scope
from aim_core.treestate import WorkspaceRefused
from aim_core.workspace import InPlaceWorkspace, Workspace

if TYPE_CHECKING:
    from aim_core.checks import Verification
    from aim_core.models import ProcessResult
    from aim_core.plugins import CallOutcome
    from aim_core.router import Candidate
    from aim_core.runstate import RunState

log = logging.getLogger("aim")

TURN_LOCK = ".tool-turn.lock"
INTERRUPTED_MESSAGE = "Interrupted: the tool was stopped and the files in scope restored"


def capability_title(capability: str | None) -> str:
    """``code_generation`` -> ``Code generation`` (the guide's log line)."""
    if not capability:
        return "Work"
    text = capability.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


@frozen(kw_only=True)
class AttemptOutcome:
    """What one attempt came to. ``failure`` is None exactly when it succeeded.

    ``changes`` are the files in scope the attempt changed (kept on success,
    restored otherwise); ``outside`` the repository paths outside the scope it
    changed (always reverted); ``git_restored`` git's own state it changed (HEAD,
    refs, index, stash: put back, the work kept uncommitted); ``duration_sec`` the
    wall time of the invocation (its checks included); ``verification`` the
    results of the workstream's ``verify`` checks (None when there are none or
    the edit never reached them); ``repair`` which repair of the tool's failed
    edit this was (0: not a repair); ``diff`` the edit's line counts
    (``{"files", "lines_added", "lines_removed"}``, None when nothing changed).
    """

    tool_id: str
    attempt: int
    message: str
    failure: Failure | None
    exit_code: int | None = None
    duration_sec: float = 0.0
    changes: FileChanges = field(factory=FileChanges)
    outside: tuple[str, ...] = ()
    git_restored: tuple[str, ...] = ()
    retry_after_s: float | None = None
    usage: Usage | None = None
    verification: Verification | None = None
    repair: int = 0
    diff: dict[str, int] | None = None

    @property
    def check_broken(self) -> bool:
        """True when a ``verify`` check could not run at all (no edit can pass it)."""
        return self.verification is not None and bool(self.verification.broken)

    @property
    def success(self) -> bool:
        """True when the attempt succeeded."""
        return self.failure is None

    @property
    def files_created(self) -> tuple[str, ...]:
        """Files the attempt created (kept only on success)."""
        return self.changes.created if self.success else ()

    @property
    def files_modified(self) -> tuple[str, ...]:
        """Files the attempt modified or deleted (kept only on success)."""
        return (*self.changes.modified, *self.changes.deleted) if self.success else ()

    def to_json(self) -> dict[str, Any]:
        """The shape ``aim run --json`` prints for each attempt."""
        return {
            "tool_id": self.tool_id,
            "attempt": self.attempt,
            "success": self.success,
            "message": self.message,
            "failure": self.failure.value if self.failure else None,
            "exit_code": self.exit_code,
            "duration_sec": round(self.duration_sec, 3),
            "files_created": list(self.files_created),
            "files_modified": list(self.files_modified),
            "retry_after_s": self.retry_after_s,
            "usage": self.usage.to_dict() if self.usage else None,
            "verification": self.verification.to_record() if self.verification else None,
            "repair": self.repair,
        }


@contextlib.contextmanager
def tool_turn(run: RunState, tool_id: str) -> Iterator[None]:
    """Tools of one repository take turns: an attempt in place cannot tell its tool's
    writes outside the scope from another tool's, so two never overlap (the lock
    lives in the machine-local state, with the run table). A race takes one turn
    for all its candidates. Raises :class:`Interrupted` when the run is stopped
    while it waits."""
    from aim_core.locks import FileLock

    lock = FileLock(run.project.runs_state / TURN_LOCK)
    said = False
    while not lock.acquire(blocking=False):
        if not said:
            log.info(f"Waiting for another tool working in this repository ({tool_id} next)")
            said = True
        if run.stop.wait(0.1):
            raise Interrupted()
    try:
        yield
    finally:
        lock.release()


MAX_CREDIBLE_COST_USD = 1_000_000.0  # one attempt reporting more is a bug, not a bill


def sane_usage(usage: Usage) -> Usage | None:
    """What a tool reported, kept only where it can be true: token counts whole and not
    negative, a cost finite and not negative (a NaN would switch off the cost limits
    and is not JSON; a negative cost would give credit). None when nothing is left."""
    import math

    def count(v: object) -> int | None:
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    cost = usage.cost_usd
    number = isinstance(cost, (int, float)) and not isinstance(cost, bool)
    if not number or not math.isfinite(cost) or not 0 <= cost <= MAX_CREDIBLE_COST_USD:  # type: ignore[arg-type,operator]
        cost = None
    model = usage.model if isinstance(usage.model, str) else None
    clean = Usage(
        input_tokens=count(usage.input_tokens),
        output_tokens=count(usage.output_tokens),
        cost_usd=cost,
        model=model,
    )
    return None if clean == Usage() else clean


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


class Attempt:
    """One invocation of one tool for a run (see the module docstring).

    :param run: the run it belongs to.
    :param candidate: the tool (its detection says its caches and variables).
    :param capability: the capability asked of the tool.
    :param payload: the request, already redacted.
    :param number: which try of this tool it is (1-based), as the guide counts.
    :param repair: which repair of a failed check this is (0: none).
    """

    def __init__(
        self,
        run: RunState,
        candidate: Candidate,
        capability: str | None,
        payload: Invocation,
        number: int,
        repair: int = 0,
    ):
        assert candidate.state is not None
        self.run = run
        self.candidate = candidate
        self.tool_id = candidate.tool_id
        self.plugin = candidate.state.plugin
        self.detection = candidate.state.detection
        self.capability = capability
        self.payload = payload
        self.number = number
        self.repair = repair
        self.tool_pid: int | None = None
        self.token = proctree.new_token()  # marks every process of this attempt
        self._logged: set[str] = set()
        self.cancelled: str | None = None  # why the attempt was cut short (a lost race)
        self.touched: list[str] = []  # files in scope changed while the checks ran
        self.extra_content: dict[str, Any] = {}  # more of the record's result.content

    # ----------------------------------------------------------------- the flow

    def execute(self) -> AttemptOutcome:
        """Do the attempt and record it; raise :class:`Interrupted` when stopped, and
        :class:`~aim_core.treestate.WorkspaceRefused` (recorded) when aim could not
        undo what the tool might change."""
        with self._turn():
            return self._execute()

    def _turn(self) -> contextlib.AbstractContextManager[None]:
        return tool_turn(self.run, self.tool_id)

    def _execute(self) -> AttemptOutcome:
        try:
            workspace = self._open_workspace()
        except WorkspaceRefused as e:
            self.run.record(
                tool_id=self.tool_id,
                payload=self.payload,
                message=f"Refused before {self.tool_id} ran: {e.message}",
                attempt=self.number,
                failure=Failure.INVALID_PAYLOAD,
                capability=self.capability,
            )
            raise
        began = time.monotonic()
        try:
            try:
                call = self._invoke(workspace, began)
            except BaseException:
                self._abandon(workspace, began)
                raise
            if self.run.stop.is_set():
                self._abandon(workspace, began)
                raise Interrupted()
            return self._conclude(workspace, call, began)
        finally:
            self._attempt_ended()
            workspace.discard()

    def _attempt_ended(self) -> None:
        if self.run.active is not None:
            self.run.active.update(state="done", tool_pid=None)

    def _open_workspace(self) -> Workspace:
        project, run = self.run.project, self.run
        snap_dir = project.runs_state / run.run_id / f"attempt-{len(run.attempts) + 1}"
        shutil.rmtree(snap_dir, ignore_errors=True)
        try:
            workspace = self._new_workspace(snap_dir)
        except BaseException:
            shutil.rmtree(snap_dir, ignore_errors=True)
            raise
        if run.active is not None:
            run.active.update(
                snapshot=str(snap_dir),
                state="attempting",
                tool_id=self.tool_id,
                tool_mark=self.token,  # before anything starts: recovery finds it all
                tool_pid=None,
                capability=self.capability,
                attempt=self.number,
            )
        return workspace

    def _new_workspace(self, snap_dir: Path) -> Workspace:
        """Where this attempt works: the user's tree, snapshotted in ``snap_dir``."""
        project = self.run.project
        return InPlaceWorkspace(project.root, self.scope(), snap_dir, **self.guards())

    def scope(self) -> Scope:
        """The paths the tool may change (never a forbidden one)."""
        forbidden = self.run.project.rules.security.get("forbidden_paths", ())
        return Scope(self.run.project.root, self.run.ws.writable_files(), forbidden)

    def guards(self) -> dict[str, Any]:
        """What a workspace never walks (aim's own files), the forbidden paths and the
        tool's scratch paths, as keyword arguments of a workspace."""
        project = self.run.project
        registry_rel = _relative(project.registry, project.root)
        return {
            "exclude": [f"{registry_rel}/{AUDIT_DIRNAME}", f"{registry_rel}/{RUNS_DIRNAME}"],
            "forbidden": project.rules.security.get("forbidden_paths", ()),
            "scratch": self.detection.scratch_paths,
        }

    def cancel(self, reason: str) -> None:
        """Cut the attempt short (another candidate won its race): stop the tool; the
        attempt ends as ``lost_race`` with ``reason``, its work discarded."""
        self.cancelled = reason
        self.stop_tool()

    def _invoke(self, workspace: Workspace, began: float) -> CallOutcome:
        timeout_s = self.payload.timeout_ms / 1000.0
        ctx = self.run.project.context(
            root=workspace.root,
            deadline=began + timeout_s,
            tool_id=self.tool_id,
            env_passthrough=self.detection.env_passthrough,
            on_start=self._started,
            on_process=self._finished_process,
            measure=workspace.changes,
            process_token=self.token,
        )
        self.run.runlog.write(f"attempt {self.number} with {self.tool_id} (timeout {timeout_s:g}s)")
        self.run.on_event(
            "attempt",
            {
                "tool_id": self.tool_id,
                "attempt": self.number,
                "repair": self.repair,
                "strategy": self.extra_content.get("strategy", "sequential"),
                "race_size": self.extra_content.get("race_size"),
            },
        )
        args = {
            "tool_id": self.tool_id,
            "capability": self.capability,
            "payload": self.payload,
            "context": ctx,
        }
        from aim_core.plugins import PLUGIN_GRACE_S

        plugins = self.run.project.plugins
        with contextlib.ExitStack() as stack:
            if self.run.active is not None:
                stack.enter_context(self.run.active.heartbeat())
            return plugins.call(
                "invoke_capability",
                self.plugin,
                args,
                timeout_s=timeout_s + PLUGIN_GRACE_S,
                stop=self.run.stop,
            )

    def _conclude(self, workspace: Workspace, call: CallOutcome, began: float) -> AttemptOutcome:
        duration = time.monotonic() - began
        try:
            result = self._result_of(call)
            if call.timed_out:
                self.stop_tool()
            if result.output and result.output not in self._logged:
                self.run.runlog.output(f"--- {self.tool_id} output ---", result.output)
            outcome = self._judge(workspace, result, duration)
        except Exception as e:  # aim could not check the work: never keep it unseen
            log.debug("checking the attempt failed", exc_info=True)
            self._undo_outside(workspace, duration)  # as far as it can still be seen
            workspace.restore()
            outcome = AttemptOutcome(
                tool_id=self.tool_id,
                attempt=self.number,
                message=f"aim could not check what {self.tool_id} changed "
                f"({type(e).__name__}: {e}); its changes were undone",
                failure=Failure.TOOL_ERROR,
                duration_sec=duration,
            )
        outcome = self._settle(workspace, outcome)
        self._record(outcome)
        return outcome

    def _settle(self, workspace: Workspace, outcome: AttemptOutcome) -> AttemptOutcome:
        """The outcome as recorded: a cancelled attempt lost (a race decides more)."""
        if self.cancelled is not None and not outcome.success:
            # stopped, perhaps in the middle of its checks: they say nothing of the edit
            return attrs.evolve(
                outcome, failure=Failure.LOST_RACE, message=self.cancelled, verification=None
            )
        return outcome

    def _others(self, duration: float) -> list[str]:
        """The scopes of the other runs since this attempt began (their changes)."""
        table = self.run.active.table if self.run.active is not None else None
        began_wall = time.time() - duration
        return table.other_scopes(self.run.run_id, began_wall) if table is not None else []

    def _undo_outside(self, workspace: Workspace, duration: float) -> list[str]:
        """Revert what the tool changed outside its scope (git's state included) before
        its work is thrown away; the paths. Best effort: a failure is logged."""
        try:
            outside = workspace.outside(ignore=self._others(duration))
            _reverted, stuck = workspace.revert_outside(outside)
        except Exception:
            log.warning(f"what {self.tool_id} changed outside its scope could not be checked")
            log.debug("checking outside the scope failed", exc_info=True)
            return []
        if stuck:
            log.warning(f"could not revert what {self.tool_id} changed: {', '.join(stuck)}")
        return outside

    def _judge(
        self, workspace: Workspace, result: InvocationResult, duration: float
    ) -> AttemptOutcome:
        """Measure, check the scope, keep or restore; the outcome (not yet recorded)."""
        run = self.run
        changes = workspace.changes()
        ignore = self._others(duration)
        outside = workspace.outside(ignore=ignore)
        git_state = [p for p in outside if p.startswith(".git/") and not GitState.is_security(p)]
        if git_state:  # a commit, a branch switch, the stash: undone, the work itself kept
            workspace.revert_outside(git_state)
            outside = [p for p in outside if p not in git_state]
            log.warning(
                f"{self.tool_id} changed git's state ({', '.join(git_state)}); put back as it "
                "was: its work in scope stays uncommitted for you to review"
            )
        failure, message = (None, "") if result.success else (result.failure, result.message)
        if outside:
            failure, message = Failure.OUT_OF_SCOPE, self._outside_message(workspace, outside)
        elif result.success:
            missing = [f for f in run.ws.files_create if not (workspace.root / f).exists()]
            if missing:
                failure = Failure.TOOL_ERROR
                message = f"{self.tool_id} reported success but did not create {', '.join(missing)}"
        diff = workspace.diff(changes) if changes else None
        verification = None
        if failure is None and self.payload.verify:
            verification = self._verify(workspace, ignore)
            failure, message = self._verdict_of(verification)
        if failure is None:
            message = f"{capability_title(self.capability)} completed (attempt {self.number})"
            workspace.keep()
        else:
            from aim_core.audit.records import printable
            from aim_core.security import redact_text

            # printed, logged and audited: no credential, no undecodable byte of a name
            message = redact_text(printable(message), run.project.environ)
            workspace.restore(keep=self.touched)
        return AttemptOutcome(
            tool_id=self.tool_id,
            attempt=self.number,
            message=message,
            failure=failure,
            exit_code=result.exit_code,
            duration_sec=duration,
            changes=changes,
            outside=tuple(outside),
            git_restored=tuple(git_state),
            retry_after_s=result.retry_after_s,
            usage=result.usage,
            verification=verification,
            repair=self.repair,
            diff=diff,
        )

    def _scope_digests(self, workspace: Workspace) -> dict[str, str | None]:
        from aim_core.snapshot import file_digest

        scope = Scope(workspace.root, self.run.ws.writable_files())
        names = {*scope.existing(), *scope.files}
        return {rel: file_digest(workspace.root / rel) for rel in names}

    def _verdict_of(self, verification: Verification) -> tuple[Failure | None, str]:
        if verification.broken:
            return Failure.VERIFY_FAILED, (
                f"the checks could not judge the edit ({verification.summary()}); no other "
                "tool was tried, since none could pass them: fix the workstream's verify"
            )
        if not verification.passed:
            summary = verification.summary()
            return Failure.VERIFY_FAILED, f"{self.tool_id}'s edit failed its checks: {summary}"
        return None, ""

    def _verify(self, workspace: Workspace, ignore: Sequence[str]) -> Verification:
        """Run the workstream's checks on the edit. What changed outside the scope while
        they ran (their caches, or your own edits) is named, never undone."""
        from aim_core.checks import CheckRunner

        assert self.payload.verify is not None
        runner = CheckRunner(
            self.run.project,
            self.run.check_tools,
            timeout_s=self.payload.timeout_ms / 1000.0,
            make_context=lambda **kw: self.run.project.context(
                on_start=self._started,
                on_process=self._finished_process,
                process_token=self.token,
                **kw,
            ),
            on_event=lambda kind, data: self.run.on_event(
                kind, {**data, "attempt_tool": self.tool_id}
            ),
            workstream_id=self.run.ws.id,
            stopped=lambda: self.cancelled is not None,
            stop=self.run.stop,
        )
        before = self._scope_digests(workspace)
        verification = runner.run(self.payload.verify, workspace.root)
        after = self._scope_digests(workspace)
        self.touched = sorted(p for p in {*before, *after} if before.get(p) != after.get(p))
        if self.touched:  # what passed is not what is there: never kept, never undone
            from aim_core.checks import add_touched

            verification = add_touched(verification, self.touched, self.run.project.environ)
        left = workspace.outside(ignore=ignore)
        if left:  # never undone: aim cannot tell the checks' files from your edits meanwhile
            log.info(f"While the checks ran, these changed outside the scope: {', '.join(left)}")
        return verification

    def _outside_message(self, workspace: Workspace, outside: Sequence[str]) -> str:
        from aim_core.security import forbidden_match

        _reverted, stuck = workspace.revert_outside(outside)
        message = f"{self.tool_id} changed files outside its scope: {', '.join(outside)}"
        message += " (reverted)" if not stuck else f" (could not revert: {', '.join(stuck)})"
        rules = self.run.project.rules.security.get("forbidden_paths", ())
        forbidden = [p for p in outside if forbidden_match(p, rules)]
        if forbidden:
            message += f"; forbidden: {', '.join('/' + p.lstrip('/') for p in forbidden)}"
        return message

    # ----------------------------------------------------------------- pieces

    def _result_of(self, call: CallOutcome) -> InvocationResult:
        if call.timed_out:
            return InvocationResult(
                success=False,
                message=f"{self.tool_id} did not finish in time (its plugin stopped answering)",
                failure=Failure.TIMEOUT,
            )
        if not call.ok:
            return InvocationResult(
                success=False,
                message=f"the {self.plugin} plugin failed: {call.error}",
                failure=Failure.TOOL_ERROR,
            )
        value = call.value
        if not isinstance(value, InvocationResult):
            return InvocationResult(
                success=False,
                message=f"the {self.plugin} plugin returned {type(value).__name__} "
                f"instead of an InvocationResult for '{self.tool_id}'",
                failure=Failure.UNAVAILABLE,
            )
        if not value.success and value.failure is None:
            value = attrs.evolve(value, failure=Failure.TOOL_ERROR)
        if value.usage is not None:
            value = attrs.evolve(value, usage=sane_usage(value.usage))
        wait = value.retry_after_s
        if wait is not None and not (isinstance(wait, (int, float)) and 0 <= wait < float("inf")):
            value = attrs.evolve(value, retry_after_s=None)  # NaN, negative: not advice
        return value

    def _abandon(self, workspace: Workspace, began: float) -> None:
        """Cut short by the user: stop the tool, undo what it did (the scope restored,
        what it changed outside reverted, as a failure would), record ``interrupted``."""
        self.stop_tool()
        duration = time.monotonic() - began
        outside, message = self._undo_outside(workspace, duration), INTERRUPTED_MESSAGE
        if outside:
            message += f"; what it changed outside its scope was reverted: {', '.join(outside)}"
        workspace.restore()
        outcome = AttemptOutcome(
            tool_id=self.tool_id,
            attempt=self.number,
            message=message,
            failure=Failure.INTERRUPTED,
            duration_sec=duration,
            outside=tuple(outside),
        )
        self._record(outcome)
        self.run.attempts.append(outcome)

    def _record(self, outcome: AttemptOutcome) -> None:
        extra: dict[str, Any] = dict(self.extra_content)
        if outcome.outside:
            extra["out_of_scope"] = ["/" + p.lstrip("/") for p in outcome.outside]
        if outcome.git_restored:
            extra["git_restored"] = ["/" + p for p in outcome.git_restored]
        extra.setdefault("strategy", "sequential")
        if outcome.diff is not None:
            extra["diff"] = outcome.diff
        if outcome.verification is not None:
            extra["verification"] = outcome.verification.to_record()
        if self.payload.verify:
            extra["repair"] = outcome.repair
        self.run.record(
            tool_id=self.tool_id,
            payload=self.payload,
            message=outcome.message,
            attempt=self.number,
            failure=outcome.failure,
            capability=self.capability,
            exit_code=outcome.exit_code,
            duration_sec=outcome.duration_sec,
            changes=outcome.changes if outcome.success else None,
            usage=outcome.usage,
            extra=extra,
        )

    def stop_tool(self) -> None:
        """Kill the process tree of the attempt's tool or check while it runs (any thread
        may call this). One that ended was swept by the process runner: its pid is not
        looked for again -- it may be another process's by now, and a sweep without the
        tree's token and start time would take aim's other children for its orphans."""
        pid, self.tool_pid = self.tool_pid, None
        tree = proctree.live_tree(pid) if pid is not None else None
        if pid is not None and tree is not None and tree.token == self.token:
            process.kill_tree(pid, token=tree.token, since=tree.since)

    def _started(self, pid: int) -> None:
        self.tool_pid = pid
        if self.run.active is not None:
            # when it started, so that recovery never kills a process that reused the pid
            # and its token, so that recovery finds what it started even after a setsid
            self.run.active.update(tool_pid=pid, tool_started=time.time())
        log.debug(f"{self.tool_id} started (pid {pid})")

    def _finished_process(self, argv: Sequence[str], result: ProcessResult) -> None:
        from aim_core.toolkit import joined_output

        runlog = self.run.runlog
        self._logged.add(joined_output(result.stdout, result.stderr))
        runlog.process(argv, result)
        ended = "timed out" if result.timed_out else result.exit_code
        log.debug(f"{runlog.command_line(argv)} -> {ended} in {result.duration_sec:.2f}s")
