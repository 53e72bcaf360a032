"""The data aim passes around: workstreams, detections, invocations, results.

Every public class is a frozen attrs class with keyword-only arguments, so a
field can be added later without breaking a plugin that builds one.
"""

from __future__ import annotations

import enum
from typing import Any

from attrs import field, frozen


def _tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _paths(value: Any) -> tuple[Any, ...]:
    """Repository-relative paths with ``/`` only: aim reads ``\\`` as a separator
    everywhere (the path rules, the scope), so the tool is handed the same path."""
    return tuple(p.replace("\\", "/") if isinstance(p, str) else p for p in _tuple(value))


def spec(expect: str, description: str, **schema: Any) -> dict[str, Any]:
    """Field metadata: how an error describes the expected value, the schema's words."""
    return {"expect": expect, "description": description, "schema": schema}


# --------------------------------------------------------------------------- workstreams


def prompt_from(tasks: tuple[str, ...], acceptance_tests: tuple[str, ...]) -> str:
    """The prompt built from a workstream's tasks and acceptance tests."""
    lines: list[str] = []
    if tasks:
        lines.append("Tasks:")
        lines.extend(f"- {t}" for t in tasks)
    if acceptance_tests:
        lines.append("Acceptance tests:")
        lines.extend(f"- {t}" for t in acceptance_tests)
    return "\n".join(lines)


@frozen(kw_only=True)
class CapabilityPayload:
    """What the guide's ``capability_payload`` holds: the request sent to the tool."""

    prompt: str | None = field(
        default=None,
        metadata=spec(
            "a text",
            "The instruction sent to the tool. Default: built from `tasks` and `acceptance_tests`.",
        ),
    )
    files: tuple[str, ...] = field(
        default=(),
        converter=_paths,
        metadata=spec(
            "a list of repository-relative paths",
            "Files the tool works on; each must be in `files_scope`. Default: `files_scope`.",
        ),
    )
    timeout_ms: int | None = field(
        default=None,
        metadata=spec(
            "an integer number of milliseconds from 1 to 604800000 (7 days)",
            "Time limit of one attempt in milliseconds. Default: config `default_timeout_ms`.",
            minimum=1,
            maximum=7 * 24 * 3600 * 1000,
        ),
    )
    max_retries: int | None = field(
        default=None,
        metadata=spec(
            "an integer from 0 to 10",
            "How many times an attempt that failed for a retryable reason (timeout, "
            "rate limit, tool error) is tried again with the same tool. Default: 1.",
            minimum=0,
            maximum=10,
        ),
    )
    max_repairs: int | None = field(
        default=None,
        metadata=spec(
            "an integer from 0 to 5",
            "How many times a tool whose edit failed a `verify` check is asked again, with "
            "the failing checks' output in its instruction, before the next tool. Default: 1.",
            minimum=0,
            maximum=5,
        ),
    )
    max_cost_usd: float | None = field(
        default=None,
        metadata=spec(
            "a number of US dollars greater than 0",
            "Cost limit of the workstream (every attempt, retry, repair and fallback, as the "
            "tools report it); once spent, nothing further starts. Default: no limit.",
            exclusiveMinimum=0,
        ),
    )


def _argv_list(value: Any) -> tuple[tuple[str, ...], ...]:
    if value is None:
        return ()
    return tuple(tuple(argv) for argv in value)


