"""`aim run`: routing, fallback, retries, timeouts, the safe workspace, exit codes.

Tools are fake executables on PATH driven through a generic test plugin and the
real process runner; the CLI runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from aim_core.audit.canonical import parse_timestamp

GUIDE_LINES = [
    "[INFO] Executing capability 'code_generation' via AIM",
    "[INFO] AIM routing to primary tool: jules",
    "[WARNING] Jules requires login (run 'jules login')",
    "[INFO] Falling back to direct tool invocation: aider",
    "[INFO] Code generation completed (attempt 1)",
]
ADD = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n'
WS = "workstreams/staging_test/ws-aim-validation.json"


def records(repo: Path) -> list[dict]:
    out = []
    for f in sorted((repo / "aim" / ".AIM_ai-tools-registry" / "AIM_audit").glob("*/audit.jsonl")):
        out += [json.loads(line) for line in f.read_text().split("\n") if line]
    return out


def info_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[")]


def write_ws(repo: Path, name: str, **fields) -> str:
    data = {
        "id": name,
        "capability": "code_generation",
        "files_scope": ["src/target.py"],
        "capability_payload": {"prompt": "do it", "timeout_ms": 20000, "max_retries": 0},
        **fields,
    }
    path = repo / "workstreams" / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path.relative_to(repo))


def start_aim(repo: Path, ws: str, fakeai: dict, **kw) -> subprocess.Popen:
    """``python -m aim_core run WS`` in ``repo`` (never served), stderr piped."""
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "aim_core", "run", ws],
        cwd=repo,
        env={**os.environ, **fakeai},
        text=True,
        **kw,
    )


def test_guide_step_1_5_scenario(repo, aim, fake, fakeai):
    fake("jules", version_output="jules 0.1.42 needs-login")
    aider = fake("aider", writes={"tests/staging_test_file.py": ADD})
    r = aim("run", WS, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert info_lines(r.stderr) == GUIDE_LINES
    assert (repo / "tests" / "staging_test_file.py").read_text() == ADD
    assert aider.work_calls[0]["argv"][:2] == [
        "--message",
        "Create a simple add(a, b) function with error handling and docstring",
    ]
    [record] = records(repo)
    assert record["tool_id"] == "aider" and record["actor"] == "pipeline"
    assert record["payload"] == {
        "prompt": "Create a simple add(a, b) function with error handling and docstring",
        "files": ["tests/staging_test_file.py"],
        "timeout_ms": 60000,
    }
    assert record["result"]["success"] is True
    assert record["result"]["message"] == "Code generation completed (attempt 1)"
    content = record["result"]["content"]
    assert content["files_created"] == ["tests/staging_test_file.py"]
    assert content["files_modified"] == [] and content["exit_code"] == 0
    assert content["skipped"] == [
        {
            "tool_id": "jules",
            "failure": "auth_required",
            "reason": "Jules requires login (run 'jules login')",
        }
    ]
    assert record["timestamp"].endswith("Z") and len(record["timestamp"]) == 27
    assert "OK   ws-aim-validation-001: Code generation completed (attempt 1) [aider" in r.stdout


def test_retry_after_a_tool_error_says_attempt_2(repo, aim, fake, fakeai):
    fake("jules", exit_code=0)
    jules = fake(
        "jules",
        runs=[
            {"exit_code": 1, "stderr": "connection reset"},
            {"exit_code": 0, "writes": {"src/target.py": "x = 1\n"}},
        ],
    )
    ws = write_ws(repo, "ws-retry", capability_payload={"prompt": "p", "max_retries": 1})
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert "[WARNING] jules failed (attempt 1): connection reset" in r.stderr
    assert "[INFO] Code generation completed (attempt 2)" in r.stderr
    assert len(jules.work_calls) == 2
    recs = records(repo)
    assert [(x["attempt"], x["result"]["success"], x["failure"]) for x in recs] == [
        (1, False, "tool_error"),
        (2, True, None),
    ]


def test_rate_limit_honours_retry_after_then_falls_back(repo, aim, fake, fakeai):
    fake("jules", exit_code=5, stdout="429 Too Many Requests, retry-after: 0.2\n")
    fake("aider", writes={"src/target.py": "y = 2\n"})
    ws = write_ws(repo, "ws-rate", capability_payload={"prompt": "p", "max_retries": 1})
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert "[INFO] Retrying jules in 0.2 s" in r.stderr
    assert [x["failure"] for x in records(repo)] == ["rate_limited", "rate_limited", None]


def test_auth_failure_moves_on_without_retry(repo, aim, fake, fakeai):
    jules = fake("jules", exit_code=4, stderr="401 Unauthorized")
    fake("aider", writes={"src/target.py": "z = 3\n"})
    ws = write_ws(repo, "ws-auth", capability_payload={"prompt": "p", "max_retries": 2})
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 0
    assert len(jules.work_calls) == 1
    assert "Falling back to tool: aider" in r.stderr


def test_work_failed_ends_the_workstream(repo, aim, fake, fakeai):
    fake("jules", exit_code=2, stderr="3 tests failed")
    aider = fake("aider")
    ws = write_ws(repo, "ws-work")
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 1
    assert "[ERROR] 3 tests failed" in r.stderr
    assert aider.work_calls == []


def test_nothing_available_is_exit_3_with_one_sentence(repo, aim, fake, fakeai):
    fake("jules", version_output="jules needs-login")
    fake("claude", version_exit=1, version_output="", version_stderr="Error: cannot start\n")
    r = aim("run", WS, cwd=repo, env=fakeai)
    assert r.returncode == 3, r.stderr
    error = [line for line in r.stderr.splitlines() if line.startswith("[ERROR]")]
    assert error == [
        "[ERROR] No tool could run capability 'code_generation' ("
        "jules: Jules requires login (run 'jules login'); "
        "aider: 'aider' not found on PATH (install: pip install aider); "
        "claude-cli: 'claude' does not start: Error: cannot start; "
        "codex: no plugin provides 'codex' (pip install aim-plugin-codex); "
        "gemini-cli: no plugin provides 'gemini-cli' (pip install aim-plugin-gemini); "
        "opencode: no plugin provides 'opencode' (pip install aim-plugin-opencode)). "
        "Install or log in to one of them, then check with 'aim status'."
    ]
    [record] = records(repo)
    assert record["tool_id"] is None and record["failure"] == "auth_required"
    assert [s["tool_id"] for s in record["result"]["content"]["skipped"]] == [
        "jules",
        "aider",
        "claude-cli",
        "codex",
        "gemini-cli",
        "opencode",
    ]


def test_bad_workstream_is_exit_2_and_runs_nothing(repo, aim, fake, fakeai):
    jules = fake("jules")
    path = repo / "workstreams" / "bad.json"
    path.write_text('{"id": "x", "capability": "code_generaton"}')
    r = aim("run", "workstreams/bad.json", cwd=repo, env=fakeai)
    assert r.returncode == 2
    assert "did you mean 'code_generation'?" in r.stderr
    assert "Traceback" not in r.stderr
    assert jules.work_calls == [] and records(repo) == []


def test_timeout_kills_the_tree_and_leaves_nothing(repo, aim, fake, fakeai, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    fake("jules", sleep=60, grandchild={"setsid": True, "sleep": 60, "pidfile": str(pidfile)})
    ws = write_ws(
        repo, "ws-hang", capability_payload={"prompt": "p", "timeout_ms": 1000, "max_retries": 0}
    )
    start = time.monotonic()
    r = aim("run", ws, cwd=repo, env=fakeai)
    elapsed = time.monotonic() - start
    assert r.returncode == 1
    assert elapsed < 10, elapsed  # the bench measures the real figure
    assert records(repo)[0]["failure"] == "timeout"
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    assert (
        not psutil.pid_exists(grandchild)
        or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
    )


def test_out_of_scope_write_is_reverted(repo, aim, fake, fakeai):
    (repo / "README.md").write_text("original\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "i"],
        cwd=repo,
        check=True,
    )
    fake(
        "jules",
        writes={"src/target.py": "ok\n", "README.md": "hacked\n", "new_elsewhere.py": "x\n"},
    )
    ws = write_ws(repo, "ws-scope")
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 1
    assert (
        "jules changed files outside its scope: README.md, new_elsewhere.py (reverted)" in r.stderr
    )
    assert (repo / "README.md").read_text() == "original\n"
    assert not (repo / "new_elsewhere.py").exists()
    assert not (repo / "src" / "target.py").exists()  # the failed attempt's own work is undone too
    assert records(repo)[0]["failure"] == "out_of_scope"


def test_a_file_name_a_tool_chose_is_shown_escaped(repo, aim, fake, fakeai):
    """A tool names the files it writes: a newline, a carriage return or an ANSI escape
    in such a name is shown escaped in aim's log lines, its summary and the audit
    query's table -- never a line that passes for aim's own, never a cursor move."""
    fake(
        "jules",
        writes={
            "src/target.py": "ok\n",
            "x\n[INFO] Code generation completed (attempt 1)": "x\n",
            "y\r\x1b[2K\x1b[32mOK": "y\n",
            "z\u202etxt.exe\u2028w": "z\n",
        },
        stdout="run 20991231T000000Z-000000: exit 0: Code generation completed (attempt 1)\n",
    )
    ws = write_ws(repo, "ws-names")
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 1, r.stderr
    shown = r.stdout + r.stderr
    assert "x\\n[INFO] Code generation completed" in shown
    assert "y\\r\\x1b[2K\\x1b[32mOK" in shown
    assert not any(c in shown for c in "\r\x1b")
    assert not [ln for ln in shown.splitlines() if ln.startswith("[INFO] Code generation")]
    assert not (repo / "x\n[INFO] Code generation completed (attempt 1)").exists()  # reverted
    q = aim("audit", "query", "--tool", "jules", cwd=repo, env=fakeai)
    assert q.returncode == 0, q.stderr
    assert "y\\r\\x1b[2K" in q.stdout and not any(c in q.stdout for c in "\r\x1b")
    assert len(q.stdout.splitlines()) == 1  # a message's newlines are spaces in the table
    shown = aim("audit", "show", records(repo)[0]["run_id"], cwd=repo, env=fakeai)
    assert shown.returncode == 0, shown.stderr
    assert "y\\r\\x1b[2K" in shown.stdout and not any(c in shown.stdout for c in "\r\x1b")
    assert "z\\u202etxt.exe\\u2028w" in shown.stdout and "\u202e" not in shown.stdout
    # the run log itself: each of aim's lines one line; the tool's lines marked as such
    log = next((repo / "aim" / ".AIM_ai-tools-registry" / "AIM_runs").glob("*.log"))
    lines = log.read_text().splitlines()
    assert not any(c in log.read_text() for c in "\r\x1b\u202e\u2028")
    assert not [ln for ln in lines if ln[9:].startswith("[INFO]")]
    forged = [ln[9:] for ln in lines if "20991231T000000Z" in ln]
    assert forged and all(ln.startswith("| run 2099") for ln in forged), forged


def test_a_tools_version_text_is_shown_escaped_by_status(repo, aim, fake, fakeai):
    """What a tool prints as its version reaches ``aim status`` (fresh and from the
    warm snapshot) escaped: no screen clear, no 8-bit CSI, no right-to-left override."""
    fake("jules", version_output="jules 1.0\x1b[2J\x1b[1;1H\u202eevil\x9bJ")
    for args in (("status", "--refresh"), ("status",)):
        r = aim(*args, cwd=repo, env=fakeai)
        assert r.returncode == 0, r.stderr
        out = r.stdout + r.stderr
        assert not any(c in out for c in "\x1b\x9b\u202e"), (args, out)
        assert "evil" in out


def test_a_tools_coloured_error_reads_as_text(repo, aim, fake, fakeai):
    """A tool that colours its error (ANSI escapes, as most CLIs do on a terminal) is
    quoted without them in aim's lines and its audit record."""
    fake(
        "jules",
        exit_code=1,
        stderr="\x1b[1;31mError:\x1b[0m API quota exceeded \x1b]8;;https://x\x1b\\(help)\x1b]8;;\x1b\\\n",
    )
    ws = write_ws(repo, "ws-colour", tool="jules")
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 1, r.stderr
    assert "Error: API quota exceeded (help)" in r.stderr
    assert "\\x1b" not in r.stdout + r.stderr and "\x1b" not in r.stdout + r.stderr
    message = records(repo)[-1]["result"]["message"]
    assert "Error: API quota exceeded (help)" in message and "\x1b" not in message


