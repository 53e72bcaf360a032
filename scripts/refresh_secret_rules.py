#!/usr/bin/env python3
"""Refresh aim's vendored credential rules from gitleaks' default configuration.

    python scripts/refresh_secret_rules.py --tag v8.30.1          # fetched from GitHub
    python scripts/refresh_secret_rules.py --toml path/to/gitleaks.toml --version v8.30.1

gitleaks (MIT, https://github.com/gitleaks/gitleaks) keeps ~220 rules in
``config/gitleaks.toml``: a regular expression per kind of credential, the
keywords that must appear for the rule to be tried, an entropy threshold and
allowlists. This script reads that file, translates each expression from Go's
RE2 syntax to Python's ``re`` (a ``(?i)`` in the middle of a pattern becomes a
scoped group, ``\\z`` becomes ``\\Z``, POSIX classes are spelled out, a ``[``
inside a class is escaped), checks that every one compiles, and writes
``aim_core/secret_rules/gitleaks.json`` with the version it came from. Rules
that name only a file path (``pkcs12-file``) are left out: aim scans text.

Each rule also gets the two numbers aim's scanner needs to stay fast on large
text (:mod:`aim_core.secret_rules`): ``left`` -- a leading lazy identifier
prefix (``[\\w.-]{0,50}?``) stripped from the expression and re-applied to the
match, so the expression starts at its keyword -- and ``width``, the longest
match (None when unbounded), which bounds the window searched around each
keyword occurrence.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
import warnings
from datetime import datetime, timezone
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

OUT = Path(__file__).resolve().parent.parent / "aim_core" / "secret_rules" / "gitleaks.json"
RAW_URL = "https://raw.githubusercontent.com/gitleaks/gitleaks/{tag}/config/gitleaks.toml"
POSIX = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": r" \t\r\n\v\f",
    "xdigit": "0-9A-Fa-f",
    "word": r"\w",
    "punct": r"!-/:-@\[-`{-~",
}
LAZY_PREFIX = r"[\w.-]{0,50}?"
# Rules whose every match starts with one of their keywords (checked by
# tests/test_secret_rules.py): aim tries them at the keywords' occurrences only.
ANCHORED = {"generic-api-key"}
MAX_WIDTH = 1 << 16  # a longest match above this counts as unbounded


def _class(p: str, i: int) -> tuple[str, int]:
    """Translate the character class starting at ``p[i] == '['``; return it and the index
    after its ``]``."""
    out = ["["]
    i += 1
    if i < len(p) and p[i] == "^":
        out.append("^")
        i += 1
    first = True
    while i < len(p):
        c = p[i]
        if c == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if c == "\\":
            esc = p[i : i + 2]
            out.append(r"\Z" if esc == r"\z" else esc)
            i += 2
            continue
        if c == "[" and p.startswith("[:", i):
            end = p.index(":]", i)
            name = p[i + 2 : end]
            neg = name.startswith("^")
            if neg:
                raise ValueError(f"negated POSIX class [:{name}:] is not supported")
            out.append(POSIX[name])
            i = end + 2
            continue
        if c == "[":
            out.append(r"\[")
        elif c in "&~|-" and i + 1 < len(p) and p[i + 1] == c:
            out.append(c + "\\" + c)  # Python would read a set operation
            i += 2
            continue
        else:
            out.append(c)
        i += 1
    raise ValueError("unterminated character class")


def go_to_python(p: str) -> str:
    """A Go (RE2) regular expression as an equivalent Python one (compile with re.ASCII)."""
    out: list[str] = []
    wrappers: list[list[str]] = [[]]  # per group depth: the flag groups opened in it
    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            esc = p[i : i + 2]
            if esc in (r"\Q", r"\E"):
                raise ValueError(r"\Q...\E is not supported")
            out.append(r"\Z" if esc == r"\z" else esc)
            i += 2
        elif c == "[":
            text, i = _class(p, i)
            out.append(text)
        elif c == "(":
            m = re.match(r"\(\?([imsU-]+)\)", p[i:])
            if m:  # a flag that holds to the end of the enclosing group: scope it
                flags = m.group(1)
                if "U" in flags:
                    raise ValueError("the U flag is not supported")
                out.append(f"(?{flags}:")
                wrappers[-1].append(flags)
                i += m.end()
                continue
            if p.startswith("(?<", i) and not p.startswith(("(?<=", "(?<!"), i):
                out.append("(?P<")
                i += 3
            else:
                out.append("(")
                i += 1
            wrappers.append([])
        elif c == ")":
            out.append(")" * len(wrappers.pop()))
            out.append(")")
            i += 1
        elif c == "|":
            opened = wrappers[-1]
            out.append(")" * len(opened) + "|" + "".join(f"(?{f}:" for f in opened))
            i += 1
        else:
            out.append(c)
            i += 1
    out.append(")" * len(wrappers.pop()))
    if wrappers:
        raise ValueError("unbalanced parentheses")
    return "".join(out)


def _width(pattern: str) -> int | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import sre_parse
    hi = sre_parse.parse(pattern, re.ASCII).getwidth()[1]
    return None if hi >= MAX_WIDTH else int(hi)


def convert_rule(rule: dict) -> dict | None:
    """One gitleaks rule in aim's form, or None when it has no expression."""
    if not rule.get("regex"):
        return None
    source = rule["regex"]
    left = 0
    for head in ("(?i)", ""):
        if source.startswith(head + LAZY_PREFIX):
            source = head + source[len(head) + len(LAZY_PREFIX) :]
            left = 50
            break
    regex = go_to_python(source)
    re.compile(regex, re.ASCII)
    out = {
        "id": rule["id"],
        "regex": regex,
        "keywords": [k.lower() for k in rule.get("keywords", [])],
        "entropy": rule.get("entropy"),
        "group": rule.get("secretGroup"),
        "path": go_to_python(rule["path"]) if rule.get("path") else None,
        "left": left,
        "width": _width(regex),
        "anchor": rule["id"] in ANCHORED,
        "allowlists": [_allowlist(a) for a in rule.get("allowlists", [])],
    }
    return out