@frozen(kw_only=True)
class Verify:
    """What must pass after a tool's edit for the attempt to count (``verify``)."""

    tests: tuple[str, ...] = field(
        default=(),
        converter=_tuple,
        metadata=spec(
            "a list of test files or pytest node ids",
            "Tests run through the `testing` capability (pytest, or what the rules route).",
            items={"type": "string", "minLength": 1},
        ),
    )
    lint: tuple[str, ...] = field(
        default=(),
        converter=_tuple,
        metadata=spec(
            "a list of repository-relative files",
            "Files linted through the `linting` capability (ruff, or what the rules route); "
            "nothing is fixed.",
            items={"type": "string", "minLength": 1},
        ),
    )
    commands: tuple[tuple[str, ...], ...] = field(
        default=(),
        converter=_argv_list,
        metadata=spec(
            'a list of argument lists such as ["python", "-m", "mypy", "calc.py"]',
            "Programs run in the repository (never through a shell); each passes when it exits 0.",
        ),
    )

    def __bool__(self) -> bool:
        return bool(self.tests or self.lint or self.commands)

    def to_dict(self) -> dict[str, Any]:
        """The workstream's ``verify`` shape."""
        return {
            "tests": list(self.tests),
            "lint": list(self.lint),
            "commands": [list(c) for c in self.commands],
        }


@frozen(kw_only=True)
class Workstream:
    """One unit of work, as the deployment guide's workstream JSON describes it."""

    id: str = field(
        metadata=spec(
            "a non-empty text without spaces or control characters",
            "Unique id of the workstream (e.g. `ws-aim-validation-001`).",
            minLength=1,
            pattern=r"^[^\s\x00-\x1f\x7f-\x9f]+$",
        )
    )
    openspec_change: str | None = field(
        default=None, metadata=spec("a text", "The OpenSpec change this work belongs to.")
    )
    ccpm_issue: int | None = field(
        default=None, metadata=spec("an integer issue number", "The CCPM issue number.")
    )
    gate: int | None = field(
        default=None, metadata=spec("an integer", "The pipeline gate this workstream belongs to.")
    )
    files_scope: tuple[str, ...] = field(
        default=(),
        converter=_paths,
        metadata=spec(
            "a list of repository-relative paths",
            "The only files a tool may change (plus `files_create`).",
        ),
    )
    files_create: tuple[str, ...] = field(
        default=(),
        converter=_paths,
        metadata=spec(
            "a list of repository-relative paths", "Files the tool is expected to create."
        ),
    )
    tasks: tuple[str, ...] = field(
        default=(),
        converter=_tuple,
        metadata=spec("a list of texts", "What to do, one item per task."),
    )
    acceptance_tests: tuple[str, ...] = field(
        default=(),
        converter=_tuple,
        metadata=spec("a list of texts", "How to tell the work is done."),
    )
    depends_on: tuple[str, ...] = field(
        default=(),
        converter=_tuple,
        metadata=spec("a list of workstream ids", "Workstreams that must succeed first."),
    )
    tool: str | None = field(
        default=None,
        metadata=spec(
            "a tool id such as aider",
            "The tool to invoke directly, and the explicit fallback when `capability` is set.",
        ),
    )
    capability: str | None = field(
        default=None,
        metadata=spec(
            "a capability name such as code_generation",
            "What kind of work this is; aim routes it by the coordination rules.",
        ),
    )
    capability_payload: CapabilityPayload | None = field(
        default=None,
        metadata=spec("an object", "The request sent to the tool."),
    )
    metadata: dict[str, Any] = field(
        factory=dict,
        metadata=spec("an object", "Free-form information; aim keeps it and ignores it."),
    )
    verify: Verify | None = field(
        default=None,
        metadata=spec(
            "an object with `tests`, `lint` and/or `commands`",
            "Checks that must pass after a tool's edit; a failing check undoes the edit and "
            "the tool gets a repair attempt, then the next tool.",
        ),
    )
    race: int | None = field(
        default=None,
        metadata=spec(
            "an integer from 1 to 8",
            "Run the first `race` candidate tools at once, each in its own copy of the "
            "repository; the first verified edit wins. Default: one tool at a time.",
            minimum=1,
            maximum=8,
        ),
    )

    @property
    def payload(self) -> CapabilityPayload:
        """The capability payload, empty when the workstream has none."""
        return self.capability_payload or CapabilityPayload()

    def build_prompt(self) -> str:
        """The instruction for the tool: the payload's prompt, else tasks and acceptance tests."""
        return self.payload.prompt or prompt_from(self.tasks, self.acceptance_tests)

    def target_files(self) -> tuple[str, ...]:
        """The files handed to the tool: the payload's files, else ``files_scope``."""
        return self.payload.files or self.files_scope

    def writable_files(self) -> tuple[str, ...]:
        """Every path the tool may change: scope, files to create, payload files."""
        seen: dict[str, None] = {}
        for p in (*self.files_scope, *self.files_create, *self.payload.files):
            seen.setdefault(p, None)
        return tuple(seen)


