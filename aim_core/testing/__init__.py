"""Testing helpers for aim and for plugin authors (the ``pytest11`` plugin lives in
:mod:`aim_core.testing.plugin`)."""

from aim_core.testing.fake_tools import FakeTool, make_fake_tool

__all__ = ["FakeTool", "make_fake_tool"]
