"""Whether a request may run: the workstream as a whole (the core's security rules
and any plugin's objections, once per workstream) and each candidate tool's own
objections. Objections stay :class:`~aim_core.models.Problem` objects all the way
to the audit record."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn

from aim_core.errors import SecurityError
from aim_core.models import Failure, Invocation, Problem

if TYPE_CHECKING:
    from aim_core.project import Project
    from aim_core.runstate import RunState

log = logging.getLogger("aim")

CHECK_TIMEOUT_S = 10.0


def workstream_problems(
    project: Project, request: Invocation, capability: str | None
) -> list[Problem]:
    """Every plugin's objections to a workstream as a whole (``validate_payload`` with
    ``tool_id=None``): the core's security rules and any plugin's own. A built-in check
    that fails refuses the workstream; a third-party check that fails is reported and
    skipped."""
    plugins = project.plugins
    args: dict[str, Any] = {"tool_id": None, "capability": capability, "payload": request}
    args["context"] = project.context()
    out: list[Problem] = []
    for outcome in plugins.call_each("validate_payload", args, timeout_s=CHECK_TIMEOUT_S):
        if not outcome.ok:
            if plugins.infos[outcome.plugin].status == "essential":
                out.append(
                    Problem(
                        field="(security)",
                        message=f"the security check of {outcome.plugin} failed: {outcome.error}",
                    )
                )
            else:
                log.warning(
                    f"plugin '{outcome.plugin}' could not check the workstream: {outcome.error}"
                )
            continue
        out.extend(p for p in outcome.value or [] if isinstance(p, Problem))
    return out


def tool_problems(
    project: Project, tool_id: str, capability: str | None, payload: Invocation
) -> list[Problem]:
    """The objections of the plugins in service to giving ``payload`` to ``tool_id``."""
    plugins = project.plugins
    args = {
        "tool_id": tool_id,
        "capability": capability,
        "payload": payload,
        "context": project.context(tool_id=tool_id),
    }
    out: list[Problem] = []
    loaded = [n for n, i in plugins.infos.items() if i.status == "loaded"]
    for outcome in plugins.call_each(
        "validate_payload", args, timeout_s=CHECK_TIMEOUT_S, plugins=loaded
    ):
        if outcome.ok:
            out.extend(p for p in outcome.value or [] if isinstance(p, Problem))
    return out


def describe(problems: list[Problem]) -> str:
    """``field: message; field: message``."""
    return "; ".join(f"{p.field}: {p.message}" for p in problems)


def refuse(run: RunState, request: Invocation, problems: list[Problem]) -> NoReturn:
    """Audit the refusal (no secret in it, ``refused_paths`` from the problems), then
    raise :class:`SecurityError` (exit 2)."""
    run.record(
        tool_id=None,
        payload=request,
        message="Refused by the security rules: " + describe(problems),
        attempt=0,
        failure=Failure.INVALID_PAYLOAD,
        refused=problems,
    )
    raise SecurityError(
        "refused by the security rules, nothing was run: " + describe(problems), file=None
    )
