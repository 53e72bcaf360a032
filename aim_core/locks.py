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
from collections.abc import Callable
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
            fd = self._descriptor()
        except BaseException:
            self._tlock.release()
            raise
        if not _lock(fd, blocking):
            self._put_back(fd)
            self._tlock.release()
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock back."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            _unlock(fd)
        finally:
            self._put_back(fd)
            self._tlock.release()

    def _descriptor(self) -> int:
        """An open descriptor of the lock's file for this hold."""
        return self._open()

    def _put_back(self, fd: int) -> None:
        """Done with the descriptor of a hold."""
        os.close(fd)

    def _open(self) -> int:
        """The lock's file, opened (made when missing, with its directory); never
        through a symbolic link (:class:`~aim_core.errors.UsageError`, exit 2)."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            try:
                return os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                return os.open(self.path, flags, 0o644)
        except OSError:
            if self.path.is_symlink():
                from aim_core.errors import UsageError

                raise UsageError(
                    f"{self.path} is a symbolic link: a lock file of aim's never is one "
                    "(a repository could point it at any file); remove it"
                ) from None
            raise

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_forks = [0]  # how many times this process was forked into: a child's count is higher
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


class HeldLock(FileLock):
    """A :class:`FileLock` that keeps its file open from one hold to the next (a
    FileLock opens and closes it every time), for a process that takes the same lock
    again and again -- the audit log, once per record.

    A file kept open goes on locking the file it opened even when the path comes to
    name another (removed, replaced): a holder that cannot tell otherwise that the path
    is unchanged calls :meth:`ensure_current` while holding it. A forked child opens
    the path again: the open file it inherited, and its lock, are its parent's.
    """

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__(path)
        self._kept: int | None = None
        self._kept_in = -1  # the value of _forks when _kept was opened

    def _descriptor(self) -> int:
        fd = self._kept
        if fd is None or self._kept_in != _forks[0]:
            if fd is not None:
                os.close(fd)  # the parent's open file stays open in the parent
            self._kept = None
            fd = self._kept = self._open()
            self._kept_in = _forks[0]
        return fd

    def _put_back(self, fd: int) -> None:
        pass  # kept open for the next hold

    def ensure_current(self) -> bool:
        """While holding the lock: when the path no longer names the open file, lock the
        file it names now instead (blocking) and give the old one up. True when it did
        (whatever was read under the old lock must be read again)."""
        moved = False
        while True:
            assert self._fd is not None, "ensure_current() without holding the lock"
            try:
                st = os.stat(self.path)
                own = os.fstat(self._fd)
                if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
                    return moved
            except FileNotFoundError:
                pass
            fd = self._open()
            _lock(fd, True)
            old, self._fd, self._kept = self._fd, fd, fd
            _unlock(old)
            os.close(old)
            moved = True

    def close(self) -> None:
        """Close the file kept open (the next hold opens it again); nothing while held."""
        if self._fd is not None:
            return
        fd, self._kept = self._kept, None
        if fd is not None and self._kept_in == _forks[0]:
            os.close(fd)

    def __del__(
        self, _close: Callable[[int], None] = os.close, _forked: list[int] = _forks
    ) -> None:
        # os.close and _forks bound at definition: at interpreter exit the module's
        # globals may already be None
        fd = getattr(self, "_kept", None)
        if fd is not None and self._fd is None and self._kept_in == _forked[0]:
            try:  # noqa: SIM105 - no contextlib at interpreter exit
                _close(fd)
            except OSError:
                pass


def is_free(path: str | os.PathLike[str]) -> bool:
    """True when nobody holds the lock on ``path`` (its holder, if any, has died)."""
    if not os.path.exists(path):
        return True
    probe = FileLock(path)
    if probe.acquire(blocking=False):
        probe.release()
        return True
    return False
