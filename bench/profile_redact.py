"""What finding and redacting credentials costs (docs/SECURITY.md quotes these figures).

    .venv/bin/python bench/profile_redact.py

Prints medians: loading the ruleset (first use in a process), redacting a typical
audit record (clean, and with a key in its prompt), and scanning 1 MB of source
code and 1 MB of prose, with and without the random-string rules. There is no
budget of its own: the budget it serves is `aim run`'s overhead (bench_run_overhead).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_append import sample_record

from aim_core import credentials
from aim_core.security import redact_data

SITE = Path(credentials.__file__).resolve().parent.parent


def median_us(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def code_megabyte() -> str:
    text, files = "", sorted(SITE.glob("aim_core/**/*.py")) + sorted(SITE.glob("tests/*.py"))
    while len(text) < 1_000_000:
        for f in files:
            text += f.read_text(encoding="utf-8")
    return text[:1_000_000]


def prose_megabyte() -> str:
    doc = "".join(p.read_text(encoding="utf-8") for p in sorted(SITE.glob("docs/*.md")))
    return (doc * (1_000_000 // len(doc) + 1))[:1_000_000]


def main() -> None:
    cold = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t = time.perf_counter(); from aim_core import credentials; "
            "credentials.scan('use sk-proj-Ab3dEf5gHi7jKl9mNo1pQr3sTu5v and done'); "
            "print((time.perf_counter() - t) * 1e3)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"{float(cold):9.1f} ms  first scan in a process (import, load ~235 rules, compile)")
    rec = sample_record()
    redact_data(rec)
    print(f"{median_us(lambda: redact_data(rec), 500):9.0f} us  redact_data(typical record), clean")
    prompt = "deploy with AKIA" + "Q3VZ7WJ2XK5MN4RT"
    dirty = {**rec, "payload": {**rec["payload"], "prompt": prompt}}
    print(f"{median_us(lambda: redact_data(dirty), 200):9.0f} us  redact_data(record with a key)")
    for name, text in (("source code", code_megabyte()), ("prose", prose_megabyte())):
        for entropy in (False, True):
            us = median_us(lambda t=text, e=entropy: credentials.scan(t, entropy=e), 5)
            what = "all rules" if entropy else "without the random-string rules"
            print(f"{us / 1000:9.1f} ms  scan 1 MB of {name}, {what}")


if __name__ == "__main__":
    main()
