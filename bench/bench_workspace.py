"""The cost of an attempt's workspace on a large repository: `aim run` on a repository
with 100 000 tracked files, with and without 100 000 git-ignored files (a `.venv/`),
as ratios against running the same fake tool directly.

Budgets (ARCHITECTURE.md): the git-ignored files add at most 50 ms to an attempt;
the figure against the direct call is for information (the walk of 100 000
tracked files is the price of seeing every change).
"""

from __future__ import annotations

import argparse
import os
import subprocess

from _common import AIM, Result, World, cli_main, interleaved, log, median, time_argv
from _common import workstream as make_workstream

IGNORED_BUDGET_MS = 50.0


def _fill(root, prefix: str, count: int, per_dir: int = 50) -> None:
    for n in range(count):
        d = root / prefix / f"d{n // per_dir:05d}"
        if n % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{n % per_dir:03d}.py").write_text(f"x = {n}\n")


def _world(tracked: int, ignored: int) -> tuple[World, list[str], list[str]]:
    world = World("workspace")
    world.add_bench_plugin("benchtool", "benchtool", "benchtool", "bench_generation")
    world.init_repo()
    tool = world.fake_tool("benchtool", stdout="edited\n", write_argv_files="print('hi')\n")
    repo = world.repo
    _fill(repo, "src", tracked)
    (repo / "src" / "target.py").write_text("x = 0\n")
    with open(repo / ".gitignore", "a") as f:
        f.write("\n.venv/\n")
    if ignored:
        _fill(repo, ".venv/lib", ignored)
    env = world.env
    # no automatic gc after committing 100 000 files: it would repack in the background
    # and write .git/info/refs during a measured run (aim rightly refuses that attempt)
    git = ["git", "-c", "user.email=b@b", "-c", "user.name=b", "-c", "gc.auto=0"]
    git += ["-c", "maintenance.auto=false"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run([*git, "commit", "-qm", "big"], cwd=repo, check=True, env=env)
    ws = world.write_workstream(
        "ws-big", make_workstream("ws-big", "bench_generation", ["src/target.py"])
    )
    world.aim("run", str(ws))
    call = tool.work_calls[-1]
    aim = [AIM, "run", str(ws)]
    direct = [str(tool.path), *call["argv"]]
    return world, aim, direct


def _time(world: World, aim: list[str], direct: list[str], n: int) -> dict[str, list[float]]:
    env, repo = world.env, world.repo
    return interleaved(
        {
            "aim": lambda: time_argv(aim, env=env, cwd=repo),
            "direct": lambda: time_argv(direct, env=env, cwd=repo),
        },
        n,
        warmup=1,
    )


def run(args: argparse.Namespace) -> list[Result]:
    n = 3 if args.quick else 7
    tracked = 100_000
    out = {}
    for ignored in (0, 100_000):
        log(f"building a repository: {tracked} tracked, {ignored} git-ignored files")
        world, aim, direct = _world(tracked, ignored)
        try:
            log(f"aim run vs the tool run directly, {n} runs each")
            out[ignored] = _time(world, aim, direct, n)
        finally:
            world.close()
    without, with_ignored = out[0], out[100_000]
    aim0, base0 = median(without["aim"]), median(without["direct"])
    aim1, base1 = median(with_ignored["aim"]), median(with_ignored["direct"])
    added_ms = ((aim1 - base1) - (aim0 - base0)) * 1000
    return [
        Result(
            key="workspace_big",
            what="aim run, 100k tracked files (tool run directly = base)",
            aim=aim0 * 1000,
            base=base0 * 1000,
            unit="ms",
            budget="for information",
            ok=True,
            notes=[f"overhead {(aim0 - base0) * 1000:.0f} ms at the median of {n} runs"],
        ),
        Result(
            key="workspace_ignored",
            what="the same with 100k git-ignored files in .venv/",
            aim=aim1 * 1000,
            base=base1 * 1000,
            unit="ms",
            budget=f"ignored files add <= {IGNORED_BUDGET_MS:g} ms",
            ok=added_ms <= IGNORED_BUDGET_MS,
            notes=[
                f"the ignored files add {added_ms:.0f} ms to an attempt (cpus: {os.cpu_count()})"
            ],
        ),
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
