"""Finding credentials in text: prompts, file contents, tool output.

The detectors are detect-secrets' (AWS, GitHub, GitLab, private keys, JWTs,
Slack, Stripe, keyword assignments, high-entropy strings, ...), plus three
patterns it lacks for the very tools aim drives (OpenAI, Anthropic and Google
API keys). Importing detect-secrets costs ~90 ms, so a cheap regular
expression first picks the lines that could hold anything; text with none (most
prompts) never imports it. Lines are also scanned joined to the next one, so
a key wrapped over two lines is found.

Findings are reported as neutral codes (``aws-access-key``,
``github-credential``, ``private-key``, ``high-entropy-string``) that never
contain the words a secret grep looks for, and never with the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from attrs import frozen

REDACTED = "[REDACTED]"

# Anything a detector could flag passes this; everything else is skipped cheaply.
# Anything a detector could flag passes one of these; everything else is skipped
# cheaply. Supersets on purpose, and written so that a long line costs little: the
# keywords are searched in the lower-cased text, every other pattern starts with
# a literal.
_KEYWORDS = re.compile(
    r"key|pass|pwd|pw\s*[:=]|secret|contrase|token|bearer|cloudant|softlayer|ibm|iam"
)
# (a literal every match contains, the pattern): the literal is looked for first
# with ``in`` (fast even on a long line); the pattern only where the literal is.
_PREFIXES = [
    (literal, re.compile(pattern) if pattern != literal else None)
    for literal, pattern in (
        # the prefixes of the named detectors
        ("AKIA", "AKIA"), ("ASIA", "ASIA"), ("A3T", "A3T[A-Z0-9]"), ("ABIA", "ABIA"),
        ("ACCA", "ACCA"), ("AKC", r"\bAKC[a-zA-Z0-9]{10}"), ("AP", r"\bAP[\dA-F][a-zA-Z0-9]{8}"),
        ("AccountKey=", "AccountKey="), ("_", "gh[pousr]_"), ("github_pat_", "github_pat_"),
        ("gl", "gl(?:pat|dt|ft|soat|rt|cbt)-"), ("GR1348941", "GR1348941"),
        ("xox", "xox[abposr]-"), ("hooks.slack.com", "hooks.slack.com"), ("k_live", "[rs]k_live"),
        ("sk-", "sk-"), ("AIza", "AIza"), ("-----BEGIN", "-----BEGIN"), ("eyJ", "eyJ"),
        ("pypi-", "pypi-"), ("SG.", r"SG\.[\w-]{22}\."), ("sq0csp-", "sq0csp-"),
        ("AC", r"\bAC[a-z0-9]{32}"), ("SK", r"\bSK[a-z0-9]{32}"), ("-us", r"-us\d"),
        (":", r":[\w-]{35}"), (".", r"\.[\w-]{6}\."), ("@", r"://[^/\s:@]+:[^/\s@]+@"),
    )
]  # fmt: skip


def _prefix_in(text: str, a: int, b: int) -> bool:
    piece = text[a:b] if (a, b) != (0, len(text)) else text
    for literal, pattern in _PREFIXES:
        if literal in piece and (pattern is None or pattern.search(piece)):
            return True
    return False


# Long quoted strings and assigned values: what the entropy detectors look at.
_ENTROPY_PREFILTER = re.compile(r"[\"'][A-Za-z0-9+/=_-]{20,}[\"']|[:=]\s*[A-Za-z0-9+/=_-]{20,}")
_WINDOW = 1024  # long lines are scanned in windows of this many characters (overlapping)
# Keys of the AI tools aim drives, which detect-secrets does not know.
_EXTRA = (
    ("anthropic-key", re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}")),
    ("openai-key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
)
_CODES = {
    "AWS Access Key": "aws-access-key",
    "GitHub Token": "github-credential",
    "GitLab Token": "gitlab-credential",
    "Private Key": "private-key",
    "Base64 High Entropy String": "high-entropy-string",
    "Hex High Entropy String": "high-entropy-string",
    "Secret Keyword": "keyword-assignment",
    "JSON Web Token": "json-web-credential",
    "Slack Token": "slack-credential",
    "Stripe Access Key": "stripe-key",
    "Basic Auth Credentials": "basic-auth-credentials",
    "Public IP (ipv4)": None,  # not a credential; never reported
}
_BANNED = ("password", "api_key", "secret", "token")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=.]")
# The name a value is assigned to (`password = "`, `token: `): redacted with the value,
# so what remains says nothing about what was there.
_ASSIGNED_TO = re.compile(r"""[\w.\-\[\]"']+\s*(?::=|=>|[:=])\s*["']?$""")
ENTROPY_ONLY = "high-entropy-string"
_GENERIC = (ENTROPY_ONLY, "keyword-assignment")  # a named kind found on the same span wins


def neutral_code(kind: str) -> str | None:
    """detect-secrets' type as a code free of the words a secret grep looks for."""
    if kind in _CODES:
        return _CODES[kind]
    code = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
    for word in _BANNED:
        code = code.replace(word, "credential")
    return code


@frozen(kw_only=True)
class Leak:
    """One credential found: its code, line (1-based) and span in the text."""

    code: str
    line: int
    start: int
    end: int


def _expand(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow a match to the whole token it is part of."""
    while start > 0 and _TOKEN_CHARS.match(text[start - 1]):
        start -= 1
    while end < len(text) and _TOKEN_CHARS.match(text[end]):
        end += 1
    return start, end


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        spans.append((pos, pos + len(body)))
        pos += len(line)
    return spans


def _may_hold(text: str, low: str, a: int, b: int, entropy: bool) -> bool:
    return bool(
        _KEYWORDS.search(low, a, b)
        or _prefix_in(text, a, b)
        or (entropy and _ENTROPY_PREFILTER.search(text, a, b))
    )


def scan(text: str, *, filename: str = "prompt.txt", entropy: bool = True) -> list[Leak]:
    """Every credential in ``text`` (``filename`` tells detect-secrets the file type).

    With ``entropy=False`` high-entropy strings are not looked for: they never make a
    request refused, and in a megabyte of hashes (a lock file, ``git log``) they are
    slow to find.
    """
    if not text:
        return []
    low = text.lower()
    if len(low) != len(text):  # rare: lower-casing changed a length; search as written
        low = text
    if not _may_hold(text, low, 0, len(text), entropy):
        return []
    spans = _line_spans(text)
    candidates = [i for i, (a, b) in enumerate(spans) if _may_hold(text, low, a, b, entropy)]
    if not candidates:
        return []
    pieces: list[tuple[int, list[tuple[int, int]]]] = []  # (line number, spans joined)
    for i in candidates:
        a, b = spans[i]
        for start in range(a, max(a + 1, b), _WINDOW - 128):
            pieces.append((i + 1, [(start, min(b, start + _WINDOW))]))
        if i + 1 < len(spans) and b - a <= _WINDOW:  # a credential wrapped onto the next line
            pieces.append((i + 1, [(a, b), spans[i + 1]]))
    texts = [_joined(text, parts) for _, parts in pieces]
    detected = _detect([t for t, _ in texts], filename, entropy)
    found: dict[tuple[int, int], Leak] = {}
    for k, ((line_no, parts), (joined, where)) in enumerate(zip(pieces, texts, strict=True)):
        if joined.strip():
            _record_piece(joined, where, parts, line_no, detected.get(k, []), found)
    return sorted(found.values(), key=lambda x: (x.start, x.end))


def _joined(text: str, parts: list[tuple[int, int]]) -> tuple[str, list[int]]:
    """The pieces' text joined (the second one's indent dropped), and where each char was."""
    joined, where = "", []
    for a, b in parts:
        piece = text[a:b]
        if joined:
            piece = piece.lstrip()
            a = b - len(piece)
        joined += piece
        where.extend(range(a, a + len(piece)))
    return joined, where


def _record_piece(
    joined: str,
    where: list[int],
    parts: list[tuple[int, int]],
    line_no: int,
    detected: list[tuple[str, str]],
    found: dict[tuple[int, int], Leak],
) -> None:
    def record(code: str | None, start: int, end: int) -> None:
        if code is None or end <= start:
            return
        s, e = where[start], where[end - 1] + 1
        if len(parts) > 1 and e <= parts[0][1]:
            return  # found on the first line alone: recorded with that line
        for ks, ke in list(found):
            if (ks, ke) == (s, e) and found[(ks, ke)].code in _GENERIC and code not in _GENERIC:
                del found[(ks, ke)]
            elif ks <= s and e <= ke:
                return
            elif s <= ks and ke <= e:
                del found[(ks, ke)]
        found[(s, e)] = Leak(code=code, line=line_no, start=s, end=e)

    for code, pattern in _EXTRA:
        for m in pattern.finditer(joined):
            record(code, m.start(), m.end())
    for kind, value in detected:
        code = neutral_code(kind)
        if code == "private-key":
            record(code, 0, len(joined))
            continue
        idx = joined.find(value) if value else -1
        if idx < 0:
            continue
        record(code, *_expand(joined, idx, idx + len(value)))


def _detect(lines: list[str], filename: str, entropy: bool) -> dict[int, list[tuple[str, str]]]:
    """detect-secrets over many lines at once: ``{index: [(type, value), ...]}``."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import default_settings, transient_settings

    settings = default_settings()
    if not entropy:
        names = [
            c.__name__
            for c in get_mapping_from_secret_type_to_class().values()
            if "HighEntropy" not in c.__name__
        ]
        settings = transient_settings({"plugins_used": [{"name": n} for n in names]})
    out: dict[int, list[tuple[str, str]]] = {}
    with settings:
        # numbered from 1 and without gaps: detect-secrets looks at neighbouring lines
        numbered = [(k + 1, line) for k, line in enumerate(lines)]
        for s in _process_line_based_plugins(numbered, filename=filename):
            out.setdefault(s.line_number - 1, []).append((s.type, s.secret_value or ""))
    return out


def redact(
    text: str,
    leaks: Iterable[Leak] | None = None,
    *,
    filename: str = "prompt.txt",
    entropy: bool = True,
) -> str:
    """``text`` with every credential replaced by ``[REDACTED]`` (private keys: the block)."""
    leaks = list(scan(text, filename=filename, entropy=entropy) if leaks is None else leaks)
    if not leaks:
        return text
    out, pos = [], 0
    for leak in sorted(leaks, key=lambda x: x.start):
        start, end = leak.start, leak.end
        if leak.code == "private-key":
            stop = text.find("-----END", end)
            if stop >= 0:
                close = text.find("-----", stop + 8)
                end = close + 5 if close >= 0 else len(text)
        else:
            line_start = text.rfind("\n", 0, start) + 1
            m = _ASSIGNED_TO.search(text, line_start, start)
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
    """``aws-access-key (line 3), private-key (line 7)`` -- never the values."""
    seen: dict[str, list[int]] = {}
    for leak in leaks:
        seen.setdefault(leak.code, []).append(leak.line)
    return ", ".join(
        f"{code} (line {', '.join(map(str, sorted(set(lines))))})" for code, lines in seen.items()
    )
