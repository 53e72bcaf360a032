"""`aim run` overhead over invoking the same fake tool directly (budget: 100 ms at the
median), for a tool that prints a line and for one that prints 10 MB.

A repository made by `aim init` (git), the five first-party plugins installed plus
one that serves a `bench_generation` capability with a fake tool. The workstream
routes to it; the baseline runs the same executable with the same arguments and
working directory (read back from the tool's own call log), directly, its output
read through a pipe to the end.

`aim run` is timed as a user runs it: the console script, served by aim's run server
(aim_core/resident.py) that the warm-up run started. The same command by itself
(``AIM_RESIDENT=0``: Python's start and every import paid each time) is timed in the
same rounds and shown for information.
"""

from __future__ import annotations

import argparse
import json
import subprocess

from _common import AIM, Result, World, cli_main, interleaved, launch, log, median, time_argv
from _common import workstream as make_workstream

BUDGET_MS = 100.0
FIRST_PARTY_PLUGINS = (
    "aider",
    "claude",
    "codex",
    "gemini",
    "jules",
    "opencode",
    "pylint",
    "pytest",
    "ruff",
)
FLOOD_BYTES = 10 << 20


def run(args: argparse.Namespace) -> list[Result]:
    n = 7 if args.quick else 21
    n_flood = 3 if args.quick else 9  # noisy: each run moves 10 MB through pipes
    with World("run") as world:
        world.add_bench_plugin("benchtool", "benchtool", "benchtool", "bench_generation")
        world.init_repo()
        tool = world.fake_tool(
            "benchtool", stdout="edited src/bench.txt\n", write_argv_files="print('hi')\n"
        )
        ws = world.write_workstream(
            "ws-bench",
            make_workstream("ws-bench-run", "bench_generation", ["src/bench.txt"]),
        )
        env, repo = world.env, world.repo
        world.aim("run", str(ws))  # fills the detection cache, as any earlier command does
        server = world.run_server()  # the run that command started
        call = tool.work_calls[-1]
        direct = [str(tool.path), *call["argv"]]
        alone_env = {**env, "AIM_RESIDENT": "0"}
        log(f"aim run vs the tool run directly, {n} runs each")
        times = interleaved(
            {
                "aim": lambda: time_argv([AIM, "run", str(ws)], env=env, cwd=repo),
                "direct": lambda: time_argv(direct, env=env, cwd=call["cwd"]),
                "alone": lambda: time_argv([AIM, "run", str(ws)], env=alone_env, cwd=repo),
            },
            n,
            warmup=2,
        )
        probe = launch(["run", str(ws)], env=env, cwd=repo)
        spawned = probe["spawn_events"]
        imported = [m for m in probe["modules"] if "." not in m]
        tops = {"aim_bench_benchtool", "click", *(f"aim_{p}" for p in FIRST_PARTY_PLUGINS)}
        last = world.aim("audit", "query", "--format", "json").stdout.splitlines()[-1]
        records = json.loads(last)
        loaded = [
            p["name"]
            for p in json.loads(world.aim("plugins", "--json").stdout)
            if p["status"] == "loaded"
        ]

        tool.configure(flood_bytes=FLOOD_BYTES, write_argv_files="print('hi')\n")
        log(f"the same with a tool that prints 10 MB, {n_flood} runs each")
        flood = interleaved(
            {
                "aim": lambda: time_argv([AIM, "run", str(ws)], env=env, cwd=repo),
                "direct": lambda: time_argv(
                    direct, env=env, cwd=call["cwd"], stdout=subprocess.PIPE
                ),
            },
            n_flood,
            warmup=0,
        )
    aim, base = median(times["aim"]), median(times["direct"])
    overhead_ms = (aim - base) * 1000
    alone_ms = (median(times["alone"]) - base) * 1000
    served = f"served by aim's run server (pid {server})" if server else "no run server started"
    aim_f, base_f = median(flood["aim"]), median(flood["direct"])
    overhead_f = (aim_f - base_f) * 1000
    return [
        Result(
            key="run",
            what="aim run overhead (tool run directly = base)",
            aim=aim * 1000,
            base=base * 1000,
            unit="ms",
            budget=f"aim - base <= {BUDGET_MS:g} ms",
            ok=overhead_ms <= BUDGET_MS,
            notes=[
                f"{served}; by itself (AIM_RESIDENT=0) the overhead is {alone_ms:.0f} ms",
                f"overhead {overhead_ms:.0f} ms at the median of {n} interleaved runs; "
                f"{len(loaded)} plugins loaded ({', '.join(loaded)}); the last run's record: "
                f"success={records['result']['success']}",
                f"processes aim started: {len(spawned)} ({'; '.join(spawned)})",
                f"{len(probe['modules'])} modules imported; of the plugins and click: "
                f"{', '.join(sorted(tops & set(imported))) or 'none'}",
            ],
        ),
        Result(
            key="run_output",
            what="aim run overhead, tool prints 10 MB",
            aim=aim_f * 1000,
            base=base_f * 1000,
            unit="ms",
            budget=f"aim - base <= {BUDGET_MS:g} ms",
            ok=overhead_f <= BUDGET_MS,
            notes=[
                f"overhead {overhead_f:.0f} ms at the median of {n_flood} interleaved runs "
                "(aim keeps the first and last 512 KiB of each stream)"
            ],
        ),
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
