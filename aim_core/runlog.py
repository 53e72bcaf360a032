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

# names that say a value is a secret; not TOKENS (a count: MAX_TOKENS, --map-tokens) nor
# AUTHOR (GIT_AUTHOR_NAME, --author; AUTHORIZATION is one)
_SECRET_WORD = r"(KEY|TOKEN(?!S)|SECRET|PASSW|CREDENTIAL|AUTH(?!OR(?!IZ)))"
SECRET_NAME = re.compile(_SECRET_WORD, re.IGNORECASE)
SECRET_FLAG = re.compile(r"^--?[\w-]*" + _SECRET_WORD + r"[\w-]*$", re.IGNORECASE)
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
        return [v for k, v in env.items() if SECRET_NAME.search(k) and v]

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
        """The command line with the values of secret-looking flags masked."""
        out: list[str] = []
        hide_next = False
        for a in argv:
            if hide_next and not a.startswith("--"):
                out.append(MASK)
                hide_next = False
                continue
            if "=" in a and SECRET_FLAG.match(a.split("=", 1)[0]):
                out.append(a.split("=", 1)[0] + "=" + MASK)
                continue
            # the value of a flag such as --api-key is the next word, unless that is
            # another long option (--no-auth --yes: --yes is no secret)
            hide_next = bool(SECRET_FLAG.match(a))
            out.append(self.mask_values(a))  # the prompt in it was checked before the run
        return out

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
        import shlex

        end = "timed out" if result.timed_out else f"exit {result.exit_code}"
        self.write(f"$ {shlex.join(self.mask_argv(argv))}")
        self.write(f"  -> {end} in {result.duration_sec:.2f}s")
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if text.strip():
                self.output(f"  --- {name} ---", text)
