"""Helpers for the tests of ``aim serve``: the real server in a subprocess on
127.0.0.1 (port 0, URL read from its output), plain HTTP requests, and audit
history written through the real audit writer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aim_core.audit.jsonl import JsonlAuditLog
from aim_core.audit.records import build_record
from aim_core.models import Invocation

REGISTRY = Path("aim") / ".AIM_ai-tools-registry"
URL_LINE = re.compile(r"^aim serve: (http://127\.0\.0\.1:\d+/) ")


class Reply:
    """An HTTP answer: status, headers (lower-case names), body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class Served:
    """A running ``aim serve``; ``request()`` talks to it; ``stop()`` ends it."""

    def __init__(self, proc: subprocess.Popen, url: str):
        self.proc = proc
        self.url = url
        self.stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def request(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> Reply:
        req = urllib.request.Request(self.url + path.lstrip("/"), method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with _OPENER.open(req, timeout=60) as r:
                return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request(path, "GET", **kw)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(repo: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """``aim serve --port 0`` in ``repo`` (127.0.0.1); waits for the URL line."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "aim_core", "serve", "--port", "0", *args],
        cwd=repo,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = URL_LINE.match(line)
            if m:
                found.append(m.group(1))
                break

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout=60)
    if not found:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"aim serve printed no URL (exit {proc.returncode}): {err}")
    return Served(proc, found[0])


def audit_log(repo: Path) -> JsonlAuditLog:
    return JsonlAuditLog(repo / REGISTRY / "AIM_audit")


def record(
    run_id: str,
    *,
    tool: str | None = "aider",
    capability: str | None = "code_generation",
    workstream: str = "ws-1",
    success: bool = True,
    failure: str | None = None,
    duration: float = 5.0,
    attempt: int = 1,
    prompt: str = "Create a simple add(a, b) function",
    skipped: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An audit record as the engine builds it (sealed by the log on append)."""
    return build_record(
        actor="pipeline",
        run_id=run_id,
        workstream_id=workstream,
        tool_id=tool,
        capability=capability,
        payload=Invocation(prompt=prompt, files=["src/a.py"]),
        success=success,
        message="Code generation completed (attempt 1)" if success else f"{tool} failed",
        attempt=attempt,
        failure=failure,
        exit_code=0 if success else 1,
        duration_sec=duration,
        files_modified=["src/a.py"] if success else [],
        skipped=skipped or [],
        extra_content=extra,
    ).to_dict()


def seed_history(repo: Path, runs: int = 24) -> list[str]:
    """A mixed history: fallbacks after a login, retries, failures, no tool at all, three
    capabilities, checks. Returns the run ids in order."""
    log = audit_log(repo)
    ids = []
    for i in range(runs):
        rid = f"20251120T21{i // 60:02d}{i % 60:02d}Z-{i:06x}"
        ws = f"ws-{i % 13:02d}"
        kind = i % 8
        if kind == 0:  # the guide's Step 1.5: jules needs login, aider works
            skipped = [
                {
                    "tool_id": "jules",
                    "failure": "auth_required",
                    "reason": "Jules requires login (run 'jules login')",
                }
            ]
            log.append(record(rid, workstream=ws, skipped=skipped, duration=12.5))
        elif kind == 1:  # jules fails, then aider
            log.append(record(rid, tool="jules", workstream=ws, success=False, failure="timeout"))
            log.append(record(rid, workstream=ws, duration=30.0))
        elif kind == 2:  # a retry of the same tool
            log.append(record(rid, workstream=ws, success=False, failure="tool_error"))
            log.append(record(rid, workstream=ws, attempt=2, duration=2.0))
        elif kind == 3:
            log.append(record(rid, tool="ruff", capability="linting", workstream=ws, duration=0.4))
        elif kind == 4:  # the work failed
            log.append(
                record(
                    rid,
                    tool="pytest",
                    capability="testing",
                    workstream=ws,
                    success=False,
                    failure="work_failed",
                    duration=70.0,
                )
            )
        elif kind == 5:  # no tool could be invoked
            log.append(
                record(rid, tool=None, workstream=ws, success=False, failure="not_installed")
            )
        elif kind == 6:  # checks ran
            verification = {
                "passed": True,
                "checks": [
                    {"kind": "tests", "target": "tests/", "passed": True, "summary": "3 passed"}
                ],
            }
            log.append(record(rid, workstream=ws, extra={"verification": verification}))
        else:  # claude reports its usage
            usage = {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.25, "model": "m"}
            log.append(
                record(
                    rid,
                    tool="claude-cli",
                    capability="refactoring",
                    workstream=ws,
                    extra={"usage": usage},
                )
            )
        ids.append(rid)
    log.sync_head()
    return ids


def tree_state(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root``: size, mtime and content hash."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(root).as_posix()] = (
                st.st_size,
                st.st_mtime_ns,
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
    return out
