"""End-to-end: token budgets and AgentCore long-term memory in the serverless worker, on loopback.

The conftest ``make_serverless`` harness (moto, stub Telegram/Slack/model, real
Hermes, real handlers) plus the stub AgentCore Memory data plane
(``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``) for the memory tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hermes_aws import memory
from stubs.agentcore_memory_server import StubAgentCoreMemory
from stubs.serverless import Harness, slack_envelope, stored_messages, table_items, telegram_update

TEMPLATES = ["/users/{actorId}/facts", "/users/{actorId}/preferences", "/summaries/{actorId}/{sessionId}"]
FACT = "My favourite colour is teal and my cat is called Miso."
QUESTION = "What is my cat called, and which colour do I like?"


def turn_events(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [json.loads(ln) for ln in capfd.readouterr().out.splitlines() if ln.startswith("{")]
    return [ln for ln in lines if ln.get("event") == "turn"]


# --------------------------------------------------------------------------- budgets


@pytest.fixture
def budgeted(make_serverless: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch) -> Harness:
    monkeypatch.setenv("HERMES_AWS_DAILY_TOKEN_BUDGET", "2000")
    monkeypatch.setenv("HERMES_AWS_TOKEN_PRICES", json.dumps({"inputPerMillion": 3, "outputPerMillion": 15}))
    return make_serverless(slack=True)


def test_a_user_over_budget_gets_the_budget_message_and_no_model_call(budgeted: Harness,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    h = budgeted
    h.post(telegram_update(31, "first question"))  # ~1400 input tokens with Hermes's system prompt
    h.post(telegram_update(31, "second question"))  # crosses the 2000-token limit: still answered (soft limit)
    h.drain()
    assert h.telegram.sent_messages(31) == ["stub-reply: first question", "stub-reply: second question"]
    calls = len(h.model.chat_requests)
    (day,) = table_items("BUDGET#telegram:31")
    used = int(day["input_tokens"]["N"]) + int(day["output_tokens"]["N"])
    assert used > 2000 and day["SK"]["S"].startswith("DAY#") and "expires_at" in day
    capfd.readouterr()

    h.post(telegram_update(31, "third question"))
    h.drain()
    reply = h.telegram.sent_messages(31)[-1]
    assert "usage limit" in reply and "resets at midnight UTC" in reply  # the friendly message, not an answer
    assert len(h.model.chat_requests) == calls  # the model was not called
    (refused,) = turn_events(capfd)
    assert refused["outcome"] == "budget_exceeded" and refused["BudgetExceeded"] == 1
    assert refused["InputTokens"] == 0 and refused["User"] == "telegram:31"
    assert [m["content"] for m in stored_messages(31) if m["role"] == "user"] == ["first question", "second question"]

    # another user (another channel, too) is not affected, and commands still work for the first one
    h.post_slack(slack_envelope("hello from slack", user="U0BOB"))
    h.post(telegram_update(31, "/new"))
    h.drain()
    assert h.slack.posted_texts() == ["stub-reply: hello from slack"]
    assert h.telegram.sent_messages(31)[-1].startswith("✨")
    assert len(h.model.chat_requests) == calls + 1


def test_turn_metrics_carry_cost_per_agent_and_user(budgeted: Harness, capfd: pytest.CaptureFixture[str]) -> None:
    h = budgeted
    capfd.readouterr()
    h.post(telegram_update(32, "price this"))
    h.drain()
    (turn,) = turn_events(capfd)
    expected = (turn["InputTokens"] * 3 + turn["OutputTokens"] * 15) / 1_000_000
    assert turn["EstimatedCost"] == pytest.approx(expected) and turn["EstimatedCost"] > 0
    usage_directive = turn["_aws"]["CloudWatchMetrics"][1]
    assert usage_directive["Dimensions"] == [["Agent"], ["Agent", "User"]]
    assert {m["Name"]: m["Unit"] for m in usage_directive["Metrics"]}["EstimatedCost"] == "None"
    assert (turn["Agent"], turn["User"]) == ("test-agent", "telegram:32")


# --------------------------------------------------------------------------- memory


@pytest.fixture
def agentcore(make_serverless: Callable[..., Harness],
              monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Harness, StubAgentCoreMemory]]:
    with StubAgentCoreMemory(TEMPLATES) as stub:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", stub.origin)
        monkeypatch.setenv("HERMES_AWS_MEMORY_ID", stub.memory_id)
        monkeypatch.setenv("HERMES_AWS_MEMORY_NAMESPACES", json.dumps(TEMPLATES))
        memory.configure(None)
        yield make_serverless(slack=True), stub
        memory.configure(None)


def last_user_content(h: Harness) -> str:
    messages = h.model.chat_requests[-1].body["messages"]
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def test_with_memory_a_fact_from_one_session_is_recalled_in_another(
        agentcore: tuple[Harness, StubAgentCoreMemory]) -> None:
    h, stub = agentcore
    h.post(telegram_update(111, f"Please remember this: {FACT}"))
    h.drain()
    (event,) = stub.events  # recorded before the invocation ended
    assert event.actor_id == "telegram:111"
    assert [p["conversational"]["role"] for p in event.payload] == ["USER", "ASSISTANT"]
    first_session = event.session_id

    h.post(telegram_update(111, "/new"))  # another session of the same chat and user
    h.post(telegram_update(111, QUESTION))
    h.drain()
    prompt = last_user_content(h)
    block = re.search(r"<memory-context>(.*?)</memory-context>", prompt, re.S)
    assert block is not None and FACT in block.group(1)
    assert stub.events[-1].session_id != first_session
    # the stored history keeps the user's own words, not the recalled block
    (stored,) = [m for m in stored_messages(111) if m["role"] == "user"]
    assert stored["content"] == QUESTION and "<memory-context>" not in json.dumps(stored)

    # another user (on Slack) asking the same question learns nothing about the first one
    h.post_slack(slack_envelope(QUESTION, user="U0EVE", channel="D0EVE"))
    h.drain()
    other = last_user_content(h)
    assert "Miso" not in other and "<memory-context>" not in other
    assert [e.actor_id for e in stub.events] == ["telegram:111", "telegram:111", "slack:U0EVE"]


def test_memory_service_failures_do_not_fail_the_turn(agentcore: tuple[Harness, StubAgentCoreMemory]) -> None:
    h, stub = agentcore
    stub.fail_next("RetrieveMemoryRecords", 500, "ServiceException", times=20)
    stub.fail_next("CreateEvent", 403, "AccessDeniedException", times=5)
    h.post(telegram_update(112, "still there?"))
    h.drain()
    assert h.telegram.sent_messages(112) == ["stub-reply: still there?"]
    assert h.invocations == 1 and h.dlq_bodies() == []
