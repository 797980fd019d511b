"""End-to-end tests of the serverless shape (Telegram), on loopback.

The harness (stubs/serverless.py ``Harness``, conftest.py ``make_serverless``):
a moto server (DynamoDB, S3, SQS FIFO queue + FIFO DLQ with a redrive policy of
maxReceiveCount 3, Secrets Manager), the stub Telegram Bot API, the stub model
(OpenAI-compatible) or the stub Bedrock runtime, the pinned hermes-agent, and the
real handlers: Function URL event -> ``lambda_ingress.handler`` -> the moto FIFO
queue -> SQS Lambda events -> ``lambda_worker.handler``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from hermes_aws.channels import http as channel_http
from hermes_aws.lambda_worker import APOLOGY
from stubs.bedrock_server import StubBedrockServer
from stubs.model_server import HttpError, ToolCall, last_user_text
from stubs.serverless import (
    BUCKET,
    Harness,
    settings_document,
    stored_messages,
    telegram_update,
    to_record,
)

if TYPE_CHECKING:
    from conftest import HermesPaths

MAX_RECEIVE = 3


@pytest.fixture
def make_harness(make_serverless: Callable[..., Harness]) -> Callable[..., Harness]:
    return lambda settings=None, **config: make_serverless(settings=settings, max_receive_count=MAX_RECEIVE, **config)


# --------------------------------------------------------------------------- (a) (b) (c)


def test_a_b_c_turns_history_and_a_fresh_process(make_harness: Callable[..., Harness], tmp_path: Path) -> None:
    h = make_harness()
    first = telegram_update(101, "My favourite colour is teal.")
    h.post(first)
    h.drain()
    # (a) the reply reached Telegram, both turns are in DynamoDB
    assert h.telegram.sent_messages(101) == ["stub-reply: My favourite colour is teal."]
    assert [(m["role"], m["content"]) for m in stored_messages(101)] == [
        ("user", "My favourite colour is teal."), ("assistant", "stub-reply: My favourite colour is teal.")]

    # (b) the next update sees the first turn in its history
    h.post(telegram_update(101, "What is my favourite colour?"))
    h.drain()
    sent = [(m["role"], m["content"]) for m in h.model.chat_requests[-1].body["messages"][1:]]
    assert sent == [("user", "My favourite colour is teal."),
                    ("assistant", "stub-reply: My favourite colour is teal."),
                    ("user", "What is my favourite colour?")]

    # (c) a fresh worker process (new sandbox: its own empty /tmp/hermes) resumes the session
    h.post(telegram_update(101, "And my name?"))
    (message,) = h.receive()
    event = {"Records": [to_record(message, h.env.queue_url)]}
    result = run_worker_subprocess(event, home=tmp_path / "sandbox-2" / "hermes")
    assert result == {"batchItemFailures": []}
    h.sqs.delete_message(QueueUrl=h.env.queue_url, ReceiptHandle=message["ReceiptHandle"])
    sent = [m["content"] for m in h.model.chat_requests[-1].body["messages"][1:]]
    assert sent == ["My favourite colour is teal.", "stub-reply: My favourite colour is teal.",
                    "What is my favourite colour?", "stub-reply: What is my favourite colour?", "And my name?"]
    assert h.telegram.sent_messages(101)[-1] == "stub-reply: And my name?"
    assert len(stored_messages(101)) == 6
    # the new process read the model key from Secrets Manager and rendered its own HERMES_HOME
    assert h.model.chat_requests[-1].headers["Authorization"] == "Bearer sk-stub-worker-0123456789abcdef"
    assert (tmp_path / "sandbox-2" / "hermes" / "config.yaml").is_file()


def run_worker_subprocess(event: dict[str, Any], *, home: Path) -> dict[str, Any]:
    """``lambda_worker.handler(event)`` in a new Python process with this process's environment.

    As in Lambda (``AWS_LAMBDA_FUNCTION_NAME``, ``_HANDLER``), so the cold start
    runs while the module is imported (the init phase), before the first event.
    """
    home.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "STUB_MODEL_API_KEY"}  # it must come from the secret
    env.update({"HERMES_HOME": str(home), "HOME": str(home.parent), "TERMINAL_CWD": str(home.parent),
                "AWS_LAMBDA_FUNCTION_NAME": "hermes-worker", "_HANDLER": "hermes_aws.lambda_worker.handler"})
    out = home.parent / "result.json"
    code = ("import json, sys\n"
            "from hermes_aws import lambda_worker\n"
            "print('IMPORTED', flush=True)\n"
            "result = lambda_worker.handler(json.load(sys.stdin), None)\n"
            f"open({str(out)!r}, 'w').write(json.dumps(result))\n")
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(event), env=env, cwd=home.parent,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    init = [i for i, x in enumerate(lines) if x.startswith("{") and json.loads(x)["event"] == "worker_init"]
    assert len(init) == 1 and init[0] < lines.index("IMPORTED"), proc.stdout[-3000:]  # once, during the import
    assert "cold start failed" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- (d)


def test_d_a_skill_the_agent_writes_lands_in_s3(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    content = ("---\nname: release-notes\ndescription: Draft release notes from a changelog\n---\n"
               "# Release notes\n1. Group changes by type.\n2. Lead with user impact.\n")
    h.model.script(
        ToolCall("skill_manage", {"action": "create", "name": "release-notes", "content": content,
                                  "category": "writing"}, id="call_skill"),
        "I saved a skill for release notes.")
    h.post(telegram_update(202, "Remember how to write release notes."))
    h.drain()
    assert h.telegram.sent_messages(202) == ["I saved a skill for release notes."]
    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))
    assert keys == ["skills/writing/release-notes/SKILL.md"]  # nothing of Hermes's own state
    body = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read().decode()
    assert body == content
    tool_result = stored_messages(202)[2]
    assert tool_result["role"] == "tool" and tool_result["tool_call_id"] == "call_skill"


# --------------------------------------------------------------------------- (e)


def test_e_twenty_updates_across_four_chats_answered_once_in_order(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    chats = [301, 302, 303, 304]
    for i in range(5):
        for chat in chats:  # interleaved, as they would arrive
            h.post(telegram_update(chat, f"chat {chat} message {i}"))
    h.drain()
    for chat in chats:
        assert h.telegram.sent_messages(chat) == [f"stub-reply: chat {chat} message {i}" for i in range(5)]
        stored = [m["content"] for m in stored_messages(chat) if m["role"] == "user"]
        assert stored == [f"chat {chat} message {i}" for i in range(5)]
    assert len(h.telegram.sent_messages()) == 20
    assert len(h.model.chat_requests) == 20
    assert h.queue_depth() == 0 and h.dlq_bodies() == []
    # each turn saw exactly its chat's earlier turns
    for req in h.model.chat_requests:
        text = last_user_text(req.body)
        chat, i = text.split()[1], int(text.split()[-1])
        assert len(req.body["messages"]) == 1 + 2 * i + 1
        assert all(f"chat {chat}" in m["content"] for m in req.body["messages"][1:])


# --------------------------------------------------------------------------- (f)


def test_f_model_failing_twice_then_succeeding_gives_one_answer(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()  # agent.api_max_retries: 1 -> each failure surfaces to SQS (the outer retry layer)
    h.model.script(HttpError(500, "overloaded"), HttpError(500, "overloaded"))
    update = telegram_update(404, "Are you there?")
    h.post(update)
    h.drain()
    assert h.telegram.sent_messages(404) == ["stub-reply: Are you there?"]  # exactly one reply, no apology
    assert [m["role"] for m in stored_messages(404)] == ["user", "assistant"]  # one persisted turn
    assert [r.reply.status if isinstance(r.reply, HttpError) else "ok" for r in h.model.chat_requests] == [
        500, 500, "ok"]
    assert h.invocations == 3 and h.queue_depth() == 0 and h.dlq_bodies() == []


# --------------------------------------------------------------------------- (g)


def test_g_telegram_429_retry_after_is_honoured(make_harness: Callable[..., Harness],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    h = make_harness()
    waits: list[float] = []
    real_init = channel_http.HttpClient.__init__

    def recording_init(self: Any, **kwargs: Any) -> None:
        real_sleep = kwargs.get("sleep") or __import__("time").sleep

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            real_sleep(seconds)  # really wait: the test proves the behaviour, it costs 1 s

        kwargs["sleep"] = sleep
        real_init(self, **kwargs)

    monkeypatch.setattr(channel_http.HttpClient, "__init__", recording_init)
    h.telegram.fail_next("sendMessage", 429, retry_after=1)
    h.post(telegram_update(505, "Rate limit me"))
    h.drain()
    assert h.telegram.sent_messages(505) == ["stub-reply: Rate limit me"]  # delivered once
    calls = h.telegram.calls_of("sendMessage")
    assert [c.status for c in calls] == [429, 200]
    assert waits and waits[0] >= 1.0  # Telegram's parameters.retry_after, not a backoff guess
    assert h.invocations == 1  # the client retried; the message did not have to go back to SQS


# --------------------------------------------------------------------------- (h)


def test_h_poison_message_ends_in_the_dlq_with_one_apology(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()

    def always_fail(body: dict[str, Any]) -> Any:
        return HttpError(500, "model down") if "poison" in last_user_text(body) else "fine"

    h.model.script(*[always_fail] * 10)
    poison = telegram_update(606, "poison pill")
    h.post(poison)
    h.drain()
    assert h.telegram.sent_messages(606) == [APOLOGY]
    assert h.invocations == MAX_RECEIVE
    (dead,) = h.dlq_bodies()
    assert dead["update"]["update_id"] == poison["update_id"]
    assert stored_messages(606) == []
    assert h.queue_depth() == 0
    # the chat keeps working afterwards
    h.post(telegram_update(606, "hello again"))
    h.drain()
    assert h.telegram.sent_messages(606) == [APOLOGY, "fine"]


# --------------------------------------------------------------------------- (i)


def test_i_a_turn_through_hermes_bedrock_provider(make_harness: Callable[..., Harness],
                                                  hermetic_hermes: HermesPaths,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    model_id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    with StubBedrockServer() as bedrock:
        monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", bedrock.base_url)
        settings = settings_document("unused", "unused", hermetic_hermes.workdir)
        settings["config"]["model"] = {"provider": "bedrock", "default": model_id, "context_length": 200000}
        settings["config"]["bedrock"] = {"region": "us-east-1"}
        settings["secretEnv"] = []
        h = make_harness(settings=settings)
        bedrock.script(ToolCall("todo", {"todos": [{"id": "1", "content": "check", "status": "pending"}]}),
                       "Bedrock says hi.")
        h.post(telegram_update(707, "Hello Claude"))
        h.drain()

    assert h.telegram.sent_messages(707) == ["Bedrock says hi."]
    assert [m["role"] for m in stored_messages(707)] == ["user", "assistant", "tool", "assistant"]
    assert h.model.chat_requests == []  # the OpenAI-compatible stub was never used
    first, second = bedrock.invocations
    assert first.model_id == model_id and first.stream  # /invoke-with-response-stream, event-stream framing
    assert first.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/us-east-1/bedrock/aws4_request" in first.headers["authorization"]  # SigV4 for Bedrock
    assert first.body["anthropic_version"] == "bedrock-2023-05-31"
    last = first.body["messages"][-1]  # Anthropic Messages format, with Hermes's prompt-cache marker
    assert last["role"] == "user" and last["content"][-1]["text"] == "Hello Claude"
    assert {t["name"] for t in first.body["tools"]} >= {"todo", "skill_manage"}
    tool_result = second.body["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result"
    assert bedrock.other_requests == []
