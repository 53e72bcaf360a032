"""Shared by tests/test_verify.py and tests/test_race.py: two script tools (``first``,
``second``: fake executables on PATH whose shell body a test writes) routed for
code_generation, with pytest and ruff for the checks; the ``vrepo`` fixture lives in
tests/conftest.py."""

from __future__ import annotations

from tests.repo_kit import commit_all, install_plugin, script_tool

TWO_TOOLS_PLUGIN = """
import json
from aim_core import InvocationResult, ToolDetection, Usage, hookimpl

TOOLS = ("first", "second", "third")  # third: only where a test routes it


@hookimpl
def detect_tool(context):
    return [
        ToolDetection(
            tool_id=t, capabilities=["code_generation"], installed=context.which(t) is not None,
            path=context.which(t), version="1.0",
        )
        for t in TOOLS
    ]


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    if tool_id not in TOOLS:
        return None
    r = context.run(
        [context.which(tool_id), *payload.files],
        stdin=payload.prompt,
        env={"BUDGET_LEFT": str(payload.max_cost_usd)},
    )
    usage = None
    for line in r.stdout.splitlines():
        if line.startswith("COST "):
            usage = Usage(cost_usd=float(line.split()[1]))
    text = (r.stdout + r.stderr).strip()
    return InvocationResult(
        success=r.exit_code == 0, message=text[-200:] or "done", exit_code=r.exit_code,
        failure=None if r.exit_code == 0 else "timeout" if r.timed_out else "tool_error",
        output=text, usage=usage,
    )
"""

RULES = {
    "capabilities": {
        "code_generation": {"primary": "first", "fallback": ["second"]},
        "testing": {"primary": "pytest", "fallback": []},
        "linting": {"primary": "ruff", "fallback": []},
    }
}

CALC = "def add(a, b):\n    return 0\n"
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def make_vrepo(aim_project):
    project = aim_project(
        files={
            "calc.py": CALC,
            "tests/test_calc.py": TEST,
            "conftest.py": "",  # puts the root on sys.path, as a project of this shape does
            "other.py": "x = 1\n",
        },
        rules=RULES,
        plugins=["pytest", "ruff"],
    )
    install_plugin(project, "twotools", "aim_two_tools", TWO_TOOLS_PLUGIN)
    commit_all(project.root)

    def tool(name: str, body: str) -> None:
        script_tool(project.env.bin_dir, name, body)

    def ws(**extra):
        data = {
            "id": "ws-calc",
            "capability": "code_generation",
            "files_scope": ["calc.py"],
            "tasks": ["make add() add"],
            "verify": {"tests": ["tests/test_calc.py"]},
        }
        data.update(extra)
        return project.workstream(**{k: v for k, v in data.items() if v is not None})

    project.tool = tool
    project.ws = ws
    return project


def repairs_with_output() -> str:
    """A tool body that writes the right code only when its instruction (stdin) holds
    pytest's failing output: a first try fails its check, the repair passes."""
    return (
        'if grep -q "assert add(2, 3) == 5" -; then\n'
        + write(RIGHT)
        + "\nelse\n"
        + write(WRONG)
        + "\nfi"
    )


def write(text: str) -> str:
    return f"cat > calc.py <<'EOF'\n{text}EOF"


def attempts(project):
    return [r for r in project.audit_records() if r.get("tool_id") in ("first", "second")]


def content(record):
    return record["result"]["content"]
