"""hermes_aws.turns: the chat-turn and job-tick flow every queue consumer shares.

The worker (tests/test_lambda_worker.py) and the AgentCore dispatcher
(tests/test_agentcore_dispatcher.py) run it end to end; here its branches are
driven directly: a real ledger and budget in moto, a recording Telegram client,
and ``run`` steps that say what the test needs.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from hermes_aws import turns
from hermes_aws.budgets import TokenBudget
from hermes_aws.chats import parse_queue_body
from hermes_aws.ledger import STATUS_DELIVERED, STATUS_PERSISTED, UpdateLedger
from hermes_aws.scheduler import FiredJob
from hermes_aws.sqs_batch import RecordInfo
from stubs.aws_resources import create_sessions_table
from stubs.serverless import telegram_update

TABLE = "turns-table"


class RecordingTelegram:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_message(self, chat_id: Any, text: str, reply_to_message_id: Any = None, *,
                     message_thread_id: Any = None) -> list[int]:
        self.sent.append(text)
        return [len(self.sent)]

    def send_chat_action(self, *args: Any, **kwargs: Any) -> bool:
        return True


class Failed(RuntimeError):
    kind = "throttled"


@pytest.fixture
def ctx(aws_env: str) -> Any:
    ddb = boto3.client("dynamodb")
    create_sessions_table(TABLE, client=ddb)
    telegram = RecordingTelegram()
    return SimpleNamespace(ledger=UpdateLedger(TABLE, ddb), agent_name="test",
                           senders=SimpleNamespace(telegram=lambda: telegram, configured=lambda c: c == "telegram"),
                           budget=TokenBudget(TABLE, ddb, 100, None), telegram=telegram)


def message(text: str, chat: int = 1, user: int = 10) -> Any:
    return parse_queue_body({"source": "telegram", "update": telegram_update(chat, text, user_id=user)})


def info(receive_count: int = 1, max_receive_count: int = 3) -> RecordInfo:
    return RecordInfo("m-1", "telegram:1", receive_count, max_receive_count)


def turn_events(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith("{")]
    return [e for e in lines if e["event"] == "turn"]


def test_an_answer_is_delivered_charged_and_followed_by_its_after_work(
        ctx: Any, capfd: pytest.CaptureFixture[str]) -> None:
    msg, after = message("hello"), []
    usage = {"input_tokens": 30, "output_tokens": 5}
    turns.chat_turn(ctx, msg, info(), lambda target: turns.TurnResult(
        "answered", "hi there", "s-1", usage, fields={"model": "m"}, after=lambda: after.append(1)),
        received_at="2020-01-01T00:00:00+00:00")
    assert ctx.telegram.sent == ["hi there"] and after == [1]
    assert ctx.ledger.get(msg.dedup_key).status == STATUS_DELIVERED
    assert ctx.budget.check(msg.actor_id).used == 35
    (event,) = turn_events(capfd)
    assert (event["outcome"], event["session"], event["model"], event["InputTokens"]) == ("answered", "s-1", "m", 30)
    assert event["queued_ms"] > 0


def test_a_guardrail_block_is_delivered_and_charged_like_an_answer_not_an_error(
        ctx: Any, capfd: pytest.CaptureFixture[str]) -> None:
    msg = message("something the guardrail blocks")
    turns.chat_turn(ctx, msg, info(receive_count=3), lambda target: turns.TurnResult(
        turns.OUTCOME_GUARDRAIL_BLOCKED, "Blocked by policy.", "s-9", {"input_tokens": 12, "output_tokens": 0}))
    assert ctx.telegram.sent == ["Blocked by policy."]  # the last attempt, yet no apology
    assert ctx.ledger.get(msg.dedup_key).status == STATUS_DELIVERED
    assert ctx.budget.check(msg.actor_id).used == 12
    (event,) = turn_events(capfd)
    assert event["outcome"] == "guardrail_blocked" and "error" not in event
    assert (event["TurnErrors"], event["InputTokens"]) == (0, 12)


def test_a_reset_command_skips_the_budget_and_charges_nothing(ctx: Any) -> None:
    ctx.budget.record("telegram:10", 90, 20)  # over the day's 100 tokens
    ran: list[str] = []

    def run(target: Any) -> turns.TurnResult:
        ran.append("run")
        return turns.TurnResult("new_session", turns.NEW_SESSION_REPLY, "s-2", fields={"command": "new"})

    turns.chat_turn(ctx, message("/new"), info(), run)
    turns.chat_turn(ctx, message("and now?"), info(), run)
    assert ran == ["run"]  # the second message met the budget, not the run step
    assert ctx.telegram.sent[0] == turns.NEW_SESSION_REPLY and "usage limit" in ctx.telegram.sent[1]
    assert ctx.budget.check("telegram:10").used == 110  # /new added no turn


def test_an_ignored_answer_sends_nothing_and_leaves_the_ledger_open(
        ctx: Any, capfd: pytest.CaptureFixture[str]) -> None:
    msg = message("whatever")
    turns.chat_turn(ctx, msg, info(), lambda target: turns.TurnResult("ignored", None, None))
    assert ctx.telegram.sent == [] and ctx.ledger.get(msg.dedup_key).status is None
    assert [e["outcome"] for e in turn_events(capfd)] == ["ignored"]


def test_a_stored_reply_is_sent_again_without_running_and_a_delivered_one_not_at_all(ctx: Any) -> None:
    msg, hooks = message("once"), []
    ctx.ledger.persist(msg.dedup_key, "stored", session_key=msg.session_key, session_id="s-3")
    assert ctx.ledger.get(msg.dedup_key).status == STATUS_PERSISTED

    def run(target: Any) -> turns.TurnResult:
        raise AssertionError("the turn ran again")

    turns.chat_turn(ctx, msg, info(2), run, redelivered=lambda: hooks.append("redelivered"))
    turns.chat_turn(ctx, msg, info(3), run, redelivered=lambda: hooks.append("redelivered"))
    assert ctx.telegram.sent == ["stored"] and hooks == ["redelivered"]


def test_a_reply_is_persisted_once_unless_the_attempt_apologised(ctx: Any) -> None:
    from hermes_aws.ledger import AlreadyPersisted

    msg = message("twice")
    ctx.ledger.persist(msg.dedup_key, "first", session_key=msg.session_key, session_id="s-1")
    with pytest.raises(AlreadyPersisted, match=msg.dedup_key):  # a concurrent attempt's reply wins
        ctx.ledger.persist(msg.dedup_key, "second", session_key=msg.session_key, session_id="s-1")
    assert ctx.ledger.get(msg.dedup_key).reply == "first"

    other = message("redriven", chat=2)
    assert ctx.ledger.claim_apology(other.dedup_key)
    ctx.ledger.persist(other.dedup_key, "after the redrive", session_key=other.session_key, session_id="s-2")
    assert ctx.ledger.get(other.dedup_key).pending_reply == "after the redrive"


def test_the_last_failed_attempt_apologises_once_and_reports_the_error_kind(
        ctx: Any, capfd: pytest.CaptureFixture[str]) -> None:
    msg = message("fails")

    def run(target: Any) -> turns.TurnResult:
        raise Failed("slow down")

    for attempt in (1, 3, 3):  # a first try, then the last attempt twice (a redrive)
        with pytest.raises(Failed):
            turns.chat_turn(ctx, msg, info(attempt), run)
    assert ctx.telegram.sent == [turns.APOLOGY]
    events = turn_events(capfd)
    assert [(e["apologized"], e["last_attempt"], e["error_kind"]) for e in events] == [
        (False, False, "throttled"), (True, True, "throttled"), (False, True, "throttled")]
    assert all(e["TurnErrors"] == 1 and e["error"] == "Failed: slow down" for e in events)


def test_a_job_tick_delivers_once_to_its_targets(ctx: Any, capfd: pytest.CaptureFixture[str]) -> None:
    fired = FiredJob(job_id="j1", name="news", prompt="Summarise the news.", skills=(), deliver="origin",
                     origin={"platform": "telegram", "chat_id": "5"},
                     scheduled_time=datetime(2026, 1, 1, 8, tzinfo=timezone.utc))
    runs: list[int] = []

    def run() -> turns.JobResult:
        runs.append(1)
        return turns.JobResult(True, text="the news", success=True)

    turns.job_tick(ctx, fired, info(), run)
    turns.job_tick(ctx, fired, info(2), run)  # a duplicate delivery of the same tick
    assert ctx.telegram.sent == ["the news"] and runs == [1]
    outcomes = [json.loads(x)["outcome"] for x in capfd.readouterr().out.splitlines() if '"cron_run"' in x]
    assert outcomes == ["delivered", "duplicate"]


def test_per_sandbox_state_is_built_once_until_reset() -> None:
    built: list[int] = []
    state = turns.PerSandbox(lambda: built.append(1) or len(built))
    assert (state.get(), state.get()) == (1, 1)
    state.reset()
    assert state.get() == 2 and built == [1, 1]
