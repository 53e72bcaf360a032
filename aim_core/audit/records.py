"""Building audit records in the guide's shape (Step 1.6), plus run and chain fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aim_core.models import AuditRecord, Invocation

SCHEMA_VERSION = 1


def payload_view(payload: Invocation | None) -> dict[str, Any]:
    """What the record shows of the request: the guide's prompt, files and timeout."""
    if payload is None:
        return {}
    return {
        "prompt": payload.prompt,
        "files": list(payload.files),
        "timeout_ms": payload.timeout_ms,
    }


def build_record(
    *,
    actor: str,
    run_id: str,
    workstream_id: str | None,
    tool_id: str | None,
    capability: str | None,
    payload: Invocation | None,
    success: bool,
    message: str,
    attempt: int,
    failure: str | None,
    exit_code: int | None = None,
    duration_sec: float = 0.0,
    files_created: Sequence[str] = (),
    files_modified: Sequence[str] = (),
    skipped: Sequence[Mapping[str, Any]] = (),
    extra_content: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """One record; ``seq``, ``prev_hash``, ``hash`` and ``timestamp`` are set when it is
    appended to the log. Tool output never goes in a record (it is in the run log)."""
    content: dict[str, Any] = {
        "files_modified": sorted(files_modified),
        "files_created": sorted(files_created),
        "exit_code": exit_code,
        "duration_sec": round(duration_sec, 3),
    }
    if skipped:
        content["skipped"] = [dict(s) for s in skipped]
    if extra_content:
        content.update(extra_content)
    return AuditRecord(
        timestamp="",
        actor=actor,
        tool_id=tool_id,
        capability=capability,
        payload=payload_view(payload),
        result={"success": success, "message": message, "content": content},
        run_id=run_id,
        workstream_id=workstream_id,
        attempt=attempt,
        failure=failure,
        schema_version=SCHEMA_VERSION,
    )


def from_dict(data: Mapping[str, Any]) -> AuditRecord:
    """An :class:`AuditRecord` from a sealed JSON line."""
    return AuditRecord(
        timestamp=data["timestamp"],
        actor=data["actor"],
        tool_id=data.get("tool_id"),
        capability=data.get("capability"),
        payload=data.get("payload", {}),
        result=data.get("result", {}),
        run_id=data.get("run_id", ""),
        workstream_id=data.get("workstream_id"),
        attempt=data.get("attempt", 0),
        failure=data.get("failure"),
        schema_version=data.get("schema_version", SCHEMA_VERSION),
        seq=data.get("seq"),
        prev_hash=data.get("prev_hash"),
        hash=data.get("hash"),
    )


def printable(value: Any) -> Any:
    """``value`` with every string that holds undecodable bytes (a file name that is not
    UTF-8, read with ``surrogateescape``) spelled with escapes: ``caf\\xe9.txt``.
    Lists, tuples and dicts are walked; everything else is returned as it is."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape")
            return raw.decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    return value
