"""Races: the first K candidate tools at once, each in its own copy of the repository.

The tools are fake executables (``first``, ``second``; see tests/test_verify.py)
that sleep, write and report as a test tells them; the checks run through the
real pytest. The user's tree must be untouched until the winner is applied, and
nothing -- copy, process -- may be left after a race, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.verify_kit import CALC, RIGHT, WRONG, attempts, content, repairs_with_output, write


def marker_dir(project) -> Path:
    path = project.root.parent / "marks"  # outside the repository: not the tools' work
    path.mkdir(exist_ok=True)
    return path


def timed(project, name: str, body: str, *, sleep: float = 0) -> None:
    """A tool that notes when it starts and ends (outside the repository)."""
    marks = marker_dir(project)
    project.tool(
        name,
        f'date +%s.%N > "{marks}/{name}.start"\n'
        f"sleep {sleep}\n"
        f"{body}\n"
        f'date +%s.%N > "{marks}/{name}.end"',
    )


def leftovers(project) -> list[str]:
    from aim_core.project import Project

    found = []
    state = Project.open(project.root).runs_state
    if state.exists():
        found += [str(p) for p in state.rglob("race*")]
    worktrees = subprocess.run(
        ["git", "-C", str(project.root), "worktree", "list"], capture_output=True, text=True
    ).stdout.splitlines()
    found += worktrees[1:]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    found += [line for line in ps.splitlines() if str(project.env.bin_dir) in line]
    return found


def test_slow_right_beats_fast_wrong_and_the_loser_is_recorded(vrepo):
    timed(vrepo, "first", write(WRONG))
    timed(vrepo, "second", write(RIGHT), sleep=1)
    result = vrepo.run("run", "--race", "2", str(vrepo.ws(capability_payload={"max_repairs": 0})))
    assert result.exit_code == 0, result.output
    assert (vrepo.root / "calc.py").read_text() == RIGHT
    by_tool = {r["tool_id"]: r for r in attempts(vrepo)}
    # first's check usually fails first; on a loaded machine second may be verified
    # while first's check still runs, and first is then stopped: either way second wins
    assert by_tool["first"]["failure"] in ("verify_failed", "lost_race")
    assert by_tool["second"]["result"]["success"] is True
    for record in by_tool.values():
        assert content(record)["strategy"] == "race" and content(record)["race_size"] == 2
    assert content(by_tool["second"])["diff"] == {
        "files": 1,
        "lines_added": 1,
        "lines_removed": 1,
    }
    assert "Racing 2 tools" in result.stderr
    assert leftovers(vrepo) == []


def test_a_race_of_two_sleeping_tools_runs_them_at_once(vrepo):
    # both right: whichever is verified first wins, the other is stopped
    timed(vrepo, "first", write(RIGHT), sleep=2)
    timed(vrepo, "second", write(RIGHT), sleep=2)
    result = vrepo.run("run", str(vrepo.ws(race=2)))
    assert result.exit_code == 0, result.output
    marks = marker_dir(vrepo)
    first_start = float((marks / "first.start").read_text())
    second_start = float((marks / "second.start").read_text())
    first_end = float((marks / "first.end").read_text())
    second_end = float((marks / "second.end").read_text())
    # the two sleeps overlapped: neither waited for the other to finish
    assert second_start < first_end and first_start < second_end
    outcomes = sorted(r["failure"] or "success" for r in attempts(vrepo))
    assert outcomes == ["lost_race", "success"]
    assert leftovers(vrepo) == []


def test_the_loser_is_stopped_as_soon_as_the_winner_is_chosen(vrepo):
    timed(vrepo, "first", write(RIGHT))
    timed(vrepo, "second", write(RIGHT), sleep=30)
    began = time.monotonic()
    result = vrepo.run("run", "--race", "2", str(vrepo.ws()))
    assert result.exit_code == 0, result.output
    assert time.monotonic() - began < 25  # not the loser's 30 s sleep
    assert not (marker_dir(vrepo) / "second.end").exists()
    second = next(r for r in attempts(vrepo) if r["tool_id"] == "second")
    assert second["failure"] == "lost_race" and "first won the race" in second["result"]["message"]
    assert leftovers(vrepo) == []


def test_the_users_uncommitted_edit_survives_every_race(vrepo):
    (vrepo.root / "other.py").write_text("x = 'mine, not committed'\n")
    (vrepo.root / "notes.txt").write_text("untracked\n")
    timed(vrepo, "first", write(WRONG))
    timed(vrepo, "second", write(RIGHT))
    assert vrepo.run("run", "--race", "2", str(vrepo.ws())).exit_code == 0
    # the copies saw the uncommitted edit too, and nothing was undone
    assert (vrepo.root / "other.py").read_text() == "x = 'mine, not committed'\n"
    assert (vrepo.root / "notes.txt").read_text() == "untracked\n"
    vrepo.tool("first", write(WRONG))
    vrepo.tool("second", write(WRONG))
    (vrepo.root / "calc.py").write_text(CALC)
    assert vrepo.run("run", "--race", "2", str(vrepo.ws())).exit_code == 1
    assert (vrepo.root / "other.py").read_text() == "x = 'mine, not committed'\n"
    assert (vrepo.root / "calc.py").read_text() == CALC
    assert leftovers(vrepo) == []


def test_a_tool_that_writes_the_users_tree_directly_wins_nothing(vrepo):
    root = vrepo.root
    timed(vrepo, "first", f"echo hacked > {root}/other.py\n" + write(RIGHT))
    timed(vrepo, "second", "exit 3")
    result = vrepo.run("run", "--race", "2", str(vrepo.ws()))
    assert result.exit_code == 1, result.output
    # nothing applied; the stray write is named, and left (it could have been yours)
    assert (root / "calc.py").read_text() == CALC
    assert (root / "other.py").read_text() == "hacked\n"
    assert "The repository changed during the race: other.py" in result.output
    assert leftovers(vrepo) == []


def test_your_edits_during_a_race_are_never_undone(vrepo):
    timed(vrepo, "first", write(RIGHT), sleep=2)
    timed(vrepo, "second", write(RIGHT), sleep=2)
    proc = _start(vrepo, vrepo.ws())
    _wait_for_both(vrepo)
    (vrepo.root / "other.py").write_text("x = 'mine'\n")
    (vrepo.root / "notes.md").write_text("mine\n")
    (vrepo.root / "calc.py").write_text("# my own calc\n")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert (vrepo.root / "other.py").read_text() == "x = 'mine'\n"
    assert (vrepo.root / "notes.md").read_text() == "mine\n"
    assert (vrepo.root / "calc.py").read_text() == "# my own calc\n"
    assert "The repository changed during the race" in err
    assert leftovers(vrepo) == []


def test_race_larger_than_the_candidates_is_exit_2(vrepo):
    vrepo.tool("first", "touch ran")
    result = vrepo.run("run", "--race", "3", str(vrepo.ws()))
    assert result.exit_code == 2 and "--race" in result.output and "only 2" in result.output
    result = vrepo.run("run", str(vrepo.ws(race=3)))
    assert result.exit_code == 2 and "race" in result.output
    result = vrepo.run("validate", str(vrepo.ws(race=0)))
    assert result.exit_code == 2 and "race" in result.output
    assert not (vrepo.root / "ran").exists()


def _start(vrepo, path, *, race: bool = True) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "aim_core", "run", *(["--race", "2"] if race else []), str(path)],
        cwd=vrepo.root,
        env=vrepo.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_both(vrepo) -> None:
    marks = marker_dir(vrepo)
    deadline = time.monotonic() + 60
    while not all((marks / f"{t}.start").exists() for t in ("first", "second")):
        assert time.monotonic() < deadline, "the tools never started"
        time.sleep(0.1)


def test_ctrl_c_during_a_race_leaves_nothing(vrepo):
    timed(vrepo, "first", write(RIGHT), sleep=60)
    timed(vrepo, "second", write(RIGHT), sleep=60)
    proc = _start(vrepo, vrepo.ws())
    _wait_for_both(vrepo)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (vrepo.root / "calc.py").read_text() == CALC
    assert [r["failure"] for r in attempts(vrepo)] == ["interrupted", "interrupted"]
    assert leftovers(vrepo) == []


def test_kill_9_during_a_race_then_recover_leaves_nothing(vrepo):
    timed(vrepo, "first", write(RIGHT), sleep=60)
    timed(vrepo, "second", write(RIGHT), sleep=60)
    proc = _start(vrepo, vrepo.ws())
    _wait_for_both(vrepo)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    result = vrepo.run("recover")
    assert result.exit_code == 0, result.output
    assert "Recovered run" in result.stdout
    assert (vrepo.root / "calc.py").read_text() == CALC
    assert leftovers(vrepo) == []


@pytest.fixture
def plain_vrepo(vrepo):
    shutil.rmtree(vrepo.root / ".git")
    return vrepo


def test_a_race_outside_git(plain_vrepo):
    timed(plain_vrepo, "first", write(WRONG))
    timed(plain_vrepo, "second", write(RIGHT), sleep=0.5)
    result = plain_vrepo.run("run", "--race", "2", str(plain_vrepo.ws()))
    assert result.exit_code == 0, result.output
    assert (plain_vrepo.root / "calc.py").read_text() == RIGHT
    assert leftovers(plain_vrepo) == []


def test_the_live_view_shows_each_candidate_and_its_checks(vrepo):
    """On a terminal, the progress table has a line per candidate of the race with the
    check it runs or how its checks ended (a real pseudo-terminal, rich rendering)."""
    import pty

    timed(vrepo, "first", write(WRONG))
    # second is slow enough that first's failing check is always decided first
    timed(vrepo, "second", write(RIGHT), sleep=6)
    leader, follower = pty.openpty()
    env = {**vrepo.environ(), "COLUMNS": "200", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aim_core", "run", "--race", "2", str(vrepo.ws())],
        cwd=vrepo.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    proc.wait(timeout=60)
    os.close(leader)
    text = screen.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "first" in text and "attempt 1, race of 2" in text
    assert "checking tests tests/test_calc.py (pytest)" in text
    assert "tests tests/test_calc.py failed: 1 failed" in text


def test_validate_and_the_dry_run_agree_with_run_about_the_race_size(vrepo):
    path = vrepo.ws(race=3)
    for args in (("validate", str(path)), ("run", "--dry-run", str(path))):
        result = vrepo.run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "race" in result.output and "only 2" in result.output
    ok = vrepo.ws()
    result = vrepo.run("run", "--dry-run", "--race", "2", str(ok))
    assert result.exit_code == 0 and "race: the first 2 tools at once" in result.stdout
    result = vrepo.run("run", "--dry-run", "--race", "3", str(ok))
    assert result.exit_code == 2 and "--race" in result.output
    plan = vrepo.run("run", "--dry-run", "--json", "--race", "2", str(ok))
    assert plan.exit_code == 0
    (line,) = plan.stdout.splitlines()
    data = __import__("json").loads(line)
    assert data["race"] == 2 and data["checks"] == ["tests tests/test_calc.py"]


def test_a_racer_repairs_its_edit_in_a_fresh_copy(vrepo):
    """The tool writes right code only when its instruction holds pytest's output: its
    repair wins the race, as it would have won one tool at a time."""
    vrepo.tool("first", repairs_with_output())
    timed(vrepo, "second", "exit 3", sleep=30)
    result = vrepo.run("run", "--race", "2", str(vrepo.ws()))
    assert result.exit_code == 0, result.output
    assert (vrepo.root / "calc.py").read_text() == RIGHT
    firsts = [r for r in attempts(vrepo) if r["tool_id"] == "first"]
    assert [(content(r)["repair"], r["failure"]) for r in firsts] == [
        (0, "verify_failed"),
        (1, None),
    ]
    second = next(r for r in attempts(vrepo) if r["tool_id"] == "second")
    assert second["failure"] == "lost_race"
    assert leftovers(vrepo) == []


def _route_third(vrepo) -> None:
    import json

    from aim_core.paths import RULES_RELPATH

    path = vrepo.registry / RULES_RELPATH
    rules = json.loads(path.read_text())
    rules["capabilities"]["code_generation"]["fallback"] = ["second", "third"]
    path.write_text(json.dumps(rules))
    vrepo.tool("third", "touch ran-third\n" + write(RIGHT))


def test_a_race_spoiled_by_your_edit_tries_no_other_tool(vrepo):
    _route_third(vrepo)
    timed(vrepo, "first", write(RIGHT), sleep=2)
    timed(vrepo, "second", write(RIGHT), sleep=2)
    proc = _start(vrepo, vrepo.ws())
    _wait_for_both(vrepo)
    (vrepo.root / "calc.py").write_text("# my own calc\n")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert (vrepo.root / "calc.py").read_text() == "# my own calc\n"
    assert not (vrepo.root / "ran-third").exists()
    outcomes = {r["tool_id"]: r["failure"] for r in attempts(vrepo)}
    assert outcomes == {"first": "lost_race", "second": "lost_race"}  # nobody blamed
    assert leftovers(vrepo) == []


def test_a_write_to_an_ignored_file_of_your_tree_spoils_the_race(vrepo):
    """Caches may change in place, but in a race no tool works in your tree at all: a
    write there by an absolute path, even to a git-ignored file, is seen."""
    root = vrepo.root
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("built\n")
    (root / "x.log").write_text("log\n")
    subprocess.run(["git", "-C", str(root), "add", ".gitignore"], check=True)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", "ignore"], check=True)
    for target in ("x.log", "build/out.txt"):
        timed(vrepo, "first", f"echo evil >> {root}/{target}\n" + write(RIGHT))
        timed(vrepo, "second", "exit 3")
        result = vrepo.run("run", "--race", "2", str(vrepo.ws()))
        assert result.exit_code == 1, (target, result.output)
        assert "the repository changed during the race" in result.output.lower()
        assert target in result.output
        assert (root / "calc.py").read_text() == CALC


SENTINEL = """
import os
import subprocess

