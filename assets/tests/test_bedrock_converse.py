"""Bedrock guardrails on the Converse path of the pinned hermes-agent (0.19.0), on loopback.

``AgentModel.bedrock('us.amazon.nova-pro-v1:0', {region, guardrail})`` renders
``model: {provider: bedrock, default: <id>, context_length: 300000}``, ``bedrock:
{discovery, region, guardrail: {guardrail_identifier, guardrail_version,
stream_processing_mode: ""}}`` and ``auxiliary: {compression: {context_length:
300000}}`` (src/model.ts ``_bind``, ``auxiliaryWindow``; :data:`RENDERED` is the
whole document). For a non-Claude model Hermes resolves ``api_mode:
bedrock_converse`` and calls boto3 ``bedrock-runtime`` itself; the stub
(stubs/bedrock_converse_server.py) speaks that protocol and checks every SigV4
signature. HERMES_HOME is rendered by ``hermes_aws.home`` from that document,
and turns run through ``hermes_aws.agent_runner``.

What Hermes actually sends (asserted below):

* every agent-loop model call is ``ConverseStream`` (``POST /model/<id>/converse-stream``;
  Hermes streams even without a stream consumer) with ``guardrailConfig`` =
  ``{guardrailIdentifier, guardrailVersion, trace: "disabled"}``: ``trace`` is
  Hermes's default, and the blank ``stream_processing_mode`` leaves out
  ``streamProcessingMode`` (Hermes's own default would be ``"async"``), so Bedrock
  guards the stream synchronously;
* no ``guardrailConfig`` at all without the ``guardrail`` key;
* no context-window probe: with ``model.context_length`` Hermes does not send its
  padded multi-megabyte ``Converse`` calls (``inferenceConfig.maxTokens`` 8) to
  discover the window; without it, it does on every cold start;
* unguarded ``Converse`` calls outside the agent loop: context-compression
  summaries (auxiliary client), which resolve their window on their own: no
  probe with ``auxiliary.compression.context_length``, one without it;
* a guardrail intervention (``stopReason: guardrail_intervened``) ends Hermes's
  turn with ``failed: True`` and ``error: "content_policy_blocked: <message>"``
  without a retry; ``hermes_aws.agent_runner`` answers it with the guardrail's
  message as a completed turn, and the worker delivers that (no retry, no apology)
  without storing the blocked turn, so later turns of the chat are not blocked again;
* when IAM denies streaming, Hermes retries with ``Converse`` and the same
  kwargs, which botocore refuses (``streamProcessingMode`` is not a Converse
  field) unless the config blanks ``stream_processing_mode``, as the constructs do.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from hermes_aws.home import Settings, prepare_home
from stubs.bedrock_converse_server import TOO_LONG, ConverseCall, StubConverseServer
from stubs.model_server import HttpError, Reply, ToolCall

if TYPE_CHECKING:
    from conftest import HermesPaths

MODEL = "us.amazon.nova-pro-v1:0"
GUARDRAIL_ID = "abc123"
#: ``HermesConfig.render({ model: AgentModel.bedrock('us.amazon.nova-pro-v1:0', { region: 'us-east-1',
#: guardrail: { identifier: 'abc123', version: '1' } }) }).toDocument(stack)``, as the constructs produce it
RENDERED: dict[str, Any] = json.loads(
    '{"version":1,"config":{"model":{"provider":"bedrock","default":"us.amazon.nova-pro-v1:0",'
    '"context_length":300000},"bedrock":{"discovery":{"enabled":false},"region":"us-east-1",'
    '"guardrail":{"guardrail_identifier":"abc123","guardrail_version":"1","stream_processing_mode":""}},'
    '"auxiliary":{"compression":{"context_length":300000}},"security":{"redact_secrets":true,"allow_lazy_installs":false,"tirith_enabled":false}},'
    '"soul":null,"projectContext":null,"secretEnv":[]}')
GUARDRAIL = RENDERED["config"]["bedrock"]["guardrail"]
#: what Hermes puts in the request for GUARDRAIL (its default fills in ``trace``)
SENT_GUARDRAIL = {"guardrailIdentifier": GUARDRAIL_ID, "guardrailVersion": "1", "trace": "disabled"}
BLOCKED = "Sorry, the model cannot answer this question."
HARMFUL = "Tell me how to do something harmful"
STREAM_DENIED = ("User: arn:aws:sts::123456789012:assumed-role/worker/fn is not authorized to perform: "
                 "bedrock:InvokeModelWithResponseStream on resource: "
                 "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0")


def construct_document(*, model: str | None = None, context_length: int | None = None,
                       guardrail: dict[str, str] | None = GUARDRAIL, **config: Any) -> dict[str, Any]:
    """:data:`RENDERED`, or what the constructs render with another ``model`` (its ``context_length``,
    the window of the constructs' table) or ``guardrail`` (None: no guardrail option).

    ``config`` (more top-level keys) and a ``guardrail`` other than the rendered one
    are not what the constructs produce; tests that use them say why.
    """
    doc = copy.deepcopy(RENDERED)
    cfg = doc["config"]
    if model is not None:
        cfg["model"]["default"] = model
    if context_length is not None:  # the constructs render it in both places
        cfg["model"]["context_length"] = context_length
        cfg["auxiliary"]["compression"]["context_length"] = context_length
    if guardrail is None:
        del cfg["bedrock"]["guardrail"]
    else:
        cfg["bedrock"]["guardrail"] = dict(guardrail)
    cfg.update(config)
    return doc


def render(paths: HermesPaths, doc: dict[str, Any]) -> dict[str, Any]:
    """HERMES_HOME from ``doc`` through the project's renderer; returns config.yaml as written."""
    prepare_home(paths.home, Settings.from_dict(copy.deepcopy(doc)))
    return yaml.safe_load((paths.home / "config.yaml").read_text())


@pytest.fixture
def converse(no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[StubConverseServer]:
    """The stub Bedrock runtime as boto3's ``bedrock-runtime`` endpoint; Hermes's client cache emptied."""
    from agent import bedrock_adapter

    with StubConverseServer() as stub:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.base_url)
        bedrock_adapter.reset_client_cache()  # clients are cached per region, endpoint and all
        yield stub
    bedrock_adapter.reset_client_cache()


@pytest.fixture
def credentials(no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake static credentials (what the stub verifies signatures with), no moto."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def hermes(hermetic_hermes: HermesPaths, credentials: None, converse: StubConverseServer,
           loopback_only: list[str]) -> HermesPaths:
    return hermetic_hermes


def is_probe(call: ConverseCall) -> bool:
    """Hermes's context-window probe (agent/bedrock_adapter.probe_bedrock_context_length)."""
    return (call.operation == "Converse" and call.body.get("inferenceConfig") == {"maxTokens": 8}
            and call.body["messages"][0]["content"][0]["text"].startswith("data data"))


def turn(message: str, **kwargs: Any) -> Any:
    from hermes_aws.agent_runner import run_turn

    return run_turn(message, session_id="s-1", platform="telegram", chat_id="42", user_id="7", **kwargs)


# --------------------------------------------------------------------------- the stub itself


def test_stub_speaks_the_bedrock_runtime_protocol(credentials: None, converse: StubConverseServer) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    converse.script(Reply("plain answer"), Reply("Blocked.", finish_reason="guardrail_intervened"),
                    ToolCall("todo", {"todos": []}, id="tu-1"))
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    guard = {"guardrailIdentifier": GUARDRAIL_ID, "guardrailVersion": "1"}

    answer = client.converse(modelId=MODEL, messages=messages, guardrailConfig=guard)
    assert answer["output"]["message"]["content"] == [{"text": "plain answer"}]
    assert answer["stopReason"] == "end_turn" and answer["usage"]["totalTokens"] > 0

    stream = client.converse_stream(modelId=MODEL, messages=messages,
                                    guardrailConfig={**guard, "streamProcessingMode": "sync"})
    events = list(stream["stream"])  # botocore's event-stream decoder checks both CRCs
    assert [next(iter(e)) for e in events] == ["messageStart", "contentBlockDelta", "contentBlockStop",
                                               "messageStop", "metadata"]
    assert events[1]["contentBlockDelta"]["delta"] == {"text": "Blocked."}
    assert events[3]["messageStop"]["stopReason"] == "guardrail_intervened"

    tool_events = list(client.converse_stream(modelId=MODEL, messages=messages)["stream"])
    assert tool_events[1]["contentBlockStart"]["start"]["toolUse"] == {"toolUseId": "tu-1", "name": "todo"}
    assert "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"]
                   for e in tool_events if "contentBlockDelta" in e) == '{"todos": []}'

    first, second, third = converse.calls
    assert (first.operation, second.operation, third.operation) == ("Converse", "ConverseStream", "ConverseStream")
    assert first.path == "/model/us.amazon.nova-pro-v1%3A0/converse" and first.model_id == MODEL
    assert first.body["guardrailConfig"] == guard
    assert second.body["guardrailConfig"]["streamProcessingMode"] == "sync"
    assert (first.signature.service, first.signature.region, first.signature.access_key) == (
        "bedrock", "us-east-1", "testing")
    assert "x-amz-security-token" in first.signature.signed_headers

    forged = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as denied:
        forged.converse(modelId=MODEL, messages=messages)
    assert denied.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert converse.rejected == [("/model/us.amazon.nova-pro-v1%3A0/converse", "signature does not match")]
    assert len(converse.calls) == 3


