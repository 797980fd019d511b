"""Loopback stub servers used by the tests (model endpoint; later Telegram/Slack)."""
