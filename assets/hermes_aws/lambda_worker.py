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
parsing, session keys, reply targets); only the sending differs. The flow of a
turn and of a job tick (ledger, budget, delivery, apology, metrics) is
:mod:`hermes_aws.turns`, shared with the AgentCore dispatcher; this module
runs the turn itself (:func:`run_chat`, :func:`run_job`, also used by the
AgentCore container).

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
1. **Cold start**, once per sandbox (:func:`runtime`; in Lambda's init phase
   when the function's handler is this module's, :func:`warm_up_at_init`):
   secrets into the environment, ``HERMES_HOME`` rendered from the settings,
   ``TERMINAL_CWD`` set, the Lambda toolset policy pinned into config.yaml,
   Hermes imported. A broken deployment (bad settings, unreadable secret)
   raises from the handler: the whole batch is retried and ends in the DLQ.
2. **Idempotency** (:class:`hermes_aws.ledger.UpdateLedger`): item ``PK=UPDATE#<channel>:<delivery id>``
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
   session) before the invocation ends. A turn a Bedrock guardrail blocked is
   answered with the guardrail's message (outcome ``guardrail_blocked``): not an
   error, so not retried. Only the ledger's ``PERSISTED`` record (with that
   message) is written, none of the turn's messages: a guardrail evaluates every
   message of a request, so a stored blocked message would block every later
   turn of the chat.
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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_aws import events, turns
from hermes_aws.chats import TypingIndicator  # noqa: F401  (re-exported: the worker's typing indicator)
from hermes_aws.ledger import AlreadyPersisted, UpdateLedger
from hermes_aws.sqs_batch import MIN_REMAINING_MS, RecordInfo, process_batch  # noqa: F401  (RecordInfo re-exported)
from hermes_aws.turns import APOLOGY, NEW_SESSION_REPLY  # noqa: F401  (re-exported: the worker's replies)
from hermes_aws.turns import RESET_COMMANDS, JobResult, TurnResult, parse_command

logger = logging.getLogger(__name__)

#: the function's handler setting (the image's CMD); Lambda puts it in ``_HANDLER``
HANDLER = "hermes_aws.lambda_worker.handler"
TABLE_ENV = "HERMES_AWS_TABLE"
CRON_SOURCE = "hermes.cron"
SECRET_ARNS_ENV = "HERMES_AWS_SECRET_ARNS"
MAX_RECEIVE_ENV = "HERMES_AWS_MAX_RECEIVE_COUNT"
DEFAULT_HOME = "/tmp/hermes"
DEFAULT_MAX_RECEIVE = 3


# --------------------------------------------------------------------------- cold start


@dataclass
class Runtime:
    """Everything one sandbox sets up once."""

    environ: Mapping[str, str]
    home: Path
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

    @property
    def allowed_toolsets(self) -> tuple[str, ...]:
        """Toolsets of LAMBDA_DISABLED_TOOLSETS this deployment re-enables for chat turns."""
        return ("cronjob",) if self.cron is not None else ()


_sandbox: turns.PerSandbox[Runtime] = turns.PerSandbox(lambda: cold_start(os.environ))
#: this sandbox's :class:`Runtime` (cold start on first use)
runtime = _sandbox.get
#: forget the sandbox state (tests)
reset = _sandbox.reset


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
        environ=env, home=home, settings=settings,
        sessions=sessions, ledger=UpdateLedger(sessions.table, ddb), workspace=workspace,
        secrets=secrets, max_receive_count=max(1, max_receive),
        agent_name=events.agent_name(env),
        senders=Senders(secrets, env), cron=cron, budget=budget,
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


_UNHANDLED = {"telegram": "not a handled Telegram update", "slack": "not a handled Slack event"}


@register_source("telegram")
@register_source("slack")
def process_chat(rt: Runtime, body: dict[str, Any], info: RecordInfo) -> None:
    """One chat message, whatever the channel (see the module doc)."""
    from hermes_aws.chats import parse_queue_body

    message = parse_queue_body(body)
    if message is None:
        events.emit("worker_ignored", message_id=info.message_id,
                    reason=_UNHANDLED.get(str(body.get("source")), "not a chat message"))
        return
    turns.chat_turn(rt, message, info, lambda target: run_chat(rt, message, target),
                    received_at=body.get("received_at"),
                    # job edits of the attempt that persisted, if this sandbox ran it
                    redelivered=lambda: sync_cron(rt, message))


