"""aim_ruff against the plugin contract: aim_core.testing's conformance suite."""

from __future__ import annotations

import aim_ruff
from aim_core.testing import AimPluginTests


class TestRuffConformance(AimPluginTests):
    plugin = aim_ruff
    tool_id = "ruff"
