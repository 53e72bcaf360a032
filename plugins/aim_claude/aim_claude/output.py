"""Reading what ``claude -p`` printed: its messages in any output form, the result,
the usage and the permission denials."""

from __future__ import annotations

import json

from aim_core import Usage
from aim_core.toolkit import json_lines


def parse_output(stdout: str) -> list[dict]:
    """Every JSON object claude printed, in order, whichever output form it used:

    - one result object (``--output-format json``);
    - a JSON array of every message, the result last (``json`` with verbose output
      on: ``--verbose``, ``"viewMode": "verbose"`` or ``"verbose": true`` in the
      user's settings -- aim pins it off, but managed settings win over aim's);
    - one JSON object per line (``--output-format stream-json --verbose`` in args).
    """
    text = stdout.strip()
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return [whole]
    if isinstance(whole, list):
        return [m for m in whole if isinstance(m, dict)]
    return json_lines(text)


def is_result(message: dict) -> bool:
    """Whether a message is claude's result (older arrays have no ``type``, only
    ``is_error``)."""
    return message.get("type") == "result" or "is_error" in message


def parse_result(stdout: str) -> dict | None:
    """claude's result object (the last one), in any output form, or None."""
    results = [m for m in parse_output(stdout) if is_result(m)]
    return results[-1] if results else None


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_usage(messages: list[dict]) -> Usage | None:
    """What the run consumed, from claude's result: tokens per model (``modelUsage``;
    input counts uncached, cache-written and cache-read tokens alike), else the
    result's ``usage``; ``total_cost_usd``; the model that cost the most, else the
    one the session started with. None without a result."""
    results = [m for m in messages if is_result(m)]
    if not results:
        return None
    result = results[-1]
    per_model = result.get("modelUsage")
    if not isinstance(per_model, dict):
        per_model = {}
    per_model = {name: u for name, u in per_model.items() if isinstance(u, dict)}

    def spent(name: str) -> float:
        cost = per_model[name].get("costUSD")
        return cost if isinstance(cost, (int, float)) else 0.0

    if per_model:
        input_tokens = sum(
            _int(u.get("inputTokens"))
            + _int(u.get("cacheReadInputTokens"))
            + _int(u.get("cacheCreationInputTokens"))
            for u in per_model.values()
        )
        output_tokens = sum(_int(u.get("outputTokens")) for u in per_model.values())
        model = max(per_model, key=spent)
    else:
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
        parts = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        input_tokens = sum(_int(usage.get(k)) for k in parts) if usage else None
        output_tokens = _int(usage.get("output_tokens")) if usage else None
        model = next(
            (m["model"] for m in messages if m.get("type") == "system" and m.get("model")),
            None,
        )
    total = result.get("total_cost_usd")
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=float(total) if isinstance(total, (int, float)) else None,
        model=model if isinstance(model, str) else None,
    )


def denials(result: dict) -> list[str]:
    """One line per action claude was denied (tool and its file or command)."""
    lines = []
    for d in result.get("permission_denials") or []:
        if not isinstance(d, dict):
            continue
        tool_input = d.get("tool_input") or {}
        what = tool_input.get("file_path") or tool_input.get("command") or tool_input.get("path")
        if what is None:
            what = json.dumps(tool_input, sort_keys=True)[:200]
        lines.append(f"{d.get('tool_name', '?')} {what}")
    return lines
