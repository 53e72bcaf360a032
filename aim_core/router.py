"""Which tools to try for a capability, in which order, and which to skip.

Candidates are the rules' primary, then the workstream's own ``tool`` (the
author's explicit fallback: "direct tool invocation"), then the rules'
remaining fallbacks, each tool once. A candidate that is not installed, not
working or not logged in is skipped with its reason.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aim_core.detection import DetectionReport, ToolState
from aim_core.models import Failure
from aim_core.registry import PLUGIN_HINTS, Rules
from aim_core.values import Value

if TYPE_CHECKING:
    from aim_core.project import Project

log = logging.getLogger("aim")


class Candidate(Value):
    """One tool in the order of trial, with why it would be skipped (if it would).
    ``role`` is ``primary``, ``workstream tool``, ``fallback``, ``provider`` or ``direct``."""

    __slots__ = ("reason", "role", "skip", "state", "tool_id")
    tool_id: str
    role: str
    state: ToolState | None
    skip: Failure | None
    reason: str | None

    def __init__(
        self,
        *,
        tool_id: str,
        role: str,
        state: ToolState | None,
        skip: Failure | None = None,
        reason: str | None = None,
    ) -> None:
        self._init(tool_id=tool_id, role=role, state=state, skip=skip, reason=reason)

    @property
    def usable(self) -> bool:
        """True when the tool would be invoked."""
        return self.skip is None


def candidate_order(
    rules: Rules, capability: str | None, workstream_tool: str | None = None
) -> list[tuple[str, str]]:
    """``(tool_id, role)`` in the order of trial, each tool once."""
    order: list[tuple[str, str]] = []
    route = rules.route(capability) if capability else None
    if route is None:
        return [(workstream_tool, "direct")] if workstream_tool else []
    if route.primary:
        order.append((route.primary, "primary"))
    if workstream_tool:
        order.append((workstream_tool, "workstream tool"))
    order.extend((t, "fallback") for t in route.fallback)
    seen: set[str] = set()
    unique = []
    for tool_id, role in order:
        if tool_id not in seen:
            seen.add(tool_id)
            unique.append((tool_id, role))
    return unique


def assess(
    tool_id: str, state: ToolState | None, capability: str | None
) -> tuple[Failure | None, str | None]:
    """Whether a tool can be invoked now: ``(None, None)``, or the failure and reason."""
    if state is None:
        hint = PLUGIN_HINTS.get(tool_id, f"pip install aim-plugin-{tool_id}")
        return Failure.NOT_INSTALLED, f"no plugin provides '{tool_id}' ({hint})"
    d = state.detection
    if not d.installed:
        return Failure.NOT_INSTALLED, d.reason or f"'{tool_id}' is not installed"
    if d.ready is False:
        return d.failure or Failure.UNAVAILABLE, d.reason or f"'{tool_id}' is not ready"
    if capability and d.capabilities and capability not in d.capabilities:
        served = ", ".join(d.capabilities)
        return Failure.UNAVAILABLE, f"'{tool_id}' does not do {capability} (it does: {served})"
    return None, None


def candidates(
    rules: Rules,
    detection: DetectionReport,
    capability: str | None,
    workstream_tool: str | None = None,
) -> list[Candidate]:
    """The candidates for a capability with each one's state and skip reason."""
    order = candidate_order(rules, capability, workstream_tool)
    if capability and rules.route(capability) is None:
        # A capability the rules don't route (one a plugin declared): every
        # tool that serves it, after the workstream's own tool.
        order = [(workstream_tool, "workstream tool")] if workstream_tool else []
        order += [
            (t, "provider")
            for t, s in detection.tools.items()
            if capability in s.detection.capabilities and t != workstream_tool
        ]
    out = []
    for tool_id, role in order:
        state = detection.tools.get(tool_id)
        skip, reason = assess(tool_id, state, capability if role != "direct" else None)
        out.append(Candidate(tool_id=tool_id, role=role, state=state, skip=skip, reason=reason))
    return out


def recheck_negative(
    project: Project, found: list[Candidate], capability: str | None
) -> list[Candidate]:
    """A cached "not installed / not ready" is checked again before it is believed."""
    stale = {
        c.state.plugin for c in found if c.state is not None and not c.usable and c.state.from_cache
    }
    if not stale:
        return found
    report = project.detect(only=stale)
    out = []
    for c in found:
        state = report.tools.get(c.tool_id)
        skip, reason = assess(c.tool_id, state, capability if c.role != "direct" else None)
        out.append(c.evolve(state=state, skip=skip, reason=reason))
    return out


def capability_for(capability: str | None, cand: Candidate) -> str | None:
    """The run's capability, or (a direct invocation) the tool's first one."""
    if capability or cand.state is None:
        return capability
    return (cand.state.detection.capabilities or ("",))[0] or None


def announce(cand: Candidate, n: int) -> None:
    """The guide's log line for trying ``cand`` as the ``n``-th candidate (0-based)."""
    if cand.role == "primary":
        log.info(f"AIM routing to primary tool: {cand.tool_id}")
    elif cand.role == "workstream tool":
        log.info(f"Falling back to direct tool invocation: {cand.tool_id}")
    elif cand.role == "direct":
        pass  # "Invoking tool ... directly" was said already
    elif n == 0:
        log.info(f"AIM routing to tool: {cand.tool_id}")
    else:
        log.info(f"Falling back to tool: {cand.tool_id}")
