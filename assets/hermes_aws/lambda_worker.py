"""Worker Lambda: run Hermes for messages from the SQS FIFO queue, reply, persist.

Handler ``hermes_aws.lambda_worker.handler`` (container image, ARM64), event
source: the FIFO queue the ingress writes (``ReportBatchItemFailures`` on).
Message bodies (sources are pluggable, :func:`register_source`; an unknown
source is logged and acknowledged):

* ``{"source": "telegram", "update": <Telegram update>, "received_at": iso}``,
  group ``telegram:<chat_id>``, dedup id ``telegram:<update_id>``;
* ``{"source": "slack", "event": <Events API envelope>, "received_at": iso}``,
  group ``slack:<channel id>``, dedup id ``slack:<event_id>``;
* ``{"source": "hermes.cron", "job": {...}, "scheduled_time": iso}`` from an
  EventBridge Scheduler schedule of this agent (:mod:`hermes_aws.cron_bridge`),
  group ``<platform>:<origin chat>``, content-based dedup. Only schedules can
  write it: the ingress wraps whatever it receives in its own envelope.

Chat messages are handled the same on every channel (:mod:`hermes_aws.chats`:
parsing, session keys, reply targets); only the sending differs.

Environment (set by the construct)
----------------------------------
``HERMES_HOME``                         ``/tmp/hermes`` (image default)
``HERMES_AWS_SETTINGS`` / ``_S3``       settings document (:mod:`hermes_aws.home`)
``HERMES_AWS_TABLE``                    sessions + idempotency (+ shared cron jobs) table
``HERMES_AWS_BUCKET``                   skills/memories bucket (optional: no sync without it)
``HERMES_AWS_SKILLS_PREFIX``            default ``skills/``
``HERMES_AWS_MEMORIES_PREFIX``          default ``memories/``
``HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN``   secret holding the Telegram bot token (optional)
``HERMES_AWS_SLACK_BOT_TOKEN_ARN``      secret holding the Slack bot token ``xoxb-...`` (optional)
``HERMES_AWS_SECRET_ARNS``              JSON ``{ENV: secret ARN}`` put into the environment at
                                        cold start (model API key, ...)
``HERMES_AWS_MAX_RECEIVE_COUNT``        the queue's ``maxReceiveCount`` (default 3)
``HERMES_AWS_HISTORY_MAX_MESSAGES``     default 200
``HERMES_AWS_SESSION_TTL_DAYS``         optional TTL of session items
``HERMES_AWS_AGENT_NAME``               ``Agent`` metric dimension (default ``default``)
``HERMES_AWS_SCHEDULE_GROUP``           EventBridge Scheduler group: enables scheduled jobs
``HERMES_AWS_SCHEDULER_ROLE_ARN``       role the schedules send to the queue with
``HERMES_AWS_QUEUE_ARN``                the FIFO queue (the schedules' target)
``HERMES_AWS_SCHEDULE_TIMEZONE``        IANA zone of cron jobs (default: Hermes's, else UTC)
``HERMES_AWS_DAILY_TOKEN_BUDGET``       tokens per user per UTC day (:mod:`hermes_aws.budgets`; absent: none)
``HERMES_AWS_TOKEN_PRICES``             ``{"inputPerMillion", "outputPerMillion"}`` USD (cost estimates)
``HERMES_AWS_MEMORY_ID``                AgentCore Memory id: enables long-term memory (:mod:`hermes_aws.memory`)
``HERMES_AWS_MEMORY_NAMESPACES``        JSON list of its namespace templates
``HERMES_AWS_TELEGRAM_API_BASE`` / ``HERMES_AWS_SLACK_API_BASE``   API base URLs (tests)

Per chat message
----------------
1. **Cold start**, once per sandbox (:func:`runtime`): secrets into the
   environment, ``HERMES_HOME`` rendered from the settings, ``TERMINAL_CWD``
   set, the Lambda toolset policy pinned into config.yaml, Hermes imported. A
   broken deployment (bad settings, unreadable secret) raises from the handler:
   the whole batch is retried and ends in the DLQ.
2. **Idempotency** (:class:`UpdateLedger`): item ``PK=UPDATE#<channel>:<delivery id>``
   (``telegram:<update_id>``, ``slack:<event_id>``), ``SK=STATE`` with ``status``:

   * no item: new message, processed below;
   * ``PERSISTED``: the turn and its reply text are stored (written in the same
     DynamoDB transaction as the session messages) but the reply was not
     (completely) delivered: the stored text is sent, the agent is not run again;
   * ``DELIVERED``: acknowledged without doing anything (a Slack retry that got
     past SQS's 5-minute deduplication is answered once this way);
   * ``APOLOGIZED``: the last attempt failed and the user was told (see 5). If
     the message is redriven from the DLQ it is processed again.

   The one unavoidable duplicate: if the sandbox dies after the channel accepted
   the reply and before ``DELIVERED`` is written, the retry re-sends that reply
   (neither ``sendMessage`` nor ``chat.postMessage`` has an idempotency key).
   Long replies are sent chunk by chunk with the progress recorded, so only the
   chunk in flight can be duplicated.
3. ``/new``, ``/start`` or ``/reset`` (also ``/new@bot``): a fresh session (new
   id in META), and a short confirmation.
4. **Token budget** (when ``HERMES_AWS_DAILY_TOKEN_BUDGET`` is set): a user
   (``<channel>:<user id>``) who used the day's tokens gets a friendly message
   saying when it resets, and no model call is made. Successful turns add their
   tokens (the turn that crosses the limit completes).
5. Otherwise: typing indicator on (Telegram ``sendChatAction`` every 4 s from a
   thread; Slack has none for bots), workspace pull (skills/memories from S3
   when changed) and shared cron jobs pull, history of the current session
   (``<channel>:<chat>[:<topic or thread>]``) from DynamoDB, one Hermes turn
   (:func:`hermes_aws.agent_runner.run_turn`) inside Hermes's session context
   (so a job the ``cronjob`` tool creates records this chat as its origin), new
   messages + ``PERSISTED`` record in one transaction, typing off, reply
   (Telegram: ``reply_to`` the user's message, forum topics keep their thread;
   Slack: in the message's thread), ``DELIVERED``, Hermes's deferred background
   review (if any), workspace push, cron jobs pushed and schedules reconciled.
   With AgentCore Memory on, Hermes recalls the user's memories before the model
   call and the turn is recorded as an event (user = actor, chat session =
   session) before the invocation ends.
6. **Errors**: the record's ``messageId`` is returned in ``batchItemFailures``
   (SQS retries it; FIFO holds the rest of that chat's messages back). Within a
   batch, once a message of a group failed every later message of that group
   is reported failed too, unprocessed, so a chat's order is kept (so is every
   further message when less than a minute of the invocation remains: a function
   timeout would fail the whole batch; the first message always runs). On the last
   attempt (``ApproximateReceiveCount >= HERMES_AWS_MAX_RECEIVE_COUNT``) one
   apology is sent to the chat, guarded by a conditional write (status
   ``APOLOGIZED``) so it is never sent twice, and the failure is still reported
   so the message lands in the DLQ.
7. **Logs/metrics**: one ``{"event": "turn", ...}`` line per message (chat,
   user, session, outcome, duration, tokens, estimated cost, never the text)
   with an EMF block in namespace ``HermesAgent/Serverless``
   (:func:`hermes_aws.budgets.turn_metric_fields`): ``TurnDuration`` (ms),
   ``TurnErrors`` and ``BudgetExceeded`` by [``Agent``]; ``InputTokens``,
   ``OutputTokens`` and ``EstimatedCost`` (USD) by [``Agent``] and
   [``Agent``, ``User``].

Per fired schedule (``hermes.cron``)
-----------------------------------
The body is validated strictly (:func:`hermes_aws.scheduler.fired_job`; a
malformed one is logged and acknowledged). The ledger key is
``cron:<job id>:<scheduled time>``, so each tick runs once: the job is claimed
and run as Hermes runs cron jobs (:meth:`hermes_aws.cron_bridge.CronBridge.run_fired`:
fresh agent, the job's prompt and skills), the text to deliver is stored
(``PERSISTED``), the job's bookkeeping is shared and the schedules reconciled,
then the text goes to the job's ``deliver`` targets (its origin chat, Telegram
or Slack; ``[SILENT]`` delivers nothing) and the tick is ``DELIVERED``. A job
that is paused, removed or already being fired is skipped. One ``cron_run``
line per tick.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hermes_aws import events
from hermes_aws.chats import TypingIndicator  # noqa: F401  (re-exported: the worker's typing indicator)
from hermes_aws.sqs_batch import MIN_REMAINING_MS, RecordInfo, process_batch  # noqa: F401  (RecordInfo re-exported)

logger = logging.getLogger(__name__)

TABLE_ENV = "HERMES_AWS_TABLE"
CRON_SOURCE = "hermes.cron"
SECRET_ARNS_ENV = "HERMES_AWS_SECRET_ARNS"
MAX_RECEIVE_ENV = "HERMES_AWS_MAX_RECEIVE_COUNT"
AGENT_NAME_ENV = "HERMES_AWS_AGENT_NAME"
DEFAULT_HOME = "/tmp/hermes"
DEFAULT_MAX_RECEIVE = 3

METRIC_NAMESPACE = "HermesAgent/Serverless"
APOLOGY = "Sorry — I couldn't answer that message. Please try again."
NEW_SESSION_REPLY = "✨ New conversation started."
START_REPLY = "✨ Hi! New conversation started — just send me a message."
RESET_COMMANDS = {"new": NEW_SESSION_REPLY, "start": START_REPLY, "reset": NEW_SESSION_REPLY}
#: idempotency records outlive SQS's maximum retention (14 days) so a late redelivery is still caught
LEDGER_TTL_SECONDS = 15 * 86400
MAX_STORED_REPLY_CHARS = 300_000

STATUS_PERSISTED = "PERSISTED"
STATUS_DELIVERED = "DELIVERED"
STATUS_APOLOGIZED = "APOLOGIZED"


# --------------------------------------------------------------------------- idempotency ledger


@dataclass
class UpdateState:
    key: str
    status: str | None = None
    reply: str | None = None
    chunks_sent: int = 0
    session_id: str | None = None


class UpdateLedger:
    """``UPDATE#<source>:<id>`` / ``STATE`` items in the sessions table (see the module doc)."""

    def __init__(self, table: str, client: Any, clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.client = client
        self.clock = clock

    @staticmethod
    def _key(key: str) -> dict[str, Any]:
        return {"PK": {"S": f"UPDATE#{key}"}, "SK": {"S": "STATE"}}

    def get(self, key: str) -> UpdateState:
        item = self.client.get_item(TableName=self.table, Key=self._key(key), ConsistentRead=True).get("Item")
        if not item:
            return UpdateState(key)
        return UpdateState(
            key=key,
            status=item.get("status", {}).get("S"),
            reply=item.get("reply", {}).get("S"),
            chunks_sent=int(item.get("chunks_sent", {}).get("N", "0")),
            session_id=item.get("session_id", {}).get("S"),
        )

    def persisted_action(self, key: str, reply: str, *, session_key: str, session_id: str) -> dict[str, Any]:
        """A ``TransactWriteItems`` Update recording the stored reply.

        Only over no record or an apology (a DLQ redrive); ``apologized_at``
        survives, so an update is never apologised for twice.
        """
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        return {"Update": {
            "TableName": self.table,
            "Key": self._key(key),
            "UpdateExpression": "SET #status = :persisted, reply = :reply, chunks_sent = :zero, "
                                "session_key = :skey, session_id = :sid, persisted_at = :now, expires_at = :ttl",
            "ConditionExpression": "attribute_not_exists(PK) OR #status = :apologized",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":persisted": {"S": STATUS_PERSISTED}, ":apologized": {"S": STATUS_APOLOGIZED},
                ":reply": {"S": reply[:MAX_STORED_REPLY_CHARS]}, ":zero": {"N": "0"},
                ":skey": {"S": session_key}, ":sid": {"S": session_id}, ":now": {"S": now},
                ":ttl": {"N": str(int(self.clock() + LEDGER_TTL_SECONDS))},
            },
        }}

    def record_progress(self, key: str, chunks_sent: int) -> None:
        self.client.update_item(
            TableName=self.table, Key=self._key(key),
            UpdateExpression="SET chunks_sent = :n", ExpressionAttributeValues={":n": {"N": str(chunks_sent)}})

    def mark_delivered(self, key: str, message_ids: list[Any]) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.client.update_item(
            TableName=self.table, Key=self._key(key),
            UpdateExpression="SET #status = :delivered, delivered_at = :now, message_ids = :ids, "
                             "expires_at = if_not_exists(expires_at, :ttl)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":delivered": {"S": STATUS_DELIVERED}, ":now": {"S": now},
                ":ids": {"S": json.dumps(message_ids)},
                ":ttl": {"N": str(int(self.clock() + LEDGER_TTL_SECONDS))},
            })

    def claim_apology(self, key: str) -> bool:
        """True exactly once per update (conditional write); then the caller sends the apology."""
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        try:
            self.client.update_item(
                TableName=self.table, Key=self._key(key),
                UpdateExpression="SET #status = :apologized, apologized_at = :now, "
                                 "expires_at = if_not_exists(expires_at, :ttl)",
                ConditionExpression="attribute_not_exists(apologized_at) AND "
                                    "(attribute_not_exists(#status) OR #status <> :delivered)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":apologized": {"S": STATUS_APOLOGIZED}, ":delivered": {"S": STATUS_DELIVERED},
                    ":now": {"S": now}, ":ttl": {"N": str(int(self.clock() + LEDGER_TTL_SECONDS))},
                })
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


