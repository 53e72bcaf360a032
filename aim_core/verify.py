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
    for i, argv in enumerate(verify.commands):
        problem = _program_problem(argv[0], f"verify.commands[{i}][0]", root, forbidden, environ)
        if problem is not None:
            problems.append(problem)
    return problems


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
