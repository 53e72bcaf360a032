"""The credential rules aim scans text with, and the scanner.

The rules are gitleaks' default ruleset (MIT; ``gitleaks.json``, converted from
gitleaks' ``config/gitleaks.toml`` by ``scripts/refresh_secret_rules.py``, which
records the version), plus ``aim.json``: a few kinds gitleaks leaves out and
aim's users paste (Groq ``gsk_`` and xAI ``xai-`` keys, ``sk-`` keys of any
length, ``Authorization: Bearer/Basic`` headers, npm's ``:_authToken=``,
unquoted AWS secret keys, credentials in URLs, quoted passwords, long random
strings), in the same form.

Scanning follows gitleaks: a rule is tried only where one of its keywords
occurs (lower-cased; every keyword found in one Aho-Corasick pass, as gitleaks
does, with ahocorasick-rs); its secret (``group``, else the first non-empty group, else
the match) must be more random than its ``entropy`` and match none of the
allowlists. To stay fast on large text, a rule runs only in windows around its
keyword's occurrences (as wide as its longest match, see ``width``), and a
leading lazy identifier prefix is stripped from the expression and re-applied to
the match (``left``); a rule whose matches all start with one of its keywords
(``anchor``) is tried at those occurrences only. Rules are compiled on first use.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

SMALL = 8192  # characters: text up to this size is searched whole
UNBOUNDED = 4096  # the window after a keyword for a rule whose match has no length bound
BACK = 256  # the window before a keyword for such a rule
_IDENT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class Hit(NamedTuple):
    """One credential: the rule that found it and the span of its secret in the text."""

    rule: str
    start: int
    end: int


def entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character (gitleaks' measure)."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


class Allowlist:
    """What a rule (or every rule) does not report: by expression, stopword or path.
    Its expressions are compiled on first use (most text has no finding to check)."""

    __slots__ = ("_paths", "_regexes", "and_", "data", "stopwords", "target")

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.and_ = data.get("condition") == "AND"
        self.target = data.get("target") or "secret"
        self.stopwords = tuple(data.get("stopwords", ()))
        self._regexes: list[re.Pattern[str]] | None = None
        self._paths: list[re.Pattern[str]] | None = None

    @property
    def regexes(self) -> list[re.Pattern[str]]:
        if self._regexes is None:
            self._regexes = [re.compile(r, re.ASCII) for r in self.data.get("regexes", ())]
        return self._regexes

    @property
    def paths(self) -> list[re.Pattern[str]]:
        if self._paths is None:
            self._paths = [re.compile(r, re.ASCII) for r in self.data.get("paths", ())]
        return self._paths

    def allows(self, secret: str, match: str, line: str, path: str | None) -> bool:
        """Whether a finding is allowed (gitleaks' checkFindingAllowed)."""
        target = match if self.target == "match" else line if self.target == "line" else secret
        by_regex = any(r.search(target) for r in self.regexes)
        low = secret.lower()
        by_word = any(w in low for w in self.stopwords)
        if not self.and_:
            return by_regex or by_word
        checks = []
        if self.data.get("paths"):
            checks.append(path is not None and any(p.search(path) for p in self.paths))
        if self.data.get("regexes"):
            checks.append(by_regex)
        if self.stopwords:
            checks.append(by_word)
        return bool(checks) and all(checks)

    def allows_path(self, path: str) -> bool:
        return any(p.search(path) for p in self.paths)


class Rule:
    """One rule; its expressions are compiled on first use."""

    __slots__ = (
        "_allow",
        "_path",
        "_rx",
        "anchor",
        "data",
        "entropy",
        "group",
        "id",
        "keywords",
        "left",
        "width",
    )

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.id: str = data["id"]
        self.keywords: tuple[str, ...] = tuple(data.get("keywords") or ())
        self.entropy: float | None = data.get("entropy")
        self.group: int | None = data.get("group")
        self.left: int = data.get("left") or 0
        self.width: int | None = data.get("width")
        self.anchor: bool = bool(data.get("anchor")) and bool(self.keywords)
        self._rx: re.Pattern[str] | None = None
        self._path: re.Pattern[str] | None = None
        self._allow: list[Allowlist] | None = None

    @property
    def regex(self) -> re.Pattern[str]:
        if self._rx is None:
            self._rx = re.compile(self.data["regex"], re.ASCII)
        return self._rx

    @property
    def allowlists(self) -> list[Allowlist]:
        if self._allow is None:
            self._allow = [Allowlist(a) for a in self.data.get("allowlists", ())]
        return self._allow

    def applies_to(self, path: str | None) -> bool:
        """A rule limited to some files (``path``) applies to them, and to text of unknown
        origin (a prompt, a record, tool output)."""
        if not self.data.get("path") or path is None:
            return True
        if self._path is None:
            self._path = re.compile(self.data["path"], re.ASCII)
        return bool(self._path.search(path))

    def windows(self, n: int, where: dict[str, list[int]]) -> Iterator[tuple[int, int]]:
        """Spans of a text of ``n`` characters to search: the whole of a small text, else
        merged windows around the occurrences of the rule's keywords (``where``)."""
        if n <= SMALL or not self.keywords:
            yield 0, n
            return
        back = self.width + self.left if self.width is not None else BACK + self.left
        ahead = self.width if self.width is not None else UNBOUNDED
        spans = sorted(
            (max(0, at - back), min(n, at + len(kw) + ahead))
            for kw in self.keywords
            for at in where.get(kw, ())
        )
        if not spans:
            return
        a0, b0 = spans[0]
        for a, b in spans[1:]:
            if a <= b0:
                b0 = max(b0, b)
            else:
                yield a0, b0
                a0, b0 = a, b
        yield a0, b0


class RuleSet:
    """Every rule, with the global allowlist."""

    def __init__(self, rules: list[Rule], allowlist: Allowlist, versions: dict[str, str]):
        self.rules = rules
        self.allowlist = allowlist
        self.versions = versions
        self.by_keyword: dict[str, list[Rule]] = {}
        for rule in rules:
            for kw in rule.keywords:
                self.by_keyword.setdefault(kw, []).append(rule)
        self.keywords = list(self.by_keyword)
        self.always = [r for r in rules if not r.keywords]
        self._automaton: Any = None

    def occurrences(self, low: str) -> dict[str, list[int]]:
        """Where each keyword occurs in the lower-cased text: one Aho-Corasick pass
        (ahocorasick-rs) when it is installed, else one ``str.find`` loop per keyword."""
        where: dict[str, list[int]] = {}
        if self._automaton is None:
            try:
                import ahocorasick_rs
            except ImportError:  # pragma: no cover - the dependency is declared
                self._automaton = False
            else:
                self._automaton = ahocorasick_rs.AhoCorasick(self.keywords)
        if self._automaton:
            for k, at, _ in self._automaton.find_matches_as_indexes(low, overlapping=True):
                where.setdefault(self.keywords[k], []).append(at)
            return where
        for kw in self.keywords:
            at = low.find(kw)
            while at >= 0:
                where.setdefault(kw, []).append(at)
                at = low.find(kw, at + 1)
        return where

    def scan(
        self,
        text: str,
        *,
        path: str | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> list[Hit]:
        """Every credential in ``text`` (``path``: the file it came from, when known),
        leaving out the rules named in ``skip``; sorted by position."""
        if not text or (path is not None and self.allowlist.allows_path(path)):
            return []
        low = text.lower()
        if len(low) != len(text):  # rare: lower-casing changed a length
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        where = self.occurrences(low)
        picked = {r.id: r for kw in where for r in self.by_keyword[kw]}
        hits = []
        for rule in (*self.always, *picked.values()):
            if rule.id in skip or not rule.applies_to(path):
                continue
            if rule.anchor and len(text) > SMALL:
                hits.extend(self._anchored(rule, text, where, path))
                continue
            for a, b in rule.windows(len(text), where):
                hits.extend(self._matches(rule, text, a, b, path))
        return sorted(set(hits), key=lambda h: (h.start, -h.end, h.rule))

    def _matches(self, rule: Rule, text: str, a: int, b: int, path: str | None) -> Iterator[Hit]:
        for m in rule.regex.finditer(text, a, b):
            hit = self._check(rule, m, text, a, path)
            if hit is not None:
                yield hit

    def _anchored(
        self, rule: Rule, text: str, where: dict[str, list[int]], path: str | None
    ) -> Iterator[Hit]:
        """A rule whose every match starts with one of its keywords, tried only at their
        occurrences (``anchor``): much cheaper than a search through windows."""
        ahead = rule.width if rule.width is not None else UNBOUNDED
        starts = sorted({at for kw in rule.keywords for at in where.get(kw, ())})
        end = 0
        for at in starts:
            if at < end:
                continue
            m = rule.regex.match(text, at, min(len(text), at + ahead))
            if m is None:
                continue
            end = m.end()
            hit = self._check(rule, m, text, 0, path)
            if hit is not None:
                yield hit

    def _check(
        self, rule: Rule, m: re.Match[str], text: str, a: int, path: str | None
    ) -> Hit | None:
        """The hit of a match: its secret, if random enough and not allowlisted."""
        s, e = m.span()
        groups = rule.regex.groups
        if rule.group is not None and rule.group <= groups:
            s, e = m.span(rule.group)
        elif groups:
            for g in range(1, groups + 1):
                gs, ge = m.span(g)
                if ge > gs:
                    s, e = gs, ge
                    break
        if e <= s:
            return None
        secret = text[s:e]
        if rule.entropy and entropy(secret) <= rule.entropy:
            return None
        ms = m.start()
        if rule.left:
            stop = max(a, ms - rule.left)
            while ms > stop and text[ms - 1] in _IDENT:
                ms -= 1
        if self._allowed(rule, secret, text[ms : m.end()], text, ms, m.end(), path):
            return None
        return Hit(rule.id, s, e)

    def _allowed(
        self, rule: Rule, secret: str, match: str, text: str, ms: int, me: int, path: str | None
    ) -> bool:
        lists = [self.allowlist, *rule.allowlists]
        line = ""
        if any(x.target == "line" for x in lists):
            end = text.find("\n", me)
            line = text[text.rfind("\n", 0, ms) + 1 : end if end >= 0 else len(text)]
        return any(x.allows(secret, match, line, path) for x in lists)


def _load(name: str) -> dict[str, Any]:
    return json.loads(Path(__file__).with_name(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def ruleset() -> RuleSet:
    """gitleaks' rules and aim's, loaded once per process (~220 rules; each compiled when
    first needed)."""
    gitleaks = _load("gitleaks.json")
    own = _load("aim.json")
    rules = [Rule(r) for r in own["rules"]] + [Rule(r) for r in gitleaks["rules"]]
    versions = {"gitleaks": gitleaks["version"], "aim": own["version"]}
    return RuleSet(rules, Allowlist(gitleaks["allowlist"]), versions)
