"""Security: a corpus of bad workstreams is refused (or redacted) before any tool runs,
tools can't write forbidden paths, and no credential reaches a log."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aim_core import credentials

from .credential_corpus import SAMPLES, VARIANTS, secret_part
from .test_run import records, write_ws

AIM = [sys.executable, "-m", "aim_core"]


BANNED = ("password", "api_key", "secret", "token")


@pytest.mark.parametrize(
    "code,value",
    [*sorted(SAMPLES.items()), *sorted(VARIANTS.values())],
    ids=[*sorted(SAMPLES), *sorted(VARIANTS)],
)
def test_every_kind_is_found_and_redacted(code, value):
    text = f"Please use {value} for the deploy step."
    leaks = credentials.scan(text)
    assert code in {x.code for x in leaks}, [x.code for x in leaks]
    clean = credentials.redact(text, leaks)
    assert "[REDACTED]" in clean
    assert secret_part(value) not in clean
    assert not any(w in x.code for x in leaks for w in BANNED)


def test_split_across_lines_and_prose_untouched():
    key = SAMPLES["aws-access-credential"]
    wrapped = f"the key is {key[:9]}\n    {key[9:]} and that is all"
    assert [x.code for x in credentials.scan(wrapped)] == ["aws-access-credential"]
    assert key[:9] not in credentials.redact(wrapped) and key[9:] not in credentials.redact(wrapped)
    prose = "Add structured logging; revert commit 3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c"
    assert credentials.scan(prose) == []
    # names and placeholders that look like credentials are not
    for text in (
        "Authorization: Bearer ${API_TOKEN}",
        "password = '<your password>'",
        "https://user:password@example.com",
        "the sk-learn-compatible-estimator-wrapper module",
        "the bearer of bad news",
        "set api_key in your environment",
    ):
        assert credentials.scan(text) == [], text


# --------------------------------------------------------------------------- the corpus


def _corpus(root) -> dict[str, tuple[dict, str]]:
    """name -> (workstream fields, text the refusal must contain)."""
    out = {}
    for field in ("files_scope", "files_create"):
        out[f"{field}-dotenv"] = ({field: [".env"]}, "'/.env' is a forbidden path (rule '.env')")
        out[f"{field}-git-config"] = (
            {field: [".git/config"]},
            "'/.git/config' is a forbidden path (rule '.git/')",
        )
    out["payload-files-env-variant"] = (
        {
            "files_scope": ["src/a.py", ".env.production"],
            "capability_payload": {"prompt": "p", "files": [".env.production"]},
        },
        "'/.env.production' is a forbidden path (rule '.env.*')",
    )
    out["traversal"] = ({"files_scope": ["../outside.py"]}, "leaves the repository root")
    out["absolute"] = ({"files_scope": ["/etc/passwd"]}, "is an absolute path")
    out["case-trick"] = ({"files_scope": [".GIT/config"]}, "'/.GIT/config' is a forbidden path")
    out["case-trick-env"] = ({"files_scope": ["src/.Env"]}, "'/src/.Env' is a forbidden path")
    out["private-key-file"] = (
        {"files_scope": ["deploy/id_rsa"]},
        "is a forbidden path (rule 'id_rsa*')",
    )
    out["registry"] = (
        {"files_scope": ["aim/.AIM_ai-tools-registry/AIM_cross-tool/AIM_coordination-rules.json"]},
        "rule 'aim/.AIM_ai-tools-registry/'",
    )
    out["symlink-escape"] = (
        {"files_scope": ["src/escape.py"]},
        "is a symlink that leads outside the repository",
    )
    out["symlink-to-forbidden"] = (
        {"files_scope": ["src/settings.py"]},
        "is a symlink to the forbidden path '/.env'",
    )
    out["symlinked-directory"] = (
        {"files_scope": ["linked/x.py"]},
        "is a symlink that leads outside the repository",
    )
    out["glob-reaches-forbidden"] = (
        {"files_scope": ["*"]},
        "the glob '*' reaches the forbidden path '/.env'",
    )
    out["not-an-allowed-file"] = ({"files_scope": ["tool.exe"]}, "is not an allowed kind of file")
    out["payload-over-1mb"] = (
        {"files_scope": ["big.txt"], "capability_payload": {"prompt": "x", "files": ["big.txt"]}},
        "over max_payload_bytes 1048576",
    )
    for code, value in SAMPLES.items():
        if code == "high-entropy-string":
            continue  # redacted, never refused: see test_high_entropy_is_redacted_not_refused
        out[f"prompt-{code}"] = (
            {"capability_payload": {"prompt": f"Deploy with {value} please"}},
            f"capability_payload.prompt: holds a credential: {code}",
        )
    out["task-split-key"] = (
        {
            "tasks": [
                f"use key {SAMPLES['aws-access-credential'][:8]}\n  {SAMPLES['aws-access-credential'][8:]}"
            ]
        },
        "tasks[0]: holds a credential: aws-access-credential",
    )
    out["file-with-key"] = (
        {
            "files_scope": ["src/keys.py"],
            "capability_payload": {"prompt": "tidy", "files": ["src/keys.py"]},
        },
        "'src/keys.py' holds a credential: aws-access-credential",
    )
    return out


def _prepare(root, outside):
    (root / "src").mkdir(exist_ok=True)
    (root / ".env").write_text("X=1\n")
    (outside / "escape.py").write_text("x = 1\n")
    os.symlink(outside / "escape.py", root / "src" / "escape.py")
    os.symlink(root / ".env", root / "src" / "settings.py")
    os.symlink(outside, root / "linked")
    (root / "big.txt").write_text("x" * (1024 * 1024))
    (root / "src" / "keys.py").write_text(f"KEY = '{SAMPLES['aws-access-credential']}'\n")


def test_bad_workstreams_are_refused_and_leave_no_secret(repo, aim, fake, fakeai, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    _prepare(repo, outside)
    jules = fake("jules", writes={"src/a.py": "x\n"})
    corpus = _corpus(repo)
    path_refusals = []
    for name, (fields, expected) in corpus.items():
        data = {"id": f"ws-{name}", "capability": "code_generation", "files_scope": ["src/a.py"]}
        data.update(fields)
        data.setdefault("capability_payload", {"prompt": "do it"})
        ws = repo / "workstreams" / f"{name}.json"
        ws.write_text(json.dumps(data))
        r = aim("run", f"workstreams/{name}.json", cwd=repo, env=fakeai)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert expected in r.stderr, (name, r.stderr)
        assert "Traceback" not in r.stderr
        for value in SAMPLES.values():
            assert value not in r.stderr and value not in r.stdout, name
        if "forbidden path" in expected:
            path_refusals.append(name)
    assert jules.work_calls == []  # nothing ever ran
    recs = records(repo)
    assert len(recs) == len(corpus)
    assert all(r["tool_id"] is None and r["failure"] == "invalid_payload" for r in recs)

    env = {**os.environ, **fakeai}
    log = subprocess.run(
        [*AIM, "audit", "query", "--format", "json"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    for value in SAMPLES.values():
        assert value not in log
    grep = subprocess.run(
        ["grep", "-iE", "(password|api_key|secret|token)"],
        input=log,
        capture_output=True,
        text=True,
    )
    assert grep.stdout == "", grep.stdout
    forbidden = subprocess.run(
        ["grep", "-E", r"(/\.git/|/\.env)"], input=log, capture_output=True, text=True
    )
    hits = {json.loads(line)["workstream_id"] for line in forbidden.stdout.splitlines()}
    expected_hits = {
        f"ws-{n}" for n in path_refusals if "/.env" in corpus[n][1] or "/.git/" in corpus[n][1]
    } | {"ws-symlink-to-forbidden"}
    assert hits == expected_hits


def test_high_entropy_is_redacted_not_refused(repo, aim, fake, fakeai):
    fake("jules", writes={"src/target.py": "1\n"})
    value = SAMPLES["high-entropy-string"]
    ws = write_ws(repo, "ws-entropy", capability_payload={"prompt": f"keep {value} as is"})
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    [rec] = records(repo)
    assert "[REDACTED]" in rec["payload"]["prompt"] and secret_part(value) not in json.dumps(rec)


def test_redact_policy_sends_the_redacted_prompt(repo, aim, fake, fakeai):
    rules = (
        repo / "aim" / ".AIM_ai-tools-registry" / "AIM_cross-tool" / "AIM_coordination-rules.json"
    )
    data = json.loads(rules.read_text())
    data["security"]["credential_policy"]["prompt"] = "redact"
    rules.write_text(json.dumps(data))
    jules = fake("jules", writes={"src/target.py": "1\n"})
    ws = write_ws(
        repo,
        "ws-redact",
        capability_payload={"prompt": f"deploy with {SAMPLES['github-pat']}"},
    )
    r = aim("run", ws, cwd=repo, env=fakeai)
    assert r.returncode == 0, r.stderr
    sent = jules.work_calls[0]["argv"][1]
    assert sent == "deploy with [REDACTED]"
    assert records(repo)[0]["payload"]["prompt"] == "deploy with [REDACTED]"


def test_credentials_in_tool_output_never_reach_the_logs(repo, aim, fake, fakeai):
    key = SAMPLES["stripe-access-credential"]
    fake(
        "jules",
        exit_code=1,
        stderr=f"failed to call the API with {key}\n",
        stdout=f"debug: using {SAMPLES['sk-api-key']}\n",
    )
    r = aim("run", write_ws(repo, "ws-out"), cwd=repo, env=fakeai)
    assert r.returncode == 1
    registry = repo / "aim" / ".AIM_ai-tools-registry"
    for f in [*registry.glob("AIM_audit/*/audit.jsonl"), *registry.glob("AIM_runs/*.log")]:
        text = f.read_text()
        assert key not in text and SAMPLES["sk-api-key"] not in text, f
    assert "failed to call the API with [REDACTED]" in records(repo)[0]["result"]["message"]
    assert key not in r.stderr


def test_environment_credentials_are_not_passed_to_tools(repo, aim, fake, fakeai):
    jules = fake("jules")
    dump = repo.parent / "env.json"
    # a tool that dumps the environment it was given, then does its work
    jules.path.write_text(
        f"#!{sys.executable}\nimport os, json, sys\n"
        "if sys.argv[1:2] == ['--version']:\n    print('jules 1'); sys.exit(0)\n"
        f"json.dump(dict(os.environ), open({str(dump)!r}, 'w'))\n"
        "os.makedirs('src', exist_ok=True); open('src/target.py', 'w').write('1')\n"
    )
    env = {**fakeai, "UNRELATED_DB_PASSWORD": "swordfish-9", "FAKEAI_MODEL": "m1"}
    r = aim("run", write_ws(repo, "ws-env"), cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    seen = json.loads(dump.read_text())
    assert "UNRELATED_DB_PASSWORD" not in seen
    assert seen["FAKEAI_MODEL"] == "m1"  # the plugin's own variables pass
    assert seen["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize(
    "target,rule",
    [(".env", ".env"), (".git/config", ".git/")],
    ids=["dotenv", "git-config"],
)
def test_tool_writing_a_forbidden_path_fails_and_is_restored(repo, aim, fake, fakeai, target, rule):
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + ".env\n")
    (repo / ".env").write_text("ORIGINAL=1\n")
    before = (repo / target).read_text()
    fake("jules", writes={"src/target.py": "ok\n", target: "HACKED=1\n"})
    r = aim("run", write_ws(repo, f"ws-write-{rule.strip('./')}"), cwd=repo, env=fakeai)
    assert r.returncode == 1, r.stderr
    assert (
        f"jules changed files outside its scope: {target} (reverted); forbidden: /{target}"
        in r.stderr
    )
    assert (repo / target).read_text() == before
    rec = records(repo)[0]
    assert rec["failure"] == "out_of_scope" and f"/{target}" in rec["result"]["message"]


def test_validate_reports_security_problems_too(repo, aim):
    (repo / "workstreams" / "bad.json").write_text(
        json.dumps({"id": "b", "tool": "aider", "files_scope": [".env"]})
    )
    r = aim("validate", "workstreams/bad.json", cwd=repo)
    assert r.returncode == 2
    assert "files_scope[0]: '/.env' is a forbidden path (rule '.env')" in r.stdout
