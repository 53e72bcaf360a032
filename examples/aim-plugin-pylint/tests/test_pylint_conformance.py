"""aim_pylint against the plugin contract: aim_core.testing's conformance suite."""

from __future__ import annotations

import aim_pylint

from aim_core.testing import AimPluginTests


class TestPylintConformance(AimPluginTests):
    plugin = aim_pylint
    tool_id = "pylint"
