"""Prune checkpoints, ``AIM_audit/CHECKPOINTS.jsonl``: where the remaining chain begins.

When ``aim audit prune`` removes the oldest day directories, it first appends an
entry naming the last record it removes -- ``{"seq", "hash", "day", "days",
"pruned_at", "reason", "prev", "seal"}`` -- so the chain of the remaining log
starts from it. Entries are chained and sealed like records: ``prev`` is the
previous entry's ``seal``, and ``seal`` is the SHA-256 (HMAC-SHA256 with
``AIM_AUDIT_KEY``) of the entry's canonical JSON without ``seal``. A line
written by hand, or edited, does not verify; with the key, neither does one
recomputed without it. The seal of the newest entry is also kept in the
machine's copy of the head (:mod:`aim_core.audit.head`), so on the machine that
pruned, a checkpoint made up afterwards fails even without a key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aim_core.audit.canonical import digest
from aim_core.audit.head import open_no_link

CHECKPOINTS_NAME = "CHECKPOINTS.jsonl"


def seal(entry: Mapping[str, Any], key: bytes | None = None) -> str:
    """The seal of a checkpoint entry (its ``seal`` field left out)."""
    return digest(entry, key, leave_out="seal")


class Checkpoints:
    """The entries of ``CHECKPOINTS.jsonl`` that verify (in order), and the problems of the
    others as ``(line number, message)``."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.problems: list[tuple[int, str]] = []

    @property
    def last(self) -> dict[str, Any] | None:
        return self.entries[-1] if self.entries else None


def read(audit_dir: Path, key: bytes | None = None) -> Checkpoints:
    """Read and check every entry; an entry after a bad one is not trusted either."""
    out = Checkpoints()
    path = Path(audit_dir) / CHECKPOINTS_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    prev: str | None = None
    prev_seq = 0
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            out.problems.append((n, "not a JSON checkpoint"))
            break
        problem = _problem(entry, prev, prev_seq, key)
        if problem:
            out.problems.append((n, problem))
            break
        out.entries.append(entry)
        prev, prev_seq = entry["seal"], entry["seq"]
    return out


def _problem(entry: Any, prev: str | None, prev_seq: int, key: bytes | None) -> str | None:
    if not isinstance(entry, dict):
        return "not a JSON checkpoint"
    seq, digest_ = entry.get("seq"), entry.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(digest_, str):
        return "the checkpoint has no seq and hash"
    if "seal" not in entry:
        return (
            f"the checkpoint at seq {seq} is not sealed: it was not written by "
            "'aim audit prune' (made up or from an old aim)"
        )
    if entry["seal"] != seal(entry, key):
        return f"the checkpoint at seq {seq} does not match its seal: it was edited or made up" + (
            "" if key else " (if the log was written with AIM_AUDIT_KEY, set it)"
        )
    if entry.get("prev") != prev:
        return f"the checkpoint at seq {seq} does not link to the checkpoint before it"
    if seq <= prev_seq:
        return f"the checkpoint at seq {seq} goes back from seq {prev_seq}"
    return None


def make_entry(
    fields: Mapping[str, Any], previous: Mapping[str, Any] | None, key: bytes | None
) -> dict[str, Any]:
    """A sealed entry chained to ``previous``."""
    entry = dict(fields)
    entry["prev"] = previous["seal"] if previous else None
    entry.pop("seal", None)
    entry["seal"] = seal(entry, key)
    return entry


def write(audit_dir: Path, entries: list[dict[str, Any]]) -> None:
    """Replace ``CHECKPOINTS.jsonl`` with ``entries`` (atomically, fsynced)."""
    path = Path(audit_dir) / CHECKPOINTS_NAME
    tmp = path.with_name(f".{CHECKPOINTS_NAME}.{os.getpid()}.tmp")
    fd = open_no_link(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps(entry, separators=(",", ":")) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
