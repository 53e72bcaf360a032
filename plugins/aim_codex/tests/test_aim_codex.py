"""aim_codex against a fake ``codex`` executable that prints the JSONL events codex
0.171 printed against a loopback Responses API stub (see tests/e2e): every failure
class, the exit-0-on-error cases, usage, and the command line aim pins."""

from __future__ import annotations

import json

import attrs
import pytest

import aim_codex
from aim_core import Invocation

TARGET = "src/add.py"
THREAD = {"type": "thread.started", "thread_id": "01a229ab-c581-7963-ae8e-c10dcb218cf5"}
METADATA = {
    "type": "item.completed",
    "item": {
        "id": "item_0",
        "type": "error",
        "message": "Model metadata for `stub-model` not found. Defaulting to fallback metadata; "
        "this can degrade performance and cause issues.",
    },
}
STARTED = {"type": "turn.started"}
USAGE = {
    "input_tokens": 200,
    "cached_input_tokens": 0,
    "cache_write_input_tokens": 0,
    "output_tokens": 100,
    "reasoning_output_tokens": 0,
}


def file_change(path: str, status: str = "completed") -> dict:
    return {
        "type": "item.completed",
        "item": {
            "id": "item_1",
            "type": "file_change",
            "changes": [{"path": path, "kind": "add"}],
            "status": status,
        },
    }


def message(text: str) -> dict:
    return {
        "type": "item.completed",
        "item": {"id": "item_2", "type": "agent_message", "text": text},
    }


def failed(said: str) -> list[dict]:
    return [{"type": "error", "message": said}, {"type": "turn.failed", "error": {"message": said}}]


def jsonl(*events: dict) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def ok_events(path: str) -> str:
    return jsonl(
        THREAD,
        METADATA,
        STARTED,
        file_change(path),
        message("Done: the change is made."),
        {"type": "turn.completed", "usage": USAGE},
    )


@pytest.fixture
def project(aim_project):
    return aim_project(
        files={"src/other.py": "A = 1\n"}, config={"tools": {"codex": {"model": "gpt-5-codex"}}}
    )


def invoke(project, payload=None, capability="code_generation", timeout_s=30.0):
    payload = payload or Invocation(prompt="Create add(a, b)", files_create=[TARGET])
    context = project.context(tool_id="codex", timeout_s=timeout_s)
    return aim_codex.invoke_capability("codex", capability, payload, context)


def test_success_writes_the_file_and_reports_usage(project, fake_tool):
    codex = fake_tool("codex", stdout=ok_events(TARGET), writes={TARGET: "def add(a, b): ...\n"})
    r = invoke(project)
    assert (r.success, r.failure, r.exit_code) == (True, None, 0)
    assert r.message == "Done: the change is made."
    assert r.files_created == (TARGET,)
    assert (r.usage.input_tokens, r.usage.output_tokens) == (200, 100)
    assert (r.usage.cost_usd, r.usage.model) == (None, "gpt-5-codex")

    (call,) = codex.work_calls
    argv = call["argv"]
    assert argv[:2] == ["exec", "--json"] and call["cwd"] == str(project.root)
    assert argv[argv.index("--sandbox") + 1] == "workspace-write"
    for flag in ("--skip-git-repo-check", "--ephemeral", "--ignore-rules"):
        assert flag in argv
    pinned = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert 'approval_policy="never"' in pinned
    assert "sandbox_workspace_write.exclude_slash_tmp=true" in pinned
    assert "sandbox_workspace_write.network_access=false" in pinned
    assert argv[argv.index("-C") + 1] == str(project.root)
    assert argv[argv.index("-m") + 1] == "gpt-5-codex"
    assert argv[-2] == "--" and argv[-1].startswith("Create add(a, b)")
    assert f"- {TARGET}" in argv[-1]


def test_a_base_url_configures_a_provider_without_codex_retries(project, fake_tool):
    codex = fake_tool("codex", stdout=ok_events(TARGET), writes={TARGET: "x = 1\n"})
    payload = Invocation(
        prompt="Create it",
        files_create=[TARGET],
        options={"base_url": "http://127.0.0.1:9/v1", "api_key_env": "STUB_KEY"},
    )
    assert invoke(project, payload).success
    pinned = [
        a
        for i, a in enumerate(codex.work_calls[0]["argv"])
        if i and codex.work_calls[0]["argv"][i - 1] == "-c"
    ]
    assert 'model_provider="aim"' in pinned
    assert 'model_providers.aim.base_url="http://127.0.0.1:9/v1"' in pinned
    assert 'model_providers.aim.env_key="STUB_KEY"' in pinned
    assert "model_providers.aim.request_max_retries=0" in pinned
    assert "model_providers.aim.supports_websockets=false" in pinned


def test_exit_0_without_a_change_is_a_tool_error(project, fake_tool):
    # codex refused a write outside its sandbox and still completed its turn, exit 0
    fake_tool(
        "codex",
        stdout=jsonl(THREAD, STARTED, message("Done."), {"type": "turn.completed", "usage": USAGE}),
    )
    r = invoke(project)
    assert (r.success, r.failure, r.exit_code) == (False, "tool_error", 0)
    assert r.message == "codex made no change to the files in scope"
    assert r.usage.input_tokens == 200  # spent all the same


