"""Trust I: a tool's attempt never passes unseen, never loses the user's work and
never escapes the repository. Each test drives the real ``aim run`` (a subprocess)
with a fake tool executable -- a shell script -- that misbehaves one way, and the
real git."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def state_of_git(root: Path) -> dict[str, str]:
    """HEAD, every ref, the index and the stash, as git prints them."""
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "symbolic": subprocess.run(
            ["git", "-C", str(root), "symbolic-ref", "-q", "HEAD"], capture_output=True, text=True
        ).stdout,
        "refs": git(root, "for-each-ref"),
        "index": git(root, "ls-files", "-s", "--debug"),
        "stash": git(root, "stash", "list"),
    }


@pytest.fixture
def repo(scripted_repo):
    return scripted_repo


def run(project, scope=("a.py",), **extra):
    ws = project.workstream(
        capability="code_generation",
        files_scope=list(scope),
        tasks=["do it"],
        capability_payload={"max_retries": 0, "timeout_ms": 20000},
        **extra,
    )
    return project.run("run", ws)


def last_record(project) -> dict:
    return [r for r in project.audit_records() if r["tool_id"] == "scripttool"][-1]


# --------------------------------------------------------------------------- kind 1: blind spots


@pytest.mark.parametrize(
    ("name", "body", "gone", "kept"),
    [
        ("forbidden-in-ignored-dir", "echo k > certs/server.key", ["certs/server.key"], []),
        (
            "forbidden-deeper",
            "mkdir -p certs/x && echo k > certs/x/srv.pem",
            ["certs/x/srv.pem"],
            [],
        ),
        ("new-file-outside", "echo x > new.txt", ["new.txt"], []),
        ("env-file", "echo S=1 > .env", [".env"], []),
        (
            "hidden-by-exclude",
            "echo h > hidden.txt; echo hidden.txt >> .git/info/exclude",
            ["hidden.txt"],
            [],
        ),
        ("self-ignoring-dir", "mkdir x; echo '*' > x/.gitignore; echo s > x/s.txt", ["x"], []),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v and "/" not in v else None,
)
def test_an_unseen_write_is_seen_reverted_and_fails(repo, name, body, gone, kept):
    repo.tool(f"echo a = 2 > a.py\n{body}")
    result = run(repo)
    assert result.exit_code == 1, result.stderr
    record = last_record(repo)
    assert record["failure"] == "out_of_scope"
    for rel in gone:
        assert not (repo.root / rel).exists(), rel
    assert repo.read("a.py") == "a = 1\n"  # the failed attempt's own change undone too
    assert (repo.root / ".git/info/exclude").read_text().count("hidden.txt") == 0


@pytest.mark.parametrize(
    "body",
    [
        "rm c.py",
        "mv src src2",
        "chmod +x c.py",
        "printf 'c = 2\\n' > c.py.new; touch -r c.py c.py.new; mv c.py.new c.py",
        "git update-index --assume-unchanged c.py; echo 'c = 9' > c.py",
        "printf '#!/bin/sh\\nexit 0\\n' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit",
        "git config core.hooksPath /tmp/evil",
        "rm -rf .venv/lib",
    ],
    ids=[
        "delete-tracked",
        "move-dir",
        "mode-change",
        "same-size-mtime-restored",
        "assume-unchanged",
        "new-hook",
        "git-config",
        "ignored-dir-entry-removed",
    ],
)
def test_tracked_and_git_side_changes_are_seen_and_undone(repo, body):
    before_git = state_of_git(repo.root)
    before_files = {p: repo.read(p) for p in ("a.py", "b.py", "c.py", "src/m.py")}
    before_mode = os.stat(repo.root / "c.py").st_mode
    repo.tool(f"echo a = 2 > a.py\n{body}")
    result = run(repo)
    if "venv" in body:  # caches in git-ignored folders may change
        assert result.exit_code == 0, result.stderr
        return
    assert result.exit_code == 1, result.stderr
    assert last_record(repo)["failure"] == "out_of_scope"
    assert state_of_git(repo.root) == before_git
    assert {p: repo.read(p) for p in before_files} == before_files
    assert os.stat(repo.root / "c.py").st_mode == before_mode
    assert not (repo.root / "src2").exists()
    assert not (repo.root / ".git/hooks/pre-commit").exists()
    assert "hooksPath" not in (repo.root / ".git/config").read_text()


def test_a_repository_git_refuses_to_read_is_still_watched(repo):
    """git's "dubious ownership": the repository belongs to another user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the repository to another user")
    subprocess.run(["chown", "-R", "nobody", str(repo.root / ".git")], check=True)
    repo.tool("echo a = 2 > a.py\necho x > c.py")
    result = run(repo)
    assert result.exit_code == 1, result.stderr
    assert repo.read("c.py") == "c = 1\n"
    # a repository too big to copy is refused before the tool runs, saying how to fix it
    repo.tool("echo a = 3 > a.py")
    refused = repo.run(
        "run",
        repo.workstream(capability="code_generation", files_scope=["a.py"], tasks=["x"]),
        env={"AIM_COPY_BUDGET_MB": "0"},
    )
    assert refused.exit_code == 2
    assert "safe.directory" in refused.stderr
    doctor = repo.run("doctor")
    assert "git cannot read this repository" in doctor.stdout
    assert "safe.directory" in doctor.stdout
    assert repo.read("a.py") == "a = 1\n"


