"""``aim run`` through aim's run server: the client side (standard library only).

Starting Python and importing aim (attrs, pluggy, the engine) takes most of a short
``aim run``. The run server (:mod:`aim_core.resident`) has done those imports once;
for each ``aim run`` it forks a worker that runs the command exactly as this process
would -- with this process's arguments, environment, working directory, umask and
standard streams (passed as file descriptors) -- while this process waits, relays
the signals it gets (Ctrl-C, ``SIGTERM``, ``SIGHUP``, ``SIGQUIT``) and ends with
the worker's exit code (or by the signal that ended it); Ctrl-Z stops both.

:func:`run` answers None -- the caller runs the command itself -- whenever the server
cannot be used as it is: ``AIM_RESIDENT=0``, not Linux, a command line other than a
plain ``aim run`` (:func:`aim_core.run_args.accepts`), a closed standard stream, Python
started with options, a socket directory not private to this user, no server yet
(one is started, once this command is done, for the next ones), or a server whose code is not this
installation's (it stops). See docs/PERFORMANCE.md, "The run server".
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket

DISABLE_VAR = "AIM_RESIDENT"
"""``AIM_RESIDENT=0``: never use (nor start) the run server."""
DIR_VAR = "AIM_RESIDENT_DIR"
"""Where the server's socket is: default ``$XDG_RUNTIME_DIR/aim``, else ``/tmp/aim-<uid>``."""
IDLE_VAR = "AIM_RESIDENT_IDLE_S"
"""Seconds the server waits for a command before it stops (default 300)."""
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
START = (
    "import marshal, sys; material = marshal.loads(sys.stdin.buffer.read()); "
    "sys.path[:] = material['path']; from aim_core.resident import main; "
    "main(sys.argv[1], material)"
)
"""The server's command line (after ``python -c``): the client's import path first."""
STARTED_TIMEOUT_S = 10.0
MAX_SERVERS = 8
"""Servers (one per interpreter, import path and Python environment) a user may have
at once; beyond, commands run by themselves."""
MAX_SOCKET_PATH = 100  # bytes; sun_path holds 108 on Linux
# a Python whose flags differ from a plain start could run the command differently
_PLAIN_FLAGS = ("isolated", "ignore_environment", "no_site", "dev_mode", "optimize", "verbose")


def key_material() -> dict[str, object]:
    """What decides which server may run this process's commands: the interpreter,
    its import path and flags, aim's version, the user, and the environment variables
    Python reads at its start (``PYTHON*``, the locale)."""
    from aim_core._version import __version__

    env = sorted(
        (k, v)
        for k, v in os.environ.items()
        if k.startswith(("PYTHON", "LC_")) or k in ("LANG", "LANGUAGE")
    )
    return {
        "executable": sys.executable,
        "path": list(sys.path),
        "version": __version__,
        "uid": os.getuid(),
        "flags": repr(sys.flags),
        "encoding": sys.getfilesystemencoding(),
        "env": env,
        "confinement": confinement(),
    }


# /proc/self/status lines that say what this process may do
_STATUS = ("Uid:", "Gid:", "Groups:", "NoNewPrivs:", "Seccomp", "Cap", "Cpus_allowed_list:")
_NAMESPACES = ("mnt", "pid", "net", "user", "uts", "ipc", "cgroup")


def confinement() -> list[str]:
    """What confines this process: its namespaces, cgroup, security label, ids,
    capabilities, seccomp and no-new-privs, CPU affinity, resource limits and nice
    value. A server is started by a client with this same value, so it -- and every
    worker it forks -- is confined exactly as the clients it serves (a process in a
    container, a sandbox or a cgroup never has its command run outside them)."""
    out = [f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"]
    for ns in _NAMESPACES:
        try:
            out.append(os.readlink(f"/proc/self/ns/{ns}"))
        except OSError:
            out.append(f"{ns}:?")
    for name in ("cgroup", "limits", "attr/current", "status"):
        try:
            with open(f"/proc/self/{name}", "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            text = "?"
        if name == "status":
            text = "\n".join(x for x in text.splitlines() if x.startswith(_STATUS))
        out.append(text)
    return out


def socket_dir() -> str | None:
    """The directory of the server's socket, made private (0700) if it does not exist;
    None when it exists and is not a directory owned by this user that only the user
    can open (another user could otherwise answer as the server)."""
    import stat

    base = os.environ.get(DIR_VAR)
    if base:
        base = os.path.abspath(base)  # the server's directory is /
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if runtime and os.path.isdir(runtime):
            base = os.path.join(runtime, "aim")
        else:
            base = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"aim-{os.getuid()}")
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(base)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return base


def _sha256_hex(data: bytes) -> str:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # 3.10, 3.11: no OpenSSL
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # CPython 3.12+
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())


def socket_path(material: dict[str, object]) -> str | None:
    """``<socket_dir>/run-<16 hex digits of the key>.sock``, or None (see :func:`socket_dir`)."""
    import marshal

    where = socket_dir()
    if where is None:
        return None
    path = os.path.join(where, f"run-{_sha256_hex(marshal.dumps(material))[:16]}.sock")
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None


