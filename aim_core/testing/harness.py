"""``AimProject`` (what the ``aim_project`` fixture makes) and ``AimResult``.

``AimProject.run`` runs the real ``aim`` command in a subprocess
(``python -m aim_core``), exactly as a user or CI does: the plugins are found
through their entry points by a fresh interpreter, ``AIM_LOAD_PLUGINS`` and
every other setting come from the environment, and whatever ``aim run``
changes in its process (signal handlers, logging, run locks) stays there.
``AimProject.run_workstream`` is the in-process alternative: faster, debuggable,
and able to use plugin objects defined in the test (``aim_plugin_manager``).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aim_core.testing.environment import AimTestEnv

if TYPE_CHECKING:
    from aim_core.context import AimContext
    from aim_core.plugins import AimPlugins
    from aim_core.runner import RunResult

STREAMS = ("stdout", "stderr")


class AimResult:
    """The outcome of one ``aim`` command: exit code, output, and assertions on them.

    ``stdout`` holds what the command prints (tables, JSON, results); ``stderr``
    holds aim's log lines (``[INFO] AIM routing to primary tool: ...``) and errors.
    """

    def __init__(
        self, args: Sequence[str], exit_code: int, stdout: str, stderr: str, duration: float
    ):
        self.args = tuple(args)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration

    @property
    def output(self) -> str:
        """``stdout`` then ``stderr``, as a terminal shows them (for asserts and messages)."""
        return self._output()

    @property
    def outlines(self) -> list[str]:
        """``stdout`` as a list of lines."""
        return self.stdout.splitlines()

    @property
    def errlines(self) -> list[str]:
        """``stderr`` as a list of lines."""
        return self.stderr.splitlines()

    def json(self) -> Any:
        """``stdout`` parsed as JSON (``aim status --json``, ``aim plugins --json``)."""
        __tracebackhide__ = True
        try:
            return json.loads(self.stdout)
        except ValueError as e:
            raise AssertionError(f"{self.command} printed no JSON ({e})\n{self._output()}") from e

    @property
    def command(self) -> str:
        """The command as typed: ``aim run ws.json``."""
        return " ".join(["aim", *self.args])

    def _output(self) -> str:
        parts = []
        for name in STREAMS:
            text = getattr(self, name)
            parts.append(f"--- {name} ---\n{text.rstrip()}" if text.strip() else f"--- no {name}")
        return "\n".join(parts)

    def assert_exit(self, code: int) -> AimResult:
        """Fail unless the command exited with ``code``; returns the result."""
        __tracebackhide__ = True
        if self.exit_code != code:
            raise AssertionError(
                f"`{self.command}` exited {self.exit_code}, expected {code}\n{self._output()}"
            )
        return self

    def assert_success(self) -> AimResult:
        """Fail unless the command exited 0; returns the result."""
        __tracebackhide__ = True
        return self.assert_exit(0)

    def _lines(self, stream: str) -> list[str]:
        if stream not in (*STREAMS, "both"):
            raise ValueError(f"stream must be 'stdout', 'stderr' or 'both', not {stream!r}")
        if stream == "both":
            return [*self.outlines, *self.errlines]
        text: str = getattr(self, stream)
        return text.splitlines()

    def fnmatch_lines(
        self, patterns: Sequence[str], *, stream: str = "stdout", consecutive: bool = False
    ) -> None:
        """Fail unless the lines of ``stream`` match ``patterns`` (``fnmatch`` globs) in order,
        as pytester's ``fnmatch_lines``. ``stream``: ``"stdout"``, ``"stderr"`` (aim's
        log lines) or ``"both"`` (stdout's lines, then stderr's)."""
        __tracebackhide__ = True
        pytest.LineMatcher(self._lines(stream)).fnmatch_lines(
            list(patterns), consecutive=consecutive
        )

    def no_fnmatch_line(self, pattern: str, *, stream: str = "stdout") -> None:
        """Fail if any line of ``stream`` matches ``pattern``."""
        __tracebackhide__ = True
        pytest.LineMatcher(self._lines(stream)).no_fnmatch_line(pattern)

    def __repr__(self) -> str:
        return f"<AimResult `{self.command}` exit_code={self.exit_code}>"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it: mappings merge, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class AimProject:
    """A repository initialised by ``aim init`` in the test's ``tmp_path``.

    ``root`` is the repository root; ``registry`` the registry directory. The
    environment is isolated (HOME, ``AIM_*``, aim's cache) and the fake tools'
    bin directory is first on PATH.
    """

    def __init__(self, root: Path, env: AimTestEnv, load: list[str] | None):
        self.root = Path(root)
        self.env = env
        self.load = load
        self._workstreams = 0

    @property
    def registry(self) -> Path:
        """``aim/.AIM_ai-tools-registry`` of this repository."""
        from aim_core.paths import REGISTRY_RELPATH

        return self.root / REGISTRY_RELPATH

    # ----------------------------------------------------------------- files

    def path(self, relpath: str | os.PathLike[str]) -> Path:
        """``relpath`` inside the repository."""
        return self.root / relpath

    def write(self, relpath: str | os.PathLike[str], text: str) -> Path:
        """Write ``text`` to ``relpath`` (directories created); returns the full path."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def read(self, relpath: str | os.PathLike[str]) -> str:
        """The text of ``relpath``."""
        return (self.root / relpath).read_text(encoding="utf-8")

    def workstream(self, **fields: Any) -> Path:
        """Write ``workstreams/<id>.json`` with the guide's fields (``id`` defaults to
        ``ws-test-N``) and return its path, ready for ``run("run", path)``."""
        self._workstreams += 1
        data = {"id": f"ws-test-{self._workstreams}", **fields}
        path = self.root / "workstreams" / f"{data['id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path

    def audit_records(self) -> list[dict[str, Any]]:
        """Every record of the JSONL audit log (``AIM_audit/*/audit.jsonl``), oldest first."""
        from aim_core.paths import AUDIT_DIRNAME

        out: list[dict[str, Any]] = []
        for day in sorted((self.registry / AUDIT_DIRNAME).glob("*/audit.jsonl")):
            out += [json.loads(x) for x in day.read_text(encoding="utf-8").splitlines() if x]
        return out

    # ----------------------------------------------------------------- running aim

    def environ(self) -> dict[str, str]:
        """The environment ``aim`` runs with (see :meth:`AimTestEnv.environ`)."""
        return self.env.environ(self.load)

    def run(
        self,
        *args: str | os.PathLike[str],
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 120.0,
    ) -> AimResult:
        """Run ``aim ARGS...`` (``python -m aim_core``) in the repository; stdin is closed
        unless ``input`` is given. ``env`` adds variables for this run only."""
        full_env = self.environ()
        full_env.update(env or {})
        argv = [str(a) for a in args]
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "aim_core", *argv],
            cwd=cwd or self.root,
            env=full_env,
            capture_output=True,
            text=True,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            timeout=timeout,
        )
        return AimResult(argv, done.returncode, done.stdout, done.stderr, time.monotonic() - start)

    def open(self) -> Any:
        """The core's ``Project`` for this repository, with this test's environment."""
        from aim_core.project import Project

        return Project.open(self.root, environ=self.environ())

    def plugins(self) -> AimPlugins:
        """A plugin manager loaded as ``aim`` would load it in this project."""
        from aim_core.plugins import AimPlugins

        self.env.expose_to_this_process()
        return AimPlugins.load(environ=self.environ())

    def context(self, *, tool_id: str | None = None, timeout_s: float = 30.0) -> AimContext:
        """An ``AimContext`` for calling a hook directly, as the core would build it.

        Its ``changes()`` reports what changed anywhere in the project (outside
        ``.git`` and ``aim/``) since this call, as the core measures an attempt.
        """
        from aim_core.snapshot import tree_measurer

        context: AimContext = self.open().context(
            deadline=time.monotonic() + timeout_s,
            tool_id=tool_id,
            measure=tree_measurer(self.root, exclude=[".git", "aim"]),
        )
        return context

    def run_workstream(
        self, workstream: str | os.PathLike[str], *, plugins: AimPlugins | None = None
    ) -> RunResult:
        """Run one workstream in this process (``aim_core.run_workstream``), with
        ``plugins`` (e.g. ``aim_plugin_manager``) or the plugins ``aim`` would load."""
        from aim_core.runner import Runner
        from aim_core.workstream import load_workstream

        project = self.open()
        project.use_plugins(plugins if plugins is not None else self.plugins())
        path = Path(workstream)
        loaded = load_workstream(
            path if path.is_absolute() else self.root / path,
            root=project.root,
            known_capabilities=project.known_capabilities(),
        )
        runner = Runner(project)
        try:
            return runner.run(loaded.workstream, source=loaded.display)
        finally:
            runner.close()


def init_project(
    root: Path,
    env: AimTestEnv,
    *,
    files: Mapping[str, str] | None = None,
    rules: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    load: list[str] | None = None,
) -> AimProject:
    """``aim init`` in ``root`` (the real scaffold), then the overrides."""
    import yaml

    from aim_core.paths import CONFIG_RELPATH, RULES_RELPATH
    from aim_core.scaffold import init_project as scaffold_init

    root.mkdir(parents=True, exist_ok=True)
    scaffold_init(root)
    project = AimProject(root, env, load)
    if rules:
        rules_path = project.registry / RULES_RELPATH
        merged = deep_merge(json.loads(rules_path.read_text(encoding="utf-8")), rules)
        rules_path.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    if config:
        config_path = root / CONFIG_RELPATH
        current = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        merged = deep_merge(current, config)
        config_path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    for relpath, text in (files or {}).items():
        project.write(relpath, text)
    return project
