"""One chat turn and one job tick, as every consumer of the agent's queue runs them.

Standard library at import time (channel clients, budgets and the cron bridge
are imported when used), so the AgentCore dispatcher (a zip Lambda without
Hermes) shares this flow with the serverless worker. What differs between them
is only the step that produces the answer, passed in as ``run``: the worker
runs Hermes in its own sandbox (:func:`hermes_aws.lambda_worker.run_chat`), the
dispatcher invokes the AgentCore runtime, which runs the same function.

A chat message (:func:`chat_turn`):

1. the ledger (:mod:`hermes_aws.ledger`) says ``DELIVERED``: nothing to do;
   ``PERSISTED``/``APOLOGIZED`` with a stored reply: that reply is sent (from
   the chunk where the last attempt stopped), the turn is not run again;
2. anything but ``/new``, ``/start``, ``/reset`` over the user's daily token
   budget gets the budget message and no turn;
3. ``run(target)`` -> :class:`TurnResult` (``/new`` handling is part of it);
   a turn a guardrail blocked (``guardrail_blocked``) is answered with the
   guardrail's message like any answer: no error, no retry, no apology;
4. tokens charged to the budget, the reply delivered chunk by chunk
   (:func:`deliver`), ``result.after()``;
5. one ``turn`` event with its EMF metrics (:func:`emit_turn`);
6. on an error: on the last attempt one apology (:func:`apologize_once`), the
   ``turn`` event with ``outcome: error``, and the error is raised again.

A fired job (:func:`job_tick`): the same ledger rules, ``run()`` ->
:class:`JobResult`, the text delivered to the job's targets, one ``cron_run``
event.

``ctx`` is the consumer's per-sandbox state; it needs ``ledger``
(:class:`~hermes_aws.ledger.UpdateLedger`), ``senders``
(:class:`~hermes_aws.chats.Senders`), ``agent_name`` and optionally ``budget``
(:class:`~hermes_aws.budgets.TokenBudget`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from hermes_aws import events

logger = logging.getLogger(__name__)

APOLOGY = "Sorry — I couldn't answer that message. Please try again."
NEW_SESSION_REPLY = "✨ New conversation started."
START_REPLY = "✨ Hi! New conversation started — just send me a message."
RESET_COMMANDS = {"new": NEW_SESSION_REPLY, "start": START_REPLY, "reset": NEW_SESSION_REPLY}

OUTCOME_ANSWERED = "answered"
OUTCOME_NEW_SESSION = "new_session"
OUTCOME_IGNORED = "ignored"
#: a content policy (a Bedrock guardrail) blocked the turn; the reply is the block message
OUTCOME_GUARDRAIL_BLOCKED = "guardrail_blocked"
#: outcomes of a model turn: their tokens count against the user's budget
MODEL_OUTCOMES = frozenset({OUTCOME_ANSWERED, OUTCOME_GUARDRAIL_BLOCKED})

T = TypeVar("T")


class PerSandbox(Generic[T]):
    """What a consumer sets up once per sandbox (Lambda execution environment), built on first use."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    def reset(self) -> None:
        """Forget it (tests; a failed warm-up)."""
        with self._lock:
            self._value = None


