"""A tiny scripted OpenAI-compatible chat-completions server for tests (loopback only).

    with StubModelServer() as stub:
        stub.script("hello")                                  # plain text reply
        stub.script(ToolCall("todo", {"todos": []}))          # one tool call
        stub.script([ToolCall("a", {}), ToolCall("b", {})])   # parallel tool calls
        stub.script(HttpError(500), 503)                      # transient failures (int = status)
        stub.script(lambda body: "computed from the request")
        ...  # point a client at stub.base_url
        stub.chat_requests[0].body["messages"]

Every request is recorded. Scripted replies are consumed in order by
``POST /v1/chat/completions``; when the queue is empty the reply is
``"stub-reply: <last user text>"``. Both ``stream: false`` (JSON) and
``stream: true`` (SSE ending in ``data: [DONE]``) are served, with ``usage``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, Union

from stubs.loopback import LoopbackServer, QuietHandler

DEFAULT_PREFIX = "stub-reply: "


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None  # generated when None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class Reply:
    """A full assistant turn: optional text and/or tool calls."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None  # default: "tool_calls" if tool_calls else "stop"


@dataclass(frozen=True)
class HttpError:
    status: int = 500
    message: str = "stub error"
    retry_after: float | None = None


ScriptItem = Union[str, int, ToolCall, Sequence[ToolCall], Reply, HttpError, Callable[[dict], Any]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON when possible, else the raw text (None when empty)
    reply: Reply | HttpError | None = None  # what the stub answered (chat requests)


def last_user_text(body: Any, *, skip_textless: bool = False) -> str:
    """Text of the last user message in a chat request body (OpenAI or Anthropic messages).

    ``skip_textless``: a user message with content parts but no text part is
    passed over (Anthropic sends tool results as user messages).
    """
    for msg in reversed((body or {}).get("messages") or []):
        if msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if texts or not skip_textless:
                return "".join(texts)
    return ""


def _normalize(item: Any, body: dict) -> Reply | HttpError:
    if callable(item) and not isinstance(item, (ToolCall, Reply, HttpError)):
        item = item(body)
    if isinstance(item, (Reply, HttpError)):
        return item
    if isinstance(item, str):
        return Reply(text=item)
    if isinstance(item, int) and not isinstance(item, bool):
        return HttpError(status=item)
    if isinstance(item, ToolCall):
        return Reply(tool_calls=(item,))
    if isinstance(item, Sequence) and all(isinstance(t, ToolCall) for t in item):
        return Reply(tool_calls=tuple(item))
    raise TypeError(f"cannot script {item!r}")


class ScriptedReplies:
    """Mixin of the stub model servers: the reply script, the request log, ``_next_reply``.

        class StubThing(ScriptedReplies, LoopbackServer):
            def __init__(self, ...) -> None:
                self._init_script()                 # recorded, _queue, _lock, _ids
                super().__init__(_make_handler(self), "stub-thing", host, port)

    Scripted items are consumed in order by :meth:`_next_reply`; with none
    left the reply is ``"stub-reply: <last user text>"`` (:meth:`_last_user_text`,
    for the stub's request format). The handler logs what it received with
    :meth:`_record` (under ``_lock``, a condition variable).
    """

    #: a user message without text parts is passed over (Anthropic: tool results)
    skip_textless_user_messages: ClassVar[bool] = False

    recorded: list[Any]
    _queue: deque[ScriptItem]
    _lock: threading.Condition

    def _init_script(self) -> None:
        self.recorded = []
        self._queue = deque()
        self._lock = threading.Condition()
        self._ids = itertools.count(1)

    def script(self, *items: ScriptItem) -> None:
        """Queue replies for the next model requests, in order."""
        with self._lock:
            self._queue.extend(items)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _record(self, item: Any) -> None:
        with self._lock:
            self.recorded.append(item)
            self._lock.notify_all()

    def _last_user_text(self, body: dict[str, Any]) -> str:
        """The last user text of a request (OpenAI/Anthropic messages; override for other formats)."""
        return last_user_text(body, skip_textless=self.skip_textless_user_messages)

    def _next_reply(self, body: dict[str, Any]) -> Reply | HttpError:
        with self._lock:
            item = self._queue.popleft() if self._queue else None
        if item is None:
            return Reply(text=DEFAULT_PREFIX + self._last_user_text(body))
        return _normalize(item, body)


class StubModelServer(ScriptedReplies, LoopbackServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, model: str = "stub-model",
                 context_length: int = 131072) -> None:
        self.model = model
        self.context_length = context_length
        self._init_script()
        super().__init__(_make_handler(self), "stub-model", host, port)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request, in order (chat completions with the reply the stub gave)."""
        return self.recorded

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least ``n`` chat requests arrived (condition variable, no polling)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.chat_requests) >= n, timeout):
                raise TimeoutError(f"expected {n} chat requests, got {len(self.chat_requests)}")
            return self.chat_requests

    def _completion_id(self) -> str:
        return f"chatcmpl-stub-{next(self._ids)}"


def _usage(body: dict, reply: Reply) -> dict[str, int]:
    prompt = sum(len(json.dumps(m.get("content", ""))) // 4 + 1 for m in body.get("messages") or [])
    completion = len(reply.text or "") // 4 + 1 + 10 * len(reply.tool_calls)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _make_handler(stub: StubModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        server_version = "StubModel/1"

        def _read_body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n).decode("utf-8") if n else ""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                return raw

        def do_GET(self) -> None:
            rec = RecordedRequest("GET", self.path, dict(self.headers), None)
            stub._record(rec)
            if self.path.rstrip("/").endswith("/models"):
                self.send_json(200, {"object": "list", "data": [{
                    "id": stub.model, "object": "model", "created": 0, "owned_by": "stub",
                    "context_length": stub.context_length,
                }]})
            else:
                self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:
            body = self._read_body()
            rec = RecordedRequest("POST", self.path, dict(self.headers), body)
            if not self.path.rstrip("/").endswith("/chat/completions") or not isinstance(body, dict):
                stub._record(rec)
                self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            reply = stub._next_reply(body)
            rec.reply = reply
            stub._record(rec)
            if isinstance(reply, HttpError):
                headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else {}
                self.send_json(reply.status, {"error": {
                    "message": reply.message, "type": "server_error", "code": reply.status}}, headers)
            elif body.get("stream"):
                self._stream(body, reply)
            else:
                self._complete(body, reply)

        def _tool_calls(self, reply: Reply) -> list[dict[str, Any]]:
            return [{
                "id": tc.id or f"call_stub_{next(stub._ids)}", "type": "function",
                "function": {"name": tc.name, "arguments": tc.arguments_json()},
            } for tc in reply.tool_calls]

        def _finish(self, reply: Reply) -> str:
            return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

        def _complete(self, body: dict, reply: Reply) -> None:
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if reply.tool_calls:
                message["tool_calls"] = self._tool_calls(reply)
            self.send_json(200, {
                "id": stub._completion_id(), "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model") or stub.model,
                "choices": [{"index": 0, "message": message, "finish_reason": self._finish(reply)}],
                "usage": _usage(body, reply),
            })

        def _stream(self, body: dict, reply: Reply) -> None:
            cid, created = stub._completion_id(), int(time.time())
            model = body.get("model") or stub.model

            def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
                return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}

            events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
            text = reply.text or ""
            for i in range(0, len(text), 16):  # several deltas, like a real server
                events.append(chunk({"content": text[i:i + 16]}))
            for idx, tc in enumerate(self._tool_calls(reply)):
                args = tc["function"]["arguments"]
                events.append(chunk({"tool_calls": [{"index": idx, "id": tc["id"], "type": "function",
                                                     "function": {"name": tc["function"]["name"], "arguments": ""}}]}))
                half = len(args) // 2
                for part in (args[:half], args[half:]):
                    events.append(chunk({"tool_calls": [{"index": idx, "function": {"arguments": part}}]}))
            usage = _usage(body, reply)
            events.append(chunk({}, self._finish(reply)))
            events.append({"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": usage})

            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for ev in events:
                self.wfile.write(f"data: {json.dumps(ev)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler
