"""Helpers for driving the serverless handlers in tests: resources, environment, events, the harness.

:class:`Harness` is the end-to-end harness of the serverless shape on loopback
(the ``make_harness`` fixture in conftest.py builds one): a moto server
(DynamoDB, S3, SQS FIFO queue + FIFO DLQ with a redrive policy, Secrets
Manager, EventBridge Scheduler), the stub Telegram Bot API and Slack Web API,
the stub model, the pinned hermes-agent, and the real handlers: Function URL
event -> ``lambda_ingress.handler`` -> the moto FIFO queue -> SQS Lambda events
(ApproximateReceiveCount, MessageGroupId) -> ``lambda_worker.handler``. The
poller (:meth:`Harness.drain`) plays Lambda's event source mapping: it deletes
the messages of a batch that succeeded and makes the reported failures visible
again at once (visibility 0), so moto's redrive moves a message that failed
three receives to the DLQ.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from stubs.aws_resources import create_bucket, create_fifo_queue_with_dlq, create_secret, create_sessions_table

MODEL_KEY = "sk-stub-worker-0123456789abcdef"
WEBHOOK_SECRET = "webhook-secret-for-tests_0123456789"
SLACK_SIGNING_SECRET = "8f3a2c1d0e9b8a7f6e5d4c3b2a190817"
SLACK_BOT_USER = "U0BOTSTUB"  # StubSlackServer's default bot user id
TABLE = "hermes-sessions"
BUCKET = "hermes-workspace"
SCHEDULE_GROUP = "hermes-test-agent"
SCHEDULER_ROLE_ARN = "arn:aws:iam::123456789012:role/hermes-test-scheduler"

_update_ids = itertools.count(1000)
_message_ids = itertools.count(1)
_slack_ids = itertools.count(1)


def settings_document(model_base_url: str, model: str, workdir: Path, **config: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"provider": "custom", "default": model, "base_url": model_base_url,
                  "api_key": "${STUB_MODEL_API_KEY}", "context_length": 131072},
        "terminal": {"backend": "local", "cwd": str(workdir)},
        "security": {"allow_lazy_installs": False},
        "memory": {"memory_enabled": True, "user_profile_enabled": False},
        # one attempt per invocation: SQS redelivery is the retry layer under test
        "agent": {"api_max_retries": 1},
    }
    for key, value in config.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return {"version": 1, "config": base, "soul": "You are the worker test persona.",
            "projectContext": None, "secretEnv": ["STUB_MODEL_API_KEY"]}


@dataclass
class ServerlessEnv:
    env: dict[str, str]
    queue_url: str = ""
    dlq_url: str = ""
    table: str = TABLE
    bucket: str = BUCKET
    extra: dict[str, Any] = field(default_factory=dict)


def provision(*, model_base_url: str, model: str, workdir: Path, telegram_api_base: str,
              telegram_token: str, max_receive_count: int = 3, with_queue: bool = False,
              visibility_timeout: int = 30, settings: dict[str, Any] | None = None,
              slack_api_base: str | None = None, slack_token: str | None = None, cron: bool = False,
              telegram: bool = True, **config: Any) -> ServerlessEnv:
    """Create table, bucket, secrets (and queue + DLQ) in the current AWS endpoint; return the env.

    With ``slack_api_base``/``slack_token`` the Slack channel is configured too
    (bot token and signing secret in Secrets Manager, every Slack user allowed).
    ``cron`` (needs ``with_queue``): a schedule group and the scheduled-jobs
    variables; the queue gets content-based deduplication, as the construct makes it.
    ``telegram=False`` leaves the Telegram channel out.
    """
    create_sessions_table(TABLE)
    create_bucket(BUCKET)
    token_arn = create_secret("hermes/telegram-bot-token", telegram_token)
    model_arn = create_secret("hermes/model-api-key", MODEL_KEY)
    webhook_arn = create_secret("hermes/telegram-webhook-secret", WEBHOOK_SECRET)
    doc = settings or settings_document(model_base_url, model, workdir, **config)
    env = {
        "HERMES_AWS_SETTINGS": json.dumps(doc),
        "HERMES_AWS_TABLE": TABLE,
        "HERMES_AWS_BUCKET": BUCKET,
        "HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN": token_arn,
        "HERMES_AWS_SECRET_ARNS": json.dumps({"STUB_MODEL_API_KEY": model_arn}),
        "HERMES_AWS_MAX_RECEIVE_COUNT": str(max_receive_count),
        "HERMES_AWS_TELEGRAM_API_BASE": telegram_api_base,
        "HERMES_AWS_AGENT_NAME": "test-agent",
        # ingress
        "HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN": webhook_arn,
        "HERMES_AWS_TELEGRAM_ALLOW_ALL": "true",
    }
    if slack_api_base and slack_token:
        env.update({
            "HERMES_AWS_SLACK_BOT_TOKEN_ARN": create_secret("hermes/slack-bot-token", slack_token),
            "HERMES_AWS_SLACK_API_BASE": slack_api_base,
            "HERMES_AWS_SLACK_SIGNING_SECRET_ARN": create_secret("hermes/slack-signing-secret", SLACK_SIGNING_SECRET),
            "HERMES_AWS_SLACK_ALLOW_ALL": "true",
        })
    if not telegram:
        for name in ("HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN", "HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN"):
            env.pop(name)
    out = ServerlessEnv(env)
    if with_queue:
        out.queue_url, out.dlq_url = create_fifo_queue_with_dlq(
            max_receive_count=max_receive_count, visibility_timeout=visibility_timeout)
        env["HERMES_AWS_QUEUE_URL"] = out.queue_url
        sqs = boto3.client("sqs")
        sqs.set_queue_attributes(QueueUrl=out.queue_url, Attributes={"ContentBasedDeduplication": "true"})
        if cron:
            boto3.client("scheduler").create_schedule_group(Name=SCHEDULE_GROUP)
            env.update({
                "HERMES_AWS_SCHEDULE_GROUP": SCHEDULE_GROUP,
                "HERMES_AWS_SCHEDULER_ROLE_ARN": SCHEDULER_ROLE_ARN,
                "HERMES_AWS_QUEUE_ARN": sqs.get_queue_attributes(
                    QueueUrl=out.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"],
            })
    elif cron:
        raise ValueError("cron needs with_queue")
    return out


def telegram_update(chat_id: int, text: str, *, user_id: int | None = None, update_id: int | None = None,
                    chat_type: str = "private", first_name: str = "Ada") -> dict[str, Any]:
    user_id = chat_id if user_id is None else user_id
    return {
        "update_id": next(_update_ids) if update_id is None else update_id,
        "message": {
            "message_id": next(_message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type},
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
            "text": text,
        },
    }


def sqs_record(update: dict[str, Any] | None = None, *, body: Any = None, receive_count: int = 1,
               message_id: str | None = None, group_id: str | None = None) -> dict[str, Any]:
    """An SQS record as Lambda delivers it from a FIFO queue."""
    if body is None:
        body = {"source": "telegram", "update": update,
                "received_at": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())}
    chat = (update or {}).get("message", {}).get("chat", {}).get("id")
    return {
        "messageId": message_id or f"msg-{next(_message_ids)}",
        "receiptHandle": "rh",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "MessageGroupId": group_id or (f"telegram:{chat}" if chat is not None else "other"),
            "MessageDeduplicationId": f"telegram:{(update or {}).get('update_id')}",
            "SentTimestamp": str(int(time.time() * 1000)),
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:hermes-inbound.fifo",
        "awsRegion": "us-east-1",
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def function_url_event(update: dict[str, Any], secret: str = WEBHOOK_SECRET) -> dict[str, Any]:
    """A Lambda Function URL (payload 2.0) request as Telegram's webhook sends it."""
    return {
        "version": "2.0",
        "rawPath": "/telegram",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-telegram-bot-api-secret-token": secret},
        "requestContext": {"http": {"method": "POST", "path": "/telegram", "sourceIp": "149.154.160.1"}},
        "body": json.dumps(update),
        "isBase64Encoded": False,
    }


