#!/usr/bin/env python3
"""The audit chain's reliability figures (docs/RELIABILITY.md), reproducibly.

    .venv/bin/python scripts/reliability.py [--kills 200] [--writers 8 --records 200]

Runs, in a temporary directory: N concurrent writer processes appending to one
chain; a writer killed with SIGKILL at random points, over and over; every
single-byte flip of a small log; deletions, reorderings, insertions and
truncations; a prune; and prints trials, detected and lost for each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.prune import prune
from aim_core.audit.verify import verify

WRITER = """
import sys
from aim_core.audit.jsonl import JsonlAuditLog
log = JsonlAuditLog(sys.argv[1])
for i in range(int(sys.argv[2])):
    record = {"timestamp": "", "actor": "w" + sys.argv[3], "tool_id": "x",
              "payload": {"prompt": "p" * int(sys.argv[4])}, "result": {"success": True}}
    sealed = log.append(record)
    print(sealed["seq"], flush=True)
"""


def _records(d: Path) -> list[dict]:
    out = []
    for f in sorted(d.glob("*/audit.jsonl")):
        for line in f.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a torn line
                out.append(json.loads(line))
    return out


def concurrency(base: Path, writers: int, records: int) -> dict:
    d = base / "concurrent"
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(d), str(records), str(w), "100"],
            stdout=subprocess.DEVNULL,
        )
        for w in range(writers)
    ]
    for p in procs:
        p.wait()
    v = verify(d)
    seqs = [r["seq"] for r in _records(d)]
    return {
        "test": f"{writers} processes x {records} appends",
        "trials": writers * records,
        "detected": sum(f.fatal for f in v.findings),
        "lost": writers * records - len(set(seqs)),
        "note": f"seq gap-free: {seqs == list(range(1, len(seqs) + 1))}, "
        f"{time.monotonic() - start:.1f}s",
    }


def kills(base: Path, trials: int) -> dict:
    d = base / "kills"
    rng = random.Random(20261125)
    committed: set[int] = set()
    bad = 0
    for _ in range(trials):
        p = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(d),
                "100000",
                "0",
                str(rng.choice([10, 2000, 50000])),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(rng.uniform(0.04, 0.1))
        p.kill()
        out, _ = p.communicate()
        committed |= {int(x) for x in out.split()}
        bad += not verify(d).ok
    on_disk = {r["seq"] for r in _records(d)}
    return {
        "test": "writer killed with SIGKILL at random points",
        "trials": trials,
        "detected": bad,
        "lost": len(committed - on_disk),
        "note": f"{len(committed)} records committed, chain verified after every kill",
    }


def _small_log(d: Path, n: int = 3) -> Path:
    log = JsonlAuditLog(d)
    for i in range(n):
        log.append(
            {"tool_id": "aider", "payload": {"prompt": f"p{i}"}, "result": {"success": True}}
        )
    log.sync_head()
    return next(d.glob("*/audit.jsonl"))


def flips(base: Path) -> dict:
    f = _small_log(base / "flips")
    original = f.read_bytes()
    caught = 0
    for i in range(len(original)):
        data = bytearray(original)
        data[i] ^= 0x01
        f.write_bytes(bytes(data))
        caught += not verify(f.parent.parent).ok
    f.write_bytes(original)
    return {
        "test": "every single-byte flip of a 3-record log",
        "trials": len(original),
        "detected": caught,
        "lost": 0,
        "note": f"missed: {len(original) - caught}",
    }


def structural(base: Path) -> dict:
    edits = {
        "delete": lambda ls: ls[:1] + ls[2:],
        "reorder": lambda ls: [ls[0], ls[2], ls[1], *ls[3:]],
        "insert": lambda ls: [ls[0], ls[1], ls[1], *ls[2:]],
        "truncate": lambda ls: ls[:-1],
    }
    caught = 0
    for name, edit in edits.items():
        f = _small_log(base / f"edit-{name}", 4)
        lines = f.read_bytes().splitlines(keepends=True)
        f.write_bytes(b"".join(edit(lines)))
        caught += not verify(f.parent.parent).ok
    return {
        "test": "delete / reorder / insert / truncate",
        "trials": len(edits),
        "detected": caught,
        "lost": 0,
        "note": "",
    }


def pruning(base: Path) -> dict:
    d = base / "prune"
    now = datetime.now(timezone.utc)
    for ago in (40, 35, 2, 0):
        log = JsonlAuditLog(d, clock=lambda ago=ago: now - timedelta(days=ago))
        log.append({"tool_id": "x", "result": {"success": True}})
    removed = prune(d, 30, now=now)
    return {
        "test": "prune 2 of 4 days, then verify",
        "trials": 1,
        "detected": int(not verify(d).ok),
        "lost": 0,
        "note": f"removed {len(removed)} days; verify passes from the checkpoint",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--records", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        rows = [
            concurrency(base, args.writers, args.records),
            kills(base, args.kills),
            flips(base),
            structural(base),
            pruning(base),
        ]
    print(f"| {'test':<46} | {'trials':>6} | {'detected':>8} | {'lost':>4} | note")
    print(f"|{'-' * 48}|{'-' * 8}|{'-' * 10}|{'-' * 6}|------")
    for r in rows:
        cells = f"| {r['test']:<46} | {r['trials']:>6} | {r['detected']:>8} | {r['lost']:>4}"
        print(f"{cells} | {r['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
