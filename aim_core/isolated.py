"""``IsolatedWorkspace``: an attempt in its own copy of the repository, its changes in
scope applied to the user's tree in one step when it succeeds.

The copy is the repository as the user has it now -- uncommitted edits, the staged
state, untracked files, deletions -- made outside it (``copy_dir``, under the
machine-local run state). Where git can read the repository it is a clone:

- ``git clone --shared --no-checkout --template=`` of the repository (its objects
  are borrowed through ``objects/info/alternates``, nothing is copied; no template:
  no sample hooks to write and remove), HEAD set to the user's commit and branch,
  the user's index copied in and checked out (``checkout-index``, in parallel);
  then the work-tree files git's index does not hold are copied over it: modified,
  deleted, untracked, assume-unchanged and skip-worktree entries, and the
  git-ignored ones.
- Copies made together (a race's first candidates) share one :class:`CopySource`:
  git's status, HEAD, identity and index listing of the user's repository are read
  once for all of them, and the linked directories walked once.
- A clone, not a ``git worktree``: a worktree shares refs, config and hooks with
  the user's repository, so a tool's ``git commit``, ``git checkout -b`` or
  ``git config`` in the copy would reach it. A clone's refs, config and hooks are
  its own. (Both cost about the same: the checkout of the files dominates; see
  ``bench/bench_isolated.py``.)

Outside git, or when git cannot read the repository (``safe.directory``), the copy
is a plain one of the tree (``.git`` included, its objects hard-linked).

Git-ignored directories: small ones are copied; big ones (more than
:data:`LINK_MIN_FILES` entries or :data:`LINK_MIN_BYTES` bytes: ``.venv/``,
``node_modules/``) are symbolic links to the user's, so that the tool and the checks
find their environment. A link lets a tool write into the user's directory, so every
entry under a linked directory is fingerprinted (``lstat`` stamps, the whole tree)
when the copy is made and again by :meth:`IsolatedWorkspace.outside`, which names
any write made through a link -- such a write cannot be undone (it is reported as
stuck) and fails the attempt. Python's bytecode caches (``__pycache__/``) written
through a link are allowed: running the checks writes them, and they are what
running the same checks in place writes.

Applying (:meth:`IsolatedWorkspace.keep`) never follows a link: a changed path that
is a link, or lies under one, in the copy or in the user's tree, is refused; a
target the user changed since the copy was made is a conflict; in both cases
nothing is changed. Otherwise every new content is first written to a temporary
file next to its target, then all are renamed into place (and deletions made) at
once; a plan on disk lets :func:`remove_leftover_copy` finish or clean up an apply
cut short by ``kill -9``.

The copy's own git state (HEAD, refs, the index, the stash) may move: the copy is
thrown away and only files are applied. Changes to its config, hooks or
``info/`` are reported by :meth:`IsolatedWorkspace.outside` (as ``.git/...``
labels, as in place), since they run code or change what git does. aim runs no
git command in the copy after the tool has started.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from attrs import frozen

from aim_core.errors import EXIT_WORK_FAILED, AimError
from aim_core.gitmeta import GitStatus, find_git_dir, read_status
from aim_core.models import FileChanges
from aim_core.scope import Scope, linked_parent
from aim_core.security import forbidden_match
from aim_core.treestate import Stamp, WorkspaceRefused, walk

__all__ = [
    "ApplyConflict",
    "ApplyError",
    "ApplyRefused",
    "CopySource",
    "IsolatedWorkspace",
    "Leftover",
    "remove_leftover_copy",
]

MANIFEST = "isolated.json"
TREE = "tree"  # the copy of the repository's top, under copy_dir
BASE = "base"  # contents of the files in scope when the copy was made (diff sizes)
LINK_MIN_FILES = 2000  # AIM_LINK_MIN_FILES, when set, instead
LINK_MIN_BYTES = 64 * 1024 * 1024  # AIM_LINK_MIN_MB (megabytes), when set, instead
# Git's state of the copy that runs code or changes what git does (reported).
GIT_SECURITY = ("config", "config.worktree", "hooks", "info")
# Names of git-ignored environments that are linked whatever their size outside git.
ENV_DIRS = ("node_modules", ".venv", "venv", ".tox", ".nox")
APPLY_SUFFIX = ".aim-apply-"
# Variables that would make git read or write another repository than the one named.
GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
)

Entry = tuple[Any, ...]  # ("f", mode, sha256) | ("l", target)
_T = TypeVar("_T")


class ApplyError(AimError):
    """The changes of an isolated attempt could not be applied; nothing was changed.

    :param paths: the repository paths at fault.
    """

    exit_code = EXIT_WORK_FAILED

    def __init__(self, message: str, paths: Sequence[str] = ()):
        super().__init__(message)
        self.paths = tuple(paths)


class ApplyConflict(ApplyError):
    """A file the attempt changed was changed in the user's tree too since the copy
    was made (the user kept editing): the attempt's changes were not applied."""


