"""The audit hash chain, verified incrementally: each record is checked once, when it
is appended, against the one before it -- the same rules as ``aim audit verify``
(its own hash, ``seq`` one more than the last, ``prev_hash`` linking to it, time
never going back and belonging to its day file) -- and the saved head
(``HEAD.json``) is checked against the digests seen. Only the first problem is
kept: the caller then runs the full :func:`aim_core.audit.verify.verify` walk for
the findings a person reads, so a broken chain is described exactly as the
command describes it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aim_core.audit import checkpoints
from aim_core.audit.canonical import canonical
from aim_core.audit.head import HEAD_NAME, Head, Unreadable, machine_head_path, read_head
from aim_core.audit.head import state_dir as machine_state

DIGEST = 32  # bytes of one SHA-256 digest


def chain_hash(rec: dict[str, Any], key: bytes | None = None) -> str:
    """:func:`aim_core.audit.canonical.record_hash` of a parsed record, the same digest
    computed without copying the record (its ``hash`` field is taken out while the
    canonical JSON is written, then put back, last) and with OpenSSL's SHA-256 at once
    (the server hashes every record of the log). ``rec`` is a record this process
    parsed and owns: another thread must not read it meanwhile."""
    if "hash" in rec:
        stored = rec.pop("hash")
        try:
            body = canonical(rec)
        finally:
            rec["hash"] = stored
    else:
        body = canonical(rec)
    if key:
        return hmac.new(key, body, hashlib.sha256).hexdigest()
    return hashlib.sha256(body).hexdigest()


class ChainCheck:
    """The chain's state after the records fed so far: the last ``seq`` and hash, and
    the digest of every record (32 bytes each) for checking a head."""

    def __init__(
        self,
        audit_dir: Path,
        key: bytes | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        self.audit_dir = Path(audit_dir)
        self.key = key
        self.machine_head = machine_head_path(self.audit_dir, machine_state(environ))
        cp: dict[str, Any] | None = checkpoints.read(self.audit_dir, key).last
        self.prev_seq: int = int(cp["seq"]) if cp and isinstance(cp.get("seq"), int) else 0
        self.prev_hash: str | None = cp.get("hash") if cp else None
        self.prev_ts = ""
        self.first_seq: int | None = None
        self.records = 0
        self.problem: str | None = None
        self._digests = bytearray()

    @property
    def last_seq(self) -> int | None:
        return self.prev_seq if self.records else None

    def feed(self, day: str, rec: Any) -> None:
        """Check one appended line (``rec``: the parsed record, None when not JSON)."""
        if self.problem is not None:
            self.records += isinstance(rec, dict)
            return
        if not isinstance(rec, dict):
            self.problem = f"{day}: a line is not a JSON record"
            return
        self.records += 1
        seq, digest = rec.get("seq"), rec.get("hash")
        if chain_hash(rec, self.key) != digest:
            self.problem = f"{day}: record seq {seq}: its hash does not match its content"
            return
        if not isinstance(seq, int) or isinstance(seq, bool):
            self.problem = f"{day}: a record has no seq"
            return
        if self.first_seq is None:
            self.first_seq = seq
        if seq != self.prev_seq + 1:
            self.problem = f"{day}: seq {seq} follows seq {self.prev_seq}"
            return
        if rec.get("prev_hash") != self.prev_hash:
            self.problem = f"{day}: record seq {seq} does not link to the record before it"
            return
        ts = rec.get("timestamp", "")
        if not isinstance(ts, str) or ts < self.prev_ts or not ts.startswith(day):
            self.problem = f"{day}: record seq {seq}: timestamp {ts} is out of order"
            return
        self.prev_seq, self.prev_hash, self.prev_ts = seq, digest, ts
        try:
            self._digests += bytes.fromhex(digest)
        except (TypeError, ValueError):  # not hex: the hash check above already failed
            self.problem = f"{day}: record seq {seq}: its hash is not hexadecimal"

    def digest_of(self, seq: int) -> str | None:
        """The hash of record ``seq`` if it was fed, else None."""
        if self.first_seq is None or seq < self.first_seq:
            return None
        i = (seq - self.first_seq) * DIGEST
        if i + DIGEST > len(self._digests):
            return None
        return self._digests[i : i + DIGEST].hex()

    def head_problem(self) -> str | None:
        """What is wrong between the saved heads (``HEAD.json`` and this machine's copy)
        and the chain, or None (as ``aim audit verify``: a head may lag behind the log,
        never run ahead of it)."""
        try:
            heads = [
                read_head(self.audit_dir / HEAD_NAME, HEAD_NAME),
                read_head(self.machine_head, f"this machine's audit head ({self.machine_head})"),
            ]
        except Unreadable as e:
            return str(e)
        for head in heads:
            problem = self._against(head) if head is not None else None
            if problem:
                return problem
        return None

    def _against(self, head: Head) -> str | None:
        last = self.last_seq if self.last_seq is not None else self.prev_seq
        if head.seq > last:
            return f"{head.name} says the chain reaches seq {head.seq}, the log ends at seq {last}"
        mine = self.digest_of(head.seq)
        if mine is not None and head.hash is not None and mine != head.hash:
            return f"{head.name} names seq {head.seq} with another hash: the log was rewritten"
        if mine is None and self.first_seq is not None and head.seq >= self.first_seq:
            return f"{head.name} names seq {head.seq}, which is not in the log"
        return None
