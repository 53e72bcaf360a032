"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright
(``executable_path=/usr/bin/chromium``; Playwright never downloads a browser here).

The verdict and success rate on the page equal ``aim audit report --json``; a run's
page shows its records; a run started while the page is open appears in it without
a reload. A screenshot of each page is saved under ``test-artifacts/browser/`` (or
``$AIM_TEST_ARTIFACTS``). ``make test`` installs Chromium with apt-get where it can;
where it cannot, these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .._serve import REGISTRY, audit_log, record, seed_history, start_server

CHROMIUM = os.environ.get("AIM_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(
    os.environ.get("AIM_TEST_ARTIFACTS")
    or Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
)

pytest.importorskip("starlette", reason="aim serve needs the serve extra (make install)")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing (make install adds it)"
)
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's (apt-get install -y chromium "
        "chromium-driver; make test does it where apt-get is usable) or set AIM_CHROMIUM",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser():
    pw = sync_api.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    except Exception as e:  # a chromium that cannot start here is a skip, not a failure
        pw.stop()
        pytest.skip(f"{CHROMIUM} does not start: {str(e).splitlines()[0]}")
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    p.set_default_timeout(30_000)
    yield p
    seen = list(errors)  # before closing, which aborts the poll in flight
    context.close()
    assert seen == []


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def report(repo: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "aim_core", "audit", "report", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def served(repo, aim):
    ids = seed_history(repo)
    flags = ["--ease", "4", "--right-tool", "yes", "--quality", "4", "--errors", "3"]
    r = aim("feedback", "add", ids[0], *flags, "--fallback", "yes", "--recommend", "yes", cwd=repo)
    assert r.returncode == 0, r.stderr
    server = start_server(repo)
    server.ids = ids
    yield server
    server.stop()


def test_dashboard_shows_the_reports_verdict_and_success_rate(page, served, repo):
    page.goto(served.url)
    rep = report(repo)
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-value") == rep["verdict"]
    assert verdict.inner_text() == rep["verdict"].upper()
    reasons = page.locator("#reasons li").all_inner_texts()
    assert reasons == rep["reasons"]
    rate = page.locator("#success-rate")
    assert float(rate.get_attribute("data-value")) == rep["success_rate"]
    assert rate.inner_text() == f"{rep['success_rate'] * 100:.1f}%"
    assert page.locator("#runs-count").inner_text() == str(rep["runs"])
    satisfaction = page.locator("#satisfaction").get_attribute("data-value")
    assert float(satisfaction) == rep["feedback"]["satisfaction"]
    assert page.locator("#chain-status").get_attribute("data-value") == "verified"
    # the guide's targets, the charts drawn by the server, the tables
    assert page.locator("#metrics tr[data-metric='success_rate'] td").nth(1).inner_text() == (
        f"{rep['success_rate'] * 100:.1f}%"
    )
    assert page.locator("svg.chart").count() == 2
    assert page.locator("#by-tool tbody tr").count() == len(rep["by_tool"])
    # each tool's verified pass rate and cost, as the report has them
    rows = {
        cells[0]: cells
        for cells in (
            row.locator("td").all_inner_texts() for row in page.locator("#by-tool tbody tr").all()
        )
    }
    claude = rep["by_tool"]["claude-cli"]
    assert rows["claude-cli"][4] == f"${claude['usage']['cost_usd']:.4f}"
    aider = rep["by_tool"]["aider"]
    assert rows["aider"][3] == f"{aider['verified_pass_rate'] * 100:.1f}%"
    assert page.locator("#recent tbody tr[data-run]").count() == rep["runs"]
    shot(page, "dashboard")


def test_a_run_page_shows_its_records(page, served, repo):
    rid = served.ids[1]  # jules timed out, then aider did the work
    page.goto(served.url)
    page.click(f"#recent a[href='/runs/{rid}']")
    page.wait_for_url(f"**/runs/{rid}")
    lines = [
        json.loads(x)
        for f in sorted((repo / REGISTRY / "AIM_audit").glob("*/audit.jsonl"))
        for x in f.read_text().splitlines()
    ]
    mine = [x for x in lines if x["run_id"] == rid]
    rows = page.locator("#records tbody tr[data-seq]")
    assert rows.count() == len(mine) == 2
    for i, rec in enumerate(mine):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells[0] == str(rec["seq"]) and cells[3] == rec["tool_id"]
        assert cells[4] == ("success" if rec["result"]["success"] else "failed")
    assert page.locator("#run-result").inner_text() == "success"
    assert "aider (fallback from jules)" in page.locator("dl.facts").inner_text()
    shot(page, "run")


def test_a_run_started_while_the_page_is_open_appears_without_a_reload(
    page, served, repo, fake, fakeai
):
    from ..test_run import write_ws

    page.goto(served.url)
    page.evaluate("window.__aim_marker = 42")
    runs_before = int(page.locator("#runs-count").inner_text())
    fake("aider", sleep=5, writes={"src/target.py": "x = 1\n"})
    ws = write_ws(repo, "ws-live")
    env = {**os.environ, **fakeai}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aim_core", "run", ws],
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        row = page.locator("#active tbody tr[data-run]")
        row.first.wait_for(state="visible", timeout=30_000)
        rid = row.first.get_attribute("data-run")
        assert "ws-live" in row.first.inner_text()
        shot(page, "live-in-progress")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        page.locator(f"#recent tbody tr[data-run='{rid}']").wait_for(timeout=30_000)
        page.locator("#active tbody tr.empty").wait_for(timeout=30_000)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert page.evaluate("window.__aim_marker") == 42  # the same page: never reloaded
    assert int(page.locator("#runs-count").inner_text()) == runs_before + 1
    rep = report(repo)
    assert float(page.locator("#success-rate").get_attribute("data-value")) == rep["success_rate"]
    assert "ws-live" in page.locator(f"#recent tbody tr[data-run='{rid}']").inner_text()
    shot(page, "live-done")


def test_a_page_for_each_route_renders_offline(page, served, repo):
    """No request leaves the server: every resource the pages load comes from it."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.goto(served.url)
    page.goto(served.url + f"runs/{served.ids[6]}")
    assert page.locator("#checks tbody tr").count() == 1
    audit_log(repo).append(record(served.ids[6], success=False, failure="verify_failed"))
    page.reload()
    assert page.locator("#records tbody tr[data-seq]").count() == 2
    assert seen and all(u.startswith(served.url) or u.startswith("data:") for u in seen), seen
