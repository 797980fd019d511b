"""Tests for hermes_aws.lambda_ingress against a real moto server (SQS FIFO, Secrets Manager)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from hermes_aws import lambda_ingress, secrets
from stubs.serverless import SLACK_SIGNING_SECRET, slack_envelope, slack_request

WEBHOOK_SECRET = "Zq8vH2kP0wXy7LmN4rT6uB1cD3eF5gJ9aS0dQ2wE4rT6yU8iO0pA1sD3fG5hJ7k"
ALLOWED_USER = 4242
SECRET_HEADER = "x-telegram-bot-api-secret-token"


@dataclass
class Ingress:
    queue_url: str
    secret_arn: str
    sqs: Any
    get_secret_calls: list[str]

    def queued(self) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])

    def receive_all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            resp = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                            AttributeNames=["All"], WaitTimeSeconds=0, VisibilityTimeout=60)
            msgs = resp.get("Messages", [])
            if not msgs:
                return out
            out.extend(msgs)


@pytest.fixture
def ingress(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Ingress:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="hermes-ingress.fifo",
                                 Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"})["QueueUrl"]
    sm = boto3.client("secretsmanager")
    arn = sm.create_secret(Name="hermes/telegram-webhook-secret", SecretString=WEBHOOK_SECRET)["ARN"]

    # Count real GetSecretValue API calls made by the clients the ingress creates.
    calls: list[str] = []
    real_make_client = secrets.make_client

    def counting_make_client(service: str = "secretsmanager") -> Any:
        client = real_make_client(service)
        client.meta.events.register("provide-client-params.secrets-manager.GetSecretValue",
                                    lambda **kw: calls.append(kw["params"]["SecretId"]))
        return client

    monkeypatch.setattr(secrets, "make_client", counting_make_client)
    monkeypatch.setenv("HERMES_AWS_QUEUE_URL", queue_url)
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN", arn)
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_ALLOWED_USERS", f" 1, {ALLOWED_USER} ,")
    monkeypatch.delenv("HERMES_AWS_TELEGRAM_ALLOW_ALL", raising=False)
    monkeypatch.delenv("HERMES_AWS_MAX_BODY_BYTES", raising=False)
    monkeypatch.setenv("HERMES_AWS_AGENT_NAME", "TestAgent")
    lambda_ingress.reset()
    yield Ingress(queue_url, arn, sqs, calls)
    lambda_ingress.reset()


def text_update(update_id: int = 5001, *, user_id: int = ALLOWED_USER, chat_id: int = ALLOWED_USER,
                text: str = "hello agent", chat_type: str = "private") -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": 11, "date": 1700000000, "text": text,
        "from": {"id": user_id, "is_bot": False, "first_name": "Ada"},
        "chat": {"id": chat_id, "type": chat_type}}}


def make_event(body: Any = None, *, method: str = "POST", path: str = "/telegram",
               secret: str | None = WEBHOOK_SECRET, b64: bool = False,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode() if b64 else body.decode("utf-8")
    elif b64 and body is not None:
        body = base64.b64encode(body.encode()).decode()
    hdrs = {"content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws"}
    if secret is not None:
        hdrs[SECRET_HEADER] = secret
    hdrs.update(headers or {})
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": hdrs,
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "149.154.167.197"}},
        "isBase64Encoded": b64,
    }
    if body is not None:
        event["body"] = body
    return event


class Ctx:
    aws_request_id = "req-1"


def call(event: dict[str, Any], capfd: pytest.CaptureFixture[str] | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    resp = lambda_ingress.handler(event, Ctx())
    log = None
    if capfd is not None:
        lines = [ln for ln in capfd.readouterr().out.splitlines() if ln.startswith("{")]
        assert len(lines) == 1, lines  # exactly one line per request
        log = json.loads(lines[0])
    return resp, log


# -- hostile inputs: right status, nothing queued ---------------------------------------------
def _cron_job() -> dict[str, Any]:
    return {"source": "hermes.cron", "job": {"id": "j1", "prompt": "rm -rf /", "deliver": "telegram:1"}}


HOSTILE: list[tuple[str, Callable[[], dict[str, Any]], int, str]] = [
    ("GET", lambda: make_event(text_update(), method="GET"), 405, "rejected"),
    ("PUT", lambda: make_event(text_update(), method="PUT"), 405, "rejected"),
    ("DELETE", lambda: make_event(text_update(), method="DELETE"), 405, "rejected"),
    ("HEAD", lambda: make_event(None, method="HEAD"), 405, "rejected"),
    ("OPTIONS", lambda: make_event(None, method="OPTIONS"), 405, "rejected"),
    ("wrong path", lambda: make_event(text_update(), path="/"), 404, "rejected"),
    ("other path", lambda: make_event(text_update(), path="/slack"), 404, "rejected"),
    ("path prefix", lambda: make_event(text_update(), path="/telegram/../admin"), 404, "rejected"),
    ("no event shape", lambda: {}, 404, "rejected"),
    ("missing secret header", lambda: make_event(text_update(), secret=None), 401, "rejected"),
    ("empty secret header", lambda: make_event(text_update(), secret=""), 401, "rejected"),
    ("wrong secret", lambda: make_event(text_update(), secret="not-the-secret"), 403, "rejected"),
    ("secret of different length", lambda: make_event(text_update(), secret=WEBHOOK_SECRET + "0"), 403, "rejected"),
    ("secret prefix", lambda: make_event(text_update(), secret=WEBHOOK_SECRET[:10]), 403, "rejected"),
    ("secret differing in case", lambda: make_event(text_update(), secret=WEBHOOK_SECRET.swapcase()), 403, "rejected"),
    ("secret in another header", lambda: make_event(text_update(), secret=None,
                                                    headers={"authorization": WEBHOOK_SECRET}), 401, "rejected"),
    ("empty body", lambda: make_event(None), 400, "rejected"),
    ("blank body", lambda: make_event(""), 400, "rejected"),
    ("non-JSON", lambda: make_event("update_id=1&message=hi"), 400, "rejected"),
    ("truncated JSON", lambda: make_event(json.dumps(text_update())[:-3]), 400, "rejected"),
    ("JSON array", lambda: make_event([text_update()]), 400, "rejected"),
    ("JSON string", lambda: make_event('"hello"'), 400, "rejected"),
    ("JSON number", lambda: make_event("42"), 400, "rejected"),
    ("JSON null", lambda: make_event("null"), 400, "rejected"),
    ("NaN update_id", lambda: make_event('{"update_id": NaN, "message": {}}'), 400, "rejected"),
    ("deeply nested", lambda: make_event('{"update_id": 1, "x": ' + "[" * 30000 + "]" * 30000 + "}"),
     400, "rejected"),
    ("invalid UTF-8", lambda: make_event(b'{"update_id": 1, "x": "\xff\xfe"}', b64=True), 400, "rejected"),
    ("base64 garbage", lambda: make_event(b"\x00\x9f\x92\x96garbage\xff", b64=True), 400, "rejected"),
    ("invalid base64", lambda: {**make_event("x"), "body": "!!!not base64!!!", "isBase64Encoded": True},
     400, "rejected"),
    ("missing update_id", lambda: make_event({"message": text_update()["message"]}), 400, "rejected"),
    ("string update_id", lambda: make_event({**text_update(), "update_id": "5001"}), 400, "rejected"),
    ("forged cron body", lambda: make_event(_cron_job()), 400, "rejected"),
    ("forged cron body with update_id", lambda: make_event({"update_id": 77, **_cron_job()}), 200, "ignored"),
    ("update without message", lambda: make_event({"update_id": 1}), 200, "ignored"),
    ("callback_query", lambda: make_event({"update_id": 2, "callback_query": {
        "id": "9", "from": {"id": ALLOWED_USER}, "data": "approve"}}), 200, "ignored"),
    ("channel_post", lambda: make_event({"update_id": 3, "channel_post": {
        "message_id": 1, "chat": {"id": -100, "type": "channel"}, "text": "hi"}}), 200, "ignored"),
    ("edited_message", lambda: make_event({"update_id": 4, "edited_message": text_update()["message"]}),
     200, "ignored"),
    ("sticker", lambda: make_event({"update_id": 5, "message": {
        k: v for k, v in text_update()["message"].items() if k != "text"} | {"sticker": {"file_id": "x"}}}),
     200, "ignored"),
    ("user not allowed", lambda: make_event(text_update(user_id=666, chat_id=666)), 200, "ignored"),
    ("not allowed in an allowed user's group", lambda: make_event(
        text_update(user_id=666, chat_id=-100, chat_type="group")), 200, "ignored"),
]


@pytest.mark.parametrize(("name", "build", "status", "outcome"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input(ingress: Ingress, capfd: pytest.CaptureFixture[str], name: str,
                       build: Callable[[], dict[str, Any]], status: int, outcome: str) -> None:
    event = build()
    resp, log = call(event, capfd)
    assert resp["statusCode"] == status, (name, log)
    assert log is not None and log["outcome"] == outcome and log["status"] == status
    assert ingress.queued() == 0
    body = resp["body"]
    assert WEBHOOK_SECRET not in body and WEBHOOK_SECRET not in json.dumps(log)
    raw = event.get("body") or ""
    assert len(raw) < 8 or raw not in body  # the request body is never echoed
    if status == 405:
        assert resp["headers"]["allow"] == "POST"
    assert json.loads(body)["ok"] is (status == 200)


def test_body_over_the_limit_is_413_before_secret_or_parsing(ingress: Ingress) -> None:
    big = "{" + " " * 70_000 + "}"
    for event in (make_event(big), make_event(big, secret=None), make_event(big, secret="wrong"),
                  make_event(big, b64=True), make_event("é" * 40_000)):  # 40 000 chars, 80 000 bytes
        assert call(event)[0]["statusCode"] == 413
    assert ingress.get_secret_calls == []  # refused before the secret was even needed
    assert ingress.queued() == 0


def test_body_limit_is_configurable(ingress: Ingress, monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps(text_update())
    monkeypatch.setenv("HERMES_AWS_MAX_BODY_BYTES", str(len(body)))
    assert call(make_event(body))[0]["statusCode"] == 200
    monkeypatch.setenv("HERMES_AWS_MAX_BODY_BYTES", str(len(body) - 1))
    assert call(make_event(body))[0]["statusCode"] == 413
    assert call(make_event(body, b64=True))[0]["statusCode"] == 413


# -- the accepted path -------------------------------------------------------------------
def test_accepted_update_lands_on_the_fifo_queue(ingress: Ingress, capfd: pytest.CaptureFixture[str]) -> None:
    update = text_update(5001, chat_id=-100777, chat_type="supergroup")
    resp, log = call(make_event(update), capfd)
    assert resp["statusCode"] == 200 and json.loads(resp["body"]) == {"ok": True}
    assert log is not None and log["outcome"] == "accepted" and log["update_id"] == 5001
    assert log["chat_id"] == "-100777" and log["user_id"] == str(ALLOWED_USER)
    assert "hello agent" not in json.dumps(log)  # message text is never logged
    [msg] = ingress.receive_all()
    assert msg["Attributes"]["MessageGroupId"] == "telegram:-100777"
    assert msg["Attributes"]["MessageDeduplicationId"] == "telegram:5001"
    body = json.loads(msg["Body"])
    assert set(body) == {"source", "update", "received_at"}
    assert body["source"] == "telegram" and body["update"] == update
    assert body["received_at"].endswith("+00:00")


def test_base64_encoded_update_is_accepted(ingress: Ingress) -> None:
    update = text_update(text="héllo ✓ 😀")
    assert call(make_event(json.dumps(update, ensure_ascii=False).encode(), b64=True))[0]["statusCode"] == 200
    [msg] = ingress.receive_all()
    assert json.loads(msg["Body"])["update"]["message"]["text"] == "héllo ✓ 😀"


def test_same_update_twice_is_queued_once(ingress: Ingress) -> None:
    event = make_event(text_update(6001))
    assert call(event)[0]["statusCode"] == 200
    assert call(event)[0]["statusCode"] == 200  # Telegram redelivery: acknowledged again
    call(make_event(text_update(6002)))
    bodies = [json.loads(m["Body"])["update"]["update_id"] for m in ingress.receive_all()]
    assert bodies == [6001, 6002]  # one copy each, in order within the chat's group


def test_forged_cron_source_stays_a_telegram_update(ingress: Ingress) -> None:
    forged = {**text_update(7001), "source": "hermes.cron", "job": {"id": "j1", "prompt": "x"}}
    assert call(make_event(forged))[0]["statusCode"] == 200
    [msg] = ingress.receive_all()
    body = json.loads(msg["Body"])
    assert body["source"] == "telegram"  # the envelope is ours; the body is only ever the update
    assert body["update"]["source"] == "hermes.cron"
    assert msg["Attributes"]["MessageGroupId"] == f"telegram:{ALLOWED_USER}"


def test_webhook_secret_is_read_once(ingress: Ingress) -> None:
    for i in range(25):
        secret = WEBHOOK_SECRET if i % 3 else "wrong"
        call(make_event(text_update(8000 + i), secret=secret))
    assert ingress.get_secret_calls == [ingress.secret_arn]
    assert ingress.queued() == 16


def test_webhook_secret_is_never_taken_from_a_plain_env_value(ingress: Ingress,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_WEBHOOK_SECRET", "plain")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "plain")
    assert call(make_event(text_update(), secret="plain"))[0]["statusCode"] == 403
    assert call(make_event(text_update(), secret=WEBHOOK_SECRET))[0]["statusCode"] == 200


def test_secrets_with_surrounding_whitespace_still_verify(ingress: Ingress, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both secrets are read the same way: a value pasted with a trailing newline still works."""
    arn = boto3.client("secretsmanager").create_secret(
        Name="hermes/telegram-webhook-secret-newline", SecretString=f" {WEBHOOK_SECRET}\n")["ARN"]
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN", arn)
    lambda_ingress.reset()
    assert call(make_event(text_update(), secret=WEBHOOK_SECRET))[0]["statusCode"] == 200
    assert call(make_event(text_update(5002), secret=WEBHOOK_SECRET + "\n"))[0]["statusCode"] == 403
    assert ingress.queued() == 1


