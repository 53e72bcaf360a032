"""``AimContext``: what a hook implementation gets to work with."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from aim_core import process
from aim_core.models import FileChanges, ProcessResult

if TYPE_CHECKING:
    from aim_core.config import Settings


@frozen(kw_only=True)
class AimContext:
    """The repository, settings and process runner handed to every hook.

    ``root`` is the repository root (every workstream path is relative to it),
    ``options`` the calling tool's section of the config (``tools: {aider: ...}``),
    ``deadline`` the ``time.monotonic()`` value by which the current call must
    end, ``security`` the coordination rules' security section. Plugins start
    processes only through :meth:`run`, never with ``subprocess`` themselves:
    that is how aim bounds them in time, kills their whole tree, caps their
    output and keeps unrelated secrets from them.
    """

    root: Path
    settings: Settings | None = None
    options: Mapping[str, Any] = field(factory=dict)
    deadline: float | None = None
    tool_id: str | None = None
    env_passthrough: tuple[str, ...] = ()
    security: Mapping[str, Any] = field(factory=dict)
    environ: Mapping[str, str] | None = None
    on_process: Callable[[Sequence[str], ProcessResult], None] | None = None
    on_start: Callable[[int], None] | None = None
    measure: Callable[[], FileChanges] | None = None
    process_token: str | None = None
    env: Mapping[str, str] = field(factory=dict)
    """Variables the core sets for every process of this call, over the plugin's own
    (a ``verify`` check's bytecode cache, outside the repository)."""

    def changes(self) -> FileChanges:
        """What changed in the work tree since the core started this attempt.

        Measured by the core from real contents (the files in scope and those
        to create); a plugin calls it after its tool ran instead of hashing
        files itself. Outside an attempt (a hook called directly, without the
        core), every call returns no changes.
        """
        if self.measure is None:
            return FileChanges()
        return self.measure()

    def remaining(self) -> float | None:
        """Seconds left before ``deadline`` (never negative), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def getenv(self, name: str, default: str | None = None) -> str | None:
        """Read the caller's environment (what ``aim`` was started with)."""
        env = os.environ if self.environ is None else self.environ
        return env.get(name, default)

    def which(self, name: str) -> str | None:
        """The full path of the program ``name`` on the caller's PATH, or None."""
        return shutil.which(name, path=self.getenv("PATH", os.defpath))

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> ProcessResult:
        """Run a program through aim's process runner.

        :param argv: the program and its arguments (no shell).
        :param timeout_s: a time limit; it never reaches past ``deadline``.
        :param cwd: working directory; default the repository root.
        :param env: variables added to the tool's environment, which otherwise
            holds only a base set (PATH, HOME, locale, temp dirs, proxies) and
            the variables its detection named in ``env_passthrough``.
        :param stdin: text given on standard input; by default stdin is closed.
        :returns: exit code, capped stdout and stderr, duration, ``timed_out``.
            A program that does not exist gives exit code 127 and a message in
            ``stderr``, as a shell would.
        """
        limit = self.remaining()
        if timeout_s is not None:
            limit = timeout_s if limit is None else min(limit, timeout_s)
        source = os.environ if self.environ is None else self.environ
        extra = {**(env or {}), **self.env} if self.env else env
        full_env = process.build_env(self.env_passthrough, extra, source=source)
        try:
            result = process.run_process(
                argv,
                timeout_s=limit,
                cwd=cwd if cwd is not None else self.root,
                env=full_env,
                stdin=stdin,
                on_start=self.on_start,
                token=self.process_token,
            )
        except (FileNotFoundError, PermissionError) as e:
            result = ProcessResult(
                exit_code=127 if isinstance(e, FileNotFoundError) else 126,
                stdout="",
                stderr=f"{argv[0]}: {e.strerror}",
                duration_sec=0.0,
            )
        if self.on_process is not None:
            self.on_process(argv, result)
        return result