# --------------------------------------------------------------------------- cold start


@dataclass
class Runtime:
    """Everything one sandbox sets up once."""

    environ: Mapping[str, str]
    home: Path
    context_dir: Path
    settings: Any
    sessions: Any
    ledger: UpdateLedger
    workspace: Any | None
    secrets: Any
    max_receive_count: int
    agent_name: str
    senders: Any = None  # hermes_aws.chats.Senders
    cron: Any = None  # hermes_aws.cron_bridge.CronBridge, when scheduled jobs are enabled
    budget: Any = None  # hermes_aws.budgets.TokenBudget (enabled with a daily limit; prices for costs)
    memory: Any = None  # hermes_aws.memory.MemorySettings, when AgentCore Memory is on
    init_timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def allowed_toolsets(self) -> tuple[str, ...]:
        """Toolsets of LAMBDA_DISABLED_TOOLSETS this deployment re-enables for chat turns."""
        return ("cronjob",) if self.cron is not None else ()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def reset() -> None:
    """Forget the sandbox state (tests)."""
    global _runtime
    _runtime = None


def runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = cold_start(os.environ)
        return _runtime


def cold_start(environ: Any = None, *, import_hermes: bool = True) -> Runtime:
    """Secrets, HERMES_HOME, clients; ``environ`` is modified (secrets, TERMINAL_CWD)."""
    import boto3

    from hermes_aws import cron_bridge, memory
    from hermes_aws.budgets import TokenBudget
    from hermes_aws.chats import Senders
    from hermes_aws.home import Settings, prepare_home
    from hermes_aws.secrets import SecretCache, load_secret_environment, make_client, placeholder_names
    from hermes_aws.sessions import SessionStore
    from hermes_aws.workspace import BUCKET_ENV, Workspace

    env = os.environ if environ is None else environ
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    secrets = SecretCache(client=make_client())
    names = load_secret_environment(env.get(SECRET_ARNS_ENV), env, cache=secrets)
    waiting = placeholder_names(env, names)
    if waiting:
        logger.error("secret(s) still hold the placeholder value: %s; set them with put-secret-value",
                     ", ".join(waiting))
    timings["secrets"] = (time.perf_counter() - t0) * 1000

    t0 = time.perf_counter()
    home = Path(env.get("HERMES_HOME") or DEFAULT_HOME)
    env["HERMES_HOME"] = str(home)
    settings = Settings.from_env(env)
    prepared = prepare_home(home, settings, env)
    env["TERMINAL_CWD"] = str(prepared.context_dir)
    try:
        os.chdir(prepared.home)  # a relative terminal.cwd means the same to Hermes as to home.py
    except OSError:  # pragma: no cover
        pass
    timings["home"] = (time.perf_counter() - t0) * 1000

    ddb = boto3.client("dynamodb")
    sessions = SessionStore.from_env(env, client=ddb)
    cron = cron_bridge.cold_start(home, env, table=sessions.table, client=ddb)  # rewrites config.yaml
    long_term = memory.activate(env, home, settings.config)  # after anything that rewrites config.yaml
    budget = TokenBudget.from_env(env, client=ddb)
    workspace = Workspace.from_env(env, home) if (env.get(BUCKET_ENV) or "").strip() else None
    try:
        max_receive = int(env.get(MAX_RECEIVE_ENV) or DEFAULT_MAX_RECEIVE)
    except ValueError:
        raise ValueError(f"{MAX_RECEIVE_ENV} must be an integer") from None

    if import_hermes:
        t0 = time.perf_counter()
        preimport_hermes(settings.config)
        timings["hermes_import"] = (time.perf_counter() - t0) * 1000
    rt = Runtime(
        environ=env, home=home, context_dir=prepared.context_dir, settings=settings,
        sessions=sessions, ledger=UpdateLedger(sessions.table, ddb), workspace=workspace,
        secrets=secrets, max_receive_count=max(1, max_receive),
        agent_name=(env.get(AGENT_NAME_ENV) or "").strip() or "default",
        senders=Senders(secrets, env), cron=cron, budget=budget, memory=long_term, init_timings_ms=timings,
    )
    events.emit("worker_init", agent=rt.agent_name, **{f"{k}_ms": round(v, 1) for k, v in timings.items()},
                secrets_loaded=len(names), waiting_for_secrets=waiting, cron=cron is not None,
                memory=long_term is not None, token_budget=budget.daily_limit)
    return rt


