"""Exclusive file locks between processes (and threads), released by the OS when
the holder dies -- even by SIGKILL -- so a free lock means a dead holder.

``fcntl.flock`` blocks in the kernel (no polling), which matters for eight
concurrent writers of the audit chain; the ``filelock`` package polls every
50 ms and costs ~30 ms to import, so the few lines here are kept instead.
Everything platform-specific about locks lives in this module.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import ClassVar

if sys.platform == "win32":  # pragma: no cover - Windows
    import msvcrt

    def _lock(fd: int, blocking: bool) -> bool:
        mode = msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, mode, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int, blocking: bool) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FileLock:
    """An exclusive lock on ``path`` (created if missing); a context manager.

    Each instance opens its own descriptor, so two instances conflict even
    inside one process; a per-path thread lock orders threads first.
    """

    _thread_locks: ClassVar[dict[str, threading.Lock]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd: int | None = None
        with FileLock._guard:
            self._tlock = FileLock._thread_locks.setdefault(str(self.path), threading.Lock())

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False at once when it is held."""
        if not self._tlock.acquire(blocking):
            return False
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except BaseException:
            self._tlock.release()
            raise
        if not _lock(fd, blocking):
            os.close(fd)
            self._tlock.release()
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock back."""
        if self._fd is None:
            return
        try:
            _unlock(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None
            self._tlock.release()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_free(path: str | os.PathLike[str]) -> bool:
    """True when nobody holds the lock on ``path`` (its holder, if any, has died)."""
    if not os.path.exists(path):
        return True
    probe = FileLock(path)
    if probe.acquire(blocking=False):
        probe.release()
        return True
    return False
