"""aim_opencode against the plugin contract: aim_core.testing's conformance suite."""

from __future__ import annotations

import aim_opencode
from aim_core.testing import AimPluginTests


class TestOpencodeConformance(AimPluginTests):
    plugin = aim_opencode
    tool_id = "opencode"
    program = "opencode"
