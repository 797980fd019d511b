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

Per message (:mod:`hermes_aws.turns`: the worker's flow, the runtime answers)
------------------------------------------------------------------------------
1. Parse the body (:func:`hermes_aws.chats.parse_queue_body`,
   :func:`hermes_aws.scheduler.fired_job`); anything else is acknowledged.
2. Idempotency: the shared ledger (:class:`hermes_aws.ledger.UpdateLedger`,
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
   with the progress recorded, then ``DELIVERED`` (:func:`hermes_aws.turns.deliver`);
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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hermes_aws import agentcore_contract as contract
from hermes_aws import events, turns
from hermes_aws.sqs_batch import RecordInfo, process_batch
from hermes_aws.turns import JobResult, TurnResult

logger = logging.getLogger(__name__)

RUNTIME_ARN_ENV = "HERMES_AWS_AGENT_RUNTIME_ARN"
QUALIFIER_ENV = "HERMES_AWS_AGENT_RUNTIME_QUALIFIER"
INVOKE_TIMEOUT_ENV = "HERMES_AWS_INVOKE_TIMEOUT_SECONDS"
QUEUE_URL_ENV = "HERMES_AWS_QUEUE_URL"
TABLE_ENV = "HERMES_AWS_TABLE"
MAX_RECEIVE_ENV = "HERMES_AWS_MAX_RECEIVE_COUNT"
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

    runtime_arn: str
    qualifier: str | None
    client: Any  # boto3 bedrock-agentcore
    ledger: Any  # hermes_aws.ledger.UpdateLedger
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


_sandbox: turns.PerSandbox[Dispatcher] = turns.PerSandbox(lambda: cold_start(os.environ))
#: this sandbox's :class:`Dispatcher` (cold start on first use)
dispatcher = _sandbox.get
#: forget the sandbox state (tests)
reset = _sandbox.reset


def cold_start(environ: Mapping[str, str]) -> Dispatcher:
    import boto3
    from botocore.config import Config

    from hermes_aws.budgets import TokenBudget
    from hermes_aws.chats import Senders
    from hermes_aws.ledger import UpdateLedger
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
        runtime_arn=arn, qualifier=(environ.get(QUALIFIER_ENV) or "").strip() or None,
        client=client, ledger=UpdateLedger(table, ddb), senders=Senders(secrets, environ),
        budget=TokenBudget.from_env(environ, client=ddb), sqs=boto3.client("sqs"),
        queue_url=(environ.get(QUEUE_URL_ENV) or "").strip() or None,
        max_receive_count=max(1, max_receive), agent_name=events.agent_name(environ),
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
    def run(target: Any) -> TurnResult:
        with target.typing():
            answer = d.invoke(body, chat=message.group_id, user=message.actor_id, info=info)
        return TurnResult(answer["outcome"], answer.get("reply"), answer.get("session_id"),
                          dict(answer.get("usage") or {}),
                          fields={"model": answer.get("model"), "runtime_ms": answer.get("duration_ms")},
                          start_chunk=int(answer.get("chunks_sent") or 0))

    turns.chat_turn(d, message, info, run, received_at=body.get("received_at"))


def dispatch_cron(d: Dispatcher, body: Mapping[str, Any], fired: Any, info: RecordInfo) -> None:
    def run() -> JobResult:
        job = {"id": fired.job_id, "origin": fired.origin}
        answer = d.invoke(body, chat=contract.job_chat(job), user=contract.job_user(job), info=info)
        if answer["outcome"] == contract.OUTCOME_IGNORED:
            return JobResult(False, reason=answer.get("reason"))
        return JobResult(True, text=answer.get("reply") or "", silent=answer["outcome"] == contract.OUTCOME_SILENT,
                         success=answer.get("success"), error=answer.get("error"),
                         start_chunk=int(answer.get("chunks_sent") or 0))

    turns.job_tick(d, fired, info, run)
