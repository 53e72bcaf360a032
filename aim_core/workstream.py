"""Load and check workstream files.

A workstream file is the guide's JSON (``//`` comments allowed, as its Step 2.2
prints them). Structure is checked by cattrs with strict types; every problem
is reported as ``file: field.path: what was wrong`` with the expected value,
so the fix is obvious. Unknown fields are warnings (errors with ``strict``) so
existing pipeline files keep working.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import attrs

from aim_core import jsonc
from aim_core.errors import UsageError, WorkstreamError
from aim_core.models import CapabilityPayload, Verify, Workstream
from aim_core.paths import WORKSTREAMS_DIR
from aim_core.scope import Scope, entry_taken_as_file, linked_parent, names
from aim_core.suggest import did_you_mean, nearest, show
from aim_core.values import Value

# Limits on input no person writes by hand, so that it is a clear error and not a crash,
# a hang or "Argument list too long" (docs/RELIABILITY.md, "Bad input").
MAX_FILE_BYTES = 8 * 1024 * 1024
# Every path of a scope is checked against the rules, snapshotted and passed to the tool on
# its command line (the OS allows about 2 MB of it): name a directory or a glob instead.
MAX_PATHS = 10_000


class _Mismatch(Exception):
    def __init__(self, expected: str, value: Any, subpath: str = ""):
        super().__init__(expected)
        self.expected = expected
        self.value = value
        self.subpath = subpath


class LoadedWorkstream(Value):
    """A workstream and where it came from (``display``: the path as the user should
    read it)."""

    __slots__ = ("display", "path", "warnings", "workstream")
    path: Path
    display: str
    workstream: Workstream
    warnings: tuple[str, ...]

    def __init__(
        self, *, path: Path, display: str, workstream: Workstream, warnings: tuple[str, ...] = ()
    ) -> None:
        self._init(path=path, display=display, workstream=workstream, warnings=warnings)


class FileVerdict(Value):
    """What ``aim validate`` says of one file (``path`` takes no part in equality)."""

    __slots__ = ("display", "errors", "path", "warnings", "workstream")
    display: str
    workstream: Workstream | None
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    path: Path | None

    def __init__(
        self,
        *,
        display: str,
        workstream: Workstream | None,
        errors: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
        path: Path | None = None,
    ) -> None:
        self._init(
            display=display, workstream=workstream, errors=errors, warnings=warnings, path=path
        )

    def _key(self) -> tuple[object, ...]:
        return (self.display, self.workstream, self.errors, self.warnings)

    @property
    def ok(self) -> bool:
        """True when the file has no error (warnings allowed)."""
        return not self.errors


# --------------------------------------------------------------------------- structure


def _strict_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Mismatch("a text", value)


def _strict_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Mismatch("an integer", value)


def _strict_float(value: Any, _: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _Mismatch("a number", value)


def _strict_argv_list(value: Any, _: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise _Mismatch("a list of argument lists", value)
    for i, argv in enumerate(value):
        if not isinstance(argv, list) or not argv:
            raise _Mismatch(
                'a non-empty argument list such as ["python", "-m", "mypy"]', argv, f"[{i}]"
            )
        for j, item in enumerate(argv):
            if not isinstance(item, str) or (j == 0 and not item.strip()):
                raise _Mismatch("a program name" if j == 0 else "a text", item, f"[{i}][{j}]")
    return tuple(tuple(argv) for argv in value)


def _strict_str_list(value: Any, _: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Mismatch("a list", value)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _Mismatch("a text", item, subpath=f"[{i}]")
    return tuple(value)


def _strict_dict(value: Any, _: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise _Mismatch("an object", value)


@functools.lru_cache(maxsize=1)
def _converter() -> Any:
    import cattrs
    from cattrs.gen import make_dict_structure_fn

    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook_func(lambda t: t == tuple[tuple[str, ...], ...], _strict_argv_list)
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], _strict_str_list)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _strict_dict)
    for cls in (CapabilityPayload, Verify, Workstream):
        attrs.resolve_types(cls)
        inner = make_dict_structure_fn(cls, conv)

        def hook(value: Any, _type: Any, inner: Any = inner) -> Any:
            if not isinstance(value, dict):
                raise _Mismatch("an object", value)
            return inner(value, _type)

        conv.register_structure_hook(cls, hook)
    return conv


def _attrs_class(tp: Any) -> type | None:
    if attrs.has(tp):
        return tp
    for arg in get_args(tp):
        if isinstance(arg, type) and attrs.has(arg):
            return arg
    return None


def _collect(
    exc: BaseException,
    cls: type | None,
    meta: Mapping[str, Any],
    path: str,
    out: list[tuple[str, str]],
) -> None:
    from cattrs.errors import ClassValidationError, IterableValidationError

    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        fields = attrs.fields_dict(cls) if cls is not None else {}
        for sub, note in with_notes:
            name = note.name
            f = fields.get(name)
            sub_path = f"{path}.{name}" if path else name
            sub_cls = _attrs_class(f.type) if f is not None else None
            _collect(sub, sub_cls, f.metadata if f is not None else {}, sub_path, out)
        for sub in without:
            _collect(sub, cls, meta, path, out)
    elif isinstance(exc, IterableValidationError):
        for sub in exc.exceptions:
            _collect(sub, None, meta, path, out)
    elif isinstance(exc, _Mismatch):
        expect = exc.expected
        if not exc.subpath and meta.get("expect"):
            expect = meta["expect"]
        out.append((path + exc.subpath, f"expected {expect}, got {show(exc.value)}"))
    elif isinstance(exc, KeyError):
        out.append((path, f"is required ({meta.get('expect', 'a value')}); add it"))
    else:
        out.append((path, str(exc)))


def _unknown_keys(data: Mapping[str, Any], cls: type, path: str) -> list[tuple[str, str]]:
    names = [f.name for f in attrs.fields(cls)]
    found = []
    for key in data:
        if key not in names:
            where = f"{path}.{key}" if path else str(key)
            found.append((where, f"unknown field{did_you_mean(str(key), names)}; it is ignored"))
    return found


def parse_workstream(
    data: Any,
) -> tuple[Workstream | None, list[tuple[str, str]], list[tuple[str, str]]]:
    """Structure one workstream; return it, the errors and the unknown fields, each as
    ``(field path, message)``."""
    if not isinstance(data, dict):
        return None, [("", f"expected a JSON object (a workstream), got {show(data)}")], []
    nul = _nul_errors(data)
    if nul:
        return None, nul, []
    unknown = _unknown_keys(data, Workstream, "")
    payload = data.get("capability_payload")
    if isinstance(payload, dict):
        unknown += _unknown_keys(payload, CapabilityPayload, "capability_payload")
    checks = data.get("verify")
    # a check aim would not run is work nobody verified: an error, not a warning
    strict = _unknown_keys(checks, Verify, "verify") if isinstance(checks, dict) else []
    strict = [
        (p, m.replace("; it is ignored", "; known: tests, lint, commands")) for p, m in strict
    ]
    ws = _quick_structure(data)
    if ws is not None:
        return ws, strict + _range_errors(ws), unknown
    converter = _converter()
    try:
        ws = converter.structure(data, Workstream)
    except Exception as e:
        errors: list[tuple[str, str]] = []
        _collect(e, Workstream, {}, "", errors)
        return None, strict + errors, unknown
    return ws, strict + _range_errors(ws), unknown


def _nul_errors(data: Any) -> list[tuple[str, str]]:
    """A NUL character in any text (keys too): no file name or command line can hold
    one; a lone surrogate (a JSON escape such as ``\\ud800`` without its pair): no
    UTF-8 text can."""
    errors = []
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if "\0" in value:
                errors.append(
                    (
                        path,
                        "holds a NUL character (\\u0000), which no file name or command "
                        "line can carry; remove it",
                    )
                )
            if (lone := _lone_surrogate(value)) is not None:
                errors.append(
                    (
                        path,
                        f"holds a lone surrogate (\\u{ord(lone):04x}), half of a character "
                        "that no UTF-8 text can carry; write the whole character or remove "
                        "the escape",
                    )
                )
        elif isinstance(value, dict):
            for k, v in value.items():
                sub = f"{path}.{k}" if path else str(k)
                if isinstance(k, str) and ("\0" in k or _lone_surrogate(k) is not None):
                    stack.append((k, sub))
                stack.append((v, sub))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(value))
    return sorted(errors)


def _lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text``, or None (most texts: one encode)."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        return text[e.start]


def _range_errors(ws: Workstream) -> list[tuple[str, str]]:
    errors = []
    for name, paths in (
        ("files_scope", ws.files_scope),
        ("files_create", ws.files_create),
        ("capability_payload.files", ws.payload.files),
    ):
        if len(paths) > MAX_PATHS:
            errors.append(
                (
                    name,
                    f"has {len(paths)} paths, more than {MAX_PATHS}; name a directory "
                    "or a glob (src/, src/**/*.py) instead of every file",
                )
            )
    for name, cls, value in (
        ("capability_payload.timeout_ms", CapabilityPayload, ws.payload.timeout_ms),
        ("capability_payload.max_retries", CapabilityPayload, ws.payload.max_retries),
        ("capability_payload.max_repairs", CapabilityPayload, ws.payload.max_repairs),
        ("capability_payload.max_cost_usd", CapabilityPayload, ws.payload.max_cost_usd),
        ("race", Workstream, ws.race),
    ):
        attr = attrs.fields_dict(cls)[name.rsplit(".", 1)[-1]]
        if value is not None and not _in_range(value, attr.metadata["schema"]):
            errors.append((name, f"expected {attr.metadata['expect']}, got {value}"))
    return errors + _text_errors(ws)


def _text_errors(ws: Workstream) -> list[tuple[str, str]]:
    """The id without spaces; no control or invisible format character (a newline, ESC,
    a right-to-left override: :data:`aim_core.display.UNSAFE`) in the id, the tool, the
    paths and the ids of ``depends_on``: aim shows them in its messages."""
    from aim_core.display import first_unsafe

    errors = []
    if not ws.id.strip() or any(c.isspace() for c in ws.id) or first_unsafe(ws.id):
        errors.append(
            (
                "id",
                "expected a non-empty text without spaces or control characters, "
                f"got {show(ws.id)}",
            )
        )
    named: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("tool", (ws.tool,) if ws.tool else ()),
        ("files_scope", ws.files_scope),
        ("files_create", ws.files_create),
        ("capability_payload.files", ws.payload.files),
        ("depends_on", ws.depends_on),
    )
    for name, values in named:
        for i, text in enumerate(values):
            bad = first_unsafe(text)
            if bad is not None:
                errors.append(
                    (
                        name if name == "tool" else f"{name}[{i}]",
                        f"{show(text)} holds a control character ({bad!r}): a name here "
                        "is shown in aim's messages, where it could pass for text of "
                        "aim's own; remove it",
                    )
                )
    return errors


def _in_range(value: float, schema: Mapping[str, Any]) -> bool:
    if value != value or value in (float("inf"), float("-inf")):  # NaN, Infinity
        return False
    if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
        return False
    return bool(schema.get("minimum", value) <= value <= schema.get("maximum", value))


_NESTED = (CapabilityPayload, Verify)


def _fits(value: Any, tp: Any) -> bool:
    if value is None:
        return type(None) in get_args(tp)
    args = [a for a in get_args(tp) if a is not type(None)]
    base = args[0] if len(args) == 1 and get_args(tp) and type(None) in get_args(tp) else tp
    if base is str:
        return isinstance(value, str)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base == tuple[str, ...]:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if base == tuple[tuple[str, ...], ...]:
        try:
            _strict_argv_list(value, None)
        except _Mismatch:
            return False
        return True
    if base == dict[str, Any]:
        return isinstance(value, dict)
    if base in _NESTED:
        return _quick_structure(value, base) is not None
    return False


def _quick_structure(data: Any, cls: type = Workstream) -> Any:
    """Build the object straight away when every field already has the right type (the
    usual case), so cattrs -- ~20 ms to import and set up -- is only needed to explain
    what is wrong with a file that has a problem. None means: ask cattrs."""
    if not isinstance(data, dict):
        return None
    attrs.resolve_types(cls)
    kwargs = {}
    for f in attrs.fields(cls):
        if f.name not in data:
            if f.default is attrs.NOTHING:
                return None
            continue
        value = data[f.name]
        if not _fits(value, f.type):
            return None
        nested = next((c for c in _NESTED if f.type is c or c in get_args(f.type)), None)
        if nested is not None:
            value = None if value is None else _quick_structure(value, nested)
        elif isinstance(value, int) and f.type in (float, float | None):
            value = float(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def check_workstream(
    ws: Workstream,
    *,
    known_capabilities: Iterable[str] = (),
    known_tools: Iterable[str] = (),
    root: Path | None = None,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Checks across fields; returns (errors, warnings) as ``(field path, message)``.
    With the repository's ``root``, the scope's entries are read as a run reads them
    (one that is no directory there is a file)."""
    errors: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    if not ws.capability and not ws.tool:
        errors.append(
            (
                "capability",
                'a workstream needs `capability` (routed by aim, e.g. "code_generation") '
                'or `tool` (invoked directly, e.g. "aider"); add one',
            )
        )
    caps = list(known_capabilities)
    if ws.capability and caps and ws.capability not in caps:
        hint = nearest(ws.capability, caps)
        fix = f"did you mean '{hint}'?" if hint else "known: " + ", ".join(sorted(caps))
        errors.append(("capability", f"unknown capability '{ws.capability}'; {fix}"))
    tools = list(known_tools)
    if ws.tool and tools and ws.tool not in tools:
        warnings.append(
            ("tool", f"no installed plugin provides tool '{ws.tool}'{did_you_mean(ws.tool, tools)}")
        )
    for i, f in enumerate(ws.files_create):
        if "*" in f or "?" in f:
            errors.append(
                (
                    f"files_create[{i}]",
                    f"'{f}' is a glob, but files_create names each file the tool must "
                    "create; name the files, or put the glob in files_scope (files the "
                    "tool may create)",
                )
            )
    errors += _payload_errors(ws, root)
    if ws.id in ws.depends_on:
        errors.append(("depends_on", f"the workstream depends on itself ('{ws.id}'); remove it"))
    warnings += _self_checked(ws)
    return errors, warnings


