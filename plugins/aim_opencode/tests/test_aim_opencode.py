"""aim_opencode against a fake ``opencode`` executable that prints the JSON events
opencode 1.18 printed against a loopback OpenAI-compatible stub (see tests/e2e)."""

from __future__ import annotations

import json
import sys

import attrs
import pytest

import aim_opencode
from aim_core import Invocation
from aim_core.context import AimContext
from aim_core.testing import make_fake_tool

TARGET = "src/add.py"
SESSION = "ses_dd653483fffeFftIXQjRLlmrU0"


def event(kind: str, **fields) -> dict:
    return {"type": kind, "timestamp": 1795995519612, "sessionID": SESSION, **fields}


def tool_use(path: str, status: str = "completed", error: str | None = None) -> dict:
    state = {"status": status, "input": {"filePath": path, "content": "x = 1\n"}}
    state.update(
        {"output": "Wrote file successfully."} if status == "completed" else {"error": error}
    )
    return event(
        "tool_use", part={"type": "tool", "tool": "write", "callID": "call_1", "state": state}
    )


def step_finish(cost: float = 0.0012) -> dict:
    tokens = {
        "total": 150,
        "input": 100,
        "output": 50,
        "reasoning": 0,
        "cache": {"write": 0, "read": 0},
    }
    return event(
        "step_finish",
        part={"type": "step-finish", "reason": "stop", "tokens": tokens, "cost": cost},
    )


def text(said: str) -> dict:
    return event("text", part={"type": "text", "text": said, "time": {"start": 1, "end": 2}})


def api_error(status: int, message: str, headers: dict | None = None) -> dict:
    data = {
        "message": message,
        "statusCode": status,
        "isRetryable": status >= 429,
        "responseHeaders": headers or {"content-type": "application/json"},
        "metadata": {"url": "http://127.0.0.1:9/v1/chat/completions"},
    }
    return event("error", error={"name": "APIError", "data": data})


def jsonl(*events: dict) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


@pytest.fixture
def project(aim_project):
    return aim_project(files={"src/other.py": "A = 1\n"})


def invoke(project, payload=None, capability="code_generation", timeout_s=30.0):
    payload = payload or Invocation(prompt="Create add(a, b)", files_create=[TARGET])
    context = project.context(tool_id="opencode", timeout_s=timeout_s)
    return aim_opencode.invoke_capability("opencode", capability, payload, context)


def test_success_reports_usage_and_cost(project, fake_tool):
    opencode = fake_tool(
        "opencode",
        stdout=jsonl(
            event("step_start", part={}),
            tool_use(TARGET),
            step_finish(),
            text("Done."),
            step_finish(0.0008),
        ),
        writes={TARGET: "def add(a, b): ...\n"},
    )
    payload = Invocation(
        prompt="Create add(a, b)",
        files_create=[TARGET],
        options={"model": "anthropic/claude-sonnet-4"},
    )
    r = invoke(project, payload)
    assert (r.success, r.failure, r.message) == (True, None, "Done.")
    assert r.files_created == (TARGET,)
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cost_usd) == (200, 100, 0.002)
    assert r.usage.model == "anthropic/claude-sonnet-4"
    argv = opencode.work_calls[0]["argv"]
    assert argv[:5] == ["run", "--format", "json", "--pure", "--agent"]
    assert argv[argv.index("--model") + 1] == "anthropic/claude-sonnet-4"
    assert argv[-2] == "--" and f"- {TARGET}" in argv[-1]


def test_a_users_opencode_permission_cannot_widen_aims(project, fake_tool):
    # the fake prints the permission variables it was given, as opencode would read them
    env_dump = (
        "import json, os; print(json.dumps({'permission': os.environ.get('OPENCODE_PERMISSION'),"
        " 'config': os.environ.get('OPENCODE_CONFIG_CONTENT')}))"
    )
    wrapper = project.root.parent / "bin-dump"
    wrapper.mkdir()
    script = wrapper / "opencode"
    script.write_text(f"#!{sys.executable}\n{env_dump}\n")
    script.chmod(0o755)
    context = project.context(tool_id="opencode")
    environ = dict(context.environ)
    environ["PATH"] = f"{wrapper}:{environ['PATH']}"
    environ["OPENCODE_PERMISSION"] = json.dumps({"bash": "allow", "edit": "allow"})
    context = attrs.evolve(context, environ=environ)
    payload = Invocation(prompt="x", files_create=[TARGET])
    r = aim_opencode.invoke_capability("opencode", "code_generation", payload, context)
    seen = json.loads(r.output.splitlines()[0])
    permission = json.loads(seen["permission"])
    assert permission["bash"] == "deny" and permission["edit"] == {"*": "deny", TARGET: "allow"}
    assert json.loads(seen["config"])["permission"] == permission


