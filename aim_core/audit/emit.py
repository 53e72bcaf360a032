"""Handing a record to the sinks: redacted once, sealed by the JSONL log, then every
other ``audit_sink``, each bounded in time and isolated."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aim_core.models import AuditRecord

if TYPE_CHECKING:
    from aim_core.project import Project

log = logging.getLogger("aim")

JSONL_PLUGIN = "aim.audit-jsonl"
SINK_TIMEOUT_S = 5.0


def emit(project: Project, record: AuditRecord, *, reported: set[str] | None = None) -> AuditRecord:
    """Redact, append to the JSONL log (the record of truth), then give it to every
    other sink. A sink that raises or hangs is reported once per ``reported`` set (one
    per run); one that hung is skipped for the rest of the run."""
    from aim_core.security import redact_record

    reported = set() if reported is None else reported
    record = redact_record(record, project)
    plugins = project.plugins
    sealed = record
    if project.settings.enable_audit_logging:
        outcome = plugins.call("audit_sink", JSONL_PLUGIN, {"record": record})
        if outcome.ok and isinstance(outcome.value, AuditRecord):
            sealed = outcome.value
        else:
            log.error(f"the audit log could not be written: {outcome.error}")
    for name in plugins.implementers("audit_sink"):
        if name == JSONL_PLUGIN or f"{name}:hung" in reported:
            continue  # a sink that hung once is not waited for again in this run
        outcome = plugins.call("audit_sink", name, {"record": sealed}, timeout_s=SINK_TIMEOUT_S)
        if not outcome.ok and name not in reported:
            reported.add(name)
            log.warning(
                f"audit sink '{name}' failed ({outcome.error}); the run and the JSONL log go on"
            )
        if outcome.timed_out:
            reported.add(f"{name}:hung")
    return sealed


def sync_head(project: Project) -> None:
    """Write the audit chain's head file from the log's tip (once per run)."""
    if not project.settings.enable_audit_logging:
        return
    sink = project.plugins.pm.get_plugin(JSONL_PLUGIN)
    if sink is not None:
        try:
            sink.log.sync_head()
        except OSError as e:
            log.error(f"the audit head could not be written: {e}")
