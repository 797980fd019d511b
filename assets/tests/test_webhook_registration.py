"""Tests for hermes_aws.webhook_registration: a directly-invoked CloudFormation custom resource.

CloudFormation's pre-signed ResponseURL is a loopback stub; Secrets Manager is moto;
the Bot API is the stub Telegram server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from hermes_aws import webhook_registration as wr
from hermes_aws.placeholders import PLACEHOLDER
from stubs.loopback import LoopbackServer, QuietHandler
from stubs.telegram_server import StubTelegramServer

WEBHOOK_SECRET = "Gen3rated0WebhookSecretValue0123456789abcdefABCDEF0123456789xyzw"
FUNCTION_URL = "https://abcdefghij.lambda-url.us-east-1.on.aws/"


class CfnResponseServer(LoopbackServer):
    """Stands in for the pre-signed S3 URL CloudFormation waits on."""

    def __init__(self) -> None:
        self.responses: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_next = 0
        self._cond = threading.Condition()
        server = self

        class Handler(QuietHandler):
            def do_PUT(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                with server._cond:
                    failing = server.fail_next > 0
                    if failing:
                        server.fail_next -= 1
                    else:
                        server.responses.append(json.loads(raw))
                        server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server._cond.notify_all()
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler, "cfn-response")

    @property
    def url(self) -> str:
        return f"{self.origin}/cfn-response?X-Amz-Signature=sig&X-Amz-Credential=cred"


@dataclass
class Env:
    cfn: CfnResponseServer
    tg: StubTelegramServer
    sm: Any
    token_arn: str
    secret_arn: str

    def store_token(self, value: str | None = None) -> None:
        self.sm.put_secret_value(SecretId=self.token_arn, SecretString=value or self.tg.token)

    def event(self, request_type: str, physical_id: str | None = None, **props: Any) -> dict[str, Any]:
        properties = {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:reg",
                      "BotTokenSecretArn": self.token_arn, "WebhookSecretArn": self.secret_arn,
                      "Url": FUNCTION_URL, "AllowedUpdates": ["message"]}
        properties.update(props)
        event = {"RequestType": request_type, "ResponseURL": self.cfn.url,
                 "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/hermes/guid",
                 "RequestId": f"req-{request_type}", "LogicalResourceId": "TelegramWebhook",
                 "ResourceType": "Custom::TelegramWebhook",
                 "ResourceProperties": {k: v for k, v in properties.items() if v is not None}}
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        return event

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        before = len(self.cfn.responses)
        wr.handler(event, _Ctx())
        assert len(self.cfn.responses) == before + 1, "CloudFormation got no answer"
        return self.cfn.responses[-1]

    def telegram_calls(self) -> list[str]:
        return [m for m, calls in self.tg.calls.items() for _ in calls]


class _Ctx:
    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def env(aws_env: str, stub_telegram: StubTelegramServer, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> Iterator[Env]:
    monkeypatch.setenv("HERMES_AWS_TELEGRAM_API_BASE", stub_telegram.api_base)
    sm = boto3.client("secretsmanager")
    token_arn = sm.create_secret(Name="hermes/telegram-bot-token", SecretString=PLACEHOLDER)["ARN"]
    secret_arn = sm.create_secret(Name="hermes/telegram-webhook", SecretString=WEBHOOK_SECRET)["ARN"]
    with CfnResponseServer() as cfn:
        yield Env(cfn, stub_telegram, sm, token_arn, secret_arn)


def assert_no_secrets(env: Env, response: dict[str, Any]) -> None:
    text = json.dumps(response)
    assert env.tg.token not in text and env.tg.token.split(":")[1] not in text
    assert WEBHOOK_SECRET not in text


def test_placeholder_token_is_skipped_with_success(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    for request_type in ("Create", "Update", "Delete"):
        resp = env.invoke(env.event(request_type, physical_id=None if request_type == "Create" else "x"))
        assert resp["Status"] == "SUCCESS", resp
        assert resp["Data"]["Status"] == (f"skipped: bot token secret {env.token_arn} still holds the "
                                          "placeholder; store the token, then run the stack's RegisterWebhookCommand output")
    assert env.telegram_calls() == []
    logs = [json.loads(ln) for ln in capfd.readouterr().out.splitlines() if ln.startswith("{")]
    assert [log["event"] for log in logs] == ["webhook_registration"] * 3
    assert all("skipped" in log["reason"] for log in logs)


def test_create_registers_the_webhook(env: Env) -> None:
    env.store_token()
    event = env.event("Create")
    resp = env.invoke(event)
    assert resp["Status"] == "SUCCESS", resp
    [call] = env.tg.calls_of("setWebhook")
    assert call.params == {"url": FUNCTION_URL + "telegram", "secret_token": WEBHOOK_SECRET,
                           "allowed_updates": ["message"], "drop_pending_updates": False}
    assert env.tg.webhook.url == FUNCTION_URL + "telegram"
    assert resp["Data"]["Url"] == FUNCTION_URL + "telegram"
    assert resp["StackId"] == event["StackId"] and resp["RequestId"] == "req-Create"
    assert resp["LogicalResourceId"] == "TelegramWebhook"
    assert resp["PhysicalResourceId"].startswith("telegram-webhook-")
    assert env.cfn.headers[-1].get("content-type", "") == ""  # the pre-signed URL does not sign one
    assert_no_secrets(env, resp)


def test_update_keeps_the_physical_id_unless_the_bot_changes(env: Env) -> None:
    env.store_token()
    created = env.invoke(env.event("Create"))["PhysicalResourceId"]
    updated = env.invoke(env.event("Update", physical_id=created,
                                   AllowedUpdates=["message", "callback_query"]))
    assert updated["Status"] == "SUCCESS" and updated["PhysicalResourceId"] == created
    assert env.tg.calls_of("setWebhook")[-1].params["allowed_updates"] == ["message", "callback_query"]
    other = env.sm.create_secret(Name="hermes/other-bot", SecretString=env.tg.token)["ARN"]
    replaced = env.invoke(env.event("Update", physical_id=created, BotTokenSecretArn=other))
    assert replaced["Status"] == "SUCCESS" and replaced["PhysicalResourceId"] != created


@pytest.mark.parametrize("url", [
    "https://abc.lambda-url.us-east-1.on.aws/",
    "https://abc.lambda-url.us-east-1.on.aws",
    "https://abc.lambda-url.us-east-1.on.aws/telegram",
    "https://abc.lambda-url.us-east-1.on.aws/telegram/",
    " https://abc.lambda-url.us-east-1.on.aws// ",
])
def test_url_is_joined_with_the_route(env: Env, url: str) -> None:
    env.store_token()
    assert env.invoke(env.event("Create", Url=url))["Status"] == "SUCCESS"
    assert env.tg.webhook.url == "https://abc.lambda-url.us-east-1.on.aws/telegram"


def test_default_allowed_updates(env: Env) -> None:
    env.store_token()
    assert env.invoke(env.event("Create", AllowedUpdates=None))["Status"] == "SUCCESS"
    assert env.tg.calls_of("setWebhook")[0].params["allowed_updates"] == ["message"]


def test_delete_removes_the_webhook(env: Env) -> None:
    env.store_token()
    pid = env.invoke(env.event("Create"))["PhysicalResourceId"]
    resp = env.invoke(env.event("Delete", physical_id=pid))
    assert resp["Status"] == "SUCCESS" and resp["PhysicalResourceId"] == pid
    assert len(env.tg.calls_of("deleteWebhook")) == 1 and env.tg.webhook.url == ""


def test_delete_leaves_a_webhook_that_points_elsewhere(env: Env) -> None:
    env.store_token()
    env.tg.webhook.url = "https://somewhere-else.example.com/hook"
    resp = env.invoke(env.event("Delete", physical_id="telegram-webhook-x"))
    assert resp["Status"] == "SUCCESS" and "points elsewhere" in resp["Data"]["Status"]
    assert env.tg.calls_of("deleteWebhook") == []


def test_telegram_error_on_create_fails_without_the_token(env: Env) -> None:
    env.store_token()
    env.tg.fail_next("setWebhook", 400, description="Bad Request: bad webhook: Failed to resolve host")
    resp = env.invoke(env.event("Create"))
    assert resp["Status"] == "FAILED"
    assert "Bad Request: bad webhook: Failed to resolve host" in resp["Reason"]
    assert_no_secrets(env, resp)
    # The rollback's Delete must not touch a webhook this resource never set.
    assert resp["PhysicalResourceId"].endswith(wr.FAILED_SUFFIX)
    rollback = env.invoke(env.event("Delete", physical_id=resp["PhysicalResourceId"]))
    assert rollback["Status"] == "SUCCESS"
    assert env.tg.calls_of("deleteWebhook") == [] and env.tg.calls_of("getWebhookInfo") == []


def test_telegram_error_on_update_fails(env: Env) -> None:
    env.store_token()
    env.tg.fail_next("setWebhook", 401, description="Unauthorized")
    resp = env.invoke(env.event("Update", physical_id="telegram-webhook-x"))
    assert resp["Status"] == "FAILED" and "Unauthorized" in resp["Reason"]
    assert not resp["PhysicalResourceId"].endswith(wr.FAILED_SUFFIX)


def test_telegram_error_on_delete_still_succeeds(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    env.store_token()
    env.tg.fail_next("deleteWebhook", 400, description="Bad Request: nope")
    resp = env.invoke(env.event("Delete", physical_id="telegram-webhook-x"))
    assert resp["Status"] == "SUCCESS" and "Bad Request: nope" in resp["Data"]["Status"]
    assert "deleteWebhook failed" in capfd.readouterr().out  # logged


def test_retryable_telegram_errors_are_retried(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.store_token()
    sleeps: list[float] = []
    real = wr.make_telegram_client

    def recording(token: str, context: Any) -> Any:
        client = real(token, context)
        assert client.http.max_total_wait == 10.0  # a third of the 30 s left
        client.http.sleep, client.http.jitter = sleeps.append, 0.0
        return client

    monkeypatch.setattr(wr, "make_telegram_client", recording)
    env.tg.fail_next("setWebhook", 429, retry_after=3)
    env.tg.fail_next("setWebhook", 502)
    assert env.invoke(env.event("Create"))["Status"] == "SUCCESS"
    assert [c.status for c in env.tg.calls_of("setWebhook")] == [429, 502, 200]
    assert sleeps == [3.0, 1.0]


def test_unreadable_secret(env: Env) -> None:
    missing = env.token_arn + "-gone"
    resp = env.invoke(env.event("Create", BotTokenSecretArn=missing))
    assert resp["Status"] == "FAILED" and "ResourceNotFoundException" in resp["Reason"]
    assert env.invoke(env.event("Delete", physical_id="telegram-webhook-x",
                                BotTokenSecretArn=missing))["Status"] == "SUCCESS"
    env.store_token()
    resp = env.invoke(env.event("Create", WebhookSecretArn=env.secret_arn + "-gone"))
    assert resp["Status"] == "FAILED" and "ResourceNotFoundException" in resp["Reason"]
    assert env.telegram_calls() == []


@pytest.mark.parametrize("props", [{"Url": ""}, {"WebhookSecretArn": None}, {"AllowedUpdates": "message"},
                                   {"BotTokenSecretArn": None}])
def test_bad_properties_fail_create(env: Env, props: dict[str, Any]) -> None:
    env.store_token()
    resp = env.invoke(env.event("Create", **props))
    assert resp["Status"] == "FAILED" and resp["Reason"]
    assert env.tg.calls_of("setWebhook") == []


def test_an_exception_inside_still_answers(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.store_token()

    def boom(token: str, context: Any) -> Any:
        raise RuntimeError(f"kaput while using {token}")

    monkeypatch.setattr(wr, "make_telegram_client", boom)
    resp = env.invoke(env.event("Create"))
    assert resp["Status"] == "FAILED" and "RuntimeError: kaput" in resp["Reason"]
    assert_no_secrets(env, resp)
    resp = env.invoke(env.event("Delete", physical_id="telegram-webhook-x"))
    assert resp["Status"] == "SUCCESS"


@pytest.mark.parametrize(("request_type", "expected"), [("Create", "FAILED"), ("Delete", "SUCCESS")])
def test_malformed_properties_still_answer(env: Env, request_type: str, expected: str) -> None:
    event = env.event(request_type)
    event["ResourceProperties"] = ["not", "an", "object"]
    resp = env.invoke(event)
    assert resp["Status"] == expected and "ResourceProperties" in resp["Reason"]


def test_unknown_request_type_fails(env: Env) -> None:
    assert env.invoke(env.event("Frobnicate"))["Status"] == "FAILED"


def test_response_put_is_retried(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    real = wr.send_response
    monkeypatch.setattr(wr, "send_response", lambda url, body: real(url, body, sleep=sleeps.append))
    env.cfn.fail_next = 2
    assert env.invoke(env.event("Create"))["Status"] == "SUCCESS"  # skipped (placeholder), delivered on try 3
    assert sleeps == [0.5, 1.0]


def test_response_body_stays_small(env: Env) -> None:
    env.store_token()
    env.tg.fail_next("setWebhook", 400, description="Bad Request: " + "x" * 10_000)
    resp = env.invoke(env.event("Create"))
    assert resp["Status"] == "FAILED" and len(json.dumps(resp)) < 4096


# -- direct invocation: {"action": "register"} after storing the token -------------------------
@pytest.fixture
def direct(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("HERMES_AWS_BOT_TOKEN_SECRET_ARN", env.token_arn)
    monkeypatch.setenv("HERMES_AWS_WEBHOOK_SECRET_ARN", env.secret_arn)
    monkeypatch.setenv("HERMES_AWS_WEBHOOK_URL", FUNCTION_URL + "telegram")
    monkeypatch.setenv("HERMES_AWS_ALLOWED_UPDATES", "message")
    return env


def test_direct_register(direct: Env) -> None:
    skipped = wr.handler({"action": "register"}, _Ctx())
    assert skipped["Status"] == "SUCCESS" and skipped["Data"]["Status"].startswith("skipped: bot token secret")
    direct.store_token()
    result = wr.handler({"action": "register"}, _Ctx())
    assert result["Status"] == "SUCCESS", result
    assert set(result) == {"Status", "Reason", "Data"}
    assert direct.tg.calls_of("setWebhook")[0].params == {
        "url": FUNCTION_URL + "telegram", "secret_token": WEBHOOK_SECRET,
        "allowed_updates": ["message"], "drop_pending_updates": False}
    assert direct.cfn.responses == []  # nobody to answer
    assert_no_secrets(direct, result)


def test_direct_unregister_reports_failures(direct: Env) -> None:
    direct.store_token()
    wr.handler({"action": "register"}, _Ctx())
    direct.tg.fail_next("deleteWebhook", 400, description="Bad Request: nope")
    failed = wr.handler({"action": "unregister"}, _Ctx())
    assert failed["Status"] == "FAILED" and "Bad Request: nope" in failed["Reason"]
    assert wr.handler({"action": "unregister"}, _Ctx())["Status"] == "SUCCESS"
    assert direct.tg.webhook.url == ""


def test_direct_unknown_action(direct: Env) -> None:
    result = wr.handler({"action": "drop-tables"}, _Ctx())
    assert result["Status"] == "FAILED" and "unknown action" in result["Reason"]
    assert direct.telegram_calls() == []


def test_registration_import_stays_light() -> None:
    code = ("import sys, json, hermes_aws.webhook_registration\n"
            "print(json.dumps(sorted(m for m in ['run_agent', 'yaml', 'hermes_cli', 'boto3'] if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
