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

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from aim_core.errors import AuditIntegrityError

HEAD_NAME = "HEAD.json"
HEADS_DIRNAME = "audit-heads"
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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
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


SLOT = 512  # bytes: a head is written over itself in one write of this size


def write_head(path: Path, data: Mapping[str, Any]) -> None:
    """Write the head file over itself: one ``write`` of a fixed size at offset 0 (JSON
    padded with spaces), no rename and no fsync -- a rename over an existing file costs
    as much as an fsync on ext4, and a head lost to a power cut only lags. A head that
    does not fit the slot is written to a temporary file and renamed."""
    text = json.dumps(dict(data), ensure_ascii=False)
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) >= SLOT:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(raw + b"\n")
        os.replace(tmp, path)
        return
    raw = raw.ljust(SLOT - 1) + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, raw)  # at offset 0: opened without O_APPEND
        if os.fstat(fd).st_size != SLOT:
            os.ftruncate(fd, SLOT)
    finally:
        os.close(fd)


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
