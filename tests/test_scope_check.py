"""What a scope reaches by expansion is checked like a named file, before any tool runs.

Through the real CLI (``aim run`` in a subprocess) on a repository made by ``aim
init``: links out of the repository or to forbidden paths, forbidden files,
credentials, the size limit, special files and hard links under a directory or a
glob are refused with exit code 2, the field path and the path reached, and the
real ruff never gets to follow a link out.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from aim_core.scope_check import MAX_FILES, check_scope, expand
from aim_core.security import check_request

from .credential_corpus import SAMPLES

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and FIFOs")

FIXABLE = "import os\nx = 1\n"  # ruff --fix removes the unused import (F401)
FIXED = "x = 1\n"


@pytest.fixture
def outside(tmp_path):
    """A directory outside the repository with a file ruff would fix."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "x.py").write_text(FIXABLE)
    return d


def _lint(project, scope, **payload):
    ws = project.workstream(
        capability="linting",
        files_scope=scope,
        capability_payload={"prompt": "lint", "timeout_ms": 60000, "max_retries": 0, **payload},
    )
    return project.run("run", ws)


def _refused(r, project, field: str, path: str, text: str) -> dict:
    """The run was refused naming ``field`` and ``path``; returns the audit record."""
    r.assert_exit(2)
    assert f"{field}: " in r.stderr and f"'{path}" in r.stderr and text in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    [record] = project.audit_records()
    assert record["failure"] == "invalid_payload" and record["tool_id"] is None
    assert f"/{path}" in record["result"]["content"]["refused_paths"], record
    return record


# --------------------------------------------------------------------------- the real ruff


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not on PATH")
@pytest.mark.parametrize("scope", ["src/", "src/*.py", "src/**/*.py", "src"])
def test_ruff_never_follows_a_link_out_of_the_repository(aim_project, outside, scope):
    project = aim_project(files={"src/a.py": FIXABLE}, plugins=["ruff"])
    os.symlink(outside / "x.py", project.path("src/link.py"))
    r = _lint(project, [scope])
    _refused(r, project, "files_scope[0]", "src/link.py", "leads outside the repository")
    assert (outside / "x.py").read_text() == FIXABLE  # ruff did not rewrite it
    assert project.read("src/a.py") == FIXABLE  # nothing ran at all


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not on PATH")
def test_control_without_the_link_ruff_runs_and_fixes(aim_project, outside):
    """The same workstream without the link: ruff runs and fixes (the test above can fail)."""
    project = aim_project(files={"src/a.py": FIXABLE, "src/b.py": "y = 2\n"}, plugins=["ruff"])
    os.symlink("b.py", project.path("src/same.py"))  # a link inside the repository is fine
    r = _lint(project, ["src/"])
    r.assert_success()
    assert project.read("src/a.py") == FIXED


# --------------------------------------------------------------------------- variants


def _prepare(project, outside: Path, name: str) -> tuple[str, str, str]:
    """Set up one variant; returns (scope entry, path reached, text of the refusal)."""
    src = project.path("src")
    if name == "dir-link-out":
        os.symlink(outside, src / "ext")
        return "src/", "src/ext", "leads outside the repository"
    if name == "nested-link-out":
        (src / "pkg" / "sub").mkdir(parents=True)
        os.symlink(outside / "x.py", src / "pkg" / "sub" / "deep.py")
        return "src/", "src/pkg/sub/deep.py", "leads outside the repository"
    if name == "dangling-link-out":  # a tool writing it would create a file outside
        os.symlink(outside / "new.py", src / "new.py")
        return "src/*.py", "src/new.py", "leads outside the repository"
    if name == "link-to-forbidden":
        project.write(".env", "X=1\n")
        os.symlink("../.env", src / "settings.py")
        return "src/", "src/settings.py", "is a symlink to the forbidden path '/.env'"
    if name == "dir-link-to-forbidden-inside":
        project.write("config/.env", "X=1\n")
        os.symlink("../config", src / "conf")
        return "src/", "src/conf/.env", "is a forbidden path (rule '.env')"
    if name == "link-loop":
        os.symlink("loop2.py", src / "loop1.py")
        os.symlink("loop1.py", src / "loop2.py")
        return "src/", "src/loop1.py", "cannot be resolved"
    if name == "forbidden-file":
        project.write("src/.env", "X=1\n")
        return "src/", "src/.env", "is a forbidden path (rule '.env')"
    if name == "forbidden-key-nested":
        project.write("src/certs/server.key", "k\n")
        return "src/", "src/certs/server.key", "is a forbidden path (rule '*.key')"
    if name == "nested-git-dir":
        project.write("src/vendor/.git/config", "[core]\n")
        return "src/", "src/vendor/.git", "is a forbidden path (rule '.git/')"
    if name == "hard-link-out":
        os.link(outside / "x.py", src / "hard.py")
        return "src/", "src/hard.py", "hard links"
    raise AssertionError(name)


