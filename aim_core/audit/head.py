"""The chain head: how far the audit log must reach, kept in two places.

- ``AIM_audit/HEAD.json``, beside the log, travels with it (a copy of the log
  can be checked elsewhere);
- ``<state dir>/audit-heads/<key>.json``, on this machine, outside the
  repository, where a tool working in the repository does not reach; ``<key>``
  is a digest of the real path of the registry's ``AIM_audit/``, so every
  registry has its own.

Both are written by every append, under the append lock, after the record is
on disk (log, then ``HEAD.json``, then the machine's copy): a crash can leave a
head one record behind the log, never ahead of it. A head only moves forward:
an append to a log that ends before one of its heads, or that holds another
record at the head's ``seq``, is refused (:class:`LogBehindHead`, exit 4) until
someone accepts the loss on purpose (``aim audit reset-head``, itself audited).

The state directory is ``AIM_STATE_DIR``, else the platform's user state
directory (``$XDG_STATE_HOME/aim`` or ``~/.local/state/aim`` on Linux,
``~/Library/Application Support/aim`` on macOS, ``%LOCALAPPDATA%/aim/State`` on
Windows) -- not the cache directory: clearing a cache must not erase the
evidence of a cut log.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from aim_core.errors import AuditIntegrityError

HEAD_NAME = "HEAD.json"
HEADS_DIRNAME = "audit-heads"
SLOT = 512  # bytes: a head is written over itself in one write of this size
RESOLVE_HINT = (
    "run 'aim audit verify' to see what is missing; if the records were removed on "
    "purpose, accept it with 'aim audit reset-head --reason \"...\"' (the reset is audited)"
)


class LogBehindHead(AuditIntegrityError):
    """The audit log ends before its saved head (records were cut from its end), or was
    rewritten: nothing is appended until the loss is accepted (exit 4)."""


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """aim's machine-local state directory (see the module docstring)."""
    from aim_core.paths import machine_state_str

    return Path(machine_state_str(os.environ if environ is None else environ))


def machine_head_path(audit_dir: Path, state: Path) -> Path:
    """The machine's copy of the head of the log in ``audit_dir`` (keyed by the real path
    of the registry's ``AIM_audit/``)."""
    from aim_core.digest import sha256_hex

    real = os.path.realpath(audit_dir)
    digest = sha256_hex(real.encode("utf-8", "surrogateescape"))[:32]
    return state / HEADS_DIRNAME / f"{digest}.json"


class Head(NamedTuple):
    """A saved head: the ``seq`` and ``hash`` of the last record, its day, where it was
    read (``name``, for messages), and, in the machine's copy, the seal of the last
    prune checkpoint written on this machine."""

    seq: int
    hash: str | None
    day: str | None = None
    name: str = HEAD_NAME
    checkpoint: str | None = None


class Unreadable(ValueError):
    """A head file exists but does not hold a head."""


def read_head(path: Path, name: str) -> Head | None:
    """The head saved at ``path`` (None when there is no file); :class:`Unreadable` when the
    file holds something else."""
    raw = read_raw(path, name)
    return None if raw is None else parse_head(raw, name)


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class LinkedFile(AuditIntegrityError):
    """A file or directory of the audit log is a symbolic link: an append would write
    where it leads (a repository can ship such a link), so nothing is written (exit 4)."""


def refuse_link(path: str | os.PathLike[str]) -> LinkedFile:
    """The :class:`LinkedFile` error for the link at ``path``."""
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return LinkedFile(
        f"{os.fspath(path)} is a symbolic link (to {target}): aim writes its audit log "
        "only to files of its own, never through a link (a repository could point one at "
        "any file); remove the link and run again"
    )


