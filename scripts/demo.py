#!/usr/bin/env python3
"""`make demo`: aim's main job in a throwaway repository, command by command.

Copies examples/demo-project to a temporary git repository, runs `aim init`,
then the commands a team runs every day: status, validate, a linting
workstream (ruff fixes a real file), a testing workstream (pytest), the
guide's code_generation workstream with whatever AI tools this machine has
(falling back, or explaining how to install one), and the audit queries.
Exits non-zero only if a command fails in a way it should not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = [
    (["aim", "init"], {0}),
    (["aim", "status"], {0}),
    (["aim", "validate"], {0}),
    (["aim", "run", "workstreams/lint-calc.json"], {0}),
    (["git", "diff", "--stat"], {0}),
    (["aim", "run", "workstreams/test-calc.json"], {0}),
    # 0 when an AI tool is installed and works, 1 when it fails, 3 when none is installed
    (["aim", "run", "workstreams/staging_test/ws-aim-validation.json"], {0, 1, 3}),
    (["aim", "audit", "query"], {0}),
    (["aim", "audit", "verify"], {0}),
    (["aim", "audit", "report"], {0}),
]


def main() -> int:
    if shutil.which("aim") is None:
        print("demo: the `aim` command is not on PATH; run `make install` first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="aim-demo-")) / "demo-project"
    shutil.copytree(ROOT / "examples" / "demo-project", work)
    git = ["git", "-c", "user.name=aim demo", "-c", "user.email=demo@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=work, check=True)
    subprocess.run([*git, "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-qm", "demo project"], cwd=work, check=True)
    print(f"# demo repository: {work}\n", flush=True)
    for argv, ok in STEPS:
        print(f"$ {' '.join(argv)}", flush=True)
        r = subprocess.run(argv, cwd=work, stdin=subprocess.DEVNULL)
        print(f"(exit {r.returncode})\n", flush=True)
        if r.returncode not in ok:
            print(f"demo: `{' '.join(argv)}` exited {r.returncode}", file=sys.stderr)
            return 1
    print(f"# done; the repository stays at {work} for you to explore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
