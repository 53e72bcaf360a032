"""aim_gemini against a fake ``gemini`` executable that prints what Gemini CLI 0.61
printed against a loopback Gemini API stub (see tests/e2e): the result object on
stdout, the error object on stderr after a stack trace, the exit codes."""

from __future__ import annotations

import json
import os
import re

import pytest

import aim_gemini
from aim_core import Invocation
from aim_core.context import AimContext
from aim_core.testing import make_fake_tool

TARGET = "src/add.py"


def tokens(prompt: int, candidates: int) -> dict:
    return {
        "input": prompt,
        "prompt": prompt,
        "candidates": candidates,
        "total": prompt + candidates,
        "cached": 0,
        "thoughts": 0,
        "tool": 0,
    }


def stats(edits_ok: int = 1, edits_failed: int = 0) -> dict:
    return {
        "models": {
            "gemini-2.5-pro": {
                "api": {"totalRequests": 2, "totalErrors": 0},
                "tokens": tokens(200, 100),
            },
            "gemini-2.5-flash-lite": {
                "api": {"totalRequests": 1, "totalErrors": 0},
                "tokens": tokens(100, 50),
            },
        },
        "tools": {
            "totalCalls": edits_ok + edits_failed,
            "byName": {
                "write_file": {
                    "count": edits_ok + edits_failed,
                    "success": edits_ok,
                    "fail": edits_failed,
                }
            },
        },
        "files": {"totalLinesAdded": 2, "totalLinesRemoved": 0},
    }


def result(**extra) -> str:
    body = {
        "session_id": "4aeb9268-4000-4cca-82d5-e6b65a62e908",
        "response": "Done: the change is made.",
        "stats": stats(),
    }
    body.update(extra)
    return json.dumps(body, indent=2) + "\n"


def api_error(code: int, status: str, message: str, **more) -> str:
    """What gemini prints on stderr for an API error: the stack, then the JSON."""
    inner = json.dumps({"error": {"code": code, "message": message, "status": status, **more}})
    stack = (
        f"Error when talking to Gemini API Full report available at: /tmp/gemini-client-error.json _ApiError: {inner}\n"
        "    at throwErrorIfNotOK (file:///gemini/bundle/chunk.js:267833:24)\n"
        f"  status: {code}\n}}\n"
    )
    error = {"session_id": "f0eb921c", "error": {"type": "Error", "message": inner, "code": code}}
    return stack + json.dumps(error, indent=2) + "\n"


@pytest.fixture
def project(aim_project):
    return aim_project(files={"src/other.py": "A = 1\n"})


def invoke(project, payload=None, capability="code_generation", timeout_s=30.0):
    payload = payload or Invocation(prompt="Create add(a, b)", files_create=[TARGET])
    context = project.context(tool_id="gemini-cli", timeout_s=timeout_s)
    return aim_gemini.invoke_capability("gemini-cli", capability, payload, context)


def test_success_writes_the_file_and_reports_usage(project, fake_tool):
    gemini = fake_tool("gemini", stdout=result(), writes={TARGET: "def add(a, b): ...\n"})
    payload = Invocation(
        prompt="Create add(a, b)",
        files_create=[TARGET],
        options={"model": "gemini-2.5-pro", "base_url": "http://127.0.0.1:9"},
    )
    r = invoke(project, payload)
    assert (r.success, r.failure, r.exit_code, r.message) == (
        True,
        None,
        0,
        "Done: the change is made.",
    )
    assert r.files_created == (TARGET,)
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.model) == (
        300,
        150,
        "gemini-2.5-pro",
    )
    argv = gemini.work_calls[0]["argv"]
    assert argv[argv.index("--output-format") + 1] == "json"
    assert argv[argv.index("--approval-mode") + 1] == "auto_edit"
    assert "--skip-trust" in argv and argv[argv.index("--extensions") + 1] == "none"
    assert argv[argv.index("--model") + 1] == "gemini-2.5-pro"
    assert argv[-2] == "--prompt" and f"- {TARGET}" in argv[-1]
    assert "--yolo" not in argv


