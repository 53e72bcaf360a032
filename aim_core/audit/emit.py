"""The audit emitter: every record redacted once, sealed into the JSONL log (a core
service, not a plugin), then handed to each ``audit_sink`` plugin, bounded in time
and isolated; ``audit_flush`` before the process ends."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from aim_core.audit.records import from_dict
from aim_core.models import AuditRecord

if TYPE_CHECKING:
    from aim_core.audit.jsonl import JsonlAuditLog
    from aim_core.project import Project

log = logging.getLogger("aim")

SINK_TIMEOUT_S = 5.0
FLUSH_TIMEOUT_S = 10.0


class AuditEmitter:
    """Writes the records of one command (or one embedding program's runs).

    ``emit`` is safe to call from several threads (``aim run -j``); a sink that
    fails is reported once per emitter, one that hung is not waited for again.
    """

    def __init__(self, project: Project):
        self.project = project
        self._reported: set[str] = set()
        self._hung: set[str] = set()
        self._emitted = 0
        self._lock = threading.Lock()
        self._log: JsonlAuditLog | None = None

    @property
    def jsonl(self) -> JsonlAuditLog:
        """The registry's hash-chained JSONL log (the record of truth)."""
        if self._log is None:
            from aim_core.audit.jsonl import JsonlAuditLog, audit_key, state_dir
            from aim_core.paths import AUDIT_DIRNAME

            self._log = JsonlAuditLog(
                self.project.registry / AUDIT_DIRNAME,
                key=audit_key(self.project.environ),
                on_warning=log.warning,
                state_dir=state_dir(self.project.environ),
            )
        return self._log

    def emit(self, record: AuditRecord) -> AuditRecord:
        """Redact, append to the JSONL log, then give the sealed record to every sink.

        :returns: the record as written (``seq``, ``timestamp``, ``hash`` filled in),
            or the redacted record when audit logging is off or the log failed.
        """
        from aim_core.audit.records import printable
        from aim_core.security import redact_record

        record = from_dict(printable(record.to_dict()))
        sealed = redact_record(record, self.project)
        if self.project.settings.enable_audit_logging:
            try:
                sealed = from_dict(self.jsonl.append(sealed.to_dict()))
            except OSError as e:
                log.error(f"the audit log could not be written: {e}")
        with self._lock:
            self._emitted += 1
        plugins = self.project.plugins
        for name in plugins.implementers("audit_sink"):
            if name in self._hung:
                continue
            outcome = plugins.call("audit_sink", name, {"record": sealed}, timeout_s=SINK_TIMEOUT_S)
            self._report(name, outcome)
        return sealed  # type: ignore[no-any-return]

    def _report(self, name: str, outcome: object) -> None:
        error = getattr(outcome, "error", None)
        if error is None:
            return
        with self._lock:
            if getattr(outcome, "timed_out", False):
                self._hung.add(name)
            if name in self._reported:
                return
            self._reported.add(name)
        log.warning(f"audit sink '{name}' failed ({error}); the run and the JSONL log go on")

    def check_head(self) -> None:
        """Refuse (:class:`~aim_core.audit.head.LogBehindHead`, exit 4) before anything
        runs when the log ends before its head: records were lost since."""
        if self.project.settings.enable_audit_logging:
            self.jsonl.check_head()

    def sync_head(self) -> None:
        """Write the chain's head file from the log's tip (once per run)."""
        if not self.project.settings.enable_audit_logging:
            return
        try:
            self.jsonl.sync_head()
        except OSError as e:
            log.error(f"the audit head could not be written: {e}")

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Call every plugin's ``audit_flush`` once, if any record was emitted."""
        with self._lock:
            if not self._emitted:
                return
            self._emitted = 0
        plugins = self.project.plugins
        for name in plugins.implementers("audit_flush"):
            outcome = plugins.call(
                "audit_flush", name, {"timeout_s": timeout_s}, timeout_s=timeout_s
            )
            if outcome.error is not None:
                log.warning(f"audit sink '{name}' could not flush: {outcome.error}")
