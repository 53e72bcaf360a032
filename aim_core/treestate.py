"""``TreeState``: everything under the repository root outside an attempt's scope,
fingerprinted before the tool runs, so that every change it makes there is seen
and undone.

The fingerprint is a walk of the work tree -- every file, link, directory and
special file, git-ignored ones included, any bytes in a name -- with ``lstat``
stamps (size, mtime, ctime, inode, mode, link target: an edit whose mtime was
put back still moves ctime). Collapsed git-ignored directories (``.venv/``,
``node_modules/``) are stamped two levels deep, not walked: caches may change,
and a new entry near their top (``certs/server.key``) is still seen. Git's own
state (HEAD, refs, index, stash, config, hooks, info) is copied
(:class:`~aim_core.gitmeta.GitState`). Nothing git is told (``info/exclude``,
a new ``.gitignore``, ``assume-unchanged``) changes what is walked: git is read
once, before the tool runs.

To undo a change, the files git cannot give back (untracked, dirty, or every file
when git can't read the repository) are copied first, within a budget; when they
don't fit, the attempt is refused before the tool runs. A revert puts a path back
only when it still holds what the tool left, so nobody else's later edit is lost.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from aim_core.errors import AimError
from aim_core.gitmeta import GitState, GitStatus, find_git_dir, git_command, read_status
from aim_core.scope import Scope, linked_parent, make_real_parents
from aim_core.security import forbidden_match

COPY_BUDGET_MB = 512


def copy_budget_bytes() -> int:
    """What aim copies at most to undo a tool's changes outside git's view, in bytes:
    ``AIM_COPY_BUDGET_MB`` (read when asked: a run server's worker takes its client's
    environment after the import) or :data:`COPY_BUDGET_MB`."""
    return int(os.environ.get("AIM_COPY_BUDGET_MB") or COPY_BUDGET_MB) * 1024 * 1024


MANIFEST = "tree.json"
STAMPS = "stamps.marshal"

UNREADABLE = ".git/(unreadable after the attempt)"
Stamp = tuple[Any, ...]  # (kind, size, mtime_ns, ctime_ns, ino, mode, link target)


class WorkspaceRefused(AimError):
    """aim could not see or undo what a tool might change here: nothing was run."""


def stamp_of(path: str) -> Stamp | None:
    """The ``lstat`` stamp of ``path`` (never opened: FIFOs and devices are safe)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    mode = st.st_mode
    kind = "d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode) else "f"
    if not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode) or stat.S_ISREG(mode)):
        kind = "o"
    target = ""
    if kind == "l":
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
    size = 0 if kind == "d" else st.st_size
    mtime = 0 if kind == "d" else st.st_mtime_ns
    return (kind, size, mtime, st.st_ctime_ns, st.st_ino, mode, target)


def walk(
    root: Path, skip: set[str], shallow: set[str], only: Iterable[str] | None = None
) -> dict[str, Stamp]:
    """Stamp every entry under ``root`` (relative POSIX paths), not entering ``skip``;
    directories in ``shallow`` are stamped with their entries two levels down.
    ``only`` walks just those directories (relative paths) instead of the whole tree."""
    out: dict[str, Stamp] = {}
    base = os.fspath(root)
    stack: list[tuple[str, str, int]] = []  # (dir, rel prefix, depth left)
    if only is None:
        stack.append((base, "", -1))
    for rel in only or ():
        st = stamp_of(os.path.join(base, rel))
        if st is not None:
            out[rel] = st
            if st[0] == "d":
                stack.append((os.path.join(base, rel), rel + "/", 1 if rel in shallow else -1))
    while stack:
        directory, prefix, depth = stack.pop()
        try:
            it = os.scandir(directory)
        except OSError:
            continue
        with it:
            for e in it:
                rel = prefix + e.name
                if rel in skip:
                    continue
                st = stamp_of(e.path)
                if st is None:
                    continue
                out[rel] = st
                if st[0] != "d" or depth == 0:
                    continue
                if depth > 0:
                    stack.append((e.path, rel + "/", depth - 1))
                else:
                    stack.append((e.path, rel + "/", 1 if rel in shallow else -1))
    return out


