"""`aim run` imports only the plugins whose hooks it calls (aim_core.plugins, lazy): a
plugin known from an earlier import with unchanged files is listed from its facts;
``validate_payload`` marked ``own_tools_only`` is asked only about its own tools; a
plugin without the mark, a wrapper, or one whose files changed is imported as before."""

from __future__ import annotations

import json

import pytest

from aim_core.plugins import AimPlugins

from .conftest import write_dist

# A plugin serving one fake executable; it notes each import of itself in $IMPORTS.
BODY = """
import os
from aim_core import Failure, InvocationResult, Problem, hookimpl, own_tools_only
from aim_core.toolkit import detect_program

TOOL = {tool!r}
with open(os.environ["IMPORTS"], "a") as f:
    f.write(TOOL + "\\n")


@hookimpl
def detect_tool(context):
    return detect_program(context, tool_id=TOOL, program=TOOL, capabilities=["testing"],
                          install_hint="(a test tool)")


@hookimpl
def invoke_capability(tool_id, capability, payload, context):
    if tool_id != TOOL:
        return None
    r = context.run([context.which(TOOL), "--message", payload.prompt])
    return InvocationResult(success=r.exit_code == 0, message="done", exit_code=r.exit_code,
                            failure=None if r.exit_code == 0 else Failure.TOOL_ERROR)


@hookimpl{validate_opts}
{mark}def validate_payload(tool_id, capability, payload, context):
    with open(os.environ["CHECKS"], "a") as f:
        f.write(f"{{TOOL}} {{tool_id}}\\n")
    if tool_id == TOOL and "refuse" in (payload.prompt or ""):
        return [Problem(field="capability_payload.prompt", message=TOOL + " refuses")]
    return None
"""


def _plugin(site, tool, *, mark=True, validate_opts=""):
    body = BODY.format(
        tool=tool, mark="@own_tools_only\n" if mark else "", validate_opts=validate_opts
    )
    write_dist(site, f"aim-plugin-{tool}", f"aim_plugin_{tool}", body, ep_name=tool)


@pytest.fixture
def world(repo, fake, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    for tool in ("atool", "btool"):
        fake(tool, version="1.0")
        _plugin(site, tool)
    _plugin(site, "ctool", mark=False)  # asks about every tool: always imported
    fake("ctool", version="1.0")
    imports, checks = tmp_path / "imports.log", tmp_path / "checks.log"
    env = {
        "PYTHONPATH": str(site),
        "AIM_LOAD_PLUGINS": "atool,btool,ctool",
        "IMPORTS": str(imports),
        "CHECKS": str(checks),
    }
    for tool in ("atool", "btool"):
        (repo / f"{tool}.json").write_text(
            json.dumps(
                {
                    "id": f"ws-{tool}",
                    "files_scope": ["t.py"],
                    "capability": "testing",
                    "tool": tool,
                    "capability_payload": {"prompt": "check", "files": ["t.py"]},
                }
            )
        )
    return site, env, imports, checks


def _lines(path) -> list[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def test_run_imports_only_the_plugins_it_calls(repo, aim, world):
    _site, env, imports, checks = world
    r = aim("status", cwd=repo, env=env)  # imports every plugin, records their facts
    assert r.returncode == 0, r.stderr
    assert sorted(_lines(imports)) == ["atool", "btool", "ctool"]

    r = aim("run", "atool.json", cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    # atool runs, ctool's check has no mark; btool's is asked about btool only
    assert sorted(_lines(imports)) == ["atool", "ctool"]
    assert sorted(_lines(checks)) == ["atool atool", "ctool None", "ctool atool"]

    # its own tool: btool is imported and its objection counts
    (repo / "btool.json").write_text(
        (repo / "btool.json").read_text().replace('"check"', '"refuse"')
    )
    r = aim("run", "btool.json", cwd=repo, env=env)
    assert r.returncode == 3, r.stderr
    assert "btool refuses" in r.stderr
    assert sorted(_lines(imports)) == ["btool", "ctool"]

    # `aim plugins` still lists (and imports) every plugin
    r = aim("plugins", "--json", cwd=repo, env=env)
    status = {p["name"]: (p["status"], p["tools"]) for p in json.loads(r.stdout)}
    assert status["btool"] == ("loaded", ["btool"]) and status["atool"] == ("loaded", ["atool"])


def test_a_changed_or_broken_plugin_is_imported_again(repo, aim, world):
    site, env, imports, _checks = world
    aim("status", cwd=repo, env=env)
    _lines(imports)
    module = site / "aim_plugin_btool.py"
    module.write_text(module.read_text() + "\nraise RuntimeError('btool is broken now')\n")
    r = aim("run", "atool.json", cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(_lines(imports)) == ["atool", "btool", "ctool"]  # btool's files changed
    r = aim("plugins", "--json", cwd=repo, env=env)
    btool = next(p for p in json.loads(r.stdout) if p["name"] == "btool")
    assert btool["status"] == "broken" and "btool is broken now" in btool["error"]
    _lines(imports)
    r = aim("run", "atool.json", cwd=repo, env=env)  # broken: no facts, imported each time
    assert "btool" in _lines(imports)


def test_a_wrapper_is_always_imported(repo, aim, world):
    site, env, imports, _checks = world
    _plugin(site, "wtool", validate_opts="(wrapper=True)", mark=False)
    module = site / "aim_plugin_wtool.py"
    text = module.read_text().replace(
        "def validate_payload(tool_id, capability, payload, context):\n",
        "def validate_payload(tool_id, capability, payload, context):\n"
        "    result = yield\n    return result\n",
    )
    module.write_text(text.split('    with open(os.environ["CHECKS"]')[0])
    env["AIM_LOAD_PLUGINS"] += ",wtool"
    aim("status", cwd=repo, env=env)
    _lines(imports)
    r = aim("run", "atool.json", cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert "wtool" in _lines(imports)


def test_call_order_is_the_same_lazy_or_not(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("IMPORTS", str(tmp_path / "imports.log"))
    monkeypatch.setenv("CHECKS", str(tmp_path / "checks.log"))
    opts = {"p1": "(tryfirst=True)", "p2": "(trylast=True)", "p3": "", "p4": "(trylast=True)"}
    for tool, o in opts.items():
        _plugin(site, tool, validate_opts=o, mark=tool != "p3")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("AIM_LOAD_PLUGINS", "p1,p2,p3,p4")
    eager = AimPlugins.load()
    lazy = AimPlugins.load(lazy=True)
    assert set(lazy.deferred) == {"p1", "p2", "p3", "p4"}
    for hook in ("validate_payload", "detect_tool", "invoke_capability"):
        assert lazy.implementers(hook) == eager.implementers(hook), hook
    assert eager.implementers("validate_payload")[:2] == ["p1", "p3"]
    # once imported, the order holds
    lazy.call("detect_tool", "p3", {"context": None})
    assert "p3" not in lazy.deferred
    assert lazy.implementers("validate_payload") == eager.implementers("validate_payload")