def test_the_config_pins_permissions_to_the_files_in_scope(tmp_path):
    (tmp_path / "pkg").mkdir()
    payload = Invocation(prompt="x", files=["a.py", "pkg"], files_create=["new.py"])
    inherited = json.dumps(
        {"agent": {"build": {"permission": {"bash": "allow"}, "model": "m"}}, "theme": "x"}
    )
    config = json.loads(
        aim_opencode.config_content(
            payload, {"base_url": "http://127.0.0.1:9/v1", "model": "stub"}, tmp_path, inherited
        )
    )
    edit = {"*": "deny", "a.py": "allow", "pkg/*": "allow", "new.py": "allow"}
    assert config["permission"]["edit"] == edit and next(iter(config["permission"]["edit"])) == "*"
    assert config["permission"]["bash"] == config["permission"]["webfetch"] == "deny"
    assert config["permission"]["external_directory"] == "deny"
    assert config["agent"]["build"] == {"permission": config["permission"], "model": "m"}
    assert (config["theme"], config["autoupdate"], config["share"]) == ("x", False, "disabled")
    provider = config["provider"]["aim"]
    assert provider["options"] == {
        "baseURL": "http://127.0.0.1:9/v1",
        "apiKey": "{env:OPENAI_API_KEY}",
    }
    assert aim_opencode.model_of({"base_url": "u", "model": "stub"}) == "aim/stub"


def test_exit_0_with_a_denied_edit_is_a_tool_error(project, fake_tool):
    denied = tool_use(
        "/etc/passwd", "error", "The user rejected permission to use this specific tool call."
    )
    fake_tool("opencode", stdout=jsonl(denied, step_finish(), text("I could not."), step_finish()))
    r = invoke(project)
    assert (r.success, r.failure, r.exit_code) == (False, "tool_error", 0)
    assert (
        r.message
        == "opencode made no change to the files in scope; permissions rejected: edit /etc/passwd"
    )


def test_exit_0_with_failed_edits_is_work_failed(project, fake_tool):
    failed = tool_use(TARGET, "error", "oldString not found in content")
    fake_tool("opencode", stdout=jsonl(failed, step_finish()))
    r = invoke(project)
    assert (r.failure, r.message) == ("work_failed", f"opencode's edits failed: {TARGET}")


def test_exit_0_without_any_edit_is_a_tool_error(project, fake_tool):
    fake_tool("opencode", stdout=jsonl(text("Sure!"), step_finish()))
    assert invoke(project).failure == "tool_error"


@pytest.mark.parametrize(
    ("error", "failure", "wait"),
    [
        (api_error(401, "Incorrect API key provided: sk-stub."), "auth_required", None),
        (
            api_error(429, "Rate limit reached for stub-model.", {"retry-after": "3"}),
            "rate_limited",
            3.0,
        ),
        (
            api_error(500, "The server had an error while processing your request."),
            "tool_error",
            None,
        ),
        (
            event(
                "error",
                error={
                    "name": "ProviderAuthError",
                    "data": {"providerID": "anthropic", "message": "no key"},
                },
            ),
            "auth_required",
            None,
        ),
        (
            event(
                "error",
                error={
                    "name": "ProviderModelNotFoundError",
                    "data": {"providerID": "x", "modelID": "y"},
                },
            ),
            "unavailable",
            None,
        ),
    ],
    ids=["401", "429", "500", "provider-auth", "model-not-found"],
)
def test_error_events_are_classified(project, fake_tool, error, failure, wait):
    fake_tool("opencode", stdout=jsonl(error), exit_code=1)
    r = invoke(project)
    assert (r.success, r.failure, r.exit_code, r.retry_after_s) == (False, failure, 1, wait)


def test_an_error_event_with_exit_0_is_still_an_error(project, fake_tool):
    fake_tool("opencode", stdout=jsonl(step_finish(), api_error(401, "Incorrect API key provided")))
    r = invoke(project)
    assert (r.failure, r.exit_code) == ("auth_required", 0)


def test_a_startup_error_without_events(project, fake_tool):
    fake_tool("opencode", exit_code=1, stderr="Error: Model not found: aim/nothing\n")
    r = invoke(project)
    assert (r.failure, r.message) == ("unavailable", "Error: Model not found: aim/nothing")


def test_a_hang_is_a_timeout(project, fake_tool):
    fake_tool("opencode", sleep=30)
    assert invoke(project, timeout_s=1.0).failure == "timeout"


def test_a_long_prompt_goes_on_stdin(project, fake_tool):
    opencode = fake_tool(
        "opencode", stdout=jsonl(tool_use(TARGET), step_finish()), writes={TARGET: "x\n"}
    )
    r = invoke(project, Invocation(prompt="x " * 60000, files_create=[TARGET]))
    assert r.success and opencode.work_calls[0]["argv"][-1] == aim_opencode.STDIN_NOTE


def test_not_installed(project):
    assert invoke(project).failure == "not_installed"


def ctx(tmp_path, **env):
    (tmp_path / "repo").mkdir(exist_ok=True)
    environ = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path / "home"), **env}
    return AimContext(root=tmp_path / "repo", environ=environ)


def test_detection(tmp_path):
    make_fake_tool(tmp_path / "bin", "opencode", version_output="1.18.33")
    found = aim_opencode.detect_tool(ctx(tmp_path))
    assert (found.version, found.ready, found.failure) == ("1.18.33", False, "auth_required")
    assert found.reason == aim_opencode.LOGIN_HINT
    assert aim_opencode.detect_tool(ctx(tmp_path, ANTHROPIC_API_KEY="k")).ready is True
    auth = tmp_path / "home" / ".local" / "share" / "opencode" / "auth.json"
    auth.parent.mkdir(parents=True)
    auth.write_text(json.dumps({"openai": {"type": "api", "key": "k"}}))
    found = aim_opencode.detect_tool(ctx(tmp_path))
    assert found.ready is True and found.watch_paths == (str(auth),)
