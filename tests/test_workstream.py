"""Workstream files: the guide's examples load; every kind of bad input is a clear error."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aim_core.errors import WorkstreamError
from aim_core.models import Workstream
from aim_core.registry import KNOWN_CAPABILITIES
from aim_core.workstream import (
    check_graph,
    load_workstream,
    parse_workstream,
    verdict_for,
)

EXAMPLES = Path(__file__).parent.parent / "examples"
GUIDE = EXAMPLES / "guide"
TEMPLATES = Path(__file__).parent.parent / "aim_core" / "templates" / "workstreams"
GUIDE_WS = json.loads((GUIDE / "step-1.4-ws-aim-validation.json").read_text())


@pytest.mark.parametrize(
    "path",
    sorted(GUIDE.glob("*.json")) + sorted(TEMPLATES.glob("*.json")),
    ids=lambda p: p.name,
)
def test_guide_examples_load(path):
    loaded = load_workstream(path, known_capabilities=KNOWN_CAPABILITIES)
    assert loaded.workstream.id
    assert not loaded.warnings


def test_step_1_4_fields_exactly():
    ws = load_workstream(GUIDE / "step-1.4-ws-aim-validation.json").workstream
    assert ws.id == "ws-aim-validation-001"
    assert ws.ccpm_issue == 1 and ws.gate == 1
    assert ws.files_create == ("tests/staging_test_file.py",)
    assert ws.capability == "code_generation" and ws.tool == "aider"
    assert ws.payload.timeout_ms == 60000 and ws.payload.max_retries == 1
    assert ws.metadata["created_by"] == "deployment_script"
    assert ws.build_prompt() == (
        "Create a simple add(a, b) function with error handling and docstring"
    )


def test_step_2_2_comments_and_bare_original():
    enhanced = load_workstream(GUIDE / "step-2.2-enhanced.json").workstream
    assert enhanced.payload.timeout_ms == 90000
    original = load_workstream(GUIDE / "step-2.2-original.json").workstream
    assert original.capability is None and original.tool == "aider"
    # no prompt: built from the tasks
    assert "Add structured logging" in original.build_prompt()
    assert original.target_files() == ("src/app.py",)


def _mutate(**changes):
    data = copy.deepcopy(GUIDE_WS)
    for dotted, value in changes.items():
        target = data
        keys = dotted.split(".")
        for k in keys[:-1]:
            target = target[k]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return json.dumps(data)


_DELETE = object()

BAD = [
    (
        "timeout-text",
        _mutate(**{"capability_payload.timeout_ms": "sixty"}),
        'capability_payload.timeout_ms: expected an integer number of milliseconds from 1 to 604800000 (7 days), got "sixty"',
    ),
    (
        "timeout-zero",
        _mutate(**{"capability_payload.timeout_ms": 0}),
        "capability_payload.timeout_ms: expected an integer number of milliseconds from 1 to 604800000 (7 days), got 0",
    ),
    (
        "timeout-float",
        _mutate(**{"capability_payload.timeout_ms": 1.5}),
        "capability_payload.timeout_ms: expected an integer number of milliseconds",
    ),
    (
        "retries-too-many",
        _mutate(**{"capability_payload.max_retries": 11}),
        "capability_payload.max_retries: expected an integer from 0 to 10, got 11",
    ),
    (
        "scope-string",
        _mutate(files_scope="tests/staging_test_file.py"),
        "files_scope: expected a list of repository-relative paths",
    ),
    ("scope-item-number", _mutate(files_scope=[1]), "files_scope[0]: expected a text, got 1"),
    ("tasks-object", _mutate(tasks={}), "tasks: expected a list of texts, got {}"),
    ("id-missing", _mutate(id=_DELETE), "id: is required"),
    (
        "id-number",
        _mutate(id=5),
        "id: expected a non-empty text without spaces or control characters, got 5",
    ),
    (
        "id-space",
        _mutate(id="ws one"),
        'id: expected a non-empty text without spaces or control characters, got "ws one"',
    ),
    (
        "id-escape",
        _mutate(id="ws\x1b[2J"),
        'id: expected a non-empty text without spaces or control characters, got "ws\\u001b[2J"',
    ),
    (
        "scope-newline",
        _mutate(files_scope=["src/a.py\nOK  ws: all checks passed"]),
        "files_scope[0]: \"src/a.py\\nOK  ws: all checks passed\" holds a control character ('\\n')",
    ),
    (
        "create-carriage-return",
        _mutate(files_create=["tests/staging_test_file.py", "b\rc.py"]),
        "files_create[1]: \"b\\rc.py\" holds a control character ('\\r')",
    ),
    (
        "payload-file-c1",
        _mutate(**{"capability_payload.files": ["t\x9b31m.py"]}),
        "capability_payload.files[0]: \"t\\x9b31m.py\" holds a control character ('\\x9b')",
    ),
    (
        "depends-on-escape",
        _mutate(depends_on=["ws-a\x1b]0;title\x07"]),
        "depends_on[0]: \"ws-a\\u001b]0;title\\u0007\" holds a control character ('\\x1b')",
    ),
    (
        "capability-typo",
        _mutate(capability="code_gen"),
        "capability: unknown capability 'code_gen'; did you mean 'code_generation'?",
    ),
    (
        "no-capability-no-tool",
        _mutate(capability=_DELETE, tool=_DELETE),
        "capability: a workstream needs `capability`",
    ),
    (
        "payload-not-object",
        _mutate(capability_payload="fast"),
        'capability_payload: expected an object, got "fast"',
    ),
    (
        "payload-file-out-of-scope",
        _mutate(**{"capability_payload.files": ["src/other.py"]}),
        "capability_payload.files[0]: 'src/other.py' is not in files_scope",
    ),
    (
        "payload-file-below-a-file-in-scope",
        _mutate(files_scope=["newpkg.py"], **{"capability_payload.files": ["newpkg.py/x.py"]}),
        "capability_payload.files[0]: 'newpkg.py/x.py' is below 'newpkg.py', which is no "
        "directory in the repository, so the run takes it as a file",
    ),
    (
        "payload-file-below-a-file-to-create",
        _mutate(
            files_scope=[],
            files_create=["./pkg"],
            **{"capability_payload.files": ["pkg\\mod.py"]},
        ),
        "capability_payload.files[0]: 'pkg/mod.py' is below './pkg', which is no directory "
        "in the repository, so the run takes it as a file and 'pkg/mod.py' is not in "
        "files_scope; write './pkg/' for a directory the tool creates",
    ),
    (
        "prompt-lone-surrogate",
        _mutate(**{"capability_payload.prompt": "fix it \ud800 now"}),
        "capability_payload.prompt: holds a lone surrogate (\\ud800), half of a character",
    ),
    (
        "metadata-key-lone-surrogate",
        _mutate(metadata={"note\udcff": "x"}),
        "metadata.note\\xff: holds a lone surrogate (\\udcff)",
    ),
    ("metadata-text", _mutate(metadata="x"), 'metadata: expected an object, got "x"'),
    ("ccpm-text", _mutate(ccpm_issue="1"), 'ccpm_issue: expected an integer issue number, got "1"'),
    ("gate-bool", _mutate(gate=True), "gate: expected an integer, got true"),
    ("top-level-array", "[1, 2]", "expected a JSON object (a workstream), got [1, 2]"),
    ("syntax", '{\n  "id": "x",\n  "tool" "aider"\n}', "line 3, column 10: not valid JSON"),
    ("empty-file", "", "line 1, column 1: not valid JSON"),
    (
        "depends-unknown",
        _mutate(depends_on=["ws-nope"]),
        "depends_on[0]: no workstream has id 'ws-nope'",
    ),
    (
        "depends-self",
        _mutate(depends_on=["ws-aim-validation-001"]),
        "depends_on: the workstream depends on itself",
    ),
]


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in BAD], ids=[i for i, _, _ in BAD])
def test_bad_workstream_is_exit_2_with_file_and_field(repo, aim, text, expected):
    path = repo / "workstreams" / "bad.json"
    path.write_text(text)
    before = path.read_bytes()
    r = aim("validate", "workstreams/bad.json", cwd=repo)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert f"workstreams/bad.json: {expected}" in out
    assert "Traceback" not in out
    assert path.read_bytes() == before  # the user's file is untouched


@pytest.mark.parametrize(
    "scope,payload",
    [
        (["newpkg/"], "newpkg/x.py"),  # a directory the tool creates, as the guide writes it
        (["src"], "src/new.py"),  # a directory that exists
        (["src/*.py"], "src/new.py"),  # a glob
        (["tests/staging_test_file.py"], "./tests/staging_test_file.py"),
        # a framework's route: brackets in a name that is no pattern
        (["app/[slug]/"], "app/[slug]/page.tsx"),
        (["app/[slug]/page.tsx"], "app/[slug]/page.tsx"),
        (["src/[id]"], "src/[id]/page.tsx"),  # src/[id] made below, a directory
    ],
)
def test_payload_files_the_run_takes_as_in_scope_are_valid(repo, aim, scope, payload):
    (repo / "src" / "[id]").mkdir(parents=True)
    path = repo / "workstreams" / "ok.json"
    path.write_text(_mutate(files_scope=scope, **{"capability_payload.files": [payload]}))
    r = aim("validate", "workstreams/ok.json", cwd=repo)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "scope,payload,problem",
    [
        (["app/[slug]"], "app/[slug]/page.tsx", "is below 'app/[slug]', which is no directory"),
        (["linked"], "linked/x.py", "is below 'linked', a symbolic link"),
        (["src/"], "src/linked/x.py", "is below 'src/linked', a symbolic link"),
    ],
)
def test_validate_refuses_payload_files_a_run_would_not_let_be_written(
    repo, aim, scope, payload, problem
):
    (repo / "src" / "real").mkdir(parents=True)
    (repo / "linked").symlink_to("src/real")
    (repo / "src" / "linked").symlink_to("real")
    path = repo / "workstreams" / "ws.json"
    path.write_text(_mutate(files_scope=scope, **{"capability_payload.files": [payload]}))
    r = aim("validate", "workstreams/ws.json", cwd=repo)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"capability_payload.files[0]: '{payload}' {problem}" in r.stdout + r.stderr


def _aider_writes(repo, aim, fake, target, text, workstream):
    """``aim run`` of ``workstream`` (tool aider, id ws-tool) whose fake aider writes
    ``text`` to ``target`` and says it applied an edit there."""
    fake("aider", stdout=f"Applied edit to {target}\n", writes={target: text})
    (repo / "workstreams" / "tool.json").write_text(
        json.dumps({"id": "ws-tool", "tool": "aider", **workstream})
    )
    env = {"AIM_LOAD_PLUGINS": "aider", "OPENAI_API_KEY": "sk-test-not-a-real-one"}
    return aim("run", "workstreams/tool.json", cwd=repo, env=env)


@pytest.mark.parametrize(
    "scope,create",
    [
        (["app/[slug]/page.tsx"], ["app/[slug]/page.tsx"]),
        (["app/[slug]/"], []),
        (["app/[[...all]]/page.tsx"], []),
    ],
)
def test_a_tool_may_create_a_route_whose_name_holds_brackets(repo, aim, fake, scope, create):
    """Next.js-style routes (app/[slug]/page.tsx) named in the scope are the names
    themselves, not only patterns: the tool's new file is kept."""
    target = scope[0] + ("page.tsx" if scope[0].endswith("/") else "")
    ws = {
        "files_scope": scope,
        "files_create": create,
        "capability_payload": {"prompt": "add the route", "files": [target]},
    }
    r = _aider_writes(repo, aim, fake, target, "export default 1\n", ws)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (repo / target).read_text() == "export default 1\n"


