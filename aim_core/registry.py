"""Find the repository root and the registry; load the coordination rules.

The repository root is the directory holding ``aim/.AIM_ai-tools-registry/``
(where ``aim init`` ran), found from the current directory upward as git finds
``.git``; without one, the git root; else the current directory.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aim_core.display import escape_controls, first_unsafe
from aim_core.errors import ConfigError, UsageError
from aim_core.paths import REGISTRY_RELPATH, RULES_RELPATH
from aim_core.suggest import did_you_mean, show
from aim_core.values import Value

RULES_SCHEMA_VERSION = 1

# The five capabilities of the deployment guide; plugins may serve more.
KNOWN_CAPABILITIES = (
    "code_generation",
    "refactoring",
    "linting",
    "testing",
    "version_checking",
)

# Where a tool the rules name can be had when no installed plugin provides it.
PLUGIN_HINTS = {
    "aider": "pip install aim-plugin-aider",
    "jules": "pip install aim-plugin-jules",
    "claude-cli": "pip install aim-plugin-claude",
    "ruff": "pip install aim-plugin-ruff",
    "pytest": "pip install aim-plugin-pytest",
    "pylint": "pip install aim-plugin-pylint",
    "codex": "pip install aim-plugin-codex",
    "gemini-cli": "pip install aim-plugin-gemini",
    "opencode": "pip install aim-plugin-opencode",
}

# Other vendors' coding CLIs, tried after the guide's own fallbacks.
VENDOR_FALLBACKS = ["codex", "gemini-cli", "opencode"]

# The guide's Step 1.3 routing table (its primary and fallback order first, then the
# other vendors' CLIs) and Step 3.3 security review, as rules.
DEFAULT_RULES: dict[str, Any] = {
    "schema_version": RULES_SCHEMA_VERSION,
    "capabilities": {
        "code_generation": {
            "primary": "jules",
            "fallback": ["aider", "claude-cli", *VENDOR_FALLBACKS],
        },
        "linting": {"primary": "ruff", "fallback": ["pylint"]},
        "refactoring": {"primary": "aider", "fallback": ["claude-cli", *VENDOR_FALLBACKS]},
        "testing": {"primary": "pytest", "fallback": []},
        "version_checking": {
            "primary": "aider",
            "fallback": ["jules", "claude-cli", *VENDOR_FALLBACKS],
        },
    },
    "security": {
        "forbidden_paths": [
            ".git/",
            ".env",
            ".env.*",
            "*.pem",
            "*.key",
            "id_rsa*",
            "id_ed25519*",
            ".ssh/",
            "aim/.AIM_ai-tools-registry/",
        ],
        "allowed_file_patterns": [
            "*.py",
            "*.pyi",
            "*.md",
            "*.rst",
            "*.txt",
            "*.json",
            "*.yaml",
            "*.yml",
            "*.toml",
            "*.cfg",
            "*.ini",
            "*.js",
            "*.jsx",
            "*.ts",
            "*.tsx",
            "*.html",
            "*.css",
            "*.sh",
            "*.go",
            "*.rs",
            "*.java",
            "*.c",
            "*.h",
            "*.cpp",
            "*.sql",
        ],
        "max_payload_bytes": 1048576,
        "credential_policy": {"prompt": "block", "files": "block", "output": "redact"},
    },
}


def find_root(start: Path) -> Path:
    """The repository root for ``start`` (see the module docstring)."""
    from aim_core.paths import find_root as find

    return find(start)


def locate_registry(root: Path, registry_path: str = "auto") -> Path:
    """The registry directory: ``registry_path`` from the config (relative to the
    root), or with ``auto`` the standard place under the root."""
    if registry_path and registry_path != "auto":
        p = Path(registry_path).expanduser()
        return p if p.is_absolute() else root / p
    return root / REGISTRY_RELPATH


def check_registry_dir(path: Path) -> None:
    """Refuse (:class:`UsageError`, exit 2) a registry directory that every user of the
    machine may write to (``/tmp`` itself, a ``chmod 777`` directory): another user
    could put rules there, or links where aim writes its audit log. A missing one is
    made by aim (as its user); a group-writable one is a team's choice and allowed."""
    if os.name != "posix":  # pragma: no cover - no POSIX modes
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing: made by aim; unreadable: said where it is read
    if stat.S_ISDIR(mode) and mode & stat.S_IWOTH:
        raise UsageError(
            f"the registry directory {escape_controls(str(path))} is writable by every user "
            f"of this machine (mode {stat.S_IMODE(mode):o}): another user could put rules "
            "there or replace its audit log; use a directory of your own (mkdir -m 700 ...) "
            "or the default (omit --registry / AIM_REGISTRY)",
        )


