"""Shared fixtures of the core's tests: an isolated environment, a repository made
by ``aim init``, fake tool executables, and the real ``aim`` CLI in a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aim_core.testing.fake_tools import make_fake_tool

SYSTEM_PATH = os.environ.get("PATH", "")


@pytest.fixture(scope="session")
def run_servers():
    """The directory of the run servers an ``aim`` console script starts in the tests
    (aim_core/resident.py); they are stopped when the session ends."""
    import shutil
    import signal
    import tempfile

    from aim_core.resident_client import servers

    where = tempfile.mkdtemp(prefix="aimt-", dir="/tmp")  # a socket path is short
    yield where
    for pid in servers(where).values():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch, run_servers):
    """No test reads the developer's home, cache, AIM_* settings or installed plugins."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith("AIM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIM_RESIDENT_DIR", run_servers)
    monkeypatch.setenv("AIM_RESIDENT_IDLE_S", "30")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AIM_CACHE_DIR", str(home / ".cache" / "aim"))
    monkeypatch.setenv("AIM_LOAD_PLUGINS", "")
    return home


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    """A directory of fake tools, first on PATH (the system PATH stays behind it)."""
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{SYSTEM_PATH}")
    return d


@pytest.fixture
def fake(bin_dir):
    """``fake(name, **behaviour)`` writes a fake executable into ``bin_dir``."""

    def factory(name: str, **kwargs):
        return make_fake_tool(bin_dir, name, **kwargs)

    return factory


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository initialised by the real ``aim init``; the current directory."""
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.chdir(root)
    result = run_aim("init", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


def run_aim(*args: str, cwd: Path | None = None, env: dict | None = None, input: str | None = None):
    """The real ``aim`` command in a subprocess (stdin closed unless ``input``)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "aim_core", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        timeout=120,
    )


@pytest.fixture
def aim():
    """``aim(*args, cwd=None, env=None)`` runs the real CLI and returns CompletedProcess."""
    return run_aim


def write_dist(site, dist, module, body, ep_name=None, version="1.0"):
    """A minimal installed distribution (dist-info + module) under ``site``."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[aim]\n{ep_name or dist} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(body))


FAKEAI = """
import re
from aim_core import hookimpl, InvocationResult, Failure
from aim_core.toolkit import detect_program, first_line

# tool id -> (program, capabilities)
TOOLS = {
    "jules": ("jules", ["code_generation", "version_checking"]),
    "aider": ("aider", ["code_generation", "refactoring", "version_checking"]),
    "claude-cli": ("claude", ["code_generation", "refactoring", "version_checking"]),
}
EXIT = {1: Failure.TOOL_ERROR, 2: Failure.WORK_FAILED, 4: Failure.AUTH_REQUIRED,
        5: Failure.RATE_LIMITED, 6: Failure.INVALID_PAYLOAD, 127: Failure.NOT_INSTALLED}


def _ready(name, program):
    def readiness(context, path):
        r = context.run([path, "--version"])
        if "needs-login" in r.stdout:
            title = name.split("-")[0].capitalize()
            return False, f"{title} requires login (run '{program} login')", Failure.AUTH_REQUIRED
        return True, None, None
    return readiness


@hookimpl
def detect_tool(context):
    return [
        detect_program(context, tool_id=t, program=p, capabilities=c,
                       install_hint=f"pip install {p}", env_passthrough=["FAKEAI_*"],
                       readiness=_ready(t, p))
        for t, (p, c) in TOOLS.items()
    ]


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    if tool_id not in TOOLS:
        return None
    path = context.which(TOOLS[tool_id][0])
    r = context.run([path, "--message", payload.prompt, *payload.files])
    if r.timed_out:
        return InvocationResult(success=False, message="timed out", failure=Failure.TIMEOUT)
    if r.exit_code == 0:
        return InvocationResult(success=True, message="done", exit_code=0, output=r.stdout)
    m = re.search(r"retry-after: (\\d+(?:\\.\\d+)?)", r.stdout)
    return InvocationResult(
        success=False, exit_code=r.exit_code, output=r.stdout + r.stderr,
        message=first_line(r.stderr, r.stdout) or f"exit {r.exit_code}",
        failure=EXIT.get(r.exit_code, Failure.TOOL_ERROR),
        retry_after_s=float(m.group(1)) if m else None,
    )
"""


@pytest.fixture
def fakeai(tmp_path):
    """Environment for a repository whose AI tools come from a generic test plugin that
    drives fake executables (jules, aider, claude) through the real process runner."""
    site = tmp_path / "fakeai-site"
    site.mkdir()
    write_dist(site, "aim-plugin-fakeai", "aim_plugin_fakeai", FAKEAI, ep_name="fakeai")
    return {"PYTHONPATH": str(site), "AIM_LOAD_PLUGINS": "fakeai"}


# A tool driven by a shell script the test writes (tests/test_workspace_trust.py).
SCRIPTTOOL_PLUGIN = """
from aim_core import InvocationResult, ToolDetection, hookimpl


@hookimpl
def detect_tool(context):
    path = context.which("scripttool")
    return ToolDetection(
        tool_id="scripttool", capabilities=["code_generation"], installed=path is not None,
        path=path, version="1.0",
    )


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    if tool_id != "scripttool":
        return None
    r = context.run([context.which("scripttool"), *payload.files])
    text = (r.stdout + r.stderr).strip()
    return InvocationResult(
        success=r.exit_code == 0, message=text[-200:] or "done", exit_code=r.exit_code,
        failure=None if r.exit_code == 0 else "timeout" if r.timed_out else "work_failed",
    )
"""

SCRIPTTOOL_RULES = {"capabilities": {"code_generation": {"primary": "scripttool", "fallback": []}}}


@pytest.fixture
def scripted_repo(aim_project):
    """An initialised, committed git repository with a script tool routed for
    code_generation; ``repo.tool(body)`` sets what the tool does (a shell script)."""
    project = aim_project(
        files={
            "a.py": "a = 1\n",
            "b.py": "b = 1\n",
            "c.py": "c = 1\n",
            "src/m.py": "m = 1\n",
            ".gitignore": "certs/\n.venv/\n",
        },
        rules=SCRIPTTOOL_RULES,
        plugins=[],
    )
    from tests.repo_kit import commit_all, install_plugin, script_tool

    install_plugin(project, "scripttool", "aim_scripttool_plugin", SCRIPTTOOL_PLUGIN)
    root = project.root
    commit_all(root)
    (root / "certs").mkdir()
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "lib" / "site.py").write_text("x = 1\n")

    project.tool = lambda body: script_tool(project.env.bin_dir, "scripttool", body)
    return project


@pytest.fixture
def vrepo(aim_project):
    """A committed git repository with calc.py, its test, and two script tools
    ``first`` and ``second`` routed for code_generation (tests/verify_kit.py)."""
    from tests.verify_kit import make_vrepo

    return make_vrepo(aim_project)
