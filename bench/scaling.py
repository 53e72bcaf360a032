"""How aim's costs grow with plugins, tools, workstreams and audit records.

    python bench/scaling.py [--quick]     # about two minutes; not part of `make bench`

Prints one line per size: medians of wall times, in the same kind of world as
the benchmarks (fake tools, bench plugins with one tool each, a repository made
by `aim init`). Figures, not budgets: docs/PERFORMANCE.md quotes them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _auditgen import day_names, ensure
from _common import AIM, World, interleaved, log, median, time_argv, workstream

from aim_core.paths import AUDIT_DIRNAME


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.0f} ms"


def plugins(n_runs: int) -> None:
    print("\n## plugins (each one tool, installed and detected; warm detection cache)")
    print("extra plugins | aim status (snapshot) | aim status (full) | aim run")
    for extra in (0, 10, 30):
        with World(f"plugins{extra}") as world:
            world.add_bench_plugin("benchtool", "benchtool", "benchtool", "bench_generation")
            world.fake_tool("benchtool", write_argv_files="x\n")
            for i in range(extra):
                world.add_bench_plugin(f"extra{i}", f"extra{i}", f"extra{i}", "bench_extra")
                world.fake_tool(f"extra{i}")
            world.init_repo()
            ws = world.write_workstream(
                "ws", workstream("ws-scale", "bench_generation", ["src/a.txt"])
            )
            world.aim("status")
            world.aim("run", str(ws))
            env, repo = world.env, world.repo

            def full(env=env, repo=repo, world=world) -> float:
                shutil.rmtree(world.cache / "status", ignore_errors=True)
                return time_argv([AIM, "status"], env=env, cwd=repo)

            world.aim("status")
            t = interleaved(
                {
                    "snap": lambda env=env, repo=repo: time_argv(
                        [AIM, "status"], env=env, cwd=repo
                    ),
                    "full": full,
                    "run": lambda env=env, repo=repo, ws=ws: time_argv(
                        [AIM, "run", str(ws)], env=env, cwd=repo
                    ),
                },
                n_runs,
            )
        print(
            f"{extra:13d} | {ms(median(t['snap']))} | {ms(median(t['full']))} | "
            f"{ms(median(t['run']))}"
        )


def tools(n_runs: int) -> None:
    print("\n## tools: aim status --refresh, each tool sleeps 0.3 s in --version")
    print("tools | refresh | full status from the warm cache")
    for count in (5, 10, 20):
        with World(f"tools{count}") as world:
            for i in range(count):
                world.add_bench_plugin(f"t{i}", f"t{i}", f"t{i}", "bench_extra")
                world.fake_tool(f"t{i}", version_sleep=0.3)
            world.init_repo()
            env, repo = world.env, world.repo
            world.aim("status")

            def full(env=env, repo=repo, world=world) -> float:
                shutil.rmtree(world.cache / "status", ignore_errors=True)
                return time_argv([AIM, "status"], env=env, cwd=repo)

            t = interleaved(
                {
                    "refresh": lambda env=env, repo=repo: time_argv(
                        [AIM, "status", "--refresh"], env=env, cwd=repo
                    ),
                    "full": full,
                },
                max(2, n_runs // 2),
            )
        print(f"{count:5d} | {ms(median(t['refresh']))} | {ms(median(t['full']))}")


def workstreams(n_runs: int) -> None:
    print("\n## workstreams")
    print("workstream files in the repository | aim run (one of them) | aim validate (all)")
    for count in (1, 100, 1000):
        with World(f"ws{count}") as world:
            world.add_bench_plugin("benchtool", "benchtool", "benchtool", "bench_generation")
            world.fake_tool("benchtool", write_argv_files="x\n")
            world.init_repo()
            shutil.rmtree(world.repo / "workstreams")
            paths = [
                world.write_workstream(
                    f"many/ws-{i:04d}",
                    workstream(f"ws-{i:04d}", "bench_generation", [f"src/f{i}.txt"]),
                )
                for i in range(count)
            ]
            env, repo = world.env, world.repo
            world.aim("run", str(paths[0]))
            t = interleaved(
                {
                    "run": lambda env=env, repo=repo, p=paths[0]: time_argv(
                        [AIM, "run", str(p)], env=env, cwd=repo
                    ),
                    "validate": lambda env=env, repo=repo: time_argv(
                        [AIM, "validate"], env=env, cwd=repo
                    ),
                },
                max(2, n_runs // 2),
            )
        print(f"{count:34d} | {ms(median(t['run']))} | {ms(median(t['validate']))}")

    print("\nworkstreams in one `aim run DIR` (-j 1, independent) | wall | per workstream")
    for count in (1, 4, 16):
        with World(f"batch{count}") as world:
            world.add_bench_plugin("benchtool", "benchtool", "benchtool", "bench_generation")
            world.fake_tool("benchtool", write_argv_files="x\n")
            world.init_repo()
            for i in range(count):
                world.write_workstream(
                    f"batch/ws-{i:02d}",
                    workstream(f"ws-b{i:02d}", "bench_generation", [f"src/b{i}.txt"]),
                )
            batch = world.repo / "workstreams" / "batch"
            world.aim("run", str(batch))
            wall = median(
                [
                    time_argv([AIM, "run", str(batch)], env=world.env, cwd=world.repo)
                    for _ in range(max(2, n_runs // 3))
                ]
            )
        print(f"{count:52d} | {ms(wall)} | {ms(wall / count)}")


def audit(quick: bool) -> None:
    print("\n## audit records (30-day history from _auditgen.py)")
    registry = ensure(1_000_000, progress=log)
    days = day_names()
    print(
        "records | audit query --tool aider | audit verify | "
        "aim run with a dependency outside the command"
    )
    with World("audit") as world, tempfile.TemporaryDirectory(prefix="aim-bench-sc-") as tmp:
        # the history is linked in, read-only: never prune it
        world.extra_env["AIM_AUDIT_LOG_RETENTION_DAYS"] = "36500"
        world.add_bench_plugin("benchtool", "benchtool", "benchtool", "bench_generation")
        world.fake_tool("benchtool", write_argv_files="x\n")
        world.init_repo()
        base = world.write_workstream(
            "ws-base", workstream("ws-base", "bench_generation", ["src/base.txt"])
        )
        dep = workstream("ws-dep", "bench_generation", ["src/dep.txt"])
        dep["depends_on"] = ["ws-base"]
        ws = world.write_workstream("ws-dep", dep)
        world.aim("run", str(base))
        env, repo = world.env, world.repo
        own = world.repo / "aim" / ".AIM_ai-tools-registry" / AUDIT_DIRNAME
        for count in (0, 1, 10) if quick else (0, 1, 10, 30):
            reg = Path(tmp) / f"r{count}"
            (reg / AUDIT_DIRNAME).mkdir(parents=True)
            for day in days[:count]:
                os.symlink(registry / AUDIT_DIRNAME / day, reg / AUDIT_DIRNAME / day)
                if not (own / day).exists():
                    os.symlink(registry / AUDIT_DIRNAME / day, own / day)
            records = 1_000_000 * count // len(days)
            q = time_argv(
                [AIM, "--registry", str(reg), "audit", "query", "--tool", "aider"],
                env=env,
                cwd=repo,
            )
            v = (
                time_argv([AIM, "--registry", str(reg), "audit", "verify"], env=env, cwd=repo)
                if count <= 10
                else None
            )
            r = time_argv([AIM, "run", str(ws)], env=env, cwd=repo, check=False)
            verify = ms(v) if v is not None else "   (skipped)"
            print(f"{records:7d} | {ms(q)} | {verify} | {ms(r)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="plugins,tools,workstreams,audit")
    args = parser.parse_args()
    n = 3 if args.quick else 7
    only = set((args.only or "plugins,tools,workstreams,audit").split(","))
    print(f"aim scaling figures: {os.cpu_count()} cores, medians of {n} runs unless noted")
    if "plugins" in only:
        plugins(n)
    if "tools" in only:
        tools(n)
    if "workstreams" in only:
        workstreams(n)
    if "audit" in only:
        audit(args.quick)


if __name__ == "__main__":
    main()
