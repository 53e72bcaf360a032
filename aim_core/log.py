"""aim's log lines: ``[LEVEL] message`` on stderr, as the deployment guide prints them.

The library logs through the standard ``logging`` module under the name
``aim``; only the CLI attaches a handler, so a program that embeds aim
decides for itself what to show.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

from aim_core.display import escape_controls

logger = logging.getLogger("aim")
logger.addHandler(logging.NullHandler())

# With several workstreams running at once, each line says which one it is about.
current_workstream: ContextVar[str | None] = ContextVar("current_workstream", default=None)


class _GuideFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ws = getattr(record, "workstream", None)
        prefix = f"{ws}: " if ws else ""
        # one line, whatever a path a tool named or a workstream's value holds: a
        # newline or an ANSI escape in it is shown escaped, never obeyed
        return escape_controls(f"[{record.levelname}] {prefix}{record.getMessage()}")


class _WorkstreamFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.workstream = current_workstream.get()
        return True


def configure(verbosity: int = 0, quiet: bool = False, stream: Any = None) -> None:
    """Print aim's log to ``stream`` (stderr): INFO by default, DEBUG with ``-v``,
    only warnings and errors with ``-q``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_GuideFormatter())
    handler.addFilter(_WorkstreamFilter())
    for h in list(logger.handlers):
        if not isinstance(h, logging.NullHandler):
            logger.removeHandler(h)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbosity else logging.INFO)
