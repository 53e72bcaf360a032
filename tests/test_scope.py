"""Scope globs mean what the path rules check: `Path.glob`'s walk (`*` within a name,
`**` any number of directories, none too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aim_core.scope import Scope, glob_pattern, names

TREE = [
    "top.py",
    ".hidden.py",
    "README.md",
    "src/a.py",
    "src/b.txt",
    "src/sub/c.py",
    "src/sub/deep/d.py",
    "src/sub/deep/e.md",
    "srcx/f.py",
    "docs/g.md",
    "pages/[id].tsx",
    "pages/i.tsx",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for rel in TREE:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x\n")
    return root


def globbed(root: Path, pattern: str) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file()}


def matched(pattern: str) -> set[str]:
    return {rel for rel in TREE if glob_pattern(pattern).match(rel)}


@pytest.mark.parametrize(
    "pattern",
    [
        "src/**/*.py",
        "**/*.py",
        "*.py",
        "src/*",
        "src/*/*.py",
        "src/**/deep/*",
        "s?c/*.py",
        "src/[ab].*",
        "src/[!a].*",
        "**/*.md",
        "pages/*.tsx",
        "*/sub/**/*.md",
    ],
)
def test_a_glob_holds_what_path_glob_walks(tree, pattern):
    assert matched(pattern) == globbed(tree, pattern)


NAME = st.sampled_from(["src", "sub", "deep", "*", "?*", "*.py", "[ab].py", "[!a]*", "*.md", "**"])


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(NAME, min_size=1, max_size=4))
def test_any_glob_agrees_with_path_glob(tree, parts):
    pattern = "/".join(parts)
    if parts[-1] == "**" or "**/**" in pattern:
        return  # Path.glob yields directories there; a scope means the files under them
    assert matched(pattern) == globbed(tree, pattern)


def test_a_trailing_double_star_is_everything_under(tree):
    scope = Scope(tree, ["src/**"])
    assert scope.contains("src/sub/deep/d.py") and not scope.contains("srcx/f.py")
    assert set(scope.existing()) == {t for t in TREE if t.startswith("src/")}


def test_a_star_stays_within_one_directory(tree):
    """`*.py` is the top level's Python files, as the path rules checked it: a tool's
    write to src/sub/c.py is out of that scope."""
    scope = Scope(tree, ["*.py"])
    assert scope.contains("top.py") and not scope.contains("src/sub/c.py")
    assert not names(["*.py"], "src/a.py")
    assert names(["src/**/*.py"], "src/a.py") and names(["**/*.py"], "top.py")
