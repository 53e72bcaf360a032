"""Audit append (`JsonlAuditLog.append`) against a bare write + fsync of the same bytes
to a file in the same directory (budget: 2x), and concurrent writers that never
interleave (4 processes x 50 appends, then `aim_core.audit.verify.verify`).

The log already holds 30 days of history, as a real one does: the first append of
the process lists the day directories to find the chain's tip, later ones check
that nothing changed since. The baseline opens the file with O_APPEND, writes the
sealed line, fsyncs and closes, as one writer process would.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _auditgen import ensure
from _common import BENCH_DIR, PYTHON, Result, cli_main, log, median

from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.records import build_record
from aim_core.audit.verify import verify
from aim_core.models import Invocation

BUDGET = 2.0
HISTORY = 3000  # 100 records a day for 30 days: the tip search lists every day


def sample_record() -> dict:
    return build_record(
        actor="pipeline",
        run_id="20251120T214500Z-3f9a1c",
        workstream_id="ws-bench-001",
        tool_id="aider",
        capability="code_generation",
        payload=Invocation(
            prompt="Create a simple add(a, b) function with error handling and docstring",
            files=("tests/staging_test_file.py",),
            timeout_ms=60000,
        ),
        success=True,
        message="Code generation completed (attempt 1)",
        attempt=1,
        failure=None,
        exit_code=0,
        duration_sec=12.3,
        files_created=["tests/staging_test_file.py"],
    ).to_dict()


def bare_append(path: str, data: bytes) -> float:
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def concurrent_check(audit: Path, writers: int = 4, each: int = 50) -> tuple[bool, str]:
    """Several processes append at once; the chain must verify with every record."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from bench_append import sample_record;"
        "from aim_core.audit.jsonl import JsonlAuditLog;"
        "log = JsonlAuditLog(sys.argv[2]); rec = sample_record();"
        "[log.append(rec) for _ in range(int(sys.argv[3]))]"
    )
    before = verify(audit).records
    procs = [
        subprocess.Popen([PYTHON, "-c", code, str(BENCH_DIR), str(audit), str(each)])
        for _ in range(writers)
    ]
    codes = [p.wait() for p in procs]
    v = verify(audit)
    expected = before + writers * each
    ok = v.ok and v.records == expected and codes == [0] * writers
    problems = "; ".join(str(f) for f in v.findings if f.fatal)[:200]
    return ok, (
        f"{writers} processes x {each} appends at once: chain "
        f"{'intact' if v.ok else 'BROKEN: ' + problems}, {v.records}/{expected} records"
    )


def run(args: argparse.Namespace) -> list[Result]:
    n = 100 if args.quick else 300
    history = ensure(HISTORY, progress=log)
    with tempfile.TemporaryDirectory(prefix="aim-bench-append-", dir="/tmp") as tmp:
        audit = Path(tmp) / "AIM_audit"
        subprocess.run(["cp", "-r", str(history / "AIM_audit"), str(audit)], check=True)
        alog = JsonlAuditLog(audit)
        record = sample_record()
        bare_path = str(audit / "bare.jsonl")
        aim_t, bare_t = [], []
        log(f"JsonlAuditLog.append vs os.write + os.fsync, {n} each, interleaved")
        for i in range(n + 5):
            start = time.perf_counter()
            sealed = alog.append(record)
            t = time.perf_counter() - start
            data = (json.dumps(sealed, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
            b = bare_append(bare_path, data)
            if i >= 5:
                aim_t.append(t)
                bare_t.append(b)
        ok_conc, conc_note = concurrent_check(audit)
    aim, base = median(aim_t), median(bare_t)
    return [
        Result(
            key="append",
            what="audit append (one record, fsync)",
            aim=aim * 1000,
            base=base * 1000,
            unit="ms",
            budget=f"<= {BUDGET:g}x write+fsync; no interleaving",
            ok=aim <= BUDGET * base and ok_conc,
            notes=[
                f"{n} appends each, interleaved, {len(data)}-byte lines, 30 days of history",
                conc_note,
            ],
        )
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    cli_main(run, __doc__)
