"""One audit record of each kind the core emits, for testing an audit sink."""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

from aim_core.models import (
    AuditRecord,
    Invocation,
)


def sample_records() -> dict[str, AuditRecord]:
    """One audit record of each kind the core emits, by kind (for testing a sink)."""
    from aim_core.audit.records import build_record

    payload = Invocation(
        prompt="Create a simple add(a, b) function with error handling and docstring",
        files=("tests/staging_test_file.py",),
        files_scope=("tests/staging_test_file.py",),
        timeout_ms=60000,
        workstream_id="ws-aim-validation-001",
    )
    common: dict[str, Any] = {
        "actor": "pipeline",
        "run_id": "20251120T214500Z-1a2b3c",
        "workstream_id": "ws-aim-validation-001",
        "payload": payload,
    }
    skipped = [
        {
            "tool_id": "jules",
            "failure": "auth_required",
            "reason": "Jules requires login (run 'jules login')",
        }
    ]
    kinds = {
        "success": build_record(
            **common,
            tool_id="aider",
            capability="code_generation",
            success=True,
            message="Code generation completed (attempt 1)",
            attempt=1,
            failure=None,
            exit_code=0,
            duration_sec=12.5,
            files_created=["tests/staging_test_file.py"],
            skipped=skipped,
        ),
        "retryable-failure": build_record(
            **common,
            tool_id="aider",
            capability="code_generation",
            success=False,
            message="connection reset by peer",
            attempt=1,
            failure="tool_error",
            exit_code=1,
            duration_sec=0.8,
        ),
        "work-failed": build_record(
            **{**common, "workstream_id": "ws-add-tests"},
            tool_id="pytest",
            capability="testing",
            success=False,
            message="1 failed, 2 passed in 0.10s",
            attempt=1,
            failure="work_failed",
            exit_code=1,
            duration_sec=0.4,
            files_modified=["tests/test_calc.py"],
        ),
        "security-refusal": build_record(
            **common,
            tool_id=None,
            capability="code_generation",
            success=False,
            message="Refused by the security rules: files_scope[0]: forbidden path '.env'",
            attempt=0,
            failure="invalid_payload",
            extra_content={"refused_paths": []},
        ),
        "no-tool-available": build_record(
            **common,
            tool_id=None,
            capability="code_generation",
            success=False,
            message="No tool could run capability 'code_generation'",
            attempt=0,
            failure="not_installed",
            skipped=[
                *skipped,
                {
                    "tool_id": "aider",
                    "failure": "not_installed",
                    "reason": "'aider' not found on PATH (install: pip install aider-chat)",
                },
            ],
        ),
        "interrupted": build_record(
            **{**common, "payload": None},
            tool_id="aider",
            capability="refactoring",
            success=False,
            message="Interrupted: the run was killed during this attempt; aim restored the "
            "files in scope afterwards",
            attempt=1,
            failure="interrupted",
            extra_content={"restored": ["src/calc.py"], "stopped_tool": True},
        ),
        "direct-invocation": build_record(
            **common,
            tool_id="aider",
            capability=None,
            success=True,
            message="Completed (attempt 1)",
            attempt=1,
            failure=None,
            exit_code=0,
        ),
        "redacted-unicode": build_record(
            **{
                **common,
                "payload": attrs.evolve(payload, prompt="Utilise la clé [REDACTED] — données ✓"),
            },
            tool_id="claude-cli",
            capability="refactoring",
            success=True,
            message="Refactoring completed (attempt 2)",
            attempt=2,
            failure=None,
            exit_code=0,
        ),
    }
    sealed = {}
    for n, (kind, record) in enumerate(kinds.items(), 1):
        sealed[kind] = attrs.evolve(
            record,
            timestamp=f"2025-11-20T21:45:{n:02d}.000000Z",
            seq=n,
            prev_hash=hashlib.sha256(str(n - 1).encode()).hexdigest(),
            hash=hashlib.sha256(str(n).encode()).hexdigest(),
        )
    # With enable_audit_logging: false the JSONL log does not seal the record first.
    sealed["unsealed"] = kinds["success"]
    return sealed
