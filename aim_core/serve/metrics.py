"""``GET /metrics``: the audit as Prometheus metrics (``prometheus_client``'s exposition).

A custom collector reads the server's aggregate on each scrape, in its own
registry (never the process-global one), so the numbers are those of the
aggregate at that moment and agree with ``aim audit report --json``:

=========================================  =================================================
``aim_runs_total``                         runs (the report's ``runs``)
``aim_run_successes_total``                runs that succeeded (``success_rate`` x runs)
``aim_run_fallbacks_total``                runs that succeeded with another tool than the
                                           first (``fallback_rate`` x runs)
``aim_run_auth_errors_total``              runs that met an auth error (``auth_error_rate``)
``aim_run_duration_seconds``               histogram per ``capability`` of a run's time (all
                                           its attempts); sum/count = ``avg_duration_sec``
``aim_attempts_total``                     per ``tool``, ``capability`` (``by_tool.attempts``)
``aim_attempt_successes_total``            per ``tool``, ``capability``
``aim_attempt_failures_total``             per ``tool``, ``capability``, ``failure``
                                           (``failure_classes``; tool ``-`` when none ran)
``aim_attempt_duration_seconds``           histogram per ``tool``, ``capability``
``aim_success_rate`` and friends           gauges with the report's own rounded rates
``aim_verdict``                            1 for the report's verdict (label ``verdict``)
``aim_feedback_answers_total``             survey answers; ``aim_feedback_satisfaction``
``aim_audit_chain_records``                records in the chain; ``aim_audit_chain_last_seq``
``aim_audit_chain_verified``               1 when the chain verifies, else 0
=========================================  =================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from aim_core.serve.state import AuditState

VERDICTS = ("go", "stay", "rollback")


class AuditCollector(Collector):
    """Yields every metric from the aggregate at scrape time."""

    def __init__(self, state: AuditState):
        self.state = state

    def collect(self) -> Iterator[Any]:
        state = self.state
        state.refresh()
        report = state.report()
        yield from _run_metrics(state)
        yield from _attempt_metrics(state)
        yield from _report_gauges(report)
        yield from _feedback_metrics(report.get("feedback") or {})
        yield from _chain_metrics(state.chain_status())


def _run_metrics(state: AuditState) -> Iterator[Any]:
    counts = state.run_counts()
    with state.lock:
        run_hist = {k: (h.cumulative(), h.sum) for k, h in state.run_hist.items()}
    for name, key, doc in (
        ("aim_runs", "runs", "Workstream runs in the audit (one run_id each)."),
        ("aim_run_successes", "successes", "Runs that succeeded."),
        ("aim_run_fallbacks", "fallbacks", "Runs that succeeded with a fallback tool."),
        ("aim_run_auth_errors", "auth_errors", "Runs that met an authentication error."),
    ):
        c = CounterMetricFamily(name, doc)
        c.add_metric([], counts[key])
        yield c
    h = HistogramMetricFamily(
        "aim_run_duration_seconds",
        "Time of a run (all its attempts), by capability.",
        labels=["capability"],
    )
    for cap, (buckets, total) in sorted(run_hist.items()):
        h.add_metric([cap], buckets, total)
    yield h


def _attempt_metrics(state: AuditState) -> Iterator[Any]:
    with state.lock:
        attempts = {k: list(v) for k, v in state.attempts.items()}
        failures = dict(state.failures)
        attempt_hist = {k: (h.cumulative(), h.sum) for k, h in state.attempt_hist.items()}
    pairs = ["tool", "capability"]
    a = CounterMetricFamily("aim_attempts", "Tool invocations.", labels=pairs)
    s = CounterMetricFamily("aim_attempt_successes", "Invocations that succeeded.", labels=pairs)
    for (tool, cap), (n, ok) in sorted(attempts.items()):
        a.add_metric([tool, cap], n)
        s.add_metric([tool, cap], ok)
    yield a
    yield s
    f = CounterMetricFamily(
        "aim_attempt_failures",
        "Failed attempts by failure class (tool '-' when no tool could be invoked).",
        labels=[*pairs, "failure"],
    )
    for (tool, cap, failure), n in sorted(failures.items()):
        f.add_metric([tool, cap, failure], n)
    yield f
    h = HistogramMetricFamily(
        "aim_attempt_duration_seconds", "Time of one invocation.", labels=pairs
    )
    for (tool, cap), (buckets, total) in sorted(attempt_hist.items()):
        h.add_metric([tool, cap], buckets, total)
    yield h


def _report_gauges(report: dict[str, Any]) -> Iterator[Any]:
    for name, key, doc in (
        ("aim_success_rate", "success_rate", "Share of runs that succeeded (target >0.8)."),
        ("aim_avg_duration_seconds", "avg_duration_sec", "Mean run time (target <60)."),
        ("aim_p95_duration_seconds", "p95_duration_sec", "95th percentile of run time."),
        ("aim_fallback_rate", "fallback_rate", "Share of runs won by a fallback (<0.3)."),
        ("aim_auth_error_rate", "auth_error_rate", "Share of runs with an auth error (<0.1)."),
    ):
        g = GaugeMetricFamily(name, doc)
        g.add_metric([], report[key])
        yield g
    g = GaugeMetricFamily(
        "aim_verdict", "The go/stay/rollback verdict (1 for the current one).", labels=["verdict"]
    )
    for v in VERDICTS:
        g.add_metric([v], 1.0 if report["verdict"] == v else 0.0)
    yield g


def _feedback_metrics(survey: dict[str, Any]) -> Iterator[Any]:
    c = CounterMetricFamily("aim_feedback_answers", "Survey answers about reported runs.")
    c.add_metric([], survey.get("answers", 0))
    yield c
    for name, key, doc in (
        ("aim_feedback_satisfaction", "satisfaction", "Mean survey satisfaction, 1-5 (>3.5)."),
        ("aim_feedback_right_tool_rate", "right_tool_rate", "Share saying the tool was right."),
    ):
        if survey.get(key) is not None:
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], survey[key])
            yield g


def _chain_metrics(chain: dict[str, Any]) -> Iterator[Any]:
    for name, value, doc in (
        ("aim_audit_chain_records", chain["records"], "Records in the audit chain."),
        ("aim_audit_chain_last_seq", chain["last_seq"] or 0, "The last seq of the chain."),
        ("aim_audit_chain_verified", 1.0 if chain["verified"] else 0.0, "1 when it verifies."),
    ):
        g = GaugeMetricFamily(name, doc)
        g.add_metric([], value)
        yield g


def exposition(state: AuditState) -> tuple[bytes, str]:
    """The body and content type of ``/metrics``."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(AuditCollector(state))
    return generate_latest(registry), CONTENT_TYPE_LATEST
