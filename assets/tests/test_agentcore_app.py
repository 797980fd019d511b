"""The AgentCore Runtime container (hermes_aws.agentcore_app) on loopback.

Real pieces: bedrock-agentcore's BedrockAgentCoreApp on uvicorn, the pinned
hermes-agent, a moto server (DynamoDB, S3, Secrets Manager, SQS), the stub
model. The app runs as ``python -m hermes_aws.agentcore_app`` (the image's
entry point) in a child process, or served from a thread when a test looks
inside the process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from hermes_aws import agentcore_contract as contract
from hermes_aws.agentcore_app import AgentProcess, WarmHistory
from hermes_aws.sessions import SessionStore
from stubs.agentcore import AppProcess, InProcessApp, invoke, ping, wait_healthy
from stubs.serverless import BUCKET, TABLE, stored_messages, table_items, telegram_update


def chat_body(update: dict[str, Any]) -> dict[str, Any]:
    return {"source": "telegram", "update": update, "received_at": "2026-05-21T10:00:00.000+00:00"}


def conversation(request: Any) -> list[tuple[str, str]]:
    """(role, content) of what a chat request sent after the system prompt."""
    return [(m["role"], m["content"]) for m in request.body["messages"][1:]]


@pytest.fixture
def harness(make_serverless: Callable[..., Any]) -> Any:
    return make_serverless()


# --------------------------------------------------------------------------- the container


def test_ping_invocations_and_a_restarted_process_resumes_the_session(harness: Any, tmp_path: Path) -> None:
    first = AppProcess(tmp_path / "microvm-1" / "hermes")
    try:
        first.wait_healthy()
        status = ping(first.origin)
        assert status["status"] == "Healthy" and isinstance(status["time_of_last_update"], int)

        code, answer = invoke(first.origin, chat_body(telegram_update(101, "My favourite colour is teal.")),
                              chat="telegram:101")
        assert code == 200, answer
        assert answer["outcome"] == "answered" and answer["version"] == 1
        assert answer["reply"] == "stub-reply: My favourite colour is teal."
        assert answer["usage"]["input_tokens"] > 0 and answer["duration_ms"] > 0
        # the turn and the ledger's PERSISTED record are in DynamoDB
        assert [(m["role"], m["content"]) for m in stored_messages(101)] == [
            ("user", "My favourite colour is teal."), ("assistant", "stub-reply: My favourite colour is teal.")]

        second = telegram_update(101, "What is my favourite colour?")
        code, answer = invoke(first.origin, chat_body(second), chat="telegram:101")
        assert code == 200 and answer["reply"] == "stub-reply: What is my favourite colour?"
        assert conversation(harness.model.chat_requests[-1]) == [
            ("user", "My favourite colour is teal."), ("assistant", "stub-reply: My favourite colour is teal."),
            ("user", "What is my favourite colour?")]
        (record,) = table_items(f"UPDATE#telegram:{second['update_id']}")
        assert record["status"]["S"] == "PERSISTED"
        assert record["reply"]["S"] == "stub-reply: What is my favourite colour?"
        first.wait_healthy()  # the work after the turn is done
        # the model key came from Secrets Manager (the child never inherited it)
        assert harness.model.chat_requests[-1].headers["Authorization"] == "Bearer sk-stub-worker-0123456789abcdef"
    finally:
        assert first.stop() == 0, first.output()[-3000:]  # SIGTERM: a clean shutdown

    # Meanwhile a skill appeared in the bucket (another sandbox wrote it).
    boto3.client("s3").put_object(Bucket=BUCKET, Key="skills/greeting/SKILL.md",
                                  Body=b"---\nname: greeting\ndescription: greet\n---\nSay hi.\n")

    # A fresh microVM: empty HERMES_HOME, nothing in memory.
    home = tmp_path / "microvm-2" / "hermes"
    with AppProcess(home) as again:
        again.wait_healthy()
        code, answer = invoke(again.origin, chat_body(telegram_update(101, "And my name?")), chat="telegram:101")
        assert code == 200, (answer, again.output()[-3000:])
        assert answer["reply"] == "stub-reply: And my name?"
        assert [c for _, c in conversation(harness.model.chat_requests[-1])] == [
            "My favourite colour is teal.", "stub-reply: My favourite colour is teal.",
            "What is my favourite colour?", "stub-reply: What is my favourite colour?", "And my name?"]
        assert len(stored_messages(101)) == 6
        assert (home / "config.yaml").is_file()
        assert (home / "skills" / "greeting" / "SKILL.md").read_text().endswith("Say hi.\n")


def test_invalid_payloads_are_http_errors_and_unknown_bodies_are_ignored(harness: Any, tmp_path: Path) -> None:
    process = AgentProcess()
    with InProcessApp(process) as app:
        code, answer = invoke(app.origin, {}, payload=json.dumps({"version": 99, "body": {}}).encode())
        assert code == 500 and "unsupported payload version" in answer["error"]
        code, answer = invoke(app.origin, {"source": "discord", "whatever": 1})
        assert (code, answer["outcome"], answer["reply"]) == (200, "ignored", None)
        code, answer = invoke(app.origin, {"source": "hermes.cron", "job": {"id": "x"}})
        assert (code, answer["outcome"]) == (200, "ignored")
        assert harness.model.chat_requests == []  # nothing reached the model


def test_new_starts_a_session_recorded_for_the_dispatcher(harness: Any) -> None:
    process = AgentProcess()
    with InProcessApp(process) as app:
        invoke(app.origin, chat_body(telegram_update(7, "remember 42")), chat="telegram:7")
        reset = telegram_update(7, "/new")
        code, answer = invoke(app.origin, chat_body(reset), chat="telegram:7")
        assert (code, answer["outcome"], answer["command"]) == (200, "new_session", "new")
        assert answer["reply"] == "✨ New conversation started."
        assert stored_messages(7) == []  # the chat's current session is the new, empty one
        (record,) = table_items(f"UPDATE#telegram:{reset['update_id']}")
        assert record["status"]["S"] == "PERSISTED" and record["session_id"]["S"] == answer["session_id"]
        invoke(app.origin, chat_body(telegram_update(7, "fresh start")), chat="telegram:7")
        assert conversation(harness.model.chat_requests[-1]) == [("user", "fresh start")]


def test_ping_is_busy_while_a_turn_runs(harness: Any) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(body: dict[str, Any]) -> str:
        entered.set()
        assert release.wait(60)
        return "done thinking"

    harness.model.script(slow)
    process = AgentProcess()
    with InProcessApp(process) as app:
        wait_healthy(app.origin)
        result: dict[str, Any] = {}
        turn = threading.Thread(target=lambda: result.update(
            zip(("code", "answer"), invoke(app.origin, chat_body(telegram_update(9, "think hard")), chat="telegram:9"))))
        turn.start()
        assert entered.wait(60)
        assert ping(app.origin)["status"] == "HealthyBusy"
        release.set()
        turn.join(60)
        assert result["code"] == 200 and result["answer"]["reply"] == "done thinking"
        assert process.wait_idle(60)
        assert ping(app.origin)["status"] == "Healthy"


def test_a_retry_waiting_on_a_running_turn_gets_its_stored_reply(harness: Any) -> None:
    """A dispatcher retry (its first invocation timed out) reaches the microVM while the turn still runs:
    it waits for the turn, then answers the stored reply without running the model again."""
    from hermes_aws.ledger import UpdateLedger

    release = threading.Event()
    entered = threading.Event()

    def slow(body: dict[str, Any]) -> str:
        entered.set()
        assert release.wait(60)
        return "the one answer"

    harness.model.script(slow, slow)
    process = AgentProcess()
    update = telegram_update(13, "think once")
    with InProcessApp(process) as app:
        answers: list[tuple[int, dict[str, Any]]] = []

        def call() -> None:
            answers.append(invoke(app.origin, chat_body(update), chat="telegram:13"))

        first = threading.Thread(target=call)
        first.start()
        assert entered.wait(60)
        retry = threading.Thread(target=call)
        retry.start()
        release.set()
        first.join(60)
        retry.join(60)
        assert [(code, a["outcome"], a["reply"]) for code, a in answers] == [
            (200, "answered", "the one answer"), (200, "stored", "the one answer")]
        assert answers[1][1]["chunks_sent"] == 0
        assert answers[1][1]["session_id"] == answers[0][1]["session_id"]
        assert len(harness.model.chat_requests) == 1  # the model ran once
        assert [m["content"] for m in stored_messages(13)] == ["think once", "the one answer"]

        # once the dispatcher delivered it, another attempt has nothing to send
        UpdateLedger(TABLE, boto3.client("dynamodb")).mark_delivered(f"telegram:{update['update_id']}", [1])
        code, answer = invoke(app.origin, chat_body(update), chat="telegram:13")
        assert (code, answer["outcome"], answer["reply"]) == (200, "ignored", None)
        assert len(harness.model.chat_requests) == 1


def test_warm_turns_reuse_the_transcript_until_someone_else_writes(harness: Any) -> None:
    process = AgentProcess()
    with InProcessApp(process) as app:
        for text in ("one", "two"):
            code, _ = invoke(app.origin, chat_body(telegram_update(5, text)), chat="telegram:5")
            assert code == 200
        history = process.runtime().sessions
        assert isinstance(history, WarmHistory)
        assert (history.misses, history.hits) == (1, 1)  # the second turn did not query DynamoDB
        assert [c for _, c in conversation(harness.model.chat_requests[-1])] == ["one", "stub-reply: one", "two"]

        # Another process appends to the chat: this process's transcript is stale now.
        store = SessionStore(TABLE, client=boto3.client("dynamodb"))
        meta = store.current("telegram:5")
        store.append("telegram:5", meta.session_id, [{"role": "user", "content": "from elsewhere"},
                                                       {"role": "assistant", "content": "noted elsewhere"}], meta=meta)
        process.wait_idle()
        invoke(app.origin, chat_body(telegram_update(5, "three")), chat="telegram:5")
        assert (history.misses, history.hits) == (2, 1)
        assert [c for _, c in conversation(harness.model.chat_requests[-1])] == [
            "one", "stub-reply: one", "two", "stub-reply: two", "from elsewhere", "noted elsewhere", "three"]
        # and the cache follows the store again from there
        invoke(app.origin, chat_body(telegram_update(5, "four")), chat="telegram:5")
        assert (history.misses, history.hits) == (2, 2)
        assert [c for _, c in conversation(harness.model.chat_requests[-1])][-3:] == [
            "three", "stub-reply: three", "four"]


def test_a_failed_turn_is_an_http_error_and_persists_nothing(harness: Any) -> None:
    from stubs.model_server import HttpError, last_user_text

    failing = True

    def reply(body: dict[str, Any]) -> Any:
        return HttpError(400, "bad request") if failing else f"stub-reply: {last_user_text(body)}"

    harness.model.script(*[reply] * 6)
    process = AgentProcess()
    with InProcessApp(process) as app:
        update = telegram_update(11, "this fails")
        code, answer = invoke(app.origin, chat_body(update), chat="telegram:11")
        assert code == 500 and "error" in answer
        assert stored_messages(11) == []
        assert table_items(f"UPDATE#telegram:{update['update_id']}") == []
        assert process.wait_idle() and not process.busy  # the lock and the busy mark were released
        failing = False
        code, answer = invoke(app.origin, chat_body(telegram_update(11, "and now?")), chat="telegram:11")
        assert code == 200 and answer["reply"] == "stub-reply: and now?"


def test_a_guardrail_block_is_answered_but_not_stored_in_the_history(harness: Any) -> None:
    """A content-policy block (a guardrail) comes back as ``guardrail_blocked`` with its message,
    recorded in the ledger only: the chat's history and the warm transcript stay as they were,
    so the next turn does not send the blocked message again."""
    from stubs.model_server import Reply

    blocked_text = "Sorry, that is against our policy."
    process = AgentProcess()
    with InProcessApp(process) as app:
        code, _ = invoke(app.origin, chat_body(telegram_update(13, "hello")), chat="telegram:13")
        assert code == 200
        harness.model.script(Reply(blocked_text, finish_reason="content_filter"))
        blocked = telegram_update(13, "something harmful")
        code, answer = invoke(app.origin, chat_body(blocked), chat="telegram:13")
        assert (code, answer["outcome"], answer["reply"]) == (200, "guardrail_blocked", blocked_text)
        assert answer["usage"]["api_calls"] == 1
        (record,) = table_items(f"UPDATE#telegram:{blocked['update_id']}")
        assert record["status"]["S"] == "PERSISTED" and record["reply"]["S"] == blocked_text
        assert record["session_id"]["S"] == answer["session_id"]
        assert [(m["role"], m["content"]) for m in stored_messages(13)] == [
            ("user", "hello"), ("assistant", "stub-reply: hello")]

        process.wait_idle()
        code, answer = invoke(app.origin, chat_body(telegram_update(13, "and now?")), chat="telegram:13")
        assert (code, answer["outcome"], answer["reply"]) == (200, "answered", "stub-reply: and now?")
        assert conversation(harness.model.chat_requests[-1]) == [
            ("user", "hello"), ("assistant", "stub-reply: hello"), ("user", "and now?")]
        history = process.runtime().sessions
        assert (history.misses, history.hits) == (1, 2)  # the block left the warm transcript valid
        assert len(stored_messages(13)) == 4


def test_the_container_contract_names() -> None:
    """What the construct and the image rely on."""
    from hermes_aws import agentcore_app

    assert (agentcore_app.DEFAULT_HOST, agentcore_app.DEFAULT_PORT) == ("0.0.0.0", 8080)
    session = contract.runtime_session_id("telegram:101")
    assert len(session) == 71 and session == contract.runtime_session_id("telegram:101")
    assert session != contract.runtime_session_id("telegram:102")
