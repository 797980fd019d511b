"""A stub Telegram Bot API on loopback, for tests.

    with StubTelegramServer(token="123456:TEST") as tg:
        client = TelegramClient("123456:TEST", api_base=tg.api_base)
        tg.fail_next("sendMessage", 429, retry_after=2)          # scripted failures, in order
        tg.fail_next("sendMessage", 400, description="Bad Request: can't parse entities: ...")
        tg.disconnect_next("sendMessage")                        # close without answering
        ...
        tg.wait_for("sendMessage", 1, timeout=10)                # condition variable, no polling
        tg.calls["sendMessage"][0].params["text"]                # every call, failed ones too
        tg.sent_messages(chat_id=42)                             # texts Telegram accepted

Served as ``POST|GET /bot<token>/<method>`` with JSON, form or query parameters,
like the real API: ``sendMessage``, ``sendChatAction``, ``setWebhook``,
``deleteWebhook``, ``getWebhookInfo``, ``getMe``. A wrong token answers 401
``Unauthorized``, an unknown method 404 ``Not Found`` (bodies shaped like
Telegram's: ``{"ok": false, "error_code": ..., "description": ...}``).

``sendMessage`` checks ``chat_id`` and that ``text`` has 1-4096 characters
(UTF-16 code units). With ``strict_markdown=True`` (the default) a message sent
with ``parse_mode: Markdown`` whose ``*``, ``_`` or backtick markers are
unbalanced is refused with Telegram's 400 "can't parse entities", as the real API
does, so a client's plain-text fallback is exercised by realistic replies too.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from stubs.loopback import LoopbackServer
from stubs.recording import ParamsHandler, RecordedCall, RecordingStub

METHODS = ("sendMessage", "sendChatAction", "setWebhook", "deleteWebhook", "getWebhookInfo", "getMe")
_CHAT_ACTIONS = frozenset({"typing", "upload_photo", "record_video", "upload_video", "record_voice",
                           "upload_voice", "upload_document", "choose_sticker", "find_location",
                           "record_video_note", "upload_video_note"})
_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")


@dataclass
class _Failure:
    status: int | None  # None: drop the connection
    description: str | None = None
    retry_after: float | None = None
    retry_after_header: bool = False


@dataclass
class WebhookState:
    url: str = ""
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    drop_pending_updates: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def markdown_balanced(text: str) -> bool:
    """A rough legacy-Markdown check: every *, _ and ` marker is closed (escapes honoured)."""
    in_code = False
    counts = {"*": 0, "_": 0}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and not in_code:
            i += 2
            continue
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                return False
            i = end + 3
            continue
        if ch == "`":
            in_code = not in_code
        elif not in_code and ch in counts:
            counts[ch] += 1
        i += 1
    return not in_code and all(n % 2 == 0 for n in counts.values())


