"""aider detection against fake ``aider`` executables (the real one needs an LLM)."""

from __future__ import annotations

import aim_aider
from aim_core.context import AimContext
from aim_core.testing import make_fake_tool


def ctx(tmp_path, **env):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return AimContext(
        root=tmp_path, environ={"PATH": str(tmp_path / "bin"), "HOME": str(home), **env}
    )


def test_found_with_key_is_ready_unknown_and_versioned(tmp_path):
    make_fake_tool(tmp_path / "bin", "aider", version_output="aider 0.86.2")
    found = aim_aider.detect_tool(ctx(tmp_path, OPENAI_API_KEY="k"))
    assert found.installed and found.version == "aider 0.86.2"
    assert found.ready is None  # a key is there; whether it works can't be known offline
    assert "OPENAI_API_KEY" in found.env_passthrough and "AIDER_*" in found.env_passthrough
    assert ".aider.chat.history.md" in found.scratch_paths
    assert aim_aider.get_version("aider", ctx(tmp_path)) == "aider 0.86.2"
    assert aim_aider.get_version("jules", ctx(tmp_path)) is None


def test_no_key_anywhere_needs_one(tmp_path):
    make_fake_tool(tmp_path / "bin", "aider")
    found = aim_aider.detect_tool(ctx(tmp_path))
    assert found.ready is False and found.failure == "auth_required"
    assert "aider has no model API key" in found.reason


def test_key_in_a_dotenv_file_counts(tmp_path):
    make_fake_tool(tmp_path / "bin", "aider")
    (tmp_path / ".env").write_text("OPENAI_API_KEY=x\n")
    assert aim_aider.detect_tool(ctx(tmp_path)).ready is None


def test_not_installed(tmp_path):
    found = aim_aider.detect_tool(ctx(tmp_path))
    assert not found.installed
    assert found.reason == "'aider' not found on PATH (install: pip install aider-chat)"