def test_allow_all(ingress: Ingress, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_ALLOW_ALL", "true")
    monkeypatch.delenv("HERMES_AWS_TELEGRAM_ALLOWED_USERS")
    assert call(make_event(text_update(9001, user_id=123456789, chat_id=123456789)))[0]["statusCode"] == 200
    assert ingress.queued() == 1


def test_no_allow_list_means_nobody(ingress: Ingress, monkeypatch: pytest.MonkeyPatch,
                                    capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("HERMES_AWS_TELEGRAM_ALLOWED_USERS")
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_ALLOW_ALL", "false")
    resp, log = call(make_event(text_update()), capfd)
    assert resp["statusCode"] == 200 and log is not None and log["reason"] == "user not allowed"
    assert log["user_id"] == str(ALLOWED_USER)  # so the operator can add it
    assert ingress.queued() == 0


# -- failures -----------------------------------------------------------------------------
def test_sqs_failure_is_500(ingress: Ingress, monkeypatch: pytest.MonkeyPatch,
                            capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HERMES_AWS_QUEUE_URL", ingress.queue_url.replace("hermes-ingress", "missing"))
    resp, log = call(make_event(text_update()), capfd)
    assert resp["statusCode"] == 500
    assert log is not None and log["outcome"] == "error" and log["reason"].startswith("enqueue failed: ")
    assert "QueueDoesNotExist" in log["reason"] or "NonExistentQueue" in log["reason"]
    assert json.loads(resp["body"]) == {"ok": False, "error": "internal error"}


def test_unreadable_secret_is_500(ingress: Ingress, monkeypatch: pytest.MonkeyPatch,
                                  capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN", ingress.secret_arn + "-gone")
    for _ in range(10):
        resp, log = call(make_event(text_update()), capfd)
        assert resp["statusCode"] == 500 and log is not None
        assert log["reason"] == "webhook secret unavailable: ResourceNotFoundException"
    assert len(ingress.get_secret_calls) == 1  # a flood of requests is not a flood of API calls
    assert ingress.queued() == 0


def test_telegram_route_is_optional_and_the_queue_is_required(ingress: Ingress,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN")
    for event in (make_event(text_update()), make_event(text_update(), method="GET")):
        assert call(event)[0]["statusCode"] == 404  # no Telegram channel configured: no route
    assert ingress.get_secret_calls == []
    lambda_ingress.reset()
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN", ingress.secret_arn)
    monkeypatch.delenv("HERMES_AWS_QUEUE_URL")
    assert call(make_event(text_update()))[0]["statusCode"] == 500


def test_unexpected_exception_is_a_generic_500(ingress: Ingress, monkeypatch: pytest.MonkeyPatch,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    def boom(update: Any) -> Any:
        raise RuntimeError(f"leaky detail {WEBHOOK_SECRET}")

    monkeypatch.setattr(lambda_ingress, "parse_update", boom)
    resp, log = call(make_event(text_update()), capfd)
    assert resp["statusCode"] == 500 and log is not None
    assert log["reason"] == "unexpected RuntimeError"
    assert WEBHOOK_SECRET not in resp["body"] + json.dumps(log)


# -- log line and metrics ------------------------------------------------------------------
def test_log_line_carries_emf_metrics(ingress: Ingress, capfd: pytest.CaptureFixture[str]) -> None:
    _, accepted = call(make_event(text_update()), capfd)
    _, rejected = call(make_event(text_update(), secret="nope"), capfd)
    assert accepted is not None and rejected is not None
    for log in (accepted, rejected):
        assert log["event"] == "ingress" and log["Agent"] == "TestAgent" and log["request_id"] == "req-1"
        [directive] = log["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "HermesAgent/Serverless"
        assert directive["Dimensions"] == [["Agent"]]
        names = {m["Name"] for m in directive["Metrics"]}
        assert {"IngressAccepted", "IngressRejected"} <= names
        assert all(isinstance(log[n], int) for n in names)  # every metric has a value
        assert isinstance(log["_aws"]["Timestamp"], int)
    assert (accepted["IngressAccepted"], accepted["IngressRejected"]) == (1, 0)
    assert (rejected["IngressAccepted"], rejected["IngressRejected"]) == (0, 1)
    assert rejected["reason"] == "wrong secret token"


# -- import weight and Lambda init -----------------------------------------------------------
def test_inside_lambda_clients_and_secret_are_ready_at_init(ingress: Ingress) -> None:
    import os

    code = (
        "import json, sys\n"
        "from hermes_aws import lambda_ingress as li\n"
        "print(json.dumps([li._sqs_client is not None, li._secret_cache is not None and li._secret_cache.fetches]))\n"
    )
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "ingress"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, 1]


# -- import weight ---------------------------------------------------------------------------
def test_ingress_import_stays_light() -> None:
    code = (
        "import sys, json, hermes_aws.lambda_ingress\n"
        "heavy = ['run_agent', 'yaml', 'hermes_cli', 'agent', 'gateway', 'tools', 'openai', 'boto3', "
        "'hermes_aws.home', 'hermes_aws.channels.http', 'urllib.request']\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []


# -- Slack ----------------------------------------------------------------------------------

SLACK_USER = "U0ALICE"


@pytest.fixture
def slack_ingress(ingress: Ingress, monkeypatch: pytest.MonkeyPatch) -> Ingress:
    arn = boto3.client("secretsmanager").create_secret(
        Name="hermes/slack-signing-secret", SecretString=SLACK_SIGNING_SECRET + "\n")["ARN"]
    monkeypatch.setenv("HERMES_AWS_SLACK_SIGNING_SECRET_ARN", arn)
    monkeypatch.setenv("HERMES_AWS_SLACK_ALLOWED_USERS", f"U0OTHER, {SLACK_USER}")
    monkeypatch.delenv("HERMES_AWS_SLACK_ALLOW_ALL", raising=False)
    return ingress


def mention(text: str = "<@U0BOTSTUB> what's up?", **kw: Any) -> dict[str, Any]:
    return slack_envelope(text, event_type="app_mention", channel="C0GENERAL", **kw)


def test_slack_route_needs_its_signing_secret(ingress: Ingress, capfd: pytest.CaptureFixture[str]) -> None:
    resp, log = call(slack_request(mention()), capfd)
    assert resp["statusCode"] == 404 and log is not None and log["reason"] == "no such route"
    assert ingress.queued() == 0


def test_slack_mention_and_dm_land_on_the_queue(slack_ingress: Ingress, capfd: pytest.CaptureFixture[str]) -> None:
    envelope = mention(event_id="Ev0MENTION1")
    resp, log = call(slack_request(envelope), capfd)
    assert resp["statusCode"] == 200 and json.loads(resp["body"]) == {"ok": True}
    assert log is not None and (log["outcome"], log["source"], log["event_id"]) == ("accepted", "slack", "Ev0MENTION1")
    assert log["chat_id"] == "C0GENERAL" and log["user_id"] == SLACK_USER and "what" not in json.dumps(log)
    dm = slack_envelope("hello in a DM", event_id="Ev0DM1")
    assert call(slack_request(dm, b64=True))[0]["statusCode"] == 200  # signed over the decoded bytes
    first, second = slack_ingress.receive_all()
    assert first["Attributes"]["MessageGroupId"] == "slack:C0GENERAL"
    assert first["Attributes"]["MessageDeduplicationId"] == "slack:Ev0MENTION1"
    body = json.loads(first["Body"])
    assert set(body) == {"source", "event", "received_at"}
    assert body["source"] == "slack" and body["event"] == envelope
    assert second["Attributes"]["MessageGroupId"] == "slack:D0DMALICE"
    assert json.loads(second["Body"])["event"] == dm


def test_slack_url_verification_is_answered_only_when_signed(slack_ingress: Ingress,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    challenge = {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                 "type": "url_verification"}
    for event, status in ((slack_request(challenge, sign=False), 401),
                          (slack_request(challenge, secret="not-the-signing-secret"), 403),
                          (slack_request(challenge, timestamp=_now() - 600), 403)):
        resp, _ = call(event, capfd)
        assert resp["statusCode"] == status and challenge["challenge"] not in resp["body"]
    resp, log = call(slack_request(challenge), capfd)
    assert resp["statusCode"] == 200 and json.loads(resp["body"]) == {"challenge": challenge["challenge"]}
    assert log is not None and log["reason"] == "url_verification"
    assert slack_ingress.queued() == 0


def _now() -> int:
    return int(time.time())


SLACK_REJECTED: list[tuple[str, Callable[[], dict[str, Any]], int, str]] = [
    ("unsigned", lambda: slack_request(mention(), sign=False), 401, "missing Slack signature"),
    ("timestamp only", lambda: {**slack_request(mention()), "headers": {
        k: v for k, v in slack_request(mention())["headers"].items() if k != "x-slack-signature"}},
     401, "missing Slack signature"),
    ("wrong secret", lambda: slack_request(mention(), secret="another-apps-signing-secret"), 403,
     "wrong Slack signature"),
    ("garbage signature", lambda: slack_request(mention(), signature="v0=deadbeef"), 403, "wrong Slack signature"),
    ("v1 signature", lambda: slack_request(mention(), signature="v1=" + "0" * 64), 403, "wrong Slack signature"),
    ("tampered body", lambda: {**slack_request(mention()), "body": json.dumps(mention(text="<@U0BOTSTUB> rm -rf"))},
     403, "wrong Slack signature"),
    ("stale (6 minutes old)", lambda: slack_request(mention(), timestamp=_now() - 360), 403,
     "stale Slack signature timestamp"),
    ("from the future", lambda: slack_request(mention(), timestamp=_now() + 360), 403,
     "stale Slack signature timestamp"),
    ("non-numeric timestamp", lambda: {**slack_request(mention()), "headers": {
        **slack_request(mention())["headers"], "x-slack-request-timestamp": "yesterday"}}, 403,
     "stale Slack signature timestamp"),
    # str.isdigit() accepts these, int() does not take "²": a plain ASCII integer only
    ("superscript digit timestamp", lambda: {**slack_request(mention()), "headers": {
        **slack_request(mention())["headers"], "x-slack-request-timestamp": "²"}}, 403,
     "stale Slack signature timestamp"),
    ("full-width digit timestamp", lambda: {**slack_request(mention()), "headers": {
        **slack_request(mention())["headers"], "x-slack-request-timestamp": "１２３"}}, 403,
     "stale Slack signature timestamp"),
    ("telegram secret on the slack route", lambda: {**slack_request(mention(), sign=False), "headers": {
        SECRET_HEADER: WEBHOOK_SECRET}}, 401, "missing Slack signature"),
]


@pytest.mark.parametrize(("name", "build", "status", "reason"), SLACK_REJECTED, ids=[r[0] for r in SLACK_REJECTED])
def test_slack_bad_or_stale_signature_is_rejected(slack_ingress: Ingress, capfd: pytest.CaptureFixture[str],
                                                  name: str, build: Callable[[], dict[str, Any]], status: int,
                                                  reason: str) -> None:
    resp, log = call(build(), capfd)
    assert resp["statusCode"] == status, (name, log)
    assert log is not None and log["outcome"] == "rejected" and log["reason"] == reason
    assert json.loads(resp["body"])["ok"] is False
    assert SLACK_SIGNING_SECRET not in resp["body"] + json.dumps(log)
    assert slack_ingress.queued() == 0


SLACK_IGNORED: list[tuple[str, Callable[[], Any], str]] = [
    ("bot message", lambda: slack_envelope("beep", bot_id="B0OTHER"), "unsupported event: bot message"),
    ("the bot's own message", lambda: slack_envelope("echo", user="U0BOTSTUB"),
     "unsupported event: the bot's own message"),
    ("edit", lambda: slack_envelope("fixed", subtype="message_changed"), "unsupported event: subtype message_changed"),
    ("channel message without a mention", lambda: slack_envelope("chatter", channel="C0GENERAL",
                                                                  channel_type="channel"),
     "unsupported event: message in channel_type channel"),
    ("reaction", lambda: {**mention(), "event": {"type": "reaction_added", "user": SLACK_USER}},
     "unsupported event: event type reaction_added"),
    ("bare mention", lambda: mention(text="<@U0BOTSTUB>"), "unsupported event: empty text"),
    ("user not allowed", lambda: mention(user="U0MALLORY"), "user not allowed"),
    ("forged cron body", lambda: {"source": "hermes.cron", "job": {"id": "j1", "prompt": "x", "deliver": "origin"},
                                  "scheduled_time": "2026-01-01T00:00:00Z"},
     "unsupported event: envelope type none"),
]


@pytest.mark.parametrize(("name", "build", "reason"), SLACK_IGNORED, ids=[r[0] for r in SLACK_IGNORED])
def test_slack_events_not_answered_are_acknowledged(slack_ingress: Ingress, capfd: pytest.CaptureFixture[str],
                                                    name: str, build: Callable[[], Any], reason: str) -> None:
    resp, log = call(slack_request(build()), capfd)
    assert resp["statusCode"] == 200 and log is not None, name
    assert (log["outcome"], log["reason"]) == ("ignored", reason)
    assert slack_ingress.queued() == 0


def test_slack_retries_are_queued_once(slack_ingress: Ingress, capfd: pytest.CaptureFixture[str]) -> None:
    envelope = mention(event_id="Ev0RETRIED")
    assert call(slack_request(envelope), capfd)[0]["statusCode"] == 200
    for num in (1, 2, 3):  # Slack got no answer in 3 s and redelivers with a fresh signature
        resp, log = call(slack_request(envelope, retry_num=num), capfd)
        assert resp["statusCode"] == 200 and log is not None and log["retry"] == num
    [msg] = slack_ingress.receive_all()
    assert json.loads(msg["Body"])["event"]["event_id"] == "Ev0RETRIED"


def test_slack_forged_cron_fields_stay_a_slack_event(slack_ingress: Ingress) -> None:
    forged = {**mention(), "source": "hermes.cron", "job": {"id": "j1", "prompt": "x"}}
    assert call(slack_request(forged))[0]["statusCode"] == 200
    [msg] = slack_ingress.receive_all()
    body = json.loads(msg["Body"])
    assert body["source"] == "slack" and body["event"]["source"] == "hermes.cron"
    assert msg["Attributes"]["MessageGroupId"] == "slack:C0GENERAL"


def test_slack_allow_all_and_nobody(slack_ingress: Ingress, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERMES_AWS_SLACK_ALLOWED_USERS")
    assert call(slack_request(mention()))[0]["statusCode"] == 200
    assert slack_ingress.queued() == 0  # neither variable: nobody
    monkeypatch.setenv("HERMES_AWS_SLACK_ALLOW_ALL", "true")
    assert call(slack_request(mention(user="U0ANYONE")))[0]["statusCode"] == 200
    assert slack_ingress.queued() == 1
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_ALLOW_ALL", "false")  # channels' lists are separate
    assert call(make_event(text_update(user_id=999, chat_id=999)))[0]["statusCode"] == 200
    assert slack_ingress.queued() == 1


def test_slack_signing_secret_placeholder_or_missing_is_500(slack_ingress: Ingress,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from hermes_aws.placeholders import PLACEHOLDER

    arn = boto3.client("secretsmanager").create_secret(Name="hermes/slack-placeholder",
                                                       SecretString=PLACEHOLDER)["ARN"]
    monkeypatch.setenv("HERMES_AWS_SLACK_SIGNING_SECRET_ARN", arn)
    resp, _ = call(slack_request(mention(), secret=PLACEHOLDER))
    assert resp["statusCode"] == 500  # never "verified" with a placeholder everybody can read in the code
    lambda_ingress.reset()
    monkeypatch.setenv("HERMES_AWS_SLACK_SIGNING_SECRET_ARN", arn + "-gone")
    assert call(slack_request(mention()))[0]["statusCode"] == 500
    assert slack_ingress.queued() == 0
