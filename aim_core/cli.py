"""The ``aim`` command. Thin: parse, call, print; errors become exit codes here only."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aim_core._version import __version__

# The global options and opening the project: shared with the commands kept in their
# own modules (aim_core.cli_common).
from aim_core.cli_common import common_options, open_project
from aim_core.cli_frame import ISSUES_URL, error_json, run_framed, wants_debug, wants_json
from aim_core.display import escape_controls
from aim_core.errors import EXIT_INTERRUPTED, EXIT_USAGE, AimError

if TYPE_CHECKING:
    from aim_core.project import Project
    from aim_core.workstream import FileVerdict

__all__ = ["ISSUES_URL", "cli", "run_cli"]


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _mark(ok: bool) -> str:
    enc = (getattr(sys.stdout, "encoding", None) or "ascii").lower()
    if "utf" in enc:
        return "✓" if ok else "✗"
    return "OK " if ok else "NO "


# --------------------------------------------------------------------------- the group


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="aim", message="%(prog)s %(version)s")
@common_options
def cli() -> None:
    """Route AI coding work to the tools you have installed.

    A workstream (a JSON file: tasks, files in scope, a capability such as
    code_generation) is run with `aim run ws.json`; aim picks a tool from the
    coordination rules, falls back when it is missing, logged out, slow or
    failing, keeps the repository safe and audits every attempt.

    Start with `aim init`, then `aim status` and `aim doctor`.
    """


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@click.option("--with-scripts", is_flag=True, help="Also write the guide's scripts/*.py shims.")
@click.option(
    "--path",
    "where",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to initialise (default: the current one).",
)
@common_options
def init(force: bool, with_scripts: bool, where: Path | None) -> int:
    """Write a working config, registry and the guide's example workstreams.

    Writes config/aim_config.yaml, the coordination rules with the guide's
    routing table and security section, workstreams/staging_test/ (the guide's
    Appendix B set) and, with --with-scripts, scripts/aim_status.py and friends
    as thin shims onto `aim`. Never overwrites a file without --force. Adds
    the audit and run directories to .gitignore.
    """
    from aim_core.scaffold import init_project

    root = (where or Path.cwd()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    report = init_project(root, force=force, with_scripts=with_scripts)
    click.echo(f"Initialised aim in {root}")
    for p in report.written:
        click.echo(f"  wrote   {p}")
    for p in report.created_dirs:
        click.echo(f"  created {p}")
    for p in report.kept:
        click.echo(f"  kept    {p} (exists; --force overwrites)")
    if report.gitignore_added:
        click.echo(f"  .gitignore: added {', '.join(report.gitignore_added)}")
    click.echo(
        "Next: aim status, then aim validate and "
        "aim run workstreams/staging_test/ws-aim-validation.json"
    )
    return 0


@cli.command()
@click.option("--refresh", is_flag=True, help="Detect every tool again instead of using the cache.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (root, registry_path, tools, routing, plugins_broken).",
)
@common_options
def status(refresh: bool, as_json: bool) -> int:
    """Show the registry, each tool's detection and version, and the routing.

    Detection runs every plugin in parallel and is cached (machine-local); a
    warm `aim status` starts no process. --refresh detects again.
    """
    from aim_core import status as status_mod

    click.echo(status_mod.command(open_project(), refresh=refresh, as_json=as_json), nl=False)
    return 0


@cli.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: name, distribution, version, status, hooks, tools, error.",
)
@common_options
def plugins(as_json: bool) -> int:
    """List the plugins: essential built-ins and installed ones, with broken ones and their fix."""
    project = open_project()
    project.detect()  # fills in which tools each plugin provides
    infos = list(project.plugins.infos.values())
    if as_json:
        emit_json([i.as_json() for i in infos])
        return 0
    click.echo(f"{'Plugin':<22} {'Status':<10} {'Version':<10} {'Tools':<18} Distribution")
    click.echo("=" * 80)
    for i in infos:
        click.echo(
            f"{i.name:<22} {i.status:<10} {i.version or '-':<10} "
            f"{', '.join(i.tools) or '-':<18} {i.distribution or '(built-in)'}".rstrip()
        )
    problems = [i for i in infos if i.status in ("broken", "blocked")]
    for i in problems:
        fix = f"\n    fix: {i.fix}" if i.fix else ""
        click.echo(f"\n{i.name}: {i.status}: {i.error}{fix}")
    return 0


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Unknown fields are errors, not warnings.")
@common_options
def validate(paths: tuple[Path, ...], strict: bool) -> int:
    """Check workstream files (default: every workstreams/**/*.json).

    Prints each file's verdict; exits 2 if any file is invalid.
    """
    from aim_core.workstream import (
        check_graph,
        discover,
        display_path,
        expand_paths,
        repository_ids,
        verdict_for,
    )

    project = open_project()
    files = expand_paths(paths) if paths else discover(project.root)
    if not files:
        raise AimError(
            "no workstream files found; pass paths or create workstreams/ "
            "(aim init writes examples)",
            file=str(project.root / "workstreams") if not paths else None,
        )
    caps = project.known_capabilities()
    tools = project.known_tools()
    verdicts = [
        verdict_for(
            f,
            display_path(f, project.root),
            known_capabilities=caps,
            known_tools=tools,
            strict=strict,
            root=project.root,
        )
        for f in files
    ]
    verdicts = check_graph(verdicts, repository_ids(project.root))
    verdicts = [_with_security(project, v) for v in verdicts]
    bad = 0
    for v in verdicts:
        click.echo(
            f"{_mark(v.ok)} {v.display}" + ("" if v.ok else f" ({len(v.errors)} problem(s))")
        )
        for e in v.errors:
            click.echo(f"    error: {escape_controls(str(e))}")
        for w in v.warnings:
            click.echo(f"    warning: {escape_controls(str(w))}")
        bad += not v.ok
    click.echo(f"{len(verdicts) - bad} valid, {bad} invalid")
    return EXIT_USAGE if bad else 0


def _with_security(project: Project, verdict: FileVerdict) -> FileVerdict:
    """Add the plugins' objections to the workstream as a whole -- the core's security
    rules (paths, size, credentials) among them -- to a valid file's verdict."""
    if verdict.workstream is None or verdict.errors:
        return verdict

    from aim_core.admission import workstream_problems
    from aim_core.request import invocation_for

    ws = verdict.workstream
    request = invocation_for(ws, project.settings)
    capability = ws.capability if project.settings.enable_aim else None
    problems = workstream_problems(project, request, capability)
    errors = tuple(f"{verdict.display}: {p.field}: {p.message}" for p in problems)
    if ws.race and ws.race > 1:
        from aim_core.router import candidates

        routed = len(candidates(project.rules, project.detect(), capability, ws.tool))
        if ws.race > routed:
            errors += (
                f"{verdict.display}: race: asks to race {ws.race} tools but the rules route "
                f"only {routed}; lower it or add fallbacks to the rules",
            )
    if not errors:
        return verdict
    return verdict.evolve(errors=verdict.errors + errors)


