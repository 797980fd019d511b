"""A stub Slack Web API on loopback, for tests.

    with StubSlackServer(token="xoxb-test") as slack:
        client = SlackClient("xoxb-test", api_base=slack.api_base)
        slack.fail_next("chat.postMessage", 429, retry_after=3)      # scripted, in order
        slack.error_next("chat.postMessage", "channel_not_found")     # HTTP 200 {"ok": false}
        slack.disconnect_next("chat.postMessage")                     # close without answering
        ...
        slack.wait_for("chat.postMessage", 1, timeout=10)             # condition variable, no polling
        slack.calls_of("chat.postMessage")[0].params["text"]          # every call, failed ones too
        slack.posted(channel="D123")                                  # messages Slack accepted

Served as ``POST|GET /api/<method>`` (``api_base`` is ``http://127.0.0.1:<port>/api``)
with JSON, form or query parameters, like the real API: ``chat.postMessage`` and
``auth.test``. The token is read from ``Authorization: Bearer <token>`` (or a
``token`` parameter); a missing one answers ``not_authed``, a wrong one
``invalid_auth``, an unknown method ``unknown_method`` - all HTTP 200 with
``{"ok": false, "error": ...}``, as Slack does. A 429 answers
``{"ok": false, "error": "ratelimited"}`` with a ``Retry-After`` header.

``chat.postMessage`` checks ``channel`` (``channel_not_found``) and ``text``
(``no_text`` when missing or blank, ``msg_too_long`` over 40 000 characters) and
answers ``{"ok": true, "channel", "ts", "message"}`` with increasing ``ts``.
"""

from __future__ import annotations

import itertools
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from stubs import recording
from stubs.loopback import LoopbackServer
from stubs.recording import ParamsHandler, RecordingStub

METHODS = ("chat.postMessage", "auth.test")
MAX_TEXT = 40_000
_PASS = -1  # a scripted "serve this call normally"


class RecordedCall(recording.RecordedCall):
    @property
    def ok(self) -> bool:
        return self.status == 200 and isinstance(self.response, dict) and self.response.get("ok") is True


@dataclass
class PostedMessage:
    channel: str
    text: str
    thread_ts: str | None
    ts: str


@dataclass
class _Failure:
    status: int | None  # None: drop the connection
    error: str | None = None
    retry_after: float | None = None
    raw_body: bytes | None = None


