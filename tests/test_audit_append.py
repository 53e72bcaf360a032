"""One process appending again and again: what it remembers between appends (the tip it
wrote, the listing of the day directories, the heads' bytes, the open day file) never
hides a change made by anyone else -- another writer, a cut, an edit, a file replaced.
The outcome of every append is the one a fresh process would reach."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aim_core.audit.canonical import canonical, record_hash
from aim_core.audit.head import LogBehindHead
from aim_core.audit.jsonl import SETTLE_NS, JsonlAuditLog
from aim_core.audit.verify import verify

DAY = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
REC = {"actor": "pipeline", "tool_id": "aider", "result": {"success": True}}


def log_at(d: Path, when: datetime | None = None) -> JsonlAuditLog:
    return JsonlAuditLog(d, clock=(lambda: when) if when else None)


def lines(d: Path) -> list[dict]:
    return [
        json.loads(x) for f in sorted(d.glob("*/audit.jsonl")) for x in f.read_bytes().splitlines()
    ]


def newest_file(d: Path) -> Path:
    return sorted(d.glob("*/audit.jsonl"))[-1]


def test_a_line_is_the_canonical_json_its_hash_covers(tmp_path):
    d = tmp_path / "AIM_audit"
    sealed = JsonlAuditLog(d).append({"timestamp": "", "b": 1, "a": {"y": "é", "x": [1.5]}})
    raw = newest_file(d).read_bytes()
    body = canonical({k: v for k, v in sealed.items() if k != "hash"})
    assert raw == body[:-1] + b',"hash":"' + sealed["hash"].encode() + b'"}\n'
    assert record_hash(json.loads(raw)) == sealed["hash"]
    assert list(sealed)[:3] == ["timestamp", "b", "a"]  # the record itself keeps its order


def test_appends_continue_after_another_writer(tmp_path):
    d = tmp_path / "AIM_audit"
    a, b = JsonlAuditLog(d), JsonlAuditLog(d)
    for i in range(6):
        (a if i % 3 else b).append({**REC, "n": i})
    assert [r["seq"] for r in lines(d)] == list(range(1, 7))
    assert verify(d).ok


def test_a_newer_day_made_by_another_writer_is_found(tmp_path):
    d = tmp_path / "AIM_audit"
    first = log_at(d, DAY)
    first.append(REC)
    first.append(REC)
    log_at(d, DAY + timedelta(days=1)).append(REC)  # makes the next day's directory
    first.clock = lambda: DAY + timedelta(days=1)
    assert first.append(REC)["seq"] == 4
    v = verify(d)
    assert v.ok and v.records == 4, [str(f) for f in v.findings]


def test_a_record_whose_writer_died_before_its_heads_is_chained_after(tmp_path):
    """Another writer appended in a new day directory and was killed before it moved the
    heads: they hold the bytes this process wrote, yet the tip is that record."""
    d = tmp_path / "AIM_audit"
    first = log_at(d, DAY)
    first.append(REC)
    first.append(REC)
    heads = [d / "HEAD.json", first.machine_head_path]
    before = [p.read_bytes() for p in heads]
    log_at(d, DAY + timedelta(days=1)).append(REC)
    for p, raw in zip(heads, before, strict=True):
        p.write_bytes(raw)  # as if that writer died before writing them
    first.clock = lambda: DAY + timedelta(days=1)
    assert first.append(REC)["seq"] == 4
    v = verify(d)
    assert v.ok and v.records == 4, [str(f) for f in v.findings]


def test_a_cut_after_my_own_append_is_refused(tmp_path):
    d = tmp_path / "AIM_audit"
    log = JsonlAuditLog(d)
    for _ in range(3):
        log.append(REC)
    f = newest_file(d)
    f.write_bytes(b"".join(f.read_bytes().splitlines(keepends=True)[:-1]))
    with pytest.raises(LogBehindHead, match="cut from its end"):
        log.append(REC)


def test_the_last_hash_rewritten_in_place_is_refused(tmp_path):
    d = tmp_path / "AIM_audit"
    log = JsonlAuditLog(d)
    log.append(REC)
    log.append(REC)
    f = newest_file(d)
    raw = bytearray(f.read_bytes())
    i = len(raw) - 4  # a hex digit of the last record's hash: same size, at once
    raw[i] = ord("0") if raw[i] != ord("0") else ord("1")
    with open(f, "r+b") as fh:
        fh.write(raw)
    with pytest.raises(LogBehindHead, match="rewritten"):
        log.append(REC)


def test_a_head_moved_forward_by_hand_is_refused(tmp_path):
    d = tmp_path / "AIM_audit"
    log = JsonlAuditLog(d)
    sealed = log.append(REC)
    log.append(REC)
    head = json.loads((d / "HEAD.json").read_text())
    (d / "HEAD.json").write_text(json.dumps({**head, "seq": head["seq"] + 5}))
    with pytest.raises(LogBehindHead, match=r"HEAD\.json says"):
        log.append(REC)
    assert sealed["seq"] == 1


@pytest.mark.parametrize("which", ["HEAD.json", "machine"])
def test_a_head_replaced_by_another_file_between_appends_is_read_at_its_path(tmp_path, which):
    """The heads stay open between one process's appends: a file renamed over one (as an
    editor saves) must be the one read, not the one still open."""
    d = tmp_path / "AIM_audit"
    log = JsonlAuditLog(d)
    log.append(REC)
    time.sleep(SETTLE_NS / 1e9 + 0.01)  # the new day directory's listing is trusted now
    log.append(REC)
    log.append(REC)
    assert log._heads_fd is not None  # the appends went the way that keeps the heads open
    path = d / "HEAD.json" if which == "HEAD.json" else log.machine_head_path
    raw = path.read_bytes()
    head = json.loads(raw)
    moved = json.dumps({**head, "seq": head["seq"] + 5}).encode().ljust(len(raw) - 1) + b"\n"
    (path.parent / "new-head").write_bytes(moved)
    os.replace(path.parent / "new-head", path)
    with pytest.raises(LogBehindHead, match=r"says|names"):
        log.append(REC)
    assert len(lines(d)) == 3


def test_appends_keep_a_fixed_number_of_files_open(tmp_path):
    d = tmp_path / "AIM_audit"
    before = set(os.listdir("/proc/self/fd"))
    log = JsonlAuditLog(d)
    log.append(REC)
    time.sleep(SETTLE_NS / 1e9 + 0.01)
    for _ in range(3):
        log.append(REC)
    held = set(os.listdir("/proc/self/fd")) - before
    for _ in range(30):
        log.append(REC)
    assert set(os.listdir("/proc/self/fd")) - before == held
    assert len(held) <= 4  # the lock, the day file, both heads
    log.close()
    log._lock.close()
    assert set(os.listdir("/proc/self/fd")) - before == set()


def test_a_failed_write_closes_what_it_kept_and_only_that(tmp_path):
    """The day file cannot grow (EFBIG under RLIMIT_FSIZE, as on a full disk): the
    append fails, closes the descriptors it kept -- never another one of the process --
    and the next append, once the file may grow again, continues the chain."""
    script = tmp_path / "writer.py"
    script.write_text(
        "import os, resource, signal, sys, time\n"
        "from aim_core.audit.jsonl import SETTLE_NS, JsonlAuditLog\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "before = len(os.listdir('/proc/self/fd'))\n"
        "log = JsonlAuditLog(sys.argv[1])\n"
        "log.append({'actor': 'x'})\n"
        "time.sleep(SETTLE_NS / 1e9 + 0.01)\n"
        "log.append({'actor': 'x'})\n"
        "log.append({'actor': 'x'})\n"
        "assert log._heads_fd is not None\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))\n"
        "closed, real_close = [], os.close\n"
        "os.close = lambda fd: (closed.append(fd), real_close(fd))[1]\n"
        "try:\n"
        "    log.append({'actor': 'x'})\n"
        "except OSError as e:\n"
        "    print('failed', e.errno)\n"
        "os.close = real_close\n"
        "assert len(closed) == len(set(closed)) == 3, closed  # once each: day, heads\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))\n"
        "other = os.open(sys.argv[2], os.O_RDONLY)\n"
        "log.append({'actor': 'x'})\n"
        "os.fstat(other)\n"
        "log.close()\n"
        "log._lock.close()\n"
        "print('open', len(os.listdir('/proc/self/fd')) - before)\n"
    )
    (tmp_path / "other").write_text("x")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "AIM_audit"), str(tmp_path / "other")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    # EFBIG; once the log is closed, as many descriptors open as before it, and `other`
    assert done.stdout.split() == ["failed", "27", "open", "1"]
    v = verify(tmp_path / "AIM_audit")
    assert v.ok and v.records == 4, [str(f) for f in v.findings]


def test_a_log_alive_at_interpreter_exit_closes_quietly(tmp_path):
    """A log still referenced when the interpreter tears its modules down (here through
    a wrapper of os.fsync, as a tracer may install) closes without "Exception ignored"."""
    script = tmp_path / "writer.py"
    script.write_text(
        "import os, sys\n"
        "from aim_core.audit.jsonl import JsonlAuditLog\n"
        "real_fsync = os.fsync\n"
        "os.fsync = lambda fd: real_fsync(fd)\n"
        "log = JsonlAuditLog(sys.argv[1])\n"
        "for _ in range(3):\n"
        "    log.append({'actor': 'x'})\n"
    )
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "AIM_audit")], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == ""
    assert verify(tmp_path / "AIM_audit").records == 3


def test_a_day_file_replaced_between_appends_is_written_at_its_path(tmp_path):
    d = tmp_path / "AIM_audit"
    log = JsonlAuditLog(d)
    log.append(REC)
    f = newest_file(d)
    copy = f.with_name("copy")
    shutil.copy(f, copy)
    os.replace(copy, f)  # same content, another file: the open one is gone
    log.append(REC)
    assert [r["seq"] for r in lines(d)] == [1, 2]
    assert verify(d).ok


def test_a_torn_line_left_between_my_appends_is_set_aside(tmp_path):
    d = tmp_path / "AIM_audit"
    warnings: list[str] = []
    log = JsonlAuditLog(d, on_warning=warnings.append)
    log.append(REC)
    with open(newest_file(d), "ab") as fh:
        fh.write(b'{"timestamp":"20')  # a writer killed mid-line
    assert log.append(REC)["seq"] == 2
    assert "torn last line" in warnings[0]
    v = verify(d)
    assert v.ok and v.records == 2 and v.torn_set_aside == 1


def test_the_audit_directory_removed_between_appends_starts_again(tmp_path):
    d = tmp_path / "AIM_audit"
    log = JsonlAuditLog(d, state_dir=tmp_path / "state")
    log.append(REC)
    shutil.rmtree(d)
    shutil.rmtree(tmp_path / "state")  # the loss accepted: no head remembers it
    assert log.append(REC)["seq"] == 1
    assert verify(d, state_dir=tmp_path / "state").ok


WRITER = """
import sys
from aim_core.audit.jsonl import JsonlAuditLog
log = JsonlAuditLog(sys.argv[1])
for i in range(int(sys.argv[2])):
    log.append({"actor": "w" + sys.argv[3], "result": {"success": True}})