@pytest.mark.parametrize(
    "entry,target",
    [
        ("prod.pe[m]", "prod.pem"),
        ("certs/server.ke[y]", "certs/server.key"),
        (".en[v].local", ".env.local"),
        ("[.]ssh/authorized_keys", ".ssh/authorized_keys"),
        ("ai[m]/.AIM_ai-tools-registry/AIM_cross-tool/x.json", None),
    ],
)
def test_a_glob_never_lets_a_tool_write_a_forbidden_path(repo, aim, fake, entry, target):
    """A scope glob that reaches a forbidden path (prod.pe[m] is prod.pem): the tool's
    file is taken back and the attempt fails naming it, in scope or not."""
    target = target or "aim/.AIM_ai-tools-registry/AIM_cross-tool/x.json"
    ws = {"files_scope": [entry], "capability_payload": {"prompt": "p", "max_retries": 0}}
    r = _aider_writes(repo, aim, fake, target, "secret\n", ws)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"forbidden: /{target}" in r.stderr
    assert not (repo / target).exists()


def test_a_payload_file_below_a_file_is_refused_by_run_before_any_tool(repo, aim):
    """What validate refuses, run refuses too, before a tool is started (it would have
    worked on a file the scope check then throws away)."""
    path = repo / "workstreams" / "ws.json"
    path.write_text(
        _mutate(files_scope=["newpkg.py"], **{"capability_payload.files": ["newpkg.py/x.py"]})
    )
    r = aim("run", "workstreams/ws.json", cwd=repo)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "is below 'newpkg.py', which is no directory in the repository" in r.stderr
    assert not (repo / "AIM_audit").exists() or "newpkg" not in "".join(
        p.read_text() for p in (repo / "AIM_audit").glob("*/audit.jsonl")
    )


