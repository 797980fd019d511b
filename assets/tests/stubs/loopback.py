"""What every loopback stub server shares: the server lifecycle and the quiet JSON handler.

    class StubThing(LoopbackServer):
        def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
            self.calls = []                     # state the handler reads: set it first
            super().__init__(_make_handler(self), "stub-thing", host, port)

        @property
        def base_url(self) -> str:
            return self.origin + "/v1"

    with StubThing() as stub:                   # or stub.start() ... stub.stop()
        ... stub.origin, stub.port, stub.address

The socket is bound when the object is created, so the port is known before
:meth:`~LoopbackServer.start`. Requests are served from daemon threads, so a
test that forgets :meth:`~LoopbackServer.stop` cannot hang the interpreter.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

POLL_INTERVAL = 0.05  # seconds: how quickly shutdown() is noticed
JOIN_TIMEOUT = 5.0


class LoopbackServer:
    """A ``ThreadingHTTPServer`` (daemon request threads) served from a daemon thread named ``name``."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler], name: str,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self._httpd = ThreadingHTTPServer((host, port), handler_class)
        self._httpd.daemon_threads = True
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the server is bound to."""
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def origin(self) -> str:
        """``http://host:port`` (no trailing slash)."""
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self._name,
                                        kwargs={"poll_interval": POLL_INTERVAL}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the serving thread."""
        if self._thread is not None:  # shutdown() would wait forever for a loop that never ran
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output clean and can answer with JSON."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_bytes(self, status: int, data: bytes, *, content_type: str,
                   headers: dict[str, str] | None = None) -> None:
        """Answer ``status`` with ``data``: Content-Type, Content-Length, then ``headers``."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None, *,
                  content_type: str = "application/json") -> None:
        """Answer ``status`` with ``payload`` serialised as JSON (bytes are sent as they are)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_bytes(status, data, content_type=content_type, headers=headers)
