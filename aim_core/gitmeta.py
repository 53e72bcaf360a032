"""What git knows about a repository, read for an attempt: ignored directories and
dirty files (``git status``), and git's own state (HEAD, refs, the index, the
stash, config, hooks, info/) kept as copies so that an attempt leaves it as it was.

A linked worktree (``.git`` is a file) has its own HEAD and index in its git
directory and shares refs, config and hooks with the main one (its common
directory); both are watched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from aim_core.values import Value

# Git's own state an attempt must leave as it was, relative to the git directory
# (per worktree) or the common directory (shared). Objects are not listed: new ones
# change nothing a user sees.
WORKTREE_STATE = ("HEAD", "ORIG_HEAD", "index", "config.worktree", "logs/HEAD")
COMMON_STATE = ("config", "packed-refs", "refs", "hooks", "info", "logs/refs")
# Changes to these fail the attempt (they run code or change what git does);
# changes to the others (a commit, a branch switch, the stash) are undone and noted.
SECURITY_STATE = ("config", "config.worktree", "hooks", "info", "(unreadable after the attempt)")
META_FILE_LIMIT = 64 * 1024 * 1024


def git_command(
    root: Path, *args: str, index: Path | None = None
) -> subprocess.CompletedProcess[bytes] | None:
    """Run ``git -C root ARGS`` for aim's own reading (no pager, no prompt, no
    fsmonitor, no optional index write; ``index`` instead of the repository's own);
    None when git is missing or hangs."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    try:
        return subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "-C", str(root), *args],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def find_git_dir(root: Path) -> tuple[Path, Path, Path] | None:
    """``(work tree top, git directory, common directory)`` for ``root``, read from the
    files (``.git`` as a directory or a ``gitdir:`` file); None outside git."""
    for top in (root, *root.parents):
        dot = top / ".git"
        if dot.is_dir():
            return top, dot, dot
        if dot.is_file():
            try:
                text = dot.read_text(encoding="utf-8").strip()
            except OSError:
                return None
            if not text.startswith("gitdir:"):
                return None
            gitdir = Path(text[7:].strip())
            gitdir = gitdir if gitdir.is_absolute() else (top / gitdir)
            common = gitdir
            try:
                rel = (gitdir / "commondir").read_text(encoding="utf-8").strip()
                common = (gitdir / rel).resolve() if not Path(rel).is_absolute() else Path(rel)
            except OSError:
                pass
            return top, gitdir.resolve(), common
    return None


class GitStatus(Value):
    """``git status`` of the attempt's root, before the tool runs.

    ``readable`` is False when git refused (``error`` says why: dubious ownership,
    a broken repository); then nothing else here is known.
    """

    __slots__ = ("dirty", "error", "ignored_dirs", "ignored_files", "readable", "untracked")
    frozen = False

    def __init__(
        self,
        readable: bool = False,
        error: str = "",
        dirty: set[str] | None = None,
        untracked: set[str] | None = None,
        ignored_dirs: list[str] | None = None,
        ignored_files: set[str] | None = None,
    ) -> None:
        self.readable = readable
        self.error = error
        self.dirty: set[str] = set() if dirty is None else dirty  # tracked, changed
        self.untracked: set[str] = set() if untracked is None else untracked
        # collapsed ignored directories
        self.ignored_dirs: list[str] = [] if ignored_dirs is None else ignored_dirs
        self.ignored_files: set[str] = set() if ignored_files is None else ignored_files


def read_status(root: Path, top: Path, index: Path | None = None) -> GitStatus:
    """What git says of the work tree under ``root`` (ignored directories collapsed),
    compared with ``index`` when given (a copy of the index from before an attempt)."""
    r = git_command(
        root,
        "status",
        "--porcelain=v1",
        "-z",
        "--ignored=matching",
        "--untracked-files=all",
        "--no-renames",
        "--",
        ".",
        index=index,
    )
    if r is None:
        return GitStatus(error="git could not be run")
    if r.returncode != 0:
        first = os.fsdecode(r.stderr).strip().splitlines()
        return GitStatus(error=first[0] if first else f"git status exited {r.returncode}")
    try:
        prefix = root.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return GitStatus(error="the repository root is outside git's work tree")
    prefix = "" if prefix == "." else prefix + "/"
    status = GitStatus(readable=True)
    for item in os.fsdecode(r.stdout).split("\0"):
        if len(item) < 4 or not item[3:].startswith(prefix):
            continue
        code, rel = item[:2], item[3 + len(prefix) :]
        if code == "!!":
            if rel.endswith("/"):
                status.ignored_dirs.append(rel.rstrip("/"))
            else:
                status.ignored_files.add(rel)
        elif code == "??":
            status.untracked.add(rel)
        else:
            status.dirty.add(rel)
    return status


