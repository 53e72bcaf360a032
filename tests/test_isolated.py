"""``IsolatedWorkspace``: an attempt in its own copy of the repository. Real git
repositories in temporary directories; the "tool" is this test writing into the
copy, as a tool's process would."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from aim_core import isolated
from aim_core.isolated import (
    ApplyConflict,
    ApplyRefused,
    CopySource,
    IsolatedWorkspace,
    remove_leftover_copy,
)
from aim_core.models import FileChanges
from aim_core.scope import Scope
from aim_core.treestate import WorkspaceRefused


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def make_repo(path: Path, files: dict[str, str], ignore: str = ".venv/\n.env\n") -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text(ignore)
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


@pytest.fixture
def user(tmp_path):
    """A repository with commits, and uncommitted work of every kind."""
    root = make_repo(
        tmp_path / "repo",
        {"a.py": "a = 1\n", "b.py": "b = 1\n", "c.py": "c = 1\n", "src/m.py": "m = 1\n"},
    )
    (root / "a.py").write_text("a = 2  # edited, not staged\n")
    (root / "b.py").write_text("b = 2  # staged\n")
    git(root, "add", "b.py")
    (root / "c.py").unlink()
    (root / "notes.txt").write_text("untracked\n")
    (root / ".env").write_text("TOKEN=x\n")
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "tool").write_text("#!/bin/sh\necho venv tool\n")
    (venv / "bin" / "tool").chmod(0o755)
    (venv / "lib").mkdir()
    for n in range(30):
        (venv / "lib" / f"m{n}.py").write_text(f"x = {n}\n")
    return root


@pytest.fixture
def small_links(monkeypatch):
    """Ignored directories over 10 entries count as big (linked) in these tests."""
    monkeypatch.setattr(isolated, "LINK_MIN_FILES", 10)


def open_ws(root: Path, tmp_path: Path, scope=("a.py", "src/"), **kw) -> IsolatedWorkspace:
    return IsolatedWorkspace(root, Scope(root, list(scope)), tmp_path / "state" / "copy", **kw)


def tree_of(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under ``root`` but .git: mode and content (or link target)."""
    out: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            out[rel] = (
                st.st_mode,
                os.readlink(p) if p.is_symlink() else p.read_bytes(),
            )
    return out


def git_state(root: Path) -> tuple[str, ...]:
    return (
        git(root, "rev-parse", "HEAD"),
        git(root, "symbolic-ref", "-q", "HEAD"),
        git(root, "for-each-ref"),
        git(root, "ls-files", "-s"),
        git(root, "stash", "list"),
        (root / ".git" / "config").read_text(),
    )


# --------------------------------------------------------------------------- the copy


def test_the_copy_holds_the_users_current_state(user, tmp_path, small_links):
    ws = open_ws(user, tmp_path)
    try:
        assert ws.kind == "clone"
        copy = ws.root
        assert copy != user and not copy.resolve().is_relative_to(user.resolve())
        assert (copy / "a.py").read_text() == "a = 2  # edited, not staged\n"
        assert (copy / "b.py").read_text() == "b = 2  # staged\n"
        assert not (copy / "c.py").exists()
        assert (copy / "notes.txt").read_text() == "untracked\n"
        assert (copy / ".env").read_text() == "TOKEN=x\n"  # small ignored files: copied
        # git in the copy sees what git sees in the user's tree
        assert git(copy, "status", "--porcelain") == git(user, "status", "--porcelain")
        assert git(copy, "diff", "--cached", "--name-only") == "b.py\n"
        assert git(copy, "rev-parse", "HEAD") == git(user, "rev-parse", "HEAD")
        assert git(copy, "symbolic-ref", "HEAD") == "refs/heads/main\n"
    finally:
        ws.discard()


