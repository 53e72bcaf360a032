"""``sha256`` without loading OpenSSL.

``hashlib`` loads OpenSSL's ``_hashlib`` on import (a few milliseconds on the start
of every command); CPython's own SHA-256 (``_sha256`` in 3.10 and 3.11, ``_sha2``
from 3.12) gives the same digests. Falls back to ``hashlib`` where neither exists.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha256
else:
    try:
        from _sha256 import sha256  # CPython 3.10, 3.11
    except ImportError:  # pragma: no cover - depends on the interpreter
        try:
            from _sha2 import sha256  # CPython 3.12+
        except ImportError:
            from hashlib import sha256

__all__ = ["sha256"]