class ApplyRefused(ApplyError):
    """A changed path is a link, or lies under one, in the copy or the user's tree
    (applying it could write outside the repository): nothing was applied."""


@frozen(kw_only=True)
class Leftover:
    """What :func:`remove_leftover_copy` did: ``finished`` paths whose apply, cut short,
    it completed; ``left`` paths it did not (changed since: someone else's);
    ``removed`` whether the copy's directory is gone."""

    finished: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    removed: bool = False


# --------------------------------------------------------------------------- helpers


def _git(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[bytes] | None:
    """``git -C cwd ARGS`` for aim's own use: no prompt, no fsmonitor, none of the
    variables that point git at another repository; None when git is missing or hangs."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    try:
        return subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "-C", str(cwd), *args],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def _git_ok(cwd: Path, *args: str) -> bytes:
    r = _git(cwd, *args)
    if r is None or r.returncode != 0:
        why = "git could not be run" if r is None else os.fsdecode(r.stderr).strip()
        raise _GitFailed(f"git {args[0]}: {why}")
    return r.stdout


class _GitFailed(Exception):
    pass


def _git_all(
    cwd: Path, *commands: Sequence[str], timeout: float = 600
) -> list[subprocess.CompletedProcess[bytes] | None]:
    """Several :func:`_git` commands that only read, started at once: their results in
    order (None for one that could not be run or hung)."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    started: list[tuple[list[str], subprocess.Popen[bytes] | None]] = []
    for args in commands:
        argv = ["git", "-c", "core.fsmonitor=false", "-C", str(cwd), *args]
        try:
            proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError:
            proc = None
        started.append((argv, proc))
    out: list[subprocess.CompletedProcess[bytes] | None] = []
    for argv, proc in started:
        if proc is None:
            out.append(None)
            continue
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out.append(None)
            continue
        out.append(subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr))
    return out


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _entry(path: Path) -> Entry | None:
    """What is at ``path`` (never followed): a regular file's mode and digest, a
    link's target, ``("o",)`` for anything else, None when nothing is there."""
    try:
        st = path.lstat()
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return ("l", os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        return ("f", stat.S_IMODE(st.st_mode), _digest(path))
    return ("o",)


def _copy_entry(src: Path, dst: Path) -> None:
    """Copy a file (content and mode) or a link (itself); skip anything else."""
    try:
        st = src.lstat()
    except OSError:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        _remove(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    elif stat.S_ISDIR(st.st_mode):
        shutil.copytree(src, dst, symlinks=True, ignore_dangling_symlinks=True)


def _remove(path: Path) -> None:
    """Remove a file or link (never what it points to) or a directory tree."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        _rmtree(path)


def _rmtree(path: Path) -> None:
    """``rm -rf`` that never follows links and gets past read-only directories."""

    def retry(func: Any, p: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
            func(p)

    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=retry)


def _big(path: Path) -> bool:
    """Whether the directory holds more than :data:`LINK_MIN_FILES` entries or
    :data:`LINK_MIN_BYTES` bytes (counting stops there); the environment variables
    are read here, not at import (a run server's worker takes its client's after it)."""
    env = os.environ
    most_files = int(env.get("AIM_LINK_MIN_FILES") or LINK_MIN_FILES)
    most_bytes = int(env["AIM_LINK_MIN_MB"]) << 20 if env.get("AIM_LINK_MIN_MB") else LINK_MIN_BYTES
    count, size = 0, 0
    stack = [os.fspath(path)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for e in it:
                count += 1
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                size += st.st_size
                if count > most_files or size > most_bytes:
                    return True
                if stat.S_ISDIR(st.st_mode):
                    stack.append(e.path)
    return False


def _hardlink_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _under(rel: str, dirs: Iterable[str]) -> bool:
    return any(rel == d or rel.startswith(d + "/") for d in dirs)


def _is_cache(rel: str) -> bool:
    """Python's bytecode caches (allowed to change through a linked environment)."""
    return "__pycache__" in rel.split("/")


# --------------------------------------------------------------------------- the source


@frozen(kw_only=True)
class _GitFacts:
    """What a clone takes from the user's repository besides its objects and index."""

    head: str  # the commit checked out ("" on an unborn branch)
    branch: str  # "refs/heads/NAME", or "" when HEAD is detached
    identity: tuple[tuple[str, str], ...]  # the repository's user.name / user.email
    hidden: tuple[str, ...]  # assume-unchanged and skip-worktree entries


class _Once(Generic[_T]):
    """A value computed by the first thread that asks, waited for by the others."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.value: _T | None = None
        self.failed = False


class CopySource:
    """The user's repository as the copies made together see it, read once for all of
    them: where git keeps it, ``git status``, HEAD, the identity and the index's hidden
    entries, the size verdicts of the ignored directories and the fingerprint of the
    linked ones (each copy of a race would otherwise run the same git commands and walk
    the same ``.venv/``). Thread-safe. Only for copies made at the same moment, before
    any of their tools starts: a later copy (a repair's) reads the repository again.

    :param root: the user's repository root (the project root).
    """

    def __init__(self, root: Path):
        self.root = Path(os.path.abspath(root))
        self._lock = threading.Lock()
        self._shared: dict[Hashable, _Once[Any]] = {}

    def _once(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """``compute()`` the first time ``key`` is asked for; the same value after (a
        failure is not kept: the next caller computes again, and fails its own way)."""
        with self._lock:
            once = self._shared.get(key)
            mine = once is None or (once.ready.is_set() and once.failed)
            if mine:
                once = self._shared[key] = _Once()
        assert once is not None
        if not mine:
            once.ready.wait()
            return compute() if once.failed else cast(_T, once.value)
        try:
            value = once.value = compute()
        except BaseException:
            once.failed = True
            raise
        finally:
            once.ready.set()
        return value

    def repository(self) -> tuple[tuple[Path, Path, Path] | None, GitStatus | None]:
        """``(find_git_dir(root), git status of its work tree)``; ``(None, None)``
        outside git."""

        def read() -> tuple[tuple[Path, Path, Path] | None, GitStatus | None]:
            found = find_git_dir(self.root)
            return found, (read_status(found[0], found[0]) if found is not None else None)

        return self._once("repository", read)

    def git_facts(self, top: Path) -> _GitFacts:
        """HEAD, the branch, the identity and the hidden index entries of the work tree
        ``top`` (:class:`_GitFailed` when git cannot list the index)."""
        return self._once(("git", top), lambda: _read_git_facts(top))

    def big(self, path: Path) -> bool:
        """:func:`_big` of an ignored directory, measured once."""
        return self._once(("big", path), lambda: _big(path))

    def linked_stamps(
        self, linked: Sequence[str], walk: Callable[[], dict[str, Stamp]]
    ) -> dict[str, Stamp]:
        """The fingerprint of the linked directories ``linked`` (``walk()``), taken once.
        The copies only read it."""
        return self._once(("links", tuple(sorted(linked))), walk)


def _read_git_facts(top: Path) -> _GitFacts:
    """:class:`_GitFacts` of ``top``: four git commands, run at once."""
    head, branch_r, identity_r, listed = _git_all(
        top,
        ("rev-parse", "-q", "--verify", "HEAD"),
        ("symbolic-ref", "-q", "HEAD"),
        ("config", "--local", "--get-regexp", r"^user\.(name|email)$"),
        ("ls-files", "-v", "-z"),
    )
    if listed is None or listed.returncode != 0:
        why = "git could not be run" if listed is None else os.fsdecode(listed.stderr).strip()
        raise _GitFailed(f"git ls-files: {why}")
    sha = os.fsdecode(head.stdout).strip() if head is not None and head.returncode == 0 else ""
    ok = branch_r is not None and branch_r.returncode == 0
    branch = os.fsdecode(branch_r.stdout).strip() if ok and branch_r is not None else ""
    identity = []
    if identity_r is not None and identity_r.returncode == 0:
        for line in identity_r.stdout.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(" ")
            if key in ("user.name", "user.email"):
                identity.append((key, value))
    entries = listed.stdout.split(b"\0")
    hidden = [os.fsdecode(x[2:]) for x in entries if x[:2] == b"S " or x[:1].islower()]
    return _GitFacts(
        head=sha,
        branch=branch if branch.startswith("refs/heads/") else "",
        identity=tuple(identity),
        hidden=tuple(hidden),
    )


# --------------------------------------------------------------------------- the workspace


class IsolatedWorkspace:
    """An attempt's own copy of the repository (see the module docstring); implements
    :class:`~aim_core.workspace.Workspace`.

    :param root: the user's repository root (the project root).
    :param scope: the paths the tool may change (relative to ``root``).
    :param copy_dir: a directory outside the repository for the copy and its records
        (the machine-local ``runs/<run>/attempt-N``); created, emptied first.
    :param exclude: repository paths neither copied nor watched (aim's audit and runs).
    :param forbidden: the security rules' forbidden path patterns.
    :param scratch: paths the tool may change outside the scope (its caches).
    :param links: git-ignored directories (relative to ``root``) to link rather than
        copy; None decides by size (:data:`LINK_MIN_FILES`, :data:`LINK_MIN_BYTES`).
    :param source: what the copies made together share of ``root`` (a
        :class:`CopySource` of the same root; default: read for this copy alone).
    :raises WorkspaceRefused: when the copy could not be made (``copy_dir`` inside the
        repository, the disk full); nothing is left behind.

    Attributes: ``root`` the copy's root (where the tool runs), ``source`` the user's
    root, ``snapshot_dir`` (= ``copy_dir``), ``kind`` ``"clone"`` or ``"copy"``,
    ``linked`` the root-relative directories linked to the user's.
    """

    def __init__(
        self,
        root: Path,
        scope: Scope,
        copy_dir: Path,
        *,
        exclude: Sequence[str] = (),
        forbidden: Sequence[str] = (),
        scratch: Sequence[str] = (),
        links: Sequence[str] | None = None,
        source: CopySource | None = None,
    ):
        self.source = Path(os.path.abspath(root))
        if source is not None and source.root != self.source:
            raise ValueError(f"a CopySource of {source.root} for a copy of {self.source}")
        self._from = source if source is not None else CopySource(self.source)
        self.snapshot_dir = Path(os.path.abspath(copy_dir))
        try:
            self.snapshot_dir.resolve().relative_to(self.source.resolve())
        except ValueError:
            pass
        else:
            raise WorkspaceRefused(
                f"the copy's directory {copy_dir} is inside the repository {root}; "
                "nothing was run. Fix: keep aim's run state outside the repository"
            )
        self.scope = scope
        self.exclude = [e.strip("/") for e in exclude if e.strip("/")]
        self.forbidden = list(forbidden)
        self.scratch = list(scratch)
        self.kind = "copy"
        self.linked: list[str] = []
        self._ignored_files: set[str] = set()
        self._ignored_dirs: list[str] = []
        self._last_outside: dict[str, str] = {}  # label -> "copy" | "link" | "git"
        self._link_walk: threading.Thread | None = None
        self._link_walk_result: dict[str, Stamp] = {}
        _rmtree(self.snapshot_dir)
        self.snapshot_dir.mkdir(parents=True)
        self._write_manifest({"source": str(self.source), "state": "copying"})
        try:
            self._copy_and_fingerprint(links)
        except BaseException as e:
            if self._link_walk is not None:
                self._link_walk.join()
            _rmtree(self.snapshot_dir)
            if isinstance(e, (OSError, _GitFailed)):
                raise WorkspaceRefused(
                    f"aim could not make a copy of the repository in {copy_dir} ({e}); "
                    "nothing was run. Fix: free disk space there, or run without isolation"
                ) from e
            raise
        self._write_plan("none", {}, [])

    def _copy_and_fingerprint(self, links: Sequence[str] | None) -> None:
        top, rel_root = self._make_copy(links)
        self.top = top
        self.root = top / rel_root if rel_root != "." else top
        scope = self.scope
        self.copy_scope = Scope(
            self.root, [*scope.files, *scope.dirs, *scope.globs], scope.forbidden
        )
        self._scratch = Scope(self.root, self.scratch)
        self._base = self._take_base()
        self._stamps = self._walk_copy()
        self._link_stamps = self._link_walk_done()
        self._git_stamps = self._walk_git()

    # ----------------------------------------------------------------- making the copy

    def _make_copy(self, links: Sequence[str] | None) -> tuple[Path, str]:
        """Fill ``copy_dir/tree``; the copy's top and the root's path under it."""
        tree = self.snapshot_dir / TREE
        found, status = self._from.repository()
        if found is not None and status is not None:
            top, gitdir, common = found
            rel_root = os.path.relpath(self.source, top)
            if status.readable:
                try:
                    self._clone(
                        top, gitdir, common, status, tree=tree, rel_root=rel_root, links=links
                    )
                    self.kind = "clone"
                    return tree, rel_root
                except _GitFailed:
                    _rmtree(tree)  # git refused something: a plain copy instead
            self._plain_copy(top, tree, rel_root, links)
            return tree, rel_root
        self._plain_copy(self.source, tree, ".", links)
        return tree, "."

    def _clone(
        self,
        top: Path,
        gitdir: Path,
        common: Path,
        status: GitStatus,
        *,
        tree: Path,
        rel_root: str,
        links: Sequence[str] | None,
    ) -> None:
        excluded = [self._top_rel(rel_root, e) for e in self.exclude]
        to_link = self._choose_links(top, rel_root, status, links, excluded)
        self._start_link_walk()  # in parallel with git's checkout
        # no template: the sample hooks and the rest are files to write and remove again
        # for nothing (and a template of the user's could bring hooks of its own)
        _git_ok(
            self.snapshot_dir,
            "clone",
            "-q",
            "--shared",
            "--no-checkout",
            "--template=",
            str(common),
            TREE,
        )
        facts = self._from.git_facts(top)
        dot = tree / ".git"
        (dot / "hooks").mkdir(exist_ok=True)  # where git and tools expect them
        _write_head(dot, facts)
        for key, value in facts.identity:  # only those: no hook, no alias
            _git(tree, "config", "--local", key, value)  # a tool's commit works as in yours
        if (gitdir / "index").is_file():
            shutil.copyfile(gitdir / "index", dot / "index")
            for shared in gitdir.glob("sharedindex.*"):
                shutil.copyfile(shared, dot / shared.name)
            workers = str(max(1, os.cpu_count() or 1))
            _git_ok(
                tree, "-c", f"checkout.workers={workers}", "checkout-index", "-a", "-f", "-q", "-u"
            )
        # what the index does not say: the work tree's own state
        for rel in sorted({*status.dirty, *facts.hidden}):
            if (top / rel).is_symlink() or (top / rel).exists():
                if not (top / rel).is_dir() or (top / rel).is_symlink():
                    _copy_entry(top / rel, tree / rel)
            else:
                with contextlib.suppress(OSError):
                    _remove(tree / rel)
        for rel in sorted(status.untracked):
            if not _under(rel, excluded):
                _copy_entry(top / rel, tree / rel)
        self._copy_ignored(top, tree, rel_root, status, to_link, excluded)
        if self.linked:  # git sees a link, not the ignored directory it stands for
            info = dot / "info"
            info.mkdir(exist_ok=True)
            with open(info / "exclude", "a", encoding="utf-8") as f:
                f.writelines(f"/{self._top_rel(rel_root, x)}\n" for x in self.linked)

    def _choose_links(
        self,
        top: Path,
        rel_root: str,
        status: GitStatus,
        links: Sequence[str] | None,
        excluded: list[str],
    ) -> set[str]:
        """The ignored directories (top-relative) to link rather than copy; sets
        :attr:`linked` (root-relative)."""
        wanted = None if links is None else {self._top_rel(rel_root, x.strip("/")) for x in links}
        out = set()
        for rel in status.ignored_dirs:
            if _under(rel, excluded) or rel == ".git" or rel.startswith(".git/"):
                continue
            src = top / rel
            if src.is_symlink():
                continue
            if (wanted is not None and rel in wanted) or (wanted is None and self._from.big(src)):
                out.add(rel)
                self.linked.append(self._root_rel(rel_root, rel))
        return out

    def _start_link_walk(self) -> None:
        def work() -> None:
            self._link_walk_result = self._from.linked_stamps(self.linked, self._walk_links)

        self._link_walk = threading.Thread(target=work, name="aim-link-walk", daemon=True)
        self._link_walk.start()

    def _link_walk_done(self) -> dict[str, Stamp]:
        """The fingerprint of the linked directories, taken while the copy was made."""
        if self._link_walk is None:
            return self._from.linked_stamps(self.linked, self._walk_links)
        self._link_walk.join()
        self._link_walk = None
        return self._link_walk_result

    def _copy_ignored(
        self,
        top: Path,
        tree: Path,
        rel_root: str,
        status: GitStatus,
        to_link: set[str],
        excluded: list[str],
    ) -> None:
        for rel in status.ignored_dirs:
            if _under(rel, excluded) or rel == ".git" or rel.startswith(".git/"):
                continue
            if rel in to_link:
                dst = tree / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(top / rel, dst)
            else:
                _copy_entry(top / rel, tree / rel)
            self._ignored_dirs.append(self._root_rel(rel_root, rel))
        for rel in status.ignored_files:
            if not _under(rel, excluded):
                _copy_entry(top / rel, tree / rel)
                self._ignored_files.add(self._root_rel(rel_root, rel))

    def _link(self, top: Path, tree: Path, rel: str, rel_root: str) -> None:
        dst = tree / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(top / rel, dst)
        self.linked.append(self._root_rel(rel_root, rel))

    def _plain_copy(
        self, top: Path, tree: Path, rel_root: str, links: Sequence[str] | None
    ) -> None:
        """Copy every entry under ``top`` (links as links, ``.git`` objects hard-linked);
        big environments (:data:`ENV_DIRS`, or ``links``) linked instead."""
        excluded = {self._top_rel(rel_root, e) for e in self.exclude}
        wanted = None if links is None else {self._top_rel(rel_root, x.strip("/")) for x in links}
        tree.mkdir()
        stack = [""]
        while stack:
            prefix = stack.pop()
            with os.scandir(top / prefix if prefix else top) as it:
                entries = list(it)
            for e in entries:
                rel = f"{prefix}{e.name}"
                if rel in excluded:
                    continue
                dst = tree / rel
                if rel == ".git" and not e.is_dir(follow_symlinks=False):
                    continue  # a linked worktree's pointer: the copy must not reach its git
                if e.is_dir(follow_symlinks=False):
                    if rel == ".git":
                        shutil.copytree(
                            e.path, dst, symlinks=True, copy_function=_git_copy_function(e.path)
                        )
                        continue
                    linked = rel in wanted if wanted is not None else e.name in ENV_DIRS
                    if linked and (wanted is not None or self._from.big(Path(e.path))):
                        self._link(top, tree, rel, rel_root)
                        self._ignored_dirs.append(self._root_rel(rel_root, rel))
                        continue
                    dst.mkdir()
                    shutil.copymode(e.path, dst)
                    stack.append(rel + "/")
                else:
                    _copy_entry(Path(e.path), dst)

    @staticmethod
    def _top_rel(rel_root: str, rel: str) -> str:
        return rel if rel_root == "." else f"{rel_root}/{rel}"

    @staticmethod
    def _root_rel(rel_root: str, rel: str) -> str:
        if rel_root == ".":
            return rel
        return rel[len(rel_root) + 1 :] if rel.startswith(rel_root + "/") else "../" + rel

    # ----------------------------------------------------------------- fingerprints

    def _take_base(self) -> dict[str, Entry | None]:
        """The files in scope as the copy holds them now (= the user's, when copied);
        their contents kept for :meth:`diff`."""
        base_dir = self.snapshot_dir / BASE
        base_dir.mkdir()
        out: dict[str, Entry | None] = {}
        for n, rel in enumerate(sorted({*self.copy_scope.existing(), *self.copy_scope.files})):
            entry = None if linked_parent(self.root, rel) else _entry(self.root / rel)
            out[rel] = entry
            if entry is not None and entry[0] == "f":
                shutil.copyfile(self.root / rel, base_dir / str(n))
                out[rel] = (*entry, str(n))
        return out

    def _walk_copy(self) -> dict[str, Stamp]:
        return walk(self.root, {".git", *self.exclude}, set())

    def _walk_links(self) -> dict[str, Stamp]:
        """Every entry under the linked directories, in the user's tree (root-relative)."""
        return walk(self.source, set(), set(), only=[x for x in self.linked if ".." not in x])

    def _walk_git(self) -> dict[str, Stamp]:
        dot = self.top / ".git"
        if not dot.is_dir() or dot.is_symlink():
            return {}
        return {f".git/{k}": v for k, v in walk(dot, set(), set(), only=GIT_SECURITY).items()}

    # ----------------------------------------------------------------- the Workspace

    def changes(self) -> FileChanges:
        """The files in scope created, modified or deleted in the copy since it was made
        (by content, mode and link target; links never followed)."""
        now = {rel for rel in self.copy_scope.existing() if not linked_parent(self.root, rel)}
        created, modified, deleted = [], [], []
        for rel in sorted(now | set(self._base)):
            before = self._base.get(rel)
            after = _entry(self.root / rel) if rel in now else None
            if before is None and after is not None:
                created.append(rel)
            elif before is not None and after is None:
                deleted.append(rel)
            elif before is not None and after is not None and tuple(before[:3]) != after:
                modified.append(rel)
        return FileChanges(created=created, modified=modified, deleted=deleted)

    def outside(self, ignore: Iterable[str] = ()) -> list[str]:
        """Root-relative paths outside the scope the tool changed: in the copy (anything
        not in scope, scratch or git-ignored, forbidden files always), through a linked
        directory into the user's tree (bytecode caches aside; ``ignore``, other runs'
        scopes, apply there only), and ``.git/config``/``hooks``/``info`` labels of the
        copy's git state. The copy's HEAD, refs, index and stash are not reported."""
        found: dict[str, str] = {}
        after = self._walk_copy()
        for rel in sorted(set(self._stamps) | set(after)):
            if self._stamps.get(rel) != after.get(rel) and not self._allowed(rel, after):
                found[rel] = "copy"
        others = [Scope(self.source, [i]) for i in ignore]
        links_after = self._walk_links()
        for rel in sorted(set(self._link_stamps) | set(links_after)):
            if self._link_stamps.get(rel) == links_after.get(rel) or _is_cache(rel):
                continue
            before_kind = (self._link_stamps.get(rel) or ("",))[0]
            if before_kind == "d" and (links_after.get(rel) or ("",))[0] == "d":
                continue  # a directory's own stamp moves with its entries
            if not any(o.contains(rel) for o in others):
                found[rel] = "link"
        git_after = self._walk_git()
        for label in sorted(set(self._git_stamps) | set(git_after)):
            before, now = self._git_stamps.get(label), git_after.get(label)
            if before != now and not (before and now and before[0] == now[0] == "d"):
                found[label] = "git"
        self._last_outside = found
        return list(found)

    def _allowed(self, rel: str, after: dict[str, Stamp]) -> bool:
        if self.copy_scope.contains(rel):  # never a forbidden path (the scope's own)
            return True
        kind = (after.get(rel) or self._stamps.get(rel) or ("",))[0]
        if kind == "d":
            if rel in after and rel in self._stamps:
                return True  # a directory's own stamp moves with its entries
            prefix = rel + "/"
            if any(
                self.copy_scope.contains(p) for p in (*after, *self._stamps) if p.startswith(prefix)
            ):
                return True
        if forbidden_match(rel, self.forbidden) is not None:
            return False
        scratch = self._scratch
        if scratch.contains(rel) or (kind == "d" and scratch.contains(rel + "/")):
            return True
        if rel in self._ignored_files:
            return True
        return _under(rel, self._ignored_dirs)  # a link of the copy replaced: harmless

    def revert_outside(self, paths: Sequence[str]) -> tuple[list[str], list[str]]:
        """``(reverted, stuck)``: what the tool changed in the copy never reaches the user
        (the copy is thrown away: "reverted"); writes made through a link into the
        user's tree cannot be undone (stuck)."""
        reverted: list[str] = []
        stuck: list[str] = []
        for p in paths:
            (stuck if self._last_outside.get(p) == "link" else reverted).append(p)
        return reverted, stuck

    def restore(self, keep: Sequence[str] = ()) -> list[str]:
        """Nothing to undo: the user's tree was not touched (returns ``[]``)."""
        return []

    def diff_size(self) -> int:
        """Lines added plus lines removed by the changes in scope (a race's tie-break)."""
        counts = self.diff(self.changes())
        return counts["lines_added"] + counts["lines_removed"]

    def diff(self, changes: FileChanges) -> dict[str, int]:
        """See :meth:`~aim_core.workspace.Workspace.diff`: the copy against the user's
        files when the copy was made."""
        from aim_core.diffstat import summary

        pairs = []
        for rel in (*changes.created, *changes.modified, *changes.deleted):
            before = self._base.get(rel)
            old = (
                self.snapshot_dir / BASE / before[3]
                if before is not None and before[0] == "f"
                else None
            )
            pairs.append((old, self.root / rel))
        return summary(pairs)

    def keep(self) -> None:
        """Apply the changes in scope to the user's tree in one step (see the module
        docstring).

        :raises ApplyRefused: a changed path is a link or under one, in either tree, or
            is not a regular file in the copy; nothing was changed.
        :raises ApplyConflict: a target changed in the user's tree since the copy was
            made; nothing was changed.
        """
        changes = self.changes()
        writes = [*changes.created, *changes.modified]
        paths = [*writes, *changes.deleted]
        if not paths:
            return
        refused = [p for p in paths if self._unsafe(p, p in changes.deleted)]
        if refused:
            raise ApplyRefused(
                f"{', '.join(refused)}: a link, or under one, in the copy or in {self.source} "
                "(applying it could write outside the repository); nothing was applied",
                refused,
            )
        self._check_conflicts(paths)
        token = secrets.token_hex(4)
        plan = {
            rel: str(self.source / Path(rel).parent / f".{Path(rel).name}{APPLY_SUFFIX}{token}")
            for rel in writes
        }
        made_dirs: list[Path] = []
        self._write_plan("staging", plan, changes.deleted)
        try:
            for rel, temp in plan.items():
                made_dirs += _make_dirs(self.source, rel)
                _stage(self.root / rel, Path(temp))
            self._check_conflicts(paths)  # the user may have saved a file meanwhile
        except BaseException as e:
            for temp in plan.values():
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            for d in reversed(made_dirs):
                with contextlib.suppress(OSError):
                    d.rmdir()
            self._write_plan("abandoned", {}, [])
            if isinstance(e, OSError):
                raise ApplyConflict(
                    f"could not write the changes into {self.source} ({e}); nothing was applied",
                    paths,
                ) from e
            raise
        self._write_plan("renaming", plan, changes.deleted)
        for rel, temp in plan.items():
            os.replace(temp, self.source / rel)
        for rel in changes.deleted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.source / rel)
            _remove_emptied_parents(self.source, self.root, rel)
        self._write_plan("applied", {}, [])

    def _unsafe(self, rel: str, deleted: bool) -> bool:
        if linked_parent(self.source, rel) or linked_parent(self.root, rel):
            return True
        if (self.source / rel).is_symlink():
            return True
        if deleted:
            return False
        entry = _entry(self.root / rel)
        return entry is None or entry[0] != "f"

    def _check_conflicts(self, paths: Sequence[str]) -> None:
        changed = []
        for rel in paths:
            before = self._base.get(rel)
            now = _entry(self.source / rel)
            if (tuple(before[:3]) if before is not None else None) != now:
                changed.append(rel)
        if changed:
            raise ApplyConflict(
                f"{', '.join(changed)} changed in {self.source} since the tool's copy was made "
                "(edited meanwhile); the tool's changes were not applied and your files "
                "are as you left them. Fix: run the workstream again",
                changed,
            )

    def discard(self) -> None:
        """Remove the copy and its records completely (links removed, never followed)."""
        _rmtree(self.snapshot_dir)

    # ----------------------------------------------------------------- on disk

    def _write_manifest(self, data: dict[str, Any]) -> None:
        path = self.snapshot_dir / MANIFEST
        tmp = path.with_name(MANIFEST + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)

    def _write_plan(self, state: str, plan: dict[str, str], deleted: Sequence[str]) -> None:
        base = {rel: self._base.get(rel) for rel in [*plan, *deleted]}
        self._write_manifest(
            {
                "source": str(self.source),
                "state": "ready",
                "kind": self.kind,
                "root": str(self.root),
                "linked": self.linked,
                "apply": {"state": state, "writes": plan, "deleted": list(deleted), "base": base},
            }
        )


def _git_copy_function(gitdir: str) -> Any:
    objects = os.path.join(gitdir, "objects") + os.sep

    def copy(src: str, dst: str) -> None:
        if src.startswith(objects):
            _hardlink_or_copy(src, dst)  # never rewritten in place by git
        else:
            shutil.copy2(src, dst)

    return copy


def _write_head(dot: Path, facts: _GitFacts) -> None:
    """The copy's HEAD: the user's branch at the user's commit (or detached)."""
    if facts.branch:
        if facts.head:
            ref = dot / facts.branch
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(facts.head + "\n", encoding="utf-8")
        (dot / "HEAD").write_text(f"ref: {facts.branch}\n", encoding="utf-8")
    elif facts.head:
        (dot / "HEAD").write_text(facts.head + "\n", encoding="utf-8")


def _make_dirs(root: Path, rel: str) -> list[Path]:
    """Create the missing directories on the way to ``rel``; those made."""
    made = []
    current = root
    for part in Path(rel).parts[:-1]:
        current = current / part
        if not current.exists():
            current.mkdir()
            made.append(current)
    return made


def _stage(src: Path, temp: Path) -> None:
    """Copy the regular file ``src`` (never through a link) to the new file ``temp``,
    with ``src``'s mode."""
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        mode = stat.S_IMODE(os.fstat(fd_in).st_mode)
        fd_out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            while True:
                chunk = os.read(fd_in, 1 << 20)
                if not chunk:
                    break
                os.write(fd_out, chunk)
            os.fchmod(fd_out, mode)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _remove_emptied_parents(source: Path, copy_root: Path, rel: str) -> None:
    """Folders of a deleted file that are gone in the copy go in the user's tree too,
    when empty."""
    parent = Path(rel).parent
    while str(parent) not in ("", "."):
        if (copy_root / parent).exists() or (copy_root / parent).is_symlink():
            return
        try:
            (source / parent).rmdir()
        except OSError:
            return
        parent = parent.parent


def remove_leftover_copy(copy_dir: Path) -> Leftover:
    """Remove a dead run's copy (after ``kill -9``): its directory, links (never
    followed) and temporary files. An apply that was cut short while renaming is
    finished for the targets still as they were when the copy was made (``finished``);
    others are left as they are (``left``). Safe to call on a missing directory."""
    finished: list[str] = []
    left: list[str] = []
    try:
        data = json.loads((copy_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    apply = data.get("apply") or {}
    source = Path(data["source"]) if data.get("source") else None
    if source is not None and apply.get("state") in ("staging", "renaming"):
        finishing = apply["state"] == "renaming"
        base = apply.get("base", {})
        for rel, temp in apply.get("writes", {}).items():
            temp_path = Path(temp)
            if not (temp_path.is_file() and not temp_path.is_symlink()):
                if finishing:
                    finished.append(rel)  # renamed before the run died
                continue
            if finishing and _still(source, rel, base.get(rel)):
                os.replace(temp_path, source / rel)
                finished.append(rel)
            else:
                temp_path.unlink(missing_ok=True)
                if finishing:
                    left.append(rel)
        if finishing:
            for rel in apply.get("deleted", []):
                if _still(source, rel, base.get(rel)):
                    with contextlib.suppress(OSError):
                        os.unlink(source / rel)
                    finished.append(rel)
                elif (source / rel).exists():
                    left.append(rel)
    _rmtree(copy_dir)
    return Leftover(
        finished=tuple(sorted(set(finished))),
        left=tuple(sorted(set(left))),
        removed=not (copy_dir.exists() or copy_dir.is_symlink()),
    )


def _still(source: Path, rel: str, before: list[Any] | None) -> bool:
    """Whether the user's ``rel`` is still as it was when the copy was made."""
    if linked_parent(source, rel):
        return False
    return (tuple(before[:3]) if before is not None else None) == _entry(source / rel)