class Route(Value):
    """The tools for one capability: ``primary`` first, then ``fallback`` in order."""

    __slots__ = ("fallback", "primary")
    primary: str | None
    fallback: tuple[str, ...]

    def __init__(self, *, primary: str | None, fallback: tuple[str, ...] = ()) -> None:
        self._init(primary=primary, fallback=fallback)

    @property
    def tools(self) -> tuple[str, ...]:
        """Primary then fallbacks, each once."""
        seen: dict[str, None] = {}
        for t in (self.primary, *self.fallback):
            if t:
                seen.setdefault(t, None)
        return tuple(seen)


class Rules(Value):
    """The coordination rules: routes per capability and the security section;
    ``source`` the file they came from (None: the built-in defaults, no registry yet)."""

    __slots__ = ("capabilities", "schema_version", "security", "source")
    capabilities: Mapping[str, Route]
    security: Mapping[str, Any]
    schema_version: int
    source: str | None

    def __init__(
        self,
        *,
        capabilities: Mapping[str, Route],
        security: Mapping[str, Any] | None = None,
        schema_version: int = RULES_SCHEMA_VERSION,
        source: str | None = None,
    ) -> None:
        self._init(
            capabilities=capabilities,
            security={} if security is None else security,
            schema_version=schema_version,
            source=source,
        )

    def route(self, capability: str) -> Route | None:
        """The route of a capability, or None when the rules don't name it."""
        return self.capabilities.get(capability)

    def tool_ids(self) -> tuple[str, ...]:
        """Every tool the rules name, in order of first mention."""
        seen: dict[str, None] = {}
        for route in self.capabilities.values():
            for t in route.tools:
                seen.setdefault(t, None)
        return tuple(seen)


_SECURITY_KEYS = {
    "forbidden_paths": "a list of path patterns",
    "allowed_file_patterns": "a list of file name patterns",
    "max_payload_bytes": "an integer number of bytes",
    "credential_policy": 'a mapping such as {"prompt": "block"}',
}