VARIANTS = [
    "dir-link-out",
    "nested-link-out",
    "dangling-link-out",
    "link-to-forbidden",
    "dir-link-to-forbidden-inside",
    "link-loop",
    "forbidden-file",
    "forbidden-key-nested",
    "nested-git-dir",
    "hard-link-out",
]


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_are_refused_before_any_tool_runs(aim_project, fake_tool, outside, name):
    project = aim_project(files={"src/a.py": "x = 1\n"}, plugins=["ruff"])
    ruff = fake_tool("ruff", version="0.6.0", writes={"src/a.py": "changed\n"})
    entry, path, text = _prepare(project, outside, name)
    r = _lint(project, [entry])
    _refused(r, project, "files_scope[0]", path, text)
    assert ruff.work_calls == []
    assert (outside / "x.py").read_text() == FIXABLE


@pytest.mark.parametrize(
    "capability", ["code_generation", "linting", "refactoring", "testing", "version_checking"]
)
def test_every_first_party_capability_is_checked(aim_project, fake_tool, outside, capability):
    """The check is the core's, for every plugin: no tool of any route is called."""
    project = aim_project(files={"src/a.py": "x = 1\n"})  # every installed plugin
    tools = [fake_tool(name) for name in ("aider", "claude", "jules", "pytest", "ruff", "pylint")]
    os.symlink(outside / "x.py", project.path("src/link.py"))
    ws = project.workstream(
        capability=capability,
        files_scope=["src/"],
        capability_payload={"prompt": "work on src", "timeout_ms": 60000, "max_retries": 0},
    )
    r = project.run("run", ws)
    _refused(r, project, "files_scope[0]", "src/link.py", "leads outside the repository")
    probes = (["auth", "status"],)  # readiness checks, not work
    work = {t.name: [c for c in t.work_calls if c["argv"] not in probes] for t in tools}
    assert {name: calls for name, calls in work.items() if calls} == {}


def test_payload_files_pointing_into_a_directory(aim_project, fake_tool, outside):
    project = aim_project(files={"src/a.py": "x = 1\n", "src/pkg/b.py": "y = 1\n"})
    fake_tool("ruff", version="0.6.0")
    os.symlink(outside / "x.py", project.path("src/pkg/link.py"))
    r = _lint(project, ["src/a.py", "src/pkg/"], files=["src/pkg/"])
    _refused(r, project, "capability_payload.files[0]", "src/pkg/link.py", "leads outside")


def test_credentials_in_a_file_under_the_scope(aim_project, fake_tool):
    key = SAMPLES["aws-access-credential"]
    project = aim_project(files={"src/a.py": "x = 1\n", "src/deep/keys.py": f"KEY = '{key}'\n"})
    fake_tool("ruff", version="0.6.0")
    r = _lint(project, ["src/"])
    record = _refused(r, project, "files_scope[0]", "src/deep/keys.py", "aws-access-credential")
    assert key not in r.stderr and key not in r.stdout and key not in json.dumps(record)


