"""aim's run server: the engine imported once, a forked worker per ``aim run``.

Started by :func:`aim_core.resident_client.start_server` when an ``aim run`` finds
none (that command runs by itself; the next ones are served). The server imports
what ``aim run`` needs (:data:`PRELOAD`), loads the credential rules, then waits on
its socket. For each client it checks the request -- the same user
(``SO_PEERCRED``), the same key (interpreter, import path, flags, version,
Python's environment) and code that has not changed on disk since it started --
and forks a worker that takes the client's standard streams, environment, working
directory, umask and arguments and runs :func:`aim_core.__main__.main` as the
client would have. It relays the client's signals to the worker, kills the worker
(``SIGKILL``) when the client is gone (as a ``kill -9`` of ``aim`` would have
killed the command), and reports how the worker ended.

The server keeps no state between commands: each worker starts from the state
right after the imports. It stops after ``AIM_RESIDENT_IDLE_S`` seconds (default
300) without a command, when its socket is removed or replaced, when another
server holds its lock, or when aim's code changed (it answers ``stale`` and the
client runs the command itself).

Protocol (one connection per command): the client sends a 4-byte big-endian length
and a :mod:`marshal`-ed request (``key``, ``argv``, ``cwd``, ``env``, ``umask``,
``stdio``); the server answers ``ready``, ``stale`` or ``refused``. Only after
``ready`` may the client say ``go``, with its fds 0, 1, 2 (``SCM_RIGHTS``), and only
then is the worker forked (``started``): a client that gave up waiting -- and runs
the command itself -- never has it run a second time, nor its streams held open.
Then the client may send ``signal N`` lines and the server ends with ``exit N`` or
``killed N`` (the signal that ended the worker).
"""

from __future__ import annotations

import array
import contextlib
import marshal
import os
import selectors
import signal
import socket
import struct
import sys
import time
from typing import Any

from aim_core.resident_client import IDLE_VAR

# When this process began to load aim's code (nearly: aim_core/__init__.py came first).
# A file whose ctime is later (less a tick of the file system's coarse clock) may have
# changed after its module was read: such a server answers "stale" from the start.
_LOADING_NS = time.time_ns() - 50_000_000
BIND_TRIES = 30  # 0.1 s apart: how long a new server waits for the lock

# What `aim run` imports (their own imports follow); plugins are not among them:
# a worker imports those it calls, as `aim run` does, so an upgrade is always seen.
PRELOAD = (
    "aim_core.__main__",
    "aim_core.cli_run",
    "aim_core.cli_frame",
    "aim_core.log",
    "aim_core.project",
    "aim_core.graph",
    "aim_core.runner",
    "aim_core.attempt",
    "aim_core.admission",
    "aim_core.process",
    "aim_core.proctree",
    "aim_core.progress",
    "aim_core.budget",
    "aim_core.security",
    "aim_core.credentials",
    "aim_core.secret_rules",
    "aim_core.audit.emit",
    "aim_core.audit.jsonl",
    "aim_core.checks",
    "aim_core.race",
    "aim_core.isolated",
    "aim_core.diffstat",
    "aim_core.recovery",
    "aim_core.runlocks",
    "aim_core.runlog",
    "aim_core.scope_check",
    "aim_core.toolkit",
    "aim_core.verify",
    "aim_core.audit.prune",
    "aim_core.default_plugins.security",
    "shlex",
    "ctypes",
    "orjson",  # the audit's encoder: a served run seals with it at once (ORJSON_AFTER)
)
IDLE_S = 300.0
REQUEST_TIMEOUT_S = 10.0  # a client's request, and its "go", arrive within this
_EOF = b""


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    from aim_core.secret_rules import ruleset

    rules = ruleset()
    for rule in rules.rules:  # compiled once here rather than in every command
        rule.regex  # noqa: B018
        rule.allowlists  # noqa: B018
    rules.allowlist.regexes  # noqa: B018
    rules.allowlist.paths  # noqa: B018
    rules.occurrences("warm")
    _warm_caches()
    import gc

    gc.collect()
    gc.freeze()  # no collection touches these in a worker: fewer pages copied after fork


