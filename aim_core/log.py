"""aim's log lines: ``[LEVEL] message`` on stderr, as the deployment guide prints them.

The library logs through the standard ``logging`` module under the name
``aim``; only the CLI attaches a handler, so a program that embeds aim
decides for itself what to show.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("aim")
logger.addHandler(logging.NullHandler())


class _GuideFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"[{record.levelname}] {record.getMessage()}"


def configure(verbosity: int = 0, quiet: bool = False, stream=None) -> None:
    """Print aim's log to ``stream`` (stderr): INFO by default, DEBUG with ``-v``,
    only warnings and errors with ``-q``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_GuideFormatter())
    for h in list(logger.handlers):
        if not isinstance(h, logging.NullHandler):
            logger.removeHandler(h)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbosity else logging.INFO)
