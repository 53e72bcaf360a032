"""The core's security rules as a ``validate_payload`` implementation.

It answers once per workstream (``tool_id=None``) with the rules of the
coordination rules' ``security`` section (see :mod:`aim_core.security`); tool
plugins add their own checks per tool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aim_core.plugins import hookimpl

if TYPE_CHECKING:
    from aim_core.context import AimContext
    from aim_core.models import Invocation, Problem


@hookimpl
def validate_payload(
    tool_id: str | None, payload: Invocation, context: AimContext
) -> list[Problem] | None:
    """Refuse paths outside the repository, in forbidden places or through symlinks,
    requests over the size limit, and credentials in prompts or files -- for the
    files named and for those directories and globs reach (:mod:`aim_core.scope_check`),
    and the targets of its ``verify`` checks (:mod:`aim_core.verify`)."""
    if tool_id is not None:
        return None
    from aim_core.registry import DEFAULT_RULES
    from aim_core.scope_check import check_scope
    from aim_core.security import check_request
    from aim_core.verify import verify_problems

    security = context.security or DEFAULT_RULES["security"]
    checks = verify_problems(
        payload.verify,
        context.root,
        security,
        files_create=payload.files_create,
        environ=context.environ,
    )
    return (
        check_request(payload, context.root, security)
        + check_scope(payload, context.root, security)
        + checks
    )
