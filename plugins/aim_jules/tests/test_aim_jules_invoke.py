"""Jules invocation against a stateful fake ``jules`` (the real program can't run
here: see README.md for what is assumed about its output) and a real git repository.

The fake keeps its sessions in a JSON file: ``remote new`` starts one, every
``remote list --session`` moves it one status further and prints the table,
``remote pull --session ID`` prints its patch."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aim_jules
from aim_core import Invocation
from aim_core.context import AimContext
from aim_core.workspace import tree_measurer

SID = "4240930739512018056"
FAKE_JULES = r"""#!PYTHON
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
cfg_path, state_path = os.path.join(here, "jules.json"), os.path.join(here, "jules.state.json")
cfg = json.load(open(cfg_path))
state = json.load(open(state_path)) if os.path.exists(state_path) else {"sessions": {}}
args = sys.argv[1:]
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps({"argv": args, "cwd": os.getcwd()}) + "\n")
def save():
    # atomically: a fake killed at the deadline must not leave a half-written state
    with open(state_path + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(state_path + ".tmp", state_path)
if cfg.get("fail"):
    sys.stderr.write(cfg["fail"] + "\n"); sys.exit(1)
if args[:1] == ["version"]:
    print("jules v0.1.42"); sys.exit(0)
if args[:2] == ["remote", "new"]:
    repo = args[args.index("--repo") + 1]
    prompt = args[args.index("--session") + 1]
    sid = cfg.get("id", "SID")
    state["sessions"][sid] = {"repo": repo, "prompt": prompt, "polls": 0}
    save()
    print(cfg.get("new_output", "Session is created.\nURL: https://jules.google.com/session/{id}").format(id=sid))
    sys.exit(0)
if args[:3] == ["remote", "list", "--session"]:
    print(cfg.get("header", "ID                   Description              Repo            Last active   Status"))
    for row in cfg.get("other_rows", []):
        print(row)
    for sid, s in state["sessions"].items():
        statuses = cfg.get("statuses", ["Completed"])
        status = statuses[min(s["polls"], len(statuses) - 1)]
        s["polls"] += 1
        print(f"{sid}  {s['prompt'].splitlines()[0][:20]:<20}  {s['repo']}  1m ago  {status}")
    save()
    sys.exit(0)
if args[:3] == ["remote", "pull", "--session"]:
    if "--apply" in args:
        sys.exit(3)
    print(cfg.get("pull_output", "Pulling session...\n{patch}").format(patch=cfg.get("patch", "")), end="")
    sys.exit(0)
sys.stderr.write("unknown command\n"); sys.exit(2)
"""

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
RENAME_PATCH = """diff --git a/other.py b/hello2.py
similarity index 100%
rename from other.py
rename to hello2.py
"""
NOT_LOGGED_IN = "Trying to make a GET request without a valid client (did you forget to login?)"


class FakeJules:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        bin_dir.mkdir(parents=True, exist_ok=True)
        path = bin_dir / "jules"
        path.write_text(FAKE_JULES.replace("PYTHON", sys.executable, 1))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def configure(self, **cfg):
        cfg.setdefault("id", SID)
        cfg.setdefault("patch", PATCH)
        (self.bin_dir / "jules.json").write_text(json.dumps(cfg))
        return self

    @property
    def calls(self):
        log = self.bin_dir / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line)["argv"] for line in log.read_text().splitlines()]


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


@pytest.fixture
def jules(tmp_path):
    return FakeJules(tmp_path / "bin").configure()


def ctx(tmp_path, root, *, seconds=30.0, poll=0.01):
    environ = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
    }
    return AimContext(
        root=root,
        environ=environ,
        options={"poll_interval_s": poll},
        deadline=time.monotonic() + seconds,
        env_passthrough=aim_jules.ENV_PASSTHROUGH,
        measure=tree_measurer(root),  # as the core's: what changed since it was made
    )


def invoke(tmp_path, root, payload=None, **kwargs):
    payload = payload or Invocation(
        prompt="Say hello world", files=["hello.py"], files_scope=["hello.py"], workstream_id="ws-1"
    )
    return aim_jules.invoke_capability(
        "jules", "code_generation", payload, ctx(tmp_path, root, **kwargs)
    )


def test_full_session_new_list_until_completed_pull_and_apply(tmp_path, repo, jules):
    jules.configure(statuses=["Planning", "In Progress", "In Progress", "Completed"])
    r = invoke(tmp_path, repo)
    assert r.success and r.failure is None, r.message
    assert (repo / "hello.py").read_text() == 'print("hello world")\n'
    assert r.files_modified == ("hello.py",)
    assert SID in r.message

    calls = jules.calls
    new = next(c for c in calls if c[:2] == ["remote", "new"])
    assert new[new.index("--repo") + 1] == "acme/widgets"
    prompt = new[new.index("--session") + 1]
    assert prompt.startswith("Say hello world") and "- hello.py" in prompt
    polls = [c for c in calls if c == ["remote", "list", "--session"]]
    assert len(polls) == 1 + 4  # the list before starting, then until "Completed"
    assert calls[-1] == ["remote", "pull", "--session", SID]  # never --apply: git applies it
    assert "Completed" in r.output and '+print("hello world")' in r.output
    assert git(repo, "status", "--porcelain") == " M hello.py\n"  # the index is untouched


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:acme/widgets.git",
        "ssh://git@github.com/acme/widgets.git",
        "https://x-access-token:ghp_abcdefghijklmnop@github.com/acme/widgets",
    ],
)
def test_the_github_repository_comes_from_the_origin_url(tmp_path, repo, jules, url):
    git(repo, "remote", "set-url", "origin", url)
    r = invoke(tmp_path, repo)
    assert r.success
    new = next(c for c in jules.calls if c[:2] == ["remote", "new"])
    assert new[new.index("--repo") + 1] == "acme/widgets"
    assert "ghp_" not in r.output


@pytest.mark.parametrize("origin", [None, "https://gitlab.com/acme/widgets.git"])
def test_no_github_origin_is_invalid_payload(tmp_path, repo, jules, origin):
    if origin is None:
        git(repo, "remote", "remove", "origin")
    else:
        git(repo, "remote", "set-url", "origin", origin)
    r = invoke(tmp_path, repo)
    assert (r.success, r.failure) == (False, "invalid_payload")
    assert r.message == "jules works on a GitHub repository; this repository has no GitHub origin"
    assert jules.calls == []


def test_not_logged_in_is_auth_required_before_any_session_starts(tmp_path, repo, jules):
    jules.configure(fail=NOT_LOGGED_IN)
    r = invoke(tmp_path, repo)
    assert r.failure == "auth_required"
    assert r.message == "Jules requires login (run 'jules login')"
    assert jules.calls == [["remote", "list", "--session"]]


def test_the_npm_launcher_without_its_program_is_unavailable(tmp_path, repo, jules):
    jules.configure(fail="Failed to start jules binary: Error: spawn /tmp/jules_tmp/jules ENOENT")
    assert invoke(tmp_path, repo).failure == "unavailable"


def test_a_session_id_not_printed_is_found_as_the_new_row_of_the_list(tmp_path, repo, jules):
    jules.configure(
        new_output="Created a new session for acme/widgets.",
        other_rows=["9999999999999999999  older task            acme/widgets  2d ago  Completed"],
    )
    r = invoke(tmp_path, repo)
    assert r.success
    assert jules.calls[-1] == ["remote", "pull", "--session", SID]


def test_deadline_while_running_is_a_timeout_and_the_retry_resumes_the_session(
    tmp_path, repo, jules
):
    jules.configure(statuses=["In Progress"])
    r = invoke(tmp_path, repo, seconds=0.5, poll=0.05)
    assert r.failure == "timeout"
    assert SID in r.message and "In Progress" in r.message
    assert (repo / "hello.py").read_text() == 'print("hello")\n'

    jules.configure(statuses=["In Progress", "Completed"])  # the session finishes meanwhile
    state = json.loads((tmp_path / "bin" / "jules.state.json").read_text())
    state["sessions"][SID]["polls"] = 1
    (tmp_path / "bin" / "jules.state.json").write_text(json.dumps(state))
    r = invoke(tmp_path, repo)
    assert r.success
    assert [c for c in jules.calls if c[:2] == ["remote", "new"]] == [jules.calls[1]]  # one session


@pytest.mark.parametrize(
    ("status", "said"), [("Failed", "failed"), ("Awaiting User Feedback", "waiting for you")]
)
def test_a_session_that_fails_or_waits_for_the_user_is_a_tool_error(
    tmp_path, repo, jules, status, said
):
    jules.configure(statuses=["Planning", status])
    r = invoke(tmp_path, repo)
    assert r.failure == "tool_error" and said in r.message and SID in r.message
    assert not any(c[:2] == ["remote", "pull"] for c in jules.calls)
    # a failed session is dropped (a retry starts anew); one waiting for the user is kept
    assert (SID in aim_jules._SESSIONS.values()) is (status != "Failed")


def test_a_quota_answer_is_rate_limited(tmp_path, repo, jules):
    jules.configure(fail="Error: daily session quota exceeded, try again in 2h")
    r = invoke(tmp_path, repo)
    assert r.failure == "rate_limited" and r.retry_after_s == 7200.0


def test_a_bare_number_in_the_output_is_checked_against_the_list(tmp_path, repo, jules):
    jules.configure(new_output="Started at 1732550400. Track it with jules remote list.")
    r = invoke(tmp_path, repo)
    assert r.success
    assert jules.calls[-1] == ["remote", "pull", "--session", SID]


def test_a_patch_outside_the_scope_is_not_applied(tmp_path, repo, jules):
    jules.configure(patch=OUTSIDE_PATCH)
    r = invoke(tmp_path, repo)
    assert r.failure == "out_of_scope" and "other.py" in r.message
    assert git(repo, "status", "--porcelain") == ""


def test_a_rename_away_from_a_file_outside_the_scope_is_not_applied(tmp_path, repo, jules):
    jules.configure(patch=RENAME_PATCH)
    payload = Invocation(prompt="x", files=["hello.py"], files_create=["hello2.py"])
    r = invoke(tmp_path, repo, payload)
    assert r.failure == "out_of_scope" and "other.py" in r.message
    assert (repo / "other.py").exists() and not (repo / "hello2.py").exists()


def test_a_patch_that_does_not_apply_is_a_tool_error(tmp_path, repo, jules):
    (repo / "hello.py").write_text('print("changed locally")\n')
    r = invoke(tmp_path, repo)
    assert r.failure == "tool_error" and r.message.startswith("git apply failed")
    assert (repo / "hello.py").read_text() == 'print("changed locally")\n'


def test_no_patch_is_a_tool_error(tmp_path, repo, jules):
    jules.configure(pull_output="Session has no changes.\n")
    r = invoke(tmp_path, repo)
    assert r.failure == "tool_error" and "without a patch" in r.message


def test_a_root_below_the_git_top_level(tmp_path, repo, jules):
    sub = repo / "svc"
    sub.mkdir()
    (sub / "app.py").write_text("X = 1\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=a@b.c", "-c", "user.name=a", "commit", "-qm", "svc")
    jules.configure(patch="--- a/svc/app.py\n+++ b/svc/app.py\n@@ -1 +1 @@\n-X = 1\n+X = 2\n")
    r = invoke(tmp_path, sub, Invocation(prompt="x", files=["app.py"]))
    assert r.success and (sub / "app.py").read_text() == "X = 2\n"


def test_other_tool_ids_are_not_answered(tmp_path, repo, jules):
    payload = Invocation(prompt="x", files=["hello.py"])
    context = ctx(tmp_path, repo)
    assert aim_jules.invoke_capability("aider", "code_generation", payload, context) is None
    assert aim_jules.validate_payload("aider", "code_generation", payload, context) is None
    assert jules.calls == []


def test_parsing_helpers():
    assert (
        aim_jules.session_id_from("Session: https://jules.google.com/session/123456789")
        == "123456789"
    )
    assert aim_jules.session_id_from("created sessions/abc123def") == "abc123def"
    assert aim_jules.session_id_from("Session ID: 1234567") == "1234567"
    assert aim_jules.session_id_from("nothing here") is None
    table = "ID  Description  Status\n12345678…  fix the error handling  In Progress\n"
    assert aim_jules.session_state(table, "123456789012") == ("running", "In Progress")
    boxed = "│ 42424242 │ write tests │ Completed │"
    assert aim_jules.session_state(boxed, "42424242") == ("done", "Completed")
    assert aim_jules.session_state(boxed, "777777") == (None, None)


def test_validate_payload(tmp_path, repo):
    context = ctx(tmp_path, repo)
    assert (
        aim_jules.validate_payload("jules", "code_generation", Invocation(prompt="x"), context)
        == []
    )
    (problem,) = aim_jules.validate_payload("jules", "refactoring", Invocation(prompt="x"), context)
    assert problem.field == "capability"
    long = Invocation(prompt="x" * 200_000)
    (problem,) = aim_jules.validate_payload("jules", "code_generation", long, context)
    assert problem.field == "capability_payload.prompt"
