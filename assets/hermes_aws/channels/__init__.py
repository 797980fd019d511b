"""Chat channels: verify and parse inbound webhooks, send replies.

Importing this package stays cheap (standard library only, nothing loaded
until used): the ingress Lambda imports it on every cold start. Submodules:

* :mod:`hermes_aws.channels.base` - :class:`InboundMessage`, shared by all channels.
* :mod:`hermes_aws.channels.http` - :class:`HttpClient` (urllib, retries on 429/5xx).
* :mod:`hermes_aws.channels.telegram` - Telegram webhook checks, update parsing, Bot API client.
"""

from hermes_aws.channels.base import InboundMessage

__all__ = ["InboundMessage"]