def test_a_linked_worktree_config_and_hooks_are_watched(repo, tmp_path):
    wt = tmp_path / "wt"
    git(repo.root, "worktree", "add", "-q", str(wt))
    # the worktree holds its own copy of the registry (committed files)
    repo.tool("echo a = 2 > a.py\ngit config alias.x '!sh -c id'\necho x > .git-hook-probe")
    ws = wt / "workstreams" / "ws.json"
    ws.parent.mkdir(parents=True, exist_ok=True)
    ws.write_text(
        json.dumps(
            {
                "id": "ws-wt",
                "capability": "code_generation",
                "files_scope": ["a.py"],
                "tasks": ["x"],
                "capability_payload": {"max_retries": 0},
            }
        )
    )
    result = repo.run("run", ws, cwd=wt)
    assert result.exit_code == 1, result.stderr
    assert "alias" not in (repo.root / ".git/config").read_text()
    assert not (wt / ".git-hook-probe").exists()


def test_nothing_the_tool_writes_in_aims_own_files_widens_the_check(repo):
    registry = repo.registry
    recent = registry / "AIM_runs" / "recent"
    repo.tool(
        f"mkdir -p {recent}\n"
        f'echo \'{{"run_id": "x", "scope": ["*", ".env"], "finished": 9e12}}\''
        f" > {recent}/x.json\n"
        "echo a = 2 > a.py"
    )
    assert run(repo).exit_code == 0
    repo.tool("echo a = 3 > a.py\necho S=1 > .env")
    result = run(repo)
    assert result.exit_code == 1
    assert not (repo.root / ".env").exists()


# --------------------------------------------------------------------------- kind 5: git state


@pytest.mark.parametrize(
    "body",
    [
        "git add a.py && git commit -qm tool",
        "git add a.py && git commit -qm tool && git checkout -q -b other",
        "git checkout -q --detach",
        "git tag v9",
        "git branch extra",
        "git add a.py",
        "git rm -q --cached c.py",
    ],
    ids=["commit", "commit-and-branch", "detach", "tag", "branch", "stage", "git-rm-cached"],
)
def test_head_refs_index_and_stash_stay_and_the_change_stays_uncommitted(repo, body):
    before = state_of_git(repo.root)
    repo.tool(f"echo a = 2 > a.py\n{body}")
    result = run(repo)
    assert result.exit_code == 0, result.stderr
    assert repo.read("a.py") == "a = 2\n"  # kept, uncommitted, for the user to review
    assert state_of_git(repo.root) == before
    assert " M a.py" in git(repo.root, "status", "--porcelain").splitlines()
    assert repo.read("c.py") == "c = 1\n"
    assert last_record(repo)["result"]["content"]["git_restored"]
    assert "changed git's state" in result.stderr  # said, not only recorded


