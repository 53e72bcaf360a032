"""Plugin loading and calling: isolation of broken plugins, ownership, AIM_LOAD_PLUGINS."""

from __future__ import annotations

import json
import time

import pytest

from aim_core import ToolDetection, hookimpl
from aim_core.plugins import AimPlugins
from aim_core.project import Project

from .conftest import write_dist


def fresh() -> AimPlugins:
    return AimPlugins.load(entry_points=False)


class GoodTool:
    @hookimpl
    def detect_tool(self, context):
        return ToolDetection(
            tool_id="good", capabilities=["linting"], installed=True, version="good 1"
        )


class Raises:
    @hookimpl
    def detect_tool(self, context):
        raise RuntimeError("boom\nsecond line")


class Hangs:
    @hookimpl
    def detect_tool(self, context):
        time.sleep(30)


class WrongArgs:
    @hookimpl
    def detect_tool(self, context, extra):
        return None


class TypoHook:
    @hookimpl
    def detect_tools(self, context):
        return None


class NoHooks:
    def detect_tool(self, context):  # forgot @hookimpl
        return None


class Claims:
    def __init__(self, tool_id):
        self.tool_id = tool_id

    @hookimpl
    def detect_tool(self, context):
        return ToolDetection(tool_id=self.tool_id, capabilities=["testing"], installed=False)


def project_with(repo, *plugins) -> Project:
    project = Project.open(repo)
    pm = fresh()
    for name, p in plugins:
        pm.register(p, name)
    project.use_plugins(pm)
    return project


def test_essential_security_plugin_is_always_there():
    pm = fresh()
    assert pm.infos["aim.security"].status == "essential"
    assert pm.infos["aim.security"].hooks == ["validate_payload"]


@pytest.mark.parametrize(
    "plugin,error",
    [
        (WrongArgs(), "extra"),
        (
            TypoHook(),
            "hook implementation 'detect_tools' matches no aim hook (did you mean 'detect_tool'?)",
        ),
        (NoHooks(), "defines no @aim_core.hookimpl functions"),
    ],
    ids=["wrong-args", "typo", "no-hooks"],
)
def test_plugin_that_does_not_match_the_specs_is_broken(plugin, error):
    pm = fresh()
    info = pm.register(plugin, "bad")
    assert info.status == "broken"
    assert error in info.error
    assert "bad" not in pm.plugin_names()


def test_raising_and_hanging_detection_is_isolated(repo):
    project = project_with(repo, ("good", GoodTool()), ("raises", Raises()), ("hangs", Hangs()))
    start = time.monotonic()
    from aim_core.detection import detect_tools

    report = detect_tools(
        project.plugins, lambda d: project.context(deadline=d), cache=None, timeout_s=1.0
    )
    assert time.monotonic() - start < 5
    assert set(report.tools) == {"good"}
    assert report.failed["raises"] == "detect_tool raised RuntimeError: boom second line"
    assert report.failed["hangs"] == "detect_tool did not answer within 1 s"
    assert project.plugins.infos["raises"].status == "broken"
    assert project.plugins.infos["good"].tools == ["good"]


def test_two_plugins_claiming_one_id_is_a_conflict(repo):
    project = project_with(repo, ("first", Claims("x")), ("second", Claims("x")))
    report = project.detect()
    assert report.owner("x") == "first"
    assert report.conflicts == [("x", "second", "first")]


def test_calls_reach_only_the_owner(repo):
    seen = []

    class A:
        @hookimpl
        def detect_tool(self):
            return ToolDetection(tool_id="a", capabilities=["linting"], installed=True)

        @hookimpl
        def get_version(self, tool_id):
            seen.append(("A", tool_id))
            return "a 1.0"

    class B:
        @hookimpl
        def detect_tool(self):
            return ToolDetection(
                tool_id="b", capabilities=["linting"], installed=True, version="b 2"
            )

        @hookimpl
        def get_version(self, tool_id):
            seen.append(("B", tool_id))
            return "b 9"

    project = project_with(repo, ("A", A()), ("B", B()))
    report = project.detect()
    assert report.tools["a"].detection.version == "a 1.0"
    assert report.tools["b"].detection.version == "b 2"  # already known: B not asked
    assert seen == [("A", "a")]


