"""aim_codex against the plugin contract: aim_core.testing's conformance suite."""

from __future__ import annotations

import aim_codex
from aim_core.testing import AimPluginTests


class TestCodexConformance(AimPluginTests):
    plugin = aim_codex
    tool_id = "codex"
    program = "codex"
