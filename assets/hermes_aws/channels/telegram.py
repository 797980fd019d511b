"""Telegram: webhook secret check, update parsing, and a Bot API client.

Inbound (ingress Lambda, standard library only at import time):

* :func:`verify_secret_token` - the ``X-Telegram-Bot-Api-Secret-Token`` header
  Telegram sends when the webhook was registered with ``secret_token``.
* :func:`parse_update` - an Update to an :class:`InboundMessage`, or ``None``.

Outbound (worker, webhook registration): :class:`TelegramClient` over
:class:`hermes_aws.channels.http.HttpClient` (imported lazily, so the ingress
never loads urllib's HTTP stack through this module).

What :func:`parse_update` accepts (and so what the agent answers)
-----------------------------------------------------------------
Only ``update.message`` with a non-empty ``text``, from a user (``from``), in a
``private``, ``group`` or ``supergroup`` chat. Everything else is ``None``, and
the ingress acknowledges it without queueing:

* ``edited_message``: re-running the agent because a user fixed a typo would
  answer the same question twice; edits are ignored.
* ``channel_post`` / ``edited_channel_post``, ``callback_query``,
  ``inline_query``, ``my_chat_member``, polls, reactions, ...: not handled.
* messages without ``text`` (stickers, photos - even with a caption -, voice,
  service messages such as "user joined"): not handled yet.

Commands (``/start``, ``/new``) are text and pass through; the worker decides.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hermes_aws.channels.base import InboundMessage

if TYPE_CHECKING:
    from hermes_aws.channels.http import HttpClient

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HANDLED_UPDATE_TYPES = ["message"]  # setWebhook allowed_updates
MAX_MESSAGE_LENGTH = 4096  # sendMessage text limit (we count UTF-16 code units, the strict reading)
DEFAULT_API_BASE = "https://api.telegram.org"
API_BASE_ENV = "HERMES_AWS_TELEGRAM_API_BASE"
PARSE_MODE = "Markdown"
_CHAT_TYPES = frozenset({"private", "group", "supergroup"})
_PARSE_ERRORS = ("can't parse entities", "can't parse message text", "can't find end of")


# -- inbound ----------------------------------------------------------------
def secret_token_header(headers: Mapping[str, str] | None) -> str | None:
    """The secret-token header's value (case-insensitive name), or None when absent/empty."""
    if not headers:
        return None
    wanted = SECRET_HEADER.lower()
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == wanted:
            return value if isinstance(value, str) and value else None
    return None


def secret_tokens_match(given: str, expected: str) -> bool:
    """Constant-time comparison that also hides the expected length (both sides are hashed)."""
    if not given or not expected:
        return False
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, b)


def verify_secret_token(headers: Mapping[str, str] | None, expected: str) -> bool:
    """True when the request carries ``expected`` in ``X-Telegram-Bot-Api-Secret-Token``.

    False when ``expected`` is missing or empty (never "no secret configured = open").
    """
    if not isinstance(expected, str) or not expected:
        return False
    given = secret_token_header(headers)
    return given is not None and secret_tokens_match(given, expected)