def parse_command(text: str) -> str | None:
    """``"/new@my_bot extra"`` -> ``"new"``; None when the text is not a command."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None
    word = stripped.split(None, 1)[0][1:]
    return word.split("@", 1)[0].lower() or None


# --------------------------------------------------------------------------- a chat turn


@dataclass
class TurnResult:
    """What the ``run`` step of a chat turn produced."""

    outcome: str  # answered | guardrail_blocked | new_session (| ignored: the runtime did not take it)
    reply: str | None = None
    session_id: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    #: more fields of the ``turn`` event (model, command, runtime_ms)
    fields: dict[str, Any] = field(default_factory=dict)
    #: work after the reply is delivered (the worker: background review, uploads, cron sync)
    after: Callable[[], None] | None = None
    #: chunks of ``reply`` already sent (a stored reply an earlier attempt began to deliver)
    start_chunk: int = 0


def chat_turn(ctx: Any, message: Any, info: Any, run: Callable[[Any], TurnResult], *,
              received_at: Any = None, redelivered: Callable[[], None] | None = None) -> None:
    """One chat message (:class:`~hermes_aws.channels.base.InboundMessage`), see the module doc.

    ``run(target)`` produces the answer (``target``: the
    :class:`~hermes_aws.chats.ReplyTarget` of the message, for "typing...");
    ``redelivered()`` runs after a stored reply was sent again.
    """
    from hermes_aws.chats import reply_target

    started = time.monotonic()
    key = message.dedup_key
    fields: dict[str, Any] = {
        "source": message.channel, "update_id": message.update_id, "chat": message.chat_id,
        "user": message.actor_id, "message_id": info.message_id, "receive_count": info.receive_count,
    }
    queued_ms = since(received_at)
    if queued_ms is not None:
        fields["queued_ms"] = queued_ms
    usage: Mapping[str, Any] = {}
    target = None
    try:
        state = ctx.ledger.get(key)
        if state.delivered:
            emit_turn(ctx, {**fields, "outcome": "duplicate"}, started, usage, error=False)
            return
        target = reply_target(message, ctx.senders)
        if state.pending_reply is not None:
            fields["session"] = state.session_id
            deliver(ctx, [target], key, state.pending_reply, start_chunk=state.chunks_sent)
            if redelivered is not None:
                redelivered()
            emit_turn(ctx, {**fields, "outcome": "redelivered"}, started, usage, error=False)
            return
        budget = getattr(ctx, "budget", None)
        if budget is not None and budget.enabled and parse_command(message.text) not in RESET_COMMANDS:
            status = budget.check(message.actor_id)
            if not status.allowed:  # no turn; the message is answered (and acknowledged)
                deliver(ctx, [target], key, budget.exceeded_message(status))
                emit_turn(ctx, {**fields, "outcome": "budget_exceeded", "tokens_used_today": status.used},
                          started, usage, error=False)
                return
        result = run(target)
        fields["session"] = result.session_id
        usage = result.usage
        done = {**fields, "outcome": result.outcome, **result.fields}
        if result.outcome == OUTCOME_IGNORED:
            emit_turn(ctx, done, started, usage, error=False)
            return
        if result.outcome in MODEL_OUTCOMES:
            record_usage(ctx, message.actor_id, usage)
        deliver(ctx, [target], key, result.reply or "", start_chunk=result.start_chunk)
        if result.after is not None:
            result.after()
        emit_turn(ctx, done, started, usage, error=False)
    except Exception as exc:
        apologized = apologize_once(ctx, target, key) if info.last_attempt else False
        emit_turn(ctx, {**fields, "outcome": "error", **_error_fields(exc), "last_attempt": info.last_attempt,
                        "apologized": apologized}, started, usage, error=True)
        raise


# --------------------------------------------------------------------------- a job tick


@dataclass
class JobResult:
    """What the ``run`` step of a fired job produced."""

    ran: bool
    reason: str | None = None  # why it did not run (paused, removed, already running)
    text: str = ""
    silent: bool = False  # Hermes's [SILENT]: nothing to deliver
    success: bool | None = None
    error: str | None = None
    #: work after the text is delivered (the worker: skills/memories upload)
    after: Callable[[], None] | None = None
    #: chunks of ``text`` already sent (a stored text an earlier attempt began to deliver)
    start_chunk: int = 0


def job_tick(ctx: Any, fired: Any, info: Any, run: Callable[[], JobResult]) -> None:
    """One fired job (:class:`~hermes_aws.scheduler.FiredJob`): run it once, deliver to its targets."""
    from hermes_aws import scheduler
    from hermes_aws.chats import CHANNELS, origin_target
    from hermes_aws.cron_bridge import delivery_targets

    started = time.monotonic()
    key = fired.dedup_key
    fields: dict[str, Any] = {"source": scheduler.SOURCE, "job": fired.job_id, "message_id": info.message_id,
                              "scheduled_time": fired.scheduled_time.isoformat(),
                              "receive_count": info.receive_count}
    channels = [c for c in CHANNELS if ctx.senders.configured(c)]
    found, skipped = delivery_targets(fired.deliver, fired.origin, channels)
    if skipped:
        fields["skipped_targets"] = events.short(",".join(skipped), 200)
    try:
        state = ctx.ledger.get(key)
        if state.delivered:
            emit_cron(ctx, {**fields, "outcome": "duplicate"}, started)
            return
        targets = [origin_target(p, c, t, ctx.senders) for p, c, t in found]
        if state.pending_reply is not None:
            deliver(ctx, targets, key, state.pending_reply, start_chunk=state.chunks_sent)
            emit_cron(ctx, {**fields, "outcome": "redelivered"}, started)
            return
        result = run()
        if not result.ran:
            emit_cron(ctx, {**fields, "outcome": "skipped", "reason": result.reason}, started)
            return
        deliver(ctx, targets, key, result.text, start_chunk=result.start_chunk)
        if result.after is not None:
            result.after()
        outcome = "silent" if result.silent else "delivered" if result.text and targets else "not_delivered"
        emit_cron(ctx, {**fields, "outcome": outcome, "success": result.success, "error": result.error}, started)
    except Exception as exc:
        emit_cron(ctx, {**fields, "outcome": "error", **_error_fields(exc), "last_attempt": info.last_attempt},
                  started, error=True)
        raise


# --------------------------------------------------------------------------- the pieces


def deliver(ctx: Any, targets: list[Any], key: str, text: str, *, start_chunk: int = 0) -> None:
    """Send ``text`` to every target chunk by chunk (recording progress), then mark ``key`` delivered.

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
            ctx.ledger.record_progress(key, position + 1)
    ctx.ledger.mark_delivered(key, ids)