def preimport_hermes(config: Mapping[str, Any]) -> None:
    """Import Hermes and the model SDK its first ``AIAgent`` will load, during init.

    ``AIAgent.__init__`` imports the SDK lazily (hermes-agent 0.19.0: the openai
    package alone is ~1 s on first use, most of the first agent's construction);
    doing it here moves that cost into Lambda's init phase, before the first
    event and into a SnapStart snapshot.
    """
    import importlib

    importlib.import_module("run_agent")  # the heavy import

    model = config.get("model") if isinstance(config, Mapping) else None
    provider = str(model.get("provider") or "").lower() if isinstance(model, Mapping) else ""
    for name in (("anthropic",) if provider in ("bedrock", "anthropic") else ("openai",)):
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - a lean image without that SDK
            pass


# --------------------------------------------------------------------------- dispatch

SourceHandler = Callable[[Runtime, dict[str, Any], "RecordInfo"], None]
_SOURCES: dict[str, SourceHandler] = {}


def register_source(name: str) -> Callable[[SourceHandler], SourceHandler]:
    """Register the processor of message bodies whose ``source`` is ``name``."""
    def deco(fn: SourceHandler) -> SourceHandler:
        _SOURCES[name] = fn
        return fn
    return deco


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One SQS batch: each record in order, a chat's order kept (:func:`hermes_aws.sqs_batch.process_batch`)."""
    rt = runtime()
    return process_batch(event, context, max_receive_count=rt.max_receive_count,
                         process=lambda record, info: process_record(rt, record, info), skip_event="worker_skip")


