"""Finding credentials in text: prompts, file contents, names, tool output, records.

The kinds are those of gitleaks' default ruleset (vendored with its version,
:mod:`aim_core.secret_rules`; ~220 kinds: cloud, VCS, package registries, AI
providers, chat, payment, private keys, JWTs, generic ``key = value``
assignments) plus aim's own few (``gsk_``, ``xai-``, ``sk-`` keys of any shape,
``Authorization`` headers, ``.npmrc`` auth, unquoted AWS secret keys,
credentials in URLs, quoted passwords, long random strings). Each rule is tried
only where one of its keywords occurs, so text with none costs little.

A key wrapped onto the next line (a prompt pasted from a narrow terminal) is
found too: the text is also scanned with such line breaks removed.

Findings are reported as neutral codes (the rule's id with the words a secret
grep looks for replaced, e.g. ``aws-access-credential``, ``github-pat``,
``private-key``) and never with the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aim_core.values import Value

REDACTED = "[REDACTED]"
ENTROPY_ONLY = "high-entropy-string"
# kinds that only say "this looks random": redacted, never a reason to refuse a request
ENTROPY_RULES = frozenset({"high-entropy-string", "high-entropy-hex"})
# kinds that match any assignment: a named kind found on the same span wins
_GENERIC = ENTROPY_RULES | {"generic-api-key", "credential-assignment"}
_BANNED = ("password", "api_key", "secret", "token")
# The name a value is assigned to (`password = "`, `token: `): redacted with the value,
# so what remains says nothing about what was there.
_ASSIGNED_TO = re.compile(r"""[\w.\-\[\]"']+\s*(?::=|=>|[:=])\s*["']?$""")
# A line break inside a token (an indent may follow): removed to find wrapped keys.
_WRAP = re.compile(r"(?<=[A-Za-z0-9_/+=-])\r?\n[ \t]*(?=[A-Za-z0-9_/+=-])")
_WRAP_MAX = 1 << 16  # characters: longer text is not scanned a second time for wraps
_NAME_MAX = 4096
_SPACE = re.compile(r"\s")
# path separators, and the dot of a file name's extension
_NAME_SEPARATORS = re.compile(r"[/\\]|\.(?=[A-Za-z0-9]{1,10}(?:[/\\]|$))")


def _rank(code: str) -> int:
    """Which code a span found by several rules is reported under: a named kind first,
    then a generic assignment, then randomness alone."""
    return 2 if code in ENTROPY_RULES else 1 if code in _GENERIC else 0


def neutral_code(kind: str) -> str:
    """A rule id as a code free of the words a secret grep looks for."""
    code = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
    for word in _BANNED:
        code = code.replace(word, "credential")
    return code


class Leak(Value):
    """One credential found: its code, line (1-based) and span in the text."""

    __slots__ = ("code", "end", "line", "start")
    code: str
    line: int
    start: int
    end: int

    def __init__(self, *, code: str, line: int, start: int, end: int) -> None:
        self._init(code=code, line=line, start=start, end=end)


def _hits(text: str, path: str | None, skip: frozenset[str]) -> list[tuple[str, int, int]]:
    from aim_core.secret_rules import ruleset

    rules = ruleset()
    found = [(h.rule, h.start, h.end) for h in rules.scan(text, path=path, skip=skip)]
    if len(text) <= _NAME_MAX and not _SPACE.search(text):
        # a name (a path, an id): the rules want a credential to end at a space, a quote
        # or the end, not at "/" or ".py" -- look again with those made spaces
        named = _NAME_SEPARATORS.sub(lambda m: "\n" if m.group() in "/\\" else " ", text)
        if named != text:
            found += [(h.rule, h.start, h.end) for h in rules.scan(named, path=path, skip=skip)]
    if "\n" in text and len(text) <= _WRAP_MAX:
        joined, where = _unwrap(text)
        if where is not None:
            for h in rules.scan(joined, path=path, skip=skip):
                s, e = where[h.start], where[h.end - 1] + 1
                if "\n" in text[s:e]:  # found only because a line break was removed
                    found.append((h.rule, s, e))
    return found


def _unwrap(text: str) -> tuple[str, list[int] | None]:
    """``text`` without the line breaks inside tokens, and where each character was."""
    cuts = [m.span() for m in _WRAP.finditer(text)]
    if not cuts:
        return text, None
    parts: list[str] = []
    where: list[int] = []
    pos = 0
    for a, b in cuts:
        parts.append(text[pos:a])
        where.extend(range(pos, a))
        pos = b
    parts.append(text[pos:])
    where.extend(range(pos, len(text)))
    return "".join(parts), where


def scan(
    text: str,
    *,
    filename: str | None = None,
    entropy: bool = True,
    skip: Iterable[str] = (),
) -> list[Leak]:
    """Every credential in ``text``, sorted by position.

    :param filename: the file the text came from (rules limited to some files, and
        gitleaks' allowlisted files such as lock files, use it); None for a prompt,
        a record or tool output.
    :param entropy: also report long random-looking strings (``high-entropy-string``):
        they are redacted but never make a request refused.
    :param skip: rule ids not to apply (tool output leaves out ``high-entropy-hex``: it
        is full of hashes).
    """
    if not text:
        return []
    path = None if filename in (None, "prompt.txt") else filename.replace("\\", "/")
    spans: dict[tuple[int, int], str] = {}
    rules_skipped = frozenset(skip) | (frozenset() if entropy else ENTROPY_RULES)
    for rule, s, e in _hits(text, path, rules_skipped):
        code = neutral_code(rule)
        if (s, e) not in spans or _rank(code) < _rank(spans[(s, e)]):
            spans[(s, e)] = code
    # a span inside another is the same finding; a generic one overlapping a named one goes
    kept: list[tuple[int, int, str]] = []
    for (s, e), code in sorted(spans.items(), key=lambda x: (x[0][0], -x[0][1])):
        if any(ks <= s and e <= ke for ks, ke, _ in kept):
            continue
        if code in _GENERIC and any(s < ke and ks < e for ks, ke, kc in kept if kc not in _GENERIC):
            continue
        if code not in _GENERIC:
            kept = [k for k in kept if not (k[2] in _GENERIC and s < k[1] and k[0] < e)]
        kept.append((s, e, code))
    return [
        Leak(code=code, line=text.count("\n", 0, s) + 1, start=s, end=e)
        for s, e, code in sorted(kept)
    ]


def redact(
    text: str,
    leaks: Iterable[Leak] | None = None,
    *,
    filename: str | None = None,
    entropy: bool = True,
    skip: Iterable[str] = (),
) -> str:
    """``text`` with every credential replaced by ``[REDACTED]`` (with the name it is
    assigned to, so ``password = [REDACTED]`` does not remain)."""
    if leaks is None:
        leaks = scan(text, filename=filename, entropy=entropy, skip=skip)
    leaks = list(leaks)
    if not leaks:
        return text
    out, pos = [], 0
    for leak in sorted(leaks, key=lambda x: x.start):
        start, end = leak.start, leak.end
        line_start = text.rfind("\n", 0, start) + 1
        m = _ASSIGNED_TO.search(text, max(line_start, start - 200), start)
        if m is not None:
            start = m.start()
            quote = m.group()[-1]
            if quote in "\"'" and text[end : end + 1] == quote:
                end += 1
        if start < pos:
            start = pos
        if end <= start:
            continue
        out.append(text[pos:start])
        out.append(REDACTED)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def describe(leaks: Iterable[Leak]) -> str:
    """``aws-access-credential (line 3), private-key (line 7)`` -- never the values."""
    seen: dict[str, list[int]] = {}
    for leak in leaks:
        seen.setdefault(leak.code, []).append(leak.line)
    return ", ".join(
        f"{code} (line {', '.join(map(str, sorted(set(lines))))})" for code, lines in seen.items()
    )
