"""End-to-end tests: the real aider, claude, jules, codex, gemini-cli and opencode
driven by the real ``aim`` CLI.

These tests need the real programs, which ``make e2e`` installs at pinned versions
(``tests/e2e/install_tools.sh``) and puts first on PATH, with ``AIM_E2E=1``. In any
other run (``make test``) every test here is skipped, and says how to run it.

Each test gets a git repository made by ``aim init`` (with one commit), its own
HOME (the root conftest's), its own detection cache, the LLM stub of
:mod:`tests.e2e.stub_llm` on 127.0.0.1 and an environment holding no real key:
``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` are the stub's, and ``PATH`` holds only
the tools the test asks for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.stub_llm import StubLLM

HERE = Path(__file__).parent
E2E = os.environ.get("AIM_E2E") == "1"
TOOLS = ("aider", "claude", "jules", "codex", "gemini", "opencode")
MODEL = "openai/stub-model"
# Variables that could carry a real key or endpoint into a test: never passed on.
SCRUBBED = (
    "OPENAI_",
    "ANTHROPIC_",
    "CLAUDE_",
    "AIDER_",
    "JULES_",
    "LITELLM_",
    "GEMINI_",
    "GOOGLE_",
    "CODEX_",
    "OPENCODE_",
)
REGISTRY = Path("aim") / ".AIM_ai-tools-registry"
GUIDE_WS = "workstreams/staging_test/ws-aim-validation.json"


def pytest_collection_modifyitems(config, items):
    if E2E:
        return
    skip = pytest.mark.skip(reason="end-to-end test with the real AI coding tools: run `make e2e`")
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tool_dirs() -> dict[str, Path]:
    """The directory of each real program on PATH (``make e2e`` put them there)."""
    found = {}
    for name in TOOLS:
        path = shutil.which(name)
        if path is None:
            pytest.fail(f"'{name}' is not on PATH: run the end-to-end tests with `make e2e`")
        found[name] = Path(path).parent
    return found


@pytest.fixture
def stub():
    """The LLM stub (OpenAI and Anthropic), stopped after the test."""
    with StubLLM() as s:
        yield s


class E2ERepo:
    """A repository made by ``aim init``, and the real ``aim`` run in it."""

    def __init__(self, root: Path, home: Path, tool_dirs: dict[str, Path], stub: StubLLM):
        self.root = root
        self.home = home
        self.tool_dirs = tool_dirs
        self.stub = stub
        self.extra_path: list[Path] = []
        self.env: dict[str, str] = {
            "OPENAI_API_KEY": "sk-stub-openai",
            "ANTHROPIC_API_KEY": "sk-ant-stub",
            "ANTHROPIC_BASE_URL": stub.url,
        }

    # ------------------------------------------------------------------ running

    def environ(self, tools=TOOLS) -> dict[str, str]:
        """aim's environment: PATH with only ``tools`` of the real programs."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
        env.pop("AIM_LOAD_PLUGINS", None)  # the real, installed plugins
        hidden = {str(d) for d in self.tool_dirs.values()}
        rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p not in hidden]
        wanted = [str(self.tool_dirs[t]) for t in tools]
        aim_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(
            dict.fromkeys([*map(str, self.extra_path), *wanted, aim_bin, *rest])
        )
        env.update(self.env)
        return env

    def aim_argv(self, *args: str) -> list[str]:
        """The ``aim`` console script, as a user runs it: ``aim run`` is then served by
        aim's run server after the first one (aim_core/resident.py)."""
        script = Path(sys.executable).with_name("aim")
        if script.exists():
            return [str(script), *args]
        return [sys.executable, "-m", "aim_core", *args]

    def aim(self, *args: str, tools=TOOLS, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run ``aim ARGS`` in the repository; the completed process (stdin closed)."""
        return subprocess.run(
            self.aim_argv(*args),
            cwd=self.root,
            env=self.environ(tools),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )

    def popen(self, *args: str, tools=TOOLS) -> subprocess.Popen:
        return subprocess.Popen(
            self.aim_argv(*args),
            cwd=self.root,
            env=self.environ(tools),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    # ------------------------------------------------------------------ files

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.root), *args], check=True, capture_output=True, text=True
        ).stdout

    def commit(self, message: str = "work") -> None:
        self.git("add", "-A")
        self.git("-c", "user.email=e2e@aim.test", "-c", "user.name=e2e", "commit", "-qm", message)

    def configure(self, **tools_options) -> None:
        """Set ``tools:`` in config/aim_config.yaml (the rest as ``aim init`` wrote it)."""
        path = self.root / "config" / "aim_config.yaml"
        data = yaml.safe_load(path.read_text())
        data["tools"] = tools_options
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def aider_options(self, *args: str, edit_format: str = "whole") -> dict:
        """aider's section: the stub's model and base URL, its metadata file, ``args``."""
        return {
            "model": MODEL,
            "base_url": self.stub.openai_base,
            "args": [
                "--model-metadata-file",
                str(self.model_metadata()),
                "--edit-format",
                edit_format,
                *args,
            ],
        }

    def model_metadata(self) -> Path:
        """litellm's metadata for the stub model (context size, no cost), outside the repo."""
        path = self.home / "stub-model-metadata.json"
        entry = {
            "max_tokens": 8192,
            "max_input_tokens": 128000,
            "max_output_tokens": 8192,
            "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0,
            "litellm_provider": "openai",
            "mode": "chat",
        }
        path.write_text(json.dumps({MODEL: entry}))
        return path

    def workstream(self, name: str, **fields) -> str:
        """Write ``workstreams/NAME.json``; its path relative to the root."""
        path = self.root / "workstreams" / f"{name}.json"
        path.write_text(json.dumps({"id": name, **fields}, indent=2))
        return str(path.relative_to(self.root))

    def records(self) -> list[dict]:
        """Every audit record, in order."""
        out = []
        for f in sorted((self.root / REGISTRY / "AIM_audit").glob("*/audit.jsonl")):
            out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        return out

    def run_log(self) -> str:
        """Every run log, without the time at the start of each line."""
        text = "".join(
            p.read_text() for p in sorted((self.root / REGISTRY / "AIM_runs").glob("*.log"))
        )
        return "\n".join(line.partition(" ")[2] for line in text.splitlines())

    def aider_leftovers(self) -> list[str]:
        """Every ``.aider*`` file or directory in the repository."""
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob(".aider*")
            if ".git" not in p.relative_to(self.root).parts
        )


@pytest.fixture
def e2e_repo(tmp_path, isolated_env, tool_dirs, stub) -> E2ERepo:
    """A git repository initialised by the real ``aim init`` and committed once."""
    root = tmp_path / "repo"
    root.mkdir()
    repo = E2ERepo(root, isolated_env, tool_dirs, stub)
    repo.git("init", "-q", "-b", "main")
    r = repo.aim("init")
    assert r.returncode == 0, r.stderr
    repo.configure(aider=repo.aider_options())
    repo.commit("aim init")
    return repo


def wait_for(predicate, timeout: float, interval: float = 0.05):
    """Poll ``predicate`` until it returns something true; that value (None on timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None
