"""The audit: the guide's record shape and shell pipelines, the hash chain under
concurrency, crashes and tampering, prune, report, and third-party sinks."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.prune import prune
from aim_core.audit.records import build_record, from_dict
from aim_core.audit.verify import verify
from aim_core.models import Invocation

from .conftest import write_dist
from .test_run import ADD, WS, records, write_ws

STEP_1_6 = {
    "timestamp": "2025-11-20T21:45:00.000000Z",
    "actor": "pipeline",
    "tool_id": "aider",
    "capability": "code_generation",
    "payload": {
        "prompt": "Create a simple add(a, b) function...",
        "files": ["tests/staging_test_file.py"],
        "timeout_ms": 60000,
    },
    "result": {
        "success": True,
        "message": "Code generation completed (attempt 1)",
        "content": {
            "files_modified": [],
            "files_created": ["tests/staging_test_file.py"],
            "exit_code": 0,
        },
    },
}
AIM = [sys.executable, "-m", "aim_core"]


def audit_dir(repo: Path) -> Path:
    return repo / "aim" / ".AIM_ai-tools-registry" / "AIM_audit"


def test_step_1_6_record_round_trips():
    data = {
        **STEP_1_6,
        "run_id": "r1",
        "workstream_id": "ws-aim-validation-001",
        "attempt": 1,
        "failure": None,
        "schema_version": 1,
        "seq": 1,
        "prev_hash": None,
        "hash": "0" * 64,
    }
    assert from_dict(data).to_dict() == data
    # the guide's keys come first, in the guide's order
    assert list(from_dict(data).to_dict())[:6] == list(STEP_1_6)


def make_log(tmp_path: Path, n: int = 3, **kw) -> JsonlAuditLog:
    log = JsonlAuditLog(tmp_path / "AIM_audit", **kw)
    for i in range(n):
        rec = build_record(
            actor="pipeline",
            run_id=f"r{i}",
            workstream_id="ws",
            tool_id="aider",
            capability="code_generation",
            payload=Invocation(prompt=f"p{i}", files=["a.py"]),
            success=i % 2 == 0,
            message="m",
            attempt=1,
            failure=None if i % 2 == 0 else "tool_error",
        )
        log.append(rec.to_dict())
    log.sync_head()
    return log


# --------------------------------------------------------------------------- guide pipelines


@pytest.fixture
def audited_repo(repo, aim, fake, fakeai):
    """A repository whose audit was written by real `aim run`s: a success after a
    fallback, a failure, and a success on retry."""
    fake("jules", version_output="jules 0.1.42 needs-login")
    aider = fake("aider", writes={"tests/staging_test_file.py": ADD})
    assert aim("run", WS, cwd=repo, env=fakeai).returncode == 0
    aider.configure(exit_code=1, stderr="model overloaded")
    ws = write_ws(repo, "ws-fail", capability_payload={"prompt": "p", "max_retries": 0})
    assert aim("run", ws, cwd=repo, env=fakeai).returncode == 1
    aider.configure(
        runs=[{"exit_code": 1, "stderr": "flaky"}, {"writes": {"src/target.py": "1\n"}}]
    )
    ws = write_ws(repo, "ws-retry", capability_payload={"prompt": "p", "max_retries": 1})
    assert aim("run", ws, cwd=repo, env=fakeai).returncode == 0
    return repo, fakeai


def sh(cmd: str, repo: Path, env: dict) -> str:
    aim_cmd = " ".join(AIM)
    r = subprocess.run(
        ["bash", "-c", cmd.replace("aim ", aim_cmd + " ", 1)],
        cwd=repo,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return r.stdout


def test_the_guides_pipelines_give_true_answers(audited_repo):
    repo, env = audited_repo
    recs = records(repo)
    assert [r["result"]["success"] for r in recs] == [True, False, False, True]

    failures = sh(
        "aim audit query --format json | jq -c 'select(.result.success == false)'", repo, env
    )
    assert [json.loads(x)["seq"] for x in failures.splitlines()] == [2, 3]

    count = sh('aim audit query --capability code_generation | grep -c "success.*true"', repo, env)
    assert count.strip() == "2"

    by_tool = sh(
        "aim audit query --format json | jq -r '.tool_id' | sort | uniq -c | sort -rn", repo, env
    )
    assert by_tool.split() == ["4", "aider"]

    times = sh(
        "aim audit query --format json | jq -r '[.capability, .result.content.duration_sec] | @csv'",
        repo,
        env,
    )
    assert len(times.splitlines()) == 4
    assert all(line.startswith('"code_generation",') for line in times.splitlines())

    assert (
        sh(
            'aim audit query --format json | grep -iE "(password|api_key|secret|token)" || echo "✓ No secrets found"',
            repo,
            env,
        ).strip()
        == "✓ No secrets found"
    )
    assert (
        sh(
            'aim audit query --format json | grep -E "(/\\.git/|/\\.env)" || echo "✓ No forbidden paths"',
            repo,
            env,
        ).strip()
        == "✓ No forbidden paths"
    )

    today = sh("aim audit query --since $(date -I) | wc -l", repo, env)
    assert today.strip() == "4"
    csv_out = sh("aim audit query --format csv", repo, env).splitlines()
    assert csv_out[0] == (
        "timestamp,actor,run_id,workstream_id,tool_id,capability,attempt,success,failure,"
        "exit_code,duration_sec,files_created,files_modified,message,verified,repair"
    )
    assert len(csv_out) == 5


def test_query_filters(audited_repo, aim):
    repo, env = audited_repo
    failed = aim("audit", "query", "--failed", "--format", "json", cwd=repo, env=env).stdout
    assert len(failed.splitlines()) == 2
    ws = aim("audit", "query", "--workstream", "ws-retry", cwd=repo, env=env).stdout
    assert len(ws.splitlines()) == 2
    assert all(line.endswith(("success=true", "success=false")) for line in ws.splitlines())
    assert aim("audit", "query", "--until", "2000-01-01", cwd=repo, env=env).stdout == ""
    bad = aim("audit", "query", "--since", "yesterday", cwd=repo, env=env)
    assert bad.returncode == 2 and "'yesterday' is not a date" in bad.stderr


def test_report_counts_runs_not_attempts(audited_repo, aim):
    repo, env = audited_repo
    data = json.loads(aim("audit", "report", "--json", cwd=repo, env=env).stdout)
    assert data["runs"] == 3 and data["workstreams"] == 3
    assert data["success_rate"] == pytest.approx(2 / 3, abs=1e-3)
    # jules needs a login in every run: both successes came from the fallback
    assert data["fallback_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert data["auth_error_rate"] == 1.0
    assert data["verdict"] == "stay"
    assert any("workstream(s) tested" in r for r in data["reasons"])
    assert data["by_tool"]["aider"]["attempts"] == 4
    assert {a["metric"] for a in data["actions"]} >= {
        "success_rate",
        "fallback_rate",
        "auth_error_rate",
    }
    assert "user feedback" in data["not_measured"][0]
    text = aim("audit", "report", cwd=repo, env=env).stdout
    assert "Verdict: STAY" in text and "counted per workstream run" in text


def test_show_prints_records_and_run_log(audited_repo, aim):
    repo, env = audited_repo
    run_id = records(repo)[0]["run_id"]
    out = aim("audit", "show", run_id, cwd=repo, env=env).stdout
    assert f"Run {run_id}: 1 record(s)" in out
    assert "skip jules: auth_required" in out and "$ " in out
    assert aim("audit", "show", "nope", cwd=repo, env=env).returncode == 2


def test_no_tool_output_in_records(audited_repo):
    repo, _ = audited_repo
    text = "".join(p.read_text() for p in audit_dir(repo).glob("*/audit.jsonl"))
    assert "model overloaded" not in json.dumps([r["payload"] for r in records(repo)])
    assert "Applied edit" not in text


# --------------------------------------------------------------------------- the chain


WRITER = """
import sys
from aim_core.audit.jsonl import JsonlAuditLog
log = JsonlAuditLog(sys.argv[1])
for i in range(int(sys.argv[2])):
    sealed = log.append({"timestamp": "", "actor": "w" + sys.argv[3], "tool_id": "x",
                         "payload": {"prompt": "p" * int(sys.argv[4])}, "result": {"success": True}})
    print(sealed["seq"], flush=True)
