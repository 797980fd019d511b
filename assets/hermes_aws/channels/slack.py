"""Slack (Events API over HTTP): signature check, event parsing, and a Web API client.

Inbound (ingress Lambda, standard library only at import time):

* :func:`verify_signature` - Slack's v0 request signature (HMAC-SHA256 of
  ``v0:{X-Slack-Request-Timestamp}:{raw body}`` with the app's signing secret)
  plus a replay window. Check it on the *raw* body bytes before parsing
  anything, and before answering ``url_verification`` (the AWS sample answered
  the challenge unauthenticated).
* :func:`classify` - a parsed body is ``url_verification`` (with its
  ``challenge``), ``event_callback`` (a supported event, already parsed into an
  :class:`InboundMessage`) or ``unsupported`` (with a reason, for the logs).
* :func:`parse_event` - the :class:`InboundMessage` of a supported event, or None.
* :func:`retry_info` - Slack's ``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``.
  Slack retries a delivery it got no 2xx for within 3 seconds (up to 3 times) with
  the same ``event_id``: that is the dedup key (``InboundMessage.update_id``).

Outbound (worker): :class:`SlackClient` over :class:`hermes_aws.channels.http.HttpClient`
(imported lazily, so the ingress never loads urllib's HTTP stack through this module).

What :func:`classify` accepts (and so what the agent answers)
---------------------------------------------------------------
``event_callback`` envelopes with an ``event_id`` whose event is

* ``message`` with ``channel_type == "im"`` (a direct message to the bot,
  subscription ``message.im``), or
* ``app_mention`` (the bot @-mentioned in a channel, private channel or group
  DM; Slack never sends it for 1:1 DMs, so a DM is never seen twice),

from a user (``user``), with non-empty ``text``, and without ``subtype``,
``bot_id``, ``hidden`` or ``edited``. That drops the bot's own replies and other
bots (no reply loops), edits (``message_changed``), deletions, joins, channel
topic changes, thread broadcasts, file shares (not handled yet), ... A message
from the bot's own user id is dropped as well.

Text: a leading mention of the bot (``<@U123>``, ``<@U123|name>``, followed by
``:``/``,``/spaces) is stripped - any leading user mention when the bot's user
id is unknown, and in a DM only the bot's own. Then Slack's three HTML escapes
(``&amp;`` ``&lt;`` ``&gt;``) are undone, so the agent sees what the user typed;
other markup (``<@U456>``, ``<#C1|general>``, ``<https://x|label>``) stays as is.
A message that is empty after that (a bare mention) is unsupported.

Threads: ``thread_id`` is the message's ``thread_ts`` or, for a top-level
message, its own ``ts``; replies go into that thread (also in DMs). Sessions
(``conversation_id``): a thread is a conversation, so is the thread a top-level
``app_mention`` starts; the top level of a DM is one conversation (like a
Telegram private chat), so a DM keeps its history while replies stay threaded.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hermes_aws.channels.base import InboundMessage

if TYPE_CHECKING:
    from hermes_aws.channels.http import HttpClient

CHANNEL = "slack"
DEFAULT_API_BASE = "https://slack.com/api"
API_BASE_ENV = "HERMES_AWS_SLACK_API_BASE"

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
RETRY_NUM_HEADER = "X-Slack-Retry-Num"
RETRY_REASON_HEADER = "X-Slack-Retry-Reason"
NO_RETRY_HEADER = "X-Slack-No-Retry"  # a response header: "1" asks Slack not to retry
SIGNATURE_VERSION = "v0"
MAX_SIGNATURE_AGE = 300  # seconds, either direction

# Slack truncates `text` at 40 000 characters, but long messages render badly
# (collapsed, "show more"); replies are split well below that.
MAX_MESSAGE_LENGTH = 3900
MAX_CHALLENGE_LENGTH = 512  # Slack's are ~50 characters; never echo anything big

# Kinds returned by classify()
URL_VERIFICATION = "url_verification"
EVENT_CALLBACK = "event_callback"
UNSUPPORTED = "unsupported"

# What the Slack app must be configured with for the supported events.
SUBSCRIBED_BOT_EVENTS = ("message.im", "app_mention")
BOT_SCOPES = ("app_mentions:read", "im:history", "chat:write")

_DIGITS = re.compile(r"[0-9]{1,15}")
_LEADING_MENTION = re.compile(r"\A\s*<@([A-Za-z0-9]+)(?:\|[^>]*)?>[\s:,]*")


# -- headers ------------------------------------------------------------------
def header_value(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """The value of header ``name`` (case-insensitive), or None when absent or not a string."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value if isinstance(value, str) else None
    return None


