"""What every ``aim`` command shares: the global options (accepted before or after the
subcommand) and opening the project of the current directory. Kept apart from
:mod:`aim_core.cli` so that commands in their own modules (``aim serve``, ``aim
feedback``) use them without importing the CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from aim_core.project import Project


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value not in (None, False, 0, ()):
        ctx.find_root().meta[f"aim.{param.name}"] = value
    return value


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The global options, accepted before or after the subcommand."""
    options = [
        click.option(
            "--config",
            metavar="FILE",
            help="Config file (default config/aim_config.yaml).",
            callback=_remember,
            expose_value=False,
        ),
        click.option(
            "--registry",
            metavar="DIR",
            help="Registry directory (default: found upward).",
            callback=_remember,
            expose_value=False,
        ),
        click.option(
            "--actor",
            metavar="NAME",
            help="Who the audit records name (default: pipeline).",
            callback=_remember,
            expose_value=False,
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            help="Also log commands and timings.",
            callback=_remember,
            expose_value=False,
        ),
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            help="Log only warnings and errors.",
            callback=_remember,
            expose_value=False,
        ),
        click.option(
            "--debug",
            is_flag=True,
            help="Show tracebacks of errors.",
            callback=_remember,
            expose_value=False,
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _meta(name: str) -> Any:
    return click.get_current_context().find_root().meta.get(f"aim.{name}")


def open_project(*, recover: bool = True) -> Project:
    """The :class:`~aim_core.project.Project` of the current directory, with the global
    options; first restores what a killed run left (unless ``recover`` is false)."""
    from aim_core.cli_frame import remember
    from aim_core.log import configure
    from aim_core.project import Project

    configure(verbosity=_meta("verbose") or 0, quiet=bool(_meta("quiet")))
    project = Project.for_command(
        config_path=_meta("config"),
        registry=_meta("registry"),
        actor=_meta("actor"),
        recover=recover,
    )
    remember(project)  # its audit sinks are flushed before the command returns
    return project
