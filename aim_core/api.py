"""``run_workstream``: ``aim run`` for a program that embeds aim."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aim_core.models import Workstream
from aim_core.runresult import RunResult

if TYPE_CHECKING:
    from aim_core.config import Settings

log = logging.getLogger("aim")

__all__ = ["run_workstream"]


def run_workstream(
    path_or_workstream: str | os.PathLike[str] | Workstream,
    *,
    root: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunResult:
    """Run one workstream as ``aim run`` does, without printing (log lines go to the
    ``aim`` logger).

    :param path_or_workstream: a workstream file, or a loaded :class:`Workstream`.
    :param root: where to look for the repository (default: the current directory).
    :param settings: settings to use instead of the repository's config file.
    :param environ: the environment to read (default: ``os.environ``).
    :returns: the :class:`RunResult`, including ``exit_code`` (0 success, 1 the work
        failed, 3 no tool available, 130 interrupted).
    :raises AimError: bad input (an invalid workstream, a broken security rule:
        exit code 2); nothing was run.
    """
    from aim_core.project import Project

    project = Project.open(root, environ=environ)
    if settings is not None:
        project.settings = settings  # a project of our own: nobody else's is changed
    source: str | None = None
    if isinstance(path_or_workstream, Workstream):
        ws = path_or_workstream
    else:
        from aim_core.workstream import load_workstream

        loaded = load_workstream(
            Path(path_or_workstream),
            root=project.root,
            known_capabilities=project.known_capabilities(),
        )
        for warning in loaded.warnings:
            log.warning(warning)
        ws, source = loaded.workstream, loaded.display
    from aim_core.runner import Runner

    runner = Runner(project)
    try:
        return runner.run(ws, source=source)
    finally:
        runner.close()
