"""Developer feedback: the guide's seven survey questions (Phase 4, Step 4.1), one
answer per line in ``AIM_feedback/feedback.jsonl`` beside ``AIM_audit/``.

The file is append-only JSON Lines, written under a lock with one write and an
fsync per answer, like the audit log (but not hash-chained: an answer is an
opinion about a run, not evidence of what ran). Each line names the run it is
about and carries the workstream, tool and capability read from that run's
audit records, so the report can count it without reading the audit twice.
Free text goes through the same redaction as audit records before it is written.

Shape of one line (keys may be added, never removed or renamed)::

    {"schema_version": 1, "timestamp": "2025-11-20T21:45:00.000000Z", "actor": "pipeline",
     "run_id": "20251120T214500Z-3f9a1c", "workstream_id": "ws-add-logging",
     "capability": "code_generation", "tool_id": "aider", "fallback_from": "jules",
     "success": true,
     "answers": {"ease": 4, "right_tool": true, "quality": 4, "errors": 3,
                 "fallback": true, "recommend": true, "improve": "..."}}

Satisfaction, the guide's ">3.5/5", is the mean over answers of each answer's
mean rating (ease, quality, error messages: 1-5).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from attrs import frozen

from aim_core.audit.canonical import utc_timestamp
from aim_core.errors import UsageError
from aim_core.paths import FEEDBACK_DIRNAME

FEEDBACK_FILE = "feedback.jsonl"
SCHEMA_VERSION = 1
RATINGS = ("ease", "quality", "errors")


@frozen(kw_only=True)
class Question:
    """One survey question: its key in ``answers``, its flag and the guide's text."""

    key: str
    flag: str
    text: str
    kind: str  # rating | yesno | text


QUESTIONS = (
    Question(
        key="ease",
        flag="--ease",
        text="How easy was it to add `capability` to your workstream? (1-5)",
        kind="rating",
    ),
    Question(
        key="right_tool",
        flag="--right-tool",
        text="Did AIM select the right tool for your task? (yes/no)",
        kind="yesno",
    ),
    Question(
        key="quality",
        flag="--quality",
        text="How would you rate the generated code quality? (1-5)",
        kind="rating",
    ),
    Question(
        key="errors", flag="--errors", text="Were error messages helpful? (1-5)", kind="rating"
    ),
    Question(
        key="fallback",
        flag="--fallback",
        text="Did fallback behavior work as expected? (yes/no)",
        kind="yesno",
    ),
    Question(
        key="recommend",
        flag="--recommend",
        text="Would you recommend AIM routing to others? (yes/no)",
        kind="yesno",
    ),
    Question(key="improve", flag="--improve", text="What could be improved?", kind="text"),
)


def feedback_path(registry: Path) -> Path:
    """``<registry>/AIM_feedback/feedback.jsonl``."""
    return Path(registry) / FEEDBACK_DIRNAME / FEEDBACK_FILE


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Every answer in the file, oldest first; lines that are not JSON objects are skipped."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        for line in f:
            entry = parse_line(line)
            if entry is not None:
                yield entry


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One line as an answer, or None when it is not one (torn, not JSON, no answers)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("answers"), dict):
        return None
    return entry


# --------------------------------------------------------------------------- the audit side


def run_facts(audit_dir: Path, run_id: str) -> dict[str, Any] | None:
    """What the audit says about one run, or None when it has no record of it:
    ``{run_id, workstream_id, capability, tool_id, fallback_from, success, started,
    records: [...]}`` -- ``tool_id`` is the tool that succeeded, else the last one tried;
    ``fallback_from`` the first tool of the route when another one did the work."""
    from aim_core.audit.query import Filter, iter_matches

    records = [rec for _, rec in iter_matches(audit_dir, Filter(run=run_id, since=_began(run_id)))]
    if not records:
        return None
    return facts_from_records(run_id, records)


def _began(run_id: str) -> datetime | None:
    """The UTC day a run id (``20251120T214500Z-3f9a1c``) says the run began, so only the
    day files from then on are read; None for another kind of id."""
    try:
        day = datetime.strptime(run_id[:8], "%Y%m%d").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return day if run_id[8:9] == "T" else None


