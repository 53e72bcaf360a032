"""aim plugin for Google Jules: ``code_generation`` and ``version_checking``.

Tool id ``jules``. An attempt starts a remote Jules session on the repository's
GitHub origin, waits for it, takes its patch and applies it with ``git apply``.
Two ways to reach Jules: its REST API when ``JULES_API_KEY`` is set
(:mod:`aim_jules.rest`; no program needed), else the ``jules`` program on PATH
(``npm install -g @google/jules``, then ``jules login``). See README.md ("What it
runs") for the requests and commands, the assumptions about jules' output and how
both map to aim's failure classes.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from pathlib import Path

import attrs

from aim_core import Failure, InvocationResult, Problem, hookimpl, own_tools_only
from aim_core.toolkit import (
    MAX_ARGV_PROMPT,
    detect_program,
    first_line,
    launch_failure,
    one_line,
    option_args,
    program_version,
    prompt_with_files,
    request_problems,
    retry_after,
    scoped_changes,
    tool_options,
    writable_files,
)

TOOL_ID = "jules"
CAPABILITIES = ("code_generation", "version_checking")
ENV_PASSTHROUGH = ("JULES_API_KEY", "JULES_API_BASE", "JULES_*")
LOGIN_HINT = "Jules requires login (run 'jules login')"


def credentials_file(context) -> str:
    """Where ``jules login`` keeps its token when no system keyring is used."""
    home = context.getenv("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".jules", "cache", "oauth_creds.json")


def readiness(context, path):
    """Logged in when the login's credentials file exists."""
    if os.path.exists(credentials_file(context)):
        return True, None, None
    return False, LOGIN_HINT, Failure.AUTH_REQUIRED


def _config_options(context) -> dict:
    """The ``tools: {jules: ...}`` options (detection's context carries none itself)."""
    if context.options:
        return dict(context.options)
    settings = context.settings
    return dict(settings.tool_options(TOOL_ID)) if settings is not None else {}


def explain_failure(result) -> str | None:
    """The npm package downloads the real program on first use; say so when that failed."""
    if "Failed to start jules binary" in result.stderr + result.stdout:
        return (
            "jules is installed but its program could not be fetched or started "
            "('Failed to start jules binary'); it downloads from storage.googleapis.com "
            "on first use: allow that, or reinstall @google/jules"
        )
    return None


@hookimpl
def detect_tool(context):
    """Ready through the REST API when ``JULES_API_KEY`` is set (the program is then not
    needed, and invocations use the API); else jules is found on PATH and ready when
    logged in."""
    found = detect_program(
        context,
        tool_id=TOOL_ID,
        program="jules",
        capabilities=CAPABILITIES,
        install_hint="npm install -g @google/jules",
        version_args=("version",),
        env_passthrough=ENV_PASSTHROUGH,
        watch_paths=(credentials_file(context),),
        readiness=readiness,
        explain_failure=explain_failure,
    )
    if not context.getenv("JULES_API_KEY"):
        return found
    from aim_jules.rest import base_url

    cli = f"; the jules program: {found.reason}" if found.reason else ""
    return attrs.evolve(
        found,
        installed=True,
        ready=True,
        failure=None,
        reason=f"uses the Jules REST API at {base_url(context, _config_options(context))} "
        f"(JULES_API_KEY is set){cli}",
    )


@hookimpl
def get_version(tool_id, context):
    """``jules version`` as it prints it."""
    if tool_id != TOOL_ID:
        return None
    return program_version(context, "jules", ("version",))


# --------------------------------------------------------------------------- invocation

POLL_INTERVAL_S = 20.0  # between two `jules remote list --session` (option poll_interval_s)
CALL_TIMEOUT_S = 120.0  # one jules or git call, at most (always within the attempt's deadline)
SESSION_URL = "https://jules.google.com/session/{}"
ENV = {"NO_COLOR": "1", "TERM": "dumb"}
NO_ORIGIN = "jules works on a GitHub repository; this repository has no GitHub origin"

