"""aider invocation against a fake ``aider`` that acts like the real one at the process
boundary: it reads its flags, writes its history files where told (into the current
directory when not told, as aider does), edits files and prints aider's own output
(texts captured from aider 0.86.2 against local stub servers)."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

import aim_aider
from aim_core import Invocation, Usage
from aim_core.context import AimContext
from aim_core.workspace import tree_measurer

FAKE_AIDER = r"""#!PYTHON
import json, os, re, sys, time
here = os.path.dirname(os.path.abspath(__file__))
cfg = json.load(open(os.path.join(here, "aider.json")))
args = sys.argv[1:]
def value(flag, default=None):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default
message = value("--message")
if value("--message-file"):
    message = open(value("--message-file")).read()
files = args[args.index("--") + 1:] if "--" in args else []
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps({"argv": args, "cwd": os.getcwd(), "env": dict(os.environ),
                        "message": message, "files": files}) + "\n")
# aider writes these into the current directory unless told otherwise
for flag, default in (("--chat-history-file", ".aider.chat.history.md"),
                      ("--input-history-file", ".aider.input.history")):
    with open(value(flag, default), "a") as f:
        f.write("# history\n" + (message or "") + "\n")
if value("--llm-history-file"):
    open(value("--llm-history-file"), "a").write("LLM\n")
# aider 0.86.2 offers to add each URL of the message to the chat; --yes-always says yes,
# and yes again to installing Playwright to scrape it (pip, then a browser download)
def flag(name, default):  # argparse's BooleanOptionalAction: the last one wins
    found = default
    for a in (args[: args.index("--")] if "--" in args else args):
        if a in ("--" + name, "--no-" + name):
            found = a == "--" + name
    return found
urls = re.findall(r"https?://[^\s]+", message or "")
if urls and "--yes-always" in args and flag("detect-urls", True):
    with open(os.path.join(here, "side_effects.txt"), "a") as f:
        if "--disable-playwright" not in args:
            f.write("pip install playwright; playwright install --with-deps chromium\n")
        f.write(f"GET {urls[0]}\n")
    print(f"{urls[0]}\nAdd URL to the chat? (Y)es/(N)o/(D)on't ask again [Yes]: y")
for path, text in cfg.get("writes", {}).items():
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    open(path, "w").write(text)
sys.stdout.write(cfg.get("stdout", ""))
sys.stderr.write(cfg.get("stderr", ""))
sys.stdout.flush()
time.sleep(cfg.get("sleep", 0))
sys.exit(cfg.get("exit_code", 0))
"""

BANNER = """Aider v0.86.2
Main model: openai/gpt-4o with diff edit format
Weak model: gpt-4o-mini
Git repo: none
Repo-map: disabled
Added hello.py to the chat.

"""
EDIT = (
    BANNER
    + """hello.py
```python
<<<<<<< SEARCH
print("hello")
=======
print("hello world")
>>>>>>> REPLACE
```

Tokens: 2.0k sent, 29 received. Cost: $0.0052 message, $0.0052 session.
Applied edit to hello.py
"""
)
AUTH_401 = (
    BANNER
    + """litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect API key provided: sk-fake-7d3f91. You can find your API key at https://platform.openai.com/account/api-keys.
The API provider is not able to authenticate you. Check your API key.

https://platform.openai.com/account/api-keys

"""
)
RATE_429 = BANNER + (
    """litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for gpt-4o. Please try again in 1s.
The API provider has rate limited you. Try again later or check your quotas.
Retrying in 0.2 seconds...
"""
    * 2
)
NO_KEY = """
No LLM model was specified and no API keys were provided.
OpenRouter provides free and paid access to many LLMs.

Please open this URL in your browser to connect Aider with OpenRouter:

https://openrouter.ai/auth?callback_url=http://localhost:8484/callback/aider&code_challenge=abc&code_challenge_method=S256

Waiting up to 5 minutes for you to finish in the browser...
Use Control-C to interrupt.
"""
NO_MATCH = (
    BANNER
    + """Tokens: 2.0k sent, 24 received. Cost: $0.0051 message, $0.0051 session.
