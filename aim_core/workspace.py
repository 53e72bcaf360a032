"""Where an attempt works: the :class:`Workspace` interface and its in-place form.

An attempt asks its workspace for four things: where the tool runs
(``root``), what changed in scope (:meth:`Workspace.changes`), what changed
outside it (:meth:`Workspace.outside`), and then to keep the work or undo it.
:class:`InPlaceWorkspace` works in the user's tree itself, surrounded by a
snapshot of the files in scope and a fingerprint of the rest; an isolated
copy of the repository can take its place behind the same interface.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from aim_core.models import FileChanges
from aim_core.scope import Scope
from aim_core.snapshot import Snapshot, tree_measurer
from aim_core.treestate import TreeState
from aim_core.values import Value

__all__ = ["InPlaceWorkspace", "Recovered", "Workspace", "recover_attempt", "tree_measurer"]


class Workspace(Protocol):
    """The place one attempt works in, and how its changes are measured and undone."""

    root: Path
    """The directory the tool works in (``context.root``)."""
    snapshot_dir: Path
    """Where the attempt's restore data lives on disk (recorded for recovery)."""

    def changes(self) -> FileChanges:
        """The files in scope created, modified or deleted since the attempt began."""

    def outside(self, ignore: Iterable[str] = ()) -> list[str]:
        """Repository paths outside the scope (and ``ignore``) that changed."""

    def revert_outside(self, paths: Sequence[str]) -> tuple[list[str], list[str]]:
        """Undo the changes to ``paths`` (from :meth:`outside`): ``(reverted, stuck)``."""

    def restore(self, keep: Sequence[str] = ()) -> list[str]:
        """Undo the attempt's changes in scope, except ``keep`` (changed by someone else
        since); the paths put back."""

    def keep(self) -> None:
        """The attempt succeeded: its changes in scope stay (are applied)."""

    def diff(self, changes: FileChanges) -> dict[str, int]:
        """``changes`` (from :meth:`changes`) as line counts: ``{"files", "lines_added",
        "lines_removed"}`` (before :meth:`restore` or :meth:`keep`)."""

    def discard(self) -> None:
        """Remove what the workspace kept on disk (call last)."""


class InPlaceWorkspace:
    """The user's own tree, with a snapshot of the scope and a fingerprint of the rest.

    :param root: the repository root.
    :param scope: the paths the tool may change.
    :param snapshot_dir: an empty directory, outside the repository, for the snapshot
        and the copies (the machine-local ``runs/<run>/attempt-N``).
    :param exclude: repository paths never walked (aim's own audit and run files).
    :param forbidden: the security rules' forbidden path patterns.
    :param scratch: paths the tool may change outside the scope (its caches).
    :param strict: nothing outside the scope may change, not even git-ignored caches
        (a race's watch over the user's tree, where no tool works).
    :raises WorkspaceRefused: when what the tool might change could not be undone.
    """

    def __init__(
        self,
        root: Path,
        scope: Scope,
        snapshot_dir: Path,
        *,
        exclude: Sequence[str] = (),
        forbidden: Sequence[str] = (),
        scratch: Sequence[str] = (),
        strict: bool = False,
    ):
        self.root = root
        self.scope = scope
        self.snapshot_dir = snapshot_dir
        self.snapshot = Snapshot.take(root, snapshot_dir, scope.existing() + list(scope.files))
        self.state = TreeState(
            root,
            snapshot_dir / "tree",
            exclude=exclude,
            forbidden=forbidden,
            scratch=scratch,
            strict=strict,
        )
        self.state.take(scope)

    def changes(self) -> FileChanges:
        """See :meth:`Workspace.changes`."""
        found = self.snapshot.changes(self.scope)
        return FileChanges(
            created=sorted(found.created),
            modified=sorted(found.modified),
            deleted=sorted(found.deleted),
        )

    def outside(self, ignore: Iterable[str] = ()) -> list[str]:
        """See :meth:`Workspace.outside`."""
        return self.state.changed(self.scope, ignore=ignore)

    def revert_outside(self, paths: Sequence[str]) -> tuple[list[str], list[str]]:
        """See :meth:`Workspace.revert_outside`."""
        return self.state.revert(paths)

    def restore(self, keep: Sequence[str] = ()) -> list[str]:
        """See :meth:`Workspace.restore`."""
        return self.snapshot.restore(scope=self.scope, keep=keep)

    def keep(self) -> None:
        """See :meth:`Workspace.keep`: in place, the changes are already there."""

    def diff(self, changes: FileChanges) -> dict[str, int]:
        """See :meth:`Workspace.diff`: the snapshot's copies against the tree."""
        from aim_core.diffstat import summary

        pairs = []
        for rel in (*changes.created, *changes.modified, *changes.deleted):
            entry = self.snapshot.entries.get(rel) or {}
            before = self.snapshot_dir / entry["blob"] if "blob" in entry else None
            pairs.append((before, self.root / rel))
        return summary(pairs)

    def discard(self) -> None:
        """See :meth:`Workspace.discard`."""
        self.snapshot.discard()


class Recovered(Value):
    """What recovering a killed attempt did: ``restored`` paths in scope put back,
    ``reverted`` paths outside it undone, ``left`` paths changed after the run died
    (someone else's: not touched), ``stuck`` paths that could not be undone."""

    __slots__ = ("left", "restored", "reverted", "stuck")
    restored: tuple[str, ...]
    reverted: tuple[str, ...]
    left: tuple[str, ...]
    stuck: tuple[str, ...]

    def __init__(
        self,
        *,
        restored: tuple[str, ...] = (),
        reverted: tuple[str, ...] = (),
        left: tuple[str, ...] = (),
        stuck: tuple[str, ...] = (),
    ) -> None:
        self._init(restored=restored, reverted=reverted, left=left, stuck=stuck)


def recover_attempt(
    root: Path, snapshot_dir: Path, scope: Scope, cutoff: float, ignore: Iterable[str] = ()
) -> Recovered:
    """Undo what a killed attempt left, as its own failure would have: the scope
    restored, changes outside it reverted, git's state put back -- except what changed
    after ``cutoff`` (wall time the attempt was last known alive), which is left as is.
    Changes in ``ignore`` (the scopes of other runs since) are theirs, not undone.
    Links are never followed."""
    snapshot = Snapshot.load(root, snapshot_dir)
    tree = TreeState.load(snapshot_dir / "tree")
    outside = tree.changed(scope, ignore=ignore)
    late_outside = [p for p in outside if _changed_after(tree.label_path(p), cutoff)]
    if tree.git is not None:  # `git status` since the crash: the user's, and no change
        refreshed = [p for p in late_outside if tree.git.only_refreshed(p)]
        outside = [p for p in outside if p not in refreshed]
        late_outside = [p for p in late_outside if p not in refreshed]
    reverted, stuck = tree.revert([p for p in outside if p not in late_outside])
    inside = snapshot.changes(scope).all()
    late_inside = [p for p in inside if _changed_after(root / p, cutoff)]
    restored = snapshot.restore(scope=scope, keep=late_inside)
    return Recovered(
        restored=tuple(sorted(restored)),
        reverted=tuple(sorted(reverted)),
        left=tuple(sorted({*late_outside, *late_inside})),
        stuck=tuple(sorted(stuck)),
    )


def _changed_after(path: Path | None, cutoff: float) -> bool:
    if path is None:
        return False
    try:
        return path.lstat().st_ctime > cutoff
    except OSError:
        return False  # gone: the attempt's doing (nobody else could have removed it unseen)
