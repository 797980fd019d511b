"""Small helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from hermes_aws.channels.http import HttpClient


class FakeTime:
    """clock + sleep that advance together; sleeps are recorded, never slept."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fake_http(fake: FakeTime, **kw: Any) -> HttpClient:
    """An :class:`HttpClient` on ``fake`` time, without jitter unless ``jitter`` is given."""
    kw.setdefault("jitter", 0.0)
    return HttpClient(sleep=fake.sleep, clock=fake.clock, **kw)