def process_record(rt: Runtime, record: dict[str, Any], info: RecordInfo) -> None:
    try:
        body = json.loads(record.get("body") or "")
    except ValueError:
        events.emit("worker_ignored", message_id=info.message_id, reason="body is not JSON")
        return
    if not isinstance(body, dict):
        events.emit("worker_ignored", message_id=info.message_id, reason="body is not an object")
        return
    source = body.get("source")
    processor = _SOURCES.get(source) if isinstance(source, str) else None
    if processor is None:
        events.emit("worker_ignored", message_id=info.message_id, reason="unknown source",
                    source=events.short(source, 40))
        return
    processor(rt, body, info)


# --------------------------------------------------------------------------- chats (Telegram, Slack)


def parse_command(text: str) -> str | None:
    """``"/new@my_bot extra"`` -> ``"new"``; None when the text is not a command."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None
    word = stripped.split(None, 1)[0][1:]
    return word.split("@", 1)[0].lower() or None


_UNHANDLED = {"telegram": "not a handled Telegram update", "slack": "not a handled Slack event"}


@register_source("telegram")
@register_source("slack")
def process_chat(rt: Runtime, body: dict[str, Any], info: RecordInfo) -> None:
    """One chat message, whatever the channel (see the module doc)."""
    from hermes_aws.chats import parse_queue_body, reply_target

    started = time.monotonic()
    source = str(body.get("source"))
    message = parse_queue_body(body)
    if message is None:
        events.emit("worker_ignored", message_id=info.message_id, reason=_UNHANDLED.get(source, "not a chat message"))
        return
    update_key = message.dedup_key
    fields: dict[str, Any] = {
        "source": message.channel, "update_id": message.update_id, "chat": message.chat_id,
        "user": message.actor_id, "message_id": info.message_id, "receive_count": info.receive_count,
    }
    queued_ms = _since(body.get("received_at"))
    if queued_ms is not None:
        fields["queued_ms"] = queued_ms
    usage: dict[str, Any] = {}
    target = None
    try:
        state = rt.ledger.get(update_key)
        if state.status == STATUS_DELIVERED:
            _emit_turn(rt, {**fields, "outcome": "duplicate"}, started, usage, error=False)
            return
        target = reply_target(message, rt.senders)
        if state.status in (STATUS_PERSISTED, STATUS_APOLOGIZED) and state.reply is not None:
            fields["session"] = state.session_id
            _deliver(rt, [target], update_key, state.reply, start_chunk=state.chunks_sent)
            _sync_cron(rt, message)  # job edits of the attempt that persisted, if this sandbox ran it
            _emit_turn(rt, {**fields, "outcome": "redelivered"}, started, usage, error=False)
            return

        command = parse_command(message.text)
        if command in RESET_COMMANDS:
            from hermes_aws.sessions import new_session_id

            reply = RESET_COMMANDS[command]
            session_id = new_session_id()
            record = rt.ledger.persisted_action(update_key, reply, session_key=message.session_key,
                                                session_id=session_id)
            meta = rt.sessions.new_session(message.session_key, session_id=session_id, also=[record])
            fields["session"] = meta.session_id
            _deliver(rt, [target], update_key, reply)
            _emit_turn(rt, {**fields, "outcome": "new_session", "command": command}, started, usage, error=False)
            return

        budget = rt.budget
        if budget is not None and budget.enabled:
            status = budget.check(message.actor_id)
            if not status.allowed:  # no model call; the message is answered (and acknowledged)
                _deliver(rt, [target], update_key, budget.exceeded_message(status))
                _emit_turn(rt, {**fields, "outcome": "budget_exceeded", "tokens_used_today": status.used},
                           started, usage, error=False)
                return

        result, meta = _run_agent_turn(rt, message, target, update_key)
        fields["session"] = meta.session_id
        usage = result.usage
        _record_usage(rt, message.actor_id, usage)
        _deliver(rt, [target], update_key, result.final_response)
        _after_reply(rt, result, message)
        _emit_turn(rt, {**fields, "outcome": "answered", "model": result.model}, started, usage, error=False)
    except Exception as exc:
        apologized = False
        if info.last_attempt:
            apologized = _apologize_once(rt, target, update_key)
        _emit_turn(rt, {**fields, "outcome": "error", "error": events.short(f"{type(exc).__name__}: {exc}"),
                        "last_attempt": info.last_attempt, "apologized": apologized},
                   started, usage, error=True)
        raise


def _run_agent_turn(rt: Runtime, message: Any, target: Any, update_key: str) -> tuple[Any, Any]:
    from hermes_aws import agent_runner
    from hermes_aws.chats import hermes_origin
    from hermes_aws.sessions import ExtraConditionFailed, new_session_id

    session_key = message.session_key
    with target.typing():
        if rt.workspace is not None:
            rt.workspace.pull()
        if rt.cron is not None:
            rt.cron.pull()
        meta = rt.sessions.current(session_key)
        history = rt.sessions.load_history(session_key, meta)
        origin = hermes_origin(message)
        with agent_runner.session_context(
                platform=message.channel, chat_id=message.chat_id, thread_id=origin["thread_id"],
                user_id=message.user_id, user_name=message.user_name, session_key=session_key,
                session_id=meta.session_id, message_id=message.message_id, gateway=rt.cron is not None):
            result = agent_runner.run_turn(
                message.text, history=history, session_id=meta.session_id, user_id=message.user_id,
                platform=message.channel, chat_id=message.chat_id, chat_type=message.chat_type,
                user_name=message.user_name, allow_toolsets=rt.allowed_toolsets,
            )
        session_id = new_session_id() if result.compacted is not None else meta.session_id
        record = rt.ledger.persisted_action(update_key, result.final_response,
                                            session_key=session_key, session_id=session_id)
        try:
            if result.compacted is not None:
                meta = rt.sessions.replace_session(session_key, [agent_runner.without_recall(m) for m in
                                                                 result.compacted],
                                                   session_id=session_id, also=[record])
            else:
                meta = rt.sessions.append(session_key, meta.session_id,
                                          [agent_runner.without_recall(m) for m in result.new_messages],
                                          meta=meta, also=[record])
        except ExtraConditionFailed:
            # Another invocation persisted this update meanwhile (visibility timeout ran out
            # during a slow turn): its stored reply wins, ours is dropped.
            raise RuntimeError(f"{update_key} was persisted by a concurrent invocation") from None
    return result, meta


def _record_usage(rt: Runtime, user: str, usage: Mapping[str, Any]) -> None:
    """Count the turn's tokens against the user's daily budget (logged, never raised: the turn is done)."""
    budget = rt.budget
    if budget is None or not budget.enabled:
        return
    try:
        budget.record(user, int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0))
    except Exception as exc:
        logger.warning("could not record token usage for %s: %s", user, exc)


def _deliver(rt: Runtime, targets: list[Any], update_key: str, text: str, *, start_chunk: int = 0) -> None:
    """Send ``text`` to every target chunk by chunk (recording progress), then mark the update delivered.

    Progress counts chunks over all targets in order, so a retry resumes after
    the last chunk that went out. Empty ``text`` sends nothing.
    """
    plan = [(target, chunk, index) for target in targets
            for index, chunk in enumerate(target.split(text))] if text else []
    ids: list[Any] = []
    for position in range(start_chunk, len(plan)):
        target, chunk, index = plan[position]
        ids += target.send_chunk(chunk, index)
        if position < len(plan) - 1:
            rt.ledger.record_progress(update_key, position + 1)
    rt.ledger.mark_delivered(update_key, ids)


def _after_reply(rt: Runtime, result: Any, message: Any) -> None:
    """Hermes's background review, skills/memories upload, cron jobs shared and scheduled."""
    if result.deferred_review is not None:
        started = time.monotonic()
        try:
            result.deferred_review()
            events.emit("background_review", ok=True, duration_ms=int((time.monotonic() - started) * 1000))
        except Exception as exc:
            logger.exception("background review failed")
            events.emit("background_review", ok=False, error=events.short(f"{type(exc).__name__}: {exc}"))
    if rt.workspace is not None:
        rt.workspace.push()  # never raises; conflicts and errors are logged
    _sync_cron(rt, message)


