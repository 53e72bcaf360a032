"""Where aim keeps its files: the names of the registry's directories and the
machine-local cache directory, and how the repository root is found.

Standard library only, and cheap to import: the fast ``aim status`` path and
every other module take their paths from here.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs ~9 ms to import; this module must start fast
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

REGISTRY_RELPATH = "aim/.AIM_ai-tools-registry"
"""The registry, relative to the repository root (``registry_path: auto``)."""
CONFIG_RELPATH = "config/aim_config.yaml"
RULES_RELPATH = "AIM_cross-tool/AIM_coordination-rules.json"
"""The coordination rules, relative to the registry."""
AUDIT_DIRNAME = "AIM_audit"
"""The audit log's directory in the registry: ``YYYY-MM-DD/audit.jsonl``, ``HEAD.json``."""
RUNS_DIRNAME = "AIM_runs"
"""Run logs, the lock table (``active/``) and attempts' snapshots, in the registry."""
FEEDBACK_DIRNAME = "AIM_feedback"
"""Developer survey answers (``feedback.jsonl``), in the registry."""
WORKSTREAMS_DIR = "workstreams"


def cache_dir_str(env: Mapping[str, str]) -> str:
    """:func:`cache_dir` as a string (no ``pathlib`` import)."""
    if env.get("AIM_CACHE_DIR"):
        return env["AIM_CACHE_DIR"]
    home = env.get("HOME") or os.path.expanduser("~")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Caches", "aim")
    if os.name == "nt":  # pragma: no cover - Windows
        base = env.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
        return os.path.join(base, "aim", "Cache")
    return os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "aim")


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """aim's machine-local cache directory: ``AIM_CACHE_DIR``, else the platform's user
    cache directory, named as platformdirs names it (its ~15 ms import is not paid)."""
    from pathlib import Path

    return Path(cache_dir_str(os.environ if environ is None else environ))


def machine_state_str(env: Mapping[str, str]) -> str:
    """aim's machine-local state directory (kept apart from the cache, so that clearing a
    cache never erases the audit head or a run in progress): ``AIM_STATE_DIR``, else the
    platform's user state directory."""
    if env.get("AIM_STATE_DIR"):
        return env["AIM_STATE_DIR"]
    home = env.get("HOME") or os.path.expanduser("~")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Application Support", "aim")
    if os.name == "nt":  # pragma: no cover - Windows
        base = env.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
        return os.path.join(base, "aim", "State")
    return os.path.join(env.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state"), "aim")


def state_dir_str(root: str, env: Mapping[str, str]) -> str:
    """:func:`state_dir` as a string (no ``pathlib`` import)."""
    import zlib

    real = os.path.realpath(root)
    data = real.encode("utf-8", "surrogateescape")
    key = f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(real))
    return os.path.join(machine_state_str(env), "repos", f"{name[:40]}-{key}")


def state_dir(root: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Path:
    """aim's machine-local state for the repository at ``root``, outside it: the lock
    table of live runs and the snapshots of attempts in progress (``runs/``). A tool
    working in the repository never writes there by accident, and nothing in the
    repository decides what aim checks."""
    from pathlib import Path

    return Path(state_dir_str(os.fspath(root), os.environ if environ is None else environ))


def find_root_str(start: str) -> str:
    """:func:`find_root` on strings (no ``pathlib`` import)."""
    start = os.path.realpath(start)
    git_root = None
    d = start
    while True:
        if os.path.isdir(os.path.join(d, REGISTRY_RELPATH)):
            return d
        if git_root is None and os.path.exists(os.path.join(d, ".git")):
            git_root = d
        parent = os.path.dirname(d)
        if parent == d:
            return git_root or start
        d = parent


def find_root(start: Path) -> Path:
    """The repository root: the directory holding the registry, else the git root,
    else ``start`` (see :mod:`aim_core.registry`)."""
    from pathlib import Path

    return Path(find_root_str(str(start)))


def file_stamp(path: str) -> list[int] | None:
    """``[size, mtime_ns]`` of a file, None when it cannot be read (cache keys)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]