class StubSlackServer(RecordingStub, LoopbackServer):
    failure_class = _Failure

    def __init__(self, token: str = "xoxb-1111-2222-stubTOKENabcdef", host: str = "127.0.0.1",
                 port: int = 0, *, bot_user_id: str = "U0BOTSTUB", bot_id: str = "B0BOTSTUB",
                 team_id: str = "T0STUB") -> None:
        self.token = token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self._init_recording()  # calls, unauthorized (missing or wrong token), _failures, _cond
        self._ts = itertools.count(1)
        super().__init__(_make_handler(self), "stub-slack", host, port)

    @property
    def api_base(self) -> str:
        return self.origin + "/api"

    # -- scripting ---------------------------------------------------------------
    def fail_next(self, method: str, status: int, retry_after: float | None = None,
                  error: str | None = None, *, times: int = 1, after: int = 0,
                  raw_body: bytes | None = None) -> None:
        """The next ``times`` calls of ``method`` answer HTTP ``status`` with ``{"ok": false}``.

        A 429 carries ``error: ratelimited`` and, when ``retry_after`` is given, a
        ``Retry-After`` header (Slack sends it in whole seconds). With ``after``,
        that many calls are served normally first. ``raw_body`` replaces the JSON
        body (an HTML error page from a proxy, an empty body, ...).
        """
        with self._cond:
            for _ in range(after):
                self._failures[method].append(_Failure(_PASS))
            for _ in range(times):
                self._failures[method].append(_Failure(status, error, retry_after, raw_body))

    def error_next(self, method: str, error: str, *, times: int = 1, after: int = 0) -> None:
        """The next ``times`` calls of ``method`` answer HTTP 200 ``{"ok": false, "error": error}``."""
        self.fail_next(method, 200, error=error, times=times, after=after)

    # disconnect_next, reset: RecordingStub

    # -- inspection (calls_of, wait_for: RecordingStub) ----------------------------
    def posted(self, channel: str | None = None) -> list[PostedMessage]:
        """Messages ``chat.postMessage`` accepted (optionally in one channel), in order."""
        with self._cond:
            out = []
            for call in self.calls.get("chat.postMessage", []):
                if not call.ok or (channel is not None and call.params.get("channel") != channel):
                    continue
                thread = call.params.get("thread_ts")
                out.append(PostedMessage(call.params["channel"], call.params["text"],
                                         str(thread) if thread else None, call.response["ts"]))
            return out

    def posted_texts(self, channel: str | None = None) -> list[str]:
        return [m.text for m in self.posted(channel)]

    # -- internals (_next_failure, _record: RecordingStub) --------------------------
    def _serve(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://stub.slack.com/", "team": "Stub", "user": "hermes",
                    "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id}
        if method == "chat.postMessage":
            channel = params.get("channel")
            if not isinstance(channel, str) or not channel:
                return {"ok": False, "error": "channel_not_found"}
            text = params.get("text")
            if not isinstance(text, str) or not text.strip():
                return {"ok": False, "error": "no_text"}
            if len(text) > MAX_TEXT:
                return {"ok": False, "error": "msg_too_long"}
            ts = f"1700000000.{next(self._ts):06d}"
            message: dict[str, Any] = {"type": "message", "text": text, "user": self.bot_user_id,
                                       "bot_id": self.bot_id, "ts": ts}
            if params.get("thread_ts"):
                message["thread_ts"] = str(params["thread_ts"])
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        return {"ok": False, "error": "unknown_method"}


def _make_handler(stub: StubSlackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(ParamsHandler):  # GET and POST -> _handle, _params
        server_version = "StubSlack/1"

        def _token(self, params: dict[str, Any]) -> str | None:
            auth = self.headers.get("Authorization") or ""
            if auth[:7].lower() == "bearer ":
                return auth[7:].strip() or None
            token = params.pop("token", None)
            return token if isinstance(token, str) and token else None

        def _handle(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            try:
                params = self._params()
            except (ValueError, UnicodeDecodeError):
                self.send_json(200, {"ok": False, "error": "invalid_json"})
                return
            if not path.startswith("/api/") or "/" in path[5:] or not path[5:]:
                self.send_json(404, {"ok": False, "error": "not_found"})
                return
            method = path[5:]
            headers = {k.lower(): v for k, v in self.headers.items()}
            token = self._token(params)
            if token != stub.token:
                body = {"ok": False, "error": "not_authed" if token is None else "invalid_auth"}
                with stub._cond:
                    stub.unauthorized.append(method)
                stub._record(RecordedCall(method, params, headers, status=200, response=body))
                self.send_json(200, body)
                return
            failure = stub._next_failure(method)
            if failure is not None and failure.status == _PASS:
                failure = None
            if failure is not None and failure.status is None:
                self._drop(stub, RecordedCall(method, params, headers, status=0))
                return
            extra: dict[str, str] = {}
            if failure is not None:
                status = failure.status
                error = failure.error or ("ratelimited" if status == 429 else "internal_error")
                body: Any = {"ok": False, "error": error}
                if failure.retry_after is not None:
                    extra["Retry-After"] = f"{failure.retry_after:g}"
                if failure.raw_body is not None:
                    stub._record(RecordedCall(method, params, headers, status=status, response=None))
                    self.send_bytes(status, failure.raw_body, content_type="text/html", headers=extra)
                    return
            else:
                status, body = 200, stub._serve(method, params)
            stub._record(RecordedCall(method, params, headers, status=status, response=body))
            self.send_json(status, body, extra)

    return Handler
