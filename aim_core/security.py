"""Security rules checked before any tool runs: paths stay inside the repository
and out of forbidden places.

The rules come from the coordination rules' ``security`` section. Paths are
compared case-insensitively, because the file systems of macOS and Windows
are, and ``.GIT/config`` must not slip through there.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from aim_core.models import Problem


def _components(rel: str) -> list[str]:
    return [c for c in rel.split("/") if c not in ("", ".")]


def forbidden_match(rel: str, patterns: Iterable[str]) -> str | None:
    """The forbidden pattern a repository-relative POSIX path falls under, or None.

    A pattern ending in ``/`` is a directory: any path component (or, when the
    pattern holds another ``/``, the path prefix from the root). Any other
    pattern without ``/`` matches a file name at any depth; with ``/`` it
    matches the path from the root.
    """
    parts = [c.casefold() for c in _components(rel)]
    if not parts:
        return None
    for pattern in patterns:
        pat = pattern.strip().casefold().lstrip("/")
        if not pat:
            continue
        if pat.endswith("/"):
            inner = _components(pat)
            if len(inner) == 1:
                if inner[0] in parts[:-1] or (rel.endswith("/") and inner[0] in parts):
                    return pattern
                if any(fnmatch.fnmatchcase(p, inner[0]) for p in parts[:-1]):
                    return pattern
            elif parts[: len(inner)] == inner and len(parts) >= len(inner):
                return pattern
        elif "/" in pat:
            if fnmatch.fnmatchcase("/".join(parts), pat):
                return pattern
        elif fnmatch.fnmatchcase(parts[-1], pat) or (
            # a directory named like a forbidden file (".env/" used as a folder)
            any(fnmatch.fnmatchcase(p, pat) for p in parts[:-1])
        ):
            return pattern
    return None


def check_path(value: Any, field: str, root: Path, forbidden: Sequence[str]) -> Problem | None:
    """One path of a workstream against the path rules, or None when it is fine."""
    if not isinstance(value, str) or not value.strip():
        return Problem(field=field, message="expected a repository-relative path, got an empty one")
    text = value.replace("\\", "/")
    if (
        text.startswith("/")
        or PurePosixPath(text).is_absolute()
        or (len(text) > 1 and text[1] == ":")
    ):
        return Problem(
            field=field,
            message=f"'{value}' is an absolute path; write it relative to the repository root",
        )
    if ".." in _components(text):
        return Problem(
            field=field, message=f"'{value}' leaves the repository root ('..'); remove the '..'"
        )
    rule = forbidden_match(text, forbidden)
    if rule is not None:
        return Problem(
            field=field,
            message=f"'/{text.lstrip('./')}' is a forbidden path (rule '{rule}'); "
            "take it out of the workstream",
        )
    full = root / text
    try:
        resolved = full.resolve()
        root_resolved = root.resolve()
    except (OSError, RuntimeError):  # symlink loop
        return Problem(field=field, message=f"'{value}' cannot be resolved (symlink loop?)")
    if resolved != full.absolute() and os.path.lexists(full):
        try:
            rel = resolved.relative_to(root_resolved).as_posix()
        except ValueError:
            return Problem(
                field=field,
                message=f"'{value}' is a symlink that leads outside the repository; "
                "use the real file inside the repository",
            )
        rule = forbidden_match(rel, forbidden)
        if rule is not None:
            return Problem(
                field=field,
                message=f"'{value}' is a symlink to the forbidden path '/{rel}' (rule '{rule}')",
            )
    return None


def check_paths(
    fields: Mapping[str, Sequence[str]], root: Path, security: Mapping[str, Any]
) -> list[Problem]:
    """Check every path of the named fields (``files_scope``: [...]) against the rules."""
    forbidden = security.get("forbidden_paths", ())
    problems = []
    for name, paths in fields.items():
        for i, p in enumerate(paths):
            problem = check_path(p, f"{name}[{i}]", root, forbidden)
            if problem is not None:
                problems.append(problem)
    return problems


REDACTED = "[REDACTED]"


def redact_record(record, project) -> Any:
    """The record with every secret value of the environment replaced by ``[REDACTED]``.

    Runs once, before any audit sink sees the record.
    """
    import json

    import attrs

    from aim_core.runlog import RunLog

    values = sorted(
        {v for v in RunLog.secrets_from_env(project.environ) if len(v) >= 6},
        key=len,
        reverse=True,
    )
    if not values:
        return record
    text = json.dumps({"payload": record.payload, "result": record.result})
    if not any(v in text for v in values):
        return record
    for v in values:
        text = text.replace(json.dumps(v)[1:-1], REDACTED)
    data = json.loads(text)
    return attrs.evolve(record, payload=data["payload"], result=data["result"])
