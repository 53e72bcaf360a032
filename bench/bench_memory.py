"""Peak RSS of aim stays flat as the audit history and a tool's output grow.

* `aim audit query --tool aider` over 1, 10 and 30 days of the generated history
  (33k, 333k and 1M records; the day directories are symlinks into the cache);
* `aim run` of a tool that prints 10 MB, 100 MB and 1 GB to stdout.

The figure is the aim process's own peak RSS (`getrusage(RUSAGE_SELF)` inside it,
via `_launch.py`; the tool's RSS is not counted). Rule: the largest size's peak
<= 1.5x the smallest's + 10 MB.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _auditgen import day_names, ensure
from _common import Result, World, cli_main, launch, log, workstream

from aim_core.paths import AUDIT_DIRNAME

RECORDS = 1_000_000
FACTOR, PLUS_MB = 1.5, 10.0
OUTPUT_SIZES = ((10 << 20, "10 MB"), (100 << 20, "100 MB"), (1 << 30, "1 GB"))


def flat(small_mb: float, large_mb: float) -> bool:
    return large_mb <= FACTOR * small_mb + PLUS_MB


def query_rss(world: World, tmp: Path) -> list[tuple[str, float, float]]:
    registry = ensure(RECORDS, progress=log)
    days = day_names()
    out = []
    for count in (1, 10, 30):
        reg = tmp / f"registry-{count}"
        (reg / AUDIT_DIRNAME).mkdir(parents=True)
        for day in days[:count]:
            os.symlink(registry / AUDIT_DIRNAME / day, reg / AUDIT_DIRNAME / day)
        records = RECORDS * count // len(days)
        log(f"aim audit query over {records:,} records")
        probe = launch(
            ["--registry", str(reg), "audit", "query", "--tool", "aider"],
            env=world.env,
            cwd=world.repo,
        )
        if probe["exit_code"] != 0:
            raise RuntimeError(f"aim audit query failed: {probe['stderr']}")
        out.append((f"{records / 1000:,.0f}k records", probe["maxrss_kb"] / 1024, probe["wall_s"]))
    return out


def run_rss(world: World) -> list[tuple[str, float, float]]:
    world.add_bench_plugin("benchflood", "benchflood", "benchflood", "bench_generation")
    ws = world.write_workstream(
        "ws-flood", workstream("ws-bench-flood", "bench_generation", ["src/flood.txt"])
    )
    out = []
    for size, label in OUTPUT_SIZES:
        world.fake_tool("benchflood", flood_bytes=size)
        log(f"aim run of a tool that prints {label}")
        probe = launch(["run", str(ws)], env=world.env, cwd=world.repo)
        if probe["exit_code"] != 0:
            raise RuntimeError(f"aim run failed: {probe['stderr']}")
        out.append((label, probe["maxrss_kb"] / 1024, probe["wall_s"]))
    return out


def row(key: str, what: str, figures: list[tuple[str, float, float]]) -> Result:
    small, large = figures[0][1], figures[-1][1]
    return Result(
        key=key,
        what=what,
        aim=large,
        base=small,
        unit="MB",
        budget=f"largest <= {FACTOR:g}x smallest + {PLUS_MB:g} MB",
        ok=flat(small, large),
        notes=[
            "peak RSS " + ", ".join(f"{label}: {mb:.1f} MB ({s:.1f} s)" for label, mb, s in figures)
        ],
    )


def run(args: argparse.Namespace) -> list[Result]:
    with World("memory") as world, tempfile.TemporaryDirectory(prefix="aim-bench-mem-") as tmp:
        world.init_repo()
        queries = query_rss(world, Path(tmp))
        runs = run_rss(world)
    return [
        row("memory_query", "memory: aim audit query, 33k -> 1M records", queries),
        row("memory_run", "memory: aim run, tool prints 10 MB -> 1 GB", runs),
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