def test_a_workstream_files_name_is_shown_escaped(repo, aim):
    """A workstream file whose name holds a newline, an escape or a right-to-left
    override is named escaped by ``aim validate`` (every workstream, and that one) and
    ``aim run --dry-run``: its ✓ line cannot forge another."""
    name = "e\x1b[2J\n\u2713 ok\u202e.json"
    (repo / "workstreams" / name).write_text(_mutate(id="ws-odd-name"))
    (repo / "workstreams" / "staging_test" / "ws-aim-validation.json").unlink()
    for args in (
        ("validate",),
        ("validate", f"workstreams/{name}"),
        ("run", "--dry-run", f"workstreams/{name}"),
    ):
        r = aim(*args, cwd=repo)
        out = r.stdout + r.stderr
        assert "workstreams/e\\x1b[2J\\n\u2713 ok\\u202e.json" in out, (args, out)
        assert not any(c in out for c in "\x1b\u202e"), (args, out)
        assert not [ln for ln in out.splitlines() if ln.startswith("\u2713 ok")], (args, out)


def test_not_utf8_and_missing_file(repo, aim):
    (repo / "workstreams" / "latin1.json").write_bytes(b'{"id": "caf\xe9"}')
    r = aim("validate", "workstreams/latin1.json", "workstreams/missing.json", cwd=repo)
    assert r.returncode == 2
    assert "workstreams/latin1.json: not UTF-8 text" in r.stdout
    assert "workstreams/missing.json: file not found" in r.stdout


