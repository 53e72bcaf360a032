"""aim_pytest against the plugin contract: aim_core.testing's conformance suite."""

from __future__ import annotations

import aim_pytest
from aim_core.testing import AimPluginTests


class TestPytestConformance(AimPluginTests):
    plugin = aim_pytest
    tool_id = "pytest"