def _payload_errors(ws: Workstream, root: Path | None) -> list[tuple[str, str]]:
    """``capability_payload.files`` that the scope does not name (with ``root``: as a
    run reads the scope)."""
    errors: list[tuple[str, str]] = []
    allowed = (*ws.files_scope, *ws.files_create)
    scope = Scope(root, allowed) if root is not None and ws.payload.files else None
    for i, f in enumerate(ws.payload.files):
        if not names(allowed, f):
            errors.append(
                (
                    f"capability_payload.files[{i}]",
                    f"'{f}' is not in files_scope; add it to files_scope or remove it here",
                )
            )
        elif scope is not None and (entry := entry_taken_as_file(scope, allowed, f)):
            errors.append(
                (
                    f"capability_payload.files[{i}]",
                    f"'{f}' is below '{entry}', which is no directory in the repository, "
                    f"so the run takes it as a file and '{f}' is not in files_scope; "
                    f"write '{entry.rstrip('/')}/' for a directory the tool creates",
                )
            )
        elif root is not None and (link := linked_parent(root, f)):
            errors.append(
                (
                    f"capability_payload.files[{i}]",
                    f"'{f}' is below '{link}', a symbolic link: aim has no tool write "
                    "through a link (it may lead elsewhere than what was checked); name "
                    "the directory it leads to instead",
                )
            )
    return errors


