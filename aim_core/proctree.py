"""Finding and killing everything a tool started, even what left its process tree.

A tool's leader runs in a session of its own and carries a random token in its
environment (``AIM_ATTEMPT=<token>``), which every process it starts inherits
(Jenkins' ProcessTreeKiller marks builds the same way). A :class:`ToolTree`
is one leader and everything it started; its members are the processes of this
user, started no earlier than the leader, that

- are in the leader's session (whatever they did to their environment), or
- carry the token (whatever they did to their session: ``setsid``, double forks), or
- descend from a member (a child of a member, whatever it did to both), or
- were handed to aim as orphans (aim is a child subreaper, see
  :func:`enable_subreaper`) from a session that is neither aim's nor another live
  tool's, they were not aim's children already when the leader started (a process
  aim's own code started just before the tool looks as old as the tool: ``/proc``
  counts start times in 10 ms ticks), and no other live tool that will still look for
  orphans (its last sweep not begun, they were not its elders) started before them.

:func:`kill_tree` signals them all (SIGTERM, a grace period, then SIGKILL until
none is left) and reaps the orphans that were handed to aim. It needs nothing
from a living aim but the token, the leader's pid and its start time, which is
why the run table records them and recovery after ``kill -9`` finds the same
processes. What escapes it is in docs/RELIABILITY.md ("Processes").

On Linux the process table is read from ``/proc`` directly (about 20 µs per
process); elsewhere through psutil, which is slower but gives the same facts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from aim_core.values import Value

TOKEN_VAR = "AIM_ATTEMPT"  # the environment variable that marks a tool's processes
KILL_GRACE_S = 0.3  # between SIGTERM and SIGKILL
KILL_ROUNDS = 50  # SIGKILL rounds against a tree that keeps forking
POLL_S = 0.01
WATCH_S = 0.5  # how often a running tree is looked at for members only aim knows
IS_LINUX = sys.platform.startswith("linux")
KTHREADD = 2  # the parent of Linux's kernel threads: never a tool's (their environ is empty)

_live: dict[int, ToolTree] = {}  # leader pid -> tree, for the trees this process runs
_ending: set[int] = set()  # leaders of live trees whose last sweep has begun
_live_lock = threading.Lock()
# Held while a tool is started and registered, and while the table is read to find
# members or reap orphans: a leader that exists but is not registered yet must never
# be taken for an orphan (killed, or reaped before its Popen waits for it).
spawning = threading.RLock()
_subreaper = False


class Proc(Value):
    """One row of the process table: ``start`` in seconds since the epoch."""

    __slots__ = ("pid", "ppid", "sid", "start", "zombie")
    pid: int
    ppid: int
    sid: int
    start: float
    zombie: bool

    def __init__(self, *, pid: int, ppid: int, sid: int, start: float, zombie: bool) -> None:
        self._init(pid=pid, ppid=ppid, sid=sid, start=start, zombie=zombie)


class ToolTree(Value):
    """A tool's leader (its pid is also its session id), its token and when it started
    (seconds since the epoch, as :class:`Proc` counts; None: unknown). ``noted`` holds
    ``(pid, start)`` of the members only aim knew (see :func:`watch`); ``elders`` the
    ``(pid, start)`` of aim's children when the leader started (never its orphans).
    Neither takes part in equality."""

    __slots__ = ("elders", "noted", "pid", "since", "token")
    pid: int
    token: str | None
    since: float | None
    noted: set[tuple[int, float]]
    elders: frozenset[tuple[int, float]]

    def __init__(
        self,
        *,
        pid: int,
        token: str | None,
        since: float | None,
        noted: set[tuple[int, float]] | None = None,
        elders: frozenset[tuple[int, float]] = frozenset(),
    ) -> None:
        self._init(
            pid=pid,
            token=token,
            since=since,
            noted=set() if noted is None else noted,
            elders=elders,
        )

    def _key(self) -> tuple[object, ...]:
        return (self.pid, self.token, self.since)


def new_token() -> str:
    """A fresh random token for :data:`TOKEN_VAR` (32 hex digits)."""
    return os.urandom(16).hex()  # secrets.token_hex, without importing hmac and random


# --------------------------------------------------------------------------- the table


def _boot_time() -> float:
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    return 0.0


_BOOT = _boot_time() if IS_LINUX else 0.0
_HZ = os.sysconf("SC_CLK_TCK") if IS_LINUX else 100


def read_proc(pid: int) -> Proc | None:
    """One process's row, or None when it is gone."""
    if not IS_LINUX:
        return _psutil_proc(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return Proc(
        pid=pid,
        ppid=int(fields[1]),
        sid=int(fields[3]),
        start=_BOOT + int(fields[19]) / _HZ,
        zombie=fields[0] in (b"Z", b"X"),
    )


def process_table() -> dict[int, Proc]:
    """Every process this user can see, by pid."""
    if not IS_LINUX:
        return _psutil_table()
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            proc = read_proc(int(name))
            if proc is not None:
                table[proc.pid] = proc
    return table


def carries(pid: int, token: str) -> bool:
    """Whether the environment ``pid`` was started with holds ``AIM_ATTEMPT=token``.
    False when it cannot be read (another user's process, a zombie, gone)."""
    needle = f"{TOKEN_VAR}={token}".encode()
    if IS_LINUX:
        for _ in range(3):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    data = f.read()
            except OSError:
                return False
            if data:
                return needle in data
            # empty: scrubbed (env -i), or caught inside an exec, between the new
            # program's memory and its environment (a daemon that just left the
            # session would be missed): read again
            time.sleep(0.0002)
        return False
    try:  # pragma: no cover - not Linux
        import psutil

        return psutil.Process(pid).environ().get(TOKEN_VAR) == token
    except Exception:  # pragma: no cover
        return False


def _psutil_proc(pid: int) -> Proc | None:  # pragma: no cover - not Linux
    import psutil

    try:
        p = psutil.Process(pid)
        with p.oneshot():
            return Proc(
                pid=pid,
                ppid=p.ppid(),
                sid=os.getsid(pid),
                start=p.create_time(),
                zombie=p.status() == psutil.STATUS_ZOMBIE,
            )
    except Exception:
        return None


def _psutil_table() -> dict[int, Proc]:  # pragma: no cover - not Linux
    import psutil

    rows = (_psutil_proc(pid) for pid in psutil.pids())
    return {p.pid: p for p in rows if p is not None}


# --------------------------------------------------------------------------- live trees


def register(
    pid: int, token: str | None, elders: frozenset[tuple[int, float]] = frozenset()
) -> ToolTree:
    """Note a leader this process just started (before anything can have escaped it).

    :param elders: :func:`my_children` read *before* the leader was started: read after,
        they could hold an orphan the tool already handed to aim.
    """
    leader = read_proc(pid)
    tree = ToolTree(pid=pid, token=token, since=leader.start if leader else None, elders=elders)
    with _live_lock:
        _live[pid] = tree
    return tree


def my_children() -> frozenset[tuple[int, float]]:
    """``(pid, start)`` of this process's children, when aim is a subreaper (else empty:
    no orphan is ever taken then). From each thread's ``/proc/<pid>/task/<tid>/children``
    where the kernel has them (tens of µs), else from the whole table."""
    if not _subreaper:
        return frozenset()
    me = os.getpid()
    pids: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{me}/task"):
            with open(f"/proc/{me}/task/{tid}/children", "rb") as f:
                pids.update(int(p) for p in f.read().split())
    except FileNotFoundError:
        pids = {p.pid for p in process_table().values() if p.ppid == me}
    except OSError:  # a thread that ended while listed: its children are the others'
        pass
    found = (read_proc(p) for p in pids)
    return frozenset((p.pid, p.start) for p in found if p is not None)


def ending(tree: ToolTree) -> None:
    """Note that the tree's last sweep begins: from now on it claims no orphan, so an
    orphan two tools could have started is killed by whichever of them ends last."""
    with _live_lock:
        _ending.add(tree.pid)


def unregister(tree: ToolTree) -> None:
    """Forget a leader once it was waited for and its tree killed."""
    with _live_lock:
        if _live.get(tree.pid) is tree:
            del _live[tree.pid]
            _ending.discard(tree.pid)


def live_tree(pid: int) -> ToolTree | None:
    """The tree of a leader this process runs, or None."""
    with _live_lock:
        return _live.get(pid)


def token_of(pid: int) -> str | None:
    """The token of a leader this process runs (for the run table), or None."""
    tree = live_tree(pid)
    return tree.token if tree is not None else None


def is_subreaper() -> bool:
    """Whether :func:`enable_subreaper` took effect in this process."""
    return _subreaper


def enable_subreaper() -> bool:
    """Make orphaned descendants of our tools become our children (Linux only).

    A tool that double-forks a daemon would otherwise hand it to init; as our
    child it is found even when it dropped the token and left the session.
    Only the command line calls this: a process that starts sessions of its own
    (a test runner, an application embedding aim) would have its own children
    taken for a tool's orphans. Returns whether it took effect.
    """
    global _subreaper
    if not IS_LINUX:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        _subreaper = False
    return _subreaper


# --------------------------------------------------------------------------- members


def look(tree: ToolTree) -> tuple[dict[int, Proc], set[int]]:
    """The process table and the pids of every living process of ``tree`` in it (see
    the module docstring), read while no tool is being started."""
    with spawning:
        table = process_table()
        return table, members(tree, table)


def members(tree: ToolTree, table: Mapping[int, Proc]) -> set[int]:
    """The pids of every living process of ``tree`` in ``table`` (hold :data:`spawning`
    from reading the table until the pids are used, or call :func:`look`)."""
    me = os.getpid()
    others, ending = _others_now(tree)
    leaders = {t.pid for t in others}
    found = set()
    for p in table.values():
        if p.pid == me or p.pid in leaders or not _started_in_time(p, tree):
            continue
        if _belongs(p, tree, others, ending, me):
            found.add(p.pid)
    for pid, start in list(tree.noted):
        if pid in table and abs(table[pid].start - start) < 0.02:
            found.add(pid)
    found |= _offspring(table, found, me)
    return {pid for pid in found if not table[pid].zombie}


def _others_now(tree: ToolTree) -> tuple[list[ToolTree], frozenset[int]]:
    """The other live trees and the leaders among them whose last sweep began, read in
    one moment: a tree that ends after it is still 'ending', never one that will sweep."""
    with _live_lock:
        return [t for t in _live.values() if t.pid != tree.pid], frozenset(_ending)


def _belongs(
    p: Proc, tree: ToolTree, others: Sequence[ToolTree], ending: frozenset[int], me: int
) -> bool:
    """The leader, its session, its token, or (aim a subreaper) one of its orphans."""
    if p.pid == tree.pid or p.sid == tree.pid:
        return True
    if tree.token and not p.zombie and p.ppid != KTHREADD and carries(p.pid, tree.token):
        return True
    return _subreaper and p.ppid == me and _orphan_of(p, tree, others, ending)


def _started_in_time(p: Proc, tree: ToolTree) -> bool:
    # 0.01 s: /proc counts in clock ticks; a child may start in the leader's tick
    return tree.since is None or p.start >= tree.since - 0.01


def _orphan_of(p: Proc, tree: ToolTree, others: Iterable[ToolTree], ending: frozenset[int]) -> bool:
    """Whether ``p``, a child of ours, is an orphan of ``tree``'s tool: not of aim's own
    session, not aim's child before the tool started, not another live tool's, and no
    other live tool that will still look for orphans could have started it.

    ``others`` and ``ending`` (the leaders among them whose last sweep began) are read
    together: a tree whose sweep ended after they were read must still count as
    ending, or nobody would claim what was left to it."""
    if p.sid == os.getsid(0):
        return False  # aim's own helpers (git) run in aim's session
    if (p.pid, p.start) in tree.elders:
        return False  # aim's child before the tool started
    for other in others:
        if p.sid == other.pid or (other.token and carries(p.pid, other.token)):
            return False
        if other.pid in ending or (p.pid, p.start) in other.elders:
            continue  # it will not claim this one: its last sweep began, or p is older
        if other.since is None or other.since <= p.start:
            return False  # it may be theirs: the last of the candidates kills it
    return True


def _offspring(table: Mapping[int, Proc], roots: set[int], me: int) -> set[int]:
    """Every process whose chain of parents reaches one of ``roots`` (not through us)."""
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found and child != me:
                found.add(child)
                todo.append(child)
    return found


# --------------------------------------------------------------------------- the journal


def watch(tree: ToolTree) -> None:
    """Note the members of a running tree that only this process could find again: no
    token, another session (``env -i setsid`` daemons handed to aim as orphans).
    They are written to ``<cache>/trees/<token>.json`` so that recovery after
    ``kill -9`` of aim finds them too. Called every :data:`WATCH_S` while a tool
    runs; it writes nothing as long as there is nothing new to note."""
    if not tree.token or os.name != "posix":
        return
    table, pids = look(tree)
    found = {
        (pid, table[pid].start)
        for pid in pids
        if table[pid].sid != tree.pid and not carries(pid, tree.token)
    }
    if found - tree.noted:
        tree.noted.update(found)
        _write_journal(tree)


def _journal(token: str) -> Path:
    from aim_core.paths import cache_dir

    return cache_dir() / "trees" / f"{token}.json"


def _write_journal(tree: ToolTree) -> None:
    assert tree.token is not None
    path = _journal(tree.token)
    data = {"leader": tree.pid, "since": tree.since, "noted": sorted(tree.noted)}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)


