"""``Scope``: which repository paths an attempt may change (files, directories, globs)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

GLOB_CHARS = "*?["


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
