"""A stub of the Amazon Bedrock runtime Converse API (loopback only).

Hermes 0.19.0 sends non-Claude model ids on ``provider: bedrock`` (Amazon Nova,
Llama, Mistral, ...) through boto3's ``bedrock-runtime`` client
(``agent/bedrock_adapter.py``), which honours ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``.
The protocol, from botocore's ``bedrock-runtime`` ``service-2.json`` (rest-json,
signing name ``bedrock``):

* ``POST /model/{modelId}/converse-stream`` (``ConverseStream``, what Hermes's
  agent loop calls): answered in AWS **event-stream** framing
  (``application/vnd.amazon.eventstream``, both CRCs), one message per event,
  headers ``:message-type: event``, ``:event-type: <member>``,
  ``:content-type: application/json`` and the member's JSON as payload:
  ``messageStart``, ``contentBlockStart`` (tool use only), ``contentBlockDelta``,
  ``contentBlockStop``, ``messageStop``, ``metadata``;
* ``POST /model/{modelId}/converse`` (``Converse``): one JSON document
  ``{"output": {"message": ...}, "stopReason", "usage", "metrics"}``;
* errors: JSON ``{"message": ...}`` with ``x-amzn-ErrorType`` naming the
  exception (``ValidationException``, ``AccessDeniedException``, ...).

Every request must carry a valid SigV4 ``Authorization`` for service ``bedrock``
(checked here against the test's secret key; a bad one is answered 403
``InvalidSignatureException`` and listed in :attr:`StubConverseServer.rejected`).

    with StubConverseServer() as stub:
        os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = stub.base_url
        stub.script("hello", ToolCall("todo", {...}), HttpError(403, "..."),
                    Reply("Blocked.", finish_reason="guardrail_intervened"))  # as in stubs.model_server
        ...
        stub.calls[0].operation, stub.calls[0].body["guardrailConfig"], stub.calls[0].signature

A scripted item applies to the next ``Converse``/``ConverseStream`` call; with
the queue empty the reply is ``"stub-reply: <last user text>"``, except that a
request whose text exceeds :attr:`StubConverseServer.max_input_chars` gets the
``ValidationException`` Bedrock raises for an over-long input (Hermes probes
context windows that way).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from stubs.bedrock_server import event_stream_message
from stubs.loopback import LoopbackServer, QuietHandler
from stubs.model_server import HttpError, Reply, ScriptedReplies

OPERATIONS = {"converse": "Converse", "converse-stream": "ConverseStream"}
ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
               429: "ThrottlingException", 503: "ServiceUnavailableException"}
TOO_LONG = "The model returned the following errors: Input is too long for requested model."

_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


@dataclass(frozen=True)
class Signature:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]


@dataclass
class ConverseCall:
    operation: str  # "Converse" | "ConverseStream"
    path: str  # as sent, e.g. /model/us.amazon.nova-pro-v1%3A0/converse-stream
    model_id: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    signature: Signature
    reply: Reply | HttpError | None = None


def last_user_text(body: dict[str, Any]) -> str:
    """Text of the last user message with text (tool results skipped), Converse format."""
    for msg in reversed(body.get("messages") or []):
        if msg.get("role") != "user":
            continue
        texts = [b["text"] for b in msg.get("content") or [] if isinstance(b, dict) and "text" in b]
        if texts:
            return "".join(texts)
    return ""


def _input_chars(body: dict[str, Any]) -> int:
    return len(json.dumps(body.get("messages") or [])) + len(json.dumps(body.get("system") or []))


def verify_sigv4(method: str, raw_path: str, headers: dict[str, str], payload: bytes,
                 secret_key: str) -> Signature | str:
    """The SigV4 signature's scope, or why it is not valid (``headers`` lower-cased)."""
    match = _AUTH.match(headers.get("authorization", ""))
    if not match:
        return "missing or malformed Authorization"
    access_key, date, region, service, signed, signature = match.groups()
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names or any(n not in headers for n in names):
        return f"signed headers {signed} incomplete"
    amz_date = headers["x-amz-date"]
    if not amz_date.startswith(date):
        return "credential date differs from X-Amz-Date"
    split = urllib.parse.urlsplit(raw_path)
    query = "&".join(sorted(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                            for k, v in urllib.parse.parse_qsl(split.query, keep_blank_values=True)))
    canonical = "\n".join([
        method,
        urllib.parse.quote(split.path, safe="/~"),  # non-S3 services: the encoded path is encoded again
        query,
        "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names),
        signed,
        hashlib.sha256(payload).hexdigest(),
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "signature does not match"
    return Signature(access_key, date, region, service, tuple(names))


class StubConverseServer(ScriptedReplies, LoopbackServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, secret_key: str = "testing",
                 service: str = "bedrock", max_input_chars: int = 2_000_000) -> None:
        self.secret_key = secret_key
        self.service = service
        self.max_input_chars = max_input_chars
        self.rejected: list[tuple[str, str]] = []  # (path, reason): unsigned / badly signed requests
        self.other_requests: list[tuple[str, str]] = []  # (method, path) outside the Converse API
        self._init_script()
        super().__init__(_make_handler(self), "stub-bedrock-converse", host, port)

    @property
    def base_url(self) -> str:
        """For ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``."""
        return self.origin

    @property
    def calls(self) -> list[ConverseCall]:
        """Every signed Converse/ConverseStream call, in order, with the reply the stub gave."""
        return self.recorded

    def calls_of(self, operation: str) -> list[ConverseCall]:
        with self._lock:
            return [c for c in self.recorded if c.operation == operation]

    def _last_user_text(self, body: dict[str, Any]) -> str:
        return last_user_text(body)

    def _next_reply(self, body: dict[str, Any]) -> Reply | HttpError:
        if _input_chars(body) > self.max_input_chars:
            return HttpError(400, TOO_LONG)
        return super()._next_reply(body)


def _stop_reason(reply: Reply) -> str:
    return reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")


def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    prompt = _input_chars(body) // 4 + 1
    completion = len(reply.text or "") // 4 + 1 + 10 * len(reply.tool_calls)
    return {"inputTokens": prompt, "outputTokens": completion, "totalTokens": prompt + completion}


def _content(stub: StubConverseServer, reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"text": reply.text})
    for tc in reply.tool_calls:
        args = tc.arguments if isinstance(tc.arguments, dict) else json.loads(tc.arguments or "{}")
        blocks.append({"toolUse": {"toolUseId": tc.id or f"tooluse_stub_{next(stub._ids)}",
                                   "name": tc.name, "input": args}})
    return blocks


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return event_stream_message({":event-type": name, ":content-type": "application/json",
                                 ":message-type": "event"}, json.dumps(payload).encode())


def _make_handler(stub: StubConverseServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        server_version = "StubBedrockConverse/1"

        def _error(self, status: int, error_type: str, message: str) -> None:
            self.send_json(status, {"message": message}, {
                "x-amzn-RequestId": f"stub-{next(stub._ids)}", "x-amzn-ErrorType": f"{error_type}:http://internal"})

        def do_GET(self) -> None:
            with stub._lock:
                stub.other_requests.append(("GET", self.path))
            self._error(404, "UnknownOperationException", f"stub: no route GET {self.path}")

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "model" or parts[2] not in OPERATIONS:
                with stub._lock:
                    stub.other_requests.append(("POST", self.path))
                self._error(404, "UnknownOperationException", f"stub: no route POST {self.path}")
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            signature = verify_sigv4("POST", self.path, headers, raw, stub.secret_key)
            if isinstance(signature, Signature) and signature.service != stub.service:
                signature = f"signed for service {signature.service!r}, not {stub.service!r}"
            if not isinstance(signature, Signature):
                with stub._lock:
                    stub.rejected.append((self.path, signature))
                self._error(403, "InvalidSignatureException", signature)
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._error(400, "SerializationException", "body is not JSON")
                return
            call = ConverseCall(OPERATIONS[parts[2]], self.path, urllib.parse.unquote(parts[1]), headers, body,
                                signature)
            call.reply = reply = stub._next_reply(body)
            stub._record(call)
            if isinstance(reply, HttpError):
                self._error(reply.status, ERROR_TYPES.get(reply.status, "InternalServerException"), reply.message)
            elif call.operation == "ConverseStream":
                self._stream(body, reply)
            else:
                self.send_json(200, {
                    "output": {"message": {"role": "assistant", "content": _content(stub, reply)}},
                    "stopReason": _stop_reason(reply), "usage": _usage(body, reply), "metrics": {"latencyMs": 1},
                }, {"x-amzn-RequestId": f"stub-{next(stub._ids)}"})

        def _stream(self, body: dict[str, Any], reply: Reply) -> None:
            events = [_event("messageStart", {"role": "assistant"})]
            for index, block in enumerate(_content(stub, reply)):
                if "text" in block:  # Bedrock sends no contentBlockStart for text
                    text = block["text"]
                    for i in range(0, len(text), 16):
                        events.append(_event("contentBlockDelta", {"delta": {"text": text[i:i + 16]},
                                                                   "contentBlockIndex": index}))
                else:
                    tool = block["toolUse"]
                    events.append(_event("contentBlockStart", {"start": {"toolUse": {
                        "toolUseId": tool["toolUseId"], "name": tool["name"]}}, "contentBlockIndex": index}))
                    args = json.dumps(tool["input"])
                    half = len(args) // 2
                    for part in (args[:half], args[half:]):
                        events.append(_event("contentBlockDelta", {"delta": {"toolUse": {"input": part}},
                                                                   "contentBlockIndex": index}))
                events.append(_event("contentBlockStop", {"contentBlockIndex": index}))
            events.append(_event("messageStop", {"stopReason": _stop_reason(reply)}))
            events.append(_event("metadata", {"usage": _usage(body, reply), "metrics": {"latencyMs": 1}}))
            self.send_bytes(200, b"".join(events), content_type="application/vnd.amazon.eventstream",
                            headers={"x-amzn-RequestId": f"stub-{next(stub._ids)}"})
            self.wfile.flush()

    return Handler
