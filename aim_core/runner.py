"""``aim run`` for one workstream: route, attempt, retry, fall back, keep safe, audit.

The flow (ARCHITECTURE.md): load the workstream, build the request, check the
core's security rules once, then try the candidates in order -- the rules'
primary, the workstream's own ``tool``, the rules' fallbacks. Each attempt is
bounded by ``timeout_ms``, surrounded by a snapshot of the files in scope and
a fingerprint of the rest, checked for changes outside the scope, restored
when it fails, and audited. The first success ends the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import attrs
from attrs import define, field, frozen

from aim_core import process
from aim_core.errors import (
    EXIT_INTERRUPTED,
    EXIT_NO_TOOL,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_WORK_FAILED,
    AimError,
    SecurityError,
)
from aim_core.models import Failure, FileChanges, Invocation, InvocationResult, Workstream
from aim_core.project import Project
from aim_core.registry import AUDIT_DIRNAME, RUNS_DIRNAME
from aim_core.router import Candidate, assess, candidates
from aim_core.runlocks import ActiveRun, RunTable
from aim_core.runlog import RunLog
from aim_core.workspace import RepoState, Scope, Snapshot

log = logging.getLogger("aim")

DEFAULT_MAX_RETRIES = 1
PLUGIN_GRACE_S = 10.0  # a plugin's own code may run this long past the tool's deadline
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
MAX_RETRY_AFTER_S = 30.0
COOLDOWN_FAILURES = 3
COOLDOWN_WINDOW_S = 600.0


class Interrupted(Exception):
    """A run was asked to stop (Ctrl-C or SIGTERM while runs work in threads)."""


# Set by request_stop(): every run stops its tool, restores its files and ends.
STOP = threading.Event()
_LIVE: set[_Run] = set()
_LIVE_LOCK = threading.Lock()


def request_stop() -> None:
    """Stop every run of this process: kill their tools' trees; each run then restores
    its files, records the attempt as ``interrupted`` and ends with exit code 130."""
    STOP.set()
    with _LIVE_LOCK:
        runs = list(_LIVE)
    for run in runs:
        _stop_tool(run)


def capability_title(capability: str | None) -> str:
    """``code_generation`` -> ``Code generation`` (the guide's log line)."""
    if not capability:
        return "Work"
    text = capability.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: ``20251120T214500Z-3f9a1c``."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"


class Cooldowns:
    """Tools that failed repeatedly are left alone for the rest of the run (shared by ``-j``)."""

    def __init__(self, failures: int = COOLDOWN_FAILURES, window_s: float = COOLDOWN_WINDOW_S):
        self.failures = failures
        self.window_s = window_s
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def failed(self, tool_id: str) -> None:
        with self._lock:
            self._seen.setdefault(tool_id, []).append(time.monotonic())

    def cooling(self, tool_id: str) -> bool:
        """Whether ``tool_id`` failed ``failures`` times within the window."""
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._seen.get(tool_id, []) if now - t <= self.window_s]
            self._seen[tool_id] = recent
            return len(recent) >= self.failures


@frozen(kw_only=True)
class Attempt:
    """One invocation of one tool, as the run saw it."""

    tool_id: str
    attempt: int
    success: bool
    message: str
    failure: str | None
    exit_code: int | None
    duration_sec: float
    files_created: tuple[str, ...] = ()
    files_modified: tuple[str, ...] = ()
    retry_after_s: float | None = None


@frozen(kw_only=True)
class RunResult:
    """What a workstream run came to; ``aim run --json`` prints one per workstream."""

    run_id: str
    workstream_id: str | None
    capability: str | None
    success: bool
    exit_code: int
    message: str
    tool_id: str | None = None
    attempts: tuple[Attempt, ...] = ()
    skipped: tuple[dict[str, Any], ...] = ()
    files_created: tuple[str, ...] = ()
    files_modified: tuple[str, ...] = ()
    duration_sec: float = 0.0
    log_path: str | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = attrs.asdict(self, recurse=True)
        for key in ("attempts", "skipped", "files_created", "files_modified"):
            data[key] = list(data[key])
        return data


