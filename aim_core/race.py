"""Races: the first K candidate tools at once, each in its own copy of the repository.

Each candidate edits its :class:`~aim_core.isolated.IsolatedWorkspace`, is
scope-checked and verified there; the user's tree is not touched. The winner is
the first verified candidate (without ``verify``: the first success); when
several are decided in the same moment, the smaller diff wins, then the faster.
Its changes in scope are applied to the user's tree in one step; the others are
stopped at once (their process trees killed) and recorded as ``lost_race``;
every copy is removed. Wall time is about the winner's, not the sum.

While the race runs it holds the repository's tool turn, and a fingerprint of the
user's tree (an in-place workspace over the scope, the *guard*) sees any change
there -- the user's own edits, or a candidate writing past its copy: aim cannot
tell which, so it undoes nothing, applies nothing, and names what changed. A race
killed before its winner is applied leaves the user's tree as it is (the copies
go with the run's state directory); one killed while applying is restored from
the guard's snapshot, like a killed attempt.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from aim_core.attempt import Attempt, AttemptOutcome, tool_turn
from aim_core.errors import AimError, Interrupted
from aim_core.models import Failure, Invocation
from aim_core.workspace import InPlaceWorkspace, Workspace

if TYPE_CHECKING:
    from aim_core.router import Candidate
    from aim_core.runstate import RunState

log = logging.getLogger("aim")

SETTLE_S = 0.05  # outcomes decided within this window count as simultaneous


def race_size(option: int | None, run: RunState, candidates: int) -> int:
    """How many candidates race (1: none): ``aim run --race`` (``option``), else the
    workstream's ``race``. More than the rules route is bad input (exit 2)."""
    size, field = (option, "--race") if option else (run.ws.race or 1, "race")
    if size > candidates:
        raise AimError(
            f"asks to race {size} tools but the rules route only {candidates} for "
            + (f"capability '{run.capability}'" if run.capability else f"tool '{run.ws.tool}'")
            + "; lower it or add fallbacks to the rules",
            file=run.source if field == "race" else None,
            field=field,
        )
    return size


def best_of(outcomes: list[AttemptOutcome]) -> AttemptOutcome | None:
    """What a race came to: the winner, else the first candidate's own failure (one
    that was not merely stopped), else the last outcome."""
    for outcome in outcomes:
        if outcome.success:
            return outcome
    stopped = (Failure.LOST_RACE, Failure.INTERRUPTED)
    own = [o for o in outcomes if o.failure not in stopped]
    return own[0] if own else (outcomes[-1] if outcomes else None)


class _Cancelled(Exception):
    """The race was decided before this candidate's tool started."""


class _NoGuard(Exception):
    """The guard over the user's tree could not be taken: no candidate starts."""


class _Held:
    """An isolated workspace whose ``keep`` and ``discard`` wait for the race, and whose
    diff, measured before the checks run, tells the race what its candidate would
    bring to a tie."""

    def __init__(self, inner: Any, racer: RaceAttempt):
        self.inner = inner
        self.racer = racer
        self.root = inner.root
        self.snapshot_dir = inner.snapshot_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def diff(self, changes: Any) -> dict[str, int]:
        counts: dict[str, int] = self.inner.diff(changes)
        self.racer.tool_lines = counts.get("lines_added", 0) + counts.get("lines_removed", 0)
        return counts

    def keep(self) -> None:
        """The race applies the winner's changes, not the attempt."""

    def discard(self) -> None:
        """The race removes every copy once it is decided."""