def test_a_directory_scope_takes_the_payload_files_inside_it(repo, aim, fake, fakeai):
    """files_scope ["src/"] with capability_payload.files ["src/target.py"]: valid, the
    tool gets the file and may write anywhere under src/, nowhere else."""
    (repo / "README.md").write_text("original\n")
    fake("jules", writes={"src/target.py": "ok\n", "src/new.py": "x\n", "README.md": "no\n"})
    payload = {"prompt": "do it", "files": ["src/target.py"], "max_retries": 0}
    ws = write_ws(repo, "ws-dir", files_scope=["src/"], capability_payload=payload)
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 1, r.stderr
    assert "outside its scope: README.md (reverted)" in r.stderr
    fake("jules", writes={"src/target.py": "ok\n", "src/new.py": "x\n"})
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert (repo / "src" / "new.py").read_text() == "x\n"
    assert (repo / "README.md").read_text() == "original\n"


def test_globs_in_scope_mean_what_the_path_rules_checked(repo, aim, fake, fakeai):
    """`src/**/*.py` holds src/target.py (none of the directories); `*.py` holds only
    the top level's files: a write below it is out of scope, as the path rules, which
    expand a glob as `Path.glob` does, never checked it."""
    fake("jules", writes={"src/target.py": "ok\n"})
    payload = {"prompt": "do it", "files": ["src/target.py"], "max_retries": 0}
    ws = write_ws(repo, "ws-glob", files_scope=["src/**/*.py"], capability_payload=payload)
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert (repo / "src" / "target.py").read_text() == "ok\n"
    fake("jules", writes={"top.py": "x\n", "src/sub/b.py": "y\n"})
    ws = write_ws(repo, "ws-star", files_scope=["*.py"], capability_payload={"max_retries": 0})
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 1, r.stderr
    assert "outside its scope: src/sub, src/sub/b.py (reverted)" in r.stderr
    assert not (repo / "src" / "sub").exists()


