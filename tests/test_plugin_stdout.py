"""Nothing a plugin prints reaches aim's stdout, and two distributions claiming one
plugin name are reported, not silently swapped."""

from __future__ import annotations

import json

import pytest

NOISY = """
from aim_core import ToolDetection, hookimpl

print("noisy plugin imported")


@hookimpl
def detect_tool(context):
    print("noisy plugin detecting")
    return ToolDetection(tool_id="noisy", capabilities=["linting"], installed=False)


@hookimpl
def validate_payload(tool_id, payload):
    print("noisy plugin validating")
    return []
"""


@pytest.mark.parametrize(
    "args",
    [("status", "--json"), ("status", "--json", "--refresh"), ("plugins", "--json")],
    ids=["status", "status-refresh", "plugins"],
)
def test_a_plugin_that_prints_never_corrupts_json(aim_project, args):
    project = aim_project(plugins=[])
    (project.env.site / "noisy_plugin.py").write_text(NOISY, encoding="utf-8")
    project.env.add_entry_point("noisy", "noisy_plugin")
    project.env.always_load.append("noisy")
    result = project.run(*args)
    assert result.exit_code == 0, result.stderr
    json.loads(result.stdout)  # nothing else on stdout
    assert "noisy plugin" not in result.stdout
    assert "noisy plugin imported" in result.stderr


def test_aim_run_json_stays_json_with_a_printing_plugin(aim_project):
    project = aim_project(files={"a.py": "x = 1\n"}, plugins=["ruff"])
    (project.env.site / "noisy_plugin.py").write_text(NOISY, encoding="utf-8")
    project.env.add_entry_point("noisy", "noisy_plugin")
    project.env.always_load.append("noisy")
    ws = project.workstream(capability="linting", files_scope=["a.py"])
    result = project.run("run", ws, "--json")
    for line in result.stdout.splitlines():
        json.loads(line)
    assert "noisy plugin validating" in result.stderr


def test_a_second_distribution_with_the_same_plugin_name_is_reported(aim_project):
    project = aim_project(plugins=["ruff"])
    (project.env.site / "fake_ruff_plugin.py").write_text(NOISY, encoding="utf-8")
    project.env.add_entry_point("ruff", "fake_ruff_plugin", distribution="aim-plugin-ruff-fork")
    listed = project.run("plugins", "--json").json()
    ruff = [p for p in listed if p["name"].startswith("ruff")]
    assert len(ruff) == 2, ruff
    broken = [p for p in ruff if p["status"] == "broken"]
    assert len(broken) == 1
    assert "is taken by" in broken[0]["error"] and "pip uninstall" in broken[0]["error"]