The LLM did not conform to the edit format.
https://aider.chat/docs/troubleshooting/edit-errors.html

# 1 SEARCH/REPLACE block failed to match!
Only 3 reflections allowed, stopping.
"""
)


class FakeAider:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        bin_dir.mkdir(parents=True, exist_ok=True)
        path = bin_dir / "aider"
        path.write_text(FAKE_AIDER.replace("PYTHON", sys.executable, 1))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def configure(self, **cfg):
        (self.bin_dir / "aider.json").write_text(json.dumps(cfg))
        return self

    @property
    def side_effects(self):
        path = self.bin_dir / "side_effects.txt"
        return path.read_text().splitlines() if path.exists() else []

    @property
    def calls(self):
        log = self.bin_dir / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "hello.py").write_text('print("hello")\n')
    (root / "other.py").write_text("A = 1\n")
    return root


@pytest.fixture
def aider(tmp_path):
    return FakeAider(tmp_path / "bin").configure()


def ctx(tmp_path, root, *, seconds=30.0, options=None, **env):
    """A context like the core's: it measures what changed in the repository since."""
    environ = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", **env}
    return AimContext(
        root=root,
        environ=environ,
        options=options or {},
        deadline=time.monotonic() + seconds,
        env_passthrough=aim_aider.ENV_PASSTHROUGH,
        measure=tree_measurer(root),
    )


def invoke(tmp_path, root, payload=None, **kwargs):
    payload = payload or Invocation(prompt="Say hello world", files=["hello.py"])
    return aim_aider.invoke_capability(
        "aider", "code_generation", payload, ctx(tmp_path, root, **kwargs)
    )


def test_success_runs_the_one_shot_command_and_leaves_no_history_in_the_repo(tmp_path, repo, aider):
    aider.configure(stdout=EDIT, writes={"hello.py": 'print("hello world")\n'})
    payload = Invocation(
        prompt="-Say hello world",  # a prompt that looks like an option stays the message
        files=["hello.py"],
        files_create=["hello.py", "pkg/new.py"],
        options={
            "model": "openai/gpt-4o",
            "base_url": "http://127.0.0.1:9/v1",
            "args": ["--edit-format", "diff"],
        },
    )
    r = invoke(tmp_path, repo, payload, OPENAI_API_KEY="sk-test")
    assert r.success and r.failure is None and r.exit_code == 0
    assert r.files_modified == ("hello.py",) and r.files_created == ()
    assert "Applied edit to hello.py" in r.output

    (call,) = aider.calls
    argv = call["argv"]
    assert call["message"] == "-Say hello world" and call["cwd"] == str(repo)
    for flag in (
        "--yes-always",
        "--no-auto-commits",
        "--no-dirty-commits",
        "--no-gitignore",
        "--no-check-update",
        "--no-analytics",
        "--no-show-model-warnings",
        "--no-show-release-notes",
        "--no-pretty",
        "--no-fancy-input",
        "--no-restore-chat-history",
        "--no-git",
        "--no-suggest-shell-commands",
        "--no-detect-urls",
        "--disable-playwright",
        "--no-auto-lint",
        "--no-auto-test",
        "--no-watch-files",
        "--no-gui",
        "--no-copy-paste",
        "--no-notifications",
        "--no-dry-run",
    ):
        assert flag in argv
    assert argv[argv.index("--map-tokens") + 1] == "0"
    assert argv[argv.index("--cache-keepalive-pings") + 1] == "0"
    assert argv[argv.index("--model") + 1] == "openai/gpt-4o"
    assert argv[argv.index("--openai-api-base") + 1] == "http://127.0.0.1:9/v1"
    # the configured args come after aim's flags, the files last (files_create not repeated)
    assert argv.index("--edit-format") > argv.index("--no-git")
    assert argv[argv.index("--") :] == ["--", "hello.py", "pkg/new.py"]
    # history files outside the repository, and removed afterwards
    history = [
        argv[argv.index(f) + 1]
        for f in (
            "--chat-history-file",
            "--input-history-file",
            "--llm-history-file",
            "--analytics-log",
        )
    ]
    for h in history:
        assert not Path(h).is_relative_to(repo)
        assert not Path(h).exists() and not Path(h).parent.exists()
    assert sorted(p.name for p in repo.iterdir()) == ["hello.py", "other.py"]
    env = call["env"]
    assert env["TERM"] == "dumb" and env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert int(env["COLUMNS"]) >= 1000  # no wrapped "Applied edit to <long path>"
    assert env["OPENAI_API_KEY"] == "sk-test"