def _warm_caches() -> None:
    """What the first command would do the same way: resolve the models' annotations
    (``attrs.resolve_types``), compile the default rules' path patterns (``fnmatch``)."""
    import fnmatch

    import attrs

    from aim_core import models
    from aim_core.registry import DEFAULT_RULES

    for value in vars(models).values():
        if isinstance(value, type) and attrs.has(value):
            attrs.resolve_types(value)
    security = DEFAULT_RULES["security"]
    for pattern in (*security["forbidden_paths"], *security["allowed_file_patterns"]):
        fnmatch.fnmatchcase("", pattern.rstrip("/"))


def code_stamps() -> dict[str, tuple[int, int, int]]:
    """``{file: (mtime_ns, size, ctime_ns)}`` of every module this process imported
    from a file, and of every file of the ``aim_core`` package (its data too: the
    credential rules the server has loaded are JSON files) and its directories (a new
    file changes its directory's times). The ctime moves with every change, even one
    that sets the mtime back."""
    paths = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
    package = os.path.dirname(os.path.abspath(__file__))
    for top, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        paths += [top, *(os.path.join(top, f) for f in files)]  # a new file: its dir's mtime
    stamps: dict[str, tuple[int, int, int]] = {}
    for path in paths:
        if not path:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        stamps[path] = (st.st_mtime_ns, st.st_size, st.st_ctime_ns)
    return stamps


def changed_while_loading(stamps: dict[str, tuple[int, int, int]]) -> bool:
    """Whether a file may have changed after this process read it: its ctime is later
    than the start of the loading (see :data:`_LOADING_NS`)."""
    return any(stamp[2] >= _LOADING_NS for stamp in stamps.values())


def _stale(stamps: dict[str, tuple[int, int, int]]) -> bool:
    for path, stamp in stamps.items():
        try:
            st = os.stat(path)
        except OSError:
            return True
        if (st.st_mtime_ns, st.st_size, st.st_ctime_ns) != stamp:
            return True
    return False


