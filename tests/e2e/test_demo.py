"""`make demo` end to end: scripts/demo.py as the Makefile runs it, with the real aider
and claude code (from the cache ``make e2e`` filled) against the local stub model, and
without them when they cannot be installed."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import REGISTRY, SCRUBBED

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.py"
_spec = importlib.util.spec_from_file_location("demo_ai", ROOT / "scripts" / "demo_ai.py")
demo_ai = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_ai)  # (scripts/ is not put on sys.path for every test)
RIGHT_MEDIAN, WRONG_MEDIAN = demo_ai.RIGHT_MEDIAN, demo_ai.WRONG_MEDIAN


def cache_of(tool_dirs) -> Path:
    """$AIM_E2E_CACHE as `make e2e` used it: the directory holding aider-V/ and claude-V/."""
    aider = tool_dirs["aider"].parent.parent  # CACHE/aider-V/bin
    claude = tool_dirs["claude"].parent.parent.parent  # CACHE/claude-V/node_modules/.bin
    assert aider == claude, (aider, claude)
    return aider


def run_demo(workdir: Path, tool_dirs, cache: Path) -> subprocess.CompletedProcess:
    """scripts/demo.py --workdir WORKDIR, the aim venv on PATH and none of the e2e tools
    (the demo finds its own), no real key, aim's installed plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.pop("AIM_LOAD_PLUGINS", None)
    hidden = {str(d) for d in tool_dirs.values()}
    rest = [p for p in env["PATH"].split(os.pathsep) if p and p not in hidden]
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), *rest])
    env["AIM_E2E_CACHE"] = str(cache)
    return subprocess.run(
        [sys.executable, str(DEMO), "--workdir", str(workdir)],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def code_generation_runs(repo: Path) -> list[list[tuple]]:
    """The code_generation attempts, grouped by run in order: (tool, failure, strategy)."""
    runs: dict[str, list[tuple]] = {}
    for f in sorted((repo / REGISTRY / "AIM_audit").glob("*/audit.jsonl")):
        for line in f.read_text().splitlines():
            record = json.loads(line)
            if record["capability"] != "code_generation":
                continue
            content = record["result"].get("content") or {}
            runs.setdefault(record["run_id"], []).append(
                (record["tool_id"], record["failure"], content.get("strategy"))
            )
    return list(runs.values())


def test_the_demo_falls_back_from_a_wrong_edit_and_races_to_the_verified_one(tmp_path, tool_dirs):
    r = run_demo(tmp_path / "demo", tool_dirs, cache_of(tool_dirs))

    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    out = r.stdout
    assert "The model is a LOCAL STUB on http://127.0.0.1:" in out
    assert "NOT a real model" in out
    assert "#   ready: aider " in out
    assert "ANTHROPIC_API_KEY" in out and "OPENAI_API_KEY" in out  # how to use real ones
    assert re.search(r"^aider +Yes +aider \d", out, re.MULTILINE)  # aim status saw them
    assert re.search(r"^claude-cli +Yes +\d", out, re.MULTILINE)

    repo = tmp_path / "demo" / "demo-project"
    fallback, race = code_generation_runs(repo)
    # aider's median() forgets to sort: its check fails, the edit is undone; claude's kept
    assert fallback == [
        ("aider", "verify_failed", "sequential"),
        ("claude-cli", None, "sequential"),
    ]
    # the race: claude (wrong this time) usually finishes first and fails its check;
    # aider's edit wins either way (were claude slower, it would be stopped: lost_race)
    race = {tool: (failure, strategy) for tool, failure, strategy in race}
    assert race["aider"] == (None, "race")
    assert race["claude-cli"] in (("verify_failed", "race"), ("lost_race", "race"))
    assert "[INFO] aider won the race" in r.stderr + out
    calc = (repo / "src" / "calc.py").read_text()
    assert RIGHT_MEDIAN in calc and WRONG_MEDIAN not in calc
    assert "audit chain intact: 6 records" in out
    assert "Verified work (2 runs had verify checks)" in out
    # aider's in the fallback run (and claude's in the race): the table, then --verification
    failed = 2 if race["claude-cli"][0] == "verify_failed" else 1
    assert out.count("failure=verify_failed") == 2 * failed
    # nothing left of the race, and nothing of the tools in the repository
    worktrees = subprocess.run(
        ["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True
    ).stdout.splitlines()
    assert len(worktrees) == 1, worktrees
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert " M src/calc.py" in status
    assert [line for line in status if ".aider" in line or ".claude" in line] == []


def test_without_the_tools_the_demo_says_so_and_still_exits_0(tmp_path, tool_dirs):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")  # the installer cannot make its cache here

    r = run_demo(tmp_path / "demo", tool_dirs, blocked)

    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "#   aider and claude code could not be installed" in r.stdout
    assert "## The main job: code_generation, without AI tools" in r.stdout
    assert "No tool could run capability 'code_generation'" in r.stdout + r.stderr
    assert "(exit 3)" in r.stdout