def test_a_big_ignored_environment_is_linked_and_a_write_through_it_is_seen(
    user, tmp_path, small_links
):
    before = tree_of(user)
    ws = open_ws(user, tmp_path)
    try:
        assert ws.linked == [".venv"]
        assert (ws.root / ".venv").is_symlink()
        out = subprocess.run([str(ws.root / ".venv/bin/tool")], capture_output=True, text=True)
        assert out.stdout == "venv tool\n"
        assert ws.outside() == []
        # bytecode caches (what running the checks writes) are allowed
        (ws.root / ".venv/lib/__pycache__").mkdir()
        (ws.root / ".venv/lib/__pycache__/m1.cpython-311.pyc").write_bytes(b"pyc")
        assert ws.outside() == []
        (ws.root / ".venv/lib/m3.py").write_text("tampered\n")  # through the link
        (ws.root / ".venv/lib/planted.pth").write_text("import os\n")
        found = ws.outside()
        assert found == [".venv/lib/m3.py", ".venv/lib/planted.pth"]
        reverted, stuck = ws.revert_outside(found)
        assert reverted == [] and stuck == found  # it reached the user's tree: named
    finally:
        ws.discard()
    assert (user / ".venv").is_dir() and not (user / ".venv").is_symlink()
    after = tree_of(user)
    assert {k for k in set(before) ^ set(after)} == {
        ".venv/lib/planted.pth",
        ".venv/lib/__pycache__/m1.cpython-311.pyc",
    }


def test_a_small_ignored_directory_is_copied(tmp_path):
    root = make_repo(tmp_path / "repo", {"a.py": "a\n"}, ignore="build/\n")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("built\n")
    ws = open_ws(root, tmp_path)
    try:
        assert ws.linked == []
        assert not (ws.root / "build").is_symlink()
        (ws.root / "build" / "out.txt").write_text("rebuilt\n")
        assert ws.outside() == []  # git-ignored: may change (in the copy only)
        assert (root / "build" / "out.txt").read_text() == "built\n"
    finally:
        ws.discard()


def test_links_named_by_the_caller(user, tmp_path):
    ws = open_ws(user, tmp_path, links=[".venv"])
    try:
        assert ws.linked == [".venv"] and (ws.root / ".venv").is_symlink()
        assert "?? .venv" not in git(ws.root, "status", "--porcelain")
    finally:
        ws.discard()


# --------------------------------------------------------------------------- the attempt


def test_the_tools_edits_stay_in_the_copy_until_keep(user, tmp_path, small_links):
    before = tree_of(user)
    ws = open_ws(user, tmp_path, scope=("a.py", "src/", "new.py"))
    try:
        (ws.root / "a.py").write_text("a = 3  # the tool\n")
        (ws.root / "new.py").write_text("print('new')\n")
        (ws.root / "new.py").chmod(0o755)
        (ws.root / "src/m.py").unlink()
        (ws.root / "src/deep").mkdir()
        (ws.root / "src/deep/n.py").write_text("n = 1\n")
        changes = ws.changes()
        assert changes.created == ("new.py", "src/deep/n.py")
        assert changes.modified == ("a.py",)
        assert changes.deleted == ("src/m.py",)
        assert ws.outside() == []
        assert ws.diff_size() == 5  # a: -1 +1, new.py +1, n.py +1, m.py -1
        assert tree_of(user) == before  # nothing reached the user yet
        assert ws.restore() == [] and tree_of(user) == before
        ws.keep()
    finally:
        ws.discard()
    assert (user / "a.py").read_text() == "a = 3  # the tool\n"
    assert (user / "new.py").read_text() == "print('new')\n"
    assert stat.S_IMODE((user / "new.py").stat().st_mode) == 0o755
    assert (user / "src/deep/n.py").read_text() == "n = 1\n"
    assert not (user / "src/m.py").exists()
    # the user's other uncommitted work is as it was, staged state included
    assert (user / "b.py").read_text() == "b = 2  # staged\n"
    assert git(user, "diff", "--cached", "--name-only") == "b.py\n"
    assert not (user / "c.py").exists() and (user / "notes.txt").exists()
    assert not [p for p in tree_of(user) if ".aim-apply-" in p]


def test_a_mode_change_and_a_deleted_directory_are_applied(tmp_path):
    root = make_repo(tmp_path / "repo", {"run.sh": "echo\n", "old/x.py": "x\n"})
    ws = open_ws(root, tmp_path, scope=("run.sh", "old/"))
    try:
        (ws.root / "run.sh").chmod(0o755)
        (ws.root / "old/x.py").unlink()
        (ws.root / "old").rmdir()
        assert ws.changes().modified == ("run.sh",)
        assert ws.outside() == []
        ws.keep()
    finally:
        ws.discard()
    assert stat.S_IMODE((root / "run.sh").stat().st_mode) == 0o755
    assert not (root / "old").exists()


