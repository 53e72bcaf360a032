"""``Project``: the repository an aim command works in, loaded piece by piece.

Each piece (settings, rules, plugins, detection) is loaded on first use, so a
command pays only for what it needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aim_core.config import Settings, load_settings
from aim_core.context import AimContext
from aim_core.errors import AimError
from aim_core.registry import (
    KNOWN_CAPABILITIES,
    Rules,
    check_registry_dir,
    find_root,
    load_rules,
    locate_registry,
)

if TYPE_CHECKING:
    from aim_core.audit.emit import AuditEmitter
    from aim_core.detection import DetectionReport
    from aim_core.plugins import AimPlugins


class Project:
    """The repository root, its settings, rules, plugins and tools."""

    def __init__(
        self,
        root: Path,
        settings: Settings,
        registry: Path,
        environ: Mapping[str, str],
    ):
        self.root = root
        self.settings = settings
        self.registry = registry
        self.environ = environ
        self._rules: Rules | None = None
        self._plugins: AimPlugins | None = None
        self._detection: DetectionReport | None = None
        self._audit: AuditEmitter | None = None
        self.lazy_plugins = False  # import a plugin only when a hook of it is called

    @classmethod
    def open(
        cls,
        cwd: str | os.PathLike[str] | None = None,
        *,
        config_path: str | None = None,
        registry: str | None = None,
        actor: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Project:
        """Find the root from ``cwd`` and load the settings (file < env < these flags)."""
        env = dict(os.environ if environ is None else environ)
        if cwd is None:
            try:
                cwd = os.getcwd()
            except FileNotFoundError:
                raise AimError(
                    "the current directory no longer exists (it was removed or moved); "
                    "cd into the repository again"
                ) from None
        root = find_root(Path(cwd))
        overrides = {"actor": actor, "registry_path": registry or env.get("AIM_REGISTRY")}
        settings = load_settings(root, config_path=config_path, environ=env, overrides=overrides)
        registry_dir = locate_registry(root, settings.registry_path)
        check_registry_dir(registry_dir)
        return cls(root, settings, registry_dir, env)

    @classmethod
    def for_command(
        cls,
        *,
        config_path: str | None = None,
        registry: str | None = None,
        actor: str | None = None,
        recover: bool = True,
    ) -> Project:
        """What every command starts with: the project of the current directory, its
        config warnings logged, and what a killed run left restored (``recover``)."""
        from aim_core.log import logger

        project = cls.open(config_path=config_path, registry=registry, actor=actor)
        for warning in project.settings.warnings:
            logger.warning(warning)
        if recover and (project.runs_state / "active").is_dir():
            from aim_core.recovery import recover_dead_runs

            recover_dead_runs(project)
        return project

    @property
    def audit(self) -> AuditEmitter:
        """The audit emitter of this project (JSONL log, then the ``audit_sink`` plugins)."""
        if self._audit is None:
            from aim_core.audit.emit import AuditEmitter

            self._audit = AuditEmitter(self)
        return self._audit

    @property
    def state_dir(self) -> Path:
        """This repository's machine-local state (:func:`aim_core.paths.state_dir`)."""
        from aim_core.paths import state_dir

        return state_dir(self.root, self.environ)

    @property
    def runs_state(self) -> Path:
        """The lock table and the snapshots of attempts in progress (machine-local)."""
        return self.state_dir / "runs"

    @property
    def has_registry(self) -> bool:
        """Whether ``aim init`` has created the registry."""
        return self.registry.is_dir()

    @property
    def rules(self) -> Rules:
        """The coordination rules (the guide's defaults before ``aim init``)."""
        if self._rules is None:
            self._rules = load_rules(self.registry)
        return self._rules

    @property
    def plugins(self) -> AimPlugins:
        """The loaded plugins (:class:`aim_core.plugins.AimPlugins`)."""
        if self._plugins is None:
            from aim_core.plugins import AimPlugins

            self.use_plugins(AimPlugins.load(environ=self.environ, lazy=self.lazy_plugins))
        assert self._plugins is not None
        return self._plugins

    def use_plugins(self, plugins: Any) -> None:
        """Work with an already loaded plugin manager (tests, embedding programs)."""
        self._plugins = plugins
        self._detection = None

    def context(
        self,
        *,
        deadline: float | None = None,
        tool_id: str | None = None,
        root: Path | None = None,
        **kw: Any,
    ) -> AimContext:
        """An ``AimContext`` for a hook call; ``root`` is where the tool works (default
        the repository; an isolated copy of it in a race)."""
        return AimContext(
            root=root or self.root,
            settings=self.settings,
            options=dict(self.settings.tool_options(tool_id)) if tool_id else {},
            deadline=deadline,
            tool_id=tool_id,
            environ=self.environ,
            security=self.rules.security,
            **kw,
        )

    def detect(self, *, refresh: bool = False, only: set[str] | None = None) -> DetectionReport:
        """Detect the tools (cached; see :mod:`aim_core.detection`)."""
        if self._detection is not None and not refresh and only is None:
            return self._detection
        from aim_core.detection import DetectionCache, cache_dir, detect_tools

        self._detection = detect_tools(
            self.plugins,
            lambda deadline: self.context(deadline=deadline),
            cache=DetectionCache(cache_dir(self.environ), self.environ),
            refresh=refresh,
            ttl_s=self.settings.detection_cache_ttl_s,
            readiness_ttl_s=self.settings.readiness_cache_ttl_s,
            environ=self.environ,
            only=only,
        )
        return self._detection

    def known_capabilities(self) -> set[str]:
        """The guide's five, the rules' and every capability a plugin's tool serves."""
        caps = set(KNOWN_CAPABILITIES) | set(self.rules.capabilities)
        caps |= self.detect().capabilities()
        return caps

    def known_tools(self) -> set[str]:
        """Every tool id the rules name or a plugin provides."""
        return set(self.rules.tool_ids()) | set(self.detect().tools)
