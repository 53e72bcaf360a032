"""The command line of ``aim run`` as :mod:`aim_core.cli_run` reads it without click:
its options (:data:`RUN_OPTIONS`, :data:`GLOBAL_OPTIONS`, which must match the click
command's, see tests/test_cli_run.py) and how tokens are read as click reads them.

Imports nothing: the run server's client (:mod:`aim_core.resident_client`) asks
:func:`accepts` on every start of ``aim run``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

FLAG = "flag"  # an option without a value: True when given
COUNT = "count"  # an option without a value, counted (-vv)


def _jobs(text: str) -> int:
    """``-j N``: click's ``IntRange(1, 64)``."""
    value = int(text.strip(), 10)
    if not 1 <= value <= 64:
        raise ValueError(text)
    return value


def _text(text: str) -> str:
    return text


def _dollars(text: str) -> float:
    """``--max-cost USD``: click's ``FloatRange(0, min_open=True)``, finite."""
    import math

    value = float(text.strip())
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(text)
    return value


def _race(text: str) -> int:
    """``--race K``: click's ``IntRange(1, 8)``."""
    value = int(text.strip(), 10)
    if not 1 <= value <= 8:
        raise ValueError(text)
    return value


# The options of click's `run` command (cli.py), as this module reads them:
# flag -> (parameter name, FLAG | COUNT | a converter raising ValueError, default).
RUN_OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "-j": ("jobs", _jobs, 1),
    "--jobs": ("jobs", _jobs, 1),
    "--dry-run": ("dry_run", FLAG, False),
    "--json": ("as_json", FLAG, False),
    "--max-cost": ("max_cost", _dollars, None),
    "--race": ("race", _race, None),
}

# The global options (aim_core.cli_common.common_options), before or after `run`.
GLOBAL_OPTIONS: dict[str, tuple[str, Any, Any]] = {
    "--config": ("config", _text, None),
    "--registry": ("registry", _text, None),
    "--actor": ("actor", _text, None),
    "-v": ("verbose", COUNT, 0),
    "--verbose": ("verbose", COUNT, 0),
    "-q": ("quiet", FLAG, False),
    "--quiet": ("quiet", FLAG, False),
    "--debug": ("debug", FLAG, False),
}


class _NotMine(Exception):
    """The command line is one for click to read (and answer, or refuse)."""


def _read_options(
    tokens: Sequence[str], table: dict[str, tuple[str, Any, Any]], *, stop_at_word: bool
) -> tuple[dict[str, Any], list[str], int]:
    """Read ``tokens`` as click does for one command: ``(options given, arguments,
    tokens used)``. ``stop_at_word``: stop at the first argument (the subcommand)."""
    given: dict[str, Any] = {}
    words: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "--":
            words.extend(tokens[i:])
            return given, words, len(tokens)
        if not token.startswith("-") or token == "-":
            if stop_at_word:
                return given, words, i - 1
            words.append(token)
            continue
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if not token.startswith("--") and len(token) > 2:  # -j4 or -vv
            if token[:2] in table and table[token[:2]][1] not in (FLAG, COUNT):
                name, eq, value = token[:2], "=", token[2:]
            elif all(f"-{c}" in table and table[f"-{c}"][1] in (FLAG, COUNT) for c in token[1:]):
                for c in token[1:]:
                    _set(given, table[f"-{c}"], None)
                continue
        if name not in table:
            raise _NotMine(token)
        spec = table[name]
        if spec[1] in (FLAG, COUNT):
            if eq:
                raise _NotMine(token)  # click: the option does not take a value
            _set(given, spec, None)
            continue
        if not eq:
            if i >= len(tokens):
                raise _NotMine(token)  # click: the option requires an argument
            value = tokens[i]
            i += 1
        _set(given, spec, value)
    return given, words, len(tokens)


def _set(given: dict[str, Any], spec: tuple[str, Any, Any], value: str | None) -> None:
    param, kind, _default = spec
    if kind == FLAG:
        given[param] = True
    elif kind == COUNT:
        given[param] = given.get(param, 0) + 1
    else:
        try:
            given[param] = kind(value)
        except ValueError:
            raise _NotMine(value) from None


def read_words(args: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any], list[str]] | None:
    """``(options given before run, options after it, paths)``, or None when click
    must read ``args``."""
    try:
        before, _, used = _read_options(args, GLOBAL_OPTIONS, stop_at_word=True)
        if used >= len(args) or args[used] != "run":
            return None
        table = {**GLOBAL_OPTIONS, **RUN_OPTIONS}
        after, paths, _ = _read_options(args[used + 1 :], table, stop_at_word=False)
    except _NotMine:
        return None
    if not paths:
        return None  # click: missing argument
    return before, after, paths


def accepts(args: Sequence[str]) -> bool:
    """Whether :func:`aim_core.cli_run.parse` reads ``args`` (no click needed)."""
    return read_words(args) is not None


__all__ = ["COUNT", "FLAG", "GLOBAL_OPTIONS", "RUN_OPTIONS", "accepts", "read_words"]
