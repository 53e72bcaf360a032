"""What an aider call consumed, read from the report aider prints after each model call."""

from __future__ import annotations

import re

from aim_core import Usage

# aider's report after each model call (aider/coders/base_coder.py), counts rounded
# by aider ("2.0k", "12k"); the cost line follows on the same line, or on the next
# when both cache counts are shown, and only when the model has a price:
#   Tokens: 2.0k sent, 1.2k cache write, 3.4k cache hit, 29 received. Cost: $0.0052
#   message, $0.0052 session.
_N = r"\d{1,15}(?:\.\d{1,6})?"  # a number as aider prints one (never 1..5, never 400 digits)
TOKENS = re.compile(
    rf"Tokens: (?P<sent>{_N}k?) sent(?:, {_N}k? cache write)?(?:, {_N}k? cache hit)?, "
    rf"(?P<received>{_N}k?) received\."
)
COST = re.compile(rf"Cost: \$(?P<message>{_N}) message, \$(?P<session>{_N}) session\.")
# "Model: gpt-4o with diff edit format", "Main model: openai/gpt-4o with ..."
MODEL = re.compile(r"^(?:Main model|Model): (\S+) with ", re.MULTILINE)


def _count(text):
    """aider's token count as an integer: ``"2.0k"`` is 2000, ``"85"`` is 85."""
    if text.endswith("k"):
        return round(float(text[:-1]) * 1000)
    return int(float(text))


def parse_usage(text):
    """The tokens and cost aider reported for the whole call, or None when it reported
    none: the sum of every ``Tokens:`` line (one per model call: reflections, retries),
    the last ``Cost: ... session`` (aider's own running total) and the main model."""
    tokens = list(TOKENS.finditer(text))
    costs = list(COST.finditer(text))
    model = MODEL.search(text)
    if not tokens and not costs:
        return None
    return Usage(
        input_tokens=sum(_count(m.group("sent")) for m in tokens) if tokens else None,
        output_tokens=sum(_count(m.group("received")) for m in tokens) if tokens else None,
        cost_usd=float(costs[-1].group("session")) if costs else None,
        model=model.group(1) if model else None,
    )
