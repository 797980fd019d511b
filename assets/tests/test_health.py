"""Tests for hermes_aws.health against a stub of Hermes's /health/detailed (loopback only)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hermes_aws import health
from hermes_aws.placeholders import PLACEHOLDER
from stubs.api_server import StubApiServer, platform_entry

KEY = "k3y-for-the-loopback-api-server-0123456789"
GRACE = 300


@pytest.fixture
def api(loopback_only: list[str]) -> Iterator[StubApiServer]:
    with StubApiServer(KEY) as stub:
        yield stub


def env_for(port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "API_SERVER_HOST": "127.0.0.1",
        "API_SERVER_PORT": str(port),
        "API_SERVER_KEY": KEY,
        "HERMES_AWS_PLATFORMS": "slack",
        "HERMES_AWS_PLATFORM_GRACE_SECONDS": str(GRACE),
        "HERMES_AWS_HEALTH_STATE": str(tmp_path / "health-state.json"),
    }
    env.update(extra)
    return env


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- verdicts


def test_healthy_when_running_and_slack_connected(api: StubApiServer, tmp_path: Path) -> None:
    api.set("running", {"slack": "connected"})
    result = health.probe(env_for(api.port, tmp_path), now=1000.0)
    assert result.healthy and result.exit_code == 0
    assert result.reason == "ok"
    assert result.gateway_state == "running"
    assert result.platforms == {"slack": "connected"}
    assert result.readiness == "ok"
    assert api.requests == [("/health/detailed", f"Bearer {KEY}")]


def test_platform_down_is_tolerated_within_grace_then_unhealthy(api: StubApiServer, tmp_path: Path) -> None:
    env = env_for(api.port, tmp_path)
    api.set("running", {"slack": platform_entry("retrying", "network", "socket closed")})

    first = health.probe(env, now=1000.0)
    assert first.healthy, first.reason
    assert first.reason == "ok; within grace: slack retrying for 0s (grace 300s)"

    almost = health.probe(env, now=1000.0 + GRACE - 1)
    assert almost.healthy, almost.reason

    late = health.probe(env, now=1000.0 + GRACE)
    assert not late.healthy and late.exit_code == 1
    assert late.reason == "slack retrying for 300s (grace 300s)"
    assert late.platforms == {"slack": "retrying"}


def test_reconnect_resets_the_grace_clock(api: StubApiServer, tmp_path: Path) -> None:
    env = env_for(api.port, tmp_path)
    api.set("running", {"slack": "retrying"})
    health.probe(env, now=1000.0)
    api.set("running", {"slack": "connected"})
    assert health.probe(env, now=1200.0).healthy
    api.set("running", {"slack": "connecting"})
    again = health.probe(env, now=1400.0)  # 400 s after the first outage began, 0 s into this one
    assert again.healthy, again.reason
    assert "slack connecting for 0s" in again.reason
    assert not health.probe(env, now=1400.0 + GRACE).healthy


@pytest.mark.parametrize("state", ["fatal", "paused", "disabled", "disconnected"])
def test_every_not_connected_state_counts_as_down(api: StubApiServer, tmp_path: Path, state: str) -> None:
    env = env_for(api.port, tmp_path)
    api.set("running", {"slack": state})
    assert health.probe(env, now=0.0).healthy
    result = health.probe(env, now=float(GRACE))
    assert not result.healthy
    assert result.reason.startswith(f"slack {state} for")


def test_platform_missing_from_payload_counts_as_not_connected(api: StubApiServer, tmp_path: Path) -> None:
    env = env_for(api.port, tmp_path, HERMES_AWS_PLATFORMS="slack,telegram")
    api.set("running", {"slack": "connected"})  # no telegram entry at all
    assert health.probe(env, now=0.0).healthy
    result = health.probe(env, now=float(GRACE) + 5)
    assert not result.healthy
    assert result.reason == "telegram not reported for 305s (grace 300s)"
    assert result.platforms == {"slack": "connected", "telegram": None}


def test_no_required_platforms_only_checks_the_gateway(api: StubApiServer, tmp_path: Path) -> None:
    api.set("running", {})
    assert health.probe(env_for(api.port, tmp_path, HERMES_AWS_PLATFORMS=""), now=0.0).healthy


@pytest.mark.parametrize("state", ["startup_failed", "stopped", None, "exploded"])
def test_failed_gateway_states_are_unhealthy_at_once(api: StubApiServer, tmp_path: Path, state: str | None) -> None:
    api.set(state, {"slack": "connected"})
    result = health.probe(env_for(api.port, tmp_path), now=0.0)
    assert not result.healthy
    assert result.reason == f"gateway_state is {state or 'missing'}"  # slack is connected: nothing else


@pytest.mark.parametrize("state", ["starting", "degraded", "draining"])
def test_transitional_gateway_states_get_the_grace_period(api: StubApiServer, tmp_path: Path, state: str) -> None:
    env = env_for(api.port, tmp_path)
    api.set(state, {"slack": "connected"})
    assert health.probe(env, now=50.0).healthy
    result = health.probe(env, now=50.0 + GRACE)
    assert not result.healthy
    assert result.reason == f"gateway {state} for 300s (grace 300s)"


def test_unreachable_api_server_is_unhealthy(tmp_path: Path, loopback_only: list[str]) -> None:
    result = health.probe(env_for(free_port(), tmp_path), now=0.0)
    assert not result.healthy
    assert result.reason.startswith("API server unreachable at 127.0.0.1:")
    assert "ConnectionRefusedError" in result.reason


def test_wrong_key_is_unhealthy(api: StubApiServer, tmp_path: Path) -> None:
    api.set("running", {"slack": "connected"})
    result = health.probe(env_for(api.port, tmp_path, API_SERVER_KEY="not-the-key"), now=0.0)
    assert not result.healthy
    assert "401" in result.reason and "API_SERVER_KEY" in result.reason


def test_missing_key_is_unhealthy_without_a_request(api: StubApiServer, tmp_path: Path) -> None:
    result = health.probe(env_for(api.port, tmp_path, API_SERVER_KEY=""), now=0.0)
    assert not result.healthy and "API_SERVER_KEY is not set" in result.reason
    assert api.requests == []


@pytest.mark.parametrize(("status", "body", "reason"), [
    (500, b'{"error": "boom"}', "API server answered HTTP 500"),
    (200, b"<html>nope</html>", "non-JSON"),
    (200, b"[1, 2]", "a JSON list, not an object"),
])
def test_bad_responses_are_unhealthy(api: StubApiServer, tmp_path: Path, status: int, body: bytes, reason: str) -> None:
    api.status, api.raw_body = status, body
    result = health.probe(env_for(api.port, tmp_path), now=0.0)
    assert not result.healthy
    assert reason in result.reason


def test_placeholder_secret_means_waiting_not_failing(api: StubApiServer, tmp_path: Path) -> None:
    env = env_for(api.port, tmp_path, SLACK_BOT_TOKEN=PLACEHOLDER, SLACK_APP_TOKEN="xapp-1")
    result = health.probe(env, now=0.0)
    assert not result.healthy and result.waiting_for_secrets
    assert result.exit_code == 0  # ECS must not replace the task: a new one reads the same secret
    assert "SLACK_BOT_TOKEN" in result.reason and "SLACK_APP_TOKEN" not in result.reason
    assert api.requests == []


def test_wildcard_bind_is_probed_on_loopback(api: StubApiServer, tmp_path: Path) -> None:
    api.set("running", {"slack": "connected"})
    assert health.probe(env_for(api.port, tmp_path, API_SERVER_HOST="0.0.0.0"), now=0.0).healthy


def test_platforms_and_grace_parsing() -> None:
    assert health.platforms_from_env({"HERMES_AWS_PLATFORMS": " Slack, telegram,,slack "}) == ["slack", "telegram"]
    assert health.platforms_from_env({}) == []
    assert health.grace_from_env({}) == 300
    assert health.grace_from_env({"HERMES_AWS_PLATFORM_GRACE_SECONDS": "60"}) == 60
    assert health.grace_from_env({"HERMES_AWS_PLATFORM_GRACE_SECONDS": "soon"}) == 300
    assert health.grace_from_env({"HERMES_AWS_PLATFORM_GRACE_SECONDS": "-1"}) == 300


def test_state_file_is_written_atomically_and_forgets_dropped_platforms(api: StubApiServer, tmp_path: Path) -> None:
    env = env_for(api.port, tmp_path, HERMES_AWS_PLATFORMS="slack,discord")
    api.set("starting", {"slack": "retrying", "discord": "connecting"})
    health.probe(env, now=10.0)
    state = json.loads((tmp_path / "health-state.json").read_text())
    assert state["down_since"] == {"gateway": 10.0, "slack": 10.0, "discord": 10.0}
    api.set("running", {"slack": "retrying"})
    health.probe(env_for(api.port, tmp_path, HERMES_AWS_PLATFORMS="slack"), now=20.0)
    state = json.loads((tmp_path / "health-state.json").read_text())
    assert state["down_since"] == {"slack": 10.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["health-state.json", "health-state.json.lock"]


def test_payload_written_by_hermes_own_status_module(
    api: StubApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The states we judge are the strings Hermes's gateway/status.py actually persists."""
    from gateway.status import read_runtime_status, write_runtime_status

    monkeypatch.setenv("HERMES_HOME", str(tmp_path / "hermes"))
    (tmp_path / "hermes").mkdir()
    write_runtime_status(gateway_state="running")
    write_runtime_status(platform="slack", platform_state="connected")
    write_runtime_status(platform="telegram", platform_state="retrying", error_code="network")
    runtime = read_runtime_status()
    assert runtime is not None
    api.payload = {"status": "ok", "gateway_state": runtime["gateway_state"], "platforms": runtime["platforms"]}

    env = env_for(api.port, tmp_path, HERMES_AWS_PLATFORMS="slack,telegram")
    assert health.probe(env, now=0.0).platforms == {"slack": "connected", "telegram": "retrying"}
    assert not health.probe(env, now=float(GRACE)).healthy


