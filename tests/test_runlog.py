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
    "name,secret",
    [
        ("OPENAI_API_KEY", True),
        ("GITHUB_TOKEN", True),
        ("HF_TOKEN_SECRET", True),
        ("DB_PASSWORD", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("HTTP_AUTHORIZATION", True),
        ("AUTH", True),
        ("OPENAI_MAX_TOKENS", False),
        ("GIT_AUTHOR_NAME", False),
        ("GIT_AUTHOR_EMAIL", False),
        ("PATH", False),
    ],
)
def test_secret_variables_are_known_by_name(name, secret):
    assert (RunLog.secrets_from_env({name: "Jane Doe value"}) != []) is secret
