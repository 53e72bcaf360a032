"""`aim status` with a warm detection cache against `python -c pass` (budget: 6x and no
process spawned).

The first-party plugins are installed (as `make install` leaves the venv) and find
five fake tools (aider, claude, jules, ruff, pytest) on PATH, all ready. One
`aim status` fills the detection cache and the status snapshot. Two figures:

* `aim status` as a user sees it: served from the snapshot (aim_core.status_snapshot);
* `aim status` with the snapshot removed before each run: the full command
  (click, plugins, detection from its cache), which runs whenever the snapshot
  is stale (a config, rules, PATH or package change, a live run).

Processes are counted twice: by an audit hook inside the aim process
(`_launch.py`) and, when strace is there, by the execs of the whole process tree.
The detection cache file must not be rewritten while they run.
"""

from __future__ import annotations

import argparse
import json
import shutil

from _common import (
    AIM,
    FIRST_PARTY_PROGRAMS,
    PYTHON,
    Result,
    World,
    cli_main,
    interleaved,
    launch,
    log,
    median,
    strace_execs,
    time_argv,
)

BUDGET = 6.0


def warm_world(name: str) -> World:
    """A repository whose five tools are detected once (the caches are warm)."""
    world = World(name)
    world.make_ready_home()
    for program in FIRST_PARTY_PROGRAMS:
        world.fake_tool(program)
    world.init_repo()
    world.aim("status")
    return world


def spawns(world: World, before=None) -> tuple[int, list[str]]:
    """Processes one `aim status` starts: audit hook + strace (execs besides aim's own)."""
    if before:
        before()
    probe = launch(["status"], env=world.env, cwd=world.repo)
    if before:
        before()
    execs = strace_execs([AIM, "status"], env=world.env, cwd=world.repo)
    extra = max(0, execs - 1) if execs is not None else 0
    what = [*probe["spawn_events"]] + ([f"{extra} exec(s) seen by strace"] if extra else [])
    return probe["spawns"] + extra, what


def run(args: argparse.Namespace) -> list[Result]:
    n = 9 if args.quick else 21
    with warm_world("status") as world:
        env, repo = world.env, world.repo
        detection_cache = world.cache / "detection-v1.json"
        snapshots = world.cache / "status"

        def no_snapshot() -> None:
            shutil.rmtree(snapshots, ignore_errors=True)

        def full() -> float:
            no_snapshot()
            return time_argv([AIM, "status"], env=env, cwd=repo)

        stamp = detection_cache.stat().st_mtime_ns
        log(f"aim status (snapshot, full) vs python -c pass, {n} runs each")
        times = interleaved(
            {
                "aim": lambda: time_argv([AIM, "status"], env=env, cwd=repo),
                "full": full,
                "python": lambda: time_argv([PYTHON, "-c", "pass"], env=env, cwd=repo),
            },
            n,
            warmup=2,
        )
        spawned_full, what_full = spawns(world, no_snapshot)
        world.aim("status")  # the snapshot again
        spawned, what = spawns(world)
        probe = launch(["status"], env=env, cwd=repo)
        no_snapshot()
        probe_full = launch(["status"], env=env, cwd=repo)
        still_cached = detection_cache.stat().st_mtime_ns == stamp
        data = json.loads(world.aim("status", "--json").stdout)
        loaded = [
            p["name"]
            for p in json.loads(world.aim("plugins", "--json").stdout)
            if p["status"] == "loaded"
        ]
    aim, full_t, base = median(times["aim"]), median(times["full"]), median(times["python"])
    setup = (
        f"{len(loaded)} plugins loaded ({', '.join(loaded)}), "
        f"{sum(bool(t['detected']) for t in data['tools'])} tools detected, "
        f"{len(data['tools'])} listed; {n} runs each, interleaved"
    )
    stale = [] if still_cached else ["the detection cache was rewritten during the runs"]
    return [
        Result(
            key="status",
            what="aim status (warm cache)",
            aim=aim * 1000,
            base=base * 1000,
            unit="ms",
            budget=f"<= {BUDGET:g}x python -c pass, 0 spawns",
            ok=aim <= BUDGET * base and spawned == 0 and still_cached,
            notes=[
                setup,
                f"served from the status snapshot ({len(probe['modules'])} modules imported, "
                f"click {'among them' if 'click' in probe['modules'] else 'not'}); "
                f"processes started: {spawned}"
                + (f" ({'; '.join(what)})" if what else "")
                + f"; peak RSS {probe['maxrss_kb'] / 1024:.1f} MB",
                *stale,
            ],
        ),
        Result(
            key="status_full",
            what="aim status (warm cache, no snapshot)",
            aim=full_t * 1000,
            base=base * 1000,
            unit="ms",
            # The warm status is the snapshot row above. This one is what the first
            # status after a change of config, rules or installed packages costs: it
            # must start no process; its time is shown, not budgeted.
            budget="0 spawns (time: for information)",
            ok=spawned_full == 0 and still_cached,
            notes=[
                "the first status after a change of config, rules or packages: "
                "detection from its cache, the snapshot removed before "
                f"each run ({len(probe_full['modules'])} modules imported); "
                f"processes started: {spawned_full}"
                + (f" ({'; '.join(what_full)})" if what_full else "")
                + f"; peak RSS {probe_full['maxrss_kb'] / 1024:.1f} MB",
            ],
        ),
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