@cli.command()
@common_options
def schema() -> int:
    """Print the JSON Schema (2020-12) of a workstream file."""
    from aim_core.schema import workstream_schema

    emit_json(workstream_schema())
    return 0


@cli.command()
@click.argument("capability")
@click.option(
    "--tool",
    "workstream_tool",
    metavar="TOOL",
    help="A workstream's own `tool` (tried after the primary).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common_options
def route(capability: str, workstream_tool: str | None, as_json: bool) -> int:
    """Show the tools a capability would try, in order, with each tool's state."""
    from aim_core.router import candidates
    from aim_core.suggest import nearest

    project = open_project()
    known = project.known_capabilities()
    if capability not in known:
        hint = nearest(capability, known)
        fix = f"did you mean '{hint}'?" if hint else "known: " + ", ".join(sorted(known))
        raise AimError(f"unknown capability '{capability}'; {fix}")
    cands = candidates(project.rules, project.detect(), capability, workstream_tool)
    if as_json:
        emit_json(
            [
                {
                    "tool_id": c.tool_id,
                    "role": c.role,
                    "plugin": c.state.plugin if c.state else None,
                    "usable": c.usable,
                    "skip": c.skip.value if c.skip else None,
                    "reason": c.reason,
                }
                for c in cands
            ]
        )
        return 0
    click.echo(f"Capability: {capability}")
    if not cands:
        click.echo("  no tool: the rules don't route it and no plugin serves it")
    first = next((c for c in cands if c.usable), None)
    for n, c in enumerate(cands, 1):
        if c.usable:
            state = "would run" if c is first else "ready (fallback)"
        else:
            state = f"skip ({c.skip}): {c.reason}"
        click.echo(f"  {n}. {c.tool_id:<14} {c.role:<16} {state}")
    if first is None and cands:
        click.echo(
            "No candidate is ready: `aim run` would exit 3. "
            "See `aim status` for how to install or log in."
        )
    return 0


@cli.command()
@common_options
def doctor() -> int:
    """Check the environment the guide asks for; exit 1 when something blocks."""
    from aim_core.doctor import run_checks

    project = open_project()
    checks = run_checks(project)
    blocking = False
    for c in checks:
        line = f"{_mark(c.ok)} {c.name}: {c.detail}"
        if not c.ok and c.fix:
            line += f"\n    fix: {c.fix}"
        click.echo(line)
        blocking |= (not c.ok) and c.blocking
    click.echo("Ready." if not blocking else "Not ready: fix the lines marked above.")
    return 1 if blocking else 0


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Run up to N independent workstreams at once (their tools take turns).",
)
@click.option("--dry-run", is_flag=True, help="Show the plan and the candidate tools; run nothing.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON result object per workstream."
)
@click.option(
    "--max-cost",
    type=click.FloatRange(0, min_open=True),
    callback=lambda _ctx, _param, value: _finite(value, "--max-cost"),
    metavar="USD",
    help="Stop starting attempts once the tools of this command have reported spending "
    "USD dollars in all (default: config max_cost_usd; none).",
)
@click.option(
    "--race",
    type=click.IntRange(1, 8),
    metavar="K",
    help="Run the first K candidate tools at once, each in its own copy of the repository; "
    "the first verified edit is applied, the others stopped (default: the workstream's "
    "race, else one tool at a time).",
)
@common_options
def run(**options: Any) -> int:
    """Run workstreams: route each to a tool, fall back, retry, audit.

    PATHS are workstream files or directories of them. Several workstreams run
    as a graph by depends_on; -j N runs independent ones side by side (never
    two whose files overlap), while their tools take turns in the repository, so
    no run can mistake another tool's writes for its own. With a workstream's
    verify checks, an edit counts only when they pass: a failing one is undone and
    repaired, then the next tool is tried (docs/VERIFY.md). Exit codes: 0 success,
    1 the work failed, 2 bad input, 3 no tool available, 4 the audit log is behind
    its head, 130 interrupted.

    The `aim` command hands a run to aim's run server, a process of yours with aim
    already loaded that the first run starts after its work and that stops after 5
    idle minutes (AIM_RESIDENT_IDLE_S); the run is the same, only its start is
    quicker. AIM_RESIDENT=0 runs every command by itself; `aim doctor` shows the
    server (docs/PERFORMANCE.md, docs/SECURITY.md).
    """
    # `aim run` usually starts without click (aim_core.cli_run); both run this. An
    # option added above needs a parameter of run_command and an entry in
    # cli_run.RUN_OPTIONS (tests/test_cli_run.py checks that they agree).
    from aim_core.cli_run import run_command

    return run_command(open_project(), **options)


