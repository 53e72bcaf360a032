"""Nothing a tool started outlives its attempt, and a finished tool is read at once.

The tools are shell scripts on PATH (driven by the generic ``fakeai`` test plugin
through the real CLI, or by the process runner directly). Every process they
leave behind runs ``sleep 600.<marker>``, a command line unique to the test, so
each test can count what is left with ``ps`` -- and does, at its end; the
``marker`` fixture then kills (by pid) anything still there and fails the test.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from aim_core import proctree
from aim_core.process import run_process

from .test_run import records, write_ws

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

VERSION = 'if [ "$1" = --version ]; then echo "jules 1.0"; exit 0; fi\n'


def _leftovers(marker: str) -> list[psutil.Process]:
    """Processes whose command line holds the marker (zombies of ours count too)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status", "ppid"]):
        cmd = " ".join(p.info["cmdline"] or ())
        if f"600.{marker}" not in cmd or "pytest" in cmd:
            continue
        if p.info["status"] != psutil.STATUS_ZOMBIE or p.info["ppid"] == os.getpid():
            found.append(p)
    return found


def survivors(marker: str, settle_s: float = 0.3) -> int:
    """How many of the test's processes are still there (after a moment to settle)."""
    time.sleep(settle_s)
    return len(_leftovers(marker))


@pytest.fixture
def marker():
    """A unique marker for this test's leftover processes; checks ``ps`` at the end."""
    m = str(random.randrange(10**8, 10**9))
    yield m
    left = _leftovers(m)
    for p in left:  # never leave them to the next test
        with contextlib.suppress(psutil.Error):
            p.kill()
    assert not left, f"processes left behind: {[p.info['cmdline'] for p in left]}"


@pytest.fixture
def tool(bin_dir):
    """``tool(body, name="jules")`` writes a shell script tool (``--version`` answered)."""

    def write(body: str, name: str = "jules") -> Path:
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + VERSION + body)
        path.chmod(0o755)
        return path

    return write


def _ws(repo: Path, name: str, timeout_ms: int = 20000) -> str:
    (repo / "src").mkdir(exist_ok=True)
    (repo / "src" / "target.py").write_text("before\n")
    payload = {"prompt": "p", "timeout_ms": timeout_ms, "max_retries": 0}
    return write_ws(repo, name, capability_payload=payload)


