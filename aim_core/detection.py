"""Which tools are installed and ready: ``detect_tool`` of every plugin, cached.

Detection runs every plugin's ``detect_tool`` in parallel, each bounded by a
time limit, so it costs the slowest plugin rather than the sum. The answers
are cached in the user's cache directory (machine-local, never in the
repository) and reused until one of these changes:

* the cache's age passes ``detection_cache_ttl_s`` (``readiness_cache_ttl_s``
  for a tool that was not ready, so ``jules login`` shows up soon);
* a detected binary's path, size or mtime, or a ``watch_paths`` file;
* for a tool that was not installed, PATH or the mtime of a PATH directory
  (installing a program touches its directory);
* the plugin's name or version.

A warm ``aim status`` therefore starts no process at all.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from aim_core.digest import sha256_hex
from aim_core.models import ToolDetection
from aim_core.plugins import AimPlugins
from aim_core.status_snapshot import tool_variables_key
from aim_core.values import Value

CACHE_FILE = "detection-v1.json"
DETECT_TIMEOUT_S = 10.0


class ToolState(Value):
    """One tool as detection sees it, with the plugin that owns it."""

    __slots__ = ("checked_at", "detection", "from_cache", "plugin")
    frozen = False

    def __init__(
        self,
        detection: ToolDetection,
        plugin: str,
        from_cache: bool = False,
        checked_at: float = 0.0,
    ) -> None:
        self.detection = detection
        self.plugin = plugin
        self.from_cache = from_cache
        self.checked_at = checked_at

    @property
    def tool_id(self) -> str:
        return self.detection.tool_id

    @property
    def usable(self) -> bool:
        """Installed and not known to be unready."""
        return self.detection.installed and self.detection.ready is not False


class DetectionReport(Value):
    """Every tool found, conflicts between plugins, and plugins that failed to answer."""

    __slots__ = (
        "conflicts",
        "env_patterns",
        "failed",
        "path_dirs",
        "spawned",
        "stamps",
        "tools",
        "valid_until",
    )
    frozen = False

    def __init__(self) -> None:
        self.tools: dict[str, ToolState] = {}
        self.conflicts: list[tuple[str, str, str]] = []  # (tool_id, plugin, owner)
        self.failed: dict[str, str] = {}  # plugin -> error
        self.spawned = False  # whether any plugin was asked (not all served from cache)
        # what the answers rest on (for aim status's snapshot): files whose change
        # invalidates them, PATH directories watched for new programs, and until when
        self.stamps: list[str] = []
        self.path_dirs: list[str] = []
        self.valid_until = 0.0
        self.env_patterns: list[str] = []

    def owner(self, tool_id: str) -> str | None:
        """The plugin that owns ``tool_id``, or None when no plugin provides it."""
        state = self.tools.get(tool_id)
        return state.plugin if state else None

    def capabilities(self) -> set[str]:
        """Every capability some detected (or known) tool serves."""
        return {c for s in self.tools.values() for c in s.detection.capabilities}


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where aim keeps machine-local state (``AIM_CACHE_DIR`` or the platform's cache dir)."""
    from aim_core.paths import cache_dir as platform_cache_dir

    return platform_cache_dir(environ)


def _stamp(path: str) -> list[int] | None:
    from aim_core.paths import file_stamp

    return file_stamp(path)


def _path_dirs(path_value: str) -> dict[str, int | None]:
    dirs: dict[str, int | None] = {}
    for d in path_value.split(os.pathsep):
        if d and d not in dirs:
            try:
                dirs[d] = os.stat(d).st_mtime_ns
            except OSError:
                dirs[d] = None
    return dirs


def _patterns(answers: list[ToolDetection] | list[dict[str, Any]]) -> list[str]:
    out: set[str] = set()
    for a in answers:
        out.update(
            a.env_passthrough if isinstance(a, ToolDetection) else a.get("env_passthrough", [])
        )
    return sorted(out)


