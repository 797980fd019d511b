"""Worker Lambda: run Hermes for messages from the SQS FIFO queue, reply, persist.

Handler ``hermes_aws.lambda_worker.handler`` (container image, ARM64), event
source: the FIFO queue the ingress writes (``ReportBatchItemFailures`` on).
Message bodies: ``{"source": "telegram", "update": <Telegram update>,
"received_at": iso}``, group id ``telegram:<chat_id>``, dedup id
``telegram:<update_id>``. Sources are pluggable (:func:`register_source`);
an unknown source is logged and acknowledged (part two adds ``hermes.cron``
and Slack).

Environment (set by the construct)
----------------------------------
``HERMES_HOME``                         ``/tmp/hermes`` (image default)
``HERMES_AWS_SETTINGS`` / ``_S3``       settings document (:mod:`hermes_aws.home`)
``HERMES_AWS_TABLE``                    sessions + idempotency table
``HERMES_AWS_BUCKET``                   skills/memories bucket (optional: no sync without it)
``HERMES_AWS_SKILLS_PREFIX``            default ``skills/``
``HERMES_AWS_MEMORIES_PREFIX``          default ``memories/``
``HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN``   secret holding the bot token
``HERMES_AWS_SECRET_ARNS``              JSON ``{ENV: secret ARN}`` put into the environment at
                                        cold start (model API key, ...)
``HERMES_AWS_MAX_RECEIVE_COUNT``        the queue's ``maxReceiveCount`` (default 3)
``HERMES_AWS_HISTORY_MAX_MESSAGES``     default 200
``HERMES_AWS_SESSION_TTL_DAYS``         optional TTL of session items
``HERMES_AWS_AGENT_NAME``               ``Agent`` metric dimension (default ``default``)
``HERMES_AWS_TELEGRAM_API_BASE``        Bot API base URL (tests)

Per Telegram message
--------------------
1. **Cold start**, once per sandbox (:func:`runtime`): secrets into the
   environment, ``HERMES_HOME`` rendered from the settings, ``TERMINAL_CWD``
   set, Hermes imported. A broken deployment (bad settings, unreadable secret)
   raises from the handler: the whole batch is retried and ends in the DLQ.
2. **Idempotency** (:class:`UpdateLedger`): item ``PK=UPDATE#telegram:<update_id>``,
   ``SK=STATE`` with ``status``:

   * no item: new update, processed below;
   * ``PERSISTED``: the turn and its reply text are stored (written in the same
     DynamoDB transaction as the session messages) but the reply was not
     (completely) delivered: the stored text is sent, the agent is not run again;
   * ``DELIVERED``: acknowledged without doing anything;
   * ``APOLOGIZED``: the last attempt failed and the user was told (see 8). If
     the message is redriven from the DLQ it is processed again.

   The one unavoidable duplicate: if the sandbox dies after Telegram accepted
   ``sendMessage`` and before ``DELIVERED`` is written, the retry re-sends that
   reply (Telegram has no idempotency key for ``sendMessage``). Long replies are
   sent chunk by chunk with the progress recorded, so only the chunk in flight
   can be duplicated.
3. ``/new`` or ``/start`` (also ``/new@bot``): a fresh session (new id in META),
   and a short confirmation.
4. Otherwise: typing indicator on (``sendChatAction`` every 4 s from a thread),
   workspace pull (skills/memories from S3 when changed), history of the current
   session from DynamoDB, one Hermes turn (:func:`hermes_aws.agent_runner.run_turn`),
   new messages + ``PERSISTED`` record in one transaction, typing off, reply
   (``reply_to`` the user's message; forum topics keep their thread),
   ``DELIVERED``, Hermes's deferred background review (if any), workspace push.
5. **Errors**: the record's ``messageId`` is returned in ``batchItemFailures``
   (SQS retries it; FIFO holds the rest of that chat's messages back). Within a
   batch, once a message of a group failed every later message of that group
   is reported failed too, unprocessed, so a chat's order is kept (so is every
   further message when less than a minute of the invocation remains: a function
   timeout would fail the whole batch; the first message always runs). On the last
   attempt (``ApproximateReceiveCount >= HERMES_AWS_MAX_RECEIVE_COUNT``) one
   apology is sent to the chat, guarded by a conditional write (status
   ``APOLOGIZED``) so it is never sent twice, and the failure is still reported
   so the message lands in the DLQ.
6. **Logs/metrics**: one ``{"event": "turn", ...}`` line per message (chat,
   session, outcome, duration, tokens, never the text) with an EMF block:
   namespace ``HermesAgent/Serverless``, dimension ``Agent``, metrics
   ``TurnDuration`` (ms), ``TurnErrors``, ``InputTokens``, ``OutputTokens``.
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

logger = logging.getLogger(__name__)

TABLE_ENV = "HERMES_AWS_TABLE"
BOT_TOKEN_ARN_ENV = "HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN"
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
TYPING_INTERVAL = 4.0
#: a further message of a batch is not started with less time than this left
MIN_REMAINING_MS = 60_000
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

    def mark_delivered(self, key: str, message_ids: list[int]) -> None:
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
    init_timings_ms: dict[str, float] = field(default_factory=dict)

    def telegram(self) -> Any:
        from hermes_aws.channels.telegram import TelegramClient

        arn = (self.environ.get(BOT_TOKEN_ARN_ENV) or "").strip()
        if not arn:
            raise RuntimeError(f"{BOT_TOKEN_ARN_ENV} is not set")
        return TelegramClient.from_env(self.secrets.get(arn).strip(), self.environ)


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
        agent_name=(env.get(AGENT_NAME_ENV) or "").strip() or "default", init_timings_ms=timings,
    )
    events.emit("worker_init", agent=rt.agent_name, **{f"{k}_ms": round(v, 1) for k, v in timings.items()},
                secrets_loaded=len(names), waiting_for_secrets=waiting)
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


@dataclass
class RecordInfo:
    message_id: str
    group_id: str | None
    receive_count: int
    max_receive_count: int
    context: Any = None

    @property
    def last_attempt(self) -> bool:
        return self.receive_count >= self.max_receive_count


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    rt = runtime()
    failures: list[str] = []
    failed_groups: set[str] = set()
    for index, record in enumerate((event or {}).get("Records") or []):
        attrs = record.get("attributes") or {}
        info = RecordInfo(
            message_id=str(record.get("messageId")),
            group_id=attrs.get("MessageGroupId"),
            receive_count=_int(attrs.get("ApproximateReceiveCount"), 1),
            max_receive_count=rt.max_receive_count,
            context=context,
        )
        if info.group_id is not None and info.group_id in failed_groups:
            failures.append(info.message_id)  # keep the chat's order: retry after the failed one
            events.emit("worker_skip", message_id=info.message_id, group=info.group_id,
                        reason="an earlier message of this group failed in this batch")
            continue
        remaining = _remaining_ms(context) if index > 0 else None  # the first one always runs
        if remaining is not None and remaining < MIN_REMAINING_MS:
            # Starting a turn now could hit the function timeout, which fails the whole
            # batch; hand the rest back to SQS instead (the ledger acks what was done).
            failures.append(info.message_id)
            if info.group_id is not None:
                failed_groups.add(info.group_id)
            events.emit("worker_skip", message_id=info.message_id, group=info.group_id,
                        reason="too little time left in this invocation", remaining_ms=remaining)
            continue
        try:
            process_record(rt, record, info)
        except Exception:
            logger.exception("message %s failed (receive %d/%d)", info.message_id,
                             info.receive_count, info.max_receive_count)
            failures.append(info.message_id)
            if info.group_id is not None:
                failed_groups.add(info.group_id)
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures]}


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


# --------------------------------------------------------------------------- telegram


class TypingIndicator:
    """``sendChatAction(typing)`` now and every ``interval`` seconds until stopped."""

    def __init__(self, client: Any, chat_id: str, thread_id: int | None = None,
                 interval: float = TYPING_INTERVAL) -> None:
        self.client, self.chat_id, self.thread_id, self.interval = client, chat_id, thread_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="typing", daemon=True)
        self.sent = 0

    def __enter__(self) -> TypingIndicator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.send_chat_action(self.chat_id, "typing", message_thread_id=self.thread_id)
                self.sent += 1
            except Exception as exc:  # cosmetic: never fail a turn over it
                logger.debug("sendChatAction failed: %s", exc)
            if self._stop.wait(self.interval):
                return


def parse_command(text: str) -> str | None:
    """``"/new@my_bot extra"`` -> ``"new"``; None when the text is not a command."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None
    word = stripped.split(None, 1)[0][1:]
    return word.split("@", 1)[0].lower() or None


