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

A process that appends again remembers what it left -- the tip it wrote, the listing
of the day directories, the heads' bytes -- and keeps the lock's file and the day
file open; under the lock it checks with two stats, the day file's last bytes and
both heads that the log is as it left it, and otherwise reads everything as a first
append does (docs/RELIABILITY.md, "What an append reads"). A line is the canonical
JSON its hash covers, with ``hash`` added last.

A torn last line (a crash mid-write) is found by the next append, moved to
``AIM_audit/<day>.torn`` with a note, and reported; it never breaks later lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aim_core.audit import checkpoints
from aim_core.audit.canonical import (
    body_digest,
    new_sha256,
    parse_timestamp,
    seal_body,
    utc_timestamp,
)
from aim_core.audit.checkpoints import CHECKPOINTS_NAME
from aim_core.audit.days import LOG_NAME, day_dirs
from aim_core.audit.head import (
    HEAD_NAME,
    NOFOLLOW,
    RESOLVE_HINT,
    SLOT,
    Head,
    HeadFile,
    LogBehindHead,
    Unreadable,
    behind,
    encode_heads,
    machine_head_path,
    open_no_link,
    refuse_link,
    state_dir,
    write_at,
)
from aim_core.locks import HeldLock

LOCK_NAME = ".lock"
_IN_DAY = os.sep + LOG_NAME
KEEP_OPEN = os.name != "nt"  # the day file stays open between appends (see _write_line)
_head = tuple.__new__  # _head(Head, fields): a Head without the Python-level __new__


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _behind(tip: tuple[int, str | None, str | None], *heads: Head | None) -> str | None:
    """Why the log whose last record is ``tip`` is behind one of ``heads``, or None."""
    for head in heads:
        if head is not None and (head.seq != tip[0] or head.hash != tip[1]):
            why = behind(tip[0], tip[1], head)
            if why:
                return why
    return None


def _settle_ns() -> int:
    """How long after a directory's last change its listing is trusted to stay as long
    as its times do: 4 ticks (at least 10 ms) of the coarse clock Linux stamps file
    times with, 100 ms elsewhere."""
    if sys.platform == "linux":
        try:
            return max(int(time.clock_getres(5) * 4e9), 10_000_000)  # CLOCK_REALTIME_COARSE
        except OSError:  # pragma: no cover - a kernel without it
            pass
    return 100_000_000


SETTLE_NS = _settle_ns()
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


def append_line(path: str | os.PathLike[str], line: bytes) -> os.stat_result:
    """Append ``line`` to ``path`` and fsync it (the folder is made when missing; a new
    file's folder is fsynced too, so its name survives a power cut). The caller holds
    the file's lock. Returns the file's ``fstat`` after the write."""
    fd = _open_append(path)
    try:
        _write_sync(fd, line)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if st.st_size == len(line):  # the file is new: make its name durable
        _fsync_dir(os.path.dirname(path) or ".")
    return st


def _open_append(path: str | os.PathLike[str], mode: int = os.O_WRONLY) -> int:
    """The day file at ``path`` opened to append (made, with its day directory, when
    missing); :class:`LinkedFile` when it or its day directory is a symbolic link."""
    day_dir = os.path.dirname(path)
    if os.path.islink(day_dir):
        raise refuse_link(day_dir)
    try:
        return open_no_link(path, mode | os.O_APPEND | os.O_CREAT)
    except FileNotFoundError:  # the first line of the day
        os.makedirs(day_dir, exist_ok=True)
        return open_no_link(path, mode | os.O_APPEND | os.O_CREAT)


def _ends_with(path: str, size: int, tail: bytes, fd: int | None) -> bool:
    """Whether the file at ``path`` (read through ``fd`` when given), ``size`` bytes
    long, ends with ``tail``."""
    if size < len(tail):
        return False
    try:
        if fd is not None:
            return os.pread(fd, len(tail), size - len(tail)) == tail
        with os.fdopen(open_no_link(path, os.O_RDONLY), "rb") as f:
            f.seek(size - len(tail))
            return f.read(len(tail)) == tail
    except OSError:
        return False


