"""JSON with ``//`` and ``/* */`` comments, as the guide writes its examples.

Comments outside strings are blanked with spaces (newlines kept), so line and
column numbers in syntax errors still point at the user's text. A UTF-8 byte
order mark (Windows editors save one) is accepted. Input a person would not
write is refused as a syntax error with its line and column, never a crash:
nesting deeper than :data:`MAX_DEPTH` levels, a number too long to read.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64  # levels of [ and {: aim's files need a handful
BOM = "\ufeff"


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
    """Parse JSON that may hold comments; raise :class:`JsonSyntaxError` with line and column.

    A leading byte order mark is ignored; nesting deeper than :data:`MAX_DEPTH` and
    numbers too long to read are syntax errors.
    """
    if text.startswith(BOM):
        text = text[1:]
    try:
        data = json.loads(strip_comments(text))
    except json.JSONDecodeError as e:
        raise JsonSyntaxError(e.msg, e.lineno, e.colno) from None
    except RecursionError:
        raise _too_deep(text) from None
    except ValueError:  # int() refuses numbers of more than 4300 digits
        m = re.search(r"[0-9]{4000,}", text)
        at = m.start() if m else 0
        raise JsonSyntaxError(
            "a number too long to read; write a sensible value", *_line_col(text, at)
        ) from None
    if _deeper_than(data, MAX_DEPTH):
        raise _too_deep(text)
    return data


def _line_col(text: str, at: int) -> tuple[int, int]:
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether lists and objects nest more than ``limit`` levels (without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            if depth > limit:
                return True
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items if isinstance(v, (list, dict)))
    return False


def _too_deep(text: str) -> JsonSyntaxError:
    """The error for text nested too deeply, at the bracket that goes one level too far."""
    depth, in_string, i, n = 0, False, 0, len(text)
    clean = strip_comments(text)
    while i < n:
        c = clean[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                break
        elif c in "]}":
            depth -= 1
        i += 1
    return JsonSyntaxError(
        f"nested more than {MAX_DEPTH} levels deep ([ and {{); flatten the data",
        *_line_col(text, min(i, n)),
    )
