"""aim_jules against the plugin contract: aim_core.testing's conformance suite."""

from __future__ import annotations

import aim_jules
from aim_core.testing import AimPluginTests


class TestJulesConformance(AimPluginTests):
    plugin = aim_jules
    tool_id = "jules"