@register_source("telegram")
def process_telegram(rt: Runtime, body: dict[str, Any], info: RecordInfo) -> None:
    from hermes_aws.channels.telegram import parse_update

    started = time.monotonic()
    message = parse_update(body.get("update"))
    if message is None:
        events.emit("worker_ignored", message_id=info.message_id, reason="not a handled Telegram update")
        return
    update_key = f"telegram:{message.update_id}"
    session_key = f"telegram:{message.chat_id}" + (f":{message.thread_id}" if message.thread_id else "")
    fields: dict[str, Any] = {
        "source": "telegram", "update_id": message.update_id, "chat": message.chat_id,
        "message_id": info.message_id, "receive_count": info.receive_count,
    }
    queued_ms = _since(body.get("received_at"))
    if queued_ms is not None:
        fields["queued_ms"] = queued_ms
    usage: dict[str, Any] = {}
    try:
        state = rt.ledger.get(update_key)
        if state.status == STATUS_DELIVERED:
            _emit_turn(rt, {**fields, "outcome": "duplicate"}, started, usage, error=False)
            return
        telegram = rt.telegram()
        if state.status in (STATUS_PERSISTED, STATUS_APOLOGIZED) and state.reply:
            fields["session"] = state.session_id
            _deliver(rt, telegram, message, update_key, state.reply, start_chunk=state.chunks_sent)
            _emit_turn(rt, {**fields, "outcome": "redelivered"}, started, usage, error=False)
            return

        command = parse_command(message.text)
        if command in RESET_COMMANDS:
            from hermes_aws.sessions import new_session_id

            reply = RESET_COMMANDS[command]
            session_id = new_session_id()
            record = rt.ledger.persisted_action(update_key, reply, session_key=session_key, session_id=session_id)
            meta = rt.sessions.new_session(session_key, session_id=session_id, also=[record])
            fields["session"] = meta.session_id
            _deliver(rt, telegram, message, update_key, reply)
            _emit_turn(rt, {**fields, "outcome": "new_session", "command": command}, started, usage, error=False)
            return

        result, meta = _run_agent_turn(rt, message, session_key, update_key)
        fields["session"] = meta.session_id
        usage = result.usage
        _deliver(rt, telegram, message, update_key, result.final_response)
        _after_reply(rt, result)
        _emit_turn(rt, {**fields, "outcome": "answered", "model": result.model}, started, usage, error=False)
    except Exception as exc:
        apologized = False
        if info.last_attempt:
            apologized = _apologize_once(rt, message, update_key)
        _emit_turn(rt, {**fields, "outcome": "error", "error": events.short(f"{type(exc).__name__}: {exc}"),
                        "last_attempt": info.last_attempt, "apologized": apologized},
                   started, usage, error=True)
        raise