def test_exit_0_with_an_edit_outside_the_scope_names_it(project, fake_tool):
    fake_tool(
        "codex",
        stdout=jsonl(file_change("/elsewhere/x.py"), {"type": "turn.completed", "usage": USAGE}),
    )
    r = invoke(project)
    assert r.failure == "tool_error" and "(it changed /elsewhere/x.py)" in r.message


def test_exit_0_without_a_completed_turn_is_an_error(project, fake_tool):
    fake_tool(
        "codex",
        stdout=jsonl(
            THREAD,
            STARTED,
            {
                "type": "error",
                "message": "stream disconnected before completion: stream closed before response.completed",
            },
        ),
    )
    r = invoke(project)
    assert (r.failure, r.exit_code) == ("tool_error", 0)
    assert r.message.startswith("stream disconnected before completion")


def test_failed_edits_are_work_failed(project, fake_tool):
    fake_tool(
        "codex",
        stdout=jsonl(file_change(TARGET, "failed"), {"type": "turn.completed", "usage": USAGE}),
    )
    r = invoke(project)
    assert r.failure == "work_failed" and r.message == f"codex's edits failed: {TARGET}"


@pytest.mark.parametrize(
    ("said", "failure"),
    [
        (
            "unexpected status 401 Unauthorized: Incorrect API key provided: sk-stub., "
            "url: http://127.0.0.1:18991/v1/responses",
            "auth_required",
        ),
        ("exceeded retry limit, last status: 429 Too Many Requests", "rate_limited"),
        (
            "We’re currently experiencing high demand, which may cause temporary errors.",
            "tool_error",
        ),
        ("Your workspace is out of credits. Add credits to continue.", "unavailable"),
    ],
    ids=["401", "429", "500", "credits"],
)
def test_a_failed_turn_is_classified_by_its_words(project, fake_tool, said, failure):
    fake_tool("codex", stdout=jsonl(THREAD, STARTED, *failed(said)), exit_code=1)
    r = invoke(project)
    assert (r.success, r.failure, r.exit_code) == (False, failure, 1)
    assert r.message == said.replace("’", "’")


def test_rate_limit_advice_becomes_retry_after(project, fake_tool):
    said = "You've hit your usage limit. Try again in 20 seconds."
    fake_tool("codex", stdout=jsonl(*failed(said)), exit_code=1)
    r = invoke(project)
    assert (r.failure, r.retry_after_s) == ("rate_limited", 20.0)


def test_a_broken_config_is_unavailable(project, fake_tool):
    fake_tool(
        "codex",
        exit_code=1,
        stderr="Error loading config.toml: model_providers contains reserved built-in provider "
        "IDs: `openai`.\n",
    )
    r = invoke(project)
    assert r.failure == "unavailable" and r.message.startswith("Error loading config.toml")


def test_an_unknown_argument_is_unavailable(project, fake_tool):
    fake_tool("codex", exit_code=2, stderr="error: unexpected argument '--bogus' found\n")
    assert invoke(project).failure == "unavailable"


def test_a_hang_is_a_timeout(project, fake_tool):
    fake_tool("codex", stdout=jsonl(THREAD, STARTED), sleep=30)
    r = invoke(project, timeout_s=1.0)
    assert (r.failure, r.exit_code) == ("timeout", None)


def test_cut_off_while_codex_retries_a_rate_limit_is_rate_limited(project, fake_tool):
    retrying = {
        "type": "error",
        "message": "Reconnecting... 2/5 (exceeded retry limit, last status: 429 Too Many Requests)",
    }
    fake_tool("codex", stdout=jsonl(THREAD, STARTED, retrying), sleep=30)
    r = invoke(project, timeout_s=1.0)
    assert r.failure == "rate_limited"


def test_version_checking_needs_no_change(project, fake_tool):
    fake_tool(
        "codex",
        stdout=jsonl(message("Python 3.11 is in use."), {"type": "turn.completed", "usage": USAGE}),
    )
    r = invoke(project, Invocation(prompt="Which Python?"), capability="version_checking")
    assert r.success and r.message == "Python 3.11 is in use."


def test_a_long_prompt_goes_on_stdin(project, fake_tool):
    codex = fake_tool("codex", stdout=ok_events(TARGET), writes={TARGET: "x\n"})
    r = invoke(project, Invocation(prompt="x " * 60000, files_create=[TARGET]))
    assert r.success and codex.work_calls[0]["argv"][-2:] == ["--", "-"]


def test_a_codex_home_inside_the_repository_is_refused(project, fake_tool):
    codex = fake_tool("codex", stdout=ok_events(TARGET))
    context = project.context(tool_id="codex")
    context = attrs.evolve(
        context, environ={**context.environ, "CODEX_HOME": str(project.root / ".codex")}
    )
    payload = Invocation(prompt="x", files_create=[TARGET])
    r = aim_codex.invoke_capability("codex", "code_generation", payload, context)
    assert r.failure == "unavailable" and "CODEX_HOME" in r.message
    assert codex.work_calls == []


def test_not_installed(project):
    assert invoke(project).failure == "not_installed"


def test_validate_payload(project):
    context = project.context(tool_id="codex")
    none = aim_codex.validate_payload("codex", "refactoring", Invocation(prompt="x"), context)
    assert [p.field for p in none] == ["capability_payload.files"]
    ok = aim_codex.validate_payload("codex", "version_checking", Invocation(prompt="x"), context)
    assert ok == []
    assert (
        aim_codex.validate_payload("aider", "refactoring", Invocation(prompt="x"), context) is None
    )
