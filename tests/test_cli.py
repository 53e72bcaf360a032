"""The commands of the core issue, driven through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from .conftest import write_dist

ROOT = Path(__file__).parent.parent


def test_version_is_fast_to_import():
    code = (
        "import sys; from aim_core.__main__ import main; main(['--version']); "
        "heavy = [m for m in ('click', 'pluggy', 'cattrs', 'attrs', 'yaml', 'importlib.metadata', "
        "'aim_core.plugins') if m in sys.modules]; print(heavy)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    version, heavy = r.stdout.splitlines()
    assert version.startswith("aim 0.")
    assert heavy == "[]"


def test_python_dash_m_and_help(aim):
    r = aim("--help")
    assert r.returncode == 0 and "aim run ws.json" in r.stdout
    for cmd in ("init", "status", "plugins", "validate", "schema", "route", "doctor"):
        assert cmd in r.stdout
    r = aim("nonsense")
    assert r.returncode == 2 and "No such command 'nonsense'" in r.stderr


def test_init_never_overwrites_without_force(tmp_path, aim):
    r = aim("init", cwd=tmp_path)
    assert "wrote   config/aim_config.yaml" in r.stdout
    assert "wrote   workstreams/staging_test/ws-add-tests.json" in r.stdout
    cfg = tmp_path / "config" / "aim_config.yaml"
    cfg.write_text("actor: mine\n")
    r = aim("init", cwd=tmp_path)
    assert "kept    config/aim_config.yaml (exists; --force overwrites)" in r.stdout
    assert cfg.read_text() == "actor: mine\n"
    gitignore = (tmp_path / ".gitignore").read_text()
    assert gitignore.count("aim/.AIM_ai-tools-registry/AIM_audit/") == 1  # not added twice
    assert "aim/.AIM_ai-tools-registry/AIM_runs/" in gitignore
    r = aim("init", "--force", "--with-scripts", cwd=tmp_path)
    assert "wrote   config/aim_config.yaml" in r.stdout
    assert "actor: pipeline" in cfg.read_text()
    for name in ("aim_status", "run_workstream", "aim_audit_query", "validate_workstreams"):
        assert (tmp_path / "scripts" / f"{name}.py").exists()


def test_guide_script_shim_runs_status(repo, aim):
    aim("init", "--with-scripts", cwd=repo)
    r = subprocess.run(
        [sys.executable, "scripts/aim_status.py"], cwd=repo, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "AIM Registry Path:" in r.stdout


def test_status_layout_is_the_guides(repo, aim):
    r = aim("status", cwd=repo)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"Repository Root: {repo}"
    assert lines[1] == f"AIM Registry Path: {repo / 'aim' / '.AIM_ai-tools-registry'}"
    header = lines.index("Tool ID              Detected     Version                  Notes")
    assert lines[header + 1] == "=" * 70
    assert (
        "pylint               No           N/A                      no plugin installed (pip install aim-plugin-pylint)"
        in lines
    )
    routing = lines.index("Capability Routing:")
    assert lines[routing + 1 : routing + 5] == [
        "=" * 70,
        "code_generation:",
        "  Primary:  jules",
        "  Fallback: aider, claude-cli, codex, gemini-cli, opencode",
    ]
    # the other vendors' CLIs come after the guide's order, with where to get them
    assert (
        "codex                No           N/A                      no plugin installed (pip install aim-plugin-codex)"
        in lines
    )
    assert "testing:\n  Primary:  pytest\nversion_checking:" in r.stdout


def test_status_json_shape(repo, aim):
    data = json.loads(aim("status", "--json", cwd=repo).stdout)
    assert {"root", "registry_path", "tools", "routing", "plugins_broken"} <= set(data)
    tool = data["tools"][0]
    assert {
        "tool_id",
        "plugin",
        "detected",
        "ready",
        "version",
        "path",
        "reason",
        "capabilities",
    } <= set(tool)
    assert data["routing"]["linting"] == {"primary": "ruff", "fallback": ["pylint"]}
    assert all(t["plugin"] is None for t in data["tools"])  # no plugin loaded in this test


def test_status_before_init_says_how(tmp_path, aim):
    r = aim("status", cwd=tmp_path)
    assert r.returncode == 0
    assert "(not found: run 'aim init')" in r.stdout


def test_schema_is_2020_12_and_accepts_every_example(aim):
    schema = json.loads(aim("schema").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    from aim_core.jsonc import loads

    files = [
        *(ROOT / "examples").rglob("*.json"),
        *(ROOT / "aim_core" / "templates").rglob("*.json"),
    ]
    examples = [f for f in files if "plugin" not in f.parts[-2]]
    assert len(examples) >= 7
    for f in examples:
        errors = list(validator.iter_errors(loads(f.read_text())))
        assert not errors, (f, errors)
    bad = {"id": "x", "capability_payload": {"timeout_ms": "sixty"}}
    assert list(validator.iter_errors(bad))


def test_route_shows_order_and_states(repo, aim, tmp_path, fake):
    site = tmp_path / "site"
    site.mkdir()
    write_dist(
        site,
        "aim-plugin-demo",
        "aim_plugin_demo",
        """
        from aim_core import hookimpl, ToolDetection, Failure
        @hookimpl
        def detect_tool(context):
            return [
                ToolDetection(tool_id="jules", capabilities=["code_generation"], installed=True,
                              ready=False, failure=Failure.AUTH_REQUIRED,
                              reason="Jules requires login (run 'jules login')"),
                ToolDetection(tool_id="aider", capabilities=["code_generation"], installed=True,
                              version="aider 0.86.2"),
            ]
        """,
        ep_name="demo",
    )
    env = {"PYTHONPATH": str(site), "AIM_LOAD_PLUGINS": "demo"}
    r = aim("route", "code_generation", "--tool", "aider", cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "Capability: code_generation",
        "  1. jules          primary          skip (auth_required): Jules requires login (run 'jules login')",
        "  2. aider          workstream tool  would run",
        "  3. claude-cli     fallback         skip (not_installed): no plugin provides 'claude-cli' (pip install aim-plugin-claude)",
        "  4. codex          fallback         skip (not_installed): no plugin provides 'codex' (pip install aim-plugin-codex)",
        "  5. gemini-cli     fallback         skip (not_installed): no plugin provides 'gemini-cli' (pip install aim-plugin-gemini)",
        "  6. opencode       fallback         skip (not_installed): no plugin provides 'opencode' (pip install aim-plugin-opencode)",
    ]
    r = aim("route", "code_generaton", cwd=repo, env=env)
    assert r.returncode == 2
    assert "unknown capability 'code_generaton'; did you mean 'code_generation'?" in r.stderr


@pytest.mark.parametrize("with_tool", [False, True], ids=["no-tool", "tool-ready"])
def test_doctor_exit_code(repo, aim, tmp_path, with_tool):
    env = {}
    if with_tool:
        site = tmp_path / "site"
        site.mkdir()
        write_dist(
            site,
            "aim-plugin-demo",
            "aim_plugin_demo",
            """
            from aim_core import hookimpl, ToolDetection
            @hookimpl
            def detect_tool(context):
                return ToolDetection(tool_id="aider", capabilities=["code_generation"], installed=True)
            """,
            ep_name="demo",
        )
        env = {"PYTHONPATH": str(site), "AIM_LOAD_PLUGINS": "demo"}
    r = aim("doctor", cwd=repo, env=env)
    assert "Python 3.10+: Python 3." in r.stdout
    assert "PyYAML: PyYAML" in r.stdout
    if with_tool:
        assert r.returncode == 0, r.stdout
        assert "At least one AI tool: aider" in r.stdout
    else:
        assert r.returncode == 1
        assert "fix: install one: pip install aider-chat" in r.stdout


def test_unreadable_rules_is_exit_2_without_traceback(repo, aim):
    rules = (
        repo / "aim" / ".AIM_ai-tools-registry" / "AIM_cross-tool" / "AIM_coordination-rules.json"
    )
    rules.unlink()
    rules.mkdir()
    r = aim("route", "linting", cwd=repo)
    assert r.returncode == 2
    assert "AIM_coordination-rules.json: cannot read the file: Is a directory" in r.stderr
    assert "Traceback" not in r.stderr
    r = aim("--debug", "route", "linting", cwd=repo)
    assert r.returncode == 1 and "Traceback" in r.stderr


WARM = (
    "import sys; from aim_core.__main__ import main; rc = main(sys.argv[1:]); "
    "heavy = [m for m in ('click', 'pluggy', 'cattrs', 'attrs', 'yaml', 'importlib.metadata') "
    "if m in sys.modules]; sys.stderr.write('HEAVY=%s\\n' % heavy); sys.exit(rc)"
)


def _status(repo, *args):
    r = subprocess.run(
        [sys.executable, "-c", WARM, "status", *args], cwd=repo, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    return r.stdout, r.stderr.rsplit("HEAVY=", 1)[1].strip()


def test_warm_status_is_served_from_its_snapshot(repo):
    cold_text, heavy = _status(repo)
    assert heavy != "[]"  # the first one does the work
    warm_text, heavy = _status(repo)
    assert heavy == "[]" and warm_text == cold_text
    cold_json, _ = _status(repo, "--json")
    warm_json, heavy = _status(repo, "--json")
    assert heavy == "[]" and warm_json == cold_json and json.loads(warm_json)["root"] == str(repo)


def test_snapshot_invalidated_by_config_rules_and_environment(repo, monkeypatch):
    _status(repo)
    cfg = repo / "config" / "aim_config.yaml"
    cfg.write_text(cfg.read_text() + "enable_audit_logging: false\n")
    text, heavy = _status(repo)
    assert heavy != "[]" and "Audit Logging: OFF" in text
    rules = (
        repo / "aim" / ".AIM_ai-tools-registry" / "AIM_cross-tool" / "AIM_coordination-rules.json"
    )
    data = json.loads(rules.read_text())
    data["capabilities"]["testing"]["fallback"] = ["ruff"]
    rules.write_text(json.dumps(data))
    text, heavy = _status(repo)
    assert heavy != "[]" and "testing:\n  Primary:  pytest\n  Fallback: ruff" in text
    _status(repo)
    monkeypatch.setenv("AIM_ACTOR", "someone")
    _, heavy = _status(repo)
    assert heavy != "[]"