def test_changes_outside_the_scope_are_reported_and_never_applied(user, tmp_path, small_links):
    before = tree_of(user)
    ws = open_ws(user, tmp_path, forbidden=[".env"], scratch=[".cache/"])
    try:
        (ws.root / "b.py").write_text("outside\n")
        (ws.root / "notes.txt").unlink()
        (ws.root / ".env").write_text("TOKEN=stolen\n")  # ignored, but forbidden
        (ws.root / ".cache").mkdir()
        (ws.root / ".cache/x").write_text("scratch\n")
        found = ws.outside()
        assert found == [".env", "b.py", "notes.txt"]
        assert ws.revert_outside(found) == (found, [])
        assert ws.changes() == FileChanges()
        ws.keep()  # nothing in scope changed: nothing applied
    finally:
        ws.discard()
    assert tree_of(user) == before


def test_keep_refuses_when_the_user_edited_a_target_meanwhile(user, tmp_path):
    ws = open_ws(user, tmp_path, scope=("a.py", "src/", "new.py"))
    try:
        (ws.root / "a.py").write_text("the tool\n")
        (ws.root / "new.py").write_text("new\n")
        (ws.root / "src/m.py").unlink()
        (user / "a.py").write_text("the user kept typing\n")
        before = tree_of(user)
        with pytest.raises(ApplyConflict) as e:
            ws.keep()
        assert e.value.paths == ("a.py",)
        assert "a.py" in str(e.value) and e.value.exit_code == 1
        assert tree_of(user) == before  # nothing applied, no temporary file
    finally:
        ws.discard()


def test_keep_refuses_a_file_the_user_created_meanwhile(user, tmp_path):
    ws = open_ws(user, tmp_path, scope=("new.py",))
    try:
        (ws.root / "new.py").write_text("the tool\n")
        (user / "new.py").write_text("the user\n")
        with pytest.raises(ApplyConflict):
            ws.keep()
        assert (user / "new.py").read_text() == "the user\n"
    finally:
        ws.discard()


# --------------------------------------------------------------------------- links


