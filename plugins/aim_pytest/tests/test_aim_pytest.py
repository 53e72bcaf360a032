"""Detection of the real `pytest` program (installed with aim's test dependencies)."""

from __future__ import annotations

import os
import sys

import aim_pytest
from aim_core.context import AimContext
from aim_core.testing import make_fake_tool

VENV_BIN = os.path.dirname(sys.executable)


def test_detects_the_real_program(tmp_path):
    ctx = AimContext(root=tmp_path, environ={"PATH": VENV_BIN})
    found = aim_pytest.detect_tool(ctx)
    assert found.tool_id == "pytest" and found.installed
    assert found.path == os.path.join(VENV_BIN, "pytest")
    assert found.version.startswith("pytest ")
    assert aim_pytest.get_version("pytest", ctx) == found.version
    assert aim_pytest.get_version("other", ctx) is None


def test_absent_program_is_not_installed_with_a_hint(tmp_path):
    found = aim_pytest.detect_tool(AimContext(root=tmp_path, environ={"PATH": str(tmp_path)}))
    assert not found.installed
    assert found.reason == "'pytest' not found on PATH (install: pip install pytest)"


def test_program_that_fails_to_start_is_unavailable(tmp_path):
    make_fake_tool(tmp_path, "pytest", version_exit=3, version_output="ImportError: broken install")
    found = aim_pytest.detect_tool(AimContext(root=tmp_path, environ={"PATH": str(tmp_path)}))
    assert found.installed and found.ready is False and found.failure == "unavailable"
    assert found.reason == "'pytest' does not start: ImportError: broken install"