def test_out_of_scope_outside_git(repo, aim, fake, fakeai):
    (repo / "notes.txt").write_text("keep\n")
    fake("jules", writes={"src/target.py": "ok\n", "notes.txt": "changed\n"})
    r = aim("run", write_ws(repo, "ws-nogit"), cwd=repo, env=fakeai)
    assert r.returncode == 1
    assert "notes.txt (reverted)" in r.stderr
    assert (repo / "notes.txt").read_text() == "keep\n"


def test_deleted_file_in_scope_restored_after_failure(repo, aim, fake, fakeai):
    target = repo / "src" / "target.py"
    target.parent.mkdir()
    target.write_text("precious\n")
    target.chmod(0o640)
    fake("jules", deletes=["src/target.py"], exit_code=1, stderr="crashed")
    r = aim("run", write_ws(repo, "ws-del"), cwd=repo, env=fakeai)
    assert r.returncode == 1
    assert target.read_text() == "precious\n"
    assert target.stat().st_mode & 0o777 == 0o640


def test_created_file_removed_after_failure(repo, aim, fake, fakeai):
    fake("jules", writes={"src/target.py": "half\n"}, exit_code=1, stderr="died")
    r = aim("run", write_ws(repo, "ws-half"), cwd=repo, env=fakeai)
    assert r.returncode == 1
    assert not (repo / "src").exists()  # the file and the directory it needed are gone


