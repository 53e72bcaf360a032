"""Run a tool as a child process, bounded in time, output and environment.

Everything platform-specific about processes lives here: the child gets its
own session (process group), stdin is closed unless text is given, stdout and
stderr are read by threads into capped buffers (the first and the last
``cap`` bytes are kept, the middle is counted and dropped), and on timeout the
whole tree is terminated, then killed -- including descendants that left the
process group with ``setsid``. Plugins reach this through ``context.run``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aim_core.models import ProcessResult

DEFAULT_OUTPUT_CAP = 512 * 1024  # bytes kept at each end of each stream
KILL_GRACE_S = 0.3  # between SIGTERM and SIGKILL
PIPE_GRACE_S = 0.5  # how long a pipe may stay open after the tool exited
IS_POSIX = os.name == "posix"

# Passed to every tool; everything else in the environment must be asked for
# by the tool's plugin (ToolDetection.env_passthrough) so that unrelated
# secrets in the user's environment never reach a tool.
BASE_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TERM",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    # Windows
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "COMSPEC",
    "PATHEXT",
    "WINDIR",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
)


def build_env(
    passthrough: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a tool: the base set plus ``passthrough`` names (``AIDER_*``
    patterns allowed), then ``extra``."""
    source = os.environ if source is None else source
    names = set(BASE_ENV)
    patterns = []
    for name in passthrough:
        if any(c in name for c in "*?["):
            patterns.append(name)
        else:
            names.add(name)
    env = {
        k: v
        for k, v in source.items()
        if k in names or (patterns and any(fnmatch.fnmatchcase(k, p) for p in patterns))
    }
    if extra:
        env.update(extra)
    return env


class _CappedBuffer:
    """Keeps the first and the last ``cap`` bytes of a stream; counts the rest."""

    def __init__(self, cap: int):
        self.cap = cap
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.tail.append(chunk)
        self.tail_len += len(chunk)
        while self.tail_len > self.cap:
            first = self.tail[0]
            excess = self.tail_len - self.cap
            if len(first) <= excess:
                self.tail.popleft()
                self.tail_len -= len(first)
                self.dropped += len(first)
            else:
                self.tail[0] = first[excess:]
                self.tail_len -= excess
                self.dropped += excess

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        tail = b"".join(self.tail).decode("utf-8", "replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes of output dropped ...]\n{tail}"
        return head + tail


def _pump(stream: Any, buffer: _CappedBuffer) -> None:
    try:
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
            buffer.add(chunk)
    except (OSError, ValueError):
        pass  # the pipe was closed under us after the tool's tree was killed


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid`` (children, grandchildren, ...)."""
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return []


def kill_tree(pid: int, *, extra_pids: Iterable[int] = (), grace_s: float = KILL_GRACE_S) -> None:
    """Terminate, then kill, the process ``pid``, its process group and its descendants.

    Descendants are collected before anything is signalled, so a grandchild
    that moved to its own session with ``setsid`` is still found.
    """
    pids = {pid, *extra_pids, *descendants(pid)}
    if IS_POSIX:
        _signal_all(pid, pids, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.02)
        pids |= set(descendants(pid))
        _signal_all(pid, pids, signal.SIGKILL)
    else:  # pragma: no cover - Windows
        for p in pids:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGTERM)


def _signal_all(pgid: int, pids: Iterable[int], sig: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, sig)
    for p in pids:
        with contextlib.suppress(OSError):
            os.kill(p, sig)


def _alive(pid: int) -> bool:
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:
        return False


def run_process(
    argv: Sequence[str],
    *,
    timeout_s: float | None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | bytes | None = None,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    on_start: Callable[[int], None] | None = None,
) -> ProcessResult:
    """Run ``argv`` and return its exit code and capped output.

    :param timeout_s: after this many seconds the tool's whole tree is killed
        and ``timed_out`` is true; None waits forever.
    :param stdin: text given to the tool on standard input; by default stdin is
        closed so a tool waiting for an answer ends instead of hanging.
    :param on_start: called with the child's pid as soon as it runs (so a
        caller can record it for recovery).
    :raises FileNotFoundError: when the program does not exist.
    """
    start = time.monotonic()
    proc = _spawn(argv, cwd=cwd, env=env, piped_stdin=stdin is not None)
    if on_start is not None:
        on_start(proc.pid)
    out, err = _CappedBuffer(output_cap), _CappedBuffer(output_cap)
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True),
    ]
    for t in readers:
        t.start()
    if stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    timed_out, interrupted = _wait(proc, readers, timeout_s)
    return ProcessResult(
        exit_code=None if timed_out else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        duration_sec=round(time.monotonic() - start, 6),
        timed_out=timed_out,
        dropped_bytes=out.dropped + err.dropped,
        interrupted=interrupted,
    )


def _spawn(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None,
    piped_stdin: bool,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, its output piped."""
    kwargs: dict[str, Any] = {}
    if sys.platform == "win32":  # pragma: no cover - Windows
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if piped_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        close_fds=True,
        **kwargs,
    )


def _wait(
    proc: subprocess.Popen[bytes], readers: list[threading.Thread], timeout_s: float | None
) -> tuple[bool, bool]:
    """Wait for the tool; on timeout or interruption kill its tree. ``(timed_out,
    interrupted)``; an interruption is re-raised after the tree is gone."""
    timed_out = interrupted = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_tree(proc.pid)
        proc.wait()
    except BaseException:  # KeyboardInterrupt, SystemExit: never leave the tree behind
        interrupted = True
        kill_tree(proc.pid)
        proc.wait()
        raise
    finally:
        if not (timed_out or interrupted):
            _finish_pipes(proc, readers)
        for t in readers:
            t.join(timeout=PIPE_GRACE_S)
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
    return timed_out, interrupted


def _finish_pipes(proc: subprocess.Popen[bytes], readers: list[threading.Thread]) -> None:
    """After the tool exited: give its pipes a moment, then kill what still holds them."""
    deadline = time.monotonic() + PIPE_GRACE_S
    for t in readers:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in readers):
        # A background child still holds stdout/stderr: the tool left it behind.
        kill_tree(proc.pid)


def _feed(stream: Any, data: str | bytes) -> None:
    try:
        stream.write(data.encode() if isinstance(data, str) else data)
        stream.close()
    except (OSError, ValueError):
        pass


def enable_subreaper() -> bool:
    """Make orphaned descendants of our tools become our children (Linux only).

    A tool that double-forks a daemon would otherwise hand it to init, out of
    reach of :func:`kill_tree`. Returns whether it took effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except Exception:
        return False
