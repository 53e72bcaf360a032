"""The core's security rules as a ``validate_payload`` implementation.

It answers once per workstream (``tool_id=None``) with the path rules of the
coordination rules' ``security`` section; tool plugins add their own checks
per tool.
"""

from __future__ import annotations

from aim_core.plugins import hookimpl


@hookimpl
def validate_payload(tool_id, payload, context):
    """Refuse paths outside the repository, in forbidden places or through symlinks."""
    if tool_id is not None:
        return None
    from aim_core.registry import DEFAULT_RULES
    from aim_core.security import check_paths

    security = getattr(context, "security", None) or DEFAULT_RULES["security"]
    fields = {"files_scope": payload.files_scope, "files_create": payload.files_create}
    if payload.files != payload.files_scope:
        fields["capability_payload.files"] = payload.files
    return check_paths(fields, context.root, security)
