"""AgentCore dispatcher Lambda: queue -> ``InvokeAgentRuntime`` -> channel reply.

Handler ``hermes_aws.agentcore_dispatcher.handler`` (zip, Python, ARM64; the
standard library and boto3 only, no Hermes), event source: the agent's SQS
FIFO queue (``ReportBatchItemFailures`` on), the same queue and message bodies
the serverless worker consumes: chat messages from the ingress (Telegram,
Slack) and fired ``hermes.cron`` jobs from EventBridge Scheduler.

Environment (set by the construct)
----------------------------------
``HERMES_AWS_AGENT_RUNTIME_ARN``         the AgentCore runtime
``HERMES_AWS_AGENT_RUNTIME_QUALIFIER``   endpoint name (default: the runtime's DEFAULT endpoint)
``HERMES_AWS_INVOKE_TIMEOUT_SECONDS``    how long to wait for the runtime's answer (default 840)
``HERMES_AWS_TABLE``                     the idempotency ledger and the token budgets
``HERMES_AWS_QUEUE_URL``                 the queue (retry back-off, optional)
``HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN`` / ``HERMES_AWS_SLACK_BOT_TOKEN_ARN``  the channels' bot tokens
``HERMES_AWS_MAX_RECEIVE_COUNT``         the queue's ``maxReceiveCount`` (default 3)
``HERMES_AWS_DAILY_TOKEN_BUDGET`` / ``HERMES_AWS_TOKEN_PRICES``  budgets and the cost metric
``HERMES_AWS_AGENT_NAME``                ``Agent`` metric dimension
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``   data-plane endpoint (tests)

Per message (the worker's rules, with the worker's code where it is the same)
-----------------------------------------------------------------------------
1. Parse the body (:func:`hermes_aws.chats.parse_queue_body`,
   :func:`hermes_aws.scheduler.fired_job`); anything else is acknowledged.
2. Idempotency: the worker's ledger (:class:`hermes_aws.lambda_worker.UpdateLedger`,
   keyed by ``message.dedup_key`` / the job tick's key). ``DELIVERED``: done.
   ``PERSISTED`` (the runtime stored the turn and its reply, but the reply was
   not, or not completely, sent): the stored text is sent, the runtime is not
   invoked again.
3. Budget (chat messages but ``/new``): over the user's daily token budget,
   the user gets the budget message and the runtime is not invoked.
4. ``InvokeAgentRuntime`` (:mod:`hermes_aws.agentcore_contract`: runtime
   session per chat, runtime user = the message's user, payload = the body)
   with "typing..." shown meanwhile. The runtime runs the turn and stores it
   with the ledger's ``PERSISTED`` record in one transaction, then answers.
5. Tokens are charged to the user's budget; the reply goes out chunk by chunk
   with the progress recorded, then ``DELIVERED`` (the worker's ``_deliver``);
   a job's result goes to its delivery targets. One ``turn`` event with the
   worker's metrics (``HermesAgent/Serverless``, per agent and per user).
6. Failures (throttling, the runtime's errors, a timeout, an answer that does
   not follow the contract): the message is reported in
   ``batchItemFailures`` and made visible again after a short back-off
   (``ChangeMessageVisibility``: throttling ``15 s x attempt``, otherwise
   ``30 s x 2^(attempt-1)``, at most 15 minutes) instead of the queue's long
   visibility timeout. On the last attempt the chat gets the worker's one
   apology (conditional write: never twice), and SQS dead-letters the message.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hermes_aws import agentcore_contract as contract
from hermes_aws import events
from hermes_aws.sqs_batch import RecordInfo, process_batch

logger = logging.getLogger(__name__)

RUNTIME_ARN_ENV = "HERMES_AWS_AGENT_RUNTIME_ARN"
QUALIFIER_ENV = "HERMES_AWS_AGENT_RUNTIME_QUALIFIER"
INVOKE_TIMEOUT_ENV = "HERMES_AWS_INVOKE_TIMEOUT_SECONDS"
QUEUE_URL_ENV = "HERMES_AWS_QUEUE_URL"
TABLE_ENV = "HERMES_AWS_TABLE"
MAX_RECEIVE_ENV = "HERMES_AWS_MAX_RECEIVE_COUNT"
AGENT_NAME_ENV = "HERMES_AWS_AGENT_NAME"
DEFAULT_INVOKE_TIMEOUT = 840.0
CONNECT_TIMEOUT = 10.0

#: errors of InvokeAgentRuntime (botocore service model) that mean "too much, later"
THROTTLING_ERRORS = frozenset({"ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"})
MAX_BACKOFF_SECONDS = 900


class InvocationError(RuntimeError):
    """The runtime did not answer the turn (``kind``: throttled, runtime, timeout, contract, config)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Dispatcher:
    """Everything one dispatcher sandbox sets up once."""

    environ: Mapping[str, str]
    runtime_arn: str
    qualifier: str | None
    client: Any  # boto3 bedrock-agentcore
    ledger: Any  # hermes_aws.lambda_worker.UpdateLedger
    senders: Any  # hermes_aws.chats.Senders
    budget: Any  # hermes_aws.budgets.TokenBudget
    sqs: Any
    queue_url: str | None
    max_receive_count: int
    agent_name: str

    # -- InvokeAgentRuntime ------------------------------------------------------
    def invoke(self, body: Mapping[str, Any], *, chat: str, user: str, info: RecordInfo) -> dict[str, Any]:
        """The runtime's answer for ``body`` (raises :class:`InvocationError`)."""
        from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

        params: dict[str, Any] = {
            "agentRuntimeArn": self.runtime_arn,
            "runtimeSessionId": contract.runtime_session_id(chat),
            "runtimeUserId": user,
            "payload": contract.request_payload(body, sqs_message_id=info.message_id,
                                                receive_count=info.receive_count),
            "contentType": "application/json",
            "accept": "application/json",
        }
        if self.qualifier:
            params["qualifier"] = self.qualifier
        try:
            resp = self.client.invoke_agent_runtime(**params)
            stream = resp.get("response")
            raw = stream.read() if stream is not None else b""
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "")
            kind = "throttled" if code in THROTTLING_ERRORS else \
                "config" if code in ("ValidationException", "AccessDeniedException", "ResourceNotFoundException") \
                else "runtime"
            raise InvocationError(kind, f"{code}: {exc.response.get('Error', {}).get('Message')}") from exc
        except ReadTimeoutError as exc:
            raise InvocationError("timeout", f"no answer from the runtime in time: {exc}") from exc
        except BotoCoreError as exc:
            raise InvocationError("runtime", f"{type(exc).__name__}: {exc}") from exc
        status = int(resp.get("statusCode") or 200)
        if status >= 400:
            raise InvocationError("runtime", f"the runtime answered HTTP {status}")
        try:
            return contract.read_response(resp.get("contentType"), [raw])
        except contract.ContractError as exc:
            raise InvocationError("contract", str(exc)) from exc

    def back_off(self, info: RecordInfo, error: BaseException) -> None:
        """Make a failed message visible again soon (best effort)."""
        if not self.queue_url or not info.receipt_handle or info.last_attempt:
            return
        attempt = max(1, info.receive_count)
        if isinstance(error, InvocationError) and error.kind == "throttled":
            seconds = 15 * attempt
        else:
            seconds = 30 * 2 ** (attempt - 1)
        try:
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=info.receipt_handle,
                                               VisibilityTimeout=min(MAX_BACKOFF_SECONDS, seconds))
        except Exception as exc:  # the queue's own visibility timeout applies then
            logger.warning("could not shorten the visibility of %s: %s", info.message_id, exc)


