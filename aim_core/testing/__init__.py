"""The plugin authors' kit: pytest fixtures, helpers and the conformance suite.

The fixtures (``aim_project``, ``fake_tool``, ``aim_plugin_manager``,
``audit_capture``) come with aim-core through its ``pytest11`` entry point
(:mod:`aim_core.testing.plugin`); nothing to configure. The conformance suite::

    from aim_core.testing import AimPluginTests
    import aim_mytool

    class TestMyTool(AimPluginTests):
        plugin = aim_mytool
        tool_id = "mytool"

This package needs pytest; see docs/plugins/tutorial.md.
"""

from __future__ import annotations

from aim_core.testing.capture import AuditCapture
from aim_core.testing.conformance import RULES, AimPluginTests, sample_records
from aim_core.testing.environment import AimTestEnv
from aim_core.testing.fake_tools import FakeTool, make_fake_tool
from aim_core.testing.harness import AimProject, AimResult

__all__ = [
    "RULES",
    "AimPluginTests",
    "AimProject",
    "AimResult",
    "AimTestEnv",
    "AuditCapture",
    "FakeTool",
    "make_fake_tool",
    "sample_records",
]