# --------------------------------------------------------------------------- tools


class Failure(str, enum.Enum):
    """Why an attempt did not succeed. The router decides what happens next from it."""

    NOT_INSTALLED = "not_installed"
    UNAVAILABLE = "unavailable"
    AUTH_REQUIRED = "auth_required"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    TOOL_ERROR = "tool_error"
    INVALID_PAYLOAD = "invalid_payload"
    OUT_OF_SCOPE = "out_of_scope"
    INTERRUPTED = "interrupted"
    WORK_FAILED = "work_failed"
    VERIFY_FAILED = "verify_failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    LOST_RACE = "lost_race"  # another candidate of a race won; this one was stopped

    @property
    def retryable(self) -> bool:
        """Whether the same tool is tried again (up to ``max_retries``)."""
        return self in (Failure.TIMEOUT, Failure.RATE_LIMITED, Failure.TOOL_ERROR)

    @property
    def ends_workstream(self) -> bool:
        """Whether no further tool is tried after this failure."""
        return self in (Failure.WORK_FAILED, Failure.INTERRUPTED, Failure.BUDGET_EXCEEDED)

    @property
    def counts_against_tool(self) -> bool:
        """Whether this failure says something about the tool's health (cooldowns).

        The work itself failing (tests, checks), a request the tool refused and a
        stop the user or the budget asked for say nothing about the tool.
        """
        return self not in (
            Failure.WORK_FAILED,
            Failure.VERIFY_FAILED,
            Failure.INVALID_PAYLOAD,
            Failure.INTERRUPTED,
            Failure.BUDGET_EXCEEDED,
            Failure.OUT_OF_SCOPE,
            Failure.LOST_RACE,
        )

    def __str__(self) -> str:
        return self.value


def _failure(value: Failure | str | None) -> Failure | None:
    return None if value is None else Failure(value)


@frozen(kw_only=True)
class ToolDetection:
    """What a plugin knows about one tool it provides, answered by ``detect_tool``.

    ``ready=False`` with ``reason`` means installed but unable to work yet;
    ``failure`` then says why: ``auth_required`` (logged out) or
    ``unavailable`` (the default: failing to start, misconfigured).
    ``ready=None`` means it can't be known cheaply.
    ``env_passthrough`` names the environment variables the tool needs (API
    keys, base URLs); the process runner passes only these plus a small base
    set. ``scratch_paths`` are repository paths (``.pytest_cache/``) the tool
    may touch without it counting as a change. ``watch_paths`` are files (a
    credentials file) whose change makes aim detect the tool again at once.
    """

    tool_id: str
    capabilities: tuple[str, ...] = field(converter=_tuple)
    installed: bool
    path: str | None = None
    version: str | None = None
    ready: bool | None = None
    reason: str | None = None
    failure: Failure | None = field(default=None, converter=_failure)
    env_passthrough: tuple[str, ...] = field(default=(), converter=_tuple)
    scratch_paths: tuple[str, ...] = field(default=(), converter=_tuple)
    watch_paths: tuple[str, ...] = field(default=(), converter=_tuple)


