"""Jules' REST mode (``JULES_API_KEY``) against the Jules API stub of the end-to-end
tests (``tests/e2e/stub_jules.py``, a real HTTP server on 127.0.0.1) and a real git
repository. No ``jules`` program is needed in this mode, and none is on PATH here."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import aim_jules
from aim_core import Invocation
from aim_core.context import AimContext
from aim_core.workspace import tree_measurer
from aim_jules import rest

STUB_FILE = Path(__file__).resolve().parents[3] / "tests" / "e2e" / "stub_jules.py"
if not STUB_FILE.exists():  # the plugin tested outside aim's repository
    pytest.skip("the Jules API stub (tests/e2e/stub_jules.py) is not here", allow_module_level=True)
_spec = importlib.util.spec_from_file_location("aim_e2e_stub_jules", STUB_FILE)
stub_jules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stub_jules)

PATCH = """diff --git a/hello.py b/hello.py
index 1111111..2222222 100644
--- a/hello.py
+++ b/hello.py
@@ -1 +1 @@
-print("hello")
+print("hello world")
"""
OUTSIDE_PATCH = (
    PATCH
    + """diff --git a/other.py b/other.py
--- a/other.py
+++ b/other.py
@@ -1 +1 @@
-A = 1
+A = 2
"""
)
LOGIN = "Jules requires login (run 'jules login')"


def git(root, *args):
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(autouse=True)
def _forget_sessions():
    aim_jules._SESSIONS.clear()
    yield
    aim_jules._SESSIONS.clear()


@pytest.fixture
def api():
    with stub_jules.StubJules() as stub:
        stub.repos["acme/widgets"] = "trunk"
        stub.patch = PATCH
        yield stub


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "hello.py").write_text('print("hello")\n')
    (root / "other.py").write_text("A = 1\n")
    git(root, "add", "-A")
    git(root, "-c", "user.email=a@b.c", "-c", "user.name=a", "commit", "-qm", "init")
    git(root, "remote", "add", "origin", "https://github.com/acme/widgets.git")
    return root


def ctx(tmp_path, root, api, *, seconds=30.0, key=None, **options):
    environ = {
        "PATH": os.environ["PATH"],  # git; no jules program is needed
        "HOME": str(tmp_path),
        "JULES_API_KEY": key or api.api_key,
        "JULES_API_BASE": api.base_url,
    }
    return AimContext(
        root=root,
        environ=environ,
        options={"poll_interval_s": 0.01, **options},
        deadline=time.monotonic() + seconds,
        env_passthrough=aim_jules.ENV_PASSTHROUGH,
        measure=tree_measurer(root),  # as the core's: what changed since it was made
    )


PAYLOAD = Invocation(
    prompt="Say hello world", files=["hello.py"], files_scope=["hello.py"], workstream_id="ws-1"
)


def invoke(context, payload=PAYLOAD):
    return aim_jules.invoke_capability("jules", "code_generation", payload, context)


def test_a_session_is_created_polled_until_completed_and_its_patch_applied(tmp_path, repo, api):
    r = invoke(ctx(tmp_path, repo, api))

    assert r.success and r.failure is None, r.message
    (sid,) = api.sessions
    assert r.message == f"applied jules session {sid}: hello.py"
    assert r.files_modified == ("hello.py",)
    assert (repo / "hello.py").read_text() == 'print("hello world")\n'
    assert git(repo, "status", "--porcelain") == " M hello.py\n"  # the index is untouched
    create = api.seen("POST", "sessions")[0].body
    assert create["sourceContext"] == {
        "source": "sources/github/acme/widgets",
        "githubRepoContext": {"startingBranch": "trunk"},  # the repository's default branch
    }
    assert create["prompt"].startswith("Say hello world") and "- hello.py" in create["prompt"]
    assert create["requirePlanApproval"] is False and create["title"] == "Say hello world"
    assert {q.api_key for q in api.requests} == {api.api_key}
    assert api.api_key not in r.output and api.api_key not in r.message
    assert "GET sessions/" in r.output and "--- jules session" in r.output


def test_the_starting_branch_option(tmp_path, repo, api):
    assert invoke(ctx(tmp_path, repo, api, starting_branch="dev")).success
    assert api.seen("POST", "sessions")[0].body["sourceContext"]["githubRepoContext"] == {
        "startingBranch": "dev"
    }


def test_the_base_url_option_wins_over_the_environment(tmp_path, repo, api):
    context = ctx(tmp_path, repo, api, base_url=api.base_url)
    context = AimContext(
        root=context.root,
        environ={**context.environ, "JULES_API_BASE": "http://127.0.0.1:9/v1alpha"},
        options=context.options,
        deadline=context.deadline,
        measure=context.measure,
    )
    assert invoke(context).success


@pytest.mark.parametrize("mode", ["no_credentials", "wrong_key"])
def test_a_refused_key_is_auth_required_with_the_guides_words(tmp_path, repo, api, mode):
    if mode == "no_credentials":
        api.mode = "no_credentials"
        context = ctx(tmp_path, repo, api)
    else:
        context = ctx(tmp_path, repo, api, key="not-the-key")
    r = invoke(context)
    assert r.failure == "auth_required"
    assert r.message == (
        f"{LOGIN}; the Jules API refused the key in JULES_API_KEY (401 UNAUTHENTICATED)"
    )
    assert api.seen("POST", "sessions") == []
    assert "not-the-key" not in r.output


def test_a_repository_not_connected_to_jules_is_invalid_payload(tmp_path, repo, api):
    git(repo, "remote", "set-url", "origin", "git@github.com:acme/elsewhere.git")
    r = invoke(ctx(tmp_path, repo, api))
    assert r.failure == "invalid_payload"
    assert "acme/elsewhere is not connected to Jules" in r.message


def test_no_github_origin_is_invalid_payload_and_nothing_is_asked(tmp_path, repo, api):
    git(repo, "remote", "remove", "origin")
    r = invoke(ctx(tmp_path, repo, api))
    assert r.failure == "invalid_payload" and r.message == aim_jules.NO_ORIGIN
    assert api.requests == []


def test_a_rate_limit_is_rate_limited_with_the_servers_retry_after(tmp_path, repo, api):
    api.mode = "429"
    r = invoke(ctx(tmp_path, repo, api))
    assert r.failure == "rate_limited" and r.retry_after_s == 2.0
    assert "RESOURCE_EXHAUSTED" not in r.message and "429" in r.message


def test_a_failed_session_is_a_tool_error_and_forgotten(tmp_path, repo, api):
    api.states = ("QUEUED", "IN_PROGRESS", "FAILED")
    r = invoke(ctx(tmp_path, repo, api))
    (sid,) = api.sessions
    assert r.failure == "tool_error"
    assert r.message == (
        f"jules session {sid} failed (the plan failed); see https://jules.google.com/session/{sid}"
    )
    assert aim_jules._SESSIONS == {}  # a retry starts a new session
    assert (repo / "hello.py").read_text() == 'print("hello")\n'


def test_a_session_waiting_for_the_user_is_a_tool_error_and_kept(tmp_path, repo, api):
    api.states = ("QUEUED", "AWAITING_USER_FEEDBACK")
    r = invoke(ctx(tmp_path, repo, api))
    (sid,) = api.sessions
    assert r.failure == "tool_error" and "waiting for you (AWAITING_USER_FEEDBACK)" in r.message
    assert sid in aim_jules._SESSIONS.values()


def test_the_deadline_ends_the_wait_and_the_retry_resumes_the_same_session(tmp_path, repo, api):
    api.states = ("QUEUED", "IN_PROGRESS")  # never finishes on its own
    r = invoke(ctx(tmp_path, repo, api, seconds=0.5))
    (sid,) = api.sessions
    assert r.failure == "timeout"
    assert r.message.startswith(f"jules session {sid} did not finish in time (state: IN_PROGRESS)")

    api.sessions[sid].states = ("IN_PROGRESS", "COMPLETED")  # meanwhile, it finishes
    api.sessions[sid].step = 0
    r = invoke(ctx(tmp_path, repo, api))
    assert r.success, r.message
    assert len(api.seen("POST", "sessions")) == 1  # one remote session, not two
    assert f"resuming jules session {sid}" in r.output


def test_a_patch_outside_the_scope_is_out_of_scope_and_not_applied(tmp_path, repo, api):
    api.patch = OUTSIDE_PATCH
    r = invoke(ctx(tmp_path, repo, api))
    assert r.failure == "out_of_scope" and "other.py" in r.message
    assert git(repo, "status", "--porcelain") == ""


def test_a_completed_session_without_a_patch_is_a_tool_error(tmp_path, repo, api):
    api.patch = ""
    r = invoke(ctx(tmp_path, repo, api))
    assert r.failure == "tool_error" and "finished without a patch" in r.message


def test_an_api_that_does_not_answer_is_a_tool_error(tmp_path, repo, api):
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = ctx(tmp_path, repo, api, base_url=f"http://127.0.0.1:{port}/v1alpha")
    r = invoke(context)
    assert r.failure == "tool_error"
    assert r.message.startswith(f"cannot reach the Jules API at http://127.0.0.1:{port}/v1alpha")


def test_the_sessions_own_output_is_the_patch_it_gives():
    session = {"outputs": [{"pullRequest": {}}, {"changeSet": {"gitPatch": {"unidiffPatch": "B"}}}]}
    activities = [{"artifacts": [{"changeSet": {"gitPatch": {"unidiffPatch": "A"}}}]}]
    assert rest.latest_patch(session, activities) == "B"
    assert rest.latest_patch({}, activities) == "A"
    assert rest.latest_patch({}, [{"artifacts": [{"media": {}}]}]) is None


def test_detection_with_an_api_key_needs_no_program(tmp_path):
    environ = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path), "JULES_API_KEY": "k"}
    found = aim_jules.detect_tool(AimContext(root=tmp_path, environ=environ))
    assert found.installed and found.ready is True and found.failure is None
    assert found.reason.startswith(
        "uses the Jules REST API at https://jules.googleapis.com/v1alpha (JULES_API_KEY is set)"
    )
    del environ["JULES_API_KEY"]
    assert aim_jules.detect_tool(AimContext(root=tmp_path, environ=environ)).installed is False


def test_invocation_with_an_api_key_does_not_start_the_program(tmp_path, repo, api):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "jules-ran"
    (bin_dir / "jules").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (bin_dir / "jules").chmod(0o755)
    context = ctx(tmp_path, repo, api)
    context = AimContext(
        root=repo,
        environ={**context.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        options=context.options,
        deadline=context.deadline,
        measure=context.measure,
    )
    assert invoke(context).success
    assert not marker.exists()
