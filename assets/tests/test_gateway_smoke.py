"""Smoke test: the real entrypoint execs the real `hermes gateway run --no-supervise` (loopback only).

No chat platform (Slack would need the internet): Hermes runs with only its API
server, which is what the health check talks to. Checks the things no stub can:
the real /health/detailed payload and auth, exec keeping the PID, the stale
status reset, the monitor following the gateway, and the exit code on SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from hermes_aws import health

API_KEY = "smoke-test-api-server-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_detailed(port: int, key: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health/detailed", headers={"Authorization": f"Bearer {key}"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_real_gateway_is_healthy_and_stops_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "data" / "hermes"
    home.mkdir(parents=True)
    # What a previous task left on EFS: a "connected" platform this task will not start.
    (home / "gateway_state.json").write_text(json.dumps({
        "pid": 7, "kind": "hermes-gateway", "gateway_state": "running",
        "platforms": {"telegram": {"state": "connected"}},
    }))
    port = free_port()
    settings = {
        "version": 1,
        "config": {
            "model": {"provider": "custom", "default": "stub", "base_url": "http://127.0.0.1:9/v1",
                      "api_key": "${HERMES_MODEL_API_KEY}"},
            "terminal": {"backend": "local", "cwd": str(home)},
            "agent": {"restart_drain_timeout": 5},
            "security": {"redact_secrets": True, "allow_lazy_installs": False},
        },
        "soul": "You are a smoke test.",
        "projectContext": "Nothing to see.",
        "secretEnv": ["HERMES_MODEL_API_KEY"],
    }
    user_home = tmp_path / "user"
    user_home.mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(user_home),
        "XDG_STATE_HOME": str(user_home / ".local" / "state"),
        "XDG_CACHE_HOME": str(user_home / ".cache"),
        "XDG_CONFIG_HOME": str(user_home / ".config"),
        "HERMES_HOME": str(home),
        "HERMES_AWS_SETTINGS": json.dumps(settings),
        "HERMES_AWS_PLATFORMS": "",
        "HERMES_AWS_HEALTH_STATE": str(tmp_path / "health.json"),
        "HERMES_MODEL_API_KEY": "sk-smoke-not-a-real-key",
        "HERMES_DISABLE_LAZY_INSTALLS": "1",
        "TIRITH_ENABLED": "false",  # else Hermes downloads its scanner from GitHub at start
        "API_SERVER_ENABLED": "true",
        "API_SERVER_HOST": "127.0.0.1",
        "API_SERVER_PORT": str(port),
        "API_SERVER_KEY": API_KEY,
        "PYTHONUNBUFFERED": "1",
        "HERMES_AWS_GATEWAY_ID": "Smoke/Gateway",
    }
    stderr = (tmp_path / "gateway.err").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "hermes_aws.gateway"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        deadline = time.monotonic() + 60
        result = health.probe(env)
        while not result.healthy and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.25)
            result = health.probe(env)
        assert result.healthy, f"{result.reason}\n{(tmp_path / 'gateway.err').read_text()[-3000:]}"
        assert result.gateway_state == "running"

        status, payload = get_detailed(port, API_KEY)
        assert status == 200
        assert payload["pid"] == proc.pid  # exec replaced the entrypoint: same PID, ECS signals reach Hermes
        assert payload["platforms"]["api_server"]["state"] == "connected"
        assert "telegram" not in payload["platforms"]  # the previous task's status was reset
        assert get_detailed(port, "wrong-key")[0] == 401

        cli = subprocess.run([sys.executable, "-m", "hermes_aws.health"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert json.loads(cli.stdout)["healthy"] is True

        # start() logs this as its last step; a SIGTERM before it ends startup with exit 0.
        log = home / "logs" / "gateway.log"
        while "Press Ctrl+C to stop" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "gateway startup did not finish"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        assert code == 1  # Hermes: a signal it did not plan -> exit 1 (service managers restart it)
        out = proc.stdout.read() if proc.stdout else ""  # EOF: the monitor has exited too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert "monitor_started" in kinds
    assert events[-1]["event"] == "monitor_stopped" and events[-1]["reason"] == "gateway exited"
    assert all(e.get("gateway") == "Smoke/Gateway" for e in events)