def test_call_gives_only_named_arguments():
    class Few:
        @hookimpl
        def validate_payload(self, tool_id):
            return [tool_id]

    pm = fresh()
    pm.register(Few(), "few")
    out = pm.call(
        "validate_payload",
        "few",
        {"tool_id": "t", "capability": "c", "payload": None, "context": None},
    )
    assert out.value == ["t"]


# --------------------------------------------------------------------------- entry points


GOOD_PLUGIN = """
    from aim_core import hookimpl, ToolDetection

    @hookimpl
    def detect_tool(context):
        path = context.which("demotool")
        return ToolDetection(tool_id="demotool", capabilities=["linting"],
                             installed=path is not None, path=path, version="demotool 3.1")
"""


@pytest.fixture
def site(tmp_path):
    s = tmp_path / "site"
    s.mkdir()
    write_dist(s, "aim-plugin-demo", "aim_plugin_demo", GOOD_PLUGIN, ep_name="demo")
    write_dist(
        s, "aim-plugin-broken", "aim_plugin_broken", "import no_such_module\n", ep_name="broken"
    )
    write_dist(
        s,
        "aim-plugin-exits",
        "aim_plugin_exits",
        "import sys\nsys.exit('plugin refuses to load')\n",
        ep_name="exits",
    )
    return s


def test_third_party_plugin_found_through_its_entry_point(repo, aim, site, fake):
    fake("demotool", version="3.1")
    env = {"PYTHONPATH": str(site), "AIM_LOAD_PLUGINS": "demo,aim-plugin-broken,exits"}
    r = aim("status", "--json", cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    demo = next(t for t in data["tools"] if t["tool_id"] == "demotool")
    assert (
        demo["plugin"] == "demo" and demo["detected"] is True and demo["version"] == "demotool 3.1"
    )
    broken = {b["name"]: b["error"] for b in data["plugins_broken"]}
    assert broken["broken"] == (
        "failed to import aim_plugin_broken: ModuleNotFoundError: No module named 'no_such_module'"
    )
    assert (
        broken["exits"] == "failed to import aim_plugin_exits: SystemExit: plugin refuses to load"
    )

    r = aim("status", cwd=repo, env=env)
    assert "demotool             Yes          demotool 3.1" in r.stdout
    assert "broken (aim-plugin-broken): failed to import" in r.stdout
    assert "fix: pip install --force-reinstall aim-plugin-broken" in r.stdout

    r = aim("plugins", "--json", cwd=repo, env=env)
    plugins = {p["name"]: p for p in json.loads(r.stdout)}
    assert plugins["demo"]["distribution"] == "aim-plugin-demo"
    assert plugins["demo"]["status"] == "loaded" and plugins["demo"]["tools"] == ["demotool"]
    assert plugins["demo"]["hooks"] == ["detect_tool"]
    assert plugins["aim.security"]["status"] == "essential"


def test_aim_load_plugins_loads_only_those(repo, aim, site):
    env = {"PYTHONPATH": str(site), "AIM_LOAD_PLUGINS": "aim-plugin-demo"}
    r = aim("plugins", "--json", cwd=repo, env=env)
    status = {p["name"]: p["status"] for p in json.loads(r.stdout)}
    assert status["demo"] == "loaded"
    assert status["broken"] == "blocked" and status["exits"] == "blocked"
    assert status["aim.security"] == "essential"

    env["AIM_LOAD_PLUGINS"] = ""
    r = aim("plugins", "--json", cwd=repo, env=env)
    status = {p["name"]: p["status"] for p in json.loads(r.stdout)}
    assert status["demo"] == "blocked" and status["aim.security"] == "essential"