def slack_envelope(text: str, *, channel: str = "D0DMALICE", user: str = "U0ALICE", event_type: str = "message",
                   channel_type: str = "im", ts: str | None = None, thread_ts: str | None = None,
                   event_id: str | None = None, **event_fields: Any) -> dict[str, Any]:
    """An Events API ``event_callback`` envelope (a DM by default; ``event_type="app_mention"`` for a mention)."""
    n = next(_slack_ids)
    event: dict[str, Any] = {"type": event_type, "user": user, "text": text, "channel": channel,
                             "ts": ts or f"1710000000.{n:06d}", "event_ts": ts or f"1710000000.{n:06d}"}
    if event_type == "message":
        event["channel_type"] = channel_type
    if thread_ts:
        event["thread_ts"] = thread_ts
    event.update(event_fields)
    return {
        "token": "legacy-verification-token", "team_id": "T0STUB", "api_app_id": "A0STUB", "type": "event_callback",
        "event": event, "event_id": event_id or f"Ev{n:08d}", "event_time": int(time.time()),
        "authorizations": [{"team_id": "T0STUB", "user_id": SLACK_BOT_USER, "is_bot": True}],
    }


def slack_request(body: Any, *, secret: str = SLACK_SIGNING_SECRET, timestamp: int | None = None,
                  retry_num: int | None = None, signature: str | None = None, b64: bool = False,
                  sign: bool = True) -> dict[str, Any]:
    """A Function URL (payload 2.0) request as Slack's Events API sends it, signed with ``secret``."""
    import base64

    from hermes_aws.channels.slack import compute_signature

    raw = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"content-type": "application/json", "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
    if sign:
        headers["x-slack-request-timestamp"] = ts
        headers["x-slack-signature"] = signature or compute_signature(secret, ts, raw)
    if retry_num is not None:
        headers.update({"x-slack-retry-num": str(retry_num), "x-slack-retry-reason": "http_timeout"})
    return {
        "version": "2.0", "rawPath": "/slack", "rawQueryString": "", "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/slack", "sourceIp": "3.80.1.1"}},
        "body": base64.b64encode(raw).decode() if b64 else raw.decode("utf-8"),
        "isBase64Encoded": b64,
    }


