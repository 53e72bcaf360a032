"""Config and coordination rules: precedence, warnings, and clear exit-2 errors."""

from __future__ import annotations

import json

import pytest

from aim_core.config import load_settings
from aim_core.errors import ConfigError
from aim_core.paths import RULES_RELPATH
from aim_core.registry import DEFAULT_RULES, find_root, load_rules


def test_defaults_without_file(tmp_path):
    s = load_settings(tmp_path, environ={})
    assert (s.enable_aim, s.default_timeout_ms, s.registry_path, s.actor) == (
        True,
        30000,
        "auto",
        "pipeline",
    )
    assert s.source is None


def test_precedence_file_env_flag(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "aim_config.yaml").write_text(
        "default_timeout_ms: 60000  # 60 seconds\nactor: file\nenable_aim: true\n"
    )
    s = load_settings(tmp_path, environ={})
    assert s.default_timeout_ms == 60000 and s.actor == "file"
    s = load_settings(tmp_path, environ={"AIM_ACTOR": "env", "AIM_ENABLE_AIM": "false"})
    assert s.actor == "env" and s.enable_aim is False
    s = load_settings(tmp_path, environ={"AIM_ACTOR": "env"}, overrides={"actor": "flag"})
    assert s.actor == "flag"


def test_guide_step_1_3_file_loads(repo):
    s = load_settings(repo, environ={})
    assert s.audit_log_retention_days == 30 and s.registry_path == "auto"
    assert s.warnings == ()


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "default_timeout_ms: fast\n",
            'default_timeout_ms: expected an integer number of milliseconds, got "fast"',
        ),
        ("enable_aim: 1\n", "enable_aim: expected true or false, got 1"),
        ("audit_log_retention_days: 0\n", "audit_log_retention_days: must be at least 1, got 0"),
        ("tools:\n  aider: fast\n", "tools.aider: expected a mapping of options"),
        (
            "tools:\n  aider:\n    args: --yes\n",
            "tools.aider.args: expected a list of command-line arguments",
        ),
        ("- a\n- b\n", 'expected a mapping of settings (key: value), got ["a", "b"]'),
        ("enable_aim: [\n", "line 2, column 1: not valid YAML"),
        ("schema_version: 9\n", "schema_version: schema_version 9 is newer than this aim"),
    ],
    ids=["int", "bool", "minimum", "tool-section", "args", "not-mapping", "yaml-syntax", "version"],
)
def test_bad_config_exit_2(repo, aim, text, expected):
    cfg = repo / "config" / "aim_config.yaml"
    cfg.write_text(text)
    r = aim("status", cwd=repo)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"config/aim_config.yaml: {expected}" in r.stderr
    assert "Traceback" not in r.stderr
    assert cfg.read_text() == text


def test_unknown_config_key_warns_with_nearest(repo, aim):
    cfg = repo / "config" / "aim_config.yaml"
    cfg.write_text(cfg.read_text() + "enable_audit_log: true\n")
    r = aim("status", cwd=repo)
    assert r.returncode == 0
    assert (
        "unknown key 'enable_audit_log' (did you mean 'enable_audit_logging'?); it is ignored"
        in r.stderr
    )
    assert r.stderr.startswith("[WARNING] ")


def test_bad_env_value_names_the_variable(repo, aim):
    r = aim("status", cwd=repo, env={"AIM_DEFAULT_TIMEOUT_MS": "soon"})
    assert r.returncode == 2
    assert (
        'AIM_DEFAULT_TIMEOUT_MS: expected an integer number of milliseconds, got "soon"' in r.stderr
    )


@pytest.mark.parametrize(
    "how", [("--actor", "bob\x1b[2J"), ("AIM_ACTOR", "a\u2028b"), ("--actor", "ci\u202e")]
)
def test_an_actor_with_control_characters_is_refused(repo, aim, how):
    """The actor is in every audit record, query and report: a newline, an escape or a
    right-to-left override in it is exit 2 with the source named, nothing recorded."""
    where, value = how
    if where == "AIM_ACTOR":
        r = aim("status", cwd=repo, env={"AIM_ACTOR": value})
    else:
        r = aim(where, value, "status", cwd=repo)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{where}: actor: " in r.stderr and "holds a control character" in r.stderr
    assert not any(c in r.stderr for c in "\x1b\u2028\u202e")