def _finite(value: float | None, option: str) -> float | None:
    import math

    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of dollars", param_hint=option)
    return value


@cli.command()
@common_options
def recover() -> int:
    """Restore what a killed run left: stop its tool, put the files in scope back."""
    from aim_core.recovery import recover_dead_runs

    project = open_project(recover=False)
    if not recover_dead_runs(project, on_recovered=lambda m: click.echo(escape_controls(m))):
        click.echo("Nothing to recover: no run of this repository was left unfinished.")
    return 0


@cli.group()
def audit() -> None:
    """Read, verify, prune and report on the audit log (AIM_audit/*/audit.jsonl)."""


def _audit_dir(project: Project) -> Path:
    from aim_core.paths import AUDIT_DIRNAME

    return project.registry / AUDIT_DIRNAME


def _filter(**kw: Any) -> Any:
    from aim_core.audit.query import Filter, parse_when

    since, until = kw.pop("since"), kw.pop("until")
    return Filter(
        since=parse_when(since) if since else None,
        until=parse_when(until, end=True) if until else None,
        **kw,
    )


@audit.command("query")
@click.option("--capability", help="Only this capability.")
@click.option("--tool", help="Only this tool id.")
@click.option(
    "--since", metavar="DATE", help="From this date (local day, as `date -I`) or datetime."
)
@click.option("--until", metavar="DATE", help="Up to this date (the whole day) or datetime.")
@click.option("--failed", is_flag=True, help="Only records whose result.success is false.")
@click.option("--workstream", help="Only this workstream id.")
@click.option("--run", "run_id", metavar="RUN_ID", help="Only this run.")
@click.option(
    "--verification",
    type=click.Choice(["passed", "failed", "unchecked"]),
    help="Only attempts whose verify checks passed, failed, or did not run.",
)
@click.option("--repairs", is_flag=True, help="Only repair attempts (after a failed check).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table: one record per line ending in success=true|false; json: JSON Lines (for jq).",
)
@click.option(
    "--usage",
    "show_usage",
    is_flag=True,
    help="Print the tokens and cost of the matching records, summed by tool, capability, "
    "workstream and run, instead of the records (table or json).",
)
@common_options
def audit_query(
    *,
    capability: str | None,
    tool: str | None,
    since: str | None,
    until: str | None,
    failed: bool,
    workstream: str | None,
    run_id: str | None,
    verification: str | None,
    repairs: bool,
    fmt: str,
    show_usage: bool,
) -> int:
    """Print audit records, oldest first; only the day files in range are read."""
    from aim_core.audit.query import render_usage, usage_ledger, write_query

    project = open_project()
    flt = _filter(
        capability=capability,
        tool=tool,
        since=since,
        until=until,
        failed=failed,
        workstream=workstream,
        run=run_id,
        verification=verification,
        repairs=repairs,
    )
    if show_usage:
        if fmt == "csv":
            from aim_core.errors import UsageError

            raise UsageError("--usage prints a table or json, not csv")
        data = usage_ledger(_audit_dir(project), flt)
        if fmt == "json":
            emit_json(data)
        else:
            click.echo(render_usage(data), nl=False)
        return 0
    out = sys.stdout.buffer
    try:
        write_query(_audit_dir(project), flt, fmt, out)
        out.flush()
    except BrokenPipeError:  # `aim audit query | head`
        pass
    return 0


