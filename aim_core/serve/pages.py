"""The dashboard's HTML: Jinja2 templates (autoescaped: the audit holds user text) and
charts drawn here as inline SVG from numbers, so the page needs nothing from outside
the package -- no CDN, no chart library, one small script for live updates."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

from aim_core.serve.state import AuditState

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LOG_TAIL = 256 * 1024  # bytes of a run log shown on its page (the end: where it failed)
PER_PAGE = 50

# each metric of the guide's Phase 3 table: (label, report key, target text, test, format)
TARGETS: tuple[tuple[str, str, str, Any, str], ...] = (
    ("Success rate", "success_rate", ">80%", lambda v: v > 0.80, "pct"),
    ("Avg execution time", "avg_duration_sec", "<60s", lambda v: v < 60, "sec"),
    ("Fallback rate", "fallback_rate", "<30%", lambda v: v < 0.30, "pct"),
    ("Auth errors", "auth_error_rate", "<10%", lambda v: v < 0.10, "pct"),
)


@lru_cache(maxsize=1)
def environment() -> Any:
    """The Jinja2 environment of the package's templates."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("aim_core.serve", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "-" if v is None else f"{v * 100:.1f}%"
    env.filters["sec"] = lambda v: "-" if v is None else f"{v:.1f}s"
    env.filters["num"] = lambda v: "-" if v is None else f"{v:.2f}"
    return env


def render(name: str, **context: Any) -> str:
    return str(environment().get_template(name).render(**context))


class _Frame:
    """The plotting area of a chart: where a value goes, how an axis value reads."""

    left, right, top, bottom = 48, 12, 14, 28

    def __init__(self, width: int, height: int, y_max: float, fmt: str):
        self.width, self.height = width, height
        self.w = width - self.left - self.right
        self.h = height - self.top - self.bottom
        self.y_max = y_max or 1.0
        self.fmt = fmt

    def y(self, v: float) -> float:
        return self.top + self.h - (min(v, self.y_max) / self.y_max) * self.h

    def label(self, v: float, *, exact: bool = False) -> str:
        if self.fmt == "pct":
            return f"{v * 100:.1f}%" if exact else f"{v * 100:.0f}%"
        return f"{v:.0f}s"

    def hline(self, cls: str, value: float, text: str, *, at_right: bool = False) -> str:
        y = self.y(value)
        x, anchor, dy = (self.left + self.w, "end", -4) if at_right else (self.left - 6, "end", 4)
        return (
            f'<line class="{cls}" x1="{self.left}" y1="{y:.1f}" x2="{self.left + self.w}" '
            f'y2="{y:.1f}"/><text class="axis {cls}-label" x="{x}" y="{y + dy:.1f}" '
            f'text-anchor="{anchor}">{escape(text)}</text>'
        )


def _series(frame: _Frame, points: Sequence[tuple[str, float]]) -> list[str]:
    n = len(points)
    if not n:
        return [
            f'<text class="axis" x="{frame.left + frame.w / 2}" y="{frame.top + frame.h / 2}" '
            'text-anchor="middle">no runs yet</text>'
        ]
    xs = [frame.left + (frame.w * i / (n - 1) if n > 1 else frame.w / 2) for i in range(n)]
    coords = " ".join(f"{x:.1f},{frame.y(v):.1f}" for x, (_, v) in zip(xs, points, strict=True))
    parts = [f'<polyline class="series" points="{coords}"/>']
    for x, (name, v) in zip(xs, points, strict=True):
        parts.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{frame.y(v):.1f}" r="3">'
            f"<title>{escape(name)}: {frame.label(v, exact=True)}</title></circle>"
        )
    for i in sorted({0, n - 1}):
        anchor = "middle" if n == 1 else "start" if i == 0 else "end"
        parts.append(
            f'<text class="axis" x="{xs[i]:.1f}" y="{frame.height - 8}" '
            f'text-anchor="{anchor}">{escape(points[i][0])}</text>'
        )
    return parts