def _read_journal(token: str) -> set[tuple[int, float]]:
    try:
        data = json.loads(_journal(token).read_text(encoding="utf-8"))
        return {(int(pid), float(start)) for pid, start in data.get("noted", ())}
    except (OSError, ValueError, TypeError):
        return set()


def forget_journal(tree: ToolTree) -> None:
    """Remove the tree's journal (its members are gone)."""
    if tree.token:
        with contextlib.suppress(OSError):
            _journal(tree.token).unlink()


# --------------------------------------------------------------------------- killing


def kill_tree(
    pid: int,
    *,
    token: str | None = None,
    since: float | None = None,
    extra_pids: Iterable[int] = (),
    grace_s: float = KILL_GRACE_S,
) -> int:
    """Terminate, then kill, every process of the tool whose leader is ``pid``.

    :param token: the tree's token; default the one this process gave the leader.
    :param since: when the leader started (seconds since the epoch); processes
        started before it are never touched. Default: the leader's own record.
    :param extra_pids: more processes to kill with it.
    :param grace_s: seconds between SIGTERM and SIGKILL.
    :returns: how many processes were signalled (0: nothing was left).
    """
    tree = _tree_for(pid, token, since)
    if os.name != "posix":  # pragma: no cover - Windows
        return _kill_windows(pid, extra_pids)
    table, targets = look(tree)
    targets |= {p for p in extra_pids if p in table}
    if not targets:
        _reap(tree, set())
        if live_tree(pid) is None:
            forget_journal(tree)
        return 0
    signalled = set(targets)
    _signal(targets, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while targets and time.monotonic() < deadline:
        time.sleep(POLL_S)
        targets = look(tree)[1]
        signalled |= targets
    for _ in range(KILL_ROUNDS):
        if not targets:
            break
        _signal(targets, signal.SIGKILL)
        time.sleep(POLL_S)
        targets = look(tree)[1]
        signalled |= targets
    _reap(tree, signalled)
    if live_tree(pid) is None:
        forget_journal(tree)  # recovery: what the journal named is gone
    return len(signalled)


def _tree_for(pid: int, token: str | None, since: float | None) -> ToolTree:
    """The live tree of ``pid``, or one rebuilt from what a run table recorded (with
    the members its journal noted)."""
    known = live_tree(pid)
    if known is not None and token in (None, known.token) and since in (None, known.since):
        return known
    tree = ToolTree(
        pid=pid,
        token=token if token is not None else (known.token if known else None),
        since=since if since is not None else (known.since if known else None),
    )
    if tree.token:
        tree.noted.update(_read_journal(tree.token))
    return tree


def _signal(pids: Iterable[int], sig: int) -> None:
    for p in pids:
        with contextlib.suppress(OSError):
            os.kill(p, sig)


def _reap(tree: ToolTree, signalled: set[int]) -> None:
    """Collect the exit status of the tree's processes that were handed to aim as
    orphans, so that they leave no zombies behind: those it signalled, and zombies of
    the tree by the orphan rule. Never a leader (its Popen waits for it) nor a child of
    aim's own code that is not the tree's (its exit status is its caller's)."""
    if not _subreaper:
        return
    me, my_sid = os.getpid(), os.getsid(0)
    with spawning:
        others, ending = _others_now(tree)
        leaders = {t.pid for t in others} | {tree.pid}
        for p in process_table().values():
            if not p.zombie or p.ppid != me or p.pid in leaders or p.sid == my_sid:
                continue
            if p.pid in signalled or (
                _started_in_time(p, tree) and _belongs(p, tree, others, ending, me)
            ):
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(p.pid, os.WNOHANG)


def _kill_windows(pid: int, extra_pids: Iterable[int]) -> int:  # pragma: no cover
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except Exception:
        procs = []
    for p in [*procs, *(psutil.Process(x) for x in extra_pids if psutil.pid_exists(x))]:
        with contextlib.suppress(Exception):
            p.kill()
    return len(procs)
