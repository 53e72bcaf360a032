"""The core's own audit sink: the hash-chained JSONL log (an essential built-in).

It is called before every other ``audit_sink`` because it assigns ``seq``,
``timestamp`` and ``hash``; it returns the sealed record, which the core then
hands to the other sinks.
"""

from __future__ import annotations

from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.records import from_dict
from aim_core.models import AuditRecord
from aim_core.plugins import hookimpl


class JsonlAuditSink:
    """Appends each record to ``AIM_audit/YYYY-MM-DD/audit.jsonl``."""

    def __init__(self, log: JsonlAuditLog):
        self.log = log

    @hookimpl(tryfirst=True)
    def audit_sink(self, record: AuditRecord) -> AuditRecord:
        """Seal and append the record; return it as written."""
        return from_dict(self.log.append(record.to_dict()))