def test_flood_keeps_memory_flat(repo, fake, fakeai):
    def peak_kb(flood: int) -> int:
        fake("jules", flood_bytes=flood, writes={"src/target.py": "x\n"})
        ws = write_ws(repo, f"ws-flood-{flood}")
        r = subprocess.run(
            ["/usr/bin/time", "-f", "MAXRSS=%M", sys.executable, "-m", "aim_core", "run", ws],
            cwd=repo,
            env={**os.environ, **fakeai},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        (repo / "src" / "target.py").unlink()
        return int(r.stderr.rsplit("MAXRSS=", 1)[1].split()[0])

    small, big = peak_kb(1_000_000), peak_kb(100_000_000)
    assert big - small < 20_000, (small, big)  # 100x the output, (almost) no more memory


def test_sigint_restores_and_exits_130(repo, fake, fakeai):
    target = repo / "src" / "target.py"
    target.parent.mkdir()
    target.write_text("before\n")
    fake("jules", writes={"src/target.py": "during\n"}, sleep=30)
    ws = write_ws(repo, "ws-int")
    proc = start_aim(repo, ws, fakeai)
    _wait_for(lambda: target.read_text() == "during\n")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert target.read_text() == "before\n"
    assert records(repo)[-1]["failure"] == "interrupted"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_tools_changes_outside_its_scope_are_reverted(repo, fake, fakeai, sig):
    """Ctrl-C or SIGTERM while the tool runs undoes all it did, as a failure or a
    timeout does: the scope restored, and what it changed outside reverted (a file it
    created stayed), named in the summary and the audit record."""
    target = repo / "src" / "target.py"
    target.parent.mkdir()
    target.write_text("before\n")
    (repo / "README.md").write_text("mine\n")
    fake(
        "jules",
        writes={"src/target.py": "during\n", "src/created.py": "x\n", "README.md": "theirs\n"},
        sleep=30,
    )
    ws = write_ws(repo, "ws-stop-outside")
    proc = start_aim(repo, ws, fakeai, stdout=subprocess.PIPE)
    _wait_for(lambda: (repo / "src" / "created.py").exists())
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert target.read_text() == "before\n"
    assert not (repo / "src" / "created.py").exists()
    assert (repo / "README.md").read_text() == "mine\n"
    said = "what it changed outside its scope was reverted: README.md, src/created.py"
    assert said in out
    record = records(repo)[-1]
    assert record["failure"] == "interrupted" and said in record["result"]["message"]


def test_signals_back_to_back_still_stop_the_run(repo, fake, fakeai):
    """Two signals a few microseconds apart (Ctrl-C pressed twice, or a supervisor's
    SIGTERM after it): the stop is never lost. A second KeyboardInterrupt used to land
    inside a lock's code: the tool ran on, its work was kept and recorded as a success,
    then "Internal error: release unlocked lock" (1 to 4 trials in 6)."""
    target = repo / "src" / "target.py"
    target.parent.mkdir()
    target.write_text("before\n")
    fake("jules", writes={"src/target.py": "during\n"}, sleep=30)
    ws = write_ws(repo, "ws-twice")
    gaps = [0, 0.0002, 0.0005, 0.001, 0.002, 0.003] * 2
    seconds = [signal.SIGINT] * len(gaps) + [signal.SIGTERM, signal.SIGHUP]
    for trial, (second, gap) in enumerate(zip(seconds, [*gaps, 0, 0], strict=True)):
        proc = start_aim(repo, ws, fakeai, stdout=subprocess.DEVNULL)
        _wait_for(lambda: target.read_text() == "during\n")
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)  # the second one while the first is being handled
        proc.send_signal(second)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, (trial, gap, err)
        assert target.read_text() == "before\n", trial
        assert records(repo)[-1]["failure"] == "interrupted", trial


