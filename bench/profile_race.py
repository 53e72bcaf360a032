"""Where the time of one race goes: a wall-clock timeline of `aim run --race 2`.

    python bench/profile_race.py [--sleep S] [--keep]

Builds bench_verify.py's world (two fake tools that sleep S seconds, the first
writing wrong code, the second right; pytest checks), warms it with one plain
run, then runs `aim run --race 2` in a child process whose key functions are
wrapped with timers at run time, as bench/profile_run.py does (nothing in
aim_core is edited; every thread is covered). Read it for: the guard and the
copies before the tools start, the two checks at once, the settle window, the
choice and the apply, stopping the loser, removing the copies.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

import bench_verify
from _common import PYTHON, World
from profile_run import CHILD

TARGETS = (
    ("aim_core.runner", "Runner.run"),
    ("aim_core.race", "Race.run_race"),
    ("aim_core.race", "Race._mark_racing"),
    ("aim_core.race", "Race._open_guard"),
    ("aim_core.race", "Race._judge_offers"),
    ("aim_core.race", "Race._settled"),
    ("aim_core.race", "Race._choose"),
    ("aim_core.race", "Race._apply"),
    ("aim_core.race", "Race._stop_losers"),
    ("aim_core.race", "Race._close"),
    ("aim_core.attempt", "Attempt.stop_tool"),
    ("aim_core.isolated", "IsolatedWorkspace.__init__"),
    ("aim_core.isolated", "IsolatedWorkspace.keep"),
    ("aim_core.isolated", "IsolatedWorkspace.discard"),
    ("aim_core.isolated", "CopySource.repository"),
    ("aim_core.isolated", "CopySource.git_facts"),
    ("aim_core.workspace", "InPlaceWorkspace.__init__"),
    ("aim_core.workspace", "InPlaceWorkspace.discard"),
    ("aim_core.attempt", "Attempt._invoke"),
    ("aim_core.attempt", "Attempt._verify"),
    ("aim_core.attempt", "Attempt._record"),
    ("aim_core.checks", "CheckRunner.run"),
    ("aim_core.process", "run_process"),
    ("aim_core.proctree", "kill_tree"),
    ("aim_core.audit.emit", "AuditEmitter.emit"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--sleep", type=float, default=2.0, help="each tool sleeps this long")
    parser.add_argument("--keep", action="store_true", help="keep the temporary world")
    args = parser.parse_args()
    call = 'main(["run", ws])'
    assert call in CHILD, "bench/profile_run.py's child changed: update this script"
    child = textwrap.dedent(CHILD).replace(call, 'main(["run", "--race", "2", ws])')
    with World("profile-race", keep=args.keep) as world:
        bench_verify.make_world(world, args.sleep)
        ws = bench_verify.workstream(world, "ws-checked", verify=True)
        bench_verify.set_tools(world, 0, bench_verify.RIGHT, bench_verify.RIGHT)
        world.aim("run", ws)  # the checks' bytecode
        bench_verify.set_tools(world, args.sleep, bench_verify.WRONG, bench_verify.RIGHT)
        world.aim("status", "--refresh")  # the tools changed: detected again (they sleep)
        bench_verify.reset(world)
        subprocess.run(
            [PYTHON, "-c", child, json.dumps(TARGETS), ws],
            env=world.env,
            cwd=world.repo,
            check=False,
        )
        if args.keep:
            print(f"world kept in {world.dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
