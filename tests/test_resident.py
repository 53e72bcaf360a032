"""aim's run server (aim_core/resident.py): an ``aim run`` it serves ends exactly as
one that runs by itself -- output, exit code, files, records, signals, ``kill -9`` --
and it is only used when it is this installation's, this user's and wanted.

Every test drives the real ``aim`` console script (the server is used only from it)
with a shell-script tool, and compares with the same command run by itself
(``python -m aim_core``, which never uses the server)."""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from aim_core.resident_client import servers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

AIM = Path(sys.executable).with_name("aim")
AIM_CORE = Path(__file__).resolve().parents[1] / "aim_core"


def wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


class Served:
    """The scripted repository, run through the ``aim`` console script with a run-server
    directory of this test's own."""

    def __init__(self, project, where: Path, mark: Path):
        self.project = project
        self.root = project.root
        self.where = where
        self.mark = mark  # where the tool writes its grandparent's pid
        self.env = {"AIM_RESIDENT_DIR": str(where), "AIM_RESIDENT_IDLE_S": "120"}

    def environ(self, **extra: str) -> dict[str, str]:
        return {**self.project.environ(), **self.env, **extra}

    def popen(self, *args: str, env: dict | None = None, **kw):
        return subprocess.Popen(
            [str(AIM), *args],
            cwd=kw.pop("cwd", self.root),
            env=env or self.environ(),
            stdin=kw.pop("stdin", subprocess.DEVNULL),
            stdout=kw.pop("stdout", subprocess.PIPE),
            stderr=kw.pop("stderr", subprocess.PIPE),
            text=True,
            **kw,
        )

    def run(self, *args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
        proc = self.popen(*args, env=env, **kw)
        out, err = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def server(self) -> int:
        """The pid of the live server (waits for the one the first command started)."""
        wait_for(lambda: len(servers(str(self.where))) == 1 and self._accepts())
        return next(iter(servers(str(self.where)).values()))

    def _accepts(self) -> bool:
        path = next(iter(servers(str(self.where))))
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(path)
            except OSError:
                return False
        return True

    def started(self, ws: str) -> int:
        """Run ``ws`` once (by itself; it starts the server) and return the server's pid."""
        first = self.run("run", ws)
        assert first.returncode == 0, first.stderr
        return self.server()

    def served_by(self) -> int:
        """The pid of the process that started the aim process that ran the tool."""
        return int(self.mark.read_text().split()[0])

    def stop(self) -> None:
        """SIGTERM every server, again for one that binds meanwhile: a second server
        started while the first one lived takes the lock when the first one is gone."""

        def none_left() -> bool:
            live = servers(str(self.where))
            for pid in live.values():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            return not live

        wait_for(none_left, timeout=60)


@pytest.fixture
def served(scripted_repo, tmp_path):
    where = Path(tempfile.mkdtemp(prefix="aimr-", dir="/tmp"))  # a socket path is short
    os.chmod(where, 0o700)
    s = Served(scripted_repo, where, tmp_path / "served-by")
    try:
        yield s
    finally:
        s.stop()
        for p in where.iterdir():
            p.unlink()
        where.rmdir()


def mid_run(served: Served, sleep: int):
    """A served ``aim run`` whose tool has written ``a.py`` and now sleeps ``sleep`` s:
    ``(server pid, the client, a.py, its text before)``."""
    tool(served, "echo 'a = 2' > a.py")
    server = served.started(workstream(served))
    tool(served, f"echo 'a = 3' > a.py\nsleep {sleep}")
    a = served.root / "a.py"
    before = a.read_text()
    proc = served.popen("run", workstream(served))
    wait_for(lambda: a.read_text() == "a = 3\n")
    return server, proc, a, before


def tool(served: Served, body: str) -> None:
    """The script tool: note which process started aim (``/proc/$PPID/stat``), then ``body``."""
    served.project.tool(f"awk '{{print $4}}' /proc/$PPID/stat > {served.mark}\n{body}")


def workstream(served: Served, scope=("a.py",), **extra) -> str:
    path = served.project.workstream(
        capability="code_generation",
        files_scope=list(scope),
        tasks=["do it"],
        capability_payload={"max_retries": 0, "timeout_ms": 20000},
        **extra,
    )
    return str(path.relative_to(served.root))


def results(project) -> list[tuple]:
    return [
        (r["tool_id"], r["result"]["success"], r.get("failure"))
        for r in project.audit_records()
        if r["tool_id"] == "scripttool"
    ]


def without_times(text: str) -> str:
    import re

    return re.sub(r"\d+\.\d+s\]", "_s]", text)


# --------------------------------------------------------------------------- served as run


def test_the_second_run_is_served_and_ends_as_one_run_by_itself(served):
    tool(served, "echo 'a = 2' > a.py")
    ws = workstream(served)
    server = served.started(ws)
    assert served.served_by() != server  # the first ran by itself

    by_server = served.run("run", ws)
    assert served.served_by() == server
    alone = served.project.run("run", ws)

    assert by_server.returncode == alone.exit_code == 0, by_server.stderr
    assert without_times(by_server.stdout) == without_times(alone.stdout)
    assert by_server.stderr == alone.stderr
    assert (served.root / "a.py").read_text() == "a = 2\n"
    assert results(served.project) == [("scripttool", True, None)] * 3


@pytest.mark.parametrize(
    ("body", "scope", "code"),
    [
        ("echo 'a = 2' > a.py; exit 1", ("a.py",), 1),  # the tool fails
        ("echo 'b = 2' > b.py", ("a.py",), 1),  # out of scope: reverted and refused
        ("true", ("../outside.py",), 2),  # a bad workstream
    ],
    ids=["tool-fails", "out-of-scope", "bad-workstream"],
)
def test_exit_code_output_and_files_are_those_of_a_run_by_itself(served, body, scope, code):
    tool(served, "echo 'a = 2' > a.py")
    served.started(workstream(served))
    tool(served, body)
    ws = workstream(served, scope)
    before = {p: (served.root / p).read_text() for p in ("a.py", "b.py")}

    by_server = served.run("run", ws)
    after_served = {p: (served.root / p).read_text() for p in before}
    alone = served.project.run("run", ws)

    assert by_server.returncode == alone.exit_code == code, by_server.stderr
    assert without_times(by_server.stdout) == without_times(alone.stdout)
    assert by_server.stderr == alone.stderr
    assert after_served == before == {p: (served.root / p).read_text() for p in before}


def test_the_clients_environment_directory_umask_and_json_output(served):
    tool(served, "echo 'a = 2' > a.py")
    server = served.started(workstream(served))
    seen = served.mark.with_name("home")
    tool(served, f"echo \"$HOME\" > {seen}; echo 'a = 3' > a.py; touch new.py")
    ws = workstream(served, ("a.py", "new.py"))
    home = served.root.parent / "another-home"
    home.mkdir()

    r = served.run(
        "run",
        "--json",
        f"../{ws}",
        cwd=served.root / "src",
        env=served.environ(HOME=str(home)),
        preexec_fn=lambda: os.umask(0o077),
    )
    assert r.returncode == 0, r.stderr
    assert served.served_by() == server
    assert seen.read_text().strip() == str(home)
    assert '"success": true' in r.stdout.splitlines()[-1]
    assert (served.root / "new.py").stat().st_mode & 0o077 == 0


def test_ctrl_c_is_relayed_and_the_attempt_undone(served):
    server, proc, a, before = mid_run(served, sleep=30)
    assert served.served_by() == server
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert a.read_text() == before
    assert results(served.project)[-1] == ("scripttool", False, "interrupted")
    assert psutil.Process(server).children() == []  # the worker is gone


@pytest.mark.parametrize("how", ["served", "by-itself"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_sigterm_and_sighup_stop_the_run_and_undo_the_attempt(served, signum, how):
    """SIGTERM, and SIGHUP (the terminal closed), stop aim run as Ctrl-C does: the
    attempt undone and recorded, exit 130 -- relayed when served."""
    tool(served, "echo 'a = 2' > a.py")
    server = served.started(workstream(served))
    tool(served, "echo 'a = 3' > a.py\nsleep 30")
    a = served.root / "a.py"
    before = a.read_text()
    if how == "served":
        proc = served.popen("run", workstream(served))
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aim_core", "run", workstream(served)],
            cwd=served.root,
            env=served.environ(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    wait_for(lambda: a.read_text() == "a = 3\n")
    assert (served.served_by() == server) == (how == "served")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert a.read_text() == before
    assert results(served.project)[-1] == ("scripttool", False, "interrupted")


def test_ctrl_z_stops_the_command_and_fg_continues_it(served):
    """As a shell's job (a process group of its own, under a parent in another): the
    client stops on SIGTSTP as a command by itself does (so the shell reports it as
    Ctrl-Z, ``$?`` 148), its worker with it."""
    tool(served, "echo 'a = 2' > a.py")
    server = served.started(workstream(served))
    tool(served, "echo 'a = 3' > a.py\nsleep 2")
    a = served.root / "a.py"
    proc = served.popen("run", workstream(served), process_group=0)
    wait_for(lambda: a.read_text() == "a = 3\n")
    (worker,) = psutil.Process(server).children()
    client = psutil.Process(proc.pid)
    proc.send_signal(signal.SIGTSTP)
    wait_for(lambda: client.status() == worker.status() == psutil.STATUS_STOPPED)
    _, status = os.waitpid(proc.pid, os.WUNTRACED | os.WNOHANG)
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTSTP
    time.sleep(3)  # longer than the tool's sleep: stopped, the command does not end
    assert worker.status() == psutil.STATUS_STOPPED and proc.poll() is None
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert a.read_text() == "a = 3\n"


def test_on_a_terminal_the_progress_view_is_drawn_as_by_itself(served):
    """stdout/stderr a pseudo-terminal: the worker sees the client's terminal (two
    workstreams: the live view is drawn, with escapes, as a run by itself draws it)."""
    import pty

    tool(served, 'for f in "$@"; do echo "x = 2" > "$f"; done')
    server = served.started(workstream(served))
    two = [workstream(served, ("b.py",)), workstream(served, ("c.py",))]
    screens = []
    for argv in ([str(AIM)], [sys.executable, "-m", "aim_core"]):
        leader, follower = pty.openpty()
        env = {**served.environ(), "COLUMNS": "120", "TERM": "xterm"}
        proc = subprocess.Popen(
            [*argv, "run", *two], cwd=served.root, env=env, stdout=follower, stderr=follower
        )
        os.close(follower)
        screen = b""
        while chunk := _read(leader):
            screen += chunk
        proc.wait(timeout=60)
        os.close(leader)
        assert proc.returncode == 0, screen
        screens.append(screen.decode(errors="replace"))
        if argv == [str(AIM)]:
            assert served.served_by() == server
    ids = [Path(w).stem for w in two]
    for screen in screens:
        assert "\x1b[?25l" in screen and "Workstream" in screen  # the live table
        assert all(f"{i}   \x1b[32mdone" in screen for i in ids), screen


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def test_kill_9_of_the_client_kills_its_command_and_recover_undoes_it(served):
    server, proc, a, before = mid_run(served, sleep=60)
    workers = psutil.Process(server).children()
    assert len(workers) == 1
    proc.kill()
    proc.wait()
    wait_for(lambda: not workers[0].is_running() or workers[0].status() == psutil.STATUS_ZOMBIE)
    r = served.project.run("recover")
    assert r.exit_code == 0, r.stderr
    assert "Recovered run" in r.stdout
    assert a.read_text() == before
    assert results(served.project)[-1] == ("scripttool", False, "interrupted")


def test_several_clients_at_once(served):
    tool(served, "echo 'a = 2' > a.py")
    served.started(workstream(served))
    tool(served, 'sleep 0.5\nfor f in "$@"; do echo "x = 1" > "$f"; done')
    procs = [served.popen("run", workstream(served, (f,))) for f in ("b.py", "c.py", "src/m.py")]
    for p in procs:
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert results(served.project)[-3:] == [("scripttool", True, None)] * 3
    assert [(served.root / f).read_text() for f in ("b.py", "c.py", "src/m.py")] == ["x = 1\n"] * 3


# --------------------------------------------------------------------------- when it is not used


@pytest.mark.parametrize(
    ("changed", "mtime"),
    [
        ("_version.py", "later"),
        ("secret_rules/aim.json", "later"),
        ("secret_rules", "later"),
        ("_version.py", "set back"),
    ],
    ids=["a-module", "the-credential-rules", "a-new-file", "mtime-set-back"],
)
def test_changed_code_stops_the_server_and_the_command_runs_by_itself(served, changed, mtime):
    """A module, a data file the server loaded (the credential rules), or a file added
    to the package (its directory's time), also when the change kept the file's mtime
    (`cp -p`, `rsync -t`: its ctime moved): the next command runs the code on disk."""
    tool(served, "echo 'a = 2' > a.py")
    ws = workstream(served)
    server = served.started(ws)
    version = AIM_CORE / changed
    st = version.stat()
    os.utime(version, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    if mtime == "set back":
        os.utime(version, ns=(st.st_atime_ns, st.st_mtime_ns))
    try:
        r = served.run("run", ws)
        assert r.returncode == 0, r.stderr
        assert served.served_by() != server
        wait_for(
            lambda: not psutil.pid_exists(server) or psutil.Process(server).status() == "zombie"
        )
        # the command that found it stale started a new one: the next is served
        new = served.server()
        assert new != server
        assert served.run("run", ws).returncode == 0
        assert served.served_by() == new
    finally:
        os.utime(version, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert served.run("run", ws).returncode == 0  # starts a new one
    assert served.server() != server


def test_aim_resident_0_and_python_m_never_use_or_start_a_server(served):
    tool(served, "echo 'a = 2' > a.py")
    ws = workstream(served)
    for _ in range(2):
        assert served.run("run", ws, env=served.environ(AIM_RESIDENT="0")).returncode == 0
        assert served.project.run("run", ws, env=served.env).exit_code == 0
    time.sleep(0.5)
    assert list(served.where.iterdir()) == []


def test_a_socket_directory_others_can_open_is_not_used(served):
    tool(served, "echo 'a = 2' > a.py")
    os.chmod(served.where, 0o755)
    ws = workstream(served)
    for _ in range(2):
        r = served.run("run", ws)
        assert r.returncode == 0, r.stderr
    assert list(served.where.iterdir()) == []


@pytest.mark.parametrize(
    "confine",
    [
        lambda: os.nice(5),
        lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_NOFILE, (512, 512)),
    ],
    ids=["nice", "rlimit"],
)
def test_a_client_confined_otherwise_is_not_served_by_this_server(served, confine):
    """Lower priority, other limits (or namespaces, cgroup, capabilities, seccomp...):
    the command runs by itself and a server confined like it starts for the next."""
    tool(served, "echo 'a = 2' > a.py")
    ws = workstream(served)
    server = served.started(ws)
    for _ in range(2):
        r = served.run("run", ws, preexec_fn=confine)
        assert r.returncode == 0, r.stderr
        assert served.served_by() != server
    wait_for(lambda: len(servers(str(served.where))) == 2)
    r = served.run("run", ws, preexec_fn=confine)
    (other,) = set(servers(str(served.where)).values()) - {server}
    assert served.served_by() == other
    assert psutil.Process(other).nice() == psutil.Process(server).nice() + (
        5 if "nice" in os.environ.get("PYTEST_CURRENT_TEST", "") else 0
    )


def test_a_closed_stdin_is_dev_null_and_the_command_is_served(served):
    """fd 0 closed at the start: it becomes /dev/null before anything can open a file
    on it, so what the worker is given as stdin is never some other file."""
    tool(served, "echo 'a = 2' > a.py")
    ws = workstream(served)
    server = served.started(ws)
    r = served.run("run", ws, stdin=None, pass_fds=(), preexec_fn=lambda: os.close(0))
    assert r.returncode == 0, r.stderr
    assert served.served_by() == server


def test_silent_connections_delay_no_command_and_none_runs_twice(served):
    """Connections that send nothing (or half a request) hold up no other client, and
    a command runs once however its connection ends."""
    tool(served, "echo 'a = 2' > a.py")
    ws = workstream(served)
    served.started(ws)
    path = next(iter(servers(str(served.where))))
    silent = [socket.socket(socket.AF_UNIX) for _ in range(3)]
    for s in silent:
        s.connect(path)
    silent[0].send((1000).to_bytes(4, "big") + b"x")  # a request that never ends
    began = time.monotonic()
    r = served.run("run", ws)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - began < 8  # not the client's 10 s wait for "ready"
    for s in silent:
        s.close()
    time.sleep(1)
    assert len(results(served.project)) == 2  # the first run and this one


def test_a_client_that_gave_up_never_has_its_command_run(served):
    """The server stalls (stopped) past the client's wait: the client runs the command
    itself, and when the server comes back it does not run it again."""
    tool(served, "echo 'a = 2' > a.py")
    ws = workstream(served)
    server = served.started(ws)
    os.kill(server, signal.SIGSTOP)
    try:
        r = served.run("run", ws)
    finally:
        os.kill(server, signal.SIGCONT)
    assert r.returncode == 0, r.stderr
    assert served.served_by() != server
    time.sleep(1.5)
    assert len(results(served.project)) == 2
    assert psutil.Process(server).children() == []
    assert served.run("run", ws).returncode == 0  # and it serves the next one
    assert served.served_by() == server


@pytest.mark.parametrize("streams_first", [False, True])
def test_a_request_with_another_key_is_refused(served, streams_first):
    """Another key (or streams sent before ``ready``): refused, nothing forked."""
    import marshal

    tool(served, "echo 'a = 2' > a.py")
    server = served.started(workstream(served))
    path = next(iter(servers(str(served.where))))
    data = marshal.dumps({"key": {"executable": "/somewhere/else"}, "argv": ["aim", "run"]})
    message = len(data).to_bytes(4, "big") + data
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        if streams_first:
            socket.send_fds(s, [message], [0, 1, 2])
        else:
            s.sendall(message)
        assert s.recv(64) == b"refused\n"
    assert psutil.Process(server).children() == []


def test_an_idle_server_stops_and_removes_its_socket(served):
    served.env["AIM_RESIDENT_IDLE_S"] = "1"
    tool(served, "echo 'a = 2' > a.py")
    server = served.started(workstream(served))
    wait_for(lambda: not psutil.pid_exists(server) or psutil.Process(server).status() == "zombie")
    assert not any(p.suffix == ".sock" for p in served.where.iterdir())


# --------------------------------------------------------------------------- the mechanism


MODULE_STATE = {"environ", "getenv", "getcwd", "cwd", "home", "expanduser", "isatty", "getpid"}


def _reads_process_state(tree: ast.Module) -> list[str]:
    """Module-level reads of the process's environment, directory, terminal or pid
    (outside functions): a server's worker would keep the server's values."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if isinstance(node, ast.Attribute) and node.attr in MODULE_STATE:
            found.append(f"line {node.lineno}: .{node.attr}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    for stmt in tree.body:
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
            continue
        visit(stmt)
    return found


def test_no_module_reads_the_process_state_when_imported():
    offenders = {}
    for path in sorted(AIM_CORE.rglob("*.py")):
        found = _reads_process_state(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[str(path.relative_to(AIM_CORE))] = found
    assert offenders == {}, (
        "read these when called, not at import: a run server's worker takes its "
        f"client's environment after the import: {offenders}"
    )


def test_the_check_above_finds_a_module_level_read():
    tree = ast.parse("import os\nX = int(os.environ.get('A', '1'))\ndef f():\n    os.getcwd()\n")
    assert _reads_process_state(tree) == ["line 2: .environ"]


def test_a_removed_working_directory_is_exit_2_with_a_sentence(served, tmp_path):
    tool(served, "echo 'a = 2' > a.py")
    served.started(workstream(served))
    gone = tmp_path / "gone"
    gone.mkdir()
    for argv in ([str(AIM)], [sys.executable, "-m", "aim_core"]):
        proc = subprocess.run(
            [
                "sh",
                "-c",
                f'cd "{gone}" && rmdir "{gone}" && exec "$@"',
                "sh",
                *argv,
                "run",
                "x.json",
            ],
            env=served.environ(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert "current directory no longer exists" in proc.stderr
        assert "Traceback" not in proc.stderr
        gone.mkdir()


def test_a_timeout_leaves_no_process_when_served(served):
    """A tool that hangs with a setsid grandchild and a plain one: the served command
    ends at its time limit and nothing the tool started is left."""
    import random

    mark = f"600.{random.randrange(10**8, 10**9)}"
    tool(served, "echo 'a = 2' > a.py")
    server = served.started(workstream(served))
    sleeper = f"{sys.executable} -c 'import time; time.sleep({mark})'"
    tool(served, f"setsid {sleeper} &\n{sleeper} &\nsleep 60")
    ws = served.project.workstream(
        capability="code_generation",
        files_scope=["a.py"],
        tasks=["do it"],
        capability_payload={"max_retries": 0, "timeout_ms": 2000},
    )
    r = served.run("run", str(ws.relative_to(served.root)))
    assert r.returncode == 1, r.stderr
    assert served.served_by() == server
    assert results(served.project)[-1] == ("scripttool", False, "timeout")
    time.sleep(0.5)
    left = [
        p for p in psutil.process_iter(["cmdline"]) if mark in " ".join(p.info["cmdline"] or ())
    ]
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    assert left == []


@pytest.mark.parametrize("closed", ["<&-", ">&-", "2>&-"])
@pytest.mark.parametrize("how", ["served", "by-itself"])
def test_a_closed_standard_stream_loses_text_not_the_work(served, closed, how):
    """``aim run ws.json >&-``: the work is done and the exit code is the run's (it was
    a traceback and exit 1 or 120); the closed descriptor is /dev/null for aim."""
    tool(served, "echo 'a = 2' > a.py")
    served.started(workstream(served))
    tool(served, "echo 'a = 3' > a.py")
    argv = [str(AIM)] if how == "served" else [sys.executable, "-m", "aim_core"]
    r = subprocess.run(
        ["sh", "-c", f'exec "$@" {closed}', "sh", *argv, "run", workstream(served)],
        cwd=served.root,
        env=served.environ(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert (served.root / "a.py").read_text() == "a = 3\n"