def _wait_for(cond, seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --------------------------------------------------------------------------- via aim run

DAEMON = "( setsid sleep 600.{m} </dev/null >/dev/null 2>&1 & )\n"


def test_double_forked_setsid_daemon_dies_on_timeout(repo, aim, fakeai, tool, marker):
    tool(DAEMON.format(m=marker) + "sleep 60\n")
    r = aim("run", _ws(repo, "ws-t", timeout_ms=1000), cwd=repo, env=fakeai)
    assert r.returncode == 1, r.stderr
    assert records(repo)[-1]["failure"] == "timeout"
    assert survivors(marker) == 0


def test_double_forked_setsid_daemon_dies_on_success(repo, aim, fakeai, tool, marker):
    tool(DAEMON.format(m=marker) + "echo after > src/target.py\n")
    r = aim("run", _ws(repo, "ws-s"), cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert (repo / "src" / "target.py").read_text() == "after\n"
    assert survivors(marker) == 0


def test_500_background_children_die_on_success(repo, aim, fakeai, tool, marker):
    tool(
        f"i=0; while [ $i -lt 500 ]; do sleep 600.{marker} >/dev/null 2>&1 & i=$((i+1)); done\n"
        "echo after > src/target.py\n"
    )
    r = aim("run", _ws(repo, "ws-500"), cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert survivors(marker) == 0


def test_setsid_child_holding_stdout_does_not_hold_a_quick_success(repo, aim, fakeai, tool, marker):
    tool(f"setsid sleep 600.{marker} &\necho after > src/target.py\nsleep 0.1\necho done\n")
    start = time.monotonic()
    r = aim("run", _ws(repo, "ws-hold", timeout_ms=30000), cwd=repo, env=fakeai)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert elapsed < 15, elapsed  # it used to end as "did not finish in time" after 40 s
    assert (repo / "src" / "target.py").read_text() == "after\n"  # the work is kept
    assert records(repo)[-1]["result"]["success"] is True
    assert survivors(marker) == 0


SCRUBBED = {
    "same-session": "env -i sleep 600.{m} </dev/null >/dev/null 2>&1 &\n",
    "setsid-double-fork": "( env -i setsid sleep 600.{m} </dev/null >/dev/null 2>&1 & )\n",
    "setsid-child": "env -i setsid sleep 600.{m} </dev/null >/dev/null 2>&1 &\n",
}


@pytest.mark.parametrize("how", sorted(SCRUBBED))
@pytest.mark.parametrize("end", ["success", "timeout"])
def test_a_child_that_scrubs_its_environment(repo, aim, fakeai, tool, marker, how, end):
    """Without the token a child is still found: in the session, as a descendant of the
    leader, or as an orphan handed to aim (a child subreaper while it runs)."""
    rest = "echo after > src/target.py\n" if end == "success" else "sleep 60\n"
    tool(SCRUBBED[how].format(m=marker) + "sleep 0.2\n" + rest)
    ws = _ws(repo, f"ws-env-{how}-{end}", timeout_ms=20000 if end == "success" else 1500)
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == (0 if end == "success" else 1), r.stderr
    assert survivors(marker) == 0


@pytest.mark.parametrize("command", [("status", "--refresh"), ("validate",)])
def test_a_readiness_probe_leaves_nothing_behind(repo, aim, bin_dir, marker, command):
    """``aim status`` and ``aim validate`` run a tool's readiness probe (``claude auth
    status``) through the same runner as ``aim run``, and aim is a subreaper for it
    too: a daemon that left the session and dropped the token is killed with it."""
    probed = repo.parent / "probed"
    claude = bin_dir / "claude"
    claude.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "2.1.0 (Claude Code)"; exit 0; fi\n'
        'if [ "$1" = auth ]; then\n'
        f"  ( env -i setsid sleep 600.{marker} </dev/null >/dev/null 2>&1 & )\n"
        f"  touch {probed}; echo '{{\"loggedIn\": true}}'; exit 0\nfi\n"
    )
    claude.chmod(0o755)
    r = aim(*command, cwd=repo, env={"AIM_LOAD_PLUGINS": "claude"})
    assert r.returncode in (0, 2), r.stderr
    assert probed.exists(), "the probe never ran"
    assert survivors(marker) == 0


def _start_and_kill_aim(repo: Path, ws: str, fakeai: dict, pidfile: Path, wait: float) -> None:
    """``aim run`` in the background, ``kill -9`` ``wait`` s after its tool wrote ``pidfile``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aim_core", "run", ws],
        cwd=repo,
        env={**os.environ, **fakeai},
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(pidfile.exists)
        time.sleep(wait)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("then", ["recover", "status", "run"])
def test_daemon_dies_after_kill_9_of_aim(repo, aim, fakeai, tool, marker, tmp_path, then):
    pidfile = tmp_path / "started"
    tool(DAEMON.format(m=marker) + f"echo during > src/target.py\ntouch {pidfile}\nsleep 60\n")
    ws = _ws(repo, "ws-k")
    following = write_ws(repo, "ws-next")  # written before: recovery would revert it after
    _start_and_kill_aim(repo, ws, fakeai, pidfile, 0.3)
    assert survivors(marker, 0) == 1  # aim is gone; its tool's daemon is not
    if then == "recover":
        r = aim("recover", cwd=repo, env=fakeai)
    elif then == "status":
        r = aim("status", cwd=repo, env=fakeai)
    else:
        tool("echo after > src/target.py\n")
        r = aim("run", following, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert survivors(marker) == 0
    if then != "run":
        assert (repo / "src" / "target.py").read_text() == "before\n"


@pytest.mark.parametrize("how", ["setsid-double-fork", "setsid-child"])
def test_scrubbed_daemon_dies_after_kill_9_of_aim(repo, aim, fakeai, tool, marker, tmp_path, how):
    """Neither token nor session: aim noted it in the tree's journal while it ran (every
    0.5 s), and recovery reads the journal."""
    pidfile = tmp_path / "started"
    tool(SCRUBBED[how].format(m=marker) + f"touch {pidfile}\nsleep 60\n")
    _start_and_kill_aim(repo, _ws(repo, "ws-scrub"), fakeai, pidfile, 1.5)
    assert survivors(marker, 0) == 1
    r = aim("recover", cwd=repo, env=fakeai)
    assert r.returncode == 0 and "stopped the jules process" in r.stdout, r.stdout + r.stderr
    assert "Recovered run" not in r.stderr  # said once, as the result
    assert survivors(marker) == 0
    assert not list((Path(os.environ["AIM_CACHE_DIR"]) / "trees").glob("*.json"))


def test_sigint_kills_the_daemon(repo, fakeai, tool, marker, tmp_path):
    pidfile = tmp_path / "started"
    tool(DAEMON.format(m=marker) + f"echo during > src/target.py\ntouch {pidfile}\nsleep 60\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aim_core", "run", _ws(repo, "ws-int")],
        cwd=repo,
        env={**os.environ, **fakeai},
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(pidfile.exists)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert (repo / "src" / "target.py").read_text() == "before\n"
    assert survivors(marker) == 0


# --------------------------------------------------------------------------- the runner


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_runner_kills_the_daemon_in_process(tmp_path, marker):
    """In a process that is no subreaper (a library user), the token finds the daemon."""
    r = run_process([_script(tmp_path, "t", DAEMON.format(m=marker))], timeout_s=20)
    assert r.exit_code == 0
    assert survivors(marker) == 0


def test_output_before_exit_is_kept_and_read_at_once(tmp_path, marker):
    body = f"setsid sleep 600.{marker} &\nprintf 'line %s\\n' 1 2 3\necho err >&2\n"
    start = time.monotonic()
    r = run_process([_script(tmp_path, "t", body)], timeout_s=30)
    assert time.monotonic() - start < 10  # was: until the timeout
    assert r.exit_code == 0 and not r.timed_out
    assert r.stdout == "line 1\nline 2\nline 3\n" and r.stderr == "err\n"
    assert survivors(marker) == 0


def test_ctrl_c_kills_the_tree(tmp_path, marker):
    body = DAEMON.format(m=marker) + "sleep 60\n"
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_process([_script(tmp_path, "t", body)], timeout_s=30)
    finally:
        timer.cancel()
    assert survivors(marker) == 0


def test_a_finished_tool_never_kills_another_tools_daemon(tmp_path, marker):
    """Two tools at once in one process: the quick one's end kills only its own tree."""
    other = str(random.randrange(10**8, 10**9))
    slow = _script(
        tmp_path,
        "slow",
        f"( setsid sleep 600.{other} </dev/null >/dev/null 2>&1 & )\nsleep 2\n"
        f"pgrep -f 600.{other} >/dev/null && echo alive || echo killed\n",
    )
    quick = _script(tmp_path, "quick", DAEMON.format(m=marker) + "sleep 0.5\n")
    results = {}
    t = threading.Thread(target=lambda: results.update(slow=run_process([slow], timeout_s=30)))
    t.start()
    time.sleep(0.3)
    results["quick"] = run_process([quick], timeout_s=30)
    t.join()
    assert results["quick"].exit_code == 0
    assert results["slow"].stdout.strip() == "alive"  # its daemon outlived the quick tool
    assert survivors(marker) == 0 and survivors(other, 0) == 0


STRESS = """
import random, sys, threading
from aim_core.process import enable_subreaper, run_process
assert enable_subreaper()
marker, rounds = sys.argv[1], int(sys.argv[2])
kinds = [
    ("exit", "exit 3", 3),
    ("daemon", "( setsid sleep 600.M </dev/null >/dev/null 2>&1 & ); exit 4", 4),
    ("scrubbed", "( env -i setsid sleep 600.M </dev/null >/dev/null 2>&1 & ); exit 5", 5),
    ("children", "for i in 1 2 3 4 5; do sleep 600.M & done; exit 6", 6),
    ("quick", "exit 0", 0),
]
bad = []
def worker(seed):
    rng = random.Random(seed)
    for _ in range(rounds):
        name, body, code = rng.choice(kinds)
        r = run_process(["sh", "-c", body.replace("M", marker)], timeout_s=30)
        if r.exit_code != code:
            bad.append((name, r.exit_code))
threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
for t in threads: t.start()
for t in threads: t.join()
print("bad", bad)
"""


def test_tools_in_parallel_keep_their_exit_codes_and_leave_nothing(marker):
    """Six threads start tools at random in one subreaper process (as ``aim run --jobs``
    does): no tool's end kills or reaps another's leader, nothing is left."""
    r = subprocess.run(
        [sys.executable, "-c", STRESS, marker, "30"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bad []", r.stdout
    assert survivors(marker) == 0


SAME_TICK = """
import sys, threading
from aim_core.process import enable_subreaper, run_process
assert enable_subreaper()
marker, rounds = sys.argv[1], int(sys.argv[2])
done = threading.Event()
def quick():
    while not done.is_set():
        run_process(["sh", "-c", "exit 0"], timeout_s=30)
others = [threading.Thread(target=quick) for _ in range(2)]
for t in others: t.start()
for _ in range(rounds):
    body = "( env -i setsid sleep 600.M </dev/null >/dev/null 2>&1 & ); exit 5"
    run_process(["sh", "-c", body.replace("M", marker)], timeout_s=30)
done.set()
for t in others: t.join()
"""


def test_an_orphan_is_killed_though_a_younger_tool_shares_its_start_tick(marker):
    """A tool's orphan is not claimed by a tool aim started after the orphan was aim's
    child (it is that tool's elder), however close in time: the orphan's own tool must
    not leave it to that one. Quick tools start alongside, so that one often lands in
    the orphan's 10 ms ``/proc`` start tick (1 in 6 runs of the stress test left a
    ``sleep`` behind)."""
    r = subprocess.run(
        [sys.executable, "-c", SAME_TICK, marker, "120"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert survivors(marker) == 0


def _row(pid: int, start: float) -> proctree.Proc:
    # a session no tool leads, as an ``env -i setsid`` daemon's
    return proctree.Proc(pid=pid, ppid=os.getpid(), sid=pid, start=start, zombie=False)


def test_who_claims_an_orphan_started_in_two_tools_start_tick():
    """The decision under the stress tests, on rows whose start ticks collide: a tool
    leaves an orphan to another live tool only when that one will claim it later."""
    orphan = _row(999_001, 100.0)
    own = proctree.ToolTree(pid=999_002, token=None, since=100.0)
    elder = frozenset({(orphan.pid, orphan.start)})
    other = proctree.ToolTree(pid=999_003, token=None, since=100.0)
    younger = proctree.ToolTree(pid=999_004, token=None, since=100.0, elders=elder)
    later = proctree.ToolTree(pid=999_005, token=None, since=100.5)
    assert proctree._orphan_of(orphan, own, [other], frozenset()) is False  # other's
    assert proctree._orphan_of(orphan, other, [own], frozenset()) is False  # and back
    # the one that sweeps last, seeing the other ending, claims it
    assert proctree._orphan_of(orphan, own, [other], frozenset({other.pid}))
    # a tool started after the orphan was aim's child never claims it, so it is not
    # left to that one (the CI run's leftover sleep)
    assert proctree._orphan_of(orphan, own, [younger], frozenset())
    assert proctree._orphan_of(orphan, younger, [], frozenset()) is False
    assert proctree._orphan_of(orphan, own, [later], frozenset())


ELDERS = """
import subprocess, sys
from aim_core.process import enable_subreaper, run_process
assert enable_subreaper()
marker, rounds = sys.argv[1], int(sys.argv[2])
killed = 0
for _ in range(rounds):
    # aim's own child in a session of its own, started just before a quick tool: /proc
    # often gives both the same start tick
    own = subprocess.Popen(["sleep", "600." + marker], start_new_session=True)
    run_process(["sh", "-c", "exit 0"], timeout_s=30)
    killed += own.poll() is not None
    own.kill()
    own.wait()
print("killed", killed)
"""


EXIT_CODES = """
import os, subprocess, sys, time
from aim_core import proctree
from aim_core.process import enable_subreaper, run_process
assert enable_subreaper()
wrong = []
for ends, tool in [("exit 7", "exit 0"), ("sleep 0.1; exit 7", "sleep 0.3"), ("exit 7", "( env -i setsid sleep 0.05 & ); exit 0")]:
    for _ in range(int(sys.argv[1])):
        own = subprocess.Popen(["sh", "-c", ends], start_new_session=True)
        run_process(["sh", "-c", tool], timeout_s=30)
        code = own.wait()
        if code != 7:
            wrong.append((ends, tool, code))
time.sleep(0.2)  # the last tool's orphan ended by itself: reaped at the next sweep
run_process(["true"], timeout_s=30)
zombies = [p for p in proctree.process_table().values() if p.ppid == os.getpid() and p.zombie]
print("wrong", wrong, "zombies", len(zombies))
"""


def test_a_tools_end_never_takes_the_exit_status_of_aims_own_child():
    """A child aim's code started in a session of its own before a tool, which ended
    before or while the tool ran, keeps its exit status for its caller: the tool's
    sweep reaps only the tool's own orphans (it reaped every zombie child in another
    session: 30 of 30 such children read exit 0), and those it does reap."""
    r = subprocess.run(
        [sys.executable, "-c", EXIT_CODES, "10"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "wrong [] zombies 0", r.stdout


def test_a_tool_never_takes_aims_older_child_for_its_orphan(marker):
    """A child aim started in a session of its own right before a tool was its child
    already when the tool started: the tool's end never kills it, however close in time
    the two started."""
    r = subprocess.run(
        [sys.executable, "-c", ELDERS, marker, "40"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "killed 0", r.stdout
    assert survivors(marker) == 0
