"""Channel-neutral shapes shared by every chat channel (Telegram, Slack).

Standard library only: the ingress Lambda imports this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InboundMessage:
    """One user message that the agent should answer.

    Identifiers are strings on every channel (Telegram's are integers, Slack's
    are not), so session keys and queue group ids are built the same way.
    """

    channel: str  # "telegram", "slack", ...
    chat_id: str  # where to reply (Telegram chat id, Slack channel id)
    user_id: str  # who wrote it (the allow-list is keyed on this)
    text: str
    update_id: str  # the channel's delivery id (Telegram update_id, Slack event_id)
    message_id: str | None  # the message to reply to, when the channel has one (Slack: its ts)
    thread_id: str | None  # where replies go: Telegram forum topic, Slack thread_ts (or the message's ts)
    chat_type: str  # Telegram: private | group | supergroup; Slack: im | channel
    raw: dict[str, Any] = field(repr=False, compare=False, hash=False)
    #: the conversation within the chat: Telegram forum topic; Slack thread (None for a
    #: top-level DM message: a DM is one conversation, like a Telegram private chat)
    conversation_id: str | None = None
    #: a display name (Telegram username or first name), when the channel sends one; not part of identity
    user_name: str | None = field(default=None, compare=False)

    @property
    def is_private(self) -> bool:
        return self.chat_type in ("private", "im")

    @property
    def dedup_key(self) -> str:
        """``<channel>:<delivery id>``: the SQS deduplication id and the worker's ledger key."""
        return f"{self.channel}:{self.update_id}"

    @property
    def group_id(self) -> str:
        """``<channel>:<chat id>``: the SQS message group (one chat's messages in order)."""
        return f"{self.channel}:{self.chat_id}"

    @property
    def session_key(self) -> str:
        """``<channel>:<chat id>[:<conversation>]``: whose history a turn continues."""
        return self.group_id + (f":{self.conversation_id}" if self.conversation_id else "")

    @property
    def actor_id(self) -> str:
        """``<channel>:<user id>``: the user (token budgets, long-term memory)."""
        return f"{self.channel}:{self.user_id}"