def test_a_created_file_counts(tmp_path, repo, aider):
    aider.configure(
        stdout=BANNER + "Applied edit to pkg/new.py\n", writes={"pkg/new.py": "B = 1\n"}
    )
    payload = Invocation(prompt="Create it", files=["hello.py"], files_create=["pkg/new.py"])
    r = invoke(tmp_path, repo, payload)
    assert r.success and r.files_created == ("pkg/new.py",)


def test_edited_names_are_read_relative_to_aiders_own_root(tmp_path, repo, aider):
    # Without git, aider names files relative to the common directory of those it was
    # given: "Applied edit to mod.py" for pkg/mod.py (seen with aider 0.86.2).
    (repo / "pkg").mkdir()
    (repo / "pkg" / "mod.py").write_text("X = 1\n")
    aider.configure(stdout=BANNER + "Applied edit to mod.py\n", writes={"pkg/mod.py": "X = 2\n"})
    r = invoke(tmp_path, repo, Invocation(prompt="x", files=["pkg/mod.py"]))
    assert r.success and r.files_modified == ("pkg/mod.py",)


def test_edit_reported_but_file_unchanged_is_a_tool_error(tmp_path, repo, aider):
    aider.configure(stdout=EDIT)  # says "Applied edit to hello.py", writes nothing
    r = invoke(tmp_path, repo)
    assert not r.success and r.failure == "tool_error"
    assert r.message == "aider made no change to the files in scope"


def test_file_changed_without_an_applied_edit_is_a_tool_error(tmp_path, repo, aider):
    aider.configure(stdout=BANNER + "Sure.\n", writes={"hello.py": ""})
    r = invoke(tmp_path, repo)
    assert not r.success and r.failure == "tool_error"


def test_no_edit_at_all_is_a_tool_error_with_exit_code_zero(tmp_path, repo, aider):
    aider.configure(stdout=BANNER + "The file already prints hello.\n")
    r = invoke(tmp_path, repo)
    assert (r.success, r.failure, r.exit_code) == (False, "tool_error", 0)
    assert r.message == "aider made no change to the files in scope"


def test_failed_edit_format_says_so(tmp_path, repo, aider):
    aider.configure(stdout=NO_MATCH)
    r = invoke(tmp_path, repo)
    assert r.failure == "tool_error"
    assert r.message == "The LLM did not conform to the edit format."


def test_edit_to_a_file_outside_the_targets_is_not_success(tmp_path, repo, aider):
    aider.configure(stdout=BANNER + "Applied edit to other.py\n", writes={"other.py": "A = 2\n"})
    r = invoke(tmp_path, repo)
    assert not r.success and r.failure == "tool_error"
    assert "other.py" in r.message


def test_authentication_error_is_auth_required_and_the_key_stays_out_of_the_message(
    tmp_path, repo, aider
):
    aider.configure(stdout=AUTH_401)  # aider exits 0 after it
    r = invoke(tmp_path, repo)
    assert (r.success, r.failure, r.exit_code) == (False, "auth_required", 0)
    assert r.message == (
        "AuthenticationError: The API provider is not able to authenticate you. Check your API key."
    )
    assert "sk-fake" not in r.message and "\n" not in r.message


def test_no_model_and_no_key_is_auth_required_even_when_stopped_by_the_deadline(
    tmp_path, repo, aider
):
    aider.configure(stdout=NO_KEY, sleep=30)  # aider waits 5 minutes for a browser login
    start = time.monotonic()
    r = invoke(tmp_path, repo, seconds=1.0)
    assert time.monotonic() - start < 10
    assert r.failure == "auth_required"
    assert r.message == "No LLM model was specified and no API keys were provided."


