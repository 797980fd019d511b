"""hermes_aws.lambda_worker: the real handler against moto, the stub Bot API, the stub model and real Hermes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from hermes_aws import lambda_worker
from hermes_aws.lambda_worker import APOLOGY, NEW_SESSION_REPLY, TypingIndicator, UpdateLedger, parse_command
from stubs.model_server import HttpError, StubModelServer, last_user_text
from stubs.serverless import (
    TABLE,
    provision,
    sqs_event,
    sqs_record,
    stored_messages,
    telegram_update,
    update_state,
)

if TYPE_CHECKING:
    from conftest import HermesPaths
    from stubs.telegram_server import StubTelegramServer


@pytest.fixture
def worker(aws_env: str, hermetic_hermes: HermesPaths, stub_model: StubModelServer, stub_telegram: StubTelegramServer,
           monkeypatch: pytest.MonkeyPatch, loopback_only: list[str]) -> Iterator[dict[str, str]]:
    env = provision(model_base_url=stub_model.base_url, model=stub_model.model, workdir=hermetic_hermes.workdir,
                    telegram_api_base=stub_telegram.api_base, telegram_token=stub_telegram.token).env
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("STUB_MODEL_API_KEY", "set-by-the-worker")  # restored afterwards
    lambda_worker.reset()
    yield env
    lambda_worker.reset()
    assert loopback_only == []


def events_of(capfd: pytest.CaptureFixture[str], name: str) -> list[dict[str, Any]]:
    out = capfd.readouterr().out
    return [e for e in (json.loads(line) for line in out.splitlines() if line.startswith("{"))
            if e.get("event") == name]


def test_answers_persists_and_marks_delivered(worker: dict[str, str], stub_model: StubModelServer,
                                              stub_telegram: StubTelegramServer,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    update = telegram_update(42, "hello worker")
    result = lambda_worker.handler(sqs_event(sqs_record(update)), None)

    assert result == {"batchItemFailures": []}
    assert stub_telegram.sent_messages(42) == ["stub-reply: hello worker"]
    (send,) = stub_telegram.calls_of("sendMessage")
    assert send.params["reply_parameters"]["message_id"] == update["message"]["message_id"]
    assert stub_telegram.calls_of("sendChatAction")[0].params["action"] == "typing"
    assert [(m["role"], m["content"]) for m in stored_messages(42)] == [
        ("user", "hello worker"), ("assistant", "stub-reply: hello worker")]
    state = update_state(update["update_id"])
    assert state["status"] == {"S": "DELIVERED"} and state["reply"] == {"S": "stub-reply: hello worker"}
    assert "expires_at" in state
    assert stub_model.chat_requests[0].headers["Authorization"] == "Bearer sk-stub-worker-0123456789abcdef"

    (turn,) = events_of(capfd, "turn")
    assert turn["outcome"] == "answered" and turn["chat"] == "42" and turn["session"]
    assert turn["InputTokens"] > 0 and turn["OutputTokens"] > 0 and turn["TurnErrors"] == 0
    assert turn["TurnDuration"] > 0 and turn["Agent"] == "test-agent" and turn["User"] == "telegram:42"
    per_agent, per_user = turn["_aws"]["CloudWatchMetrics"]
    assert per_agent["Namespace"] == per_user["Namespace"] == "HermesAgent/Serverless"
    assert per_agent["Dimensions"] == [["Agent"]]
    assert {m["Name"] for m in per_agent["Metrics"]} == {"TurnDuration", "TurnErrors", "BudgetExceeded"}
    assert per_user["Dimensions"] == [["Agent"], ["Agent", "User"]]
    assert {m["Name"] for m in per_user["Metrics"]} == {"InputTokens", "OutputTokens", "EstimatedCost"}
    assert turn["EstimatedCost"] == 0 and turn["BudgetExceeded"] == 0  # no prices configured
    assert "hello worker" not in json.dumps(turn)  # never the text
    tools = {t["function"]["name"] for t in stub_model.chat_requests[0].body["tools"]}
    assert "cronjob" not in tools and "skill_manage" in tools  # scheduled jobs are not configured here


def test_delivered_update_is_acknowledged_without_work(worker: dict[str, str], stub_model: StubModelServer,
                                                       stub_telegram: StubTelegramServer,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    update = telegram_update(42, "once")
    lambda_worker.handler(sqs_event(sqs_record(update)), None)
    capfd.readouterr()
    again = lambda_worker.handler(sqs_event(sqs_record(update, receive_count=2)), None)
    assert again == {"batchItemFailures": []}
    assert len(stub_model.chat_requests) == 1
    assert len(stub_telegram.sent_messages()) == 1
    assert [t["outcome"] for t in events_of(capfd, "turn")] == ["duplicate"]


def test_persisted_but_undelivered_reply_is_resent_not_recomputed(
        worker: dict[str, str], stub_model: StubModelServer, stub_telegram: StubTelegramServer) -> None:
    update = telegram_update(42, "crash before send")
    stub_telegram.fail_next("sendMessage", 403, description="Forbidden: temporarily")  # not retried by the client
    first = lambda_worker.handler(sqs_event(sqs_record(update, message_id="m1")), None)
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert update_state(update["update_id"])["status"] == {"S": "PERSISTED"}

    second = lambda_worker.handler(sqs_event(sqs_record(update, message_id="m1", receive_count=2)), None)
    assert second == {"batchItemFailures": []}
    assert len(stub_model.chat_requests) == 1  # the agent ran once
    assert stub_telegram.sent_messages(42) == ["stub-reply: crash before send"]
    assert len(stored_messages(42)) == 2  # the turn is stored once
    assert update_state(update["update_id"])["status"] == {"S": "DELIVERED"}


def test_new_and_start_commands_start_a_fresh_session(worker: dict[str, str], stub_model: StubModelServer,
                                                      stub_telegram: StubTelegramServer) -> None:
    lambda_worker.handler(sqs_event(sqs_record(telegram_update(7, "remember: blue"))), None)
    first_session = update_session(7)
    lambda_worker.handler(sqs_event(sqs_record(telegram_update(7, "/new@hermes_stub_bot"))), None)
    assert stub_telegram.sent_messages(7)[-1] == NEW_SESSION_REPLY
    assert update_session(7) != first_session
    assert stored_messages(7) == []
    lambda_worker.handler(sqs_event(sqs_record(telegram_update(7, "what colour?"))), None)
    sent = stub_model.chat_requests[-1].body["messages"]
    assert [m["content"] for m in sent[1:]] == ["what colour?"]  # the old session is not in the history
    assert len(stub_model.chat_requests) == 2  # /new never reached the model
    lambda_worker.handler(sqs_event(sqs_record(telegram_update(7, "/start"))), None)
    assert stub_telegram.sent_messages(7)[-1].startswith("✨ Hi!")
    assert stored_messages(7) == []


def update_session(chat: int) -> str:
    item = boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"PK": {"S": f"SESSION#telegram:{chat}"}, "SK": {"S": "META"}})["Item"]
    return item["session_id"]["S"]


def test_history_is_loaded_from_dynamodb(worker: dict[str, str], stub_model: StubModelServer) -> None:
    lambda_worker.handler(sqs_event(sqs_record(telegram_update(5, "my name is Ada"))), None)
    lambda_worker.reset()  # a new sandbox: nothing in memory, same table
    lambda_worker.handler(sqs_event(sqs_record(telegram_update(5, "what is my name?"))), None)
    sent = stub_model.chat_requests[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "my name is Ada"), ("assistant", "stub-reply: my name is Ada"), ("user", "what is my name?")]


def test_last_attempt_apologises_exactly_once(worker: dict[str, str], stub_model: StubModelServer,
                                              stub_telegram: StubTelegramServer,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    stub_model.script(*[HttpError(500)] * 5)
    update = telegram_update(9, "poison")
    for count in (1, 2):
        out = lambda_worker.handler(sqs_event(sqs_record(update, message_id="p", receive_count=count)), None)
        assert out == {"batchItemFailures": [{"itemIdentifier": "p"}]}
    assert stub_telegram.sent_messages(9) == []  # not the last attempt yet
    capfd.readouterr()
    for count in (3, 4):  # the last attempt, and a stray extra receive
        out = lambda_worker.handler(sqs_event(sqs_record(update, message_id="p", receive_count=count)), None)
        assert out == {"batchItemFailures": [{"itemIdentifier": "p"}]}  # still failed -> DLQ
    assert stub_telegram.sent_messages(9) == [APOLOGY]
    assert update_state(update["update_id"])["status"] == {"S": "APOLOGIZED"}
    assert stored_messages(9) == []  # nothing of the failed turns persisted
    turns = events_of(capfd, "turn")
    assert [(t["outcome"], t["apologized"], t["TurnErrors"]) for t in turns] == [
        ("error", True, 1), ("error", False, 1)]


def test_failed_group_holds_back_its_later_messages(worker: dict[str, str], stub_model: StubModelServer,
                                                    stub_telegram: StubTelegramServer) -> None:
    def reply(body: dict[str, Any]) -> Any:
        return HttpError(400, "refused") if last_user_text(body) == "a1 fails" else "ok: " + last_user_text(body)

    stub_model.script(*[reply] * 10)
    a1, a2 = telegram_update(1, "a1 fails"), telegram_update(1, "a2")
    b1, b2 = telegram_update(2, "b1"), telegram_update(2, "b2")
    out = lambda_worker.handler(sqs_event(
        sqs_record(a1, message_id="a1"), sqs_record(b1, message_id="b1"),
        sqs_record(a2, message_id="a2"), sqs_record(b2, message_id="b2")), None)
    assert out == {"batchItemFailures": [{"itemIdentifier": "a1"}, {"itemIdentifier": "a2"}]}
    assert stub_telegram.sent_messages(2) == ["ok: b1", "ok: b2"]
    assert stub_telegram.sent_messages(1) == []
    asked = [last_user_text(r.body) for r in stub_model.chat_requests]
    assert "a2" not in asked  # never processed ahead of a1
    assert update_state(a2["update_id"]) is None


def test_unknown_sources_and_unhandled_updates_are_acknowledged(worker: dict[str, str],
                                                                stub_model: StubModelServer,
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    edited = {"update_id": 5, "edited_message": {"message_id": 1, "chat": {"id": 1, "type": "private"},
                                                 "from": {"id": 1}, "text": "x"}}
    out = lambda_worker.handler(sqs_event(
        sqs_record(body={"source": "hermes.cron", "job": {"id": "j"}}, message_id="c"),
        sqs_record(body={"source": "github", "event": {}}, message_id="g"),
        sqs_record(body="not json", message_id="n"),
        sqs_record(body={"source": "telegram", "update": edited}, message_id="e"),
        sqs_record(body={"source": "slack", "event": {"type": "event_callback", "event_id": "Ev1",
                                                      "event": {"type": "reaction_added"}}}, message_id="s"),
    ), None)
    assert out == {"batchItemFailures": []}
    assert stub_model.chat_requests == []
    reasons = [e["reason"] for e in events_of(capfd, "worker_ignored")]
    assert reasons == ["malformed hermes.cron body", "unknown source", "body is not JSON",
                       "not a handled Telegram update", "not a handled Slack event"]


def test_broken_deployment_fails_the_whole_batch(worker: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_AWS_SETTINGS", '{"version": 2}')
    with pytest.raises(ValueError, match="unsupported version"):
        lambda_worker.handler(sqs_event(sqs_record(telegram_update(1, "x"))), None)


def test_skills_written_by_the_agent_are_pushed(worker: dict[str, str], stub_model: StubModelServer) -> None:
    from stubs.model_server import ToolCall

    content = "---\nname: haiku\ndescription: Write haiku\n---\n# Haiku\n5-7-5.\n"
    stub_model.script(ToolCall("skill_manage", {"action": "create", "name": "haiku", "content": content}), "saved")
    lambda_worker.handler(sqs_event(sqs_record(telegram_update(3, "learn haiku"))), None)
    body = boto3.client("s3").get_object(Bucket="hermes-workspace", Key="skills/haiku/SKILL.md")["Body"].read()
    assert body.decode() == content


# --------------------------------------------------------------------------- pieces


class FakeTelegram:
    def __init__(self, fail_on_call: int | None = None) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.actions = 0
        self.fail_on_call = fail_on_call
        self.calls = 0

    def send_message(self, chat_id: Any, text: str, reply_to_message_id: Any = None, *,
                     message_thread_id: Any = None) -> list[int]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("network down")
        self.sent.append((text, reply_to_message_id))
        return [self.calls]

    def send_chat_action(self, chat_id: Any, action: str = "typing", *, message_thread_id: Any = None) -> bool:
        self.actions += 1
        return True


def test_long_reply_resumes_after_the_last_delivered_chunk(aws_env: str) -> None:
    from hermes_aws.chats import TelegramTarget
    from hermes_aws.turns import deliver
    from stubs.aws_resources import create_sessions_table

    ddb = boto3.client("dynamodb")
    create_sessions_table(TABLE, client=ddb)
    ledger = UpdateLedger(TABLE, ddb)
    ddb.transact_write_items(TransactItems=[ledger.persisted_action("telegram:1", "x", session_key="k", session_id="s")])
    rt: Any = type("RT", (), {"ledger": ledger})()
    text = "\n\n".join(f"paragraph {i} " + "x" * 3000 for i in range(3))  # three chunks
    flaky = FakeTelegram(fail_on_call=2)
    with pytest.raises(RuntimeError):
        deliver(rt, [TelegramTarget(lambda: flaky, "1", reply_to="77")], "telegram:1", text)
    state = ledger.get("telegram:1")
    assert state.chunks_sent == 1 and state.status == "PERSISTED"
    resumed = FakeTelegram()
    deliver(rt, [TelegramTarget(lambda: resumed, "1", reply_to="77")], "telegram:1", text,
             start_chunk=state.chunks_sent)
    assert [t[:11] for t, _ in flaky.sent + resumed.sent] == ["paragraph 0", "paragraph 1", "paragraph 2"]
    assert flaky.sent[0][1] == "77" and resumed.sent[0][1] is None  # only the first chunk is a reply
    assert ledger.get("telegram:1").status == "DELIVERED"


def test_apology_claim_is_conditional(aws_env: str) -> None:
    from stubs.aws_resources import create_sessions_table

    ddb = boto3.client("dynamodb")
    create_sessions_table(TABLE, client=ddb)
    ledger = UpdateLedger(TABLE, ddb)
    assert ledger.claim_apology("telegram:5") is True
    assert ledger.claim_apology("telegram:5") is False
    ledger.mark_delivered("telegram:6", [1])
    assert ledger.claim_apology("telegram:6") is False  # delivered: nothing to apologise for
    # a redrive that then succeeds keeps the apology mark
    ddb.transact_write_items(TransactItems=[ledger.persisted_action("telegram:5", "r", session_key="k", session_id="s")])
    assert ledger.get("telegram:5").status == "PERSISTED"
    assert ledger.claim_apology("telegram:5") is False


def test_typing_indicator_repeats_until_stopped() -> None:
    fake = FakeTelegram()
    with TypingIndicator(fake, "1", interval=0.05):
        time.sleep(0.18)
    sent = fake.actions
    assert sent >= 3
    time.sleep(0.1)
    assert fake.actions == sent  # stopped
    assert not [t for t in threading.enumerate() if t.name == "typing"]


def test_the_init_phase_cold_start_is_the_worker_functions_only() -> None:
    lam = {"AWS_LAMBDA_FUNCTION_NAME": "f", "_HANDLER": lambda_worker.HANDLER, "HERMES_AWS_TABLE": "t"}
    assert lambda_worker.warm_up_at_init(lam)
    # other handlers importing the worker's pieces (the AgentCore dispatcher), outside Lambda, no table
    assert not lambda_worker.warm_up_at_init({**lam, "_HANDLER": "hermes_aws.agentcore_dispatcher.handler"})
    assert not lambda_worker.warm_up_at_init({k: v for k, v in lam.items() if k != "AWS_LAMBDA_FUNCTION_NAME"})
    assert not lambda_worker.warm_up_at_init({k: v for k, v in lam.items() if k != "HERMES_AWS_TABLE"})
    assert not lambda_worker.warm_up_at_init({k: v for k, v in lam.items() if k != "_HANDLER"})


def test_parse_command() -> None:
    assert parse_command("/new") == "new"
    assert parse_command("  /New@my_bot please") == "new"
    assert parse_command("/start") == "start"
    assert parse_command("hello /new") is None
    assert parse_command("/") is None


def test_background_review_runs_after_the_reply_and_memories_are_pushed(
        aws_env: str, hermetic_hermes: HermesPaths, stub_model: StubModelServer, stub_telegram: StubTelegramServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stubs.model_server import ToolCall

    env = provision(model_base_url=stub_model.base_url, model=stub_model.model, workdir=hermetic_hermes.workdir,
                    telegram_api_base=stub_telegram.api_base, telegram_token=stub_telegram.token,
                    memory={"nudge_interval": 1}).env  # Hermes reviews memory after every turn
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("STUB_MODEL_API_KEY", "x")
    lambda_worker.reset()
    try:
        stub_model.script("Noted!",  # the answer, then Hermes's review of the turn:
                          ToolCall("memory", {"action": "add", "target": "memory", "content": "Loves oolong tea"}),
                          "memory updated")
        out = lambda_worker.handler(sqs_event(sqs_record(telegram_update(11, "I love oolong tea"))), None)
    finally:
        lambda_worker.reset()
    assert out == {"batchItemFailures": []}
    assert stub_telegram.sent_messages(11) == ["Noted!"]
    assert len(stub_model.chat_requests) >= 2  # the review ran in the invocation, not in a stray thread
    body = boto3.client("s3").get_object(Bucket="hermes-workspace", Key="memories/MEMORY.md")["Body"].read()
    assert b"Loves oolong tea" in body
    assert [m["role"] for m in stored_messages(11)] == ["user", "assistant"]  # the review is not in the chat


def test_forum_topics_are_separate_conversations(worker: dict[str, str], stub_model: StubModelServer,
                                                 stub_telegram: StubTelegramServer) -> None:
    update = telegram_update(-100123, "in a topic", user_id=5, chat_type="supergroup")
    update["message"].update({"is_topic_message": True, "message_thread_id": 77})
    lambda_worker.handler(sqs_event(sqs_record(update)), None)
    (send,) = stub_telegram.calls_of("sendMessage")
    assert send.params["message_thread_id"] == 77
    assert stored_messages("-100123:77")[0]["content"] == "in a topic"
    assert stored_messages(-100123) == []


def test_messages_are_handed_back_when_the_invocation_is_about_to_time_out(
        worker: dict[str, str], stub_model: StubModelServer, stub_telegram: StubTelegramServer) -> None:
    class Context:
        aws_request_id = "req-1"

        def __init__(self) -> None:
            self.left = [30_000, 30_000]  # asked before the 2nd and 3rd record only

        def get_remaining_time_in_millis(self) -> int:
            return self.left.pop(0)

    out = lambda_worker.handler(sqs_event(
        sqs_record(telegram_update(21, "first"), message_id="t1"),
        sqs_record(telegram_update(21, "second"), message_id="t2"),
        sqs_record(telegram_update(22, "other chat"), message_id="t3")), Context())
    assert out == {"batchItemFailures": [{"itemIdentifier": "t2"}, {"itemIdentifier": "t3"}]}
    assert stub_telegram.sent_messages() == ["stub-reply: first"]  # the first record runs even when late


def test_settings_from_s3(worker: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                          stub_telegram: StubTelegramServer) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket="hermes-workspace", Key="config/settings.json", Body=worker["HERMES_AWS_SETTINGS"].encode())
    monkeypatch.delenv("HERMES_AWS_SETTINGS")
    monkeypatch.setenv("HERMES_AWS_SETTINGS_S3", "s3://hermes-workspace/config/settings.json")
    out = lambda_worker.handler(sqs_event(sqs_record(telegram_update(31, "via s3"))), None)
    assert out == {"batchItemFailures": []}
    assert stub_telegram.sent_messages(31) == ["stub-reply: via s3"]
    # the settings object is not part of the synced workspace
    assert not (lambda_worker.runtime().home / "config").exists()
