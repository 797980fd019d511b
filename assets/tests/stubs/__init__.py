"""Loopback stub servers used by the tests (model endpoint, Hermes API server health; later Telegram/Slack)."""
