"""Shared fixtures: a real moto server, AWS env pointing at it, a stub model server."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stubs.model_server import StubModelServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server (all services) on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # returns once the socket is bound
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials, region, endpoint or profile from the host; IMDS off.

    boto3's default session is replaced for the test: it caches the credentials
    it resolved first, so a client of an earlier test's environment would leak in.
    """
    import boto3

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    missing = str(tmp_path / "no-aws-config")  # keep ~/.aws out of the tests
    monkeypatch.setenv("AWS_CONFIG_FILE", missing)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.fixture
def aws_env(moto_server: str, no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """Fake credentials + AWS_ENDPOINT_URL=<moto>, with moto state reset; returns the URL."""
    req = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def stub_model() -> Iterator[StubModelServer]:
    """A scripted OpenAI-compatible model server on loopback (see stubs/model_server.py)."""
    with StubModelServer() as stub:
        yield stub


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse any DNS lookup or connection that is not loopback; returns the refused targets."""
    refused: list[str] = []
    real_getaddrinfo, real_connect, real_connect_ex = (
        socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)

    def is_loopback(host: Any) -> bool:
        host = str(host).strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not is_loopback(address[0]):
            refused.append(str(address[0]))
            raise OSError(f"test network guard: refused connection to {address[0]}")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_loopback(host):
            refused.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"test network guard: refused lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return refused


# Env vars that could route Hermes to a real provider or leak host config into a test
# (AWS_* is handled by no_aws_env, so aws_env may be combined with hermetic_hermes).
_LEAKY_ENV = re.compile(
    r"^(?!AWS_)(.*_API_KEY|.*_BASE_URL|.*_TOKEN|HERMES_.*|TERMINAL_.*|MESSAGING_CWD|"
    r"OPENAI_.*|ANTHROPIC_.*|OPENROUTER_.*|GOOGLE_APPLICATION_CREDENTIALS|XDG_.*)$"
)


@dataclass(frozen=True)
class HermesPaths:
    home: Path  # HERMES_HOME
    user_home: Path  # $HOME
    workdir: Path  # TERMINAL_CWD


@pytest.fixture
def hermetic_hermes(no_aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HermesPaths:
    """Environment for running real Hermes code: everything under tmp_path, lazy installs off."""
    for name in list(os.environ):
        if _LEAKY_ENV.match(name):
            monkeypatch.delenv(name)
    paths = HermesPaths(tmp_path / "hermes", tmp_path / "home", tmp_path / "work")
    paths.user_home.mkdir()
    monkeypatch.setenv("HOME", str(paths.user_home))
    monkeypatch.setenv("XDG_STATE_HOME", str(paths.user_home / ".local" / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(paths.user_home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(paths.user_home / ".config"))
    monkeypatch.setenv("HERMES_HOME", str(paths.home))
    monkeypatch.setenv("TERMINAL_CWD", str(paths.workdir))
    monkeypatch.setenv("HERMES_DISABLE_LAZY_INSTALLS", "1")
    monkeypatch.chdir(tmp_path)
    return paths


@pytest.fixture
def fake() -> Any:
    """Fake time (a helpers.FakeTime starting at 0) for an HttpClient: see helpers.fake_http."""
    from helpers import FakeTime  # imports hermes_aws: not at collection time

    return FakeTime()


@pytest.fixture
def stub_telegram() -> Iterator[Any]:
    """A stub Telegram Bot API on loopback (see stubs/telegram_server.py).

    Point clients at ``stub.api_base`` (``HERMES_AWS_TELEGRAM_API_BASE``) with ``stub.token``.
    """
    from stubs.telegram_server import StubTelegramServer

    with StubTelegramServer() as stub:
        yield stub


@pytest.fixture
def stub_slack() -> Iterator[Any]:
    """A stub Slack Web API on loopback (see stubs/slack_server.py).

    Point clients at ``stub.api_base`` (``HERMES_AWS_SLACK_API_BASE``) with ``stub.token``.
    """
    from stubs.slack_server import StubSlackServer

    with StubSlackServer() as stub:
        yield stub


@pytest.fixture
def make_serverless(aws_env: str, hermetic_hermes: HermesPaths, stub_model: StubModelServer, stub_telegram: Any,
                    stub_slack: Any, monkeypatch: pytest.MonkeyPatch, loopback_only: list[str]) -> Iterator[Any]:
    """Build a stubs.serverless.Harness: resources in moto, the environment set, handlers reset.

    ``make_serverless(settings=None, slack=False, cron=False, telegram=True, max_receive_count=3, **config)``;
    ``slack`` configures the Slack channel against ``stub_slack``, ``cron`` the scheduled jobs.
    """
    import boto3

    from hermes_aws import lambda_ingress, lambda_worker, scheduler
    from stubs.serverless import Harness, provision

    def make(settings: dict[str, Any] | None = None, *, slack: bool = False, cron: bool = False,
             telegram: bool = True, max_receive_count: int = 3, **config: Any) -> Any:
        env = provision(model_base_url=stub_model.base_url, model=stub_model.model,
                        workdir=hermetic_hermes.workdir, telegram_api_base=stub_telegram.api_base,
                        telegram_token=stub_telegram.token, max_receive_count=max_receive_count,
                        with_queue=True, settings=settings, cron=cron, telegram=telegram,
                        slack_api_base=stub_slack.api_base if slack else None,
                        slack_token=stub_slack.token if slack else None, **config)
        for key, value in env.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("STUB_MODEL_API_KEY", "replaced-by-the-worker")
        return Harness(env, hermetic_hermes, boto3.client("sqs"), stub_model, stub_telegram,
                       stub_slack if slack else None)

    lambda_ingress.reset()
    lambda_worker.reset()
    scheduler.forget()
    yield make
    lambda_ingress.reset()
    lambda_worker.reset()
    scheduler.forget()
    assert loopback_only == []  # nothing left the machine
