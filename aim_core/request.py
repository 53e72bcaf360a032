"""The request a tool receives for a workstream, and run ids."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from aim_core.models import Invocation, Workstream

if TYPE_CHECKING:
    from aim_core.config import Settings

DEFAULT_MAX_RETRIES = 1


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: ``20251120T214500Z-3f9a1c``."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"


def invocation_for(ws: Workstream, settings: Settings, tool_id: str | None = None) -> Invocation:
    """The request a tool receives for a workstream (options: the tool's config section)."""
    retries = ws.payload.max_retries
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
    )
