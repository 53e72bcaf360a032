"""``aim plugin new NAME``: a working plugin package, ready for ``pip install -e``.

It writes ``aim-plugin-NAME/`` with a ``pyproject.toml`` (the ``aim`` entry
point), a module with the hooks (``detect_tool``, ``get_version``,
``validate_payload``, ``invoke_capability``) that drives the program ``NAME``
through ``context.run``, a README and tests that use the plugin authors' kit
(``aim_core.testing``) and pass as generated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from string import Template

from attrs import frozen

from aim_core._version import __version__
from aim_core.errors import UsageError

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
RESERVED = {"core", "testing"}
DEFAULT_CAPABILITY = "code_generation"


@frozen(kw_only=True)
class PluginSpec:
    """The names of a new plugin, all derived from the tool id."""

    name: str  # tool id and entry-point name
    program: str
    capabilities: tuple[str, ...]

    @property
    def distribution(self) -> str:
        """``aim-plugin-NAME``: what ``pip install`` takes."""
        return f"aim-plugin-{self.name.replace('_', '-')}"

    @property
    def module(self) -> str:
        """``aim_NAME``: the importable package."""
        return "aim_" + self.name.replace("-", "_")


def plugin_spec(
    name: str, *, program: str | None = None, capabilities: Sequence[str] = ()
) -> PluginSpec:
    """Check ``name`` (the tool id) and derive the rest; bad input is a ``UsageError``."""
    if not NAME_RE.match(name) or name in RESERVED:
        raise UsageError(
            f"'{name}' cannot name a plugin: use lowercase letters, digits and single "
            "hyphens, starting with a letter (e.g. 'mytool' or 'my-tool')"
            + (f"; '{name}' is taken by aim itself" if name in RESERVED else ""),
            field="NAME",
        )
    caps = tuple(dict.fromkeys(capabilities or (DEFAULT_CAPABILITY,)))
    for cap in caps:
        if not re.match(r"^[a-z][a-z0-9_]*$", cap):
            raise UsageError(
                f"'{cap}' cannot name a capability: use lowercase letters, digits and "
                "underscores (e.g. code_generation)",
                field="--capability",
            )
    return PluginSpec(name=name, program=program or name, capabilities=caps)


def _python_tuple(items: Sequence[str]) -> str:
    if not items:
        return "()"
    return "(" + ", ".join(json.dumps(i) for i in items) + ",)"


def render(spec: PluginSpec) -> dict[str, str]:
    """The files of the package, path (relative to its directory) -> text."""
    from aim_core.registry import KNOWN_CAPABILITIES

    major_minor = ".".join(__version__.split(".")[:2])
    values = {
        "name": spec.name,
        "program": spec.program,
        "module": spec.module,
        "distribution": spec.distribution,
        "aim_version": major_minor,
        "capability": spec.capabilities[0],
        "capabilities": _python_tuple(spec.capabilities),
        "capability_list": ", ".join(spec.capabilities),
        "extra_capabilities": _python_tuple(
            [c for c in spec.capabilities if c not in KNOWN_CAPABILITIES]
        ),
    }
    templates = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"{spec.module}/__init__.py": "module.py.tmpl",
        f"tests/test_{spec.module}.py": "test_plugin.py.tmpl",
    }
    folder = resources.files("aim_core") / "templates" / "plugin"
    return {
        path: Template(folder.joinpath(tmpl).read_text(encoding="utf-8")).substitute(values)
        for path, tmpl in templates.items()
    }


def new_plugin(spec: PluginSpec, where: Path) -> list[Path]:
    """Write the package into ``where`` (which must not exist or be empty); the files."""
    if where.exists() and (not where.is_dir() or any(where.iterdir())):
        raise UsageError(
            "the directory exists and is not empty; choose another --path or remove it",
            file=str(where),
        )
    written = []
    for relpath, text in render(spec).items():
        path = where / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