def _run_agent_turn(rt: Runtime, message: Any, session_key: str, update_key: str) -> tuple[Any, Any]:
    from hermes_aws import agent_runner
    from hermes_aws.sessions import ExtraConditionFailed

    # its own client: the indicator's thread must not share one with the reply
    with TypingIndicator(rt.telegram(), message.chat_id, _int_or_none(message.thread_id)):
        if rt.workspace is not None:
            rt.workspace.pull()
        meta = rt.sessions.current(session_key)
        history = rt.sessions.load_history(session_key, meta)
        sender = (message.raw.get("message") or {}).get("from") or {}
        result = agent_runner.run_turn(
            message.text, history=history, session_id=meta.session_id, user_id=message.user_id,
            platform="telegram", chat_id=message.chat_id, chat_type=message.chat_type,
            user_name=sender.get("username") or sender.get("first_name"),
        )
        from hermes_aws.sessions import new_session_id

        session_id = new_session_id() if result.compacted is not None else meta.session_id
        record = rt.ledger.persisted_action(update_key, result.final_response,
                                            session_key=session_key, session_id=session_id)
        try:
            if result.compacted is not None:
                meta = rt.sessions.replace_session(session_key, result.compacted, session_id=session_id,
                                                   also=[record])
            else:
                meta = rt.sessions.append(session_key, meta.session_id, result.new_messages, meta=meta,
                                          also=[record])
        except ExtraConditionFailed:
            # Another invocation persisted this update meanwhile (visibility timeout ran out
            # during a slow turn): its stored reply wins, ours is dropped.
            raise RuntimeError(f"{update_key} was persisted by a concurrent invocation") from None
    return result, meta