def _sync_cron(rt: Runtime, message: Any = None, origin: Mapping[str, Any] | None = None) -> None:
    """Share ``jobs.json`` and reconcile the schedules; logged, never raised (the reply is out)."""
    if rt.cron is None:
        return
    from hermes_aws.chats import hermes_origin

    try:
        rt.cron.sync(origin if origin is not None else hermes_origin(message) if message is not None else None)
    except Exception as exc:
        logger.exception("cron sync failed")
        events.emit("cron_sync", ok=False, error=events.short(f"{type(exc).__name__}: {exc}"))


def _apologize_once(rt: Runtime, target: Any, update_key: str) -> bool:
    if target is None:
        return False
    try:
        if not rt.ledger.claim_apology(update_key):
            return False
        target.send(APOLOGY)
        return True
    except Exception as exc:
        logger.warning("could not send the apology for %s: %s", update_key, exc)
        return False


# --------------------------------------------------------------------------- scheduled jobs


@register_source(CRON_SOURCE)
def process_cron(rt: Runtime, body: dict[str, Any], info: RecordInfo) -> None:
    """A schedule fired: run the job as Hermes does, deliver the result to its chat(s)."""
    from hermes_aws import scheduler
    from hermes_aws.chats import CHANNELS, origin_target
    from hermes_aws.cron_bridge import delivery_targets

    started = time.monotonic()
    fired = scheduler.fired_job(body)
    if fired is None:
        events.emit("worker_ignored", message_id=info.message_id, reason="malformed hermes.cron body")
        return
    if rt.cron is None:
        events.emit("worker_ignored", message_id=info.message_id, reason="scheduled jobs are not enabled")
        return
    key = fired.dedup_key
    fields: dict[str, Any] = {"source": CRON_SOURCE, "job": fired.job_id, "message_id": info.message_id,
                              "scheduled_time": fired.scheduled_time.isoformat(),
                              "receive_count": info.receive_count}
    channels = [c for c in CHANNELS if rt.senders.configured(c)]
    found, skipped = delivery_targets(fired.deliver, fired.origin, channels)
    if skipped:
        fields["skipped_targets"] = events.short(",".join(skipped), 200)
    try:
        state = rt.ledger.get(key)
        if state.status == STATUS_DELIVERED:
            _emit_cron(rt, {**fields, "outcome": "duplicate"}, started)
            return
        targets = [origin_target(p, c, t, rt.senders) for p, c, t in found]
        if state.status in (STATUS_PERSISTED, STATUS_APOLOGIZED) and state.reply is not None:
            _deliver(rt, targets, key, state.reply, start_chunk=state.chunks_sent)
            _emit_cron(rt, {**fields, "outcome": "redelivered"}, started)
            return
        if rt.workspace is not None:
            rt.workspace.pull()  # the job's skills
        run = rt.cron.run_fired(fired)
        if not run.ran:
            _sync_cron(rt, origin=fired.origin)
            _emit_cron(rt, {**fields, "outcome": "skipped", "reason": run.reason}, started)
            return
        record = rt.ledger.persisted_action(key, run.text, session_key=f"cron:{fired.job_id}",
                                            session_id=key)
        rt.ledger.client.transact_write_items(TransactItems=[record])
        _sync_cron(rt, origin=fired.origin)  # mark_job_run's bookkeeping, schedules
        _deliver(rt, targets, key, run.text)
        if rt.workspace is not None:
            rt.workspace.push()
        outcome = "silent" if run.silent else "delivered" if run.text and targets else "not_delivered"
        _emit_cron(rt, {**fields, "outcome": outcome, "success": run.success,
                        "error": events.short(run.error) if run.error else None}, started)
    except Exception as exc:
        _emit_cron(rt, {**fields, "outcome": "error", "error": events.short(f"{type(exc).__name__}: {exc}"),
                        "last_attempt": info.last_attempt}, started, error=True)
        raise


