"""Text from outside aim -- a workstream's values, the paths a tool wrote, the
audit log's records -- as a terminal shows it: its control characters escaped, so
that a newline, a carriage return or an ANSI escape in a file name can neither pass
for a line of aim's own nor move the cursor. Standard library only, compiled once."""

from __future__ import annotations

from typing import Any

_CONTROL: Any = None  # the compiled patterns, once needed
_ANSI: Any = None


# C0, DEL, C1; the invisible format characters that reorder or hide text (bidi marks,
# embeddings, overrides and isolates; zero-width spaces and joiners; BOM); the line and
# paragraph separators some terminals and editors break lines at; lone surrogates (no
# terminal can be sent one: a file name's undecodable byte, read with surrogateescape)
UNSAFE = "\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff"


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with its control and invisible format characters (:data:`UNSAFE`, but
    those in ``keep``) as Python writes them in a string: ``a\\nb`` for a newline,
    ``\\x1b`` for ESC, ``\\u202e`` for a right-to-left override, ``\\xe9`` for a file
    name's undecodable byte. Text without any is returned as it is."""
    pattern = _unsafe()
    if not pattern.search(text):
        return text
    escaped: str = pattern.sub(lambda m: m[0] if m[0] in keep else _escaped(m[0]), text)
    return escaped


def _escaped(char: str) -> str:
    """``\\x1b``, ``\\u202e``; an undecodable byte of a file name (``\\udce9`` read
    with surrogateescape) as the byte, ``\\xe9``."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return repr(char)[1:-1]


def first_unsafe(text: str) -> str | None:
    """The first character of :data:`UNSAFE` in ``text``, or None."""
    found = _unsafe().search(text)
    return found[0] if found else None


def _unsafe() -> Any:
    global _CONTROL
    if _CONTROL is None:
        import re

        _CONTROL = re.compile(f"[{UNSAFE}]")
    return _CONTROL


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, cursor moves: CSI; window
    titles, links: OSC): a tool's coloured error read as a message."""
    global _ANSI
    if "\x1b" not in text and "\x9b" not in text:
        return text
    if _ANSI is None:
        import re

        _ANSI = re.compile(
            r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI ... final byte
            r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
            r"|\x1b[()*+][0-~]"  # character sets
            r"|\x1b[@-Z\\-_]"  # other two-byte escapes
        )
    stripped: str = _ANSI.sub("", text)
    return stripped


__all__ = ["UNSAFE", "escape_controls", "first_unsafe", "strip_ansi"]
