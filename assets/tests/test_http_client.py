"""Tests for hermes_aws.channels.http: retries, backoff, Retry-After, token redaction."""

from __future__ import annotations

import json
import logging
import socket
from collections import deque
from collections.abc import Iterator
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hermes_aws.channels.http import HttpClient, HttpRequestError, redact_url
from helpers import FakeTime, fake_http as client
from stubs.loopback import LoopbackServer, QuietHandler

TOKEN = "987654:SECRET-token_value"


class ScriptedServer(LoopbackServer):
    """Loopback server answering queued (status, body, headers); then 200 {"ok": true}."""

    def __init__(self) -> None:
        self.script: deque[tuple[int, Any, dict[str, str]]] = deque()
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                server.requests.append({"method": self.command, "path": self.path,
                                        "headers": dict(self.headers),
                                        "body": self.rfile.read(n) if n else b""})
                status, body, headers = server.script.popleft() if server.script else (200, {"ok": True}, {})
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _any

        super().__init__(Handler, "scripted-server")

    @property
    def url(self) -> str:
        return self.origin


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as s:
        yield s


@pytest.fixture
def fake() -> FakeTime:  # overrides conftest's: this module's clock starts at 1000
    return FakeTime(now=1000.0)


def test_success_sends_json_and_returns_parsed_body(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((200, {"ok": True, "result": 7}, {"X-Thing": "1"}))
    status, data, headers = client(fake).request_json("POST", server.url + "/m", {"a": "é"})
    assert (status, data) == (200, {"ok": True, "result": 7})
    assert headers["x-thing"] == "1"  # lower-cased names
    req = server.requests[0]
    assert req["headers"]["Content-Type"] == "application/json"
    assert json.loads(req["body"]) == {"a": "é"}
    assert fake.sleeps == []


def test_non_json_body_is_none(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((200, b"<html>nope</html>", {}))
    assert client(fake).request_json("GET", server.url)[:2] == (200, None)


def test_429_honours_telegram_retry_after_in_json(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 3}}, {}))
    status, _, _ = client(fake).request_json("POST", server.url, {})
    assert status == 200
    assert fake.sleeps == [3.0]
    assert len(server.requests) == 2


def test_429_honours_retry_after_header_seconds(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((429, {"ok": False}, {"Retry-After": "4"}))
    assert client(fake).request_json("POST", server.url, {})[0] == 200
    assert fake.sleeps == [4.0]


def test_429_honours_retry_after_header_http_date(server: ScriptedServer, fake: FakeTime) -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=6), usegmt=True)
    server.script.append((429, b"", {"Retry-After": when}))
    assert client(fake).request_json("GET", server.url)[0] == 200
    assert len(fake.sleeps) == 1 and 3.0 <= fake.sleeps[0] <= 6.0


