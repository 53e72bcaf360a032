"""Run a tool as a child process, bounded in time, output and environment.

The child gets its own session and ``AIM_ATTEMPT=<token>`` in its environment,
stdin is closed unless text is given, stdout and stderr are read by one thread
into capped buffers (the first and the last ``cap`` bytes are kept, the middle
is counted and dropped). When the tool's leader exits, times out or is
interrupted, everything it started is killed -- also what left its session with
``setsid``, double-forked or outlived it holding its pipes (see
:mod:`aim_core.proctree`) -- and its output is read as it is at that moment.
Plugins reach this through ``context.run``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import select
import selectors
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import aim_core
from aim_core import proctree
from aim_core.models import ProcessResult
from aim_core.proctree import KILL_GRACE_S, enable_subreaper, kill_tree, token_of

__all__ = [
    "BASE_ENV",
    "DEFAULT_OUTPUT_CAP",
    "KILL_GRACE_S",
    "build_env",
    "enable_subreaper",
    "kill_tree",
    "run_process",
    "token_of",
]

DEFAULT_OUTPUT_CAP = 512 * 1024  # bytes kept at each end of each stream
FINISH_TIMEOUT_S = 0.5  # at most this long to take what the pipes hold when the tool ended

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


class _Reader:
    """Reads a tool's stdout and stderr on one thread, into capped buffers, until both
    pipes end or :meth:`finish` is called.

    :meth:`finish` takes what the pipes hold at that moment and stops at once: a
    process that keeps a pipe open after the tool exited (a daemon started with
    ``setsid``) never makes aim wait for it.
    """

    def __init__(self, streams: Sequence[tuple[Any, _CappedBuffer]]):
        self._files = [s for s, _ in streams]
        self._streams = [(s.fileno(), buf) for s, buf in streams]
        self._wake_r, self._wake_w = os.pipe()
        self._threads = [threading.Thread(target=self._loop, daemon=True, name="aim-tool-output")]
        if os.name != "posix":  # pragma: no cover - Windows: select() takes sockets only
            self._threads = [
                threading.Thread(target=_pump, args=(fd, buf), daemon=True)
                for fd, buf in self._streams
            ]
        for t in self._threads:
            t.start()

    def _loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            for fd, buf in self._streams:
                os.set_blocking(fd, False)
                sel.register(fd, selectors.EVENT_READ, buf)
            sel.register(self._wake_r, selectors.EVENT_READ, None)
            open_streams = len(self._streams)
            while open_streams:
                for key, _ in sel.select():
                    if key.data is None:  # finish(): take what is there and stop
                        for other in list(sel.get_map().values()):
                            if other.data is not None:
                                _drain(other.fd, other.data)
                        return
                    if not _read_some(key.fd, key.data):
                        sel.unregister(key.fd)
                        open_streams -= 1

    def finish(self) -> None:
        """Take what the pipes hold now, stop reading and close them."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        for t in self._threads:
            t.join(timeout=2 * FINISH_TIMEOUT_S)
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _pump(fd: int, buffer: _CappedBuffer) -> None:  # pragma: no cover - Windows
    """Blocking reads until the end of the pipe (or until it is closed under us)."""
    while _read_some(fd, buffer):
        pass


