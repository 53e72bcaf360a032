"""pytest plugin for aim plugin authors: fixtures only, nothing autouse.

Registered through the ``pytest11`` entry point of ``aim-core``.
"""

from __future__ import annotations

import os

import pytest

from aim_core.testing.fake_tools import FakeTool, make_fake_tool


@pytest.fixture
def fake_tool(tmp_path_factory, monkeypatch):
    """Factory: ``fake_tool(name, *, version="1.0.0", exit_code=0, stdout="", stderr="",
    writes=None, sleep=0, needs_login=False)`` writes a real executable named
    ``name`` into a bin directory put first on PATH and returns a
    :class:`~aim_core.testing.FakeTool` (``.calls`` lists its calls)."""
    bin_dir = tmp_path_factory.mktemp("fake-bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    def factory(name: str, **kwargs) -> FakeTool:
        return make_fake_tool(bin_dir, name, **kwargs)

    factory.bin_dir = bin_dir
    return factory
