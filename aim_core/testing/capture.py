"""``audit_capture``: an ``audit_sink`` plugin that collects the audit records of one test.

It reaches both ways aim runs in a test:

* in this process (``project.run_workstream(...)``, ``aim_core.run_workstream``
  with a ``Project`` using ``aim_plugin_manager``): the :class:`AuditCapture`
  object itself is registered with ``aim_plugin_manager``;
* in ``aim`` subprocesses (``project.run(...)``): this module is given an entry
  point in the test's site directory, so the real plugin loading finds it like
  any installed plugin, and its sink appends each record to the file named by
  ``AIM_TESTING_AUDIT_CAPTURE``, which :attr:`AuditCapture.records` reads.

Either way the record went through the core's real path: redacted, sealed by
the JSONL log, handed to every sink.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aim_core.models import AuditRecord
from aim_core.plugins import hookimpl

CAPTURE_ENV = "AIM_TESTING_AUDIT_CAPTURE"
CAPTURE_PLUGIN = "aim-testing-audit-capture"


@hookimpl
def audit_sink(record: AuditRecord) -> None:
    """The sink of ``aim`` subprocesses: one JSON line per record, to the capture file."""
    path = os.environ.get(CAPTURE_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")


class AuditCapture:
    """Every audit record that reached the sinks during the test, oldest first.

    ``records`` are dicts (``record.to_dict()``: the JSON line's shape);
    ``clear()`` forgets those seen so far.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._seen: list[dict[str, Any]] = []

    @hookimpl
    def audit_sink(self, record: AuditRecord) -> None:
        """Collect one record (in-process runs)."""
        self._seen.append(record.to_dict())

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records of in-process runs, then those of ``aim`` subprocesses."""
        out = list(self._seen)
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    out.append(json.loads(line))
        return out

    def clear(self) -> None:
        """Forget the records collected so far."""
        self._seen.clear()
        self.path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"<AuditCapture {len(self)} record(s)>"
