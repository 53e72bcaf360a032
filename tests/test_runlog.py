"""What a run's log shows of a tool's command line and environment: secrets masked,
counts and names that only look like them kept."""

from __future__ import annotations

import pytest

from aim_core.runlog import MASK, RunLog


@pytest.fixture
def runlog(tmp_path):
    return RunLog(tmp_path / "run.log", secrets=["s3cr3t-value-from-env"])


@pytest.mark.parametrize(
    "argv,shown",
    [
        (["aider", "--api-key", "sk-1"], ["aider", "--api-key", MASK]),
        (["aider", "--api-key=sk-1"], ["aider", f"--api-key={MASK}"]),
        (["x", "--token", "1234"], ["x", "--token", MASK]),
        (["x", "--auth-token", "abc"], ["x", "--auth-token", MASK]),
        (["x", "--password", "hunter2"], ["x", "--password", MASK]),
        (["x", "--client-secret", "v"], ["x", "--client-secret", MASK]),
        (["x", "--authorization", "Bearer v"], ["x", "--authorization", MASK]),
        (["x", "-key", "v"], ["x", "-key", MASK]),
        (
            ["x", "--authorisation", "v", "--api.key", "v"],
            ["x", "--authorisation", MASK, "--api.key", MASK],
        ),
        (
            ["x", "--passphrase", "v", "--bearer", "v", "--pass", "v"],
            ["x", "--passphrase", MASK, "--bearer", MASK, "--pass", MASK],
        ),
        # a name about tokens: a count is shown, anything else masked
        (
            ["x", "--access-tokens", "abc", "--tokens=abc"],
            ["x", "--access-tokens", MASK, f"--tokens={MASK}"],
        ),
        (["x", "--max-tokens=8k", "--tokens", "12.5"], None),
        (["x", "--passthrough", "a.py"], None),
        # counts and names that hold the words but no secret
        (["aider", "--map-tokens", "0"], ["aider", "--map-tokens", "0"]),
        (["x", "--max-tokens", "4096", "--max-output-tokens=8"], None),
        (["git", "commit", "--author", "Jane Doe <j@x>"], None),
        # a flag without a value: the next option is shown
        (["x", "--no-auth", "--yes", "file.py"], None),
        (["x", "--auth", "--", "file.py"], None),
        # a secret of the environment, wherever it is
        (["x", "--message=use s3cr3t-value-from-env"], ["x", f"--message=use {MASK}"]),
    ],
)
def test_the_command_line_masks_secret_flags_only(runlog, argv, shown):
    assert runlog.mask_argv(argv) == (argv if shown is None else shown)


@pytest.mark.parametrize(
    "name,value,secret",
    [
        ("OPENAI_API_KEY", "sk-value", True),
        ("GITHUB_TOKEN", "ghp-value", True),
        ("HF_TOKEN_SECRET", "value", True),
        ("DB_PASSWORD", "value", True),
        ("DB_PASS", "value", True),
        ("SSH_PASSPHRASE", "value", True),
        ("API_BEARER", "value", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/path", True),
        ("HTTP_AUTHORIZATION", "Bearer x", True),
        ("X_AUTHORISATION", "Bearer x", True),
        ("AUTH", "value", True),
        ("SVC_TOKENS", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", True),
        ("OPENAI_MAX_TOKENS", "4096", False),
        ("GIT_AUTHOR_NAME", "Jane Doe", False),
        ("GIT_AUTHOR_EMAIL", "jane@example.com", False),
        ("PASSTHROUGH_ARGS", "--yes", False),
        ("PATH", "/usr/bin", False),
    ],
)
def test_secret_variables_are_known_by_name(name, value, secret):
    assert (RunLog.secrets_from_env({name: value}) != []) is secret


def test_the_command_line_masks_credentials_in_any_word(runlog):
    """A key passed as a value of a flag whose name says nothing (``--set-env``) is
    found by its shape, as in any line of the log (the -v debug line shows this)."""
    key = "sk-ant-api03-" + "Xq7vR2mP9kL4sT8wZ1nB6cY3hJ5dF0gA" * 2 + "-AbCdEfGh12AA"
    line = runlog.command_line(["aider", "--set-env", f"ANTHROPIC_API_KEY={key}", "a b.py"])
    assert key not in line and "[REDACTED]" in line
    assert line.startswith("aider --set-env ") and line.endswith(" 'a b.py'")
