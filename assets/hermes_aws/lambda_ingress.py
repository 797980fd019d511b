"""Ingress Lambda: Telegram and Slack webhooks -> SQS FIFO, acknowledged in milliseconds.

Handler ``hermes_aws.lambda_ingress.handler`` behind a Lambda **Function URL**
(payload format 2.0). It never runs the agent: it checks the request, applies
the allow-list and puts the message on the FIFO queue the worker consumes.

Imports: the standard library, boto3 (bundled in the Lambda runtime) and the
light ``hermes_aws`` modules (events, placeholders, secrets, channels.base,
channels.telegram, channels.slack). Never Hermes, yaml or anything else heavy:
the cold start is measured by ``bench/ingress_latency.py`` and guarded by a test.

Environment
-----------
``HERMES_AWS_QUEUE_URL``                    FIFO queue URL (required)
``HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN``  secret holding the Telegram webhook secret token;
                                            set = ``POST /telegram`` enabled
``HERMES_AWS_TELEGRAM_ALLOWED_USERS``       comma-separated numeric Telegram user ids
``HERMES_AWS_TELEGRAM_ALLOW_ALL``           ``true`` to accept every Telegram user
``HERMES_AWS_SLACK_SIGNING_SECRET_ARN``     secret holding the Slack app's signing secret;
                                            set = ``POST /slack`` enabled
``HERMES_AWS_SLACK_ALLOWED_USERS``          comma-separated Slack user ids (``U012ABC``)
``HERMES_AWS_SLACK_ALLOW_ALL``              ``true`` to accept every Slack user
``HERMES_AWS_MAX_BODY_BYTES``               request body limit, default 65536
``HERMES_AWS_AGENT_NAME``                   the ``Agent`` metric dimension (default ``default``)

Secrets are read from Secrets Manager and cached 5 minutes. Per channel,
neither allow-list variable set = nobody is allowed.

Request handling, in this order
-------------------------------
1. route: ``POST /telegram`` and ``POST /slack``, each only when its secret is
   configured; other paths 404, other methods on them 405 (``Allow: POST``)
2. size: 413 when the body (base64-decoded when ``isBase64Encoded``) is over the limit,
   checked before anything parses it (400 when the base64 itself is invalid)
3. authenticity, before the body is parsed:

   * Telegram: ``X-Telegram-Bot-Api-Secret-Token`` missing 401, wrong 403 (constant time);
   * Slack: the v0 signature (:func:`hermes_aws.channels.slack.verify_signature`, HMAC-SHA256
     of ``v0:<timestamp>:<raw body>``): ``X-Slack-Signature`` or
     ``X-Slack-Request-Timestamp`` missing 401, a timestamp more than 5 minutes
     away (a replay) 403, a wrong signature 403 - so even ``url_verification``
     is answered only to Slack.

4. JSON: 400 unless a JSON object (NaN/Infinity refused); Telegram: with an
   integer ``update_id``
5. what it is, from whom (:func:`~hermes_aws.channels.telegram.parse_update`,
   :func:`~hermes_aws.channels.slack.classify`): Slack's ``url_verification`` is
   answered ``{"challenge": ...}``; unsupported updates/events (edits, bots, the
   bot's own messages, channel messages without a mention, ...) and users not on
   the allow-list get 200 (so the channel does not redeliver) and are not queued
6. ``SendMessage`` -> 200 ``{"ok": true}``; a failed send is 500 so the channel
   retries (the dedup id keeps one copy within SQS's 5-minute window):

   * Telegram: group ``telegram:<chat_id>``, dedup ``telegram:<update_id>``, body
     ``{"source": "telegram", "update": <update>, "received_at": "<iso>"}``;
   * Slack: group ``slack:<channel id>``, dedup ``slack:<event_id>``, body
     ``{"source": "slack", "event": <envelope>, "received_at": "<iso>"}``.
     Slack redelivers an event it got no answer for within 3 seconds with the
     same ``event_id`` (``X-Slack-Retry-Num``, logged as ``retry``): SQS drops the
     copy, and the worker's ledger answers an event at most once after that.

The incoming body is only ever the ``update``/``event`` inside an envelope the
ingress writes itself: a body that says ``"source": "hermes.cron"`` cannot
become a scheduler message.

Each request writes one JSON line (``events.emit``): ``event: "ingress"``,
``outcome`` (``accepted`` | ``rejected`` | ``ignored`` | ``error``), ``reason``,
``status``, ``source`` and ids (never the text or a secret), carrying an EMF
block: namespace ``HermesAgent/Serverless``, dimension ``Agent``, metrics
``IngressAccepted``, ``IngressRejected``, ``IngressIgnored``, ``IngressError``
(each 0 or 1). ``rejected`` = refused with a 4xx (probing, misconfiguration);
``ignored`` = a genuine update/event acknowledged but not queued (unsupported,
not allowed, Slack's URL verification).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from datetime import datetime, timezone
from typing import Any

from hermes_aws import events
from hermes_aws.channels import slack
from hermes_aws.channels.telegram import (
    parse_update,
    secret_token_header,
    secret_tokens_match,
    update_id_of,
)
from hermes_aws.secrets import SecretCache, SecretError, is_placeholder

QUEUE_URL_ENV = "HERMES_AWS_QUEUE_URL"
WEBHOOK_SECRET_ARN_ENV = "HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN"
ALLOWED_USERS_ENV = "HERMES_AWS_TELEGRAM_ALLOWED_USERS"
ALLOW_ALL_ENV = "HERMES_AWS_TELEGRAM_ALLOW_ALL"
SLACK_SIGNING_SECRET_ARN_ENV = "HERMES_AWS_SLACK_SIGNING_SECRET_ARN"
SLACK_ALLOWED_USERS_ENV = "HERMES_AWS_SLACK_ALLOWED_USERS"
SLACK_ALLOW_ALL_ENV = "HERMES_AWS_SLACK_ALLOW_ALL"
MAX_BODY_ENV = "HERMES_AWS_MAX_BODY_BYTES"

DEFAULT_MAX_BODY_BYTES = 65536
ROUTE = "/telegram"
SOURCE = "telegram"
SLACK_ROUTE = "/slack"
EVENT = "ingress"
METRICS = {  # outcome -> metric name
    "accepted": "IngressAccepted",
    "rejected": "IngressRejected",
    "ignored": "IngressIgnored",
    "error": "IngressError",
}
_TRUE = frozenset({"1", "true", "yes", "on"})

# Per execution environment: created on first use (or at init inside Lambda, below).
_secret_cache: SecretCache | None = None
_sqs_client: Any = None


def reset() -> None:
    """Forget cached clients and secrets (tests)."""
    global _secret_cache, _sqs_client
    _secret_cache, _sqs_client = None, None


def secret_cache() -> SecretCache:
    global _secret_cache
    if _secret_cache is None:
        _secret_cache = SecretCache()
    return _secret_cache


def sqs_client() -> Any:
    global _sqs_client
    if _sqs_client is None:
        from hermes_aws.secrets import make_client

        _sqs_client = make_client("sqs")
    return _sqs_client


class _Result(Exception):
    """Ends request handling with a response; carries what to log."""

    def __init__(self, status: int, outcome: str, reason: str, *, body: dict[str, Any] | None = None,
                 **log: Any) -> None:
        super().__init__(reason)
        self.status, self.outcome, self.reason, self.log, self.body = status, outcome, reason, log, body


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    log: dict[str, Any] = {}
    try:
        result = _handle(event if isinstance(event, dict) else {}, log)
    except _Result as res:
        result = res
    except Exception as exc:  # never let a bug answer with a stack trace (or a secret)
        result = _Result(500, "error", f"unexpected {type(exc).__name__}")
    log.update(result.log)
    _emit(result, log, context, started)
    return _response(result.status, result.status < 300,
                     {"allow": "POST"} if result.status == 405 else None, result.body)


def _handle(event: dict[str, Any], log: dict[str, Any]) -> _Result:
    http = (event.get("requestContext") or {}).get("http") or {}
    method = str(http.get("method") or "").upper()
    path = str(event.get("rawPath") or http.get("path") or "")
    log.update(method=events.short(method, 10), path=events.short(path, 80))

    # 1. route (a channel without its secret configured has no route)
    route = _ROUTES.get(path)
    if route is None or not os.environ.get(route[0], "").strip():
        raise _Result(404, "rejected", "no such route")
    if method != "POST":
        raise _Result(405, "rejected", "method not allowed")
    log["source"] = "telegram" if path == ROUTE else "slack"

    # 2. size, on the raw bytes
    limit = _int_env(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES)
    raw = _body_bytes(event, limit)
    log["bytes"] = len(raw)
    headers = event.get("headers") or {}
    return route[1](raw, headers if isinstance(headers, dict) else {}, log)


def _telegram(raw: bytes, headers: dict[str, Any], log: dict[str, Any]) -> _Result:
    # 3. secret token
    given = secret_token_header(headers)
    if given is None:
        raise _Result(401, "rejected", "missing secret token")
    expected = _secret(WEBHOOK_SECRET_ARN_ENV, "webhook secret")
    if not secret_tokens_match(given, expected):
        raise _Result(403, "rejected", "wrong secret token")

    # 4. JSON object with an update_id
    update = _json_object(raw)
    update_id = update_id_of(update)
    if update_id is None:
        raise _Result(400, "rejected", "not a Telegram update (no integer update_id)")
    log["update_id"] = update_id

    # 5. what kind of update, from whom
    message = parse_update(update)
    if message is None:
        raise _Result(200, "ignored", f"unsupported update: {_kind(update)}")
    log.update(chat_id=message.chat_id, user_id=message.user_id, chat_type=message.chat_type)
    if not _allowed(message.user_id, ALLOWED_USERS_ENV, ALLOW_ALL_ENV):
        raise _Result(200, "ignored", "user not allowed")

    # 6. enqueue
    return _enqueue({"source": SOURCE, "update": update}, group=message.group_id, dedup=message.dedup_key)


def _slack(raw: bytes, headers: dict[str, Any], log: dict[str, Any]) -> _Result:
    retry = slack.retry_info(headers)
    if retry is not None:
        log.update(retry=retry.num, retry_reason=events.short(retry.reason, 40) if retry.reason else None)

    # 3. signature, on the raw bytes, before anything is parsed or answered
    if any(slack.header_value(headers, h) is None for h in (slack.TIMESTAMP_HEADER, slack.SIGNATURE_HEADER)):
        raise _Result(401, "rejected", slack.SIGNATURE_MISSING)  # before the secret is fetched
    problem = slack.signature_problem(headers, raw, _secret(SLACK_SIGNING_SECRET_ARN_ENV, "signing secret"))
    if problem is not None:
        raise _Result(403, "rejected", problem)

    # 4. JSON object
    payload = _json_object(raw)

    # 5. what it is, from whom
    sorted_ = slack.classify(payload)
    if sorted_.event_id:
        log["event_id"] = events.short(sorted_.event_id, 40)
    if sorted_.kind == slack.URL_VERIFICATION:
        raise _Result(200, "ignored", "url_verification", body={"challenge": sorted_.challenge})
    message = sorted_.message
    if sorted_.kind != slack.EVENT_CALLBACK or message is None:
        raise _Result(200, "ignored", f"unsupported event: {sorted_.reason}")
    log.update(chat_id=message.chat_id, user_id=message.user_id, chat_type=message.chat_type)
    if not _allowed(message.user_id, SLACK_ALLOWED_USERS_ENV, SLACK_ALLOW_ALL_ENV):
        raise _Result(200, "ignored", "user not allowed")

    # 6. enqueue
    return _enqueue({"source": slack.CHANNEL, "event": payload}, group=message.group_id, dedup=message.dedup_key)


#: path -> (the environment variable that enables it, handler)
_ROUTES = {ROUTE: (WEBHOOK_SECRET_ARN_ENV, _telegram), SLACK_ROUTE: (SLACK_SIGNING_SECRET_ARN_ENV, _slack)}


def _enqueue(envelope: dict[str, Any], *, group: str, dedup: str) -> _Result:
    queue_url = os.environ.get(QUEUE_URL_ENV, "").strip()
    if not queue_url:
        raise _Result(500, "error", f"{QUEUE_URL_ENV} is not set")
    envelope = {**envelope, "received_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        resp = sqs_client().send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(envelope, ensure_ascii=True, separators=(",", ":")),
            MessageGroupId=group,
            MessageDeduplicationId=dedup,
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        raise _Result(500, "error", f"enqueue failed: {code}") from None
    except BotoCoreError as exc:
        raise _Result(500, "error", f"enqueue failed: {type(exc).__name__}") from None
    return _Result(200, "accepted", "queued", sqs_message_id=resp.get("MessageId"))


def _body_bytes(event: dict[str, Any], limit: int) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise _Result(400, "rejected", "body is not a string")
    if event.get("isBase64Encoded"):
        # 4 base64 characters per 3 bytes: refuse what cannot fit before decoding it.
        if len(body) > 4 * ((limit + 2) // 3) + 4:
            raise _Result(413, "rejected", "body too large")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _Result(400, "rejected", "invalid base64 body") from None
    else:
        if len(body) > limit:  # each character is at least one byte
            raise _Result(413, "rejected", "body too large")
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > limit:
        raise _Result(413, "rejected", "body too large")
    return raw


def _secret(env: str, what: str) -> str:
    arn = os.environ.get(env, "").strip()
    if not arn:  # pragma: no cover - the route is disabled without it
        raise _Result(500, "error", f"{env} is not set")
    try:
        value = secret_cache().get(arn)
    except SecretError as exc:
        raise _Result(500, "error", f"{what} unavailable: {exc.code}") from None
    value = value.strip()  # a secret pasted with a trailing newline
    if not value:
        raise _Result(500, "error", f"{what} is empty")
    if is_placeholder(value):
        raise _Result(500, "error", f"{what} still holds the placeholder value")
    return value


def _json_object(raw: bytes) -> dict[str, Any]:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Result(400, "rejected", "body is not JSON") from None
    if not isinstance(data, dict):
        raise _Result(400, "rejected", "body is not a JSON object")
    return data


def _allowed(user_id: str, users_env: str, all_env: str) -> bool:
    if os.environ.get(all_env, "").strip().lower() in _TRUE:
        return True
    allowed = {u.strip() for u in os.environ.get(users_env, "").split(",")}
    allowed.discard("")
    return user_id in allowed


def _kind(update: dict[str, Any]) -> str:
    """What the update is, for the log line (e.g. ``callback_query``, ``message without text``)."""
    message = update.get("message")
    if isinstance(message, dict):
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            return "message without text"
        if not isinstance(message.get("from"), dict):
            return "message without sender"
        chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
        return f"message in {events.short(chat.get('type'), 20)} chat"
    kinds = sorted(str(k) for k in update if k != "update_id")
    return events.short(",".join(kinds[:3]), 60) or "empty"


def _int_env(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


def _response(status: int, ok: bool, headers: dict[str, str] | None = None,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
    if body is None:
        body = {"ok": True} if ok else {"ok": False, "error": _STATUS_TEXT.get(status, "error")}
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
    }


_STATUS_TEXT = {
    400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
    405: "method not allowed", 413: "payload too large", 500: "internal error",
}


def _emit(result: _Result, log: dict[str, Any], context: Any, started: float) -> None:
    agent = events.agent_name()
    fields: dict[str, Any] = {
        "outcome": result.outcome,
        "reason": events.short(result.reason, 200),
        "status": result.status,
        **log,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "agent": agent,
    }
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        fields["request_id"] = str(request_id)
    fields.update(events.emf_fields(events.METRIC_NAMESPACE, {"Agent": agent}, {
        name: (int(outcome == result.outcome), "Count") for outcome, name in METRICS.items()
    }))
    try:
        events.emit(EVENT, **fields)
    except Exception:  # logging must never turn an answer into an error
        pass


# Inside Lambda, create the clients and read the channel secrets during init (which
# Lambda may run ahead of the first request); elsewhere (tests, benchmarks) on first use.
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get(QUEUE_URL_ENV):
    try:
        sqs_client()
        for _env, _ in _ROUTES.values():
            if os.environ.get(_env, "").strip():
                secret_cache().get(os.environ[_env].strip())
    except Exception:  # pragma: no cover - retried on first use
        reset()
