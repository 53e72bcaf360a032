"""Run ``aim`` in this process under an audit hook: ``python _launch.py REPORT ARGS...``.

The hook counts every process creation Python can make (``subprocess.Popen``,
``os.posix_spawn``, ``os.fork``, ``os.exec*``, ``os.system``...) and lists the
files opened; at exit REPORT gets ``{"spawns", "spawn_events", "opened",
"maxrss_kb", "modules", "exit_code"}``, ``maxrss_kb`` being this process's own
peak RSS (children excluded) and ``modules`` the names of the modules aim
imported. Only ``aim_core.__main__.main`` runs after the hook, exactly as the
``aim`` console script calls it.
"""

from __future__ import annotations

import json
import resource
import sys

SPAWN_EVENTS = {
    "subprocess.Popen",
    "os.posix_spawn",
    "os.posix_spawnp",
    "os.fork",
    "os.forkpty",
    "os.exec",
    "os.spawn",
    "os.system",
    "os.startfile",
    "pty.spawn",
}

spawns: list[str] = []
opened: list[str] = []


def hook(event: str, args: tuple) -> None:
    if event in SPAWN_EVENTS:
        spawns.append(f"{event} {args[0]!r}"[:200] if args else event)
    elif event == "open" and args and isinstance(args[0], str):
        opened.append(args[0])


def main() -> int:
    report, argv = sys.argv[1], sys.argv[2:]
    sys.argv = ["aim", *argv]
    before = set(sys.modules)
    sys.addaudithook(hook)
    code = 70
    try:
        from aim_core.__main__ import main as aim_main

        code = aim_main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        with open(report, "w") as f:
            json.dump(
                {
                    "spawns": len(spawns),
                    "spawn_events": spawns,
                    "opened": opened,
                    "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                    "modules": sorted(set(sys.modules) - before),
                    "exit_code": code,
                },
                f,
            )
    return code


if __name__ == "__main__":
    sys.exit(main())
