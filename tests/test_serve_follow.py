"""The pieces under `aim serve`'s incremental reading: following files by byte offset
(and noticing any change that is not an append), and the incremental chain check
agreeing with `aim audit verify` on every kind of tampering."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.verify import verify
from aim_core.serve.chain import ChainCheck
from aim_core.serve.follow import DayTails, FileTail, Rewritten

from ._serve import record


def test_a_tail_returns_complete_lines_once(tmp_path):
    path = tmp_path / "f.jsonl"
    tail = FileTail(path)
    assert tail.read_new() == []  # not there yet
    path.write_bytes(b"one\ntw")
    assert tail.read_new() == [(0, b"one")]
    assert tail.read_new() == []  # "tw" is still being written
    with open(path, "ab") as f:
        f.write(b"o\nthree\n")
    assert tail.read_new() == [(4, b"two"), (8, b"three")]
    assert tail.read_new() == []


@pytest.mark.parametrize(
    "change",
    ["replaced", "truncated", "same-size edit", "last line edited", "removed"],
)
def test_a_tail_notices_changes_other_than_appends(tmp_path, change):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"alpha\nbravo\n")
    tail = FileTail(path)
    assert len(tail.read_new()) == 2
    if change == "replaced":
        other = tmp_path / "g"
        other.write_bytes(b"alpha\nbravo\ncharlie\n")
        os.replace(other, path)
    elif change == "truncated":
        path.write_bytes(b"alpha\n")
    elif change == "same-size edit":
        st = path.stat()
        with open(path, "r+b") as f:
            f.write(b"ALPHA")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    elif change == "last line edited":
        with open(path, "r+b") as f:
            f.seek(6)
            f.write(b"BRAVO\ncharlie\n")
    else:
        path.unlink()
    with pytest.raises(Rewritten):
        tail.read_new()


def test_day_tails_follow_new_days_and_refuse_rewritten_history(tmp_path):
    audit = tmp_path / "AIM_audit"
    for day in ("2025-11-20", "2025-11-21"):
        (audit / day).mkdir(parents=True)
        (audit / day / "audit.jsonl").write_bytes(f"{day}\n".encode())
    tails = DayTails(audit)
    assert [(d, line) for d, _, line in tails.read_new()] == [
        ("2025-11-20", b"2025-11-20"),
        ("2025-11-21", b"2025-11-21"),
    ]
    (audit / "2025-11-22").mkdir()
    (audit / "2025-11-22" / "audit.jsonl").write_bytes(b"later\n")
    assert [line for _, _, line in tails.read_new()] == [b"later"]
    (audit / "2025-11-19").mkdir()
    (audit / "2025-11-19" / "audit.jsonl").write_bytes(b"inserted before\n")
    with pytest.raises(Rewritten, match="appeared before"):
        tails.read_new()
    tails = DayTails(audit)
    tails.read_new()
    (audit / "2025-11-20" / "audit.jsonl").unlink()  # as a prune does
    with pytest.raises(Rewritten, match="disappeared"):
        tails.read_new()


def _log(tmp_path: Path, n: int = 6) -> Path:
    log = JsonlAuditLog(tmp_path / "AIM_audit")
    for i in range(n):
        log.append(record(f"r{i}"))
    log.sync_head()
    return log.dir


def _incremental(audit: Path) -> str | None:
    chain = ChainCheck(audit)
    for day, _, line in DayTails(audit).read_new():
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        chain.feed(day, rec)
    return chain.problem or chain.head_problem()


def _lines(audit: Path) -> tuple[Path, list[str]]:
    [path] = sorted(audit.glob("*/audit.jsonl"))
    return path, path.read_text().splitlines(keepends=True)


TAMPERING = {
    "intact": lambda lines, audit: lines,
    "edited": lambda lines, audit: [
        *lines[:2],
        lines[2].replace('"actor":"pipeline"', '"actor":"mallory"'),
        *lines[3:],
    ],
    "deleted": lambda lines, audit: lines[:2] + lines[3:],
    "swapped": lambda lines, audit: [*lines[:2], lines[3], lines[2], *lines[4:]],
    "duplicated": lambda lines, audit: [*lines[:3], lines[2], *lines[3:]],
    "tail deleted": lambda lines, audit: lines[:-1],
    "garbage line": lambda lines, audit: [*lines[:3], "not json\n", *lines[3:]],
    "head rewritten": lambda lines, audit: _rewrite_head(audit, lines),
}


def _rewrite_head(audit: Path, lines: list[str]) -> list[str]:
    (audit / "HEAD.json").write_text(json.dumps({"seq": 6, "hash": "0" * 64}))
    return lines


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_the_incremental_check_agrees_with_aim_audit_verify(tmp_path, kind):
    audit = _log(tmp_path)
    path, lines = _lines(audit)
    path.write_text("".join(TAMPERING[kind](lines, audit)))
    problem = _incremental(audit)
    v = verify(audit)
    assert (problem is None) == v.ok, (kind, problem, [str(f) for f in v.findings])
    assert (problem is None) == (kind == "intact")