# https://[user[:token]@]github.com/O/R[.git], ssh://git@github.com[:port]/O/R[.git],
# git://github.com/O/R, [git@]github.com:O/R[.git]
GITHUB_URL = re.compile(
    r"""^(?:
        (?:https?|ssh|git)://(?:[^@/]+@)?(?:www\.|ssh\.)?github\.com(?::\d+)?/
      | (?:[^@/:]+@)?github\.com:
    )
    (?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(?:\.git)?/*$""",
    re.VERBOSE | re.IGNORECASE,
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")  # https://user:token@host/...
# Where the session id may be in `jules remote new`'s output, most specific first.
SESSION_ID_PATTERNS = (
    re.compile(r"jules\.google(?:\.com)?/(?:[\w-]+/)*sessions?/([A-Za-z0-9_-]{4,})"),
    re.compile(r"\bsessions/([A-Za-z0-9_-]{4,})"),
    re.compile(r"\bsession(?:\s+id)?\s*[:=#]?\s*([0-9]{6,})\b", re.IGNORECASE),
    re.compile(r"\bid\s*[:=]\s*([A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*)", re.IGNORECASE),
)
# A bare long number is only a guess (it could be a time stamp): checked against the list.
BARE_NUMBER = re.compile(r"\b([0-9]{10,})\b")
COLUMN_SPLIT = re.compile(r"\s{2,}|\t|\s*[│┃|]\s*")
LISTED_ID = re.compile(r"^[A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*$")
STATES = (  # (pattern, kind), first match wins within one column
    (re.compile(r"\b(awaiting|waiting|feedback|approval|paused|needs? input)\b", re.I), "blocked"),
    (re.compile(r"\b(failed|failure|errored|error|cancell?ed)\b", re.I), "failed"),
    (re.compile(r"\b(completed?|succeeded|success|done|finished)\b", re.I), "done"),
    (
        re.compile(r"\b(in[ _]progress|running|planning|queued|starting|pending|working)\b", re.I),
        "running",
    ),
)
LOGIN_PHRASES = ("did you forget to login", "not logged in", "please log in", "please login")
RATE_PHRASES = ("rate limit", "quota", "too many requests", "resource_exhausted", "limit reached")
REPO_PHRASES = ("repo doesn't exist", "repository not found", "source not found", "not connected")

# Sessions started by an attempt that ended before the session did, so that the
# core's retry of the same work resumes waiting for it instead of starting another
# remote session (each one costs a daily Jules task).
_SESSIONS: dict[tuple, str] = {}
_SESSIONS_LOCK = threading.Lock()


class _Stop(Exception):
    """Ends the attempt with a failure class and a one-line message; ``forget`` drops the
    session so that a retry starts a new one."""

    def __init__(self, failure, message, *, retry_after_s=None, forget=False):
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.retry_after_s = retry_after_s
        self.forget = forget


def github_repo(url: str) -> str | None:
    """``OWNER/REPO`` of a GitHub remote URL (https or ssh form), else None."""
    m = GITHUB_URL.match(url.strip())
    return f"{m.group('owner')}/{m.group('repo')}" if m else None


def full_prompt(payload) -> str:
    """The instruction plus the files the change must stay within."""
    return prompt_with_files(payload)


def session_id_from(text: str) -> str | None:
    """The session id in ``jules remote new``'s output, by the patterns above."""
    for pattern in SESSION_ID_PATTERNS:
        m = pattern.search(text)
        if m:
            return m.group(1)
    return None


def table_rows(text: str) -> list[list[str]]:
    """The non-empty lines of a text table, split into columns on 2+ spaces or bars."""
    rows = []
    for line in text.splitlines():
        cols = [c.strip() for c in COLUMN_SPLIT.split(line.strip()) if c.strip()]
        if cols:
            rows.append(cols)
    return rows


def listed_ids(text: str) -> list[str]:
    """The session ids in the first column of ``jules remote list --session``."""
    return [
        cols[0]
        for cols in table_rows(text)
        if len(cols) >= 2 and len(cols[0]) >= 4 and LISTED_ID.match(cols[0])
    ]


def _is_row_of(cols: list[str], sid: str) -> bool:
    first = cols[0]
    if first == sid or sid in cols:
        return True
    short = first.rstrip(".…")
    return short != first and len(short) >= 4 and sid.startswith(short)  # a truncated id


def state_kind(text: str) -> str | None:
    for pattern, kind in STATES:
        if pattern.search(text):
            return kind
    return None


def session_state(text: str, sid: str) -> tuple[str | None, str | None]:
    """``(kind, status as shown)`` of session ``sid`` in the list, ``(None, None)`` when it
    is not listed. kind: done, failed, blocked, running or unknown. The status is the
    last column that names a state (the table's last column, in every sample seen)."""
    for cols in table_rows(text):
        if not _is_row_of(cols, sid):
            continue
        for col in reversed(cols[1:]):
            kind = state_kind(col)
            if kind:
                return kind, col
        return "unknown", cols[-1]
    return None, None


def extract_patch(text: str, root: Path) -> str | None:
    """The unified diff in ``jules remote pull``'s output (from its first ``diff --git``
    or ``---``/``+++`` pair), else the content of a ``.patch``/``.diff`` file it names."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("diff --git ") or (
            line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")
        ):
            patch = "".join(lines[i:])
            return patch if patch.endswith("\n") else patch + "\n"
    for name in re.findall(r"(\S+\.(?:patch|diff))\b", text):
        path = Path(root, name)
        if path.is_file():
            content = path.read_text(encoding="utf-8", errors="replace")
            if "\n+++ " in content or content.startswith("diff --git "):
                return content
    return None


def numstat_paths(text: str) -> list[str]:
    """Every path (old and new names of renames) of ``git apply --numstat -z``."""
    tokens = text.split("\0")
    paths, i = [], 0
    while i < len(tokens):
        fields = tokens[i].split("\t", 2)
        i += 1
        if len(fields) < 3:
            continue
        if fields[2]:
            paths.append(fields[2])
        else:  # a rename or copy: the old and the new name follow
            paths += [t for t in tokens[i : i + 2] if t]
            i += 2
    return paths


def _unquote(name: str) -> str:
    """A path as git writes it: C-quoted (octal escapes for UTF-8 bytes) when unusual."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        raw = name[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return raw.encode("latin-1").decode("utf-8", "replace")
    return name


def renamed_from(patch: str) -> list[str]:
    """The old names of renamed or copied files (``git apply --numstat`` shows only the
    new one, yet a rename also removes the old file)."""
    return [
        _unquote(line.split(" ", 2)[2].rstrip("\r"))
        for line in patch.splitlines()
        if line.startswith(("rename from ", "copy from "))
    ]


def _in_scope(rel: str, allowed: list[str], root: Path) -> bool:
    """Whether ``rel`` is one of the allowed paths or under an allowed directory."""
    for entry in allowed:
        is_dir = entry.endswith("/") or Path(root, entry).is_dir()
        name = Path(entry).as_posix().strip("/")
        if name in ("", "."):
            return True
        if rel == name or (is_dir and rel.startswith(name + "/")):
            return True
    return False


def _session_key(context, payload):
    digest = hashlib.sha256(
        "\0".join([payload.prompt, *payload.files, "|", *payload.files_create]).encode()
    ).hexdigest()
    return (os.path.realpath(context.root), payload.workstream_id, digest)


class _Attempt:
    """One invocation: the calls, their output for the run log, and the deadline."""

    def __init__(self, context, payload, program, options):
        self.context = context
        self.payload = payload
        self.program = program
        self.options = options
        self.root = Path(context.root)
        self.log: list[str] = []
        self.exit_code: int | None = None
        budget = payload.timeout_ms / 1000.0
        self.deadline = context.deadline or (time.monotonic() + budget)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, argv, *, label, stdin=None, check=True):
        """Run one command within the deadline; record it; stop on launch failures."""
        if self.remaining() <= 0:
            raise _Stop(Failure.TIMEOUT, f"{label} not started: the attempt ran out of time")
        r = self.context.run(
            argv,
            timeout_s=min(CALL_TIMEOUT_S, self.remaining()),
            cwd=self.root,
            env=dict(ENV),
            stdin=stdin,
        )
        out, err = ANSI.sub("", r.stdout), ANSI.sub("", r.stderr)
        self.exit_code = r.exit_code
        self.log.append(URL_CREDENTIALS.sub("", f"$ {label} (exit code {r.exit_code})\n{out}"))
        if err.strip():
            self.log.append(URL_CREDENTIALS.sub("", f"--- stderr ---\n{err}"))
        if check:
            self.check(r, out, err, label)
        return r, out, err

    def jules(self, *args, label):
        return self.run([self.program, *args], label=f"jules {label}")

    def check(self, r, out, err, label):
        """Stop with the failure class that jules' (or git's) answer says."""
        launch = launch_failure(r, label.split()[0])
        if launch is not None:
            raise _Stop(*launch)
        text = f"{out}\n{err}"
        low = text.lower()
        if "failed to start jules binary" in low:
            raise _Stop(
                Failure.UNAVAILABLE,
                "jules could not start its program ('Failed to start jules binary'); "
                "it downloads it from storage.googleapis.com on first use",
            )
        if "did you forget to login" in low or (
            r.exit_code != 0 and any(p in low for p in LOGIN_PHRASES)
        ):
            raise _Stop(Failure.AUTH_REQUIRED, LOGIN_HINT)
        if r.timed_out:
            raise _Stop(Failure.TIMEOUT, f"{label} did not finish in time")
        if r.exit_code != 0:
            said = one_line(first_line(err, out) or f"exit code {r.exit_code}")
            if any(p in low for p in RATE_PHRASES):
                raise _Stop(
                    Failure.RATE_LIMITED, f"{label}: {said}", retry_after_s=retry_after(text)
                )
            if label.startswith("jules") and any(p in low for p in REPO_PHRASES):
                raise _Stop(Failure.INVALID_PAYLOAD, f"{label}: {said}")
            raise _Stop(Failure.TOOL_ERROR, f"{label} failed: {said}")

    def output(self) -> str:
        return "\n".join(part.rstrip("\n") for part in self.log) + "\n"


