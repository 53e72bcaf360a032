"""aim_aider against the plugin contract: aim_core.testing's conformance suite."""

from __future__ import annotations

import aim_aider
from aim_core.testing import AimPluginTests


class TestAiderConformance(AimPluginTests):
    plugin = aim_aider
    tool_id = "aider"