def test_size_limit_counts_the_files_under_the_scope(aim_project, fake_tool):
    project = aim_project(files={"src/a.py": "x = 1\n"})
    fake_tool("ruff", version="0.6.0")
    project.write("src/data/big.json", "[" + "1," * (5 * 1024 * 1024 // 2) + "1]")
    r = _lint(project, ["src/"])
    _refused(r, project, "files_scope[0]", "src/data/big.json", "over max_payload_bytes 1048576")


def test_cache_directories_are_not_counted(aim_project, fake_tool):
    project = aim_project(files={"src/a.py": "x = 1\n"})
    ruff = fake_tool("ruff", version="0.6.0")
    project.write("src/__pycache__/a.cpython-311.pyc", "x" * (2 * 1024 * 1024))
    _lint(project, ["src/"]).assert_success()
    assert len(ruff.work_calls) == 1


@pytest.mark.parametrize("kind", ["fifo", "socket"])
@pytest.mark.parametrize("named", [False, True], ids=["under-a-dir", "named"])
def test_special_files_are_refused_and_never_block(
    aim_project, fake_tool, monkeypatch, kind, named
):
    project = aim_project(files={"src/a.py": "x = 1\n"})
    ruff = fake_tool("ruff", version="0.6.0")
    if kind == "fifo":
        os.mkfifo(project.path("src/special.py"))
    else:
        monkeypatch.chdir(project.path("src"))  # a short path: AF_UNIX allows 108 bytes
        sock = socket.socket(socket.AF_UNIX)
        sock.bind("special.py")
    try:
        r = _lint(project, ["src/special.py"] if named else ["src/"])
        what = "a FIFO (named pipe)" if kind == "fifo" else "a socket"
        _refused(r, project, "files_scope[0]", "src/special.py", f"is {what}")
        assert ruff.work_calls == []
    finally:
        if kind == "socket":
            sock.close()


# --------------------------------------------------------------------------- bounds


def test_a_scope_past_the_limit_is_refused_with_a_clear_message(tmp_path):
    root = tmp_path / "repo"
    big = root / "src" / "many"
    for i in range(MAX_FILES // 1000 + 1):
        d = big / f"d{i}"
        d.mkdir(parents=True)
        for j in range(1000):
            (d / f"f{j}.py").touch()
    payload = _payload(files_scope=("src/",))
    [problem] = check_scope(payload, root, {"forbidden_paths": [".env"]})
    assert problem.field == "files_scope[0]" and problem.path == "src/"
    assert f"reaches more than {MAX_FILES} files" in problem.message
    assert "narrow it" in problem.message


def test_expansion_does_not_leave_the_repository(tmp_path, outside):
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    os.symlink(outside, root / "src" / "ext")
    os.symlink(root / "src", root / "src" / "self")  # a loop inside: walked once
    found = expand(root, "src/", [".env"])
    assert [rel for rel, _ in found.problems] == ["src/ext"]
    assert found.files == []


def _payload(**fields):
    from aim_core.models import Invocation

    fields.setdefault("prompt", "p")
    fields.setdefault("files", fields.get("files_scope", ()))
    return Invocation(**fields)


def test_named_files_are_still_checked_by_check_request(tmp_path):
    """The new check leaves named entries to check_request: one objection each, not two."""
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / ".env").write_text("X=1\n")
    payload = _payload(files_scope=("src/.env",))
    security = {"forbidden_paths": [".env"]}
    assert len(check_request(payload, root, security)) == 1
    assert check_scope(payload, root, security) == []


def test_a_fifo_does_not_hang_the_check(tmp_path):
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    os.mkfifo(root / "src" / "pipe.py")
    start = time.monotonic()
    [problem] = check_scope(_payload(files_scope=("src/",)), root, {})
    assert "FIFO" in problem.message and time.monotonic() - start < 5


def test_a_glob_that_makes_aim_look_too_far_is_refused(tmp_path, monkeypatch):
    from aim_core import scope_check

    monkeypatch.setattr(scope_check, "MAX_ENTRIES", 100)  # instead of 200 000 files on disk
    root = tmp_path / "repo"
    for i in range(150):
        (root / "src" / f"d{i}").mkdir(parents=True)
    payload = _payload(files_scope=("src/**/*.txt",))
    [problem] = check_scope(payload, root, {})
    assert "makes aim look at more than 100" in problem.message
    assert problem.field == "files_scope[0]"


@pytest.mark.parametrize("entry", [".", "./", "./src/../"])
def test_the_whole_repository_as_a_scope_reaches_git_and_the_registry(aim_project, entry):
    project = aim_project(files={"src/a.py": "x = 1\n"})
    (project.root / ".git").mkdir(exist_ok=True)
    payload = _payload(files_scope=(entry,))
    problems = check_scope(
        payload, project.root, {"forbidden_paths": [".git/", "aim/.AIM_ai-tools-registry/"]}
    )
    if ".." in entry:
        assert problems == []  # '..' is check_request's to refuse
        return
    assert {p.path for p in problems} == {".git", "aim/.AIM_ai-tools-registry"}
    assert all(p.field == "files_scope[0]" for p in problems)


def test_the_whole_repository_as_scope_says_which_entry_and_what_to_do(aim, tmp_path):
    """`files_scope: ["."]` reaches .git/: the message names the entry that reached it
    and the fix (it said only "'.git/' is a forbidden path")."""
    import json
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    ws = tmp_path / "ws.json"
    data = {"id": "ws-all", "capability": "code_generation", "files_scope": ["."], "tasks": ["t"]}
    ws.write_text(json.dumps(data))
    r = aim("validate", str(ws), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "files_scope[0]: '.git/' is a forbidden path" in out
    assert "name the files or directories the tool may change" in out and "(inside '.')" in out