def facts_from_records(run_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`run_facts` from a run's records, oldest first."""
    first_tool = final_tool = last_tool = None
    success = False
    for rec in records:
        content = (rec.get("result") or {}).get("content") or {}
        for s in content.get("skipped") or []:
            first_tool = first_tool or s.get("tool_id")
        tool = rec.get("tool_id")
        if tool:
            first_tool = first_tool or tool
            last_tool = tool
        if (rec.get("result") or {}).get("success"):
            success, final_tool = True, tool
    used = final_tool or last_tool
    return {
        "run_id": run_id,
        "workstream_id": records[0].get("workstream_id"),
        "capability": records[0].get("capability"),
        "tool_id": used,
        "fallback_from": first_tool if used and first_tool and first_tool != used else None,
        "success": success,
        "started": records[0].get("timestamp"),
        "records": records,
    }


def latest_run_id(audit_dir: Path) -> str | None:
    """The run of the newest record in the audit, or None when it is empty."""
    from aim_core.audit.jsonl import LOG_NAME, day_dirs

    for day in reversed(day_dirs(audit_dir)):
        last = None
        with open(day / LOG_NAME, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("run_id") and not rec.get("event"):
                    last = str(rec["run_id"])
        if last:
            return last
    return None


# --------------------------------------------------------------------------- writing


def check_answers(answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers checked and normalised; :class:`UsageError` names the flag of the first
    bad one (a rating outside 1-5, a yes/no that is neither)."""
    out: dict[str, Any] = {}
    for q in QUESTIONS:
        if q.key not in answers or answers[q.key] is None:
            continue
        value = answers[q.key]
        if q.kind == "rating":
            ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5
            if not ok:
                raise UsageError(f"{q.flag}: {value!r} is not a rating from 1 to 5", field=q.key)
        elif q.kind == "yesno":
            value = parse_yes_no(value, q.flag)
        else:
            value = str(value).strip()
        out[q.key] = value
    return out


def parse_yes_no(value: Any, flag: str) -> bool:
    """``yes``/``no`` (also ``y``/``n``, ``true``/``false``) as a bool; else :class:`UsageError`."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "y", "true"):
        return True
    if text in ("no", "n", "false"):
        return False
    raise UsageError(f"{flag}: {value!r} is not yes or no", field=flag.lstrip("-"))


def make_entry(
    facts: Mapping[str, Any],
    answers: Mapping[str, Any],
    *,
    actor: str,
    environ: Mapping[str, str],
    now: str | None = None,
) -> dict[str, Any]:
    """The line to append: the run's facts, the checked answers, every credential in the
    text replaced by ``[REDACTED]`` as in audit records."""
    from aim_core.security import redact_data

    entry = {
        "schema_version": SCHEMA_VERSION,
        "timestamp": now or utc_timestamp(),
        "actor": actor,
        "run_id": facts["run_id"],
        "workstream_id": facts.get("workstream_id"),
        "capability": facts.get("capability"),
        "tool_id": facts.get("tool_id"),
        "fallback_from": facts.get("fallback_from"),
        "success": facts.get("success"),
        "answers": check_answers(answers),
    }
    clean: dict[str, Any] = redact_data(entry, environ)
    return clean


def append_entry(registry: Path, entry: Mapping[str, Any]) -> Path:
    """Append one answer (one write, fsync) under the file's lock; returns the file."""
    from aim_core.audit.jsonl import append_line
    from aim_core.locks import FileLock

    path = feedback_path(registry)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    with FileLock(path.parent / ".lock"):
        append_line(path, line)
    return path


def satisfaction_of(answers: Mapping[str, Any]) -> float | None:
    """One answer's satisfaction: the mean of its 1-5 ratings, or None without any."""
    ratings = [answers[k] for k in RATINGS if isinstance(answers.get(k), int)]
    return sum(ratings) / len(ratings) if ratings else None