def test_sigkill_then_next_command_recovers(repo, aim, fake, fakeai, tmp_path):
    target = repo / "src" / "target.py"
    target.parent.mkdir()
    target.write_text("before\n")
    pidfile = tmp_path / "tool-child.pid"
    fake(
        "jules",
        writes={"src/target.py": "during\n"},
        sleep=60,
        grandchild={"setsid": False, "sleep": 60, "pidfile": str(pidfile)},
    )
    ws = write_ws(repo, "ws-kill")
    proc = start_aim(repo, ws, fakeai, stderr=subprocess.DEVNULL)
    _wait_for(lambda: pidfile.exists() and target.read_text() == "during\n")
    proc.kill()
    proc.wait()
    child = int(pidfile.read_text())
    assert psutil.pid_exists(child)  # the tool outlived aim
    r = aim("recover", cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert "Recovered run" in r.stdout
    assert target.read_text() == "before\n"
    _wait_for(
        lambda: (
            not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        )
    )
    assert records(repo)[-1]["failure"] == "interrupted"
    assert aim("recover", cwd=repo, env=fakeai).stdout.startswith("Nothing to recover")


def test_enable_aim_false_invokes_the_tool_directly(repo, aim, fake, fakeai):
    cfg = repo / "config" / "aim_config.yaml"
    cfg.write_text(cfg.read_text().replace("enable_aim: true", "enable_aim: false"))
    jules = fake("jules")
    fake("aider", writes={"tests/staging_test_file.py": ADD})
    r = aim("run", WS, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    assert "[INFO] Invoking tool 'aider' directly (enable_aim: false)" in r.stderr
    assert jules.calls == [] or all(c["argv"] == ["--version"] for c in jules.calls)
    assert records(repo)[0]["tool_id"] == "aider"


def test_dependents_skip_when_a_dependency_fails(repo, aim, fake, fakeai):
    fake("jules", exit_code=2, stderr="no")
    a = write_ws(repo, "ws-a")
    b = write_ws(repo, "ws-b", files_scope=["src/b.py"], depends_on=["ws-a"])
    r = aim("run", a, b, "--json", cwd=repo, env=fakeai)
    assert r.returncode == 1
    results = {x["workstream_id"]: x for x in map(json.loads, r.stdout.splitlines())}
    assert results["ws-a"]["exit_code"] == 1
    assert results["ws-b"]["message"] == "Skipped: its dependency ws-a did not succeed"


def test_external_dependency_must_have_succeeded_before(repo, aim, fake, fakeai):
    jules = fake("jules", writes={"src/target.py": "1\n"})
    a = write_ws(repo, "ws-a")
    b = write_ws(repo, "ws-b", files_scope=["src/b.py"], depends_on=["ws-a"])
    r = aim("run", b, cwd=repo, env=fakeai)
    assert r.returncode == 1 and "not part of this run" in r.stdout
    assert jules.work_calls == []
    assert aim("run", a, cwd=repo, env=fakeai).returncode == 0
    jules.configure(writes={"src/b.py": "2\n"})
    r = aim("run", b, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stdout + r.stderr


def test_parallel_runs_on_separate_files_all_succeed(repo, aim, fake, fakeai):
    # each run's tool writes its own file while the seven others write theirs: a run
    # must not blame the files of the other runs on its own tool
    fake("jules", write_argv_files="done\n", sleep=0.5)
    paths = [write_ws(repo, f"ws-{i}", files_scope=[f"src/f{i}.py"]) for i in range(8)]
    r = aim("run", *paths, "-j", "8", cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("OK  ") == 8
    assert all((repo / "src" / f"f{i}.py").read_text() == "done\n" for i in range(8))
    assert "[INFO] ws-3: AIM routing to primary tool: jules" in r.stderr  # lines say which run


def test_overlapping_scopes_never_work_at_once(repo, aim, fake, fakeai, tmp_path):
    fake("jules", write_argv_files="x\n", sleep=0.5)
    a = write_ws(repo, "ws-one", files_scope=["src/same.py"])
    b = write_ws(repo, "ws-two", files_scope=["src/same.py"])
    r = aim("run", a, b, "-j", "2", "--json", cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    recs = records(repo)
    spans = []
    for rec in recs:
        end = parse_timestamp(rec["timestamp"]).timestamp()
        spans.append((end - rec["result"]["content"]["duration_sec"], end))
    spans.sort()
    assert spans[0][1] <= spans[1][0] + 0.05  # one after the other, never overlapping
    assert "which works on the same files" in r.stderr
    waits = sorted(json.loads(line)["waited_sec"] for line in r.stdout.splitlines())
    assert waits[0] == 0 and waits[1] >= 0.3  # the second waited for the first's tool


def test_the_summary_says_how_long_a_run_waited_for_another(repo, aim, fake, fakeai):
    """``[jules, 1.1s]`` of a run that waited 0.5 s for another on the same files says
    so: the time is not the tool's."""
    fake("jules", write_argv_files="x\n", sleep=0.5)
    a = write_ws(repo, "ws-one", files_scope=["src/same.py"])
    b = write_ws(repo, "ws-two", files_scope=["src/same.py"])
    r = aim("run", a, b, "-j", "2", cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if x.startswith("OK  ")]
    waited = [x for x in lines if re.search(r", \d+\.\ds of it waiting for another run]$", x)]
    assert len(lines) == 2 and len(waited) == 1, lines


def test_eight_processes_on_eight_files(repo, fake, fakeai):
    procs = []
    fake("jules", write_argv_files="p\n", sleep=0.2)
    for i in range(8):
        ws = write_ws(repo, f"ws-p{i}", files_scope=[f"src/p{i}.py"])
        procs.append(start_aim(repo, ws, fakeai, stdout=subprocess.PIPE))
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0] * 8
    seqs = sorted(r["seq"] for r in records(repo))
    assert seqs == list(range(1, 9))


def test_dry_run_runs_nothing(repo, aim, fake, fakeai):
    jules = fake("jules")
    r = aim("run", WS, "--dry-run", cwd=repo, env=fakeai)
    assert r.returncode == 0
    assert "ws-aim-validation-001" in r.stdout and "would run" in r.stdout
    assert "Dry run: nothing was run." in r.stdout
    assert jules.work_calls == [] and records(repo) == []


def test_library_run_workstream(repo, fake, fakeai, monkeypatch):
    for k, v in fakeai.items():
        monkeypatch.setenv(k, v)
    monkeypatch.syspath_prepend(fakeai["PYTHONPATH"])
    fake("jules", writes={"src/target.py": "lib\n"})
    import aim_core

    result = aim_core.run_workstream(repo / write_ws(repo, "ws-lib"), root=repo)
    assert result.success and result.exit_code == 0 and result.tool_id == "jules"
    assert result.files_created == ("src/target.py",)
    assert result.message == "Code generation completed (attempt 1)"


def _wait_for(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_a_tool_failing_repeatedly_cools_down_for_the_rest_of_the_run(repo, aim, fake, fakeai):
    jules = fake("jules", exit_code=1, stderr="upstream error")
    fake("aider", write_argv_files="ok\n")
    paths = [write_ws(repo, f"ws-c{i}", files_scope=[f"src/c{i}.py"]) for i in range(5)]
    r = aim("run", *paths, "-j", "1", cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    # max_retries 0: one failed attempt per workstream until the third failure
    assert len(jules.work_calls) == 3
    assert r.stderr.count("jules failed 3 times in this run; cooling down") == 2
    assert r.stdout.count("OK  ") == 5
