"""Follow append-only JSONL files by byte offset.

:class:`FileTail` reads the complete lines appended to one file since the last
call (a line without its newline yet is left for the next call). It remembers
the file's identity (inode), where it stopped, and the last line it read, and
raises :class:`Rewritten` when the file changed in any way other than by
appending: replaced, truncated, or its last read line altered.

:class:`DayTails` does the same for the audit's ``YYYY-MM-DD/audit.jsonl`` day
files: a new day is read from its start; a day that disappears (pruned or
deleted), a day that appears before the newest one, or an older day that
changes at all (size or mtime) raise :class:`Rewritten`, and the caller starts
over from scratch.
"""

from __future__ import annotations

import json
import os
from json.scanner import make_scanner
from pathlib import Path
from typing import Any

from aim_core.audit.jsonl import LOG_NAME, day_dirs

READ_BLOCK = 1 << 20
# what json.loads runs, without its wrappers (typeshed types the argument wrongly)
_scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def json_line(line: bytes) -> Any:
    """``json.loads(line)``, or None when the line is not JSON. A line of UTF-8 that is
    one JSON value from its first byte to its last (what the audit writes) is parsed
    by the decoder's scanner directly, without ``json.loads``' encoding detection and
    whitespace matching; anything else (a BOM, UTF-16, surrounding spaces, an error)
    goes through ``json.loads`` itself, so the answer is always the same."""
    try:
        text = line.decode("utf-8")
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except (ValueError, StopIteration):  # UnicodeDecodeError and JSONDecodeError included
        pass
    try:
        return json.loads(line)
    except ValueError:
        return None


class Rewritten(Exception):
    """A followed file changed other than by appending; start over."""


class FileTail:
    """The new complete lines of one file, by byte offset."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0  # just after the last complete line read
        self.inode: int | None = None
        self.seen: tuple[int, int] | None = None  # (size, mtime_ns) at the last read
        self.last_line = b""

    def read_new(self) -> list[tuple[int, bytes]]:
        """``(offset, line without newline)`` of each complete line appended since the
        last call. :class:`Rewritten` when the file was removed, replaced, truncated, its
        last read line altered, or touched without growing."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.inode is not None:
                raise Rewritten(f"{self.path} was removed") from None
            return []
        now = (st.st_size, st.st_mtime_ns)
        if self.inode is not None:
            if st.st_ino != self.inode:
                raise Rewritten(f"{self.path} was replaced")
            if st.st_size < self.offset:
                raise Rewritten(f"{self.path} shrank")
            if now == self.seen:
                return []
            if self.seen is not None and st.st_size == self.seen[0]:
                raise Rewritten(f"{self.path} was written without growing")
        out: list[tuple[int, bytes]] = []
        with open(self.path, "rb") as f:
            if self.last_line:
                f.seek(self.offset - len(self.last_line) - 1)
                if f.read(len(self.last_line) + 1) != self.last_line + b"\n":
                    raise Rewritten(f"{self.path}: its last read line changed")
            f.seek(self.offset)
            pending, pos = b"", self.offset
            while block := f.read(READ_BLOCK):
                lines = (pending + block).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    out.append((pos, line))
                    pos += len(line) + 1
        if out:
            self.last_line = out[-1][1]
        self.offset = pos
        self.inode = st.st_ino
        # with a partial last line pending, look again next time whatever the stat says
        self.seen = now if not pending else None
        return out


class DayTails:
    """The audit's day files, each followed by a :class:`FileTail`."""

    def __init__(self, audit_dir: Path):
        self.audit_dir = Path(audit_dir)
        self.tails: dict[str, FileTail] = {}

    def read_new(self) -> list[tuple[str, int, bytes]]:
        """``(day, offset, line)`` of every complete line appended since the last call,
        oldest day first; :class:`Rewritten` when history changed (a day removed, a day
        added before the newest one, a file changed other than by appending)."""
        days = [d.name for d in day_dirs(self.audit_dir)]
        gone = set(self.tails) - set(days)
        if gone:
            raise Rewritten(f"day file(s) {', '.join(sorted(gone))} disappeared")
        newest = max(self.tails) if self.tails else None
        out: list[tuple[str, int, bytes]] = []
        for day in days:
            tail = self.tails.get(day)
            if tail is None:
                if newest is not None and day < newest:
                    raise Rewritten(f"day {day} appeared before {newest}")
                tail = self.tails[day] = FileTail(self.audit_dir / day / LOG_NAME)
            out.extend((day, off, line) for off, line in tail.read_new())
        return out
