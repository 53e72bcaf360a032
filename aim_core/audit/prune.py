"""``aim audit prune``: remove whole day directories older than the retention.

Before a day goes, the seq and hash of the last record pruned are appended to
``AIM_audit/CHECKPOINTS.jsonl``, so ``aim audit verify`` still starts the
chain where the remaining log begins. Runs under the append lock.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aim_core.audit.canonical import utc_timestamp
from aim_core.audit.jsonl import CHECKPOINTS_NAME, LOCK_NAME, LOG_NAME, day_dirs
from aim_core.locks import FileLock

LAST_PRUNE = ".last_prune"


def _last_record(path: Path) -> dict | None:
    last = None
    with open(path, "rb") as f:
        for line in f:
            try:
                last = json.loads(line)
            except ValueError:
                continue
    return last


def prune(
    audit_dir: Path,
    older_than_days: int,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Remove day directories older than ``older_than_days`` (UTC days); return their names."""
    now = now or datetime.now(timezone.utc)
    cutoff = (now.astimezone(timezone.utc) - timedelta(days=older_than_days)).date().isoformat()
    with FileLock(audit_dir / LOCK_NAME):
        days = [d for d in day_dirs(audit_dir) if d.name < cutoff]
        if dry_run or not days:
            return [d.name for d in days]
        last = _last_record(days[-1] / LOG_NAME)
        if last is not None:
            entry = {
                "seq": last.get("seq"),
                "hash": last.get("hash"),
                "day": days[-1].name,
                "pruned_at": utc_timestamp(now),
                "days": [d.name for d in days],
            }
            with open(audit_dir / CHECKPOINTS_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()
                os.fsync(f.fileno())
        for d in days:
            shutil.rmtree(d)
        return [d.name for d in days]


def prune_if_due(audit_dir: Path, older_than_days: int) -> list[str]:
    """Prune at most once a day (``aim run`` calls this)."""
    marker = audit_dir / LAST_PRUNE
    try:
        if time.time() - marker.stat().st_mtime < 86400:
            return []
    except OSError:
        pass
    if not audit_dir.is_dir():
        return []
    marker.touch()
    return prune(audit_dir, older_than_days)
