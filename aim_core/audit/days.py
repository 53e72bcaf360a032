"""The day files of the audit log: ``AIM_audit/YYYY-MM-DD/audit.jsonl``."""

from __future__ import annotations

from pathlib import Path

LOG_NAME = "audit.jsonl"


def day_dirs(audit_dir: Path) -> list[Path]:
    """The ``YYYY-MM-DD`` directories that hold a log, oldest first."""
    if not audit_dir.is_dir():
        return []
    out = []
    for p in audit_dir.iterdir():
        name = p.name
        if len(name) == 10 and name[4] == "-" and name[7] == "-" and (p / LOG_NAME).is_file():
            out.append(p)
    return sorted(out, key=lambda p: p.name)
