"""Verified work: what a passing `verify` check and a race cost.

A repository made by `aim init` (git) with `calc.py`, its pytest test and two fake
tools (`racer1`, `racer2`: shell scripts that sleep, then write calc.py) routed
for a bench capability; the checks run through the first-party pytest plugin and
the venv's real pytest.

* A passing check: `aim run` of a workstream with `verify.tests` minus the same
  run without it, against running the same pytest command directly (the plugin's
  argv and environment). Budget: <= 1.2x.
* A race of two tools, the first wrong and the second right (each sleeps S): the
  wall time of `aim run --race 2` against the winner's own time -- the tool run
  directly, then its pytest -- (budget <= 1.1x; 5 interleaved pairs after one
  thrown away, as the other rows do: with 3 and none, five runs of the same code
  spread 1.00-1.14x), and against the sequential run of the same tools
  (information: the first's failed edit, then the fallback).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess

from _common import AIM, BIN, Result, World, cli_main, interleaved, log, median, time_argv

CHECK_BUDGET = 1.2
RACE_BUDGET = 1.1
CALC = "def add(a, b):\n    return 0\n"
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
PYTEST_ARGV = ["pytest", "-q", "-p", "no:cacheprovider", "--", "tests/test_calc.py"]


def tool_script(sleep: float, text: str) -> str:
    return f"#!/bin/sh\nsleep {sleep}\ncat > calc.py <<'EOF'\n{text}EOF\n"


def make_world(world: World, sleep: float) -> None:
    world.add_bench_plugin("racer1", "racer1", "racer1", "bench_generation")
    from _common import write_plugin_dist

    write_plugin_dist(world.site, "racer2", "racer2", "racer2", "bench_generation")
    os.symlink(BIN / "pytest", world.bin / "pytest")  # the venv's pytest, on the tools' PATH
    world.init_repo()
    repo = world.repo
    (repo / "calc.py").write_text(CALC)
    (repo / "conftest.py").write_text("")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_calc.py").write_text(TEST)
    from aim_core.paths import RULES_RELPATH
    from aim_core.registry import REGISTRY_RELPATH

    rules_path = repo / REGISTRY_RELPATH / RULES_RELPATH
    rules = json.loads(rules_path.read_text())
    rules["capabilities"]["bench_generation"] = {"primary": "racer1", "fallback": ["racer2"]}
    rules["capabilities"]["testing"] = {"primary": "pytest", "fallback": []}
    rules_path.write_text(json.dumps(rules, indent=2))
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True, env=world.env)
    subprocess.run([*git, "commit", "-qm", "bench"], cwd=repo, check=True, env=world.env)
    set_tools(world, sleep, WRONG, RIGHT)


def set_tools(world: World, sleep: float, first: str, second: str) -> None:
    for name, text in (("racer1", first), ("racer2", second)):
        path = world.bin / name
        path.write_text(tool_script(sleep, text))
        path.chmod(0o755)


def workstream(world: World, name: str, *, verify: bool) -> str:
    data = {
        "id": name,
        "capability": "bench_generation",
        "files_scope": ["calc.py"],
        "tasks": ["make add() add"],
        "capability_payload": {"max_repairs": 0, "max_retries": 0, "timeout_ms": 120000},
    }
    if verify:
        data["verify"] = {"tests": ["tests/test_calc.py"]}
    return str(world.write_workstream(name, data))


def reset(world: World) -> None:
    (world.repo / "calc.py").write_text(CALC)


def timed_run(world: World, *args: str) -> float:
    reset(world)
    return time_argv([AIM, "run", *args], env=world.env, cwd=world.repo)


def run(args: argparse.Namespace) -> list[Result]:
    n = 3 if args.quick else 7
    n_race = 2 if args.quick else 5
    n_seq = 1 if args.quick else 3
    sleep = 5.0
    with World("verify") as world:
        make_world(world, sleep)
        env, repo = world.env, world.repo
        checked = workstream(world, "ws-checked", verify=True)
        plain = workstream(world, "ws-plain", verify=False)

        set_tools(world, 0, RIGHT, RIGHT)  # a quick, right tool: the check passes
        world.aim("run", checked)  # warms the detection cache
        log(f"a passing check: aim run with and without verify, and pytest directly; {n} runs")
        # pytest as a user runs it: its bytecode cached (here under the bench's prefix),
        # as aim's checks cache theirs under aim's own
        pytest_env = dict(env)
        times = interleaved(
            {
                "checked": lambda: timed_run(world, checked),
                "plain": lambda: timed_run(world, plain),
                "pytest": lambda: time_argv(PYTEST_ARGV, env=pytest_env, cwd=repo),
            },
            n,
        )
        check_cost = median(times["checked"]) - median(times["plain"])
        pytest_s = median(times["pytest"])

        set_tools(world, sleep, WRONG, RIGHT)
        # the tools changed, so the next command detects them again, and the fake tools
        # sleep on --version too: that is not the race's time (it was in the first
        # race of earlier runs of this script)
        world.aim("status", "--refresh")
        log(f"a race of two tools sleeping {sleep:g} s, the first wrong; {n_race} runs")
        winner = [str(world.bin / "racer2"), "calc.py"]
        race_times = interleaved(
            {
                "race": lambda: timed_run(world, "--race", "2", checked),
                "winner": lambda: (
                    _reset_then(world, winner, env)
                    + time_argv(PYTEST_ARGV, env=pytest_env, cwd=repo)
                ),
            },
            n_race,
        )
        log(f"the same tools one after the other (information); {n_seq} runs")
        race_times["sequential"] = [timed_run(world, checked) for _ in range(n_seq)]
        last = world.aim("audit", "query", "--format", "json").stdout.splitlines()[-1]
        won = json.loads(last)
    race, seq, own = (median(race_times[k]) for k in ("race", "sequential", "winner"))
    return [
        Result(
            key="verify_check",
            what="a passing verify check (pytest directly = base)",
            aim=check_cost * 1000,
            base=pytest_s * 1000,
            unit="ms",
            budget=f"<= {CHECK_BUDGET:g}x",
            ok=check_cost <= CHECK_BUDGET * pytest_s,
            notes=[
                f"aim run with verify {median(times['checked']) * 1000:.0f} ms, without "
                f"{median(times['plain']) * 1000:.0f} ms, median of {n} interleaved runs"
            ],
        ),
        Result(
            key="race",
            what="race of 2 (the winner run directly + its pytest = base)",
            aim=race,
            base=own,
            unit="s",
            budget=f"<= {RACE_BUDGET:g}x",
            ok=race <= RACE_BUDGET * own,
            notes=[
                f"the same tools one after the other: {seq:.2f} s (race/sequential "
                f"{race / seq:.2f}x); each tool sleeps {sleep:g} s; {n_race} interleaved "
                f"runs; the last record: {won.get('tool_id')} "
                f"success={won['result']['success']}"
            ],
        ),
    ]


def _reset_then(world: World, argv: list[str], env: dict[str, str]) -> float:
    reset(world)
    return time_argv(argv, env=env, cwd=world.repo)


if __name__ == "__main__":
    cli_main(run, __doc__)
