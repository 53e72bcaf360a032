"""An example audit sink: every aim audit record also goes into a SQLite table.

Install it as a plugin with an entry point (see pyproject.toml beside this
file), or register it in a test. The database path comes from
``AIM_SQLITE_SINK_DB`` (default ``aim-audit.sqlite3`` in the current directory).
"""

import json
import os
import sqlite3

from aim_core import hookimpl


@hookimpl
def audit_sink(record):
    """Insert the record (its JSON and a few columns to query by)."""
    db = sqlite3.connect(os.environ.get("AIM_SQLITE_SINK_DB", "aim-audit.sqlite3"))
    with db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS audit (seq INTEGER, timestamp TEXT, tool_id TEXT,"
            " capability TEXT, success INTEGER, record TEXT)"
        )
        data = record.to_dict()
        db.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)",
            (
                data["seq"],
                data["timestamp"],
                data["tool_id"],
                data["capability"],
                int(bool(data["result"].get("success"))),
                json.dumps(data),
            ),
        )
    db.close()
