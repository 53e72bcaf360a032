"""`aim status --refresh` with five fake tools that each sleep 300 ms before answering
`--version`: the wall time must be that of the slowest detection, not the sum.

Rule: wall <= 1.5x (the full `aim status` from a warm detection cache + the slowest
tool's `--version` run directly), both measured in this run: a refresh does all the
full command does (imports, plugins, rules) plus the detection. (The status
snapshot that a warm `aim status` prints from is removed before each of those
runs.) Detecting the five one after another would cost that status + the sum of
the five, about 3x here, so the rule tells the two apart with room for noise.
The tools are found by the installed first-party plugins, one tool each
(claude's readiness also runs `claude auth status`).
"""

from __future__ import annotations

import argparse
import shutil

from _common import (
    AIM,
    FIRST_PARTY_PROGRAMS,
    Result,
    cli_main,
    interleaved,
    launch,
    log,
    median,
    time_argv,
)
from bench_status import warm_world

BUDGET = 1.5
SLEEP_S = 0.3


def run(args: argparse.Namespace) -> list[Result]:
    n = 3 if args.quick else 7
    with warm_world("refresh") as world:
        env, repo = world.env, world.repo
        for program in FIRST_PARTY_PROGRAMS:
            world.fake_tool(program, version_sleep=SLEEP_S)
        version_args = {"jules": "version"}
        log(f"each fake tool's --version run directly, {n} runs")
        direct = interleaved(
            {
                p: (
                    lambda p=p: time_argv(
                        [str(world.bin / p), version_args.get(p, "--version")], env=env
                    )
                )
                for p in FIRST_PARTY_PROGRAMS
            },
            n,
        )
        world.aim("status")

        def warm_full() -> float:
            shutil.rmtree(world.cache / "status", ignore_errors=True)
            return time_argv([AIM, "status"], env=env, cwd=repo)

        log(f"aim status --refresh vs the full aim status from a warm cache, {n} runs each")
        times = interleaved(
            {
                "refresh": lambda: time_argv([AIM, "status", "--refresh"], env=env, cwd=repo),
                "warm": warm_full,
            },
            n,
        )
        probe = launch(["status", "--refresh"], env=env, cwd=repo)
    slowest = max(median(v) for v in direct.values())
    total = sum(median(v) for v in direct.values())
    warm, refresh = median(times["warm"]), median(times["refresh"])
    base = warm + slowest
    return [
        Result(
            key="refresh",
            what="aim status --refresh (5 tools x 0.3 s)",
            aim=refresh,
            base=base,
            unit="s",
            budget=f"<= {BUDGET:g}x (full warm status + slowest tool)",
            ok=refresh <= BUDGET * base,
            notes=[
                f"baseline = full status from the warm cache {warm * 1000:.0f} ms + slowest "
                f"`--version` "
                f"{slowest * 1000:.0f} ms; in sequence it would be {(warm + total):.2f} s "
                f"({(warm + total) / base:.1f}x)",
                f"{probe['spawns']} processes started by one refresh (5 versions + "
                "claude auth status)",
            ],
        )
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
