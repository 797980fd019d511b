"""CloudFormation custom resource: register the Telegram webhook (setWebhook / deleteWebhook).

Handler ``hermes_aws.webhook_registration.handler``, invoked **directly** by
CloudFormation (``ServiceToken`` = this function's ARN; no provider framework),
so it answers CloudFormation itself: a ``PUT`` of the cfn-response JSON to the
pre-signed ``ResponseURL``, always - also when it fails or raises.

ResourceProperties
------------------
``BotTokenSecretArn``  secret with the bot token (may still hold the placeholder)
``WebhookSecretArn``   secret with the webhook secret token (generated)
``Url``                the ingress Function URL; ``/telegram`` is appended unless the
                       URL already ends with it (``https://x.lambda-url.../`` and
                       ``https://x.lambda-url.../telegram`` give the same webhook)
``AllowedUpdates``     list of update types (default ``["message"]``)

Behaviour
---------
* Create/Update: ``setWebhook(url, secret_token, allowed_updates, drop_pending_updates=false)``.
  A Telegram error is FAILED with Telegram's description (never the token).
* Delete: ``deleteWebhook`` - unless ``getWebhookInfo`` shows the bot's webhook now
  points somewhere else (someone re-pointed the bot: leave it alone). Errors are
  logged and answered SUCCESS: nothing here may block a stack deletion.
* While the bot token secret holds the placeholder, every request type answers
  SUCCESS with ``Data.Status`` = ``skipped: bot token secret <arn> still holds the
  placeholder; store the token, then run the RegisterWebhookCommand output``: the first deploy must succeed.
  (CloudFormation re-invokes a custom resource only when its properties change,
  so the construct should pass a property that changes on every deployment.)
* ``PhysicalResourceId`` is ``telegram-webhook-<hash of BotTokenSecretArn>``: the
  same across updates, a new one (so CloudFormation deletes the old webhook, with
  the old token) only when the bot changes. A failed Create answers with the id
  suffixed ``-create-failed`` so the rollback's Delete does not touch a webhook
  that was never ours.

Direct invocation (no CloudFormation)
-------------------------------------
``{"action": "register"}`` (after storing the bot token, instead of a redeploy) or
``{"action": "unregister"}`` run the same code with the properties taken from the
function's environment - ``HERMES_AWS_BOT_TOKEN_SECRET_ARN``,
``HERMES_AWS_WEBHOOK_SECRET_ARN``, ``HERMES_AWS_WEBHOOK_URL``,
``HERMES_AWS_ALLOWED_UPDATES`` (comma-separated) - and return
``{"Status", "Reason", "Data"}`` instead of answering CloudFormation. Here every
problem is FAILED, also for ``unregister``.

Environment: ``HERMES_AWS_TELEGRAM_API_BASE`` (tests; default the public Bot API).
Logs one ``{"event": "webhook_registration", ...}`` line per request.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from hermes_aws import events
from hermes_aws.channels.http import HttpClient
from hermes_aws.channels.telegram import HANDLED_UPDATE_TYPES, TelegramClient, TelegramError
from hermes_aws.secrets import SecretCache, SecretError, is_placeholder

EVENT = "webhook_registration"
ROUTE = "telegram"
FAILED_SUFFIX = "-create-failed"
MAX_REASON = 1000  # the whole response must stay under 4096 bytes
RESPONSE_ATTEMPTS = 4


class _Done(Exception):
    """Finish with this status / reason / data."""

    def __init__(self, status: str, reason: str, data: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.data = status, reason, data or {}


ACTIONS = {"register": "Create", "unregister": "Delete"}  # direct invocation -> request type
BOT_TOKEN_SECRET_ARN_ENV = "HERMES_AWS_BOT_TOKEN_SECRET_ARN"
WEBHOOK_SECRET_ARN_ENV = "HERMES_AWS_WEBHOOK_SECRET_ARN"
WEBHOOK_URL_ENV = "HERMES_AWS_WEBHOOK_URL"
ALLOWED_UPDATES_ENV = "HERMES_AWS_ALLOWED_UPDATES"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        event = {}
    if "RequestType" not in event and "action" in event:
        return invoke_directly(event, context)
    request_type = str(event.get("RequestType") or "")
    physical_id = str(event.get("PhysicalResourceId") or "telegram-webhook")
    scrub: list[str] = []  # secret values seen: never let them into Reason or logs
    try:
        props = event.get("ResourceProperties") or {}
        if not isinstance(props, dict):
            raise _Done("SUCCESS" if request_type == "Delete" else "FAILED",
                        "ResourceProperties must be an object")
        if request_type != "Delete" or not event.get("PhysicalResourceId"):
            # A new bot (token secret) is a new resource: CloudFormation then deletes the old one.
            physical_id = physical_resource_id(props)
        status, reason, data = _run(request_type, props, event, context, scrub)
    except _Done as done:
        status, reason, data = done.status, done.reason, done.data
    except Exception as exc:  # always answer CloudFormation
        reason = f"unexpected {type(exc).__name__}: {exc}"
        status = "SUCCESS" if request_type == "Delete" else "FAILED"
        data = {"Status": "error: " + reason}
    reason = _scrub(reason, scrub)
    data = {k: _scrub(str(v), scrub) for k, v in data.items()}
    if status == "FAILED" and request_type == "Create":
        physical_id = physical_id + FAILED_SUFFIX
    try:
        events.emit(EVENT, request_type=request_type, status=status,
                    reason=events.short(reason), physical_resource_id=physical_id,
                    logical_resource_id=str(event.get("LogicalResourceId") or ""))
    except Exception:  # the answer matters more than the log line
        pass
    body = {
        "Status": status,
        "Reason": reason[:MAX_REASON],
        "PhysicalResourceId": physical_id,
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
        "NoEcho": False,
        "Data": data,
    }
    if event.get("ResponseURL"):
        send_response(str(event["ResponseURL"]), body)
    return body


def invoke_directly(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"action": "register" | "unregister"}`` with the properties from the environment."""
    action = str(event.get("action") or "")
    scrub: list[str] = []
    updates = os.environ.get(ALLOWED_UPDATES_ENV)
    props = {
        "BotTokenSecretArn": os.environ.get(BOT_TOKEN_SECRET_ARN_ENV, ""),
        "WebhookSecretArn": os.environ.get(WEBHOOK_SECRET_ARN_ENV, ""),
        "Url": os.environ.get(WEBHOOK_URL_ENV, ""),
        "AllowedUpdates": None if updates is None else [u.strip() for u in updates.split(",") if u.strip()],
    }
    try:
        if action not in ACTIONS:
            raise _Done("FAILED", f"unknown action {events.short(action, 40)!r} "
                                  f"(expected one of: {', '.join(ACTIONS)})")
        status, reason, data = _run(ACTIONS[action], props, {}, context, scrub, lenient=False)
    except _Done as done:
        status, reason, data = done.status, done.reason, done.data
    except Exception as exc:
        status, reason, data = "FAILED", f"unexpected {type(exc).__name__}: {exc}", {}
    reason = _scrub(reason, scrub)[:MAX_REASON]
    data = {k: _scrub(str(v), scrub) for k, v in data.items()}
    events.emit(EVENT, action=events.short(action, 40), status=status, reason=events.short(reason))
    return {"Status": status, "Reason": reason, "Data": data}