def _allowlist(a: dict) -> dict:
    regexes = [go_to_python(r) for r in a.get("regexes", [])]
    paths = [go_to_python(r) for r in a.get("paths", [])]
    for r in regexes + paths:
        re.compile(r, re.ASCII)
    return {
        "condition": (a.get("condition") or "OR").upper(),
        "target": a.get("regexTarget") or "secret",
        "regexes": regexes,
        "paths": paths,
        "stopwords": [w.lower() for w in a.get("stopwords", [])],
    }


def convert(config: dict, version: str) -> dict:
    """The whole configuration in aim's form."""
    rules = [r for r in (convert_rule(rule) for rule in config["rules"]) if r is not None]
    return {
        "source": "gitleaks default configuration (config/gitleaks.toml)",
        "url": "https://github.com/gitleaks/gitleaks",
        "license": "MIT (c) 2019 Zachary Rice; see LICENSE.gitleaks",
        "version": version,
        "converted_at": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "allowlist": _allowlist(config.get("allowlist", {})),
        "rules": rules,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tag", help="a gitleaks release tag to fetch, e.g. v8.30.1")
    ap.add_argument("--toml", type=Path, help="a local gitleaks.toml instead")
    ap.add_argument("--version", help="the version the local file is from")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.toml:
        text = args.toml.read_text(encoding="utf-8")
        version = args.version or "unknown"
    elif args.tag:
        with urllib.request.urlopen(RAW_URL.format(tag=args.tag), timeout=60) as r:
            text = r.read().decode("utf-8")
        version = args.tag
    else:
        ap.error("give --tag or --toml")
    data = convert(tomllib.loads(text), version)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(data['rules'])} rules from gitleaks {version} written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
