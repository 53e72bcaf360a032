"""A loopback stand-in for the Jules REST API (``/v1alpha``), for the end-to-end tests.

It serves the documented endpoints the jules plugin uses
(https://jules.google/docs/api/reference):

* ``GET /v1alpha/sources/github/OWNER/REPO`` -- a connected repository (those in
  :attr:`StubJules.repos`), else 404.
* ``POST /v1alpha/sessions`` -- creates a session from ``prompt`` and
  ``sourceContext`` (``source`` must name a connected repository,
  ``githubRepoContext.startingBranch`` must be given).
* ``GET /v1alpha/sessions/ID`` -- the session: ``state`` and, once completed,
  ``outputs[].changeSet.gitPatch.unidiffPatch``.
* ``GET /v1alpha/sessions/ID/activities?pageSize=N&pageToken=T`` -- its activities,
  paginated. Each such request moves the session one step along
  :attr:`StubJules.states` (QUEUED, PLANNING, IN_PROGRESS, then COMPLETED by
  default); the activities grow with it: ``planGenerated``, ``progressUpdated``,
  then an activity whose artifact is the ``changeSet`` with the ``gitPatch``
  (``unidiffPatch``, ``baseCommitId``, ``suggestedCommitMessage``) and
  ``sessionCompleted`` -- or ``sessionFailed`` when the last state is FAILED.

Every request needs ``X-Goog-Api-Key`` equal to :attr:`StubJules.api_key`,
otherwise Google's 401 ``UNAUTHENTICATED`` answer. :attr:`StubJules.mode`
``"no_credentials"`` refuses every request that way, ``"429"`` answers
``RESOURCE_EXHAUSTED``. Requests are recorded in :attr:`StubJules.requests`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from attrs import define, field

HOST = "127.0.0.1"
PREFIX = "/v1alpha/"
DEFAULT_STATES = ("QUEUED", "PLANNING", "IN_PROGRESS", "COMPLETED")
UNAUTHENTICATED = {
    "error": {
        "code": 401,
        "message": "Request is missing required authentication credential. Expected OAuth 2 "
        "access token, login cookie or other valid authentication credential.",
        "status": "UNAUTHENTICATED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "CREDENTIALS_MISSING",
                "domain": "googleapis.com",
            }
        ],
    }
}
EXHAUSTED = {
    "error": {
        "code": 429,
        "message": "Quota exceeded: too many sessions today.",
        "status": "RESOURCE_EXHAUSTED",
    }
}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@define
class Session:
    """One session the stub holds."""

    id: str
    prompt: str
    title: str
    source: str
    branch: str
    patch: str
    states: tuple[str, ...]
    step: int = 0
    created: str = field(factory=_now)

    @property
    def state(self) -> str:
        return self.states[min(self.step, len(self.states) - 1)]


@define
class Request:
    """One request as the stub saw it."""

    method: str
    path: str
    query: dict[str, str]
    api_key: str | None
    body: Any
    status: int = 0


class StubJules:
    """The server; ``with StubJules() as stub:`` starts and stops it."""

    def __init__(self, api_key: str = "stub-jules-key"):
        self.api_key = api_key
        self.mode = "ok"  # "ok" | "no_credentials" | "429"
        self.repos: dict[str, str] = {}  # "owner/repo" -> default branch
        self.states: tuple[str, ...] = DEFAULT_STATES
        # The patch of the next session: a text, or a function of the session's prompt.
        self.patch: str | Callable[[str], str] = ""
        self.base_commit = "0" * 40
        self.sessions: dict[str, Session] = {}
        self.requests: list[Request] = []
        self._ids = itertools.count(4240930739512018056)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> StubJules:
        server = ThreadingHTTPServer((HOST, 0), _Handler)
        server.daemon_threads = True
        server.stub = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StubJules:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What ``JULES_API_BASE`` should be: ``http://127.0.0.1:PORT/v1alpha``."""
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}/v1alpha"

    def seen(self, method: str | None = None, prefix: str = "") -> list[Request]:
        """The requests with ``method`` whose path (after ``/v1alpha/``) starts with ``prefix``."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and r.path.startswith(prefix)
            ]

    # ------------------------------------------------------------------ resources

    def _source(self, repo: str) -> dict[str, Any]:
        owner, name = repo.split("/", 1)
        branch = self.repos[repo]
        return {
            "name": f"sources/github/{repo}",
            "id": f"github/{repo}",
            "githubRepo": {
                "owner": owner,
                "repo": name,
                "isPrivate": True,
                "defaultBranch": {"displayName": branch},
                "branches": [{"displayName": branch}],
            },
        }

    def _change_set(self, s: Session) -> dict[str, Any]:
        return {
            "source": s.source,
            "gitPatch": {
                "unidiffPatch": s.patch,
                "baseCommitId": self.base_commit,
                "suggestedCommitMessage": s.title,
            },
        }

    def _session(self, s: Session) -> dict[str, Any]:
        body = {
            "name": f"sessions/{s.id}",
            "id": s.id,
            "prompt": s.prompt,
            "title": s.title,
            "sourceContext": {
                "source": s.source,
                "githubRepoContext": {"startingBranch": s.branch},
            },
            "state": s.state,
            "url": f"https://jules.google.com/session/{s.id}",
            "createTime": s.created,
            "updateTime": _now(),
        }
        if s.state == "COMPLETED":
            body["outputs"] = [{"changeSet": self._change_set(s)}]
        return body

    def _activities(self, s: Session) -> list[dict[str, Any]]:
        def activity(n: int, originator: str, description: str, **kind: Any) -> dict[str, Any]:
            return {
                "name": f"sessions/{s.id}/activities/act{n}",
                "id": f"act{n}",
                "originator": originator,
                "description": description,
                "createTime": s.created,
                **kind,
            }

        out = [activity(1, "user", "Task started", userMessaged={"userMessage": s.prompt})]
        reached = s.states[: s.step + 1]
        if "PLANNING" in reached or len(reached) > 2:
            plan = {"id": "plan1", "steps": [{"id": "s1", "index": 0, "title": s.title}]}
            out.append(activity(2, "agent", "Plan generated", planGenerated={"plan": plan}))
        if "IN_PROGRESS" in reached:
            out.append(
                activity(3, "agent", "Working", progressUpdated={"title": "Writing the code"})
            )
        if s.state == "COMPLETED":
            out.append(
                activity(
                    4,
                    "agent",
                    "Code changes ready",
                    artifacts=[{"changeSet": self._change_set(s)}],
                    progressUpdated={"title": "Done"},
                )
            )
            out.append(activity(5, "system", "Session completed", sessionCompleted={}))
        if s.state == "FAILED":
            out.append(
                activity(4, "system", "Session failed", sessionFailed={"reason": "the plan failed"})
            )
        return out

    # ------------------------------------------------------------------ routing

    def handle(self, method: str, path: str, query: dict[str, str], body: Any):
        """``(status, json)`` for one request (the key was checked already)."""
        parts = path.split("/")
        if method == "GET" and parts[:2] == ["sources", "github"] and len(parts) == 4:
            repo = f"{parts[2]}/{parts[3]}"
            if repo not in self.repos:
                return 404, _not_found(f"Source sources/github/{repo} not found.")
            return 200, self._source(repo)
        if method == "POST" and path == "sessions":
            return self._create(body)
        if method == "GET" and parts[0] == "sessions" and len(parts) in (2, 3):
            with self._lock:
                s = self.sessions.get(parts[1])
            if s is None:
                return 404, _not_found(f"Session {parts[1]} not found.")
            if len(parts) == 2:
                return 200, self._session(s)
            if parts[2] == "activities":
                with self._lock:
                    s.step += 1  # every look at the activities moves the session on
                return 200, self._page(self._activities(s), query)
        return 404, _not_found(f"{method} /v1alpha/{path} is not an endpoint.")

    def _create(self, body: Any):
        if not isinstance(body, dict) or not str(body.get("prompt") or "").strip():
            return 400, _invalid("prompt is required")
        context = body.get("sourceContext") or {}
        source = str(context.get("source") or "")
        repo = source.removeprefix("sources/github/")
        if repo not in self.repos:
            return 404, _not_found(f"Source {source} not found.")
        branch = (context.get("githubRepoContext") or {}).get("startingBranch")
        if not branch:
            return 400, _invalid("sourceContext.githubRepoContext.startingBranch is required")
        prompt = str(body["prompt"])
        patch = self.patch(prompt) if callable(self.patch) else self.patch
        s = Session(
            id=str(next(self._ids)),
            prompt=prompt,
            title=str(body.get("title") or prompt[:40]),
            source=source,
            branch=str(branch),
            patch=patch,
            states=tuple(self.states),
        )
        with self._lock:
            self.sessions[s.id] = s
        return 200, self._session(s)

    @staticmethod
    def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        size = max(1, min(100, int(query.get("pageSize") or 50)))
        start = int(query.get("pageToken") or 0)
        page = {"activities": items[start : start + size]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page


def _not_found(message: str) -> dict[str, Any]:
    return {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}


def _invalid(message: str) -> dict[str, Any]:
    return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stub-jules/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read :attr:`StubJules.requests`."""

    def _answer(self, method: str) -> None:
        stub: StubJules = self.server.stub  # type: ignore[attr-defined]
        split = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(split.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        key = self.headers.get("X-Goog-Api-Key")
        request = Request(method, split.path.removeprefix(PREFIX), query, key, body)
        with stub._lock:
            stub.requests.append(request)
        if not split.path.startswith(PREFIX):
            status, answer = 404, _not_found(f"{split.path} is not under {PREFIX}")
        elif stub.mode == "no_credentials" or key != stub.api_key:
            status, answer = 401, UNAUTHENTICATED
        elif stub.mode == "429":
            status, answer = 429, EXHAUSTED
        else:
            status, answer = stub.handle(method, request.path, query, body)
        request.status = status
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "2")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")


if __name__ == "__main__":  # python tests/e2e/stub_jules.py: serve one repository by hand
    with StubJules() as stub:
        stub.repos["acme/widgets"] = "main"
        print(f"Jules API stub on {stub.base_url} (X-Goog-Api-Key: {stub.api_key})", flush=True)
        while True:
            time.sleep(3600)
