"""A corpus of credentials, one per kind aim must find, keyed by the code it reports.

The values are made at import time from a seeded generator, so no credential-shaped
literal sits in the source (and secret scanners of this repository stay quiet), yet
every run sees the same values. They have the shape and randomness of real ones
(documentation examples such as AWS's ``...EXAMPLE`` keys are allowlisted by
gitleaks, and alphabet runs are its stopwords).
"""

from __future__ import annotations

import base64
import json
import random
import string

_R = random.Random(20261129)
_ALNUM = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"


def _rnd(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_R.choice(alphabet) for _ in range(n))


def _b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


_PEM = "\n".join(_rnd(64, _ALNUM + "+/") for _ in range(6))

SAMPLES: dict[str, str] = {
    "github-fine-grained-pat": "github_pat_" + _rnd(22) + "_" + _rnd(59),
    "github-pat": "ghp_" + _rnd(36),
    "github-oauth": "gho_" + _rnd(36),
    "github-app-credential": "ghs_" + _rnd(36),
    "npm-access-credential": "npm_" + _rnd(36, string.ascii_lowercase + string.digits),
    "npmrc-auth": "//registry.npmjs.org/:_authToken="
    + "-".join(_rnd(n, _HEX) for n in (8, 4, 4, 4, 12)),
    "aws-access-credential": "AKIA" + _rnd(16, string.ascii_uppercase + "234567"),
    "aws-credential-access-key": "aws_secret_access_key=" + _rnd(40, _ALNUM + "/+"),
    "authorization-header": "Authorization: Bearer " + _rnd(40, _ALNUM + "._-"),
    "huggingface-access-credential": "hf_" + _rnd(34, string.ascii_letters),
    "groq-api-key": "gsk_" + _rnd(52),
    "xai-api-key": "xai-" + _rnd(80),
    "sk-api-key": "sk-proj-" + _rnd(100, _ALNUM + "_-"),
    "gcp-api-key": "AIza" + _rnd(35, _ALNUM + "_-"),
    "slack-bot-credential": "xoxb-"
    + _rnd(12, string.digits)
    + "-"
    + _rnd(13, string.digits)
    + "-"
    + _rnd(24),
    "stripe-access-credential": "sk_live_" + _rnd(24),
    "private-key": "-----BEGIN RSA PRIVATE KEY-----\n" + _PEM + "\n-----END RSA PRIVATE KEY-----",
    "jwt": _b64url({"alg": "HS256", "typ": "JWT"})
    + "."
    + _b64url({"sub": _rnd(10, string.digits), "name": "Jane Roe", "iat": 1700000000})
    + "."
    + _rnd(43, _ALNUM + "_-"),
    "gitlab-pat": "glpat-" + _rnd(20, _ALNUM + "_-"),
    "pypi-upload-credential": "pypi-AgEIcHlwaS5vcmc" + _rnd(70, _ALNUM + "_-"),
    "sendgrid-api-credential": "SG." + _rnd(22, _ALNUM + "_-") + "." + _rnd(43, _ALNUM + "_-"),
    "url-credentials": "https://deploy:" + _rnd(18) + "@git.example.com/repo.git",
    "credential-assignment": "password = '" + _rnd(14, _ALNUM + "!#%") + "'",
    "azure-storage-key": "AccountKey=" + _rnd(86, _ALNUM + "+/") + "==",
    "telegram-bot-credential": _rnd(10, string.digits) + ":AA" + _rnd(33, _ALNUM + "_-"),
    "discord-bot-credential": "M" + _rnd(23) + "." + _rnd(6) + "." + _rnd(27, _ALNUM + "_-"),
    "twilio-api-key": "SK" + _rnd(32, _HEX),
    "square-oauth-credential": "sq0csp-" + _rnd(43, _ALNUM + "_-"),
    "generic-api-key": "api_key: " + _rnd(32),
    "databricks-api-credential": "dapi" + _rnd(32, _HEX),
    "digitalocean-pat": "dop_v1_" + _rnd(64, _HEX),
    "high-entropy-string": "value = '" + _rnd(40, _ALNUM + "+/") + "'",
}
# the same kinds in other shapes, found under the codes given
VARIANTS: dict[str, tuple[str, str]] = {
    "basic-header": ("authorization-header", "Authorization: Basic "
                     + base64.b64encode(("deploy:" + _rnd(16)).encode()).decode()),
    "openai-legacy": ("sk-api-key", "sk-" + _rnd(48)),
    "anthropic": ("anthropic-api-key", "sk-ant-api03-" + _rnd(93, _ALNUM + "_-") + "AA"),
    "slack-user": ("slack-user-credential", "xoxp-" + _rnd(12, string.digits) + "-"
                   + _rnd(12, string.digits) + "-" + _rnd(13, string.digits) + "-" + _rnd(32, _HEX)),
    "stripe-restricted": ("stripe-access-credential", "rk_live_" + _rnd(24)),
    "openssh-key": ("private-key", "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                    + "\n".join(_rnd(70, _ALNUM + "+/") for _ in range(4))
                    + "\n-----END OPENSSH PRIVATE KEY-----"),
}  # fmt: skip


def secret_part(value: str) -> str:
    """The part of a sample that must never be written (what follows ``=``, ``: `` or a
    space, for samples written as assignments or headers)."""
    for sep in ("://deploy:", ": Bearer ", ": Basic ", "= '", "=", ": "):
        if sep in value and not value.startswith("-----"):
            return value.split(sep, 1)[1].split("@")[0].strip("'")
    return value


def all_values() -> list[str]:
    """Every sample's value that must not reach disk (the secret part of each)."""
    return [secret_part(v) for v in SAMPLES.values()] + [
        secret_part(v) for _, v in VARIANTS.values()
    ]
