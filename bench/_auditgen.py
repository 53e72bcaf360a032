"""A bulk writer of audit history: valid, hash-chained records straight into day files.

A million ``aim run``s would take days; this writes the same lines the JSONL log
writes (``aim_core.audit.canonical.record_hash`` over the record, the line as
``JsonlAuditLog.append`` encodes it) into ``AIM_audit/YYYY-MM-DD/audit.jsonl`` for
30 days, plus ``HEAD.json``, so ``aim audit verify`` accepts the result. It is
generated once into ``$AIM_BENCH_CACHE`` (``/tmp/aim-bench-cache``) and reused;
a ``COMPLETE`` file marks a finished set.

    python bench/_auditgen.py [RECORDS]   # prints the registry directory
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

from _common import CACHE_ROOT

from aim_core.audit.canonical import record_hash
from aim_core.audit.records import build_record
from aim_core.models import Invocation
from aim_core.paths import AUDIT_DIRNAME

VERSION = 1
DAYS = 30
FIRST_DAY = date(2025, 10, 1)
# tool, capability, weight (out of 10): aider answers a third of the calls
TOOLS = (
    ("aider", "code_generation", 3),
    ("jules", "code_generation", 2),
    ("claude-cli", "refactoring", 2),
    ("ruff", "linting", 2),
    ("pytest", "testing", 1),
)
ROTATION = [(t, c) for t, c, w in TOOLS for _ in range(w)]
FAILURES = ("timeout", "tool_error", "rate_limited", "auth_required")


def registry_for(records: int) -> Path:
    """The registry directory holding ``records`` generated records."""
    return CACHE_ROOT / f"audit-{records}-v{VERSION}" / "registry"


def day_names() -> list[str]:
    return [(FIRST_DAY + timedelta(days=d)).isoformat() for d in range(DAYS)]


def ensure(records: int, progress=None) -> Path:
    """Generate (once) and return the registry directory of ``records`` records."""
    registry = registry_for(records)
    done = registry.parent / "COMPLETE"
    if done.exists():
        return registry
    shutil.rmtree(registry.parent, ignore_errors=True)
    audit = registry / AUDIT_DIRNAME
    audit.mkdir(parents=True)
    _generate(audit, records, progress)
    done.write_text(f"{records} records in {DAYS} days\n")
    return registry


def _template(i: int) -> dict:
    tool, capability = ROTATION[i % len(ROTATION)]
    ok = i % 10 != 7
    ws = f"ws-bench-{i % 97:03d}"
    path = f"src/module_{i % 211}.py"
    payload = Invocation(
        prompt=f"Refactor {path}: split long functions, add type hints and docstrings",
        files=(path,),
        timeout_ms=600000,
        workstream_id=ws,
    )
    return build_record(
        actor="pipeline",
        run_id="",
        workstream_id=ws,
        tool_id=tool,
        capability=capability,
        payload=payload,
        success=ok,
        message=f"{capability.replace('_', ' ').capitalize()} completed (attempt 1)"
        if ok
        else f"{tool} failed: exit 1",
        attempt=1,
        failure=None if ok else FAILURES[i % len(FAILURES)],
        exit_code=0 if ok else 1,
        duration_sec=1.5 + (i % 50),
        files_modified=[path] if ok else [],
    ).to_dict()


def _generate(audit: Path, records: int, progress) -> None:
    per_day = -(-records // DAYS)
    step_us = 86_400_000_000 // per_day
    seq, prev = 0, None
    for d, day in enumerate(day_names()):
        n_day = min(per_day, records - seq)
        if n_day <= 0:
            break
        (audit / day).mkdir()
        lines = []
        for k in range(n_day):
            rec = _template(seq)
            us = k * step_us
            secs, micros = divmod(us, 1_000_000)
            hh, rem = divmod(secs, 3600)
            mm, ss = divmod(rem, 60)
            rec["timestamp"] = f"{day}T{hh:02d}:{mm:02d}:{ss:02d}.{micros:06d}Z"
            rec["run_id"] = f"{day.replace('-', '')}T{hh:02d}{mm:02d}{ss:02d}Z-{seq:06x}"
            seq += 1
            rec["seq"] = seq
            rec["prev_hash"] = prev
            rec.pop("hash")
            rec["hash"] = prev = record_hash(rec)
            lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
        with open(audit / day / "audit.jsonl", "w", encoding="utf-8") as f:
            f.writelines(lines)
        if progress and (d % 10 == 9 or seq == records):
            progress(f"audit history: {day} written ({seq}/{records} records)")
    head = {"seq": seq, "hash": prev, "day": day_names()[-1]}
    (audit / "HEAD.json").write_text(json.dumps(head))


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(ensure(n, progress=lambda m: print(m, file=sys.stderr)))
