"""pytest plugin for aim plugin authors: fixtures only, nothing autouse.

Registered through the ``pytest11`` entry point of ``aim-core``, so every
project that installs aim-core gets these fixtures:

``aim_project(files=None, rules=None, config=None, *, plugins=None)``
    an initialised repository (``aim init``) in ``tmp_path``, with HOME and
    ``AIM_*`` isolated; ``.run("status")`` runs the real ``aim`` command.
``fake_tool(name, *, version="1.0.0", exit_code=0, ...)``
    a real executable on PATH that behaves as told and records its calls.
``aim_plugin_manager``
    a fresh plugin manager with the core's built-ins and no entry points.
``audit_capture``
    an ``audit_sink`` that collects every audit record of the test.

The conformance suite is :class:`aim_core.testing.AimPluginTests`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aim_core.testing.capture import CAPTURE_ENV, CAPTURE_PLUGIN, AuditCapture
from aim_core.testing.environment import AimTestEnv
from aim_core.testing.fake_tools import FakeTool, make_fake_tool
from aim_core.testing.harness import AimProject, init_project

if TYPE_CHECKING:
    from aim_core.plugins import AimPlugins


@pytest.fixture
def aim_test_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> AimTestEnv:
    """The isolated environment the other aim fixtures share: HOME and aim's cache in a
    temporary directory, every ``AIM_*`` variable removed, a bin directory for fake
    tools first on PATH. Requested by ``aim_project``, ``fake_tool`` and ``audit_capture``;
    request it yourself only to isolate a test that uses none of them."""
    return AimTestEnv(tmp_path_factory.mktemp("aim-env"), monkeypatch)


class FakeToolFactory:
    """``fake_tool(name, **behaviour)``: see :func:`aim_core.testing.make_fake_tool`."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.tools: dict[str, FakeTool] = {}

    def __call__(
        self,
        name: str,
        *,
        version: str = "1.0.0",
        exit_code: int = 0,
        stdout: str = "",
        stderr: str = "",
        writes: Mapping[str, str] | None = None,
        sleep: float = 0.0,
        needs_login: bool = False,
        **more: Any,
    ) -> FakeTool:
        """Write (or rewrite) the executable ``name``; returns it (``.calls``, ``.work_calls``,
        ``.configure(...)`` to change what the next call does)."""
        tool = make_fake_tool(
            self.bin_dir,
            name,
            version=version,
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            writes=writes,
            sleep=sleep,
            needs_login=needs_login,
            **more,
        )
        self.tools[name] = tool
        return tool

    def remove(self, name: str) -> None:
        """Take ``name`` off PATH again (as uninstalling it would)."""
        (self.bin_dir / name).unlink(missing_ok=True)
        self.tools.pop(name, None)


@pytest.fixture
def fake_tool(aim_test_env: AimTestEnv) -> FakeToolFactory:
    """Factory: ``fake_tool(name, *, version="1.0.0", exit_code=0, stdout="", stderr="",
    writes=None, sleep=0, needs_login=False)`` writes a real executable named ``name``
    into a bin directory first on PATH (the one ``aim_project``'s runs use) and returns
    a :class:`~aim_core.testing.FakeTool`.

    The program answers ``--version`` (``-V``, ``version``) with ``"NAME VERSION"``;
    any other call records its argv and cwd (``tool.calls``, ``tool.work_calls``),
    writes ``writes`` (path -> text, relative to its cwd), prints ``stdout`` and
    ``stderr``, sleeps ``sleep`` seconds and exits ``exit_code``; with
    ``needs_login=True`` it prints a "not logged in" error and exits 1 instead.
    ``runs=[{...}, {...}]`` gives one behaviour per call (the last repeats).
    """
    return FakeToolFactory(aim_test_env.bin_dir)