def update_id_of(update: Any) -> int | None:
    """The update's ``update_id`` when it is a (non-bool) int, else None."""
    if not isinstance(update, dict):
        return None
    value = update.get("update_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def parse_update(update: Any) -> InboundMessage | None:
    """An :class:`InboundMessage` for a text message from a user, else None (see module doc)."""
    update_id = update_id_of(update)
    if update_id is None:
        return None
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    chat = message.get("chat")
    sender = message.get("from")
    if not isinstance(chat, dict) or not isinstance(sender, dict):
        return None
    chat_id, user_id = _id(chat.get("id")), _id(sender.get("id"))
    chat_type = chat.get("type")
    if chat_id is None or user_id is None or chat_type not in _CHAT_TYPES:
        return None
    thread = _id(message.get("message_thread_id")) if message.get("is_topic_message") else None
    return InboundMessage(
        channel=CHANNEL,
        chat_id=chat_id,
        user_id=user_id,
        text=text,
        update_id=str(update_id),
        message_id=_id(message.get("message_id")),
        thread_id=thread,
        chat_type=chat_type,
        raw=update,
        conversation_id=thread,
        user_name=_name(sender),
    )


def _name(sender: dict[str, Any]) -> str | None:
    for key in ("username", "first_name"):
        value = sender.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


# -- message splitting ----------------------------------------------------------
def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (how Telegram measures text and entity offsets)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def split_message(text: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` UTF-16 code units.

    Cuts at the last paragraph break, else line break, else space in the second
    half of the window (the separator itself is dropped); failing that, a hard cut
    that never separates a surrogate pair (we work on code points) and steps back
    over combining marks, variation selectors, ZWJ sequences and skin-tone
    modifiers. Chunks that would be only whitespace are dropped (Telegram rejects
    empty messages).
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    chunks: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        fit = _fit(rest, limit)
        window = rest[:fit]
        cut, skip = -1, 0
        for sep in ("\n\n", "\n", " "):
            pos = window.rfind(sep)
            if pos >= fit // 2:
                cut, skip = pos, len(sep)
                break
        if cut <= 0:
            cut, skip = _safe_hard_cut(rest, fit), 0
        chunks.append(rest[:cut])
        rest = rest[cut + skip:]
    chunks.append(rest)
    return [c for c in chunks if c.strip()]


def _fit(text: str, limit: int) -> int:
    """Largest code-point index ``i`` with ``utf16_len(text[:i]) <= limit``."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def _safe_hard_cut(text: str, fit: int) -> int:
    import unicodedata  # only for the rare hard cut

    def continues(ch: str) -> bool:  # must stay with the character before it
        cp = ord(ch)
        return (
            unicodedata.combining(ch) != 0
            or unicodedata.category(ch) in ("Mn", "Me", "Mc")
            or cp == 0x200D  # zero-width joiner
            or 0xFE00 <= cp <= 0xFE0F  # variation selectors
            or 0x1F3FB <= cp <= 0x1F3FF  # skin-tone modifiers
            or 0xE0020 <= cp <= 0xE007F  # tag characters (subdivision flags)
            or 0x20E3 == cp  # combining enclosing keycap
        )

    def regional(ch: str) -> bool:
        return 0x1F1E6 <= ord(ch) <= 0x1F1FF

    cut = fit
    floor = max(1, fit - 32)  # give up on pathological sequences; never return 0
    while cut > floor and (continues(text[cut]) or text[cut - 1] == "\u200d"):
        cut -= 1
    if cut > floor and regional(text[cut]) and regional(text[cut - 1]):
        run = 0  # regional indicators pair up from the start of their run
        while cut - 1 - run >= 0 and regional(text[cut - 1 - run]):
            run += 1
        if run % 2 == 1:
            cut -= 1
    return cut


# -- outbound -----------------------------------------------------------------
class TelegramError(Exception):
    """The Bot API refused a call (``status`` 0 when no HTTP response came back)."""

    def __init__(self, status: int, description: str) -> None:
        self.status = status
        self.description = description
        super().__init__(f"Telegram API error {status}: {description}")


class TelegramClient:
    """Bot API calls the runtime needs. The token is never logged or put in errors."""

    def __init__(self, token: str, api_base: str = DEFAULT_API_BASE,
                 http: HttpClient | None = None) -> None:
        if not token or "/" in token or any(c.isspace() for c in token):
            raise ValueError("invalid Telegram bot token")
        if http is None:
            from hermes_aws.channels.http import HttpClient

            http = HttpClient()
        self._token = token
        self.api_base = api_base.rstrip("/")
        self.http = http

    @classmethod
    def from_env(cls, token: str, environ: Mapping[str, str] | None = None,
                 http: HttpClient | None = None) -> TelegramClient:
        """A client for ``$HERMES_AWS_TELEGRAM_API_BASE`` (tests, proxies) or the public API."""
        env = os.environ if environ is None else environ
        return cls(token, api_base=env.get(API_BASE_ENV) or DEFAULT_API_BASE, http=http)

    def __repr__(self) -> str:
        return f"TelegramClient(api_base={self.api_base!r})"

    # -- Bot API methods -----------------------------------------------------
    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 15.0) -> Any:
        """Call ``method``; return its ``result`` or raise :class:`TelegramError`."""
        from hermes_aws.channels.http import HttpRequestError

        url = f"{self.api_base}/bot{self._token}/{method}"
        try:
            status, data, _ = self.http.request_json("POST", url, params or {}, timeout=timeout)
        except HttpRequestError as exc:
            raise TelegramError(0, self._clean(f"{method}: {exc.reason}")) from None
        if status == 200 and isinstance(data, dict) and data.get("ok") is True:
            return data.get("result")
        description = data.get("description") if isinstance(data, dict) else None
        raise TelegramError(status, self._clean(str(description or f"HTTP {status}")))

    def send_message(self, chat_id: int | str, text: str,
                     reply_to_message_id: int | str | None = None, *,
                     message_thread_id: int | str | None = None) -> list[int]:
        """Send ``text`` (split into <= 4096-unit chunks); return the new message ids.

        Each chunk goes with ``parse_mode=Markdown`` first and is re-sent as plain
        text when Telegram cannot parse its entities. Only the first chunk replies
        to ``reply_to_message_id`` (and still goes out if that message is gone).
        Whitespace-only text sends nothing.
        """
        ids: list[int] = []
        for index, chunk in enumerate(split_message(text)):
            params: dict[str, Any] = {"chat_id": chat_id, "text": chunk}
            if message_thread_id is not None:
                params["message_thread_id"] = message_thread_id
            if index == 0 and reply_to_message_id is not None:
                params["reply_parameters"] = {
                    "message_id": int(reply_to_message_id),
                    "allow_sending_without_reply": True,
                }
            try:
                result = self.call("sendMessage", {**params, "parse_mode": PARSE_MODE})
            except TelegramError as exc:
                if exc.status != 400 or not _is_parse_error(exc.description):
                    raise
                result = self.call("sendMessage", params)  # plain text
            if isinstance(result, dict) and isinstance(result.get("message_id"), int):
                ids.append(result["message_id"])
        return ids

    def send_chat_action(self, chat_id: int | str, action: str = "typing", *,
                         message_thread_id: int | str | None = None) -> bool:
        params: dict[str, Any] = {"chat_id": chat_id, "action": action}
        if message_thread_id is not None:
            params["message_thread_id"] = message_thread_id
        return bool(self.call("sendChatAction", params))

    def set_webhook(self, url: str, secret_token: str, allowed_updates: list[str] | None = None,
                    drop_pending_updates: bool = False) -> bool:
        params: dict[str, Any] = {
            "url": url,
            "secret_token": secret_token,
            "allowed_updates": list(HANDLED_UPDATE_TYPES if allowed_updates is None else allowed_updates),
            "drop_pending_updates": drop_pending_updates,
        }
        return bool(self.call("setWebhook", params))

    def delete_webhook(self, drop_pending_updates: bool = False) -> bool:
        return bool(self.call("deleteWebhook", {"drop_pending_updates": drop_pending_updates}))

    def get_me(self) -> dict[str, Any]:
        result = self.call("getMe")
        return result if isinstance(result, dict) else {}

    def _clean(self, text: str) -> str:
        return text.replace(self._token, "<redacted>")


def _is_parse_error(description: str) -> bool:
    lowered = description.lower()
    return any(marker in lowered for marker in _PARSE_ERRORS)
