"""``aim audit query``: stream records from the day files, filter, print.

Only the day directories in the ``--since``/``--until`` range are opened. A
line is parsed only when a cheap byte test says it may match, and ``--format
json`` writes matching lines as they are on disk, so memory stays flat and a
million records stream in seconds.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from attrs import frozen

from aim_core.audit.jsonl import LOG_NAME, day_dirs
from aim_core.display import escape_controls
from aim_core.errors import UsageError

CSV_FIELDS = (
    "timestamp",
    "actor",
    "run_id",
    "workstream_id",
    "tool_id",
    "capability",
    "attempt",
    "success",
    "failure",
    "exit_code",
    "duration_sec",
    "files_created",
    "files_modified",
    "message",
    "verified",
    "repair",
)
VERIFICATIONS = ("passed", "failed", "unchecked")


def verification_of(rec: dict[str, Any]) -> str:
    """``passed`` or ``failed`` when the record's ``verify`` checks ran, else
    ``unchecked`` (no checks, or the edit never reached them)."""
    content = (rec.get("result") or {}).get("content") or {}
    verification = content.get("verification")
    if not isinstance(verification, dict):
        return "unchecked"
    return "passed" if verification.get("passed") is True else "failed"


def parse_when(text: str, *, end: bool = False) -> datetime:
    """A date (that calendar day in local time, as ``date -I`` prints it) or a datetime
    (local unless it says ``Z`` or an offset), as an aware UTC datetime. With ``end``,
    a bare date means the end of that day."""
    text = text.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            local = datetime.combine(d + timedelta(days=1) if end else d, time.min)
            moment = local.astimezone()  # the machine's local zone
            return moment.astimezone(timezone.utc) - (
                timedelta(microseconds=1) if end else timedelta()
            )
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"'{text}' is not a date or datetime; write 2025-11-20 or 2025-11-20T21:45:00Z"
        ) from None
    if dt.tzinfo is None:
        dt = dt.astimezone()
    return dt.astimezone(timezone.utc)


@frozen(kw_only=True)
class Filter:
    """What ``aim audit query`` keeps."""

    capability: str | None = None
    tool: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    failed: bool = False
    workstream: str | None = None
    run: str | None = None
    verification: str | None = None  # one of VERIFICATIONS
    repairs: bool = False  # only repair attempts

    def needles(self) -> list[bytes]:
        """Byte strings every matching line must contain (a cheap first test)."""
        out = []
        for key, value in (
            ("capability", self.capability),
            ("tool_id", self.tool),
            ("workstream_id", self.workstream),
            ("run_id", self.run),
        ):
            if value is not None:
                out.append(f'"{key}":{json.dumps(value, ensure_ascii=False)}'.encode())
        if self.failed:
            out.append(b'"success":false')
        if self.verification in ("passed", "failed"):
            out.append(b'"verification":')
        if self.repairs:
            out.append(b'"repair":')
        return out

    def keeps(self, rec: dict[str, Any]) -> bool:
        """The exact test, on a parsed record."""
        if self.capability is not None and rec.get("capability") != self.capability:
            return False
        if self.tool is not None and rec.get("tool_id") != self.tool:
            return False
        if self.workstream is not None and rec.get("workstream_id") != self.workstream:
            return False
        if self.run is not None and rec.get("run_id") != self.run:
            return False
        if self.failed and (rec.get("result") or {}).get("success") is not False:
            return False
        if self.verification is not None and verification_of(rec) != self.verification:
            return False
        if self.repairs and not _repair(rec):
            return False
        if self.since is not None or self.until is not None:
            ts = rec.get("timestamp", "")
            if self.since is not None and ts < _stamp(self.since):
                return False
            if self.until is not None and ts > _stamp(self.until):
                return False
        return True

    def days(self, audit_dir: Path) -> list[Path]:
        """Only the day directories that can hold matching records."""
        days = day_dirs(audit_dir)
        lo = self.since.date().isoformat() if self.since else None
        hi = self.until.date().isoformat() if self.until else None
        return [d for d in days if (lo is None or d.name >= lo) and (hi is None or d.name <= hi)]


def _repair(rec: dict[str, Any]) -> int:
    content = (rec.get("result") or {}).get("content") or {}
    value = content.get("repair")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iter_matches(audit_dir: Path, flt: Filter) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """``(raw line, record)`` for every record that matches, oldest first."""
    needles = flt.needles()
    for day in flt.days(audit_dir):
        with open(day / LOG_NAME, "rb") as f:
            for line in f:
                if needles and not all(n in line for n in needles):
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn line: `aim audit verify` reports it
                if isinstance(rec, dict) and flt.keeps(rec):
                    yield line, rec


def table_line(rec: dict[str, Any]) -> str:
    """One record per line, ending in ``success=true`` or ``success=false``."""
    result = rec.get("result") or {}
    content = result.get("content") or {}
    duration = content.get("duration_sec")
    parts = [
        rec.get("timestamp", ""),
        rec.get("actor") or "-",
        rec.get("tool_id") or "-",
        rec.get("capability") or "-",
        rec.get("workstream_id") or "-",
        f"attempt={rec.get('attempt')}",
        f"{duration:.2f}s" if isinstance(duration, (int, float)) else "-",
        (result.get("message") or "").replace("\n", " "),
    ]
    if rec.get("failure"):
        parts.append(f"failure={rec['failure']}")
    parts.append("success=" + ("true" if result.get("success") else "false"))
    return escape_controls("  ".join(str(p) for p in parts))  # a record's text is data


def csv_row(rec: dict[str, Any]) -> list[Any]:
    """The record as a row under :data:`CSV_FIELDS`."""
    result = rec.get("result") or {}
    content = result.get("content") or {}
    return [
        rec.get("timestamp"),
        rec.get("actor"),
        rec.get("run_id"),
        rec.get("workstream_id"),
        rec.get("tool_id") or "",
        rec.get("capability") or "",
        rec.get("attempt"),
        "true" if result.get("success") else "false",
        rec.get("failure") or "",
        "" if content.get("exit_code") is None else content.get("exit_code"),
        content.get("duration_sec"),
        ";".join(content.get("files_created") or []),
        ";".join(content.get("files_modified") or []),
        result.get("message") or "",
        {"passed": "true", "failed": "false"}.get(verification_of(rec), ""),
        _repair(rec),
    ]


def write_query(audit_dir: Path, flt: Filter, fmt: str, out: IO[bytes]) -> int:
    """Print every match in ``fmt`` (table, json or csv) to ``out``; return the count."""
    n = 0
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        out.write(text.getvalue().encode())
    for line, rec in iter_matches(audit_dir, flt):
        n += 1
        if fmt == "json":
            out.write(line if line.endswith(b"\n") else line + b"\n")
        elif fmt == "csv":
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerow(csv_row(rec))
            out.write(text.getvalue().encode())
        else:
            out.write(table_line(rec).encode() + b"\n")
    return n


# --------------------------------------------------------------------------- usage

USAGE_GROUPS = ("tool", "capability", "workstream", "run")
_GROUP_KEYS = {
    "tool": "tool_id",
    "capability": "capability",
    "workstream": "workstream_id",
    "run": "run_id",
}


def record_usage(rec: dict[str, Any]) -> dict[str, Any] | None:
    """A record's ``result.content.usage`` when it has one (what the tool reported)."""
    usage = ((rec.get("result") or {}).get("content") or {}).get("usage")
    return usage if isinstance(usage, dict) else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class UsageSums:
    """Tokens and cost summed over the records that carry usage.

    ``add(rec)`` counts one record; :meth:`to_dict` gives ``{"records",
    "input_tokens", "output_tokens", "cost_usd"}`` -- token counts, US dollars
    (``cost_usd`` None while no record reported a cost). Records without usage
    are not counted.
    """

    def __init__(self) -> None:
        self.records = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd: float | None = None

    def add(self, usage: dict[str, Any]) -> None:
        self.records += 1
        if _number(usage.get("input_tokens")):
            self.input_tokens += int(usage["input_tokens"])
        if _number(usage.get("output_tokens")):
            self.output_tokens += int(usage["output_tokens"])
        if _number(usage.get("cost_usd")):
            self.cost_usd = (self.cost_usd or 0.0) + float(usage["cost_usd"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
        }


class UsageLedger:
    """Usage summed in total and by tool, capability, workstream and run."""

    def __init__(self) -> None:
        self.total = UsageSums()
        self.groups: dict[str, dict[str, UsageSums]] = {g: {} for g in USAGE_GROUPS}

    def add(self, rec: dict[str, Any]) -> None:
        """Count ``rec`` if it carries usage."""
        usage = record_usage(rec)
        if usage is None:
            return
        self.total.add(usage)
        for group in USAGE_GROUPS:
            key = rec.get(_GROUP_KEYS[group]) or "-"
            self.groups[group].setdefault(str(key), UsageSums()).add(usage)

    def to_dict(self) -> dict[str, Any]:
        """``{"total": SUMS, "by_tool": {TOOL: SUMS}, "by_capability": ...,
        "by_workstream": ..., "by_run": ...}`` (see :class:`UsageSums`)."""
        out: dict[str, Any] = {"total": self.total.to_dict()}
        for group in USAGE_GROUPS:
            out[f"by_{group}"] = {k: v.to_dict() for k, v in sorted(self.groups[group].items())}
        return out


def usage_ledger(audit_dir: Path, flt: Filter) -> dict[str, Any]:
    """The usage of every matching record, summed (:meth:`UsageLedger.to_dict`)."""
    ledger = UsageLedger()
    for _, rec in iter_matches(audit_dir, flt):
        ledger.add(rec)
    return ledger.to_dict()


def render_usage(data: dict[str, Any]) -> str:
    """The ledger as text: the total, then one line per tool, capability, workstream, run."""

    def line(name: str, sums: dict[str, Any]) -> str:
        cost = "-" if sums["cost_usd"] is None else f"${sums['cost_usd']:.4f}"
        return (
            f"  {name:<28} records {sums['records']:>5}  in {sums['input_tokens']:>9}  "
            f"out {sums['output_tokens']:>9}  cost {cost}"
        )

    lines = ["Usage (records that carry result.content.usage):", line("total", data["total"])]
    for group in USAGE_GROUPS:
        entries = data[f"by_{group}"]
        if entries:
            lines.append(f"By {group}:")
            lines += [line(name, sums) for name, sums in entries.items()]
    return "\n".join(lines) + "\n"
