"""SHA-256 without loading OpenSSL for the few small digests of a command.

``hashlib`` loads OpenSSL's ``_hashlib`` on import (1 to 3 ms on the start of every
command). CPython's own SHA-256 (``_sha256`` in 3.10 and 3.11, ``_sha2`` from 3.12)
gives the same digests without it, but about four times slower per byte. So the
digests here use CPython's own until a process has hashed :data:`BUILTIN_BYTES`
(or :data:`BUILTIN_CALLS` digests), and OpenSSL's from then on: ``aim run`` (a
cache key, one audit record, a few small files) never loads OpenSSL, ``aim audit
verify`` over 100 000 records and the hashing of large files do, at once.
"""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from hashlib import _Hash

    _builtin: Callable[[], _Hash] | None
else:
    try:
        from _sha256 import sha256 as _builtin  # CPython 3.10, 3.11
    except ImportError:  # pragma: no cover - depends on the interpreter
        try:
            from _sha2 import sha256 as _builtin  # CPython 3.12+
        except ImportError:
            _builtin = None

BUILTIN_BYTES = 1 << 20  # what CPython's own SHA-256 hashes in a process before OpenSSL's
BUILTIN_CALLS = 256
CHUNK = 1 << 20

_lock = threading.Lock()
_left = [BUILTIN_BYTES, BUILTIN_CALLS]


def _hasher(size: int) -> _Hash:
    """A new SHA-256 object for about ``size`` bytes."""
    with _lock:
        cheap = _builtin is not None and size <= _left[0] and _left[1] > 0
        if cheap:
            _left[0] -= size
            _left[1] -= 1
        else:
            _left[0] = _left[1] = 0  # OpenSSL is loaded now: keep using it
    if cheap:
        assert _builtin is not None
        return _builtin()
    import hashlib

    return hashlib.sha256()


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data``: 64 hex digits."""
    h = _hasher(len(data))
    h.update(data)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> tuple[int, str]:
    """``(size in bytes, SHA-256 hex digest)`` of a file's content. Raises OSError."""
    with open(path, "rb") as f:
        h = _hasher(os.fstat(f.fileno()).st_size)
        size = 0
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


__all__ = ["file_sha256", "sha256_hex"]
