"""Background companion of the gateway: knowledge sync loop + logged health probes.

Started by :mod:`hermes_aws.gateway` just before it execs Hermes, detached by a
double fork so that it is *not* a child of the Hermes process (Hermes would
never reap it): it is re-parented to PID 1, which in the task is ECS's init
process (tini) and reaps it. It lives exactly as long as the gateway:

* every second it checks that the gateway process (PID + start time, so a
  reused PID is not mistaken for it) still exists, and exits when it does not;
* in the task, when Hermes exits, tini exits and the kernel ends every other
  process of the container, so the monitor can never keep the task alive.

What it does meanwhile:

* every ``HERMES_AWS_KNOWLEDGE_SYNC_SECONDS`` (default 900) one knowledge sync
  (the entrypoint already did the first one; with ``--sync-now``, because that
  one ran out of time, the first is immediate), in a thread so that a slow sync
  does not delay the probes; no bucket, no sync;
* every 60 s one health probe, logged as ``{"event": "health", ...}``. Like the
  ECS health check's start period (180 s), unhealthy results are not logged
  until the gateway has been healthy once or the start period is over, so a
  normal boot (imports, MCP discovery) does not count as unhealthy.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from hermes_aws import health, knowledge_sync
from hermes_aws.events import emit, short

logger = logging.getLogger(__name__)

HEALTH_INTERVAL = 60.0
START_PERIOD = 180.0  # same as the construct's container health check
WATCH_INTERVAL = 1.0


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(")") + 2:].split()
    try:
        return int(fields[19])  # field 22 overall; fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start_time: int | None = None) -> bool:
    """Whether ``pid`` exists, is not a zombie and (if given) started at ``start_time``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return False
    except OSError:
        raw = ""
    if raw:
        fields = raw[raw.rfind(")") + 2:].split()
        if fields and fields[0] in ("Z", "X"):
            return False
        if start_time is not None and len(fields) > 19 and fields[19] != str(start_time):
            return False
        return True
    try:  # no /proc: fall back to a signal-0 probe
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Monitor:
    def __init__(
        self,
        *,
        gateway_pid: int,
        gateway_start_time: int | None,
        environ: Mapping[str, str],
        health_interval: float = HEALTH_INTERVAL,
        start_period: float = START_PERIOD,
        watch_interval: float = WATCH_INTERVAL,
        probe: Callable[[], health.HealthResult] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sync_now: bool = False,
    ) -> None:
        self.gateway_pid = gateway_pid
        self.gateway_start_time = gateway_start_time
        self.env = environ
        self.health_interval = health_interval
        self.start_period = start_period
        self.watch_interval = watch_interval
        self.probe = probe or (lambda: health.probe(self.env))
        self.clock = clock
        self.sync_now = sync_now
        self.stop = threading.Event()
        self.started = clock()
        self.seen_healthy = False

    def gateway_alive(self) -> bool:
        return process_alive(self.gateway_pid, self.gateway_start_time)

    def start_sync_thread(self) -> threading.Thread | None:
        bucket = (self.env.get(knowledge_sync.BUCKET_ENV) or "").strip()
        home = self.env.get("HERMES_HOME")
        if not bucket or not home:
            logger.info("no knowledge bucket configured; the monitor does not sync")
            return None
        interval = knowledge_sync.interval_from_env(self.env)
        thread = threading.Thread(
            target=knowledge_sync.run_loop,
            args=(lambda: knowledge_sync.sync_once(bucket, Path(home)), interval),
            kwargs={"initial_delay": 0 if self.sync_now else interval, "stop": self.stop},
            name="knowledge-sync", daemon=True,
        )
        thread.start()
        return thread

    def probe_once(self) -> None:
        try:
            result = self.probe()
        except Exception as exc:
            result = health.HealthResult(False, short(f"health probe failed: {type(exc).__name__}: {exc}"))
        if result.healthy:
            self.seen_healthy = True
        elif not self.seen_healthy and self.clock() - self.started < self.start_period:
            logger.info("gateway not healthy yet (start period): %s", result.reason)
            return
        emit("health", **result.event_fields())

    def run(self) -> str:
        """Run until the gateway is gone or :attr:`stop` is set; return why it stopped."""
        emit("monitor_started", pid=os.getpid(), ppid=os.getppid(), gateway_pid=self.gateway_pid)
        self.start_sync_thread()
        next_probe = self.clock() + min(self.health_interval, self.start_period)
        reason = "stopped"
        while not self.stop.is_set():
            if not self.gateway_alive():
                reason = "gateway exited"
                break
            if self.clock() >= next_probe:
                self.probe_once()
                next_probe = self.clock() + self.health_interval
            self.stop.wait(self.watch_interval)
        self.stop.set()
        emit("monitor_stopped", reason=reason, gateway_pid=self.gateway_pid)
        return reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hermes_aws.gateway_monitor")
    parser.add_argument("--gateway-pid", type=int, required=True)
    parser.add_argument("--gateway-start-time", type=int)
    parser.add_argument("--health-interval", type=float, default=HEALTH_INTERVAL)
    parser.add_argument("--start-period", type=float, default=START_PERIOD)
    parser.add_argument("--watch-interval", type=float, default=WATCH_INTERVAL)
    parser.add_argument("--sync-now", action="store_true", help="first sync at once (the entrypoint's was cut short)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    monitor = Monitor(
        gateway_pid=args.gateway_pid, gateway_start_time=args.gateway_start_time,
        environ=os.environ, health_interval=args.health_interval,
        start_period=args.start_period, watch_interval=args.watch_interval, sync_now=args.sync_now,
    )
    signal.signal(signal.SIGTERM, lambda *_: monitor.stop.set())
    monitor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
