"""The frame around every ``aim`` command, without click: writing a line, the
projects a command opened (their audit sinks flushed before it returns), and how an
error reaches the user with its exit code.

Shared by the click CLI (:mod:`aim_core.cli`) and the commands started without it
(:mod:`aim_core.cli_run`), so both show the same text and end with the same codes.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import sys
from collections.abc import Callable

from aim_core.display import escape_controls
from aim_core.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, AimError

TYPE_CHECKING = False  # typing costs milliseconds to import on the start of `aim run`
if TYPE_CHECKING:
    from typing import Any

ISSUES_URL = "https://github.com/aim-dev/aim/issues"

# The projects a command opened, so that their audit sinks are flushed before exit.
OPENED: contextvars.ContextVar[list[Any]] = contextvars.ContextVar("aim_opened_projects")

_ANSI = None


def echo(text: str, *, err: bool = False) -> None:
    """Write ``text`` and a newline to stdout (stderr with ``err``) and flush, as
    ``click.echo`` does: ANSI escapes are removed when the stream is not a terminal."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    if "\033" in text and not _isatty(stream):
        global _ANSI
        if _ANSI is None:
            import re

            _ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")  # click's strip_ansi
        text = _ANSI.sub("", text)
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:  # `aim run ... | head`: the reader left; the work goes on
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # Python's own advice: no error at exit either
        os.close(devnull)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def print_error(e: AimError) -> None:
    """``Error: <the error>``, or one line per problem when there are several. A
    problem is one line: the control characters a workstream's values may hold (a path
    with a newline or an ANSI escape) are shown escaped, never obeyed; in a message
    all but its own line breaks are."""
    problems = getattr(e, "problems", None) or []
    if len(problems) > 1:
        echo(f"Error: {len(problems)} problems:", err=True)
        for p in problems:
            echo(f"  {escape_controls(str(p))}", err=True)
    elif problems:
        echo(f"Error: {escape_controls(str(problems[0]))}", err=True)
    else:
        echo("Error: " + escape_controls(str(e), keep="\n"), err=True)


def internal_error(e: BaseException) -> str:
    """What the user reads about an error that is a bug in aim."""
    from aim_core._version import __version__

    return (
        f"Internal error: {type(e).__name__}: {e}\n"
        f"This is a bug in aim {__version__}. Please report it at {ISSUES_URL} "
        "with the output of the same command run with --debug."
    )


def error_json(e: AimError, *, exit_code: int | None = None) -> str:
    """What ``--json`` prints on stdout for an error that ends the command: one object,
    ``{"error": message, "file", "field", "problems": [one line each], "exit_code"}``
    (the values as they are: JSON escapes what a terminal would obey); ``exit_code``
    when it is not the error's own."""
    import json

    problems = [str(p) for p in getattr(e, "problems", None) or []]
    data = {
        "error": e.message if hasattr(e, "message") else str(e),
        "file": getattr(e, "file", None),
        "field": getattr(e, "field", None),
        "problems": problems,
        "exit_code": e.exit_code if exit_code is None else exit_code,
    }
    return json.dumps(data, ensure_ascii=False)


def wants_json(args: list[str]) -> bool:
    """``--json`` or ``--format json`` among the options (before a ``--``): errors are
    also printed as JSON."""
    options = args[: args.index("--")] if "--" in args else args
    return (
        "--json" in options
        or "--format=json" in options
        or any(pair == ("--format", "json") for pair in itertools.pairwise(options))
    )


def wants_debug(args: list[str]) -> bool:
    """``--debug`` among the arguments, or ``AIM_DEBUG=1``: show tracebacks."""
    return "--debug" in args or os.environ.get("AIM_DEBUG") == "1"


def run_framed(command: Callable[[], int], *, debug: bool, as_json: bool = False) -> int:
    """Run ``command``; its errors become the messages and exit codes of ARCHITECTURE.md
    (re-raised with ``debug``; with ``as_json`` also :func:`error_json` on stdout).
    Before it returns, every project the command opened flushes its audit sinks
    (``audit_flush``)."""
    token = OPENED.set([])
    try:
        try:
            return command()
        except AimError as e:
            if debug:
                raise
            print_error(e)
            if as_json:
                echo(error_json(e))
            return e.exit_code
        except KeyboardInterrupt:
            echo("Interrupted.", err=True)
            return EXIT_INTERRUPTED
        except Exception as e:
            if debug:
                raise
            echo(internal_error(e), err=True)
            return EXIT_INTERNAL
    finally:
        for project in OPENED.get():
            project.audit.flush()
        OPENED.reset(token)


def remember(project: Any) -> None:
    """Note a project the current command opened (see :data:`OPENED`)."""
    opened = OPENED.get(None)
    if opened is not None:
        opened.append(project)
