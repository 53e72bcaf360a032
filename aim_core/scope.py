"""``Scope``: which repository paths an attempt may change (files, directories, globs)."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from aim_core.security import forbidden_match

GLOB_CHARS = "*?["


def _name(path: str) -> str:
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/")


@functools.lru_cache(maxsize=256)
def glob_pattern(glob: str) -> re.Pattern[str]:
    """A scope glob as a regular expression matching repository-relative paths the way
    ``Path.glob`` walks them (as the path rules expand a glob): ``*``, ``?`` and
    ``[...]`` within one name, ``**`` as a whole name any number of directories (none
    too: ``src/**/*.py`` holds ``src/a.py``), and a trailing ``**`` everything under."""
    out = []
    names = glob.split("/")
    for i, name in enumerate(names):
        last = i == len(names) - 1
        if name == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        j = 0
        while j < len(name):
            c = name[j]
            j += 1
            if c == "*":
                out.append("[^/]*")
            elif c == "?":
                out.append("[^/]")
            elif c == "[" and (end := name.find("]", j + (name[j : j + 1] in ("!", "]")))) > 0:
                body = name[j:end].replace("\\", "\\\\")
                out.append("[" + ("^/" + body[1:] if body.startswith("!") else body) + "]")
                j = end + 1
            else:
                out.append(re.escape(c))
        if not last:
            out.append("/")
    return re.compile("(?s:" + "".join(out) + r")\Z")


def names(entries: Iterable[str], path: str) -> bool:
    """Whether one of the scope ``entries`` (files, directories, globs, as a workstream
    writes them) names the repository-relative ``path``, by the names alone: the path
    itself, a directory above it, or a glob that matches it (as :meth:`Scope.contains`
    decides, without looking at the disk)."""
    path = _name(path)
    for entry in entries:
        entry = _name(entry)
        if path == entry or (entry and path.startswith(entry + "/")):
            return True
        if any(c in entry for c in GLOB_CHARS) and glob_pattern(entry).match(path):
            return True
    return False


def entry_taken_as_file(scope: Scope, entries: Iterable[str], path: str) -> str | None:
    """The entry of ``entries`` that :func:`names` finds above the repository-relative
    ``path`` although a run takes that entry as a file -- it has no trailing ``/`` and is
    no directory in the repository -- so ``path`` is not in ``scope`` (the
    :class:`Scope` of those entries); None when it is, or no entry is above it."""
    rel = _name(path)
    if scope.contains(rel):
        return None
    for entry in entries:
        name = _name(entry)
        if name and rel.startswith(name + "/"):
            return entry
    return None


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _is_entry(path: Path) -> bool:
    """A regular file or a link (never a FIFO, socket or device: opening one blocks)."""
    return path.is_symlink() or path.is_file()


def linked_parent(root: Path, rel: str) -> str | None:
    """The first directory on the way from ``root`` to ``rel`` that is a symbolic link
    (writing or deleting through it would reach outside what was checked), or None."""
    parts = rel.replace("\\", "/").strip("/").split("/")[:-1]
    current = root
    walked = []
    for part in parts:
        current = current / part
        walked.append(part)
        if current.is_symlink():
            return "/".join(walked)
        if not current.exists():
            return None
    return None


def make_real_parents(root: Path, rel: str) -> None:
    """Create the directories on the way to ``rel``; a link on the way (a directory a
    tool replaced by a link) is removed first, so nothing is written through it."""
    parts = rel.replace("\\", "/").strip("/").split("/")[:-1]
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            current.unlink()
        if not current.is_dir():
            current.mkdir()


class Scope:
    """Which repository paths an attempt may change: files, directories, globs -- never
    one of the ``forbidden`` paths (``forbidden_paths`` patterns), whatever an entry
    reaches (a glob such as ``prod.pe[m]`` names ``prod.pem``)."""

    def __init__(self, root: Path, entries: Iterable[str], forbidden: Sequence[str] = ()):
        self.root = root
        self.forbidden = tuple(forbidden)
        self.files: set[str] = set()
        self.dirs: list[str] = []
        self.globs: list[str] = []
        for e in entries:
            e = e.replace("\\", "/")
            while e.startswith("./"):
                e = e[2:]
            if any(c in e for c in GLOB_CHARS):
                self.globs.append(e)
                # and the name itself, existing or to be made (pages/[id].tsx, the
                # directory app/[slug]/): a framework's route, not only a pattern
                if e.endswith("/") or ((root / e).is_dir() and not (root / e).is_symlink()):
                    self.dirs.append(e.rstrip("/") + "/")
                else:
                    self.files.add(e)
            elif e.endswith("/") or (root / e).is_dir():
                self.dirs.append(e.rstrip("/") + "/")
            else:
                self.files.add(e)

    def contains(self, rel: str) -> bool:
        """Whether the repository-relative path ``rel`` is inside the scope."""
        if self.forbidden and forbidden_match(rel, self.forbidden) is not None:
            return False
        if rel in self.files:
            return True
        if any(rel.startswith(d) for d in self.dirs):
            return True
        return any(glob_pattern(g).match(rel) for g in self.globs)

    def existing(self) -> list[str]:
        """The files and links in the scope that exist now. Links are never followed:
        a directory of the scope replaced by a link is listed as that link."""
        out = set()
        for f in self.files:
            if not linked_parent(self.root, f) and _is_entry(self.root / f):
                out.add(f)
        for d in self.dirs:
            rel = d.rstrip("/")
            if linked_parent(self.root, rel):
                continue
            base = self.root / rel
            if base.is_symlink():
                out.add(rel)
                continue
            for dirpath, dirnames, filenames in os.walk(base):  # never follows links
                here = Path(dirpath)
                for name in filenames + [n for n in dirnames if (here / n).is_symlink()]:
                    out.add(_rel(self.root, here / name))
        for g in self.globs:
            for p in self.root.glob(g + "/*" if g == "**" or g.endswith("/**") else g):
                rel = _rel(self.root, p)
                if not linked_parent(self.root, rel) and _is_entry(p):
                    out.add(rel)
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
