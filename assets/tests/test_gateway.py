"""Tests for the gateway entrypoint (hermes_aws.gateway) and its monitor (hermes_aws.gateway_monitor)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hermes_aws import gateway, gateway_monitor, health
from hermes_aws.placeholders import PLACEHOLDER

SLACK_BOT = "xoxb-111-222-secretbotvalue"
SLACK_APP = "xapp-1-A1-333-secretappvalue"
API_KEY = "generated-api-server-key-48-chars-0123456789abcd"
GITHUB = "ghp_secretgithubtokenvalue0123"
MCP_ENV = "HERMES_MCP_GITHUB_GITHUB_PERSONAL_ACCESS_TOKEN"
TOKENS = (SLACK_BOT, SLACK_APP, API_KEY, GITHUB)


def gateway_settings(home: Path) -> dict[str, Any]:
    """A settings document shaped like HermesFargateGateway renders it (src/fargate/gateway.ts)."""
    return {
        "version": 1,
        "config": {
            "model": {"provider": "bedrock", "default": "us.anthropic.claude-sonnet-4-6"},
            "bedrock": {"discovery": {"enabled": False}},
            "agent": {"max_turns": 40, "restart_drain_timeout": 90},
            "security": {"redact_secrets": True, "allow_lazy_installs": False},
            "mcp_servers": {"github": {
                "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${" + MCP_ENV + "}"},
            }},
            "terminal": {"backend": "local", "cwd": str(home)},
        },
        "soul": "You are the platform team's on-call assistant.",
        "projectContext": "Runbooks live in knowledge/; project docs in projects/.",
        "secretEnv": [MCP_ENV],
    }


def task_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    """The container environment the construct gives the task (secrets included)."""
    home = tmp_path / "data" / "hermes"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "user"),
        "HERMES_HOME": str(home),
        "HERMES_AWS_SETTINGS": json.dumps(gateway_settings(home)),
        "HERMES_AWS_PLATFORMS": "slack",
        "HERMES_AWS_PLATFORM_GRACE_SECONDS": "300",
        "HERMES_AWS_KNOWLEDGE_SYNC_SECONDS": "900",
        "HERMES_AWS_KNOWLEDGE_BUCKET": "team-knowledge",
        "API_SERVER_ENABLED": "true",
        "API_SERVER_HOST": "127.0.0.1",
        "API_SERVER_PORT": "8642",
        "API_SERVER_KEY": API_KEY,
        "SLACK_BOT_TOKEN": SLACK_BOT,
        "SLACK_APP_TOKEN": SLACK_APP,
        "SLACK_ALLOWED_USERS": "U012ABCDEF",
        MCP_ENV: GITHUB,
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class Recorder:
    """Stand-ins for the side-effecting steps; records calls in order."""

    def __init__(self, deferred: int = 0) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.deferred = deferred

    def sync(self, bucket: str, home: Path, budget: float | None = None) -> Any:
        self.calls.append(("sync", (bucket, Path(home), budget)))
        return type("Result", (), {"deferred": self.deferred})()

    def monitor(self, pid: int, env: Mapping[str, str], sync_now: bool = False) -> None:
        self.calls.append(("monitor", (pid, dict(env), sync_now)))

    def execute(self, env: Mapping[str, str]) -> None:
        self.calls.append(("exec", dict(env)))

    def wait(self, names: list[str]) -> int:
        self.calls.append(("wait", names))
        return 0

    def chdir(self, path: Path) -> None:
        self.calls.append(("chdir", Path(path)))

    def run(self, env: dict[str, str]) -> int:
        return gateway.main(
            [], environ=env, sync=self.sync, monitor=self.monitor, execute=self.execute,
            wait=self.wait, chdir=self.chdir,
        )

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def arg(self, name: str) -> Any:
        return next(value for n, value in self.calls if n == name)


# --------------------------------------------------------------------------- configuration on disk


def test_gateway_config_rendering_and_no_token_on_disk(tmp_path: Path) -> None:
    env = task_env(tmp_path)
    home = Path(env["HERMES_HOME"])
    rec = Recorder()
    assert rec.run(env) == 0

    config = yaml.safe_load((home / "config.yaml").read_text())
    assert config["terminal"] == {"backend": "local", "cwd": str(home)}
    assert config["security"] == {"redact_secrets": True, "allow_lazy_installs": False}
    assert config["mcp_servers"]["github"]["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "${" + MCP_ENV + "}"}
    assert config["agent"]["restart_drain_timeout"] == 90
    assert (home / ".hermes.md").read_text() == "Runbooks live in knowledge/; project docs in projects/."
    assert (home / "SOUL.md").read_text() == "You are the platform team's on-call assistant."
    assert not (home / ".env").exists()

    exec_env = rec.arg("exec")
    assert exec_env["TERMINAL_CWD"] == str(home)
    assert "MESSAGING_CWD" not in exec_env  # only for a placeholder terminal.cwd
    assert exec_env["HERMES_GATEWAY_NO_SUPERVISE"] == "1"
    assert exec_env["SLACK_BOT_TOKEN"] == SLACK_BOT  # Hermes gets its tokens from the environment...

    on_disk = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert on_disk, "nothing written?"
    for path in on_disk:  # ...and none of them is ever written to disk
        data = path.read_bytes()
        for token in TOKENS:
            assert token.encode() not in data, f"{token[:8]}... found in {path}"


def test_hermes_reads_the_rendered_config(tmp_path: Path, hermetic_hermes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = task_env(tmp_path)
    Recorder().run(env)
    monkeypatch.setenv("HERMES_HOME", env["HERMES_HOME"])
    monkeypatch.setenv(MCP_ENV, GITHUB)
    from hermes_cli.config import load_config

    loaded = load_config()
    assert loaded["security"]["redact_secrets"] is True
    assert loaded["security"]["allow_lazy_installs"] is False
    assert loaded["terminal"]["cwd"] == env["HERMES_HOME"]
    # ${VAR} is expanded in memory only
    assert loaded["mcp_servers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] == GITHUB
    assert GITHUB not in (Path(env["HERMES_HOME"]) / "config.yaml").read_text()


def test_placeholder_terminal_cwd_also_sets_messaging_cwd(tmp_path: Path) -> None:
    env = task_env(tmp_path)
    settings = json.loads(env["HERMES_AWS_SETTINGS"])
    settings["config"]["terminal"]["cwd"] = "."
    env["HERMES_AWS_SETTINGS"] = json.dumps(settings)
    rec = Recorder()
    assert rec.run(env) == 0
    exec_env = rec.arg("exec")
    assert exec_env["TERMINAL_CWD"] == exec_env["MESSAGING_CWD"] == env["HERMES_HOME"]
    assert (Path(env["HERMES_HOME"]) / ".hermes.md").exists()


# --------------------------------------------------------------------------- steps and their order


def test_steps_run_in_order(tmp_path: Path) -> None:
    env = task_env(tmp_path)
    home = Path(env["HERMES_HOME"])
    rec = Recorder()
    assert rec.run(env) == 0
    assert rec.names() == ["chdir", "sync", "monitor", "exec"]
    assert rec.arg("chdir") == home
    assert rec.arg("sync") == ("team-knowledge", home, gateway.INITIAL_SYNC_BUDGET)
    pid, monitor_env, sync_now = rec.arg("monitor")
    assert pid == os.getpid()  # exec keeps the PID: the monitor watches the future Hermes process
    assert monitor_env == rec.arg("exec")
    assert sync_now is False


def test_a_cut_short_first_sync_makes_the_monitor_sync_at_once(tmp_path: Path) -> None:
    rec = Recorder(deferred=3)
    assert rec.run(task_env(tmp_path)) == 0
    assert rec.arg("monitor")[2] is True


def test_no_bucket_skips_the_sync(tmp_path: Path) -> None:
    rec = Recorder()
    assert rec.run(task_env(tmp_path, HERMES_AWS_KNOWLEDGE_BUCKET=None)) == 0
    assert rec.names() == ["chdir", "monitor", "exec"]


def test_sync_and_monitor_failures_do_not_stop_the_gateway(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()

    def broken_sync(bucket: str, home: Path, budget: float | None = None) -> None:
        raise RuntimeError("sync exploded")

    def broken_monitor(pid: int, env: Mapping[str, str], sync_now: bool = False) -> None:
        raise RuntimeError("fork failed")

    code = gateway.main([], environ=task_env(tmp_path), sync=broken_sync, monitor=broken_monitor,
                        execute=rec.execute, chdir=rec.chdir)
    assert code == 0
    assert rec.names() == ["chdir", "exec"]
    assert "sync exploded" in caplog.text and "fork failed" in caplog.text


def test_exec_failure_exits_127(tmp_path: Path) -> None:
    def missing(env: Mapping[str, str]) -> None:
        raise FileNotFoundError(2, "No such file or directory", "hermes")

    rec = Recorder()
    assert gateway.main([], environ=task_env(tmp_path), sync=rec.sync, monitor=rec.monitor,
                        execute=missing, chdir=rec.chdir) == 127


def test_exec_hermes_execs_the_gateway_in_the_foreground(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(os, "execvpe", lambda file, args, env: seen.append((file, args, env)))
    gateway.exec_hermes({"A": "1"})
    assert seen == [("hermes", ["hermes", "gateway", "run", "--no-supervise"], {"A": "1"})]


# --------------------------------------------------------------------------- refusing to start


@pytest.mark.parametrize(("overrides", "message"), [
    ({"HERMES_HOME": None}, "HERMES_HOME is not set"),
    ({"HERMES_HOME": "relative/home"}, "must be an absolute path"),
    ({"HERMES_AWS_SETTINGS": "{not json"}, "HERMES_AWS_SETTINGS is not valid JSON"),
    ({"HERMES_AWS_SETTINGS": '{"version": 2, "config": {}}'}, "unsupported version 2"),
    ({"SLACK_APP_TOKEN": None}, "SLACK_APP_TOKEN"),
    ({"SLACK_BOT_TOKEN": " "}, "SLACK_BOT_TOKEN"),
    ({"API_SERVER_KEY": None}, "API_SERVER_KEY"),
    ({"HERMES_AWS_PLATFORMS": "slack,telegram"}, "TELEGRAM_BOT_TOKEN"),
    ({"HERMES_AWS_PLATFORMS": "slack,tele gram"}, "invalid platform name"),
])
def test_configuration_errors_exit_78_before_anything_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, overrides: dict[str, str | None], message: str
) -> None:
    rec = Recorder()
    with caplog.at_level(logging.ERROR):
        assert rec.run(task_env(tmp_path, **overrides)) == gateway.EX_CONFIG == 78
    assert rec.calls == []
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage().startswith("configuration error, not starting: ")
    assert message in record.getMessage()


def test_a_literal_secret_in_the_settings_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = task_env(tmp_path)
    settings = json.loads(env["HERMES_AWS_SETTINGS"])
    settings["config"]["mcp_servers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] = GITHUB
    env["HERMES_AWS_SETTINGS"] = json.dumps(settings)
    rec = Recorder()
    assert rec.run(env) == 78
    assert rec.calls == []
    assert MCP_ENV in caplog.text and GITHUB not in caplog.text
    assert not (tmp_path / "data" / "hermes" / "config.yaml").exists()


@pytest.mark.parametrize("name", ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", MCP_ENV])
def test_placeholder_secret_waits_instead_of_starting(tmp_path: Path, name: str) -> None:
    rec = Recorder()
    assert rec.run(task_env(tmp_path, **{name: PLACEHOLDER})) == 0
    assert rec.calls == [("wait", [name])]  # no sync, no monitor, no Hermes


def test_placeholder_inside_a_multi_workspace_token_list(tmp_path: Path) -> None:
    rec = Recorder()
    rec.run(task_env(tmp_path, SLACK_BOT_TOKEN=f"xoxb-real,{PLACEHOLDER}", TELEGRAM_BOT_TOKEN=PLACEHOLDER))
    assert rec.calls == [("wait", ["SLACK_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"])]


def test_wait_for_secrets_logs_and_emits_unhealthy_lines(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        code = gateway.wait_for_secrets(["SLACK_BOT_TOKEN"], stop=threading.Event(), interval=0, iterations=2)
    assert code == 0
    lines = capfd.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == 2
    for event in events:
        assert event["event"] == "health" and event["healthy"] is False
        assert event["waiting_for_secrets"] is True and event["secrets"] == ["SLACK_BOT_TOKEN"]
        assert "SLACK_BOT_TOKEN" in event["reason"]
    (record,) = caplog.records
    message = record.getMessage()
    assert "SLACK_BOT_TOKEN" in message and "put-secret-value" in message and "force-new-deployment" in message


def test_wait_for_secrets_returns_on_stop() -> None:
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    assert gateway.wait_for_secrets(["X"], stop=stop, interval=30) == 0
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- stale runtime status


def test_stale_runtime_status_of_a_dead_gateway_is_removed(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    (home / "gateway.lock").write_text('{"pid": 7}')
    (home / "gateway.pid").write_text('{"pid": 7}')
    (home / "gateway_state.json").write_text('{"gateway_state": "running", "platforms": {"telegram": {"state": "connected"}}}')
    (home / "state.db").write_text("keep me")
    removed = gateway.reset_stale_runtime_status(home)
    assert sorted(p.name for p in removed) == ["gateway.pid", "gateway_state.json"]
    assert sorted(p.name for p in home.iterdir()) == ["gateway.lock", "state.db"]


def test_runtime_status_of_a_live_gateway_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    (home / "gateway_state.json").write_text("{}")
    with open(home / "gateway.lock", "a+") as held:  # how Hermes holds it (gateway/status.py)
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert gateway.reset_stale_runtime_status(home) == []
    assert (home / "gateway_state.json").exists()
    assert "gateway.lock is locked" in caplog.text


def test_no_lock_file_means_no_gateway_ran(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    (home / "gateway_state.json").write_text("{}")
    assert [p.name for p in gateway.reset_stale_runtime_status(home)] == ["gateway_state.json"]


def test_main_resets_stale_status_before_exec(tmp_path: Path) -> None:
    env = task_env(tmp_path)
    home = Path(env["HERMES_HOME"])
    home.mkdir(parents=True)
    (home / "gateway_state.json").write_text('{"platforms": {"slack": {"state": "connected"}}}')
    Recorder().run(env)
    assert not (home / "gateway_state.json").exists()


# --------------------------------------------------------------------------- monitor


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make_monitor(results: list[health.HealthResult], clock: FakeClock) -> gateway_monitor.Monitor:
    it = iter(results)
    return gateway_monitor.Monitor(
        gateway_pid=os.getpid(), gateway_start_time=None, environ={},
        probe=lambda: next(it), clock=clock, start_period=180,
    )


def test_monitor_hides_unhealthy_probes_during_the_start_period(capfd: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    bad = health.HealthResult(False, "API server unreachable")
    good = health.HealthResult(True, "ok")
    monitor = make_monitor([bad, bad, good, bad], clock)
    clock.t = 60
    monitor.probe_once()  # booting: not logged
    assert capfd.readouterr().out == ""
    clock.t = 180
    monitor.probe_once()  # start period over: logged
    clock.t = 190
    monitor.probe_once()  # healthy
    clock.t = 200
    monitor.probe_once()  # unhealthy after having been healthy: logged
    events = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [(e["event"], e["healthy"]) for e in events] == [("health", False), ("health", True), ("health", False)]


def test_monitor_logs_unhealthy_at_once_after_a_healthy_probe(capfd: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    monitor = make_monitor([health.HealthResult(True, "ok"), health.HealthResult(False, "slack fatal")], clock)
    clock.t = 10
    monitor.probe_once()
    clock.t = 20
    monitor.probe_once()
    events = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [e["healthy"] for e in events] == [True, False]


def test_monitor_survives_a_crashing_probe(capfd: pytest.CaptureFixture[str]) -> None:
    def boom() -> health.HealthResult:
        raise PermissionError("state file")

    monitor = gateway_monitor.Monitor(gateway_pid=os.getpid(), gateway_start_time=None, environ={},
                                      probe=boom, start_period=0)
    monitor.probe_once()
    (event,) = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert event["healthy"] is False and "PermissionError" in event["reason"]


@pytest.mark.parametrize(("sync_now", "delay"), [(False, 900), (True, 0)])
def test_monitor_sync_thread_schedule(monkeypatch: pytest.MonkeyPatch, sync_now: bool, delay: float) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(gateway_monitor.knowledge_sync, "run_loop",
                        lambda sync, interval, **kw: seen.update(interval=interval, **kw))
    env = {"HERMES_AWS_KNOWLEDGE_BUCKET": "b", "HERMES_HOME": "/tmp/x", "HERMES_AWS_KNOWLEDGE_SYNC_SECONDS": "900"}
    monitor = gateway_monitor.Monitor(gateway_pid=os.getpid(), gateway_start_time=None, environ=env,
                                      sync_now=sync_now)
    thread = monitor.start_sync_thread()
    assert thread is not None
    thread.join(5)
    assert seen["interval"] == 900 and seen["initial_delay"] == delay and seen["stop"] is monitor.stop
    assert gateway_monitor.Monitor(gateway_pid=1, gateway_start_time=None, environ={}).start_sync_thread() is None


def test_process_alive_checks_pid_and_start_time() -> None:
    me = os.getpid()
    start = gateway_monitor.process_start_time(me)
    assert isinstance(start, int)
    assert gateway_monitor.process_alive(me, start)
    assert not gateway_monitor.process_alive(me, start + 1)  # same PID, another process
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not gateway_monitor.process_alive(child.pid)


def test_monitor_is_detached_and_exits_with_the_gateway(tmp_path: Path) -> None:
    """A stand-in gateway starts the real monitor, then exits: the monitor must follow it.

    stdout is a pipe shared by both, so EOF proves that no monitor process is left.
    """
    with socket.socket() as s:  # an API port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = textwrap.dedent("""
        import os, sys, time
        from hermes_aws.gateway import start_monitor
        argv = [sys.executable, "-m", "hermes_aws.gateway_monitor", "--gateway-pid", str(os.getpid()),
                "--health-interval", "0.2", "--start-period", "0", "--watch-interval", "0.1"]
        start_monitor(os.getpid(), dict(os.environ), argv=argv)
        print('{"event": "fake_gateway", "pid": %d}' % os.getpid(), flush=True)
        time.sleep(1.5)
    """)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "API_SERVER_PORT": str(port), "API_SERVER_KEY": "k" * 32,
        "HERMES_AWS_PLATFORMS": "", "HERMES_AWS_HEALTH_STATE": str(tmp_path / "health.json"),
    }
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=30)  # returns at EOF: after the monitor has exited too
    finally:
        proc.kill()
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["event"] for e in events]
    gw_pid = next(e["pid"] for e in events if e["event"] == "fake_gateway")
    started = next(e for e in events if e["event"] == "monitor_started")
    assert started["gateway_pid"] == gw_pid
    assert started["ppid"] != gw_pid  # double fork: never a child of the gateway (Hermes would not reap it)
    assert "health" in kinds
    assert all(e["healthy"] is False for e in events if e["event"] == "health")
    assert events[-1]["event"] == "monitor_stopped" and events[-1]["reason"] == "gateway exited"
    deadline = time.monotonic() + 10  # stdout closes during interpreter shutdown, just before exit
    while gateway_monitor.process_alive(started["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not gateway_monitor.process_alive(started["pid"])


def test_settings_from_s3(tmp_path: Path, aws_env: str, loopback_only: list[str]) -> None:
    import boto3

    env = task_env(tmp_path)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="settings-bucket")
    s3.put_object(Bucket="settings-bucket", Key="gw/settings.json", Body=env.pop("HERMES_AWS_SETTINGS").encode())
    env["HERMES_AWS_SETTINGS_S3"] = "s3://settings-bucket/gw/settings.json"
    env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    rec = Recorder()
    assert rec.run(env) == 0
    assert (Path(env["HERMES_HOME"]) / ".hermes.md").exists()

    env["HERMES_AWS_SETTINGS_S3"] = "s3://settings-bucket/gw/missing.json"
    rec = Recorder()
    assert rec.run(env) == 78
    assert rec.calls == []