@audit.command("verify")
@click.option(
    "--head", "head", metavar="SEQ:HASH", help="Also check against a head saved elsewhere."
)
@common_options
def audit_verify(head: str | None) -> int:
    """Walk the hash chain and the head; exit 0 when intact, 4 when not."""
    from aim_core.audit.jsonl import audit_key, state_dir
    from aim_core.audit.verify import verify

    project = open_project()
    if not project.registry.is_dir():  # nothing to look at is no proof of an intact log
        raise AimError(
            f"no aim registry here: {project.registry} does not exist; run this in a "
            "repository set up with 'aim init', or name the registry with --registry DIR"
        )
    given = None
    if head:
        seq, _, digest = head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise AimError(f"--head: expected SEQ:HASH (e.g. 1042:3fa9...), got {head!r}")
        given = (int(seq), digest)
    v = verify(
        _audit_dir(project),
        key=audit_key(project.environ),
        head=given,
        state_dir=state_dir(project.environ),
    )
    for f in v.findings:
        click.echo(("warning: " if not f.fatal else "error: ") + str(f))
    span = f"seq {v.first_seq}..{v.last_seq}" if v.records else "no records"
    if v.torn_set_aside:
        click.echo(f"note: {v.torn_set_aside} torn line(s) left by crashes were set aside earlier")
    if v.ok:
        click.echo(f"{_mark(True)} audit chain intact: {v.records} records, {span}")
        return 0
    bad = sum(f.fatal for f in v.findings)
    click.echo(f"{_mark(False)} audit verification failed: {bad} problem(s) in {v.records} records")
    if any(f.kind in ("truncated", "head", "checkpoint") for f in v.findings):
        click.echo(
            "If records were removed on purpose, accept it with "
            "'aim audit reset-head --reason \"...\"' (the reset is itself audited)."
        )
    from aim_core.errors import AuditIntegrityError

    raise AuditIntegrityError(
        f"the audit log in {_audit_dir(project)} failed verification ({bad} problem(s), "
        "listed above); find out who changed it before trusting its figures"
    )


