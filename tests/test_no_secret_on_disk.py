"""No secret on disk: a corpus of credential kinds pasted into every channel -- the
prompt, tasks, file contents, file names, workstream ids, a tool's output and its
failure line -- through real `aim run`s with a fake tool executable; then everything
aim wrote (the registry, the cache and state directories) is searched: none found."""

from __future__ import annotations

import json
from pathlib import Path

from .credential_corpus import SAMPLES, VARIANTS, all_values, secret_part
from .test_run import records, write_ws

REGISTRY = Path("aim") / ".AIM_ai-tools-registry"
VALUES = [v for v in SAMPLES.values()] + [v for _, v in VARIANTS.values()]
# samples that are one token (no spaces, no newline): usable as an id or a file name
TOKENS = [v for v in VALUES if " " not in v and "\n" not in v and "/" not in v and "=" not in v]


def found_on_disk(repo: Path, home: Path, *, skip: tuple[Path, ...] = ()) -> list[str]:
    """``file: sample`` for every sample's secret part in a file aim wrote (or in its name)."""
    secrets = all_values()
    hits = []
    for top in (repo / REGISTRY, repo / "config", home):
        for f in sorted(top.rglob("*")):
            if any(f.is_relative_to(s) for s in skip):
                continue
            for s in secrets:
                if s in str(f.relative_to(top)):
                    hits.append(f"{f} (its name): {s[:12]}...")
            if not f.is_file():
                continue
            data = f.read_bytes()
            for s in secrets:
                for form in (s, json.dumps(s)[1:-1]):  # as written, or escaped in JSON
                    if form.encode() in data:
                        hits.append(f"{f}: {s[:12]}...")
    return hits


def test_corpus_in_every_channel_never_reaches_disk(repo, aim, fake, fakeai, isolated_env):
    assert len(TOKENS) >= 10
    jules = fake("jules", writes={"src/target.py": "ok\n"})
    (repo / "src").mkdir(exist_ok=True)
    runs = {}
    # the prompt: each credential on its own line and inside a sentence
    prompt = "\n".join(f"{v}\nDeploy with {v} please." for v in VALUES)
    runs["prompt"] = write_ws(repo, "ws-prompt", capability_payload={"prompt": prompt})
    # tasks and acceptance tests
    runs["tasks"] = write_ws(
        repo,
        "ws-tasks",
        capability_payload={},
        tasks=[f"deploy with {v}" for v in VALUES],
        acceptance_tests=[f"login works with {v}" for v in VALUES[:5]],
    )
    # file contents: every credential in a file in scope
    (repo / "src" / "settings_prod.py").write_text(
        "\n".join(f"VALUE_{i} = {json.dumps(v)}" for i, v in enumerate(VALUES)) + "\n"
    )
    runs["file-contents"] = write_ws(
        repo,
        "ws-contents",
        files_scope=["src/settings_prod.py"],
        capability_payload={"prompt": "tidy", "files": ["src/settings_prod.py"]},
    )
    # file names
    runs["file-names"] = write_ws(repo, "ws-names", files_scope=[f"src/{t}.py" for t in TOKENS])
    # workstream ids
    for i, t in enumerate(TOKENS[:6]):
        runs[f"id-{i}"] = write_ws(repo, f"ws-id-{i}", id=t)
    for name, ws in runs.items():
        r = aim("run", ws, cwd=repo, env=fakeai)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert "holds a credential" in r.stderr, (name, r.stderr)
        if name.startswith(("id-", "file-names")):
            continue  # the terminal shows the names it refuses (not disk: the lead's CLI)
        for v in VALUES:
            assert secret_part(v) not in r.stderr + r.stdout, (name, v[:12])
    assert jules.work_calls == []  # refused before any tool ran
    assert len(records(repo)) == len(runs)

    # a tool's output and failure line, and a file it creates whose name is a credential
    out = "\n".join(f"debug: using {v}" for v in VALUES)
    jules.configure(
        exit_code=1,
        stdout=out,
        stderr=f"{out}\nerror: the API refused {TOKENS[0]}\n",
        writes={f"src/{TOKENS[1]}.txt": "x\n"},
    )
    r = aim("run", write_ws(repo, "ws-output"), cwd=repo, env=fakeai)
    assert r.returncode == 1, r.stderr
    rec = records(repo)[-1]
    assert rec["tool_id"] == "jules" and "[REDACTED]" in rec["result"]["message"]
    # the redact policy: the prompt reaches the tool and the record redacted
    rules = repo / REGISTRY / "AIM_cross-tool" / "AIM_coordination-rules.json"
    data = json.loads(rules.read_text())
    data["security"]["credential_policy"]["prompt"] = "redact"
    rules.write_text(json.dumps(data))
    jules.configure(writes={"src/target.py": "ok\n"}, stdout=out)
    r = aim("run", write_ws(repo, "ws-redacted", capability_payload={"prompt": prompt}),
            cwd=repo, env=fakeai)  # fmt: skip
    assert r.returncode == 0, r.stderr
    sent = " ".join(jules.work_calls[-1]["argv"])
    assert all(secret_part(v) not in sent for v in VALUES)

    hits = found_on_disk(repo, isolated_env)
    assert hits == [], "\n".join(hits)
    # and the guide's secret grep over the audit finds nothing to report
    log = "".join(f.read_text() for f in (repo / REGISTRY).glob("AIM_audit/*/audit.jsonl"))
    for word in ("password", "api_key", "secret", "token"):
        assert word not in log.lower(), word


def test_names_holding_a_credential_are_refused_under_the_redact_policy_too(
    repo, aim, fake, fakeai, isolated_env
):
    rules = repo / REGISTRY / "AIM_cross-tool" / "AIM_coordination-rules.json"
    data = json.loads(rules.read_text())
    data["security"]["credential_policy"]["prompt"] = "redact"
    rules.write_text(json.dumps(data))
    jules = fake("jules", writes={"src/target.py": "ok\n"})
    for name, fields in {
        "id": {"id": f"ws-{SAMPLES['github-pat']}"},
        "path": {"files_scope": [f"src/{SAMPLES['groq-api-key']}.py"]},
    }.items():
        r = aim("run", write_ws(repo, f"ws-{name}", **fields), cwd=repo, env=fakeai)
        assert r.returncode == 2 and "holds a credential; rename it" in r.stderr, r.stderr
    assert jules.work_calls == []
    hits = found_on_disk(repo, isolated_env)
    assert hits == [], "\n".join(hits)
