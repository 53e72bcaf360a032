"""A repository can ship links inside its audit directory (a day file, a day directory,
the head, the lock): aim never writes through one. The run stops before its tool with
exit 4 (2 for the lock) and a message naming the link; the file it leads to is untouched."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from aim_core.audit.head import LinkedFile
from aim_core.audit.jsonl import JsonlAuditLog

from .test_run import ADD, WS

AUDIT = "aim/.AIM_ai-tools-registry/AIM_audit"


def _today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def _plant(audit, kind: str, victim) -> None:
    day = audit / _today()
    if kind == "day-file":
        day.mkdir(parents=True)
        (day / "audit.jsonl").symlink_to(victim)
    elif kind == "day-dir":
        day.parent.mkdir(parents=True, exist_ok=True)
        day.symlink_to(victim.parent)
        os.rename(victim, victim.parent / "audit.jsonl")
    elif kind == "head":
        audit.mkdir(parents=True, exist_ok=True)
        (audit / "HEAD.json").symlink_to(victim)
    elif kind == "lock":
        audit.mkdir(parents=True, exist_ok=True)
        (audit / ".lock").symlink_to(victim)


@pytest.mark.parametrize("kind", ["day-file", "day-dir", "head", "lock"])
def test_a_run_never_writes_through_a_link_in_the_audit_directory(
    repo, aim, fake, fakeai, tmp_path, kind
):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("the user's file\nlast line without newline")
    _plant(repo / AUDIT, kind, victim)
    if kind == "day-dir":
        victim = outside / "audit.jsonl"
    before = victim.read_bytes()
    aider = fake("aider", writes={"tests/staging_test_file.py": ADD})
    r = aim("run", WS, cwd=repo, env=fakeai)
    assert r.returncode == (2 if kind == "lock" else 4), r.stdout + r.stderr
    assert "is a symbolic link" in r.stderr and "Traceback" not in r.stderr
    assert victim.read_bytes() == before
    assert sorted(p.name for p in outside.iterdir()) == [victim.name]
    assert aider.work_calls == []  # refused before the tool ran


def test_the_prune_marker_is_never_touched_through_a_link(repo, aim, fake, fakeai, tmp_path):
    """`.last_prune` (touched once a day after a run) shipped as a link: the run's work
    stands, pruning is skipped with a warning naming the link, nothing is made there."""
    audit = repo / AUDIT
    audit.mkdir(parents=True, exist_ok=True)
    target = tmp_path / "made_by_aim"
    (audit / ".last_prune").symlink_to(target)
    fake("aider", writes={"tests/staging_test_file.py": ADD})
    r = aim("run", WS, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the audit log was not pruned" in r.stderr and "is a symbolic link" in r.stderr
    assert not target.exists()


def test_an_append_refuses_a_day_file_linked_after_it_started(tmp_path):
    """A long-lived writer (the run server): the link appears between two appends."""
    audit = tmp_path / "AIM_audit"
    log = JsonlAuditLog(audit)
    log.append({"actor": "x"})
    log.close()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    day_file = next(audit.glob("*/audit.jsonl"))
    day_file.unlink()
    day_file.symlink_to(victim)
    with pytest.raises(LinkedFile, match="is a symbolic link"):
        log.append({"actor": "x"})
    assert victim.read_text() == "keep\n"
