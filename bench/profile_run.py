"""Where the time of one `aim run` goes: a wall-clock timeline of its phases.

    python bench/profile_run.py [--output-mb N] [--keep]

Builds the same world as bench_run_overhead.py (a repository made by `aim init`,
the first-party plugins plus a bench plugin, a fake tool), warms the detection
cache, then runs `aim run` in a child process whose key functions are wrapped
with timers at run time (nothing in aim_core is edited). Every thread is
covered, so the attempt that `aim run` makes in a worker thread is timed too.
Functions that no longer exist are skipped. The timeline lists each call's
start (ms since the interpreter started) and duration; nested calls are indented.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

from _common import PYTHON, World, workstream

# module, attribute path: what is timed
TARGETS = (
    ("aim_core.cli", "open_project"),
    ("aim_core.project", "Project.open"),
    ("aim_core.plugins", "AimPlugins.load"),
    ("aim_core.project", "Project.detect"),
    ("aim_core.graph", "run_graph"),
    ("aim_core.graph", "load_all"),
    ("aim_core.workstream", "load_workstream"),
    ("aim_core.runner", "Runner.run"),
    ("aim_core.recovery", "recover_dead_runs"),
    ("aim_core.admission", "workstream_problems"),
    ("aim_core.admission", "tool_problems"),
    ("aim_core.runlocks", "RunTable.join"),
    ("aim_core.attempt", "Attempt.execute"),
    ("aim_core.snapshot", "Snapshot.take"),
    ("aim_core.treestate", "TreeState.take"),
    ("aim_core.gitmeta", "git_command"),
    ("aim_core.security", "check_request"),
    ("aim_core.security", "redact_record"),
    ("aim_core.security", "redact_data"),
    ("aim_core.credentials", "scan"),
    ("aim_core.audit.emit", "AuditEmitter.check_head"),
    ("aim_core.runlocks", "ActiveRun.update"),
    ("aim_core.treestate", "TreeState.changed"),
    ("aim_core.gitmeta", "read_status"),
    ("aim_core.gitmeta", "GitState.take"),
    ("aim_core.gitmeta", "GitState.changed"),
    ("aim_core.snapshot", "Snapshot.changes"),
    ("aim_core.plugins", "AimPlugins.call"),
    ("aim_core.process", "run_process"),
    ("aim_core.runlog", "RunLog.write"),
    ("aim_core.runlog", "RunLog.process"),
    ("aim_core.credentials", "scan"),
    ("aim_core.security", "redact_prompt"),
    ("aim_core.audit.emit", "AuditEmitter.emit"),
    ("aim_core.audit.jsonl", "JsonlAuditLog.append"),
    ("aim_core.audit.prune", "prune_if_due"),
    ("aim_core.runner", "Runner.close"),
)

CHILD = r"""
import importlib, json, sys, threading, time
T0 = time.perf_counter()
events = []
depth = threading.local()
targets = json.loads(sys.argv[1])
ws = sys.argv[2]


def wrap(name, fn):
    def timed(*a, **kw):
        d = getattr(depth, "n", 0)
        depth.n = d + 1
        start = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            depth.n = d
            events.append((start - T0, time.perf_counter() - start, d, name,
                           threading.current_thread().name))
    timed.__wrapped__ = fn
    return timed


def install(module, path):
    try:
        obj = importlib.import_module(module)
    except ImportError:
        return
    *owners, attr = path.split(".")
    for o in owners:
        obj = getattr(obj, o, None)
        if obj is None:
            return
    fn = getattr(obj, attr, None)
    if fn is None:
        return
    if isinstance(obj, type) and isinstance(obj.__dict__.get(attr), classmethod):
        fn = obj.__dict__[attr].__func__
        setattr(obj, attr, classmethod(wrap(f"{module}.{path}", fn)))
    else:
        setattr(obj, attr, wrap(f"{module}.{path}", fn))
        # names imported elsewhere with `from module import fn`
        for m in list(sys.modules.values()):
            if m is not None and getattr(m, attr, None) is fn and not owners:
                setattr(m, attr, getattr(obj, attr))


imports = time.perf_counter()
for module, path in targets:
    install(module, path)
imported = time.perf_counter() - imports
from aim_core.__main__ import main
start = time.perf_counter()
code = main(["run", ws])
end = time.perf_counter()
print(f"importing the timed modules: {imported * 1000:.0f} ms (counted before main)")
print(f"main(): {(end - start) * 1000:.0f} ms, exit {code}")
for s, d, depth_, name, thread in sorted(events):
    if d * 1000 >= 0.5:
        where = "" if thread == "MainThread" else f"  [{thread}]"
        print(f"{s * 1000:8.1f} ms  {'  ' * depth_}{name}: {d * 1000:.1f} ms{where}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--output-mb", type=float, default=0, help="the tool prints this much")
    parser.add_argument("--keep", action="store_true", help="keep the temporary world")
    args = parser.parse_args()
    import json

    with World("profile", keep=args.keep) as world:
        world.add_bench_plugin("benchtool", "benchtool", "benchtool", "bench_generation")
        world.init_repo()
        world.fake_tool(
            "benchtool",
            stdout="edited src/bench.txt\n",
            write_argv_files="print('hi')\n",
            flood_bytes=int(args.output_mb * (1 << 20)),
        )
        ws = world.write_workstream(
            "ws-bench", workstream("ws-bench-run", "bench_generation", ["src/bench.txt"])
        )
        world.aim("run", str(ws))  # warm detection cache
        subprocess.run(
            [PYTHON, "-c", textwrap.dedent(CHILD), json.dumps(TARGETS), str(ws)],
            env=world.env,
            cwd=world.repo,
            check=False,
        )
        if args.keep:
            print(f"world kept in {world.dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