def usable(args: list[str]) -> bool:
    """Whether this command may go to the server at all (before any socket is touched)."""
    if os.environ.get(DISABLE_VAR, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    if any(getattr(sys.flags, f, 0) for f in _PLAIN_FLAGS) or sys.warnoptions or sys._xoptions:
        return False
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:
        return False  # a stream closed at the start: its fd may be another file by now
    from aim_core.run_args import accepts

    return accepts(args)


def run(args: list[str]) -> int | None:
    """Run ``aim ARGS`` in the server's worker; its exit code, or None when the caller
    must run the command itself (see the module docstring)."""
    if not usable(args):
        return None
    # the C modules: `socket` and `signal` import enum, milliseconds on every start
    import _socket

    material = key_material()
    path = socket_path(material)
    if path is None:
        return None
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        # started once this command is done (start_pending): its imports would take
        # the CPU from this command's tool
        _pending.append((path, material))
        return None
    try:
        return _served(conn, args, material, path)
    finally:
        conn.close()


def _served(conn: socket, args: list[str], material: dict[str, object], path: str) -> int | None:
    import _signal  # type: ignore[import-not-found]
    import _socket
    import array
    import marshal

    caught: list[int] = []

    def relay(signum: int, _frame: object) -> None:
        caught.append(signum)
        _send(conn, signum)

    for name in FORWARDED:
        _signal.signal(getattr(_signal, name), relay)
    _signal.signal(_signal.SIGTSTP, lambda _s, _f: _suspend(conn))

    try:
        request = {
            "key": material,
            "argv": [sys.argv[0], *args],
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "umask": _umask(),
            "stdio": [(s.encoding, s.errors) if s else None for s in (sys.stdin, sys.stdout)],
        }
    except OSError:  # no working directory: the command says so itself
        return None
    data = marshal.dumps(request)
    try:
        conn.settimeout(STARTED_TIMEOUT_S)
        conn.sendall(len(data).to_bytes(4, "big") + data)
        first = _read_line(conn)
        if first == "ready" and not caught:
            # from "go" on the command is the server's: wait for it, however long. The
            # streams go with it, not before: a request left unread by a stalled server
            # must not hold this command's pipes open.
            conn.settimeout(None)
            rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))]
            conn.sendmsg([b"go\n"], rights)
            first = _read_line(conn)
    except OSError:  # a closed standard stream, the server went away or hangs
        first = ""
    if first == "started":
        return _wait(conn)
    if caught:  # interrupted before anything ran: do not start the command here
        return 128 + caught[0]
    for name in (*FORWARDED, "SIGTSTP"):
        _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    if first == "stale":  # it stops: this command starts a new one when done
        _pending.append((path, material))
    # "stale", "refused", or no answer in time: the server never runs a request
    # without its "go"
    return None


def _send(conn: socket, signum: int) -> None:
    try:  # noqa: SIM105 - contextlib is one import more on every start
        conn.sendall(f"signal {signum}\n".encode())
    except OSError:
        pass


def _suspend(conn: socket) -> None:
    """Ctrl-Z: stop the worker and this process, go on together on ``SIGCONT``. The
    worker gets ``SIGSTOP`` (``SIGTSTP`` is discarded in its process group, which no
    shell controls); this process stops on ``SIGTSTP`` as a command by itself would (the
    shell says "Stopped", ``$?`` 148), or goes on at once where that is discarded too
    (started outside a shell's job control), and the worker with it."""
    import _signal

    _send(conn, _signal.SIGSTOP)
    _signal.signal(_signal.SIGTSTP, _signal.SIG_DFL)
    try:
        os.kill(os.getpid(), _signal.SIGTSTP)  # returns once the shell continues us
    finally:
        _signal.signal(_signal.SIGTSTP, lambda _s, _f: _suspend(conn))
    _send(conn, _signal.SIGCONT)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _read_line(conn: socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def _wait(conn: socket) -> int:
    """Read until the server reports how the worker ended (signals are relayed
    meanwhile); end the same way."""
    import _signal

    status = ""
    while True:
        try:
            line = _read_line(conn)
        except OSError:
            line = ""
        if not line:
            break
        status = line
    kind, _, value = status.partition(" ")
    if kind == "exit" and value.isdigit():
        return int(value)
    if kind == "killed" and value.isdigit():
        signum = int(value)
        sys.stdout.flush()
        _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum
    sys.stderr.write("Error: aim's run server stopped before the command ended.\n")
    return 70


_pending: list[tuple[str, dict[str, object]]] = []


def start_pending() -> None:
    """Start the server that :func:`run` found missing (at the end of the command)."""
    while _pending:
        start_server(*_pending.pop())


def start_server(path: str, material: dict[str, object]) -> None:
    """Start the server for the next command, detached (its own session, no terminal,
    ``/`` as its directory, only the environment Python needs to start the same way)."""
    import marshal
    import subprocess

    if len(servers(os.path.dirname(path))) >= MAX_SERVERS:
        return
    env = {k: v for k, v in material["env"]}  # type: ignore[attr-defined]
    if os.environ.get(IDLE_VAR):
        env[IDLE_VAR] = os.environ[IDLE_VAR]
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", START, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env=env,
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(marshal.dumps(material))
        proc.stdin.close()
    except OSError:
        pass


def servers(where: str) -> dict[str, int]:
    """``{socket path: server pid}`` of the live servers in the directory ``where``
    (each holds a lock on ``<socket>.lock`` that names its pid); the files of servers
    that are gone are removed."""
    import fcntl

    live: dict[str, int] = {}
    try:
        names = [n for n in os.listdir(where) if n.startswith("run-") and n.endswith(".lock")]
    except OSError:
        return live
    for name in names:
        lock = os.path.join(where, name)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: the server lives
            text = os.read(fd, 32).decode(errors="replace").strip()
            live[lock.removesuffix(".lock")] = int(text) if text.isdigit() else 0
        else:
            for gone in (lock.removesuffix(".lock"), lock):
                try:  # noqa: SIM105 - contextlib is one import more on every start
                    os.unlink(gone)
                except OSError:
                    pass
        finally:
            os.close(fd)
    return live


__all__ = [
    "confinement",
    "key_material",
    "run",
    "servers",
    "socket_dir",
    "socket_path",
    "start_pending",
    "start_server",
    "usable",
]
