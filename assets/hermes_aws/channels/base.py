"""Channel-neutral shapes shared by every chat channel (Telegram now, Slack later).

Standard library only: the ingress Lambda imports this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InboundMessage:
    """One user message that the agent should answer.

    Identifiers are strings on every channel (Telegram's are integers, Slack's
    are not), so session keys and queue group ids can be built the same way.
    """

    channel: str  # "telegram", "slack", ...
    chat_id: str  # where to reply (Telegram chat id, Slack channel id)
    user_id: str  # who wrote it (the allow-list is keyed on this)
    text: str
    update_id: str  # the channel's delivery id (Telegram update_id): dedup key
    message_id: str | None  # the message to reply to, when the channel has one
    thread_id: str | None  # forum topic / Slack thread, when there is one
    chat_type: str  # Telegram: private | group | supergroup
    raw: dict[str, Any] = field(repr=False, compare=False, hash=False)

    @property
    def is_private(self) -> bool:
        return self.chat_type == "private"