def test_unknown_field_warns_and_strict_fails(repo, aim):
    (repo / "workstreams" / "w.json").write_text(_mutate(tols="x"))
    r = aim("validate", "workstreams/w.json", cwd=repo)
    assert r.returncode == 0
    assert "tols: unknown field (did you mean 'tool'?); it is ignored" in r.stdout
    r = aim("validate", "--strict", "workstreams/w.json", cwd=repo)
    assert r.returncode == 2
    assert "tols: unknown field (did you mean 'tool'?); remove it (--strict)" in r.stdout


def test_unknown_payload_field_named_with_path():
    ws, errors, unknown = parse_workstream(json.loads(_mutate(**{"capability_payload.timeout": 5})))
    assert ws is not None and not errors
    assert unknown == [
        ("capability_payload.timeout", "unknown field (did you mean 'timeout_ms'?); it is ignored")
    ]


def test_cycle_and_duplicates_across_files(tmp_path):
    def write(name, **fields):
        p = tmp_path / name
        p.write_text(json.dumps({"tool": "aider", **fields}))
        return verdict_for(p, name)

    a = write("a.json", id="a", depends_on=["b"])
    b = write("b.json", id="b", depends_on=["a"])
    c1 = write("c1.json", id="c")
    c2 = write("c2.json", id="c")
    out = {v.display: v for v in check_graph([a, b, c1, c2], {})}
    assert any("dependency cycle" in e for e in out["a.json"].errors)
    assert any("dependency cycle" in e for e in out["b.json"].errors)
    assert any("'c' is used by several files" in e for e in out["c1.json"].errors)


def test_dependency_in_repository_counts_and_duplicate_elsewhere_warns(repo, aim):
    (repo / "other.json").write_text(json.dumps({"id": "ws-aim-validation-001", "tool": "aider"}))
    dep = repo / "dep.json"
    dep.write_text(json.dumps({"id": "ws-x", "tool": "aider", "depends_on": ["ws-add-tests-001"]}))
    r = aim("validate", "dep.json", "other.json", cwd=repo)
    assert r.returncode == 0, r.stdout
    assert "other.json: id: 'ws-aim-validation-001' is also used by" in r.stdout


