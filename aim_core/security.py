"""Security rules checked before any tool runs, and redaction before anything is written.

The rules come from the coordination rules' ``security`` section (``aim init``
writes defaults): forbidden paths, allowed file patterns, ``max_payload_bytes``
and the ``credential_policy``. Every path of a workstream is resolved against
the repository root: absolute paths, ``..``, symlinks leading outside or into a
forbidden place, and globs reaching forbidden files are refused. Paths are
compared case-insensitively, because the file systems of macOS and Windows are,
and ``.GIT/config`` must not slip through there. Credentials in prompts, tasks,
acceptance tests and the files sent are blocked or redacted as the policy says.
"""

from __future__ import annotations

import fnmatch
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
            path=value,
            field=field,
            message=f"'{value}' is an absolute path; write it relative to the repository root",
        )
    if ".." in _components(text):
        return Problem(
            path=value,
            field=field,
            message=f"'{value}' leaves the repository root ('..'); remove the '..'",
        )
    rule = forbidden_match(text, forbidden)
    if rule is not None:
        return Problem(
            path=value,
            field=field,
            message=f"'/{'/'.join(_components(text))}' is a forbidden path (rule '{rule}'); "
            "take it out of the workstream",
        )
    full = root / text
    try:
        resolved = full.resolve()
        root_resolved = root.resolve()
    except (OSError, RuntimeError):  # symlink loop
        return Problem(
            field=field, message=f"'{value}' cannot be resolved (symlink loop?)", path=value
        )
    if resolved != root_resolved / Path(*_components(text)):  # a symlink on the way
        try:
            rel = resolved.relative_to(root_resolved).as_posix()
        except ValueError:
            return Problem(
                path=value,
                field=field,
                message=f"'{value}' is a symlink that leads outside the repository; "
                "use the real file inside the repository",
            )
        rule = forbidden_match(rel, forbidden)
        if rule is not None:
            return Problem(
                path=value,
                field=field,
                message=f"'{value}' is a symlink to the forbidden path '/{rel}' (rule '{rule}')",
            )
    return None


def check_paths(
    fields: Mapping[str, Sequence[str]], root: Path, security: Mapping[str, Any]
) -> list[Problem]:
    """Check every path of the named fields (``files_scope``: [...]) against the rules."""
    forbidden = security.get("forbidden_paths", ())
    allowed = security.get("allowed_file_patterns")
    problems = []
    for name, paths in fields.items():
        for i, p in enumerate(paths):
            field = f"{name}[{i}]"
            problem = check_path(p, field, root, forbidden)
            if problem is None and isinstance(p, str) and any(c in p for c in "*?["):
                problem = _check_glob(p, field, root, forbidden)
            if problem is None and allowed and isinstance(p, str):
                problem = _check_allowed(p, field, root, allowed)
            if problem is not None:
                problems.append(problem)
    return problems


def _check_glob(pattern: str, field: str, root: Path, forbidden: Sequence[str]) -> Problem | None:
    """A glob is refused when it matches a forbidden file that exists, or when its file
    name part could match a forbidden name (``src/*`` could reach ``src/.env``)."""
    for hit in sorted(root.glob(pattern))[:10000]:
        rel = hit.relative_to(root).as_posix()
        rule = forbidden_match(rel + ("/" if hit.is_dir() else ""), forbidden)
        if rule is not None:
            return Problem(
                path=pattern,
                field=field,
                message=f"the glob '{pattern}' reaches the forbidden path '/{rel}' "
                f"(rule '{rule}'); narrow it",
            )
    name = pattern.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    for rule in forbidden:
        probe = rule.strip().strip("/").replace("*", "x")
        if probe and "/" not in probe and fnmatch.fnmatchcase(probe.casefold(), name.casefold()):
            return Problem(
                path=pattern,
                field=field,
                message=f"the glob '{pattern}' could match forbidden files (rule '{rule}'); "
                "name the files, or narrow it (e.g. '*.py')",
            )
    return None


