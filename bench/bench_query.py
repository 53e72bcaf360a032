"""`aim audit query` over 1,000,000 records against `jq` with the same filter over the
same files (budget: faster than jq), and `--since` of one day out of 30 reading only
that day (counted by an audit hook on "open" inside the aim process).

The history is written once by `_auditgen.py` (valid hash-chained records, 30 day
files, ~680 MB) into /tmp/aim-bench-cache and reused by later runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _auditgen import day_names, ensure
from _common import (
    AIM,
    Result,
    World,
    cli_main,
    interleaved,
    jq_version,
    launch,
    log,
    median,
    time_argv,
)

from aim_core.paths import AUDIT_DIRNAME

RECORDS = 1_000_000


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b""))


def run(args: argparse.Namespace) -> list[Result]:
    jq = shutil.which("jq")
    if jq is None:
        raise RuntimeError("jq is not installed (apt-get install jq): it is the baseline")
    registry = ensure(RECORDS, progress=log)
    audit = registry / AUDIT_DIRNAME
    days = day_names()
    files = [str(audit / d / "audit.jsonl") for d in days]
    n = 1 if args.quick else 3
    with World("query") as world, tempfile.TemporaryDirectory() as tmp:
        world.init_repo()
        env, repo = world.env, world.repo
        reg = ["--registry", str(registry)]
        outs = {k: os.path.join(tmp, f"{k}.jsonl") for k in ("aim", "jq", "aim1", "jq1")}

        def timed(argv, out):
            with open(out, "wb") as f:
                return time_argv(argv, env=env, cwd=repo, stdout=f)

        aim_q = [AIM, *reg, "audit", "query", "--tool", "aider", "--format", "json"]
        jq_q = [jq, "-c", 'select(.tool_id == "aider")', *files]
        log(f"aim audit query vs jq over {RECORDS:,} records, {n} runs each")
        times = interleaved(
            {
                "aim": lambda: timed(aim_q, outs["aim"]),
                "jq": lambda: timed(jq_q, outs["jq"]),
            },
            n,
            warmup=0,
        )
        same = Path(outs["aim"]).read_bytes() == Path(outs["jq"]).read_bytes()
        matched = count_lines(outs["aim"])

        last = days[-1]
        since = ["--since", last, "--tool", "aider", "--format", "json"]
        aim_1 = [AIM, *reg, "audit", "query", *since]
        jq_1 = [jq, "-c", 'select(.tool_id == "aider")', files[-1]]
        log(f"aim audit query --since {last} vs jq over that day's file")
        times_1 = interleaved(
            {"aim": lambda: timed(aim_1, outs["aim1"]), "jq": lambda: timed(jq_1, outs["jq1"])},
            n + 2,
            warmup=1,
        )
        same_1 = Path(outs["aim1"]).read_bytes() == Path(outs["jq1"]).read_bytes()
        probe = launch(["--registry", str(registry), "audit", "query", *since], env=env, cwd=repo)
        read = sorted({p for p in probe["opened"] if p.endswith("audit.jsonl")})
        mid = days[14]
        probe_mid = launch(
            [*reg, "audit", "query", "--since", mid, "--until", mid, "--format", "json"],
            env=env,
            cwd=repo,
        )
        read_mid = sorted({p for p in probe_mid["opened"] if p.endswith("audit.jsonl")})
    size_mb = sum(os.path.getsize(f) for f in files) / 1e6
    aim, base = median(times["aim"]), median(times["jq"])
    aim1, base1 = median(times_1["aim"]), median(times_1["jq"])
    read_ok = [os.path.basename(os.path.dirname(p)) for p in read] == [last]
    mid_ok = [os.path.basename(os.path.dirname(p)) for p in read_mid] == [mid]
    return [
        Result(
            key="query",
            what="aim audit query --tool X, 1M records",
            aim=aim,
            base=base,
            unit="s",
            budget="< 1x jq (same filter, same files)",
            ok=aim < base and same,
            notes=[
                f"{RECORDS:,} records, {len(files)} day files, {size_mb:.0f} MB; {matched:,} "
                f"match; output {'identical to' if same else 'DIFFERENT from'} jq's "
                f"({jq_version()}: jq -c 'select(.tool_id == \"aider\")'); {n} run(s) each",
            ],
        ),
        Result(
            key="query_since",
            what="aim audit query --since (1 day of 30)",
            aim=aim1,
            base=base1,
            unit="s",
            budget="reads only that day; < 1x jq on that day",
            ok=read_ok and mid_ok and aim1 < base1 and same_1,
            notes=[
                f"day files opened: {len(read)} for --since {last} "
                f"({', '.join(os.path.basename(os.path.dirname(p)) for p in read) or 'none'}), "
                f"{len(read_mid)} for --since {mid} --until {mid}; baseline: jq on that one "
                "file, same filter",
            ],
        ),
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