def _files_under(path: Path) -> list[Path]:
    if path.is_symlink() or path.is_file():
        return [path]
    if not path.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        out += [Path(dirpath, n) for n in sorted(filenames)]
    return out


def _stamp(path: Path) -> tuple[int, int, int, int, int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


class GitState:
    """Copies of git's own state files, to find and undo an attempt's changes to them.

    :param gitdir: the worktree's git directory; ``common`` the shared one.
    :param backup: an empty directory for the copies.
    """

    def __init__(self, gitdir: Path, common: Path, backup: Path):
        self.gitdir = gitdir
        self.common = common
        self.backup = backup
        self.files: dict[str, Any] = {}  # label -> [path, stamp, blob or None]

    def _current(self) -> dict[str, tuple[Path, Any]]:
        out: dict[str, tuple[Path, Any]] = {}
        shared = self.common != self.gitdir
        for base, names, tag in (
            (self.gitdir, WORKTREE_STATE, ".git/"),
            (self.common, COMMON_STATE, ".git/(common)/" if shared else ".git/"),
        ):
            for name in names:
                for f in _files_under(base / name):
                    out[tag + f.relative_to(base).as_posix()] = (f, _stamp(f))
        return out

    def take(self) -> None:
        """Copy every state file now."""
        self.backup.mkdir(parents=True, exist_ok=True)
        for n, (label, (path, stamp)) in enumerate(sorted(self._current().items())):
            blob = None
            if stamp is not None and stamp[0] <= META_FILE_LIMIT and not path.is_symlink():
                blob = f"g{n}"
                shutil.copy2(path, self.backup / blob)
            self.files[label] = [str(path), stamp, blob]

    def index_copy(self) -> Path | None:
        """The copy of the index taken before the attempt, or None."""
        entry = self.files.get(".git/index")
        return self.backup / entry[2] if entry and entry[2] else None

    def changed(self) -> list[str]:
        """Labels (``.git/refs/heads/main``) of state files changed, created or removed."""
        now = self._current()
        out = []
        for label in sorted(set(now) | set(self.files)):
            before = self.files.get(label)
            after = now.get(label)
            if before is None or after is None or tuple(before[1] or ()) != tuple(after[1] or ()):
                out.append(label)
        return out

    def only_refreshed(self, label: str) -> bool:
        """Whether ``label`` is the index and it holds the entries its copy holds (mode,
        object, stage, path, the assume-unchanged and skip-worktree marks): ``git
        status`` rewrites only the stat data git caches there. False when it cannot
        tell (no copy: too big; git missing)."""
        before = self.files.get(label) if label == ".git/index" else None
        if before is None or before[2] is None:
            return False
        copy = self.backup / before[2]
        listed = [
            git_command(self.gitdir, "ls-files", "--stage", "-v", "-z", index=index)
            for index in (Path(before[0]), copy)
        ]
        return all(r is not None and r.returncode == 0 for r in listed) and (
            listed[0].stdout == listed[1].stdout  # type: ignore[union-attr]
        )

    def restore(self, labels: list[str]) -> list[str]:
        """Put the files of ``labels`` back; returns those that could not be."""
        stuck = []
        now = self._current()
        for label in labels:
            before = self.files.get(label)
            if before is None:  # created by the attempt
                if label not in now:
                    stuck.append(label)
                    continue
                now[label][0].unlink(missing_ok=True)
                continue
            path, _stamp_before, blob = Path(before[0]), before[1], before[2]
            if blob is None:
                stuck.append(label)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.aim-restore")
            shutil.copy2(self.backup / blob, tmp)
            os.replace(tmp, path)
        return stuck

    @staticmethod
    def is_security(label: str) -> bool:
        """Whether a change to ``label`` runs code or changes git's behaviour."""
        name = label.removeprefix(".git/(common)/").removeprefix(".git/")
        return name.split("/", 1)[0] in SECURITY_STATE

    def to_json(self) -> dict[str, Any]:
        """For the manifest read by recovery."""
        return {"gitdir": str(self.gitdir), "common": str(self.common), "files": self.files}

    @classmethod
    def from_json(cls, data: dict[str, Any], backup: Path) -> GitState:
        """The state written by :meth:`to_json` (another, perhaps dead, process)."""
        state = cls(Path(data["gitdir"]), Path(data["common"]), backup)
        state.files = data["files"]
        return state
