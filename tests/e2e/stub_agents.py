"""The agent protocols of :mod:`tests.e2e.stub_llm`: what codex, gemini-cli and opencode
speak, answered from one tool-neutral script.

* **OpenAI Responses** (codex) -- ``POST /v1/responses``, streaming SSE
  (``response.created``, ``response.output_item.done``, ``response.completed`` with
  its ``usage``). A write becomes a ``function_call`` of codex's ``exec_command``
  tool running ``apply_patch`` with an ``*** Add File`` patch (codex applies it
  itself, as it does for a real model).
* **Gemini API** (gemini-cli) -- ``POST /v1beta/models/M:generateContent`` and
  ``:streamGenerateContent?alt=sse``. A write becomes a ``functionCall`` of
  ``write_file``; every answer carries ``usageMetadata``.
* **OpenAI chat completions with tools** (opencode) -- a request that offers tools
  gets ``tool_calls`` of opencode's ``write`` tool, streamed as chunks, with a
  final usage chunk.

The script (:attr:`StubLLM.agent_script`) is a list of turns; a turn is a list of
actions made with :func:`write` or :func:`say`. The turn answered is the number of
tool results the conversation already holds; after the script, a final text.
Requests that offer no tools (titles, routing) get a short text.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

FINAL_TEXT = "Done: the change is made."
USAGE = {"input": 100, "output": 50}


def write(path: str, content: str) -> dict[str, Any]:
    """An action: create (or overwrite) ``path`` (absolute, or relative to the tool's
    working directory) with ``content``."""
    return {"write": {"path": path, "content": content}}


def say(text: str) -> dict[str, Any]:
    """An action: answer ``text``."""
    return {"text": text}


def _turn(script: list[list[dict[str, Any]]], step: int) -> list[dict[str, Any]]:
    if step < len(script):
        return script[step]
    return [say(FINAL_TEXT)]


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- Responses


def apply_patch_command(path: str, content: str) -> str:
    """The ``apply_patch`` heredoc that creates ``path`` (what codex's models send)."""
    lines = "".join(f"+{line}\n" for line in content.splitlines())
    return (
        f"apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch\nEOF\n"
    )


def responses(handler: Any, body: dict[str, Any], script: list[list[dict[str, Any]]]) -> None:
    """Answer one Responses API request (streaming) from ``script``."""
    items = body.get("input") or []
    step = sum(1 for i in items if isinstance(i, dict) and i.get("type") == "function_call_output")
    actions = _turn(script, step) if body.get("tools") else [say("OK")]
    rid = f"resp_{uuid.uuid4().hex[:16]}"
    model = body.get("model", "stub-model")
    response = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model}
    handler._sse_start()
    handler._event(
        {"type": "response.created", "response": {**response, "status": "in_progress"}},
        "response.created",
    )
    for n, action in enumerate(actions):
        if "write" in action:
            w = action["write"]
            args = {"cmd": apply_patch_command(w["path"], w["content"]), "yield_time_ms": 10000}
            item = {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex[:12]}",
                "call_id": _call_id(),
                "name": "exec_command",
                "arguments": json.dumps(args),
                "status": "completed",
            }
        else:
            item = {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex[:12]}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": action["text"], "annotations": []}],
            }
        handler._event(
            {"type": "response.output_item.added", "output_index": n, "item": item},
            "response.output_item.added",
        )
        handler._event(
            {"type": "response.output_item.done", "output_index": n, "item": item},
            "response.output_item.done",
        )
    usage = {
        "input_tokens": USAGE["input"],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": USAGE["output"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": USAGE["input"] + USAGE["output"],
    }
    done = {**response, "status": "completed", "usage": usage}
    handler._event({"type": "response.completed", "response": done}, "response.completed")


# --------------------------------------------------------------------------- Gemini


def _gemini_step(body: dict[str, Any]) -> int:
    step = 0
    for content in body.get("contents") or []:
        for part in content.get("parts") or []:
            if isinstance(part, dict) and "functionResponse" in part:
                step += 1
                break
    return step


def gemini(
    handler: Any, body: dict[str, Any], script: list[list[dict[str, Any]]], stream: bool
) -> None:
    """Answer one Gemini API request (``generateContent`` or its SSE stream)."""
    offers_tools = bool(body.get("tools"))
    actions = _turn(script, _gemini_step(body)) if offers_tools else [say('{"ok": true}')]
    parts = []
    for action in actions:
        if "write" in action:
            w = action["write"]
            args = {"file_path": w["path"], "content": w["content"]}
            parts.append({"functionCall": {"name": "write_file", "args": args}})
        else:
            parts.append({"text": action["text"]})
    answer = {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": USAGE["input"],
            "candidatesTokenCount": USAGE["output"],
            "totalTokenCount": USAGE["input"] + USAGE["output"],
        },
        "modelVersion": "gemini-stub",
        "responseId": uuid.uuid4().hex[:16],
    }
    if not stream:
        handler._json(200, answer)
        return
    handler._sse_start()
    handler._event(answer)


# --------------------------------------------------------------------------- chat + tools


def chat_tools(handler: Any, body: dict[str, Any], script: list[list[dict[str, Any]]]) -> None:
    """Answer one chat completion that offers tools (opencode) from ``script``."""
    step = sum(1 for m in body.get("messages") or [] if m.get("role") == "tool")
    actions = _turn(script, step)
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "created": int(time.time()),
        "model": body.get("model", "stub-model"),
        "object": "chat.completion.chunk",
    }
    usage = {
        "prompt_tokens": USAGE["input"],
        "completion_tokens": USAGE["output"],
        "total_tokens": USAGE["input"] + USAGE["output"],
    }
    calls = [a["write"] for a in actions if "write" in a]
    text = "".join(a["text"] for a in actions if "text" in a)
    handler._sse_start()
    first = {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}
    handler._event({**base, "choices": [first]})
    for n, w in enumerate(calls):
        call = {
            "index": n,
            "id": _call_id(),
            "type": "function",
            "function": {
                "name": "write",
                "arguments": json.dumps({"filePath": w["path"], "content": w["content"]}),
            },
        }
        delta = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}
        handler._event({**base, "choices": [delta]})
    finish = "tool_calls" if calls else "stop"
    handler._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    handler._event({**base, "choices": [], "usage": usage})
    handler._event("[DONE]")
