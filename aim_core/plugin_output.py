"""Keeping what plugins print off aim's standard output.

``aim status --json``, ``aim plugins --json`` and ``aim run --json`` print JSON on
stdout; a plugin that calls ``print()`` (while it is imported or in a hook) must not
corrupt it. Plugin code runs inside :func:`plugin_code`; the CLI installs
:class:`GuardedStdout`, which sends what such code writes to stderr instead.
"""

from __future__ import annotations

import contextlib
import sys
import threading

TYPE_CHECKING = False  # typing costs ~9 ms to import; the warm `aim status` path uses this
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, TextIO

_state = threading.local()


@contextlib.contextmanager
def plugin_code() -> Iterator[None]:
    """Mark the current thread as running a plugin's code for the block."""
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth


def in_plugin_code() -> bool:
    """Whether the current thread runs a plugin's code now."""
    return getattr(_state, "depth", 0) > 0


class GuardedStdout:  # a TextIO in all but name
    """A stand-in for ``sys.stdout``: writes from plugin code go to ``stderr``."""

    def __init__(self, stdout: TextIO, stderr: TextIO):
        self._stdout = stdout
        self._stderr = stderr

    def write(self, text: str) -> int:
        target = self._stderr if in_plugin_code() else self._stdout
        return target.write(text)

    def flush(self) -> None:
        self._stdout.flush()
        self._stderr.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stdout, name)


def guard_stdout() -> None:
    """Install :class:`GuardedStdout` (once) for this process."""
    if not isinstance(sys.stdout, GuardedStdout) and sys.stdout is not None:
        sys.stdout = GuardedStdout(sys.stdout, sys.stderr)
