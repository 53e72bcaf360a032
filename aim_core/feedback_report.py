"""The survey in ``aim audit report``: satisfaction, the "yes" rates, and the guide's
Go / Stay / Rollback thresholds for user feedback (>3.5/5 go, 2.5-3.5 stay, <2.5
rollback) applied to the audit's verdict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aim_core.feedback import RATINGS, satisfaction_of

GO_ABOVE = 3.5
ROLLBACK_BELOW = 2.5


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def summarize_feedback(
    entries: Iterable[Mapping[str, Any]], runs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The survey's figures over the answers about ``runs`` (every answer when None):
    ``{answers, runs_with_feedback, satisfaction, ease, quality, errors (means, 1-5),
    right_tool_rate, fallback_ok_rate, recommend_rate (0-1), target, by_tool}``;
    a figure nobody answered is None."""
    scores: list[float] = []
    per: dict[str, list[Any]] = {k: [] for k in (*RATINGS, "right_tool", "fallback", "recommend")}
    by_tool: dict[str, dict[str, list[Any]]] = {}
    run_ids: set[str] = set()
    n = 0
    for e in entries:
        if runs is not None and e.get("run_id") not in runs:
            continue
        answers = e.get("answers") or {}
        n += 1
        run_ids.add(str(e.get("run_id")))
        score = satisfaction_of(answers)
        tool = by_tool.setdefault(e.get("tool_id") or "-", {"scores": [], "right_tool": []})
        if score is not None:
            scores.append(score)
            tool["scores"].append(score)
        for k, values in per.items():
            if isinstance(answers.get(k), (int, bool)):
                values.append(answers[k])
        if isinstance(answers.get("right_tool"), bool):
            tool["right_tool"].append(answers["right_tool"])
    return {
        "answers": n,
        "runs_with_feedback": len(run_ids),
        "satisfaction": _mean(scores),
        "target": f">{GO_ABOVE}/5",
        **{k: _mean(per[k]) for k in RATINGS},
        "right_tool_rate": _rate(per["right_tool"]),
        "fallback_ok_rate": _rate(per["fallback"]),
        "recommend_rate": _rate(per["recommend"]),
        "by_tool": {
            t: {
                "answers": len(v["scores"]),
                "satisfaction": _mean(v["scores"]),
                "right_tool_rate": _rate(v["right_tool"]),
            }
            for t, v in sorted(by_tool.items())
        },
    }


def with_feedback(
    verdict: str, reasons: list[str], survey: Mapping[str, Any]
) -> tuple[str, list[str]]:
    """The audit's verdict with the guide's user-feedback criterion applied: go needs
    satisfaction >3.5/5, 2.5-3.5 means stay, <2.5 rollback. No answers: unchanged (the
    report lists user feedback as not measured)."""
    score = survey.get("satisfaction")
    if score is None:
        return verdict, reasons
    text = f"user satisfaction {score:.2f}/5 from {survey['answers']} answer(s)"
    if score < ROLLBACK_BELOW:
        mine = f"{text} is below {ROLLBACK_BELOW} (negative feedback)"
        return "rollback", ([*reasons, mine] if verdict == "rollback" else [mine])
    if score <= GO_ABOVE:
        mine = f"{text} is {ROLLBACK_BELOW}-{GO_ABOVE} (mixed feedback)"
        if verdict == "go":
            return "stay", [mine]
        return verdict, [*reasons, mine] if verdict == "stay" else reasons
    if verdict == "go":
        return "go", [*reasons, f"{text} > {GO_ABOVE}"]
    return verdict, reasons


def feedback_levels(levels: dict[str, Any], survey: Mapping[str, Any]) -> dict[str, Any]:
    """The guide's Success Criteria about users, added when there are answers."""
    score = survey.get("satisfaction")
    if score is None:
        return levels
    levels["mvp"][f"User satisfaction >{GO_ABOVE}/5"] = score > GO_ABOVE
    levels["full_production"]["User satisfaction >4/5"] = score > 4
    recommend = survey.get("recommend_rate")
    if recommend is not None:
        levels["full_production"]["Positive feedback from majority of users"] = recommend > 0.5
    return levels


def render_feedback(survey: Mapping[str, Any]) -> list[str]:
    """The report's lines about the survey."""
    if not survey.get("answers"):
        return ["User feedback: no answers yet (aim feedback add RUN_ID)"]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.0%}"

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    return [
        f"User feedback: {survey['answers']} answer(s) about {survey['runs_with_feedback']} run(s)",
        f"  satisfaction {num(survey['satisfaction'])}/5 (target {survey['target']}); "
        f"ease {num(survey['ease'])}, code quality {num(survey['quality'])}, "
        f"error messages {num(survey['errors'])}",
        f"  right tool chosen {pct(survey['right_tool_rate'])}; fallback as expected "
        f"{pct(survey['fallback_ok_rate'])}; would recommend {pct(survey['recommend_rate'])}",
    ]
