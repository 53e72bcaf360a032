"""``aim run`` with several workstreams: a graph by ``depends_on``, ``-j`` in parallel.

A workstream runs when everything it depends on succeeded; a failed (or
skipped) dependency skips its dependents, with the reason. A dependency that
is not part of this command counts as met only if the audit shows it
succeeded before. Two workstreams whose files overlap never work at the same
time (the run lock table makes the second wait).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import click

from aim_core.errors import EXIT_INTERRUPTED, EXIT_WORK_FAILED, AimError
from aim_core.log import current_workstream
from aim_core.models import Workstream
from aim_core.progress import ProgressView
from aim_core.project import Project
from aim_core.runner import (
    STOP,
    Cooldowns,
    RunResult,
    exit_code_for,
    new_run_id,
    request_stop,
    run_workstream,
)
from aim_core.workstream import (
    FileVerdict,
    check_graph,
    display_path,
    expand_paths,
    repository_ids,
    verdict_for,
)

log = logging.getLogger("aim")


def succeeded_before(project: Project, ids: set[str]) -> set[str]:
    """Which of ``ids`` have a successful record in the audit log."""
    if not ids:
        return set()
    from aim_core.audit.jsonl import JsonlAuditLog
    from aim_core.registry import AUDIT_DIRNAME

    found: set[str] = set()
    needles = {i: f'"workstream_id":{json.dumps(i)}'.encode() for i in ids}
    for _, _, line in JsonlAuditLog(project.registry / AUDIT_DIRNAME).iter_lines():
        for ident, needle in needles.items():
            if needle in line and b'"success":true' in line:
                found.add(ident)
    return found


def load_all(project: Project, paths: list[Path]) -> list[FileVerdict]:
    """Load and check every file; raise :class:`AimError` listing every problem."""
    files = expand_paths(paths)
    if not files:
        raise AimError("no workstream files found in the paths given")
    caps = project.known_capabilities()
    verdicts = [
        verdict_for(f, display_path(f, project.root), known_capabilities=caps) for f in files
    ]
    verdicts = check_graph(verdicts, repository_ids(project.root))
    problems = [e for v in verdicts for e in v.errors]
    for v in verdicts:
        for w in v.warnings:
            log.warning(w)
    if problems:
        from aim_core.errors import WorkstreamError

        raise WorkstreamError(problems[0], problems=problems)
    return verdicts


def _skipped(v: FileVerdict, reason: str) -> RunResult:
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


def run_many(
    project: Project,
    paths: list[Path],
    *,
    jobs: int = 1,
    dry_run: bool = False,
    as_json: bool = False,
) -> int:
    """Run every workstream of ``paths`` as a graph; print results; return the exit code."""
    verdicts = load_all(project, paths)
    by_id: dict[str, FileVerdict] = {v.workstream.id: v for v in verdicts}
    if dry_run:
        return _dry_run(project, verdicts)
    external = {d for v in verdicts for d in v.workstream.depends_on if d not in by_id}
    met_outside = succeeded_before(project, external)

    results: dict[str, RunResult] = {}
    pending = dict(by_id)
    cooldowns = Cooldowns()
    running: dict[Future, str] = {}
    parallel = jobs > 1 or len(by_id) > 1
    _install_sigterm()
    from aim_core.process import enable_subreaper

    enable_subreaper()

    view = None
    if len(by_id) > 1 and ProgressView.wanted(as_json):
        view = ProgressView(list(by_id))

    def start(ident: str, pool: ThreadPoolExecutor) -> None:
        v = pending.pop(ident)
        if view is not None:
            view.event(ident, "start", {})
        running[pool.submit(_run_one, project, v, cooldowns, parallel, view)] = ident

    interrupted = False
    with contextlib.ExitStack() as stack:
        if view is not None:
            stack.enter_context(view)
        pool = stack.enter_context(
            ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="aim-run")
        )
        while pending or running:
            for ident in list(pending):
                ws: Workstream = pending[ident].workstream
                blocked = _blocked_by(ws, results, by_id, met_outside)
                if blocked is not None:
                    results[ident] = _skipped(pending.pop(ident), blocked)
                    _print(results[ident], as_json)
                    log.warning(f"{ident}: {results[ident].message}")
                elif (
                    all(d in met_outside or _ok(results.get(d)) for d in ws.depends_on)
                    and len(running) < jobs
                    and not STOP.is_set()
                ):
                    start(ident, pool)
            if not running:
                if pending and not STOP.is_set():
                    continue  # progress was made above; re-examine
                break
            try:
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                interrupted = True
                request_stop()
                continue
            for fut in done:
                ident = running.pop(fut)
                results[ident] = _result(fut, by_id[ident])
                _print(results[ident], as_json)
    if interrupted or STOP.is_set():
        for ident in pending:
            results[ident] = _skipped(by_id[ident], "interrupted before it started")
        return EXIT_INTERRUPTED
    return exit_code_for(list(results.values()))


def _ok(result: RunResult | None) -> bool:
    return result is not None and result.success


def _blocked_by(
    ws: Workstream,
    results: dict[str, RunResult],
    by_id: dict[str, FileVerdict],
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


def _run_one(
    project: Project, v: FileVerdict, cooldowns: Cooldowns, prefix: bool, view: Any
) -> RunResult:
    token = current_workstream.set(v.workstream.id if prefix else None)
    ws_id = v.workstream.id
    try:
        result = run_workstream(
            v.workstream,
            project=project,
            cooldowns=cooldowns,
            run_id=new_run_id(),
            source=v.display,
            on_event=(lambda kind, data: view.event(ws_id, kind, data)) if view else None,
        )
    finally:
        current_workstream.reset(token)
    return result


def _result(fut: Future, v: FileVerdict) -> RunResult:
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
            exit_code=70,
            message=f"internal error: {type(e).__name__}: {e}",
            source=v.display,
        )
    import attrs

    return attrs.evolve(r, source=v.display)


def _print(r: RunResult, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(r.to_json(), ensure_ascii=False))
        return
    mark = "OK  " if r.success else "FAIL"
    tool = f" [{r.tool_id}, {r.duration_sec:.1f}s]" if r.tool_id else ""
    click.echo(f"{mark} {r.workstream_id}: {r.message}{tool}")


def _dry_run(project: Project, verdicts: list[FileVerdict]) -> int:
    from aim_core.router import candidates

    report = project.detect()
    for v in _topological(verdicts):
        ws = v.workstream
        routed = bool(ws.capability) and project.settings.enable_aim
        deps = f" after {', '.join(ws.depends_on)}" if ws.depends_on else ""
        what = f"capability {ws.capability}" if routed else f"tool {ws.tool} directly"
        click.echo(f"{ws.id} ({v.display}): {what}{deps}")
        cands = candidates(project.rules, report, ws.capability if routed else None, ws.tool)
        first = True
        for c in cands:
            if c.usable:
                state = "would run" if first else "fallback, ready"
                first = False
            else:
                state = f"skip ({c.skip.value}): {c.reason}"
            click.echo(f"  {c.tool_id:<14} {c.role:<16} {state}")
        files = ", ".join(ws.writable_files()) or "(none)"
        click.echo(f"  may change: {files}")
    click.echo("Dry run: nothing was run.")
    return 0


def _topological(verdicts: list[FileVerdict]) -> list[FileVerdict]:
    by_id = {v.workstream.id: v for v in verdicts}
    out: list[FileVerdict] = []
    seen: set[str] = set()

    def visit(ident: str) -> None:
        if ident in seen or ident not in by_id:
            return
        seen.add(ident)
        for d in by_id[ident].workstream.depends_on:
            visit(d)
        out.append(by_id[ident])

    for v in verdicts:
        visit(v.workstream.id)
    return out


def _install_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(_signum: int, _frame: Any) -> None:
        request_stop()

    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGTERM, handler)