"""


def test_a_long_lived_writer_and_short_lived_ones_share_the_chain(tmp_path):
    d = tmp_path / "AIM_audit"
    log = JsonlAuditLog(d)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(d), "40", str(w)]) for w in range(3)
    ]
    for _ in range(60):
        log.append(REC)
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    log.append(REC)
    v = verify(d)
    assert v.ok and v.records == 181 and v.last_seq == 181, [str(f) for f in v.findings]


HOLDER = """
import sys, time
from aim_core.locks import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_the_lock_file_replaced_between_appends_is_the_one_locked(tmp_path):
    """The lock's file stays open between appends: when the path comes to name another
    file, the append waits for whoever holds that one."""
    d = tmp_path / "AIM_audit"
    log = JsonlAuditLog(d)
    log.append(REC)
    log.append(REC)
    (d / ".lock").unlink()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(d / ".lock"), "0.5"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    start = time.monotonic()
    log.append(REC)
    assert time.monotonic() - start > 0.3  # it waited for the holder to let go
    assert holder.wait() == 0 and verify(d).ok


FORKED = """
import multiprocessing as mp, sys
from aim_core.audit.jsonl import JsonlAuditLog

def child(log, n):
    for _ in range(n):
        log.append({"actor": "child", "result": {"success": True}})

if __name__ == "__main__":
    log = JsonlAuditLog(sys.argv[1])
    log.append({"actor": "parent", "result": {"success": True}})  # the lock file kept open
    ctx = mp.get_context("fork")
    kids = [ctx.Process(target=child, args=(log, 30)) for _ in range(3)]
    for k in kids:
        k.start()
    child(log, 30)
    for k in kids:
        k.join()
    sys.exit(max(k.exitcode for k in kids))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_forked_writers_do_not_share_the_parents_lock(tmp_path):
    d = tmp_path / "AIM_audit"
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    r = subprocess.run([sys.executable, str(script), str(d)], timeout=120)
    assert r.returncode == 0
    v = verify(d)
    assert v.ok and v.records == 121, [str(f) for f in v.findings]
    assert [x["seq"] for x in lines(d)] == list(range(1, 122))


@pytest.mark.parametrize("writer", ["same", "another"])
def test_a_clock_stepped_back_never_puts_a_record_before_the_last(tmp_path, writer):
    """NTP steps the clock back across midnight between two appends (of one process, or
    by another writer that reads the tip back): the record takes the last record's time,
    stays in that day's file, and the chain verifies; appends go on."""
    d = tmp_path / "AIM_audit"
    midnight = datetime(2026, 11, 30, 23, 59, 59, 900000, tzinfo=timezone.utc)
    now = [midnight]
    warnings: list[str] = []
    first = JsonlAuditLog(d, clock=lambda: now[0], on_warning=warnings.append)
    for step in (0, 0.3):
        now[0] = midnight + timedelta(seconds=step)
        first.append(REC)
    now[0] = midnight - timedelta(seconds=0.25)  # back into the day before
    log = first if writer == "same" else JsonlAuditLog(d, clock=lambda: now[0])
    if writer == "another":
        log.on_warning = warnings.append
    sealed = log.append(REC)
    assert sealed["timestamp"] == "2026-12-01T00:00:00.200000Z"
    assert warnings and "is behind the last audit record" in warnings[0]
    now[0] = midnight + timedelta(seconds=0.5)
    log.append(REC)
    v = verify(d)
    assert v.ok and v.records == 4, [str(f) for f in v.findings]
    assert [len(p.read_bytes().splitlines()) for p in sorted(d.glob("*/audit.jsonl"))] == [1, 3]