class _Client:
    """One connection: its request as it arrives, then its worker."""

    def __init__(self, conn: socket.socket, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline  # the request and its "go" must arrive by then
        self.data = b""
        self.fds: list[int] = []
        self.request: dict[str, Any] | None = None
        self.pid = 0  # the worker's, once started
        self.pidfd = -1

    def close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


class Server:
    """The accept loop: one worker per connection (see the module docstring). Every
    socket is non-blocking: a client that is slow, or sends nothing, delays no other."""

    def __init__(self, path: str, material: dict[str, object]) -> None:
        self.path = path
        self.material = material
        self.selector = selectors.DefaultSelector()
        self.clients: set[_Client] = set()
        self.idle_s = float(os.environ.get(IDLE_VAR) or IDLE_S)
        self.stamps: dict[str, tuple[int, int, int]] = {}
        self.listener: socket.socket | None = None
        self.inode = 0
        self.stopping = False
        self._lock = -1

    def bind(self) -> bool:
        """Take the lock and the socket; False when another server holds them."""
        import fcntl

        lock = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for _ in range(BIND_TRIES):  # a stale server leaves once its last client has
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                time.sleep(0.1)
        else:
            os.close(lock)
            return False
        self._lock = lock  # held until the process ends
        os.ftruncate(lock, 0)
        os.write(lock, f"{os.getpid()}\n".encode())  # who serves: for aim doctor and tests
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a dead server's socket: nobody holds the lock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(64)
        listener.setblocking(False)
        self.inode = os.stat(self.path).st_ino
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, self._accept)
        return True

    def serve(self) -> None:
        """Answer commands until idle, replaced or stale (see the module docstring)."""
        self.stamps = code_stamps()
        self.stopping = self.stopping or changed_while_loading(self.stamps)
        last = time.monotonic()
        while True:
            now = time.monotonic()
            timeout = 1.0 if self.clients else max(0.0, min(5.0, last + self.idle_s - now))
            for key, _ in self.selector.select(timeout):
                key.data(key.fileobj)
            now = time.monotonic()
            for c in [c for c in self.clients if not c.pid and now > c.deadline]:
                self._drop(c)  # never sent its request, or never said "go"
            if self.clients:
                last = now
                continue
            if self.stopping or not self._still_mine() or now - last >= self.idle_s:
                break
        self._close()

    def stop(self, _signum: int = 0, _frame: object = None) -> None:
        """Take no more commands; those running end as they would have."""
        self.stopping = True

    def _still_mine(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def _close(self) -> None:
        if self.listener is not None:
            if self._still_mine():
                os.unlink(self.path)
            self.listener.close()
            self.listener = None

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            conn.close()
            return
        conn.setblocking(False)
        c = _Client(conn, time.monotonic() + REQUEST_TIMEOUT_S)
        self.clients.add(c)
        self.selector.register(conn, selectors.EVENT_READ, lambda _s: self._readable(c))

    def _readable(self, c: _Client) -> None:
        try:
            data, ancdata, _flags, _addr = c.conn.recvmsg(1 << 16, socket.CMSG_SPACE(3 * 4))
        except BlockingIOError:
            return
        except OSError:
            data, ancdata = b"", []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                c.fds += list(fds)
        if c.pid:
            return self._from_client(c, data)
        if not data:
            return self._drop(c)
        c.data += data
        if c.request is None:
            self._maybe_ready(c)
        elif c.data == b"go\n":
            self._start(c)
        elif len(c.data) >= 3:
            self._drop(c)

    def _maybe_ready(self, c: _Client) -> None:
        """A whole request: check it and answer ``ready`` (or ``stale``/``refused``)."""
        if len(c.data) < 4 or len(c.data) < 4 + int.from_bytes(c.data[:4], "big"):
            return
        size = int.from_bytes(c.data[:4], "big")
        body, c.data = c.data[4 : 4 + size], c.data[4 + size :]
        try:
            request = marshal.loads(body)
        except (ValueError, EOFError, TypeError):
            request = None
        if not isinstance(request, dict) or c.fds or request.get("key") != self.material:
            return self._answer(c, b"refused\n")
        if self.stopping or _stale(self.stamps):
            self.stopping = True
            return self._answer(c, b"stale\n")
        c.request = request
        self._send(c, b"ready\n")

    def _start(self, c: _Client) -> None:
        """The client said ``go`` and sent its streams: fork its worker (the client
        waits from now on)."""
        assert c.request is not None
        if len(c.fds) != 3:
            return self._answer(c, b"refused\n")
        server = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            return self._answer(c, b"refused\n")
        if pid == 0:
            self._forget()
            _worker(c.fds, c.request, server)  # never returns
        c.close_fds()
        c.pid, c.request = pid, None
        c.pidfd = os.pidfd_open(pid)
        self.selector.register(c.pidfd, selectors.EVENT_READ, lambda _fd: self._ended(c))
        self._send(c, b"started\n")

    def _forget(self) -> None:
        """In a worker: close what belongs to the server (its socket, lock, other clients)."""
        for c in self.clients:
            c.conn.close()
            if c.pidfd >= 0:
                os.close(c.pidfd)
        self.selector.close()
        if self.listener is not None:
            self.listener.close()
        if self._lock >= 0:
            os.close(self._lock)

    def _send(self, c: _Client, data: bytes) -> None:
        try:
            c.conn.sendall(data)  # a few bytes: the socket buffer takes them at once
        except OSError:  # the client went away: its worker goes too (``_from_client``)
            if c.pid:
                _kill(c.pid, signal.SIGKILL)
            else:
                self._drop(c)

    def _answer(self, c: _Client, answer: bytes) -> None:
        with contextlib.suppress(OSError):
            c.conn.sendall(answer)
        self._drop(c)

    def _drop(self, c: _Client) -> None:
        """Forget a client whose command never started: nothing of it runs."""
        c.close_fds()
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(c.conn)
        c.conn.close()
        self.clients.discard(c)

    def _from_client(self, c: _Client, data: bytes) -> None:
        """A line from the client (a signal to relay), or its end: kill the worker."""
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(c.conn)
            _kill(c.pid, signal.SIGKILL)
            return
        for line in data.decode(errors="replace").splitlines():
            kind, _, value = line.partition(" ")
            if kind == "signal" and value.isdigit():
                _kill(c.pid, int(value))

    def _ended(self, c: _Client) -> None:
        self.selector.unregister(c.pidfd)
        os.close(c.pidfd)
        _, status = os.waitpid(c.pid, 0)
        if os.WIFSIGNALED(status):
            answer = f"killed {os.WTERMSIG(status)}\n"
        else:
            answer = f"exit {os.waitstatus_to_exitcode(status)}\n"
        c.conn.setblocking(True)
        c.conn.settimeout(1.0)
        c.pid = 0
        self._answer(c, answer.encode())


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(OSError):  # ended already; not reaped yet, so the pid is its
        os.kill(pid, signum)


def _worker(fds: list[int], request: dict[str, Any], server: int) -> None:
    """In the forked child: become the client's command, run it, and exit with its code."""
    code = 70
    try:
        _die_with(server)
        os.setpgid(0, 0)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        try:
            _become(request)
        except Exception as e:  # e.g. the client's directory is gone
            os.write(
                2,
                f"Error: aim's run server could not take this command ({e}); "
                "run it with AIM_RESIDENT=0\n".encode(errors="replace"),
            )
            os._exit(70)
        from aim_core.__main__ import main

        try:
            code = main(list(request["argv"])[1:])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        if "logging" in sys.modules:
            sys.modules["logging"].shutdown()
    except KeyboardInterrupt:  # a Ctrl-C relayed before the command started
        code = 130
    except BaseException:
        code = 70
    finally:
        os._exit(code if isinstance(code, int) else 70)


def _die_with(server: int) -> None:
    """``SIGKILL`` this worker if the server dies (``PR_SET_PDEATHSIG``), as a ``kill -9``
    of ``aim`` ends its command: the work left is then a dead run's, which aim recovers."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != server:  # the server died before the line above
        os._exit(70)


def _become(request: dict[str, Any]) -> None:
    """Take the client's environment, directory, umask, arguments and streams."""
    import io
    import locale

    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    time.tzset()
    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")
    sys.argv = list(request["argv"])
    stdin_io: tuple[str, str] | None
    stdout_io: tuple[str, str] | None
    stdin_io, stdout_io = request["stdio"]

    def text(fd: int, mode: str, enc: tuple[str, str] | None, line: bool) -> io.TextIOWrapper:
        encoding, errors = enc or ("utf-8", "strict")
        buffered = open(fd, mode + "b", closefd=False)  # noqa: SIM115 - lives as sys.stdout
        return io.TextIOWrapper(buffered, encoding=encoding, errors=errors, line_buffering=line)

    stderr_io = (stdout_io[0] if stdout_io else "utf-8", "backslashreplace")
    streams = {
        "stdin": text(0, "r", stdin_io, False),
        "stdout": text(1, "w", stdout_io, os.isatty(1)),
        "stderr": text(2, "w", stderr_io, True),
    }
    for name, stream in streams.items():
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def main(path: str, material: dict[str, object]) -> None:
    """Serve on the socket ``path`` the clients whose key is ``material``
    (:func:`aim_core.resident_client.key_material`); started by
    :data:`aim_core.resident_client.START` with ``sys.path`` already the client's."""
    from aim_core.resident_client import confinement

    if material.get("flags") != repr(sys.flags) or not hasattr(os, "pidfd_open"):
        return  # not the Python the client is, or no pidfd: never serve
    if material.get("confinement") != confinement():
        return  # not confined as the client is (see confinement()): never serve
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    _preload()
    server = Server(path, material)
    if server.bind():
        signal.signal(signal.SIGTERM, server.stop)
        server.serve()


__all__ = ["PRELOAD", "Server", "code_stamps", "main"]