def physical_resource_id(props: dict[str, Any]) -> str:
    arn = str(props.get("BotTokenSecretArn") or "")
    return "telegram-webhook-" + hashlib.sha256(arn.encode()).hexdigest()[:16]


def webhook_url(url: str) -> str:
    """The Function URL with the ``/telegram`` route, joined without a double slash."""
    base = url.strip().rstrip("/")
    if not base:
        raise ValueError("Url is empty")
    return base if base.endswith("/" + ROUTE) else f"{base}/{ROUTE}"


def make_telegram_client(token: str, context: Any) -> TelegramClient:
    """The Bot API client; its retries fit in a third of the remaining invocation time."""
    remaining = 60.0
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000.0
    http = HttpClient(max_attempts=3, max_total_wait=max(1.0, min(20.0, remaining / 3)))
    return TelegramClient.from_env(token, http=http)


def _run(request_type: str, props: dict[str, Any], event: dict[str, Any], context: Any,
         scrub: list[str], *, lenient: bool = True) -> tuple[str, str, dict[str, str]]:
    """Do the work; ``lenient``: a failing Delete still answers SUCCESS (CloudFormation)."""
    deleting = request_type == "Delete"
    if request_type not in ("Create", "Update", "Delete"):
        raise _Done("FAILED", f"unknown RequestType {request_type!r}")
    if deleting and str(event.get("PhysicalResourceId") or "").endswith(FAILED_SUFFIX):
        return "SUCCESS", "nothing to delete: the create had failed", {"Status": "skipped: create had failed"}
    bad = "SUCCESS" if deleting and lenient else "FAILED"  # how a problem is answered

    token_arn = str(props.get("BotTokenSecretArn") or "")
    if not token_arn:
        raise _Done(bad, "BotTokenSecretArn is required")
    secrets = SecretCache(ttl_seconds=0)
    try:
        token = secrets.get(token_arn).strip()
    except SecretError as exc:
        raise _Done(bad, str(exc)) from None
    scrub.append(token)
    if not token or is_placeholder(token):
        status = (f"skipped: bot token secret {token_arn} still holds the placeholder; "
                  "store the token, then run the stack's RegisterWebhookCommand output")
        return "SUCCESS", status, {"Status": status}

    try:
        url = webhook_url(str(props.get("Url") or ""))
    except ValueError as exc:
        raise _Done(bad, f"Url: {exc}") from None
    try:
        client = make_telegram_client(token, context)
    except ValueError as exc:
        raise _Done(bad, f"bot token secret {token_arn}: {exc}") from None

    if deleting:
        return _delete(client, url, lenient)

    allowed = props.get("AllowedUpdates")
    if allowed is None:
        allowed = list(HANDLED_UPDATE_TYPES)
    if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
        raise _Done("FAILED", "AllowedUpdates must be a list of strings")
    secret_arn = str(props.get("WebhookSecretArn") or "")
    if not secret_arn:
        raise _Done("FAILED", "WebhookSecretArn is required")
    try:
        secret = secrets.get(secret_arn)
    except SecretError as exc:
        raise _Done("FAILED", str(exc)) from None
    scrub.append(secret)
    if not secret.strip() or is_placeholder(secret):
        raise _Done("FAILED", f"webhook secret {secret_arn} is empty or a placeholder")
    try:
        client.set_webhook(url, secret, allowed, drop_pending_updates=False)
    except TelegramError as exc:
        raise _Done("FAILED", f"Telegram setWebhook failed ({exc.status}): {exc.description}") from None
    status = f"registered {url} for {','.join(allowed) or 'all updates'}"
    return "SUCCESS", status, {"Status": status, "Url": url}


