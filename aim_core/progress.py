"""A live view of running workstreams on a terminal (rich); plain log lines otherwise.

Each workstream's row shows its state (waiting, the tool and attempt it is on,
done or failed) and how long it has taken; under it, one line per tool at work
-- every candidate of a race -- with the ``verify`` check it is running or how
its checks ended. Log lines scroll above the table.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any


def check_text(data: dict[str, Any]) -> str:
    """``checking tests tests/test_calc.py (pytest)``, ``lint calc.py failed: ...``."""
    by = f" ({data['tool_id']})" if data.get("tool_id") else ""
    if data.get("state") == "running":
        return f"checking {data['kind']} {data['target']}{by}"
    return f"{data['kind']} {data['target']} {data['state']}: {data.get('summary', '')}"


class ProgressView:
    """Rows of workstreams, updated from the runs' events (thread-safe)."""

    def __init__(self, ids: list[str]):
        self.rows: dict[str, dict[str, Any]] = {i: {"state": "waiting", "start": None} for i in ids}
        self._lock = threading.Lock()
        self._live: Any = None
        self._handler: logging.Handler | None = None
        self._replaced: list[logging.Handler] = []

    @staticmethod
    def wanted(as_json: bool) -> bool:
        """Only on an interactive terminal, and not when printing JSON."""
        return not as_json and sys.stderr.isatty()

    def event(self, ws_id: str, kind: str, data: dict[str, Any]) -> None:
        """Record what a run did: ``start``, ``attempt``, ``check``, ``done``."""
        with self._lock:
            row = self.rows.setdefault(ws_id, {"state": "waiting", "start": None})
            if row["start"] is None:
                row["start"] = time.monotonic()
            tools = row.setdefault("tools", {})
            if kind == "start":
                row["state"] = "starting"
            elif kind == "attempt":
                what = f"attempt {data['attempt']}"
                if data.get("repair"):
                    what = f"repair {data['repair']} ({what})"
                racing = data.get("strategy") == "race"
                if racing:
                    what += f", race of {data.get('race_size')}"
                row["state"] = f"{data['tool_id']} ({what})"
                if not racing:
                    tools.clear()  # one tool at a time: only the current one
                tools[data["tool_id"]] = what
            elif kind == "check" and data.get("attempt_tool") in tools:
                tools[data["attempt_tool"]] = check_text(data)
            elif kind == "done":
                row["state"] = "done" if data["success"] else "failed"
                row["end"] = time.monotonic()
                tools.clear()
        if self._live is not None:  # drawn now: a check that fails fast still shows
            self._live.update(self._table(), refresh=True)

    def _table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("Workstream")
        table.add_column("State")
        table.add_column("Time", justify="right")
        now = time.monotonic()
        with self._lock:
            for ws_id, row in self.rows.items():
                state = row["state"]
                style = {"done": "green", "failed": "red", "waiting": "dim"}.get(state, "yellow")
                start = row["start"]
                took = "" if start is None else f"{row.get('end', now) - start:.1f}s"
                table.add_row(Text(ws_id), Text(state, style=style), Text(took))
                for tool_id, what in row.get("tools", {}).items():
                    table.add_row(Text(f"  {tool_id}", style="dim"), Text(what), Text(""))
        return table

    def __enter__(self) -> ProgressView:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=sys.stderr)
        self._live = Live(self._table(), console=console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        logger = logging.getLogger("aim")
        live = self._live

        class _Through(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                live.console.print(self.format(record), markup=False, highlight=False)

        self._handler = _Through()
        # the plain stderr handler steps aside while the view is up; its format goes on
        self._replaced = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
        for h in self._replaced:
            self._handler.setFormatter(h.formatter)
            for f in h.filters:
                self._handler.addFilter(f)
            logger.removeHandler(h)
        logger.addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("aim")
        if self._handler is not None:
            logger.removeHandler(self._handler)
        for h in self._replaced:
            logger.addHandler(h)
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)
            self._live = None
