"""``GET /healthz``: is this repository's aim in a state to run and to be trusted?

Healthy (HTTP 200) when the registry exists, the coordination rules load, and the
audit chain verifies up to its head. Each tool's detection is reported as the
last ``aim status`` cached it (no process is started); a tool that is missing or
logged out is information, not ill health -- the router falls back. Unhealthy
answers are HTTP 503 with one sentence per reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aim_core.errors import AimError
from aim_core.serve.state import AuditState


class RulesCheck:
    """The coordination rules, loaded again only when the file changes."""

    def __init__(self, registry: Path):
        self.registry = Path(registry)
        self._stamp: tuple[int, int] | None = None
        self._answer: dict[str, Any] = {}

    def check(self) -> dict[str, Any]:
        """``{valid, source, capabilities, error}``."""
        from aim_core.paths import RULES_RELPATH
        from aim_core.registry import load_rules

        path = self.registry / RULES_RELPATH
        try:
            st = os.stat(path)
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None
        if stamp is not None and stamp == self._stamp:
            return self._answer
        try:
            rules = load_rules(self.registry)
            answer = {
                "valid": True,
                "source": rules.source,
                "capabilities": sorted(rules.capabilities),
                "error": None,
            }
        except AimError as e:
            answer = {"valid": False, "source": str(path), "capabilities": [], "error": str(e)}
        self._stamp, self._answer = stamp, answer
        return answer


def cached_tools(environ: dict[str, str] | Any) -> list[dict[str, Any]]:
    """Each tool as the detection cache last saw it (``aim status`` fills the cache):
    ``[{tool_id, plugin, installed, ready, version, reason, checked_at}]``."""
    from aim_core.detection import DetectionCache, cache_dir

    cache = DetectionCache(cache_dir(environ), environ)
    out = []
    for plugin, entry in sorted(cache.entries.items()):
        if not isinstance(entry, dict):
            continue
        for a in entry.get("answers") or []:
            if isinstance(a, dict) and a.get("tool_id"):
                out.append(
                    {
                        "tool_id": a["tool_id"],
                        "plugin": plugin,
                        "installed": bool(a.get("installed")),
                        "ready": a.get("ready"),
                        "version": a.get("version"),
                        "reason": a.get("reason"),
                        "checked_at": entry.get("checked_at"),
                    }
                )
    return sorted(out, key=lambda t: t["tool_id"])


def healthz(
    state: AuditState, rules: RulesCheck, environ: Any, active: list[dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    """The status code (200 or 503) and the JSON body of ``/healthz``."""
    reasons: list[str] = []
    found = state.registry.is_dir()
    if not found:
        reasons.append(f"registry not found at {state.registry}: run 'aim init'")
    rule_state = rules.check()
    if not rule_state["valid"]:
        reasons.append(f"coordination rules invalid: {rule_state['error']}")
    state.refresh()
    chain = state.chain_status()
    if not chain["verified"]:
        reasons += [f"audit chain: {p}" for p in chain["problems"]]
    tools = cached_tools(environ)
    last = None
    if state.order:
        summary = state.run_summary(state.order[-1])
        if summary:
            last = {
                "run_id": summary["run_id"],
                "timestamp": summary["ended"],
                "success": summary["success"],
            }
    body = {
        "status": "ok" if not reasons else "unhealthy",
        "reasons": reasons,
        "registry": {"path": str(state.registry), "found": found},
        "rules": rule_state,
        "tools": tools,
        "detection": "cached by 'aim status'" if tools else "no cache yet: run 'aim status'",
        "audit": {**chain, "last_record_at": state.last_timestamp},
        "last_run": last,
        "runs_in_progress": sum(1 for e in active if e.get("alive")),
    }
    return (200 if not reasons else 503), body