def test_a_scope_directory_replaced_by_a_link_in_the_copy_is_refused(user, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.py").write_text("outside\n")
    ws = open_ws(user, tmp_path, scope=("src/",))
    try:
        os.rename(ws.root / "src", ws.root / "src.old")
        os.symlink(outside, ws.root / "src")
        (ws.root / "src/m.py").write_text("written through the link\n")  # the tool's doing
        before = tree_of(user)
        with pytest.raises(ApplyRefused) as e:
            ws.keep()
        assert "src" in e.value.paths
        assert tree_of(user) == before
    finally:
        ws.discard()
    assert (outside / "m.py").exists()  # discard never follows a link
    assert not (user / "src").is_symlink()


def test_a_file_replaced_by_a_link_in_the_copy_is_refused(user, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the repository\n")
    ws = open_ws(user, tmp_path, scope=("a.py",))
    try:
        (ws.root / "a.py").unlink()
        os.symlink(secret, ws.root / "a.py")
        with pytest.raises(ApplyRefused):
            ws.keep()
        assert (user / "a.py").read_text() == "a = 2  # edited, not staged\n"
    finally:
        ws.discard()


def test_a_scope_directory_the_user_replaced_by_a_link_is_refused(user, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    ws = open_ws(user, tmp_path, scope=("src/",))
    try:
        (ws.root / "src/new.py").write_text("new\n")
        os.rename(user / "src", tmp_path / "src.moved")
        os.symlink(outside, user / "src")
        with pytest.raises(ApplyRefused):
            ws.keep()
        assert list(outside.iterdir()) == []
    finally:
        ws.discard()


# --------------------------------------------------------------------------- git


def test_the_tools_git_commands_stay_in_the_copy(user, tmp_path):
    before = git_state(user)
    ws = open_ws(user, tmp_path)
    try:
        (ws.root / "a.py").write_text("committed by the tool\n")
        git(ws.root, "commit", "-qam", "the tool's commit")
        git(ws.root, "checkout", "-q", "-b", "tool-branch")
        git(ws.root, "tag", "tool-tag")
        git(ws.root, "stash", "list")
        assert ws.outside() == []  # the copy's HEAD, refs and index: harmless
        git(ws.root, "config", "core.pager", "evil")
        (ws.root / ".git/hooks/pre-commit").write_text("#!/bin/sh\n")
        assert ws.outside() == [".git/config", ".git/hooks/pre-commit"]
        assert ws.changes().modified == ("a.py",)
        ws.keep()
    finally:
        ws.discard()
    assert git_state(user) == before
    assert "tool-branch" not in git(user, "branch", "--list")
    assert (user / "a.py").read_text() == "committed by the tool\n"  # kept uncommitted
    assert git(user, "status", "--porcelain", "a.py") == " M a.py\n"


def test_discard_leaves_nothing(user, tmp_path, small_links):
    copy_dir = tmp_path / "state" / "copy"
    worktrees = git(user, "worktree", "list", "--porcelain")
    ws = open_ws(user, tmp_path)
    (ws.root / ".git/readonly").mkdir()
    (ws.root / ".git/readonly/f").write_text("x")
    (ws.root / ".git/readonly").chmod(0o500)
    ws.discard()
    assert not copy_dir.exists()
    assert git(user, "worktree", "list", "--porcelain") == worktrees
    assert (user / ".venv/bin/tool").exists()
    assert not (user / ".git/objects/info/alternates").exists()


def test_the_repository_of_a_linked_worktree(tmp_path):
    main = make_repo(tmp_path / "main", {"a.py": "a\n"})
    wt = tmp_path / "wt"
    git(main, "worktree", "add", "-q", "-b", "side", str(wt))
    (wt / "a.py").write_text("edited in the worktree\n")
    ws = open_ws(wt, tmp_path)
    try:
        assert ws.kind == "clone"
        assert (ws.root / "a.py").read_text() == "edited in the worktree\n"
        assert git(ws.root, "symbolic-ref", "HEAD") == "refs/heads/side\n"
        (ws.root / "a.py").write_text("the tool\n")
        ws.keep()
    finally:
        ws.discard()
    assert (wt / "a.py").read_text() == "the tool\n"
    assert len(git(main, "worktree", "list").splitlines()) == 2


def test_a_root_below_the_top_of_the_repository(tmp_path):
    top = make_repo(tmp_path / "top", {"pkg/a.py": "a\n", "other.py": "o\n"})
    (top / "other.py").write_text("edited\n")
    root = top / "pkg"
    ws = open_ws(root, tmp_path, scope=("a.py",))
    try:
        assert ws.root.name == "pkg" and (ws.root / "a.py").exists()
        assert (ws.root.parent / "other.py").read_text() == "edited\n"
        (ws.root / "a.py").write_text("the tool\n")
        ws.keep()
    finally:
        ws.discard()
    assert (root / "a.py").read_text() == "the tool\n"


def test_a_repository_without_commits(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "a.py").write_text("a\n")
    git(root, "add", "a.py")
    (root / "b.py").write_text("b\n")
    ws = open_ws(root, tmp_path, scope=("a.py",))
    try:
        assert ws.kind == "clone"
        assert (ws.root / "a.py").read_text() == "a\n" and (ws.root / "b.py").exists()
        assert git(ws.root, "diff", "--cached", "--name-only") == "a.py\n"
        (ws.root / "a.py").write_text("the tool\n")
        ws.keep()
    finally:
        ws.discard()
    assert (root / "a.py").read_text() == "the tool\n"


# --------------------------------------------------------------------------- outside git


def test_a_directory_outside_git_is_copied(tmp_path, monkeypatch):
    monkeypatch.setattr(isolated, "LINK_MIN_FILES", 10)
    root = tmp_path / "plain"
    (root / "node_modules" / "pkg").mkdir(parents=True)
    for n in range(20):
        (root / "node_modules" / "pkg" / f"f{n}.js").write_text("x\n")
    (root / "a.py").write_text("a\n")
    (root / "b.py").write_text("b\n")
    os.symlink("a.py", root / "alias.py")
    ws = open_ws(root, tmp_path, scope=("a.py",))
    try:
        assert ws.kind == "copy"
        assert ws.linked == ["node_modules"]
        assert os.readlink(ws.root / "alias.py") == "a.py"
        (ws.root / "a.py").write_text("the tool\n")
        (ws.root / "b.py").write_text("outside\n")
        (ws.root / "node_modules/pkg/f1.js").write_text("through the link\n")
        assert ws.outside() == ["b.py", "node_modules/pkg/f1.js"]
        (ws.root / "b.py").write_text("b\n")
        ws.keep()
    finally:
        ws.discard()
    assert (root / "a.py").read_text() == "the tool\n"
    assert (root / "b.py").read_text() == "b\n"


def test_a_repository_git_cannot_read_falls_back_to_a_plain_copy(tmp_path):
    root = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    (root / "a.py").write_text("edited\n")
    (root / ".git" / "HEAD").write_text("garbage\n")  # git: "not a git repository"
    assert subprocess.run(["git", "-C", str(root), "status"], capture_output=True).returncode
    ws = open_ws(root, tmp_path, scope=("a.py",))
    try:
        assert ws.kind == "copy"
        assert (ws.root / "a.py").read_text() == "edited\n"
        assert (ws.root / ".git" / "objects").is_dir()
        (ws.root / "a.py").write_text("the tool\n")
        assert ws.outside() == []
        ws.keep()
    finally:
        ws.discard()
    assert (root / "a.py").read_text() == "the tool\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the repository away")
def test_a_repository_of_another_owner_dubious_ownership(tmp_path):
    root = make_repo(tmp_path / "repo", {"a.py": "a\n"})
    (root / "a.py").write_text("edited\n")
    env = {k: v for k, v in os.environ.items() if k != "SUDO_UID"}
    os.chown(root, 65534, 65534)
    try:
        r = subprocess.run(["git", "-C", str(root), "status"], capture_output=True, env=env)
        if r.returncode == 0:
            pytest.skip("git reads this repository anyway (safe.directory is set)")
        ws = open_ws(root, tmp_path, scope=("a.py",))
        try:
            assert ws.kind == "copy" and (ws.root / "a.py").read_text() == "edited\n"
            assert subprocess.run(["git", "-C", str(ws.root), "status"]).returncode == 0
        finally:
            ws.discard()
    finally:
        os.chown(root, 0, 0)


# --------------------------------------------------------------------------- errors, recovery


def test_a_copy_inside_the_repository_is_refused(user):
    with pytest.raises(WorkspaceRefused):
        IsolatedWorkspace(user, Scope(user, ["a.py"]), user / "copy")
    assert not (user / "copy").exists()


def test_a_leftover_copy_is_removed(user, tmp_path, small_links):
    copy_dir = tmp_path / "state" / "copy"
    ws = open_ws(user, tmp_path)
    (ws.root / "a.py").write_text("the tool\n")
    del ws  # the run died: nobody discards it
    done = remove_leftover_copy(copy_dir)
    assert done.removed and done.finished == () and not copy_dir.exists()
    assert (user / "a.py").read_text() == "a = 2  # edited, not staged\n"
    assert (user / ".venv/bin/tool").exists()
    assert remove_leftover_copy(copy_dir).removed  # twice: nothing there, fine


def test_an_apply_cut_short_is_finished_by_recovery(user, tmp_path, monkeypatch):
    copy_dir = tmp_path / "state" / "copy"
    ws = open_ws(user, tmp_path, scope=("a.py", "src/", "new.py"))
    (ws.root / "a.py").write_text("the tool\n")
    (ws.root / "new.py").write_text("new\n")
    (ws.root / "src/m.py").unlink()
    real_replace = os.replace
    calls = []

    def dying_replace(src, dst):  # the process is killed after its first rename
        if ".aim-apply-" in str(src):
            if calls:
                raise SystemExit("killed")
            calls.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(SystemExit):
        ws.keep()
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(calls) == 1
    done = remove_leftover_copy(copy_dir)
    assert done.finished == ("a.py", "new.py", "src/m.py") and done.left == ()
    assert (user / "a.py").read_text() == "the tool\n"
    assert (user / "new.py").read_text() == "new\n"
    assert not (user / "src/m.py").exists()
    assert not [p for p in tree_of(user) if ".aim-apply-" in p]
    assert not copy_dir.exists()


def test_the_copy_knows_the_repositorys_own_git_identity(tmp_path):
    """A tool's `git commit` in the copy works as in the repository (user.name and
    user.email of the repository's own config; nothing else of it)."""
    import subprocess

    from aim_core.isolated import IsolatedWorkspace
    from aim_core.scope import Scope

    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("config", "user.name", "Repo Person")
    run("config", "user.email", "repo@example.invalid")
    run("config", "alias.x", "!touch /tmp/never")
    (repo / "a.py").write_text("a = 1\n")
    run("add", "-A")
    run("commit", "-qm", "init")
    ws = IsolatedWorkspace(repo, Scope(repo, ["a.py"]), tmp_path / "copy")
    try:
        got = subprocess.run(
            ["git", "-C", str(ws.root), "config", "--local", "user.name"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert got == "Repo Person"
        alias = subprocess.run(
            ["git", "-C", str(ws.root), "config", "--local", "alias.x"], capture_output=True
        )
        assert alias.returncode != 0
    finally:
        ws.discard()


def _logging_git(tmp_path: Path, monkeypatch) -> Path:
    """Every git command aim runs, logged by a script first on PATH that runs the real
    git: the log's path."""
    real = shutil.which("git")
    assert real is not None
    bindir = tmp_path / "logging-bin"
    bindir.mkdir()
    log = tmp_path / "git.log"
    script = bindir / "git"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def _reads_of(log: Path, root: Path) -> list[str]:
    """The git commands logged that read the repository ``root`` itself."""
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split(f"-C {root} ", 1)[1].split()[0] for line in lines if f"-C {root} " in line]


def test_copies_made_together_read_the_repository_once(user, tmp_path, small_links, monkeypatch):
    """A race's first copies share one reading of your tree (:class:`CopySource`): git
    runs its status, HEAD, identity and index listing once for all of them, and each
    copy is what a copy made alone is -- uncommitted work, a skip-worktree file, the
    branch, the identity, the linked environment and its fingerprint."""
    git(user, "config", "user.name", "Repo Person")
    git(user, "update-index", "--skip-worktree", "src/m.py")
    (user / "src/m.py").write_text("m = 2  # git does not look\n")
    log = _logging_git(tmp_path, monkeypatch)
    alone = open_ws(user, tmp_path / "alone")
    reads_alone = sorted(_reads_of(log, user))
    log.unlink()
    source = CopySource(user)
    made: dict[int, IsolatedWorkspace] = {}

    def make(n: int) -> None:
        made[n] = open_ws(user, tmp_path / f"together-{n}", source=source)

    threads = [threading.Thread(target=make, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(made) == [0, 1, 2]
        assert sorted(_reads_of(log, user)) == reads_alone  # once for the three
        assert {"status", "ls-files", "rev-parse"} <= set(reads_alone)
        for ws in made.values():
            assert ws.kind == "clone" and ws.linked == alone.linked == [".venv"]
            assert tree_of(ws.root) == tree_of(alone.root)
            assert (ws.root / "src/m.py").read_text() == "m = 2  # git does not look\n"
            assert git(ws.root, "symbolic-ref", "HEAD") == "refs/heads/main\n"
            assert git(ws.root, "rev-parse", "HEAD") == git(user, "rev-parse", "HEAD")
            assert git(ws.root, "config", "--local", "user.name") == "Repo Person\n"
        (user / ".venv/lib/m3.py").write_text("tampered\n")  # as through any copy's link
        for ws in (alone, *made.values()):
            assert ws.outside() == [".venv/lib/m3.py"]
    finally:
        for ws in (alone, *made.values()):
            ws.discard()


def test_a_copy_source_is_for_its_own_repository(user, tmp_path):
    other = make_repo(tmp_path / "other", {"a.py": "a = 1\n"})
    with pytest.raises(ValueError, match="CopySource"):
        open_ws(other, tmp_path, source=CopySource(user))
    assert not (tmp_path / "state" / "copy").exists()
