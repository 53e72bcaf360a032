"""Finding, loading and calling plugins.

Built-in behaviour comes first (the *essential* plugins, which can't be
blocked), then every entry point of the group ``aim``, each loaded in its own
``try`` so one broken plugin is reported -- name, distribution, the error in
one line -- and the others keep working. ``AIM_LOAD_PLUGINS=a,b`` loads only
those (by entry-point or distribution name; an empty value loads none).

Hook implementations are called one plugin at a time through
:meth:`AimPlugins.call` (in a thread, with a time limit): that is how a plugin
that raises or hangs is isolated and how a call reaches only the plugin that
owns a tool. Each call still goes through pluggy (a subset hook caller holding
that plugin's implementation and every ``wrapper=True`` implementation), so
wrappers run around it, ``tryfirst``/``trylast`` order the plugins of
:meth:`AimPlugins.call_each`, and pluggy's tracing sees every call
(``AIM_TRACE_PLUGINS=1`` prints them). Old-style ``hookwrapper=True`` is
refused when the plugin loads.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pluggy
from attrs import define, field, frozen

from aim_core import hookspecs
from aim_core.plugin_output import plugin_code
from aim_core.suggest import did_you_mean

hookimpl = pluggy.HookimplMarker("aim")
"""The marker for hook implementations: ``@aim_core.hookimpl``."""

PROJECT = "aim"
ENTRY_POINT_GROUP = "aim"
HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, spec in vars(hookspecs).items() if hasattr(spec, f"{PROJECT}_spec")
)
"""Every hook of the specs, in the order :mod:`aim_core.hookspecs` defines them."""
# Built-in plugins registered through the same hooks; never blocked.
ESSENTIAL_PLUGINS: tuple[tuple[str, str], ...] = (
    ("aim.security", "aim_core.default_plugins.security"),
)


@define
class PluginInfo:
    """What ``aim plugins`` shows for one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    status: str = "loaded"  # loaded | broken | blocked | essential
    hooks: list[str] = field(factory=list)
    tools: list[str] = field(factory=list)
    error: str | None = None
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The shape ``aim plugins --json`` prints."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "hooks": list(self.hooks),
            "tools": list(self.tools),
            "error": self.error,
        }


@frozen
class CallOutcome:
    """The result of calling one plugin's implementation of a hook."""

    plugin: str
    value: Any = None
    error: str | None = None  # one line: what it raised, or that it timed out
    timed_out: bool = False
    traceback: str | None = None  # the whole of it, for -v / --debug
    exception: BaseException | None = None

    @property
    def ok(self) -> bool:
        """True when the implementation returned (whatever it returned)."""
        return self.error is None


