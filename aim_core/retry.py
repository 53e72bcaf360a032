"""The retry policy's numbers: back-off before a retry, and cooldowns of failing tools."""

from __future__ import annotations

import threading
import time

BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
MAX_RETRY_AFTER_S = 30.0
COOLDOWN_FAILURES = 3
COOLDOWN_WINDOW_S = 600.0


def attempt_delay(n: int, retry_after: float | None) -> float:
    """Back-off (seconds) before retry ``n``: the tool's own retry-after when it said one."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, MAX_RETRY_AFTER_S)
    return BACKOFF_S[min(n - 1, len(BACKOFF_S) - 1)]


class Cooldowns:
    """Tools whose health failed repeatedly are left alone for the rest of the command
    (shared by the runs of ``-j``). Only failures that say something about the tool
    count (:attr:`Failure.counts_against_tool`)."""

    def __init__(self, failures: int = COOLDOWN_FAILURES, window_s: float = COOLDOWN_WINDOW_S):
        self.failures = failures
        self.window_s = window_s
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def failed(self, tool_id: str) -> None:
        """Count one failure of ``tool_id`` now."""
        with self._lock:
            self._seen.setdefault(tool_id, []).append(time.monotonic())

    def cooling(self, tool_id: str) -> bool:
        """Whether ``tool_id`` failed ``failures`` times within the window."""
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._seen.get(tool_id, []) if now - t <= self.window_s]
            self._seen[tool_id] = recent
            return len(recent) >= self.failures