class RaceAttempt(Attempt):
    """One candidate of a race: an attempt in its own copy, outside the tool turn."""

    def __init__(
        self,
        race: Race,
        cand: Candidate,
        capability: str | None,
        payload: Invocation,
        number: int = 1,
        repair: int = 0,
    ):
        super().__init__(race.run, cand, capability, payload, number, repair=repair)
        self.race = race
        self.workspace: Any = None
        self.extra_content["strategy"] = "race"
        self.extra_content["race_size"] = len(race.entries)
        self.tool_lines: int | None = None  # its diff, once its tool has ended
        self.tool_duration: float | None = None  # at most what its outcome will say
        self.concluded = False  # its outcome is known (offered, or failed)

    def execute(self) -> AttemptOutcome:
        """Run in the copy (the race holds the repository's turn)."""
        return self._execute()

    def _new_workspace(self, snap_dir: Path) -> Workspace:
        from aim_core.isolated import IsolatedWorkspace

        copy_dir = snap_dir.with_name(f"race-{self.tool_id}-{self.number}")
        # the first copies are made at once and share one reading of your tree; a
        # repair's copy, made while other tools work, reads it again
        source = self.race.copy_source if self.repair == 0 else None
        self.workspace = IsolatedWorkspace(
            self.run.project.root, self.scope(), copy_dir, **self.guards(), source=source
        )
        return _Held(self.workspace, self)

    def _open_workspace(self) -> Workspace:
        if self.cancelled is not None:
            raise _Cancelled()
        snap_dir = self.run.project.runs_state / self.run.run_id / "race"
        workspace = self._new_workspace(snap_dir)
        self.race.guard_ready.wait()  # the guard sees your tree before the tool can
        if self.race.guard is None:  # it could not be taken: the race does not start
            raise _NoGuard()
        if self.cancelled is not None:
            raise _Cancelled()
        return workspace

    def _attempt_ended(self) -> None:
        """The run's entry belongs to the race."""

    def _started(self, pid: int) -> None:
        self.tool_pid = pid
        if self.cancelled is not None:  # decided while it was starting
            self.stop_tool()

    def lost_before_start(self) -> AttemptOutcome:
        """Recorded when the race was decided before this candidate's tool started."""
        outcome = AttemptOutcome(
            tool_id=self.tool_id,
            attempt=1,
            message=self.cancelled or "Stopped before it started",
            failure=Failure.LOST_RACE,
        )
        self._record(outcome)
        return outcome

    def _conclude(self, workspace: Workspace, call: Any, began: float) -> AttemptOutcome:
        # no more than the duration the outcome will carry (measured first thing in there)
        self.tool_duration = time.monotonic() - began
        return super()._conclude(workspace, call, began)

    def _settle(self, workspace: Workspace, outcome: AttemptOutcome) -> AttemptOutcome:
        diff = outcome.diff or {}
        lines = diff.get("lines_added", 0) + diff.get("lines_removed", 0)
        outcome = super()._settle(workspace, outcome)
        self.concluded = True
        return self.race.settle(self, outcome, lines)

    def could_beat(self, lines: int, duration: float) -> bool:
        """Whether this candidate, still undecided, could win a tie against an offer of
        ``lines`` changed lines by a tool that took ``duration`` seconds: yes unless its
        tool has ended with a diff no smaller and (equal) a time no shorter."""
        if self.concluded or self.cancelled is not None:
            return False
        if self.tool_lines is None or self.tool_duration is None:
            return True  # its tool still works, or made no change (a diff of 0 lines)
        return (self.tool_lines, self.tool_duration) < (lines, duration)