_dispatcher: Dispatcher | None = None
_lock = threading.Lock()


def reset() -> None:
    """Forget the sandbox state (tests)."""
    global _dispatcher
    _dispatcher = None


def dispatcher() -> Dispatcher:
    global _dispatcher
    with _lock:
        if _dispatcher is None:
            _dispatcher = cold_start(os.environ)
        return _dispatcher


def cold_start(environ: Mapping[str, str]) -> Dispatcher:
    import boto3
    from botocore.config import Config

    from hermes_aws.budgets import TokenBudget
    from hermes_aws.chats import Senders
    from hermes_aws.lambda_worker import UpdateLedger
    from hermes_aws.secrets import SecretCache, make_client

    arn = (environ.get(RUNTIME_ARN_ENV) or "").strip()
    if not arn:
        raise ValueError(f"{RUNTIME_ARN_ENV} is not set")
    table = (environ.get(TABLE_ENV) or "").strip()
    if not table:
        raise ValueError(f"{TABLE_ENV} is not set")
    try:
        timeout = float(environ.get(INVOKE_TIMEOUT_ENV) or DEFAULT_INVOKE_TIMEOUT)
        max_receive = int(environ.get(MAX_RECEIVE_ENV) or 3)
    except ValueError:
        raise ValueError(f"{INVOKE_TIMEOUT_ENV} and {MAX_RECEIVE_ENV} must be numbers") from None
    # One attempt per message: a turn is not idempotent enough to resend after a
    # timeout, and SQS redelivery (with the ledger) is the retry layer.
    client = boto3.client("bedrock-agentcore", config=Config(
        read_timeout=timeout, connect_timeout=CONNECT_TIMEOUT, retries={"total_max_attempts": 1}))
    ddb = boto3.client("dynamodb")
    secrets = SecretCache(client=make_client())
    d = Dispatcher(
        environ=environ, runtime_arn=arn, qualifier=(environ.get(QUALIFIER_ENV) or "").strip() or None,
        client=client, ledger=UpdateLedger(table, ddb), senders=Senders(secrets, environ),
        budget=TokenBudget.from_env(environ, client=ddb), sqs=boto3.client("sqs"),
        queue_url=(environ.get(QUEUE_URL_ENV) or "").strip() or None,
        max_receive_count=max(1, max_receive), agent_name=(environ.get(AGENT_NAME_ENV) or "").strip() or "default",
    )
    events.emit("dispatcher_init", agent=d.agent_name, runtime=arn)
    return d


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    d = dispatcher()

    def process(record: dict[str, Any], info: RecordInfo) -> None:
        try:
            process_record(d, record, info)
        except Exception as exc:
            d.back_off(info, exc)
            raise

    return process_batch(event, context, max_receive_count=d.max_receive_count, process=process,
                         skip_event="dispatcher_skip")


