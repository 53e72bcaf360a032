"""A tool that outlives its timeout, with a grandchild in its own session (`setsid`):
`aim run` must return within 1 s of the timeout and leave no grandchild behind.

The workstream has `timeout_ms: 2000` and `max_retries: 0`; its only tool sleeps 60 s
after starting a grandchild that calls setsid and sleeps 60 s. The figure is the
whole `aim run` (aim's own start-up included) against the timeout itself.
"""

from __future__ import annotations

import argparse
import time

import psutil
from _common import Result, World, cli_main, log, median, workstream

TIMEOUT_S = 2.0
SLACK_S = 1.0


def gone(pid: int, wait_s: float = 0.5) -> bool:
    """The process is dead (a zombie waiting for init counts as dead)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def run(args: argparse.Namespace) -> list[Result]:
    n = 2 if args.quick else 3
    with World("timeout") as world:
        world.add_bench_plugin("benchslow", "benchslow", "benchslow", "bench_generation")
        world.init_repo()
        pidfile = world.dir / "grandchild.pid"
        world.fake_tool(
            "benchslow",
            sleep=60,
            grandchild={"setsid": True, "sleep": 60, "pidfile": str(pidfile)},
        )
        ws = world.write_workstream(
            "ws-slow",
            workstream(
                "ws-bench-slow",
                "bench_generation",
                ["src/slow.txt"],
                timeout_ms=int(TIMEOUT_S * 1000),
            ),
        )
        world.aim("status")  # detection cached, as after any earlier command
        walls, leftovers, codes = [], [], []
        log(f"aim run with a 2 s timeout and a setsid grandchild, {n} runs")
        for _ in range(n):
            pidfile.unlink(missing_ok=True)
            start = time.perf_counter()
            proc = world.aim("run", str(ws), check=False)
            walls.append(time.perf_counter() - start)
            codes.append(proc.returncode)
            pid = int(pidfile.read_text()) if pidfile.exists() else None
            if pid is None or not gone(pid):
                leftovers.append(pid)
                if pid is not None:
                    psutil.Process(pid).kill()
    wall = median(walls)
    ok = wall - TIMEOUT_S <= SLACK_S and not leftovers and set(codes) == {1}
    return [
        Result(
            key="timeout",
            what="aim run, tool times out (setsid grandchild)",
            aim=wall,
            base=TIMEOUT_S,
            unit="s",
            budget=f"<= timeout + {SLACK_S:g} s, no grandchild left",
            ok=ok,
            notes=[
                f"{n} runs; returned {wall - TIMEOUT_S:.2f} s after the timeout (aim's start-up, "
                "the snapshot, killing the tree and the audit included)",
                f"grandchildren left alive: {len(leftovers)}; exit codes {sorted(set(codes))}",
            ],
        )
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