def open_no_link(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """``os.open`` that never follows a link at ``path`` (its last name: O_NOFOLLOW);
    :class:`LinkedFile` when it is one, other errors as ``os.open`` raises them."""
    try:
        return os.open(path, flags | NOFOLLOW, mode)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise refuse_link(path) from None
        raise


def read_raw(path: str | os.PathLike[str], name: str) -> bytes | None:
    """The bytes of the head file at ``path`` (None when there is none), in one open;
    :class:`Unreadable` when it cannot be read."""
    try:
        fd = open_no_link(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except LinkedFile:
        raise
    except OSError as e:
        raise Unreadable(f"{name} cannot be read ({e})") from None
    try:
        raw = os.read(fd, 2 * SLOT)
        if len(raw) == 2 * SLOT:  # a large head (written by rename): read to the end
            chunks = [raw]
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            raw = b"".join(chunks)
    except OSError as e:
        raise Unreadable(f"{name} cannot be read ({e})") from None
    finally:
        os.close(fd)
    return raw


def parse_head(raw: bytes, name: str) -> Head:
    """The head in the bytes of a head file; :class:`Unreadable` when they hold something
    else (``name`` is the file's name in messages)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unreadable(f"{name} cannot be read ({e})") from None
    try:
        data = json.loads(text)
        seq = data["seq"]
        digest = data["hash"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise TypeError
        if digest is not None and not isinstance(digest, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise Unreadable(f"{name} does not hold a head ({{'seq': N, 'hash': ...}})") from None
    checkpoint = data.get("checkpoint")
    return Head(
        seq,
        digest,
        data.get("day") if isinstance(data.get("day"), str) else None,
        name,
        checkpoint if isinstance(checkpoint, str) else None,
    )


def encode_head(data: Mapping[str, Any]) -> bytes:
    """The bytes of a head file: its JSON (``json.dumps`` spacing) padded with spaces to
    :data:`SLOT` bytes, the last a newline; when it does not fit, the JSON and a newline."""
    text = "{" + ", ".join(f'"{k}": {_scalar(v)}' for k, v in data.items()) + "}"
    raw = text.encode("utf-8", "surrogateescape")
    return raw.ljust(SLOT - 1) + b"\n" if len(raw) < SLOT else raw + b"\n"


def encode_heads(
    seq: int, digest: str | None, day: str | None, checkpoint: str | None
) -> tuple[bytes, bytes]:
    """:func:`encode_head` of ``HEAD.json`` (``seq``, ``hash``, ``day``) and of the
    machine's copy (the same and ``checkpoint``), sharing the work."""
    if (
        type(seq) is int
        and type(digest) is str
        and digest.isalnum()
        and type(day) is str
        and day.replace("-", "").isalnum()
        and (checkpoint is None or (type(checkpoint) is str and checkpoint.isalnum()))
    ):  # what an append writes: nothing to escape
        text = f'{{"seq": {seq}, "hash": "{digest}", "day": "{day}"'
        last = "null" if checkpoint is None else f'"{checkpoint}"'
    else:
        text = f'{{"seq": {_scalar(seq)}, "hash": {_scalar(digest)}, "day": {_scalar(day)}'
        last = _scalar(checkpoint)
    saved = (text + "}").encode("utf-8", "surrogateescape")
    machine = f'{text}, "checkpoint": {last}}}'.encode("utf-8", "surrogateescape")
    return (
        saved.ljust(SLOT - 1) + b"\n" if len(saved) < SLOT else saved + b"\n",
        machine.ljust(SLOT - 1) + b"\n" if len(machine) < SLOT else machine + b"\n",
    )


def _scalar(value: Any) -> str:
    """JSON of a head's value; hex digests, days and numbers without ``json.dumps``."""
    if value is None:
        return "null"
    if type(value) is int:
        return str(value)
    if type(value) is str and (value.isalnum() or value.replace("-", "").isalnum()):
        return f'"{value}"'  # letters, digits and dashes need no escapes
    return json.dumps(value, ensure_ascii=False)


def write_head(path: Path, data: Mapping[str, Any]) -> None:
    """Write the head file over itself: one ``write`` of a fixed size at offset 0 (JSON
    padded with spaces), no rename and no fsync -- a rename over an existing file costs
    as much as an fsync on ext4, and a head lost to a power cut only lags. A head that
    does not fit the slot is written to a temporary file and renamed."""
    write_raw(path, encode_head(data))


def write_raw(path: str | os.PathLike[str], raw: bytes) -> None:
    """Write the bytes of :func:`encode_head` as :func:`write_head` does."""
    if len(raw) != SLOT:
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
        with os.fdopen(open_no_link(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
        return
    try:
        fd = open_no_link(path, os.O_WRONLY | os.O_CREAT)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = open_no_link(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, raw)  # at offset 0: opened without O_APPEND
        if os.fstat(fd).st_size != SLOT:
            os.ftruncate(fd, SLOT)
    finally:
        os.close(fd)


class HeadFile:
    """One head file as the append lock's holder reads and writes it.

    :meth:`read` leaves the file open (``fd``), so :meth:`write` puts the new head over
    the old one through the same descriptor; the bytes last read or written are kept
    (``seen``), so an unchanged file is not parsed again. Use under the append lock
    only, and :meth:`close` when done.
    """

    def __init__(self, path: str | os.PathLike[str], name: str):
        self.path = os.fspath(path)
        self.name = name
        self.seen: tuple[bytes, Head] | None = None
        self.fd: int | None = None
        self._size = -1

    def read(self) -> Head | None:
        """The head in the file, None when there is no file; :class:`Unreadable`."""
        if self.fd is not None:
            self.close()
        try:
            fd = open_no_link(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None
        except OSError:  # read-only, a directory...: read it as read_head does
            raw = read_raw(self.path, self.name)
            if raw is None:
                return None
        else:
            self.fd = fd
            try:
                raw = os.read(fd, 2 * SLOT)
                while len(raw) >= 2 * SLOT and (chunk := os.read(fd, 1 << 16)):
                    raw += chunk
            except OSError as e:
                raise Unreadable(f"{self.name} cannot be read ({e})") from None
            self._size = len(raw)
        seen = self.seen
        if seen is not None and seen[0] == raw:
            return seen[1]
        head = parse_head(raw, self.name)
        self.seen = (raw, head)
        return head

    def write(self, raw: bytes, head: Head) -> None:
        """Put ``raw`` (from :func:`encode_heads`, holding ``head``) in the file, as
        :func:`write_head` does, and close it."""
        fd = self.fd
        self.fd = None
        self.seen = None
        try:
            if fd is not None and self._size == SLOT == len(raw):
                write_at(fd, raw, 0)  # over a slot of the same size: nothing to truncate
            else:
                write_raw(self.path, raw)
        finally:
            if fd is not None:
                os.close(fd)
        self.seen = (raw, head)

    def close(self) -> None:
        """Close the file :meth:`read` left open (if it did)."""
        fd = self.fd
        self.fd = None
        if fd is not None:
            os.close(fd)


def _seek_write(fd: int, raw: bytes, offset: int) -> int:  # pragma: no cover - Windows
    os.lseek(fd, offset, os.SEEK_SET)
    return os.write(fd, raw)


# os.pwrite where there is one (one call, the file offset left alone)
write_at: Callable[[int, bytes, int], int] = getattr(os, "pwrite", _seek_write)


def behind(tip_seq: int, tip_hash: str | None, head: Head) -> str | None:
    """Why a log whose last record is ``(tip_seq, tip_hash)`` is behind ``head``, or None.

    A log may reach past its head (a crash between the append and the head's
    write); it may not end before it, nor hold another record at its ``seq``.
    """
    if tip_seq < head.seq:
        first = tip_seq + 1
        lost = f"seq {first} was" if first == head.seq else f"seqs {first}..{head.seq} were"
        return (
            f"{head.name} says the audit chain reaches seq {head.seq}, but the log ends at "
            f"seq {tip_seq}: {lost} cut from its end"
        )
    if tip_seq == head.seq and head.hash is not None and tip_hash != head.hash:
        return (
            f"{head.name} names seq {head.seq} with another hash than the log's last record: "
            "the end of the log was rewritten"
        )
    return None