"""


def test_eight_concurrent_writers_never_fork_the_chain(tmp_path):
    d = tmp_path / "AIM_audit"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(d), "200", str(w), "100"], stdout=subprocess.PIPE
        )
        for w in range(8)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0
    v = verify(d)
    assert v.ok, [str(f) for f in v.findings]
    assert v.records == 1600 and (v.first_seq, v.last_seq) == (1, 1600)
    lines = [json.loads(x) for f in d.glob("*/audit.jsonl") for x in f.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, 1601))
    assert sorted({r["actor"] for r in lines}) == [f"w{i}" for i in range(8)]


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_committed_record(tmp_path):
    d = tmp_path / "AIM_audit"
    rng = random.Random(20261125)
    committed: set[int] = set()
    trials = 200
    for trial in range(trials):
        p = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(d),
                "100000",
                "0",
                str(rng.choice([10, 2000, 50000])),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        first = ""
        if rng.random() < 0.8:  # most kills land while records are being appended ...
            first = p.stdout.readline()
            time.sleep(rng.uniform(0.0, 0.03))
        else:  # ... some during start-up or the first append, however loaded the machine is
            time.sleep(rng.uniform(0.0, 0.1))
        p.kill()
        out, _ = p.communicate()
        committed |= {int(x) for x in (first + out).split()}
        if trial % 10 == 9:
            v = verify(d)
            assert all(not f.fatal for f in v.findings), [str(f) for f in v.findings]
    on_disk = {
        json.loads(x)["seq"]
        for f in d.glob("*/audit.jsonl")
        for x in f.read_text().splitlines()
        if x.endswith("}")
    }
    assert committed <= on_disk
    assert len(committed) > trials / 2  # the writers did get records in


def test_torn_line_is_set_aside_and_reported(tmp_path, capsys):
    warnings = []
    log = make_log(tmp_path, 2, on_warning=warnings.append)
    f = next(log.dir.glob("*/audit.jsonl"))
    with open(f, "ab") as fh:
        fh.write(b'{"timestamp":"2026')
    v = verify(log.dir)
    assert v.ok and [x.kind for x in v.findings] == ["torn"]
    log.append({"tool_id": "after"})
    assert "torn last line" in warnings[0]
    v = verify(log.dir)
    assert v.ok and not v.findings and v.records == 3 and v.torn_set_aside == 1
    assert (log.dir / f"{f.parent.name}.torn").read_text().count('{"timestamp":"2026') == 1


def test_every_single_byte_flip_is_caught(tmp_path):
    log = make_log(tmp_path, 3)
    f = next(log.dir.glob("*/audit.jsonl"))
    original = f.read_bytes()
    missed = []
    for i in range(len(original)):
        data = bytearray(original)
        data[i] ^= 0x01
        f.write_bytes(bytes(data))
        if verify(log.dir).ok:
            missed.append(i)
    f.write_bytes(original)
    assert verify(log.dir).ok
    assert missed == [], f"{len(missed)} of {len(original)} flips went unnoticed"


def _lines(f: Path) -> list[bytes]:
    return f.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize(
    "edit,kind",
    [
        (lambda ls: ls[:1] + ls[2:], "deleted"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "reordered"),
        (lambda ls: [ls[0], ls[1], ls[1], *ls[2:]], "inserted"),
        (lambda ls: ls[:-1], "truncated"),
    ],
    ids=["delete", "reorder", "insert", "truncate"],
)
def test_structural_tampering(tmp_path, edit, kind):
    log = make_log(tmp_path, 4)
    f = next(log.dir.glob("*/audit.jsonl"))
    f.write_bytes(b"".join(edit(_lines(f))))
    v = verify(log.dir)
    assert not v.ok
    assert kind in {x.kind for x in v.findings}, [str(x) for x in v.findings]


def test_rewritten_chain_caught_by_key_or_saved_head(tmp_path):
    log = make_log(tmp_path, 3, key=b"kept-outside")
    saved = (3, json.loads(_lines(next(log.dir.glob("*/audit.jsonl")))[-1])["hash"])
    assert verify(log.dir, key=b"kept-outside").ok
    # an attacker rewrites every record and the head, recomputing plain SHA-256 hashes
    f = next(log.dir.glob("*/audit.jsonl"))
    forged = JsonlAuditLog(tmp_path / "forged")
    for line in _lines(f):
        rec = json.loads(line)
        rec["actor"] = "mallory"
        forged.append(rec)
    forged.sync_head()
    shutil.copy(next(forged.dir.glob("*/audit.jsonl")), f)
    shutil.copy(forged.dir / "HEAD.json", log.dir / "HEAD.json")
    # this machine's copy of the head (outside the repository) sees the rewrite
    assert "head" in {f.kind for f in verify(log.dir).findings}
    # on another machine, without the key, the forgery is consistent: documented limit
    assert verify(log.dir, state_dir=tmp_path / "elsewhere").ok
    assert not verify(log.dir, key=b"kept-outside").ok
    assert not verify(log.dir, head=saved).ok


def test_prune_then_verify(tmp_path):
    days_ago = [40, 35, 2, 0]
    now = datetime.now(timezone.utc)
    for ago in days_ago:
        clock = lambda ago=ago: now - timedelta(days=ago)  # noqa: E731
        log = make_log(tmp_path, 2, clock=clock) if ago == 40 else None
        if log is None:
            log = JsonlAuditLog(tmp_path / "AIM_audit", clock=clock)
            log.append({"tool_id": "x", "result": {"success": True}})
    d = tmp_path / "AIM_audit"
    assert verify(d).ok
    assert prune(d, 30, now=now, dry_run=True) == [
        (now - timedelta(days=40)).date().isoformat(),
        (now - timedelta(days=35)).date().isoformat(),
    ]
    assert len(list(d.glob("*/audit.jsonl"))) == 4
    removed = prune(d, 30, now=now)
    assert len(removed) == 2 and len(list(d.glob("*/audit.jsonl"))) == 2
    v = verify(d)
    assert v.ok, [str(x) for x in v.findings]
    assert v.first_seq == 4
    (d / "CHECKPOINTS.jsonl").unlink()
    assert not verify(d).ok  # without the checkpoint the missing start is visible


def test_verify_where_there_is_no_registry_is_no_success(aim, tmp_path):
    """Nothing to look at is no proof of an intact log: exit 2 and what to do, not
    "audit chain intact: 0 records". An initialised repository without records yet
    still verifies."""
    r = aim("audit", "verify", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no aim registry here" in r.stderr and "aim init" in r.stderr
    assert "intact" not in r.stdout
    assert aim("init", cwd=tmp_path).returncode == 0
    r = aim("audit", "verify", cwd=tmp_path)
    assert r.returncode == 0 and "audit chain intact: 0 records" in r.stdout, r.stderr


def test_verify_cli_exit_codes_and_other_machine(audited_repo, aim, tmp_path):
    repo, env = audited_repo
    r = aim("audit", "verify", cwd=repo, env=env)
    assert r.returncode == 0 and "audit chain intact: 4 records, seq 1..4" in r.stdout
    # a record written here verifies anywhere: copy the log elsewhere
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(audit_dir(repo), elsewhere)
    assert verify(elsewhere).ok
    f = next(audit_dir(repo).glob("*/audit.jsonl"))
    f.write_text(f.read_text().replace('"actor":"pipeline"', '"actor":"someone"', 1))
    r = aim("audit", "verify", cwd=repo, env=env)
    assert r.returncode == 4
    assert "audit.jsonl:1: edited: record seq 1" in r.stdout


# --------------------------------------------------------------------------- sinks


SINKS = """
import time
from aim_core import hookimpl