def test_load_workstream_raises_with_every_problem(tmp_path):
    p = tmp_path / "w.json"
    p.write_text(json.dumps({"id": 1, "tasks": "x", "tool": "aider"}))
    with pytest.raises(WorkstreamError) as info:
        load_workstream(p)
    assert len(info.value.problems) == 2
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = [*GUIDE_WS.keys(), *(f"capability_payload.{k}" for k in GUIDE_WS["capability_payload"])]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(KEYS), st.one_of(json_values, st.just(_DELETE))), max_size=4
    ),
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=2),
)
def test_random_mutations_never_crash(tmp_path, mutations, extra):
    data = copy.deepcopy(GUIDE_WS)
    for key, value in mutations:
        target, name = data, key
        if key.startswith("capability_payload."):
            target = data.get("capability_payload")
            name = key.split(".", 1)[1]
            if not isinstance(target, dict):
                continue
        if value is _DELETE:
            target.pop(name, None)
        else:
            target[name] = value
    data.update(extra)
    p = tmp_path / "fuzz.json"
    p.write_text(json.dumps(data))
    v = verdict_for(p, "fuzz.json", known_capabilities=KNOWN_CAPABILITIES)
    for line in (*v.errors, *v.warnings):
        assert line.startswith("fuzz.json: ")
        assert "Traceback" not in line
    assert v.workstream is not None or v.errors


@settings(max_examples=300, deadline=None)
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(KEYS), st.one_of(json_values, st.just(_DELETE))), max_size=4
    )
)
def test_quick_structure_agrees_with_cattrs(mutations):
    from aim_core.workstream import _converter, _quick_structure

    data = copy.deepcopy(GUIDE_WS)
    for key, value in mutations:
        target, name = data, key
        if key.startswith("capability_payload."):
            target, name = data.get("capability_payload"), key.split(".", 1)[1]
            if not isinstance(target, dict):
                continue
        if value is _DELETE:
            target.pop(name, None)
        else:
            target[name] = value
    quick = _quick_structure(data)
    try:
        slow = _converter().structure(data, Workstream)
    except Exception:
        slow = None
    if quick is not None:
        assert quick == slow


@pytest.mark.parametrize(
    ("scope", "named"),
    [
        (["src/"], True),
        (["src"], True),
        (["./src/"], True),
        (["src\\"], True),
        (["src/*.py"], True),
        (["src/target.py"], True),
        (["./src/target.py"], True),
        (["sr"], False),
        (["src/target"], False),
        (["src/t*.js"], False),
        (["other/", "src/target.py.bak"], False),
    ],
)
def test_payload_files_are_checked_against_the_scope_as_the_run_reads_it(tmp_path, scope, named):
    """A directory or glob of files_scope covers a payload file inside it, as the run's
    scope does (it was compared with the entries as strings: 'src/' refused src/x.py)."""
    data = {
        "id": "ws-dir",
        "capability": "code_generation",
        "files_scope": scope,
        "tasks": ["do it"],
        "capability_payload": {"files": ["src/target.py"]},
    }
    path = tmp_path / "ws.json"
    path.write_text(json.dumps(data))
    if named:
        loaded = load_workstream(path).workstream
        assert loaded.files_scope == tuple(e.replace("\\", "/") for e in scope)
    else:
        with pytest.raises(
            WorkstreamError, match=r"capability_payload.files\[0\]: 'src/target.py'"
        ):
            load_workstream(path)


@pytest.mark.parametrize("glob", ["gen/*.py", "gen/?.py", "**/x.py"])
def test_a_glob_in_files_create_is_refused(tmp_path, glob):
    """Each entry of files_create is a file the run checks was created: a glob was
    accepted, then every run failed ("did not create gen/*.py") however it went."""
    path = tmp_path / "ws.json"
    data = {"id": "ws-g", "capability": "code_generation", "tasks": ["t"], "files_create": [glob]}
    path.write_text(json.dumps(data))
    with pytest.raises(WorkstreamError, match=r"files_create\[0\]: .* is a glob"):
        load_workstream(path)
    data["files_create"] = ["pages/[id].tsx"]  # a name with brackets is a name
    path.write_text(json.dumps(data))
    assert load_workstream(path).workstream.files_create == ("pages/[id].tsx",)


def test_backslashes_are_separators_in_every_path_field(tmp_path):
    """aim's path rules and scope read `\\` as `/`; the tool is handed the same path
    (it was handed 'src\\a.py' and wrote a file of that name at the top)."""
    path = tmp_path / "ws.json"
    data = {
        "id": "ws-b",
        "capability": "code_generation",
        "tasks": ["t"],
        "files_scope": ["src\\"],
        "files_create": ["src\\new.py"],
        "capability_payload": {"files": ["src\\a.py"]},
    }
    path.write_text(json.dumps(data))
    ws = load_workstream(path).workstream
    assert (ws.files_scope, ws.files_create, ws.payload.files) == (
        ("src/",),
        ("src/new.py",),
        ("src/a.py",),
    )
