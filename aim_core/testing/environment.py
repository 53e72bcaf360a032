"""The isolated world of one test: HOME, aim's cache, a bin directory first on PATH, and a
site directory whose entry points the ``aim`` subprocesses of the test see.

Isolation works like pytester's: every ``AIM_*`` variable of the developer's
environment is removed and HOME points into a temporary directory, through
``monkeypatch``, so it is undone after the test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ENTRY_POINT_GROUP = "aim"


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def installed_plugins() -> dict[str, metadata.EntryPoint]:
    """The ``aim`` entry points installed in this interpreter, by entry-point name."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def import_root(module: ModuleType) -> Path:
    """The directory that makes ``module`` importable by its name (what goes on PYTHONPATH)."""
    file = getattr(module, "__file__", None)
    if not file:
        raise TypeError(f"module {module.__name__!r} has no file; aim cannot import it")
    path = Path(file).resolve()
    if path.name == "__init__.py":
        path = path.parent
    for _ in module.__name__.split("."):
        path = path.parent
    return path


class AimTestEnv:
    """HOME, cache, bin and site directories of one test, and the variables set for it.

    ``bin_dir`` is first on PATH (fake tools go there); ``site`` holds
    ``*.dist-info`` directories whose ``aim`` entry points the ``aim``
    subprocesses of this test discover (it is put on their PYTHONPATH).
    """

    def __init__(self, base: Path, monkeypatch: pytest.MonkeyPatch):
        self.base = Path(base)
        self.monkeypatch = monkeypatch
        self.home = self.base / "home"
        self.bin_dir = self.base / "bin"
        self.site = self.base / "site"
        for d in (self.home, self.bin_dir, self.site):
            d.mkdir(parents=True, exist_ok=True)
        self.python_paths: list[Path] = []
        self.extra_env: dict[str, str] = {}
        self.always_load: list[str] = []
        self.added: set[str] = set()
        self._on_sys_path = False
        for name in list(os.environ):
            if name.startswith("AIM_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.setenv("USERPROFILE", str(self.home))
        monkeypatch.setenv("XDG_CACHE_HOME", str(self.home / ".cache"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(self.home / ".config"))
        monkeypatch.setenv("XDG_STATE_HOME", str(self.home / ".local" / "state"))
        monkeypatch.delenv("AIM_STATE_DIR", raising=False)
        monkeypatch.setenv("AIM_CACHE_DIR", str(self.home / ".cache" / "aim"))
        monkeypatch.setenv("PATH", f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    # ----------------------------------------------------------------- entry points

    def add_entry_point(
        self, name: str, value: str, *, distribution: str | None = None, version: str = "0.0.0"
    ) -> None:
        """Make ``name = value`` an ``aim`` entry point for the ``aim`` runs of this test."""
        dist = distribution or f"aim-test-{name}"
        info = self.site / f"{re.sub(r'[^A-Za-z0-9.]+', '_', dist)}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[{ENTRY_POINT_GROUP}]\n{name} = {value}\n", encoding="utf-8"
        )
        self.added.add(_norm(name))

    def resolve_plugins(self, plugins: Iterable[Any]) -> list[str]:
        """Entry-point names for ``plugins`` (names, or plugin modules, which are given an
        entry point in this test's site directory when none is installed)."""
        installed = installed_plugins()
        known = {_norm(n) for n in installed} | self.added
        for ep in installed.values():
            dist = getattr(ep, "dist", None)
            if dist is not None:
                known.add(_norm(dist.metadata["Name"]))
        names: list[str] = []
        for plugin in plugins:
            if isinstance(plugin, str):
                if _norm(plugin) not in known:
                    listed = ", ".join(sorted(installed)) or "none"
                    raise ValueError(
                        f"no installed aim plugin is named {plugin!r} (installed: {listed}); "
                        "pip install -e your plugin, or pass its module instead of its name"
                    )
                names.append(plugin)
            elif isinstance(plugin, ModuleType):
                names.append(self._module_entry_point(plugin, installed))
            else:
                raise TypeError(
                    f"aim_project(plugins=...) takes plugin names or modules, not "
                    f"{type(plugin).__name__}: `aim` runs in another process, which can only "
                    "import a module. Register an object defined in a test with "
                    "aim_plugin_manager and run it with project.run_workstream(...)"
                )
        return names

    def _module_entry_point(
        self, module: ModuleType, installed: Mapping[str, metadata.EntryPoint]
    ) -> str:
        for ep in installed.values():
            if ep.value == module.__name__:
                return ep.name
        name = module.__name__.rsplit(".", 1)[-1]
        self.add_entry_point(name, module.__name__)
        root = import_root(module)
        if root not in self.python_paths:
            self.python_paths.append(root)
        return name

    def expose_to_this_process(self) -> None:
        """Put the site directory on ``sys.path`` (for in-process runs) until the test ends."""
        if not self._on_sys_path:
            self.monkeypatch.syspath_prepend(str(self.site))
            for p in self.python_paths:
                self.monkeypatch.syspath_prepend(str(p))
            self._on_sys_path = True

    # ----------------------------------------------------------------- environment

    def environ(self, load: list[str] | None = None) -> dict[str, str]:
        """The environment of an ``aim`` subprocess: this process's (isolated) one, the
        site directory on PYTHONPATH and, when ``load`` is given, AIM_LOAD_PLUGINS."""
        env = dict(os.environ)
        env.update(self.extra_env)
        paths = [str(self.site), *(str(p) for p in self.python_paths)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        if load is not None:
            env["AIM_LOAD_PLUGINS"] = ",".join(dict.fromkeys([*load, *self.always_load]))
        return env
