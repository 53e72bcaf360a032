"""``aim audit report``: the guide's metrics and its Go / Stay / Rollback verdict.

Counts are per workstream run (a ``run_id``), not per attempt: a run that
fell back from jules to aider and succeeded is one successful run with a
fallback.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from aim_core.audit.query import Filter, UsageLedger, iter_matches

# The guide's Phase 3 targets: metric -> (target text, action if missed)
TARGETS = {
    "success_rate": (">80%", "Review failure reasons"),
    "avg_duration_sec": ("<60s", "Check for hangs/timeouts"),
    "fallback_rate": ("<30%", "Improve primary tool setup"),
    "auth_error_rate": ("<10%", "Document login process"),
}
NOT_MEASURED = [
    "user feedback (survey scores): the guide's >3.5/5",
    "critical bugs and security incidents",
    "documentation complete",
]


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(0.95 * (len(ordered) - 1))))
    return ordered[k]


def build_report(audit_dir: Path, flt: Filter | None = None) -> dict[str, Any]:
    """Every metric of the report as JSON-ready data (the survey answers of
    ``AIM_feedback/`` beside ``audit_dir`` counted for the runs reported)."""
    from aim_core.feedback import feedback_path, read_entries

    builder = ReportBuilder()
    for _, rec in iter_matches(audit_dir, flt or Filter()):
        builder.add(rec)
    for entry in read_entries(feedback_path(audit_dir.parent)):
        builder.add_feedback(entry)
    return builder.build()


class ReportBuilder:
    """The report's figures, fed one record at a time: ``aim audit report`` feeds it the
    whole log once, ``aim serve`` keeps one and feeds it only the lines appended since."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.attempts_by_tool: dict[str, Counter[str]] = defaultdict(Counter)
        self.failures: Counter[str] = Counter()
        self.feedback: list[dict[str, Any]] = []
        self.ledger = UsageLedger()

    def add_feedback(self, entry: dict[str, Any]) -> None:
        """One line of ``AIM_feedback/feedback.jsonl`` (counted if its run is reported)."""
        self.feedback.append(entry)

    def build(self) -> dict[str, Any]:
        """The report of everything added so far."""
        return _summarize(
            self.runs, self.attempts_by_tool, self.failures, self.feedback, self.ledger
        )

    def add(self, rec: dict[str, Any]) -> None:
        """Count one audit record."""
        runs, attempts_by_tool, failures = self.runs, self.attempts_by_tool, self.failures
        if rec.get("event"):  # the log's own events (reset-head) are not runs
            return
        self.ledger.add(rec)
        rid = rec.get("run_id") or f"seq-{rec.get('seq')}"
        run = runs.setdefault(
            rid,
            {
                "workstream_id": rec.get("workstream_id"),
                "capability": rec.get("capability"),
                "success": False,
                "duration": 0.0,
                "first_tool": None,
                "final_tool": None,
                "auth": False,
                "checked": False,
                "verified": False,
                "to_verified": None,
            },
        )
        result = rec.get("result") or {}
        content = result.get("content") or {}
        for s in content.get("skipped") or []:
            run["first_tool"] = run["first_tool"] or s.get("tool_id")
            if s.get("failure") == "auth_required":
                run["auth"] = True
        tool = rec.get("tool_id")
        # a race's loser was stopped, not failed: it says nothing of the tool
        if tool and rec.get("failure") != "lost_race":
            run["first_tool"] = run["first_tool"] or tool
            attempts_by_tool[tool]["attempts"] += 1
            if result.get("success"):
                attempts_by_tool[tool]["successes"] += 1
        if rec.get("failure"):
            failures[rec["failure"]] += 1
            if rec["failure"] == "auth_required":
                run["auth"] = True
        run["duration"] += float(content.get("duration_sec") or 0.0)
        verification = content.get("verification")
        if isinstance(verification, dict):
            _add_verification(run, attempts_by_tool[tool or "-"], verification, result)
        if result.get("success"):
            run["success"] = True
            run["final_tool"] = tool


