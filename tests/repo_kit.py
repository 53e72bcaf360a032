"""What the script-tool fixtures share (tests/conftest.py ``scripted_repo``,
tests/verify_kit.py ``vrepo``): a test plugin installed into the project's
environment, a committed git repository, and tools that are shell scripts."""

from __future__ import annotations

import subprocess
from pathlib import Path


def install_plugin(project, name: str, module: str, body: str) -> None:
    """Install ``body`` as module ``module`` with an ``aim`` entry point ``name``, loaded
    by every ``aim`` the project runs."""
    (project.env.site / f"{module}.py").write_text(body, encoding="utf-8")
    project.env.add_entry_point(name, module)
    project.env.always_load.append(name)


def commit_all(root: Path) -> None:
    """``git init`` (branch main) and commit everything, as a repository under work."""
    for args in (
        ("init", "-q", "-b", "main"),
        ("config", "user.email", "t@example.com"),
        ("config", "user.name", "T"),
        ("add", "-A"),
        ("commit", "-qm", "init"),
    ):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def script_tool(bin_dir: Path, name: str, body: str) -> None:
    """The fake executable ``name``: a ``sh -e`` script running ``body``."""
    path = bin_dir / name
    path.write_text("#!/bin/sh\nset -e\n" + body + "\n", encoding="utf-8")
    path.chmod(0o755)
