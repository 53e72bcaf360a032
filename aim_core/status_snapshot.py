"""``aim status`` from a snapshot, when nothing it depends on has changed.

A full ``aim status`` imports click, attrs, cattrs, PyYAML and every plugin
before it can print a line. Its output depends only on files and settings
whose change can be seen with a few ``stat`` calls: the config and rules
files, the ``AIM_*`` environment and PATH, the installed packages (the
``sys.path`` directories' mtimes), each detected binary and credentials file,
and the detection cache's time to live. So the full command saves what it
printed with those stamps, and the next one prints it again when every stamp
still matches -- importing nothing but the standard library and starting no
process. Anything unexpected falls back to the full command.

This module must import nothing outside the standard library.
"""

from __future__ import annotations

import marshal
import os
import sys
import time
import zlib

from aim_core.paths import CONFIG_RELPATH, cache_dir_str, find_root_str, state_dir_str

TYPE_CHECKING = False  # typing costs ~9 ms to import; this module must start fast
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any


VERSION = 1


def _digest(text: str) -> str:
    """A short checksum (change detection for cache keys; no hashlib: loading OpenSSL
    costs ~4 ms here)."""
    data = text.encode("utf-8", "surrogatepass")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"


def _stat(path: str | os.PathLike[str]) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _dir_mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def sys_path_stamps() -> dict[str, int | None]:
    """Where packages (plugins) are installed, with mtimes that change when one is
    added or removed. ``sys.path[0]`` (the script's directory, or the current one
    under ``python -m``) is left out, so ``aim`` and ``python -m aim_core`` agree."""
    return {p: _dir_mtime(p) for p in sys.path[1:] if p and os.path.isdir(p)}


def tool_variables_key(patterns: list[str], environ: Mapping[str, str]) -> str:
    """A hash of the variables the tools read (their ``env_passthrough``: API keys, base
    URLs): setting or removing a key changes readiness."""
    names = {p for p in patterns if not any(c in p for c in "*?[")}
    globs = [p for p in patterns if p not in names]
    matches = _glob_matcher(tuple(sorted(globs))) if globs else None
    chosen = sorted(
        (k, v)
        for k, v in environ.items()
        if k in names or (matches is not None and matches(k) is not None)
    )
    return _digest(repr(chosen))


_MATCHERS: dict[tuple[str, ...], Any] = {}


def _glob_matcher(globs: tuple[str, ...]) -> Any:
    """One compiled pattern for ``any(fnmatch.fnmatchcase(name, g) for g in globs)``:
    its ``fullmatch`` (called once per variable of the environment, for each plugin)."""
    matcher = _MATCHERS.get(globs)
    if matcher is None:
        import fnmatch
        import re

        matcher = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)).match
        _MATCHERS[globs] = matcher
    return matcher


def environment_key(environ: Mapping[str, str]) -> str:
    """A hash of what in the environment can change the status: AIM_* and PATH."""
    items = sorted((k, v) for k, v in environ.items() if k.startswith("AIM_") or k == "PATH")
    items.append(("python", sys.executable))
    return _digest(repr(items))


def _snapshot_path(root: str, environ: Mapping[str, str]) -> str:
    return os.path.join(cache_dir_str(environ), "status", f"{_digest(str(root))}.marshal")


def stamps_for(
    root: Path,
    registry: Path,
    config: str | None,
    environ: Mapping[str, str],
    detection: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything a snapshot's validity rests on, taken now."""
    return {
        "version": VERSION,
        "env": environment_key(environ),
        "config": [str(config), _stat(config) if config else None],
        "default_config": _stat(os.path.join(root, CONFIG_RELPATH)),
        "registry": str(registry),
        "rules": _stat(os.path.join(registry, "AIM_cross-tool", "AIM_coordination-rules.json")),
        "sys_path": sys_path_stamps(),
        "files": {p: _stat(p) for p in detection.get("stamps", [])},
        "path_dirs": {d: _dir_mtime(d) for d in detection.get("path_dirs", [])},
        "valid_until": detection.get("valid_until", 0),
        "tool_env": [
            detection.get("env_patterns", []),
            tool_variables_key(detection.get("env_patterns", []), environ),
        ],
    }


def save(
    root: Path,
    environ: Mapping[str, str],
    stamps: dict[str, Any],
    outputs: dict[str, str],
    warnings: list[str],
) -> None:
    """Remember a full status's output (text and JSON) with the stamps it rests on."""
    path = _snapshot_path(str(root), environ)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:  # marshal: read back without importing anything
            marshal.dump({"stamps": stamps, "outputs": outputs, "warnings": warnings}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that can't be written only costs speed


def _still_valid(root: str, stamps: dict[str, Any], environ: Mapping[str, str]) -> bool:
    if stamps.get("version") != VERSION or time.time() > stamps.get("valid_until", 0):
        return False
    if stamps["env"] != environment_key(environ):
        return False
    patterns, tool_env = stamps["tool_env"]
    if tool_variables_key(patterns, environ) != tool_env:
        return False
    config, config_stamp = stamps["config"]
    if config != "None" and _stat(config) != config_stamp:
        return False
    if _stat(os.path.join(root, CONFIG_RELPATH)) != stamps["default_config"]:
        return False
    registry = stamps["registry"]
    rules = os.path.join(registry, "AIM_cross-tool", "AIM_coordination-rules.json")
    if _stat(rules) != stamps["rules"]:
        return False
    try:
        if any(
            n.endswith(".json")
            for n in os.listdir(os.path.join(state_dir_str(root, environ), "runs", "active"))
        ):
            return False  # a run is live or died: the full command looks after it
    except OSError:
        pass
    if sys_path_stamps() != stamps["sys_path"]:
        return False
    if any(_stat(p) != s for p, s in stamps["files"].items()):
        return False
    return all(_dir_mtime(d) == m for d, m in stamps["path_dirs"].items())


def try_status(args: list[str], environ: Mapping[str, str] | None = None) -> int | None:
    """Print ``aim status [--json]`` from the snapshot and return 0, or None when the
    full command must run."""
    env = os.environ if environ is None else environ
    try:
        root = find_root_str(os.getcwd())
        with open(_snapshot_path(root, env), "rb") as f:
            data = marshal.load(f)
        if not _still_valid(root, data["stamps"], env):
            return None
        out = data["outputs"]["json" if args == ["--json"] else "text"]
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    for w in data.get("warnings", []):
        sys.stderr.write(f"[WARNING] {w}\n")
    sys.stdout.write(out)
    return 0
