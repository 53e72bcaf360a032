"""``Snapshot``: on-disk copies (content and mode) of the files an attempt may change.

Before an attempt the files in scope are copied under
``AIM_runs/<run_id>/attempt-N/`` -- on disk, so that the next aim command can
restore them if this process is killed. After it, :meth:`Snapshot.changes`
measures what changed from real contents and :meth:`Snapshot.restore` puts
them back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aim_core.digest import file_sha256
from aim_core.models import FileChanges
from aim_core.scope import Scope, _rel, linked_parent, make_real_parents
from aim_core.values import Value

MANIFEST = "manifest.json"


def _digest(path: Path) -> str:
    return file_sha256(path)[1]


def file_digest(path: Path) -> str | None:
    """The SHA-256 of a file's content (``link:TARGET`` for a link), None when absent."""
    try:
        if path.is_symlink():
            return "link:" + str(path.readlink())
        return _digest(path) if path.is_file() else None
    except OSError:
        return None


class Changes(Value):
    """What an attempt changed, as repository-relative POSIX paths."""

    __slots__ = ("created", "deleted", "modified")
    frozen = False

    def __init__(
        self,
        created: list[str] | None = None,
        modified: list[str] | None = None,
        deleted: list[str] | None = None,
    ) -> None:
        self.created: list[str] = [] if created is None else created
        self.modified: list[str] = [] if modified is None else modified
        self.deleted: list[str] = [] if deleted is None else deleted

    def all(self) -> list[str]:
        return sorted({*self.created, *self.modified, *self.deleted})

    def __bool__(self) -> bool:
        return bool(self.created or self.modified or self.deleted)


class Snapshot:
    """Copies (content and mode) of the files an attempt may change, on disk."""

    def __init__(self, root: Path, directory: Path):
        self.root = root
        self.dir = directory
        self.entries: dict[str, dict[str, Any]] = {}  # rel -> {"exists", "mode", "digest", "blob"}
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

    def restore(
        self,
        only: Iterable[str] | None = None,
        scope: Scope | None = None,
        keep: Iterable[str] = (),
    ) -> list[str]:
        """Put the files back exactly as they were (deleted ones back, new ones gone),
        except those of ``keep`` (changed by someone else since).

        Links are never followed: a directory of the scope that became a link is
        replaced by a directory again before anything is written under it.
        """
        kept = set(keep)
        wanted = None if only is None else set(only) - kept
        restored = []
        if scope is not None and wanted is None:
            for rel in scope.existing():
                if rel in kept:
                    continue
                if rel not in self.entries and not linked_parent(self.root, rel):
                    _remove(self.root / rel)
                    restored.append(rel)
        for rel, e in self.entries.items():
            if (wanted is not None and rel not in wanted) or rel in kept:
                continue
            path = self.root / rel
            if not e["exists"]:
                if not linked_parent(self.root, rel) and _present(path):
                    _remove(path)
                    restored.append(rel)
                continue
            if not linked_parent(self.root, rel) and self._same(path, e):
                continue
            make_real_parents(self.root, rel)
            _remove(path)
            if "link" in e:
                os.symlink(e["link"], path)
            else:
                tmp = path.with_name(f".{path.name}.aim-restore")
                shutil.copyfile(self.dir / e["blob"], tmp)
                os.chmod(tmp, e["mode"])
                os.replace(tmp, path)
            restored.append(rel)
        for d in sorted(self.created_dirs, key=len, reverse=True):
            if not linked_parent(self.root, d + "/x"):
                with contextlib.suppress(OSError):
                    (self.root / d).rmdir()
        return restored

    def _same(self, path: Path, e: dict[str, Any]) -> bool:
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


def _present(path: Path) -> bool:
    return path.is_symlink() or path.exists()


def _remove(path: Path) -> None:
    """Remove a file, link or special file (a link itself, never what it points to), or
    a directory tree (links inside it are removed, not followed)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
