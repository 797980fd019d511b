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


def emf_metrics(line: dict[str, Any]) -> dict[str, tuple[str, list[list[str]], Any, str]]:
    """The metrics an embedded-metric-format log line declares, as CloudWatch reads them.

    name -> (namespace, dimension sets, value, unit); the value is the line's
    top-level field of that name and every dimension must have a value there.
    """
    out: dict[str, tuple[str, list[list[str]], Any, str]] = {}
    for directive in line["_aws"]["CloudWatchMetrics"]:
        for dims in directive["Dimensions"]:
            assert all(isinstance(line.get(d), str) and line[d] for d in dims), f"dimension without value: {dims}"
        for metric in directive["Metrics"]:
            assert metric["Name"] not in out, f"{metric['Name']} declared twice"
            out[metric["Name"]] = (directive["Namespace"], directive["Dimensions"], line[metric["Name"]],
                                   metric["Unit"])
    return out
