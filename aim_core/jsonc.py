"""JSON with ``//`` and ``/* */`` comments, as the guide writes its examples.

Comments outside strings are blanked with spaces (newlines kept), so line and
column numbers in syntax errors still point at the user's text.
"""

from __future__ import annotations

import json
from typing import Any


class JsonSyntaxError(ValueError):
    """A JSON file could not be parsed; ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(f"line {line}, column {column}: {message}")
        self.reason = message
        self.line = line
        self.column = column


def strip_comments(text: str) -> str:
    """Blank out comments outside JSON strings, keeping every offset in place."""
    if "/" not in text:
        return text
    out = list(text)
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "/" and i + 1 < n and text[i + 1] == "/":
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
            continue
        elif c == "/" and i + 1 < n and text[i + 1] == "*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for j in range(i, end):
                if out[j] != "\n":
                    out[j] = " "
            i = end
            continue
        i += 1
    return "".join(out)


def loads(text: str) -> Any:
    """Parse JSON that may hold comments; raise :class:`JsonSyntaxError` with line and column."""
    try:
        return json.loads(strip_comments(text))
    except json.JSONDecodeError as e:
        raise JsonSyntaxError(e.msg, e.lineno, e.colno) from None
