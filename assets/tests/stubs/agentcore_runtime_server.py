"""A stand-in for the Bedrock AgentCore data plane's ``InvokeAgentRuntime``, on loopback.

boto3's ``bedrock-agentcore`` client reaches it through
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`` (rest-json, botocore's service model
2024-02-28)::

    POST /runtimes/<url-encoded runtime ARN>/invocations[?qualifier=<endpoint>]
    X-Amzn-Bedrock-AgentCore-Runtime-Session-Id: <33-256 chars>
    X-Amzn-Bedrock-AgentCore-Runtime-User-Id: <user>          (optional)
    Authorization: AWS4-HMAC-SHA256 Credential=.../bedrock-agentcore/aws4_request, ...
    <payload bytes>

What the service does and this stub imitates: the request is checked (SigV4
signature for the ``bedrock-agentcore`` service present, runtime ARN known,
session id 33-256 characters, qualifier ``DEFAULT`` or absent), then forwarded
to the container's ``POST /invocations`` with the session header; the
container's body and Content-Type come back with the session id header and
status 200. A container answering with an error status becomes a 424
``RuntimeClientError`` ("Received error (500) from runtime..."), one that
cannot be reached a 424 too, and a scripted :meth:`throttle_next` a 429
``ThrottlingException``. Errors carry ``x-amzn-ErrorType`` and a JSON
``{"message"}`` body, as rest-json services answer.

The "microVM" a session lands on is the ``target`` origin (``http://host:port``
of a running :mod:`hermes_aws.agentcore_app`); tests repoint it to simulate a
fresh process. Every call is recorded as an :class:`Invocation`.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from stubs.loopback import LoopbackServer, QuietHandler

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
USER_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
FORWARD_TIMEOUT = 120.0


@dataclass
class Invocation:
    runtime_arn: str
    qualifier: str | None
    session_id: str | None
    user_id: str | None
    payload: Any  # parsed JSON (or the raw bytes when not JSON)
    content_type: str | None
    accept: str | None
    status: int = 0
    error: str | None = None  # the error type this stub answered with
    response: Any = None  # what the container answered (parsed JSON when it was JSON)


class StubAgentCoreRuntime(LoopbackServer):
    def __init__(self, runtime_arn: str, target: str | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.runtime_arn = runtime_arn
        self.target = target  # origin of the container: http://127.0.0.1:<port>
        self.invocations: list[Invocation] = []
        self._throttles = 0
        self._lock = threading.Lock()
        super().__init__(_make_handler(self), "stub-agentcore", host, port)

    @property
    def endpoint_url(self) -> str:
        """For ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``."""
        return self.origin

    def throttle_next(self, times: int = 1) -> None:
        """The next ``times`` invocations get a 429 ThrottlingException without reaching the container."""
        with self._lock:
            self._throttles += times

    def _take_throttle(self) -> bool:
        with self._lock:
            if self._throttles > 0:
                self._throttles -= 1
                return True
            return False

    def _record(self, call: Invocation) -> None:
        with self._lock:
            self.invocations.append(call)

    def calls(self) -> list[Invocation]:
        with self._lock:
            return list(self.invocations)


def _make_handler(stub: StubAgentCoreRuntime) -> type[QuietHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            parts = split.path.split("/")
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            if len(parts) != 4 or parts[1] != "runtimes" or parts[3] != "invocations":
                return self._error(404, "UnknownOperationException", f"no route {split.path}")
            arn = urllib.parse.unquote(parts[2])
            query = dict(urllib.parse.parse_qsl(split.query))
            try:
                payload: Any = json.loads(raw.decode("utf-8"))
            except ValueError:
                payload = raw
            call = Invocation(
                runtime_arn=arn, qualifier=query.get("qualifier"),
                session_id=self.headers.get(SESSION_HEADER), user_id=self.headers.get(USER_HEADER),
                payload=payload, content_type=self.headers.get("Content-Type"),
                accept=self.headers.get("Accept"),
            )
            auth = self.headers.get("Authorization") or ""
            if not auth.startswith("AWS4-HMAC-SHA256 ") or "/bedrock-agentcore/aws4_request" not in auth:
                return self._fail(call, 403, "AccessDeniedException", "missing or foreign SigV4 signature")
            if arn != stub.runtime_arn:
                return self._fail(call, 404, "ResourceNotFoundException", f"no agent runtime {arn}")
            if call.qualifier not in (None, "DEFAULT"):
                return self._fail(call, 404, "ResourceNotFoundException", f"no endpoint {call.qualifier}")
            if not call.session_id or not 33 <= len(call.session_id) <= 256:
                return self._fail(call, 400, "ValidationException",
                                  "runtimeSessionId must be between 33 and 256 characters")
            if stub._take_throttle():
                return self._fail(call, 429, "ThrottlingException", "Rate exceeded")
            if not stub.target:
                return self._fail(call, 424, "RuntimeClientError", "runtime is not reachable")
            self._forward(call, raw)

        def _forward(self, call: Invocation, raw: bytes) -> None:
            assert stub.target is not None
            request = urllib.request.Request(
                f"{stub.target}/invocations", data=raw, method="POST",
                headers={"Content-Type": call.content_type or "application/json",
                         "Accept": call.accept or "application/json", SESSION_HEADER: call.session_id or ""},
            )
            try:
                with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT) as resp:
                    body, ctype = resp.read(), resp.headers.get("Content-Type") or "application/json"
            except urllib.error.HTTPError as exc:
                detail = exc.read()
                call.response = _parse(detail)
                return self._fail(call, 424, "RuntimeClientError",
                                  f"Received error ({exc.code}) from runtime. Please check your CloudWatch "
                                  "logs for more information.")
            except OSError as exc:
                return self._fail(call, 424, "RuntimeClientError", f"runtime unreachable: {exc}")
            call.status, call.response = 200, _parse(body)
            stub._record(call)
            self.send_bytes(200, body, content_type=ctype, headers={SESSION_HEADER: call.session_id or ""})

        def _fail(self, call: Invocation, status: int, error: str, message: str) -> None:
            call.status, call.error = status, error
            stub._record(call)
            self._error(status, error, message)

        def _error(self, status: int, error: str, message: str) -> None:
            self.send_json(status, {"__type": error, "message": message}, headers={"x-amzn-ErrorType": error})

    return Handler


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        return body
