"""``aim status``: the registry, the tools and the routing, as the guide's Step 1.2 shows.

``collect`` builds the data in the shape of ``aim status --json``;
``render`` turns that data into the guide's text layout. Rendering needs
nothing but the data, so it can be served from a cache.
"""

from __future__ import annotations

from typing import Any

from aim_core.project import Project
from aim_core.registry import PLUGIN_HINTS

RULE = "=" * 70


def collect(project: Project, *, refresh: bool = False) -> dict[str, Any]:
    """Everything ``aim status`` shows, as JSON-ready data."""
    rules = project.rules
    report = project.detect(refresh=refresh)
    plugins = project.plugins
    order = list(rules.tool_ids())
    order += [t for t in report.tools if t not in order]
    tools: list[dict[str, Any]] = []
    for tool_id in order:
        state = report.tools.get(tool_id)
        if state is None:
            hint = PLUGIN_HINTS.get(tool_id, f"pip install aim-plugin-{tool_id}")
            tools.append(
                {
                    "tool_id": tool_id,
                    "plugin": None,
                    "detected": False,
                    "ready": None,
                    "version": None,
                    "path": None,
                    "reason": f"no plugin installed ({hint})",
                    "capabilities": [],
                }
            )
            continue
        d = state.detection
        tools.append(
            {
                "tool_id": tool_id,
                "plugin": state.plugin,
                "detected": d.installed,
                "ready": d.ready if d.installed else False,
                "version": d.version,
                "path": d.path,
                "reason": d.reason,
                "failure": d.failure.value if d.failure else None,
                "capabilities": list(d.capabilities),
            }
        )
    broken = [
        {"name": i.name, "distribution": i.distribution, "error": i.error, "fix": i.fix}
        for i in plugins.infos.values()
        if i.status == "broken"
    ]
    return {
        "root": str(project.root),
        "registry_path": str(project.registry),
        "registry_exists": project.has_registry,
        "config_path": project.settings.source,
        "audit_logging": project.settings.enable_audit_logging,
        "tools": tools,
        "routing": {
            cap: {"primary": r.primary, "fallback": list(r.fallback)}
            for cap, r in rules.capabilities.items()
        },
        "plugins_broken": broken,
        "conflicts": [{"tool_id": t, "plugin": p, "owner": o} for t, p, o in report.conflicts],
        "cached": not report.spawned,
    }


def _note(tool: dict[str, Any]) -> str:
    if tool["plugin"] is None:
        return tool["reason"] or ""
    if not tool["detected"]:
        return tool["reason"] or "not installed"
    if tool["ready"] is False:
        reason = tool["reason"] or "not ready"
        return reason
    return ""


def render(data: dict[str, Any]) -> str:
    """The guide's Step 1.2 layout, plus the root, a notes column and broken plugins."""
    lines = [f"Repository Root: {data['root']}"]
    registry = data["registry_path"]
    if not data.get("registry_exists", True):
        registry += "  (not found: run 'aim init')"
    lines.append(f"AIM Registry Path: {registry}")
    if not data.get("audit_logging", True):
        lines.append("Audit Logging: OFF (enable_audit_logging: false)")
    lines.append("")
    lines.append(f"{'Tool ID':<20} {'Detected':<12} {'Version':<24} Notes")
    lines.append(RULE)
    for t in data["tools"]:
        detected = "Yes" if t["detected"] else "No"
        version = t["version"] or "N/A"
        lines.append(f"{t['tool_id']:<20} {detected:<12} {version:<24} {_note(t)}".rstrip())
    lines.append("")
    lines.append("Capability Routing:")
    lines.append(RULE)
    for cap, route in data["routing"].items():
        lines.append(f"{cap}:")
        lines.append(f"  Primary:  {route['primary'] or '-'}")
        if route["fallback"]:
            lines.append(f"  Fallback: {', '.join(route['fallback'])}")
    if data["plugins_broken"] or data.get("conflicts"):
        lines.append("")
        lines.append("Plugin problems:")
        lines.append(RULE)
        for b in data["plugins_broken"]:
            dist = f" ({b['distribution']})" if b.get("distribution") else ""
            fix = f" -- fix: {b['fix']}" if b.get("fix") else ""
            lines.append(f"  {b['name']}{dist}: {b['error']}{fix}")
        for c in data.get("conflicts", []):
            lines.append(
                f"  {c['plugin']}: also provides '{c['tool_id']}', which '{c['owner']}' owns; "
                f"uninstall one of them"
            )
    return "\n".join(lines) + "\n"


def plugin_files(plugins: Any) -> list[str]:
    """The source files of the loaded plugins (modules, or the modules of plugin objects)."""
    import sys

    files = []
    for plugin in plugins.pm.get_plugins():
        module = plugin if hasattr(plugin, "__file__") else sys.modules.get(type(plugin).__module__)
        path = getattr(module, "__file__", None)
        if path:
            files.append(path)
    return sorted(set(files))


def save_snapshot(project: Project, outputs: dict[str, str]) -> None:
    """Let the next ``aim status`` print ``outputs`` without loading anything, for as
    long as nothing they depend on changes (:mod:`aim_core.status_snapshot`)."""
    from aim_core import status_snapshot

    if project._detection is None:
        return
    report = project.detect()
    detection = {
        # a plugin's own code, too: an author editing an editable install sees the change
        "stamps": report.stamps + plugin_files(project.plugins),
        "path_dirs": report.path_dirs,
        "valid_until": report.valid_until,
        "env_patterns": report.env_patterns,
    }
    stamps = status_snapshot.stamps_for(
        project.root, project.registry, project.settings.source, project.environ, detection
    )
    status_snapshot.save(
        project.root, project.environ, stamps, outputs, list(project.settings.warnings)
    )


def command(project: Project, *, refresh: bool = False, as_json: bool = False) -> str:
    """``aim status``: what to print; also saves the snapshot the next one prints."""
    import json

    from aim_core.display import escape_controls

    data = collect(project, refresh=refresh)
    # what tools print as their version, the rules' tool ids: shown, never obeyed
    text = escape_controls(render(data), keep="\n")
    # what the next, warm status prints: the same, served from the cache
    warm = json.dumps({**data, "cached": True}, indent=2, ensure_ascii=False) + "\n"
    save_snapshot(project, {"json": warm, "text": text})
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n" if as_json else text


def main_without_click(args: list[str]) -> int | None:
    """``aim status [--json]`` with no other option, without importing click (~20 ms of a
    command that should take as little as it can). None: let the full CLI answer (an
    unexpected error, so that it is reported the usual way)."""
    import sys

    from aim_core.errors import AimError
    from aim_core.log import configure

    configure()
    try:
        out = command(Project.for_command(), as_json=args == ["--json"])
    except AimError as e:
        from aim_core.cli_frame import error_json
        from aim_core.display import escape_controls

        sys.stderr.write(f"Error: {escape_controls(str(e), keep=chr(10))}\n")
        if args == ["--json"]:
            sys.stdout.write(error_json(e) + "\n")
        return e.exit_code
    except Exception:
        return None
    sys.stdout.write(out)
    return 0