class TreeState:
    """The repository outside an attempt's scope (see the module docstring).

    :param root: the repository root.
    :param backup: an empty directory for copies (outside the repository).
    :param exclude: repository paths never walked (aim's own audit and run files).
    :param forbidden: the security rules' forbidden path patterns.
    :param scratch: paths the tool may change (its caches), unless forbidden.
    """

    def __init__(
        self,
        root: Path,
        backup: Path,
        *,
        exclude: Sequence[str] = (),
        forbidden: Sequence[str] = (),
        scratch: Sequence[str] = (),
        strict: bool = False,
    ):
        self.root = root
        self.backup = backup
        self.strict = strict  # no change allowed at all, caches included (a race's guard)
        self.exclude = {e.strip("/") for e in exclude if e.strip("/")}
        self.forbidden = list(forbidden)
        self.scratch = Scope(root, scratch)
        self.stamps: dict[str, Stamp] = {}
        self.copies: dict[str, str] = {}  # rel -> blob name
        self.from_git: set[str] = set()  # clean tracked files: git's index gives them back
        self.shallow: set[str] = set()
        self.ignored_files: set[str] = set()
        self.git: GitState | None = None
        self.top: Path | None = None
        self.after: dict[str, Stamp] = {}
        self.mode = "walk"  # or "git": git's index fingerprints the tracked files
        self.broken_git = False
        self.dirty: set[str] = set()
        self.untracked: set[str] = set()

    # ----------------------------------------------------------------- before

    def take(self, scope: Scope) -> None:
        """Fingerprint now and copy what git can't give back; raise
        :class:`WorkspaceRefused` when that is not possible.

        Where git can read the repository, git's index is the fingerprint of the
        tracked files (compared again after the attempt against a copy of it, so
        nothing the tool does to the index hides a change); aim stamps the rest
        itself: untracked, changed and ignored files, ignored folders two levels
        deep. Elsewhere every entry is walked.
        """
        found = find_git_dir(self.root)
        status = GitStatus()
        if found is not None:
            self.top = found[0]
            self.git = GitState(found[1], found[2], self.backup / "git")
            self.git.take()
            status = read_status(self.root, found[0])
        self.shallow = set(status.ignored_dirs)
        self.ignored_files = set(status.ignored_files)
        if status.readable and self.git is not None and self.git.index_copy() is not None:
            self.mode = "git"
            self.dirty, self.untracked = set(status.dirty), set(status.untracked)
            self.stamps = self._watched(self.dirty | self.untracked | self.ignored_files)
        else:
            self.stamps = walk(self.root, {".git", *self.exclude}, self.shallow)
        needs_copy = self._needing_copies(scope, status)
        self._copy(needs_copy, found is not None and not status.readable, status.error)
        self.save()

    def _watched(self, paths: Iterable[str]) -> dict[str, Stamp]:
        """Stamps of ``paths`` and of the ignored folders (two levels deep)."""
        out = walk(self.root, set(), self.shallow, only=sorted(self.shallow))
        for rel in paths:
            if not self._excluded(rel):
                st = stamp_of(os.path.join(self.root, rel))
                if st is not None:
                    out[rel] = st
        return out

    def _excluded(self, rel: str) -> bool:
        return any(rel == e or rel.startswith(e + "/") for e in self.exclude)

    def _needing_copies(self, scope: Scope, status: GitStatus) -> list[str]:
        out = []
        for rel, st in self.stamps.items():
            if st[0] != "f" or scope.contains(rel):
                continue
            in_ignored = any(rel.startswith(d + "/") for d in self.shallow)
            if in_ignored or rel in status.ignored_files:
                if forbidden_match(rel, self.forbidden):
                    out.append(rel)  # a key in an ignored folder is still restored
                continue
            if status.readable and rel not in status.dirty and rel not in status.untracked:
                self.from_git.add(rel)
                continue
            out.append(rel)
        return out

    def _copy(self, paths: list[str], git_refused: bool, why: str) -> None:
        total = sum(self.stamps[p][1] for p in paths)
        budget = copy_budget_bytes()
        if total > budget:
            reason = (
                f"git cannot read this repository ({why}), so every file would need a copy"
                if git_refused
                else f"{len(paths)} untracked or changed files outside the scope"
            )
            fix = (
                f"let git read it (git config --global --add safe.directory {self.root})"
                if git_refused
                else "commit or stash them, add them to .gitignore"
            )
            raise WorkspaceRefused(
                f"{reason} hold {total // (1024 * 1024)} MB, over the "
                f"{budget // (1024 * 1024)} MB aim copies to undo a tool's "
                f"changes; nothing was run. Fix: {fix}, or raise AIM_COPY_BUDGET_MB"
            )
        blobs = self.backup / "files"
        blobs.mkdir(parents=True, exist_ok=True)
        for n, rel in enumerate(paths):
            try:
                shutil.copyfile(self.root / rel, blobs / str(n))
            except OSError:
                continue  # vanished or unreadable: it cannot be restored, it is reported
            self.copies[rel] = str(n)

    # ----------------------------------------------------------------- after

    def changed(self, scope: Scope, ignore: Iterable[str] = ()) -> list[str]:
        """Paths outside ``scope`` (and ``ignore``) that changed, git's state included
        (``.git/...`` labels)."""
        others = [Scope(self.root, [i]) for i in ignore]
        if self.mode == "git":
            candidates = self._git_candidates()
        else:
            self.after = walk(self.root, {".git", *self.exclude}, self.shallow)
            candidates = set(self.stamps) | set(self.after)
        out = []
        for rel in sorted(candidates):
            if rel not in self.from_git and self.stamps.get(rel) == self.after.get(rel):
                continue
            if self._excluded(rel) or self._allowed(rel, scope, others):
                continue
            out.append(rel)
        if self.git is not None:
            out += self.git.changed()
        if self.broken_git:
            out.append(UNREADABLE)
        return out

    def _git_candidates(self) -> set[str]:
        """What git (against the index from before) and aim's own stamps say may have
        changed; tracked files it reports go to :attr:`from_git`."""
        import tempfile

        assert self.git is not None and self.top is not None
        index = self.git.index_copy()
        with tempfile.TemporaryDirectory(prefix="aim-index-") as tmp:
            copy = Path(tmp) / "index"
            if index is not None:
                shutil.copyfile(index, copy)
            after = read_status(self.root, self.top, index=copy)
        if not after.readable:  # the tool broke the repository: it fails, named
            self.broken_git = True
            return set(self.stamps)
        new_ignored = [d for d in after.ignored_dirs if d not in self.shallow]
        listed = after.dirty | after.untracked | after.ignored_files
        self.from_git |= {p for p in after.dirty if p not in self.dirty}
        self.after = self._watched(listed | self.dirty | self.untracked | self.ignored_files)
        self.after.update(walk(self.root, set(), set(), only=new_ignored))
        return set(self.stamps) | set(self.after) | self.from_git

    def _allowed(self, rel: str, scope: Scope, others: list[Scope]) -> bool:
        if scope.contains(rel) or any(s.contains(rel) for s in others):
            return True
        if (self.after.get(rel) or self.stamps.get(rel) or ("",))[0] == "d":
            if rel in self.after and rel in self.stamps:
                return True  # a directory's own stamp moves with its entries
            if any(scope.contains(p) for p in self._under(rel)):
                return True  # created or removed with files in scope
        forbidden = forbidden_match(rel, self.forbidden) is not None
        if forbidden or self.strict:
            return False
        if self.scratch.contains(rel) or rel in self.ignored_files:
            return True
        return any(rel.startswith(d + "/") for d in self.shallow)  # ignored folders may change

    def _under(self, rel: str) -> list[str]:
        prefix = rel + "/"
        return [p for p in (*self.stamps, *self.after) if p.startswith(prefix)]

    def revert(self, paths: Sequence[str]) -> tuple[list[str], list[str]]:
        """Undo the changes to ``paths`` (from :meth:`changed`): ``(reverted, stuck)``.
        A path that no longer holds what the tool left is not touched (stuck)."""
        done: list[str] = []
        stuck: list[str] = []
        git_labels = [p for p in paths if p.startswith(".git/")]
        if git_labels and self.git is not None:
            failed = self.git.restore(git_labels)
            stuck += failed
            done += [p for p in git_labels if p not in failed]
        files = [p for p in paths if not p.startswith(".git/")]
        was_dir = [p for p in files if (self.stamps.get(p) or ("",))[0] == "d"]
        new_dirs = [
            p for p in files if p not in self.stamps and (self.after.get(p) or ("",))[0] == "d"
        ]
        rest = [p for p in files if p not in was_dir and p not in new_dirs]
        for rel in sorted(was_dir, key=lambda p: p.count("/")):  # real directories again first
            _remove_unless_dir(self.root / rel)
            make_real_parents(self.root, rel + "/x")
            done.append(rel)
        from_index = []
        for rel in sorted(rest, key=lambda p: (-p.count("/"), p)):
            if stamp_of(os.path.join(self.root, rel)) != self.after.get(rel):
                stuck.append(rel)  # changed again since it was checked: not ours to undo
                continue
            outcome = self._revert_one(rel)
            if outcome == "index":
                from_index.append(rel)
            else:
                (done if outcome == "done" else stuck).append(rel)
        for rel in sorted(new_dirs, key=lambda p: -p.count("/")):
            try:
                if not linked_parent(self.root, rel):
                    (self.root / rel).rmdir()
                done.append(rel)
            except FileNotFoundError:
                done.append(rel)  # gone with the last file removed from it
            except OSError:
                stuck.append(rel)  # something not ours is in it
        ok, bad = self._from_index(from_index)
        return done + ok, stuck + bad

    def _revert_one(self, rel: str) -> str:
        path = self.root / rel
        before = self.stamps.get(rel)
        if linked_parent(self.root, rel):
            return "stuck"  # never write or delete through a link
        if rel in self.from_git and rel not in self.copies:
            return "index"
        if before is None:  # new: remove it, and the folders it came in
            _remove(path)
            _remove_empty_parents(self.root, rel)
            return "done"
        if before[0] == "l":
            _remove(path)
            make_real_parents(self.root, rel)
            os.symlink(before[6], path)
            return "done"
        if rel in self.copies:
            _remove(path)
            make_real_parents(self.root, rel)
            tmp = path.with_name(f".{path.name}.aim-restore")
            shutil.copyfile(self.backup / "files" / self.copies[rel], tmp)
            os.chmod(tmp, stat.S_IMODE(before[5]))
            os.replace(tmp, path)
            return "done"
        return "stuck"

    def _from_index(self, paths: list[str]) -> tuple[list[str], list[str]]:
        """Clean tracked files back from git's index (itself restored first)."""
        if not paths:
            return [], []
        for rel in paths:
            _remove(self.root / rel)
        r = git_command(self.root, "checkout-index", "-f", "-q", "--", *paths)
        ok = r is not None and r.returncode == 0
        return (paths, []) if ok else ([], paths)

    def label_path(self, label: str) -> Path | None:
        """The file a path or ``.git/...`` label of :meth:`changed` stands for."""
        if not label.startswith(".git/"):
            return self.root / label
        if self.git is not None and label in self.git.files:
            return Path(self.git.files[label][0])
        return None

    # ----------------------------------------------------------------- on disk

    def save(self) -> None:
        """Write what recovery needs (the stamps, the copies, git's state)."""
        data = {
            "root": str(self.root),
            "copies": self.copies,
            "from_git": sorted(self.from_git),
            "shallow": sorted(self.shallow),
            "ignored_files": sorted(self.ignored_files),
            "mode": self.mode,
            "top": str(self.top) if self.top is not None else None,
            "dirty": sorted(self.dirty),
            "untracked": sorted(self.untracked),
            "exclude": sorted(self.exclude),
            "forbidden": self.forbidden,
            "git": self.git.to_json() if self.git is not None else None,
        }
        (self.backup / MANIFEST).write_text(json.dumps(data), encoding="utf-8")
        with open(self.backup / STAMPS, "wb") as f:
            marshal.dump(self.stamps, f)

    @classmethod
    def load(cls, backup: Path) -> TreeState:
        """A fingerprint saved by another (perhaps dead) process."""
        data = json.loads((backup / MANIFEST).read_text(encoding="utf-8"))
        state = cls(
            Path(data["root"]), backup, exclude=data["exclude"], forbidden=data["forbidden"]
        )
        state.copies = data["copies"]
        state.from_git = set(data["from_git"])
        state.shallow = set(data["shallow"])
        state.ignored_files = set(data.get("ignored_files", []))
        state.mode = data.get("mode", "walk")
        state.top = Path(data["top"]) if data.get("top") else None
        state.dirty = set(data.get("dirty", []))
        state.untracked = set(data.get("untracked", []))
        if data["git"] is not None:
            state.git = GitState.from_json(data["git"], backup / "git")
        with open(backup / STAMPS, "rb") as f:
            state.stamps = marshal.load(f)
        return state


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file() or (path.exists() and not path.is_dir()):
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path)


def _remove_unless_dir(path: Path) -> None:
    """A real directory stays; a link or file in its place goes (never followed)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()


def _kind(stamp: Stamp | None) -> str:
    return stamp[0] if stamp else ""


def _remove_empty_parents(root: Path, rel: str) -> None:
    """Folders left empty by removing ``rel`` go too (a tool's ``mkdir -p``)."""
    parent = Path(rel).parent
    while str(parent) not in ("", "."):
        try:
            (root / parent).rmdir()
        except OSError:
            return
        parent = parent.parent