# --------------------------------------------------------------------------- CLI


def run_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("API_SERVER_", "HERMES_"))}
    full.update(env)
    full.setdefault("HERMES_AWS_GATEWAY_ID", "Agents/Gateway")
    return subprocess.run(
        [sys.executable, "-m", "hermes_aws.health", "--timeout", "3"],
        env=full, capture_output=True, text=True, timeout=30,
    )


def test_cli_exit_codes_and_one_json_line(api: StubApiServer, tmp_path: Path) -> None:
    api.set("running", {"slack": "connected"})
    ok = run_cli(env_for(api.port, tmp_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (line,) = ok.stdout.splitlines()
    event = json.loads(line)
    assert event["event"] == "health" and event["healthy"] is True and event["reason"] == "ok"
    assert event["gateway"] == "Agents/Gateway"  # the construct's metric dimension

    api.set("startup_failed", {"slack": "fatal"})
    bad = run_cli(env_for(api.port, tmp_path))
    assert bad.returncode == 1
    (line,) = bad.stdout.splitlines()
    event = json.loads(line)
    assert event["healthy"] is False
    assert event["reason"] == "gateway_state is startup_failed; within grace: slack fatal for 0s (grace 300s)"

    down = run_cli(env_for(free_port(), tmp_path))
    assert down.returncode == 1
    assert json.loads(down.stdout)["healthy"] is False

    waiting = run_cli(env_for(free_port(), tmp_path, TELEGRAM_BOT_TOKEN=PLACEHOLDER))
    assert waiting.returncode == 0
    event = json.loads(waiting.stdout)
    assert event["healthy"] is False and event["waiting_for_secrets"] is True


def test_cli_reports_a_broken_state_file_as_unhealthy(api: StubApiServer, tmp_path: Path) -> None:
    api.set("running", {"slack": "connected"})
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli(env_for(api.port, tmp_path, HERMES_AWS_HEALTH_STATE=str(blocker / "state.json")))
    assert proc.returncode == 1
    event = json.loads(proc.stdout)
    assert event["healthy"] is False and event["reason"].startswith("health probe failed:")
