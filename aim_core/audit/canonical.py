"""Canonical JSON and the chain hash of an audit record.

The hash is SHA-256 (or, with ``AIM_AUDIT_KEY``, HMAC-SHA256) over the
canonical JSON of the record without its ``hash`` field: sorted keys, no
spaces, UTF-8. The same bytes on every machine, so a record written on one
verifies on another.
"""

from __future__ import annotations

import json
import json.encoder
import math
import re
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from aim_core.digest import sha256_hex

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)


def _encoder(allow_nan: bool) -> Callable[[Any, int], Any]:
    """The C encoder json.dumps would build on every call with the canonical options,
    built once (no circular-reference check: records are trees); it returns the JSON in
    pieces. Without ``allow_nan`` a NaN or an infinity raises ValueError."""
    if _c_make_encoder is None:  # pragma: no cover - an interpreter without _json
        options = json.JSONEncoder(
            sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan
        )
        return lambda data, _level: (options.encode(data),)
    encode: Callable[[Any, int], Any] = _c_make_encoder(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        True,
        False,
        allow_nan,
    )
    return encode


encode_canonical = _encoder(allow_nan=True)
_encode_finite = _encoder(allow_nan=False)


def canonical(data: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8."""
    return "".join(encode_canonical(data, 0)).encode("utf-8")


# orjson costs 3-5 ms to import (it loads dataclasses and uuid) and saves ~5 us a
# record: a process seals its first records with json's encoder, as `aim run` by itself
# (one to a few records) does, and loads orjson from the ORJSON_AFTER-th on -- at once
# when it is loaded already (the run server preloads it).
ORJSON_AFTER = 32
_orjson: list[Any] = [None, 0]  # [orjson.dumps and its options, or None; records sealed]


def _orjson_dumps() -> Any:
    """:func:`orjson_encoder` once it is worth loading (see :data:`ORJSON_AFTER`),
    else None."""
    _orjson[1] += 1
    if _orjson[1] < ORJSON_AFTER and "orjson" not in sys.modules:
        return None
    return orjson_encoder()


def orjson_encoder() -> tuple[Any, int] | None:
    """``(orjson.dumps, its options for seal_body)``, loading orjson; None where it is
    not installed."""
    if _orjson[0] is not None:
        return _orjson[0]  # type: ignore[no-any-return]
    try:
        import orjson
    except ImportError:  # pragma: no cover - a platform without orjson's wheels
        _orjson[1] = -(1 << 62)  # never again
        return None
    # subclasses (IntEnum, str enums), datetimes and dataclasses go to json's way
    options = (
        orjson.OPT_SORT_KEYS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
    )
    _orjson[0] = (orjson.dumps, options)
    return _orjson[0]


# where orjson's bytes may differ from canonical(): a float under 1e-4 (orjson writes
# 0.00001 and 1e-7 where Python writes 1e-05 and 1e-07). A superset -- a string holding
# "0.0000" or "3e-7" matches too and only takes the slower path. Searched for with
# bytes.find first: a regular expression scans a record byte by byte (7 us of 600 bytes).
_EXPONENT = re.compile(rb"[0-9]e-[0-9]")


def _small_float(body: bytes) -> bool:
    return b"0.0000" in body or (b"e-" in body and _EXPONENT.search(body) is not None)


def seal_body(record: Mapping[str, Any]) -> bytes:
    """The canonical JSON an append hashes and writes: :func:`canonical`'s bytes, from
    orjson (ten times faster: the append's budget) when it writes the same ones and
    the process has sealed enough records to pay for loading it (:data:`ORJSON_AFTER`).

    The one difference left on purpose: a NaN or infinite float, which is not JSON
    (``NaN`` in Python's output, no browser reads it), is written ``null`` either way;
    the line still verifies, as verification encodes the parsed line again. Raises
    ``TypeError`` / ``ValueError`` for what :func:`canonical` cannot encode."""
    fast = _orjson[0] or _orjson_dumps()
    body = None if fast is None else orjson_body(record, *fast)
    return body if body is not None else json_body(record)


def orjson_body(record: Mapping[str, Any], dumps: Any, options: int) -> bytes | None:
    """:func:`seal_body`'s bytes from orjson's ``dumps`` with ``options``; None where
    they could differ from json's (a float under 1e-4, what orjson refuses)."""
    try:
        body: bytes = dumps(record, option=options)
    except TypeError:  # orjson.JSONEncodeError: big ints, non-str keys, surrogates,
        return None  # what it passes through
    return None if _small_float(body) else body


def json_body(record: Mapping[str, Any]) -> bytes:
    """:func:`seal_body`'s bytes from json's encoder: :func:`canonical`'s, with a NaN
    or an infinity written ``null`` as orjson writes them."""
    try:
        return "".join(_encode_finite(record, 0)).encode("utf-8")
    except ValueError:  # "Out of range float values are not JSON compliant"
        return canonical(_finite(record))


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# SHA-256 of the record an append seals: CPython's own, as aim_core.digest's first
# digests (without loading OpenSSL, and without its accounting: a record is small)
if TYPE_CHECKING:
    from hashlib import sha256 as new_sha256
else:
    try:
        from _sha256 import sha256 as new_sha256  # CPython 3.10, 3.11
    except ImportError:  # pragma: no cover - depends on the interpreter
        try:
            from _sha2 import sha256 as new_sha256  # CPython 3.12+
        except ImportError:
            from hashlib import sha256 as new_sha256


def body_digest(body: bytes, key: bytes | None = None) -> str:
    """SHA-256 (HMAC-SHA256 with ``key``) of canonical JSON ``body``: 64 hex digits."""
    if key:
        import hashlib
        import hmac

        return hmac.new(key, body, hashlib.sha256).hexdigest()
    return sha256_hex(body)


def record_hash(record: Mapping[str, Any], key: bytes | None = None) -> str:
    """The chain hash of a record (its ``hash`` field is left out)."""
    return digest(record, key, leave_out="hash")


def digest(data: Mapping[str, Any], key: bytes | None = None, *, leave_out: str) -> str:
    """SHA-256 (HMAC-SHA256 with ``key``) of the canonical JSON of ``data`` without the
    field ``leave_out`` (the field the digest is stored in): 64 hex digits."""
    return body_digest(canonical({k: v for k, v in data.items() if k != leave_out}), key)


def utc_timestamp(now: datetime | None = None) -> str:
    """``2025-11-20T21:45:00.000000Z``: UTC with microseconds, as the guide prints it."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return now.isoformat(timespec="microseconds")[:26] + "Z"  # as TIMESTAMP_FORMAT


def parse_timestamp(text: str) -> datetime:
    """The inverse of :func:`utc_timestamp`."""
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)


__all__ = [
    "ORJSON_AFTER",
    "TIMESTAMP_FORMAT",
    "body_digest",
    "canonical",
    "digest",
    "encode_canonical",
    "json_body",
    "new_sha256",
    "orjson_body",
    "orjson_encoder",
    "parse_timestamp",
    "record_hash",
    "seal_body",
    "utc_timestamp",
]