def _self_checked(ws: Workstream) -> list[tuple[str, str]]:
    """A test or command the tool itself may rewrite proves little: say so (a workstream
    that asks for code and its tests may mean it). Linting the edited files is what
    lint is for: no warning."""
    if not ws.verify:
        return []
    writable = ws.writable_files()

    def inside(path: str) -> bool:
        return names(writable, path.split("::", 1)[0].lstrip("/"))

    found = [(f"verify.tests[{i}]", t) for i, t in enumerate(ws.verify.tests) if inside(t)]
    for i, argv in enumerate(ws.verify.commands):
        found += [(f"verify.commands[{i}][{j}]", a) for j, a in enumerate(argv) if inside(a)]
    return [
        (
            where,
            f"'{name}' is in files_scope or files_create: the tool may change the check "
            "that judges it; keep it out of the scope if it should not",
        )
        for where, name in found
    ]


# --------------------------------------------------------------------------- files


def read_json(path: Path, display: str) -> Any:
    """Read a workstream file; syntax errors give line and column."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise WorkstreamError(
                f"the file is {size} bytes, more than {MAX_FILE_BYTES} (8 MiB); a workstream "
                "describes one unit of work: split it, or name directories instead of files",
                file=display,
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError("file not found; check the path", file=display) from None
    except IsADirectoryError:
        raise UsageError(
            "is a directory; give a workstream file (or run 'aim validate DIR')", file=display
        ) from None
    except OSError as e:
        raise UsageError(f"cannot read the file: {e.strerror}", file=display) from None
    except UnicodeDecodeError as e:
        raise WorkstreamError(
            f"not UTF-8 text (byte {e.start} is {e.object[e.start : e.start + 1]!r}); "
            "save the file as UTF-8",
            file=display,
        ) from None
    try:
        return jsonc.loads(text)
    except jsonc.JsonSyntaxError as e:
        raise WorkstreamError(
            f"line {e.line}, column {e.column}: not valid JSON ({e.reason}); fix the syntax there",
            file=display,
        ) from None


def _fmt(display: str, items: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(f"{display}: {p}: {m}" if p else f"{display}: {m}" for p, m in items)


def verdict_for(
    path: Path,
    display: str,
    *,
    known_capabilities: Iterable[str] = (),
    known_tools: Iterable[str] = (),
    strict: bool = False,
    root: Path | None = None,
) -> FileVerdict:
    """Load and check one file without raising for what is wrong inside it (with the
    repository's ``root``: as :func:`check_workstream` does with it)."""
    try:
        data = read_json(path, display)
    except (WorkstreamError, UsageError) as e:
        return FileVerdict(display=display, workstream=None, errors=(str(e),), path=path)
    ws, errors, unknown = parse_workstream(data)
    warnings: list[tuple[str, str]] = []
    if ws is not None:
        more_errors, more_warnings = check_workstream(
            ws, known_capabilities=known_capabilities, known_tools=known_tools, root=root
        )
        errors += more_errors
        warnings += more_warnings
    if strict:
        errors += [(p, m.replace("; it is ignored", "; remove it (--strict)")) for p, m in unknown]
    else:
        warnings += unknown
    return FileVerdict(
        display=display,
        workstream=ws,
        errors=_fmt(display, errors),
        warnings=_fmt(display, warnings),
        path=path,
    )


def load_workstream(
    path: str | Path,
    *,
    root: Path | None = None,
    known_capabilities: Iterable[str] = (),
    known_tools: Iterable[str] = (),
    strict: bool = False,
) -> LoadedWorkstream:
    """Load one workstream file or raise :class:`WorkstreamError` listing every problem."""
    path = Path(path)
    display = display_path(path, root)
    v = verdict_for(
        path,
        display,
        known_capabilities=known_capabilities,
        known_tools=known_tools,
        strict=strict,
        root=root,
    )
    if v.errors or v.workstream is None:
        raise WorkstreamError(
            v.errors[0].split(": ", 1)[1] if v.errors else "not a workstream",
            file=display,
            problems=list(v.errors),
        )
    return LoadedWorkstream(
        path=path, display=display, workstream=v.workstream, warnings=v.warnings
    )


def display_path(path: Path, root: Path | None = None) -> str:
    """``path`` relative to the current directory or ``root`` when inside it, as
    messages show it (a control character in a file's name escaped)."""
    from aim_core.display import escape_controls

    for base in (Path.cwd(), root):
        if base is None:
            continue
        try:
            return escape_controls(path.resolve().relative_to(base.resolve()).as_posix())
        except ValueError:
            continue
    return escape_controls(str(path))


def discover(root: Path) -> list[Path]:
    """Every ``workstreams/**/*.json`` of the repository, sorted."""
    base = root / WORKSTREAMS_DIR
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*.json") if p.is_file())


def expand_paths(args: Sequence[str | Path]) -> list[Path]:
    """Files as given; directories expand to the ``*.json`` files below them."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.json") if q.is_file()))
        else:
            out.append(p)
    return out


def repository_ids(root: Path) -> dict[str, list[Path]]:
    """Workstream ids found in the repository's ``workstreams/``, with their files.

    Read leniently (only ``id``): a broken file elsewhere does not stop a command.
    """
    index: dict[str, list[Path]] = {}
    for p in discover(root):
        try:
            if p.stat().st_size > MAX_FILE_BYTES:
                continue
            data = jsonc.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, jsonc.JsonSyntaxError):
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            index.setdefault(data["id"], []).append(p.resolve())
    return index


def check_graph(
    verdicts: list[FileVerdict], repo_index: Mapping[str, list[Path]]
) -> list[FileVerdict]:
    """Check ids and ``depends_on`` across the files of one command.

    Duplicate ids among these files are errors, duplicates elsewhere in the
    repository warnings; a dependency naming no workstream is an error, and so
    is a cycle.
    """
    given: dict[str, list[FileVerdict]] = {}
    for v in verdicts:
        if v.workstream is not None:
            given.setdefault(v.workstream.id, []).append(v)
    known = set(given) | set(repo_index)
    extra_errors: dict[int, list[str]] = {}
    extra_warnings: dict[int, list[str]] = {}

    for ident, vs in given.items():
        if len(vs) > 1:
            others = ", ".join(x.display for x in vs)
            for v in vs:
                extra_errors.setdefault(id(v), []).append(
                    f"{v.display}: id: '{ident}' is used by several files ({others}); "
                    "give each workstream its own id"
                )
        mine = {x.path.resolve() for x in vs if x.path is not None}
        elsewhere = [p for p in repo_index.get(ident, []) if p not in mine]
        if elsewhere:
            for v in vs:
                extra_warnings.setdefault(id(v), []).append(
                    f"{v.display}: id: '{ident}' is also used by {display_path(elsewhere[0])}"
                )
    for v in verdicts:
        ws = v.workstream
        if ws is None:
            continue
        for i, dep in enumerate(ws.depends_on):
            if dep not in known and dep != ws.id:
                extra_errors.setdefault(id(v), []).append(
                    f"{v.display}: depends_on[{i}]: no workstream has id '{dep}'"
                    f"{did_you_mean(dep, known)} (looked in {WORKSTREAMS_DIR}/ and the files given)"
                )
    graph = {k: vs[0].workstream.depends_on for k, vs in given.items() if vs[0].workstream}
    for cycle in _cycles(graph):
        text = " -> ".join([*cycle, cycle[0]])
        for ident in cycle:
            v = given[ident][0]
            extra_errors.setdefault(id(v), []).append(
                f"{v.display}: depends_on: dependency cycle {text}; break it"
            )
    out = []
    for v in verdicts:
        errs, warns = extra_errors.get(id(v), []), extra_warnings.get(id(v), [])
        if errs or warns:
            v = v.evolve(errors=(*v.errors, *errs), warnings=(*v.warnings, *warns))
        out.append(v)
    return out


def _cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Cycles among the given nodes (each reported once, self-loops excluded). A
    depth-first search with its own stack: a chain of thousands of files is fine."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    path: list[str] = []
    found: list[list[str]] = []
    for start in graph:
        if color[start] != white:
            continue
        color[start] = grey
        path.append(start)
        todo = [iter(graph.get(start, ()))]
        while todo:
            n = path[-1]
            m = next(todo[-1], None)
            if m is None:
                todo.pop()
                path.pop()
                color[n] = black
                continue
            if m == n or m not in graph:
                continue
            if color[m] == grey:
                found.append(path[path.index(m) :])
            elif color[m] == white:
                color[m] = grey
                path.append(m)
                todo.append(iter(graph.get(m, ())))
    return found