def _check_allowed(value: str, field: str, root: Path, allowed: Sequence[str]) -> Problem | None:
    text = value.replace("\\", "/").rstrip("/")
    if any(c in text for c in "*?[") or (root / text).is_dir() or value.endswith("/"):
        return None  # directories and globs: their files are checked when expanded
    name = text.rsplit("/", 1)[-1]
    if any(fnmatch.fnmatchcase(name.casefold(), p.casefold()) for p in allowed):
        return None
    return Problem(
        path=value,
        field=field,
        message=f"'{value}' is not an allowed kind of file (security.allowed_file_patterns); "
        "add its pattern to the rules or leave it out",
    )


# --------------------------------------------------------------------------- the request


def prompt_fields(payload: Any) -> list[tuple[str, str]]:
    """``(field path, text)`` of every free text the user wrote into the request."""
    from aim_core.models import prompt_from

    fields = []
    if payload.prompt and payload.prompt != prompt_from(payload.tasks, payload.acceptance_tests):
        fields.append(("capability_payload.prompt", payload.prompt))
    fields += [(f"tasks[{i}]", t) for i, t in enumerate(payload.tasks)]
    fields += [(f"acceptance_tests[{i}]", t) for i, t in enumerate(payload.acceptance_tests)]
    return fields


def policy(security: Mapping[str, Any], source: str) -> str:
    """``block`` or ``redact`` for ``prompt``, ``files`` or ``output``."""
    default = {"prompt": "block", "files": "block", "output": "redact"}[source]
    value = (security.get("credential_policy") or {}).get(source, default)
    return value if value in ("block", "redact") else default


def files_field(payload: Any) -> str:
    """How the workstream named the files sent: its payload's files or its scope."""
    return "files_scope" if payload.files == payload.files_scope else "capability_payload.files"


def check_request(payload: Any, root: Path, security: Mapping[str, Any]) -> list[Problem]:
    """The core's rules for a whole request: paths, size, credentials."""
    from aim_core import credentials

    fields = {"files_scope": payload.files_scope, "files_create": payload.files_create}
    if payload.files != payload.files_scope:
        fields["capability_payload.files"] = payload.files
    problems = check_paths(fields, root, security)
    if problems:
        return problems
    limit = security.get("max_payload_bytes")
    sizes = {}
    for f in payload.files:
        p = root / f
        if p.is_file():
            sizes[f] = p.stat().st_size
    total = len(payload.prompt.encode("utf-8")) + sum(sizes.values())
    if limit and total > limit:
        problems.append(
            Problem(
                path=max(sizes, key=lambda k: sizes[k]) if sizes else None,
                field="capability_payload",
                message=f"the request is {total} bytes (prompt {len(payload.prompt.encode())}, "
                f"files {sum(sizes.values())}), over max_payload_bytes {limit}; "
                "send fewer or smaller files",
            )
        )
    if policy(security, "prompt") == "block":
        for name, text in prompt_fields(payload):
            leaks = credentials.scan(text, entropy=False)
            if leaks:
                problems.append(
                    Problem(
                        field=name,
                        message=f"holds a credential: {credentials.describe(leaks)}; remove it, "
                        'or set security.credential_policy.prompt to "redact"',
                    )
                )
    # names (the id, file paths) are refused under either policy: a tool needs the real
    # name, and aim writes names to the audit, the run log and the run table
    names = [("id", payload.workstream_id)] if payload.workstream_id else []
    for field_name, paths in fields.items():
        names += [(f"{field_name}[{i}]", p) for i, p in enumerate(paths)]
    for name, text in names:
        if isinstance(text, str) and credentials.scan(text, entropy=False):
            problems.append(
                Problem(
                    field=name,
                    message="holds a credential; rename it: names are written to the "
                    "audit, the run log and the run table",
                )
            )
    if policy(security, "files") == "block":
        where = files_field(payload)
        for i, f in enumerate(payload.files):
            if f not in sizes:
                continue
            try:
                text = (root / f).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            leaks = credentials.scan(text, filename=f, entropy=False)
            if leaks:
                problems.append(
                    Problem(
                        path=f,
                        field=f"{where}[{i}]",
                        message=f"'{f}' holds a credential: {credentials.describe(leaks)}; "
                        "take it out of the file before a tool reads it",
                    )
                )
    return problems