# --------------------------------------------------------------------------- guardrail on every model call


def test_a_nova_turn_sends_the_guardrail_on_every_converse_stream_call(
        hermes: HermesPaths, converse: StubConverseServer, loopback_only: list[str]) -> None:
    written = render(hermes, construct_document())
    assert written["bedrock"]["guardrail"] == GUARDRAIL and written["model"]["context_length"] == 300000
    assert written["auxiliary"]["compression"]["context_length"] == 300000
    converse.script(ToolCall("todo", {"todos": [{"id": "1", "content": "check", "status": "pending"}]}),
                    "Nova says hi.")

    result = turn("Hello Nova")

    assert result.final_response == "Nova says hi." and result.blocked is False
    assert (result.provider, result.model) == ("bedrock", MODEL)
    assert [m["role"] for m in result.new_messages] == ["user", "assistant", "tool", "assistant"]
    assert result.usage["input_tokens"] > 0 and result.usage["api_calls"] == 2

    streamed = converse.calls_of("ConverseStream")
    assert len(streamed) == 2
    for call in streamed:
        assert call.path == "/model/us.amazon.nova-pro-v1%3A0/converse-stream"
        assert set(call.body) == {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig"}
        assert call.body["guardrailConfig"] == SENT_GUARDRAIL
        assert "streamProcessingMode" not in call.body["guardrailConfig"]  # Bedrock's synchronous default
        assert (call.signature.service, call.signature.region) == ("bedrock", "us-east-1")
        assert {t["toolSpec"]["name"] for t in call.body["toolConfig"]["tools"]} >= {"todo", "skill_manage"}
    assert streamed[0].body["messages"] == [{"role": "user", "content": [{"text": "Hello Nova"}]}]
    assert "toolResult" in streamed[1].body["messages"][-1]["content"][0]

    # model.context_length is set: no context-window probe, no Converse call at all
    assert converse.calls_of("Converse") == []
    assert not any(is_probe(c) for c in converse.calls)
    assert converse.rejected == [] and converse.other_requests == []
    assert loopback_only == []  # and no catalog lookup anywhere


def test_without_context_length_hermes_probes_the_window_with_padded_calls(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    """Why the constructs render ``model.context_length``: a document without it costs this per cold start."""
    doc = construct_document()
    del doc["config"]["model"]["context_length"]
    del doc["config"]["auxiliary"]
    render(hermes, doc)

    assert turn("Hello Nova").final_response == "stub-reply: Hello Nova"

    probes = converse.calls_of("Converse")
    assert probes and all(is_probe(c) for c in probes)
    assert max(len(json.dumps(c.body)) for c in probes) > converse.max_input_chars  # megabytes each
    assert all("guardrailConfig" not in c.body for c in probes)
    assert all(c.reply == HttpError(400, TOO_LONG) for c in probes)
    assert len(converse.calls_of("ConverseStream")) == 1


def test_without_the_guardrail_key_no_guardrail_config_is_sent(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    written = render(hermes, construct_document(guardrail=None))
    assert "guardrail" not in written["bedrock"]
    converse.script(ToolCall("todo", {"todos": []}), "unguarded")

    assert turn("Hello").final_response == "unguarded"

    assert len(converse.calls_of("ConverseStream")) == 2
    assert [c for c in converse.calls if "guardrailConfig" in c.body] == []


def test_stream_processing_mode_is_hermes_async_default_unless_blanked(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    """Not the constructs' documents: what Hermes does with the key left out or set."""
    ids = {k: v for k, v in GUARDRAIL.items() if k != "stream_processing_mode"}
    render(hermes, construct_document(guardrail=ids))
    turn("one")
    render(hermes, construct_document(guardrail={**ids, "stream_processing_mode": "sync", "trace": "enabled"}))
    turn("two")
    render(hermes, construct_document(guardrail={**ids, "stream_processing_mode": "", "trace": ""}))
    turn("three")

    first, second, third = converse.calls_of("ConverseStream")
    assert first.body["guardrailConfig"] == {**SENT_GUARDRAIL, "streamProcessingMode": "async"}
    assert second.body["guardrailConfig"] == {**SENT_GUARDRAIL, "streamProcessingMode": "sync", "trace": "enabled"}
    assert third.body["guardrailConfig"] == {"guardrailIdentifier": GUARDRAIL_ID, "guardrailVersion": "1"}
    assert converse.calls_of("Converse") == []


# --------------------------------------------------------------------------- guardrail intervention


def test_a_guardrail_intervention_is_answered_with_the_guardrail_message(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    from hermes_aws.agent_runner import build_agent

    render(hermes, construct_document())
    converse.script(Reply(BLOCKED, finish_reason="guardrail_intervened"),
                    Reply(BLOCKED, finish_reason="guardrail_intervened"))

    agent = build_agent(session_id="s-1", platform="telegram", chat_id="42", user_id="7")
    try:
        raw = agent.run_conversation(HARMFUL)
    finally:
        agent.close()
    # Hermes maps guardrail_intervened to finish_reason content_filter: a terminal
    # refusal, not a crash and not retried, worded for a Hermes operator.
    assert raw["failed"] is True and raw["completed"] is False
    assert raw["error"] == f"content_policy_blocked: {BLOCKED}"
    assert "declined to respond" in raw["final_response"] and "hermes fallback add" in raw["final_response"]
    assert raw["api_calls"] == 1
    assert [m["role"] for m in raw["messages"]] == ["user"]  # the refusal is not in the transcript

    # hermes_aws.agent_runner: a completed turn, answered with the guardrail's own message.
    result = turn(HARMFUL)
    assert result.blocked is True and result.final_response == BLOCKED
    assert [(m["role"], m["content"]) for m in result.new_messages] == [("user", HARMFUL), ("assistant", BLOCKED)]
    assert result.compacted is None and result.usage["api_calls"] == 1
    assert (result.provider, result.model) == ("bedrock", MODEL)
    calls = converse.calls_of("ConverseStream")
    assert len(calls) == 2 and all(c.body["guardrailConfig"] == SENT_GUARDRAIL for c in calls)
    assert converse.pending == 0


def test_the_worker_answers_a_guardrail_block_once_and_keeps_it_out_of_the_history(
        make_serverless: Callable[..., Any], hermetic_hermes: HermesPaths, converse: StubConverseServer,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A blocked message is answered with the guardrail's message on the first receive: one
    guarded model call, no retry, no apology, nothing dead-lettered. Only the ledger keeps the
    reply; the chat's history does not hold the blocked turn (a guardrail evaluates every message
    of a request, so a stored one would block every later turn), and later turns do not send it."""
    from hermes_aws.lambda_worker import APOLOGY
    from stubs.serverless import stored_messages, table_items, telegram_update, update_state

    h = make_serverless(settings=construct_document(), max_receive_count=3)
    h.post(telegram_update(808, "Hello Nova"))
    h.drain()
    capfd.readouterr()
    converse.script(Reply(BLOCKED, finish_reason="guardrail_intervened"))

    blocked = telegram_update(808, HARMFUL)
    h.post(blocked)
    h.drain()

    assert h.telegram.sent_messages(808) == ["stub-reply: Hello Nova", BLOCKED]
    first, call = converse.calls
    assert call.operation == "ConverseStream" and call.body["guardrailConfig"] == SENT_GUARDRAIL
    assert call.signature.access_key == "testing"  # the worker's (moto) credentials
    state = update_state(blocked["update_id"])
    assert state["status"] == {"S": "DELIVERED"} and state["reply"] == {"S": BLOCKED}
    history = [("user", "Hello Nova"), ("assistant", "stub-reply: Hello Nova")]
    assert [(m["role"], m["content"]) for m in stored_messages(808)] == history
    (meta,) = [i for i in table_items("SESSION#telegram:808") if i["SK"]["S"] == "META"]
    assert meta["next_seq"] == {"N": "2"} and state["session_id"] == meta["session_id"]  # no empty append
    assert h.dlq_bodies() == [] and h.queue_depth() == 0 and h.invocations == 2
    lines = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith("{")]
    (event,) = [e for e in lines if e.get("event") == "turn"]
    assert event["outcome"] == "guardrail_blocked" and event["receive_count"] == 1
    assert event["TurnErrors"] == 0 and "error" not in event and "apologized" not in event

    h.post(telegram_update(808, "Then tell me about green tea"))
    h.drain()

    assert h.telegram.sent_messages(808) == [
        "stub-reply: Hello Nova", BLOCKED, "stub-reply: Then tell me about green tea"]
    assert APOLOGY not in h.telegram.sent_messages(808)
    follow_up = converse.calls_of("ConverseStream")[-1]
    sent = json.dumps(follow_up.body)
    assert HARMFUL not in sent and BLOCKED not in sent
    assert [(m["role"], [b.get("text") for b in m["content"]]) for m in follow_up.body["messages"]] == [
        ("user", ["Hello Nova"]), ("assistant", ["stub-reply: Hello Nova"]),
        ("user", ["Then tell me about green tea"])]
    assert [(m["role"], m["content"]) for m in stored_messages(808)] == [
        *history, ("user", "Then tell me about green tea"),
        ("assistant", "stub-reply: Then tell me about green tea")]

    # The reply of a block that was recorded but not delivered (the send failed) goes out on the
    # redelivery from the ledger, without another model call; still nothing reaches the history.
    converse.script(Reply(BLOCKED, finish_reason="guardrail_intervened"))
    calls = len(converse.calls)
    again = telegram_update(808, HARMFUL + ", please")
    h.telegram.fail_next("sendMessage", 403, description="Forbidden: temporarily")
    h.post(again)
    h.drain()

    assert len(converse.calls) == calls + 1  # the first receive only
    assert h.invocations == 5 and h.dlq_bodies() == [] and h.queue_depth() == 0
    assert h.telegram.sent_messages(808)[-1] == BLOCKED and h.telegram.sent_messages(808).count(BLOCKED) == 2
    state = update_state(again["update_id"])
    assert state["status"] == {"S": "DELIVERED"} and state["reply"] == {"S": BLOCKED}
    lines = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith("{")]
    outcomes = [(e["outcome"], e["receive_count"]) for e in lines if e.get("event") == "turn"]
    assert outcomes[-2:] == [("error", 1), ("redelivered", 2)]
    assert len(stored_messages(808)) == 4
    assert h.model.chat_requests == []


# --------------------------------------------------------------------------- IAM without streaming


def test_when_streaming_is_denied_the_converse_fallback_needs_a_blank_stream_mode(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    from hermes_aws.agent_runner import AgentTurnError

    fast: dict[str, Any] = {"agent": {"api_max_retries": 1}}  # one attempt (not the constructs' setting)
    ids = {k: v for k, v in GUARDRAIL.items() if k != "stream_processing_mode"}
    render(hermes, construct_document(guardrail=ids, **fast))  # Hermes's "async" default
    converse.script(HttpError(403, STREAM_DENIED))
    with pytest.raises(AgentTurnError) as failed:
        turn("Hello")
    # Hermes falls back to converse(**same kwargs); botocore refuses them before sending.
    assert 'Unknown parameter in guardrailConfig: "streamProcessingMode"' in failed.value.result["error"]
    assert [c.operation for c in converse.calls] == ["ConverseStream"]

    render(hermes, construct_document(**fast))  # the constructs' blank stream_processing_mode
    converse.script(HttpError(403, STREAM_DENIED), "answered without streaming")
    assert turn("Hello").final_response == "answered without streaming"
    denied, fallback = converse.calls[1:]
    assert (denied.operation, fallback.operation) == ("ConverseStream", "Converse")
    assert fallback.path == "/model/us.amazon.nova-pro-v1%3A0/converse"
    assert fallback.body["guardrailConfig"] == SENT_GUARDRAIL


# --------------------------------------------------------------------------- auxiliary calls


@pytest.mark.parametrize("aux_window", [True, False], ids=["constructs-document", "without-auxiliary-window"])
def test_compression_summaries_are_sent_without_the_guardrail(
        hermes: HermesPaths, converse: StubConverseServer, aux_window: bool) -> None:
    """Compression's auxiliary client resolves its model's window on its own: ``model.context_length``
    does not reach it. The constructs render ``auxiliary.compression.context_length`` too, so no probe
    is sent while compressing; without that key (not the constructs' document) the probe comes back."""
    model = "us.amazon.nova-micro-v1:0"  # 128K (the constructs' table): compresses above ~96K tokens
    doc = construct_document(model=model, context_length=128000)
    if not aux_window:
        del doc["config"]["auxiliary"]
    written = render(hermes, doc)
    assert written["model"]["context_length"] == 128000
    assert written.get("auxiliary", {}).get("compression", {}).get("context_length") == (
        128000 if aux_window else None)
    history: list[dict[str, Any]] = []
    for i in range(16):
        history.append({"role": "user", "content": f"question {i}: " + "lorem ipsum dolor " * 800})
        history.append({"role": "assistant", "content": f"answer {i}: " + "sit amet consectetur " * 800})

    result = turn("And now?", history=history)

    assert result.final_response == "stub-reply: And now?"
    assert result.compacted is not None  # Hermes summarised the history
    probes = [c for c in converse.calls if is_probe(c)]
    assert bool(probes) is not aux_window
    summaries = [c for c in converse.calls_of("Converse") if not is_probe(c)]
    assert summaries, "no compression summary call"
    for call in summaries:
        text = json.dumps(call.body["messages"])
        # the user's conversation goes to the model (q0/a0/q1 are Hermes's protected head)
        assert "summarization agent" in text and "question 2: lorem ipsum" in text
        assert "guardrailConfig" not in call.body  # the auxiliary client never passes one
        assert call.model_id == model
    (final,) = converse.calls_of("ConverseStream")
    assert final.body["guardrailConfig"] == SENT_GUARDRAIL
