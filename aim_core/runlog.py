"""The run log, ``AIM_runs/<run_id>.log``: commands, timings and the tools' output,
capped, every line with credentials masked (:meth:`RunLog.write`). Tool output goes
here, never into the audit."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from aim_core.models import ProcessResult

# words in a name that say its value is a secret: AUTHOR is none (GIT_AUTHOR_NAME,
# --author) but AUTHORIZATION and AUTHORISATION are; PASS alone, PASSWORD, PASSWD and
# PASSPHRASE are, PASSTHROUGH is not
_SECRET_WORD = (
    r"(KEY|TOKEN|SECRET|PASS(?:W|PHRASE|(?![A-Z]))|CREDENTIAL|BEARER|AUTH(?!OR(?!I[SZ])))"
)
SECRET_NAME = re.compile(_SECRET_WORD, re.IGNORECASE)
SECRET_FLAG = re.compile(r"^--?[\w.-]*" + _SECRET_WORD + r"[\w.-]*$", re.IGNORECASE)
_COUNT = re.compile(r"\d+(?:\.\d+)?[kKmM]?")


def is_count(name: str, value: str) -> bool:
    """A number under a name about tokens (``--map-tokens 0``, ``MAX_TOKENS=4096``): a
    count, shown; any other value under such a name is masked like a secret."""
    return "TOKENS" in name.upper() and _COUNT.fullmatch(value) is not None


MASK = "[REDACTED]"
LOG_CAP = 64 * 1024  # of each stream's output kept in the log, at each end


class RunLog:
    """Appends timestamped sections to one run's log file."""

    def __init__(self, path: Path, secrets: Iterable[str] = ()):
        self.path = path
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def secrets_from_env(cls, env: Mapping[str, str]) -> list[str]:
        """Values of variables whose names say they hold a secret."""
        return [v for k, v in env.items() if SECRET_NAME.search(k) and v and not is_count(k, v)]

    def mask_values(self, text: str) -> str:
        """Replace the environment's secret values in ``text``."""
        for s in self.secrets:
            if s in text:
                text = text.replace(s, MASK)
        return text

    def mask(self, text: str) -> str:
        """Replace the environment's secret values and every kind of credential in a
        text (long quoted hex strings are left: output is full of hashes)."""
        from aim_core import credentials

        return credentials.redact(self.mask_values(text), skip=("high-entropy-hex",))

    def mask_argv(self, argv: Sequence[str]) -> list[str]:
        """The command line with the values of secret-looking flags masked: the word
        after ``--api-key`` (unless it is another long option: ``--no-auth --yes``) or
        after ``=``; a count under a name about tokens is shown (:func:`is_count`)."""
        out: list[str] = []
        flag = None  # the secret-looking flag whose value is the next word
        for a in argv:
            if flag is not None and not a.startswith("--"):
                out.append(a if is_count(flag, a) else MASK)
                flag = None
                continue
            name, eq, value = a.partition("=")
            if eq and SECRET_FLAG.match(name):
                out.append(name + "=" + (value if is_count(name, value) else MASK))
                continue
            flag = a if SECRET_FLAG.match(a) else None
            out.append(self.mask_values(a))  # the prompt in it was checked before the run
        return out

    def command_line(self, argv: Sequence[str]) -> str:
        """``argv`` as a shell would take it, secret flags' values, the environment's
        secret values and every named kind of credential masked."""
        import shlex

        return self.mask(shlex.join(self.mask_argv(argv)))

    def write(self, text: str) -> None:
        """Append one line of aim's own (ids, states, timings, messages), with the
        environment's secret values and every named kind of credential masked (a
        workstream id or a failure line can hold one too). A line break or another
        control character in it (a file name a tool chose) is written escaped: it stays
        one line."""
        from aim_core.display import escape_controls

        self._append([escape_controls(self.mask(text))])

    def output(self, heading: str, text: str) -> None:
        """Append what a tool printed, its first and last 64 KiB, with credentials
        masked: under ``heading``, each line marked ``| `` (never taken for a line of
        aim's) and its control characters but tabs escaped."""
        from aim_core.display import escape_controls

        text = text.rstrip()
        if len(text) > 2 * LOG_CAP:
            dropped = len(text) - 2 * LOG_CAP
            note = f"[... {dropped} characters left out of the log ...]"
            text = f"{text[:LOG_CAP]}\n{note}\n{text[-LOG_CAP:]}"
        lines = self.mask(text).splitlines() or [""]
        self._append(
            [escape_controls(heading), *("| " + escape_controls(ln, "\t") for ln in lines)]
        )

    def _append(self, lines: list[str]) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self._lock, open(self.path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write("".join(f"{stamp} {line}\n" for line in lines))

    def process(self, argv: Sequence[str], result: ProcessResult) -> None:
        """Record one command, its exit and its (already capped) output."""
        end = "timed out" if result.timed_out else f"exit {result.exit_code}"
        self.write(f"$ {self.command_line(argv)}")
        self.write(f"  -> {end} in {result.duration_sec:.2f}s")
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if text.strip():
                self.output(f"  --- {name} ---", text)
