"""``aim run``: its work (:func:`run_command`, used by the click command in
:mod:`aim_core.cli`) and a start that does not import click (:func:`main_without_click`).

Importing click and building the command tree costs about 20 ms, a fifth of the
budget of ``aim run``'s whole overhead. So ``aim run`` reads its command line here
when every argument is one this module knows (:data:`RUN_OPTIONS`,
:data:`GLOBAL_OPTIONS`, paths) and each value is one click accepts; anything else
(``--help``, an unknown option, a bad value, no path) goes to the click CLI, which
answers as it always has. Both run the same :func:`run_command` inside the same
:func:`~aim_core.cli_frame.run_framed`, so the output and exit codes are the same.

Adding an option to ``aim run``: add the ``click.option`` to the ``run`` command in
``cli.py``, a parameter of the same name to :func:`run_command`, and an entry to
:data:`aim_core.run_args.RUN_OPTIONS` (its flags, the parameter name, its kind and default) --
``tests/test_cli_run.py`` fails until the two lists agree.
"""

from __future__ import annotations

from aim_core.cli_frame import echo, remember, run_framed, wants_debug, wants_json
from aim_core.display import escape_controls
from aim_core.errors import EXIT_INTERRUPTED
from aim_core.run_args import (  # noqa: F401 - the option tables live there
    COUNT,
    FLAG,
    GLOBAL_OPTIONS,
    RUN_OPTIONS,
    accepts,
    read_words,
)

TYPE_CHECKING = False  # typing costs milliseconds to import on the start of `aim run`
if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import Any

    from aim_core.project import Project


