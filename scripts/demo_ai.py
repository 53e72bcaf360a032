"""The real AI tools of `make demo`: installed once, driven against a local stub model.

:func:`install_tools` installs the pinned aider and claude code the way `make e2e`
does (tests/e2e/install_tools.sh, cache ``$AIM_E2E_CACHE``, default
~/.cache/aim-e2e, outside the clone) and says so plainly when it cannot (offline,
no npm): the demo then goes on without them.

:class:`StubModel` is the e2e tests' loopback LLM (tests/e2e/stub_llm.py, imported
rather than copied so that one stub, kept honest by the e2e tests against the pinned
tools, serves both), scripted for the demo's workstream -- add ``median()`` to
src/calc.py, checked by tests/test_median.py. The stub tells the two tools apart by
protocol: aider speaks OpenAI chat completions and gets a ``median()`` that forgets
to sort (wrong: the check fails); claude code speaks Anthropic Messages and gets one
that sorts (right).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / "tests" / "e2e" / "install_tools.sh"
TOOLS = {"aider": "AIDER_VERSION", "claude": "CLAUDE_VERSION"}
RULES = Path("aim") / ".AIM_ai-tools-registry" / "AIM_cross-tool" / "AIM_coordination-rules.json"
CONFIG = Path("config") / "aim_config.yaml"
ROUTE = {"primary": "aider", "fallback": ["claude-cli"]}
MODEL = "openai/stub-model"
# Variables that could carry a real key or endpoint to the tools: not passed on.
SCRUBBED = ("OPENAI_", "ANTHROPIC_", "CLAUDE_", "AIDER_", "LITELLM_")
STUB_KEYS = {"OPENAI_API_KEY": "sk-stub-demo-openai", "ANTHROPIC_API_KEY": "sk-ant-stub-demo"}

WRONG_MEDIAN = '''def median(values):
    """Middle value of a list of numbers."""
    return values[len(values) // 2]
'''
RIGHT_MEDIAN = '''def median(values):
    """Middle value of a list of numbers (the mean of the two middle ones for an even count)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