def _delete(client: TelegramClient, url: str, lenient: bool) -> tuple[str, str, dict[str, str]]:
    try:
        info = client.call("getWebhookInfo")
        current = info.get("url") if isinstance(info, dict) else None
    except TelegramError:
        current = None  # cannot tell: delete anyway
    if current and current != url:
        status = "skipped: the bot's webhook points elsewhere now; left as it is"
        return "SUCCESS", status, {"Status": status}
    try:
        client.delete_webhook(drop_pending_updates=False)
    except TelegramError as exc:
        if not lenient:
            raise _Done("FAILED", f"Telegram deleteWebhook failed ({exc.status}): {exc.description}") from None
        status = f"deleteWebhook failed ({exc.status}): {exc.description}; ignored"
        return "SUCCESS", status, {"Status": status}
    return "SUCCESS", "webhook deleted", {"Status": "deleted"}


def send_response(response_url: str, body: dict[str, Any], *, timeout: float = 10.0,
                  sleep: Any = time.sleep) -> bool:
    """PUT the cfn-response body to the pre-signed URL (no Content-Type: it is not signed)."""
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    host = urllib.parse.urlsplit(response_url).netloc  # the query string is a credential
    for attempt in range(1, RESPONSE_ATTEMPTS + 1):
        req = urllib.request.Request(response_url, data=data, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(data))})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                resp.read()
                if 200 <= resp.status < 300:
                    return True
                problem = f"HTTP {resp.status}"
        except urllib.error.HTTPError as err:
            problem = f"HTTP {err.code}"
            err.close()
        except (urllib.error.URLError, OSError) as exc:
            problem = type(exc).__name__
        events.emit(EVENT, response="not delivered", host=host, attempt=attempt, problem=problem)
        if attempt < RESPONSE_ATTEMPTS:
            sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
    return False


def _scrub(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, "<redacted>")
    return text
