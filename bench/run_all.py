"""Run every benchmark and print one table; exit 1 when a budget is missed.

    python bench/run_all.py [--quick] [--only version,status,...] [--json FILE]

`make bench` runs this with the venv's python. Each bench_*.py runs in its own
process (so one's imports and memory never colour another's) and reports its
rows as JSON; a script that crashes is a failed row. Every figure is a ratio
against a baseline measured in the same run (see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BENCH_DIR, PYTHON, Result, jq_version, print_table

SCRIPTS = (
    "version",
    "status",
    "refresh",
    "run_overhead",
    "timeout",
    "append",
    "query",
    "memory",
    "serve",
    "workspace",
    "verify",
)


def run_script(name: str, quick: bool) -> tuple[list[Result], float]:
    script = BENCH_DIR / f"bench_{name}.py"
    with tempfile.TemporaryDirectory(prefix="aim-bench-") as tmp:
        out = Path(tmp) / "results.json"
        argv = [PYTHON, str(script), "--json", str(out), *(["--quick"] if quick else [])]
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if out.exists():
            rows = [Result(**r) for r in json.loads(out.read_text())]
            return rows, elapsed
    tail = " ".join(proc.stdout.strip().splitlines()[-3:])
    return [
        Result(
            key=name,
            what=f"bench_{name}.py",
            aim=0.0,
            base=0.0,
            unit="s",
            budget="runs to the end",
            ok=False,
            notes=[f"crashed with exit code {proc.returncode} (see its traceback above) {tail}"],
        )
    ], elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(SCRIPTS)}")
    parser.add_argument("--json", metavar="FILE", help="also write every row as JSON")
    args = parser.parse_args()
    chosen = SCRIPTS if not args.only else tuple(s.strip() for s in args.only.split(","))
    unknown = [s for s in chosen if s not in SCRIPTS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    started = time.perf_counter()
    results: list[Result] = []
    for name in chosen:
        print(f"bench_{name}.py ...", file=sys.stderr, flush=True)
        rows, elapsed = run_script(name, args.quick)
        print(f"bench_{name}.py: {elapsed:.0f} s", file=sys.stderr, flush=True)
        results.extend(rows)

    print()
    print(
        f"aim benchmarks: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {jq_version() or 'no jq'}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {time.perf_counter() - started:.0f} s"
        + (" (--quick)" if args.quick else "")
    )
    print()
    print_table(results)
    missed = [r.what for r in results if not r.ok]
    print()
    if missed:
        print(f"{len(missed)} budget(s) missed: {'; '.join(missed)}")
    else:
        print(f"all {len(results)} budgets met")
    if args.json:
        from dataclasses import asdict

        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