def _add_verification(
    run: dict[str, Any], tool: Counter[str], verification: dict[str, Any], result: dict[str, Any]
) -> None:
    """Count an attempt whose ``verify`` checks ran: the time to a verified success
    is the run's time (tools and checks) until its first passing edit."""
    checks = verification.get("checks") or []
    run["duration"] += sum(float(c.get("duration_sec") or 0.0) for c in checks)
    run["checked"] = True
    tool["checked_attempts"] += 1
    if verification.get("passed") is True and result.get("success"):
        tool["verified_passes"] += 1
        if not run["verified"]:
            run["verified"] = True
            run["to_verified"] = run["duration"]


def _summarize(
    runs: dict[str, dict[str, Any]],
    attempts_by_tool: dict[str, Counter[str]],
    failures: Counter[str],
    feedback: list[dict[str, Any]],
    ledger: UsageLedger,
) -> dict[str, Any]:
    n = len(runs)
    ok = [r for r in runs.values() if r["success"]]
    fell_back = [r for r in ok if r["final_tool"] and r["final_tool"] != r["first_tool"]]
    durations = [r["duration"] for r in runs.values()]
    success_rate = len(ok) / n if n else 0.0
    avg = sum(durations) / n if n else 0.0
    fallback_rate = len(fell_back) / n if n else 0.0
    auth_rate = sum(1 for r in runs.values() if r["auth"]) / n if n else 0.0
    workstreams = len({r["workstream_id"] for r in runs.values() if r["workstream_id"]})

    by_capability = _by_capability(runs)
    by_tool = _by_tool(attempts_by_tool)
    usage = _attach_usage(ledger.to_dict(), by_tool, by_capability)
    reliable = max(
        by_tool, key=lambda t: (by_tool[t]["success_rate"], by_tool[t]["attempts"]), default=None
    )
    metrics = {"success_rate": success_rate, "avg_duration_sec": avg}
    metrics.update(fallback_rate=fallback_rate, auth_error_rate=auth_rate)
    actions = _actions(metrics) if n else []
    from aim_core.feedback_report import feedback_levels, summarize_feedback, with_feedback

    survey = summarize_feedback(feedback, runs)
    verdict, reasons = with_feedback(*_verdict(n, success_rate, avg, workstreams), survey)
    return {
        "runs": n,
        "workstreams": workstreams,
        "success_rate": round(success_rate, 4),
        "avg_duration_sec": round(avg, 3),
        "p95_duration_sec": round(_p95(durations), 3),
        "fallback_rate": round(fallback_rate, 4),
        "auth_error_rate": round(auth_rate, 4),
        **_verified_figures(runs),
        "by_capability": by_capability,
        "by_tool": by_tool,
        "most_reliable_tool": reliable,
        "most_used_capability": max(
            by_capability, key=lambda c: by_capability[c]["runs"], default=None
        ),
        "failure_classes": dict(failures.most_common()),
        "usage": usage,
        "actions": [
            {"metric": m, "target": TARGETS[m][0], "value": round(metrics[m], 4), "action": a}
            for m, a in actions
        ],
        "levels": feedback_levels(
            _levels(n, success_rate, avg, fallback_rate, workstreams), survey
        ),
        "verdict": verdict,
        "reasons": reasons,
        "not_measured": [m for m in NOT_MEASURED if not (survey["answers"] and "survey" in m)],
        "counted_per": "workstream run (run_id), not per attempt",
        "feedback": survey,
    }


