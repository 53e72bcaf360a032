"""`aim serve` over 100,000 audit records: `/healthz` and the dashboard's first page,
each right after one more record was appended (so every request has something new to
read), against `aim audit report --json` over the same records (budget: no slower).
Also the first `/healthz` after the server starts (the one full read and chain walk)
against `aim audit report` plus `aim audit verify`, and that the server read each
line once.

The history is written once by `_auditgen.py` into /tmp/aim-bench-cache and copied
into the benchmark's world, where the records appended during the run go.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request

from _auditgen import ensure
from _common import AIM, Result, World, cli_main, interleaved, log, median, time_argv

from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.records import build_record
from aim_core.models import Invocation
from aim_core.paths import AUDIT_DIRNAME

RECORDS = 100_000
URL_LINE = re.compile(r"^aim serve: (http://127\.0\.0\.1:\d+/) ")


def fetch(url: str) -> tuple[float, bytes, int]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=300) as r:
            body, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    return time.perf_counter() - start, body, status


def start(argv: list[str], env: dict, cwd) -> tuple[subprocess.Popen, str, float]:
    began = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    found: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            m = URL_LINE.match(line)
            if m:
                found.append(m.group(1))
                return

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(60)
    if not found:
        proc.kill()
        raise RuntimeError(f"aim serve printed no URL: {proc.stderr.read()}")
    return proc, found[0], began


def run(args: argparse.Namespace) -> list[Result]:
    source = ensure(RECORDS, progress=log)
    n = 3 if args.quick else 7
    with World("serve") as world:
        world.init_repo()
        registry = world.dir / "registry"
        shutil.copytree(source, registry)
        env, repo = world.env, world.repo
        reg = ["--registry", str(registry)]
        audit = JsonlAuditLog(registry / AUDIT_DIRNAME)

        def append_one(i: int) -> None:
            audit.append(
                build_record(
                    actor="pipeline",
                    run_id=f"bench-serve-{i:06d}",
                    workstream_id="ws-bench-serve",
                    tool_id="aider",
                    capability="code_generation",
                    payload=Invocation(prompt="p", files=("src/a.py",)),
                    success=True,
                    message="Code generation completed (attempt 1)",
                    attempt=1,
                    failure=None,
                    duration_sec=3.0,
                ).to_dict()
            )

        report_argv = [AIM, *reg, "audit", "report", "--json"]
        verify_argv = [AIM, *reg, "audit", "verify"]
        serve_argv = [AIM, *reg, "serve", "--port", "0", "--full-check-minutes", "0"]

        def cold_start() -> float:
            proc, url, began = start(serve_argv, env, repo)
            try:
                _, body, status = fetch(url + "healthz")
                if status != 200:
                    raise RuntimeError(f"/healthz answered {status}: {body[:300]!r}")
                return time.perf_counter() - began
            finally:
                proc.terminate()
                proc.wait(30)

        def report_and_verify() -> float:
            return time_argv(report_argv, env=env, cwd=repo) + time_argv(
                verify_argv, env=env, cwd=repo
            )

        k = 1 if args.quick else 5  # one odd start among 3 decided the row
        log(f"start to first /healthz vs aim audit report + aim audit verify; {k} runs each")
        cold_times = interleaved({"cold": cold_start, "both": report_and_verify}, k, warmup=0)

        log(f"aim serve over {RECORDS:,} records, kept running")
        proc, url, _ = start(serve_argv, env, repo)
        try:
            fetch(url + "healthz")
            counter = iter(range(10**6))

            def healthz() -> float:
                append_one(next(counter))
                t, body, status = fetch(url + "healthz")
                assert status == 200, body[:300]
                return t

            def dashboard() -> float:
                append_one(next(counter))
                t, body, status = fetch(url)
                assert status == 200 and b'id="verdict"' in body
                return t

            log(f"/healthz and / after one new record, vs aim audit report; {n} runs each")
            times = interleaved(
                {
                    "healthz": healthz,
                    "dashboard": dashboard,
                    "report": lambda: time_argv(report_argv, env=env, cwd=repo),
                },
                n,
                warmup=1,
            )
            audit_state = json.loads(fetch(url + "healthz")[1])["audit"]
        finally:
            proc.terminate()
            proc.wait(30)
    cold, cold_base = median(cold_times["cold"]), median(cold_times["both"])
    base = median(times["report"])
    total = RECORDS + next(counter)
    once = audit_state["lines_read"] == total and audit_state["rebuilds"] == 0
    read_note = (
        f"lines read by the server: {audit_state['lines_read']:,} for {total:,} records "
        f"({'each once' if once else 'NOT each once'}), rebuilds {audit_state['rebuilds']}"
    )
    return [
        Result(
            key="serve_healthz",
            what="aim serve /healthz, 100k records, +1 record",
            aim=median(times["healthz"]),
            base=base,
            unit="s",
            budget="<= 1x aim audit report (same records)",
            ok=median(times["healthz"]) <= base and once,
            notes=[
                f"each request follows the append of one record (chain checked from the last "
                f"verified one); {read_note}; {n} runs each"
            ],
        ),
        Result(
            key="serve_dashboard",
            what="aim serve dashboard page 1, 100k records, +1 record",
            aim=median(times["dashboard"]),
            base=base,
            unit="s",
            budget="<= 1x aim audit report (same records)",
            ok=median(times["dashboard"]) <= base,
            notes=[
                "the report's figures are rebuilt from the in-memory per-run aggregate "
                "(O(runs), no file read but the new line); 50 runs per page"
            ],
        ),
        Result(
            key="serve_cold",
            what="aim serve start to first /healthz, 100k records",
            aim=cold,
            base=cold_base,
            unit="s",
            budget="<= 1x aim audit report + aim audit verify",
            ok=cold <= cold_base,
            notes=[
                "once per server: process start, the full read and the whole chain walk "
                "(SHA-256 of every record); the baseline is the two commands doing that work "
                f"one after the other; {k} run(s) each; the server also builds what they don't "
                "(the run index with record offsets, histograms, per-day series, a 32-byte "
                "digest per record)"
            ],
        ),
    ]


if __name__ == "__main__":
    cli_main(run, __doc__)
