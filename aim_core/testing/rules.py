"""The rules of the conformance suite and the harness that checks them.

:class:`ConformanceHarness` calls one plugin's hooks the way the core does
(one implementation at a time, only the arguments it names, in a thread with a
time limit), with a real :class:`~aim_core.AimContext` in a temporary
repository, and watches for processes started other than through
``context.run`` (a ``sys.addaudithook`` hook, idle outside a call).
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from aim_core.context import AimContext
from aim_core.models import (
    Failure,
    Invocation,
    InvocationResult,
    ToolDetection,
)
from aim_core.testing.fake_tools import FakeTool, make_fake_tool

if TYPE_CHECKING:
    from aim_core.testing.conformance import AimPluginTests

RULES: dict[str, str] = {
    "registers": "the plugin registers with aim: each @hookimpl names an aim hook and takes "
    "only that hook's arguments",
    "detect-never-raises": "detect_tool never raises and answers in time, whether the program "
    "is absent, works or fails to start",
    "detect-answers": "detect_tool answers ToolDetection objects (one, a list, or None) that "
    "include the plugin's tool_id",
    "detect-absent": "detect_tool answers for its tool with installed=False when the program "
    "is not on PATH",
    "known-capabilities": "every capability a tool declares is a known capability name (or "
    "listed in extra_capabilities)",
    "version": "get_version answers a string or None and never raises",
    "foreign-tools": "get_version and invoke_capability return None for a tool id the plugin "
    "does not own",
    "failure-classes": "invoke_capability returns an InvocationResult whose failure is a "
    "Failure class exactly when success is false, with a one-line message",
    "not-installed": "invoke_capability fails with a Failure class, never raises, when the "
    "program is not on PATH",
    "deadline": "invoke_capability returns by context.deadline, also when the program hangs",
    "scope": "invoke_capability changes no file outside the payload's files",
    "processes": "the plugin starts no process except through context.run",
    "validate-payload": "validate_payload returns None or a list of Problem, never raises and "
    "changes no file",
    "validate-foreign": "validate_payload objects only to requests for the plugin's own tools",
    "audit-sink": "audit_sink accepts every kind of record, returns None, never changes the "
    "record and never raises",
}

PLUGIN_NAME = "plugin-under-test"
FOREIGN_TOOL = "aim-conformance-other-tool"
EXAMPLE_FILE = "src/example.py"
EXAMPLE_TEXT = (
    '"""An example module."""\n\n\ndef add(a, b):\n    """Return a + b."""\n    return a + b\n'
)
GRACE_S = 5.0  # how long after the deadline a hook may take to come back


class PluginRuleBroken(AssertionError):
    """A plugin broke one rule of :data:`RULES`; ``rule`` is its id."""

    def __init__(self, rule: str, detail: str):
        self.rule = rule
        super().__init__(f"aim plugin rule [{rule}] broken: {RULES[rule]}.\n  {detail}")


def broken(rule: str, detail: str) -> PluginRuleBroken:
    """The exception for ``rule`` (raise it)."""
    return PluginRuleBroken(rule, detail)


# --------------------------------------------------------------------------- processes

_SPAWN_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.startfile",
    }
)
_SANCTIONED = AimContext.run.__code__
_STDLIB = tuple({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"], "<frozen"})
_watching: list[str] | None = None
_hook_installed = False


def _spawn_watcher(event: str, args: tuple[Any, ...]) -> None:
    found = _watching
    if found is None or event not in _SPAWN_EVENTS:
        return
    frame: Any = sys._getframe(1)
    origin = None
    while frame is not None:
        code = frame.f_code
        if code is _SANCTIONED:
            return
        if origin is None and not code.co_filename.startswith(_STDLIB):
            origin = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}()"
        frame = frame.f_back
    what = args[1] if event in ("subprocess.Popen", "os.exec", "os.posix_spawn") else args
    found.append(f"{event} {what!r} at {origin or 'unknown place'}")


@contextmanager
def watch_processes() -> Iterator[list[str]]:
    """Collect every process started (in any thread) other than through ``context.run``.

    Uses a ``sys.addaudithook`` hook, installed once and idle outside this block.
    """
    global _watching, _hook_installed
    if not _hook_installed:
        sys.addaudithook(_spawn_watcher)
        _hook_installed = True
    found: list[str] = []
    _watching = found
    try:
        yield found
    finally:
        _watching = None


# --------------------------------------------------------------------------- harness


def known_capabilities() -> set[str]:
    from aim_core.registry import KNOWN_CAPABILITIES

    return set(KNOWN_CAPABILITIES)


def file_tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            try:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError:
                digest = "?"
            out[p.relative_to(root).as_posix()] = digest
    return out


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def is_within(path: str, allowed: Sequence[str]) -> bool:
    for entry in allowed:
        name = entry.strip("/")
        if name in ("", ".") or path == name or path.startswith(name + "/"):
            return True
    return False


class ConformanceHarness:
    """A temporary repository, an isolated environment and the plugin registered alone."""

    def __init__(self, suite: AimPluginTests, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        from aim_core.plugins import AimPlugins

        self.suite = suite
        self.monkeypatch = monkeypatch
        self.root = tmp_path / "repo"
        self.home = tmp_path / "home"
        self.empty_bin = tmp_path / "empty-bin"
        self.bin = tmp_path / "bin"
        for d in (self.root, self.home, self.empty_bin, self.bin):
            d.mkdir(parents=True, exist_ok=True)
        (self.root / EXAMPLE_FILE).parent.mkdir(parents=True, exist_ok=True)
        (self.root / EXAMPLE_FILE).write_text(EXAMPLE_TEXT, encoding="utf-8")
        for name in list(os.environ):
            if name.startswith("AIM_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.setenv("XDG_CACHE_HOME", str(self.home / ".cache"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(self.home / ".config"))
        monkeypatch.chdir(self.root)
        self.program = suite.program or suite.tool_id
        self.plugins = AimPlugins.load(entry_points=False, essential=False)
        self.info = self.plugins.register(suite.plugin, PLUGIN_NAME)
        self.processes: list[Any] = []
        self.stray: list[tuple[str, str]] = []

    # ----------------------------------------------------------------- setup

    def require_registered(self) -> None:
        __tracebackhide__ = True
        if self.info.status != "loaded":
            raise broken("registers", f"aim reports the plugin as broken: {self.info.error}")

    def require_hook(self, hook: str) -> None:
        self.require_registered()
        if hook not in self.info.hooks:
            pytest.skip(f"the plugin does not implement {hook}")

    def require_tool(self) -> str:
        if not self.suite.tool_id:
            pytest.skip("tool_id is None: the plugin provides no tool")
        return self.suite.tool_id

    def fake(self, **behaviour: Any) -> FakeTool:
        """Put a fake executable named ``program`` on the PATH of the ``present`` context."""
        if not self.program:
            pytest.skip("no program: set `program` (or `tool_id`) on the test class")
        return make_fake_tool(self.bin, self.program, **behaviour)

    def context(
        self, *, present: bool, tool_id: str | None = None, timeout_s: float | None = None
    ) -> AimContext:
        """An ``AimContext`` whose PATH holds the fake program (``present``) or nothing."""
        from aim_core.registry import DEFAULT_RULES

        path = str(self.bin if present else self.empty_bin)
        self.monkeypatch.setenv("PATH", path)
        timeout_s = self.suite.hook_timeout_s if timeout_s is None else timeout_s
        return AimContext(
            root=self.root,
            deadline=time.monotonic() + timeout_s,
            tool_id=tool_id,
            environ={"PATH": path, "HOME": str(self.home), "LANG": "C.UTF-8"},
            security=copy.deepcopy(DEFAULT_RULES["security"]),
            on_process=lambda argv, result: self.processes.append((list(argv), result)),
        )

    def payload(self, **changes: Any) -> Invocation:
        """A request as the core builds it from a small workstream."""
        base = Invocation(
            prompt="Add a docstring to every function in src/example.py",
            files=(EXAMPLE_FILE,),
            files_scope=(EXAMPLE_FILE,),
            timeout_ms=int(self.suite.hook_timeout_s * 1000),
            max_retries=0,
            tasks=("Add a docstring to every function",),
            acceptance_tests=("Every function has a docstring",),
            workstream_id="ws-conformance",
        )
        return attrs.evolve(base, **changes)

    # ----------------------------------------------------------------- calling

    def call(self, hook: str, rule: str, *, timeout_s: float | None = None, **kwargs: Any) -> Any:
        """Call the plugin's ``hook`` as the core does; a raise, a hang or a stray process
        is a broken rule."""
        __tracebackhide__ = True
        self.require_hook(hook)
        limit = (timeout_s if timeout_s is not None else self.suite.hook_timeout_s) + GRACE_S
        shown = f"{hook}({', '.join(_arg(k, v) for k, v in kwargs.items())})"
        with watch_processes() as spawned:
            outcome = self.plugins.call(hook, PLUGIN_NAME, kwargs, timeout_s=limit)
        self.stray += [(shown, s) for s in spawned]
        if outcome.timed_out:
            raise broken(rule, f"{shown} did not answer within {limit:g} s")
        if outcome.exception is not None:
            e = outcome.exception
            raise broken(rule, f"{shown} raised {type(e).__name__}: {e}") from e
        return outcome.value

    def done(self) -> None:
        """End of a test: a process started other than through ``context.run`` in any of
        its calls breaks the ``processes`` rule."""
        __tracebackhide__ = True
        if self.stray:
            seen = dict.fromkeys(f"{call}: {what}" for call, what in self.stray)
            listing = "\n    ".join(seen)
            raise broken("processes", f"started without context.run:\n    {listing}")

    def detect(self, *, present: bool, rule: str = "detect-never-raises") -> list[ToolDetection]:
        """``detect_tool``'s answers as a list; a malformed answer breaks ``detect-answers``."""
        __tracebackhide__ = True
        value = self.call("detect_tool", rule, context=self.context(present=present))
        if value is None:
            return []
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if not isinstance(item, ToolDetection):
                raise broken(
                    "detect-answers",
                    f"detect_tool returned a {type(item).__name__} ({short(item)}); "
                    "return aim_core.ToolDetection objects",
                )
            if not isinstance(item.tool_id, str) or not item.tool_id.strip():
                raise broken("detect-answers", f"a ToolDetection has tool_id {item.tool_id!r}")
        return list(items)

    def own(self, answers: list[ToolDetection], tool_id: str, situation: str) -> ToolDetection:
        __tracebackhide__ = True
        mine = [d for d in answers if d.tool_id == tool_id]
        if not mine:
            said = ", ".join(repr(d.tool_id) for d in answers) or "nothing"
            raise broken(
                "detect-absent" if situation == "absent" else "detect-answers",
                f"with {situation}, detect_tool answered {said}, not {tool_id!r}; answer for "
                "your tool in every case (installed=False when its program is missing) so "
                "that `aim status` can show it",
            )
        return mine[0]


def _arg(name: str, value: Any) -> str:
    return name if name in ("context", "payload", "record") else repr(value)


def short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_result(result: Any, situation: str) -> InvocationResult:
    __tracebackhide__ = True
    if not isinstance(result, InvocationResult):
        raise broken(
            "failure-classes",
            f"with {situation}, invoke_capability returned {short(result)}; "
            "return an aim_core.InvocationResult",
        )
    if result.success and result.failure is not None:
        raise broken(
            "failure-classes",
            f"with {situation}, the result says success=True and failure={result.failure.value!r}",
        )
    if not result.success and not isinstance(result.failure, Failure):
        raise broken(
            "failure-classes",
            f"with {situation}, the result says success=False without a failure; set failure "
            f"to one of {', '.join(f.value for f in Failure)} (it decides what aim does next)",
        )
    message = result.message
    if not isinstance(message, str) or not message.strip() or "\n" in message.strip():
        raise broken(
            "failure-classes",
            f"with {situation}, the message is {message!r}; give one line the user reads "
            "(the full output goes in `output`)",
        )
    return result