def _write_sync(fd: int, line: bytes) -> None:
    """Write all of ``line`` (at the end: ``fd`` is O_APPEND) and fsync."""
    written = os.write(fd, line)
    while written < len(line):  # a short write: the rest, still under the lock
        written += os.write(fd, line[written:])
    os.fsync(fd)


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
STEP_BACK_S = 86400  # how far behind the tip's record the clock may be: NTP, a VM resumed


def _plausibly_ahead(last: str, now: str) -> bool:
    """Whether ``last``, a record's timestamp ahead of ``now``, is one aim writes and
    at most :data:`STEP_BACK_S` ahead: a clock stepped back, not a record from the far
    future (that one is read as it is; verification reports the order)."""
    if _TIMESTAMP.fullmatch(last) is None:
        return False
    try:
        ahead = (parse_timestamp(last) - parse_timestamp(now)).total_seconds()
    except ValueError:  # 2026-13-45...
        return False
    return ahead <= STEP_BACK_S


def _close_quietly(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _fsync_dir(path: str) -> None:
    """fsync a directory (and its parent: the day directory may be new too); where
    directories cannot be opened (Windows), nothing."""
    for d in (path, os.path.dirname(os.path.abspath(path))):
        try:
            fd = os.open(d, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
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
    a newline), in one open; ``(b"", True)`` for an empty file. :class:`LinkedFile`
    when ``path`` is a symbolic link."""
    with os.fdopen(open_no_link(path, os.O_RDONLY), "rb") as f:
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
        self.clock = clock or _utc_now
        self.on_warning = on_warning or (lambda message: None)
        self._state_dir = state_dir
        self._machine_head_path: Path | None = None
        self._dirname = os.fspath(self.dir)
        self._prefix = self._dirname + os.sep  # + day + _IN_DAY: a day file
        self._second: tuple[int, str] = (-1, "")  # the last second _timestamp formatted
        # the timestamp of the tip's record when known (read back, or this process's own
        # last): a record's time never goes back before it (see _timestamp)
        self._tip_ts: str | None = None
        self._lock = HeldLock(self.dir / LOCK_NAME)
        self._lock_key: tuple[int, ...] | None = None  # the directory when the lock was current
        # The newest day file as this process last read or wrote it (name, device,
        # inode, size), the tip it holds and the bytes it ends with: read again when
        # the file on disk differs.
        self._tip_seen: tuple[tuple[Any, ...], tuple[int, str, str], bytes] | None = None
        self._days_seen: tuple[tuple[int, ...], list[str]] | None = None  # see _days
        self._head_files: tuple[HeadFile, HeadFile] | None = None
        self._newest: tuple[str, int, int, int] | None = None  # the newest day file, stat'ed
        self._day_fd: tuple[str, int, int, int] | None = None  # see _write_line
        # both heads kept open between appends: (HEAD.json's descriptor, device, inode,
        # the machine copy's descriptor, device, inode); see _heads_as_left
        self._heads_fd: tuple[int, int, int, int, int, int] | None = None

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

    @property
    def _heads_files(self) -> tuple[HeadFile, HeadFile]:
        """``HEAD.json`` and the machine's copy."""
        if self._head_files is None:
            machine = self.machine_head_path
            self._head_files = (
                HeadFile(os.path.join(self._dirname, HEAD_NAME), f"{self.dir.name}/{HEAD_NAME}"),
                HeadFile(machine, f"this machine's audit head ({machine})"),
            )
        return self._head_files

    def read_head(self) -> dict[str, Any] | None:
        """The saved chain head ``{"seq", "hash", "day"}`` of ``HEAD.json``, or None."""
        try:
            data = json.loads(self.head_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def _days(self) -> list[str]:
        """The names of the entries of the audit directory that look like days, newest
        first (do not change the list); :class:`LinkedFile` when one is a symbolic link.

        Listed again unless the directory's identity, mtime, ctime and link count are
        those of the last listing, and that listing can be trusted to have stayed true:
        either its link count is 2 + its subdirectories (as on ext4, xfs and tmpfs, so a
        day directory made or removed since moves it), or the directory's last change
        was over :data:`SETTLE_NS` before the listing (a change in the same tick of the
        file system's clock as the one before would leave the times as they were).
        """
        try:
            st = os.stat(self._dirname)
        except OSError:
            return []
        seen = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink)
        if self._days_seen is not None and self._days_seen[0] == seen:
            return self._days_seen[1]
        days = []
        subdirs = 0
        try:
            with os.scandir(self._dirname) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs += 1
                    name = entry.name
                    if len(name) == 10 and name[4] == "-" and name[7] == "-":
                        if entry.is_symlink():  # its day file would be read and written
                            raise refuse_link(entry.path)
                        days.append(name)
        except OSError:
            return []
        days.sort(reverse=True)
        trusted = st.st_nlink == 2 + subdirs or (
            st.st_mtime_ns % 1_000_000 != 0  # fine-grained times (not 1 or 2 s ones)
            and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > SETTLE_NS
        )
        self._days_seen = (seen, days) if trusted else None
        return days

    def _log_tip(self) -> tuple[int, str | None, str | None]:
        """``(seq, hash, day)`` of the last record in the day files (``(0, None, None)``
        when there is none), after moving a torn last line aside.

        The newest day file's last line is not parsed again when the file is the one
        this process last read or wrote -- same device, inode and size (appends only
        grow it) -- and still ends with the bytes it left there (the record's hash, in a
        line aim wrote): what reading the last line back would tell an append.
        """
        self._newest = None
        tip_ts, self._tip_ts = self._tip_ts, None
        for name in self._days():
            path = self._prefix + name + _IN_DAY
            try:
                st = os.stat(path)
            except OSError:
                continue
            seen = (name, st.st_dev, st.st_ino, st.st_size)
            if self._newest is None:
                self._newest = seen
            tip_seen = self._tip_seen
            if tip_seen is not None and tip_seen[0] == seen:
                kept = self._day_fd
                fd = kept[1] if kept is not None and kept[2:] == seen[1:3] else None
                if _ends_with(path, st.st_size, tip_seen[2], fd):
                    self._tip_ts = tip_ts  # the record this process last read or wrote
                    return tip_seen[1]
            tip = self._day_tip(Path(path), name, seen)
            if tip is not None:
                return tip
        return 0, None, None

    def _day_tip(
        self, path: Path, name: str, seen: tuple[Any, ...]
    ) -> tuple[int, str | None, str | None] | None:
        """The last record of one day file, or None when it holds none."""
        try:
            line, complete = _tail(path)
        except OSError:
            return None
        if not complete:
            self._set_aside_torn(path)
            line, _ = _tail(path)
            seen = ()  # the file changed: not remembered
        if not line.strip():
            return None
        try:
            last = json.loads(line)
            tip = int(last["seq"]), last["hash"], name
            ts = last.get("timestamp")
            self._tip_ts = ts if isinstance(ts, str) else None
            if seen and isinstance(tip[1], str):
                self._tip_seen = (seen, tip, line[-79:] + b"\n")
            return tip
        except (ValueError, KeyError, TypeError):
            self.on_warning(f"{path}: the last record is not valid JSON; run 'aim audit verify'")
        for raw in reversed(path.read_bytes().splitlines()):  # the last valid record
            try:
                rec = json.loads(raw)
                return int(rec["seq"]), rec["hash"], name
            except (ValueError, KeyError, TypeError):
                continue
        return None

    def _pruned_tip(self, machine: Head | None) -> tuple[int, str | None, str | None]:
        """The tip of a log with no record left (all pruned): the last prune checkpoint
        that verifies (and that this machine wrote, when it keeps a head)."""
        last = checkpoints.read(self.dir, self.key).last
        if last is None or (machine is not None and machine.checkpoint != last["seal"]):
            return 0, None, None
        return last["seq"], last["hash"], last.get("day")

    def _close_heads(self) -> None:
        for f in self._heads_files:
            f.close()

    def _guard(self) -> tuple[tuple[int, str | None, str | None], Head | None]:
        """The tip, after checking it against both heads (under the lock); returns it
        with the machine's head. Raises :class:`LogBehindHead`."""
        try:
            return self._check()
        finally:
            self._close_heads()

    def _check(self) -> tuple[tuple[int, str | None, str | None], Head | None]:
        """:meth:`_guard`, leaving the head files open (for :meth:`_put_heads`)."""
        saved_f, machine_f = self._heads_files
        try:
            saved = saved_f.read()
        except Unreadable as e:
            raise LogBehindHead(f"{e}; {RESOLVE_HINT}", file=saved_f.path) from None
        try:
            machine = machine_f.read()
        except Unreadable as e:
            raise LogBehindHead(f"{e}; {RESOLVE_HINT}", file=machine_f.path) from None
        tip = self._tip(machine)
        why = _behind(tip, saved, machine)
        if why and (self._days_seen is not None or self._tip_seen is not None):
            self._days_seen = self._tip_seen = None  # what this process remembers aside
            tip = self._tip(machine)
            why = _behind(tip, saved, machine)
        if why:
            raise LogBehindHead(f"{why}; {RESOLVE_HINT}", file=str(self.dir))
        if saved is None and (tip[0] > 1 or machine is not None):
            raise LogBehindHead(
                f"{HEAD_NAME} is missing while the log holds records up to seq {tip[0]}: "
                f"whether records were cut from its end cannot be told; {RESOLVE_HINT}",
                file=str(self.head_path),
            )
        return tip, machine

    def _tip(self, machine: Head | None) -> tuple[int, str | None, str | None]:
        """The log's tip; with no record left (all pruned), the last prune checkpoint
        that verifies (and that this machine wrote, when it keeps a head)."""
        tip = self._log_tip()
        return tip if tip[0] else self._pruned_tip(machine)

    def _save_heads(
        self, seq: int, digest: str | None, day: str | None, machine: Head | None, **extra: Any
    ) -> None:
        """Write ``HEAD.json``, then the machine's copy (which also keeps the seal of the last
        prune checkpoint; a new copy takes the one on disk)."""
        checkpoint = extra["checkpoint"] if "checkpoint" in extra else self._checkpoint(machine)
        try:
            self._put_heads(
                *encode_heads(seq, digest, day, checkpoint), seq, digest, day, checkpoint
            )
        finally:
            self._close_heads()

    def _checkpoint(self, machine: Head | None) -> str | None:
        """The seal the machine's copy keeps: the one it has, or for a new copy the last
        on disk."""
        if machine is not None:
            return machine.checkpoint
        last = checkpoints.read(self.dir, self.key).last
        return last["seal"] if last else None

    def _put_heads(
        self,
        saved_raw: bytes,
        machine_raw: bytes,
        seq: int,
        digest: str | None,
        day: str | None,
        checkpoint: str | None,
    ) -> None:
        """Write ``HEAD.json``, then the machine's copy (a failure there is a warning)."""
        saved_f, machine_f = self._heads_files
        saved_f.write(saved_raw, _head(Head, (seq, digest, day, saved_f.name, None)))
        try:
            machine_f.write(
                machine_raw, _head(Head, (seq, digest, day, machine_f.name, checkpoint))
            )
        except OSError as e:
            self.on_warning(f"the machine's copy of the audit head could not be written: {e}")

    def _timestamp(self) -> str:
        """:meth:`_now`, or the time of the tip's record when the clock is behind it
        (stepped back: NTP, a VM resumed): a log's times never go back, so its records
        stay in the day file of their time and in order (as verification checks)."""
        now = self._now()
        last = self._tip_ts
        if last is not None and now < last and _plausibly_ahead(last, now):
            self.on_warning(
                f"the clock ({now}) is behind the last audit record ({last}): "
                "the record is given that record's time"
            )
            return last
        return now

    def _now(self) -> str:
        """Now, as :func:`~aim_core.audit.canonical.utc_timestamp` writes it (from
        :attr:`clock`; the default clock without building a datetime)."""
        if self.clock is not _utc_now:
            return utc_timestamp(self.clock())
        second, micro = divmod(time.time_ns() // 1000, 1_000_000)
        formatted = self._second
        if formatted[0] != second:
            formatted = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = formatted
        return f"{formatted[1]}.{micro:06d}Z"

    def _commit(
        self, record: Mapping[str, Any], seq: int, prev: str | None, checkpoint: str | None
    ) -> dict[str, Any]:
        """Seal ``record`` as number ``seq + 1`` after ``prev``, append its line to the day
        file of its timestamp (fsynced), then write both heads (the machine's keeping
        ``checkpoint``). The line is the canonical JSON the hash is computed over, with
        the hash added last: one encoding."""
        sealed = dict(record)
        sealed["timestamp"] = timestamp = self._timestamp()
        if _TIMESTAMP.fullmatch(timestamp) is None:  # its day names the file written
            raise ValueError(f"not an audit timestamp: {timestamp!r}")
        sealed["seq"] = seq = seq + 1
        sealed["prev_hash"] = prev
        sealed.pop("hash", None)
        body = seal_body(sealed)
        key = self.key
        digest = body_digest(body, key) if key else new_sha256(body).hexdigest()
        sealed["hash"] = digest
        day = timestamp[:10]
        heads = encode_heads(seq, digest, day, checkpoint)  # before the write: less after it
        tail = b'"hash":"' + digest.encode() + b'"}\n'
        seen = self._write_line(day, body[:-1] + b"," + tail)
        self._tip_seen = (seen, (seq, digest, day), tail)
        self._tip_ts = timestamp
        self._put_heads(*heads, seq, digest, day, checkpoint)  # after the record is on disk
        return sealed

    def _write_line(self, day: str, line: bytes) -> tuple[str, int, int, int]:
        """Append ``line`` to the file of ``day`` and fsync it; returns the file as
        :meth:`_log_tip` would see it next: ``(day, device, inode, size)``.

        The file stays open for this process's next append to the same day, as
        logging's ``WatchedFileHandler`` keeps its file: it is written through again only
        when the path still names it (device and inode, from the stat :meth:`_log_tip`
        made under this lock), else it is closed and the path opened again.
        """
        newest, self._newest = self._newest, None
        kept = self._day_fd
        if kept is not None:
            if kept[0] == day and newest is not None and newest[:3] == (day, *kept[2:]):
                try:
                    _write_sync(kept[1], line)
                except BaseException:
                    self.close()
                    raise
                return (day, kept[2], kept[3], newest[3] + len(line))  # O_APPEND, locked
            self.close()
        fd = _open_append(self._prefix + day + _IN_DAY, os.O_RDWR)  # read: _ends_with
        try:
            _write_sync(fd, line)
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if KEEP_OPEN:
            self._day_fd = (day, fd, st.st_dev, st.st_ino)
        else:  # pragma: no cover - Windows: an open file could not be pruned or renamed
            os.close(fd)
        if st.st_size == len(line):  # the file is new: make its name durable
            _fsync_dir(os.path.dirname(self._prefix + day + _IN_DAY))
        return (day, st.st_dev, st.st_ino, st.st_size)

    def close(self) -> None:
        """Close the day file this log keeps open between appends (the next append opens
        it again); also done when the log is garbage-collected. The lock file closes
        with the lock."""
        kept, self._day_fd = self._day_fd, None
        if kept is not None:
            os.close(kept[1])
        self._close_kept_heads()

    def _close_kept_heads(self) -> None:
        heads, self._heads_fd = self._heads_fd, None
        if heads is not None:
            os.close(heads[0])
            os.close(heads[3])

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        # os.close bound at definition: at interpreter exit the module's globals may
        # already be None
        for name, at in (("_day_fd", 1), ("_heads_fd", 0), ("_heads_fd", 3)):
            kept = getattr(self, name, None)  # None when __init__ did not finish
            if kept is not None:
                try:  # noqa: SIM105 - no contextlib at interpreter exit
                    _close(kept[at])
                except OSError:
                    pass

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Seal a record (timestamp, seq, prev_hash, hash), append it, move the heads,
        return it. Raises :class:`LogBehindHead` (exit 4) when the log ends before its
        head: nothing is written then."""
        lock = self._lock
        lock.acquire()
        try:
            files = self._as_left()
            if files is not None:
                kept = self._heads_fd is not None  # else (Windows) closed here, once
                try:
                    sealed = self._commit_as_left(record, *files)
                except BaseException:
                    self._close_kept_heads()
                    raise
                finally:
                    if not kept:
                        _close_quietly(*files)
                if sealed is not None:
                    return sealed
            saved_f, machine_f = self._heads_files
            try:
                (seq, prev, _), machine = self._check()
                if lock.ensure_current():  # the lock file was replaced: read again under it
                    (seq, prev, _), machine = self._check()
                self._lock_key = self._days_seen[0] if self._days_seen else None
                checkpoint = machine.checkpoint if machine is not None else self._checkpoint(None)
                return self._commit(record, seq, prev, checkpoint)
            finally:
                saved_f.close()
                machine_f.close()
        finally:
            lock.release()

    def _as_left(self) -> tuple[int, int] | None:
        """When the log is as this process left it -- the same directory listing, the
        newest day file the one it keeps open with the size and times it left, both heads
        holding the bytes it last wrote or read, naming that tip -- both heads opened
        ``(HEAD.json, the machine's copy)``, for :meth:`_commit_as_left`. Else None: the
        general path reads and checks everything (the outcome is the same)."""
        files, kept, tip_seen, days = (
            self._head_files,
            self._day_fd,
            self._tip_seen,
            self._days_seen,
        )
        if files is None or kept is None or tip_seen is None or days is None:
            return None
        saved, machine = files[0].seen, files[1].seen
        day = kept[0]
        if saved is None or machine is None or days[1][:1] != [day] or tip_seen[1][2] != day:
            return None
        if self._lock_key != days[0]:  # the lock file is the one found current with it
            return None
        tip = tip_seen[1][:2]
        if saved[1][:2] != tip or machine[1][:2] != tip:
            return None
        if len(saved[0]) != SLOT or len(machine[0]) != SLOT:  # written over, not truncated
            return None
        try:
            st = os.stat(self._dirname)
            if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink) != days[0]:
                return None
            st = os.stat(self._prefix + day + _IN_DAY)
            if tip_seen[0] != (day, st.st_dev, st.st_ino, st.st_size) or kept[2:] != (
                st.st_dev,
                st.st_ino,
            ):
                return None
            tail = tip_seen[2]
            if os.pread(kept[1], len(tail), st.st_size - len(tail)) != tail:
                return None
        except OSError:
            return None
        return self._heads_as_left(files[0].path, saved[0], files[1].path, machine[0])

    def _heads_as_left(
        self, saved_path: str, saved: bytes, machine_path: str, machine: bytes
    ) -> tuple[int, int] | None:
        """Both heads opened ``(HEAD.json, the machine's copy)`` when they hold the bytes
        ``saved`` and ``machine``, else None. The descriptors stay open for the next
        append (:meth:`close` closes them): used again while each path names the file
        opened (device and inode), as the day file is."""
        heads = self._heads_fd
        try:
            if heads is not None:
                st = os.stat(saved_path)
                if (st.st_dev, st.st_ino) == heads[1:3]:
                    st = os.stat(machine_path)
                    if (st.st_dev, st.st_ino) == heads[4:]:
                        if os.pread(heads[0], 2 * SLOT, 0) == saved and (
                            os.pread(heads[3], 2 * SLOT, 0) == machine
                        ):
                            return heads[0], heads[3]
                        return None
                self._close_kept_heads()
            saved_fd = os.open(saved_path, os.O_RDWR | NOFOLLOW)
        except OSError:
            return None
        try:
            machine_fd = os.open(machine_path, os.O_RDWR | NOFOLLOW)
        except OSError:
            os.close(saved_fd)
            return None
        try:
            if os.read(saved_fd, 2 * SLOT) == saved and os.read(machine_fd, 2 * SLOT) == machine:
                if not KEEP_OPEN:  # pragma: no cover - Windows (see KEEP_OPEN)
                    return saved_fd, machine_fd
                a, b = os.fstat(saved_fd), os.fstat(machine_fd)
                self._heads_fd = (saved_fd, a.st_dev, a.st_ino, machine_fd, b.st_dev, b.st_ino)
                return saved_fd, machine_fd
        except OSError:
            pass
        os.close(saved_fd)
        os.close(machine_fd)
        return None

    def _commit_as_left(
        self, record: Mapping[str, Any], saved_fd: int, machine_fd: int
    ) -> dict[str, Any] | None:
        """:meth:`_commit` after :meth:`_as_left`, through the files it opened and the day
        file kept open. None (nothing written) when the record's day is another."""
        saved_f, machine_f = self._head_files  # type: ignore[misc]
        day, log_fd = self._day_fd[:2]  # type: ignore[index]
        seq, prev, _ = self._tip_seen[1]  # type: ignore[index]
        timestamp = self._timestamp()
        if timestamp[:10] != day:
            return None
        sealed = dict(record)
        sealed["timestamp"] = timestamp
        sealed["seq"] = seq = seq + 1
        sealed["prev_hash"] = prev
        sealed.pop("hash", None)
        body = seal_body(sealed)
        key = self.key
        sealed["hash"] = digest = body_digest(body, key) if key else new_sha256(body).hexdigest()
        checkpoint = machine_f.seen[1].checkpoint  # type: ignore[index]
        saved_raw, machine_raw = encode_heads(seq, digest, day, checkpoint)
        if len(saved_raw) != SLOT or len(machine_raw) != SLOT:
            return None
        tail = b'"hash":"' + digest.encode() + b'"}\n'
        line = body[:-1] + b"," + tail
        try:
            _write_sync(log_fd, line)
        except BaseException:
            self.close()
            raise
        seen = self._tip_seen[0]  # type: ignore[index]
        # the size it has now: appends are O_APPEND and other writers wait for the lock
        self._tip_seen = ((day, seen[1], seen[2], seen[3] + len(line)), (seq, digest, day), tail)
        self._tip_ts = timestamp
        saved_f.seen = machine_f.seen = None
        write_at(saved_fd, saved_raw, 0)  # then the heads, over themselves
        saved_f.seen = (saved_raw, _head(Head, (seq, digest, day, saved_f.name, None)))
        try:
            write_at(machine_fd, machine_raw, 0)
        except OSError as e:
            self.on_warning(f"the machine's copy of the audit head could not be written: {e}")
        else:
            machine_f.seen = (
                machine_raw,
                _head(Head, (seq, digest, day, machine_f.name, checkpoint)),
            )
        return sealed

    def check_head(self) -> None:
        """Raise :class:`LogBehindHead` when the log ends before its head (the core calls
        this before a run starts, so no tool runs unaudited)."""
        if not self.dir.is_dir() and not self.machine_head_path.exists():
            return
        with self._lock:
            self._lock.ensure_current()
            self._guard()

    def sync_head(self) -> dict[str, Any] | None:
        """Move the heads to the log's tip, forward only (each append already does;
        kept for callers). Raises :class:`LogBehindHead` when the log is behind."""
        if not self.dir.is_dir():
            return None
        with self._lock:
            self._lock.ensure_current()
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

        with self._lock:
            self._lock.ensure_current()
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
            return self._commit(
                plan.record(actor, reason), seq, prev, entries[-1]["seal"] if entries else None
            )

    def _set_aside_torn(self, path: Path) -> None:
        size = path.stat().st_size
        if size == 0:
            return
        with os.fdopen(open_no_link(path, os.O_RDWR), "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            start = _line_start(f, size)
            f.seek(start)
            torn = f.read()
            torn_path = self.dir / f"{path.parent.name}.torn"
            with os.fdopen(
                open_no_link(torn_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab"
            ) as t:
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