@audit.command("reset-head")
@click.option(
    "--reason",
    required=True,
    metavar="TEXT",
    help="Why the loss is accepted (written into the audit record of the reset).",
)
@common_options
def audit_reset_head(reason: str) -> int:
    """Accept on purpose a log cut at its end (or start): record it, move the heads.

    An append to a log that ends before its saved head is refused (exit 4). This
    writes one audit record naming what was lost, who accepted it and why, then
    moves HEAD.json and this machine's copy of the head to that record.
    """
    from aim_core.audit.jsonl import JsonlAuditLog, audit_key, state_dir
    from aim_core.security import redact_text

    project = open_project(recover=False)
    log = JsonlAuditLog(
        _audit_dir(project), key=audit_key(project.environ), state_dir=state_dir(project.environ)
    )
    sealed = log.reset_head(
        actor=project.settings.actor,
        reason=redact_text(reason.strip() or "-", project.environ),
    )
    if sealed is None:
        click.echo("The audit log reaches its head: nothing to reset.")
        return 0
    click.echo(f"Reset recorded as seq {sealed['seq']}: {sealed['result']['message']}")
    return 0


@audit.command("prune")
@click.option(
    "--older-than-days",
    type=click.IntRange(min=0),
    default=None,
    help="Default: audit_log_retention_days.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed.")
@common_options
def audit_prune(older_than_days: int | None, dry_run: bool) -> int:
    """Remove day directories older than the retention, keeping the chain verifiable."""
    from aim_core.audit.jsonl import audit_key, state_dir
    from aim_core.audit.prune import prune

    project = open_project()
    days = (
        older_than_days
        if older_than_days is not None
        else project.settings.audit_log_retention_days
    )
    removed = prune(
        _audit_dir(project),
        days,
        dry_run=dry_run,
        key=audit_key(project.environ),
        state_dir=state_dir(project.environ),
    )
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {len(removed)} day(s) older than {days} days"
        + (f": {', '.join(removed)}" if removed else "")
    )
    return 0