def table_items(pk: str) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb")
    return ddb.query(TableName=TABLE, KeyConditionExpression="PK = :pk",
                     ExpressionAttributeValues={":pk": {"S": pk}}, ConsistentRead=True)["Items"]


def stored_messages(chat_id: int | str, channel: str = "telegram") -> list[dict[str, Any]]:
    """Every stored message of the chat's current session, oldest first (``chat_id``: the session key's rest)."""
    items = table_items(f"SESSION#{channel}:{chat_id}")
    meta = next((i for i in items if i["SK"]["S"] == "META"), None)
    if meta is None:
        return []
    prefix = f"MSG#{meta['session_id']['S']}#"
    return [json.loads(i["message"]["S"]) for i in items if i["SK"]["S"].startswith(prefix)]


def update_state(update_id: int | str, channel: str = "telegram") -> dict[str, Any] | None:
    items = table_items(f"UPDATE#{channel}:{update_id}")
    return items[0] if items else None


# --------------------------------------------------------------------------- harness


@dataclass
class Harness:
    env: ServerlessEnv
    paths: Any  # conftest.HermesPaths
    sqs: Any
    model: Any  # StubModelServer
    telegram: Any  # StubTelegramServer
    slack: Any = None  # StubSlackServer
    invocations: int = 0

    # -- ingress ---------------------------------------------------------------
    def call_ingress(self, event: dict[str, Any]) -> dict[str, Any]:
        from hermes_aws import lambda_ingress

        return lambda_ingress.handler(event, None)

    def post(self, update: dict[str, Any]) -> None:
        response = self.call_ingress(function_url_event(update))
        assert response["statusCode"] == 200, response

    def post_slack(self, envelope: dict[str, Any], **request: Any) -> dict[str, Any]:
        return self.call_ingress(slack_request(envelope, **request))

    # -- the event source mapping ------------------------------------------------
    def receive(self, max_messages: int = 10) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.env.queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=0,
            AttributeNames=["All"], MessageSystemAttributeNames=["All"],
        ).get("Messages", [])

    def drain(self, worker: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
              max_batches: int = 50, batch_size: int = 10) -> list[dict[str, Any]]:
        """Feed the queue to the worker until it is empty; returns every handler result."""
        from hermes_aws import lambda_worker

        worker = worker or (lambda event: lambda_worker.handler(event, None))
        results = []
        for _ in range(max_batches):
            messages = self.receive(batch_size)
            if not messages:
                return results
            result = worker({"Records": [to_record(m, self.env.queue_url) for m in messages]})
            self.invocations += 1
            results.append(result)
            failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
            for m in messages:
                if m["MessageId"] in failed:
                    self.sqs.change_message_visibility(QueueUrl=self.env.queue_url,
                                                       ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
                else:
                    self.sqs.delete_message(QueueUrl=self.env.queue_url, ReceiptHandle=m["ReceiptHandle"])
        raise AssertionError("the queue did not drain")

    def dlq_bodies(self) -> list[dict[str, Any]]:
        msgs = self.sqs.receive_message(QueueUrl=self.env.dlq_url, MaxNumberOfMessages=10,
                                        AttributeNames=["All"]).get("Messages", [])
        return [json.loads(m["Body"]) for m in msgs]

    def queue_depth(self) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.env.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def to_record(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping hands it to the function."""
    attrs = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: attrs[k] for k in (
            "ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
            "SequenceNumber", "MessageGroupId", "MessageDeduplicationId") if k in attrs},
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:" + queue_url.rsplit("/", 1)[-1],
        "awsRegion": "us-east-1",
    }
