"""Canonical JSON and the chain hash of an audit record.

The hash is SHA-256 (or, with ``AIM_AUDIT_KEY``, HMAC-SHA256) over the
canonical JSON of the record without its ``hash`` field: sorted keys, no
spaces, UTF-8. The same bytes on every machine, so a record written on one
verifies on another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from aim_core.digest import sha256_hex

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def canonical(data: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def record_hash(record: Mapping[str, Any], key: bytes | None = None) -> str:
    """The chain hash of a record (its ``hash`` field is left out)."""
    return digest(record, key, leave_out="hash")


def digest(data: Mapping[str, Any], key: bytes | None = None, *, leave_out: str) -> str:
    """SHA-256 (HMAC-SHA256 with ``key``) of the canonical JSON of ``data`` without the
    field ``leave_out`` (the field the digest is stored in): 64 hex digits."""
    body = canonical({k: v for k, v in data.items() if k != leave_out})
    if key:
        import hashlib
        import hmac

        return hmac.new(key, body, hashlib.sha256).hexdigest()
    return sha256_hex(body)


def utc_timestamp(now: datetime | None = None) -> str:
    """``2025-11-20T21:45:00.000000Z``: UTC with microseconds, as the guide prints it."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    """The inverse of :func:`utc_timestamp`."""
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
