"""Detection of the real `ruff` program (installed with aim's test dependencies)."""

from __future__ import annotations

import os
import sys

import aim_ruff
from aim_core.context import AimContext
from aim_core.testing import make_fake_tool

VENV_BIN = os.path.dirname(sys.executable)


def test_detects_the_real_program(tmp_path):
    ctx = AimContext(root=tmp_path, environ={"PATH": VENV_BIN})
    found = aim_ruff.detect_tool(ctx)
    assert found.tool_id == "ruff" and found.installed
    assert found.path == os.path.join(VENV_BIN, "ruff")
    assert found.version.startswith("ruff ")
    assert aim_ruff.get_version("ruff", ctx) == found.version
    assert aim_ruff.get_version("other", ctx) is None


def test_absent_program_is_not_installed_with_a_hint(tmp_path):
    found = aim_ruff.detect_tool(AimContext(root=tmp_path, environ={"PATH": str(tmp_path)}))
    assert not found.installed
    assert found.reason == "'ruff' not found on PATH (install: pip install ruff)"


def test_program_that_fails_to_start_is_unavailable(tmp_path):
    make_fake_tool(tmp_path, "ruff", version_exit=3, version_output="ImportError: broken install")
    found = aim_ruff.detect_tool(AimContext(root=tmp_path, environ={"PATH": str(tmp_path)}))
    assert found.installed and found.ready is False and found.failure == "unavailable"
    assert found.reason == "'ruff' does not start: ImportError: broken install"
