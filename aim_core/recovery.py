"""Restoring what a killed run left behind.

A run that dies (SIGKILL, a crash, a power cut) leaves its entry in the lock
table with its lock free, and -- if it died during an attempt -- the snapshot
of the files in scope. The next aim command in the repository (or ``aim
recover``) kills the recorded tool tree if it still runs, restores the
snapshot, audits the attempt as ``interrupted`` and removes the entry.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from aim_core.project import Project
    from aim_core.workspace import Recovered

log = logging.getLogger("aim")

CUTOFF_GRACE_S = 0.5  # twice the heartbeat's period


def _kill_recorded_tool(entry: dict[str, Any]) -> bool:
    """Kill what the dead run's tool left: its tree, session and token holders, never a
    process older than the tool (its pid may have been reused); a race's candidates by
    their tokens."""
    pid, started, token = entry.get("tool_pid"), entry.get("tool_started"), entry.get("tool_mark")
    racers = [_kill_token_holders(mark) for mark in entry.get("race_marks") or []]
    if any(racers) and not pid and not token:
        return True
    if not pid:  # the run died before it noted the pid: what carries its token goes
        return _kill_token_holders(token) if token else False
    from aim_core.process import kill_tree

    since = started - 2.0 if started is not None else None  # the clocks differ by < 1 s
    return kill_tree(pid, token=token, since=since) > 0


def _kill_token_holders(token: str) -> bool:
    import os
    import signal

    from aim_core import proctree

    holders = [pid for pid in proctree.process_table() if proctree.carries(pid, token)]
    for pid in holders:
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
    return bool(holders)


def recover_dead_runs(
    project: Project, *, on_recovered: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Restore every dead run of this repository, each exactly once even when several
    aim commands start together; return what was done, one dict per run (``run_id``,
    ``restored``, ``left``, ``stuck``, ``killed_tool``, ``message``).

    :param on_recovered: given the sentence that says what was done for each run
        (default: logged as a warning, as a command that recovers before its own work
        does; ``aim recover`` prints it, as its result)."""
    from aim_core.runlocks import RunTable

    runs_dir = project.runs_state
    if not (runs_dir / "active").is_dir():
        return []
    table = RunTable(runs_dir)
    if table.dead():
        project.audit.check_head()
    done = []
    for dead in table.dead():
        with table.claim(dead["run_id"]) as entry:
            if entry is None:
                continue  # alive again, or another command recovers it
            done.append(_recover_one(project, entry))
            (on_recovered or log.warning)(done[-1]["message"])
            table.forget(entry["run_id"])
        shutil.rmtree(runs_dir / dead["run_id"], ignore_errors=True)
    return done


def _recover_one(project: Project, entry: dict[str, Any]) -> dict[str, Any]:
    from aim_core.runlocks import RunTable
    from aim_core.scope import Scope
    from aim_core.workspace import Recovered, recover_attempt

    run_id = entry["run_id"]
    killed = _kill_recorded_tool(entry)
    # aim was last known alive then: what changed later is left as it is and named (the
    # user's edits since, or what an orphaned tool did before it was stopped just now).
    cutoff = float(entry.get("alive_at") or 0) + CUTOFF_GRACE_S
    outcome = Recovered()
    snap_dir = Path(entry["snapshot"]) if entry.get("snapshot") else None
    if entry.get("state") == "attempting" and snap_dir is not None and snap_dir.is_dir():
        scope = Scope(project.root, entry.get("scope", []))
        others = RunTable(project.runs_state).other_scopes(run_id, cutoff - CUTOFF_GRACE_S)
        outcome = recover_attempt(project.root, snap_dir, scope, cutoff, ignore=others)
        _audit_interrupted(project, entry, outcome, killed)
    elif entry.get("state") == "racing":  # nothing was applied: nothing to undo
        from aim_core.isolated import remove_leftover_copy

        for copy in sorted((project.runs_state / run_id).glob("race-*")):
            remove_leftover_copy(copy)  # read-only folders and links included
        _audit_interrupted(project, entry, outcome, killed, during="a race")
    undone = [*outcome.restored, *outcome.reverted]
    what = f"restored {', '.join(undone)}" if undone else "nothing to restore"
    if outcome.left and killed:  # the tool ran on after aim died: the change may be its
        what += (
            f"; left as they are for you to review (changed after aim died, by you or by "
            f"its tool, which ran until now): {', '.join(outcome.left)}"
        )
    elif outcome.left:
        what += f"; left as they are (changed after it died): {', '.join(outcome.left)}"
    if outcome.stuck:
        what += f"; could not undo: {', '.join(outcome.stuck)}"
    message = f"Recovered run {run_id} ({entry.get('workstream_id')}), which was killed: {what}"
    if killed:
        message += f"; stopped the {entry.get('tool_id') or 'race'} processes it left"
    return {
        "message": message,
        "run_id": run_id,
        "restored": undone,
        "left": list(outcome.left),
        "stuck": list(outcome.stuck),
        "killed_tool": killed,
    }


def _audit_interrupted(
    project: Project,
    entry: dict[str, Any],
    outcome: Recovered,
    killed: bool,
    during: str = "this attempt",
) -> None:
    from aim_core.audit.records import build_record

    message = f"Interrupted: the run was killed during {during}; " + (
        "aim restored the files in scope afterwards"
        if during == "this attempt"
        else "its copies were removed, the repository left as it was"
    )
    record = build_record(
        actor=project.settings.actor,
        run_id=entry["run_id"],
        workstream_id=entry.get("workstream_id"),
        tool_id=entry.get("tool_id"),
        capability=entry.get("capability"),
        payload=None,
        success=False,
        message=message,
        attempt=entry.get("attempt", 0),
        failure="interrupted",
        extra_content={
            "restored": sorted([*outcome.restored, *outcome.reverted]),
            "left": list(outcome.left),
            "not_undone": list(outcome.stuck),
            "stopped_tool": killed,
        },
    )
    project.audit.emit(record)
    project.audit.sync_head()
