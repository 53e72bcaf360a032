"""The pieces under `aim serve`'s incremental reading: following files by byte offset
(and noticing any change that is not an append), the incremental chain check
agreeing with `aim audit verify` on every kind of tampering, the fast parse and hash
agreeing with `json.loads` and the audit's record hash, and one bulk read counting
what reading line by line counts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from aim_core.audit.canonical import record_hash
from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.verify import verify
from aim_core.serve.chain import ChainCheck, chain_hash
from aim_core.serve.follow import DayTails, FileTail, Rewritten, json_line
from aim_core.serve.state import AuditState

from ._serve import REGISTRY, record, seed_history


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


# --------------------------------------------------------------------------- reading fast


JSON_LINES = [
    b'{"seq":1,"a":[1,2.5,null,true],"b":{"c":"\\u00e9\\n"}}',
    '{"name":"caf\u00e9 \u2028 \U0001f600"}'.encode(),
    b'{"n":NaN,"i":-Infinity,"big":123456789012345678901234567890,"e":1e400}',
    b"\xef\xbb\xbf" + b'{"bom":1}',  # json.loads skips a UTF-8 BOM
    '{"utf16":1}'.encode("utf-16"),
    '{"utf16le":1}'.encode("utf-16-le"),
    b'  {"spaces":1}  ',
    b'{"a":1} {"b":2}',  # extra data
    b'{"a":1',
    b"not json",
    b"",
    b"\xff\xfe\xfa",
    b'"a string"',
    b"12",
    b'{"a":"\x01"}',  # a raw control character: refused in strict mode
    b'{"a":1}\x00',
]


def _loads_or_none(line: bytes) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None


@pytest.mark.parametrize("line", JSON_LINES)
def test_a_line_is_parsed_as_json_loads_parses_it(line):
    mine, theirs = json_line(line), _loads_or_none(line)
    assert repr(mine) == repr(theirs)  # repr: NaN is not equal to itself
    assert type(mine) is type(theirs)


RECORDS = [
    record("r1"),
    record("r2", success=False, failure="timeout", extra={"note": "caf\u00e9 \u2028 \U0001f600"}),
    {"seq": 3, "nested": {"b": [1.5, 1e16, 1e-7, 10**30, None, True], "a": {}}, "hash": "x"},
    {"no_hash": True, "n": float("nan"), "i": float("-inf")},
]


@pytest.mark.parametrize("key", [None, b"an audit key"])
@pytest.mark.parametrize("n", range(len(RECORDS)))
def test_the_servers_chain_hash_is_the_audits_record_hash(n, key):
    rec = json.loads(json.dumps(RECORDS[n]))  # as parsed from the log
    before = json.dumps(rec)
    assert chain_hash(rec, key) == record_hash(rec, key)
    assert json.dumps(rec, sort_keys=True) == json.dumps(json.loads(before), sort_keys=True)
    assert ("hash" in rec) == ("hash" in RECORDS[n])


def _aggregate(state: AuditState) -> dict:
    return {
        "report": state.report(),
        "counts": state.run_counts(),
        "daily": state.daily(1000),
        "runs": state.recent_runs(1, per_page=1000),
        "run_hist": {k: (h.counts, round(h.sum, 9)) for k, h in state.run_hist.items() if h.count},
        "attempt_hist": {k: (h.counts, round(h.sum, 9)) for k, h in state.attempt_hist.items()},
        "attempts": dict(state.attempts),
        "failures": dict(state.failures),
        "last": state.last_timestamp,
        "chain": {k: v for k, v in state.chain_status().items() if k != "full_check_at"},
    }


def test_one_bulk_read_counts_what_reading_line_by_line_counts(tmp_path):
    whole = tmp_path / "whole"
    seed_history(whole, runs=40)
    registry = whole / REGISTRY
    bulk = AuditState(registry)
    assert bulk.refresh() > 40  # runs of several records: fallbacks, retries
    # the same lines, appended one at a time to another registry, read after each
    growing = tmp_path / "growing" / REGISTRY
    shutil.copytree(registry, growing)
    [day_file] = sorted((growing / "AIM_audit").glob("*/audit.jsonl"))
    lines = day_file.read_bytes().splitlines(keepends=True)
    day_file.write_bytes(b"")
    one_by_one = AuditState(growing)
    one_by_one.refresh()
    for line in lines:
        with open(day_file, "ab") as f:
            f.write(line)
        assert one_by_one.refresh() == 1
    assert one_by_one.resets == 0
    assert _aggregate(one_by_one) == _aggregate(bulk)