def _github_origin(attempt) -> str:
    r, out, _ = attempt.run(
        ["git", "-C", str(attempt.root), "remote", "get-url", "origin"],
        label="git remote get-url origin",
        check=False,
    )
    launch = launch_failure(r, "git")
    if launch is not None:
        raise _Stop(*launch)
    repo = github_repo(out.strip().splitlines()[0]) if r.exit_code == 0 and out.strip() else None
    if repo is None:
        raise _Stop(Failure.INVALID_PAYLOAD, NO_ORIGIN)
    return repo


def _start_session(attempt, repo) -> str:
    _, before, _ = attempt.jules("remote", "list", "--session", label="remote list --session")
    known = set(listed_ids(before))
    prompt = full_prompt(attempt.payload)
    args = ["remote", "new", "--repo", repo, "--session", prompt, *option_args(attempt.options)]
    _, out, err = attempt.jules(*args, label="remote new")
    sid = session_id_from(f"{out}\n{err}")
    if sid is not None:
        return sid
    # Not clearly in its output: the session the list did not show before.
    guess = BARE_NUMBER.search(f"{out}\n{err}")
    _, after, _ = attempt.jules("remote", "list", "--session", label="remote list --session")
    new = [i for i in listed_ids(after) if i not in known]
    if guess and (guess.group(1) in new or not new):
        return guess.group(1)
    if new:
        return new[0]
    said = first_line(out, err) or "no output"
    raise _Stop(
        Failure.TOOL_ERROR, one_line(f"jules started no session that aim could find ({said})")
    )


