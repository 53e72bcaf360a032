"""aim_gemini against the plugin contract: aim_core.testing's conformance suite."""

from __future__ import annotations

import aim_gemini
from aim_core.testing import AimPluginTests


class TestGeminiConformance(AimPluginTests):
    plugin = aim_gemini
    tool_id = "gemini-cli"
    program = "gemini"