def test_json_retry_after_wins_over_header(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((429, {"parameters": {"retry_after": 2}}, {"Retry-After": "9"}))
    client(fake).request_json("GET", server.url)
    assert fake.sleeps == [2.0]


def test_429_without_hint_backs_off(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((429, b"", {}))
    client(fake, base_delay=0.25).request_json("GET", server.url)
    assert fake.sleeps == [0.25]


def test_5xx_exponential_backoff_is_capped(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.extend([(500, b"", {}), (502, b"", {}), (503, b"", {}), (504, b"", {})])
    status, _, _ = client(fake, max_attempts=5, base_delay=1.0, max_delay=3.0).request_json("GET", server.url)
    assert status == 200
    assert fake.sleeps == [1.0, 2.0, 3.0, 3.0]


def test_jitter_uses_injected_rng(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((500, b"", {}))
    c = HttpClient(sleep=fake.sleep, clock=fake.clock, base_delay=1.0, jitter=0.5, rng=lambda: 1.0)
    c.request_json("GET", server.url)
    assert fake.sleeps == [1.5]


def test_gives_up_after_max_attempts_and_returns_last_response(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.extend([(500, {"ok": False, "description": "boom"}, {})] * 5)
    status, data, _ = client(fake, max_attempts=3).request_json("GET", server.url)
    assert status == 500 and data["description"] == "boom"
    assert len(server.requests) == 3 and len(fake.sleeps) == 2


def test_retry_after_beyond_the_wait_budget_is_not_waited_for(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((429, {"parameters": {"retry_after": 100}}, {}))
    status, _, _ = client(fake, max_total_wait=30).request_json("GET", server.url)
    assert status == 429
    assert fake.sleeps == [] and len(server.requests) == 1


def test_total_wait_budget_counts_elapsed_time(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.extend([(500, b"", {})] * 10)
    status, _, _ = client(fake, max_attempts=10, base_delay=4.0, max_delay=4.0,
                          max_total_wait=10.0).request_json("GET", server.url)
    assert status == 500
    assert fake.sleeps == [4.0, 4.0]  # a third wait would end at 12 s > 10 s


def test_4xx_is_not_retried(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((400, {"ok": False, "description": "Bad Request"}, {}))
    assert client(fake).request_json("POST", server.url, {})[0] == 400
    assert len(server.requests) == 1 and fake.sleeps == []


def test_redirects_are_not_followed(server: ScriptedServer, fake: FakeTime) -> None:
    server.script.append((302, b"", {"Location": "http://127.0.0.1:1/elsewhere"}))
    assert client(fake).request_json("GET", server.url)[0] == 302
    assert len(server.requests) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_errors_are_retried_then_raised(fake: FakeTime) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/bot{TOKEN}/getMe"
    with pytest.raises(HttpRequestError) as info:
        client(fake, max_attempts=3, base_delay=0.5).request_json("GET", url, timeout=2)
    assert info.value.attempts == 3
    assert fake.sleeps == [0.5, 1.0]
    assert TOKEN not in str(info.value) and "<redacted>" in str(info.value)


def test_dropped_connection_is_retried(stub_telegram: Any, fake: FakeTime) -> None:
    stub_telegram.disconnect_next("getMe")
    url = f"{stub_telegram.api_base}/bot{stub_telegram.token}/getMe"
    status, data, _ = client(fake).request_json("POST", url, {})
    assert status == 200 and data["ok"] is True
    assert [c.status for c in stub_telegram.calls_of("getMe")] == [0, 200]
    assert len(fake.sleeps) == 1


def test_only_http_urls(fake: FakeTime) -> None:
    with pytest.raises(ValueError):
        client(fake).request_json("GET", "file:///etc/passwd")


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        HttpClient(max_attempts=0)


@pytest.mark.parametrize(("url", "expected"), [
    (f"https://api.telegram.org/bot{TOKEN}/sendMessage", "https://api.telegram.org/bot<redacted>/sendMessage"),
    (f"https://api.telegram.org/file/bot{TOKEN}/photos/x.jpg", "https://api.telegram.org/file/bot<redacted>/photos/x.jpg"),
    ("https://user:pw@example.com/x?token=abc", "https://<redacted>@example.com/x?<redacted>"),
    ("https://slack.com/api/chat.postMessage", "https://slack.com/api/chat.postMessage"),
])
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_logs_never_contain_the_token(server: ScriptedServer, fake: FakeTime,
                                      caplog: pytest.LogCaptureFixture) -> None:
    server.script.extend([(500, b"", {}), (429, {"parameters": {"retry_after": 1}}, {}), (503, b"", {})])
    caplog.set_level(logging.DEBUG, logger="hermes_aws.channels.http")
    status, _, _ = client(fake, max_attempts=3).request_json("POST", f"{server.url}/bot{TOKEN}/sendMessage", {})
    assert status == 503
    assert len(caplog.records) == 3  # two retries, one give-up
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert TOKEN.split(":")[1] not in caplog.text
    assert "/bot<redacted>/sendMessage" in caplog.text