def _to_json(d: ToolDetection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in attrs.fields(ToolDetection):
        value = getattr(d, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif hasattr(value, "value"):  # Failure
            value = value.value
        out[f.name] = value
    return out


def _from_json(data: Mapping[str, Any]) -> ToolDetection | None:
    names = {f.name for f in attrs.fields(ToolDetection)}
    try:
        return ToolDetection(**{k: v for k, v in data.items() if k in names})
    except (TypeError, ValueError):
        return None


class DetectionCache:
    """The JSON file of cached detections, one entry per plugin."""

    def __init__(self, directory: Path, environ: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ
        self.path = directory / CACHE_FILE
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("plugins"), dict):
                self.entries = data["plugins"]
        except (OSError, ValueError):
            pass

    def validity(
        self, plugin: str, *, ttl_s: float, readiness_ttl_s: float
    ) -> tuple[list[str], list[str], float]:
        """What a plugin's cached answers rest on: ``(files, PATH dirs, valid until)``."""
        entry = self.entries.get(plugin) or {}
        answers = entry.get("answers", [])
        ttl = ttl_s
        if any(a.get("installed") and a.get("ready") is False for a in answers):
            ttl = min(ttl, readiness_ttl_s)
        return (
            list(entry.get("stamps", {})),
            list(entry.get("path_dirs", {})),
            entry.get("checked_at", 0) + ttl,
        )

    def get(
        self,
        plugin: str,
        version: str | None,
        path_value: str,
        *,
        ttl_s: float,
        readiness_ttl_s: float,
        now: float,
    ) -> tuple[list[ToolDetection], float] | None:
        """The cached answers of a plugin if still valid, with when they were made."""
        entry = self.entries.get(plugin)
        if not isinstance(entry, dict) or entry.get("version") != version:
            return None
        checked = entry.get("checked_at", 0)
        age = now - checked
        parsed = [_from_json(a) for a in entry.get("answers", [])]
        answers = [a for a in parsed if a is not None]
        if len(answers) != len(parsed) or age < 0 or age > ttl_s:
            return None
        if any(a.installed and a.ready is False for a in answers) and age > readiness_ttl_s:
            return None
        if entry.get("path_hash") != _hash(path_value):
            return None
        raw = entry.get("answers", [])
        if entry.get("env_key") != tool_variables_key(_patterns(raw), self.environ):
            return None
        for p, stamp in entry.get("stamps", {}).items():
            if _stamp(p) != stamp:
                return None
        if any(not a.installed for a in answers) and entry.get("path_dirs") != _path_dirs(
            path_value
        ):
            return None
        return answers, checked

    def put(
        self,
        plugin: str,
        version: str | None,
        path_value: str,
        answers: list[ToolDetection],
        now: float,
    ) -> None:
        """Remember a plugin's answers and what would make them stale."""
        stamps: dict[str, list[int] | None] = {}
        for a in answers:
            for p in (a.path, *a.watch_paths):
                if p:
                    stamps[p] = _stamp(p)
        self.entries[plugin] = {
            "version": version,
            "checked_at": now,
            "answers": [_to_json(a) for a in answers],
            "path_hash": _hash(path_value),
            "env_key": tool_variables_key(_patterns(answers), self.environ),
            "stamps": stamps,
            "path_dirs": _path_dirs(path_value) if any(not a.installed for a in answers) else {},
        }

    def save(self) -> None:
        """Write the cache atomically; a cache that can't be written is not an error."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"plugins": self.entries}, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass


def _hash(text: str) -> str:
    return sha256_hex(text.encode())[:16]


def _normalise(value: Any) -> list[ToolDetection] | str:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if not isinstance(item, ToolDetection):
            return f"detect_tool returned {type(item).__name__}, expected ToolDetection"
        if not isinstance(item.tool_id, str) or not item.tool_id.strip():
            return f"detect_tool returned a ToolDetection with tool_id {item.tool_id!r}"
        if not all(isinstance(c, str) and c for c in item.capabilities):
            caps = list(item.capabilities)
            return f"detect_tool returned capabilities {caps!r} for '{item.tool_id}'"
        out.append(item)
    return out


def detect_tools(
    plugins: AimPlugins,
    make_context: Callable[[float], Any],
    *,
    cache: DetectionCache | None = None,
    refresh: bool = False,
    ttl_s: float = 3600,
    readiness_ttl_s: float = 30,
    timeout_s: float = DETECT_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
    only: set[str] | None = None,
) -> DetectionReport:
    """Detect every plugin's tools (from the cache when valid), in parallel.

    :param make_context: builds the ``AimContext`` for a deadline.
    :param only: re-detect only these plugins, keep the cache for the others.
    :param refresh: ignore the cache (``aim status --refresh``).
    """
    env = os.environ if environ is None else environ
    path_value = env.get("PATH", "")
    now = time.time()
    report = DetectionReport()
    answers: dict[str, list[ToolDetection]] = {}
    checked: dict[str, float] = {}
    cached: set[str] = set()
    to_ask: list[str] = []
    for name in plugins.implementers("detect_tool"):
        version = plugins.infos[name].version
        hit = None
        if cache is not None and not refresh and (only is None or name not in only):
            hit = cache.get(
                name, version, path_value, ttl_s=ttl_s, readiness_ttl_s=readiness_ttl_s, now=now
            )
        if hit is not None:
            answers[name], checked[name] = hit
            cached.add(name)
        else:
            to_ask.append(name)
    if to_ask:
        report.spawned = True
        asked = _ask(plugins, make_context(time.monotonic() + timeout_s), to_ask, timeout_s, report)
        for name, got in asked.items():
            answers[name], checked[name] = got, now
            if cache is not None:
                cache.put(name, plugins.infos[name].version, path_value, got, now)
        if cache is not None:
            cache.save()
    _validity(report, cache, answers, ttl_s, readiness_ttl_s)
    _assemble(report, plugins, answers, checked, cached)
    return report


def _ask(
    plugins: AimPlugins, context: Any, names: list[str], timeout_s: float, report: DetectionReport
) -> dict[str, list[ToolDetection]]:
    """Call ``detect_tool`` of ``names`` in parallel; a plugin that fails is marked broken."""
    out: dict[str, list[ToolDetection]] = {}
    outcomes = plugins.call_each(
        "detect_tool", {"context": context}, timeout_s=timeout_s, parallel=True, plugins=names
    )
    for outcome in outcomes:
        got = _normalise(outcome.value) if outcome.ok else (outcome.error or "failed")
        if isinstance(got, str):
            report.failed[outcome.plugin] = got
            plugins.mark_broken(outcome.plugin, got)
            continue
        out[outcome.plugin] = _fill_versions(plugins, outcome.plugin, got, context)
    return out


def _validity(
    report: DetectionReport,
    cache: DetectionCache | None,
    answers: dict[str, list[ToolDetection]],
    ttl_s: float,
    readiness_ttl_s: float,
) -> None:
    report.valid_until = time.time() + ttl_s
    if cache is None:
        report.valid_until = 0.0
    else:
        for name in answers:
            files, dirs, until = cache.validity(name, ttl_s=ttl_s, readiness_ttl_s=readiness_ttl_s)
            report.stamps += files
            report.path_dirs += dirs
            report.valid_until = min(report.valid_until, until)
    report.env_patterns = _patterns([a for got in answers.values() for a in got])


def _assemble(
    report: DetectionReport,
    plugins: AimPlugins,
    answers: dict[str, list[ToolDetection]],
    checked: dict[str, float],
    cached: set[str],
) -> None:
    """Owners in load order: the first plugin to answer for a tool id keeps it."""
    for name in plugins.plugin_names():
        for d in answers.get(name, []):
            existing = report.tools.get(d.tool_id)
            if existing is not None and existing.plugin != name:
                report.conflicts.append((d.tool_id, name, existing.plugin))
                continue
            report.tools[d.tool_id] = ToolState(
                detection=d, plugin=name, from_cache=name in cached, checked_at=checked[name]
            )
        info = plugins.infos.get(name)
        if info is not None:
            info.tools = [d.tool_id for d in answers.get(name, [])]
    plugins.tools_known = True  # validate_payload marked own_tools_only can be aimed now


def _fill_versions(
    plugins: AimPlugins, plugin: str, found: list[ToolDetection], context: Any
) -> list[ToolDetection]:
    if "get_version" not in plugins.infos[plugin].hooks:
        return found
    out = []
    for d in found:
        if d.installed and d.version is None:
            tool_context = attrs.evolve(context, tool_id=d.tool_id)
            outcome = plugins.call(
                "get_version",
                plugin,
                {"tool_id": d.tool_id, "context": tool_context},
                timeout_s=context.remaining() if context.deadline else DETECT_TIMEOUT_S,
            )
            if outcome.ok and isinstance(outcome.value, str):
                d = attrs.evolve(d, version=outcome.value.strip() or None)
            elif not outcome.ok:
                d = attrs.evolve(d, reason=d.reason or f"version unknown: {outcome.error}")
        out.append(d)
    return out