def test_a_tool_that_stashes_the_users_work_fails_and_everything_comes_back(repo):
    repo.write("b.py", "b = 'uncommitted user work'\n")
    before = state_of_git(repo.root)
    repo.tool("echo a = 2 > a.py\ngit stash -q")
    result = run(repo)
    assert result.exit_code == 1, result.stderr
    assert repo.read("b.py") == "b = 'uncommitted user work'\n"
    assert repo.read("a.py") == "a = 1\n"
    assert state_of_git(repo.root) == before


# --------------------------------------------------------------------------- kind 2: restores


def test_a_failed_runs_restore_never_touches_a_successful_runs_files(repo):
    repo.write("a.py", "a = 'user edit'\n")
    repo.write("b.py", "b = 'user edit'\n")
    # A edits a.py slowly and fails; B edits b.py meanwhile and succeeds.
    path = repo.env.bin_dir / "scripttool"
    path.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  a.py) echo a = 2 > a.py; sleep 2; exit 1;;\n"
        "  b.py) sleep 0.5; echo b = 2 > b.py; exit 0;;\n"
        "esac\n"
    )
    path.chmod(0o755)
    ws_a = repo.workstream(
        id="ws-a",
        capability="code_generation",
        files_scope=["a.py"],
        tasks=["x"],
        capability_payload={"max_retries": 0},
    )
    ws_b = repo.workstream(
        id="ws-b",
        capability="code_generation",
        files_scope=["b.py"],
        tasks=["x"],
        capability_payload={"max_retries": 0},
    )
    result = repo.run("run", ws_a, ws_b, "-j", "2")
    assert result.exit_code == 1, result.stderr
    assert repo.read("a.py") == "a = 'user edit'\n"
    assert repo.read("b.py") == "b = 2\n"


def test_untracked_files_that_cannot_be_copied_refuse_the_attempt_up_front(repo):
    repo.write("notes/big.txt", "x" * (2 * 1024 * 1024))
    repo.tool("rm -rf notes; echo a = 2 > a.py")
    ws = repo.workstream(capability="code_generation", files_scope=["a.py"], tasks=["x"])
    result = repo.run("run", ws, env={"AIM_COPY_BUDGET_MB": "1"})
    assert result.exit_code == 2, result.stderr
    assert "AIM_COPY_BUDGET_MB" in result.stderr
    assert (repo.root / "notes/big.txt").exists()
    assert repo.read("a.py") == "a = 1\n"  # the tool never ran


# --------------------------------------------------------------------------- kind 3: recovery


