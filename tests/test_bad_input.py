"""Bad input is exit 2 with the file, the field path and the fix -- never exit 70, never a
hang: deep nesting, absurd numbers, long dependency chains, NUL characters, YAML alias
bombs, huge scopes, byte order marks, bytes that are not UTF-8, directories where files
are expected. Every case goes through the real CLI in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RULES = Path("aim") / ".AIM_ai-tools-registry" / "AIM_cross-tool" / "AIM_coordination-rules.json"
CONFIG = Path("config") / "aim_config.yaml"


def ws(repo: Path, name: str, text: str | bytes) -> str:
    path = repo / "workstreams" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return f"workstreams/{name}.json"


def good(**fields) -> dict:
    data = {"id": "ws-x", "tool": "aider", "files_scope": ["src/a.py"],
            "capability_payload": {"prompt": "do it"}}  # fmt: skip
    data.update(fields)
    return data


def refused(r, *expected: str) -> None:
    """Exit 2, every expected text in the output, no traceback."""
    out = r.stdout + r.stderr
    assert r.returncode == 2, (r.returncode, out[-2000:])
    for text in expected:
        assert text in out, (text, out[-2000:])
    assert "Traceback" not in out and "Internal error" not in out, out[-2000:]


# --------------------------------------------------------------------------- workstreams


@pytest.mark.parametrize("where", ["tasks", "capability_payload"])
def test_deeply_nested_workstream(repo, aim, where):
    deep = "[" * 200_000 + "]" * 200_000
    text = json.dumps(good()).replace('"capability_payload": {', f'"{where}": {deep}, "x": {{', 1)
    path = ws(repo, "deep", text)
    for cmd in (("validate", path), ("run", path)):
        refused(aim(*cmd, cwd=repo), "workstreams/deep.json", "nested more than 64 levels",
                "line 1, column")  # fmt: skip
    # a workstream elsewhere in the repository does not break other commands
    (repo / "workstreams" / "ok.json").write_text(json.dumps(good(id="ok")))
    assert aim("validate", "workstreams/ok.json", cwd=repo).returncode == 0


@pytest.mark.parametrize(
    "value,shown",
    [
        ("1e18", "got 1e+18"),
        ("1000000000000000000", "got 1000000000000000000"),
        ("0", "got 0"),
        ("-5", "got -5"),
        ("Infinity", "got Infinity"),
        ("9" * 5000, "a number too long to read"),
    ],
    ids=["float", "int", "zero", "negative", "infinity", "5000-digits"],
)
def test_absurd_timeouts(repo, aim, value, shown):
    text = json.dumps(good()).replace(
        '"prompt": "do it"', f'"prompt": "do it", "timeout_ms": {value}'
    )
    path = ws(repo, "t", text)
    r = aim("validate", path, cwd=repo)
    refused(r, "workstreams/t.json", shown)
    if "too long" not in shown:
        assert (
            "capability_payload.timeout_ms: expected an integer number of milliseconds from 1 to 604800000"
            in r.stdout
        )
    refused(aim("run", path, cwd=repo), "workstreams/t.json")


def test_max_retries_bounded(repo, aim):
    text = json.dumps(good(capability_payload={"prompt": "p", "max_retries": 10**9}))
    refused(aim("validate", ws(repo, "r", text), cwd=repo),
            "capability_payload.max_retries: expected an integer from 0 to 10")  # fmt: skip


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_long_depends_on_chain_validates(repo, aim, reverse):
    n = 1500
    for i in range(n):
        dep = i + 1 if reverse else i - 1
        data = good(id=f"w{i}", files_scope=[f"src/f{i}.py"])
        if 0 <= dep < n:
            data["depends_on"] = [f"w{dep}"]
        ws(repo, f"w{i:04d}", json.dumps(data))
    r = aim("validate", "workstreams", cwd=repo)
    assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-1000:]
    # close the chain into a cycle: reported, not a crash
    head, tail = (0, n - 1) if not reverse else (n - 1, 0)  # head has no dependency yet
    data = good(id=f"w{head}", files_scope=[f"src/f{head}.py"], depends_on=[f"w{tail}"])
    ws(repo, f"w{head:04d}", json.dumps(data))
    refused(aim("validate", "workstreams", cwd=repo), "depends_on: dependency cycle")


def test_long_depends_on_chain_runs(repo, aim):
    for i in range(1500):
        data = good(id=f"w{i}", files_scope=[f"src/f{i}.py"])
        if i < 1499:
            data["depends_on"] = [f"w{i + 1}"]
        ws(repo, f"w{i:04d}", json.dumps(data))
    r = aim("run", "--dry-run", "workstreams", cwd=repo)
    assert r.returncode in (0, 3), r.stderr[-2000:]
    assert "Internal error" not in r.stderr


@pytest.mark.parametrize(
    "fields,field_path",
    [
        ({"capability_payload": {"prompt": "a\u0000b"}}, "capability_payload.prompt"),
        ({"files_scope": ["src/a\u0000.py"]}, "files_scope[0]"),
        ({"tasks": ["ok", "x\u0000"]}, "tasks[1]"),
        ({"id": "ws\u0000x"}, "id"),
    ],
    ids=["prompt", "path", "task", "id"],
)
def test_nul_character(repo, aim, fields, field_path):
    path = ws(repo, "nul", json.dumps(good(**fields)))
    for cmd in ("validate", "run"):
        refused(aim(cmd, path, cwd=repo), f"{field_path}: holds a NUL character")


def test_huge_scope_is_capped(repo, aim):
    path = ws(repo, "many", json.dumps(good(files_scope=[f"src/f{i}.py" for i in range(100_000)])))
    for cmd in ("validate", "run"):
        refused(aim(cmd, path, cwd=repo), "files_scope: has 100000 paths, more than 10000",
                "name a directory or a glob")  # fmt: skip


def test_huge_strings_and_files(repo, aim):
    # a 9 MiB workstream file: refused before it is parsed
    path = ws(repo, "big", json.dumps(good(capability_payload={"prompt": "x" * (9 << 20)})))
    refused(aim("validate", path, cwd=repo), "more than 8388608 (8 MiB)")
    # a 2 MiB prompt: over max_payload_bytes
    path = ws(repo, "long", json.dumps(good(capability_payload={"prompt": "y" * (2 << 20)})))
    refused(aim("run", path, cwd=repo), "capability_payload", "over max_payload_bytes")


def test_bom_is_accepted_and_other_encodings_explained(repo, aim):
    text = json.dumps(good(id="ws-bom"))
    path = ws(repo, "bom", "\ufeff" + text)
    r = aim("validate", path, cwd=repo)
    assert r.returncode == 0, r.stdout + r.stderr
    latin = ws(repo, "latin", text.replace("do it", "caf\u00e9").encode("latin-1"))
    refused(aim("validate", latin, cwd=repo), "workstreams/latin.json: not UTF-8 text (byte",
            "save the file as UTF-8")  # fmt: skip
    refused(aim("run", latin, cwd=repo), "not UTF-8 text")


def test_directory_where_a_file_is_expected(repo, aim):
    (repo / "workstreams" / "sub").mkdir(parents=True)
    r = aim("run", "workstreams/sub", cwd=repo)
    assert r.returncode == 2 and "Traceback" not in r.stderr


# --------------------------------------------------------------------------- rules


def test_rules_file_bad_input(repo, aim):
    rules = repo / RULES
    original = rules.read_text()
    rules.write_text('{"capabilities": ' + "[" * 200_000 + "]" * 200_000 + "}")
    refused(aim("status", cwd=repo), "AIM_coordination-rules.json", "nested more than 64 levels")
    rules.write_bytes(b'{"capabilities": {"x": "caf\xe9"}}')
    refused(aim("status", cwd=repo), "AIM_coordination-rules.json", "not UTF-8 text")
    rules.write_text("\ufeff" + original, encoding="utf-8")  # saved by a Windows editor
    r = aim("status", cwd=repo)
    assert r.returncode == 0, r.stderr
    rules.unlink()
    rules.mkdir()
    refused(aim("status", cwd=repo), "AIM_coordination-rules.json", "cannot read the file")


# --------------------------------------------------------------------------- config


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text,expected",
    [
        (_bomb(8), "its aliases (*name) expand to more than 100000 values"),
        (_bomb(9), "its aliases (*name) expand to more than 100000 values"),
        ("tools: " + "[" * 200_000 + "]" * 200_000 + "\n", "nested more than 64 levels deep"),
        (
            "tools:\n" + "".join("  " * (d + 1) + f"k{d}:\n" for d in range(80)),
            "nested more than 64",
        ),
        ("actor: a\u0000b\n", "not valid YAML"),
        ("x: [" + "'s', " * 300_000 + "]\n", "more than 1048576 (1 MiB)"),
    ],
    ids=["alias-bomb-8", "alias-bomb-9", "deep-flow", "deep-block", "nul", "huge"],
)
def test_config_bad_input(repo, aim, text, expected):
    (repo / CONFIG).write_text(text, encoding="utf-8")
    for cmd in (("status",), ("validate",)):
        refused(aim(*cmd, cwd=repo), "config/aim_config.yaml", expected)


def test_config_encodings_and_directories(repo, aim):
    config = repo / CONFIG
    original = config.read_text()
    config.write_text("\ufeff" + original, encoding="utf-8")
    assert aim("status", cwd=repo).returncode == 0
    config.write_bytes(b"actor: caf\xe9\n")
    refused(aim("status", cwd=repo), "config/aim_config.yaml: not UTF-8 text (byte 10")
    config.unlink()
    config.mkdir()
    refused(aim("status", cwd=repo), "config/aim_config.yaml: is a directory")
    config.rmdir()
    config.write_text(original + "anchors: &d {model: m}\ntools: {aider: *d}\n")
    assert aim("status", cwd=repo).returncode == 0  # a few aliases are fine
