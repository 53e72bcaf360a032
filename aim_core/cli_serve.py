"""``aim serve``: the health endpoint, the metrics and the dashboard.

starlette, uvicorn and prometheus_client are imported only when the command runs,
so ``aim --version`` never pays for them. It takes the global
options from :mod:`aim_core.cli_common`, so it never imports the CLI (no cycle).
"""

from __future__ import annotations

import os

import click

from aim_core.cli_common import common_options, open_project
from aim_core.errors import UsageError

TOKEN_ENV = "AIM_SERVE_TOKEN"


@click.command("serve")
@common_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback needs --token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to bind; 0 picks a free one (the URL is printed).",
)
@click.option(
    "--token",
    metavar="TEXT",
    default=None,
    help=f"Require this bearer token on every request (or set {TOKEN_ENV}).",
)
@click.option(
    "--full-check-minutes",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Re-walk the whole audit chain in the background this often (0: never).",
)
def serve(host: str, port: int, token: str | None, full_check_minutes: float) -> int:
    """Serve /healthz, /metrics and the dashboard of this repository, read-only.

    Binds to 127.0.0.1 by default. The audit holds prompts and file names, so any
    other address requires a token (--token or AIM_SERVE_TOKEN), sent as
    `Authorization: Bearer TOKEN` or opened once as URL/?token=TOKEN in a browser.
    Nothing the server does changes the repository, the rules or the audit.
    """
    from aim_core.serve.run import Options, check_bind, serve_forever

    token = token or os.environ.get(TOKEN_ENV) or None
    check_bind(host, token)
    project = open_project(recover=False)
    if not project.has_registry:
        raise UsageError(
            f"no aim registry at {project.registry}; run 'aim init' first (or pass --registry)"
        )
    options = Options(
        host=host,
        port=port,
        token=token,
        full_check_s=full_check_minutes * 60,
    )
    return serve_forever(project, options, echo=lambda line: click.echo(line))
