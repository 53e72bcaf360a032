"""The process runner: time limits kill the whole tree, output is capped, stdin closed,
and only allowed environment variables reach a tool."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from aim_core.context import AimContext
from aim_core.process import build_env, run_process


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pid: int, seconds: float = 3.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("setsid", [False, True], ids=["same-group", "setsid-grandchild"])
def test_timeout_kills_the_whole_tree(fake, tmp_path, setsid):
    pidfile = tmp_path / "grandchild.pid"
    tool = fake(
        "hangs",
        sleep=60,
        grandchild={"setsid": setsid, "sleep": 60, "pidfile": str(pidfile)},
    )
    start = time.monotonic()
    r = run_process([str(tool.path), "work"], timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert r.timed_out and r.exit_code is None
    assert elapsed < 4, elapsed  # generous: the bench measures the real figure
    grandchild = int(pidfile.read_text())
    assert wait_gone(grandchild), "the grandchild outlived the timeout"


def test_background_child_holding_the_pipe_does_not_hang_us(fake, tmp_path):
    pidfile = tmp_path / "bg.pid"
    tool = fake("leaves", grandchild={"setsid": False, "sleep": 60, "pidfile": str(pidfile)})
    start = time.monotonic()
    r = run_process([str(tool.path), "work"], timeout_s=30)
    assert r.exit_code == 0 and not r.timed_out
    assert time.monotonic() - start < 5
    assert wait_gone(int(pidfile.read_text()))


def test_output_is_capped_head_and_tail_kept(fake):
    tool = fake("floods", stdout="FIRST LINE\n", flood_bytes=20 * 1024 * 1024)
    r = run_process([str(tool.path), "work"], timeout_s=60, output_cap=64 * 1024)
    assert r.exit_code == 0
    assert r.stdout.startswith("FIRST LINE")
    assert r.dropped_bytes > 19 * 1024 * 1024
    assert f"[... {r.dropped_bytes} bytes of output dropped ...]" in r.stdout
    assert len(r.stdout) < 3 * 64 * 1024


def test_stdin_is_closed_unless_given():
    code = "import sys; print(repr(sys.stdin.read()))"
    assert run_process([sys.executable, "-c", code], timeout_s=10).stdout.strip() == "''"
    given = run_process([sys.executable, "-c", code], timeout_s=10, stdin="hi")
    assert given.stdout.strip() == "'hi'"


def test_env_allow_list():
    source = {
        "PATH": "/bin",
        "HOME": "/h",
        "AWS_SECRET_ACCESS_KEY": "x",
        "OPENAI_API_KEY": "k",
        "AIDER_MODEL": "m",
    }
    assert build_env((), source=source) == {"PATH": "/bin", "HOME": "/h"}
    env = build_env(("OPENAI_API_KEY", "AIDER_*"), {"TERM": "dumb"}, source=source)
    assert env == {
        "PATH": "/bin",
        "HOME": "/h",
        "OPENAI_API_KEY": "k",
        "AIDER_MODEL": "m",
        "TERM": "dumb",
    }


def test_context_run_env_deadline_and_missing_program(tmp_path, monkeypatch):
    monkeypatch.setenv("UNRELATED_TOKEN", "do-not-pass")
    ctx = AimContext(root=tmp_path, deadline=time.monotonic() + 0.5)
    show = "import os; print(os.environ.get('UNRELATED_TOKEN'), os.getcwd())"
    r = ctx.run([sys.executable, "-c", show])
    assert r.stdout.split() == ["None", str(tmp_path)]
    start = time.monotonic()
    slow = ctx.run([sys.executable, "-c", "import time; time.sleep(10)"], timeout_s=30)
    assert slow.timed_out and time.monotonic() - start < 3  # the deadline wins
    missing = AimContext(root=tmp_path).run([str(Path(tmp_path) / "nope")])
    assert missing.exit_code == 127 and "No such file" in missing.stderr


def test_own_session(tmp_path):
    r = run_process(
        [sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid())"], timeout_s=10
    )
    assert r.stdout.strip() == "True"
