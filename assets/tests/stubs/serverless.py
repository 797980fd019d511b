"""Helpers for driving the serverless handlers in tests: resources, environment, events."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from stubs.aws_resources import create_bucket, create_fifo_queue_with_dlq, create_secret, create_sessions_table

MODEL_KEY = "sk-stub-worker-0123456789abcdef"
WEBHOOK_SECRET = "webhook-secret-for-tests_0123456789"
TABLE = "hermes-sessions"
BUCKET = "hermes-workspace"

_update_ids = itertools.count(1000)
_message_ids = itertools.count(1)


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
              **config: Any) -> ServerlessEnv:
    """Create table, bucket, secrets (and queue + DLQ) in the current AWS endpoint; return the env."""
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
    out = ServerlessEnv(env)
    if with_queue:
        out.queue_url, out.dlq_url = create_fifo_queue_with_dlq(
            max_receive_count=max_receive_count, visibility_timeout=visibility_timeout)
        env["HERMES_AWS_QUEUE_URL"] = out.queue_url
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


def table_items(pk: str) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb")
    return ddb.query(TableName=TABLE, KeyConditionExpression="PK = :pk",
                     ExpressionAttributeValues={":pk": {"S": pk}}, ConsistentRead=True)["Items"]


def stored_messages(chat_id: int | str) -> list[dict[str, Any]]:
    """Every stored message of the chat's current session, oldest first."""
    items = table_items(f"SESSION#telegram:{chat_id}")
    meta = next((i for i in items if i["SK"]["S"] == "META"), None)
    if meta is None:
        return []
    prefix = f"MSG#{meta['session_id']['S']}#"
    return [json.loads(i["message"]["S"]) for i in items if i["SK"]["S"].startswith(prefix)]


def update_state(update_id: int | str) -> dict[str, Any] | None:
    items = table_items(f"UPDATE#telegram:{update_id}")
    return items[0] if items else None
