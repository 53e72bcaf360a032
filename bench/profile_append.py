"""Where the time of one audit append goes, step by step (medians of 300 calls each).

    python bench/profile_append.py [--days N] [--cold]

The log holds N days of history (default 30, as bench_append.py). The steps are
timed one by one in isolation, the whole `JsonlAuditLog.append` and the bare
write + fsync baseline for comparison. With `--cold`, a bare write + fsync runs
before every timed call, as in bench_append.py: the process sleeps in the fsync,
so the code that follows runs from cold caches -- which is what the bench
measures, and on a VM it costs two to four times the warm figure. Private
helpers that no longer exist are skipped.
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
from aim_core.audit.canonical import canonical, new_sha256, seal_body
from aim_core.audit.head import encode_heads


def timed(
    fn: Callable[[], object], n: int = 300, before: Callable[[], object] | None = None
) -> float:
    xs = []
    for _ in range(n):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - start)
    return median(xs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="days of history in the log")
    parser.add_argument("--cold", action="store_true", help="a write + fsync before each call")
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
        sealed = log.append(record)
        line = (json.dumps(sealed, separators=(",", ":")) + "\n").encode()
        time.sleep(0.1)  # where the link count does not tell, a listing is trusted once settled
        log.append(record)
        bare = str(audit / "bare.jsonl")
        other = str(tmp / "other.jsonl")
        before = (lambda: bare_append(other, line)) if args.cold else None
        body = canonical({k: v for k, v in sealed.items() if k != "hash"})

        def lock() -> None:
            with log._lock:
                pass

        def as_left() -> None:
            with log._lock:
                files = log._as_left()
            assert files is not None, "the log is not as this process left it"
            if log._heads_fd is None:  # the heads are kept open for the next append
                os.close(files[0])
                os.close(files[1])

        def relisted() -> object:
            log._days_seen = None
            return log._days()

        def reread() -> object:
            log._tip_seen = None
            return log._log_tip()

        steps: list[tuple[str, Callable[[], object]]] = [
            ("JsonlAuditLog.append (all of it)", lambda: log.append(record)),
            ("  the lock taken and given back", lock),
            ("  _as_left(): nothing changed? (2 stats, its last bytes, both heads)", as_left),
            (f"  (general path) _days() listing {args.days + 1} days again", relisted),
            ("  (general path) _log_tip() reading the last line back", reread),
            ("  _timestamp()", log._timestamp),
            ("  canonical JSON of the record (json)", lambda: canonical(sealed)),
            ("  the same from orjson (seal_body)", lambda: seal_body(sealed)),
            ("  SHA-256 of it", lambda: new_sha256(body).hexdigest()),
            ("  encode_heads()", lambda: encode_heads(12, sealed["hash"], "2024-01-01", None)),
            ("bare open + write + fsync + close", lambda: bare_append(bare, line)),
        ]

        def write_only() -> None:
            fd = os.open(bare, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, line)
            os.close(fd)

        steps.append(("  the same without fsync", write_only))
        for name, fn in steps:
            print(f"{timed(fn, before=before):8.1f} us  {name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