from aim_core import hookimpl

MARK = {mark!r}


@hookimpl
def validate_payload(tool_id, capability, payload, context):
    # asked before anything runs: from then on aim has a child of its own in a session
    # of its own, older than every tool (as its run server was, when a command started
    # one before its work); no tool's sweep may take it for an orphan of the tool
    if not os.path.exists(MARK):
        child = subprocess.Popen(
            ["sleep", "120"], start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with open(MARK, "w") as f:
            f.write(str(child.pid))
    return None
"""


def test_deciding_a_race_leaves_aims_other_processes_alone(vrepo):
    """A candidate whose check ended is not looked for again when the race is decided:
    its pid may be another process's by now, and a sweep without its tree's token and
    start time takes any child of aim in a session of its own for its orphan."""
    from tests.repo_kit import install_plugin

    mark = marker_dir(vrepo) / "sentinel.pid"
    install_plugin(vrepo, "sentinel", "aim_sentinel", SENTINEL.format(mark=str(mark)))
    timed(vrepo, "first", write(WRONG))  # its check fails first: it ends before the verdict
    timed(vrepo, "second", write(RIGHT), sleep=8)  # long enough on a loaded machine too
    result = vrepo.run("run", "--race", "2", str(vrepo.ws(capability_payload={"max_repairs": 0})))
    assert result.exit_code == 0, result.output
    assert {r["tool_id"]: r["failure"] for r in attempts(vrepo)} == {
        "first": "verify_failed",
        "second": None,
    }
    assert_alive_then_kill(mark)
    assert leftovers(vrepo) == []


def assert_alive_then_kill(pid_file: Path) -> None:
    """The sentinel whose pid ``pid_file`` holds is alive (aim left it alone); kill it."""
    pid = int(pid_file.read_text())
    try:
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # alive
    except psutil.NoSuchProcess:
        raise AssertionError("aim killed a child of its own that was no tool's") from None
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


LINGERS = """
import os
import time

from aim_core import hookimpl

MARK = {mark!r}


@hookimpl(wrapper=True)
def invoke_capability(tool_id, capability, payload, context):
    result = yield  # the tool ran and ended
    if tool_id == "first":
        with open(MARK, "w") as f:
            f.write("ended")
        time.sleep(60)  # aim stops or gives up here, after the tool's process was swept
    return result
"""


@pytest.mark.parametrize("how", ["ctrl-c", "plugin-timeout"])
def test_stopping_after_the_tool_ended_leaves_aims_other_processes_alone(vrepo, how):
    """The plugin is still busy after its tool ended when aim stops the attempt (Ctrl-C,
    or the plugin's time is up): the ended tool's pid is not looked for again (the same
    sweep as above, from a sequential attempt), and Ctrl-C does not wait for the plugin."""
    from tests.repo_kit import install_plugin

    marks = marker_dir(vrepo)
    install_plugin(vrepo, "sentinel", "aim_sentinel", SENTINEL.format(mark=str(marks / "s.pid")))
    install_plugin(vrepo, "lingers", "aim_lingers", LINGERS.format(mark=str(marks / "ended")))
    vrepo.tool("first", write(RIGHT))
    vrepo.tool("second", write(RIGHT))
    ws = (
        vrepo.ws(capability_payload={"timeout_ms": 1000, "max_retries": 0}, verify=None)
        if how == "plugin-timeout"
        else vrepo.ws()
    )
    proc = _start(vrepo, ws, race=False)
    deadline = time.monotonic() + 60
    while not (marks / "ended").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    if how == "ctrl-c":
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)  # not the plugin's 60 s
        assert proc.returncode == 130, err
        assert (vrepo.root / "calc.py").read_text() == CALC
    else:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert [r["failure"] for r in attempts(vrepo)] == ["timeout", None]
    assert_alive_then_kill(marks / "s.pid")
