"""A loopback LLM server for the end-to-end tests: the real aider, claude, codex,
gemini-cli and opencode talk to it.

One server on ``127.0.0.1`` speaks these protocols (the agent ones -- OpenAI
Responses for codex, the Gemini API, chat completions with tools for opencode --
are in :mod:`tests.e2e.stub_agents`, answered from :attr:`StubLLM.agent_script`):

* **OpenAI chat completions** -- ``POST /v1/chat/completions``, streaming (SSE
  ``chat.completion.chunk`` events ending in ``data: [DONE]``) and not. The answer
  is :attr:`StubLLM.reply`: a text, or a function of the request body (a list of
  them is used one per request, the last one repeating).
* **Anthropic Messages** -- ``POST /v1/messages`` (claude adds ``?beta=true``),
  streaming SSE and not, ``POST /v1/messages/count_tokens`` and ``HEAD /`` (claude's
  connectivity check). A request that offers tools gets the next turn of
  :attr:`StubLLM.script` -- a list of turns, each a list of content blocks
  (``{"type": "tool_use", "name": "Read", "input": {...}}`` or ``{"type": "text",
  ...}``), chosen by how many assistant turns the conversation already holds; after
  the script, a final text. The ``tool_result`` blocks claude sends back (including
  the errors of denied tools) are kept in :attr:`StubLLM.tool_results`.

Modes (:meth:`StubLLM.set_mode`, per protocol -- ``openai``, ``anthropic``,
``responses``, ``gemini`` -- or for all): ``ok``; ``401`` (the
provider's authentication error); ``429`` (rate limit, ``retry-after: 1``,
"Please try again in 1s."); ``500`` (server error); ``hang`` (reads the request and
never answers); ``down`` (the port stops listening; it only exists for the whole
server). Every request is recorded in :attr:`StubLLM.requests`.

Run by itself (``python -m tests.e2e.stub_llm --port 8765 --mode ok``) it serves a
fixed reply, for trying a tool by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from attrs import define, field

from tests.e2e import stub_agents

HOST = "127.0.0.1"
MODES = ("ok", "401", "429", "500", "hang", "down")
APIS = ("openai", "anthropic", "responses", "gemini")
HANG_MAX_S = 600.0  # a hanging request is released at the latest then (or at stop())
FINAL_TEXT = "Done: the change is made."

Reply = str | Callable[[dict[str, Any]], str]

ERRORS = {
    "openai": {
        "401": {
            "error": {
                "message": "Incorrect API key provided: sk-stub. You can find your API key "
                "at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
        "429": {
            "error": {
                "message": "Rate limit reached for stub-model. Please try again in 1s.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        "500": {
            "error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        },
    },
    "responses": {},  # filled below: the same bodies as chat completions
    "gemini": {
        "401": {
            "error": {
                "code": 401,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "UNAUTHENTICATED",
            }
        },
        "429": {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota). Please retry in 1s.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
                ],
            }
        },
        "500": {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}},
    },
    "anthropic": {
        "401": {
            "type": "error",
            "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        },
        "429": {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "Number of request tokens has exceeded your per-minute rate limit. "
                "Please try again in 1s.",
            },
        },
        "500": {
            "type": "error",
            "error": {"type": "api_error", "message": "Internal server error"},
        },
    },
}


ERRORS["responses"] = ERRORS["openai"]


@define
class Request:
    """One request as the stub saw it."""

    api: str  # "openai", "anthropic" or "other"
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    mode: str
    at: float = field(factory=time.monotonic)

    @property
    def streaming(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    @property
    def offers_tools(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("tools"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        """A client that goes away mid-request (a tool killed at its time limit) is
        normal here; anything else is printed as usual."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class StubLLM:
    """The server; ``with StubLLM() as stub:`` starts and stops it."""

    def __init__(self, port: int = 0):
        self.port = port
        self.modes = dict.fromkeys(APIS, "ok")
        self.reply: Reply | list[Reply] = "OK"
        self.script: list[list[dict[str, Any]]] = []
        self.agent_script: list[list[dict[str, Any]]] = []
        self.requests: list[Request] = []
        self.tool_results: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._replies = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> StubLLM:
        server = _Server((HOST, self.port), _Handler)
        server.stub = self  # type: ignore[attr-defined]
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def stop(self) -> None:
        self._stopping.set()
        self._close()

    def __enter__(self) -> StubLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (Anthropic's base URL)."""
        return f"http://{HOST}:{self.port}"

    @property
    def openai_base(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (OpenAI's base URL)."""
        return f"{self.url}/v1"

    def set_mode(self, mode: str, api: str | None = None) -> None:
        """Answer ``api``'s requests (both when None) the way ``mode`` says."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        if mode == "down" and api is not None:
            raise ValueError("'down' stops the whole server: give no api")
        for name in APIS if api is None else (api,):
            self.modes[name] = mode
        if mode == "down":
            self._close()
        elif self._server is None and not self._stopping.is_set():
            self.start()  # up again, on the same port

    # ------------------------------------------------------------------ what was seen

    def seen(self, api: str | None = None, method: str = "POST") -> list[Request]:
        """The requests of one protocol (default: every ``POST``)."""
        with self._lock:
            return [
                r for r in self.requests if r.method == method and (api is None or r.api == api)
            ]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_reply(self, body: dict[str, Any]) -> str:
        with self._lock:
            n = self._replies
            self._replies += 1
        reply = self.reply
        if isinstance(reply, list):
            reply = reply[min(n, len(reply) - 1)]
        return reply(body) if callable(reply) else reply

    def _turn(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        messages = body.get("messages") or []
        for m in messages[-1:]:
            content = m.get("content")
            if isinstance(content, list):
                results = [c for c in content if c.get("type") == "tool_result"]
                with self._lock:
                    self.tool_results.extend(results)
        if not body.get("tools"):
            return [{"type": "text", "text": "OK"}]
        step = sum(1 for m in messages if m.get("role") == "assistant")
        if step < len(self.script):
            return self.script[step]
        return [{"type": "text", "text": FINAL_TEXT}]


_ids = itertools.count(1)


def tool_use(name: str, **tool_input: Any) -> dict[str, Any]:
    """One ``tool_use`` block for :attr:`StubLLM.script`."""
    return {"type": "tool_use", "id": f"toolu_{next(_ids):04d}", "name": name, "input": tool_input}


_CHAT_FILE = re.compile(r"^(\S+)\n```", re.MULTILINE)


def chat_file(body: dict[str, Any]) -> str:
    """The first file aider added to the chat, named as aider shows it to the model (the
    name an LLM must use in its answer)."""
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str) and "added these files to the chat" in content:
            found = _CHAT_FILE.search(content)
            if found:
                return found.group(1)
    raise AssertionError("aider sent no file in the chat")


def aider_whole(content: str) -> Callable[[dict[str, Any]], str]:
    """An answer in aider's ``whole`` edit format: the file listing of the chat's file."""

    def reply(body: dict[str, Any]) -> str:
        return f"Here is the file.\n\n{chat_file(body)}\n```python\n{content}```\n"

    return reply


def aider_search_replace(search: str, replace: str) -> Callable[[dict[str, Any]], str]:
    """An answer in aider's ``diff`` edit format: one SEARCH/REPLACE block."""

    def reply(body: dict[str, Any]) -> str:
        return (
            f"{chat_file(body)}\n```python\n<<<<<<< SEARCH\n{search}=======\n"
            f"{replace}>>>>>>> REPLACE\n```\n"
        )

    return reply


def tool_result_text(result: dict[str, Any]) -> str:
    """The text of a ``tool_result`` block (a string or a list of text blocks)."""
    content = result.get("content")
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return str(content or "")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stub-llm/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read :attr:`StubLLM.requests`."""

    @property
    def stub(self) -> StubLLM:
        return self.server.stub  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ plumbing

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _sse_start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _event(self, data: Any, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {event}\n" if event else ""
        self.wfile.write(f"{head}data: {text}\n\n".encode())
        self.wfile.flush()

    def _fail(self, api: str, mode: str) -> bool:
        """Answer with the mode's failure; False when the mode is ``ok``."""
        if mode == "ok":
            return False
        if mode == "hang":
            self.stub._stopping.wait(HANG_MAX_S)
            self.close_connection = True
            return True
        headers = {"retry-after": "1"} if mode == "429" else {}
        self._json(int(mode), ERRORS[api][mode], headers)
        return True

    # ------------------------------------------------------------------ verbs

    def do_HEAD(self) -> None:
        self.stub._record(Request("other", "HEAD", self.path, dict(self.headers), None, "ok"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.stub._record(Request("other", "GET", self.path, dict(self.headers), None, "ok"))
        self._json(404, {"error": {"message": f"no such endpoint: {self.path}"}})

    def do_POST(self) -> None:
        body = self._body()
        path = self.path.split("?", 1)[0]
        api = _api(path)
        mode = self.stub.modes.get(api, "ok")
        self.stub._record(Request(api, "POST", self.path, dict(self.headers), body, mode))
        if api == "other" or not isinstance(body, dict):
            self._json(404, {"error": {"message": f"no such endpoint: {self.path}"}})
        elif self._fail(api, mode):
            return
        elif api == "responses":
            stub_agents.responses(self, body, self.stub.agent_script)
        elif api == "gemini":
            streaming = path.endswith(":streamGenerateContent")
            stub_agents.gemini(self, body, self.stub.agent_script, streaming)
        elif api == "openai" and body.get("tools") and self.stub.agent_script:
            stub_agents.chat_tools(self, body, self.stub.agent_script)
        elif api == "openai":
            self._chat(body)
        elif path.endswith("/count_tokens"):
            self._json(200, {"input_tokens": 100})
        else:
            self._messages(body)

    # ------------------------------------------------------------------ OpenAI

    def _chat(self, body: dict[str, Any]) -> None:
        text = self.stub._next_reply(body)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": body.get("model", "stub-model"),
        }
        usage = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self._json(
                200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
            return
        self._sse_start()
        chunk = {**base, "object": "chat.completion.chunk"}
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        self._event({**chunk, "choices": [first]})
        for piece in _pieces(text):
            delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
            self._event({**chunk, "choices": [delta]})
        self._event({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**chunk, "choices": [], "usage": usage})
        self._event("[DONE]")

    # ------------------------------------------------------------------ Anthropic

    def _messages(self, body: dict[str, Any]) -> None:
        blocks = self.stub._turn(body)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        message = {
            "id": f"msg_{uuid.uuid4().hex[:20]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-stub"),
            "stop_sequence": None,
        }
        usage = {
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if not body.get("stream"):
            self._json(200, {**message, "content": blocks, "stop_reason": stop, "usage": usage})
            return
        self._sse_start()
        start = {**message, "content": [], "stop_reason": None, "usage": usage}
        self._event({"type": "message_start", "message": start}, "message_start")
        for i, block in enumerate(blocks):
            if block["type"] == "tool_use":
                opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            else:
                opened = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            self._event(
                {"type": "content_block_start", "index": i, "content_block": opened},
                "content_block_start",
            )
            self._event(
                {"type": "content_block_delta", "index": i, "delta": delta}, "content_block_delta"
            )
            self._event({"type": "content_block_stop", "index": i}, "content_block_stop")
        self._event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 50},
            },
            "message_delta",
        )
        self._event({"type": "message_stop"}, "message_stop")


def _api(path: str) -> str:
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/responses"):
        return "responses"
    if path.startswith("/v1/messages"):
        return "anthropic"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    return "other"


def _pieces(text: str, size: int = 64) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the loopback LLM stub on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--reply", default="OK", help="what every chat completion answers")
    args = parser.parse_args(argv)
    stub = StubLLM(args.port).start()
    stub.reply = args.reply
    stub.set_mode(args.mode)
    print(f"stub LLM on {stub.url} (OpenAI base {stub.openai_base}), mode {args.mode}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    stub.stop()


if __name__ == "__main__":
    main()
