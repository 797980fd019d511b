"""Chats, channel-neutral: queue bodies -> inbound messages, and where replies go.

Shared by the serverless worker (:mod:`hermes_aws.lambda_worker`) and anything
else that consumes the agent's queue and answers chats (the AgentCore
dispatcher). Standard library only at import time; channel clients are built
lazily from the bot-token secrets.

Inbound
-------
:func:`parse_queue_body` turns a queue body the ingress wrote into an
:class:`~hermes_aws.channels.base.InboundMessage` (or None: not a chat message,
or an update/event the channels do not handle):

* ``{"source": "telegram", "update": <Telegram update>, "received_at": iso}``
  (group ``telegram:<chat id>``, dedup id ``telegram:<update_id>``);
* ``{"source": "slack", "event": <Events API envelope>, "received_at": iso}``
  (group ``slack:<channel id>``, dedup id ``slack:<event_id>``).

``message.dedup_key`` is the idempotency key (same as the SQS dedup id),
``message.session_key`` the conversation whose history a turn continues,
``message.actor_id`` the user (``telegram:<id>`` / ``slack:<id>``) and
:func:`hermes_origin` the chat as Hermes records a cron job's ``origin``.
``{"source": "hermes.cron", ...}`` bodies are not chat messages: see
:func:`hermes_aws.scheduler.fired_job`.

Outbound
--------
:class:`Senders` reads the bot tokens (``HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN``,
``HERMES_AWS_SLACK_BOT_TOKEN_ARN``) through a
:class:`~hermes_aws.secrets.SecretCache` and makes channel clients.
:func:`reply_target` is where the answer to a message goes (Telegram: a reply
to it, in its forum topic; Slack: ``chat.postMessage`` in its thread, i.e. the
event's ``thread_ts`` or its own ``ts``); :func:`origin_target` is a chat named
by platform, chat id and thread (a cron job's origin). A :class:`ReplyTarget`
splits text into the channel's chunks and sends them one by one
(:meth:`ReplyTarget.send_chunk`, so a caller can record progress) or all at
once (:meth:`ReplyTarget.send`); :meth:`ReplyTarget.typing` shows "typing..."
while a turn runs (Telegram ``sendChatAction`` every 4 s; Slack bots have no
typing indicator, so it does nothing there).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hermes_aws.channels.base import InboundMessage

logger = logging.getLogger(__name__)

TELEGRAM = "telegram"
SLACK = "slack"
CHANNELS = (TELEGRAM, SLACK)
TELEGRAM_TOKEN_ARN_ENV = "HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN"
SLACK_TOKEN_ARN_ENV = "HERMES_AWS_SLACK_BOT_TOKEN_ARN"
TOKEN_ARN_ENVS = {TELEGRAM: TELEGRAM_TOKEN_ARN_ENV, SLACK: SLACK_TOKEN_ARN_ENV}
TYPING_INTERVAL = 4.0


class ChannelNotConfigured(RuntimeError):
    """A message or delivery for a channel whose bot token is not configured."""


# --------------------------------------------------------------------------- inbound


def parse_queue_body(body: Any) -> InboundMessage | None:
    """The chat message of a parsed queue body, or None (see the module doc)."""
    if not isinstance(body, Mapping):
        return None
    source = body.get("source")
    if source == TELEGRAM:
        from hermes_aws.channels.telegram import parse_update

        return parse_update(body.get("update"))
    if source == SLACK:
        from hermes_aws.channels.slack import parse_event

        return parse_event(body.get("event"))
    return None


def hermes_origin(message: InboundMessage) -> dict[str, Any]:
    """The chat as Hermes's ``cronjob`` tool records a job's ``origin``.

    ``thread_id`` is where a delivery should go: the Telegram forum topic, or
    the Slack thread the reply went to.
    """
    return {
        "platform": message.channel,
        "chat_id": message.chat_id,
        "chat_name": None,
        "thread_id": message.thread_id,
        "user_id": message.user_id,
    }


# --------------------------------------------------------------------------- outbound


class ReplyTarget:
    """Where text goes: one chat (and thread) of one channel."""

    channel = ""

    def split(self, text: str) -> list[str]:
        """The chunks :meth:`send` would send (never empty: blank text becomes ``…``)."""
        raise NotImplementedError

    def send_chunk(self, chunk: str, index: int) -> list[Any]:
        """Send chunk ``index`` of a reply; the new messages' ids."""
        raise NotImplementedError

    def send(self, text: str) -> list[Any]:
        ids: list[Any] = []
        for index, chunk in enumerate(self.split(text)):
            ids += self.send_chunk(chunk, index)
        return ids

    @contextmanager
    def typing(self) -> Iterator[None]:
        yield


class _ClientTarget(ReplyTarget):
    """A target that sends through a channel client made on first use."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client


class TelegramTarget(_ClientTarget):
    channel = TELEGRAM

    def __init__(self, client_factory: Callable[[], Any], chat_id: str, *, reply_to: str | None = None,
                 thread_id: str | None = None) -> None:
        super().__init__(client_factory)
        self.chat_id, self.reply_to, self.thread_id = chat_id, reply_to, thread_id

    def split(self, text: str) -> list[str]:
        from hermes_aws.channels.telegram import split_message

        return split_message(text) or ["…"]

    def send_chunk(self, chunk: str, index: int) -> list[Any]:
        return self.client.send_message(
            self.chat_id, chunk, reply_to_message_id=self.reply_to if index == 0 else None,
            message_thread_id=_int_or_none(self.thread_id))

    @contextmanager
    def typing(self) -> Iterator[None]:
        # its own client: the indicator's thread must not share one with the reply
        with TypingIndicator(self._factory(), self.chat_id, _int_or_none(self.thread_id)):
            yield


class SlackTarget(_ClientTarget):
    channel = SLACK

    def __init__(self, client_factory: Callable[[], Any], channel_id: str, *, thread_ts: str | None = None) -> None:
        super().__init__(client_factory)
        self.chat_id, self.thread_ts = channel_id, thread_ts

    def split(self, text: str) -> list[str]:
        from hermes_aws.channels.slack import split_message

        return split_message(text) or ["…"]

    def send_chunk(self, chunk: str, index: int) -> list[Any]:
        return self.client.post_message(self.chat_id, chunk, thread_ts=self.thread_ts)


class TypingIndicator:
    """``sendChatAction(typing)`` now and every ``interval`` seconds until stopped (Telegram)."""

    def __init__(self, client: Any, chat_id: str, thread_id: int | None = None,
                 interval: float = TYPING_INTERVAL) -> None:
        self.client, self.chat_id, self.thread_id, self.interval = client, chat_id, thread_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="typing", daemon=True)
        self.sent = 0

    def __enter__(self) -> TypingIndicator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.send_chat_action(self.chat_id, "typing", message_thread_id=self.thread_id)
                self.sent += 1
            except Exception as exc:  # cosmetic: never fail a turn over it
                logger.debug("sendChatAction failed: %s", exc)
            if self._stop.wait(self.interval):
                return


class Senders:
    """Channel clients from the bot-token secrets (see the module doc)."""

    def __init__(self, secrets: Any, environ: Mapping[str, str] | None = None) -> None:
        self.secrets = secrets
        self.environ = os.environ if environ is None else environ

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Senders:
        from hermes_aws.secrets import SecretCache

        return cls(SecretCache(), environ)

    def configured(self, channel: str) -> bool:
        env = TOKEN_ARN_ENVS.get(channel)
        return bool(env and (self.environ.get(env) or "").strip())

    def _token(self, channel: str) -> str:
        env = TOKEN_ARN_ENVS.get(channel)
        arn = (self.environ.get(env) or "").strip() if env else ""
        if not arn:
            raise ChannelNotConfigured(f"{channel}: {env or 'no bot token variable'} is not set")
        return self.secrets.get(arn).strip()

    def telegram(self) -> Any:
        from hermes_aws.channels.telegram import TelegramClient

        return TelegramClient.from_env(self._token(TELEGRAM), self.environ)

    def slack(self) -> Any:
        from hermes_aws.channels.slack import SlackClient

        return SlackClient.from_env(self._token(SLACK), self.environ)

    def client(self, channel: str) -> Any:
        if channel == TELEGRAM:
            return self.telegram()
        if channel == SLACK:
            return self.slack()
        raise ChannelNotConfigured(f"unknown channel {channel!r}")


def reply_target(message: InboundMessage, senders: Senders) -> ReplyTarget:
    """Where the answer to ``message`` goes."""
    if message.channel == TELEGRAM:
        return TelegramTarget(senders.telegram, message.chat_id, reply_to=message.message_id,
                              thread_id=message.thread_id)
    if message.channel == SLACK:
        return SlackTarget(senders.slack, message.chat_id, thread_ts=message.thread_id)
    raise ChannelNotConfigured(f"unknown channel {message.channel!r}")


def origin_target(platform: str, chat_id: str, thread_id: str | None, senders: Senders) -> ReplyTarget:
    """A chat named by platform, chat id and thread (a cron job's origin or ``deliver`` target)."""
    if platform == TELEGRAM:
        return TelegramTarget(senders.telegram, str(chat_id), thread_id=thread_id)
    if platform == SLACK:
        return SlackTarget(senders.slack, str(chat_id), thread_ts=thread_id)
    raise ChannelNotConfigured(f"unknown channel {platform!r}")


def _int_or_none(value: Any) -> int | None:
    """Telegram's integer ids (``InboundMessage`` carries them as strings)."""
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


__all__ = [
    "CHANNELS", "ChannelNotConfigured", "InboundMessage", "ReplyTarget", "Senders", "SlackTarget",
    "TelegramTarget", "TypingIndicator", "hermes_origin", "origin_target", "parse_queue_body", "reply_target",
]