def _start_and_kill(repo, body, *, scope=("a.py",), wait_for="started"):
    marker = repo.root.parent / f"{wait_for}.flag"
    repo.tool(f"{body}\ntouch {marker}\nsleep 60")
    ws = repo.workstream(
        capability="code_generation",
        files_scope=list(scope),
        tasks=["x"],
        capability_payload={"max_retries": 0, "timeout_ms": 120000},
    )
    proc = subprocess.Popen(
        [os.sys.executable, "-m", "aim_core", "run", str(ws)],
        cwd=repo.root,
        env=repo.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the tool never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc


def test_recovery_undoes_a_killed_runs_changes_everywhere_once(repo):
    repo.write("dirty.txt", "user's uncommitted work\n")
    _start_and_kill(repo, "echo a = 2 > a.py; echo x > c.py; echo y > dirty.txt; echo z > new.txt")
    time.sleep(2.5)  # past the heartbeat: what changes now is the user's
    (repo.root / "b.py").write_text("b = 'typed after the crash'\n")
    results = [repo.run("status") for _ in range(3)]
    assert all(r.exit_code == 0 for r in results), [r.stderr for r in results]
    assert repo.read("a.py") == "a = 1\n"
    assert repo.read("c.py") == "c = 1\n"
    assert repo.read("dirty.txt") == "user's uncommitted work\n"
    assert not (repo.root / "new.txt").exists()
    assert repo.read("b.py") == "b = 'typed after the crash'\n"
    interrupted = [r for r in repo.audit_records() if r["failure"] == "interrupted"]
    assert len(interrupted) == 1


def test_git_refreshing_its_index_after_a_crash_is_no_change(repo):
    """``git status`` after aim was killed rewrites the index's stat data, not its
    entries: recovery neither names ``.git/index`` among what was changed after the
    run died nor keeps it from being put back (a later ``git add`` still is named)."""
    before = git(repo.root, "ls-files", "-s")
    _start_and_kill(repo, "echo a = 2 > a.py")
    time.sleep(2.5)  # past the heartbeat: what changes now is the user's
    index = repo.root / ".git" / "index"
    stamp = index.stat().st_mtime_ns
    os.utime(repo.root / "c.py")  # the same content, a new mtime: git refreshes its index
    git(repo.root, "status", "--porcelain")
    assert index.stat().st_mtime_ns != stamp  # git wrote it
    r = repo.run("recover")
    assert r.exit_code == 0, r.stderr
    assert ".git/index" not in r.stdout + r.stderr
    assert "restored a.py" in r.stdout
    assert git(repo.root, "ls-files", "-s") == before
    # an index whose entries changed after the crash is the user's: named, kept
    (repo.root.parent / "again.flag").unlink(missing_ok=True)
    _start_and_kill(repo, "echo a = 3 > a.py", wait_for="again")
    time.sleep(2.5)
    (repo.root / "staged.txt").write_text("mine\n")
    git(repo.root, "add", "staged.txt")
    r = repo.run("recover")
    assert "which ran until now): .git/index" in r.stdout, r.stdout
    assert "staged.txt" in git(repo.root, "ls-files")


def test_recovery_names_what_it_restored_escaped(repo):
    """``aim recover`` names the files it put back; names a tool chose (a newline and a
    forged log line, a screen clear, a right-to-left override) are shown escaped."""
    _start_and_kill(
        repo,
        "echo a = 2 > a.py; echo x > \"$(printf 'evil\\n[INFO] Code generation completed')\";"
        " echo y > \"$(printf 'ansi\\033[2Jx')\"; echo z > \"$(printf 'bidi\\342\\200\\256txt')\"",
    )
    r = repo.run("recover")
    assert r.exit_code == 0, r.stderr
    out = r.stdout + r.stderr
    assert "evil\\n[INFO] Code generation completed" in out, out
    assert "ansi\\x1b[2Jx" in out and "bidi\\u202etxt" in out, out
    assert not any(c in out for c in "\x1b\u202e")
    assert not [ln for ln in out.splitlines() if ln.startswith("[INFO] Code generation")]


def test_what_a_tool_wrote_after_aim_died_is_named_as_possibly_the_tools(repo):
    """A tool that ran on after ``kill -9`` of aim writes after aim's last heartbeat:
    recovery cannot tell that from your edits, so it leaves the file -- and says that
    the tool, which it stopped just now, may have written it."""
    _start_and_kill(repo, "(sleep 3; echo late > late.py) &")
    time.sleep(4.5)
    assert repo.read("late.py") == "late\n"
    r = repo.run("recover")
    assert r.exit_code == 0, r.stderr
    assert (
        "left as they are for you to review (changed after aim died, by you or by its "
        "tool, which ran until now): late.py" in r.stdout
    ), r.stdout
    assert "stopped the scripttool processes it left" in r.stdout


def test_concurrent_commands_recover_a_killed_run_once(repo):
    _start_and_kill(repo, "echo a = 2 > a.py")
    procs = [
        subprocess.Popen(
            [os.sys.executable, "-m", "aim_core", "status"],
            cwd=repo.root,
            env=repo.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(6)
    ]
    for p in procs:
        p.wait(60)
    assert len([r for r in repo.audit_records() if r["failure"] == "interrupted"]) == 1
    assert repo.read("a.py") == "a = 1\n"


def test_recovery_never_follows_a_link_out_of_the_repository(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.py").write_text("outside = 1\n")
    (outside / "keep.txt").write_text("keep\n")
    _start_and_kill(repo, f"rm -rf src; ln -s {outside} src", scope=("src/",))
    assert repo.run("recover").exit_code == 0
    assert (outside / "m.py").read_text() == "outside = 1\n"
    assert (outside / "keep.txt").read_text() == "keep\n"
    assert not (repo.root / "src").is_symlink()
    assert repo.read("src/m.py") == "m = 1\n"


# --------------------------------------------------------------------------- randomized

RANDOM_TOOL = """#!/bin/sh
ws="$1"; shift
case "$ws" in *slow*) sleep 1.5;; *) sleep 0.$(( $$ % 5 ));; esac
for f in "$@"; do printf '# %s\\n' "$ws" > "$f"; done
case "$ws" in *stray*) echo stray > "stray-$ws.txt"; echo "# $ws" > "notes-$1";; esac
case "$ws" in *shared*) echo "# $ws" > user_notes.txt;; esac
case "$ws" in *fail*) exit 1;; esac
exit 0
"""


def _random_plugin(repo) -> str:
    return (
        (repo.env.site / "aim_scripttool_plugin.py")
        .read_text()
        .replace(
            'r = context.run([context.which("scripttool"), *payload.files])',
            'r = context.run([context.which("scripttool"), payload.workstream_id, *payload.files])',
        )
    )


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in (".git", "aim", "workstreams")]
        for name in filenames:
            p = Path(dirpath, name)
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


@pytest.mark.parametrize(
    ("seed", "kinds"),
    [
        (1, ("ok", "ok", "fail", "stray", "slow")),
        (2, ("ok", "ok", "fail", "stray", "slow")),
        (3, ("ok", "fail", "shared", "slow")),
    ],
    ids=["seed1", "seed2", "shared-out-of-scope-file"],
)
def test_randomized_runs_failures_and_kills_leave_exactly_the_successful_work(repo, seed, kinds):
    import random

    import psutil

    rng = random.Random(seed)
    (repo.env.site / "aim_scripttool_plugin.py").write_text(_random_plugin(repo), encoding="utf-8")
    path = repo.env.bin_dir / "scripttool"
    path.write_text(RANDOM_TOOL, encoding="utf-8")
    path.chmod(0o755)
    files = [f"f{i}.py" for i in range(6)]
    for f in files:
        repo.write(f, f"# committed {f}\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "files")
    for f in files[::2]:
        repo.write(f, f"# user's uncommitted edit of {f}\n")
    repo.write("user_notes.txt", "untracked notes\n")
    (repo.root / ".venv" / "lib" / "cache.bin").write_bytes(os.urandom(64))
    start = _tree(repo.root)
    for round_ in range(3):
        procs = []
        for n in range(5):
            kind = rng.choice(kinds)
            scope = rng.sample(files, rng.choice([1, 1, 2]))
            ws = repo.workstream(
                id=f"ws-{seed}-{round_}-{n}-{kind}",
                capability="code_generation",
                files_scope=scope,
                tasks=["x"],
                capability_payload={"max_retries": 0, "timeout_ms": 30000},
            )
            procs.append(
                subprocess.Popen(
                    [os.sys.executable, "-m", "aim_core", "run", str(ws)],
                    cwd=repo.root,
                    env=repo.environ(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(rng.uniform(0.3, 1.5))
        for p in rng.sample(procs, 2):
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(60)
        assert repo.run("recover").exit_code == 0
    expected = dict(start)
    for record in repo.audit_records():
        if record["tool_id"] == "scripttool" and record["result"]["success"]:
            for f in record["result"]["content"]["files_modified"]:
                expected[f] = f"# {record['workstream_id']}\n".encode()
    assert _tree(repo.root) == expected
    mine = str(repo.env.bin_dir / "scripttool")  # this test's tool, not another session's
    leftovers = [
        p.info
        for p in psutil.process_iter(["pid", "cmdline"])
        if any(mine in part for part in (p.info["cmdline"] or []))
    ]
    assert not leftovers


# --------------------------------------------------------------------------- names git can't spell


@pytest.mark.parametrize(
    ("scope", "exit_code"), [(("docs/",), 0), (("a.py",), 1)], ids=["in-scope", "outside"]
)
def test_a_file_name_that_is_not_utf8_is_recorded_once(repo, scope, exit_code):
    (repo.root / "docs").mkdir()
    repo.tool("printf x > \"docs/caf$(printf '\\351').txt\"")
    result = run(repo, scope=scope)
    assert result.exit_code == exit_code, result.stderr
    records = [r for r in repo.audit_records() if r["tool_id"] == "scripttool"]
    assert len(records) == 1
    text = json.dumps(records[0])
    assert "caf\\\\xe9.txt" in text
    assert repo.run("audit", "verify").exit_code == 0
