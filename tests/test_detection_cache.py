"""The detection cache: warm `aim status` starts no process; a changed binary is seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import write_dist

PLUGIN = """
    import os
    from aim_core import hookimpl, Failure
    from aim_core.toolkit import detect_program

    CRED = os.path.join(os.environ["HOME"], ".demotool-credentials")

    def readiness(context, path):
        if os.path.exists(CRED):
            return True, None, None
        return False, "Demotool requires login (run 'demotool login')", Failure.AUTH_REQUIRED

    @hookimpl
    def detect_tool(context):
        return detect_program(context, tool_id="demotool", program="demotool",
                              capabilities=["linting"], install_hint="pip install demotool",
                              watch_paths=[CRED], readiness=readiness)
"""

COUNT_SPAWNS = """
import sys
spawned = []
def hook(event, args):
    if event in ("subprocess.Popen", "os.posix_spawn", "os.system", "os.fork") or event.startswith("os.exec"):
        spawned.append(event)
sys.addaudithook(hook)
from aim_core.__main__ import main
rc = main(sys.argv[1:])
sys.stderr.write("SPAWNED=%d\\n" % len(spawned))
sys.exit(rc)
"""


@pytest.fixture
def env(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_dist(site, "aim-plugin-demo", "aim_plugin_demo", PLUGIN, ep_name="demo")
    return {"PYTHONPATH": str(site), "AIM_LOAD_PLUGINS": "demo"}


def status(repo, env, *args):
    r = subprocess.run(
        [sys.executable, "-c", COUNT_SPAWNS, "status", "--json", *args],
        cwd=repo,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    spawned = int(r.stderr.rsplit("SPAWNED=", 1)[1])
    data = json.loads(r.stdout)
    tool = next(t for t in data["tools"] if t["tool_id"] == "demotool")
    return tool, spawned


def test_warm_cache_spawns_nothing_and_a_changed_binary_is_seen(repo, env, fake):
    tool = fake("demotool", version="1.0")
    first, spawned = status(repo, env)
    assert first["detected"] is True and first["version"] == "demotool 1.0"
    assert spawned == 1 and len(tool.calls) == 1

    warm, spawned = status(repo, env)
    assert warm == first
    assert spawned == 0 and len(tool.calls) == 1

    tool.configure(version="2.0")
    tool.touch()  # an upgrade changes the binary's size and mtime
    upgraded, spawned = status(repo, env)
    assert upgraded["version"] == "demotool 2.0"
    assert spawned == 1

    again, spawned = status(repo, env, "--refresh")
    assert spawned == 1 and again["version"] == "demotool 2.0"


def test_installing_a_missing_tool_is_seen_at_once(repo, env, fake, bin_dir):
    missing, _ = status(repo, env)
    assert missing["detected"] is False
    assert missing["reason"] == "'demotool' not found on PATH (install: pip install demotool)"
    fake("demotool", version="1.0")  # lands in a PATH directory: its mtime changes
    found, spawned = status(repo, env)
    assert found["detected"] is True and spawned == 1


def test_login_shows_up_at_once_through_watch_paths(repo, env, fake, isolated_env):
    fake("demotool")
    before, _ = status(repo, env)
    assert before["ready"] is False and before["failure"] == "auth_required"
    assert before["reason"] == "Demotool requires login (run 'demotool login')"
    (isolated_env / ".demotool-credentials").write_text("x")
    after, spawned = status(repo, env)
    assert after["ready"] is True and spawned == 1  # re-checked at once, no TTL wait


def test_expired_ttl_detects_again(repo, env, fake):
    tool = fake("demotool")
    status(repo, env)
    status(repo, {**env, "AIM_DETECTION_CACHE_TTL_S": "0"})
    assert len(tool.calls) == 2


KEYED = """
    from aim_core import hookimpl, Failure
    from aim_core.toolkit import detect_program

    def readiness(context, path):
        r = context.run([path, "--version"])  # the tool sees its own variables
        if context.getenv("DEMO_KEY") and r.exit_code == 0:
            return True, None, None
        return False, "Demotool needs DEMO_KEY", Failure.AUTH_REQUIRED

    @hookimpl
    def detect_tool(context):
        return detect_program(context, tool_id="demotool", program="demotool",
                              capabilities=["linting"], install_hint="pip install demotool",
                              env_passthrough=["DEMO_*"], readiness=readiness)
"""


def test_setting_a_tools_key_is_seen_at_once(repo, fake, tmp_path, monkeypatch):
    site = tmp_path / "keyed-site"
    site.mkdir()
    write_dist(site, "aim-plugin-keyed", "aim_plugin_keyed", KEYED, ep_name="keyed")
    env = {
        "PYTHONPATH": str(site),
        "AIM_LOAD_PLUGINS": "keyed",
        "AIM_READINESS_CACHE_TTL_S": "3600",
    }
    fake("demotool")
    before, _ = status(repo, env)
    assert before["ready"] is False
    again, spawned = status(repo, env)
    assert spawned == 0 and again == before  # still served from the caches
    after, spawned = status(repo, {**env, "DEMO_KEY": "k"})
    assert after["ready"] is True and spawned >= 1


def test_tool_variables_key_matches_fnmatch():
    """One compiled pattern for all globs chooses exactly what fnmatchcase would."""
    import fnmatch

    from aim_core.status_snapshot import _digest, tool_variables_key

    env = {
        "AIDER_MODEL": "x",
        "aider_model": "y",
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE": "b",
        "ANTHROPIC_API_KEY": "a",
        "A1": "1",
        "HOME": "/h",
        "X[1]": "z",
    }
    for patterns in (
        [],
        ["AIDER_*"],
        ["AIDER_*", "OPENAI_API_KEY", "A?"],
        ["*_API_KEY", "X[[]1]", "[AH]*"],
        ["HOME"],
    ):
        chosen = sorted(
            (k, v) for k, v in env.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)
        )
        assert tool_variables_key(patterns, env) == _digest(repr(chosen)), patterns