'''
ANCHOR = "def mean(values):\n"  # the new function goes before it


def versions() -> dict[str, str]:
    """``{"AIDER_VERSION": ..., "CLAUDE_VERSION": ...}``: from the environment (`make demo`
    passes the Makefile's E2E_* pins) or else read from the Makefile itself."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    found = {}
    for var in TOOLS.values():
        pinned = re.search(rf"^E2E_{var}\s*:?=\s*(\S+)", makefile, re.MULTILINE)
        value = os.environ.get(var) or (pinned.group(1) if pinned else "")
        if value:
            found[var] = value
    return found


def install_tools() -> tuple[str | None, str]:
    """Install (or find in the cache) the pinned aider and claude code.

    Returns ``(path, note)``: ``path`` is their bin directories as one PATH value, or
    None when they could not be installed; ``note`` says which and where, or why not.
    The installer's own progress goes to stderr.
    """
    pins = versions()
    env = {**os.environ, **pins}
    try:
        r = subprocess.run(
            ["bash", str(INSTALLER), *TOOLS],
            env=env,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=900,  # a first install takes 1 to 2 minutes
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"could not run {INSTALLER.name}: {e}"
    if r.returncode != 0 or not r.stdout.strip():
        return None, (
            f"aider and claude code could not be installed ({INSTALLER.relative_to(ROOT)} "
            f"exited {r.returncode}; offline, or no npm?)"
        )
    cache = os.environ.get("AIM_E2E_CACHE") or "~/.cache/aim-e2e"
    note = (
        f"ready: aider {pins.get('AIDER_VERSION')} and claude code "
        f"{pins.get('CLAUDE_VERSION')}, cached under {cache} (outside the clone)"
    )
    return r.stdout.strip(), note


class StubModel:
    """The loopback stub LLM with the demo's answers; ``with StubModel() as model:``."""

    def __init__(self) -> None:
        sys.path.insert(0, str(ROOT))  # tests.e2e.stub_llm: the e2e tests' stub
        from tests.e2e.stub_llm import StubLLM, aider_search_replace, tool_use

        self._tool_use = tool_use
        self._search_replace = aider_search_replace
        self.stub = StubLLM()
        self.answers(right="claude")

    def answers(self, right: str) -> None:
        """Script the stub: the tool ``right`` ("aider" or "claude") gets the right
        median(), the other one the wrong one."""
        aider_code, claude_code = (
            (RIGHT_MEDIAN, WRONG_MEDIAN) if right == "aider" else (WRONG_MEDIAN, RIGHT_MEDIAN)
        )
        # aider (OpenAI chat completions, diff edit format): one SEARCH/REPLACE block
        self.stub.reply = self._search_replace(ANCHOR, aider_code + "\n\n" + ANCHOR)
        # claude (Anthropic Messages with tools): read the file, then edit it
        tool_use = self._tool_use
        self.stub.script = [
            [tool_use("Read", file_path="src/calc.py")],
            [
                tool_use(
                    "Edit",
                    file_path="src/calc.py",
                    old_string=ANCHOR,
                    new_string=claude_code + "\n\n" + ANCHOR,
                )
            ],
        ]

    def __enter__(self) -> StubModel:
        self.stub.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stub.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.stub.url

    def requests(self) -> dict[str, int]:
        """How many model calls each protocol got: ``{"openai": n, "anthropic": m}``."""
        return {api: len(self.stub.seen(api)) for api in ("openai", "anthropic")}

    def configure(self, repo: Path, home: Path) -> None:
        """Point the repository's aim at the stub and route code_generation aider ->
        claude-cli. ``home``: where litellm's note on the stub model is written."""
        metadata = home / "stub-model-metadata.json"
        entry = {
            "max_tokens": 8192,
            "max_input_tokens": 128000,
            "max_output_tokens": 8192,
            "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0,
            "litellm_provider": "openai",
            "mode": "chat",
        }
        metadata.write_text(json.dumps({MODEL: entry}), encoding="utf-8")
        tools = {
            "aider": {
                "model": MODEL,
                "base_url": self.stub.openai_base,
                "args": ["--model-metadata-file", str(metadata), "--edit-format", "diff"],
            },
            "claude-cli": {"base_url": self.stub.url},
        }
        config_path = repo / CONFIG
        text = config_path.read_text(encoding="utf-8")
        section = "# make demo: the tools talk to the local stub model\n" + yaml.safe_dump(
            {"tools": tools}, sort_keys=False
        )
        if re.search(r"^tools: \{\}$", text, re.MULTILINE):  # as `aim init` wrote it
            text = re.sub(r"^tools: \{\}\n", lambda _: section, text, flags=re.MULTILINE)
        else:
            config = yaml.safe_load(text) or {}
            text = yaml.safe_dump({**config, "tools": tools}, sort_keys=False)
        config_path.write_text(text, encoding="utf-8")
        rules_path = repo / RULES
        rules = json.loads(rules_path.read_text(encoding="utf-8"))
        rules["capabilities"]["code_generation"] = ROUTE
        rules_path.write_text(json.dumps(rules, indent=2) + "\n", encoding="utf-8")

    def environ(self, tools_path: str, home: Path) -> dict[str, str]:
        """The environment of the demo's aim commands: the pinned tools first on PATH, the
        stub's keys (no real key or endpoint of the user's), a HOME of the demo's own (so
        neither tool reads or writes the user's settings)."""
        env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
        env["PATH"] = os.pathsep.join([tools_path, env.get("PATH", "")])
        env["HOME"] = str(home)
        env.update(STUB_KEYS)
        return env


BANNER = """\
#  The model is a LOCAL STUB on {url} -- NOT a real model: it gives
#  scripted answers. The tools are the real, pinned aider and claude code. For this demo:
#    - config/aim_config.yaml points them at the stub (tools.aider.base_url and model,
#      tools.claude-cli.base_url); their keys are the stub's, their HOME is {home}
#    - the coordination rules route code_generation to aider, then claude-cli"""

MAIN_JOB = """\
#  workstreams/median-calc.json asks for median() in src/calc.py; its "verify" runs
#  tests/test_median.py after each edit: the edit counts only if that passes.
#  The stub gives aider (OpenAI chat API) a median() that forgets to sort -- wrong --
#  and claude code (Anthropic Messages API) one that sorts -- right. Expect: aider's
#  edit fails the check (verify_failed) and is undone; claude-cli's passes; exit 0."""

RACE = """\
#  `--race 2` runs both tools at once, each in its own copy of the repository; the first
#  edit whose check passes is applied in one step, the other tool is stopped and its copy
#  removed. This time the stub swaps its answers: claude code gets the wrong median(),
#  aider the right one. claude finishes first but fails the check; aider wins: a race is
#  won by verified work, not by speed."""

REAL_MODEL = """\
#  This demo's model was a LOCAL STUB (scripted answers on 127.0.0.1), not a real model.
#  To run the same workstreams with real models, in your own repository:
#    - install the tools: pip install aider-chat; npm install -g @anthropic-ai/claude-code
#    - give them keys: export ANTHROPIC_API_KEY=... (claude code; or run `claude` once
#      and /login) and OPENAI_API_KEY=... (aider; or ANTHROPIC_API_KEY with
#      tools.aider.model: sonnet)
#    - leave out the stub: no tools.aider.base_url / tools.claude-cli.base_url and no
#      openai/stub-model in config/aim_config.yaml, no OPENAI_API_BASE or
#      ANTHROPIC_BASE_URL in the environment
#    - check with `aim status`, then `aim run workstreams/median-calc.json`
#  (The costs above are claude code's own estimate for the stub's token counts: nothing
#  was billed.)"""

OFFLINE = """\
#  The demo goes on without AI tools: the guide's code_generation workstream below
#  uses whatever AI tool this machine already has, or says none is installed (exit 3).
#  With network access to the npm and PyPI registries, run `make demo` again."""
