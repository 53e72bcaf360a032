"""The vendored credential rules: gitleaks' expressions translated from Go to Python
faithfully, every rule compiles, the fast paths (windows, anchors, stripped prefixes)
find exactly what a plain search finds, and large text stays scannable."""

from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path

import pytest

from aim_core import credentials
from aim_core.secret_rules import SMALL, ruleset

from .credential_corpus import SAMPLES, VARIANTS, secret_part

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        "refresh_secret_rules", ROOT / "scripts" / "refresh_secret_rules.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "go,python,yes,no",
    [
        # a flag in the middle holds to the end of its group, across alternatives
        (r"x(?i)a|b", r"x(?i:a)|(?i:b)", ["xA", "B"], ["XA", "xB"]),
        (r"(?:" '"' r"(?i)k" '"' r"|'(?i)k')", None, ['"K"', "'k'"], ["\"k'"]),
        (r"abc\z", r"abc\Z", ["abc"], ["abc\n"]),
        (r"[[:alnum:]]{3}", r"[a-zA-Z0-9]{3}", ["a1Z"], ["a-1"]),
        (r"[[a]", r"[\[a]", ["[", "a"], ["b"]),
        (r"(?<name>ab)", r"(?P<name>ab)", ["ab"], ["ba"]),
    ],
)
def test_go_expressions_translate(go, python, yes, no):
    out = _script().go_to_python(go)
    if python is not None:
        assert out == python
    rx = re.compile(out, re.ASCII)
    assert all(rx.fullmatch(s) for s in yes), out
    assert not any(rx.fullmatch(s) for s in no), out


def test_vendored_rules_compile_and_say_where_they_come_from():
    data = json.loads((ROOT / "aim_core" / "secret_rules" / "gitleaks.json").read_text())
    assert data["version"].startswith("v8.") and "MIT" in data["license"]
    assert len(data["rules"]) > 200
    assert (ROOT / "aim_core" / "secret_rules" / "LICENSE.gitleaks").exists()
    rules = ruleset()
    assert rules.versions["gitleaks"] == data["version"]
    for rule in rules.rules:
        assert rule.regex.pattern  # compiles
        for a in rule.allowlists:
            assert a.regexes is not None and a.paths is not None
    ids = {r.id for r in rules.rules}
    for kind in ("github-fine-grained-pat", "npm-access-token", "private-key", "jwt"):
        assert kind in ids


def _filler(n: int, seed: int) -> str:
    """Source-like text with the rules' keywords all over it and no credential."""
    rng = random.Random(seed)
    words = ["key", "token", "auth", "access", "api", "secret", "password", "def", "return",
             "value", "x", "=", ":", "(", ")", "self", "'text'", "config", "ey", "sk-"]  # fmt: skip
    out = []
    size = 0
    while size < n:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def test_fast_paths_find_what_a_plain_search_finds():
    rules = ruleset()
    text = _filler(SMALL * 8, 1)
    pieces = list(SAMPLES.values()) + [v for _, v in VARIANTS.values()]
    for i, v in enumerate(pieces):  # credentials scattered through a large text
        at = (i + 1) * len(text) // (len(pieces) + 2)
        at = text.index("\n", at) + 1
        text = f"{text[:at]}{v}\n{text[at:]}"
    fast = {(h.rule, h.start, h.end) for h in rules.scan(text)}
    plain = set()
    for rule in rules.rules:  # every rule, whole text, plain finditer
        for m in rule.regex.finditer(text):
            hit = rules._check(rule, m, text, 0, None)
            if hit is not None:
                plain.add(tuple(hit))
    assert fast == plain
    for v in pieces:
        assert secret_part(v) not in credentials.redact(text)


def test_anchored_rules_start_with_a_keyword():
    # the fast path of an anchored rule assumes every match starts at a keyword
    rules = ruleset()
    anchored = [r for r in rules.rules if r.anchor]
    assert {r.id for r in anchored} >= {"generic-api-key", "credential-assignment"}
    text = _filler(SMALL * 4, 2) + "\n" + "\n".join(SAMPLES.values())
    low = text.lower()
    for rule in anchored:
        for m in rule.regex.finditer(text):
            assert any(low.startswith(kw, m.start()) for kw in rule.keywords), (rule.id, m)


def test_large_inputs_stay_linear_enough():
    # 1 MB lines of keyword soup and of one repeated character: no pathological backtracking
    # (a scan that took minutes would time the test suite out, not fail it softly)
    for text in ("a" * (1 << 20), "key=" * (1 << 15), "-----BEGIN RSA " * 90000):
        assert credentials.scan(text) == []
    soup = _filler(1 << 20, 3).replace("\n", " ")
    assert all(x.code in ("generic-api-key", "credential-assignment")
               for x in credentials.scan(soup, entropy=False))  # fmt: skip
