"""``aim audit verify``: walk the chain, the head and the prune checkpoints.

Each problem is reported with its file and line and a kind a person can act
on: an edited record, records deleted, reordered or inserted, a truncated
tail, a head that doesn't match, a line torn by a crash. A torn last line
alone is a warning (exit 0); everything else fails verification (exit 4).

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

from aim_core.audit.canonical import record_hash
from aim_core.audit.jsonl import CHECKPOINTS_NAME, HEAD_NAME, LOG_NAME, day_dirs


@define
class Finding:
    """One problem: where, what kind, and a sentence."""

    kind: str  # edited | deleted | reordered | inserted | truncated | head | torn | invalid
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


def _checkpoint(audit_dir: Path) -> dict[str, Any] | None:
    path = audit_dir / CHECKPOINTS_NAME
    if not path.exists():
        return None
    last = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            last = json.loads(line)
        except ValueError:
            continue
    return last


def verify(
    audit_dir: Path, *, key: bytes | None = None, head: tuple[int, str] | None = None
) -> Verification:
    """Check the whole log under ``audit_dir``."""
    v = Verification()
    cp = _checkpoint(audit_dir)
    prev_seq = cp["seq"] if cp else 0
    prev_hash = cp["hash"] if cp else None
    prev_ts = ""
    by_seq: dict[int, str] = {}
    days = day_dirs(audit_dir)
    for di, day in enumerate(days):
        path = day / LOG_NAME
        rel = f"{day.name}/{LOG_NAME}"
        data = path.read_bytes()
        lines = data.split(b"\n")
        trailing_ok = data.endswith(b"\n") or not data
        if trailing_ok:
            lines = lines[:-1]
        for n, raw in enumerate(lines, 1):
            last_line_of_log = di == len(days) - 1 and n == len(lines)
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict):
                    raise ValueError
            except ValueError:
                if last_line_of_log and not trailing_ok:
                    v.findings.append(
                        Finding(
                            "torn",
                            "the last line is incomplete (a crash while writing); the next "
                            "append moves it aside",
                            rel,
                            n,
                        )
                    )
                else:
                    v.findings.append(Finding("invalid", "not a JSON record", rel, n))
                continue
            v.records += 1
            seq, digest = rec.get("seq"), rec.get("hash")
            if record_hash(rec, key) != digest:
                v.findings.append(
                    Finding(
                        "edited",
                        f"record seq {seq}: its hash does not match its content"
                        + ("" if key else " (if the log was written with AIM_AUDIT_KEY, set it)"),
                        rel,
                        n,
                    )
                )
            if not isinstance(seq, int):
                v.findings.append(Finding("invalid", "the record has no seq", rel, n))
                continue
            if v.first_seq is None:
                v.first_seq = seq
            if seq > prev_seq + 1:
                v.findings.append(
                    Finding(
                        "deleted",
                        f"records {prev_seq + 1}..{seq - 1} are missing before seq {seq}",
                        rel,
                        n,
                    )
                )
            elif seq <= prev_seq:
                kind = "inserted" if seq in by_seq else "reordered"
                v.findings.append(Finding(kind, f"seq {seq} comes after seq {prev_seq}", rel, n))
            elif rec.get("prev_hash") != prev_hash:
                v.findings.append(
                    Finding(
                        "inserted",
                        f"record seq {seq} does not link to the record before it "
                        "(inserted, replaced or reordered)",
                        rel,
                        n,
                    )
                )
            ts = rec.get("timestamp", "")
            if ts < prev_ts:
                v.findings.append(Finding("reordered", f"timestamp {ts} goes back in time", rel, n))
            if not ts.startswith(day.name):
                v.findings.append(
                    Finding("reordered", f"timestamp {ts} does not belong in {day.name}/", rel, n)
                )
            prev_ts = max(prev_ts, ts)
            by_seq[seq] = digest
            prev_seq = max(prev_seq, seq)
            prev_hash = digest
            v.last_seq = prev_seq
    v.torn_set_aside = sum(
        1
        for p in audit_dir.glob("*.torn")
        for line in p.read_text(errors="replace").splitlines()
        if line.startswith('{"moved_at"')
    )
    _check_head(audit_dir, v, by_seq, head)
    return v


def _check_head(
    audit_dir: Path, v: Verification, by_seq: dict[int, str], given: tuple[int, str] | None
) -> None:
    heads = []
    path = audit_dir / HEAD_NAME
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            heads.append(("HEAD.json", int(saved["seq"]), saved["hash"]))
        except (ValueError, KeyError, TypeError):
            v.findings.append(Finding("head", "HEAD.json is not readable", HEAD_NAME))
    if given is not None:
        heads.append(("--head", given[0], given[1]))
    last = v.last_seq or 0
    for name, seq, digest in heads:
        if seq > last:
            v.findings.append(
                Finding(
                    "truncated",
                    f"{name} says the chain reaches seq {seq}, the log ends at seq {last}: "
                    "records were deleted from the end",
                )
            )
        elif seq in by_seq and by_seq[seq] != digest:
            v.findings.append(
                Finding("head", f"{name} names seq {seq} with another hash: the log was rewritten")
            )
        elif seq not in by_seq and (v.first_seq is None or seq >= v.first_seq):
            v.findings.append(Finding("head", f"{name} names seq {seq}, which is not in the log"))
