"""``aim audit prune``: remove whole day directories older than the retention.

Before a day goes, a sealed checkpoint naming the last record pruned (its seq
and hash) is appended to ``AIM_audit/CHECKPOINTS.jsonl`` (:mod:`aim_core.audit.checkpoints`)
and its seal kept in the machine's copy of the head, so ``aim audit verify``
still starts the chain where the remaining log begins, and a checkpoint made
up by hand fails. Runs under the append lock; a log behind its head, or
checkpoints that do not verify, are refused (exit 4) rather than pruned over.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aim_core.audit import checkpoints
from aim_core.audit.canonical import utc_timestamp
from aim_core.audit.head import open_no_link, refuse_link
from aim_core.audit.jsonl import LOCK_NAME, LOG_NAME, JsonlAuditLog, audit_key, day_dirs
from aim_core.errors import AuditIntegrityError
from aim_core.locks import FileLock

LAST_PRUNE = ".last_prune"


def _last_record(path: Path) -> dict[str, Any] | None:
    last = None
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                last = rec
    return last


def prune(
    audit_dir: Path,
    older_than_days: int,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    key: bytes | None = None,
    state_dir: Path | None = None,
) -> list[str]:
    """Remove day directories older than ``older_than_days`` (UTC days); return their names.

    :param key: the HMAC key of the log (default: ``AIM_AUDIT_KEY``).
    :param state_dir: the machine's state directory (default: the user's).
    :raises AuditIntegrityError: the log is behind its head, or its checkpoints do not
        verify (exit 4; ``aim audit verify`` says where).
    """
    now = now or datetime.now(timezone.utc)
    key = key if key is not None else audit_key()
    cutoff = (now.astimezone(timezone.utc) - timedelta(days=older_than_days)).date().isoformat()
    log = JsonlAuditLog(audit_dir, key=key, state_dir=state_dir)
    with FileLock(audit_dir / LOCK_NAME):
        days = [d for d in day_dirs(audit_dir) if d.name < cutoff]
        if dry_run or not days:
            return [d.name for d in days]
        tip, machine = log._guard()
        cps = checkpoints.read(audit_dir, key)
        if cps.problems:
            n, message = cps.problems[0]
            raise AuditIntegrityError(
                f"{message}; nothing was pruned: see 'aim audit verify'",
                file=f"{audit_dir / checkpoints.CHECKPOINTS_NAME}:{n}",
            )
        last = _last_record(days[-1] / LOG_NAME)
        seal = cps.last["seal"] if cps.last else None
        if last is not None:
            entry = checkpoints.make_entry(
                {
                    "seq": last.get("seq"),
                    "hash": last.get("hash"),
                    "day": days[-1].name,
                    "days": [d.name for d in days],
                    "pruned_at": utc_timestamp(now),
                    "reason": "prune",
                },
                cps.last,
                key,
            )
            checkpoints.write(audit_dir, [*cps.entries, entry])
            seal = entry["seal"]
        for d in days:
            shutil.rmtree(d)
        if tip[0]:
            log._save_heads(*tip, machine, checkpoint=seal)
        return [d.name for d in days]


def prune_if_due(audit_dir: Path, older_than_days: int) -> list[str]:
    """Prune at most once a day (``aim run`` calls this); a refusal is logged, not raised."""
    marker = audit_dir / LAST_PRUNE
    if marker.is_symlink():  # touched, it would make or date the file it leads to
        logging.getLogger("aim").warning(f"the audit log was not pruned: {refuse_link(marker)}")
        return []
    try:
        if time.time() - marker.stat().st_mtime < 86400:
            return []
    except OSError:
        pass
    if not audit_dir.is_dir():
        return []
    os.close(open_no_link(marker, os.O_WRONLY | os.O_CREAT))
    os.utime(marker, follow_symlinks=False)
    try:
        return prune(audit_dir, older_than_days)
    except AuditIntegrityError as e:
        logging.getLogger("aim").warning(f"the audit log was not pruned: {e}")
        return []
