"""``aim feedback add`` and ``aim feedback log``: the guide's developer survey and its
staging feedback log.

It takes the global options from :mod:`aim_core.cli_common`, so it never imports
the CLI (no import cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aim_core.cli_common import common_options, open_project
from aim_core.errors import AimError, UsageError


def _project() -> Any:
    return open_project(recover=False)


class YesNo(click.ParamType):  # type: ignore[type-arg]
    """``yes`` / ``no`` (also ``y``, ``n``, ``true``, ``false``) as a bool."""

    name = "yes|no"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bool:
        from aim_core.feedback import parse_yes_no

        try:
            return parse_yes_no(value, f"--{param.name.replace('_', '-')}" if param else "answer")
        except UsageError:
            self.fail(f"{value!r} is not yes or no", param, ctx)


YES_NO = YesNo()
RATING = click.IntRange(1, 5)


@click.group()
def feedback() -> None:
    """The guide's developer survey (Phase 4) and staging feedback log (Step 2.4).

    Answers live in AIM_feedback/feedback.jsonl beside AIM_audit/ (append-only,
    redacted like audit records); `aim audit report` counts them in its verdict.
    """


@feedback.command("add")
@common_options
@click.argument("run_id", required=False)
@click.option("--ease", type=RATING, help="How easy was it to add `capability`? (1-5)")
@click.option("--right-tool", type=YES_NO, help="Did AIM select the right tool? (yes|no)")
@click.option("--quality", type=RATING, help="Generated code quality (1-5).")
@click.option("--errors", type=RATING, help="Were error messages helpful? (1-5)")
@click.option("--fallback", type=YES_NO, help="Did fallback work as expected? (yes|no)")
@click.option("--recommend", type=YES_NO, help="Would you recommend AIM routing? (yes|no)")
@click.option("--improve", metavar="TEXT", help="What could be improved?")
def feedback_add(run_id: str | None, improve: str | None, **given: Any) -> int:
    """Answer the survey about a run (default: the latest run in the audit).

    Flags answer the questions for scripts; any question left out is asked on
    the terminal. A rating outside 1-5, a yes/no that is neither, or a run the
    audit does not know exits 2 naming the field.
    """
    from aim_core import feedback as fb
    from aim_core.paths import AUDIT_DIRNAME

    project = _project()
    audit_dir = project.registry / AUDIT_DIRNAME
    if run_id is None:
        run_id = fb.latest_run_id(audit_dir)
        if run_id is None:
            raise UsageError(
                "RUN_ID: the audit has no run yet; run a workstream first (aim run WS.json)"
            )
    facts = fb.run_facts(audit_dir, run_id)
    if facts is None:
        raise UsageError(
            f"RUN_ID: no run '{run_id}' in the audit ({audit_dir}); "
            "list runs with 'aim audit query'"
        )
    answers: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if improve is not None:
        answers["improve"] = improve
    missing = [q for q in fb.QUESTIONS if q.key not in answers and q.kind != "text"]
    if missing:
        tool = facts["tool_id"] or "no tool"
        if facts["fallback_from"]:
            tool += f" (fallback from {facts['fallback_from']})"
        click.echo(
            f"Feedback on run {run_id}: workstream {facts['workstream_id'] or '-'}, "
            f"{facts['capability'] or '-'} via {tool}, "
            f"{'succeeded' if facts['success'] else 'failed'}"
        )
        for n, q in enumerate(fb.QUESTIONS, 1):
            if q.key in answers:
                continue
            answers[q.key] = _ask(n, q)
    entry = fb.make_entry(
        facts,
        answers,
        actor=project.settings.actor,
        environ=project.environ,
    )
    path = fb.append_entry(project.registry, entry)
    score = fb.satisfaction_of(entry["answers"])
    click.echo(
        f"Recorded feedback on run {run_id} in {_rel(path, project.root)}"
        + (f" (satisfaction {score:.2f}/5)" if score is not None else "")
    )
    return 0


def _ask(n: int, q: Any) -> Any:
    """Ask one question on the terminal; a closed input names the flag to use instead."""
    kind = {"rating": RATING, "yesno": YES_NO}.get(q.kind, str)
    try:
        if q.kind == "text":
            return click.prompt(f"{n}. {q.text}", default="", show_default=False, type=str)
        return click.prompt(f"{n}. {q.text}", type=kind)
    except click.exceptions.Abort:
        raise UsageError(
            f"{q.flag}: no answer to '{q.text}' (the input ended); pass it as {q.flag}",
            field=q.key,
        ) from None


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@feedback.command("log")
@common_options
@click.option(
    "--run", "run_ids", multiple=True, metavar="RUN_ID", help="Only this run (repeatable)."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The log file (default: aim/STAGING_FEEDBACK.md under the repository root).",
)
def feedback_log(run_ids: tuple[str, ...], output: Path | None) -> int:
    """Append the survey answers to aim/STAGING_FEEDBACK.md in the guide's template.

    Each answer becomes one entry (workstream, date, capability, tool used and
    what it fell back from, what worked, issues, recommendations, code quality),
    filled from the run's audit records; answers already in the file are skipped.
    """
    from aim_core import feedback as fb
    from aim_core.feedback_log import STAGING_RELPATH, append_log, render_entry
    from aim_core.paths import AUDIT_DIRNAME

    project = _project()
    audit_dir = project.registry / AUDIT_DIRNAME
    entries = list(fb.read_entries(fb.feedback_path(project.registry)))
    if run_ids:
        known = {e.get("run_id") for e in entries}
        for r in run_ids:
            if r not in known:
                raise AimError(
                    f"--run: no feedback on run '{r}'; add it with 'aim feedback add {r}'"
                )
        entries = [e for e in entries if e.get("run_id") in run_ids]
    if not entries:
        click.echo("No feedback yet: answer the survey with 'aim feedback add [RUN_ID]'.")
        return 0
    facts: dict[str, Any] = {}
    rendered = []
    for e in entries:
        rid = str(e.get("run_id") or "")
        if rid not in facts:
            facts[rid] = fb.run_facts(audit_dir, rid) if rid else None
        rendered.append((e, render_entry(e, facts[rid])))
    path = output or project.root / STAGING_RELPATH
    written = append_log(path, rendered)
    where = _rel(path.resolve(), project.root)
    if written:
        click.echo(f"Appended {len(written)} entr{'y' if len(written) == 1 else 'ies'} to {where}")
    else:
        click.echo(f"{where} already has every answer ({len(entries)})")
    return 0
