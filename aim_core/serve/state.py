"""The server's in-memory aggregate of the audit, kept current by reading only what was
appended since the last request.

One :class:`AuditState` per server. :meth:`AuditState.refresh` reads the new
complete lines of the day files (:mod:`.follow`), parses each once and feeds it
to three consumers: the report's own :class:`~aim_core.audit.report.ReportBuilder`
(so the verdict and rates are those of ``aim audit report``), the incremental
chain check (:mod:`.chain`) and the counters below (per tool and capability,
duration histograms, per-day series, an index of runs with the byte offsets of
their records, so a run's page reads only its own lines). When history changed
other than by appending (a prune, an edit), everything is rebuilt from the files.

Memory grows with the number of runs (a few hundred bytes each), never with the
size of records or outputs; a request costs the lines appended since the last one.
"""

from __future__ import annotations

import bisect
import gc
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aim_core.audit.jsonl import LOG_NAME
from aim_core.audit.report import ReportBuilder
from aim_core.feedback import feedback_path, parse_line
from aim_core.paths import AUDIT_DIRNAME
from aim_core.serve.chain import ChainCheck
from aim_core.serve.follow import DayTails, FileTail, Rewritten, json_line

# upper bounds of the duration histograms (seconds): the guide's targets are 45 s and 60 s
BUCKETS = (1.0, 5.0, 10.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0, float("inf"))