class StubTelegramServer(RecordingStub, LoopbackServer):
    failure_class = _Failure

    def __init__(self, token: str = "123456:TEST-token_abcdefghijklmnop", host: str = "127.0.0.1",
                 port: int = 0, *, strict_markdown: bool = True, bot_username: str = "hermes_stub_bot") -> None:
        self.token = token
        self.strict_markdown = strict_markdown
        self.bot_username = bot_username
        self._init_recording()  # calls, unauthorized (wrong token), _failures, _cond
        self.webhook = WebhookState()
        self._message_ids = itertools.count(1)
        super().__init__(_make_handler(self), "stub-telegram", host, port)

    @property
    def api_base(self) -> str:
        return self.origin

    # -- scripting ---------------------------------------------------------------
    def fail_next(self, method: str, status: int, retry_after: float | None = None,
                  description: str | None = None, *, times: int = 1,
                  retry_after_header: bool = False) -> None:
        """The next ``times`` calls of ``method`` fail with ``status`` (Telegram-shaped body).

        ``retry_after`` goes to ``parameters.retry_after`` (and, with
        ``retry_after_header``, a ``Retry-After`` header as well).
        """
        with self._cond:
            for _ in range(times):
                self._failures[method].append(_Failure(status, description, retry_after, retry_after_header))

    # disconnect_next: RecordingStub

    def reset(self) -> None:
        with self._cond:  # a re-entrant lock: RecordingStub.reset takes it too
            super().reset()
            self.webhook = WebhookState()

    # -- inspection (calls_of, wait_for: RecordingStub) ----------------------------
    def sent_messages(self, chat_id: int | str | None = None) -> list[str]:
        """Texts of successful sendMessage calls (optionally for one chat), in order."""
        with self._cond:
            return [c.params.get("text", "") for c in self.calls.get("sendMessage", [])
                    if c.ok and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))]

    # -- internals (_next_failure, _record: RecordingStub) --------------------------
    def _serve(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "getMe":
            return _ok({"id": int(self.token.split(":")[0]) if self.token.split(":")[0].isdigit() else 1,
                        "is_bot": True, "first_name": "Hermes", "username": self.bot_username})
        if method == "sendMessage":
            return self._send_message(params)
        if method == "sendChatAction":
            if "chat_id" not in params:
                return _error(400, "Bad Request: chat_id is empty")
            if params.get("action") not in _CHAT_ACTIONS:
                return _error(400, "Bad Request: wrong parameter action in request")
            return _ok(True)
        if method == "setWebhook":
            url = str(params.get("url") or "")
            if url and not url.startswith("https://"):
                return _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
            secret = params.get("secret_token")
            if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
                return _error(400, "Bad Request: secret token contains unallowed characters")
            with self._cond:
                self.webhook.url = url
                self.webhook.secret_token = secret
                self.webhook.allowed_updates = _list(params.get("allowed_updates"))
                self.webhook.drop_pending_updates = _bool(params.get("drop_pending_updates"))
                self.webhook.history.append({"set": url})
            return _ok(True, "Webhook was set")
        if method == "deleteWebhook":
            with self._cond:
                was = self.webhook.url
                self.webhook.url, self.webhook.secret_token = "", None
                self.webhook.history.append({"deleted": was})
            return _ok(True, "Webhook was deleted" if was else "Webhook is already deleted")
        if method == "getWebhookInfo":
            with self._cond:
                info: dict[str, Any] = {"url": self.webhook.url, "has_custom_certificate": False,
                                        "pending_update_count": 0}
                if self.webhook.allowed_updates is not None:
                    info["allowed_updates"] = self.webhook.allowed_updates
            return _ok(info)
        return _error(404, "Not Found")

    def _send_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            return _error(400, "Bad Request: chat_id is empty")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if utf16_len(text) > 4096:
            return _error(400, "Bad Request: message is too long")
        mode = params.get("parse_mode")
        if mode not in (None, "", "Markdown", "MarkdownV2", "HTML"):
            return _error(400, f"Bad Request: unsupported parse_mode {mode}")
        if mode == "Markdown" and self.strict_markdown and not markdown_balanced(text):
            return _error(400, "Bad Request: can't parse entities: Can't find end of the entity "
                               "starting at byte offset 0")
        try:
            chat = int(chat_id)
        except (TypeError, ValueError):
            chat = chat_id
        return _ok({
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private" if isinstance(chat, int) and chat > 0 else "supergroup"},
            "from": {"id": 1, "is_bot": True, "username": self.bot_username},
            "text": text,
        })


def _ok(result: Any, description: str | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return 200, body


def _error(status: int, description: str, retry_after: float | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return status, body


_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden: bot was blocked by the user",
    404: "Not Found", 409: "Conflict", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable",
}


def _list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):  # form/query encoding sends JSON-serialised arrays
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return [str(v) for v in value] if isinstance(value, list) else None


def _bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _make_handler(stub: StubTelegramServer) -> type[BaseHTTPRequestHandler]:
    class Handler(ParamsHandler):  # GET and POST -> _handle, _params
        server_version = "StubTelegram/1"

        def _handle(self) -> None:
            m = _PATH.match(urllib.parse.urlsplit(self.path).path)
            try:
                params = self._params()
            except (ValueError, UnicodeDecodeError):
                self.send_json(400, _error(400, "Bad Request: can't parse JSON")[1])
                return
            if not m:
                self.send_json(404, _error(404, "Not Found")[1])
                return
            method = m.group("method")
            if m.group("token") != stub.token:
                with stub._cond:
                    stub.unauthorized.append(method)
                    stub._cond.notify_all()
                self.send_json(401, _error(401, "Unauthorized")[1])
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            failure = stub._next_failure(method)
            if failure is not None and failure.status is None:
                self._drop(stub, RecordedCall(method, params, headers, status=0))
                return
            extra: dict[str, str] = {}
            if failure is not None:
                status, body = _error(failure.status,
                                      failure.description or _DEFAULT_DESCRIPTIONS.get(failure.status, "Error"),
                                      failure.retry_after)
                if failure.status == 429 and failure.description is None:
                    body["description"] = f"Too Many Requests: retry after {failure.retry_after or 1}"
                if failure.retry_after is not None and failure.retry_after_header:
                    extra["Retry-After"] = str(failure.retry_after)
            else:
                status, body = stub._serve(method, params)
            stub._record(RecordedCall(method, params, headers, status=status, response=body))
            self.send_json(status, body, extra)

    return Handler
