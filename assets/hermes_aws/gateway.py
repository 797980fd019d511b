"""Entrypoint of the Fargate gateway image: ``python -m hermes_aws.gateway``.

Steps, in order (each a function so the tests can run them one by one):

1. **Configuration** (:func:`load_configuration`): read the settings document
   (``HERMES_AWS_SETTINGS``/``_S3``) and render ``HERMES_HOME`` with
   :func:`hermes_aws.home.prepare_home`; check ``HERMES_AWS_PLATFORMS`` and that
   each platform's token and ``API_SERVER_KEY`` are set. Any problem is a
   deployment bug: one clear line on stderr and exit **78** (EX_CONFIG, also
   what Hermes uses for fatal config errors), so the task stops, the stopped
   task shows exit code 78 and the deployment circuit breaker rolls back.
2. **Placeholder secrets** (:func:`hermes_aws.placeholders.find_placeholders`):
   a secret that still holds ``HERMES_PLACEHOLDER_SET_ME`` is *not* an error to
   exit on. The construct creates such secrets on purpose, to be filled in
   after the first deploy; exiting would make the circuit breaker fail that
   first deploy and CloudFormation roll the whole stack back (placeholders
   included) before anyone could fill them in. So the entrypoint logs one line
   naming each variable and how to set it, does not start Hermes, logs
   ``{"event":"health","healthy":false,"waiting_for_secrets":true,...}`` every
   60 s (so the UnhealthyProbes alarm fires) and waits for SIGTERM (exit 0).
   The container health check passes in this state (see :mod:`hermes_aws.health`).
   After ``put-secret-value``, a new deployment starts a task with the real values.
3. **Environment for Hermes** (:func:`gateway_environment`): ``TERMINAL_CWD`` =
   the directory holding ``.hermes.md`` (``PreparedHome.context_dir``), and
   ``MESSAGING_CWD`` too when ``terminal.cwd`` is a placeholder (Hermes maps a
   placeholder cwd to ``$MESSAGING_CWD`` or ``$HOME``); the process changes to
   ``HERMES_HOME`` so a relative ``terminal.cwd`` means the same to Hermes as to
   home.py. ``HERMES_GATEWAY_NO_SUPERVISE=1``.
4. **Stale runtime status** (:func:`reset_stale_runtime_status`): HERMES_HOME is
   on EFS and outlives tasks. When no live process holds Hermes's
   ``gateway.lock``, the previous gateway's ``gateway_state.json`` and
   ``gateway.pid`` are removed: Hermes merges new states into the old file, so
   a platform the new gateway never starts would otherwise keep reporting the
   old task's ``connected`` to the health check forever; and an old PID record
   that matches the new process could make Hermes refuse to start.
5. **Knowledge sync**, once (:func:`initial_sync`): failures are logged
   (``knowledge_sync`` line, ``ok: false``), never fatal. It may spend at most
   120 s downloading (a first sync of a large bucket would otherwise keep the
   API server down past the health check's 180 s start period, and ECS would
   replace the task before it ever finished); the rest is deferred to the
   monitor, which then syncs at once.
6. **Monitor** (:func:`start_monitor`): ``python -m hermes_aws.gateway_monitor``,
   detached by a double fork (see that module); if it cannot start, that is
   logged and the gateway starts anyway.
7. **Exec** (:func:`exec_hermes`): ``hermes gateway run --no-supervise`` replaces
   this process (same PID), so ECS's SIGTERM (forwarded by tini) reaches Hermes
   directly. Hermes then drains for ``agent.restart_drain_timeout`` and, for a
   signal it did not plan, exits with code 1 (0 when the signal lands while its
   startup is still finishing).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hermes_aws import home as home_mod
from hermes_aws import knowledge_sync
from hermes_aws.events import emit
from hermes_aws.gateway_monitor import process_start_time
from hermes_aws.health import PLATFORMS_ENV, platforms_from_env
from hermes_aws.placeholders import describe as describe_placeholders
from hermes_aws.placeholders import find_placeholders

logger = logging.getLogger("hermes_aws.gateway")

EX_CONFIG = 78
HERMES_COMMAND = ("hermes", "gateway", "run", "--no-supervise")
# Tokens Hermes needs per platform (plugins/platforms/*/plugin.yaml requires_env).
PLATFORM_TOKENS: dict[str, tuple[str, ...]] = {
    "slack": ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"),
    "telegram": ("TELEGRAM_BOT_TOKEN",),
    "discord": ("DISCORD_BOT_TOKEN",),
}
REQUIRED_ENV = ("API_SERVER_KEY",)
WAIT_LOG_INTERVAL = 60.0
# Seconds the first sync may spend downloading before Hermes starts: the container
# health check's start period is 180 s and Hermes needs some of it to boot.
INITIAL_SYNC_BUDGET = 120.0
_PLATFORM_NAME = re.compile(r"^[a-z0-9_]+$")
# Files Hermes writes about the running gateway (gateway/status.py).
RUNTIME_STATUS_FILES = ("gateway_state.json", "gateway.pid")


class ConfigError(ValueError):
    """The task's configuration is wrong: fix the deployment, not the task."""