@audit.command("report")
@click.option("--since", metavar="DATE", help="Only runs from this date on.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common_options
def audit_report(since: str | None, as_json: bool) -> int:
    """The guide's metrics (success, time, fallback, auth errors) and the go/no-go verdict."""
    from aim_core.audit.report import build_report, render_report

    project = open_project()
    data = build_report(_audit_dir(project), _filter(since=since, until=None))
    if as_json:
        emit_json(data)
    else:
        click.echo(render_report(data), nl=False)
    return 0


@audit.command("show")
@click.argument("run_id")
@common_options
def audit_show(run_id: str) -> int:
    """Print one run's records and its run log (commands, capped and masked output)."""
    from aim_core.audit.query import iter_matches, table_line
    from aim_core.paths import RUNS_DIRNAME

    project = open_project()
    found = [
        rec
        for _, rec in iter_matches(_audit_dir(project), _filter(run=run_id, since=None, until=None))
    ]
    logfile = project.registry / RUNS_DIRNAME / f"{run_id}.log"
    if not found and not logfile.exists():
        raise AimError(f"no run '{run_id}' in the audit; list runs with 'aim audit query'")
    click.echo(f"Run {run_id}: {len(found)} record(s)")
    for rec in found:
        click.echo("  " + table_line(rec))
    if logfile.exists():
        click.echo(f"\nRun log ({logfile}):")
        text = logfile.read_text(encoding="utf-8", errors="replace")
        click.echo(escape_controls(text, keep="\n\t"), nl=False)  # the tools' output: data
    return 0


@cli.group()
def plugin() -> None:
    """Write aim plugins (see docs/plugins/tutorial.md)."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "--capability",
    "capabilities",
    multiple=True,
    metavar="NAME",
    help="A capability the tool serves (repeatable; default code_generation).",
)
@click.option("--program", metavar="PROG", help="The executable it runs (default: NAME).")
@click.option(
    "--path",
    "where",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write (default: ./aim-plugin-NAME).",
)
@common_options
def plugin_new(
    name: str, capabilities: tuple[str, ...], program: str | None, where: Path | None
) -> int:
    """Write a working plugin package for the tool NAME: pyproject.toml with the `aim`
    entry point, a module with the hooks, a README and tests that use aim's plugin kit
    and pass as generated."""
    from aim_core.plugin_scaffold import new_plugin, plugin_spec

    spec = plugin_spec(name, program=program, capabilities=capabilities)
    target = (where or Path.cwd() / spec.distribution).resolve()
    written = new_plugin(spec, target)
    click.echo(f"Created {spec.distribution} in {target}")
    for path in written:
        click.echo(f"  wrote {path.relative_to(target).as_posix()}")
    click.echo(
        f"Next: cd {target}, then pip install -e '.[test]', pytest, "
        f"aim plugins (lists '{spec.name}'); the hooks are in {spec.module}/__init__.py"
    )
    return 0


# Commands kept in their own modules (they take the shared options from aim_core.cli_common)
from aim_core.cli_feedback import feedback  # noqa: E402
from aim_core.cli_serve import serve  # noqa: E402

cli.add_command(feedback)
cli.add_command(serve)

# --------------------------------------------------------------------------- entry


def run_cli(args: list[str]) -> int:
    """Run the CLI with ``args``; return the exit code (see ARCHITECTURE.md). Before it
    returns, every audit sink flushes what it queued (``audit_flush``)."""
    from aim_core.plugin_output import guard_stdout

    guard_stdout()  # what a plugin prints never reaches aim's stdout (its JSON)
    return run_framed(lambda: _click_main(args), debug=wants_debug(args), as_json=wants_json(args))


def _click_main(args: list[str]) -> int:
    """click's part of a command: its own errors (usage, abort) as click shows them;
    aim's errors are shown by :func:`~aim_core.cli_frame.run_framed`."""
    try:
        rv = cli.main(args=args, prog_name="aim", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as e:
        e.show()
        code = EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code
        if wants_json(args):
            from aim_core.errors import UsageError

            click.echo(error_json(UsageError(e.format_message()), exit_code=code))
        return code
    return rv if isinstance(rv, int) else 0