def line_chart(
    points: Sequence[tuple[str, float]],
    *,
    y_max: float,
    fmt: str,
    title: str,
    target: float | None = None,
    width: int = 560,
    height: int = 180,
) -> str:
    """An SVG line chart of ``(label, value)`` points (``fmt``: ``pct`` for 0-1 shares,
    ``sec`` for seconds), with an optional dashed target line."""
    from markupsafe import Markup

    frame = _Frame(width, height, y_max, fmt)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    parts += [
        frame.hline("grid", frame.y_max * f, frame.label(frame.y_max * f)) for f in (0, 0.5, 1)
    ]
    if target is not None:
        parts.append(frame.hline("target", target, f"target {frame.label(target)}", at_right=True))
    parts += _series(frame, points)
    parts.append("</svg>")
    return Markup("".join(parts))


def metric_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The guide's metrics with their targets, met or missed (none when no runs)."""
    rows = []
    for name, key, target, test, fmt in TARGETS:
        value = report[key]
        rows.append(
            {
                "name": name,
                "key": key,
                "value": value,
                "fmt": fmt,
                "target": target,
                "met": None if not report["runs"] else bool(test(value)),
            }
        )
    survey = report.get("feedback") or {}
    score = survey.get("satisfaction")
    rows.append(
        {
            "name": "User satisfaction",
            "key": "satisfaction",
            "value": score,
            "fmt": "score",
            "target": ">3.5/5",
            "met": None if score is None else score > 3.5,
        }
    )
    return rows


def dashboard(
    state: AuditState,
    *,
    page: int,
    root: Path,
    chain: Mapping[str, Any],
    active: list[dict[str, Any]],
    poll_ms: int,
) -> str:
    """The dashboard (page ``page`` of the recent runs)."""
    report = state.report()
    runs, pages = state.recent_runs(page, PER_PAGE)
    page = min(max(1, page), pages)
    daily = state.daily()
    worst = max((d["avg_duration_sec"] for d in daily), default=0.0)
    return render(
        "dashboard.html",
        root=str(root),
        report=report,
        metrics=metric_rows(report),
        survey=report.get("feedback") or {},
        chain=chain,
        runs=runs,
        active=[e for e in active if e.get("alive")],
        page=page,
        pages=pages,
        poll_ms=poll_ms,
        success_chart=line_chart(
            [(d["day"], d["success_rate"]) for d in daily],
            y_max=1.0,
            fmt="pct",
            title="Success rate per day",
            target=0.80,
        ),
        duration_chart=line_chart(
            [(d["day"], d["avg_duration_sec"]) for d in daily],
            y_max=max(60.0, worst * 1.1),
            fmt="sec",
            title="Average run time per day",
            target=60.0,
        ),
    )


def run_log(registry: Path, run_id: str, environ: Mapping[str, str]) -> tuple[str | None, int]:
    """The run's log, as ``aim audit show`` prints it (``AIM_runs/<run_id>.log``, masked when
    written), masked again here for credentials and the environment's secret values, and
    cut to its last 256 KiB; returns ``(text or None, bytes left out)``."""
    from aim_core.paths import RUNS_DIRNAME
    from aim_core.security import redact_text

    path = registry / RUNS_DIRNAME / f"{run_id}.log"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - LOG_TAIL))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None, 0
    return redact_text(text, environ, entropy=False), max(0, size - LOG_TAIL)


def run_page(
    state: AuditState, registry: Path, run_id: str, environ: Mapping[str, str]
) -> str | None:
    """A run's page (records, checks, feedback, run log), or None for an unknown run."""
    summary = state.run_summary(run_id)
    log, cut = run_log(registry, run_id, environ)
    if summary is None and log is None:
        return None
    records = state.run_records(run_id)
    checks = []
    for rec in records:
        verification = ((rec.get("result") or {}).get("content") or {}).get("verification")
        for c in (verification or {}).get("checks") or []:
            checks.append({"attempt": rec.get("attempt"), "tool": rec.get("tool_id"), **c})
    prompts: list[str] = []
    for rec in records:
        prompt = (rec.get("payload") or {}).get("prompt")
        if isinstance(prompt, str) and prompt and prompt not in prompts:
            prompts.append(prompt)
    return render(
        "run.html",
        run_id=run_id,
        prompts=prompts,
        summary=summary,
        records=records,
        checks=checks,
        feedback=state.feedback_for(run_id),
        log=log,
        log_cut=cut,
    )