def redact_prompt(payload: Any, security: Mapping[str, Any]) -> Any:
    """The request with credentials in its texts replaced, when the prompt policy is
    ``redact`` (under ``block`` they were refused before)."""
    import attrs

    from aim_core import credentials

    if policy(security, "prompt") != "redact":
        return payload
    return attrs.evolve(
        payload,
        prompt=credentials.redact(payload.prompt),
        tasks=tuple(credentials.redact(t) for t in payload.tasks),
        acceptance_tests=tuple(credentials.redact(t) for t in payload.acceptance_tests),
    )


# --------------------------------------------------------------------------- redaction


REDACTED = "[REDACTED]"


def env_secret_values(environ: Mapping[str, str]) -> list[str]:
    """Values of the environment's variables whose names say they hold a credential."""
    from aim_core.runlog import RunLog

    return sorted(
        {v for v in RunLog.secrets_from_env(environ) if len(v) >= 6}, key=len, reverse=True
    )


def redact_text(
    text: str, environ: Mapping[str, str] | None = None, *, entropy: bool = True
) -> str:
    """Replace credentials and the environment's secret values in any text.

    :param entropy: also redact long random-looking strings (off for tool output,
        which is full of hashes).
    """
    from aim_core import credentials

    for value in env_secret_values(environ or {}):
        if value in text:
            text = text.replace(value, REDACTED)
    return credentials.redact(text, entropy=entropy)


def redact_data(
    data: Any, environ: Mapping[str, str] | None = None, *, entropy: bool = True
) -> Any:
    """A copy of JSON-like ``data`` (dicts, lists, tuples, strings, numbers) in which every
    string -- dict keys included -- has its credentials replaced by ``[REDACTED]``.

    Each string is scanned as the text it is, before anything is serialised: a key
    on its own line of a prompt, or escaped in JSON, is found all the same. Every
    writer of a file or a sink calls this (or :func:`redact_text`) on what it
    writes: audit records, run logs, the run table in ``AIM_runs/``.
    """
    values = env_secret_values(environ or {})
    strings: list[str] = []
    _strings(data, strings)
    if not strings:
        return data
    if len(strings) > 1:  # most data holds nothing: one scan of it all says so
        joined = "\n\0\n".join(strings)
        if not any(v in joined for v in values) and _redact_str(joined, [], entropy) == joined:
            return data

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return _redact_str(value, values, entropy)
        if isinstance(value, dict):
            return {clean(k) if isinstance(k, str) else k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, tuple):
            return tuple(clean(v) for v in value)
        return value

    return clean(data)


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _strings(k, out)
            _strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, out)


def _redact_str(text: str, values: list[str], entropy: bool) -> str:
    from aim_core import credentials

    if not text:
        return text
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return credentials.redact(text, entropy=entropy)


CHAIN_FIELDS = ("timestamp", "seq", "prev_hash", "hash")


def redact_record(record: Any, project: Any) -> Any:
    """The record with every credential replaced by ``[REDACTED]`` in every field but the
    chain's (``timestamp``, ``seq``, ``prev_hash``, ``hash``): the prompt, the tasks,
    the message, ids, file names, keys of nested objects. Runs once, before any audit
    sink sees the record."""
    import attrs

    changes = {}
    for f in attrs.fields(type(record)):
        if f.name in CHAIN_FIELDS:
            continue
        value = getattr(record, f.name)
        clean = redact_data(value, project.environ)
        if clean != value:
            changes[f.name] = clean
    return attrs.evolve(record, **changes) if changes else record