@pytest.mark.parametrize(
    "forged", ["9/pwned-dir", "9/../../..Zzz", "9999-12-31T23:59:59.999999Z", "2026-13-45T"]
)
def test_a_forged_time_in_the_last_record_never_names_the_file_written(tmp_path, forged):
    """A repository can ship a log whose last record (hashed right, HEAD.json matching)
    has any `timestamp`: the next record's time is taken from it only when it is one aim
    writes and at most a day ahead (a clock stepped back). Nothing is written outside
    the log's own day directories."""
    from aim_core.audit.canonical import canonical
    from aim_core.audit.head import write_head

    d = tmp_path / "AIM_audit"
    first = JsonlAuditLog(d, state_dir=tmp_path / "shipper")
    rec1 = first.append(REC)
    day = rec1["timestamp"][:10]
    forged_rec = {**REC, "timestamp": forged, "seq": 2, "prev_hash": rec1["hash"]}
    forged_rec["hash"] = record_hash(forged_rec)
    with open(d / day / "audit.jsonl", "ab") as f:
        f.write(canonical(forged_rec) + b"\n")
    write_head(d / "HEAD.json", {"seq": 2, "hash": forged_rec["hash"], "day": day})
    outside = tmp_path / "outside"
    outside.mkdir()
    (d / "9").symlink_to(outside)
    sealed = JsonlAuditLog(d, state_dir=tmp_path / "victim").append(REC)
    assert sealed["seq"] == 3 and sealed["timestamp"] != forged
    assert sealed["timestamp"][:10] == datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert list(outside.iterdir()) == []
    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("audit.jsonl")) == [
        f"{day}/audit.jsonl"
    ]