class Histogram:
    """Counts per bucket (not cumulative), their sum; an observation can move."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.sum = 0.0

    def add(self, value: float, sign: int = 1) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += sign
        self.sum += sign * value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, count)]`` as Prometheus writes them."""
        out, total = [], 0
        for bound, n in zip(BUCKETS, self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out


class RunIndex:
    """Where one run's records are and what it touched."""

    __slots__ = ("day", "ended", "locs", "run_id", "started", "tools")

    def __init__(self, run_id: str, day: str, started: str):
        self.run_id = run_id
        self.day = day
        self.started = started
        self.ended = started
        self.locs: list[tuple[str, int]] = []
        self.tools: list[str] = []


class AuditState:
    """The aggregate of one registry's audit and feedback; thread-safe."""

    def __init__(
        self,
        registry: Path,
        *,
        key: bytes | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        self.registry = Path(registry)
        self.audit_dir = self.registry / AUDIT_DIRNAME
        self.key = key
        self.environ = environ
        self.lock = threading.RLock()
        self.resets = 0  # times history changed other than by appending (rebuilt)
        self.lines_read = 0  # audit lines parsed since the server started
        self._reset()

    def _reset(self) -> None:
        self.builder = ReportBuilder()
        self.chain = ChainCheck(self.audit_dir, self.key, self.environ)
        self.days = DayTails(self.audit_dir)
        self.index: dict[str, RunIndex] = {}
        self.order: list[str] = []
        self.attempts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.failures: Counter[tuple[str, str, str]] = Counter()  # (tool, cap, failure)
        self.attempt_hist: dict[tuple[str, str], Histogram] = defaultdict(Histogram)
        self.run_hist: dict[str, Histogram] = defaultdict(Histogram)
        self.series: dict[str, list[float]] = {}  # day -> [runs, successes, duration]
        self.last_timestamp: str | None = None
        self.full_findings: list[str] | None = None  # from the full walk, when it failed
        self.full_checked_at: float | None = None
        self.rewrites: list[str] = []
        self._reset_feedback()
        self.generation = getattr(self, "generation", 0) + 1
        self._report: tuple[int, dict[str, Any]] | None = None

    def _reset_feedback(self) -> None:
        self.feedback_tail = FileTail(feedback_path(self.registry))
        self.builder.feedback.clear()
        self.feedback_by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)

    # ----------------------------------------------------------------- reading

    def refresh(self) -> int:
        """Read what was appended since the last call; returns the number of new lines."""
        with self.lock:
            try:
                from_scratch = not self.days.tails
                new = self.days.read_new()
            except Rewritten as e:
                gc.unfreeze()  # what the last bulk read froze may be garbage now
                self._reset()
                self.resets += 1
                self.rewrites.append(str(e))
                from_scratch = True
                new = self.days.read_new()
            self.lines_read += len(new)
            self._feed(new, bulk=from_scratch and not self.index)
            if from_scratch and new:
                self.full_checked_at = time.time()  # every record was just checked
            try:
                fresh = self.feedback_tail.read_new()
            except Rewritten:
                self._reset_feedback()
                fresh = self.feedback_tail.read_new()
            for _, line in fresh:
                entry = parse_line(line)
                if entry is not None:
                    self.builder.add_feedback(entry)
                    self.feedback_by_run[str(entry.get("run_id"))].append(entry)
            if new or fresh:
                self.generation += 1
            return len(new) + len(fresh)

    def _feed(self, new: list[tuple[str, int, bytes]], *, bulk: bool) -> None:
        """Count ``new`` lines. A ``bulk`` read (the first, with no run counted yet)
        counts each run's outcome once at the end rather than at each of its records."""
        # a bulk read allocates hundreds of thousands of small objects that hold no
        # cycles: the cyclic collector would walk them again and again for nothing
        paused = len(new) > 10_000 and gc.isenabled()
        if paused:
            gc.disable()
        try:
            add = self._add_line
            for day, offset, line in new:
                add(day, offset, line, bulk)
            if bulk:
                self._count_runs()
        finally:
            if paused:
                # what was just built lives as long as the server: the collector would
                # walk it all again on its next full passes, the first ones right after
                # (every object made meanwhile is in its youngest generation)
                gc.freeze()
                gc.enable()

    def _add_line(self, day: str, offset: int, line: bytes, bulk: bool = False) -> None:
        rec = json_line(line)
        self.chain.feed(day, rec)
        if not isinstance(rec, dict) or rec.get("event"):  # the log's own events are no run
            return
        rid = rec.get("run_id") or f"seq-{rec.get('seq')}"  # as the report counts runs
        runs = self.builder.runs
        prev = None if bulk else runs.get(rid)
        before = (prev["success"], prev["duration"]) if prev is not None else None
        self.builder.add(rec)
        ts = rec.get("timestamp") or ""
        entry = self.index.get(rid)
        if entry is None:
            entry = self.index[rid] = RunIndex(rid, day, ts)
            self.order.append(rid)
            self.series.setdefault(day, [0, 0, 0.0])[0] += 1
        elif ts > entry.ended:
            entry.ended = ts
        entry.locs.append((day, offset))
        tool = rec.get("tool_id")
        if tool and tool not in entry.tools:
            entry.tools.append(tool)
        if self.last_timestamp is None or ts > self.last_timestamp:
            self.last_timestamp = ts
        if not bulk:
            self._count_run(entry, runs[rid], before)
        result = rec.get("result") or {}
        pair = (tool or "-", rec.get("capability") or "-")
        if tool:
            counts = self.attempts[pair]
            counts[0] += 1
            counts[1] += bool(result.get("success"))
            content = result.get("content") or {}
            self.attempt_hist[pair].add(float(content.get("duration_sec") or 0.0))
        if rec.get("failure"):
            self.failures[(pair[0], pair[1], rec["failure"])] += 1

    def _count_run(
        self, entry: RunIndex, run: dict[str, Any], before: tuple[bool, float] | None
    ) -> None:
        """Move one run's outcome in its day's series and its duration histogram from
        what it was (``before``: ``(success, duration)``, None for a new run)."""
        point = self.series[entry.day]
        if run["success"] and not (before and before[0]):
            point[1] += 1
        old_duration = before[1] if before else None
        point[2] += run["duration"] - (old_duration or 0.0)
        hist = self.run_hist[run["capability"] or "-"]
        if old_duration is not None:
            hist.add(old_duration, -1)
        hist.add(run["duration"])

    def _count_runs(self) -> None:
        """Every run's outcome, counted once (after a bulk read)."""
        runs = self.builder.runs
        for rid, entry in self.index.items():
            self._count_run(entry, runs[rid], None)

    # ----------------------------------------------------------------- answers

    def report(self) -> dict[str, Any]:
        """``aim audit report --json`` of everything read (rebuilt only after new lines)."""
        with self.lock:
            if self._report is None or self._report[0] != self.generation:
                self._report = (self.generation, self.builder.build())
            return self._report[1]

    def run_counts(self) -> dict[str, int]:
        """Runs, successful runs, runs that succeeded after a fallback, runs that met an
        auth error: the counts behind the report's rates."""
        with self.lock:
            runs = self.builder.runs.values()
            ok = [r for r in runs if r["success"]]
            return {
                "runs": len(self.builder.runs),
                "successes": len(ok),
                "fallbacks": sum(
                    1 for r in ok if r["final_tool"] and r["final_tool"] != r["first_tool"]
                ),
                "auth_errors": sum(1 for r in runs if r["auth"]),
            }

    def run_summary(self, rid: str) -> dict[str, Any] | None:
        """One run as the lists show it, or None."""
        with self.lock:
            entry, run = self.index.get(rid), self.builder.runs.get(rid)
            if entry is None or run is None:
                return None
            fb = self.feedback_by_run.get(rid) or []
            return {
                "run_id": rid,
                "workstream_id": run["workstream_id"],
                "capability": run["capability"],
                "success": run["success"],
                "duration_sec": round(run["duration"], 3),
                "first_tool": run["first_tool"],
                "final_tool": run["final_tool"],
                "fell_back": bool(
                    run["success"] and run["final_tool"] and run["final_tool"] != run["first_tool"]
                ),
                "tools": list(entry.tools),
                "records": len(entry.locs),
                "started": entry.started,
                "ended": entry.ended,
                "feedback": len(fb),
            }

    def recent_runs(self, page: int = 1, per_page: int = 50) -> tuple[list[dict[str, Any]], int]:
        """One page of runs, newest first, and the number of pages."""
        with self.lock:
            total = len(self.order)
            pages = max(1, -(-total // per_page))
            page = min(max(1, page), pages)
            end = total - (page - 1) * per_page
            ids = self.order[max(0, end - per_page) : max(0, end)]
            rows = [self.run_summary(r) for r in reversed(ids)]
            return [r for r in rows if r is not None], pages

    def run_records(self, rid: str, limit: int = 500) -> list[dict[str, Any]]:
        """The run's records, read at their byte offsets (at most ``limit``)."""
        with self.lock:
            entry = self.index.get(rid)
            locs = list(entry.locs[:limit]) if entry else []
        out: list[dict[str, Any]] = []
        handles: dict[str, Any] = {}
        try:
            for day, offset in locs:
                f = handles.get(day)
                if f is None:
                    f = handles[day] = open(self.audit_dir / day / LOG_NAME, "rb")  # noqa: SIM115
                f.seek(offset)
                try:
                    rec = json.loads(f.readline())
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
        except OSError:
            return out
        finally:
            for f in handles.values():
                f.close()
        return out

    def feedback_for(self, rid: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.feedback_by_run.get(rid) or [])

    def daily(self, days: int = 30) -> list[dict[str, Any]]:
        """The last ``days`` days with runs: ``{day, runs, success_rate, avg_duration_sec}``."""
        with self.lock:
            keys = sorted(self.series)[-days:]
            return [
                {
                    "day": d,
                    "runs": int(self.series[d][0]),
                    "success_rate": self.series[d][1] / self.series[d][0],
                    "avg_duration_sec": self.series[d][2] / self.series[d][0],
                }
                for d in keys
                if self.series[d][0]
            ]

    # ----------------------------------------------------------------- the chain

    def chain_status(self) -> dict[str, Any]:
        """``{verified, records, first_seq, last_seq, problems, full_check_at}`` -- problems
        come from the full ``aim audit verify`` walk when the incremental check failed."""
        from aim_core.audit.verify import verify

        with self.lock:
            problem = self.chain.problem or self.chain.head_problem()
            if problem is not None and self.chain.problem is None:
                self.refresh()  # a run may have moved the head after our last read
                problem = self.chain.problem or self.chain.head_problem()
            if problem is not None and self.full_findings is None:
                v = verify(self.audit_dir, key=self.key, state_dir=self._machine_state())
                fatal = [str(f) for f in v.findings if f.fatal]
                self.full_findings = fatal or [problem]
                self.full_checked_at = time.time()
            problems = (self.full_findings or []) if problem is not None else []
            if problem is None and self.full_findings:
                problems = self.full_findings  # a full walk found what appends can't show
            return {
                "verified": not problems,
                "records": self.chain.records,
                "first_seq": self.chain.first_seq,
                "last_seq": self.chain.last_seq,
                "problems": problems,
                "full_check_at": self.full_checked_at,
                "lines_read": self.lines_read,
                "rebuilds": self.resets,
            }

    def _machine_state(self) -> Path:
        from aim_core.audit.head import state_dir

        return state_dir(self.environ)

    def full_check(self) -> None:
        """Walk the whole chain with ``aim audit verify``'s code (outside the lock: it only
        reads) and remember what it found; run now and then in a background thread."""
        from aim_core.audit.verify import verify

        with self.lock:
            self.refresh()
            generation = self.generation
        v = verify(self.audit_dir, key=self.key, state_dir=self._machine_state())
        fatal = [str(f) for f in v.findings if f.fatal]
        with self.lock:
            self.refresh()
            if fatal and self.generation != generation:
                return  # records arrived during the walk: inconclusive, due again
            if fatal:
                self.full_findings = fatal
            self.full_checked_at = time.time()