class Race:
    """One race among ``entries``: ``(candidate, capability, payload)`` each."""

    def __init__(
        self,
        run: RunState,
        entries: list[tuple[Candidate, str | None, Invocation]],
        *,
        affordable: Callable[[], bool] = lambda: True,
    ) -> None:
        self.run = run
        self.affordable = affordable  # whether the cost limits allow one more attempt
        self.entries = entries
        self.racers: list[RaceAttempt] = []  # every try: first attempts, then repairs
        self.lock = threading.Lock()  # self.racers grows (repairs) while others read it
        self.judged = False  # no offer is taken any more
        self.offers: queue.Queue[tuple[RaceAttempt, AttemptOutcome, int]] = queue.Queue()
        self.verdicts: dict[int, AttemptOutcome] = {}
        self.decided = threading.Condition()
        self.winner: RaceAttempt | None = None
        self.guard: InPlaceWorkspace | None = None
        self.guard_ready = threading.Event()  # set once the guard is taken (or failed)
        self.copy_source: Any = None  # what the first copies share of the user's tree
        self.closed = False
        self.spoiled = ""  # why nothing is applied: the user's tree changed during the race

    # ----------------------------------------------------------------- the race's side

    def result(self, outcomes: list[AttemptOutcome]) -> AttemptOutcome | None:
        """What the race came to (:func:`best_of`); when your tree changed during it,
        the outcome that says so."""
        if self.spoiled:
            said = [o for o in outcomes if o.message == self.spoiled]
            if said:
                return said[0]
        return best_of(outcomes)

    def run_race(self) -> list[AttemptOutcome]:
        """Race; return every candidate's outcome (the winner's ``success``)."""
        names = ", ".join(c.tool_id for c, _, _ in self.entries)
        log.info(f"Racing {len(self.entries)} tools, each in its own copy: {names}")
        self.racers = [RaceAttempt(self, c, cap, p) for c, cap, p in self.entries]
        from aim_core.isolated import CopySource

        self.copy_source = CopySource(self.run.project.root)
        self.run.racing = list(self.racers)
        results: dict[int, AttemptOutcome] = {}
        # each thread in a copy of this one's context: its log lines name the workstream
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run,
                args=(self._race_one, r, results),
                daemon=True,
            )
            for r in self.racers
        ]
        try:
            with tool_turn(self.run, names):
                self._mark_racing()
                for t in threads:  # the copies are made while the guard is taken
                    t.start()
                try:
                    self._open_guard()
                finally:
                    self.guard_ready.set()  # no candidate's tool starts before this
                self._judge_offers(threads)
                self._stop_losers(threads)
                self._close()
        finally:
            self._stop_losers([t for t in threads if t.ident is not None])
            self.run.racing = []
            self._close()
        if self.run.stop.is_set():
            raise Interrupted()
        return [results[id(r)] for r in self.racers if id(r) in results]

    def _stop_losers(self, threads: list[threading.Thread]) -> None:
        """Stop every candidate but the winner and wait for them (inside the turn)."""
        with self.lock:
            self.judged = True
            racers = list(self.racers)
        for r in racers:
            if self.winner is not r:
                r.cancel(self._lost_message())
        with self.decided:
            self.decided.notify_all()
        for t in threads:
            t.join()

    def _race_one(self, racer: RaceAttempt, results: dict[int, AttemptOutcome]) -> None:
        """One candidate: its attempt, then its repairs (each in a fresh copy) while its
        edit fails its checks and the race is still open."""
        outcome = self._try_racer(racer, results)
        while self._repairable(racer, outcome):
            repairer = self._repairer(racer, outcome)
            if repairer is None:
                break
            racer = repairer
            outcome = self._try_racer(racer, results)
        self.offers.put((racer, outcome, -1))  # done: wakes the judge
        # its copy is not needed any more (a winner's was applied before its verdict): it
        # is removed here, beside the other candidates', not after them -- unless the run
        # was stopped, which may end a wait for the verdict while the copy is being applied
        if racer.workspace is not None and not self.run.stop.is_set():
            racer.workspace.discard()

    def _repairable(self, racer: RaceAttempt, outcome: AttemptOutcome) -> bool:
        open_race = self.winner is None and not self.spoiled and not self.run.stop.is_set()
        return (
            open_race
            and racer.cancelled is None
            and outcome.failure is Failure.VERIFY_FAILED
            and not outcome.check_broken
            and outcome.verification is not None
            and racer.repair < racer.payload.max_repairs
            and self.affordable()
        )

    def _repairer(self, racer: RaceAttempt, outcome: AttemptOutcome) -> RaceAttempt | None:
        """The next try of ``racer``'s tool: the failing checks' output in its instruction
        (None when the race was decided meanwhile)."""
        from aim_core.request import with_feedback

        assert outcome.verification is not None
        first = self.entries[[c.tool_id for c, _, _ in self.entries].index(racer.tool_id)][2]
        payload = with_feedback(first, outcome.verification.feedback())
        nxt = RaceAttempt(
            self, racer.candidate, racer.capability, payload, racer.number + 1, racer.repair + 1
        )
        with self.lock:
            if self.winner is not None or self.spoiled or self.judged:
                return None
            self.racers.append(nxt)
            self.run.racing = list(self.racers)
        if self.run.active is not None:
            self.run.active.update(race_marks=[r.token for r in self.racers])
        if racer.workspace is not None:
            racer.workspace.discard()
        log.info(f"Asking {racer.tool_id} to repair its edit with the failing output")
        return nxt

    def _try_racer(self, racer: RaceAttempt, results: dict[int, AttemptOutcome]) -> AttemptOutcome:
        try:
            outcome = racer.execute()
        except _Cancelled:
            outcome = racer.lost_before_start()
        except _NoGuard:  # the race itself failed (raised to the runner): nothing to record
            outcome = AttemptOutcome(
                tool_id=racer.tool_id, attempt=1, message="Not started", failure=Failure.INTERRUPTED
            )
        except Interrupted:
            outcome = AttemptOutcome(
                tool_id=racer.tool_id, attempt=1, message="Interrupted", failure=Failure.INTERRUPTED
            )
        except Exception as e:  # a copy aim could not make: this candidate is out
            log.warning(f"{racer.tool_id} could not race: {e}")
            outcome = AttemptOutcome(
                tool_id=racer.tool_id,
                attempt=1,
                message=f"{racer.tool_id} could not race: {e}",
                failure=Failure.TOOL_ERROR,
            )
        racer.concluded = True
        results[id(racer)] = outcome
        if outcome.success:
            log.info(f"{racer.tool_id} won the race: {outcome.message}")
        elif outcome.failure is not Failure.LOST_RACE:
            log.warning(f"{racer.tool_id} failed in the race: {outcome.message}")
        return outcome

    def _judge_offers(self, threads: list[threading.Thread]) -> None:
        """Take offers until a winner is applied or every candidate has finished."""
        finished = 0
        while finished < len(threads):
            if self.run.stop.is_set():
                return
            try:
                first = self.offers.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = self._settled([first])
            finished += sum(1 for _, _, diff in batch if diff < 0)
            offers = [(r, o, d) for r, o, d in batch if d >= 0]
            if offers and self.winner is None and not self.spoiled:
                self._choose(offers)
            for racer, outcome, _ in offers:
                self._verdict(racer, outcome)
            if self.winner is not None and not self._pending():
                return

    def _settled(
        self, batch: list[tuple[RaceAttempt, AttemptOutcome, int]]
    ) -> list[tuple[RaceAttempt, AttemptOutcome, int]]:
        """``batch`` and what arrives within :data:`SETTLE_S` of its first entry: the
        offers decided "in the same moment". The window is not waited for when there is
        no offer to decide (only candidates that finished) or when no undecided
        candidate could win the tie (its tool ended with a diff no smaller, and no
        faster)."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            while not self.offers.empty():
                batch.append(self.offers.get_nowait())
            offers = [(o, diff) for _, o, diff in batch if diff >= 0]
            left = deadline - time.monotonic()
            if not offers or left <= 0:
                return batch
            best, lines = min(offers, key=lambda x: (x[1], x[0].duration_sec))
            with self.lock:
                racers = list(self.racers)
            offered = {id(r) for r, _, diff in batch if diff >= 0}
            if not any(
                r.could_beat(lines, best.duration_sec) for r in racers if id(r) not in offered
            ):
                return batch
            try:
                batch.append(self.offers.get(timeout=left))
            except queue.Empty:
                return batch

    def _choose(self, offers: list[tuple[RaceAttempt, AttemptOutcome, int]]) -> None:
        racer, outcome, _diff = min(offers, key=lambda o: (o[2], o[1].duration_sec))
        problem = self._apply(racer)
        if problem is None:
            self.winner = racer
            for other in self.racers:
                if other is not racer:
                    other.cancel(self._lost_message())
            return
        failure, message = problem
        verification = None if self.spoiled else outcome.verification
        self.verdicts[id(racer)] = attrs.evolve(
            outcome, failure=failure, message=message, verification=verification
        )
        if self.spoiled:  # nothing can be applied any more: stop the others now
            with self.lock:
                others = [r for r in self.racers if r is not racer]
            for other in others:
                other.cancel(self.spoiled)

    def _apply(self, racer: RaceAttempt) -> tuple[Failure, str] | None:
        """Apply ``racer``'s changes to the user's tree, unless the tree changed where
        no candidate may write; ``(failure, message)`` when it could not."""
        from aim_core.isolated import ApplyError

        assert self.guard is not None
        outside = self.guard.outside(ignore=self._others())
        inside = self.guard.changes()
        if outside or inside:
            # you, or a candidate writing past its copy: aim cannot tell which, so it
            # touches nothing -- your edits are never undone -- and applies nothing
            touched = sorted({*outside, *inside.created, *inside.modified, *inside.deleted})
            message = (
                f"The repository changed during the race: {', '.join(touched)} (left as "
                "it is: aim cannot tell your edits from a candidate's); no candidate's "
                "work was applied and no other tool was tried"
            )
            self.spoiled = message
            log.warning(message)
            # nobody can be blamed: every candidate is stopped, none counts as failed
            return Failure.LOST_RACE, message
        if self.run.active is not None:  # killed while applying: recovery restores
            self.run.active.update(state="attempting")
        try:
            racer.workspace.keep()
        except ApplyError as e:
            return Failure.WORK_FAILED, f"{racer.tool_id}'s work was not applied: {e.message}"
        return None

    def _verdict(self, racer: RaceAttempt, outcome: AttemptOutcome) -> None:
        with self.decided:
            if id(racer) not in self.verdicts:
                self.verdicts[id(racer)] = (
                    outcome
                    if racer is self.winner
                    else attrs.evolve(
                        outcome, failure=Failure.LOST_RACE, message=self._lost_message()
                    )
                )
            self.decided.notify_all()

    def _pending(self) -> bool:
        return any(r.tool_pid is not None for r in self.racers if r is not self.winner)

    def _lost_message(self) -> str:
        if self.spoiled:
            return self.spoiled
        if self.winner is None:
            return "Stopped: the race ended without this candidate"
        return f"Stopped: {self.winner.tool_id} won the race; this copy was removed"

    # ----------------------------------------------------------------- the candidates' side

    def settle(self, racer: RaceAttempt, outcome: AttemptOutcome, diff: int) -> AttemptOutcome:
        """Called by a candidate's thread before its record: a success waits for the
        race's verdict (applied, or lost); a failure is final."""
        if not outcome.success or self.run.stop.is_set():
            return outcome
        self.offers.put((racer, outcome, diff))
        with self.decided:
            while id(racer) not in self.verdicts and not self.run.stop.is_set():
                if self.judged and self.winner is not racer:  # too late: the race is over
                    return attrs.evolve(
                        outcome, failure=Failure.LOST_RACE, message=self._lost_message()
                    )
                if racer.cancelled is not None and self.winner is not racer:
                    return attrs.evolve(outcome, failure=Failure.LOST_RACE, message=racer.cancelled)
                self.decided.wait(0.1)
            return self.verdicts.get(id(racer), outcome)

    # ----------------------------------------------------------------- the user's tree

    def _guard_dir(self) -> Path:
        return self.run.project.runs_state / self.run.run_id / "race-guard"

    def _mark_racing(self) -> None:
        """The run table, before any copy is made: a race (recovery kills every
        candidate's processes by their marks and removes the copies, never restores)."""
        run = self.run
        if run.active is not None:
            run.active.update(
                snapshot=str(self._guard_dir()),
                state="racing",  # recovery: kill and remove, never restore (nothing applied)
                tool_id=None,
                tool_mark=None,
                race_marks=[r.token for r in self.racers],
                tool_pid=None,
                attempt=1,
            )

    def _open_guard(self) -> None:
        """The fingerprint of the user's tree, taken before any candidate's tool starts
        (the copies, which only read the tree, are made meanwhile)."""
        project, run = self.run.project, self.run
        probe = Attempt(run, self.entries[0][0], None, self.entries[0][2], 0)
        guards = {**probe.guards(), "scratch": ()}  # no tool works here: nothing may change
        self.guard = InPlaceWorkspace(
            project.root, probe.scope(), self._guard_dir(), strict=True, **guards
        )

    def _others(self) -> list[str]:
        table = self.run.active.table if self.run.active is not None else None
        return table.other_scopes(self.run.run_id, time.time() - 3600) if table else []

    def _close(self) -> None:
        """Remove every copy (the user's tree is left as it is). The run table says the
        race is over first: a run killed meanwhile is not restored from a guard's
        snapshot half removed."""
        if self.closed:
            return
        self.closed = True
        if self.run.active is not None:
            self.run.active.update(state="done", race_marks=[], tool_pid=None)
        for racer in self.racers:
            if racer.workspace is not None:
                racer.workspace.discard()
        if self.guard is not None:
            self.guard.discard()
