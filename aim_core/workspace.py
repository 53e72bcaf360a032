"""Keep the repository safe around an attempt: snapshot, diff, restore, scope.

Before each attempt the files the tool may change (``files_scope`` ∪
``files_create`` ∪ ``capability_payload.files``) are copied, with their mode,
under ``AIM_runs/<run_id>/snapshot/`` -- on disk, so that the next aim command
can restore them if this process is killed. The rest of the repository gets a
cheap fingerprint: in a git repository ``git status`` (tracked and untracked
files, ignored ones left out) plus copies of the files that were already
dirty; outside git a walk of the tree with sizes and mtimes (and copies of
small files). After the attempt the changes are measured from real contents;
anything changed outside the scope is reverted and reported.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from attrs import define, field

from aim_core.models import FileChanges
from aim_core.security import forbidden_match

MANIFEST = "manifest.json"
COPY_LIMIT_BYTES = 1024 * 1024  # per file outside the scope (non-git / dirty files)
COPY_BUDGET_BYTES = 32 * 1024 * 1024  # in total per attempt
GLOB_CHARS = "*?["


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


class Scope:
    """Which repository paths an attempt may change: files, directories, globs."""

    def __init__(self, root: Path, entries: Iterable[str]):
        self.root = root
        self.files: set[str] = set()
        self.dirs: list[str] = []
        self.globs: list[str] = []
        for e in entries:
            e = e.replace("\\", "/")
            while e.startswith("./"):
                e = e[2:]
            if any(c in e for c in GLOB_CHARS):
                self.globs.append(e)
            elif e.endswith("/") or (root / e).is_dir():
                self.dirs.append(e.rstrip("/") + "/")
            else:
                self.files.add(e)

    def contains(self, rel: str) -> bool:
        """Whether the repository-relative path ``rel`` is inside the scope."""
        if rel in self.files:
            return True
        if any(rel.startswith(d) for d in self.dirs):
            return True
        return any(fnmatch.fnmatchcase(rel, g) for g in self.globs)

    def existing(self) -> list[str]:
        """The files in the scope that exist now."""
        out = set()
        for f in self.files:
            if (self.root / f).is_file() or (self.root / f).is_symlink():
                out.add(f)
        for d in self.dirs:
            base = self.root / d
            if base.is_dir():
                for p in base.rglob("*"):
                    if p.is_file() or p.is_symlink():
                        out.add(_rel(self.root, p))
        for g in self.globs:
            for p in self.root.glob(g):
                if p.is_file() or p.is_symlink():
                    out.add(_rel(self.root, p))
        return sorted(out)

    def overlaps(self, other: Scope) -> bool:
        """Whether two scopes share any path (used to keep runs apart)."""
        mine = self.files | set(self.existing())
        theirs = other.files | set(other.existing())
        if mine & theirs:
            return True
        if any(other.contains(p) for p in mine) or any(self.contains(p) for p in theirs):
            return True
        for a in self.dirs:
            for b in other.dirs:
                if a.startswith(b) or b.startswith(a):
                    return True
        return bool(self.globs and other.globs and set(self.globs) & set(other.globs))


# --------------------------------------------------------------------------- snapshot


@define
class Changes:
    """What an attempt changed, as repository-relative POSIX paths."""

    created: list[str] = field(factory=list)
    modified: list[str] = field(factory=list)
    deleted: list[str] = field(factory=list)

    def all(self) -> list[str]:
        return sorted({*self.created, *self.modified, *self.deleted})

    def __bool__(self) -> bool:
        return bool(self.created or self.modified or self.deleted)


class Snapshot:
    """Copies (content and mode) of the files an attempt may change, on disk."""

    def __init__(self, root: Path, directory: Path):
        self.root = root
        self.dir = directory
        self.entries: dict[str, dict] = {}  # rel -> {"exists", "mode", "digest", "blob"}
        self.created_dirs: list[str] = []

    @classmethod
    def take(cls, root: Path, directory: Path, paths: Iterable[str]) -> Snapshot:
        """Copy every existing path of ``paths``; remember which did not exist."""
        snap = cls(root, directory)
        (directory / "blobs").mkdir(parents=True, exist_ok=True)
        for n, rel in enumerate(sorted(set(paths))):
            snap._remember(rel, n)
        snap.save()
        return snap

    def _remember(self, rel: str, n: int | str) -> None:
        path = self.root / rel
        if path.is_symlink():
            self.entries[rel] = {"exists": True, "link": os.readlink(path)}
        elif path.is_file():
            blob = f"blobs/{n}"
            shutil.copyfile(path, self.dir / blob)
            self.entries[rel] = {
                "exists": True,
                "mode": stat.S_IMODE(path.stat().st_mode),
                "digest": _digest(path),
                "blob": blob,
            }
        else:
            self.entries[rel] = {"exists": False}
            parent = Path(rel).parent
            while str(parent) not in ("", ".") and not (self.root / parent).exists():
                self.created_dirs.append(parent.as_posix())
                parent = parent.parent

    def add(self, rel: str) -> None:
        """Also keep a copy of ``rel`` (a file outside the scope that was dirty)."""
        if rel not in self.entries:
            self._remember(rel, f"x{len(self.entries)}")

    def save(self) -> None:
        (self.dir / MANIFEST).write_text(
            json.dumps({"entries": self.entries, "created_dirs": self.created_dirs}),
            encoding="utf-8",
        )

    @classmethod
    def load(cls, root: Path, directory: Path) -> Snapshot:
        """A snapshot written by another (perhaps dead) process."""
        snap = cls(root, directory)
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        snap.entries = data["entries"]
        snap.created_dirs = data.get("created_dirs", [])
        return snap

    def changes(self, scope: Scope | None = None) -> Changes:
        """How the snapshotted files (and new files in the scope) differ from now."""
        out = Changes()
        for rel, e in self.entries.items():
            path = self.root / rel
            now_exists = path.is_file() or path.is_symlink()
            if not e["exists"]:
                if now_exists:
                    out.created.append(rel)
            elif not now_exists:
                out.deleted.append(rel)
            elif "link" in e:
                if not path.is_symlink() or os.readlink(path) != e["link"]:
                    out.modified.append(rel)
            elif (
                path.is_symlink()
                or _digest(path) != e["digest"]
                or stat.S_IMODE(path.stat().st_mode) != e["mode"]
            ):
                out.modified.append(rel)
        if scope is not None:
            for rel in scope.existing():
                if rel not in self.entries:
                    out.created.append(rel)
        return out

    def restore(self, only: Iterable[str] | None = None, scope: Scope | None = None) -> list[str]:
        """Put the files back exactly as they were (deleted ones back, new ones gone)."""
        wanted = None if only is None else set(only)
        restored = []
        for rel, e in self.entries.items():
            if wanted is not None and rel not in wanted:
                continue
            path = self.root / rel
            if not e["exists"]:
                if path.is_symlink() or path.is_file():
                    path.unlink()
                    restored.append(rel)
                elif path.is_dir():
                    shutil.rmtree(path)
                    restored.append(rel)
                continue
            if self._same(path, e):
                continue
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            if "link" in e:
                os.symlink(e["link"], path)
            else:
                tmp = path.with_name(f".{path.name}.aim-restore")
                shutil.copyfile(self.dir / e["blob"], tmp)
                os.chmod(tmp, e["mode"])
                os.replace(tmp, path)
            restored.append(rel)
        if scope is not None and wanted is None:
            for rel in scope.existing():
                if rel not in self.entries:
                    (self.root / rel).unlink()
                    restored.append(rel)
        for d in sorted(self.created_dirs, key=len, reverse=True):
            with contextlib.suppress(OSError):
                (self.root / d).rmdir()
        return restored

    def _same(self, path: Path, e: dict) -> bool:
        if "link" in e:
            return path.is_symlink() and os.readlink(path) == e["link"]
        return (
            path.is_file()
            and not path.is_symlink()
            and stat.S_IMODE(path.stat().st_mode) == e["mode"]
            and _digest(path) == e["digest"]
        )

    def discard(self) -> None:
        """Remove the snapshot's files."""
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- the rest


