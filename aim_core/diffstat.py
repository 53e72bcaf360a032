"""Line counts of a change, as ``git diff --numstat`` gives them (``difflib``): what
an attempt's record says of its edit, and a race's tie-break (the smaller diff)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

# Longer files count as wholly replaced: matching is quadratic at worst, and this runs
# after every attempt that changed something.
MAX_DIFF_LINES = 20_000


def _lines(path: Path | None) -> list[bytes]:
    if path is None or path.is_symlink() or not path.is_file():
        return []
    try:
        return path.read_bytes().splitlines()
    except OSError:
        return []


def numstat(before: Path | None, after: Path | None) -> tuple[int, int]:
    """``(lines added, lines removed)`` from file ``before`` to file ``after`` (None or a
    missing file: no lines)."""
    old, new = _lines(before), _lines(after)
    if not old or not new or len(old) + len(new) > MAX_DIFF_LINES:
        return len(new), len(old)
    added = removed = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
        None, old, new, autojunk=False
    ).get_opcodes():
        if tag != "equal":
            removed += i2 - i1
            added += j2 - j1
    return added, removed


def summary(pairs: Iterable[tuple[Path | None, Path | None]]) -> dict[str, int]:
    """``{"files", "lines_added", "lines_removed"}`` over ``(before, after)`` pairs (the
    record's ``result.content.diff``)."""
    files = added = removed = 0
    for before, after in pairs:
        a, r = numstat(before, after)
        files += 1
        added += a
        removed += r
    return {"files": files, "lines_added": added, "lines_removed": removed}