def _wait_for(attempt, sid):
    interval = float(attempt.options.get("poll_interval_s", POLL_INTERVAL_S))
    url = SESSION_URL.format(sid)
    shown = None

    def out_of_time():
        where = f"status: {shown}" if shown else "not listed yet"
        return _Stop(
            Failure.TIMEOUT, f"jules session {sid} did not finish in time ({where}); see {url}"
        )

    while True:
        try:
            _, out, _ = attempt.jules("remote", "list", "--session", label="remote list --session")
        except _Stop as stop:
            if stop.failure is Failure.TIMEOUT:
                raise out_of_time() from None
            raise
        kind, status = session_state(out, sid)
        shown = status or shown
        if kind == "done":
            return
        if kind == "failed":
            raise _Stop(
                Failure.TOOL_ERROR, f"jules session {sid} failed ({status}); see {url}", forget=True
            )
        if kind == "blocked":
            raise _Stop(
                Failure.TOOL_ERROR,
                f"jules session {sid} is waiting for you ({status}); answer it at {url}",
            )
        if attempt.remaining() <= interval:
            raise out_of_time()
        time.sleep(interval)


def _pull_and_apply(attempt, sid):
    """Pull the session's patch, check it stays in scope, apply it; the changed files."""
    _, out, _ = attempt.jules("remote", "pull", "--session", sid, label="remote pull")
    patch = extract_patch(out, attempt.root)
    if patch is None:
        raise _Stop(Failure.TOOL_ERROR, f"jules session {sid} finished without a patch")
    return apply_patch(attempt, patch)


