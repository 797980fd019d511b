"""What the recording API stubs (Slack, Telegram) share: calls, scripted failures, ``wait_for``.

    class StubThing(RecordingStub, LoopbackServer):
        failure_class = _Failure                 # a dataclass whose first field is ``status``

        def __init__(self, ...) -> None:
            self._init_recording()              # calls, unauthorized, _failures, _cond
            super().__init__(_make_handler(self), "stub-thing", host, port)

Every call is recorded per method (failed ones too) under ``_cond``, a condition
variable that :meth:`~RecordingStub.wait_for` waits on, so tests never poll.
Scripted failures are queued per method and taken, in order, by the handler with
:meth:`~RecordingStub._next_failure`; a failure whose ``status`` is ``None``
means "close the connection without answering".
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, ClassVar

from stubs.loopback import QuietHandler


@dataclass
class RecordedCall:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]  # lower-cased names
    status: int = 200  # HTTP status the stub answered (0 = connection dropped)
    response: Any = None

    @property
    def ok(self) -> bool:
        return self.status == 200


class RecordingStub:
    """Mixin: per-method call recording, scripted failure queues and ``wait_for``."""

    failure_class: ClassVar[type[Any]]  # built as ``failure_class(None)`` for a dropped connection

    calls: dict[str, list[Any]]
    unauthorized: list[str]
    _failures: dict[str, deque[Any]]
    _cond: threading.Condition

    def _init_recording(self) -> None:
        self.calls = defaultdict(list)
        self.unauthorized = []  # methods called with a missing or wrong token
        self._failures = defaultdict(deque)
        self._cond = threading.Condition()

    # -- scripting ---------------------------------------------------------------
    def disconnect_next(self, method: str, *, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` get the connection closed without a response."""
        with self._cond:
            for _ in range(times):
                self._failures[method].append(self.failure_class(None))

    def reset(self) -> None:
        with self._cond:
            self.calls.clear()
            self.unauthorized.clear()
            self._failures.clear()

    # -- inspection --------------------------------------------------------------
    def calls_of(self, method: str) -> list[Any]:
        with self._cond:
            return list(self.calls.get(method, []))

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0, *,
                 ok_only: bool = False) -> list[Any]:
        """Block until ``method`` was called ``count`` times (successful ones with ``ok_only``)."""
        def matching() -> list[Any]:
            return [c for c in self.calls.get(method, []) if c.ok or not ok_only]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(f"expected {count} {method} call(s), got {len(matching())}")
            return matching()

    # -- internals ---------------------------------------------------------------
    def _next_failure(self, method: str) -> Any | None:
        with self._cond:
            queue = self._failures.get(method)
            return queue.popleft() if queue else None

    def _record(self, call: Any) -> None:
        with self._cond:
            self.calls[call.method].append(call)
            self._cond.notify_all()


class ParamsHandler(QuietHandler):
    """A handler serving GET and POST alike through ``_handle``, with API-style parameters."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        raise NotImplementedError

    def _drop(self, stub: RecordingStub, call: Any) -> None:
        """Record ``call`` (status 0) and close the connection without answering."""
        stub._record(call)
        self.close_connection = True
        self.connection.close()

    def _params(self) -> dict[str, Any]:
        """Query parameters, updated with a JSON object body or a form-encoded body."""
        split = urllib.parse.urlsplit(self.path)
        params: dict[str, Any] = dict(urllib.parse.parse_qsl(split.query))
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if raw and ctype == "application/json":
            data = json.loads(raw.decode("utf-8"))
            if isinstance(data, dict):
                params.update(data)
        elif raw:
            params.update(urllib.parse.parse_qsl(raw.decode("utf-8")))
        return params
