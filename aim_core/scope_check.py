"""Every file a scope reaches by expansion, checked like a named one before any tool runs.

A workstream names files, directories (``src/``) and globs (``src/*.py``).
:func:`aim_core.security.check_request` checks what is named; this module walks
what directories and globs reach -- the way a tool would, through symbolic links
that stay inside the repository -- and refuses the request when it reaches

- a symbolic link that leads outside the repository, or to a forbidden path
  inside it (a tool following ``src/link.py`` would rewrite the file it points to);
- a file with more than one hard link (written in place, every name changes);
- a forbidden path (``src/.env``, ``src/certs/server.key``, a nested ``.git/``);
- a FIFO, socket or device (a tool or aim's snapshot would block on it);
- more than :data:`MAX_FILES` files, or a glob that makes it look at more than
  :data:`MAX_ENTRIES` entries (the walk stops there: a clear refusal instead of a
  check that never ends);

and, for the files sent to the tool (``capability_payload.files``, else
``files_scope``), credentials in their text and a total size over
``security.max_payload_bytes`` -- counted as for named files. The checks of
links, hard links and special files also apply to named files.

Files under cache directories (``__pycache__``, ``.pytest_cache``, ...) are
checked for links and special files but not counted or scanned: they are
written by tools, not sent to them. Every objection is a
:class:`~aim_core.models.Problem` with the field path (``files_scope[0]``) and
the path reached (``src/link.py``), so it reaches the audit record's
``refused_paths``.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aim_core.models import Problem
from aim_core.security import check_paths, files_field, forbidden_match, policy
from aim_core.values import Value

MAX_FILES = 20_000  # files one request may reach by expansion (about 0.6 s to check them)
MAX_ENTRIES = 200_000  # entries a glob may make aim look at (about 2.5 s; see SECURITY.md)
MAX_PROBLEMS = 20  # objections listed; the rest are counted
CACHE_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
GLOB_CHARS = "*?["
_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class Reached(Value):
    """A regular file a scope entry reaches: ``rel`` as a tool would name it (through
    links), ``real`` the file it is, ``size`` in bytes, ``cache`` when under a cache
    directory."""

    __slots__ = ("cache", "real", "rel", "size")
    rel: str
    real: Path
    size: int
    cache: bool

    def __init__(self, *, rel: str, real: Path, size: int, cache: bool = False) -> None:
        self._init(rel=rel, real=real, size=size, cache=cache)


class Expansion(Value):
    """What one entry reached: its files and its ``(path, message)`` objections."""

    __slots__ = ("files", "problems")
    files: list[Reached]
    problems: list[tuple[str, str]]

    def __init__(
        self,
        *,
        files: list[Reached] | None = None,
        problems: list[tuple[str, str]] | None = None,
    ) -> None:
        self._init(
            files=[] if files is None else files, problems=[] if problems is None else problems
        )


class TooManyFiles(Exception):
    """The expansion went past :data:`MAX_FILES`."""


# --------------------------------------------------------------------------- the request


def check_scope(payload: Any, root: Path, security: Mapping[str, Any]) -> list[Problem]:
    """The objections to what the request's directories and globs reach (see the module
    docstring); ``[]`` when there are none. Entries that
    :func:`~aim_core.security.check_paths` refuses are left to it."""
    forbidden = tuple(security.get("forbidden_paths", ()))
    sent_field = files_field(payload)
    fields = {"files_scope": payload.files_scope, "files_create": payload.files_create}
    if sent_field != "files_scope":
        fields[sent_field] = payload.files
    problems: list[Problem] = []
    sent: dict[str, tuple[Reached, str]] = {}  # rel -> (file, field path of its entry)
    budget = [MAX_FILES, MAX_ENTRIES]
    for name, entries in fields.items():
        for i, entry in enumerate(entries):
            where = f"{name}[{i}]"
            if check_paths({name: [entry]}, root, security):
                continue  # check_request refuses the entry itself
            try:
                found = expand(root, entry, forbidden, budget)
            except TooManyFiles:
                return [_too_many(where, entry)]
            problems += [
                Problem(field=where, message=f"{m}{_reached_by(entry)}", path=p)
                for p, m in found.problems
            ]
            if name == sent_field:
                named = not _is_pattern(root, entry)
                sent.update((f.rel, (f, where)) for f in found.files if not (named or f.cache))
    if not problems:
        problems = _check_sent(payload, root, security, sent)
    return _capped(problems)


def _too_many(where: str, entry: str) -> Problem:
    return Problem(
        field=where,
        path=entry,
        message=f"'{entry}' reaches more than {MAX_FILES} files (or makes aim look at more "
        f"than {MAX_ENTRIES}); aim checks every file a scope reaches before a tool runs: "
        "narrow it to the directories or files the work needs",
    )


NARROW = "; name the files or directories the tool may change instead of one that holds it"


def _reached_by(entry: str) -> str:
    """Which directory or glob of the workstream reached a problem found inside it."""
    return f" (inside '{entry}')"


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    rest = len(problems) - MAX_PROBLEMS
    more = Problem(field=problems[-1].field, message=f"... and {rest} more like these")
    return [*problems[:MAX_PROBLEMS], more]


def _check_sent(
    payload: Any, root: Path, security: Mapping[str, Any], sent: dict[str, tuple[Reached, str]]
) -> list[Problem]:
    """Size and credentials of the files sent that only expansion reached (named files
    are checked by :func:`aim_core.security.check_request`)."""
    named = {f: (root / f).stat().st_size for f in payload.files if (root / f).is_file()}
    extra = {rel: v for rel, v in sent.items() if rel not in named}
    limit = security.get("max_payload_bytes")
    prompt = len(payload.prompt.encode("utf-8"))
    total_named = prompt + sum(named.values())
    total = total_named + sum(r.size for r, _ in extra.values())
    if limit and total > limit >= total_named:
        biggest, where = max(extra.values(), key=lambda v: v[0].size)
        message = (
            f"the request is {total} bytes (prompt {prompt}, files {total - prompt}, of "
            f"which '{biggest.rel}' {biggest.size}), over max_payload_bytes {limit}; "
            f"narrow {where} or raise security.max_payload_bytes"
        )
        return [Problem(field=where, path=biggest.rel, message=message)]
    if policy(security, "files") == "block":
        return _credentials(sorted(extra.values(), key=lambda v: v[0].rel))
    return []


def _credentials(files: Sequence[tuple[Reached, str]]) -> list[Problem]:
    from aim_core import credentials

    problems = []
    for r, where in files:
        try:
            data = r.real.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:8192]:
            continue  # binary: no text to leak as such
        leaks = credentials.scan(data.decode("utf-8", "replace"), filename=r.rel, entropy=False)
        if leaks:
            problems.append(
                Problem(
                    field=where,
                    path=r.rel,
                    message=f"'{r.rel}' holds a credential: {credentials.describe(leaks)}; "
                    "take it out of the file before a tool reads it",
                )
            )
    return problems


# --------------------------------------------------------------------------- expansion


def _is_pattern(root: Path, entry: str) -> bool:
    text = entry.replace("\\", "/")
    return any(c in text for c in GLOB_CHARS) or text.endswith("/") or (root / text).is_dir()


def expand(
    root: Path, entry: str, forbidden: Sequence[str], budget: list[int] | None = None
) -> Expansion:
    """Walk what ``entry`` (a file, a directory or a glob) reaches.

    :param budget: ``[files, entries]`` left to reach and to look at, shared across
        entries; default ``[MAX_FILES, MAX_ENTRIES]``.
    :raises TooManyFiles: past the budget.
    """
    budget = [MAX_FILES, MAX_ENTRIES] if budget is None else budget
    out = Expansion()
    # "./src/", "src/./": the path without its "." and empty parts ("." is the root)
    text = "/".join(c for c in entry.replace("\\", "/").split("/") if c not in ("", "."))
    walker = _Walker(root, forbidden, out, budget)
    if any(c in text for c in GLOB_CHARS):
        base = _static_prefix(text)
        walker.walk(root / base if base else root, base, _glob_filter(text))
    elif (root / text).is_dir():
        walker.walk(root / text, f"{text}/" if text else "", None)
    elif os.path.lexists(root / text):
        walker.visit_named(root / text, text)
    return out


def _static_prefix(pattern: str) -> str:
    """``src/pkg/*.py`` -> ``src/pkg/``: the directories before the first glob."""
    parts = pattern.split("/")
    fixed = []
    for part in parts[:-1]:
        if any(c in part for c in GLOB_CHARS):
            break
        fixed.append(part)
    return "".join(f"{p}/" for p in fixed if p not in ("", "."))


def _glob_filter(pattern: str) -> Callable[[str], bool]:
    """Whether a path (``rel``, ``is_dir``) is in the glob: as :class:`~aim_core.scope.Scope`
    matches it (``*`` crosses ``/``), or as a tool's glob would (``**/`` matching no
    directory, a matched directory taking all it holds)."""
    variants = {pattern, pattern.replace("**/", "")}

    def matches(rel: str) -> bool:
        return any(fnmatch.fnmatchcase(rel, v) for v in variants)

    return matches


class _Walker:
    """Walks directories without following links out; collects files and objections."""

    def __init__(self, root: Path, forbidden: Sequence[str], out: Expansion, budget: list[int]):
        self.root = root
        self.real_root = root.resolve()
        self.forbidden = forbidden
        self.out = out
        self.budget = budget
        self.seen_dirs: set[Path] = set()

    def walk(self, start: Path, prefix: str, keep: Callable[[str], bool] | None) -> None:
        """Every entry under ``start``, named ``prefix + name``; ``keep(rel)`` filters
        (None: all). A directory that ``keep`` takes is taken whole."""
        todo = [(start, prefix, keep)]
        while todo:
            directory, prefix, keep = todo.pop()
            real = directory.resolve()
            if real in self.seen_dirs:
                continue
            self.seen_dirs.add(real)
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                continue
            self.budget[1] -= len(entries)
            if self.budget[1] < 0:
                raise TooManyFiles(prefix)
            for e in entries:
                rel = prefix + e.name
                # what the glob takes is taken whole (a matched directory: all it holds)
                sub_keep = None if keep is not None and keep(rel) else keep
                nxt = self.visit(Path(e.path), rel, sub_keep is None, e)
                if nxt is not None:
                    todo.append((nxt, rel + "/", sub_keep))

    def visit(self, path: Path, rel: str, taken: bool, entry: os.DirEntry[str]) -> Path | None:
        """Check one entry; the directory to walk next, if it is one."""
        if entry.is_symlink():
            return self._link(path, rel, taken)
        if entry.is_dir(follow_symlinks=False):
            rule = forbidden_match(rel + "/", self.forbidden)
            if rule is not None and taken:
                self._problem(rel, f"'{rel}/' is a forbidden path (rule '{rule}'){NARROW}")
            # a glob is not followed into a forbidden directory it does not take whole
            # (.git/): what a tool writes there is the workspace's to catch
            return None if rule is not None else path
        if taken:
            self._file(path, rel, entry.stat(follow_symlinks=False))
        return None

    def visit_named(self, path: Path, rel: str) -> None:
        """A named file: only what :func:`check_path` does not see (kind, hard links)."""
        try:
            st = path.stat()
        except OSError:
            return
        self._kind(rel, st)

    def _link(self, path: Path, rel: str, taken: bool) -> Path | None:
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            if taken:
                self._problem(rel, f"'{rel}' is a symlink that cannot be resolved (a loop?)")
            return None
        try:
            target = real.relative_to(self.real_root).as_posix()
        except ValueError:
            if taken or real.is_dir():
                self._problem(
                    rel,
                    f"'{rel}' is a symlink that leads outside the repository (to {real}); "
                    "a tool would change that file: remove the link or narrow the scope",
                )
            return None
        is_dir = real.is_dir()
        rule = forbidden_match(target + ("/" if is_dir else ""), self.forbidden)
        if rule is not None and (taken or is_dir):
            self._problem(
                rel, f"'{rel}' is a symlink to the forbidden path '/{target}' (rule '{rule}')"
            )
            return None
        if is_dir:
            return path
        if taken and real.exists():
            self._file(real, rel, real.stat())
        return None

    def _file(self, real: Path, rel: str, st: os.stat_result) -> None:
        self.budget[0] -= 1
        if self.budget[0] < 0:
            raise TooManyFiles(rel)
        rule = forbidden_match(rel, self.forbidden)
        if rule is not None:
            self._problem(rel, f"'{rel}' is a forbidden path (rule '{rule}'){NARROW}")
            return
        if not self._kind(rel, st):
            return
        cache = any(part in CACHE_DIRS for part in rel.split("/")[:-1])
        self.out.files.append(Reached(rel=rel, real=real, size=st.st_size, cache=cache))

    def _kind(self, rel: str, st: os.stat_result) -> bool:
        """False (with an objection) for special files and files with other names."""
        for test, what in _SPECIAL:
            if test(st.st_mode):
                self._problem(
                    rel,
                    f"'{rel}' is {what}; tools and aim would block on it: remove it "
                    "or narrow the scope",
                )
                return False
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            self._problem(
                rel,
                f"'{rel}' has {st.st_nlink} hard links; a tool writing it in place would "
                "change the other names too (perhaps outside the repository): make it a "
                "file of its own (cp -p FILE tmp && mv tmp FILE)",
            )
            return False
        return True

    def _problem(self, rel: str, message: str) -> None:
        self.out.problems.append((rel, message))