def apply_patch(attempt, patch):
    """Check that ``patch`` stays in scope, then apply it to the working tree (all or
    nothing, the index untouched); the ``(created, modified)`` files."""
    if not patch.endswith("\n"):
        patch += "\n"
    _, top, _ = attempt.run(["git", "rev-parse", "--show-toplevel"], label="git rev-parse")
    toplevel = Path(top.strip())
    git_apply = ["git", "-C", str(toplevel), "apply"]
    _, listing, _ = attempt.run(
        [*git_apply, "--numstat", "-z", "-"], label="git apply --numstat", stdin=patch
    )
    root = attempt.root.resolve()
    outside = []
    for name in dict.fromkeys([*numstat_paths(listing), *renamed_from(patch)]):
        rel = os.path.relpath(toplevel.resolve() / name, root)
        rel = Path(rel).as_posix()
        if rel.startswith("../") or not _in_scope(rel, writable_files(attempt.payload), root):
            outside.append(name)
    if outside:
        shown = ", ".join(outside[:5]) + (
            f" (+{len(outside) - 5} more)" if len(outside) > 5 else ""
        )
        raise _Stop(
            Failure.OUT_OF_SCOPE,
            f"jules' patch changes files outside the scope ({shown}); not applied",
        )
    attempt.run([*git_apply, "--whitespace=nowarn", "-"], label="git apply", stdin=patch)
    # what the core measured since the attempt began: only `git apply` wrote anything
    changes = scoped_changes(attempt.context, writable_files(attempt.payload))
    return list(changes.created), [*changes.modified, *changes.deleted]


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    """Start (or resume) a Jules session, wait for it, apply its patch (see README.md):
    through the REST API when ``JULES_API_KEY`` is set, else through the jules program."""
    if tool_id != TOOL_ID:
        return None
    api_key = context.getenv("JULES_API_KEY")
    program = context.which("jules")
    if program is None and not api_key:
        return InvocationResult(
            success=False,
            message="'jules' not found on PATH (install: npm install -g @google/jules)",
            failure=Failure.NOT_INSTALLED,
        )
    attempt = _Attempt(context, payload, program, tool_options(payload, context))
    key = (*_session_key(context, payload), "rest" if api_key else "cli")
    sid = None
    created: list[str] = []
    modified: list[str] = []
    wait, forget = None, True
    try:
        if len(full_prompt(payload).encode()) > MAX_ARGV_PROMPT:
            raise _Stop(Failure.INVALID_PAYLOAD, _too_long())
        repo = _github_origin(attempt)
        with _SESSIONS_LOCK:
            sid = _SESSIONS.get(key)
        if api_key:
            from aim_jules.rest import JulesApi

            api = JulesApi(attempt, api_key)
            if sid is None:
                sid = api.start_session(repo, full_prompt(payload))
                with _SESSIONS_LOCK:
                    _SESSIONS[key] = sid
            else:
                attempt.log.append(f"resuming jules session {sid} of an earlier attempt")
            patch = api.wait_for_patch(sid)
            created, modified = apply_patch(attempt, patch)
        else:
            if sid is None:
                sid = _start_session(attempt, repo)
                with _SESSIONS_LOCK:
                    _SESSIONS[key] = sid
            else:
                attempt.log.append(f"resuming jules session {sid} of an earlier attempt")
            _wait_for(attempt, sid)
            created, modified = _pull_and_apply(attempt, sid)
        if not (created or modified):
            raise _Stop(Failure.TOOL_ERROR, f"jules' patch changed no file in scope ({sid})")
        failure, message = None, f"applied jules session {sid}: {', '.join(created + modified)}"
    except _Stop as stop:
        failure, message, wait = stop.failure, stop.message, stop.retry_after_s
        # Keep the session for the core's retry (timeout, rate limit, tool error) unless
        # it failed for good; any other outcome ends the work with this session.
        forget = stop.forget or not stop.failure.retryable
    if forget:
        with _SESSIONS_LOCK:
            _SESSIONS.pop(key, None)
    return InvocationResult(
        success=failure is None,
        message=one_line(message),
        exit_code=attempt.exit_code,
        files_created=created,
        files_modified=modified,
        failure=failure,
        output=attempt.output(),
        retry_after_s=wait,
    )


def _too_long():
    return (
        f"the prompt is longer than {MAX_ARGV_PROMPT} bytes, more than jules' command line "
        "can take; shorten it"
    )


@hookimpl
@own_tools_only
def validate_payload(tool_id, capability, payload, context):
    """jules needs a prompt that fits on its command line."""
    if tool_id != TOOL_ID:
        return None
    problems = request_problems(payload, capability, tool="jules", capabilities=CAPABILITIES)
    if (payload.prompt or "").strip() and len(full_prompt(payload).encode()) > MAX_ARGV_PROMPT:
        problems.append(Problem(field="capability_payload.prompt", message=_too_long()))
    return problems