def test_exit_0_with_an_invalid_stream_error_is_a_tool_error(project, fake_tool):
    # an empty or blocked model answer: gemini reports it in "error" and exits 0
    fake_tool(
        "gemini",
        stdout=result(
            response="",
            error={
                "type": "INVALID_STREAM",
                "message": "Model stream ended with empty response text.",
            },
        ),
    )
    r = invoke(project)
    assert (r.success, r.failure, r.exit_code) == (False, "tool_error", 0)
    assert r.message == "Model stream ended with empty response text."
    assert r.usage.input_tokens == 300


def test_exit_0_without_a_change_is_a_tool_error(project, fake_tool):
    fake_tool("gemini", stdout=result(stats=stats(edits_ok=0)))
    r = invoke(project)
    assert (r.failure, r.message) == ("tool_error", "gemini made no change to the files in scope")


def test_edits_that_all_failed_or_were_refused_are_a_tool_error(project, fake_tool):
    fake_tool("gemini", stdout=result(stats=stats(edits_ok=0, edits_failed=2)))
    r = invoke(project)
    assert (r.failure, r.exit_code) == ("tool_error", 0)
    assert r.message.startswith("gemini's edits failed or were refused")


def test_a_policy_lets_the_edit_tools_write_only_the_files_in_scope(project, fake_tool):
    gemini = fake_tool("gemini", stdout=result(), writes={TARGET: "x\n"})
    assert invoke(project).success
    argv = gemini.work_calls[0]["argv"]
    policy = argv[argv.index("--policy") + 1]
    assert not policy.startswith(str(project.root))  # outside the repository
    assert not os.path.exists(policy)  # for this call only
    tomllib = pytest.importorskip("tomllib")
    (project.root / "lib").mkdir()
    rules = tomllib.loads(aim_gemini.policy_toml(project.root, [TARGET, "lib"]))["rule"]

    def decision(tool, path):
        """What gemini's policy engine decides: the matching rule of highest priority,
        against the arguments as its stable JSON (top-level pairs wrapped in NUL)."""
        args = f'{{\x00"content":"x"\x00,\x00"file_path":{json.dumps(path)}\x00}}'
        matching = [r for r in rules if r["toolName"] == tool and re.search(r["argsPattern"], args)]
        return max(matching, key=lambda r: r["priority"])["decision"] if matching else None

    root = str(project.root)
    for tool in ("write_file", "replace"):
        assert decision(tool, TARGET) == "allow"
        assert decision(tool, f"./{TARGET}") == decision(tool, f"{root}/{TARGET}") == "allow"
        assert decision(tool, "lib/deep/x.py") == "allow"  # a directory: anything under it
        assert decision(tool, "src/other.py") == "deny"
        assert decision(tool, "src/add.pyc") == decision(tool, "/etc/passwd") == "deny"
        assert decision(tool, "src/addXpy") == "deny"  # the dot is not a wildcard


@pytest.mark.parametrize(
    ("exit_code", "stderr", "failure", "message"),
    [
        (
            145,
            api_error(401, "UNAUTHENTICATED", "API key not valid. Please pass a valid API key."),
            "auth_required",
            "API key not valid. Please pass a valid API key.",
        ),
        (
            41,
            json.dumps(
                {
                    "session_id": "x",
                    "error": {
                        "type": "Error",
                        "message": "Please set an Auth method in your /home/u/.gemini/settings.json or specify one of the following environment variables before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA",
                        "code": 41,
                    },
                },
                indent=2,
            ),
            "auth_required",
            "Please set an Auth method",
        ),
        (
            173,
            api_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
            ),
            "rate_limited",
            "Resource has been exhausted",
        ),
        (244, api_error(500, "INTERNAL", "Internal error"), "tool_error", "Internal error"),
        (
            52,
            json.dumps(
                {
                    "session_id": "x",
                    "error": {
                        "type": "FatalConfigError",
                        "message": "Invalid configuration in /home/u/.gemini/settings.json",
                        "code": 52,
                    },
                },
                indent=2,
            ),
            "unavailable",
            "Invalid configuration",
        ),
    ],
    ids=["401", "no-auth", "429", "500", "config"],
)
def test_errors_are_classified_from_the_error_object(
    project, fake_tool, exit_code, stderr, failure, message
):
    fake_tool("gemini", exit_code=exit_code, stderr=stderr)
    r = invoke(project)
    assert (r.success, r.failure, r.exit_code) == (False, failure, exit_code)
    assert r.message.startswith(message)
    if failure == "rate_limited":
        assert r.retry_after_s == 7.0


