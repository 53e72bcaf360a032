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

``aim run`` loads plugins lazily (``AimPlugins.load(lazy=True)``): a plugin imported
successfully before, whose files have not changed since, is listed with the hooks it
had then (:class:`FactsFile`, cached next to the entry points) and imported only
when one of its hooks is called. A plugin with a ``wrapper=True`` implementation is
always imported (it wraps the others' calls), and one that never loaded cleanly is
imported every time, so a broken plugin is still reported. ``validate_payload``
implementations marked :func:`own_tools_only` are called only for the tool ids their
plugin's ``detect_tool`` answers for, so a run routed to one tool imports only the
plugins it needs.
"""

from __future__ import annotations

import os
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pluggy

from aim_core import hookspecs
from aim_core.plugin_output import plugin_code
from aim_core.suggest import did_you_mean
from aim_core.values import Value

hookimpl = pluggy.HookimplMarker("aim")
"""The marker for hook implementations: ``@aim_core.hookimpl``."""

OWN_TOOLS_ONLY = "aim_own_tools_only"


def own_tools_only(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a ``validate_payload`` implementation that answers only for the tool ids its
    plugin's ``detect_tool`` answers for (it returns None for any other tool id and for
    ``tool_id=None``). aim then calls it only for those tools, and a run routed to
    another tool need not import the plugin. Put it under ``@aim_core.hookimpl``."""
    setattr(function, OWN_TOOLS_ONLY, True)
    return function


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


PLUGIN_GRACE_S = 10.0  # a plugin's own code may run this long past its tool's deadline


class PluginInfo(Value):
    """What ``aim plugins`` shows for one plugin; ``status`` is ``loaded``, ``broken``,
    ``blocked`` or ``essential``."""

    __slots__ = ("distribution", "error", "fix", "hooks", "name", "status", "tools", "version")
    frozen = False

    def __init__(
        self,
        name: str,
        *,
        distribution: str | None = None,
        version: str | None = None,
        status: str = "loaded",
        hooks: list[str] | None = None,
        tools: list[str] | None = None,
        error: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.name = name
        self.distribution = distribution
        self.version = version
        self.status = status
        self.hooks: list[str] = [] if hooks is None else hooks
        self.tools: list[str] = [] if tools is None else tools
        self.error = error
        self.fix = fix

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


class CallOutcome(Value):
    """The result of calling one plugin's implementation of a hook: ``error`` one line
    (what it raised, or that it timed out), ``traceback`` the whole of it (for -v and
    --debug)."""

    __slots__ = ("error", "exception", "plugin", "timed_out", "traceback", "value")
    plugin: str
    value: Any
    error: str | None
    timed_out: bool
    traceback: str | None
    exception: BaseException | None

    def __init__(
        self,
        plugin: str,
        value: Any = None,
        error: str | None = None,
        timed_out: bool = False,
        traceback: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        self._init(
            plugin=plugin,
            value=value,
            error=error,
            timed_out=timed_out,
            traceback=traceback,
            exception=exception,
        )

    @property
    def ok(self) -> bool:
        """True when the implementation returned (whatever it returned)."""
        return self.error is None


STOP_POLL_S = 0.05  # how often a call waiting for a plugin looks at the run's stop


def _stopped_first(t: threading.Thread, timeout_s: float, stop: threading.Event | None) -> bool:
    """Wait for ``t`` up to ``timeout_s`` seconds; True when ``stop`` was set first
    (else ``t`` ended, or is still alive: it timed out)."""
    deadline = time.monotonic() + timeout_s
    while t.is_alive():
        if stop is not None and stop.is_set():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            break
        t.join(left if stop is None else min(left, STOP_POLL_S))
    return False


def one_line(exc: BaseException) -> str:
    """An exception as one line: ``Type: message``."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _log_traceback(plugin: str, hook: str, traceback: str) -> None:
    """A plugin's traceback at DEBUG, a log line per line (a log line is one line)."""
    from aim_core.log import logger

    logger.debug(f"{plugin}'s {hook} raised:")
    for line in traceback.rstrip().splitlines():
        logger.debug(line)


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


class EntryPoint(Value):
    """One ``aim`` entry point, as found on ``sys.path``; ``value`` is ``module`` or
    ``module:attribute``."""

    __slots__ = ("distribution", "name", "value", "version")
    name: str
    value: str
    distribution: str | None
    version: str | None

    def __init__(
        self, name: str, value: str, distribution: str | None, version: str | None
    ) -> None:
        self._init(name=name, value=value, distribution=distribution, version=version)

    def load(self) -> object:
        """Import the plugin it names."""
        import importlib

        module, _, attr = self.value.partition(":")
        obj = importlib.import_module(module.strip())
        for part in attr.strip().split(".") if attr.strip() else ():
            obj = getattr(obj, part)
        return obj


def installed_key() -> str:
    """What the installed packages are, as a cache key: the ``sys.path`` directories
    with their mtimes (installing or removing a package changes them)."""
    import json

    from aim_core.status_snapshot import sys_path_stamps

    return json.dumps(sys_path_stamps(), sort_keys=True)


def entry_points_of_group(key: str | None = None) -> list[EntryPoint]:
    """The ``aim`` entry points, sorted by name.

    Scanning every installed distribution (``importlib.metadata``) costs tens of
    milliseconds on each command, so the list is cached, keyed by
    :func:`installed_key` (``key``, when the caller has it already).
    """
    import json

    from aim_core.paths import cache_dir

    key = installed_key() if key is None else key
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


def _stamp(path: str) -> list[int] | None:
    from aim_core.paths import file_stamp

    return file_stamp(path)


def source_files(ep: EntryPoint) -> dict[str, list[int] | None] | None:
    """The files of an imported plugin's top-level module or package (``.py`` files and
    the package's directories) with their size and mtime; None when they can't be told."""
    import sys

    top = ep.value.partition(":")[0].strip().split(".")[0]
    module = sys.modules.get(top)
    if module is None:
        return None
    files: list[str] = []
    for where in list(getattr(module, "__path__", None) or ()):
        for dirpath, dirnames, filenames in os.walk(where):
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
            files.append(dirpath)
            files += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
            if len(files) > 500:
                return None
    where_file = getattr(module, "__file__", None)
    if not files and isinstance(where_file, str):
        files = [where_file]
    if not files:
        return None
    return {f: _stamp(f) for f in sorted(files)}


class FactsFile:
    """What each plugin implemented when it was last imported (``plugin-facts-v1.json``
    in the cache directory), for one set of installed packages (:func:`installed_key`):
    per entry point, its hooks with their options and the stamps of its files."""

    def __init__(self, key: str):
        import json

        from aim_core.paths import cache_dir

        self.key = key
        self.path = cache_dir() / "plugin-facts-v1.json"
        self.entries: dict[str, Any] = {}
        self.dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("key") == key and isinstance(data.get("plugins"), dict):
                self.entries = data["plugins"]
        except (OSError, ValueError, AttributeError):
            pass

    def valid(self, ep: EntryPoint) -> dict[str, dict[str, bool]] | None:
        """The hooks of ``ep``'s plugin if nothing changed since they were recorded and
        none of them is a wrapper; else None (the plugin must be imported)."""
        entry = self.entries.get(ep.name)
        if not isinstance(entry, dict) or entry.get("entry") != attrs_astuple(ep):
            return None
        hooks, files = entry.get("hooks"), entry.get("files")
        if not isinstance(hooks, dict) or not hooks or not isinstance(files, dict) or not files:
            return None
        if any(o.get("wrapper") or o.get("hookwrapper") for o in hooks.values()):
            return None
        if any(_stamp(f) != stamp for f, stamp in files.items()):
            return None
        return hooks

    def put(self, ep: EntryPoint, hooks: dict[str, dict[str, bool]]) -> None:
        """Record what ``ep``'s plugin (imported now) implements."""
        files = source_files(ep)
        entry: dict[str, Any] | None = None
        if files is not None:
            entry = {"entry": attrs_astuple(ep), "hooks": hooks, "files": files}
        if self.entries.get(ep.name) != entry:
            if entry is None:
                self.entries.pop(ep.name, None)
            else:
                self.entries[ep.name] = entry
            self.dirty = True

    def save(self) -> None:
        """Write the file if it changed (atomically; failing to is not an error)."""
        if not self.dirty:
            return
        import json

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": self.key, "plugins": self.entries}), encoding="utf-8")
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError:
            pass


HookFacts = dict[str, dict[str, bool]]
"""The hooks a plugin implements, each with its options (``tryfirst``, ``trylast``,
``wrapper``, ``hookwrapper``, ``own_tools_only``)."""

_ABSENT = object()
_HOOKABLE = (types.FunctionType, types.MethodType, classmethod, staticmethod)


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, quicker to register a module: an attribute that is not a
    function (an import, a constant, a class) can't be a hook implementation, so
    pluggy's look at it (``inspect.getattr_static``) is skipped."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        if isinstance(plugin, types.ModuleType):
            value = plugin.__dict__.get(name, _ABSENT)
            if value is not _ABSENT and not isinstance(value, _HOOKABLE):
                return None
        return super().parse_hookimpl_opts(plugin, name)


class AimPlugins:
    """The loaded plugins of one aim command and the one way to call them."""

    def __init__(self) -> None:
        self.pm = _PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.order: dict[str, int] = {}  # plugin -> when it was listed (its place in calls)
        self.facts: dict[str, HookFacts] = {}  # the hooks each plugin implements
        self.deferred: dict[str, EntryPoint] = {}  # listed from its facts, not yet imported
        self.tools_known = False  # detection said which tools each plugin answers for
        self._facts_file: FactsFile | None = None
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        entry_points: bool = True,
        essential: bool = True,
        lazy: bool = False,
    ) -> AimPlugins:
        """The essential plugins, then the entry points (filtered by ``AIM_LOAD_PLUGINS``).
        ``lazy``: import a plugin known from an earlier import only when one of its hooks
        is called (see the module's docstring)."""
        self = cls()
        env = os.environ if environ is None else environ
        if essential:
            import importlib

            for name, module in ESSENTIAL_PLUGINS:
                self._register(importlib.import_module(module), name, status="essential")
        if entry_points:
            self.load_entry_points(env.get("AIM_LOAD_PLUGINS"), lazy=lazy)
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

    def load_entry_points(self, only: str | None = None, *, lazy: bool = False) -> None:
        """Load every ``aim`` entry point, each in isolation (``lazy``: list the plugins
        whose facts are known, import the others)."""
        wanted = None if only is None else {_norm(n) for n in only.split(",") if n.strip()}
        seen: set[tuple[str, str | None]] = set()
        key = installed_key()
        self._facts_file = facts = FactsFile(key)
        for ep in entry_points_of_group(key):
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
            hooks = facts.valid(ep) if lazy else None
            if hooks is not None:
                info.hooks = sorted(hooks)
                self.infos[ep.name] = info
                self.order.setdefault(ep.name, len(self.order))
                self.facts[ep.name] = hooks
                self.deferred[ep.name] = ep
                continue
            self._import(ep, info)
        facts.save()

    def _import(self, ep: EntryPoint, info: PluginInfo) -> None:
        """Import and register the plugin of ``ep``; broken (with the reason) when its
        import fails or its hooks don't match the specs."""
        try:
            with plugin_code():
                plugin = ep.load()
        except BaseException as e:  # a plugin's import may even call sys.exit
            if isinstance(e, KeyboardInterrupt):
                raise
            info.status = "broken"
            info.error = f"failed to import {ep.value}: {one_line(e)}"
            info.fix = (
                f"pip install --force-reinstall {ep.distribution}" if ep.distribution else None
            )
            self.infos[ep.name] = info
            self.order.setdefault(ep.name, len(self.order))
            return
        self._register(plugin, ep.name, info=info)
        if info.status != "broken" and self._facts_file is not None:
            self._facts_file.put(ep, self.facts[ep.name])

    def _materialize(self, name: str) -> str | None:
        """Import a plugin listed from its facts, now that a hook of it is called; the
        error when that fails (it is broken then)."""
        with self._lock:
            ep = self.deferred.pop(name, None)
            if ep is None:
                return None
            info = self.infos[name]
            tools = list(info.tools)
            self._import(ep, info)
            info.tools = tools
            if self._facts_file is not None:
                self._facts_file.save()
            return info.error if info.status == "broken" else None

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
        self.tools_known = False  # a plugin added after detection has no tools known yet
        return self._register(plugin, name, status=status, info=info)

    def _register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        status: str = "loaded",
        info: PluginInfo | None = None,
    ) -> PluginInfo:
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
        self.order.setdefault(name, len(self.order))
        if problem is not None:
            info.status = "broken"
            info.error = problem
        else:
            self.facts[name] = self._hook_facts(plugin)
            info.hooks = sorted(self.facts[name])
        self.infos[name] = info
        return info

    def _hook_facts(self, plugin: object) -> dict[str, dict[str, bool]]:
        """Each hook ``plugin`` implements, with its options."""
        out: dict[str, dict[str, bool]] = {}
        for caller in self.pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    out[caller.name] = {
                        "tryfirst": impl.tryfirst,
                        "trylast": impl.trylast,
                        "wrapper": impl.wrapper,
                        "hookwrapper": impl.hookwrapper,
                        "own_tools_only": bool(getattr(impl.function, OWN_TOOLS_ONLY, False)),
                    }
        return out

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
        self.deferred.pop(name, None)
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
        otherwise the last listed first (plugins not imported yet included)."""
        in_service = set(self.plugin_names())
        rows: list[tuple[int, int, str]] = []
        with self._lock:
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                if impl.wrapper or impl.hookwrapper or impl.plugin_name not in in_service:
                    continue
                rows.append(self._place(impl.plugin_name, impl.tryfirst, impl.trylast))
            for name in self.deferred:
                opts = self.facts[name].get(hook)
                if opts is not None and name in in_service:
                    rows.append(self._place(name, opts["tryfirst"], opts["trylast"]))
        return [name for _, _, name in sorted(rows, reverse=True)]

    def _place(self, name: str, tryfirst: bool, trylast: bool) -> tuple[int, int, str]:
        """Where pluggy puts an implementation in its list (called from the end):
        ``trylast`` ones first, each new one in front; then the others in registration
        order; ``tryfirst`` ones last."""
        order = self.order.get(name, len(self.order))
        if trylast:
            return (0, -order, name)
        return (2 if tryfirst else 1, order, name)

    def answers_for(self, hook: str, plugin: str, tool_id: str | None) -> bool:
        """Whether ``plugin``'s ``hook`` can answer about ``tool_id``: False only for an
        implementation marked :func:`own_tools_only` and a tool id its plugin's
        ``detect_tool`` did not answer for (once detection said which those are)."""
        opts = self.facts.get(plugin, {}).get(hook) or {}
        if not opts.get("own_tools_only") or not self.tools_known:
            return True
        return tool_id is not None and tool_id in self.infos[plugin].tools

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
        stop: threading.Event | None = None,
    ) -> CallOutcome:
        """Call ``plugin``'s implementation of ``hook`` (with the wrappers around it),
        bounded by ``timeout_s``: its answer, or what it raised, or that it hung.

        It runs in a daemon thread, left behind after ``timeout_s`` seconds or once
        ``stop`` is set (a plugin busy in Python does not hold Ctrl-C up). ``kwargs``
        holds the spec's arguments; each implementation takes the ones it names.
        """
        if plugin in self.deferred:
            error = self._materialize(plugin)
            if error is not None:
                return CallOutcome(plugin, None, f"{hook}: {error}")
        with self._lock:
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
            if _stopped_first(t, timeout_s, stop):
                return CallOutcome(plugin, None, f"{hook} was left running: the run was stopped")
            if t.is_alive():
                return CallOutcome(
                    plugin, None, f"{hook} did not answer within {timeout_s:g} s", True
                )
        if "error" in box:
            e = box["error"]
            if isinstance(e, KeyboardInterrupt):
                raise e
            _log_traceback(plugin, hook, box["traceback"])
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
        if not callable(kwargs) and "tool_id" in kwargs:
            names = [n for n in names if self.answers_for(hook, n, kwargs["tool_id"])]

        def args_for(n: str) -> Mapping[str, Any]:
            return kwargs(n) if callable(kwargs) else kwargs

        for n in names:  # imported here, not in the threads of the calls
            if n in self.deferred:
                self._materialize(n)

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
