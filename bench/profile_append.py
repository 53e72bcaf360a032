"""Where the time of one audit append goes, step by step (medians of 300 calls each).

    python bench/profile_append.py [--days N]

The log holds N days of history (default 30, as bench_append.py). The steps are
timed one by one in isolation, the whole `JsonlAuditLog.append` and the bare
write + fsync baseline for comparison. Private helpers that no longer exist are
skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import median
from bench_append import bare_append, sample_record

from aim_core.audit import jsonl
from aim_core.audit.canonical import record_hash
from aim_core.locks import FileLock


def timed(fn: Callable[[], object], n: int = 300) -> float:
    xs = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - start)
    return median(xs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of history in the log")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aim-bench-append-", dir="/tmp"))
    try:
        audit = tmp / "AIM_audit"
        for d in range(args.days):
            day = audit / f"2024-{1 + d // 28:02d}-{1 + d % 28:02d}"
            day.mkdir(parents=True)
            (day / jsonl.LOG_NAME).write_text('{"seq": 0, "hash": null}\n')
        log = jsonl.JsonlAuditLog(audit)
        record = sample_record()
        for _ in range(10):
            log.append(record)
        line = (json.dumps(log.append(record), separators=(",", ":")) + "\n").encode()
        today = jsonl.day_dirs(audit)[-1] / jsonl.LOG_NAME

        def lock() -> None:
            with FileLock(audit / jsonl.LOCK_NAME):
                pass

        steps: list[tuple[str, Callable[[], object]]] = [
            ("JsonlAuditLog.append (all of it)", lambda: log.append(record)),
            ("  mkdir AIM_audit", lambda: audit.mkdir(parents=True, exist_ok=True)),
            ("  FileLock acquire + release", lock),
            (f"  day_dirs() over {args.days + 1} days", lambda: jsonl.day_dirs(audit)),
        ]
        if hasattr(log, "_log_tip"):
            steps.append(("  _log_tip() (day_dirs + torn check + last line)", log._log_tip))
        if hasattr(log, "_guard"):
            steps.append(("  _guard() (tip + both heads read and compared)", log._guard))
        if hasattr(jsonl, "_last_line"):
            steps.append(("  _last_line() of today's file", lambda: jsonl._last_line(today)))
        steps += [
            ("  record_hash (canonical JSON + SHA-256)", lambda: record_hash(record)),
            (
                "  json.dumps of the line",
                lambda: json.dumps(record, ensure_ascii=False, separators=(",", ":")),
            ),
        ]
        if hasattr(log, "_write_head"):
            steps.append(
                (
                    "  _write_head() (tmp file + os.replace)",
                    lambda: log._write_head(1, "0" * 64, "x"),
                )
            )
        bare = str(audit / "bare.jsonl")
        steps.append(("bare open + write + fsync + close", lambda: bare_append(bare, line)))

        def write_only() -> None:
            fd = os.open(bare, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, line)
            os.close(fd)

        steps.append(("  the same without fsync", write_only))
        for name, fn in steps:
            print(f"{timed(fn):8.1f} us  {name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
