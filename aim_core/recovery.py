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

from aim_core.paths import RUNS_DIRNAME

if TYPE_CHECKING:
    from aim_core.project import Project

log = logging.getLogger("aim")


def _kill_recorded_tool(entry: dict[str, Any]) -> bool:
    pid, started = entry.get("tool_pid"), entry.get("tool_started")
    if not pid:
        return False
    try:
        import psutil

        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 2.0:
            return False  # the pid was reused by an unrelated process
    except Exception:
        return False
    from aim_core.process import kill_tree

    kill_tree(pid)
    return True


def recover_dead_runs(project: Project) -> list[dict[str, Any]]:
    """Restore every dead run of this registry; return what was done, one dict per run."""
    from aim_core.runlocks import RunTable
    from aim_core.snapshot import Snapshot

    runs_dir = project.registry / RUNS_DIRNAME
    if not (runs_dir / "active").is_dir():
        return []
    table = RunTable(runs_dir)
    done = []
    for entry in table.dead():
        run_id = entry["run_id"]
        killed = _kill_recorded_tool(entry)
        restored: list[str] = []
        snap_dir = Path(entry["snapshot"]) if entry.get("snapshot") else None
        if entry.get("state") == "attempting" and snap_dir is not None and snap_dir.is_dir():
            snapshot = Snapshot.load(project.root, snap_dir)
            from aim_core.scope import Scope

            restored = snapshot.restore(scope=Scope(project.root, entry.get("scope", [])))
            _audit_interrupted(project, entry, restored, killed)
        table.forget(run_id)
        shutil.rmtree(runs_dir / run_id, ignore_errors=True)
        what = f"restored {len(restored)} file(s)" if restored else "nothing to restore"
        log.warning(
            f"Recovered run {run_id} ({entry.get('workstream_id')}), which was killed: {what}"
            + (f", stopped the {entry.get('tool_id')} process it left" if killed else "")
        )
        done.append({"run_id": run_id, "restored": restored, "killed_tool": killed})
    return done


def _audit_interrupted(
    project: Project, entry: dict[str, Any], restored: list[str], killed: bool
) -> None:
    from aim_core.audit.records import build_record

    message = (
        "Interrupted: the run was killed during this attempt; "
        "aim restored the files in scope afterwards"
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
        extra_content={"restored": sorted(restored), "stopped_tool": killed},
    )
    project.audit.emit(record)
    project.audit.sync_head()
