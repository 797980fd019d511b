"""Health probe of the Hermes gateway: is the agent actually reachable on its chat platforms?

Used as the ECS container health check (``python -m hermes_aws.health``: exit 0
healthy, 1 unhealthy) and every 60 s by the gateway monitor, which logs the
result so that the construct's ``UnhealthyProbes`` metric exists (ECS does
not log health-check output). Prints one JSON line::

    {"event": "health", "healthy": false, "reason": "slack retrying for 312s (grace 300s)", ...}

What is probed (checked in hermes-agent 0.19.0)
-----------------------------------------------
``GET http://$API_SERVER_HOST:$API_SERVER_PORT/health/detailed`` with
``Authorization: Bearer $API_SERVER_KEY``; a wrong key gets 401
(``api_server.py`` ``_check_auth``). The payload is built from
``$HERMES_HOME/gateway_state.json`` (``gateway/status.py``)::

    {"status": "ok"|"degraded", "readiness": {...}, "gateway_state": "running",
     "platforms": {"slack": {"state": "connected", "error_code": null,
                             "error_message": null, "updated_at": "..."}, ...},
     "active_agents": 0, "gateway_busy": false, "gateway_drainable": true,
     "exit_reason": null, "updated_at": "...", "pid": 7, ...}

``gateway_state`` values written by ``gateway/run.py``: ``starting`` (boot),
``running``, ``degraded`` (startup found no platform connected; immediately
followed by ``running``), ``draining`` (shutdown, external drain),
``startup_failed``, ``stopped``; after a SIGTERM it persists ``running`` again
(for s6's auto-start), so the file on EFS outlives the process. Platform
``state`` values: ``connecting``, ``connected``, ``retrying``, ``fatal``,
``paused``, ``disabled``, ``disconnected`` (written on shutdown). The API
server reports itself as platform ``api_server``.

Verdict
-------
* Unhealthy at once: API server unreachable, non-200 (401 = wrong key), not a
  JSON object, ``gateway_state`` ``startup_failed``/``stopped``/missing/unknown.
* ``running``: fine. ``starting``/``degraded``/``draining``: transitional,
  tolerated for the grace period, then unhealthy.
* Every platform in ``HERMES_AWS_PLATFORMS`` must be ``connected``; any other
  state, or no entry at all, is tolerated for ``HERMES_AWS_PLATFORM_GRACE_SECONDS``
  (default 300) from the first probe that saw it down, then unhealthy. When it
  is connected again the clock resets. First-seen-down times live in a small
  state file (``HERMES_AWS_HEALTH_STATE``, default ``/tmp/hermes-aws-health.json``,
  container-local so a new task starts clean) written atomically under a lock,
  shared by the ECS check and the monitor.
* The readiness ``status`` (state.db, config, disk) is reported, not judged:
  replacing the task does not repair a disk or a database on EFS.
* While a secret still holds the library's placeholder the gateway is not
  started (see :mod:`hermes_aws.gateway`); the result is ``healthy: false``
  with ``waiting_for_secrets: true`` and the CLI exits **0**: a new task would
  read the same placeholder, and failing the check would make the deployment
  circuit breaker roll back the very first deploy, before anyone could fill
  the secrets in. The monitor's log lines still count as unhealthy.

Standard library only, so a probe starts fast.
"""

from __future__ import annotations

import argparse
import fcntl
import http.client
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_aws.events import emit, short
from hermes_aws.fsutil import atomic_write
from hermes_aws.placeholders import describe as describe_placeholders
from hermes_aws.placeholders import find_placeholders

HEALTH_PATH = "/health/detailed"
PLATFORMS_ENV = "HERMES_AWS_PLATFORMS"
GRACE_ENV = "HERMES_AWS_PLATFORM_GRACE_SECONDS"
STATE_ENV = "HERMES_AWS_HEALTH_STATE"
DEFAULT_GRACE = 300
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8642
DEFAULT_STATE_FILE = "/tmp/hermes-aws-health.json"
DEFAULT_TIMEOUT = 5.0

RUNNING_STATES = frozenset({"running"})
TRANSITIONAL_STATES = frozenset({"starting", "degraded", "draining"})
CONNECTED = "connected"
_GATEWAY_KEY = "gateway"  # key of the gateway itself in the state file


@dataclass
class HealthResult:
    healthy: bool
    reason: str
    gateway_state: str | None = None
    platforms: dict[str, str | None] = field(default_factory=dict)
    readiness: str | None = None
    waiting_for_secrets: bool = False

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy or self.waiting_for_secrets else 1

    def event_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "healthy": self.healthy, "reason": self.reason,
            "gateway_state": self.gateway_state, "platforms": self.platforms,
            "readiness": self.readiness,
        }
        if self.waiting_for_secrets:
            fields["waiting_for_secrets"] = True
        return fields


