"""The request a tool receives for a workstream, and run ids."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from aim_core.models import Invocation, Workstream

if TYPE_CHECKING:
    from aim_core.config import Settings

DEFAULT_MAX_RETRIES = 1
DEFAULT_MAX_REPAIRS = 1


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: ``20251120T214500Z-3f9a1c``."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"


def invocation_for(ws: Workstream, settings: Settings, tool_id: str | None = None) -> Invocation:
    """The request a tool receives for a workstream (options: the tool's config section)."""
    retries = ws.payload.max_retries
    repairs = ws.payload.max_repairs
    return Invocation(
        prompt=ws.build_prompt(),
        files=ws.target_files(),
        files_scope=ws.files_scope,
        files_create=ws.files_create,
        timeout_ms=ws.payload.timeout_ms or settings.default_timeout_ms,
        max_retries=DEFAULT_MAX_RETRIES if retries is None else retries,
        tasks=ws.tasks,
        acceptance_tests=ws.acceptance_tests,
        workstream_id=ws.id,
        options=dict(settings.tool_options(tool_id)) if tool_id else {},
        verify=ws.verify or None,
        max_repairs=DEFAULT_MAX_REPAIRS if repairs is None else repairs,
        max_cost_usd=ws.payload.max_cost_usd,
    )


def with_feedback(payload: Invocation, feedback: str) -> Invocation:
    """The request of a repair: the original instruction, then the failing checks'
    output (already capped and redacted by :mod:`aim_core.checks`)."""
    import attrs

    prompt = (
        f"{payload.prompt}\n\n"
        "Your previous edit of these files failed the checks below and was undone. "
        "Make the edit again so that the checks pass.\n\n"
        f"{feedback}"
    )
    return attrs.evolve(payload, prompt=prompt)