def _emit_cron(rt: Runtime, fields: dict[str, Any], started: float, *, error: bool = False) -> None:
    try:
        events.emit("cron_run", agent=rt.agent_name, duration_ms=round((time.monotonic() - started) * 1000, 1),
                    **{k: v for k, v in fields.items() if v is not None})
    except Exception:  # logging must never fail a message
        logger.debug("could not emit the cron_run event", exc_info=True)


def _emit_turn(rt: Runtime, fields: dict[str, Any], started: float, usage: Mapping[str, Any], *,
               error: bool) -> None:
    duration = round((time.monotonic() - started) * 1000, 1)
    from hermes_aws.budgets import turn_metric_fields

    input_tokens = int(usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("output_tokens") or 0)
    budget = getattr(rt, "budget", None)
    cost = budget.estimate_cost(input_tokens, output_tokens) if budget is not None else 0.0
    user = fields.get("user") if isinstance(fields.get("user"), str) else None
    record = {
        **fields, "agent": rt.agent_name, "duration_ms": duration,
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "api_calls": int(usage.get("api_calls") or 0), "estimated_cost_usd": cost,
        **turn_metric_fields(rt.agent_name, user, duration_ms=duration, error=error,
                             input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost,
                             budget_exceeded=fields.get("outcome") == "budget_exceeded",
                             namespace=METRIC_NAMESPACE),
    }
    try:
        events.emit("turn", **record)
    except Exception:  # logging must never fail a message
        logger.debug("could not emit the turn event", exc_info=True)


def _since(iso: Any) -> int | None:
    if not isinstance(iso, str):
        return None
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        return None
    return max(0, int((datetime.now(timezone.utc) - then).total_seconds() * 1000))


# Inside Lambda, do the cold start during init (Lambda may run it ahead of the
# first event, and its CPU burst is free); elsewhere on first use.
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get(TABLE_ENV):
    try:
        runtime()
    except Exception:  # retried (and raised) on the first event
        logger.exception("cold start failed during init; retrying on the first event")
        reset()