@dataclass(frozen=True)
class RetryInfo:
    """Slack's redelivery headers: ``num`` (1-3) and ``reason`` (``http_timeout``, ...)."""

    num: int | None
    reason: str | None


def retry_info(headers: Mapping[str, Any] | None) -> RetryInfo | None:
    """``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``, or None on a first delivery.

    A retry carries the same ``event_id`` as the original delivery; dedup on that,
    these headers are only informative (logs, metrics).
    """
    raw_num = header_value(headers, RETRY_NUM_HEADER)
    reason = header_value(headers, RETRY_REASON_HEADER)
    num = None
    if raw_num is not None and _DIGITS.fullmatch(raw_num.strip()):
        num = int(raw_num.strip())
    reason = reason.strip() if reason and reason.strip() else None
    if num is None and reason is None:
        return None
    return RetryInfo(num, reason)


# -- signature ------------------------------------------------------------------
def compute_signature(signing_secret: str, timestamp: str, raw_body: bytes) -> str:
    """``v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>`` (what Slack sends)."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode("ascii") + raw_body
    digest = hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


SIGNATURE_MISSING = "missing Slack signature"
SIGNATURE_STALE = "stale Slack signature timestamp"
SIGNATURE_WRONG = "wrong Slack signature"


def signature_problem(headers: Mapping[str, Any] | None, raw_body: bytes, signing_secret: str,
                      now: float | None = None, max_age_seconds: float = MAX_SIGNATURE_AGE) -> str | None:
    """Why the request is not signed by Slack with ``signing_secret``, recently; None when it is.

    ``raw_body`` must be the exact bytes Slack sent (base64-decoded when API
    Gateway / the function URL flagged ``isBase64Encoded``), not re-serialised
    JSON. :data:`SIGNATURE_MISSING`: a header is missing;
    :data:`SIGNATURE_STALE`: the timestamp is not a plain (ASCII) integer or is
    more than ``max_age_seconds`` away from ``now`` (past or future: replays);
    :data:`SIGNATURE_WRONG`: the secret is empty, the body is not bytes, or
    the signature does not match (constant-time comparison).
    """
    timestamp = header_value(headers, TIMESTAMP_HEADER)
    given = header_value(headers, SIGNATURE_HEADER)
    if timestamp is None or given is None:
        return SIGNATURE_MISSING
    timestamp = timestamp.strip()
    if not _DIGITS.fullmatch(timestamp):
        return SIGNATURE_STALE
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > max_age_seconds:
        return SIGNATURE_STALE
    if not isinstance(signing_secret, str) or not signing_secret:
        return SIGNATURE_WRONG
    if isinstance(raw_body, str):
        raw_body = raw_body.encode("utf-8", "surrogatepass")
    if not isinstance(raw_body, (bytes, bytearray)):
        return SIGNATURE_WRONG
    expected = compute_signature(signing_secret, timestamp, bytes(raw_body))
    if hmac.compare_digest(expected.encode("ascii"), given.strip().encode("utf-8", "surrogatepass")):
        return None
    return SIGNATURE_WRONG


def verify_signature(headers: Mapping[str, Any] | None, raw_body: bytes, signing_secret: str,
                     now: float | None = None, max_age_seconds: float = MAX_SIGNATURE_AGE) -> bool:
    """True when the request was signed by Slack with ``signing_secret``, recently (:func:`signature_problem`)."""
    return signature_problem(headers, raw_body, signing_secret, now, max_age_seconds) is None


# -- events ---------------------------------------------------------------------
@dataclass(frozen=True)
class Classification:
    """What an Events API request body is (see :func:`classify`)."""

    kind: str  # URL_VERIFICATION | EVENT_CALLBACK | UNSUPPORTED
    challenge: str | None = None  # url_verification: echo it (after the signature check!)
    message: InboundMessage | None = None  # event_callback
    event_id: str | None = None  # when the envelope has one (also for unsupported events)
    event_type: str | None = None  # event.type, when there is one
    reason: str | None = None  # unsupported: why (safe to log: no message text)


def event_id_of(payload: Any) -> str | None:
    """The envelope's ``event_id`` (the dedup key of Slack's retries), or None."""
    if isinstance(payload, dict):
        value = payload.get("event_id")
        if isinstance(value, str) and value:
            return value
    return None


def bot_user_id_of(payload: Any) -> str | None:
    """The bot's user id from the envelope's ``authorizations`` (entry with ``is_bot``), or None."""
    if not isinstance(payload, dict):
        return None
    auths = payload.get("authorizations")
    if not isinstance(auths, list):
        return None
    for auth in auths:
        if isinstance(auth, dict) and auth.get("is_bot") is True:
            user = auth.get("user_id")
            if isinstance(user, str) and user:
                return user
    return None


def classify(payload: Any, bot_user_id: str | None = None) -> Classification:
    """Sort a parsed Events API body (see the module doc for what is supported).

    ``bot_user_id`` (from ``auth.test``) defaults to the ``authorizations`` entry of
    the envelope; it is used to drop the bot's own messages and to strip the
    leading mention.
    """
    if not isinstance(payload, dict):
        return Classification(UNSUPPORTED, reason="body is not an object")
    kind = payload.get("type")
    if kind == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or not challenge or len(challenge) > MAX_CHALLENGE_LENGTH:
            return Classification(UNSUPPORTED, reason="url_verification without a usable challenge")
        return Classification(URL_VERIFICATION, challenge=challenge)
    if kind != "event_callback":
        return Classification(UNSUPPORTED, reason=f"envelope type {_short(kind)}")
    event_id = event_id_of(payload)
    event = payload.get("event")
    event_type = event.get("type") if isinstance(event, dict) else None
    event_type = event_type if isinstance(event_type, str) else None

    def unsupported(reason: str) -> Classification:
        return Classification(UNSUPPORTED, event_id=event_id, event_type=event_type, reason=reason)

    if event_id is None:
        return unsupported("no event_id")
    if not isinstance(event, dict):
        return unsupported("no event")
    if event_type == "message":
        if event.get("channel_type") != "im":
            return unsupported(f"message in channel_type {_short(event.get('channel_type'))}")
        chat_type = "im"
    elif event_type == "app_mention":
        chat_type = "channel"
    else:
        return unsupported(f"event type {_short(event_type)}")
    if "subtype" in event:
        return unsupported(f"subtype {_short(event.get('subtype'))}")
    if event.get("bot_id") or event.get("bot_profile"):
        return unsupported("bot message")
    if event.get("hidden") or event.get("edited"):
        return unsupported("hidden or edited message")

    bot = bot_user_id or bot_user_id_of(payload)
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not (_nonempty(user) and _nonempty(channel) and _nonempty(ts)):
        return unsupported("missing user, channel or ts")
    if bot is not None and user == bot:
        return unsupported("the bot's own message")
    text = event.get("text")
    if not isinstance(text, str):
        return unsupported("no text")
    text = _unescape(strip_leading_mention(text, bot, any_user=chat_type == "channel"))
    if not text.strip():
        return unsupported("empty text")
    thread_ts = event.get("thread_ts") if _nonempty(event.get("thread_ts")) else None
    message = InboundMessage(
        channel=CHANNEL,
        chat_id=channel,
        user_id=user,
        text=text,
        update_id=event_id,
        message_id=ts,
        thread_id=thread_ts or ts,
        chat_type=chat_type,
        raw=payload,
        # a thread is a conversation; so is a mention that starts one; a DM's top level is one too
        conversation_id=thread_ts or (ts if chat_type == "channel" else None),
    )
    return Classification(EVENT_CALLBACK, message=message, event_id=event_id, event_type=event_type)


def parse_event(payload: Any, bot_user_id: str | None = None) -> InboundMessage | None:
    """The :class:`InboundMessage` of a supported ``event_callback``, else None."""
    return classify(payload, bot_user_id).message


def strip_leading_mention(text: str, bot_user_id: str | None, *, any_user: bool = True) -> str:
    """``text`` without a leading ``<@BOT>`` mention (and the ``:``/``,``/spaces after it).

    With ``bot_user_id`` None, any leading user mention is stripped when
    ``any_user`` is true (an ``app_mention`` almost always starts with the bot's).
    """
    m = _LEADING_MENTION.match(text)
    if m is None:
        return text
    if bot_user_id is not None:
        if m.group(1) != bot_user_id:
            return text
    elif not any_user:
        return text
    return text[m.end():]


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def escape_text(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack requires for literal text in ``text``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _short(value: Any) -> str:
    """A value for a log-safe reason: short, printable."""
    text = value if isinstance(value, str) else type(value).__name__ if value is not None else "none"
    return "".join(ch if ch.isprintable() else "?" for ch in text[:40])


# -- message splitting ---------------------------------------------------------
def split_message(text: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters.

    The Telegram splitter (paragraph, then line, then space boundaries in the
    second half of the window; hard cuts never split a surrogate pair or grapheme
    cluster; whitespace-only chunks dropped). It counts UTF-16 units, which is
    never less than Slack's character count, so chunks are within ``limit``.
    """
    from hermes_aws.channels.telegram import split_message as _split

    return _split(text, limit)


# -- outbound -------------------------------------------------------------------
class SlackError(Exception):
    """A Web API call failed: ``error`` is Slack's code (``channel_not_found``, ``ratelimited``, ...).

    ``status`` is the HTTP status (200 for ``{"ok": false}`` answers, 429 when the
    rate limit outlasted the retries, 0 when no response came back).
    """

    def __init__(self, error: str, status: int = 200, method: str | None = None) -> None:
        self.error = error
        self.status = status
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"Slack API error: {where}{error} (HTTP {status})")


