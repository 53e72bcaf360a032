"""`aim serve`: the real server on 127.0.0.1 (port 0) driven over HTTP -- /healthz
healthy and not (broken rules, a tampered or truncated audit), incremental reading,
/metrics parsed by prometheus_client and equal to `aim audit report --json`, the
token off loopback, the Host check, run pages, and no route that writes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="aim serve needs the serve extra (make install)")

from prometheus_client.parser import text_string_to_metric_families

from aim_core.paths import RULES_RELPATH, state_dir

from ._serve import REGISTRY, audit_log, record, seed_history, start_server, tree_state
from .credential_corpus import SAMPLES

TOKEN = "k3y-for-tests-only-0123456789abcdef"


@pytest.fixture
def history(repo):
    return seed_history(repo)


@pytest.fixture
def served(repo, history):
    server = start_server(repo)
    yield server
    server.stop()


def day_file(repo: Path) -> Path:
    [path] = sorted((repo / REGISTRY / "AIM_audit").glob("*/audit.jsonl"))
    return path


def report(aim, repo: Path) -> dict:
    r = aim("audit", "report", "--json", cwd=repo)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# --------------------------------------------------------------------------- /healthz


def test_healthz_reports_a_healthy_repository(served, repo, aim, history, fake, fakeai):
    jules = fake("jules", version_output="jules 0.1.42 needs-login")
    aider = fake("aider", version="0.86.2")
    assert aim("status", cwd=repo, env=fakeai).returncode == 0  # fills the detection cache
    calls = len(jules.calls) + len(aider.calls)
    assert calls > 0
    r = served.get("/healthz")
    assert r.status == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["registry"]["found"] is True
    assert body["rules"]["valid"] is True and "code_generation" in body["rules"]["capabilities"]
    assert body["audit"]["verified"] is True
    lines = day_file(repo).read_text().splitlines()
    assert body["audit"]["records"] == len(lines) and body["audit"]["last_seq"] == len(lines)
    assert body["audit"]["last_record_at"] == json.loads(lines[-1])["timestamp"]
    assert body["last_run"]["run_id"] == history[-1]
    assert body["runs_in_progress"] == 0
    tools = {t["tool_id"]: t for t in body["tools"]}
    assert tools["jules"]["installed"] is True and tools["jules"]["ready"] is False
    assert tools["jules"]["reason"] == "Jules requires login (run 'jules login')"
    assert tools["aider"]["ready"] is True and tools["aider"]["plugin"] == "fakeai"
    assert tools["claude-cli"]["installed"] is False
    assert body["detection"] == "cached by 'aim status'"
    assert len(jules.calls) + len(aider.calls) == calls  # no tool process was started


def test_healthz_reads_only_what_was_appended(served, repo):
    first = served.get("/healthz").json()["audit"]
    n = first["records"]
    assert first["lines_read"] == n and first["rebuilds"] == 0
    log = audit_log(repo)
    for i in range(3):
        log.append(record(f"20251121T000000Z-new{i}"))
    again = served.get("/healthz").json()["audit"]
    assert again["records"] == n + 3 and again["verified"] is True
    assert again["lines_read"] == n + 3 and again["rebuilds"] == 0  # nothing read twice
    log.sync_head()
    assert served.get("/healthz").json()["audit"]["lines_read"] == n + 3


def test_healthz_503_when_the_rules_are_broken(served, repo):
    rules = repo / REGISTRY / RULES_RELPATH
    good = rules.read_text()
    rules.write_text("{ not json")
    r = served.get("/healthz")
    assert r.status == 503
    [reason] = r.json()["reasons"]
    assert reason.startswith(f"coordination rules invalid: {rules}")
    assert r.json()["rules"]["valid"] is False
    rules.write_text(good)
    assert served.get("/healthz").status == 200


def test_healthz_503_when_a_record_was_edited(served, repo, aim):
    assert served.get("/healthz").status == 200
    path = day_file(repo)
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace('"actor":"pipeline"', '"actor":"mallory!"')  # same length
    path.write_text("".join(lines))
    r = served.get("/healthz")
    assert r.status == 503
    reasons = r.json()["reasons"]
    verify = aim("audit", "verify", cwd=repo)
    assert verify.returncode == 4
    expected = [
        "audit chain: " + line.removeprefix("error: ")
        for line in verify.stdout.splitlines()
        if line.startswith("error: ")
    ]
    assert reasons == expected and "edited: record seq 5" in reasons[0]
    assert r.json()["audit"]["verified"] is False


def test_healthz_503_when_the_tail_was_deleted(served, repo, aim):
    assert served.get("/healthz").status == 200
    path = day_file(repo)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))
    r = served.get("/healthz")
    assert r.status == 503
    verify = aim("audit", "verify", cwd=repo)
    assert verify.returncode == 4
    expected = [
        "audit chain: " + line.removeprefix("error: ")
        for line in verify.stdout.splitlines()
        if line.startswith("error: ")
    ]
    assert r.json()["reasons"] == expected
    assert any("cut from its end" in x for x in expected)
    assert r.json()["audit"]["rebuilds"] == 1


def test_the_background_walk_finds_an_edit_hidden_by_an_append(repo, history):
    # an edit in the middle of today's file followed at once by an append: the file
    # only grew, so the incremental check cannot see it; the periodic full walk does
    server = start_server(repo, "--full-check-minutes", "0.002")
    try:
        assert server.get("/healthz").status == 200
        path = day_file(repo)
        text = path.read_text().replace('"actor":"pipeline"', '"actor":"mallory!"', 1)
        path.write_text(text)
        audit_log(repo).append(record("20251121T000000Z-cover"))
        deadline = time.monotonic() + 30
        status = 200
        while time.monotonic() < deadline:
            r = server.get("/healthz")
            status = r.status
            if status == 503:
                break
            time.sleep(0.3)
        assert status == 503
        assert any("edited: record seq 1" in x for x in r.json()["reasons"])
    finally:
        server.stop()


def test_serve_needs_a_registry(tmp_path, aim):
    r = aim("serve", "--port", "0", cwd=tmp_path)
    assert r.returncode == 2 and "no aim registry" in r.stderr and "aim init" in r.stderr


HIDE = """
import sys


