"""``aim init``: a working config, registry and the guide's example workstreams.

Nothing is overwritten without ``force``; every file is reported as written
or kept.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from attrs import define, field

from aim_core.paths import (
    AUDIT_DIRNAME,
    CONFIG_RELPATH,
    REGISTRY_RELPATH,
    RULES_RELPATH,
    RUNS_DIRNAME,
)
from aim_core.registry import DEFAULT_RULES

EXAMPLES_DIR = "workstreams/staging_test"
EXAMPLES = ("ws-aim-validation", "ws-add-docstrings", "ws-add-tests", "ws-refactor-simple")
SCRIPTS = ("aim_status", "run_workstream", "aim_audit_query", "validate_workstreams")
# the guide's Step 4.1 survey forms: written when missing, never overwritten (even by --force)
FEEDBACK_FORMS = {
    "aim/FEEDBACK_FORM.md": "FEEDBACK_FORM.md",
    ".github/ISSUE_TEMPLATE/aim_feedback.md": "aim_feedback.md",
}
GITIGNORE_HEADER = "# aim: machine-local audit chain and run state (never commit them)"


@define
class InitReport:
    """What ``aim init`` did, file by file (paths relative to the root)."""

    written: list[str] = field(factory=list)
    kept: list[str] = field(factory=list)
    created_dirs: list[str] = field(factory=list)
    gitignore_added: list[str] = field(factory=list)


def _template(*parts: str) -> str:
    return resources.files("aim_core").joinpath("templates", *parts).read_text(encoding="utf-8")


def rules_text() -> str:
    """The coordination rules ``aim init`` writes: the guide's routing table."""
    return json.dumps(DEFAULT_RULES, indent=2) + "\n"


def init_project(
    root: Path,
    *,
    force: bool = False,
    with_scripts: bool = False,
    registry: Path | None = None,
) -> InitReport:
    """Create config, registry and example workstreams under ``root``."""
    report = InitReport()
    registry = registry or root / REGISTRY_RELPATH

    def rel(p: Path) -> str:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            return str(p)

    def write(path: Path, text: str, *, executable: bool = False) -> None:
        if path.exists() and not force:
            report.kept.append(rel(path))
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if executable:
            path.chmod(path.stat().st_mode | 0o111)
        report.written.append(rel(path))

    write(root / CONFIG_RELPATH, _template("aim_config.yaml"))
    write(registry / RULES_RELPATH, rules_text())
    for name in (AUDIT_DIRNAME, RUNS_DIRNAME):
        d = registry / name
        if not d.is_dir():
            d.mkdir(parents=True, exist_ok=True)
            report.created_dirs.append(rel(d) + "/")
    for name in EXAMPLES:
        write(root / EXAMPLES_DIR / f"{name}.json", _template("workstreams", f"{name}.json"))
    if with_scripts:
        for name in SCRIPTS:
            write(
                root / "scripts" / f"{name}.py", _template("scripts", f"{name}.py"), executable=True
            )
    for target, name in FEEDBACK_FORMS.items():
        if not (root / target).exists():
            write(root / target, _template("feedback", name))
    _ignore(root, [rel(registry / AUDIT_DIRNAME) + "/", rel(registry / RUNS_DIRNAME) + "/"], report)
    return report


def _ignore(root: Path, entries: list[str], report: InitReport) -> None:
    path = root / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    present = {line.strip().lstrip("/") for line in text.splitlines()}
    missing = [e for e in entries if e.lstrip("/") not in present and not os.path.isabs(e)]
    if not missing:
        return
    if text and not text.endswith("\n"):
        text += "\n"
    text += "\n".join([GITIGNORE_HEADER, *missing]) + "\n"
    path.write_text(text, encoding="utf-8")
    report.gitignore_added.extend(missing)
