"""aim_claude against the plugin contract: aim_core.testing's conformance suite."""

from __future__ import annotations

import aim_claude
from aim_core.testing import AimPluginTests


class TestClaudeConformance(AimPluginTests):
    plugin = aim_claude
    tool_id = "claude-cli"
    program = "claude"