class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None


sys.meta_path.insert(0, Hide())
"""


@pytest.mark.parametrize("hidden", [("jinja2",), ("uvicorn", "prometheus_client")])
def test_a_missing_extra_is_named_before_serving(repo, tmp_path, aim, hidden):
    """The server imports jinja2 and prometheus_client only when a page or /metrics is
    asked for; a missing one is still named when it starts (exit 2, the pip command)."""
    site = tmp_path / "hide"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE.format(hidden=set(hidden)))
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    r = aim("serve", "--port", "0", cwd=repo, env=env)
    assert r.returncode == 2, r.stderr
    assert f"aim serve needs {', '.join(hidden)}" in r.stderr
    assert "pip install 'aim-core[serve]'" in r.stderr


# --------------------------------------------------------------------------- /metrics


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict, name: str, sample: str | None = None, **labels: str) -> float:
    fam = families[name]
    want = sample or name
    total = 0.0
    for s in fam.samples:
        if s.name == want and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


def _check_metrics_equal_report(text: str, rep: dict) -> None:
    fam = _families(text)
    runs = rep["runs"]
    assert _value(fam, "aim_runs", "aim_runs_total") == runs
    ok = _value(fam, "aim_run_successes", "aim_run_successes_total")
    assert round(ok / runs, 4) == rep["success_rate"]
    fb = _value(fam, "aim_run_fallbacks", "aim_run_fallbacks_total")
    assert round(fb / runs, 4) == rep["fallback_rate"]
    auth = _value(fam, "aim_run_auth_errors", "aim_run_auth_errors_total")
    assert round(auth / runs, 4) == rep["auth_error_rate"]
    dsum = _value(fam, "aim_run_duration_seconds", "aim_run_duration_seconds_sum")
    dcount = _value(fam, "aim_run_duration_seconds", "aim_run_duration_seconds_count")
    assert dcount == runs and round(dsum / dcount, 3) == rep["avg_duration_sec"]
    for cap, c in rep["by_capability"].items():
        count = _value(
            fam, "aim_run_duration_seconds", "aim_run_duration_seconds_count", capability=cap
        )
        assert count == c["runs"], cap
    for tool, t in rep["by_tool"].items():
        assert _value(fam, "aim_attempts", "aim_attempts_total", tool=tool) == t["attempts"]
        assert (
            _value(fam, "aim_attempt_successes", "aim_attempt_successes_total", tool=tool)
            == t["successes"]
        )
        n = _value(
            fam, "aim_attempt_duration_seconds", "aim_attempt_duration_seconds_count", tool=tool
        )
        assert n == t["attempts"]
    classes = {}
    for s in fam["aim_attempt_failures"].samples:
        if s.name == "aim_attempt_failures_total":
            classes[s.labels["failure"]] = classes.get(s.labels["failure"], 0) + s.value
    assert classes == rep["failure_classes"]
    for name, key in (
        ("aim_success_rate", "success_rate"),
        ("aim_avg_duration_seconds", "avg_duration_sec"),
        ("aim_p95_duration_seconds", "p95_duration_sec"),
        ("aim_fallback_rate", "fallback_rate"),
        ("aim_auth_error_rate", "auth_error_rate"),
    ):
        assert _value(fam, name) == rep[key], name
    assert _value(fam, "aim_verdict", verdict=rep["verdict"]) == 1.0
    assert sum(s.value for s in fam["aim_verdict"].samples) == 1.0
    assert (
        _value(fam, "aim_feedback_answers", "aim_feedback_answers_total")
        == (rep["feedback"]["answers"])
    )
    if rep["feedback"]["satisfaction"] is not None:
        assert _value(fam, "aim_feedback_satisfaction") == rep["feedback"]["satisfaction"]


def test_metrics_equal_the_report(served, repo, aim, history):
    flags = ["--right-tool", "yes", "--quality", "4", "--errors", "3"]
    more = ["--fallback", "yes", "--recommend", "yes", "--ease", "2"]
    assert aim("feedback", "add", history[0], *flags, *more, cwd=repo).returncode == 0
    r = served.get("/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    rep = report(aim, repo)
    assert rep["runs"] == len(history) and rep["failure_classes"]  # a varied history
    _check_metrics_equal_report(r.text, rep)
    fam = _families(r.text)
    lines = day_file(repo).read_text().splitlines()
    assert _value(fam, "aim_audit_chain_records") == len(lines)
    assert _value(fam, "aim_audit_chain_last_seq") == len(lines)
    assert _value(fam, "aim_audit_chain_verified") == 1.0
    assert _value(fam, "aim_attempt_failures", "aim_attempt_failures_total", tool="-") == 3

    # more runs arrive while the server runs: still equal, read incrementally
    log = audit_log(repo)
    log.append(
        record("20251122T000000Z-late1", tool="jules", success=False, failure="rate_limited")
    )
    log.append(record("20251122T000000Z-late1", duration=99.0))
    log.append(record("20251122T000001Z-late2", capability="linting", tool="ruff"))
    r = served.get("/metrics")
    _check_metrics_equal_report(r.text, report(aim, repo))
    assert served.get("/api/report").json() == report(aim, repo)


# --------------------------------------------------------------------------- read-only


def _paths(repo: Path, run_id: str) -> list[str]:
    from aim_core.serve.app import Server

    server = Server(root=repo, registry=repo / REGISTRY, environ={}, key=None)
    paths = [route.path for route in server.routes()]
    return [p.replace("{run_id}", run_id).replace("{name}", "aim.css") for p in paths]


def test_no_route_writes(served, repo, history):
    # a dead run's entry in the lock table: a command would restore it, the server must not
    runs_state = state_dir(repo) / "runs"
    active = runs_state / "active"
    active.mkdir(parents=True, exist_ok=True)
    (active / "20251120T000000Z-dead00.json").write_text(
        json.dumps({"run_id": "20251120T000000Z-dead00", "pid": 999999, "scope": ["src/a.py"]})
    )
    (active / "20251120T000000Z-dead00.lock").write_text("")
    before = tree_state(repo), tree_state(runs_state)
    paths = _paths(repo, history[0])
    assert {"/", "/healthz", "/metrics", f"/runs/{history[0]}", "/static/aim.css"} <= set(paths)
    for path in paths:
        assert served.get(path).status == 200, path
        assert served.request(path, "HEAD").status == 200, path
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            r = served.request(path, method)
            assert r.status == 405, (method, path)
            assert r.headers["allow"] == "GET, HEAD"
    assert (tree_state(repo), tree_state(runs_state)) == before


# --------------------------------------------------------------------------- access


def test_off_loopback_needs_a_token(repo, history):
    for argv, env, expect in (
        (["--host", "0.0.0.0"], {}, "--host 0.0.0.0: the audit holds prompts and file names"),
        (["--host", "0.0.0.0", "--token", "short"], {}, "--token: use at least 16 characters"),
        (["--host", "::"], {"AIM_SERVE_TOKEN": ""}, "pass --token TEXT or set AIM_SERVE_TOKEN"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "aim_core", "serve", "--port", "0", *argv],
            cwd=repo,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
            env={**__import__("os").environ, **env},
        )
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert expect in r.stderr and "aim serve:" not in r.stdout


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_token_is_checked_on_every_request(repo, history, how):
    args, env = (["--token", TOKEN], {}) if how == "flag" else ([], {"AIM_SERVE_TOKEN": TOKEN})
    server = start_server(repo, *args, env=env)
    try:
        for path in ("/", "/healthz", "/metrics", f"/runs/{history[0]}", "/api/live"):
            r = server.get(path)
            assert r.status == 401, path
            assert "Authorization: Bearer TOKEN" in r.json()["error"]
        assert server.get("/healthz", headers={"Authorization": "Bearer wrong"}).status == 401
        assert server.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}x"}).status == 401
        ok = server.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status == 200
        # a browser: ?token= once, then a cookie; the token leaves the URL
        r = server.get(f"/?page=2&token={TOKEN}")
        assert r.status == 303 and r.headers["location"] == "/?page=2"
        cookie = r.headers["set-cookie"].split(";")[0]
        assert (
            "HttpOnly" in r.headers["set-cookie"] and "SameSite=strict" in r.headers["set-cookie"]
        )
        assert server.get("/", headers={"Cookie": cookie}).status == 200
        assert server.get("/", headers={"Cookie": "aim_serve_session=nope"}).status == 401
        assert (
            server.request("/healthz", "POST", headers={"Authorization": f"Bearer {TOKEN}"}).status
            == 405
        )
    finally:
        server.stop()


def test_a_foreign_host_header_is_refused_on_loopback(served):
    assert served.get("/healthz", headers={"Host": "attacker.example"}).status == 421
    assert served.get("/healthz", headers={"Host": "localhost:1234"}).status == 200


def test_pages_carry_a_strict_content_security_policy(served):
    r = served.get("/")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    # everything the page loads is served by aim itself
    for src in re.findall(r'(?:src|href)="([^"]+)"', r.text):
        assert src.startswith(("/", "data:")), src
        if src.startswith("/static/"):
            assert served.get(src).status == 200


# --------------------------------------------------------------------------- pages


def test_run_page_shows_records_checks_and_the_redacted_log(repo, history, monkeypatch):
    secret_value = "hunter2-" + "0123456789"
    monkeypatch.setenv("DEPLOY_API_KEY", secret_value)
    rid = history[6]  # a run with checks
    token = SAMPLES["github-pat"]
    log = repo / REGISTRY / "AIM_runs" / f"{rid}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"21:45:00 $ aider --message x\n21:45:01 pushed with {token}\n{secret_value}\n")
    audit_log(repo).append(record(rid, prompt="<script>alert(1)</script> please"))
    server = start_server(repo)
    try:
        r = server.get(f"/runs/{rid}")
        assert r.status == 200
        html = r.text
        assert html.count('<tr data-seq="') == 2
        assert "tests/" in html and "3 passed" in html  # the check
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
        assert "$ aider --message x" in html
        assert token not in html and secret_value not in html and "[REDACTED]" in html
        assert server.get("/runs/20990101T000000Z-none00").status == 404
        assert server.get("/runs/..%2F..%2Fetc%2Fpasswd").status == 404
        api = server.get(f"/api/runs/{rid}").json()
        assert [x["seq"] for x in api["records_list"]] == sorted(
            x["seq"] for x in api["records_list"]
        )
    finally:
        server.stop()


def test_runs_are_paginated_newest_first(repo):
    log = audit_log(repo)
    ids = [f"20251120T2100{i:02d}Z-{i:06x}" for i in range(120)]
    for rid in ids:
        log.append(record(rid))
    server = start_server(repo)
    try:
        first = server.get("/").text
        assert first.count('<tr data-run="') == 50 and "page 1 of 3" in first
        assert first.index(ids[-1]) < first.index(ids[-2])
        third = server.get("/?page=3").text
        assert third.count('<tr data-run="') == 20 and ids[0] in third
        api = server.get("/api/runs?page=3").json()
        assert api["pages"] == 3 and api["runs"][-1]["run_id"] == ids[0]
    finally:
        server.stop()


def test_live_endpoint_lists_runs_in_progress(served, repo):
    from aim_core.runlocks import RunTable

    table = RunTable(state_dir(repo) / "runs")
    run = table.join(
        "20251123T000000Z-live00", repo, ["src/b.py"], info={"workstream_id": "ws-live"}
    )
    try:
        live = served.get("/api/live").json()
        assert [e["run_id"] for e in live["active"]] == ["20251123T000000Z-live00"]
        assert live["active"][0]["workstream_id"] == "ws-live"
        assert served.get("/healthz").json()["runs_in_progress"] == 1
    finally:
        run.release()
    assert served.get("/api/live").json()["active"] == []
