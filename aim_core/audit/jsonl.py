"""The built-in audit log: ``AIM_audit/YYYY-MM-DD/audit.jsonl``, a hash chain.

Appending takes an exclusive lock (``AIM_audit/.lock``) around "read the chain
tip, check it against the saved heads, write one line, fsync, move the heads",
so concurrent ``aim`` processes never interleave or fork the chain; ``seq`` and
``timestamp`` are assigned under the lock, so their order and the day files
agree.

The chain head (last ``seq`` and ``hash``) is kept in ``AIM_audit/HEAD.json``
and in the machine's state directory (:mod:`aim_core.audit.head`), both moved
by every append after the record is fsynced, and only forward: an append to a
log that ends before a head is refused with :class:`~aim_core.audit.head.LogBehindHead`
(exit 4) until ``aim audit reset-head`` accepts the loss (:meth:`JsonlAuditLog.reset_head`,
itself a record). The heads are small files written over themselves, without
rename or fsync: an append stays one fsynced write plus two small writes.

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

from aim_core.audit import checkpoints
from aim_core.audit.canonical import record_hash, utc_timestamp
from aim_core.audit.checkpoints import CHECKPOINTS_NAME
from aim_core.audit.days import LOG_NAME, day_dirs
from aim_core.audit.head import (
    HEAD_NAME,
    RESOLVE_HINT,
    Head,
    LogBehindHead,
    Unreadable,
    behind,
    machine_head_path,
    read_head,
    state_dir,
    write_head,
)
from aim_core.locks import FileLock

LOCK_NAME = ".lock"
__all__ = [
    "CHECKPOINTS_NAME",
    "HEAD_NAME",
    "LOCK_NAME",
    "LOG_NAME",
    "JsonlAuditLog",
    "LogBehindHead",
    "append_line",
    "audit_key",
    "day_dirs",
    "state_dir",
]


def audit_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """``AIM_AUDIT_KEY`` as bytes (the HMAC key), or None."""
    env = os.environ if environ is None else environ
    value = env.get("AIM_AUDIT_KEY")
    return value.encode("utf-8") if value else None


def append_line(path: Path, line: bytes) -> None:
    """Append ``line`` to ``path`` in one write and fsync it (the folder is made when
    missing). The caller holds the file's lock."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except FileNotFoundError:  # the first line of the day
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _line_start(f: Any, end: int) -> int:
    """The offset just after the last newline before ``end`` (0 when there is none).
    Reads backwards in growing blocks: a record is usually well under 4 KiB."""
    block = 4096
    pos = end
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        nl = f.read(pos - start).rfind(b"\n")
        if nl >= 0:
            return int(start + nl + 1)
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
    """The append-only JSONL audit log of one registry.

    :param audit_dir: the registry's ``AIM_audit/``.
    :param key: ``AIM_AUDIT_KEY`` (hashes become HMACs), or None.
    :param state_dir: the machine's state directory (default: :func:`state_dir` of the
        process environment), where the second copy of the head is kept.
    """

    def __init__(
        self,
        audit_dir: Path,
        *,
        key: bytes | None = None,
        clock: Callable[[], datetime] | None = None,
        on_warning: Callable[[str], None] | None = None,
        state_dir: Path | None = None,
    ):
        self.dir = Path(audit_dir)
        self.key = key
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.on_warning = on_warning or (lambda message: None)
        self._state_dir = state_dir
        self._machine_head_path: Path | None = None

    @property
    def head_path(self) -> Path:
        return self.dir / HEAD_NAME

    @property
    def machine_head_path(self) -> Path:
        """The machine's copy of the head (outside the repository)."""
        if self._machine_head_path is None:
            self._machine_head_path = machine_head_path(
                self.dir, self._state_dir if self._state_dir is not None else state_dir()
            )
        return self._machine_head_path

    def read_head(self) -> dict[str, Any] | None:
        """The saved chain head ``{"seq", "hash", "day"}`` of ``HEAD.json``, or None."""
        try:
            data = json.loads(self.head_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def _log_tip(self) -> tuple[int, str | None, str | None]:
        """``(seq, hash, day)`` of the last record in the day files (``(0, None, None)``
        when there is none), after moving a torn last line aside."""
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
            for raw in reversed(path.read_bytes().splitlines()):  # the last valid record
                try:
                    rec = json.loads(raw)
                    return int(rec["seq"]), rec["hash"], name
                except (ValueError, KeyError, TypeError):
                    continue
        return 0, None, None

    def _tip(self, machine: Head | None) -> tuple[int, str | None, str | None]:
        """The log's tip; with no record left (all pruned), the last prune checkpoint
        that verifies (and that this machine wrote, when it keeps a head)."""
        tip = self._log_tip()
        if tip[0]:
            return tip
        last = checkpoints.read(self.dir, self.key).last
        if last is None or (machine is not None and machine.checkpoint != last["seal"]):
            return tip
        return last["seq"], last["hash"], last.get("day")

    def _heads(self) -> tuple[Head | None, Head | None]:
        """``(HEAD.json, the machine's copy)``; :class:`LogBehindHead` when one is unreadable."""
        out = []
        for path, name in (
            (self.head_path, f"{self.dir.name}/{HEAD_NAME}"),
            (self.machine_head_path, f"this machine's audit head ({self.machine_head_path})"),
        ):
            try:
                out.append(read_head(path, name))
            except Unreadable as e:
                raise LogBehindHead(f"{e}; {RESOLVE_HINT}", file=str(path)) from None
        return out[0], out[1]

    def _guard(self) -> tuple[tuple[int, str | None, str | None], Head | None]:
        """The tip, after checking it against both heads (under the lock); returns it
        with the machine's head. Raises :class:`LogBehindHead`."""
        saved, machine = self._heads()
        tip = self._tip(machine)
        for head in (saved, machine):
            if head is not None:
                why = behind(tip[0], tip[1], head)
                if why:
                    raise LogBehindHead(f"{why}; {RESOLVE_HINT}", file=str(self.dir))
        if saved is None and (tip[0] > 1 or machine is not None):
            raise LogBehindHead(
                f"{HEAD_NAME} is missing while the log holds records up to seq {tip[0]}: "
                f"whether records were cut from its end cannot be told; {RESOLVE_HINT}",
                file=str(self.head_path),
            )
        return tip, machine

    def _save_heads(
        self, seq: int, digest: str | None, day: str | None, machine: Head | None, **extra: Any
    ) -> None:
        """Write ``HEAD.json``, then the machine's copy (which also keeps the seal of the last
        prune checkpoint; a new copy takes the one on disk)."""
        head = {"seq": seq, "hash": digest, "day": day}
        write_head(self.head_path, head)
        if "checkpoint" in extra:
            checkpoint = extra["checkpoint"]
        elif machine is not None:
            checkpoint = machine.checkpoint
        else:
            last = checkpoints.read(self.dir, self.key).last
            checkpoint = last["seal"] if last else None
        try:
            write_head(
                self.machine_head_path,
                {**head, "checkpoint": checkpoint},
            )
        except OSError as e:
            self.on_warning(f"the machine's copy of the audit head could not be written: {e}")

    def _write(self, record: Mapping[str, Any], seq: int, prev: str | None) -> dict[str, Any]:
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
        day = now.astimezone(timezone.utc).strftime("%Y-%m-%d")
        append_line(self.dir / day / LOG_NAME, line)
        return sealed

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Seal a record (timestamp, seq, prev_hash, hash), append it, move the heads,
        return it. Raises :class:`LogBehindHead` (exit 4) when the log ends before its
        head: nothing is written then."""
        with FileLock(self.dir / LOCK_NAME):
            (seq, prev, _), machine = self._guard()
            sealed = self._write(record, seq, prev)
            self._save_heads(sealed["seq"], sealed["hash"], sealed["timestamp"][:10], machine)
        return sealed

    def check_head(self) -> None:
        """Raise :class:`LogBehindHead` when the log ends before its head (the core calls
        this before a run starts, so no tool runs unaudited)."""
        if not self.dir.is_dir() and not self.machine_head_path.exists():
            return
        with FileLock(self.dir / LOCK_NAME):
            self._guard()

    def sync_head(self) -> dict[str, Any] | None:
        """Move the heads to the log's tip, forward only (each append already does;
        kept for callers). Raises :class:`LogBehindHead` when the log is behind."""
        if not self.dir.is_dir():
            return None
        with FileLock(self.dir / LOCK_NAME):
            (seq, digest, day), machine = self._guard()
            if not seq:
                return None
            self._save_heads(seq, digest, day, machine)
        return {"seq": seq, "hash": digest, "day": day}

    def reset_head(self, *, actor: str, reason: str) -> dict[str, Any] | None:
        """Accept, on purpose, a log that ends before its head or whose start is gone:
        record what was lost as an audit record (``"event": "reset_head"``), chained from
        the log's real tip, add a sealed checkpoint where the remaining chain starts if
        needed, and move both heads to the new record. None when nothing needed it."""
        from aim_core.audit.reset import plan_reset

        with FileLock(self.dir / LOCK_NAME):
            tip = self._log_tip()
            plan = plan_reset(self, tip)
            if plan is None:
                return None
            entries = plan.checkpoints
            if entries is not None:
                checkpoints.write(self.dir, entries)
            else:
                entries = checkpoints.read(self.dir, self.key).entries
            seq, prev = plan.chain_from
            sealed = self._write(plan.record(actor, reason), seq, prev)
            self._save_heads(
                sealed["seq"],
                sealed["hash"],
                sealed["timestamp"][:10],
                None,
                checkpoint=entries[-1]["seal"] if entries else None,
            )
        return sealed

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

    def iter_lines(self, days: list[Path] | None = None) -> Iterator[tuple[Path, int, bytes]]:
        """Every line of the chosen day files as ``(file, line number, bytes)``."""
        for day in days if days is not None else day_dirs(self.dir):
            path = day / LOG_NAME
            with open(path, "rb") as f:
                for n, line in enumerate(f, 1):
                    yield path, n, line
