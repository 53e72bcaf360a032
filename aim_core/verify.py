"""The ``verify`` field of a workstream: what is wrong with it before anything runs.

Each check target is a repository path (a pytest node id ``tests/t.py::test_x``
names its file): it must stay inside the repository, avoid the forbidden paths,
not lead out through a symlink, and exist -- or be one of ``files_create``,
which the tool writes. A command's program must be found (``PATH`` or a file in
the repository). Problems carry the field path (``verify.tests[0]``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aim_core.models import Problem, Verify


def target_path(target: str) -> str:
    """The file part of a check target: ``tests/t.py::test_x[1]`` -> ``tests/t.py``."""
    return target.split("::", 1)[0]


def verify_problems(
    verify: Verify | None,
    root: Path,
    security: Mapping[str, Any],
    *,
    files_create: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Every problem of ``verify``, each with its field path; ``[]`` when it may run."""
    if not verify:
        return []
    from aim_core.security import check_path

    forbidden = security.get("forbidden_paths", ())
    created = {f.replace("\\", "/").lstrip("./") for f in files_create}
    problems: list[Problem] = []
    for kind, targets in (("tests", verify.tests), ("lint", verify.lint)):
        for i, target in enumerate(targets):
            where = f"verify.{kind}[{i}]"
            path = target_path(target)
            problem = check_path(path, where, root, forbidden)
            if problem is None and not _exists(root, path) and path.lstrip("./") not in created:
                problem = Problem(
                    path=path,
                    field=where,
                    message=f"'{path}' does not exist in the repository; fix the name, or "
                    "list it in files_create if the tool writes it",
                )
            if problem is not None:
                problems.append(problem)
            else:  # a directory or glob: what it reaches, as for files_scope (links out)
                problems += _reached_problems(root, path, where, forbidden)
    for i, argv in enumerate(verify.commands):
        problem = _program_problem(argv[0], f"verify.commands[{i}][0]", root, forbidden, environ)
        if problem is not None:
            problems.append(problem)
    return problems


def _reached_problems(root: Path, path: str, where: str, forbidden: Any) -> list[Problem]:
    from aim_core.scope_check import MAX_ENTRIES, MAX_FILES, TooManyFiles, expand

    if not (any(c in path for c in "*?[") or (root / path).is_dir()):
        return []
    try:
        found = expand(root, path, tuple(forbidden), [MAX_FILES, MAX_ENTRIES])
    except TooManyFiles:
        return [Problem(field=where, path=path, message=f"'{path}' reaches too many files")]
    return [Problem(field=where, message=m, path=p) for p, m in found.problems]


def _exists(root: Path, path: str) -> bool:
    if any(c in path for c in "*?["):
        try:
            return any(root.glob(path))
        except (ValueError, NotImplementedError, OSError):
            return False
    return os.path.lexists(root / path)


def _program_problem(
    program: str,
    where: str,
    root: Path,
    forbidden: Any,
    environ: Mapping[str, str] | None,
) -> Problem | None:
    from aim_core.security import check_path

    if os.path.isabs(program):  # a system program (/bin/sh): found, and runnable
        if os.path.isfile(program) and os.access(program, os.X_OK):
            return None
        return Problem(
            field=where,
            message=f"'{program}' is not a program that exists here; fix the path",
        )
    if "/" in program or "\\" in program:
        problem = check_path(program, where, root, forbidden)
        if problem is None and not (root / program).is_file():
            problem = Problem(
                path=program,
                field=where,
                message=f"'{program}' is not a file in the repository; fix the path",
            )
        return problem
    search = (environ if environ is not None else os.environ).get("PATH")
    if shutil.which(program, path=search) is None:
        return Problem(
            field=where,
            message=f"the program '{program}' is not on PATH; install it or fix the name",
        )
    return None