def _git(root: Path, *args: str) -> subprocess.CompletedProcess | None:
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
        self.stamps: dict[str, tuple | None] = {}
        self.codes: dict[str, str] = {}  # git status before the attempt
        self.after_codes: dict[str, str] = {}  # and after it
        self.git_meta: dict[str, object] = {}

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

    def _meta(self) -> dict[str, object]:
        if self.top is None:
            return {}
        gitdir = self.top / ".git"
        hooks = gitdir / "hooks"
        return {
            "HEAD": self._head(gitdir),
            "config": _stamp(gitdir / "config"),
            "hooks": sorted(p.name for p in hooks.iterdir()) if hooks.is_dir() else [],
        }

    def _walk(self) -> dict[str, tuple | None]:
        out = {}
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


def tree_measurer(root: Path, exclude: Sequence[str] = (".git",)) -> Callable[[], FileChanges]:
    """A baseline of every file under ``root`` now (by content and mode), and a function
    that reports what changed since, as :class:`~aim_core.models.FileChanges`.

    For hook calls made outside an attempt (the testing kit); ``exclude`` names
    top-level directories left out.
    """

    def state() -> dict[str, tuple[int, str]]:
        out: dict[str, tuple[int, str]] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            if here == root:
                dirnames[:] = [d for d in dirnames if d not in exclude]
            for name in filenames:
                path = here / name
                with contextlib.suppress(OSError):
                    out[_rel(root, path)] = (stat.S_IMODE(path.lstat().st_mode), _digest(path))
        return out

    before = state()

    def measure() -> FileChanges:
        after = state()
        return FileChanges(
            created=sorted(set(after) - set(before)),
            modified=sorted(p for p in set(after) & set(before) if after[p] != before[p]),
            deleted=sorted(set(before) - set(after)),
        )

    return measure
