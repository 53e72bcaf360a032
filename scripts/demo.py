#!/usr/bin/env python3
"""`make demo`: aim's main job in a throwaway repository, command by command.

Copies examples/demo-project to a temporary git repository, runs `aim init`,
then the commands a team runs every day: status, validate, a linting
workstream (ruff fixes a real file), a testing workstream (pytest). Then the
main job, with the real, pinned aider and claude code (installed once, outside
the clone, as `make e2e` does; see scripts/demo_ai.py) talking to a local stub
model: a code_generation workstream whose `verify` test fails on the first
tool's edit (rolled back) and passes on the fallback's; the same workstream as
a race of both tools; then the audit -- query, the failed checks, the hash
chain, the report. Where the tools cannot be installed (offline) it says so and
runs the guide's code_generation workstream with whatever this machine has.

Usage: scripts/demo.py [--workdir DIR]  (default: a new temporary directory).
Exits non-zero only if a command fails in a way it should not.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import demo_ai

ROOT = Path(__file__).resolve().parent.parent
GIT = ["git", "-c", "user.name=aim demo", "-c", "user.email=demo@example.invalid"]
WS = "workstreams/median-calc.json"

INIT = [(["aim", "init"], {0})]
EVERYDAY = [
    (["aim", "status"], {0}),
    (["aim", "validate"], {0}),
    (["aim", "run", "workstreams/lint-calc.json"], {0}),
    (["git", "diff", "--stat"], {0}),
    (["aim", "run", "workstreams/test-calc.json"], {0}),
    (["git", "commit", "-qam", "lint fixes by ruff"], {0}),
]
MAIN_JOB = [
    (["aim", "run", WS], {0}),
    (["git", "diff", "src/calc.py"], {0}),
]
RACE = [
    (["git", "checkout", "src/calc.py"], {0}),  # back to before the first run
    (["aim", "run", "--race", "2", WS], {0}),
    (["git", "diff", "--stat"], {0}),
]
# 0 when an AI tool is installed and works, 1 when it fails, 3 when none is installed
OFFLINE_JOB = [(["aim", "run", "workstreams/staging_test/ws-aim-validation.json"], {0, 1, 3})]
AUDIT = [
    (["aim", "audit", "query"], {0}),
    (["aim", "audit", "query", "--verification", "failed"], {0}),
    (["aim", "audit", "verify"], {0}),
    (["aim", "audit", "report"], {0}),
]


class StepFailed(Exception):
    """A command exited with a code the demo does not expect."""


def run_steps(steps, cwd: Path, env: dict[str, str] | None = None) -> None:
    """Print and run each ``(argv, expected exit codes)``; StepFailed on another code."""
    for argv, ok in steps:
        print(f"$ {shlex.join(argv)}", flush=True)
        if argv[0] == "git":
            argv = [*GIT, *argv[1:]]
        r = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
        print(f"(exit {r.returncode})\n", flush=True)
        if r.returncode not in ok:
            raise StepFailed(f"`{' '.join(argv)}` exited {r.returncode}")


def section(title: str, text: str = "") -> None:
    print(f"## {title}", flush=True)
    if text:
        print(text, flush=True)
    print(flush=True)


def make_repository(workdir: Path) -> Path:
    """examples/demo-project copied to WORKDIR/demo-project, a git repository with one commit."""
    work = workdir / "demo-project"
    shutil.copytree(ROOT / "examples" / "demo-project", work)
    subprocess.run([*GIT, "init", "-q"], cwd=work, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=work, check=True)
    subprocess.run([*GIT, "commit", "-qm", "demo project"], cwd=work, check=True)
    return work


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where to make the demo repository")
    args = parser.parse_args(argv)
    if shutil.which("aim") is None:
        print("demo: the `aim` command is not on PATH; run `make install` first", file=sys.stderr)
        return 2
    began = time.monotonic()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aim-demo-"))
    if (workdir / "demo-project").exists():
        print(f"demo: {workdir / 'demo-project'} exists; give another --workdir", file=sys.stderr)
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    work = make_repository(workdir)
    print(f"# demo repository: {work}", flush=True)
    print("# AI tools: the pinned aider and claude code (installed on first use)", flush=True)
    tools_path, note = demo_ai.install_tools()
    print(f"#   {note}\n", flush=True)
    try:
        run_steps(INIT, work)
        if tools_path is None:
            run_steps(EVERYDAY, work)
            section("The main job: code_generation, without AI tools", demo_ai.OFFLINE)
            run_steps(OFFLINE_JOB, work)
            section("The audit")
            run_steps(AUDIT, work)
        else:
            with_ai_tools(work, workdir, tools_path)
    except StepFailed as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    print(f"# done in {time.monotonic() - began:.0f} s; the repository stays at {work}")
    return 0


def with_ai_tools(work: Path, workdir: Path, tools_path: str) -> None:
    """The everyday commands, then the verified code_generation workstream, its race and
    the audit, with the real aider and claude code talking to the stub model."""
    home = workdir / "home"  # the tools' HOME: nothing of the user's is read or written
    home.mkdir(exist_ok=True)
    with demo_ai.StubModel() as model:
        model.configure(work, home)
        env = model.environ(tools_path, home)
        section("The AI tools and their model", demo_ai.BANNER.format(url=model.url, home=home))
        run_steps(EVERYDAY, work, env)
        section("The main job: code_generation with verified work", demo_ai.MAIN_JOB)
        run_steps(MAIN_JOB, work, env)
        section("The same workstream as a race", demo_ai.RACE)
        model.answers(right="aider")
        run_steps(RACE, work, env)
        section("The audit: every attempt, its checks, the hash chain, the report")
        run_steps(AUDIT, work, env)
        calls = model.requests()
    print(
        f"# the stub model answered {calls['openai']} OpenAI call(s) (aider) and "
        f"{calls['anthropic']} Anthropic call(s) (claude code)\n",
        flush=True,
    )
    section("Real models instead of the stub", demo_ai.REAL_MODEL)


if __name__ == "__main__":
    sys.exit(main())