def test_explicit_missing_config_is_an_error(repo, aim):
    r = aim("--config", "nope.yaml", "status", cwd=repo)
    assert r.returncode == 2
    assert "nope.yaml: config file not found" in r.stderr


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (
            lambda d: d["capabilities"]["linting"].update(fallback="pylint"),
            "capabilities.linting.fallback: expected a list of tool ids",
        ),
        (
            lambda d: d["capabilities"]["linting"].update(primry="ruff"),
            "capabilities.linting.primry: unknown key (did you mean 'primary'?)",
        ),
        (lambda d: d.update(capabilities=[]), "capabilities: expected an object of capabilities"),
        (
            lambda d: d["security"].update(max_payload_bytes="1MB"),
            'security.max_payload_bytes: expected an integer number of bytes, got "1MB"',
        ),
        (
            lambda d: d["security"].update(forbiden_paths=[]),
            "security.forbiden_paths: unknown key (did you mean 'forbidden_paths'?)",
        ),
        (
            lambda d: d["capabilities"]["linting"].update(fallback=["ev\x1b[2J\n[INFO] il"]),
            'capabilities.linting.fallback[0]: "ev\\u001b[2J\\n[INFO] il" holds a control '
            "character ('\\x1b'), which a tool id cannot; remove it",
        ),
        (
            lambda d: d["capabilities"]["linting"].update(primary="ruff\u202e"),
            'capabilities.linting.primary: "ruff\\u202e" holds a control character',
        ),
        (
            lambda d: d["capabilities"].update({"cap\x1b[31m\nX": {"primary": "ruff"}}),
            'capabilities.cap\\x1b[31m\\nX: "cap\\u001b[31m\\nX" holds a control character',
        ),
    ],
    ids=[
        "fallback-string",
        "typo",
        "capabilities-list",
        "max-bytes",
        "security-typo",
        "fallback-escape",
        "primary-bidi",
        "capability-newline",
    ],
)
def test_bad_rules_exit_2(repo, aim, mutate, expected):
    path = repo / "aim" / ".AIM_ai-tools-registry" / RULES_RELPATH
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    r = aim("route", "linting", cwd=repo)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"AIM_coordination-rules.json: {expected}" in r.stderr
    assert "Traceback" not in r.stderr


def test_rules_syntax_error_has_line(repo):
    path = repo / "aim" / ".AIM_ai-tools-registry" / RULES_RELPATH
    path.write_text('{\n  "capabilities": {,\n}')
    with pytest.raises(ConfigError, match=r"line 2, column 20"):
        load_rules(path.parent.parent)


def test_init_writes_the_guides_routing(repo):
    rules = load_rules(repo / "aim" / ".AIM_ai-tools-registry")
    table = {c: (r.primary, r.fallback) for c, r in rules.capabilities.items()}
    vendors = ("codex", "gemini-cli", "opencode")  # after the guide's order
    assert table == {
        "code_generation": ("jules", ("aider", "claude-cli", *vendors)),
        "linting": ("ruff", ("pylint",)),
        "refactoring": ("aider", ("claude-cli", *vendors)),
        "testing": ("pytest", ()),
        "version_checking": ("aider", ("jules", "claude-cli", *vendors)),
    }
    assert (
        ".git/" in rules.security["forbidden_paths"] and ".env" in rules.security["forbidden_paths"]
    )
    assert rules.security["max_payload_bytes"] == 1024 * 1024
    assert rules.security == DEFAULT_RULES["security"]


def test_root_found_upward_registry_then_git(tmp_path, repo):
    sub = repo / "src" / "deep"
    sub.mkdir(parents=True)
    assert find_root(sub) == repo
    plain = tmp_path / "plain"
    (plain / ".git").mkdir(parents=True)
    (plain / "a" / "b").mkdir(parents=True)
    assert find_root(plain / "a" / "b") == plain


@pytest.mark.parametrize("how", ["flag", "env", "config"])
@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o773])
def test_a_registry_every_user_may_write_to_is_refused(repo, aim, tmp_path, how, mode):
    """``--registry /tmp``: another user of the machine could put rules there or links
    where the audit log is written. Refused whichever way it is named, before anything
    is written there."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    args, env = ["status"], {}
    if how == "flag":
        args = ["--registry", str(shared), "status"]
    elif how == "env":
        env = {"AIM_REGISTRY": str(shared)}
    else:
        (repo / "config" / "aim_config.yaml").write_text(f"registry_path: {shared}\n")
    for command in (args, [*args[:-1], "run", "--dry-run", "workstreams"]):
        r = aim(*command, cwd=repo, env=env)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"the registry directory {shared} is writable by every user" in r.stderr
        assert "Traceback" not in r.stderr
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize("mode", [0o700, 0o770, 0o755])
def test_a_registry_of_ones_own_or_a_teams_is_used(repo, aim, tmp_path, mode):
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(mode)
    r = aim("--registry", str(mine), "status", cwd=repo)
    assert r.returncode == 0, r.stdout + r.stderr
