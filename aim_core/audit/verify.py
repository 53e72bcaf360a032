"""``aim audit verify``: walk the chain, the heads and the prune checkpoints.

Each problem is reported with its file and line and a kind a person can act
on: an edited record, records deleted, reordered or inserted, a truncated
tail, a head that doesn't match or is missing, a checkpoint that doesn't
verify, a line torn by a crash. A torn last line alone is a warning (exit 0);
everything else fails verification (exit 4).

The heads checked are ``HEAD.json``, the machine's copy of it (kept outside the
repository, :mod:`aim_core.audit.head`) and ``--head SEQ:HASH``; the chain
starts at the last sealed prune checkpoint (:mod:`aim_core.audit.checkpoints`),
which must also be the one this machine wrote, when it keeps a head.

What the chain promises (ARCHITECTURE.md): it catches accidental corruption,
lost or torn writes, and edits, deletions, insertions or truncations by
anyone who does not recompute the chain. Whoever can rewrite the whole log
*and* the head can forge it; against that, ``AIM_AUDIT_KEY`` (kept outside the
repository) makes the hashes HMACs, and ``--head SEQ:HASH`` checks against a
head saved elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attrs import define, field

from aim_core.audit import checkpoints
from aim_core.audit.canonical import record_hash
from aim_core.audit.checkpoints import CHECKPOINTS_NAME
from aim_core.audit.head import HEAD_NAME, Head, Unreadable, machine_head_path, read_head
from aim_core.audit.head import state_dir as state
from aim_core.audit.jsonl import LOG_NAME, day_dirs


@define
class Finding:
    """One problem: where, what kind, and a sentence."""

    # edited | deleted | reordered | inserted | truncated | head | checkpoint | torn | invalid
    kind: str
    message: str
    file: str | None = None
    line: int | None = None

    @property
    def fatal(self) -> bool:
        return self.kind != "torn"

    def __str__(self) -> str:
        where = (
            f"{self.file}:{self.line}: "
            if self.file and self.line
            else (f"{self.file}: " if self.file else "")
        )
        return f"{where}{self.kind}: {self.message}"


@define
class Verification:
    """The outcome of a verification."""

    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    findings: list[Finding] = field(factory=list)
    torn_set_aside: int = 0

    @property
    def ok(self) -> bool:
        return not any(f.fatal for f in self.findings)


def verify(
    audit_dir: Path,
    *,
    key: bytes | None = None,
    head: tuple[int, str] | None = None,
    state_dir: Path | None = None,
) -> Verification:
    """Check the whole log under ``audit_dir``.

    :param key: ``AIM_AUDIT_KEY`` (the hashes are HMACs), or None.
    :param head: a head saved elsewhere, ``(seq, hash)``.
    :param state_dir: the machine's state directory (default: the user's), where the
        machine's copy of the head is looked for.
    """
    v = Verification()
    machine_path = machine_head_path(audit_dir, state_dir if state_dir is not None else state())
    machine = _read(machine_path, f"this machine's audit head ({machine_path})", v)
    cps = checkpoints.read(audit_dir, key)
    for n, message in cps.problems:
        v.findings.append(Finding("checkpoint", message, CHECKPOINTS_NAME, n))
    cp = cps.last
    if machine is not None and cp is not None and machine.checkpoint != cp["seal"]:
        v.findings.append(
            Finding(
                "checkpoint",
                f"the checkpoint at seq {cp['seq']} is not the last one this machine wrote "
                f"({machine_path}): it was made up or replaced",
                CHECKPOINTS_NAME,
            )
        )
    walk = _ChainWalk(v, key, cp["seq"] if cp else 0, cp["hash"] if cp else None)
    days = day_dirs(audit_dir)
    for di, day in enumerate(days):
        walk.day(day, last_day=di == len(days) - 1)
    v.torn_set_aside = sum(
        1
        for p in audit_dir.glob("*.torn")
        for line in p.read_text(errors="replace").splitlines()
        if line.startswith('{"moved_at"')
    )
    end = v.last_seq if v.last_seq is not None else (cp["seq"] if cp else 0)
    heads = _saved_heads(audit_dir, v, machine, end, head)
    _check_heads(v, heads, walk.by_seq, end=end, last_at=walk.last_at)
    return v


class _ChainWalk:
    """The records of the log, one after the other, checked against the chain."""

    def __init__(self, v: Verification, key: bytes | None, seq: int, digest: str | None):
        self.v = v
        self.key = key
        self.prev_seq = seq
        self.prev_hash = digest
        self.prev_ts = ""
        self.by_seq: dict[int, str] = {}
        self.last_at: tuple[str, int] | None = None

    def day(self, day: Path, *, last_day: bool) -> None:
        """Check every line of one day file."""
        rel = f"{day.name}/{LOG_NAME}"
        data = (day / LOG_NAME).read_bytes()
        lines = data.split(b"\n")
        trailing_ok = data.endswith(b"\n") or not data
        if trailing_ok:
            lines = lines[:-1]
        for n, raw in enumerate(lines, 1):
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict):
                    raise ValueError
            except ValueError:
                if last_day and n == len(lines) and not trailing_ok:
                    message = (
                        "the last line is incomplete (a crash while writing); the next "
                        "append moves it aside"
                    )
                    self.v.findings.append(Finding("torn", message, rel, n))
                else:
                    self.v.findings.append(Finding("invalid", "not a JSON record", rel, n))
                continue
            self.record(rec, day.name, rel, n)

    def record(self, rec: dict[str, Any], day: str, rel: str, n: int) -> None:
        """Check one record: its hash, its place in the chain, its time."""
        v = self.v
        v.records += 1
        seq, digest = rec.get("seq"), rec.get("hash")
        if record_hash(rec, self.key) != digest:
            hint = "" if self.key else " (if the log was written with AIM_AUDIT_KEY, set it)"
            message = f"record seq {seq}: its hash does not match its content{hint}"
            v.findings.append(Finding("edited", message, rel, n))
        if not isinstance(seq, int):
            v.findings.append(Finding("invalid", "the record has no seq", rel, n))
            return
        if v.first_seq is None:
            v.first_seq = seq
        self._link(rec, seq, rel, n)
        ts = str(rec.get("timestamp", ""))
        if ts < self.prev_ts:
            v.findings.append(Finding("reordered", f"timestamp {ts} goes back in time", rel, n))
        if not ts.startswith(day):
            message = f"timestamp {ts} does not belong in {day}/"
            v.findings.append(Finding("reordered", message, rel, n))
        self.prev_ts = max(self.prev_ts, ts)
        self.by_seq[seq] = str(digest)
        self.prev_seq = max(self.prev_seq, seq)
        self.prev_hash = digest
        v.last_seq = self.prev_seq
        self.last_at = (rel, n)

    def _link(self, rec: dict[str, Any], seq: int, rel: str, n: int) -> None:
        prev_seq = self.prev_seq
        if seq > prev_seq + 1:
            message = f"records {prev_seq + 1}..{seq - 1} are missing before seq {seq}"
            self.v.findings.append(Finding("deleted", message, rel, n))
        elif seq <= prev_seq:
            kind = "inserted" if seq in self.by_seq else "reordered"
            self.v.findings.append(Finding(kind, f"seq {seq} comes after seq {prev_seq}", rel, n))
        elif rec.get("prev_hash") != self.prev_hash:
            message = (
                f"record seq {seq} does not link to the record before it "
                "(inserted, replaced or reordered)"
            )
            self.v.findings.append(Finding("inserted", message, rel, n))


def _read(path: Path, name: str, v: Verification) -> Head | None:
    try:
        return read_head(path, name)
    except Unreadable as e:
        v.findings.append(Finding("head", str(e), str(path)))
        return None


def _saved_heads(
    audit_dir: Path,
    v: Verification,
    machine: Head | None,
    end: int,
    given: tuple[int, str] | None,
) -> list[Head]:
    """``HEAD.json``, this machine's copy and a head given on the command line."""
    saved = _read(audit_dir / HEAD_NAME, HEAD_NAME, v)
    # aim writes HEAD.json before the machine's copy, and with every record after the first
    # (a crash may come between the very first record and its head)
    if saved is None and (end > 1 or machine is not None) and not (audit_dir / HEAD_NAME).exists():
        v.findings.append(
            Finding(
                "head",
                f"{HEAD_NAME} is missing while the log reaches seq {end}: whether records "
                "were cut from its end cannot be told here",
                HEAD_NAME,
            )
        )
    if saved is not None and machine is not None and saved.seq < machine.seq:
        v.findings.append(
            Finding(
                "head",
                f"{HEAD_NAME} says seq {saved.seq}, this machine's copy says seq {machine.seq}: "
                f"{HEAD_NAME} was moved back",
                HEAD_NAME,
            )
        )
    heads = [h for h in (saved, machine) if h is not None]
    if given is not None:
        heads.append(Head(given[0], given[1], None, "--head"))
    return heads


def _check_heads(
    v: Verification,
    heads: list[Head],
    by_seq: dict[int, str],
    *,
    end: int,
    last_at: tuple[str, int] | None,
) -> None:
    """Each head against the log: never beyond its end, never naming another record."""
    file, line = last_at if last_at else (None, None)
    for h in heads:
        if h.seq > end:
            cut = f"seq {end + 1} was" if end + 1 == h.seq else f"seqs {end + 1}..{h.seq} were"
            v.findings.append(
                Finding(
                    "truncated",
                    f"{h.name} says the chain reaches seq {h.seq}, the log ends at seq {end}: "
                    f"{cut} cut from its end",
                    file,
                    line,
                )
            )
        elif h.seq in by_seq and h.hash is not None and by_seq[h.seq] != h.hash:
            v.findings.append(
                Finding(
                    "head", f"{h.name} names seq {h.seq} with another hash: the log was rewritten"
                )
            )
        elif (
            h.seq not in by_seq
            and h.seq > 0
            and v.first_seq is not None  # with every day pruned, the head is the checkpoint
            and h.seq >= v.first_seq
        ):
            v.findings.append(
                Finding("head", f"{h.name} names seq {h.seq}, which is not in the log")
            )
