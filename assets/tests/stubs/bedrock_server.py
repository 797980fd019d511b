"""A stub of the Amazon Bedrock runtime endpoint for Claude models (loopback only).

Hermes 0.19.0 sends Claude model ids on ``provider: bedrock`` through
``anthropic.AnthropicBedrock`` (``agent/anthropic_adapter.build_anthropic_bedrock_client``),
which reads its endpoint from ``ANTHROPIC_BEDROCK_BASE_URL`` and signs every
request with SigV4 (botocore credentials). It calls

* ``POST /model/<model-id>/invoke-with-response-stream`` (Hermes streams by
  default): answered in AWS **event-stream** framing, one ``chunk`` event per
  Anthropic streaming event, payload ``{"bytes": "<base64 of the event JSON>"}``,
  exactly what ``anthropic.lib.bedrock._stream_decoder`` (botocore's
  ``EventStreamBuffer`` + the ``bedrock-runtime`` ``ResponseStream`` shape) parses;
* ``POST /model/<model-id>/invoke``: one Anthropic Messages JSON response.

    with StubBedrockServer() as stub:
        stub.script("hello", ToolCall("todo", {...}), HttpError(500))   # same items as stubs.model_server
        os.environ["ANTHROPIC_BEDROCK_BASE_URL"] = stub.base_url
        ...
        stub.invocations[0].body["messages"], stub.invocations[0].headers["authorization"]

Unscripted requests get ``"stub-reply: <last user text>"``.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from stubs.loopback import LoopbackServer, QuietHandler
from stubs.model_server import HttpError, Reply, ScriptedReplies


@dataclass
class Invocation:
    model_id: str
    stream: bool
    headers: dict[str, str]
    body: Any
    reply: Reply | HttpError | None = None


def event_stream_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only), with both CRCs."""
    encoded = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        encoded += struct.pack(">B", len(n)) + n + struct.pack(">BH", 7, len(v)) + v
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def chunk_event(event: dict[str, Any]) -> bytes:
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()}).encode()
    return event_stream_message(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload)


class StubBedrockServer(ScriptedReplies, LoopbackServer):
    skip_textless_user_messages = True  # Anthropic messages: tool results are user messages

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.other_requests: list[tuple[str, str]] = []
        self._init_script()
        super().__init__(_make_handler(self), "stub-bedrock", host, port)

    @property
    def base_url(self) -> str:
        return self.origin

    @property
    def invocations(self) -> list[Invocation]:
        return self.recorded


def _usage(body: dict[str, Any], reply: Reply) -> tuple[int, int]:
    prompt = len(json.dumps(body.get("messages") or [])) // 4 + len(json.dumps(body.get("system") or "")) // 4 + 1
    return prompt, len(reply.text or "") // 4 + 1 + 10 * len(reply.tool_calls)


def _content_blocks(stub: StubBedrockServer, reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for tc in reply.tool_calls:
        args = tc.arguments if isinstance(tc.arguments, dict) else json.loads(tc.arguments or "{}")
        blocks.append({"type": "tool_use", "id": tc.id or f"toolu_stub_{next(stub._ids)}",
                       "name": tc.name, "input": args})
    return blocks


def _make_handler(stub: StubBedrockServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        server_version = "StubBedrock/1"

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self.send_json(status, payload, {"x-amzn-RequestId": f"stub-{next(stub._ids)}", **(headers or {})})

        def do_GET(self) -> None:
            with stub._lock:
                stub.other_requests.append(("GET", self.path))
            self._json(404, {"message": f"stub: no route GET {self.path}"})

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            parts = path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "model" or parts[2] not in ("invoke", "invoke-with-response-stream"):
                with stub._lock:
                    stub.other_requests.append(("POST", self.path))
                self._json(404, {"message": f"stub: no route POST {self.path}"})
                return
            model_id = urllib.parse.unquote(parts[1])
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._json(400, {"message": "body is not JSON"})
                return
            inv = Invocation(model_id, parts[2] != "invoke", {k.lower(): v for k, v in self.headers.items()}, body)
            reply = stub._next_reply(body)
            inv.reply = reply
            stub._record(inv)
            if isinstance(reply, HttpError):
                error_type = {429: "ThrottlingException", 400: "ValidationException",
                              403: "AccessDeniedException"}.get(reply.status, "InternalServerException")
                headers = {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
                if reply.retry_after is not None:
                    headers["Retry-After"] = str(reply.retry_after)
                self._json(reply.status, {"message": reply.message}, headers)
                return
            if inv.stream:
                self._stream(model_id, body, reply)
            else:
                self._complete(model_id, body, reply)

        def _message(self, model_id: str, reply: Reply, content: list[dict[str, Any]],
                     input_tokens: int, output_tokens: int) -> dict[str, Any]:
            return {
                "id": f"msg_stub_{next(stub._ids)}", "type": "message", "role": "assistant",
                "model": model_id, "content": content,
                "stop_reason": reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn"),
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            }

        def _complete(self, model_id: str, body: dict[str, Any], reply: Reply) -> None:
            prompt, completion = _usage(body, reply)
            self._json(200, self._message(model_id, reply, _content_blocks(stub, reply), prompt, completion))

        def _stream(self, model_id: str, body: dict[str, Any], reply: Reply) -> None:
            prompt, completion = _usage(body, reply)
            start = self._message(model_id, reply, [], prompt, 1)
            start["stop_reason"] = None
            events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
            for index, block in enumerate(_content_blocks(stub, reply)):
                if block["type"] == "text":
                    events.append({"type": "content_block_start", "index": index,
                                   "content_block": {"type": "text", "text": ""}})
                    text = block["text"]
                    for i in range(0, len(text), 16):
                        events.append({"type": "content_block_delta", "index": index,
                                       "delta": {"type": "text_delta", "text": text[i:i + 16]}})
                else:
                    events.append({"type": "content_block_start", "index": index,
                                   "content_block": {**block, "input": {}}})
                    args = json.dumps(block["input"])
                    half = len(args) // 2
                    for part in (args[:half], args[half:]):
                        events.append({"type": "content_block_delta", "index": index,
                                       "delta": {"type": "input_json_delta", "partial_json": part}})
                events.append({"type": "content_block_stop", "index": index})
            events.append({"type": "message_delta",
                           "delta": {"stop_reason": reply.finish_reason or (
                               "tool_use" if reply.tool_calls else "end_turn"), "stop_sequence": None},
                           "usage": {"output_tokens": completion}})
            events.append({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": prompt, "outputTokenCount": completion,
                "invocationLatency": 1, "firstByteLatency": 1}})
            data = b"".join(chunk_event(e) for e in events)
            self.send_bytes(200, data, content_type="application/vnd.amazon.eventstream",
                            headers={"x-amzn-RequestId": f"stub-{next(stub._ids)}"})
            self.wfile.flush()

    return Handler
