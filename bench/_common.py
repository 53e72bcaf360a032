"""What every benchmark shares: a sealed environment, timing by interleaved medians,
fake tools and plugins, and the result rows ``run_all.py`` prints.

Every figure is a ratio against a baseline measured in the same run, because these
machines are noisy. The commands run in a world of their own under a temporary
directory: HOME, ``AIM_CACHE_DIR``, a git repository made by ``aim init``, and a
``bin`` directory of fake tools first on a minimal PATH. Bytecode is cached under
``PYTHONPYCACHEPREFIX`` (``/tmp/aim-bench-pycache``) for aim and the baseline
alike, so an editable checkout or ``PYTHONDONTWRITEBYTECODE`` in the caller's
environment does not add a compile step to every start.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PYTHON = sys.executable  # run_all.py and `make bench` use the venv's python
BIN = Path(PYTHON).parent
AIM = str(BIN / "aim") if (BIN / "aim").exists() else None
LAUNCH = str(BENCH_DIR / "_launch.py")
CACHE_ROOT = Path(os.environ.get("AIM_BENCH_CACHE", "/tmp/aim-bench-cache"))
PYCACHE = Path(os.environ.get("AIM_BENCH_PYCACHE", "/tmp/aim-bench-pycache"))
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"

# The five first-party tools, as fake executables the installed plugins detect.
FIRST_PARTY_PROGRAMS = ("aider", "claude", "jules", "ruff", "pytest")


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """One row of the table."""

    key: str
    what: str
    aim: float
    base: float
    unit: str  # "s", "ms", "MB", "files"
    budget: str
    ok: bool
    ratio: float | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.ratio is None and self.base:
            self.ratio = self.aim / self.base


def cli_main(run: Callable[[argparse.Namespace], list[Result]], doc: str | None) -> None:
    """The command line of one benchmark script: ``--quick``, ``--json FILE``."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if AIM is None:
        sys.exit(f"no 'aim' next to {PYTHON}; run this with the venv's python (make bench)")
    results = run(args)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))
    sys.exit(0 if all(r.ok for r in results) else 1)


def fmt_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:g} {unit}"


def print_table(results: Sequence[Result], out: Any = None) -> None:
    """The table: what, aim's median, the baseline's median, ratio, budget, pass/fail."""
    out = out or sys.stdout
    rows = [("what", "aim", "baseline", "ratio", "budget", "result")]
    for r in results:
        rows.append(
            (
                r.what,
                fmt_value(r.aim, r.unit),
                fmt_value(r.base, r.unit),
                "-" if r.ratio is None else f"{r.ratio:.2f}x",
                r.budget,
                "pass" if r.ok else "FAIL",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
        if n == 0:
            print("-+-".join("-" * w for w in widths), file=out)
    notes = [(r.what, note) for r in results for note in r.notes]
    if notes:
        print(file=out)
        for what, note in notes:
            print(f"- {what}: {note}", file=out)
    out.flush()


# --------------------------------------------------------------------------- timing


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def time_argv(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    stdout: Any = subprocess.DEVNULL,
    check: bool = True,
) -> float:
    """Wall time of one run of ``argv`` (seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(list(argv), env=dict(env), cwd=cwd, stdout=stdout, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
        )
    return elapsed


def interleaved(
    runs: Mapping[str, Callable[[], float]], n: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Call each timer ``n`` times, alternating between them so that drift in the
    machine's load hits every one alike; ``warmup`` rounds are thrown away."""
    out: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(warmup + n):
        for name, timer in runs.items():
            t = timer()
            if i >= warmup:
                out[name].append(t)
    return out


# --------------------------------------------------------------------------- the world


def base_env(**extra: str) -> dict[str, str]:
    """The environment of every measured process (aim and baseline alike)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIM_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    }
    env.update(
        {
            "PYTHONPYCACHEPREFIX": str(PYCACHE),
            "TZ": "UTC",
            "LANG": "C.UTF-8",
            "PATH": SYSTEM_PATH,
        }
    )
    env.pop("VIRTUAL_ENV", None)
    env.update(extra)
    return env


class World:
    """A temporary HOME, cache, fake-tool bin and a git repository made by ``aim init``."""

    def __init__(self, name: str, *, keep: bool = False):
        self.dir = Path(tempfile.mkdtemp(prefix=f"aim-bench-{name}-"))
        self.keep = keep
        self.home = self.dir / "home"
        self.cache = self.dir / "cache"
        self.bin = self.dir / "bin"
        self.site = self.dir / "site"
        self.repo = self.dir / "repo"
        for d in (self.home, self.cache, self.bin, self.site, self.repo):
            d.mkdir()
        # aim's run server (aim_core/resident.py) of this world: a short socket path
        self.resident = Path(tempfile.mkdtemp(prefix="aimb-", dir="/tmp"))
        self.extra_env: dict[str, str] = {}

    @property
    def env(self) -> dict[str, str]:
        env = base_env(
            HOME=str(self.home),
            AIM_CACHE_DIR=str(self.cache),
            PATH=f"{self.bin}{os.pathsep}{SYSTEM_PATH}",
            AIM_RESIDENT_DIR=str(self.resident),
        )
        env.update(self.extra_env)
        return env

    def run_server(self, timeout: float = 30.0) -> int | None:
        """The pid of this world's run server once it takes commands (the first
        ``aim run`` starts it), or None when there is none after ``timeout`` seconds."""
        import socket

        from aim_core.resident_client import servers

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path, pid in servers(str(self.resident)).items():
                with socket.socket(socket.AF_UNIX) as s:
                    try:
                        s.connect(path)
                    except OSError:
                        continue
                return pid
            time.sleep(0.05)
        return None

    def stop_servers(self) -> None:
        """Stop this world's run servers (they would stop by themselves when idle)."""
        import signal

        from aim_core.resident_client import servers

        for pid in servers(str(self.resident)).values():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)

    def aim(self, *args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
        """Run the real ``aim`` in the repository."""
        proc = subprocess.run(
            [AIM, *args],
            env=self.env,
            cwd=kw.pop("cwd", self.repo),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            **kw,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"aim {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def init_repo(self) -> None:
        subprocess.run(["git", "init", "-q", str(self.repo)], check=True, env=self.env)
        self.aim("init")

    def make_ready_home(self) -> None:
        """Logins the first-party plugins look for, so every fake tool is ready."""
        (self.home / ".jules" / "cache").mkdir(parents=True)
        (self.home / ".jules" / "cache" / "oauth_creds.json").write_text("{}")
        (self.home / ".aider.conf.yml").write_text("model: bench\n")

    def fake_tool(self, name: str, **behaviour: Any):
        """A fake executable in ``bin`` (see aim_core.testing.fake_tools)."""
        return fake_tools().make_fake_tool(self.bin, name, **behaviour)

    def add_bench_plugin(self, plugin: str, tool_id: str, program: str, capability: str) -> None:
        """An installed plugin (dist-info + module on PYTHONPATH) serving one fake tool."""
        write_plugin_dist(self.site, plugin, tool_id, program, capability)
        self.extra_env["PYTHONPATH"] = str(self.site)

    def write_workstream(self, name: str, data: Mapping[str, Any]) -> Path:
        path = self.repo / "workstreams" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
        return path

    def close(self) -> None:
        self.stop_servers()
        shutil.rmtree(self.resident, ignore_errors=True)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fake_tools() -> Any:
    """``aim_core/testing/fake_tools.py``, loaded by path: the package's ``__init__``
    needs pytest and the rest of the plugin authors' kit, the fake tools nothing."""
    global _FAKE_TOOLS
    if _FAKE_TOOLS is None:
        import aim_core

        path = Path(aim_core.__file__).parent / "testing" / "fake_tools.py"
        spec = importlib.util.spec_from_file_location("_aim_bench_fake_tools", path)
        assert spec is not None and spec.loader is not None
        _FAKE_TOOLS = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_FAKE_TOOLS)
    return _FAKE_TOOLS


_FAKE_TOOLS: Any = None


# A plugin that drives one fake executable through the real process runner, as a
# first-party plugin does: detect_program, then one context.run per attempt.
PLUGIN_BODY = """
from aim_core import Failure, InvocationResult, hookimpl
from aim_core.toolkit import detect_program, first_line

TOOL_ID = {tool_id!r}
PROGRAM = {program!r}
CAPABILITY = {capability!r}


@hookimpl
def detect_tool(context):
    return detect_program(
        context, tool_id=TOOL_ID, program=PROGRAM, capabilities=[CAPABILITY],
        install_hint="(a fake tool of aim's benchmarks)",
    )


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    if tool_id != TOOL_ID:
        return None
    path = context.which(PROGRAM)
    r = context.run([path, "--message", payload.prompt, *payload.files])
    if r.timed_out:
        return InvocationResult(success=False, message="timed out", failure=Failure.TIMEOUT)
    if r.exit_code == 0:
        return InvocationResult(success=True, message="done", exit_code=0, output=r.stdout)
    return InvocationResult(
        success=False, exit_code=r.exit_code, output=r.stdout + r.stderr,
        message=first_line(r.stderr, r.stdout) or f"exit {{r.exit_code}}",
        failure=Failure.TOOL_ERROR,
    )
"""


def write_plugin_dist(site: Path, plugin: str, tool_id: str, program: str, capability: str):
    """``aim-plugin-<plugin>``: a dist-info with an ``aim`` entry point and its module."""
    module = f"aim_bench_{plugin.replace('-', '_')}"
    dist = f"aim-plugin-{plugin}"
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[aim]\n{plugin} = {module}\n")
    body = PLUGIN_BODY.format(tool_id=tool_id, program=program, capability=capability)
    (site / f"{module}.py").write_text(textwrap.dedent(body))


def workstream(
    ws_id: str,
    capability: str,
    files: Sequence[str],
    *,
    timeout_ms: int = 60000,
    max_retries: int = 0,
    prompt: str = "Write the file",
) -> dict[str, Any]:
    """A workstream in the guide's shape."""
    return {
        "id": ws_id,
        "files_scope": list(files),
        "files_create": [],
        "tasks": [prompt],
        "acceptance_tests": [],
        "depends_on": [],
        "capability": capability,
        "capability_payload": {
            "prompt": prompt,
            "files": list(files),
            "timeout_ms": timeout_ms,
            "max_retries": max_retries,
        },
    }


# --------------------------------------------------------------------------- in-process probes


def launch(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    stdout: Any = subprocess.DEVNULL,
) -> dict[str, Any]:
    """Run ``aim ARGS`` through ``_launch.py`` (an audit hook in the aim process) and
    return what it saw: ``spawns`` (process creations), ``opened`` (files opened),
    ``maxrss_kb`` (aim's own peak RSS), ``exit_code`` and ``wall_s``."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        report = f.name
    try:
        start = time.perf_counter()
        proc = subprocess.run(
            [PYTHON, LAUNCH, report, *args],
            env=dict(env),
            cwd=cwd,
            stdout=stdout,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        try:
            data = json.loads(Path(report).read_text())
        except ValueError:
            raise RuntimeError(
                f"the launcher of aim {' '.join(args)} wrote no report "
                f"(exit {proc.returncode}): {proc.stderr.decode(errors='replace')}"
            ) from None
    finally:
        os.unlink(report)
    data["wall_s"] = wall
    data["stderr"] = proc.stderr.decode(errors="replace")
    return data


def strace_execs(argv: Sequence[str], *, env: Mapping[str, str], cwd: Any = None) -> int | None:
    """How many programs ``argv`` and its descendants exec, by strace (None without it).
    The first exec is ``argv`` itself."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".strace", delete=False) as f:
        out = f.name
    try:
        proc = subprocess.run(
            [strace, "-f", "-qq", "-e", "trace=execve,execveat", "-o", out, *argv],
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            return None
        lines = Path(out).read_text().splitlines()
    finally:
        os.unlink(out)
    return sum(1 for line in lines if "execve" in line and "= 0" in line)


def jq_version() -> str | None:
    jq = shutil.which("jq")
    if jq is None:
        return None
    return subprocess.run([jq, "--version"], capture_output=True, text=True).stdout.strip()


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