def process_record(d: Dispatcher, record: Mapping[str, Any], info: RecordInfo) -> None:
    from hermes_aws import scheduler
    from hermes_aws.chats import parse_queue_body

    try:
        body = json.loads(record.get("body") or "")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        events.emit("dispatcher_ignored", message_id=info.message_id, reason="body is not a JSON object")
        return
    if body.get("source") == scheduler.SOURCE:
        fired = scheduler.fired_job(body)
        if fired is None:
            events.emit("dispatcher_ignored", message_id=info.message_id, reason="malformed hermes.cron body")
            return
        dispatch_cron(d, body, fired, info)
        return
    message = parse_queue_body(body)
    if message is None:
        events.emit("dispatcher_ignored", message_id=info.message_id, reason="not a chat message",
                    source=events.short(body.get("source"), 40))
        return
    dispatch_chat(d, body, message, info)


def dispatch_chat(d: Dispatcher, body: Mapping[str, Any], message: Any, info: RecordInfo) -> None:
    from hermes_aws import lambda_worker as worker
    from hermes_aws.chats import reply_target

    started = time.monotonic()
    key = message.dedup_key
    fields: dict[str, Any] = {
        "source": message.channel, "update_id": message.update_id, "chat": message.chat_id,
        "user": message.actor_id, "message_id": info.message_id, "receive_count": info.receive_count,
    }
    usage: dict[str, Any] = {}
    target = None
    try:
        state = d.ledger.get(key)
        if state.status == worker.STATUS_DELIVERED:
            worker._emit_turn(d, {**fields, "outcome": "duplicate"}, started, usage, error=False)
            return
        target = reply_target(message, d.senders)
        if state.status in (worker.STATUS_PERSISTED, worker.STATUS_APOLOGIZED) and state.reply is not None:
            fields["session"] = state.session_id
            worker._deliver(d, [target], key, state.reply, start_chunk=state.chunks_sent)
            worker._emit_turn(d, {**fields, "outcome": "redelivered"}, started, usage, error=False)
            return
        # As the worker: /new is always answered, anything else only within the budget.
        if d.budget.enabled and worker.parse_command(message.text) not in worker.RESET_COMMANDS:
            status = d.budget.check(message.actor_id)
            if not status.allowed:  # no microVM is woken for it
                worker._deliver(d, [target], key, d.budget.exceeded_message(status))
                worker._emit_turn(d, {**fields, "outcome": "budget_exceeded", "tokens_used_today": status.used},
                                  started, usage, error=False)
                return
        with target.typing():
            answer = d.invoke(body, chat=message.group_id, user=message.actor_id, info=info)
        fields["session"] = answer.get("session_id")
        usage = dict(answer.get("usage") or {})
        if answer["outcome"] == contract.OUTCOME_IGNORED:
            worker._emit_turn(d, {**fields, "outcome": "ignored"}, started, usage, error=False)
            return
        worker._record_usage(d, message.actor_id, usage)
        worker._deliver(d, [target], key, answer.get("reply") or "")
        worker._emit_turn(d, {**fields, "outcome": answer["outcome"], "model": answer.get("model"),
                              "runtime_ms": answer.get("duration_ms")}, started, usage, error=False)
    except Exception as exc:
        apologized = worker._apologize_once(d, target, key) if info.last_attempt else False
        worker._emit_turn(d, {**fields, "outcome": "error", "error": events.short(f"{type(exc).__name__}: {exc}"),
                              "error_kind": getattr(exc, "kind", None), "last_attempt": info.last_attempt,
                              "apologized": apologized}, started, usage, error=True)
        raise