def apologize_once(ctx: Any, target: Any, key: str) -> bool:
    """Send :data:`APOLOGY` to ``target`` unless ``key`` was apologised for already; never raises."""
    if target is None:
        return False
    try:
        if not ctx.ledger.claim_apology(key):
            return False
        target.send(APOLOGY)
        return True
    except Exception as exc:
        logger.warning("could not send the apology for %s: %s", key, exc)
        return False


def record_usage(ctx: Any, user: str, usage: Mapping[str, Any]) -> None:
    """Count a turn's tokens against the user's daily budget (logged, never raised: the turn is done)."""
    budget = getattr(ctx, "budget", None)
    if budget is None or not budget.enabled:
        return
    try:
        budget.record(user, int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0))
    except Exception as exc:
        logger.warning("could not record token usage for %s: %s", user, exc)


def emit_turn(ctx: Any, fields: dict[str, Any], started: float, usage: Mapping[str, Any], *,
              error: bool) -> None:
    """The ``turn`` event with its EMF metrics (:func:`hermes_aws.budgets.turn_metric_fields`).

    ``fields["user"]`` (the actor id) adds the [Agent, User] dimension set;
    ``fields["outcome"] == "budget_exceeded"`` counts ``BudgetExceeded``.
    """
    from hermes_aws.budgets import turn_metric_fields

    duration = round((time.monotonic() - started) * 1000, 1)
    input_tokens = int(usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("output_tokens") or 0)
    budget = getattr(ctx, "budget", None)
    cost = budget.estimate_cost(input_tokens, output_tokens) if budget is not None else 0.0
    user = fields.get("user") if isinstance(fields.get("user"), str) else None
    record = {
        **fields, "agent": ctx.agent_name, "duration_ms": duration,
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "api_calls": int(usage.get("api_calls") or 0), "estimated_cost_usd": cost,
        **turn_metric_fields(ctx.agent_name, user, duration_ms=duration, error=error,
                             input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost,
                             budget_exceeded=fields.get("outcome") == "budget_exceeded",
                             namespace=events.METRIC_NAMESPACE),
    }
    try:
        events.emit("turn", **record)
    except Exception:  # logging must never fail a message
        logger.debug("could not emit the turn event", exc_info=True)


def emit_cron(ctx: Any, fields: dict[str, Any], started: float, *, error: bool = False) -> None:
    """The ``cron_run`` event of a job tick (fields that are None are left out)."""
    try:
        events.emit("cron_run", agent=ctx.agent_name, duration_ms=round((time.monotonic() - started) * 1000, 1),
                    **{k: v for k, v in fields.items() if v is not None})
    except Exception:  # logging must never fail a message
        logger.debug("could not emit the cron_run event", exc_info=True)


def since(iso: Any) -> int | None:
    """Milliseconds since an ISO timestamp with a zone (the ingress's ``received_at``), else None."""
    if not isinstance(iso, str):
        return None
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        return None
    return max(0, int((datetime.now(timezone.utc) - then).total_seconds() * 1000))


def _error_fields(exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"error": events.short(f"{type(exc).__name__}: {exc}")}
    kind = getattr(exc, "kind", None)  # the dispatcher's InvocationError
    if kind is not None:
        out["error_kind"] = kind
    return out
