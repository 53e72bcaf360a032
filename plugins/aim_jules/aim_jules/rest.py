"""Jules through its REST API, used when ``JULES_API_KEY`` is set.

The documented endpoints (https://jules.google/docs/api/reference), relative to
the base URL -- ``https://jules.googleapis.com/v1alpha``, or the ``base_url``
option, or ``JULES_API_BASE`` -- each sent with the key in ``X-Goog-Api-Key``:

``GET sources/github/OWNER/REPO``
    the repository as Jules knows it, with its default branch (404: the
    repository is not connected to Jules).
``POST sessions``
    ``{"prompt", "title", "sourceContext": {"source", "githubRepoContext":
    {"startingBranch"}}, "requirePlanApproval": false}``: the new session
    (``id``, ``name``, ``url``, ``state``).
``GET sessions/ID``
    its ``state`` (QUEUED, PLANNING, IN_PROGRESS, AWAITING_PLAN_APPROVAL,
    AWAITING_USER_FEEDBACK, PAUSED, FAILED, COMPLETED) and ``outputs``
    (``changeSet.gitPatch.unidiffPatch``).
``GET sessions/ID/activities?pageSize=100[&pageToken=T]``
    what happened: ``sessionCompleted``, ``sessionFailed.reason``, and
    ``artifacts[].changeSet.gitPatch.unidiffPatch`` (a 404 right after the
    session was created means "none yet").

Only ``urllib`` from the standard library; every request is bounded by the
attempt's deadline (at most 30 s each). The key never reaches a message or the
run log.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from aim_core import Failure
from aim_core.toolkit import one_line, retry_after
from aim_jules import LOGIN_HINT, SESSION_URL, _Stop

DEFAULT_BASE = "https://jules.googleapis.com/v1alpha"
REQUEST_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 10.0  # between two looks at the session (option poll_interval_s)
PAGE_SIZE = 100
MAX_PAGES = 50  # of activities per look: 5000 activities
BLOCKED = ("AWAITING_PLAN_APPROVAL", "AWAITING_USER_FEEDBACK", "PAUSED")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def base_url(context, options) -> str:
    """The API's base URL: the ``base_url`` option, else ``JULES_API_BASE``, else Google's."""
    url = options.get("base_url") or context.getenv("JULES_API_BASE") or DEFAULT_BASE
    return str(url).rstrip("/")


def _google_error(status: int, raw: bytes) -> tuple[str, str]:
    """``(status name, message)`` of a Google API error body (``{"error": {...}}``)."""
    try:
        error = json.loads(raw).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    said = str(error.get("message") or raw[:200].decode("utf-8", "replace") or "no details")
    return str(error.get("status") or status), said


class NotFound(Exception):
    """A 404 from the API (callers decide what it means)."""


class JulesApi:
    """The requests of one attempt, logged into the attempt's run log."""

    def __init__(self, attempt, api_key: str):
        self.attempt = attempt
        self.key = api_key
        self.base = base_url(attempt.context, attempt.options)
        host = urllib.parse.urlsplit(self.base).hostname or ""
        # A loopback base URL (a local gateway, a test server) never goes through a proxy.
        proxies = {} if host in LOOPBACK else None
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))

    # ------------------------------------------------------------------ HTTP

    def request(self, method: str, path: str, body: Any = None, query=None) -> dict[str, Any]:
        """One call; the decoded JSON object. Failures become ``_Stop``; 404 ``NotFound``."""
        left = self.attempt.remaining()
        if left <= 0:
            raise _Stop(Failure.TIMEOUT, f"{method} {path} not sent: the attempt ran out of time")
        url = f"{self.base}/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("X-Goog-Api-Key", self.key)
        req.add_header("Accept", "application/json")
        req.add_header("User-Agent", "aim-plugin-jules")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        shown = f"{method} {path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        try:
            with self.opener.open(req, timeout=min(REQUEST_TIMEOUT_S, left)) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw = e.read() or b""
            self.attempt.log.append(f"{shown} -> {e.code}\n{raw[:2000].decode('utf-8', 'replace')}")
            self._raise_for(e.code, raw, e.headers, shown)
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            self.attempt.log.append(f"{shown} -> no answer: {reason}")
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                raise _Stop(
                    Failure.TIMEOUT, f"the Jules API did not answer {shown} in time"
                ) from None
            raise _Stop(
                Failure.TOOL_ERROR, one_line(f"cannot reach the Jules API at {self.base}: {reason}")
            ) from None
        self.attempt.log.append(f"{shown} -> {status}")
        try:
            value = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise _Stop(
                Failure.TOOL_ERROR, f"the Jules API answered {shown} with something not JSON"
            ) from None
        if not isinstance(value, dict):
            raise _Stop(Failure.TOOL_ERROR, f"the Jules API answered {shown} with {value!r:.80}")
        return value

    def _raise_for(self, code: int, raw: bytes, headers, shown: str) -> None:
        name, said = _google_error(code, raw)
        text = f"{name} {said}"
        if code in (401, 403) or "API_KEY_INVALID" in raw.decode("utf-8", "replace"):
            raise _Stop(
                Failure.AUTH_REQUIRED,
                f"{LOGIN_HINT}; the Jules API refused the key in JULES_API_KEY ({code} {name})",
            )
        if code == 404:
            raise NotFound(said)
        if code == 429 or name == "RESOURCE_EXHAUSTED":
            wait = None
            header = headers.get("Retry-After") if headers is not None else None
            if header and header.strip().replace(".", "", 1).isdigit():
                wait = float(header)
            raise _Stop(
                Failure.RATE_LIMITED,
                one_line(f"the Jules API is rate limiting ({code} {said})"),
                retry_after_s=wait if wait is not None else retry_after(text),
            )
        raise _Stop(Failure.TOOL_ERROR, one_line(f"the Jules API answered {shown}: {code} {said}"))

    # ------------------------------------------------------------------ the flow

    def start_session(self, repo: str, prompt: str) -> str:
        """Create a session on ``repo`` (``OWNER/REPO``); its id."""
        try:
            source = self.request("GET", f"sources/github/{repo}")
        except NotFound:
            raise _Stop(
                Failure.INVALID_PAYLOAD,
                f"the repository {repo} is not connected to Jules: install the Jules GitHub "
                "app for it in the Jules web app",
            ) from None
        github = source.get("githubRepo") or {}
        branch = (
            self.attempt.options.get("starting_branch")
            or (github.get("defaultBranch") or {}).get("displayName")
            or "main"
        )
        body = {
            "prompt": prompt,
            "title": one_line(prompt.splitlines()[0] if prompt else "aim", limit=80),
            "sourceContext": {
                "source": source.get("name") or f"sources/github/{repo}",
                "githubRepoContext": {"startingBranch": str(branch)},
            },
            "requirePlanApproval": False,
        }
        session = self.request("POST", "sessions", body)
        sid = str(session.get("id") or str(session.get("name", "")).rpartition("/")[2])
        if not sid:
            raise _Stop(Failure.TOOL_ERROR, "the Jules API created a session without an id")
        self.attempt.log.append(
            f"jules session {sid} started on {repo} ({branch}): {session.get('url') or ''}"
        )
        return sid

    def activities(self, sid: str) -> list[dict[str, Any]]:
        """Every activity of the session so far (none yet: an empty list)."""
        out: list[dict[str, Any]] = []
        token = None
        for _ in range(MAX_PAGES):
            query = {"pageSize": PAGE_SIZE, **({"pageToken": token} if token else {})}
            try:
                page = self.request("GET", f"sessions/{sid}/activities", query=query)
            except NotFound:
                return out  # just created: the list does not exist yet
            out += [a for a in page.get("activities") or [] if isinstance(a, dict)]
            token = page.get("nextPageToken")
            if not token:
                break
        return out

    def wait_for_patch(self, sid: str) -> str:
        """Look at the session until it completed (its patch), failed or waits for the user."""
        interval = float(self.attempt.options.get("poll_interval_s", POLL_INTERVAL_S))
        url = SESSION_URL.format(sid)
        state = None
        while True:
            try:
                try:
                    session = self.request("GET", f"sessions/{sid}")
                except NotFound:
                    raise _Stop(
                        Failure.TOOL_ERROR, f"jules session {sid} no longer exists", forget=True
                    ) from None
                activities = self.activities(sid)
            except _Stop as stop:
                if stop.failure is Failure.TIMEOUT:
                    raise self._late(sid, state, url) from None
                raise
            url = session.get("url") or url
            state = str(session.get("state") or "STATE_UNSPECIFIED")
            failed = [a["sessionFailed"] for a in activities if "sessionFailed" in a]
            if state == "FAILED" or failed:
                reason = (failed[-1] or {}).get("reason") if failed else None
                raise _Stop(
                    Failure.TOOL_ERROR,
                    f"jules session {sid} failed ({reason or state}); see {url}",
                    forget=True,
                )
            if state == "COMPLETED" or any("sessionCompleted" in a for a in activities):
                patch = latest_patch(session, activities)
                if not patch:
                    raise _Stop(Failure.TOOL_ERROR, f"jules session {sid} finished without a patch")
                self.attempt.log.append(f"--- jules session {sid}: patch ---\n{patch}")
                return patch
            if state in BLOCKED:
                raise _Stop(
                    Failure.TOOL_ERROR,
                    f"jules session {sid} is waiting for you ({state}); answer it at {url}",
                )
            if self.attempt.remaining() <= interval:
                raise self._late(sid, state, url)
            time.sleep(interval)

    def _late(self, sid: str, state: str | None, url: str) -> _Stop:
        where = f"state: {state}" if state else "no answer yet"
        return _Stop(
            Failure.TIMEOUT, f"jules session {sid} did not finish in time ({where}); see {url}"
        )


def _patch_of(change: Any) -> str | None:
    if not isinstance(change, dict):
        return None
    patch = (change.get("gitPatch") or {}).get("unidiffPatch")
    return patch if isinstance(patch, str) and patch.strip() else None


def latest_patch(session: dict[str, Any], activities: list[dict[str, Any]]) -> str | None:
    """The session's final patch: its last ``changeSet`` output, else the last one among
    the activities' artifacts."""
    for output in reversed(session.get("outputs") or []):
        patch = _patch_of((output or {}).get("changeSet"))
        if patch:
            return patch
    for activity in reversed(activities):
        for artifact in reversed(activity.get("artifacts") or []):
            patch = _patch_of((artifact or {}).get("changeSet"))
            if patch:
                return patch
    return None