class SlackClient:
    """Web API calls the runtime needs. The token is never logged or put in errors."""

    def __init__(self, bot_token: str, api_base: str = DEFAULT_API_BASE,
                 http: HttpClient | None = None) -> None:
        if (not isinstance(bot_token, str) or not bot_token
                or any(c.isspace() or not c.isprintable() for c in bot_token)):
            raise ValueError("invalid Slack bot token")
        if http is None:
            from hermes_aws.channels.http import HttpClient

            http = HttpClient()
        self._token = bot_token
        self.api_base = api_base.rstrip("/")
        self.http = http

    @classmethod
    def from_env(cls, bot_token: str, environ: Mapping[str, str] | None = None,
                 http: HttpClient | None = None) -> SlackClient:
        """A client for ``$HERMES_AWS_SLACK_API_BASE`` (tests, proxies) or the public API."""
        env = os.environ if environ is None else environ
        return cls(bot_token, api_base=env.get(API_BASE_ENV) or DEFAULT_API_BASE, http=http)

    def __repr__(self) -> str:
        return f"SlackClient(api_base={self.api_base!r})"

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 15.0) -> dict[str, Any]:
        """POST ``params`` as JSON to ``method``; the response object, or raise :class:`SlackError`.

        429 (``ratelimited``, with ``Retry-After``) and 5xx are retried by the HTTP
        client; Slack reports other errors as HTTP 200 with ``{"ok": false, "error": ...}``.
        """
        from hermes_aws.channels.http import HttpRequestError

        headers = {"Authorization": f"Bearer {self._token}",
                   "Content-Type": "application/json; charset=utf-8"}
        try:
            status, data, _ = self.http.request_json("POST", f"{self.api_base}/{method}", params or {},
                                                     headers=headers, timeout=timeout)
        except HttpRequestError as exc:
            raise SlackError(self._clean(f"connection_failed: {exc.reason}"), 0, method) from None
        if status == 200 and isinstance(data, dict) and data.get("ok") is True:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, str) or not error:
            error = "ratelimited" if status == 429 else f"http_{status}"
        raise SlackError(self._clean(error), status, method)

    def post_message(self, channel: str, text: str, thread_ts: str | None = None, *,
                     escape: bool = True) -> list[str]:
        """Post ``text`` (split into <= 3900-character chunks); return the new messages' ``ts``.

        Every chunk goes to ``thread_ts`` when given (a thread reply). With
        ``escape`` (the default) ``&``, ``<`` and ``>`` are escaped, so the text is
        shown as written instead of being read as Slack markup; mrkdwn (``*bold*``,
        code blocks) still applies. Whitespace-only text posts nothing.
        """
        sent: list[str] = []
        for chunk in split_message(text):
            params: dict[str, Any] = {"channel": channel, "text": escape_text(chunk) if escape else chunk}
            if thread_ts:
                params["thread_ts"] = thread_ts
            data = self.call("chat.postMessage", params)
            ts = data.get("ts")
            if isinstance(ts, str):
                sent.append(ts)
        return sent

    def auth_test(self) -> dict[str, Any]:
        """``auth.test``: checks the token; ``user_id`` is the bot's user id, ``bot_id``, ``team_id``."""
        return self.call("auth.test")

    def _clean(self, text: str) -> str:
        return text.replace(self._token, "<redacted>")
