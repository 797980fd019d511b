"""End-to-end: Slack Events API -> ingress -> SQS FIFO -> worker -> Hermes -> chat.postMessage, on loopback.

Real handlers, a real moto server, the stub Slack Web API, the stub model and
the pinned hermes-agent (conftest.py ``make_serverless`` with ``slack=True``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from hermes_aws.lambda_worker import APOLOGY
from stubs.model_server import HttpError, last_user_text
from stubs.serverless import (
    Harness,
    function_url_event,
    slack_envelope,
    sqs_event,
    stored_messages,
    telegram_update,
    update_state,
)


@pytest.fixture
def harness(make_serverless: Callable[..., Harness]) -> Harness:
    return make_serverless(slack=True)


def mention(text: str, **kw: Any) -> dict[str, Any]:
    return slack_envelope(f"<@U0BOTSTUB> {text}", event_type="app_mention", channel="C0GENERAL", **kw)


def test_a_good_dm_is_answered_in_its_thread_and_the_dm_keeps_its_history(harness: Harness) -> None:
    first = slack_envelope("My favourite colour is teal &amp; gold.")
    assert harness.post_slack(first)["statusCode"] == 200
    harness.drain()
    (reply,) = harness.slack.posted("D0DMALICE")
    assert reply.text == "stub-reply: My favourite colour is teal &amp; gold."  # the agent saw "&", escaped for Slack
    assert reply.thread_ts == first["event"]["ts"]  # in the message's thread
    assert last_user_text(harness.model.chat_requests[0].body) == "My favourite colour is teal & gold."

    second = slack_envelope("What is my favourite colour?")
    harness.post_slack(second)
    harness.drain()
    sent = [(m["role"], m["content"]) for m in harness.model.chat_requests[-1].body["messages"][1:]]
    assert sent == [("user", "My favourite colour is teal & gold."),
                    ("assistant", "stub-reply: My favourite colour is teal & gold."),
                    ("user", "What is my favourite colour?")]  # a DM is one conversation
    assert harness.slack.posted("D0DMALICE")[-1].thread_ts == second["event"]["ts"]
    assert len(stored_messages("D0DMALICE", channel="slack")) == 4
    assert update_state(first["event_id"], channel="slack")["status"] == {"S": "DELIVERED"}
    assert harness.telegram.calls == {}  # nothing went to the other channel


def test_a_mention_starts_a_threaded_conversation(harness: Harness) -> None:
    top = mention("plan the offsite")
    harness.post_slack(top)
    harness.drain()
    thread = top["event"]["ts"]
    (reply,) = harness.slack.posted("C0GENERAL")
    assert (reply.text, reply.thread_ts) == ("stub-reply: plan the offsite", thread)

    follow_up = mention("and the budget?", thread_ts=thread)
    other = mention("unrelated question")  # another top-level mention: another conversation
    harness.post_slack(follow_up)
    harness.post_slack(other)
    harness.drain()
    by_text = {last_user_text(r.body): r.body["messages"][1:] for r in harness.model.chat_requests}
    assert [m["content"] for m in by_text["and the budget?"]] == [
        "plan the offsite", "stub-reply: plan the offsite", "and the budget?"]
    assert [m["content"] for m in by_text["unrelated question"]] == ["unrelated question"]
    threads = [(m.text, m.thread_ts) for m in harness.slack.posted("C0GENERAL")]
    assert threads == [("stub-reply: plan the offsite", thread), ("stub-reply: and the budget?", thread),
                       ("stub-reply: unrelated question", other["event"]["ts"])]
    assert stored_messages(f"C0GENERAL:{thread}", channel="slack")[-1]["content"] == "stub-reply: and the budget?"


def test_a_retried_event_is_answered_once(harness: Harness) -> None:
    envelope = mention("are you there?")
    assert harness.post_slack(envelope)["statusCode"] == 200
    assert harness.post_slack(envelope, retry_num=1)["statusCode"] == 200  # within SQS's dedup window
    (message,) = harness.receive()
    harness.sqs.change_message_visibility(QueueUrl=harness.env.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
    harness.drain()
    # A retry that got past SQS's 5-minute window: the same body again, as a new message.
    late = json.loads(message["Body"])
    from hermes_aws import lambda_worker
    from stubs.serverless import sqs_record

    record = sqs_record(body=late, group_id="slack:C0GENERAL", message_id="late-copy")
    assert lambda_worker.handler(sqs_event(record), None) == {"batchItemFailures": []}
    assert [m.text for m in harness.slack.posted()] == ["stub-reply: are you there?"]
    assert len(harness.model.chat_requests) == 1


@pytest.mark.parametrize("how", ["wrong secret", "stale", "unsigned"])
def test_a_bad_or_stale_signature_is_rejected_and_nothing_happens(harness: Harness, how: str) -> None:
    envelope = mention("do something")
    request = {"wrong secret": {"secret": "someone-elses-secret"},
               "stale": {"timestamp": int(time.time()) - 301},
               "unsigned": {"sign": False}}[how]
    response = harness.post_slack(envelope, **request)
    assert response["statusCode"] in (401, 403)
    assert harness.queue_depth() == 0
    harness.drain()
    assert harness.slack.calls == {} and harness.model.chat_requests == []


def test_a_failed_post_is_resent_from_the_ledger_not_recomputed(harness: Harness) -> None:
    harness.slack.error_next("chat.postMessage", "internal_error")  # HTTP 200 {"ok": false}: not retried in-call
    envelope = slack_envelope("hello")
    harness.post_slack(envelope)
    harness.drain()
    assert harness.slack.posted_texts() == ["stub-reply: hello"]
    assert len(harness.model.chat_requests) == 1 and harness.invocations == 2
    assert [m["role"] for m in stored_messages("D0DMALICE", channel="slack")] == ["user", "assistant"]


def test_a_poison_event_gets_one_apology_in_its_thread(harness: Harness) -> None:
    harness.model.script(*[HttpError(500, "down")] * 5)
    envelope = mention("poison")
    harness.post_slack(envelope)
    harness.drain()
    (apology,) = harness.slack.posted()
    assert (apology.text, apology.thread_ts) == (APOLOGY, envelope["event"]["ts"])
    (dead,) = harness.dlq_bodies()
    assert dead["source"] == "slack" and dead["event"]["event_id"] == envelope["event_id"]


def test_slack_only_deployment_has_no_telegram_route(make_serverless: Callable[..., Harness]) -> None:
    h = make_serverless(slack=True, telegram=False)
    assert h.call_ingress(function_url_event(telegram_update(5, "hi")))["statusCode"] == 404
    h.post_slack(slack_envelope("only slack here"))
    h.drain()
    assert h.slack.posted_texts() == ["stub-reply: only slack here"]


def test_telegram_and_slack_side_by_side(harness: Harness) -> None:
    harness.post(telegram_update(77, "from telegram"))
    harness.post_slack(slack_envelope("from slack"))
    harness.drain()
    assert harness.telegram.sent_messages(77) == ["stub-reply: from telegram"]
    assert harness.slack.posted_texts() == ["stub-reply: from slack"]
    assert stored_messages(77)[0]["content"] == "from telegram"
    assert stored_messages("D0DMALICE", channel="slack")[0]["content"] == "from slack"
