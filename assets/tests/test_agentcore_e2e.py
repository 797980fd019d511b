"""End-to-end on loopback: chat -> ingress -> SQS -> dispatcher -> AgentCore -> Hermes -> chat.

Real pieces: a moto server (DynamoDB, S3, SQS FIFO queue + DLQ, Secrets
Manager, EventBridge Scheduler), the stub Telegram Bot API and Slack Web API,
the stub model, the real handlers (``lambda_ingress.handler``,
``agentcore_dispatcher.handler``), boto3's ``bedrock-agentcore`` client pointed
with ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`` at the stand-in for the AgentCore
data plane (:mod:`stubs.agentcore_runtime_server`), which forwards each
invocation to the AgentCore app running as its own process
(``python -m hermes_aws.agentcore_app``, the image's entry point) with the
pinned hermes-agent. The queue is drained the way Lambda's event source
mapping feeds the dispatcher.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from hermes_aws import agentcore_contract as contract
from hermes_aws import agentcore_dispatcher
from stubs.agentcore import AppProcess
from stubs.agentcore_memory_server import StubAgentCoreMemory
from stubs.agentcore_runtime_server import StubAgentCoreRuntime
from stubs.model_server import ToolCall, last_user_text
from stubs.serverless import SCHEDULE_GROUP, slack_envelope, stored_messages, table_items, telegram_update

RUNTIME_ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/hermes_agent-E2e0123456"
CHAT = 5150
USER = 99


@pytest.fixture
def chain(make_serverless: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    h = make_serverless(slack=True, cron=True)
    app = AppProcess(tmp_path / "microvm-1" / "hermes")
    try:
        app.wait_healthy()
        with StubAgentCoreRuntime(RUNTIME_ARN, target=app.origin) as plane:
            monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", plane.endpoint_url)
            monkeypatch.setenv(agentcore_dispatcher.RUNTIME_ARN_ENV, RUNTIME_ARN)
            agentcore_dispatcher.reset()
            h.app, h.plane = app, plane
            yield h
            agentcore_dispatcher.reset()
    finally:
        h.app.stop()


def drain(h: Any) -> None:
    results = h.drain(worker=lambda event: agentcore_dispatcher.handler(event, None))
    assert all(r == {"batchItemFailures": []} for r in results), (results, h.app.output()[-3000:])


def test_telegram_turns_through_agentcore_and_a_fresh_microvm(chain: Any, tmp_path: Path) -> None:
    h = chain
    h.post(telegram_update(CHAT, "My favourite colour is teal.", user_id=USER))
    drain(h)
    assert h.telegram.sent_messages(CHAT) == ["stub-reply: My favourite colour is teal."]
    (call,) = h.plane.calls()
    assert call.session_id == contract.runtime_session_id(f"telegram:{CHAT}")
    assert call.user_id == f"telegram:{USER}" and call.status == 200
    assert call.response["outcome"] == "answered"

    h.post(telegram_update(CHAT, "What is my favourite colour?", user_id=USER))
    drain(h)
    assert h.telegram.sent_messages(CHAT)[-1] == "stub-reply: What is my favourite colour?"
    assert [m["content"] for m in h.model.chat_requests[-1].body["messages"][1:]] == [
        "My favourite colour is teal.", "stub-reply: My favourite colour is teal.", "What is my favourite colour?"]

    # The session's microVM goes away; the next message lands on a fresh one.
    h.app.wait_healthy()
    assert h.app.stop() == 0
    h.app = AppProcess(tmp_path / "microvm-2" / "hermes")
    h.app.wait_healthy()
    h.plane.target = h.app.origin
    h.post(telegram_update(CHAT, "And now?", user_id=USER))
    drain(h)
    assert h.telegram.sent_messages(CHAT)[-1] == "stub-reply: And now?"
    assert [m["content"] for m in h.model.chat_requests[-1].body["messages"][1:]] == [
        "My favourite colour is teal.", "stub-reply: My favourite colour is teal.",
        "What is my favourite colour?", "stub-reply: What is my favourite colour?", "And now?"]
    assert len(stored_messages(CHAT)) == 6
    assert {c.session_id for c in h.plane.calls()} == {contract.runtime_session_id(f"telegram:{CHAT}")}


def test_a_slack_mention_is_answered_in_its_thread(chain: Any) -> None:
    h = chain
    envelope = slack_envelope("<@U0BOTSTUB> how are you?", channel="C0TEAM", event_type="app_mention",
                              user="U0ALICE", ts="1710000000.000777")
    assert h.post_slack(envelope)["statusCode"] == 200
    drain(h)
    (posted,) = h.slack.posted("C0TEAM")
    assert posted.text == "stub-reply: how are you?" and posted.thread_ts == "1710000000.000777"
    (call,) = h.plane.calls()
    assert call.user_id == "slack:U0ALICE" and call.session_id == contract.runtime_session_id("slack:C0TEAM")


def test_a_scheduled_job_made_in_a_chat_fires_through_agentcore(chain: Any) -> None:
    h = chain
    h.model.script(ToolCall("cronjob", {"action": "create", "schedule": "every 1h", "name": "news",
                                        "prompt": "Summarise the news in one line."}), "Scheduled news.")
    h.post(telegram_update(CHAT, "every hour, the news please", user_id=USER))
    drain(h)
    assert h.telegram.sent_messages(CHAT) == ["Scheduled news."]
    h.app.wait_healthy()  # the jobs are shared and scheduled after the reply
    client = boto3.client("scheduler")
    (listed,) = client.list_schedules(GroupName=SCHEDULE_GROUP)["Schedules"]
    schedule = client.get_schedule(GroupName=SCHEDULE_GROUP, Name=listed["Name"])
    assert schedule["Target"]["SqsParameters"] == {"MessageGroupId": f"telegram:{CHAT}"}

    # EventBridge Scheduler fires: the Input, with the tick's time, onto the agent's queue.
    h.model.script(lambda body: "Headline: all quiet.")
    before = len(h.model.chat_requests)
    h.sqs.send_message(QueueUrl=h.env.queue_url,
                       MessageBody=schedule["Target"]["Input"].replace("<aws.scheduler.scheduled-time>",
                                                                      "2026-03-02T08:00:00Z"),
                       MessageGroupId=schedule["Target"]["SqsParameters"]["MessageGroupId"])
    drain(h)
    assert h.telegram.sent_messages(CHAT)[-1] == "⏰ news\n\nHeadline: all quiet."
    assert "Summarise the news in one line." in last_user_text(h.model.chat_requests[before].body)
    cron_call = h.plane.calls()[-1]
    assert cron_call.payload["body"]["source"] == "hermes.cron"
    assert cron_call.session_id == contract.runtime_session_id(f"telegram:{CHAT}")  # the chat's microVM
    assert cron_call.user_id == f"telegram:{USER}"
    (record,) = [i for i in table_items(f"UPDATE#cron:{cron_call.payload['body']['job']['id']}:2026-03-02T08:00:00Z")]
    assert record["status"]["S"] == "DELIVERED"


def test_long_term_memory_from_the_runtime(chain: Any, tmp_path: Path) -> None:
    """HERMES_AWS_MEMORY_ID on the runtime: turns are recorded, facts recalled in a later session."""
    h = chain
    templates = ["/users/{actorId}/facts", "/users/{actorId}/preferences", "/summaries/{actorId}/{sessionId}"]
    fact = "My favourite colour is teal and my cat is called Miso."
    with StubAgentCoreMemory(templates) as memory_plane:
        # The runtime's microVM talks to AgentCore Memory (in AWS the same data-plane endpoint).
        h.app.stop()
        env = {**os.environ, "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": memory_plane.origin,
               "HERMES_AWS_MEMORY_ID": memory_plane.memory_id, "HERMES_AWS_MEMORY_NAMESPACES": json.dumps(templates)}
        h.app = AppProcess(tmp_path / "microvm-memory" / "hermes", env=env)
        h.app.wait_healthy()
        h.plane.target = h.app.origin

        h.post(telegram_update(CHAT, f"Please remember this: {fact}", user_id=USER))
        drain(h)
        (event,) = memory_plane.events
        assert event.actor_id == f"telegram:{USER}"
        h.post(telegram_update(CHAT, "/new", user_id=USER))
        h.post(telegram_update(CHAT, "What is my cat called?", user_id=USER))
        drain(h)
        prompt = next(m["content"] for m in reversed(h.model.chat_requests[-1].body["messages"]) if m["role"] == "user")
        block = re.search(r"<memory-context>(.*?)</memory-context>", prompt, re.S)
        assert block is not None and fact in block.group(1)
        assert h.telegram.sent_messages(CHAT)[-2] == "✨ New conversation started."