class Raises:
    @hookimpl
    def audit_sink(self, record):
        raise RuntimeError("disk full")

class Hangs:
    @hookimpl
    def audit_sink(self, record):
        time.sleep(60)

raises = Raises()
hangs = Hangs()
"""


def test_raising_and_hanging_sinks_never_stop_a_run(repo, aim, fake, fakeai, tmp_path):
    site = Path(fakeai["PYTHONPATH"])
    write_dist(site, "aim-sink-raises", "aim_sink_bad", SINKS, ep_name="raises")
    info = site / "aim_sink_hangs-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aim-sink-hangs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[aim]\nhangs = aim_sink_bad:hangs\n")
    (site / "aim_sink_bad.py").write_text(SINKS)
    (site / "aim_sink_raises-1.0.dist-info" / "entry_points.txt").write_text(
        "[aim]\nraises = aim_sink_bad:raises\n"
    )
    env = {**fakeai, "AIM_LOAD_PLUGINS": "fakeai,raises,hangs"}
    fake("jules", runs=[{"exit_code": 1, "stderr": "x"}, {"writes": {"src/target.py": "1\n"}}])
    ws = write_ws(repo, "ws-sinks", capability_payload={"prompt": "p", "max_retries": 1})
    start = time.monotonic()
    r = aim("run", ws, cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert (
        r.stderr.count("audit sink 'raises' failed (audit_sink raised RuntimeError: disk full)")
        == 1
    )
    assert r.stderr.count("audit sink 'hangs' failed (audit_sink did not answer within 5 s)") == 1
    assert time.monotonic() - start < 30  # the hung sink is waited for once, not per record
    assert [x["attempt"] for x in records(repo)] == [1, 2]


def test_example_sqlite_sink(repo, aim, fake, fakeai, tmp_path):
    import sqlite3

    example = Path(__file__).parent.parent / "examples" / "sqlite_sink" / "aim_sqlite_sink.py"
    site = Path(fakeai["PYTHONPATH"])
    write_dist(
        site, "aim-sqlite-sink", "aim_sqlite_sink", example.read_text(), ep_name="sqlite-sink"
    )
    db = tmp_path / "audit.db"
    env = {**fakeai, "AIM_LOAD_PLUGINS": "fakeai,sqlite-sink", "AIM_SQLITE_SINK_DB": str(db)}
    fake("jules", writes={"src/target.py": "1\n"})
    assert aim("run", write_ws(repo, "ws-sql"), cwd=repo, env=env).returncode == 0
    rows = sqlite3.connect(db).execute("select seq, tool_id, success from audit").fetchall()
    assert rows == [(1, "jules", 1)]


def test_audit_logging_off_keeps_other_sinks(repo, aim, fake, fakeai, tmp_path):
    example = Path(__file__).parent.parent / "examples" / "sqlite_sink" / "aim_sqlite_sink.py"
    site = Path(fakeai["PYTHONPATH"])
    write_dist(
        site, "aim-sqlite-sink", "aim_sqlite_sink", example.read_text(), ep_name="sqlite-sink"
    )
    cfg = repo / "config" / "aim_config.yaml"
    cfg.write_text(
        cfg.read_text().replace("enable_audit_logging: true", "enable_audit_logging: false")
    )
    db = tmp_path / "audit.db"
    env = {**fakeai, "AIM_LOAD_PLUGINS": "fakeai,sqlite-sink", "AIM_SQLITE_SINK_DB": str(db)}
    fake("jules", writes={"src/target.py": "1\n"})
    assert aim("run", write_ws(repo, "ws-off"), cwd=repo, env=env).returncode == 0
    assert records(repo) == []
    import sqlite3

    assert sqlite3.connect(db).execute("select count(*) from audit").fetchone() == (1,)
    assert (
        "Audit Logging: OFF (enable_audit_logging: false)"
        in aim("status", cwd=repo, env=env).stdout
    )
