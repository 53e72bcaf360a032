"""``config/aim_config.yaml`` → :class:`Settings`.

Precedence: defaults < the file < ``AIM_*`` environment variables < command-line
flags. A missing file means defaults; an unknown key is a warning naming the
nearest known key; a value of the wrong type is a :class:`ConfigError` (exit 2)
naming the file and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import field, frozen

from aim_core.errors import ConfigError
from aim_core.paths import CONFIG_RELPATH
from aim_core.suggest import did_you_mean, show

SCHEMA_VERSION = 1


@frozen(kw_only=True)
class Settings:
    """The effective configuration of one aim command."""

    schema_version: int = SCHEMA_VERSION
    enable_aim: bool = True
    enable_audit_logging: bool = True
    audit_log_retention_days: int = 30
    default_timeout_ms: int = 30000
    registry_path: str = "auto"
    actor: str = "pipeline"
    detection_cache_ttl_s: int = 3600
    readiness_cache_ttl_s: int = 30
    max_cost_usd: float | None = None  # per aim run, US dollars; None: no limit
    tools: Mapping[str, Mapping[str, Any]] = field(factory=dict)
    source: str | None = None  # the file read, if any
    warnings: tuple[str, ...] = ()

    def tool_options(self, tool_id: str) -> Mapping[str, Any]:
        """The ``tools: {tool_id: ...}`` section of the config, empty if absent."""
        return self.tools.get(tool_id, {})


# key -> (python type, how an error describes the expected value, minimum, maximum)
_KEYS: dict[str, tuple[type, str, float | None, float | None]] = {
    "schema_version": (int, "an integer schema version", 1, None),
    "enable_aim": (bool, "true or false", None, None),
    "enable_audit_logging": (bool, "true or false", None, None),
    "audit_log_retention_days": (int, "an integer number of days", 1, 36500),
    "default_timeout_ms": (int, "an integer number of milliseconds", 1, 7 * 24 * 3600 * 1000),
    "registry_path": (str, '"auto" or a path', None, None),
    "actor": (str, "a name", None, None),
    "detection_cache_ttl_s": (int, "an integer number of seconds", 0, 10**9),
    "readiness_cache_ttl_s": (int, "an integer number of seconds", 0, 10**9),
    "max_cost_usd": (float, "a number of US dollars greater than 0", 1e-9, None),
    "tools": (dict, "a mapping of tool ids to their options", None, None),
}
KNOWN_KEYS = tuple(_KEYS)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _check(key: str, value: Any, where: str) -> Any:
    kind, expect, minimum, maximum = _KEYS[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and ok and not value < float("inf"):
        ok = False  # NaN, Infinity
    if not ok:
        raise ConfigError(f"expected {expect}, got {show(value)}", file=where, field=key)
    if minimum is not None and value < minimum:
        least = "greater than 0" if kind is float else f"at least {minimum}"
        raise ConfigError(f"must be {least}, got {value}", file=where, field=key)
    if maximum is not None and value > maximum:
        raise ConfigError(f"must be at most {maximum}, got {value}", file=where, field=key)
    if key == "actor":
        from aim_core.display import first_unsafe

        bad = first_unsafe(value)
        if bad is not None or not value.strip():
            why = f"holds a control character ({bad!r})" if bad else "is empty"
            raise ConfigError(
                f"{show(value)} {why}: the actor is in every audit record and report; "
                "use a plain name",
                file=where,
                field=key,
            )
    if key == "tools":
        for tool_id, options in value.items():
            if not isinstance(options, dict):
                raise ConfigError(
                    f"expected a mapping of options (model, args, ...), got {show(options)}",
                    file=where,
                    field=f"tools.{tool_id}",
                )
            args = options.get("args")
            if args is not None and not (
                isinstance(args, list) and all(isinstance(a, str) for a in args)
            ):
                raise ConfigError(
                    f"expected a list of command-line arguments as texts, got {show(args)}",
                    file=where,
                    field=f"tools.{tool_id}.args",
                )
    return value


def _from_env(key: str, text: str) -> Any:
    name = f"AIM_{key.upper()}"
    kind, expect, _, _ = _KEYS[key]
    if kind is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"expected true or false, got {show(text)}", field=name)
    if kind in (int, float):
        try:
            return kind(text.strip())
        except ValueError:
            raise ConfigError(f"expected {expect}, got {show(text)}", field=name) from None
    return text


MAX_CONFIG_BYTES = 1024 * 1024
MAX_DEPTH = 64  # levels of nested mappings and lists
MAX_NODES = 100_000  # values once every alias is expanded (a "billion laughs" has 10^9)


def _parse_yaml(text: str, where: str) -> Any:
    """YAML to data; the result is cached by content (as JSON) because importing PyYAML
    and parsing costs more than the rest of a warm command. Input no person writes is
    refused with a clear error: aliases that expand past :data:`MAX_NODES` values (an
    alias bomb), nesting deeper than :data:`MAX_DEPTH`."""
    import json

    from aim_core.digest import sha256_hex
    from aim_core.paths import cache_dir

    if text.startswith("\ufeff"):
        text = text[1:]
    cached = cache_dir() / "config-v1" / f"{sha256_hex(text.encode())}.json"
    try:
        return json.loads(cached.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    _check_flow_depth(text, where)
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, where)
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{at}not valid YAML: {problem}", file=where) from None
    except RecursionError:
        raise ConfigError(
            f"nested more than {MAX_DEPTH} levels deep; flatten the file", file=where
        ) from None
    finally:
        loader.dispose()
    try:
        from aim_core import credentials

        if credentials.scan(text, entropy=False):
            return data  # a credential in the config: never copied into the cache
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(cached)
    except (OSError, TypeError, ValueError):
        pass  # data JSON can't hold (dates) or a cache that can't be written: no cache
    return data


def _check_flow_depth(text: str, where: str) -> None:
    """Refuse ``[[[[...`` or ``{{{{...`` deeper than :data:`MAX_DEPTH` before the parser
    recurses into it (brackets in quotes and comments are counted too: a conservative
    bound, far above what a config holds)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for i, c in enumerate(text):
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, i) + 1
                col = i - (text.rfind("\n", 0, i) + 1) + 1
                raise ConfigError(
                    f"line {line}, column {col}: nested more than {MAX_DEPTH} levels deep; "
                    "flatten the file",
                    file=where,
                )
        elif c in "]}":
            depth = max(0, depth - 1)


def _check_expansion(root: Any, where: str) -> None:
    """Refuse a document whose aliases expand to more than :data:`MAX_NODES` values, or
    that nests deeper than :data:`MAX_DEPTH` (counted on the composed nodes, before
    anything is built, each shared node once)."""
    import yaml

    size: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            mark = node.start_mark
            raise ConfigError(
                f"line {mark.line + 1}, column {mark.column + 1}: nested more than "
                f"{MAX_DEPTH} levels deep; flatten the file",
                file=where,
            )
        if isinstance(node, yaml.ScalarNode):
            size[id(node)] = 1
            continue
        children = (
            [x for pair in node.value for x in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if done:
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            if size[id(node)] > MAX_NODES:
                raise ConfigError(
                    f"its aliases (*name) expand to more than {MAX_NODES} values (an alias "
                    "bomb?); write the values out or use fewer aliases",
                    file=where,
                )
        elif id(node) not in size:
            size[id(node)] = 0  # being counted: a node that contains itself adds nothing
            stack.append((node, depth, True))
            stack.extend((c, depth + 1, False) for c in children if id(c) not in size)


def read_config_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Parse and check one config file; return its values and warnings."""
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"the file is {size} bytes, more than {MAX_CONFIG_BYTES} (1 MiB); a config "
                "holds a few settings: check that this is the right file",
                file=where,
            )
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ConfigError("is a directory; the config is a YAML file", file=where) from None
    except OSError as e:
        raise ConfigError(f"cannot read the file: {e.strerror}", file=where) from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"not UTF-8 text (byte {e.start} is {e.object[e.start : e.start + 1]!r}); "
            "save the file as UTF-8",
            file=where,
        ) from None
    data = _parse_yaml(text, where)
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of settings (key: value), got {show(data)}", file=where
        )
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for key, value in data.items():
        if key not in _KEYS:
            warnings.append(
                f"{where}: unknown key '{key}'{did_you_mean(str(key), KNOWN_KEYS)}; it is ignored"
            )
            continue
        values[key] = _check(key, value, where)
    if values.get("schema_version", SCHEMA_VERSION) > SCHEMA_VERSION:
        raise ConfigError(
            f"schema_version {values['schema_version']} is newer than this aim understands "
            f"({SCHEMA_VERSION}); upgrade aim-core",
            file=where,
            field="schema_version",
        )
    return values, warnings


def load_settings(
    root: Path,
    *,
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings for a repository root.

    :param config_path: an explicit file (``--config``); it must exist. Default
        ``$AIM_CONFIG`` or ``<root>/config/aim_config.yaml``, which may be absent.
    :param overrides: values from command-line flags (``actor``, ``registry_path``).
    """
    env = os.environ if environ is None else environ
    explicit = config_path or env.get("AIM_CONFIG")
    path = Path(explicit) if explicit else root / CONFIG_RELPATH
    if explicit and not path.is_file():
        raise ConfigError(
            "config file not found; check the path given with --config or AIM_CONFIG",
            file=str(path),
        )
    values: dict[str, Any] = {}
    warnings: list[str] = []
    source = None
    if path.is_file() or (path.exists() and not explicit):
        values, warnings = read_config_file(path)  # a directory there is an error too
        source = str(path)
    for key in _KEYS:
        name = f"AIM_{key.upper()}"
        if key != "tools" and name in env:
            values[key] = _check(key, _from_env(key, env[name]), name)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _check(key, value, "--" + key.replace("_", "-"))
    return Settings(**values, source=source, warnings=tuple(warnings))