@define(eq=False)
class _Run:
    """The state of one run while it goes (internal)."""

    project: Project
    ws: Workstream
    run_id: str
    capability: str | None
    routed: bool
    runlog: RunLog
    table: RunTable
    cooldowns: Cooldowns
    active: ActiveRun | None = None
    skipped: list[dict[str, Any]] = field(factory=list)  # every skip of the run
    pending: list[dict[str, Any]] = field(factory=list)  # skips not yet in a record
    attempts: list[Attempt] = field(factory=list)
    tool_pid: int | None = None
    sink_errors: set[str] = field(factory=set)
    on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None


def run_workstream(
    path_or_workstream: str | Path | Workstream,
    *,
    root: str | Path | None = None,
    settings: Any = None,
    project: Project | None = None,
    cooldowns: Cooldowns | None = None,
    environ: Mapping[str, str] | None = None,
    run_id: str | None = None,
    source: str | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run one workstream as ``aim run`` does, without printing (log lines go to the
    ``aim`` logger). Bad input raises :class:`~aim_core.AimError` (exit code 2);
    everything else is in the :class:`RunResult`, including ``exit_code``.
    ``source`` names where a given :class:`Workstream` came from (for messages);
    ``on_event(kind, data)`` hears of each ``attempt`` and of the run being ``done``.
    """
    if project is None:
        project = Project.open(root, environ=environ)
    if settings is not None:
        project.settings = settings
    if isinstance(path_or_workstream, Workstream):
        ws = path_or_workstream
    else:
        from aim_core.workstream import load_workstream

        loaded = load_workstream(
            path_or_workstream,
            root=project.root,
            known_capabilities=project.known_capabilities(),
        )
        for w in loaded.warnings:
            log.warning(w)
        ws, source = loaded.workstream, loaded.display
    if not project.has_registry:
        raise AimError(
            f"no registry at {project.registry}; run 'aim init' in the repository root first"
        )
    return _execute(project, ws, source, cooldowns or Cooldowns(), run_id or new_run_id(), on_event)


def _execute(
    project: Project,
    ws: Workstream,
    source: str | None,
    cooldowns: Cooldowns,
    run_id: str,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> RunResult:
    routed = bool(ws.capability) and project.settings.enable_aim
    if not routed and not ws.tool:
        raise AimError(
            "AIM routing is off (enable_aim: false) and the workstream names no `tool` to "
            "invoke directly; add a tool or set enable_aim: true",
            file=source,
            field="tool",
        )
    runs_dir = project.registry / RUNS_DIRNAME
    from aim_core.recovery import recover_dead_runs

    recover_dead_runs(project)
    runlog = RunLog(runs_dir / f"{run_id}.log", RunLog.secrets_from_env(project.environ))
    run = _Run(
        project=project,
        ws=ws,
        run_id=run_id,
        capability=ws.capability if routed else None,
        routed=routed,
        runlog=runlog,
        table=RunTable(runs_dir),
        cooldowns=cooldowns,
        on_event=on_event or (lambda kind, data: None),
    )
    start = time.monotonic()
    runlog.write(f"run {run_id}: workstream {ws.id} ({source or 'in memory'})")
    with _LIVE_LOCK:
        _LIVE.add(run)
    try:
        result = _route(run, start)
    except KeyboardInterrupt:
        _interrupted(run, start)
        raise
    except Interrupted:
        return _interrupted(run, start)
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(run)
        if run.active is not None:
            run.active.release()
        _tidy(runs_dir / run_id)
        from aim_core.audit.emit import sync_head

        sync_head(project)
    runlog.write(f"run {run_id}: exit {result.exit_code}: {result.message}")
    run.on_event("done", {"success": result.success, "exit_code": result.exit_code})
    if project.settings.enable_audit_logging:
        from aim_core.audit.prune import prune_if_due

        prune_if_due(project.registry / AUDIT_DIRNAME, project.settings.audit_log_retention_days)
    return attrs.evolve(result, source=source, log_path=str(runlog.path))


def _tidy(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()  # the run's snapshot directory, empty once every attempt ended


def _interrupted(run: _Run, start: float) -> RunResult:
    message = "Interrupted: the tool was stopped and the files in scope restored"
    run.runlog.write(message)
    return RunResult(
        run_id=run.run_id,
        workstream_id=run.ws.id,
        capability=run.capability,
        success=False,
        exit_code=EXIT_INTERRUPTED,
        message=message,
        attempts=tuple(run.attempts),
        duration_sec=time.monotonic() - start,
        log_path=str(run.runlog.path),
    )


def invocation_for(ws: Workstream, settings: Any, tool_id: str | None = None) -> Invocation:
    """The request a tool receives for a workstream (options: the tool's config section)."""
    timeout = ws.payload.timeout_ms or settings.default_timeout_ms
    retries = ws.payload.max_retries
    return Invocation(
        prompt=ws.build_prompt(),
        files=ws.target_files(),
        files_scope=ws.files_scope,
        files_create=ws.files_create,
        timeout_ms=timeout,
        max_retries=DEFAULT_MAX_RETRIES if retries is None else retries,
        tasks=ws.tasks,
        acceptance_tests=ws.acceptance_tests,
        workstream_id=ws.id,
        options=dict(settings.tool_options(tool_id)) if tool_id else {},
    )


def _invocation(run: _Run, tool_id: str | None) -> Invocation:
    return invocation_for(run.ws, run.project.settings, tool_id)


def _route(run: _Run, start: float) -> RunResult:
    project, ws = run.project, run.ws
    request = _invocation(run, None)
    if run.routed:
        log.info(f"Executing capability '{ws.capability}' via AIM")
    else:
        why = "enable_aim: false" if ws.capability else "no capability"
        log.info(f"Invoking tool '{ws.tool}' directly ({why})")

    problems = _core_problems(run, request)
    if problems:
        _refuse(run, request, problems)
    from aim_core.security import redact_prompt

    security = project.rules.security

    run.active = run.table.join(
        run.run_id,
        project.root,
        ws.writable_files(),
        info={"workstream_id": ws.id},
        on_wait=lambda e: log.info(
            f"Waiting for run {e['run_id']} ({e.get('workstream_id')}), "
            "which works on the same files"
        ),
        stop=STOP,
    )
    report = project.detect()
    capability = run.capability
    cands = (
        candidates(project.rules, report, capability, ws.tool)
        if run.routed
        else candidates(project.rules, report, None, ws.tool)
    )
    cands = _recheck_negative(run, cands)
    if not cands:
        raise AimError(
            f"no tool is routed for capability '{capability}' and no plugin serves it; "
            "add it to the coordination rules or set `tool`",
            field="capability",
        )

    last: Attempt | None = None
    for n, cand in enumerate(cands):
        _announce(cand, n)
        if not cand.usable:
            _skip(run, cand.tool_id, cand.skip, cand.reason)
            continue
        if run.cooldowns.cooling(cand.tool_id):
            _skip(
                run,
                cand.tool_id,
                Failure.UNAVAILABLE,
                f"{cand.tool_id} failed {run.cooldowns.failures} times in this run; cooling down",
            )
            continue
        tool_capability = capability or (cand.state.detection.capabilities or ("",))[0] or None
        payload = redact_prompt(_invocation(run, cand.tool_id), security)
        objections = _tool_problems(run, cand, tool_capability, payload)
        if objections:
            _skip(run, cand.tool_id, Failure.INVALID_PAYLOAD, objections)
            continue
        if "invoke_capability" not in project.plugins.infos[cand.state.plugin].hooks:
            _skip(
                run,
                cand.tool_id,
                Failure.UNAVAILABLE,
                f"the {cand.state.plugin} plugin detects {cand.tool_id} but cannot run it "
                "(it has no invoke_capability); upgrade the plugin",
            )
            continue
        outcome = _attempts(run, cand, tool_capability, payload)
        last = outcome
        if outcome.success:
            return _finish(run, start, outcome, EXIT_OK)
        if outcome.failure and Failure(outcome.failure).ends_workstream:
            break
    if last is None:
        return _nothing_available(run, request, start)
    return _finish(run, start, last, EXIT_WORK_FAILED)


def _announce(cand: Candidate, n: int) -> None:
    if cand.role == "primary":
        log.info(f"AIM routing to primary tool: {cand.tool_id}")
    elif cand.role == "workstream tool":
        log.info(f"Falling back to direct tool invocation: {cand.tool_id}")
    elif cand.role == "direct":
        pass  # "Invoking tool ... directly" was said already
    elif n == 0:
        log.info(f"AIM routing to tool: {cand.tool_id}")
    else:
        log.info(f"Falling back to tool: {cand.tool_id}")


def _recheck_negative(run: _Run, cands: list[Candidate]) -> list[Candidate]:
    """A cached "not installed / not ready" is checked again before it is believed."""
    stale = {
        c.state.plugin for c in cands if c.state is not None and not c.usable and c.state.from_cache
    }
    if not stale:
        return cands
    report = run.project.detect(only=stale)
    out = []
    for c in cands:
        state = report.tools.get(c.tool_id)
        cap = run.capability if c.role != "direct" else None
        skip, reason = assess(c.tool_id, state, cap)
        out.append(attrs.evolve(c, state=state, skip=skip, reason=reason))
    return out


def _skip(run: _Run, tool_id: str, failure: Failure | None, reason: str | None) -> None:
    failure = failure or Failure.UNAVAILABLE
    reason = reason or failure.value
    log.warning(reason)
    run.runlog.write(f"skip {tool_id}: {failure.value}: {reason}")
    entry = {"tool_id": tool_id, "failure": failure.value, "reason": reason}
    run.skipped.append(entry)
    run.pending.append(entry)


def workstream_problems(project: Project, request: Invocation, capability: str | None) -> list[str]:
    """Every plugin's objections to a workstream as a whole (``validate_payload`` with
    ``tool_id=None``): the core's security rules and any plugin's own. A built-in check
    that fails refuses the workstream; a third-party check that fails is reported and
    skipped."""
    plugins = project.plugins
    ctx = project.context()
    out = []
    for outcome in plugins.call_each(
        "validate_payload",
        {"tool_id": None, "capability": capability, "payload": request, "context": ctx},
        timeout_s=10.0,
    ):
        if not outcome.ok:
            if plugins.infos[outcome.plugin].status == "essential":
                out.append(f"the security check of {outcome.plugin} failed: {outcome.error}")
            else:
                log.warning(
                    f"plugin '{outcome.plugin}' could not check the workstream: {outcome.error}"
                )
            continue
        for p in outcome.value or []:
            out.append(f"{p.field}: {p.message}")
    return out


def _core_problems(run: _Run, request: Invocation) -> list[str]:
    return workstream_problems(run.project, request, run.capability)


def _tool_problems(
    run: _Run, cand: Candidate, capability: str | None, payload: Invocation
) -> str | None:
    plugins = run.project.plugins
    ctx = run.project.context(tool_id=cand.tool_id)
    texts = []
    for outcome in plugins.call_each(
        "validate_payload",
        {"tool_id": cand.tool_id, "capability": capability, "payload": payload, "context": ctx},
        timeout_s=10.0,
        plugins=[n for n, i in plugins.infos.items() if i.status == "loaded"],
    ):
        if outcome.ok:
            texts.extend(f"{p.field}: {p.message}" for p in outcome.value or [])
    if not texts:
        return None
    return f"{cand.tool_id} cannot take this request: " + "; ".join(texts)


def _refuse(run: _Run, request: Invocation, problems: list[str]) -> NoReturn:
    """Audit the refusal (no secret in it, refused paths repo-rooted), then raise."""
    import re

    refused = sorted({m for p in problems for m in re.findall(r"forbidden path '(/[^']+)'", p)})
    message = "Refused by the security rules: " + "; ".join(problems)
    _audit(
        run,
        tool_id=None,
        payload=request,
        success=False,
        message=message,
        attempt=0,
        failure=Failure.INVALID_PAYLOAD.value,
        extra={"refused_paths": refused} if refused else None,
    )
    raise SecurityError(
        "refused by the security rules, nothing was run: " + "; ".join(problems),
        file=None,
    )


def _nothing_available(run: _Run, request: Invocation, start: float) -> RunResult:
    kinds = [s["failure"] for s in run.skipped]
    failure = next(
        (f for f in ("auth_required", "unavailable", "invalid_payload") if f in kinds),
        "not_installed",
    )
    tried = "; ".join(f"{s['tool_id']}: {s['reason']}" for s in run.skipped)
    what = f"capability '{run.capability}'" if run.capability else f"tool '{run.ws.tool}'"
    message = (
        f"No tool could run {what} ({tried}). Install or log in to one of them, "
        "then check with 'aim status'."
    )
    _audit(
        run,
        tool_id=None,
        payload=request,
        success=False,
        message=message,
        attempt=0,
        failure=failure,
    )
    log.error(message)
    return RunResult(
        run_id=run.run_id,
        workstream_id=run.ws.id,
        capability=run.capability,
        success=False,
        exit_code=EXIT_NO_TOOL,
        message=message,
        skipped=tuple(run.skipped),
        duration_sec=time.monotonic() - start,
    )


def _finish(run: _Run, start: float, last: Attempt, code: int) -> RunResult:
    if not last.success:
        log.error(last.message)
    return RunResult(
        run_id=run.run_id,
        workstream_id=run.ws.id,
        capability=run.capability,
        success=last.success,
        exit_code=code,
        message=last.message,
        tool_id=last.tool_id,
        attempts=tuple(run.attempts),
        skipped=tuple(run.skipped),
        files_created=last.files_created if last.success else (),
        files_modified=last.files_modified if last.success else (),
        duration_sec=time.monotonic() - start,
    )


# --------------------------------------------------------------------------- attempts


def _attempts(run: _Run, cand: Candidate, capability: str | None, payload: Invocation) -> Attempt:
    """Try one tool up to ``1 + max_retries`` times; return the last attempt."""
    attempt: Attempt | None = None
    for n in range(1, payload.max_retries + 2):
        attempt = _one_attempt(run, cand, capability, payload, n)
        run.attempts.append(attempt)
        if attempt.success:
            log.info(attempt.message)
            return attempt
        run.cooldowns.failed(cand.tool_id)
        failure = Failure(attempt.failure) if attempt.failure else Failure.TOOL_ERROR
        log.warning(f"{cand.tool_id} failed (attempt {n}): {attempt.message}")
        if not failure.retryable or n > payload.max_retries:
            break
        if run.cooldowns.cooling(cand.tool_id):
            break
        delay = attempt_delay(n, attempt.retry_after_s)
        log.info(f"Retrying {cand.tool_id} in {delay:g} s")
        if STOP.wait(delay):
            raise Interrupted()
    assert attempt is not None
    return attempt


def attempt_delay(n: int, retry_after: float | None) -> float:
    """Back-off before retry ``n``: the tool's own retry-after when it said one."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, MAX_RETRY_AFTER_S)
    return BACKOFF_S[min(n - 1, len(BACKOFF_S) - 1)]


def _one_attempt(
    run: _Run, cand: Candidate, capability: str | None, payload: Invocation, n: int
) -> Attempt:
    project, ws = run.project, run.ws
    detection = cand.state.detection
    scope = Scope(project.root, ws.writable_files())
    snap_dir = project.registry / RUNS_DIRNAME / run.run_id / f"attempt-{len(run.attempts) + 1}"
    snapshot = Snapshot.take(project.root, snap_dir, scope.existing() + list(scope.files))
    registry_rel = _relative(project.registry, project.root)
    exclude = [f"{registry_rel}/{AUDIT_DIRNAME}", f"{registry_rel}/{RUNS_DIRNAME}"]
    exclude += list(detection.scratch_paths)
    state = RepoState(project.root, exclude, project.rules.security.get("forbidden_paths", ()))
    state.take(snapshot, scope)
    assert run.active is not None
    run.active.update(
        snapshot=str(snap_dir),
        state="attempting",
        tool_id=cand.tool_id,
        tool_pid=None,
        capability=capability,
        attempt=n,
    )

    def on_start(pid: int) -> None:
        run.tool_pid = pid
        # when it started, so that recovery never kills a process that reused the pid
        run.active.update(tool_pid=pid, tool_started=time.time())
        log.debug(f"{cand.tool_id} started (pid {pid})")

    logged: set[str] = set()  # the commands' output already in the run log

    def on_process(argv, result) -> None:
        from aim_core.toolkit import joined_output

        logged.add(joined_output(result.stdout, result.stderr))
        run.runlog.process(argv, result)
        log.debug(
            f"{' '.join(run.runlog.mask_argv(argv))} -> "
            f"{'timed out' if result.timed_out else result.exit_code} in {result.duration_sec:.2f}s"
        )

    timeout_s = payload.timeout_ms / 1000.0
    began = time.monotonic()
    began_wall = time.time()
    ctx = project.context(
        deadline=began + timeout_s,
        tool_id=cand.tool_id,
        env_passthrough=detection.env_passthrough,
        on_start=on_start,
        on_process=on_process,
        measure=lambda: _measured(snapshot, scope),
    )
    run.runlog.write(f"attempt {n} with {cand.tool_id} (timeout {timeout_s:g}s)")
    run.on_event("attempt", {"tool_id": cand.tool_id, "attempt": n})
    try:
        outcome = project.plugins.call(
            "invoke_capability",
            cand.state.plugin,
            {"tool_id": cand.tool_id, "capability": capability, "payload": payload, "context": ctx},
            timeout_s=timeout_s + PLUGIN_GRACE_S,
        )
    except BaseException:
        _abandon(run, cand, capability, payload, n, began, snapshot, scope)
        raise
    if STOP.is_set():
        _abandon(run, cand, capability, payload, n, began, snapshot, scope)
        raise Interrupted()
    duration = time.monotonic() - began
    result = _result_of(outcome, cand)
    if outcome.timed_out:
        _stop_tool(run)
    if result.output and result.output not in logged:  # what the plugin adds (or a REST call)
        run.runlog.output(f"--- {cand.tool_id} output ---", result.output)

    changes = snapshot.changes(scope)
    outside = state.changed(scope, ignore=run.table.other_scopes(run.run_id, began_wall))
    failure = result.failure if not result.success else None
    message = result.message
    if outside:
        _reverted, stuck = state.revert(outside, snapshot)
        failure = Failure.OUT_OF_SCOPE
        message = f"{cand.tool_id} changed files outside its scope: {', '.join(outside)}"
        message += " (reverted)" if not stuck else f" (could not revert: {', '.join(stuck)})"
        from aim_core.security import forbidden_match

        forbidden = [
            p
            for p in outside
            if forbidden_match(p, project.rules.security.get("forbidden_paths", ()))
        ]
        if forbidden:
            message += f"; forbidden: {', '.join('/' + p.lstrip('/') for p in forbidden)}"
    elif result.success:
        missing = [f for f in ws.files_create if not (project.root / f).exists()]
        if missing:
            failure = Failure.TOOL_ERROR
            message = f"{cand.tool_id} reported success but did not create {', '.join(missing)}"
    success = failure is None and result.success
    if success:
        message = f"{capability_title(capability)} completed (attempt {n})"
    else:
        from aim_core.security import redact_text

        message = redact_text(message, project.environ)  # it is printed, logged and audited
        failure = failure or Failure.TOOL_ERROR
        snapshot.restore(scope=scope)
    attempt = _record_attempt(
        run,
        cand,
        capability,
        payload,
        n,
        began,
        failure,
        message,
        result.exit_code,
        changes.created if success else [],
        changes.modified if success else [],
        duration=duration,
    )
    run.active.update(state="done", tool_pid=None)
    snapshot.discard()
    if result.retry_after_s:
        attempt = attrs.evolve(attempt, retry_after_s=result.retry_after_s)
    return attempt


def _measured(snapshot: Snapshot, scope: Scope) -> FileChanges:
    found = snapshot.changes(scope)
    return FileChanges(
        created=sorted(found.created),
        modified=sorted(found.modified),
        deleted=sorted(found.deleted),
    )


def _abandon(run, cand, capability, payload, n, began, snapshot: Snapshot, scope: Scope) -> None:
    """An attempt cut short by the user: stop the tool, restore, record ``interrupted``."""
    _stop_tool(run)
    snapshot.restore(scope=scope)
    attempt = _record_attempt(
        run,
        cand,
        capability,
        payload,
        n,
        began,
        Failure.INTERRUPTED,
        "Interrupted: the tool was stopped and the files in scope restored",
        None,
        [],
        [],
    )
    run.attempts.append(attempt)
    assert run.active is not None
    run.active.update(state="done", tool_pid=None)
    snapshot.discard()


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _result_of(outcome, cand: Candidate) -> InvocationResult:
    if outcome.timed_out:
        return InvocationResult(
            success=False,
            message=f"{cand.tool_id} did not finish in time (its plugin stopped answering)",
            failure=Failure.TIMEOUT,
        )
    if not outcome.ok:
        return InvocationResult(
            success=False,
            message=f"the {cand.state.plugin} plugin failed: {outcome.error}",
            failure=Failure.TOOL_ERROR,
        )
    value = outcome.value
    if not isinstance(value, InvocationResult):
        return InvocationResult(
            success=False,
            message=f"the {cand.state.plugin} plugin returned {type(value).__name__} "
            f"instead of an InvocationResult for '{cand.tool_id}'",
            failure=Failure.UNAVAILABLE,
        )
    if not value.success and value.failure is None:
        value = attrs.evolve(value, failure=Failure.TOOL_ERROR)
    return value


def _stop_tool(run: _Run) -> None:
    if run.tool_pid is not None:
        process.kill_tree(run.tool_pid)
        run.tool_pid = None


def _record_attempt(
    run: _Run,
    cand: Candidate,
    capability: str | None,
    payload: Invocation,
    n: int,
    began: float,
    failure: Failure | None,
    message: str,
    exit_code: int | None,
    created: list[str],
    modified: list[str],
    duration: float | None = None,
) -> Attempt:
    duration = time.monotonic() - began if duration is None else duration
    attempt = Attempt(
        tool_id=cand.tool_id,
        attempt=n,
        success=failure is None,
        message=message,
        failure=failure.value if failure else None,
        exit_code=exit_code,
        duration_sec=round(duration, 3),
        files_created=tuple(created),
        files_modified=tuple(modified),
    )
    _audit(
        run,
        tool_id=cand.tool_id,
        payload=payload,
        success=attempt.success,
        message=message,
        attempt=n,
        failure=attempt.failure,
        exit_code=exit_code,
        duration=attempt.duration_sec,
        created=created,
        modified=modified,
        capability=capability,
    )
    return attempt


def _audit(
    run: _Run,
    *,
    tool_id: str | None,
    payload: Invocation | None,
    success: bool,
    message: str,
    attempt: int,
    failure: str | None,
    exit_code: int | None = None,
    duration: float = 0.0,
    created: list[str] | None = None,
    modified: list[str] | None = None,
    capability: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    from aim_core.audit.emit import emit
    from aim_core.audit.records import build_record

    record = build_record(
        actor=run.project.settings.actor,
        run_id=run.run_id,
        workstream_id=run.ws.id,
        tool_id=tool_id,
        capability=capability or run.capability or run.ws.capability,
        payload=payload,
        success=success,
        message=message,
        attempt=attempt,
        failure=failure,
        exit_code=exit_code,
        duration_sec=duration,
        files_created=created or [],
        files_modified=modified or [],
        skipped=run.pending,
        extra_content=extra,
    )
    run.pending = []
    emit(run.project, record, reported=run.sink_errors)


def exit_code_for(results: list[RunResult]) -> int:
    """With several workstreams the highest-priority code wins: 2, 70, 1, 3 (then 130, 0)."""
    codes = {r.exit_code for r in results}
    for code in (EXIT_USAGE, 70, EXIT_WORK_FAILED, EXIT_NO_TOOL, EXIT_INTERRUPTED):
        if code in codes:
            return code
    return EXIT_OK
