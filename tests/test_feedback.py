"""`aim feedback`: the guide's seven survey questions by flags and on a terminal, bad
answers, redaction, the staging feedback log, the forms `aim init` writes, and the
report's verdict counting satisfaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.records import build_record
from aim_core.feedback_report import summarize_feedback, with_feedback
from aim_core.models import Invocation

from .credential_corpus import SAMPLES
from .test_run import ADD, WS

REGISTRY = Path("aim") / ".AIM_ai-tools-registry"
FLAGS = [
    "--ease",
    "4",
    "--right-tool",
    "yes",
    "--quality",
    "4",
    "--errors",
    "3",
    "--fallback",
    "yes",
    "--recommend",
    "yes",
]


def feedback_lines(repo: Path) -> list[dict]:
    path = repo / REGISTRY / "AIM_feedback" / "feedback.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def step_1_5(repo, aim, fake, fakeai):
    """The guide's Step 1.5 run: jules needs login, aider does the work. Returns its run id."""
    fake("jules", version_output="jules 0.1.42 needs-login")
    fake("aider", writes={"tests/staging_test_file.py": ADD})
    r = aim("run", WS, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    line = (repo / REGISTRY / "AIM_audit").glob("*/audit.jsonl").__next__().read_text()
    return json.loads(line.splitlines()[-1])["run_id"]


def seed_runs(repo: Path, n: int = 10, *, ok: bool = True) -> list[str]:
    """``n`` successful runs of distinct workstreams, through the real audit writer."""
    log = JsonlAuditLog(repo / REGISTRY / "AIM_audit")
    ids = []
    for i in range(n):
        rid = f"20251120T2145{i:02d}Z-{i:06x}"
        log.append(
            build_record(
                actor="pipeline",
                run_id=rid,
                workstream_id=f"ws-{i}",
                tool_id="aider",
                capability="code_generation",
                payload=Invocation(prompt="p", files=["a.py"]),
                success=ok,
                message="Code generation completed (attempt 1)",
                attempt=1,
                failure=None,
                duration_sec=5.0,
            ).to_dict()
        )
        ids.append(rid)
    log.sync_head()
    return ids


def test_add_by_flags_fills_the_run_from_the_audit(repo, aim, step_1_5):
    r = aim("feedback", "add", *FLAGS, "--improve", "Add better error message for auth", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert f"Recorded feedback on run {step_1_5}" in r.stdout
    assert "satisfaction 3.67/5" in r.stdout
    [entry] = feedback_lines(repo)
    assert entry["run_id"] == step_1_5  # the latest run by default
    assert entry["workstream_id"] == "ws-aim-validation-001"
    assert entry["capability"] == "code_generation"
    assert entry["tool_id"] == "aider" and entry["fallback_from"] == "jules"
    assert entry["success"] is True and entry["actor"] == "pipeline"
    assert entry["answers"] == {
        "ease": 4,
        "right_tool": True,
        "quality": 4,
        "errors": 3,
        "fallback": True,
        "recommend": True,
        "improve": "Add better error message for auth",
    }
    assert entry["timestamp"].endswith("Z")


def test_add_asks_on_the_terminal_and_asks_again_after_a_bad_answer(repo, aim, step_1_5):
    # ease 7 is refused and asked again; "maybe" is not yes or no
    answers = "7\n5\nmaybe\nno\n3\n2\nyes\nno\nthe routing table\n"
    r = aim("feedback", "add", step_1_5, cwd=repo, input=answers)
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"Feedback on run {step_1_5}: workstream ws-aim-validation-001" in r.stdout
    assert "aider (fallback from jules), succeeded" in r.stdout
    assert "1. How easy was it to add `capability` to your workstream? (1-5)" in r.stdout
    assert "7 is not in the range 1<=x<=5" in r.stdout + r.stderr
    assert "'maybe' is not yes or no" in r.stdout + r.stderr
    assert "7. What could be improved?" in r.stdout
    [entry] = feedback_lines(repo)
    assert entry["answers"] == {
        "ease": 5,
        "right_tool": False,
        "quality": 3,
        "errors": 2,
        "fallback": True,
        "recommend": False,
        "improve": "the routing table",
    }


def test_flags_answer_some_questions_and_the_terminal_the_rest(repo, aim, step_1_5):
    r = aim(
        "feedback", "add", "--ease", "2", "--quality", "5", cwd=repo, input="yes\n4\nyes\nyes\n\n"
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert "1. How easy" not in r.stdout and "2. Did AIM select the right tool" in r.stdout
    [entry] = feedback_lines(repo)
    assert entry["answers"]["ease"] == 2 and entry["answers"]["quality"] == 5
    assert entry["answers"]["errors"] == 4 and entry["answers"]["improve"] == ""


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--ease", "7"], "--ease"),
        (["--quality", "0"], "--quality"),
        (["--right-tool", "maybe"], "--right-tool"),
        (["--recommend", "sure"], "--recommend"),
    ],
    ids=["ease-7", "quality-0", "right-tool-maybe", "recommend-sure"],
)
def test_a_bad_answer_exits_2_naming_the_field(repo, aim, step_1_5, args, field):
    flags = list(FLAGS)
    i = flags.index(args[0])
    flags[i + 1] = args[1]
    r = aim("feedback", "add", *flags, cwd=repo)
    assert r.returncode == 2
    assert field in r.stderr and "Traceback" not in r.stderr
    assert feedback_lines(repo) == []


def test_an_unknown_run_exits_2_naming_it(repo, aim, step_1_5):
    r = aim("feedback", "add", "20990101T000000Z-abcdef", *FLAGS, cwd=repo)
    assert r.returncode == 2
    assert "RUN_ID: no run '20990101T000000Z-abcdef' in the audit" in r.stderr
    assert "aim audit query" in r.stderr
    assert feedback_lines(repo) == []


def test_no_run_yet_and_no_terminal(repo, aim):
    r = aim("feedback", "add", *FLAGS, cwd=repo)
    assert r.returncode == 2 and "RUN_ID: the audit has no run yet" in r.stderr
    seed_runs(repo, 1)
    r = aim("feedback", "add", "--ease", "3", cwd=repo)  # stdin closed: nobody to ask
    assert r.returncode == 2
    assert "--right-tool: no answer to 'Did AIM select the right tool" in r.stderr
    assert feedback_lines(repo) == []


def test_credentials_in_the_answers_are_redacted(repo, aim, step_1_5):
    key = SAMPLES["aws-access-credential"]
    r = aim("feedback", "add", *FLAGS, "--improve", f"it printed {key} in the log", cwd=repo)
    assert r.returncode == 0, r.stderr
    raw = (repo / REGISTRY / "AIM_feedback" / "feedback.jsonl").read_text()
    assert key not in raw
    assert feedback_lines(repo)[0]["answers"]["improve"] == "it printed [REDACTED] in the log"


def test_report_verdict_counts_satisfaction(repo, aim):
    ids = seed_runs(repo, 10)
    before = json.loads(aim("audit", "report", "--json", cwd=repo).stdout)
    assert before["verdict"] == "go"
    assert any("survey" in m for m in before["not_measured"])
    assert before["feedback"]["answers"] == 0 and before["feedback"]["satisfaction"] is None

    # mixed feedback: (3 + 3 + 3) / 3 = 3.0 <= 3.5 -> stay
    low = ["--ease", "3", "--quality", "3", "--errors", "3", "--right-tool", "no"]
    rest = ["--fallback", "yes", "--recommend", "no"]
    assert aim("feedback", "add", ids[0], *low, *rest, cwd=repo).returncode == 0
    mixed = json.loads(aim("audit", "report", "--json", cwd=repo).stdout)
    assert mixed["verdict"] == "stay"
    assert mixed["reasons"] == [
        "user satisfaction 3.00/5 from 1 answer(s) is 2.5-3.5 (mixed feedback)"
    ]
    assert not any("survey" in m for m in mixed["not_measured"])
    assert mixed["feedback"]["right_tool_rate"] == 0.0
    assert mixed["levels"]["mvp"]["User satisfaction >3.5/5"] is False
    text = aim("audit", "report", cwd=repo).stdout
    assert "User feedback: 1 answer(s) about 1 run(s)" in text
    assert "right tool chosen 0%" in text and "Verdict: STAY" in text

    # two good answers (ease 4, quality 5, errors 5: 4.67 each) lift the mean to
    # (3 + 4.67 + 4.67) / 3 = 4.11 -> go again
    for rid in ids[1:3]:
        r = aim(
            "feedback",
            "add",
            rid,
            *FLAGS[:2],
            "--quality",
            "5",
            "--errors",
            "5",
            cwd=repo,
            input="yes\nyes\nyes\n\n",
        )
        assert r.returncode == 0, r.stderr
    good = json.loads(aim("audit", "report", "--json", cwd=repo).stdout)
    assert good["feedback"]["satisfaction"] == pytest.approx(4.11, abs=0.01)
    assert good["verdict"] == "go"
    assert good["reasons"][-1].startswith("user satisfaction 4.11/5 from 3 answer(s) > 3.5")

    # feedback about runs outside --since is not counted
    later = json.loads(aim("audit", "report", "--json", "--since", "2099-01-01", cwd=repo).stdout)
    assert later["feedback"]["answers"] == 0


@pytest.mark.parametrize(
    ("score", "verdict", "expected"),
    [
        (4.2, "go", "go"),
        (3.5, "go", "stay"),
        (2.6, "go", "stay"),
        (2.4, "go", "rollback"),
        (2.4, "stay", "rollback"),
        (4.8, "rollback", "rollback"),
        (None, "go", "go"),
    ],
)
def test_the_guide_thresholds(score, verdict, expected):
    survey = {"satisfaction": score, "answers": 1}
    assert with_feedback(verdict, ["r"], survey)[0] == expected


def test_summary_counts_only_the_reported_runs():
    entries = [
        {"run_id": "a", "tool_id": "aider", "answers": {"ease": 5, "quality": 5, "errors": 5}},
        {"run_id": "b", "tool_id": "aider", "answers": {"ease": 1, "quality": 1, "errors": 1}},
        {"run_id": "a", "tool_id": "aider", "answers": {"right_tool": True, "ease": 3}},
    ]
    s = summarize_feedback(entries, {"a": {}})
    assert s["answers"] == 2 and s["runs_with_feedback"] == 1
    assert s["satisfaction"] == 4.0  # (5 + 3) / 2
    assert s["right_tool_rate"] == 1.0 and s["by_tool"]["aider"]["answers"] == 2


def test_feedback_log_writes_the_guides_template_once(repo, aim, step_1_5):
    r = aim(
        "feedback",
        "add",
        *FLAGS,
        "--improve",
        "Add better error message for auth requirements",
        cwd=repo,
    )
    assert r.returncode == 0, r.stderr
    r = aim("feedback", "log", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert "Appended 1 entry to aim/STAGING_FEEDBACK.md" in r.stdout
    log = (repo / "aim" / "STAGING_FEEDBACK.md").read_text()
    date = feedback_lines(repo)[0]["timestamp"][:10]
    expected_head = (
        "# AIM Staging Feedback Log\n\n"
        f"<!-- aim-feedback run={step_1_5} at={feedback_lines(repo)[0]['timestamp']} -->\n"
        "## Workstream: ws-aim-validation-001\n"
        f"**Date:** {date}  \n"
        "**Capability:** code_generation  \n"
        "**Tool Used:** aider (fallback from jules)\n"
        "\n"
        "### What Worked\n"
        "- Capability routing successful\n"
        "- Fallback worked when jules required login\n"
        "- Audit log captured all details (1 record(s))\n"
        "- Generated code quality: Good\n"
        "- Fallback behaved as expected\n"
        "\n"
        "### Issues Encountered\n"
        "- jules skipped (auth_required): Jules requires login (run 'jules login')\n"
        "\n"
        "### Recommendations\n"
        "- Add better error message for auth requirements\n"
        "\n"
        "### Code Quality: 4/5\n"
    )
    assert log.startswith(expected_head), log
    assert "- Would recommend AIM routing: yes" in log and log.endswith("---\n\n")

    again = aim("feedback", "log", cwd=repo)
    assert "already has every answer (1)" in again.stdout
    assert (repo / "aim" / "STAGING_FEEDBACK.md").read_text() == log

    r = aim("feedback", "add", *FLAGS[:-1], "no", cwd=repo)
    assert r.returncode == 0, r.stderr
    aim("feedback", "log", cwd=repo)
    longer = (repo / "aim" / "STAGING_FEEDBACK.md").read_text()
    assert longer.startswith(log) and longer.count("## Workstream:") == 2
    assert "- Would recommend AIM routing: no" in longer[len(log) :]


def test_feedback_log_without_answers_and_for_an_unknown_run(repo, aim, step_1_5):
    r = aim("feedback", "log", cwd=repo)
    assert r.returncode == 0 and "No feedback yet" in r.stdout
    assert not (repo / "aim" / "STAGING_FEEDBACK.md").exists()
    r = aim("feedback", "log", "--run", "nope", cwd=repo)
    assert r.returncode == 2 and "--run: no feedback on run 'nope'" in r.stderr


def test_init_writes_the_survey_forms_and_never_overwrites_them(repo, aim):
    form = repo / "aim" / "FEEDBACK_FORM.md"
    template = repo / ".github" / "ISSUE_TEMPLATE" / "aim_feedback.md"
    assert "1. How easy was it to add `capability` to your workstream? (1-5)" in form.read_text()
    assert "7. What could be improved?" in form.read_text()
    assert template.read_text().startswith("---\nname: AIM feedback\n")
    form.write_text("ours\n")
    template.write_text("ours too\n")
    r = aim("init", "--force", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert form.read_text() == "ours\n" and template.read_text() == "ours too\n"