def _read_some(fd: int, buffer: _CappedBuffer) -> bool:
    """One read from a ready pipe; False at its end."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return True
    except OSError:
        return False
    if chunk:
        buffer.add(chunk)
    return bool(chunk)


def _drain(fd: int, buffer: _CappedBuffer) -> None:
    """Read until the pipe is empty or ends, for at most FINISH_TIMEOUT_S (the tree
    was killed before: nobody is left to fill it)."""
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # BlockingIOError: empty
            return
        if not chunk:
            return
        buffer.add(chunk)


def run_process(
    argv: Sequence[str],
    *,
    timeout_s: float | None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | bytes | None = None,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    on_start: Callable[[int], None] | None = None,
    token: str | None = None,
) -> ProcessResult:
    """Run ``argv`` and return its exit code and capped output.

    When the tool's leader exits (or times out, or this call is interrupted),
    everything it started is killed and its output is taken as it is then:
    nothing it left behind outlives the call or keeps it waiting.

    :param timeout_s: after this many seconds the tool's whole tree is killed
        and ``timed_out`` is true; None waits forever.
    :param env: the tool's environment (default: ours); ``AIM_ATTEMPT`` is added.
    :param stdin: text given to the tool on standard input; by default stdin is
        closed so a tool waiting for an answer ends instead of hanging.
    :param on_start: called with the child's pid as soon as it runs (to record it).
    :param token: the ``AIM_ATTEMPT`` mark of its processes (default: a new one); a
        caller that records it before the call finds them even if it dies first.
    :raises FileNotFoundError: when the program does not exist.
    """
    start = time.monotonic()
    token = token or proctree.new_token()
    full_env = {**(os.environ if env is None else env), proctree.TOKEN_VAR: token}
    with proctree.spawning:  # registered before any other thread looks for orphans
        elders = proctree.my_children()  # before the tool can hand aim an orphan
        proc = _spawn(argv, cwd=cwd, env=full_env, piped_stdin=stdin is not None)
        tree = proctree.register(proc.pid, token, elders)
    out, err = _CappedBuffer(output_cap), _CappedBuffer(output_cap)
    reader = None
    try:
        if on_start is not None:  # first: the sooner recorded, the smaller the window
            on_start(proc.pid)
        reader = _Reader([(proc.stdout, out), (proc.stderr, err)])
        if stdin is not None:
            threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
        timed_out = _wait(proc, tree, timeout_s)
    finally:  # also when interrupted (KeyboardInterrupt): never leave the tree behind
        proctree.ending(tree)
        kill_tree(proc.pid)
        proc.wait()
        if reader is not None:
            reader.finish()
        proctree.unregister(tree)
        if tree.noted:
            proctree.forget_journal(tree)
    return ProcessResult(
        exit_code=None if timed_out else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        duration_sec=round(time.monotonic() - start, 6),
        timed_out=timed_out,
        dropped_bytes=out.dropped + err.dropped,
    )


def _subreaper_for_command_line() -> None:
    """Make the ``aim`` command a child subreaper before its first tool starts: the tools
    of any command (the readiness probes of ``aim status`` too), never an embedder's."""
    if aim_core.COMMAND_LINE and not proctree.is_subreaper():
        proctree.enable_subreaper()


def _spawn(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None,
    piped_stdin: bool,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, its output piped."""
    _subreaper_for_command_line()
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


def _wait(proc: subprocess.Popen[bytes], tree: proctree.ToolTree, timeout_s: float | None) -> bool:
    """Wait for the tool's leader to exit, looking at its tree after 0.05 s, 0.1 s,
    0.2 s ... then every WATCH_S (:func:`~aim_core.proctree.watch`); True when the
    time ran out first."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    step = 0.05
    exited = _ExitWaiter(proc)
    try:
        while True:
            left = step if deadline is None else deadline - time.monotonic()
            if exited.wait(max(0.0, min(left, step))):
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return True
            proctree.watch(tree)
            step = min(2 * step, proctree.WATCH_S)
    finally:
        exited.close()


class _ExitWaiter:
    """Waits for a child to exit. On Linux it wakes the moment the child exits (a
    pidfd); ``Popen.wait(timeout)`` polls with sleeps that grow to 50 ms, which made a
    tool that ran 30 ms take 50 ms."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        self.proc = proc
        self.fd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self.fd = os.pidfd_open(proc.pid)

    def wait(self, seconds: float) -> bool:
        """Whether the child exited within ``seconds`` (it is reaped then)."""
        if self.fd is None:
            try:
                self.proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                return False
            return True
        if self.proc.poll() is not None:
            return True
        select.select([self.fd], [], [], seconds)
        return self.proc.poll() is not None

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _feed(stream: Any, data: str | bytes) -> None:
    try:
        stream.write(data.encode() if isinstance(data, str) else data)
        stream.close()
    except (OSError, ValueError):
        pass