def test_rate_limit_passes_on_the_retry_advice(tmp_path, repo, aider):
    aider.configure(stdout=RATE_429)
    r = invoke(tmp_path, repo)
    assert r.failure == "rate_limited" and r.retry_after_s == 1.0
    assert r.message.startswith("RateLimitError: The API provider has rate limited you.")


def test_rate_limit_still_backing_off_at_the_deadline_is_rate_limited(tmp_path, repo, aider):
    aider.configure(stdout=RATE_429, sleep=30)
    r = invoke(tmp_path, repo, seconds=1.0)
    assert r.failure == "rate_limited" and r.retry_after_s == 1.0


def test_deadline_is_a_timeout(tmp_path, repo, aider):
    aider.configure(stdout=BANNER, sleep=30)
    start = time.monotonic()
    r = invoke(tmp_path, repo, seconds=0.5)
    assert time.monotonic() - start < 10
    assert (r.failure, r.exit_code) == ("timeout", None)
    assert r.message.startswith("aider did not finish in time")


@pytest.mark.parametrize(
    ("line", "failure"),
    [
        (
            "litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error.",
            "tool_error",
        ),
        ("litellm.InternalServerError: InternalServerError: OpenAIException - boom", "tool_error"),
        (
            "litellm.NotFoundError: NotFoundError: OpenAIException - The model `gpt-9` does not exist",
            "unavailable",
        ),
    ],
)
def test_api_errors(tmp_path, repo, aider, line, failure):
    aider.configure(stdout=BANNER + line + "\n")
    r = invoke(tmp_path, repo)
    assert r.failure == failure and r.message.startswith(
        line.split(":")[0].removeprefix("litellm.")
    )


def test_rejected_arguments_are_unavailable(tmp_path, repo, aider):
    aider.configure(
        stderr="usage: aider [-h] [--model MODEL]\naider: error: unrecognized arguments: --bogus\n",
        exit_code=2,
    )
    r = invoke(tmp_path, repo, options={"args": ["--bogus"]})
    assert r.failure == "unavailable"
    assert r.message == "aider: error: unrecognized arguments: --bogus"


def test_a_long_prompt_goes_through_a_message_file(tmp_path, repo, aider):
    aider.configure(stdout=EDIT, writes={"hello.py": "x\n"})
    prompt = "change it " * 20000
    r = invoke(tmp_path, repo, Invocation(prompt=prompt, files=["hello.py"]))
    assert r.success
    (call,) = aider.calls
    assert call["message"] == prompt and "--message-file" in call["argv"]
    assert not Path(call["argv"][call["argv"].index("--message-file") + 1]).exists()


def test_not_installed(tmp_path, repo):
    r = invoke(tmp_path, repo)
    assert (r.success, r.failure) == (False, "not_installed")


def test_other_tool_ids_are_not_answered(tmp_path, repo, aider):
    payload = Invocation(prompt="x", files=["hello.py"])
    context = ctx(tmp_path, repo)
    assert aim_aider.invoke_capability("claude-cli", "code_generation", payload, context) is None
    assert aim_aider.validate_payload("ruff", "linting", payload, context) is None
    assert aider.calls == []


def test_validate_payload(tmp_path, repo):
    (repo / "src").mkdir()
    context = ctx(tmp_path, repo)
    ok = Invocation(prompt="x", files=["hello.py"])
    assert aim_aider.validate_payload("aider", "code_generation", ok, context) == []
    nothing = aim_aider.validate_payload(
        "aider", "code_generation", Invocation(prompt="x"), context
    )
    assert [p.field for p in nothing] == ["capability_payload.files"]
    folder = Invocation(prompt="x", files=["src"], files_scope=["src"])
    (problem,) = aim_aider.validate_payload("aider", "refactoring", folder, context)
    assert problem.field == "files_scope[0]" and "directory" in problem.message
    (problem,) = aim_aider.validate_payload("aider", "linting", ok, context)
    assert problem.field == "capability"