def _verified_figures(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Verified success (the edit passed the workstream's ``verify`` checks) apart from
    unverified success (no checks): rates per run, the verified pass rate of the runs
    that had checks, and the mean time to a verified success (seconds)."""
    n = len(runs)
    checked = [r for r in runs.values() if r["checked"]]
    verified = [r for r in checked if r["verified"]]
    unverified = [r for r in runs.values() if r["success"] and not r["checked"]]
    times = [r["to_verified"] for r in verified if r["to_verified"] is not None]
    return {
        "runs_with_checks": len(checked),
        "verified_success_rate": round(len(verified) / n, 4) if n else 0.0,
        "unverified_success_rate": round(len(unverified) / n, 4) if n else 0.0,
        "verified_pass_rate": round(len(verified) / len(checked), 4) if checked else None,
        "avg_time_to_verified_sec": round(sum(times) / len(times), 3) if times else None,
    }


def _by_capability(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_capability: dict[str, dict[str, Any]] = {}
    for r in runs.values():
        c = by_capability.setdefault(
            r["capability"] or "-",
            {"runs": 0, "successes": 0, "durations": [], "checked": 0, "verified": 0},
        )
        c["runs"] += 1
        c["successes"] += r["success"]
        c["durations"].append(r["duration"])
        c["checked"] += r["checked"]
        c["verified"] += r["verified"]
    for c in by_capability.values():
        d = c.pop("durations")
        c["success_rate"] = c["successes"] / c["runs"]
        c["avg_duration_sec"] = sum(d) / len(d)
        checked = c.pop("checked")
        c["verified_successes"] = c.pop("verified")
        c["verified_pass_rate"] = c["verified_successes"] / checked if checked else None
    return by_capability


def _by_tool(attempts_by_tool: dict[str, Counter[str]]) -> dict[str, dict[str, Any]]:
    return {
        t: {
            "attempts": c["attempts"],
            "successes": c["successes"],
            "success_rate": c["successes"] / c["attempts"] if c["attempts"] else 0.0,
            "checked_attempts": c["checked_attempts"],
            "verified_passes": c["verified_passes"],
            "verified_pass_rate": (
                c["verified_passes"] / c["checked_attempts"] if c["checked_attempts"] else None
            ),
        }
        for t, c in sorted(attempts_by_tool.items())
        if c["attempts"]
    }


def _attach_usage(
    usage: dict[str, Any], by_tool: dict[str, Any], by_capability: dict[str, Any]
) -> dict[str, Any]:
    """Each tool's and capability's usage sums beside its figures; returns ``usage``."""
    for tool, t in by_tool.items():
        if tool in usage["by_tool"]:
            t["usage"] = usage["by_tool"][tool]
    for cap, c in by_capability.items():
        if cap in usage["by_capability"]:
            c["usage"] = usage["by_capability"][cap]
    return usage


def _actions(metrics: dict[str, float]) -> list[tuple[str, str]]:
    """The guide's action for each metric that misses its target."""
    missed = {
        "success_rate": metrics["success_rate"] <= 0.80,
        "avg_duration_sec": metrics["avg_duration_sec"] >= 60,
        "fallback_rate": metrics["fallback_rate"] >= 0.30,
        "auth_error_rate": metrics["auth_error_rate"] >= 0.10,
    }
    return [(m, TARGETS[m][1]) for m, miss in missed.items() if miss]


def _verdict(n: int, success: float, avg: float, workstreams: int) -> tuple[str, list[str]]:
    pct = f"{success:.0%}"
    if n == 0:
        return "stay", ["no runs in the audit yet: need more data"]
    if success < 0.60:
        return "rollback", [f"success rate {pct} is below 60%"]
    reasons = []
    if success <= 0.80:
        reasons.append(f"success rate {pct} is 60-80% (needs improvement)")
    if workstreams < 10:
        reasons.append(f"only {workstreams} workstream(s) tested (< 10: need more data)")
    if avg >= 60:
        reasons.append(f"average time {avg:.1f}s is not under 60s")
    if reasons:
        return "stay", reasons
    return "go", [
        f"success rate {pct} > 80%",
        f"average time {avg:.1f}s < 60s",
        f"{workstreams} workstreams tested (>= 10)",
    ]


def _levels(
    n: int, success: float, avg: float, fallback: float, workstreams: int
) -> dict[str, Any]:
    """The guide's Success Criteria, as far as the audit can tell."""
    return {
        "mvp": {
            "10+ workstreams tested": workstreams >= 10,
            ">80% success rate": success > 0.80,
        },
        "full_production": {
            "20+ workstreams tested": workstreams >= 20,
            ">90% success rate": success > 0.90,
            "average time <45s": n > 0 and avg < 45,
            "fallback rate <20%": n > 0 and fallback < 0.20,
        },
    }


def _usage_lines(usage: dict[str, Any]) -> list[str]:
    def cell(sums: dict[str, Any]) -> str:
        cost = "-" if sums["cost_usd"] is None else f"${sums['cost_usd']:.4f}"
        return (
            f"in {sums['input_tokens']:>9}  out {sums['output_tokens']:>9}  cost {cost:>9}  "
            f"({sums['records']} records)"
        )

    lines = [f"{'Usage (as the tools reported it)':<34} {cell(usage['total'])}"]
    for group in ("tool", "capability", "workstream"):
        for name, sums in usage[f"by_{group}"].items():
            lines.append(f"  {group} {name:<26} {cell(sums)}")
    return lines


def _verified_lines(data: dict[str, Any]) -> list[str]:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.0%}"

    mean = data["avg_time_to_verified_sec"]
    lines = [
        f"Verified work ({data['runs_with_checks']} runs had verify checks):",
        f"  verified success {pct(data['verified_success_rate'])} of runs, "
        f"unverified success {pct(data['unverified_success_rate'])} (no checks)",
        f"  verified pass rate {pct(data['verified_pass_rate'])} of the runs with checks; "
        f"time to a verified success {'-' if mean is None else f'{mean:.1f}s'} on average",
    ]
    for cap, c in data["by_capability"].items():
        if c.get("verified_pass_rate") is not None:
            lines.append(f"  {cap:<20} verified pass rate {pct(c['verified_pass_rate']):>5}")
    for tool, t in data["by_tool"].items():
        if t.get("checked_attempts"):
            lines.append(
                f"  {tool:<20} edits checked {t['checked_attempts']:>4}  "
                f"passed {pct(t['verified_pass_rate']):>5}"
            )
    return lines


def render_report(data: dict[str, Any]) -> str:
    """The report as text."""

    def pct(x: float) -> str:
        return f"{x:.0%}"

    lines = [
        f"Runs: {data['runs']} (counted per workstream run, not per attempt); "
        f"workstreams: {data['workstreams']}",
        "",
        f"{'Metric':<22} {'Value':>8}  {'Target':<8} Action if missed",
        "=" * 70,
    ]
    missed = {a["metric"]: a["action"] for a in data["actions"]}
    rows = [
        ("Success rate", pct(data["success_rate"]), "success_rate"),
        ("Avg execution time", f"{data['avg_duration_sec']:.1f}s", "avg_duration_sec"),
        ("Fallback rate", pct(data["fallback_rate"]), "fallback_rate"),
        ("Auth errors", pct(data["auth_error_rate"]), "auth_error_rate"),
    ]
    for name, value, key in rows:
        action = missed.get(key, "ok")
        lines.append(f"{name:<22} {value:>8}  {TARGETS[key][0]:<8} {action}")
    lines.append(f"{'p95 execution time':<22} {data['p95_duration_sec']:>7.1f}s")
    lines += ["", "By capability:"]
    for cap, c in data["by_capability"].items():
        lines.append(
            f"  {cap:<20} runs {c['runs']:>5}  success {pct(c['success_rate']):>5}  "
            f"avg {c['avg_duration_sec']:.1f}s"
        )
    lines += ["", "By tool (attempts):"]
    for tool, t in data["by_tool"].items():
        lines.append(
            f"  {tool:<20} attempts {t['attempts']:>5}  success {pct(t['success_rate']):>5}"
        )
    if data.get("runs_with_checks"):
        lines += ["", *_verified_lines(data)]
    usage = data.get("usage") or {}
    if (usage.get("total") or {}).get("records"):
        lines += ["", *_usage_lines(usage)]
    if data["most_reliable_tool"]:
        lines.append(f"Most reliable tool: {data['most_reliable_tool']}")
    if data["failure_classes"]:
        lines.append(
            "Failure classes: " + ", ".join(f"{k} {v}" for k, v in data["failure_classes"].items())
        )
    lines += ["", "Success criteria:"]
    for level, checks in data["levels"].items():
        for name, met in checks.items():
            lines.append(f"  [{'x' if met else ' '}] {level.replace('_', ' ')}: {name}")
    if "feedback" in data:
        from aim_core.feedback_report import render_feedback

        lines += ["", *render_feedback(data["feedback"])]
    lines += ["", f"Verdict: {data['verdict'].upper()}"]
    lines += [f"  - {r}" for r in data["reasons"]]
    lines += ["Not measured by the audit:"] + [f"  - {m}" for m in data["not_measured"]]
    return "\n".join(lines) + "\n"