def parse(args: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``aim [GLOBAL...] run [OPTIONS...] PATHS...`` as ``(run's parameters, the
    global options)``, or None when click must read it."""
    words = read_words(args)
    if words is None:
        return None
    before, after, paths = words
    from pathlib import Path

    options = {spec[0]: spec[2] for spec in RUN_OPTIONS.values()}
    options.update((k, v) for k, v in after.items() if k in options)
    options["paths"] = tuple(Path(p) for p in paths)
    # click keeps a global option given after the subcommand over one given before it
    # (each level stores what it was given; a count is not added across levels)
    glob = {spec[0]: spec[2] for spec in GLOBAL_OPTIONS.values()}
    glob.update(before)
    glob.update((k, v) for k, v in after.items() if k in glob and v not in (None, False, 0))
    return options, glob


def open_project(glob: dict[str, Any], *, recover: bool = True) -> Project:
    """The project of the current directory with the global options (as
    :func:`aim_core.cli_common.open_project` opens it under click)."""
    from aim_core.log import configure
    from aim_core.project import Project

    configure(verbosity=glob.get("verbose") or 0, quiet=bool(glob.get("quiet")))
    project = Project.for_command(
        config_path=glob.get("config"),
        registry=glob.get("registry"),
        actor=glob.get("actor"),
        recover=recover,
    )
    project.lazy_plugins = True  # a run imports the plugins it calls (aim_core.plugins)
    remember(project)
    return project


def main_without_click(args: list[str]) -> int | None:
    """``aim run ...`` without importing click; None when click must read the
    command line (see the module's docstring)."""
    parsed = parse(args)
    if parsed is None:
        return None
    options, glob = parsed

    def command() -> int:
        try:
            return run_command(open_project(glob), **options)
        except (EOFError, KeyboardInterrupt):  # as click's main reports them
            echo("", err=True)
            echo("Aborted.", err=True)
            return EXIT_INTERRUPTED

    return run_framed(command, debug=wants_debug(args), as_json=wants_json(args))


# --------------------------------------------------------------------------- the work


def run_command(
    project: Project,
    *,
    paths: tuple[Path, ...],
    jobs: int,
    dry_run: bool,
    as_json: bool,
    max_cost: float | None = None,
    race: int | None = None,
) -> int:
    """``aim run``: load every workstream of ``paths`` (exit 2 listing every problem),
    then print the plan (``dry_run``) or run them as a graph, ``jobs`` at once, printing
    each result as it is known (one JSON object a line with ``as_json``); ``max_cost``
    limits what the whole command spends (US dollars), ``race`` races that many tools
    for every workstream."""
    from aim_core.graph import load_all

    verdicts = load_all(project, list(paths))
    if dry_run:
        return _print_plan(project, verdicts, race=race, as_json=as_json)
    return _run_graph(project, verdicts, jobs=jobs, as_json=as_json, max_cost=max_cost, race=race)


def _print_plan(project: Any, verdicts: list[Any], *, race: int | None, as_json: bool) -> int:
    """The dry run: each workstream's candidates, scope, checks and race -- or, with
    ``as_json``, one JSON object a line. A race larger than the candidates is exit 2,
    as ``aim run`` would say."""
    from aim_core.errors import AimError
    from aim_core.graph import plan

    planned = plan(project, verdicts)
    for p in planned:
        size = race or p.race
        if size > len(p.tools):
            raise AimError(
                f"asks to race {size} tools but the rules route only {len(p.tools)}; lower "
                "it or add fallbacks to the rules",
                file=None if race else p.source,
                field="--race" if race else "race",
            )
    if as_json:
        import json

        for p in planned:
            data = p.as_dict()
            data["tools"] = [t.as_dict() for t in p.tools]
            data["race"] = race or p.race
            echo(json.dumps(data, ensure_ascii=False))
        return 0
    for p in planned:
        deps = f" after {', '.join(p.depends_on)}" if p.depends_on else ""
        echo(f"{p.workstream_id} ({p.source}): {p.what}{deps}")
        for t in p.tools:
            echo(f"  {t.tool_id:<14} {t.role:<16} {t.state}")
        echo(f"  may change: {', '.join(p.may_change) or '(none)'}")
        if p.checks:
            echo(f"  checks: {'; '.join(p.checks)}")
        if (race or p.race) > 1:
            echo(f"  race: the first {race or p.race} tools at once, each in its own copy")
    echo("Dry run: nothing was run.")
    return 0


def _shower(as_json: bool) -> Callable[[Any], None]:
    def show(r: Any) -> None:
        if as_json:
            import json

            echo(json.dumps(r.to_json(), ensure_ascii=False))
            return
        from aim_core.security import redact_text

        mark = "OK  " if r.success else "FAIL"
        waited = f", {r.waited_sec:.1f}s of it waiting for another run" if r.waited_sec else ""
        tool = f" [{r.tool_id}, {r.duration_sec:.1f}s{waited}]" if r.tool_id else ""
        echo(escape_controls(f"{mark} {redact_text(str(r.workstream_id))}: {r.message}{tool}"))

    return show


def _run_graph(
    project: Any,
    verdicts: list[Any],
    *,
    jobs: int,
    as_json: bool,
    max_cost: float | None,
    race: int | None,
) -> int:
    import contextlib

    from aim_core.budget import RunBudget
    from aim_core.graph import run_graph
    from aim_core.process import enable_subreaper
    from aim_core.progress import ProgressView
    from aim_core.runner import Runner

    ids = [v.workstream.id for v in verdicts]
    # one workstream gets the view too when it has checks or races: they take a while
    several = len(ids) > 1 or bool(race)
    several = several or any(v.workstream.verify or v.workstream.race for v in verdicts)
    view = ProgressView(ids) if several and ProgressView.wanted(as_json) else None
    budget = (
        RunBudget(max_cost, "aim run --max-cost")
        if max_cost is not None
        else RunBudget(project.settings.max_cost_usd, "config max_cost_usd")
    )
    events = view.event if view is not None else None
    runner = Runner(project, on_event=events, budget=budget, race=race)
    enable_subreaper()
    with contextlib.ExitStack() as stack:
        if view is not None:
            stack.enter_context(view)
        stack.callback(runner.close)
        _stop_on_signals(runner, stack)
        return run_graph(runner, verdicts, jobs=jobs, on_result=_shower(as_json))


def _stop_on_signals(runner: Any, stack: contextlib.ExitStack) -> None:
    """While the runs go on, SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed)
    only note a stop, which the graph's loop carries out within 0.1 s: each run
    restores, records "interrupted" and the command ends 130. A handler takes no lock
    and raises nothing: a KeyboardInterrupt, or a second one, landing inside a lock's
    code lost the stop (the tool ran on, its work was kept, then "release unlocked
    lock"). The handlers before are put back when the runs end."""
    import contextlib
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def note(_signum: int, _frame: object) -> None:
        runner.stop_noted = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):
            before = signal.signal(signum, note)
            if before is not None:  # None: set outside Python, cannot be put back
                stack.callback(signal.signal, signum, before)
