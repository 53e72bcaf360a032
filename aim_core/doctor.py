"""``aim doctor``: the guide's environment checklist, each line passed or with its fix."""

from __future__ import annotations

import os
import sys
import tempfile

from attrs import frozen

from aim_core.project import Project


@frozen(kw_only=True)
class Check:
    """One line of the checklist. ``blocking`` failures make ``aim doctor`` exit 1."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    blocking: bool = True


def run_checks(project: Project) -> list[Check]:
    """Every check of the guide's Environment Requirements, in its order."""
    checks = _python_checks()
    checks.append(_git_check(project))
    checks.append(_write_access(project))
    checks.append(_workspace_check(project))
    checks.append(_run_server_check())
    checks += _registry_checks(project)
    checks += _tool_checks(project)
    return checks


def _python_checks() -> list[Check]:
    checks: list[Check] = []
    v = sys.version_info
    checks.append(
        Check(
            name="Python 3.10+",
            ok=v >= (3, 10),
            detail=f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})",
            fix="install Python 3.10 or newer",
        )
    )
    try:
        import yaml

        checks.append(Check(name="PyYAML", ok=True, detail=f"PyYAML {yaml.__version__}"))
    except ImportError:
        checks.append(
            Check(name="PyYAML", ok=False, detail="not installed", fix="pip install PyYAML")
        )
    return checks


def _git_check(project: Project) -> Check:
    git = project.context().which("git")
    if git is None:
        return Check(
            name="git", ok=False, detail="git not found on PATH", fix="install git", blocking=False
        )
    r = project.context().run([git, "--version"], timeout_s=10)
    inside = (project.root / ".git").exists()
    return Check(
        name="git",
        ok=r.exit_code == 0,
        detail=(r.stdout.strip() or r.stderr.strip())
        + ("" if inside else " (this directory is not a git repository)"),
        fix="check the git installation",
        blocking=False,
    )


def _workspace_check(project: Project) -> Check:
    """Whether aim can see and undo what a tool changes here (docs/SECURITY.md)."""
    from aim_core.gitmeta import find_git_dir, read_status
    from aim_core.treestate import copy_budget_bytes

    budget = copy_budget_bytes()

    found = find_git_dir(project.root)
    if found is None:
        return Check(
            name="Workspace",
            ok=True,
            detail="not a git repository: every file outside the scope is copied before "
            f"each attempt (up to {budget >> 20} MB)",
            blocking=False,
        )
    status = read_status(project.root, found[0])
    if not status.readable:
        return Check(
            name="Workspace",
            ok=False,
            detail=f"git cannot read this repository ({status.error}): aim copies every "
            f"file before each attempt and refuses above {budget >> 20} MB",
            fix=f"git config --global --add safe.directory {project.root}",
            blocking=False,
        )
    size = 0
    for rel in status.untracked | status.dirty:
        try:
            size += (project.root / rel).lstat().st_size
        except OSError:
            continue
    fits = size <= budget
    return Check(
        name="Workspace",
        ok=fits,
        detail=f"{len(status.untracked)} untracked and {len(status.dirty)} changed files "
        f"({size >> 20} MB) are copied before each attempt; "
        f"{len(status.ignored_dirs)} git-ignored folders watched two levels deep",
        fix="commit, stash or ignore them, or raise AIM_COPY_BUDGET_MB",
        blocking=False,
    )


def _run_server_check() -> Check:
    """Whether ``aim run`` is served by aim's run server (docs/PERFORMANCE.md)."""
    import os

    from aim_core import resident_client as rc

    if os.environ.get(rc.DISABLE_VAR, "1") == "0":
        return Check(name="Run server", ok=True, detail=f"off ({rc.DISABLE_VAR}=0)", blocking=False)
    path = rc.socket_path(rc.key_material())
    if path is None:
        where = os.environ.get(rc.DIR_VAR) or "its directory"
        return Check(
            name="Run server",
            ok=False,
            detail=f"not used: {where} is not a directory only you can open",
            fix=f"chmod 700 it, or set {rc.DIR_VAR} to a directory of your own",
            blocking=False,
        )
    pid = rc.servers(os.path.dirname(path)).get(path)
    detail = (
        f"running (pid {pid}, {path}): aim run starts without importing aim"
        if pid
        else "not running: the next aim run starts it for the ones after"
    )
    return Check(name="Run server", ok=True, detail=detail, blocking=False)


def _registry_checks(project: Project) -> list[Check]:
    checks: list[Check] = []
    checks.append(
        Check(
            name="AIM registry",
            ok=project.has_registry,
            detail=str(project.registry) + ("" if project.has_registry else " does not exist"),
            fix="run 'aim init' in the repository root",
        )
    )
    if project.has_registry:
        checks.append(
            Check(
                name="Coordination rules",
                ok=True,
                detail=f"{len(project.rules.capabilities)} capabilities routed",
            )
        )
    return checks


def _tool_checks(project: Project) -> list[Check]:
    checks: list[Check] = []
    report = project.detect()
    ai = sorted(
        t
        for t, s in report.tools.items()
        if s.usable and "code_generation" in s.detection.capabilities
    )
    others = sorted(t for t, s in report.tools.items() if s.usable and t not in ai)
    checks.append(
        Check(
            name="At least one AI tool",
            ok=bool(ai),
            detail=", ".join(ai) if ai else "no AI coding tool is installed and ready",
            fix="install one: pip install aider-chat (then see 'aim status')",
        )
    )
    if others:
        checks.append(Check(name="Other tools", ok=True, detail=", ".join(others)))
    broken = [i for i in project.plugins.infos.values() if i.status == "broken"]
    checks.append(
        Check(
            name="Plugins",
            ok=not broken,
            detail="all loaded"
            if not broken
            else "; ".join(f"{i.name}: {i.error}" for i in broken),
            fix="see 'aim plugins' for the command that fixes each",
            blocking=False,
        )
    )
    return checks


def _write_access(project: Project) -> Check:
    try:
        fd, name = tempfile.mkstemp(prefix=".aim-doctor-", dir=project.root)
        os.close(fd)
        os.unlink(name)
        ok, detail = True, f"{project.root} is writable"
    except OSError as e:
        ok, detail = False, f"{project.root}: {e.strerror}"
    return Check(
        name="Write access",
        ok=ok,
        detail=detail,
        fix="run aim where you may write, or fix the directory's permissions",
    )