def _deliver(rt: Runtime, telegram: Any, message: Any, update_key: str, text: str, *, start_chunk: int = 0) -> None:
    """Send ``text`` chunk by chunk (recording progress), then mark the update delivered."""
    from hermes_aws.channels.telegram import split_message

    chunks = split_message(text) or ["…"]
    ids: list[int] = []
    for index in range(start_chunk, len(chunks)):
        ids += telegram.send_message(
            message.chat_id, chunks[index],
            reply_to_message_id=message.message_id if index == 0 else None,
            message_thread_id=_int_or_none(message.thread_id),
        )
        if index < len(chunks) - 1:
            rt.ledger.record_progress(update_key, index + 1)
    rt.ledger.mark_delivered(update_key, ids)


def _after_reply(rt: Runtime, result: Any) -> None:
    """Hermes's background review (captured by the runner), then upload skills/memories."""
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


def _apologize_once(rt: Runtime, message: Any, update_key: str) -> bool:
    try:
        if not rt.ledger.claim_apology(update_key):
            return False
        rt.telegram().send_message(message.chat_id, APOLOGY, reply_to_message_id=message.message_id,
                                   message_thread_id=_int_or_none(message.thread_id))
        return True
    except Exception as exc:
        logger.warning("could not send the apology for %s: %s", update_key, exc)
        return False


def _emit_turn(rt: Runtime, fields: dict[str, Any], started: float, usage: Mapping[str, Any], *,
               error: bool) -> None:
    duration = round((time.monotonic() - started) * 1000, 1)
    input_tokens = int(usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("output_tokens") or 0)
    record = {
        **fields, "agent": rt.agent_name, "duration_ms": duration,
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "api_calls": int(usage.get("api_calls") or 0),
        **events.emf_fields(METRIC_NAMESPACE, {"Agent": rt.agent_name}, {
            "TurnDuration": (duration, "Milliseconds"),
            "TurnErrors": (int(error), "Count"),
            "InputTokens": (input_tokens, "Count"),
            "OutputTokens": (output_tokens, "Count"),
        }),
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


def _remaining_ms(context: Any) -> int | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if getter is None:
        return None
    try:
        return int(getter())
    except Exception:  # pragma: no cover
        return None


def _int_or_none(value: Any) -> int | None:
    """Telegram's integer ids (``InboundMessage`` carries them as strings)."""
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# Inside Lambda, do the cold start during init (Lambda may run it ahead of the
# first event, and its CPU burst is free); elsewhere on first use.
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get(TABLE_ENV):
    try:
        runtime()
    except Exception:  # retried (and raised) on the first event
        logger.exception("cold start failed during init; retrying on the first event")
        reset()