class AimProjectFactory:
    """``aim_project(files=None, rules=None, config=None, *, plugins=None)``."""

    def __init__(self, tmp_path: Path, env: AimTestEnv):
        self.tmp_path = tmp_path
        self.env = env
        self.made: list[AimProject] = []

    def __call__(
        self,
        files: Mapping[str, str] | None = None,
        rules: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        plugins: Sequence[Any] | None = None,
    ) -> AimProject:
        """A new repository, initialised as ``aim init`` does, then:

        :param files: files to write, path (relative to the root) -> text.
        :param rules: laid over the coordination rules ``aim init`` writes
            (mappings merge, anything else replaces), e.g.
            ``{"capabilities": {"linting": {"primary": "mytool", "fallback": []}}}``.
        :param config: laid over ``config/aim_config.yaml`` the same way, e.g.
            ``{"tools": {"mytool": {"args": ["--strict"]}}}``.
        :param plugins: the only plugins ``aim`` loads (``AIM_LOAD_PLUGINS``): entry-point
            or distribution names, or plugin modules (a module that is not installed
            gets an entry point for this test). None loads every installed plugin;
            ``[]`` only the core's built-ins.
        """
        load = None if plugins is None else self.env.resolve_plugins(plugins)
        name = "repo" if not self.made else f"repo-{len(self.made) + 1}"
        project = init_project(
            self.tmp_path / name, self.env, files=files, rules=rules, config=config, load=load
        )
        self.made.append(project)
        return project


@pytest.fixture
def aim_project(tmp_path: Path, aim_test_env: AimTestEnv) -> AimProjectFactory:
    """Factory: ``aim_project(files=None, rules=None, config=None, *, plugins=None)``
    returns an :class:`~aim_core.testing.AimProject`: a repository in ``tmp_path``
    initialised by the real ``aim init`` (config, coordination rules, example
    workstreams), HOME, aim's cache and ``AIM_*`` isolated, fake tools first on PATH.

    ``project.run("status", "--json")`` runs the real ``aim`` command (a subprocess)
    and returns an :class:`~aim_core.testing.AimResult`; ``project.workstream(...)``
    writes a workstream file; ``project.audit_records()`` reads the audit log;
    ``project.run_workstream(path, plugins=aim_plugin_manager)`` runs in-process.
    Pass ``plugins=[my_plugin_module]`` so the test loads only the plugin under test.
    """
    return AimProjectFactory(tmp_path, aim_test_env)


@pytest.fixture
def aim_plugin_manager() -> AimPlugins:
    """A fresh :class:`aim_core.plugins.AimPlugins`: the core's essential plugins and no
    entry points. ``aim_plugin_manager.register(plugin, "name")`` adds a plugin (a module
    or an object with ``@hookimpl`` methods) for this test and returns its
    ``PluginInfo`` (``.status`` is ``"broken"`` with ``.error`` when its hooks don't
    match the specs). Give it to ``project.run_workstream(..., plugins=...)``."""
    from aim_core.plugins import AimPlugins

    return AimPlugins.load(entry_points=False)


@pytest.fixture
def audit_capture(aim_test_env: AimTestEnv, aim_plugin_manager: AimPlugins) -> AuditCapture:
    """An ``audit_sink`` plugin registered for this test that collects every audit record
    (``audit_capture.records``: dicts in the JSON line's shape). It is registered with
    ``aim_plugin_manager`` (in-process runs) and installed for the ``aim`` subprocesses
    of ``aim_project(...).run(...)``, also when ``plugins=[...]`` names the only plugins
    to load."""
    capture = AuditCapture(aim_test_env.base / "audit-capture.jsonl")
    aim_plugin_manager.register(capture, CAPTURE_PLUGIN)
    aim_test_env.add_entry_point(
        CAPTURE_PLUGIN, "aim_core.testing.capture", distribution=CAPTURE_PLUGIN
    )
    aim_test_env.always_load.append(CAPTURE_PLUGIN)
    aim_test_env.monkeypatch.setenv(CAPTURE_ENV, str(capture.path))
    return capture