def one_line(exc: BaseException) -> str:
    """An exception as one line: ``Type: message``."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@frozen
class EntryPoint:
    """One ``aim`` entry point, as found on ``sys.path``."""

    name: str
    value: str  # "module" or "module:attribute"
    distribution: str | None
    version: str | None

    def load(self) -> object:
        """Import the plugin it names."""
        import importlib

        module, _, attr = self.value.partition(":")
        obj = importlib.import_module(module.strip())
        for part in attr.strip().split(".") if attr.strip() else ():
            obj = getattr(obj, part)
        return obj


def entry_points_of_group() -> list[EntryPoint]:
    """The ``aim`` entry points, sorted by name.

    Scanning every installed distribution (``importlib.metadata``) costs tens of
    milliseconds on each command, so the list is cached, keyed by the mtimes of
    the ``sys.path`` directories (installing or removing a package changes them).
    """
    import json

    from aim_core.paths import cache_dir
    from aim_core.status_snapshot import sys_path_stamps

    key = json.dumps(sys_path_stamps(), sort_keys=True)
    path = cache_dir() / "entry-points-v1.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") == key:
            return [EntryPoint(*e) for e in data["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from importlib.metadata import entry_points

    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        found.append(
            EntryPoint(
                ep.name,
                ep.value,
                dist.metadata["Name"] if dist is not None else None,
                dist.version if dist is not None else None,
            )
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"key": key, "entry_points": [attrs_astuple(e) for e in found]}),
            encoding="utf-8",
        )
        os.replace(tmp, path)
    except OSError:
        pass
    return found


def attrs_astuple(ep: EntryPoint) -> list[str | None]:
    return [ep.name, ep.value, ep.distribution, ep.version]


class AimPlugins:
    """The loaded plugins of one aim command and the one way to call them."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        entry_points: bool = True,
        essential: bool = True,
    ) -> AimPlugins:
        """The essential plugins, then the entry points (filtered by ``AIM_LOAD_PLUGINS``)."""
        self = cls()
        env = os.environ if environ is None else environ
        if essential:
            import importlib

            for name, module in ESSENTIAL_PLUGINS:
                self.register(importlib.import_module(module), name, status="essential")
        if entry_points:
            self.load_entry_points(env.get("AIM_LOAD_PLUGINS"))
        if env.get("AIM_TRACE_PLUGINS"):
            self.trace()
        return self

    def trace(self, write: Callable[[str], None] | None = None) -> None:
        """Report every hook call and its result through pluggy's tracing (to the
        ``aim`` logger at warning level, or to ``write``)."""
        from aim_core.log import logger

        out = write or (lambda text: logger.warning(text.rstrip()))
        self.pm.trace.root.setwriter(out)
        self.pm.enable_tracing()

    def load_entry_points(self, only: str | None = None) -> None:
        """Load every ``aim`` entry point, each in isolation."""
        wanted = None if only is None else {_norm(n) for n in only.split(",") if n.strip()}
        seen: set[tuple[str, str | None]] = set()
        for ep in entry_points_of_group():
            if (ep.name, ep.distribution) in seen:  # one distribution found twice on sys.path
                continue
            seen.add((ep.name, ep.distribution))
            dist_name, version = ep.distribution, ep.version
            info = PluginInfo(name=ep.name, distribution=dist_name, version=version)
            if wanted is not None and not ({_norm(ep.name), _norm(dist_name or "")} & wanted):
                info.status = "blocked"
                info.error = "not listed in AIM_LOAD_PLUGINS"
                self.infos[ep.name] = info
                continue
            if ep.name in self.infos:
                other = self.infos[ep.name].distribution or "a built-in"
                info.status = "broken"
                info.error = (
                    f"the name '{ep.name}' is taken by {other}, which is used instead; "
                    f"uninstall one of them (pip uninstall {dist_name})"
                )
                self.infos[f"{ep.name} ({dist_name})"] = info
                continue
            try:
                with plugin_code():
                    plugin = ep.load()
            except BaseException as e:  # a plugin's import may even call sys.exit
                if isinstance(e, KeyboardInterrupt):
                    raise
                info.status = "broken"
                info.error = f"failed to import {ep.value}: {one_line(e)}"
                info.fix = f"pip install --force-reinstall {dist_name}" if dist_name else None
                self.infos[ep.name] = info
                continue
            self.register(plugin, ep.name, info=info)

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        status: str = "loaded",
        info: PluginInfo | None = None,
    ) -> PluginInfo:
        """Register one plugin; a plugin whose hooks don't match the specs is
        recorded as broken instead."""
        name = name or self.pm.get_canonical_name(plugin)
        info = info or PluginInfo(name=name)
        info.status = status
        problem = None
        try:
            self.pm.register(plugin, name)
        except pluggy.PluginValidationError as e:
            problem = one_line(e).replace("PluginValidationError: ", "")
        except ValueError as e:
            problem = one_line(e)
        else:
            problem = self._check_hooks(plugin)
            if problem is not None:
                self.pm.unregister(plugin)
        if problem is not None:
            info.status = "broken"
            info.error = problem
        else:
            info.hooks = sorted(hc.name for hc in self.pm.get_hookcallers(plugin) or [])
        self.infos[name] = info
        return info

    def _check_hooks(self, plugin: object) -> str | None:
        """After pluggy registered it: every hook it implements must be one of ours,
        with options aim can honour."""
        callers = self.pm.get_hookcallers(plugin) or []
        for caller in callers:
            if caller.name not in HOOK_NAMES:
                return (
                    f"hook implementation '{caller.name}' matches no aim hook"
                    f"{did_you_mean(caller.name, HOOK_NAMES)}"
                )
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and impl.hookwrapper:
                    return (
                        f"its {caller.name} uses hookwrapper=True, which aim does not run "
                        "(old-style wrappers cannot be isolated); use wrapper=True"
                    )
        if not callers:
            return "defines no @aim_core.hookimpl functions"
        return None

    def mark_broken(self, name: str, error: str) -> None:
        """Take a plugin out of service for the rest of this command."""
        info = self.infos.get(name)
        if info is None or info.status == "essential":
            return
        info.status = "broken"
        info.error = error
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)

    # ----------------------------------------------------------------- calling

    def plugin_names(self) -> list[str]:
        """Names of the plugins in service, in load order."""
        return [n for n, i in self.infos.items() if i.status in ("loaded", "essential")]

    def implementers(self, hook: str) -> list[str]:
        """Plugins (in service) with a plain implementation of ``hook`` (wrappers left
        out), in the order pluggy calls them: ``tryfirst`` first, ``trylast`` last,
        otherwise the last registered first."""
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        in_service = set(self.plugin_names())
        return [
            i.plugin_name
            for i in reversed(impls)
            if not i.wrapper and not i.hookwrapper and i.plugin_name in in_service
        ]

    def _caller(self, hook: str, plugin: str) -> tuple[Any, Any] | None:
        """A pluggy caller of ``hook`` holding only ``plugin``'s implementation and the
        wrappers, and the spec's call mode; None when ``plugin`` does not implement it."""
        caller = getattr(self.pm.hook, hook)
        impls = caller.get_hookimpls()
        if not any(i.plugin_name == plugin and not i.wrapper for i in impls):
            return None
        others = [i.plugin for i in impls if i.plugin_name != plugin and not i.wrapper]
        subset = self.pm.subset_hook_caller(hook, others) if others else caller
        return subset, caller.spec.opts.get("firstresult", False)

    def call(
        self,
        hook: str,
        plugin: str,
        kwargs: Mapping[str, Any],
        *,
        timeout_s: float | None = None,
    ) -> CallOutcome:
        """Call ``plugin``'s implementation of ``hook`` (with the wrappers around it),
        bounded by ``timeout_s``: its answer, or what it raised, or that it hung.

        It runs in a daemon thread so that one that hangs can be left behind.
        ``kwargs`` holds the spec's arguments; each implementation takes the ones
        it names (pluggy's rule).
        """
        found = self._caller(hook, plugin)
        if found is None:
            return CallOutcome(plugin, None)
        caller, firstresult = found
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                with plugin_code():
                    value = caller(**kwargs)
                box["value"] = value if firstresult else (value[0] if value else None)
            except BaseException as e:
                import traceback

                box["error"] = e
                box["traceback"] = traceback.format_exc()

        if timeout_s is None:
            target()
        else:
            t = threading.Thread(target=target, name=f"aim-{hook}-{plugin}", daemon=True)
            t.start()
            t.join(timeout_s)
            if t.is_alive():
                return CallOutcome(
                    plugin, None, f"{hook} did not answer within {timeout_s:g} s", True
                )
        if "error" in box:
            e = box["error"]
            if isinstance(e, KeyboardInterrupt):
                raise e
            from aim_core.log import logger

            logger.debug(f"{plugin}'s {hook} raised:\n{box['traceback'].rstrip()}")
            return CallOutcome(
                plugin, None, f"{hook} raised {one_line(e)}", False, box["traceback"], e
            )
        return CallOutcome(plugin, box.get("value"))

    def call_each(
        self,
        hook: str,
        kwargs: Mapping[str, Any] | Callable[[str], Mapping[str, Any]],
        *,
        timeout_s: float | None = None,
        parallel: bool = False,
        plugins: Iterable[str] | None = None,
    ) -> list[CallOutcome]:
        """Call every implementer of ``hook`` (or those in ``plugins``), one at a time
        or all at once; ``kwargs`` may be a function of the plugin name."""
        names = [n for n in self.implementers(hook) if plugins is None or n in set(plugins)]

        def args_for(n: str) -> Mapping[str, Any]:
            return kwargs(n) if callable(kwargs) else kwargs

        if not parallel or len(names) < 2:
            return [self.call(hook, n, args_for(n), timeout_s=timeout_s) for n in names]
        results: dict[str, CallOutcome] = {}

        def worker(n: str) -> None:
            results[n] = self.call(hook, n, args_for(n), timeout_s=None)

        threads = {n: threading.Thread(target=worker, args=(n,), daemon=True) for n in names}
        for t in threads.values():
            t.start()

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for t in threads.values():
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        out = []
        for n in names:
            if n in results:
                out.append(results[n])
            else:
                out.append(
                    CallOutcome(n, None, f"{hook} did not answer within {timeout_s:g} s", True)
                )
        return out