@dataclass
class GatewayConfig:
    home: Path
    prepared: home_mod.PreparedHome
    settings: home_mod.Settings
    platforms: list[str]


# --------------------------------------------------------------------------- steps


def load_configuration(environ: Mapping[str, str]) -> GatewayConfig:
    """Step 1: validate the environment and render HERMES_HOME. Raises ConfigError."""
    raw_home = (environ.get("HERMES_HOME") or "").strip()
    if not raw_home:
        raise ConfigError("HERMES_HOME is not set")
    home = Path(raw_home)
    if not home.is_absolute():
        raise ConfigError(f"HERMES_HOME must be an absolute path, got {raw_home!r}")

    platforms = platforms_from_env(environ)
    bad = [p for p in platforms if not _PLATFORM_NAME.match(p)]
    if bad:
        raise ConfigError(f"{PLATFORMS_ENV} has invalid platform name(s): {', '.join(bad)}")
    missing = [
        name for p in platforms for name in PLATFORM_TOKENS.get(p, ())
        if not (environ.get(name) or "").strip()
    ] + [name for name in REQUIRED_ENV if not (environ.get(name) or "").strip()]
    if missing:
        raise ConfigError(
            f"required secret env var(s) not set: {', '.join(missing)} "
            "(the task definition must inject them from Secrets Manager)"
        )

    try:
        settings = home_mod.Settings.from_env(environ)
        prepared = home_mod.prepare_home(home, settings, environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot write HERMES_HOME {home}: {exc}") from exc
    except Exception as exc:  # e.g. botocore errors reading HERMES_AWS_SETTINGS_S3
        raise ConfigError(f"cannot load the settings: {type(exc).__name__}: {exc}") from exc
    return GatewayConfig(home=prepared.home, prepared=prepared, settings=settings, platforms=platforms)


def gateway_environment(config: GatewayConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """Step 3: the environment Hermes runs with."""
    env = dict(environ)
    env["HERMES_HOME"] = str(config.home)
    env["TERMINAL_CWD"] = str(config.prepared.context_dir)
    if _cwd_is_placeholder(config.settings.config):
        env["MESSAGING_CWD"] = str(config.prepared.context_dir)
    env["HERMES_GATEWAY_NO_SUPERVISE"] = "1"
    return env


def reset_stale_runtime_status(home: Path) -> list[Path]:
    """Step 4: remove a dead gateway's status files; return what was removed.

    Leaves everything alone when ``gateway.lock`` is held (a live gateway uses
    this HERMES_HOME: Hermes will refuse to start and say so) or cannot be checked.
    """
    lock = home / "gateway.lock"
    try:
        # O_RDWR: on NFS (EFS) flock is emulated with POSIX locks, which need a writable fd.
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        fd = None
    except OSError as exc:
        logger.warning("cannot check %s (%s); leaving Hermes's runtime status files alone", lock, exc)
        return []
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                logger.warning(
                    "%s is locked: another gateway uses this HERMES_HOME, or the NFS lock of a task "
                    "that just died has not expired yet (Hermes will refuse to start; ECS retries)", lock)
            else:
                logger.warning("cannot check %s (%s); leaving Hermes's runtime status files alone", lock, exc)
            return []
        finally:
            os.close(fd)
    removed = []
    for name in RUNTIME_STATUS_FILES:
        path = home / name
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    if removed:
        logger.info("removed the previous gateway's %s", ", ".join(p.name for p in removed))
    return removed


def initial_sync(environ: Mapping[str, str], home: Path, sync: Callable[..., Any] | None = None) -> bool:
    """Step 5: one knowledge sync within :data:`INITIAL_SYNC_BUDGET`; never raises.

    Returns True when downloads were deferred (budget spent), so that the
    monitor syncs again at once instead of after a full interval.
    """
    bucket = (environ.get(knowledge_sync.BUCKET_ENV) or "").strip()
    if not bucket:
        logger.info("no knowledge bucket configured (%s is not set); skipping the sync", knowledge_sync.BUCKET_ENV)
        return False
    sync = sync or knowledge_sync.sync_once
    try:
        result = sync(bucket, home, budget=INITIAL_SYNC_BUDGET)
    except Exception:  # sync_once does not raise; a replacement might
        logger.exception("knowledge sync failed; starting the gateway anyway")
        return False
    deferred = getattr(result, "deferred", 0)
    if deferred:
        logger.info("%d download(s) deferred to the monitor's first sync, which starts now", deferred)
    return bool(deferred)


def start_monitor(
    gateway_pid: int, environ: Mapping[str, str], sync_now: bool = False, argv: list[str] | None = None
) -> None:
    """Step 6: start the monitor detached (double fork). Raises if it could not be started.

    The intermediate child calls ``setsid()`` and spawns the monitor, then exits
    at once; we reap it here. The monitor is thereby orphaned and re-parented to
    PID 1 (tini in the task), never a child of the Hermes process this one becomes.
    """
    if argv is None:
        argv = [sys.executable, "-m", "hermes_aws.gateway_monitor", "--gateway-pid", str(gateway_pid)]
        start = process_start_time(gateway_pid)
        if start is not None:
            argv += ["--gateway-start-time", str(start)]
        if sync_now:
            argv.append("--sync-now")
    env = dict(environ)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # intermediate: never returns
        code = 1
        try:
            os.setsid()
            subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, close_fds=True)
            code = 0
        except BaseException as exc:  # noqa: BLE001 - report through the exit code
            try:
                os.write(2, f"hermes_aws.gateway: cannot start the monitor: {exc}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"the monitor could not be started (exit {code})")


def exec_hermes(env: Mapping[str, str]) -> NoReturn:
    """Step 7: replace this process with ``hermes gateway run --no-supervise``."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(HERMES_COMMAND[0], list(HERMES_COMMAND), dict(env))


def wait_for_secrets(
    names: list[str],
    *,
    stop: threading.Event | None = None,
    interval: float = WAIT_LOG_INTERVAL,
    iterations: int | None = None,
) -> int:
    """Step 2 when a placeholder is found: log, keep the task up, return 0 on SIGTERM."""
    message = describe_placeholders(names)
    logger.error("not starting Hermes: %s", message)
    if stop is None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    count = 0
    while True:
        emit("health", healthy=False, waiting_for_secrets=True, reason=describe_placeholders(names, brief=True),
             secrets=names, gateway_state=None)
        count += 1
        if iterations is not None and count >= iterations:
            return 0
        if stop.wait(interval):
            return 0


# --------------------------------------------------------------------------- main


def main(
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    sync: Callable[..., Any] | None = None,
    monitor: Callable[[int, Mapping[str, str], bool], None] = start_monitor,
    execute: Callable[[Mapping[str, str]], Any] = exec_hermes,
    wait: Callable[[list[str]], int] = wait_for_secrets,
    chdir: Callable[[Path], None] = os.chdir,
) -> int:
    if argv:
        print("usage: python -m hermes_aws.gateway (configured by environment variables only)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    env_in = dict(os.environ if environ is None else environ)

    try:
        config = load_configuration(env_in)
    except ConfigError as exc:
        logger.error("configuration error, not starting: %s", exc)
        return EX_CONFIG

    placeholders = find_placeholders(env_in)
    if placeholders:
        return wait(placeholders)

    env = gateway_environment(config, env_in)
    chdir(config.home)
    logger.info("HERMES_HOME %s ready; TERMINAL_CWD=%s; platforms: %s",
                config.home, env["TERMINAL_CWD"], ", ".join(config.platforms) or "none")
    reset_stale_runtime_status(config.home)
    sync_now = initial_sync(env, config.home, sync)
    try:
        monitor(os.getpid(), env, sync_now)
    except Exception as exc:
        logger.error("no background monitor (knowledge sync loop, logged health probes): %s", exc)
    try:
        execute(env)
    except OSError as exc:
        logger.error("cannot run %s: %s", " ".join(HERMES_COMMAND), exc)
        return 127
    return 0  # only reached when `execute` is replaced in tests


def _cwd_is_placeholder(config: Mapping[str, Any]) -> bool:
    terminal = config.get("terminal")
    cwd = terminal.get("cwd") if isinstance(terminal, Mapping) else None
    # Only an explicit placeholder: without terminal.cwd Hermes keeps our TERMINAL_CWD.
    return isinstance(cwd, str) and cwd.strip() in {"", ".", "auto", "cwd"}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
