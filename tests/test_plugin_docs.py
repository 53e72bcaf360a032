"""Meta-tests: the plugin docs can't drift from the code (datasette's trick).

* every hookspec has a section in docs/plugins/hooks.md with its full signature,
  its parameters, what it returns and an example, and no section documents a hook
  that doesn't exist;
* every hookspec has a ``test_hook_<name>`` test somewhere in tests/;
* the messages shown in the tutorial's "When a plugin breaks" are the ones aim prints
  for the broken plugin shown above them.
"""

from __future__ import annotations

import glob
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aim_core import hookspecs

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "plugins"
HOOKS_MD = DOCS / "hooks.md"
TUTORIAL_MD = DOCS / "tutorial.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def hookspec_functions() -> dict[str, object]:
    return {
        name: func
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(func, "aim_spec")
    }


HOOKS = hookspec_functions()


def full_signature(func) -> str:
    """``def name(arg: Type, ...) -> Return`` as written in hookspecs.py."""
    sig = inspect.signature(func)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {func.__name__}({params}) -> {sig.return_annotation}"


def sections(text: str, level: str = "## ") -> dict[str, str]:
    """Markdown sections by heading (without backticks) -> their text."""
    out: dict[str, str] = {}
    current = None
    for line in text.splitlines(keepends=True):
        if line.startswith(level):
            current = line[len(level) :].strip().strip("`")
            out[current] = ""
        elif current is not None:
            out[current] += line
    return out


def test_the_hooks_are_those_of_the_architecture():
    assert set(HOOKS) == {
        "detect_tool",
        "get_version",
        "invoke_capability",
        "validate_payload",
        "audit_sink",
        "audit_flush",
    }


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_is_documented_with_its_full_signature(name):
    documented = sections(HOOKS_MD.read_text(encoding="utf-8"))
    assert name in documented, f"docs/plugins/hooks.md has no '## {name}' section"
    text = documented[name]
    signature = full_signature(HOOKS[name])
    assert signature in text, f"the '{name}' section lacks the signature `{signature}`"
    for heading in ("**Parameters**", "**Returns**", "**Example**", "**Called:**"):
        assert heading in text, f"the '{name}' section has no {heading}"
    for param in inspect.signature(HOOKS[name]).parameters:
        assert f"- `{param}`" in text, f"the '{name}' section does not describe `{param}`"
    examples = [code for lang, code in FENCE.findall(text) if lang == "python"][1:]
    assert any(f"def {name}(" in code and "@hookimpl" in code for code in examples), (
        f"the '{name}' section has no example implementing it"
    )
    for code in examples:
        compile(code, f"hooks.md:{name}", "exec")


def test_no_section_documents_a_hook_that_does_not_exist():
    documented = set(sections(HOOKS_MD.read_text(encoding="utf-8")))
    assert documented == set(HOOKS), documented ^ set(HOOKS)


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_has_a_test(name):
    pattern = re.compile(rf"^def test_hook_{name}\b", re.MULTILINE)
    found = [
        p.relative_to(REPO)
        for p in (REPO / "tests").rglob("test_*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert found, f"no `def test_hook_{name}` in tests/"


# --------------------------------------------------------------------------- the tutorial


def breakages() -> list[tuple[str, str, list[tuple[str, list[str]]]]]:
    """(title, module source, [(command, expected lines), ...]) of "When a plugin breaks"."""
    text = TUTORIAL_MD.read_text(encoding="utf-8")
    [part] = [t for h, t in sections(text).items() if h.endswith("When a plugin breaks")]
    out = []
    for title, body in sections(part, "### ").items():
        source, commands = None, []
        for lang, code in FENCE.findall(body):
            if lang == "python":
                source = code
            elif lang == "console":
                first, *rest = code.splitlines()
                commands.append((first.removeprefix("$ ").split(), rest))
        if source is not None and commands:
            out.append((title, source, commands))
    return out


BREAKAGES = breakages()


def test_the_tutorial_shows_the_ways_a_plugin_breaks():
    assert [title for title, _, _ in BREAKAGES] == [
        "It does not import",
        "A hook name is misspelt",
        "A hook takes an argument aim does not have",
        "A hook raises",
    ]


@pytest.mark.parametrize(
    "source,commands", [b[1:] for b in BREAKAGES], ids=[b[0] for b in BREAKAGES]
)
def test_when_a_plugin_breaks_shows_what_aim_prints(aim_project, aim_test_env, source, commands):
    folder = aim_test_env.base / "plugin-src"
    folder.mkdir()
    (folder / "aim_xyz.py").write_text(source, encoding="utf-8")
    aim_test_env.python_paths.append(folder)
    aim_test_env.add_entry_point("xyz", "aim_xyz", distribution="aim-plugin-xyz", version="0.1.0")
    project = aim_project(plugins=["xyz"])
    for argv, expected in commands:
        assert argv[0] == "aim"
        result = project.run(*argv[1:])
        patterns = [glob.escape(line) for line in expected if line != "..."]
        result.fnmatch_lines(patterns)


def blocks(path: Path, heading: str, lang: str) -> list[str]:
    """The ``lang`` code blocks of the section whose heading ends with ``heading``."""
    [text] = [
        t for h, t in sections(path.read_text(encoding="utf-8")).items() if h.endswith(heading)
    ]
    return [code for language, code in FENCE.findall(text) if language == lang]


def run_pytest(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "pythonpath=.",
            "--rootdir",
            str(folder),
            str(folder),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tutorial_plugin_passes_its_own_tests(tmp_path):
    """Sections 2, 3 and 5 of the tutorial, copied into files, make a plugin whose tests
    (the conformance suite and the kit's fixtures) pass."""
    package = tmp_path / "aim-plugin-xyz"
    (package / "aim_xyz").mkdir(parents=True)
    (package / "tests").mkdir()
    [pyproject] = blocks(TUTORIAL_MD, "pyproject.toml", "toml")
    [module] = blocks(TUTORIAL_MD, "The hooks", "python")
    [tests] = blocks(TUTORIAL_MD, "Tests with aim's kit", "python")
    (package / "pyproject.toml").write_text(pyproject)
    (package / "aim_xyz" / "__init__.py").write_text(module)
    (package / "tests" / "test_aim_xyz.py").write_text(tests)
    done = run_pytest(package)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" not in done.stdout and " passed" in done.stdout


def test_the_audit_sink_tutorial_works(tmp_path):
    pytest.importorskip("aim_ruff", reason="the end-to-end example routes linting to ruff")
    [module] = blocks(DOCS / "audit-sinks.md", "The smallest sink", "python")
    tests = blocks(DOCS / "audit-sinks.md", "Testing a sink", "python")
    (tmp_path / "aim_failures.py").write_text(module)
    (tmp_path / "test_failures.py").write_text("\n\n".join(tests))
    done = run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" not in done.stdout and " passed" in done.stdout