def test_output_that_is_not_json_is_a_tool_error(project, fake_tool):
    fake_tool("gemini", exit_code=1, stderr="Unknown arguments: bogus\n")
    r = invoke(project)
    assert (r.failure, r.message) == ("tool_error", "Unknown arguments: bogus")


def test_a_hang_is_a_timeout(project, fake_tool):
    fake_tool("gemini", sleep=30)
    assert invoke(project, timeout_s=1.0).failure == "timeout"


def test_cut_off_while_retrying_a_rate_limit_is_rate_limited(project, fake_tool):
    fake_tool(
        "gemini",
        stderr="Attempt 1 failed with status 429. Retrying with backoff... RESOURCE_EXHAUSTED\n",
        sleep=30,
    )
    assert invoke(project, timeout_s=1.0).failure == "rate_limited"


def test_a_long_prompt_goes_on_stdin(project, fake_tool):
    gemini = fake_tool("gemini", stdout=result(), writes={TARGET: "x\n"})
    r = invoke(project, Invocation(prompt="x " * 60000, files_create=[TARGET]))
    assert r.success and gemini.work_calls[0]["argv"][-1] == aim_gemini.STDIN_NOTE


def test_version_checking_needs_no_change(project, fake_tool):
    fake_tool("gemini", stdout=result(response="Node 20.20.2\n"))
    r = invoke(project, Invocation(prompt="Which Node?"), capability="version_checking")
    assert r.success and r.message == "Node 20.20.2"


def test_not_installed(project):
    assert invoke(project).failure == "not_installed"


# --------------------------------------------------------------------------- detection


def ctx(tmp_path, **env):
    (tmp_path / "repo").mkdir(exist_ok=True)
    environ = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path / "home"), **env}
    return AimContext(root=tmp_path / "repo", environ=environ)


def test_detection_without_a_key_or_login_needs_login(tmp_path):
    make_fake_tool(tmp_path / "bin", "gemini", version_output="0.61.0")
    found = aim_gemini.detect_tool(ctx(tmp_path))
    assert (found.version, found.ready, found.failure) == ("0.61.0", False, "auth_required")
    assert (
        found.reason
        == "Gemini CLI requires login (run 'gemini' and sign in, or set GEMINI_API_KEY)"
    )


def test_detection_with_a_key_or_a_login_is_ready(tmp_path):
    make_fake_tool(tmp_path / "bin", "gemini", version_output="0.61.0")
    assert aim_gemini.detect_tool(ctx(tmp_path, GEMINI_API_KEY="k")).ready is True
    creds = tmp_path / "home" / ".gemini" / "oauth_creds.json"
    creds.parent.mkdir(parents=True)
    creds.write_text("{}")
    found = aim_gemini.detect_tool(ctx(tmp_path))
    assert found.ready is True and str(creds) in found.watch_paths


def test_detection_with_another_configured_auth_cannot_tell(tmp_path):
    make_fake_tool(tmp_path / "bin", "gemini", version_output="0.61.0")
    settings = tmp_path / "home" / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"security": {"auth": {"selectedType": "vertex-ai"}}}))
    assert aim_gemini.detect_tool(ctx(tmp_path)).ready is None


def test_not_installed_says_how_to_install(tmp_path):
    found = aim_gemini.detect_tool(ctx(tmp_path))
    assert found.reason == "'gemini' not found on PATH (install: npm install -g @google/gemini-cli)"
