"""The AgentCore dispatcher (hermes_aws.agentcore_dispatcher) against the stub data plane.

Real pieces: a moto server (DynamoDB ledger and budgets, SQS FIFO queue + DLQ,
Secrets Manager), the stub Telegram Bot API, boto3's ``bedrock-agentcore``
client pointed at :mod:`stubs.agentcore_runtime_server` with
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``. Behind the data plane a scripted
container (:class:`ScriptedContainer`) answers, so each test controls exactly
what the runtime says; tests/test_agentcore_e2e.py puts the real app there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from hermes_aws import agentcore_contract as contract
from hermes_aws import agentcore_dispatcher
from hermes_aws.lambda_worker import APOLOGY
from stubs.agentcore_runtime_server import StubAgentCoreRuntime
from stubs.loopback import LoopbackServer, QuietHandler
from stubs.serverless import table_items, telegram_update, to_record

RUNTIME_ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/hermes_agent-AbCdEf1234"


class ScriptedContainer(LoopbackServer):
    """A container that answers ``/invocations`` from a script: (status, content type, body) or a callable."""

    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        self.requests: list[dict[str, Any]] = []
        super().__init__(_container_handler(self), "scripted-container")

    def answer(self, reply: str, outcome: str = "answered", **fields: Any) -> None:
        self.script.append((200, "application/json", contract.answer(outcome, reply, **fields)))


def _container_handler(stub: ScriptedContainer) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = json.loads(raw)
            stub.requests.append({"payload": payload, "session": self.headers.get(
                "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id")})
            item = stub.script.popleft() if stub.script else (500, "application/json", {"error": "no script"})
            if callable(item):
                item = item(payload)
            status, ctype, body = item
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_bytes(status, data, content_type=ctype)

    return Handler


@pytest.fixture
def setup(make_serverless: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    h = make_serverless(max_receive_count=3)
    with ScriptedContainer() as container, StubAgentCoreRuntime(RUNTIME_ARN, target=container.origin) as plane:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", plane.endpoint_url)
        monkeypatch.setenv(agentcore_dispatcher.RUNTIME_ARN_ENV, RUNTIME_ARN)
        monkeypatch.setenv(agentcore_dispatcher.INVOKE_TIMEOUT_ENV, "30")
        agentcore_dispatcher.reset()
        h.container, h.plane = container, plane
        yield h
        agentcore_dispatcher.reset()


def drain(h: Any) -> list[dict[str, Any]]:
    return h.drain(worker=lambda event: agentcore_dispatcher.handler(event, None))


def test_a_stored_reply_from_the_runtime_is_sent_from_where_delivery_stopped(
        setup: Any, capfd: pytest.CaptureFixture[str]) -> None:
    """``stored``: an earlier attempt ran the turn (this retry waited for it on the microVM); the dispatcher
    sends the rest of the stored reply and charges no tokens."""
    from hermes_aws.channels.telegram import split_message

    h = setup
    text = "first part. " * 400 + "\n\n" + "second part."
    chunks = split_message(text)
    assert len(chunks) >= 2
    update = telegram_update(4343, "hi again")
    h.container.answer(text, outcome=contract.OUTCOME_STORED, session_id="s-9", chunks_sent=1)
    h.post(update)
    assert drain(h) == [{"batchItemFailures": []}]
    assert h.telegram.sent_messages(4343) == chunks[1:]
    (record,) = table_items(f"UPDATE#telegram:{update['update_id']}")
    assert record["status"]["S"] == "DELIVERED"
    (turn,) = [e for e in map(json.loads, filter(None, capfd.readouterr().out.splitlines()))
               if e.get("event") == "turn"]
    assert (turn["outcome"], turn["session"], turn["InputTokens"], turn["TurnErrors"]) == ("stored", "s-9", 0, 0)


def test_a_message_is_invoked_on_the_chat_runtime_session_and_the_reply_delivered(
        setup: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    h = setup
    monkeypatch.setenv("HERMES_AWS_TOKEN_PRICES", json.dumps({"inputPerMillion": 1, "outputPerMillion": 2}))
    agentcore_dispatcher.reset()
    update = telegram_update(4242, "hello there", user_id=77)
    h.container.answer("general kenobi", session_id="s-1", usage={"input_tokens": 120, "output_tokens": 30})
    h.post(update)
    assert drain(h) == [{"batchItemFailures": []}]

    (call,) = h.plane.calls()
    assert call.status == 200 and call.runtime_arn == RUNTIME_ARN and call.qualifier is None
    assert call.session_id == contract.runtime_session_id("telegram:4242") and len(call.session_id) == 71
    assert call.user_id == "telegram:77"
    assert call.content_type == "application/json"
    assert call.payload["version"] == 1 and call.payload["body"]["update"] == update
    assert call.payload["receive_count"] == 1
    assert h.container.requests[0]["session"] == call.session_id  # forwarded as the session header
    assert h.telegram.sent_messages(4242) == ["general kenobi"]
    assert h.telegram.calls_of("sendChatAction")  # "typing..." while the runtime worked
    (record,) = table_items(f"UPDATE#telegram:{update['update_id']}")
    assert record["status"]["S"] == "DELIVERED"
    # one turn event with the worker's metrics, per agent and per user
    (turn,) = [e for e in map(json.loads, filter(None, capfd.readouterr().out.splitlines()))
               if e.get("event") == "turn"]
    assert (turn["outcome"], turn["user"], turn["session"]) == ("answered", "telegram:77", "s-1")
    assert (turn["InputTokens"], turn["OutputTokens"], turn["TurnErrors"]) == (120, 30, 0)
    assert turn["EstimatedCost"] == pytest.approx(120 * 1e-6 + 30 * 2e-6)
    directives = turn["_aws"]["CloudWatchMetrics"]
    assert all(d["Namespace"] == "HermesAgent/Serverless" for d in directives)
    assert ["Agent", "User"] in [dims for d in directives for dims in d["Dimensions"]]


def test_an_event_stream_answer_is_read_too(setup: Any) -> None:
    h = setup
    events = b'data: "Hello, "\n\ndata: "world"\n\ndata: {"version": 1, "outcome": "answered", "reply": null}\n\n'
    h.container.script.append((200, "text/event-stream", events))
    h.post(telegram_update(1, "stream please"))
    assert drain(h) == [{"batchItemFailures": []}]
    assert h.telegram.sent_messages(1) == ["Hello, world"]


def test_throttling_is_retried_with_a_short_back_off(setup: Any) -> None:
    h = setup
    h.plane.throttle_next(1)
    h.container.answer("after the throttle")
    h.post(telegram_update(2, "busy?"))
    (message,) = h.receive()
    result = agentcore_dispatcher.handler({"Records": [to_record(message, h.env.queue_url)]}, None)
    assert result == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert [c.error for c in h.plane.calls()] == ["ThrottlingException"]
    assert h.telegram.sent_messages(2) == []
    # the dispatcher shortened the message's visibility to 15 s (not the queue's long timeout)
    assert h.receive() == []
    h.sqs.change_message_visibility(QueueUrl=h.env.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                    VisibilityTimeout=0)
    assert drain(h) == [{"batchItemFailures": []}]
    assert h.telegram.sent_messages(2) == ["after the throttle"]


def test_runtime_errors_are_retried_then_dead_lettered_with_one_apology(setup: Any) -> None:
    h = setup
    for _ in range(3):
        h.container.script.append((500, "application/json", {"error": "boom"}))
    update = telegram_update(3, "this will fail")
    h.post(update)
    results = drain(h)
    assert [len(r["batchItemFailures"]) for r in results] == [1, 1, 1]
    calls = h.plane.calls()
    assert [(c.status, c.error) for c in calls] == [(424, "RuntimeClientError")] * 3
    assert h.telegram.sent_messages(3) == [APOLOGY]  # once, on the last attempt
    assert [b["update"]["update_id"] for b in h.dlq_bodies()] == [update["update_id"]]
    (record,) = table_items(f"UPDATE#telegram:{update['update_id']}")
    assert record["status"]["S"] == "APOLOGIZED"


def test_an_answer_outside_the_contract_is_a_failure(setup: Any) -> None:
    h = setup
    h.container.script.append((200, "application/json", {"something": "else"}))
    h.post(telegram_update(5, "odd"))
    (message,) = h.receive()
    result = agentcore_dispatcher.handler({"Records": [to_record(message, h.env.queue_url)]}, None)
    assert len(result["batchItemFailures"]) == 1
    assert h.telegram.sent_messages(5) == []


def test_a_persisted_reply_is_redelivered_without_invoking_again(setup: Any) -> None:
    h = setup
    update = telegram_update(6, "answer once")
    key = f"telegram:{update['update_id']}"
    # The runtime stored the turn and its reply, but the dispatcher died before sending it.
    d = agentcore_dispatcher.dispatcher()
    d.ledger.client.transact_write_items(TransactItems=[
        d.ledger.persisted_action(key, "stored answer", session_key="telegram:6", session_id="s-6")])
    h.post(update)
    assert drain(h) == [{"batchItemFailures": []}]
    assert h.plane.calls() == []
    assert h.telegram.sent_messages(6) == ["stored answer"]
    # a duplicate delivery of the same update is acknowledged without anything sent
    h.sqs.send_message(QueueUrl=h.env.queue_url, MessageGroupId="telegram:6", MessageDeduplicationId="again",
                       MessageBody=json.dumps({"source": "telegram", "update": update}))
    assert drain(h) == [{"batchItemFailures": []}]
    assert h.telegram.sent_messages(6) == ["stored answer"] and h.plane.calls() == []


def test_over_budget_users_get_the_budget_message_and_no_invocation(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    h = setup
    monkeypatch.setenv("HERMES_AWS_DAILY_TOKEN_BUDGET", "1000")
    agentcore_dispatcher.reset()
    h.container.answer("expensive", usage={"input_tokens": 900, "output_tokens": 200})
    h.post(telegram_update(8, "first", user_id=80))
    drain(h)
    h.post(telegram_update(8, "second", user_id=80))
    drain(h)
    assert len(h.plane.calls()) == 1  # the second message never reached the runtime
    sent = h.telegram.sent_messages(8)
    assert sent[0] == "expensive" and len(sent) == 2 and "usage limit (1,100 of 1,000 tokens)" in sent[1]
    day = table_items("BUDGET#telegram:80")
    assert int(day[0]["input_tokens"]["N"]) == 900 and int(day[0]["output_tokens"]["N"]) == 200


def test_a_chat_keeps_its_order_when_a_message_fails(setup: Any) -> None:
    h = setup
    h.container.script.append((500, "application/json", {"error": "boom"}))
    h.container.answer("second answer")
    first, second = telegram_update(9, "one"), telegram_update(9, "two")
    h.post(first)
    h.post(second)
    records = [to_record(m, h.env.queue_url) for m in h.receive()]
    assert len(records) == 2
    result = agentcore_dispatcher.handler({"Records": records}, None)
    # the first failed, so the second of the same chat is handed back unprocessed
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [r["messageId"] for r in records]
    assert len(h.plane.calls()) == 1


def test_a_dispatcher_sandbox_starts_no_worker_and_loads_no_hermes(setup: Any, tmp_path: Any) -> None:
    """In Lambda (``AWS_LAMBDA_FUNCTION_NAME``, ``_HANDLER``, the table set) only the dispatcher starts.

    The dispatcher shares the worker's turn flow; the worker's own cold start
    (Hermes, settings, HERMES_HOME) must not run in the dispatcher's zip sandbox.
    """
    h = setup
    h.container.answer("from a fresh sandbox")
    update = telegram_update(12, "cold?")
    h.post(update)
    (message,) = h.receive()
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "hermes-dispatcher",
           "_HANDLER": "hermes_aws.agentcore_dispatcher.handler", "HERMES_HOME": str(tmp_path / "hermes")}
    code = ("import json, sys\n"
            "from hermes_aws import agentcore_dispatcher\n"
            "result = agentcore_dispatcher.handler(json.load(sys.stdin), None)\n"
            "heavy = ['hermes_aws.lambda_worker', 'hermes_aws.agent_runner', 'hermes_aws.home', 'run_agent', "
            "'yaml', 'hermes_cli', 'openai', 'anthropic']\n"
            "print('RESULT ' + json.dumps({'result': result, 'loaded': [m for m in heavy if m in sys.modules]}))\n")
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps({"Records": [
        to_record(message, h.env.queue_url)]}), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    out = json.loads(line[len("RESULT "):])
    assert out == {"result": {"batchItemFailures": []}, "loaded": []}
    assert "Traceback" not in proc.stderr and "cold start failed" not in proc.stderr, proc.stderr[-3000:]
    emitted = [json.loads(x)["event"] for x in proc.stdout.splitlines() if x.startswith("{")]
    assert "dispatcher_init" in emitted and "worker_init" not in emitted
    assert h.telegram.sent_messages(12) == ["from a fresh sandbox"]
    assert not (tmp_path / "hermes").exists()  # no HERMES_HOME rendered


def test_cold_start_needs_the_runtime_and_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="HERMES_AWS_AGENT_RUNTIME_ARN"):
        agentcore_dispatcher.cold_start({"HERMES_AWS_TABLE": "t"})
    with pytest.raises(ValueError, match="HERMES_AWS_TABLE"):
        agentcore_dispatcher.cold_start({"HERMES_AWS_AGENT_RUNTIME_ARN": RUNTIME_ARN})


def test_the_stub_data_plane_validates_like_the_service(setup: Any) -> None:
    """The stand-in refuses what AgentCore refuses (so the tests above mean something)."""
    from botocore.config import Config
    from botocore.exceptions import ClientError

    # botocore checks the length itself; without its check the request reaches the stand-in
    client = boto3.client("bedrock-agentcore", config=Config(parameter_validation=False))
    with pytest.raises(ClientError) as short:
        client.invoke_agent_runtime(agentRuntimeArn=RUNTIME_ARN, runtimeSessionId="too-short-0123456789012345678901",
                                    payload=b"{}")
    assert short.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as unknown:
        client.invoke_agent_runtime(agentRuntimeArn=RUNTIME_ARN + "x", runtimeSessionId="s" * 40, payload=b"{}")
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