def run_chat(rt: Runtime, message: Any, target: Any) -> TurnResult:
    """The answer to a chat message, run in this sandbox (the worker's and the AgentCore container's).

    ``/new``, ``/start``, ``/reset`` start a new session; anything else is a
    Hermes turn with "typing..." on ``target``. Either is stored together with
    the ledger's ``PERSISTED`` record (a turn a guardrail blocked: the record
    alone); ``after`` is the work after the reply.
    """
    command = parse_command(message.text)
    if command in RESET_COMMANDS:
        from hermes_aws.sessions import new_session_id

        reply = RESET_COMMANDS[command]
        session_id = new_session_id()
        record = rt.ledger.persisted_action(message.dedup_key, reply, session_key=message.session_key,
                                            session_id=session_id)
        meta = rt.sessions.new_session(message.session_key, session_id=session_id, also=[record])
        return TurnResult(turns.OUTCOME_NEW_SESSION, reply, meta.session_id, fields={"command": command})
    result, meta = _run_agent_turn(rt, message, target, message.dedup_key)
    outcome = turns.OUTCOME_GUARDRAIL_BLOCKED if result.blocked else turns.OUTCOME_ANSWERED
    return TurnResult(outcome, result.final_response, meta.session_id, result.usage,
                      fields={"model": result.model}, after=lambda: _after_reply(rt, result, message))


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
        if result.blocked:
            # Guardrails evaluate every message of a request: a stored blocked message would
            # block each later turn of the chat. Only the reply is recorded (for a redelivery);
            # the turn (and a compaction made during it) is dropped.
            rt.ledger.persist(update_key, result.final_response, session_key=session_key,
                              session_id=meta.session_id)
            return result, meta
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
            raise AlreadyPersisted(update_key) from None
    return result, meta


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
    sync_cron(rt, message)


def sync_cron(rt: Runtime, message: Any = None, origin: Mapping[str, Any] | None = None) -> None:
    """Share ``jobs.json`` and reconcile the schedules; logged, never raised (the reply is out)."""
    if rt.cron is None:
        return
    from hermes_aws.chats import hermes_origin

    try:
        rt.cron.sync(origin if origin is not None else hermes_origin(message) if message is not None else None)
    except Exception as exc:
        logger.exception("cron sync failed")
        events.emit("cron_sync", ok=False, error=events.short(f"{type(exc).__name__}: {exc}"))


# --------------------------------------------------------------------------- scheduled jobs


@register_source(CRON_SOURCE)
def process_cron(rt: Runtime, body: dict[str, Any], info: RecordInfo) -> None:
    """A schedule fired: run the job as Hermes does, deliver the result to its chat(s)."""
    from hermes_aws import scheduler

    fired = scheduler.fired_job(body)
    if fired is None:
        events.emit("worker_ignored", message_id=info.message_id, reason="malformed hermes.cron body")
        return
    if rt.cron is None:
        events.emit("worker_ignored", message_id=info.message_id, reason="scheduled jobs are not enabled")
        return

    def run() -> JobResult:
        result = run_job(rt, fired)
        sync_cron(rt, origin=fired.origin)  # mark_job_run's bookkeeping, schedules (before the delivery)
        if result.ran and rt.workspace is not None:
            result.after = rt.workspace.push
        return result

    turns.job_tick(rt, fired, info, run)


def run_job(rt: Runtime, fired: Any) -> JobResult:
    """Run a fired job in this sandbox as Hermes does and store its text (``PERSISTED``).

    The job's bookkeeping is shared by :func:`sync_cron` (the caller's, when it suits it).
    """
    if rt.workspace is not None:
        rt.workspace.pull()  # the job's skills
    run = rt.cron.run_fired(fired)
    if not run.ran:
        return JobResult(False, reason=run.reason)
    rt.ledger.persist(fired.dedup_key, run.text, session_key=f"cron:{fired.job_id}", session_id=fired.dedup_key)
    return JobResult(True, text=run.text, silent=run.silent, success=run.success,
                     error=events.short(run.error) if run.error else None)


def warm_up_at_init(environ: Mapping[str, str]) -> bool:
    """Whether importing this module should do the cold start (Lambda's init phase of the worker).

    Only in the worker function itself: other handlers import this module's
    pieces too and must not start a worker (``_HANDLER`` is Lambda's handler setting).
    """
    return bool(environ.get("AWS_LAMBDA_FUNCTION_NAME") and environ.get("_HANDLER") == HANDLER
                and environ.get(TABLE_ENV))


# Inside the worker function, do the cold start during init (Lambda may run it
# ahead of the first event, and its CPU burst is free); elsewhere on first use.
if warm_up_at_init(os.environ):
    try:
        runtime()
    except Exception:  # retried (and raised) on the first event
        logger.exception("cold start failed during init; retrying on the first event")
        reset()
