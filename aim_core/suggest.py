"""Did-you-mean suggestions for unknown names."""

from __future__ import annotations

from collections.abc import Iterable

from aim_core.display import escape_controls


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, or None when none is close."""
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:
        return lowered[word.lower()]
    import difflib

    match = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return match[0] if match else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    match = nearest(word, candidates)
    return f" (did you mean '{match}'?)" if match else ""


def show(value: object, limit: int = 40) -> str:
    """A value as the user wrote it in JSON/YAML, shortened."""
    import json

    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    text = escape_controls(text)  # JSON leaves DEL and C1 characters (ESC's 8-bit twin) as they are
    return text if len(text) <= limit else text[: limit - 1] + "…"