def probe(
    environ: Mapping[str, str] | None = None,
    *,
    now: float | None = None,
    state_path: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> HealthResult:
    """Probe the gateway once. Never raises for anything the gateway does."""
    env = os.environ if environ is None else environ
    now = time.time() if now is None else now

    waiting = find_placeholders(env)
    if waiting:
        return HealthResult(False, describe_placeholders(waiting, brief=True), waiting_for_secrets=True)

    key = env.get("API_SERVER_KEY", "")
    if not key:
        return HealthResult(False, "API_SERVER_KEY is not set: cannot authenticate to the API server")
    host = _connect_host(env.get("API_SERVER_HOST", "").strip() or DEFAULT_HOST)
    try:
        port = int(env.get("API_SERVER_PORT", "").strip() or DEFAULT_PORT)
    except ValueError:
        return HealthResult(False, f"API_SERVER_PORT={env.get('API_SERVER_PORT')!r} is not a port number")

    try:
        status, body = _get(host, port, key, timeout)
    except (OSError, http.client.HTTPException) as exc:
        return HealthResult(False, short(f"API server unreachable at {host}:{port}: {type(exc).__name__}: {exc}"))
    if status == 401:
        return HealthResult(False, "API server answered 401: API_SERVER_KEY does not match the gateway's key")
    if status != 200:
        return HealthResult(False, f"API server answered HTTP {status} on {HEALTH_PATH}")
    try:
        payload = json.loads(body)
    except ValueError:
        return HealthResult(False, f"API server answered non-JSON on {HEALTH_PATH}")
    if not isinstance(payload, dict):
        return HealthResult(False, f"API server answered a JSON {type(payload).__name__}, not an object")

    return evaluate(
        payload,
        platforms=platforms_from_env(env),
        grace=grace_from_env(env),
        now=now,
        state_path=state_path or Path(env.get(STATE_ENV) or DEFAULT_STATE_FILE),
    )


def evaluate(
    payload: Mapping[str, Any],
    *,
    platforms: list[str],
    grace: float,
    now: float,
    state_path: Path,
) -> HealthResult:
    """Judge a ``/health/detailed`` payload, updating the first-seen-down times."""
    gw_state = payload.get("gateway_state")
    gw_state = gw_state if isinstance(gw_state, str) else None
    reported = payload.get("platforms")
    reported = reported if isinstance(reported, Mapping) else {}
    readiness = payload.get("status") if isinstance(payload.get("status"), str) else None

    states: dict[str, str | None] = {}
    for name in platforms:
        info = reported.get(name)
        state = info.get("state") if isinstance(info, Mapping) else None
        states[name] = state if isinstance(state, str) else None

    failures: list[str] = []
    tolerated: list[str] = []
    with _StateFile(state_path) as down_since:
        # The gateway itself.
        if gw_state in RUNNING_STATES:
            down_since.pop(_GATEWAY_KEY, None)
        elif gw_state in TRANSITIONAL_STATES:
            _judge(down_since, _GATEWAY_KEY, f"gateway {gw_state}", now, grace, failures, tolerated)
        else:
            down_since.pop(_GATEWAY_KEY, None)
            failures.append(f"gateway_state is {gw_state or 'missing'}")
        # Each required platform.
        for name, state in states.items():
            if state == CONNECTED:
                down_since.pop(name, None)
            else:
                label = f"{name} {state}" if state else f"{name} not reported"
                _judge(down_since, name, label, now, grace, failures, tolerated)
        # Forget platforms that are no longer required.
        for name in [k for k in down_since if k != _GATEWAY_KEY and k not in states]:
            down_since.pop(name)

    result = HealthResult(
        healthy=not failures,
        reason="; ".join(failures) if failures else "ok",
        gateway_state=gw_state,
        platforms=states,
        readiness=readiness,
    )
    if tolerated:
        result.reason += "; within grace: " + "; ".join(tolerated)
    result.reason = short(result.reason)
    return result


def _judge(
    down_since: dict[str, float], key: str, label: str, now: float, grace: float,
    failures: list[str], tolerated: list[str],
) -> None:
    first = down_since.setdefault(key, now)
    elapsed = max(0.0, now - first)
    text = f"{label} for {elapsed:.0f}s (grace {grace:.0f}s)"
    (failures if elapsed >= grace else tolerated).append(text)


def platforms_from_env(environ: Mapping[str, str]) -> list[str]:
    names = [p.strip().lower() for p in (environ.get(PLATFORMS_ENV) or "").split(",")]
    return list(dict.fromkeys(p for p in names if p))


def grace_from_env(environ: Mapping[str, str]) -> float:
    raw = (environ.get(GRACE_ENV) or "").strip()
    try:
        value = float(raw) if raw else DEFAULT_GRACE
    except ValueError:
        value = DEFAULT_GRACE
    return value if value >= 0 else DEFAULT_GRACE


def _connect_host(host: str) -> str:
    # A wildcard bind is reachable on loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(host, host.strip("[]"))


def _get(host: str, port: int, key: str, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", HEALTH_PATH, headers={
            "Authorization": f"Bearer {key}", "Accept": "application/json",
            "User-Agent": "hermes-aws-health",
        })
        resp = conn.getresponse()
        return resp.status, resp.read(1 << 20)
    finally:
        conn.close()


class _StateFile:
    """``{"down_since": {name: epoch}}`` read and written atomically under an exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_fd: int | None = None
        self.data: dict[str, float] = {}

    def __enter__(self) -> dict[str, float]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8")).get("down_since", {})
            self.data = {k: float(v) for k, v in raw.items() if isinstance(v, (int, float))}
        except (OSError, ValueError, AttributeError):
            self.data = {}
        return self.data

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                payload = json.dumps({"version": 1, "down_since": self.data}).encode("utf-8")
                atomic_write(self.path, payload, suffix="", fsync=False)
        finally:
            if self.lock_fd is not None:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
                os.close(self.lock_fd)
                self.lock_fd = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hermes_aws.health",
        description="Probe the Hermes gateway's /health/detailed; exit 0 healthy, 1 unhealthy.",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="HTTP timeout in seconds")
    args = parser.parse_args(argv)
    try:
        result = probe(timeout=args.timeout)
    except Exception as exc:  # e.g. an unwritable state file: say so, count as unhealthy
        result = HealthResult(False, short(f"health probe failed: {type(exc).__name__}: {exc}"))
    emit("health", **result.event_fields())
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