@frozen(kw_only=True)
class Invocation:
    """The request ``invoke_capability`` receives as ``payload``.

    ``files`` are the files to work on (the workstream's
    ``capability_payload.files``, else ``files_scope``), relative to the
    repository root; the tool may change ``files_scope`` and create
    ``files_create``, nothing else. ``read_only`` marks a request that may
    change nothing at all (a ``verify`` check: lint without fixing).
    ``verify`` the workstream's checks (the core runs them after the tool);
    ``max_cost_usd`` what the workstream may still spend (US dollars, None: no
    limit) -- a tool with a budget flag of its own gets it.
    """

    prompt: str
    files: tuple[str, ...] = field(default=(), converter=_tuple)
    files_scope: tuple[str, ...] = field(default=(), converter=_tuple)
    files_create: tuple[str, ...] = field(default=(), converter=_tuple)
    timeout_ms: int = 30000
    max_retries: int = 1
    tasks: tuple[str, ...] = field(default=(), converter=_tuple)
    acceptance_tests: tuple[str, ...] = field(default=(), converter=_tuple)
    workstream_id: str | None = None
    options: dict[str, Any] = field(factory=dict)
    verify: Verify | None = None
    max_repairs: int = 1
    max_cost_usd: float | None = None
    read_only: bool = False


@frozen(kw_only=True)
class Usage:
    """What one tool call consumed, as the tool itself reported it.

    ``input_tokens`` / ``output_tokens`` are counts, ``cost_usd`` is US dollars,
    ``model`` the model name the tool used; each is None when the tool did not say.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record's ``result.content.usage`` shape."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "model": self.model,
        }


@frozen(kw_only=True)
class InvocationResult:
    """What ``invoke_capability`` returns.

    The core measures the changed files and the duration itself; a plugin's
    values are hints. ``failure`` is None exactly when ``success`` is true.
    ``retry_after_s`` passes on a tool's own "retry after" advice; ``usage``
    the tokens and cost the tool reported (:class:`Usage`), when it did.
    """

    success: bool
    message: str
    exit_code: int | None = None
    files_created: tuple[str, ...] = field(default=(), converter=_tuple)
    files_modified: tuple[str, ...] = field(default=(), converter=_tuple)
    duration_sec: float = 0.0
    failure: Failure | None = field(default=None, converter=_failure)
    output: str = ""
    retry_after_s: float | None = None
    usage: Usage | None = None


@frozen(kw_only=True)
class FileChanges:
    """The files a tool changed, as the core measured them (``context.changes()``).

    Repository-relative POSIX paths, sorted: ``created`` did not exist before,
    ``modified`` changed content or mode, ``deleted`` are gone.
    """

    created: tuple[str, ...] = field(default=(), converter=_tuple)
    modified: tuple[str, ...] = field(default=(), converter=_tuple)
    deleted: tuple[str, ...] = field(default=(), converter=_tuple)

    def __bool__(self) -> bool:
        return bool(self.created or self.modified or self.deleted)


@frozen(kw_only=True)
class Problem:
    """One objection of ``validate_payload``: the field path and what is wrong with it.

    ``path`` is the repository path the objection is about, as the workstream
    wrote it (the audit record's ``refused_paths``), or None.
    """

    field: str
    message: str
    path: str | None = None


@frozen(kw_only=True)
class ProcessResult:
    """What ``context.run`` returns. Output is decoded text, capped (``dropped_bytes``)."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration_sec: float
    timed_out: bool = False
    dropped_bytes: int = 0
    interrupted: bool = False


@frozen(kw_only=True)
class AuditRecord:
    """One audit record: the guide's shape plus run, chain and failure fields.

    ``to_dict()`` is exactly the JSON object written as one line of the log.
    """

    timestamp: str
    actor: str
    tool_id: str | None
    capability: str | None
    payload: dict[str, Any]
    result: dict[str, Any]
    run_id: str
    workstream_id: str | None
    attempt: int
    failure: str | None
    schema_version: int = 1
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the line written to the log)."""
        return {
            "timestamp": self.timestamp,
            "actor": self.actor,
            "tool_id": self.tool_id,
            "capability": self.capability,
            "payload": self.payload,
            "result": self.result,
            "run_id": self.run_id,
            "workstream_id": self.workstream_id,
            "attempt": self.attempt,
            "failure": self.failure,
            "schema_version": self.schema_version,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }
