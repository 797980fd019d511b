"""A stub of Hermes's API server health endpoint (loopback only).

Serves ``GET /health/detailed`` shaped exactly like hermes-agent 0.19.0's
``APIServerAdapter._handle_health_detailed`` (gateway/platforms/api_server.py),
including its Bearer-key check and 401 body::

    with StubApiServer(key="k" * 32) as api:
        api.set(gateway_state="running", platforms={"slack": "connected"})
        ... GET http://127.0.0.1:{api.port}/health/detailed
        api.requests  # recorded (path, authorization header)

``api.status``/``api.raw_body`` override the response (errors, non-JSON).
"""

from __future__ import annotations

from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from typing import Any

from stubs.loopback import LoopbackServer, QuietHandler

_UNAUTHORIZED = {"error": {"message": "Invalid API key", "type": "invalid_request_error", "code": "invalid_api_key"}}


def platform_entry(state: str | None, error_code: str | None = None, error_message: str | None = None) -> dict[str, Any]:
    """One ``platforms.<name>`` entry as gateway/status.py ``write_runtime_status`` writes it."""
    return {
        "state": state, "error_code": error_code, "error_message": error_message,
        "updated_at": datetime.now(timezone.utc).isoformat(),
    }


def health_payload(
    gateway_state: str | None = "running",
    platforms: dict[str, Any] | None = None,
    *,
    active_agents: int = 0,
    pid: int = 7,
) -> dict[str, Any]:
    """A /health/detailed body; ``platforms`` maps name -> state string or a full entry."""
    entries = {
        name: (value if isinstance(value, dict) else platform_entry(value))
        for name, value in (platforms or {}).items()
    }
    entries.setdefault("api_server", platform_entry("connected"))
    connected = sum(1 for e in entries.values() if e.get("state") == "connected")
    gw_ok = gateway_state in {"running", "draining"}
    return {
        "status": "ok" if gw_ok else "degraded",
        "readiness": {
            "status": "ok" if gw_ok else "degraded",
            "checks": {
                "state_db": {"status": "ok"},
                "config": {"status": "ok"},
                "model": {"status": "ok"},
                "disk": {"status": "ok", "used_percent": 6.2, "free_bytes": 80940728320},
                "gateway": {"status": "ok" if gw_ok else "degraded", "state": str(gateway_state or "unknown"),
                            "connected_platforms": connected, "platforms": len(entries)},
                "background_queues": {"status": "ok", "active_api_runs": 0, "process_completions": 0,
                                      "active_delegations": 0},
            },
        },
        "platform": "hermes-agent",
        "version": "0.19.0",
        "gateway_state": gateway_state,
        "platforms": entries,
        "active_agents": active_agents,
        "gateway_busy": gateway_state == "running" and active_agents > 0,
        "gateway_drainable": gateway_state == "running",
        "exit_reason": None,
        "updated_at": datetime.now(timezone.utc).isoformat(),
        "pid": pid,
    }


class StubApiServer(LoopbackServer):
    def __init__(self, key: str) -> None:
        self.key = key
        self.payload: dict[str, Any] = health_payload()
        self.status: int | None = None  # force this status (body: raw_body or payload)
        self.raw_body: bytes | None = None
        self.requests: list[tuple[str, str | None]] = []
        stub = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                auth = self.headers.get("Authorization")
                stub.requests.append((self.path, auth))
                if self.path != "/health/detailed":
                    return self._send(404, {"error": "not found"})
                if auth is None or not auth.startswith("Bearer ") or auth[7:].strip() != stub.key:
                    return self._send(401, _UNAUTHORIZED)
                if stub.raw_body is not None:
                    return self._send(stub.status or 200, stub.raw_body)
                return self._send(stub.status or 200, stub.payload)

            def _send(self, status: int, body: Any) -> None:
                self.send_json(status, body, content_type="application/json; charset=utf-8")

        super().__init__(Handler, "stub-api")

    @property
    def server(self) -> ThreadingHTTPServer:
        return self._httpd

    def set(self, gateway_state: str | None = "running", platforms: dict[str, Any] | None = None, **kw: Any) -> None:
        self.payload = health_payload(gateway_state, platforms, **kw)