def dispatch_cron(d: Dispatcher, body: Mapping[str, Any], fired: Any, info: RecordInfo) -> None:
    from hermes_aws import lambda_worker as worker
    from hermes_aws.chats import CHANNELS, origin_target
    from hermes_aws.cron_bridge import delivery_targets

    started = time.monotonic()
    key = fired.dedup_key
    fields: dict[str, Any] = {"source": worker.CRON_SOURCE, "job": fired.job_id, "message_id": info.message_id,
                              "scheduled_time": fired.scheduled_time.isoformat(),
                              "receive_count": info.receive_count}
    channels = [c for c in CHANNELS if d.senders.configured(c)]
    found, skipped = delivery_targets(fired.deliver, fired.origin, channels)
    if skipped:
        fields["skipped_targets"] = events.short(",".join(skipped), 200)
    try:
        state = d.ledger.get(key)
        if state.status == worker.STATUS_DELIVERED:
            worker._emit_cron(d, {**fields, "outcome": "duplicate"}, started)
            return
        targets = [origin_target(p, c, t, d.senders) for p, c, t in found]
        if state.status in (worker.STATUS_PERSISTED, worker.STATUS_APOLOGIZED) and state.reply is not None:
            worker._deliver(d, targets, key, state.reply, start_chunk=state.chunks_sent)
            worker._emit_cron(d, {**fields, "outcome": "redelivered"}, started)
            return
        job = {"id": fired.job_id, "origin": fired.origin}
        answer = d.invoke(body, chat=contract.job_chat(job), user=contract.job_user(job), info=info)
        if answer["outcome"] == contract.OUTCOME_IGNORED:
            worker._emit_cron(d, {**fields, "outcome": "skipped", "reason": answer.get("reason")}, started)
            return
        text = answer.get("reply") or ""
        worker._deliver(d, targets, key, text)
        outcome = "silent" if answer["outcome"] == contract.OUTCOME_SILENT else \
            "delivered" if text and targets else "not_delivered"
        worker._emit_cron(d, {**fields, "outcome": outcome, "success": answer.get("success"),
                              "error": answer.get("error")}, started)
    except Exception as exc:
        worker._emit_cron(d, {**fields, "outcome": "error", "error": events.short(f"{type(exc).__name__}: {exc}"),
                              "error_kind": getattr(exc, "kind", None), "last_attempt": info.last_attempt},
                          started, error=True)
        raise
