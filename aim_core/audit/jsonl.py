"""The built-in audit log: ``AIM_audit/YYYY-MM-DD/audit.jsonl``, a hash chain.

Appending takes an exclusive lock (``AIM_audit/.lock``) around "read the chain
tip, write one line, fsync", so concurrent ``aim`` processes never interleave
or fork the chain; ``seq`` and ``timestamp`` are assigned under the lock, so
their order and the day files agree.

The chain head (last ``seq`` and ``hash``) is also kept in ``AIM_audit/HEAD.json``
so that deleting the tail of the log is detected. It is written once per run
(:meth:`JsonlAuditLog.sync_head`, read from the log's tip under the lock), not
per append: an append stays one write and one fsync, within the budget of 2x
a bare write+fsync. The head may lag behind the log (after a crash, or during
a run), never run ahead of it; records past the head are verified by the chain
alone.

A torn last line (a crash mid-write) is found by the next append, moved to
``AIM_audit/<day>.torn`` with a note, and reported; it never breaks later lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aim_core.audit.canonical import record_hash, utc_timestamp
from aim_core.locks import FileLock

LOG_NAME = "audit.jsonl"
HEAD_NAME = "HEAD.json"
LOCK_NAME = ".lock"
CHECKPOINTS_NAME = "CHECKPOINTS.jsonl"


def audit_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """``AIM_AUDIT_KEY`` as bytes (the HMAC key), or None."""
    env = os.environ if environ is None else environ
    value = env.get("AIM_AUDIT_KEY")
    return value.encode("utf-8") if value else None


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


def _line_start(f, end: int) -> int:
    """The offset just after the last newline before ``end`` (0 when there is none).
    Reads backwards in growing blocks: a record is usually well under 4 KiB."""
    block = 4096
    pos = end
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        nl = f.read(pos - start).rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        pos = start
        block = min(block * 4, 1 << 20)
    return 0


def _tail(path: Path) -> tuple[bytes, bool]:
    """The last line of a file (without its newline) and whether it is complete (ends in
    a newline), in one open; ``(b"", True)`` for an empty file."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return b"", True
        f.seek(size - 1)
        complete = f.read(1) == b"\n"
        end = size - 1 if complete else size
        start = _line_start(f, end)
        f.seek(start)
        return f.read(end - start), complete


class JsonlAuditLog:
    """The append-only JSONL audit log of one registry."""

    def __init__(
        self,
        audit_dir: Path,
        *,
        key: bytes | None = None,
        clock: Callable[[], datetime] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ):
        self.dir = Path(audit_dir)
        self.key = key
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.on_warning = on_warning or (lambda message: None)

    @property
    def head_path(self) -> Path:
        return self.dir / HEAD_NAME

    def read_head(self) -> dict[str, Any] | None:
        """The saved chain head ``{"seq", "hash", "day"}``, or None."""
        try:
            data = json.loads(self.head_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def _tip(self) -> tuple[int, str | None, str | None]:
        """``(seq, hash, day)`` of the last record, after moving a torn last line aside."""
        try:
            names = sorted(os.listdir(self.dir), reverse=True)
        except OSError:
            names = []
        for name in names:
            if len(name) != 10 or name[4] != "-" or name[7] != "-":
                continue
            path = self.dir / name / LOG_NAME
            try:
                line, complete = _tail(path)
            except OSError:
                continue
            if not complete:
                self._set_aside_torn(path)
                line, _ = _tail(path)
            if not line.strip():
                continue
            try:
                last = json.loads(line)
                return int(last["seq"]), last["hash"], name
            except (ValueError, KeyError, TypeError):
                self.on_warning(
                    f"{path}: the last record is not valid JSON; run 'aim audit verify'"
                )
                break
        head = self.read_head()
        if head and isinstance(head.get("seq"), int):
            return head["seq"], head.get("hash"), head.get("day")
        return 0, None, None

    def _set_aside_torn(self, path: Path) -> None:
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            start = _line_start(f, size)
            f.seek(start)
            torn = f.read()
            torn_path = self.dir / f"{path.parent.name}.torn"
            with open(torn_path, "ab") as t:
                note = {
                    "moved_at": utc_timestamp(self.clock()),
                    "file": f"{path.parent.name}/{LOG_NAME}",
                    "offset": start,
                    "bytes": len(torn),
                }
                t.write(json.dumps(note).encode() + b"\n" + torn + b"\n")
                t.flush()
                os.fsync(t.fileno())
            f.truncate(start)
            f.flush()
            os.fsync(f.fileno())
        self.on_warning(
            f"{path}: a torn last line ({len(torn)} bytes, left by a crash) "
            f"was moved to {torn_path}"
        )

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Seal a record (timestamp, seq, prev_hash, hash), append it, return it."""
        with FileLock(self.dir / LOCK_NAME):
            seq, prev, _ = self._tip()
            now = self.clock()
            sealed = dict(record)
            sealed["timestamp"] = utc_timestamp(now)
            sealed["seq"] = seq + 1
            sealed["prev_hash"] = prev
            sealed.pop("hash", None)
            sealed["hash"] = record_hash(sealed, self.key)
            line = (json.dumps(sealed, ensure_ascii=False, separators=(",", ":")) + "\n").encode(
                "utf-8"
            )
            path = self.dir / now.astimezone(timezone.utc).strftime("%Y-%m-%d") / LOG_NAME
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the first record of the day
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return sealed

    def sync_head(self) -> dict[str, Any] | None:
        """Write ``HEAD.json`` from the log's tip (the core does it at the end of each run)."""
        if not self.dir.is_dir():
            return None
        with FileLock(self.dir / LOCK_NAME):
            seq, digest, day = self._tip()
            if not seq:
                return None
            head = {"seq": seq, "hash": digest, "day": day}
            tmp = self.dir / f".{HEAD_NAME}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(head), encoding="utf-8")
            os.replace(tmp, self.head_path)
        return head

    def iter_lines(self, days: list[Path] | None = None) -> Iterator[tuple[Path, int, bytes]]:
        """Every line of the chosen day files as ``(file, line number, bytes)``."""
        for day in days if days is not None else day_dirs(self.dir):
            path = day / LOG_NAME
            with open(path, "rb") as f:
                for n, line in enumerate(f, 1):
                    yield path, n, line
