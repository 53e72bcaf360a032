"""Fake tool executables: real programs on PATH that behave like a tool.

A fake tool is a small Python script named like the tool (``aider``) whose
behaviour is read from a JSON file beside it, so a test can change it between
calls. It answers ``--version``, records every call (argv and cwd), sleeps,
writes or deletes files, floods output, spawns grandchildren (also in a new
session, as daemons do) and exits with the code it is given. Tests drive aim
against it exactly as against the real program: through PATH and the
process runner, nothing of aim mocked.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_SCRIPT = r"""#!{python}
import json, os, subprocess, sys, time
here = os.path.dirname(os.path.abspath(__file__))
name = os.path.basename(__file__)
with open(os.path.join(here, "." + name + ".json")) as f:
    cfg = json.load(f)
calls = os.path.join(here, "." + name + ".calls.jsonl")
with open(calls, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd()}}) + "\n")
args = sys.argv[1:]
if args[:1] in (["--version"], ["-V"], ["version"]):
    time.sleep(cfg.get("version_sleep", 0))
    out = cfg.get("version_output")
    if out != "":
        sys.stdout.write((name + " " + cfg["version"] if out is None else out) + "\n")
    sys.stderr.write(cfg.get("version_stderr", ""))
    sys.exit(cfg.get("version_exit", 0))
with open(calls) as f:
    n = sum(1 for line in f if json.loads(line)["argv"][:1] not in (["--version"], ["-V"], ["version"]))
runs = cfg["runs"]
run = runs[min(n - 1, len(runs) - 1)]
if run.get("needs_login"):
    sys.stderr.write(run.get("login_message", "Error: not logged in. Run '" + name + " login' first.") + "\n")
    sys.exit(run.get("login_exit", 1))
for path in run.get("deletes", []):
    try:
        os.remove(path)
    except OSError:
        pass
for path, text in run.get("writes", {{}}).items():
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
text = run.get("write_argv_files")
if text is not None:  # write every file named on the command line (after a --message PROMPT)
    rest = args[2:] if args[:1] == ["--message"] else args
    for path in rest:
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
g = run.get("grandchild")
if g:
    code = "import time; time.sleep(%r)" % g.get("sleep", 60)
    p = subprocess.Popen([sys.executable, "-c", code], start_new_session=g.get("setsid", False),
                         stdout=subprocess.DEVNULL if g.get("detach_output") else None,
                         stderr=subprocess.DEVNULL if g.get("detach_output") else None)
    if g.get("pidfile"):
        with open(g["pidfile"], "w") as f:
            f.write(str(p.pid))
sys.stdout.write(run.get("stdout", ""))
sys.stderr.write(run.get("stderr", ""))
sys.stdout.flush()
flood = run.get("flood_bytes", 0)
if flood:
    chunk = b"x" * 65535 + b"\n"
    w = sys.stdout.buffer
    while flood > 0:
        w.write(chunk[: min(flood, len(chunk))])
        flood -= len(chunk)
    w.flush()
time.sleep(run.get("sleep", 0))
sys.exit(run.get("exit_code", 0))
"""


class FakeTool:
    """A fake executable on disk; :meth:`configure` changes what it does next."""

    def __init__(self, bin_dir: Path, name: str):
        self.bin_dir = Path(bin_dir)
        self.name = name
        self.path = self.bin_dir / name
        self._config = self.bin_dir / f".{name}.json"
        self._calls = self.bin_dir / f".{name}.calls.jsonl"

    def configure(
        self,
        *,
        version: str = "1.0.0",
        version_output: str | None = None,
        version_sleep: float = 0.0,
        version_exit: int = 0,
        version_stderr: str = "",
        runs: Sequence[Mapping[str, Any]] | None = None,
        **run: Any,
    ) -> FakeTool:
        """Set the behaviour: ``runs`` is one behaviour per call (the last repeats);
        keyword arguments describe a single behaviour (``exit_code``, ``stdout``,
        ``stderr``, ``sleep``, ``writes``, ``deletes``, ``write_argv_files``,
        ``flood_bytes``, ``grandchild``, ``needs_login``)."""
        behaviours = list(runs) if runs is not None else [run]
        self._config.write_text(
            json.dumps(
                {
                    "version": version,
                    "version_output": version_output,
                    "version_sleep": version_sleep,
                    "version_exit": version_exit,
                    "version_stderr": version_stderr,
                    "runs": behaviours,
                }
            )
        )
        self._calls.unlink(missing_ok=True)
        return self

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every call so far: ``{"argv": [...], "cwd": "..."}``."""
        if not self._calls.exists():
            return []
        return [json.loads(line) for line in self._calls.read_text().splitlines() if line]

    @property
    def work_calls(self) -> list[dict[str, Any]]:
        """The calls other than ``--version``."""
        return [c for c in self.calls if c["argv"][:1] not in (["--version"], ["-V"], ["version"])]

    def touch(self) -> None:
        """Change the binary's mtime and size (as an upgrade would)."""
        with open(self.path, "a") as f:
            f.write("\n")


def make_fake_tool(
    bin_dir: str | os.PathLike[str],
    name: str,
    *,
    version: str = "1.0.0",
    exit_code: int = 0,
    stdout: str = "",
    stderr: str = "",
    writes: Mapping[str, str] | None = None,
    sleep: float = 0.0,
    needs_login: bool = False,
    **more: Any,
) -> FakeTool:
    """Write an executable named ``name`` into ``bin_dir`` that behaves as told."""
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = FakeTool(bin_dir, name)
    tool.path.write_text(_SCRIPT.format(python=sys.executable))
    tool.path.chmod(tool.path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    run: dict[str, Any] = {
        "exit_code": exit_code,
        "stdout": stdout,
        "stderr": stderr,
        "writes": dict(writes or {}),
        "sleep": sleep,
        "needs_login": needs_login,
    }
    options = {k: more.pop(k) for k in list(more) if k.startswith("version_") or k == "runs"}
    run.update(more)
    return tool.configure(version=version, **options, **run)
