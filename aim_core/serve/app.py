"""The Starlette application of ``aim serve``: routes, token, host check, headers.

Every route is ``GET`` (and ``HEAD``); anything else is answered 405 before it
reaches a route. With a token, every request must carry it -- ``Authorization:
Bearer TOKEN``, or the cookie a browser gets after opening ``/?token=TOKEN`` once --
compared in constant time (:func:`hmac.compare_digest`). On a loopback address the
``Host`` header must name loopback too, so a web page elsewhere cannot reach the
dashboard through DNS rebinding. Pages send a Content-Security-Policy that allows
only the package's own script and stylesheet.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aim_core.serve.health import RulesCheck, healthz
from aim_core.serve.pages import RUN_ID, dashboard, run_page
from aim_core.serve.state import AuditState

READ_METHODS = ("GET", "HEAD")
COOKIE = "aim_serve_session"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
STATIC = {"aim.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class Guard:
    """ASGI middleware: read-only methods, the token, the Host header, security headers."""

    def __init__(self, app: ASGIApp, *, token: str | None, allowed_hosts: set[str] | None):
        self.app = app
        self.token = token.encode() if token else None
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                have = {k.lower() for k, _ in raw}
                for k, v in HEADERS.items():
                    if k.encode() not in have:
                        raw.append((k.encode(), v.encode()))
                message["headers"] = raw
            await send(message)

        answer = self.check(request)
        if answer is not None:
            await answer(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def check(self, request: Request) -> Response | None:
        """The refusal for this request, or None to let it through."""
        if request.method not in READ_METHODS:
            return JSONResponse(
                {"error": "aim serve is read-only: only GET and HEAD"},
                status_code=405,
                headers={"allow": ", ".join(READ_METHODS)},
            )
        if self.allowed_hosts is not None:
            host = _host_name(request.headers.get("host", ""))
            if host not in self.allowed_hosts:
                return JSONResponse(
                    {"error": f"Host '{host}' is not this loopback server's address"},
                    status_code=421,
                )
        if self.token is None:
            return None
        given = request.query_params.get("token")
        if given is not None and self._matches(given):
            # a browser opens URL?token=T once: keep it in a cookie, drop it from the URL
            rest = [(k, v) for k, v in parse_qsl(request.url.query) if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = Response(status_code=303, headers={"location": target})
            response.set_cookie(
                COOKIE,
                given,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and self._matches(value.strip()):
            return None
        if self._matches(request.cookies.get(COOKIE, "")):
            return None
        return JSONResponse(
            {
                "error": "a token is required: send 'Authorization: Bearer TOKEN' "
                "or open this URL once with ?token=TOKEN"
            },
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="aim"'},
        )

    def _matches(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token)


def _host_name(header: str) -> str:
    """The host part of a Host header (``[::1]:8080`` -> ``[::1]``, ``a:80`` -> ``a``)."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[: end + 1] if end >= 0 else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def active_runs(runs_state: Path) -> list[dict[str, Any]]:
    """The runs in the lock table (``runs/active/`` in the repository's machine-local
    state directory), as the pages show them."""
    from aim_core.runlocks import RunTable

    out = []
    for e in RunTable(runs_state).entries():
        started = e.get("started")
        out.append(
            {
                "run_id": str(e.get("run_id")),
                "workstream_id": e.get("workstream_id"),
                "capability": e.get("capability"),
                "tool_id": e.get("tool_id"),
                "state": e.get("state"),
                "attempt": e.get("attempt"),
                "started_at": datetime.fromtimestamp(started, timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
                if isinstance(started, (int, float))
                else None,
                "alive": bool(e.get("alive")),
            }
        )
    return out


def _page_number(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


class Server:
    """What the routes share: the project's registry, the aggregate, the rules check."""

    def __init__(
        self,
        *,
        root: Path,
        registry: Path,
        environ: Mapping[str, str],
        key: bytes | None,
        poll_ms: int = 2000,
        full_check_s: float = 600.0,
        runs_state: Path | None = None,
        state: AuditState | None = None,
    ):
        from aim_core.paths import state_dir

        self.root = root
        self.registry = registry
        self.environ = dict(environ)
        self.runs_state = runs_state or state_dir(root, self.environ) / "runs"
        self.state = state or AuditState(registry, key=key, environ=self.environ)
        self.rules = RulesCheck(registry)
        self.poll_ms = poll_ms
        self.full_check_s = full_check_s
        self._full_thread: threading.Thread | None = None
        self._full_started = time.monotonic()

    def warm(self) -> None:
        """Read the whole audit once (the server does it at start, in a thread), then walk
        the chain with ``aim audit verify``'s own code (heads, checkpoints and all), so the
        first answers already agree with the command."""
        self.state.refresh()
        self.state.chain_status()
        if self.full_check_s > 0:
            self._full_started = time.monotonic()
            self.state.full_check()

    def maybe_full_check(self) -> None:
        """Start the background walk of the whole chain when it is due."""
        if self.full_check_s <= 0:
            return
        due = time.monotonic() - self._full_started >= self.full_check_s
        if due and (self._full_thread is None or not self._full_thread.is_alive()):
            self._full_started = time.monotonic()
            self._full_thread = threading.Thread(
                target=self.state.full_check, name="aim-serve-full-check", daemon=True
            )
            self._full_thread.start()

    # ----------------------------------------------------------------- routes

    def healthz(self, request: Request) -> Response:
        self.maybe_full_check()
        code, body = healthz(self.state, self.rules, self.environ, active_runs(self.runs_state))
        return JSONResponse(body, status_code=code)

    def metrics(self, request: Request) -> Response:
        from aim_core.serve.metrics import exposition

        self.maybe_full_check()
        body, content_type = exposition(self.state)
        return Response(body, media_type=content_type)

    def dashboard(self, request: Request) -> Response:
        self.maybe_full_check()
        self.state.refresh()
        html = dashboard(
            self.state,
            page=_page_number(request),
            root=self.root,
            chain=self.state.chain_status(),
            active=active_runs(self.runs_state),
            poll_ms=self.poll_ms,
        )
        return HTMLResponse(html)

    def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if not RUN_ID.match(run_id):
            return HTMLResponse("<h1>Not a run id</h1>", status_code=404)
        self.state.refresh()
        html = run_page(self.state, self.registry, run_id, self.environ)
        if html is None:
            return HTMLResponse(f"<h1>No run {run_id} in the audit</h1>", status_code=404)
        return HTMLResponse(html)

    def api_report(self, request: Request) -> Response:
        self.state.refresh()
        return JSONResponse(self.state.report())

    def api_live(self, request: Request) -> Response:
        self.state.refresh()
        page = _page_number(request)
        with self.state.lock:
            report = self.state.report()
            recent = self.state.recent_runs(1)[0] if page == 1 else None
            generation = self.state.generation
        active = [e for e in active_runs(self.runs_state) if e["alive"]]
        return JSONResponse(
            {"generation": generation, "report": report, "active": active, "recent": recent}
        )

    def api_runs(self, request: Request) -> Response:
        self.state.refresh()
        runs, pages = self.state.recent_runs(_page_number(request))
        return JSONResponse({"runs": runs, "pages": pages})

    def api_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        self.state.refresh()
        summary = self.state.run_summary(run_id) if RUN_ID.match(run_id) else None
        if summary is None:
            return JSONResponse({"error": f"no run {run_id!r} in the audit"}, status_code=404)
        return JSONResponse(
            {
                **summary,
                "records_list": self.state.run_records(run_id),
                "feedback_list": self.state.feedback_for(run_id),
            }
        )

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found", status_code=404)
        data = resources.files("aim_core.serve").joinpath("static").joinpath(name).read_bytes()
        return Response(data, media_type=STATIC[name])

    def routes(self) -> list[Route]:
        get = list(READ_METHODS)
        return [
            Route("/", self.dashboard, methods=get),
            Route("/healthz", self.healthz, methods=get),
            Route("/metrics", self.metrics, methods=get),
            Route("/runs/{run_id}", self.run, methods=get),
            Route("/api/report", self.api_report, methods=get),
            Route("/api/live", self.api_live, methods=get),
            Route("/api/runs", self.api_runs, methods=get),
            Route("/api/runs/{run_id}", self.api_run, methods=get),
            Route("/static/{name}", self.static, methods=get),
        ]


def build_app(server: Server, *, token: str | None, host: str, loopback: bool) -> Starlette:
    """The ASGI app for ``server`` bound on ``host``; on a ``loopback`` address the Host
    header must name loopback too."""
    allowed = None
    if loopback:
        name = host.strip("[]").lower()
        allowed = set(LOOPBACK_HOSTS) | {name, f"[{name}]"}
    app = Starlette(routes=server.routes())
    app.add_middleware(Guard, token=token, allowed_hosts=allowed)
    app.state.aim = server
    return app