def parse_rules(data: Any, where: str) -> Rules:
    """Check the rules' structure and build :class:`Rules`; errors name file and field."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a JSON object, got {show(data)}", file=where)
    for key in data:
        if key not in ("schema_version", "capabilities", "security", "description"):
            raise ConfigError(
                f"unknown key{did_you_mean(key, ('schema_version', 'capabilities', 'security'))}; "
                "remove it",
                file=where,
                field=key,
            )
    version = data.get("schema_version", RULES_SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(
            f"expected an integer, got {show(version)}", file=where, field="schema_version"
        )
    if version > RULES_SCHEMA_VERSION:
        raise ConfigError(
            f"schema_version {version} is newer than this aim understands; upgrade aim-core",
            file=where,
            field="schema_version",
        )
    routes = _parse_routes(data.get("capabilities"), where)
    security = _parse_security(data.get("security", {}), where)
    return Rules(capabilities=routes, security=security, schema_version=version, source=where)


def _parse_routes(caps: Any, where: str) -> dict[str, Route]:
    if not isinstance(caps, dict):
        raise ConfigError(
            'expected an object of capabilities ("linting": {"primary": "ruff"}), '
            f"got {show(caps)}",
            file=where,
            field="capabilities",
        )
    routes: dict[str, Route] = {}
    for cap, entry in caps.items():
        base = f"capabilities.{escape_controls(cap)}"
        _plain(cap, where, base, "a capability")
        if not isinstance(entry, dict):
            raise ConfigError(
                f"expected an object with primary and fallback, got {show(entry)}",
                file=where,
                field=base,
            )
        for key in entry:
            if key not in ("primary", "fallback", "description"):
                raise ConfigError(
                    f"unknown key{did_you_mean(key, ('primary', 'fallback'))}; remove it",
                    file=where,
                    field=f"{base}.{key}",
                )
        primary = entry.get("primary")
        if primary is not None and (not isinstance(primary, str) or not primary):
            raise ConfigError(
                f'expected a tool id such as "ruff", got {show(primary)}',
                file=where,
                field=f"{base}.primary",
            )
        fallback = entry.get("fallback", [])
        if not isinstance(fallback, list) or not all(isinstance(t, str) and t for t in fallback):
            raise ConfigError(
                f'expected a list of tool ids such as ["aider"], got {show(fallback)}',
                file=where,
                field=f"{base}.fallback",
            )
        if primary:
            _plain(primary, where, f"{base}.primary", "a tool id")
        for i, tool in enumerate(fallback):
            _plain(tool, where, f"{base}.fallback[{i}]", "a tool id")
        routes[cap] = Route(primary=primary, fallback=tuple(fallback))
    return routes


def _plain(name: str, where: str, field: str, what: str) -> None:
    """Refuse a name with a control or invisible format character: aim shows it in
    ``aim status``, ``aim route`` and its messages, where it could pass for aim's text."""
    bad = first_unsafe(name)
    if bad is not None:
        raise ConfigError(
            f"{show(name)} holds a control character ({bad!r}), which {what} cannot; remove it",
            file=where,
            field=field,
        )


def _parse_security(security: Any, where: str) -> dict[str, Any]:
    if not isinstance(security, dict):
        raise ConfigError(f"expected an object, got {show(security)}", file=where, field="security")
    for key, value in security.items():
        if key not in _SECURITY_KEYS:
            raise ConfigError(
                f"unknown key{did_you_mean(key, _SECURITY_KEYS)}; remove it",
                file=where,
                field=f"security.{key}",
            )
        ok = (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
            if key.endswith(("_paths", "_patterns"))
            else isinstance(value, int) and not isinstance(value, bool) and value > 0
            if key == "max_payload_bytes"
            else isinstance(value, dict)
        )
        if not ok:
            raise ConfigError(
                f"expected {_SECURITY_KEYS[key]}, got {show(value)}",
                file=where,
                field=f"security.{key}",
            )
    return security


MAX_RULES_BYTES = 1024 * 1024


def load_rules(registry: Path) -> Rules:
    """The registry's coordination rules; the guide's defaults when there is no registry."""
    path = registry / RULES_RELPATH
    if not path.exists():
        rules = parse_rules(copy.deepcopy(DEFAULT_RULES), "<built-in defaults>")
        return rules.evolve(source=None)
    from aim_core import jsonc

    try:
        size = path.stat().st_size
        if size > MAX_RULES_BYTES:
            raise ConfigError(
                f"the file is {size} bytes, more than {MAX_RULES_BYTES} (1 MiB); check that "
                "this is the coordination rules file",
                file=str(path),
            )
        data = jsonc.loads(path.read_text(encoding="utf-8"))
    except jsonc.JsonSyntaxError as e:
        raise ConfigError(f"{e}; fix the JSON syntax", file=str(path)) from None
    except OSError as e:
        raise ConfigError(f"cannot read the file: {e.strerror}", file=str(path)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"not UTF-8 text (byte {e.start} is {e.object[e.start : e.start + 1]!r}); "
            "save the file as UTF-8",
            file=str(path),
        ) from None
    return parse_rules(data, str(path))
