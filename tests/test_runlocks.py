"""The run table's ``recent/`` entries (aim_core/runlocks.py): the scopes of runs that
ended while an attempt ran are exempt from its judgement, and an attempt does not read
the entries of runs that ended before it began (a day of runs costs it nothing)."""

from __future__ import annotations

import json
import os
import time

from aim_core.runlocks import RECENT, RECENT_KEEP_S, RunTable


def entry(runs, run_id: str, scope: list[str], finished: float) -> None:
    recent = runs / RECENT
    recent.mkdir(parents=True, exist_ok=True)
    path = recent / f"{run_id}.json"
    path.write_text(json.dumps({"run_id": run_id, "scope": scope, "finished": finished}))
    os.utime(path, (finished, finished))


def test_runs_that_ended_during_the_attempt_count_and_earlier_ones_are_not_read(tmp_path):
    since = time.time() - 60
    entry(tmp_path, "during", ["b.py"], since + 30)
    entry(tmp_path, "me", ["a.py"], since + 40)
    # written long before `since` (its mtime) it is not even opened: what it says
    # inside (here, that it ended during the attempt) is never read
    entry(tmp_path, "before", ["c.py"], since + 10)
    os.utime(tmp_path / RECENT / "before.json", (since - 600, since - 600))
    assert RunTable(tmp_path).other_scopes("me", since) == ["b.py"]


def test_an_entry_written_a_moment_before_since_is_still_read(tmp_path):
    """The file's mtime and the recorded end may differ by a clock tick: the record decides."""
    since = time.time() - 60
    entry(tmp_path, "edge", ["b.py"], since + 0.5)
    path = tmp_path / RECENT / "edge.json"
    os.utime(path, (since - 1, since - 1))
    assert RunTable(tmp_path).other_scopes("me", since) == ["b.py"]


def test_entries_older_than_a_day_are_removed(tmp_path):
    now = time.time()
    entry(tmp_path, "old", ["x.py"], now - RECENT_KEEP_S - 60)
    entry(tmp_path, "new", ["y.py"], now - 60)
    assert RunTable(tmp_path).other_scopes("me", now - 30) == []
    assert sorted(p.name for p in (tmp_path / RECENT).iterdir()) == ["new.json"]
