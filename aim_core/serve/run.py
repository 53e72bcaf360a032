"""Binding and running ``aim serve``: the loopback rule, the socket, uvicorn."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

from attrs import frozen

from aim_core.errors import UsageError

MIN_TOKEN = 16
EXTRA = "pip install 'aim-core[serve]'"


@frozen(kw_only=True)
class Options:
    """How to serve: address, port (0: a free one), token, full chain walk period."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    full_check_s: float = 600.0
    poll_ms: int = 2000


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """:class:`UsageError` unless ``host`` is loopback or a good token is given."""
    if token is not None and len(token) < MIN_TOKEN:
        raise UsageError(
            f"--token: use at least {MIN_TOKEN} characters, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    if not is_loopback(host) and not token:
        raise UsageError(
            f"--host {host}: the audit holds prompts and file names, so serving beyond "
            "loopback needs a token; pass --token TEXT or set AIM_SERVE_TOKEN "
            "(or bind 127.0.0.1)"
        )


def _imports() -> None:
    """:class:`UsageError` naming the extra to install when a module the server needs is
    missing. Found, not imported: the server imports each when it is first used
    (jinja2 for the pages, prometheus_client for ``/metrics``), and starlette and
    uvicorn while the audit is being read."""
    from importlib.util import find_spec

    missing = []
    for module in ("starlette", "uvicorn", "prometheus_client", "jinja2"):
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    if missing:
        raise UsageError(f"aim serve needs {', '.join(missing)}: {EXTRA}")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: the system picks one), so the URL
    printed before uvicorn starts already accepts connections."""
    name = host.strip("[]")
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as e:
        sock.close()
        raise UsageError(f"--port {port}: cannot bind {host}:{port} ({e.strerror})") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve_forever(project: Any, options: Options, *, echo: Callable[[str], None]) -> int:
    """Serve until interrupted (Ctrl-C, SIGTERM); returns the exit code."""
    _imports()
    from aim_core.audit.jsonl import audit_key
    from aim_core.serve.state import AuditState

    sock = bind(options.host, options.port)
    # start reading the audit at once: the imports below overlap with it
    state = AuditState(project.registry, key=audit_key(project.environ), environ=project.environ)
    reading = threading.Thread(target=state.refresh, name="aim-serve-read", daemon=True)
    reading.start()
    import uvicorn

    from aim_core.serve.app import Server, build_app

    server = Server(
        root=project.root,
        registry=project.registry,
        environ=project.environ,
        key=state.key,
        poll_ms=options.poll_ms,
        full_check_s=options.full_check_s,
        runs_state=project.runs_state,
        state=state,
    )
    app = build_app(
        server, token=options.token, host=options.host, loopback=is_loopback(options.host)
    )
    threading.Thread(target=server.warm, name="aim-serve-warm", daemon=True).start()
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    url = url_of(sock)
    echo(f"aim serve: {url} (registry {project.registry}; read-only; Ctrl-C stops)")
    if options.token:
        echo("  a token is required: 'Authorization: Bearer TOKEN', or open URL?token=TOKEN once")
    uvicorn.Server(config).run(sockets=[sock])
    return 0
