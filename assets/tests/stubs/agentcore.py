"""Running :mod:`hermes_aws.agentcore_app` on loopback in tests, and talking to it.

* :class:`AppProcess` - ``python -m hermes_aws.agentcore_app`` as a child process
  (the container's entry point), bound to 127.0.0.1 on a free port, with the
  test's environment (minus what must come from Secrets Manager) and a
  ``HERMES_HOME`` of its own, like a fresh microVM. :meth:`AppProcess.stop`
  sends SIGTERM, as AgentCore does when a session ends.
* :class:`InProcessApp` - the same app served by uvicorn from a thread of the
  test process, for tests that look inside (:class:`~hermes_aws.agentcore_app.AgentProcess`).
* :func:`ping`, :func:`invoke` - plain HTTP, as the data plane talks to the container.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hermes_aws.agentcore_contract import request_payload, runtime_session_id

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
#: environment the app must find in Secrets Manager, never inherit
SECRET_ENV = ("STUB_MODEL_API_KEY",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(origin: str, timeout: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(f"{origin}/ping", timeout=timeout) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def invoke(origin: str, body: dict[str, Any], *, chat: str = "telegram:1", timeout: float = 120.0,
           payload: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """POST /invocations as the data plane forwards it: (status, JSON answer)."""
    request = urllib.request.Request(
        f"{origin}/invocations", data=payload if payload is not None else request_payload(body), method="POST",
        headers={"Content-Type": "application/json", SESSION_HEADER: runtime_session_id(chat)})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_healthy(origin: str, timeout: float = 120.0, alive: Any = None) -> dict[str, Any]:
    """Poll /ping until it says ``Healthy`` (not busy); ``alive()`` False aborts."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError("the app process exited")
        try:
            last = ping(origin, timeout=2.0)
            if last.get("status") == "Healthy":
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"the app did not become healthy: {last!r}")


class AppProcess:
    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        base = dict(os.environ if env is None else env)
        for name in SECRET_ENV:
            base.pop(name, None)
        home.parent.mkdir(parents=True, exist_ok=True)
        base.update({
            "HERMES_HOME": str(home), "HOME": str(home.parent), "TERMINAL_CWD": str(home.parent),
            "HERMES_AWS_AGENTCORE_HOST": "127.0.0.1", "HERMES_AWS_AGENTCORE_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        })
        self.log = home.parent / "app.log"
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "hermes_aws.agentcore_app"], env=base,
                                     cwd=home.parent, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_healthy(self, timeout: float = 120.0) -> dict[str, Any]:
        try:
            return wait_healthy(self.origin, timeout, alive=self.alive)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}; log:\n{self.output()[-4000:]}") from None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (AgentCore ending the session); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return int(self.proc.returncode)

    def __enter__(self) -> AppProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InProcessApp:
    """``create_app(process)`` served by uvicorn on 127.0.0.1 from a daemon thread."""

    def __init__(self, process: Any) -> None:
        import uvicorn

        from hermes_aws.agentcore_app import create_app

        self.process = process
        self.port = free_port()
        config = uvicorn.Config(create_app(process), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="agentcore-app", daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> InProcessApp:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.wait_idle()
        self.server.should_exit = True
        self.thread.join(10)
