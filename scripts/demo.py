#!/usr/bin/env python3
"""`make demo`: aim's main job in a throwaway repository, command by command.

Creates a temporary git repository, runs `aim init`, `aim status`,
`aim validate` and `aim route code_generation` there, and prints what each
says. Exits non-zero if a command fails unexpectedly.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = [
    (["aim", "init"], {0}),
    (["aim", "status"], {0}),
    (["aim", "validate"], {0}),
    (["aim", "route", "code_generation"], {0}),
    (["aim", "route", "linting"], {0}),
    (["aim", "doctor"], {0, 1}),  # 1: no AI tool installed on this machine, which is fine here
]


def main() -> int:
    aim = shutil.which("aim")
    if aim is None:
        print("demo: the `aim` command is not on PATH; run `make install` first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="aim-demo-"))
    subprocess.run(["git", "init", "-q", str(work)], check=False)
    print(f"# demo repository: {work}\n")
    for argv, ok in STEPS:
        print(f"$ {' '.join(argv)}", flush=True)
        r = subprocess.run(argv, cwd=work, stdin=subprocess.DEVNULL)
        print(flush=True)
        if r.returncode not in ok:
            print(f"demo: `{' '.join(argv)}` exited {r.returncode}", file=sys.stderr)
            return 1
    print(f"# done; the repository stays at {work} for you to explore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
