"""``aim audit reset-head``: accept, on purpose, a log cut at its end or its start.

A log that ends before its head refuses every append (exit 4). When the loss
is known and accepted -- the records were removed on purpose, or a disk was
restored from a backup -- ``aim audit reset-head --reason TEXT`` says so in the
log itself: one record with ``"event": "reset_head"`` naming the heads that
were lost, where the log ended, who accepted it and why, chained from the
log's real tip; both heads then move to that record. A start that no
checkpoint explains (the oldest days removed by hand, a checkpoint that does
not verify) gets a sealed checkpoint with ``"reason": "reset-head"``. Records
edited or removed in the middle of the log stay reported by ``aim audit
verify``: a reset accepts a cut, not a rewrite.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from attrs import define, field

from aim_core.audit import checkpoints
from aim_core.audit.canonical import utc_timestamp
from aim_core.audit.head import HEAD_NAME, Unreadable, behind, read_head

if TYPE_CHECKING:
    from aim_core.audit.jsonl import JsonlAuditLog

EVENT = "reset_head"


@define
class ResetPlan:
    """What a reset writes: the problems it accepts, the ``(seq, hash)`` the reset record
    chains from, the new checkpoint entries (None: unchanged) and the heads it replaces."""

    problems: list[str]
    chain_from: tuple[int, str | None]
    log_ended_at: int
    checkpoints: list[dict[str, Any]] | None = None
    previous: list[dict[str, Any]] = field(factory=list)

    def record(self, actor: str, reason: str) -> dict[str, Any]:
        """The audit record of the reset."""
        lost = "; ".join(self.problems)
        return {
            "timestamp": "",
            "actor": actor,
            "tool_id": None,
            "capability": None,
            "payload": {},
            "result": {
                "success": True,
                "message": f"audit head reset by {actor}: {lost}; reason: {reason}",
                "content": {
                    "previous_heads": self.previous,
                    "log_ended_at": self.log_ended_at,
                    "accepted": self.problems,
                    "reason": reason,
                    "checkpoint_added": (
                        self.checkpoints[-1]["seq"]
                        if self.checkpoints and self.checkpoints[-1].get("reason") == "reset-head"
                        else None
                    ),
                },
            },
            "run_id": f"reset-head-{utc_timestamp()}",
            "workstream_id": None,
            "attempt": 0,
            "failure": None,
            "schema_version": 1,
            "event": EVENT,
        }


def _first_record(log: JsonlAuditLog) -> dict[str, Any] | None:
    from aim_core.audit.days import day_dirs

    for day in day_dirs(log.dir):
        for _, _, raw in log.iter_lines([day]):
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("seq"), int):
                return rec
    return None


def plan_reset(log: JsonlAuditLog, tip: tuple[int, str | None, str | None]) -> ResetPlan | None:
    """What ``reset-head`` would accept and write for ``log`` whose last record is ``tip``
    (called under the append lock); None when the log is not cut."""
    problems: list[str] = []
    heads = []
    for path, name in (
        (log.head_path, f"{log.dir.name}/{HEAD_NAME}"),
        (log.machine_head_path, "this machine's audit head"),
    ):
        try:
            head = read_head(path, name)
        except Unreadable as e:
            problems.append(str(e))
            continue
        if head is not None:
            heads.append(head)
    cps = checkpoints.read(log.dir, log.key)
    new_entries: list[dict[str, Any]] | None = None
    problems += [f"{checkpoints.CHECKPOINTS_NAME}:{n}: {msg}" for n, msg in cps.problems]
    if cps.problems:
        new_entries = list(cps.entries)
    last = cps.last
    machine = next((h for h in heads if h.name != f"{log.dir.name}/{HEAD_NAME}"), None)
    if machine is not None and last is not None and machine.checkpoint != last["seal"]:
        problems.append("the last prune checkpoint is not the one this machine wrote")
    first = _first_record(log)
    start = (last["seq"], last["hash"]) if last else (0, None)
    links = first is None or (first["seq"] - 1, first.get("prev_hash")) == start
    if first is not None and first["seq"] > 1 and not links:
        problems.append(f"the log starts at seq {first['seq']} with no checkpoint before it")
        new_entries = list(cps.entries)
        fields = {
            "seq": first["seq"] - 1,
            "hash": first.get("prev_hash"),
            "day": None,
            "days": [],
            "pruned_at": utc_timestamp(),
            "reason": "reset-head",
        }
        previous = new_entries[-1] if new_entries else None
        new_entries.append(checkpoints.make_entry(fields, previous, log.key))
    seq, digest, _ = tip
    if not seq:
        chain_last = (new_entries if new_entries is not None else cps.entries) or [None]
        if chain_last[-1] is not None:
            seq, digest = chain_last[-1]["seq"], chain_last[-1]["hash"]
    for head in heads:
        why = behind(seq, digest, head)
        if why:
            problems.append(why)
    if not any(h.name.endswith(HEAD_NAME) for h in heads) and seq > 1:
        problems.append(f"{HEAD_NAME} was missing")
    if not problems:
        return None
    return ResetPlan(
        problems=problems,
        chain_from=(seq, digest),
        log_ended_at=seq,
        checkpoints=new_entries,
        previous=[{"name": h.name, "seq": h.seq, "hash": h.hash} for h in heads],
    )
