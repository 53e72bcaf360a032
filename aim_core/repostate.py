"""``RepoState``: a fingerprint of the repository outside the scope of an attempt.

In a git repository ``git status`` (tracked and untracked files, ignored ones
left out unless forbidden) plus copies of the files that were already dirty;
outside git a walk of the tree with sizes and mtimes (and copies of small
files). After the attempt, anything changed outside the scope is found and
reverted.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from aim_core.scope import Scope, _rel
from aim_core.security import forbidden_match
from aim_core.snapshot import Snapshot

COPY_LIMIT_BYTES = 1024 * 1024  # per file outside the scope (non-git / dirty files)
COPY_BUDGET_BYTES = 32 * 1024 * 1024  # in total per attempt


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def git_toplevel(root: Path) -> Path | None:
    """The git work tree ``root`` is in, or None outside git (or without git)."""
    import shutil

    if shutil.which("git") is None:
        return None
    for d in (root.resolve(), *root.resolve().parents):
        if (d / ".git").exists():
            return d
    return None


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_mode)


class RepoState:
    """A fingerprint of everything outside the scope, to find what else a tool changed."""

    def __init__(self, root: Path, exclude: Sequence[str], forbidden: Sequence[str]):
        self.root = root
        self.exclude = [e.rstrip("/") for e in exclude if e]
        self.forbidden = forbidden
        self.top = git_toplevel(root)
        self.prefix = ""
        if self.top is not None:
            try:
                rel = root.resolve().relative_to(self.top.resolve()).as_posix()
                self.prefix = "" if rel == "." else rel + "/"
            except ValueError:
                self.top = None
        self.stamps: dict[str, tuple[int, int, int] | None] = {}
        self.codes: dict[str, str] = {}  # git status before the attempt
        self.after_codes: dict[str, str] = {}  # and after it
        self.git_meta: dict[str, Any] = {}

    def _excluded(self, rel: str) -> bool:
        return any(rel == e or rel.startswith(e + "/") for e in self.exclude)

    def _git_paths(self) -> dict[str, str]:
        """``path -> status code`` from ``git status`` (ignored files: forbidden ones only)."""
        r = _git(
            self.root,
            "status",
            "--porcelain=v1",
            "-z",
            "--ignored=matching",
            "--untracked-files=all",
            "--no-renames",
            "--",
            ".",
        )
        out: dict[str, str] = {}
        if r is None or r.returncode != 0:
            return out
        for item in r.stdout.decode("utf-8", "surrogateescape").split("\0"):
            if len(item) < 4:
                continue
            code, path = item[:2], item[3:]
            if not path.startswith(self.prefix):
                continue
            rel = path[len(self.prefix) :]
            if code == "!!" and (rel.endswith("/") or forbidden_match(rel, self.forbidden) is None):
                continue  # ignored files don't count, unless forbidden
            out[rel] = code
        return out

    def _head(self, gitdir: Path) -> str | None:
        """The commit HEAD points to, read from the files (no process) when they are plain."""
        try:
            head = (gitdir / "HEAD").read_text().strip()
            if not head.startswith("ref: "):
                return head
            ref = head[5:]
            if (gitdir / ref).is_file():
                return (gitdir / ref).read_text().strip()
            packed = gitdir / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
            return None  # an unborn branch
        except OSError:
            r = _git(self.root, "rev-parse", "-q", "--verify", "HEAD")  # worktrees and the like
            return r.stdout.strip().decode() if r is not None and r.returncode == 0 else None

    def _meta(self) -> dict[str, Any]:
        if self.top is None:
            return {}
        gitdir = self.top / ".git"
        hooks = gitdir / "hooks"
        return {
            "HEAD": self._head(gitdir),
            "config": _stamp(gitdir / "config"),
            "hooks": sorted(p.name for p in hooks.iterdir()) if hooks.is_dir() else [],
        }

    def _walk(self) -> dict[str, tuple[int, int, int] | None]:
        out: dict[str, tuple[int, int, int] | None] = {}
        stack = [self.root]
        while stack:
            d = stack.pop()
            try:
                it = os.scandir(d)
            except OSError:
                continue
            with it:
                for e in it:
                    rel = _rel(self.root, Path(e.path))
                    if e.name == ".git" or self._excluded(rel):
                        continue
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    else:
                        out[rel] = _stamp(Path(e.path))
        return out

    def take(self, snapshot: Snapshot, scope: Scope) -> None:
        """Fingerprint now; copy the dirty (git) or small (no git) files outside the scope."""
        budget = COPY_BUDGET_BYTES
        if self.top is not None:
            self.codes = self._git_paths()
            self.stamps = {p: _stamp(self.root / p) for p in self.codes if not self._excluded(p)}
            self.git_meta = self._meta()
            if self.prefix == "" and (self.root / ".git" / "config").is_file():
                snapshot.add(".git/config")  # so a tool's write there can be undone
        else:
            self.stamps = self._walk()
        for rel, st in self.stamps.items():
            if st is None or scope.contains(rel) or not stat.S_ISREG(st[2]):
                continue
            if st[0] <= COPY_LIMIT_BYTES and st[0] <= budget:
                snapshot.add(rel)
                budget -= st[0]
        snapshot.save()

    def changed(self, scope: Scope, ignore: Iterable[str] = ()) -> list[str]:
        """Paths outside ``scope`` (and ``ignore``) that differ from the fingerprint."""
        ignore_scopes = [Scope(self.root, [i]) for i in ignore]
        if self.top is not None:
            self.after_codes = self._git_paths()
            now_stamps = {
                p: _stamp(self.root / p) for p in self.after_codes if not self._excluded(p)
            }
        else:
            now_stamps = self._walk()
        candidates = set(self.stamps) | set(now_stamps)
        changed = []
        for rel in sorted(candidates):
            if scope.contains(rel) or self._excluded(rel):
                continue
            if any(s.contains(rel) for s in ignore_scopes):
                continue
            before, after = self.stamps.get(rel), now_stamps.get(rel)
            if before != after:
                changed.append(rel)
        if self.top is not None:
            meta = self._meta()
            if meta.get("config") != self.git_meta.get("config"):
                changed.append(".git/config")
            for hook in sorted(set(meta.get("hooks", [])) - set(self.git_meta.get("hooks", []))):
                changed.append(f".git/hooks/{hook}")
            if meta.get("HEAD") != self.git_meta.get("HEAD"):
                changed.append(".git/HEAD")
        return changed

    def revert(self, paths: Iterable[str], snapshot: Snapshot) -> tuple[list[str], list[str]]:
        """Undo changes outside the scope; returns (reverted, could not revert)."""
        done, failed = [], []
        for rel in paths:
            path = self.root / rel
            if rel == ".git/HEAD":  # commits were made; undoing them is for a person to decide
                failed.append(rel)
                continue
            if rel.startswith(".git/hooks/"):
                path.unlink(missing_ok=True)
                done.append(rel)
                continue
            if rel in snapshot.entries:
                snapshot.restore(only=[rel])
                done.append(rel)
            elif rel in self.stamps:  # it was there, changed, and is too big to have a copy
                failed.append(rel)
            elif self.top is None or self.after_codes.get(rel) in ("??", "!!"):
                if path.is_symlink() or path.is_file():  # new: remove it
                    path.unlink()
                elif path.is_dir():
                    shutil.rmtree(path)
                done.append(rel)
            else:  # a tracked file that was clean before: the index has its content
                r = _git(self.root, "checkout", "--", rel)
                (done if r is not None and r.returncode == 0 else failed).append(rel)
        return done, failed