def test_a_url_in_the_prompt_is_not_fetched_and_nothing_is_installed(tmp_path, repo, aider):
    aider.configure(stdout=EDIT, writes={"hello.py": 'print("hello world")\n'})
    prompt = "Print the greeting documented at https://example.com/greeting.html"
    r = invoke(tmp_path, repo, Invocation(prompt=prompt, files=["hello.py"]))
    assert r.success
    assert aider.side_effects == []
    # the fake does what aider does without the flags: the test can fail
    aider.configure(stdout=EDIT, writes={"hello.py": 'print("hello world")\n'})
    options = {"args": ["--detect-urls"]}  # the configured args come last and win
    invoke(tmp_path, repo, Invocation(prompt=prompt, files=["hello.py"]), options=options)
    assert aider.side_effects == ["GET https://example.com/greeting.html"]


def test_usage_is_read_from_aiders_token_and_cost_line(tmp_path, repo, aider):
    aider.configure(stdout=EDIT, writes={"hello.py": 'print("hello world")\n'})
    r = invoke(tmp_path, repo)
    assert r.success
    assert r.usage == Usage(
        input_tokens=2000, output_tokens=29, cost_usd=0.0052, model="openai/gpt-4o"
    )


# Three model calls in one aider run (reflections after failed edits), the last with
# prompt caching: aider then prints the cost on a line of its own. Counts over 10k are
# rounded to thousands ("12k"), and "Cost: ... session" is aider's running total.
REFLECTIONS = """Aider v0.86.2
Model: anthropic/claude-sonnet-4-5 with diff edit format, prompt cache, infinite output
Git repo: none
Repo-map: disabled
Added hello.py to the chat.

Tokens: 2.3k sent, 120 received. Cost: $0.0087 message, $0.0087 session.
The LLM did not conform to the edit format.
Tokens: 3.1k sent, 95 received. Cost: $0.01 message, $0.02 session.
Tokens: 12k sent, 1.2k cache write, 3.4k cache hit, 85 received.
Cost: $0.04 message, $0.06 session.
Applied edit to hello.py
"""


@pytest.mark.parametrize(
    ("stdout", "usage"),
    [
        (
            REFLECTIONS,
            Usage(
                input_tokens=2300 + 3100 + 12000,
                output_tokens=120 + 95 + 85,
                cost_usd=0.06,
                model="anthropic/claude-sonnet-4-5",
            ),
        ),
        # a model without a price: aider prints the tokens only
        (
            BANNER + "Tokens: 850 sent, 12 received.\nApplied edit to hello.py\n",
            Usage(input_tokens=850, output_tokens=12, cost_usd=None, model="openai/gpt-4o"),
        ),
        # an error before any model answered: nothing reported
        (AUTH_401, None),
        # lines that only look like the report (a prompt echoed, garbage): not read,
        # never a crash of the plugin
        (
            BANNER + "Tokens: 1..5k sent, 2 received. Cost: $1..2 message, $1..2 session.\n"
            "Applied edit to hello.py\n",
            None,
        ),
        (BANNER + "Tokens: " + "9" * 400 + "k sent, 2 received.\nApplied edit to hello.py\n", None),
    ],
    ids=["reflections-and-cache", "no-price", "no-call", "malformed", "overflow"],
)
def test_usage_shapes(tmp_path, repo, aider, stdout, usage):
    aider.configure(stdout=stdout, writes={"hello.py": 'print("hello world")\n'})
    assert invoke(tmp_path, repo).usage == usage


def test_changes_outside_the_files_in_scope_are_not_counted(tmp_path, repo, aider):
    aider.configure(
        stdout=EDIT, writes={"hello.py": 'print("hello world")\n', "other.py": "A = 2\n"}
    )
    r = invoke(tmp_path, repo)
    assert r.success and r.files_modified == ("hello.py",)


def test_bad_args_in_the_config_are_invalid_payload_and_aider_is_not_run(tmp_path, repo, aider):
    r = invoke(tmp_path, repo, options={"args": {"model": "x"}})
    assert (r.failure, r.message) == (
        "invalid_payload",
        "config tools.aider.args must be a list of arguments",
    )
    assert aider.calls == []
