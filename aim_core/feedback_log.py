"""``aim feedback log``: the guide's ``aim/STAGING_FEEDBACK.md`` (Phase 2, Step 2.4).

Each survey answer becomes one entry in the guide's template -- workstream, date,
capability, "aider (fallback from jules)", what worked, issues encountered,
recommendations, code quality N/5 -- filled from the run's audit records and the
answers. The file is appended to, never rewritten: an entry carries a marker
comment with the answer's run and time, and an answer already in the file is not
written again, so the command can run after every survey.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

STAGING_RELPATH = "aim/STAGING_FEEDBACK.md"
HEADER = "# AIM Staging Feedback Log\n"
QUALITY_WORDS = {5: "Excellent", 4: "Good", 3: "Fair", 2: "Poor", 1: "Bad"}
# what happened to a tool, for "Fallback worked when jules required login"
FAILURE_PHRASES = {
    "auth_required": "required login",
    "not_installed": "was not installed",
    "unavailable": "was unavailable",
    "timeout": "timed out",
    "rate_limited": "was rate limited",
    "tool_error": "failed",
    "invalid_payload": "refused the request",
    "out_of_scope": "changed files out of scope",
    "verify_failed": "did not pass the checks",
}


def marker(entry: Mapping[str, Any]) -> str:
    """The comment that identifies an answer in the log."""
    return f"<!-- aim-feedback run={entry.get('run_id')} at={entry.get('timestamp')} -->"


def _tool_used(facts: Mapping[str, Any]) -> str:
    tool = facts.get("tool_id") or "no tool"
    if facts.get("fallback_from"):
        return f"{tool} (fallback from {facts['fallback_from']})"
    return tool


def _first_trouble(records: list[dict[str, Any]], tool: str | None) -> str | None:
    """Why ``tool`` did not do the work: a failure class turned into a phrase."""
    for rec in records:
        content = (rec.get("result") or {}).get("content") or {}
        for s in content.get("skipped") or []:
            if s.get("tool_id") == tool:
                return FAILURE_PHRASES.get(s.get("failure"), "was skipped")
        if rec.get("tool_id") == tool and rec.get("failure"):
            return FAILURE_PHRASES.get(rec["failure"], "failed")
    return None


def _issues(records: list[dict[str, Any]]) -> list[str]:
    out = []
    for rec in records:
        result = rec.get("result") or {}
        content = result.get("content") or {}
        for s in content.get("skipped") or []:
            reason = s.get("reason") or s.get("failure") or "skipped"
            out.append(f"{s.get('tool_id')} skipped ({s.get('failure')}): {reason}")
        if rec.get("failure"):
            message = (result.get("message") or "").splitlines()[:1]
            text = f": {message[0]}" if message else ""
            out.append(
                f"{rec.get('tool_id') or 'no tool'}, attempt {rec.get('attempt')}: "
                f"{rec['failure']}{text}"
            )
        for check in (content.get("verification") or {}).get("checks") or []:
            if not check.get("passed"):
                out.append(
                    f"check {check.get('kind')} {check.get('target')} failed: "
                    f"{check.get('summary') or ''}".rstrip(": ")
                )
    return out


def _worked(facts: Mapping[str, Any], answers: Mapping[str, Any]) -> list[str]:
    records = list(facts.get("records") or [])
    worked: list[str] = []
    if facts.get("success"):
        worked.append(
            "Capability routing successful" if facts.get("capability") else "Tool run successful"
        )
        if facts.get("fallback_from"):
            why = _first_trouble(records, facts["fallback_from"]) or "did not do the work"
            worked.append(f"Fallback worked when {facts['fallback_from']} {why}")
    if records:
        worked.append(f"Audit log captured all details ({len(records)} record(s))")
    for rec in records:
        verification = ((rec.get("result") or {}).get("content") or {}).get("verification")
        if verification and verification.get("passed"):
            kinds = sorted({c.get("kind") for c in verification.get("checks") or []})
            worked.append("Checks passed: " + ", ".join(k for k in kinds if k))
    if isinstance(answers.get("quality"), int):
        worked.append(f"Generated code quality: {QUALITY_WORDS[answers['quality']]}")
    if answers.get("fallback") is True and facts.get("fallback_from"):
        worked.append("Fallback behaved as expected")
    return worked


def _recommendations(facts: Mapping[str, Any], answers: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if answers.get("improve"):
        out += [line.strip() for line in answers["improve"].splitlines() if line]
    if answers.get("right_tool") is False:
        out.append(
            f"Review the routing of {facts.get('capability')}: "
            f"{facts.get('tool_id')} was not the right tool"
        )
    if answers.get("fallback") is False:
        out.append("Fallback did not work as expected: check the fallback order")
    if isinstance(answers.get("errors"), int) and answers["errors"] <= 2:
        out.append(f"Improve error messages (rated {answers['errors']}/5)")
    return out


def _notes(entry: Mapping[str, Any], facts: Mapping[str, Any]) -> list[str]:
    answers = entry.get("answers") or {}
    notes = []
    if isinstance(answers.get("ease"), int):
        notes.append(f"Ease of adding `capability`: {answers['ease']}/5")
    if isinstance(answers.get("errors"), int):
        notes.append(f"Error messages helpful: {answers['errors']}/5")
    if isinstance(answers.get("recommend"), bool):
        notes.append(f"Would recommend AIM routing: {'yes' if answers['recommend'] else 'no'}")
    by = f" ({entry['actor']})" if entry.get("actor") else ""
    notes.append(f"Run {facts.get('run_id') or entry.get('run_id')}, answered{by}")
    return notes


def _bullets(items: Iterable[str], empty: str) -> list[str]:
    items = list(items)
    return [f"- {i}" for i in items] if items else [f"- {empty}"]


def render_entry(entry: Mapping[str, Any], facts: Mapping[str, Any] | None) -> str:
    """One entry of the log in the guide's template (``facts``: :func:`run_facts`, or
    None when the run's records were pruned -- then the answer's own copy is used)."""
    facts = facts or {**entry, "records": []}
    answers = entry.get("answers") or {}
    records = list(facts.get("records") or [])
    issues = _issues(records)
    if not facts.get("success") and records:
        issues.append("The run did not succeed")
    quality = answers.get("quality")
    lines = [
        marker(entry),
        f"## Workstream: {facts.get('workstream_id') or '-'}",
        f"**Date:** {(facts.get('started') or entry.get('timestamp') or '')[:10]}  ",
        f"**Capability:** {facts.get('capability') or '-'}  ",
        f"**Tool Used:** {_tool_used(facts)}",
        "",
        "### What Worked",
        *_bullets(_worked(facts, answers), "(nothing recorded)"),
        "",
        "### Issues Encountered",
        *_bullets(issues, "None recorded"),
        "",
        "### Recommendations",
        *_bullets(_recommendations(facts, answers), "None"),
        "",
        f"### Code Quality: {quality if isinstance(quality, int) else '-'}/5",
        *_bullets(_notes(entry, facts), ""),
        "",
        "---",
        "",
        "",
    ]
    return "\n".join(lines)


def append_log(path: Path, rendered: Sequence[tuple[Mapping[str, Any], str]]) -> list[str]:
    """Append the entries not yet in ``path`` (found by their marker); create the file
    with the guide's title when missing. Returns the run ids written."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    new = [(e, body) for e, body in rendered if marker(e) not in text]
    if not new:
        return []
    chunks = []
    if not text:
        chunks.append(HEADER + "\n")
    elif not text.endswith("\n"):
        chunks.append("\n")
    if text and not text.endswith("\n\n"):
        chunks.append("\n")
    chunks += [body for _, body in new]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(chunks))
    return [str(e.get("run_id")) for e, _ in new]
