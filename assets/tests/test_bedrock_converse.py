"""Bedrock guardrails on the Converse path of the pinned hermes-agent (0.19.0), on loopback.

``AgentModel.bedrock(id, {guardrail})`` renders ``model: {provider: bedrock,
default: <id>}`` and ``bedrock: {discovery, region, guardrail: {guardrail_identifier,
guardrail_version}}`` (src/model.ts ``_bind``). For a non-Claude model Hermes
resolves ``api_mode: bedrock_converse`` and calls boto3 ``bedrock-runtime``
itself; the stub (stubs/bedrock_converse_server.py) speaks that protocol and
checks every SigV4 signature. HERMES_HOME is rendered by ``hermes_aws.home``
from the settings document the constructs produce, and turns run through
``hermes_aws.agent_runner``.

What Hermes actually sends (asserted below):

* every agent-loop model call is ``ConverseStream`` (``POST /model/<id>/converse-stream``;
  Hermes streams even without a stream consumer) with ``guardrailConfig`` =
  ``{guardrailIdentifier, guardrailVersion, streamProcessingMode: "async", trace:
  "disabled"}``: the last two are Hermes's config defaults, merged into ours;
* no ``guardrailConfig`` at all without the ``guardrail`` key;
* unguarded ``Converse`` calls outside the agent loop: the context-window probe
  (``inferenceConfig.maxTokens`` 8, megabytes of "data data ...", when config has
  no ``model.context_length``) and context-compression summaries (auxiliary client);
* a guardrail intervention (``stopReason: guardrail_intervened``) ends the turn
  with Hermes's refusal text and ``failed: True``, without a retry;
* when IAM denies streaming, Hermes retries with ``Converse`` and the same
  kwargs, which botocore refuses (``streamProcessingMode`` is not a Converse
  field) unless the config blanks ``stream_processing_mode``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from hermes_aws.home import Settings, prepare_home
from stubs.bedrock_converse_server import TOO_LONG, ConverseCall, StubConverseServer
from stubs.model_server import HttpError, Reply, ToolCall

if TYPE_CHECKING:
    from conftest import HermesPaths

MODEL = "us.amazon.nova-pro-v1:0"
GUARDRAIL_ID = "gr0abc123def"
GUARDRAIL = {"guardrail_identifier": GUARDRAIL_ID, "guardrail_version": "3"}
#: what Hermes puts in the request for GUARDRAIL (its defaults fill in the last two)
SENT_GUARDRAIL = {"guardrailIdentifier": GUARDRAIL_ID, "guardrailVersion": "3",
                  "streamProcessingMode": "async", "trace": "disabled"}
BLOCKED = "Sorry, the model cannot answer this question."
STREAM_DENIED = ("User: arn:aws:sts::123456789012:assumed-role/worker/fn is not authorized to perform: "
                 "bedrock:InvokeModelWithResponseStream on resource: "
                 "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0")


def construct_document(workdir: Path, *, model: str = MODEL, guardrail: dict[str, str] | None = GUARDRAIL,
                       context_length: int | None = None, **config: Any) -> dict[str, Any]:
    """The document ``HermesConfig.render`` produces for ``AgentModel.bedrock(model, {region: 'us-east-1',
    guardrail})`` (src/model.ts, src/settings.ts), ``terminal.cwd`` pointing at ``workdir``.

    ``context_length`` (``model.context_length``) and ``config`` (more top-level keys)
    are not rendered by the constructs; tests that use them say why.
    """
    model_config: dict[str, Any] = {"provider": "bedrock", "default": model}
    if context_length is not None:
        model_config["context_length"] = context_length
    bedrock: dict[str, Any] = {"discovery": {"enabled": False}, "region": "us-east-1"}
    if guardrail is not None:
        bedrock["guardrail"] = dict(guardrail)
    return {
        "version": 1,
        "config": {
            "model": model_config,
            "bedrock": bedrock,
            "security": {"redact_secrets": True, "allow_lazy_installs": False, "tirith_enabled": False},
            "terminal": {"cwd": str(workdir)},
            **config,
        },
        "soul": None, "projectContext": None, "secretEnv": [],
    }


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
    guard = {"guardrailIdentifier": GUARDRAIL_ID, "guardrailVersion": "3"}

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
    written = render(hermes, construct_document(hermes.workdir))
    assert written["bedrock"]["guardrail"] == GUARDRAIL
    converse.script(ToolCall("todo", {"todos": [{"id": "1", "content": "check", "status": "pending"}]}),
                    "Nova says hi.")

    result = turn("Hello Nova")

    assert result.final_response == "Nova says hi."
    assert (result.provider, result.model) == ("bedrock", MODEL)
    assert [m["role"] for m in result.new_messages] == ["user", "assistant", "tool", "assistant"]
    assert result.usage["input_tokens"] > 0 and result.usage["api_calls"] == 2

    streamed = converse.calls_of("ConverseStream")
    assert len(streamed) == 2
    for call in streamed:
        assert call.path == "/model/us.amazon.nova-pro-v1%3A0/converse-stream"
        assert set(call.body) == {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig"}
        assert call.body["guardrailConfig"] == SENT_GUARDRAIL
        assert (call.signature.service, call.signature.region) == ("bedrock", "us-east-1")
        assert {t["toolSpec"]["name"] for t in call.body["toolConfig"]["tools"]} >= {"todo", "skill_manage"}
    assert streamed[0].body["messages"] == [{"role": "user", "content": [{"text": "Hello Nova"}]}]
    assert "toolResult" in streamed[1].body["messages"][-1]["content"][0]

    # The rest went through Converse: only Hermes's context-window probe (config has no
    # model.context_length), oversized on purpose and sent without the guardrail.
    others = converse.calls_of("Converse")
    assert others and all(is_probe(c) for c in others)
    assert all("guardrailConfig" not in c.body for c in others)
    assert all(c.reply == HttpError(400, TOO_LONG) for c in others)
    assert converse.rejected == [] and converse.other_requests == []
    assert set(loopback_only) <= {"openrouter.ai"}  # Hermes's catalog lookup, refused; nothing else left


def test_without_the_guardrail_key_no_guardrail_config_is_sent(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    written = render(hermes, construct_document(hermes.workdir, guardrail=None))
    assert "guardrail" not in written["bedrock"]
    converse.script(ToolCall("todo", {"todos": []}), "unguarded")

    assert turn("Hello").final_response == "unguarded"

    assert len(converse.calls_of("ConverseStream")) == 2
    assert [c for c in converse.calls if "guardrailConfig" in c.body] == []


def test_stream_processing_mode_comes_from_hermes_defaults_and_can_be_blanked(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    render(hermes, construct_document(hermes.workdir, context_length=300000, guardrail={
        **GUARDRAIL, "stream_processing_mode": "sync", "trace": "enabled"}))
    turn("one")
    render(hermes, construct_document(hermes.workdir, context_length=300000, guardrail={
        **GUARDRAIL, "stream_processing_mode": "", "trace": ""}))
    turn("two")

    first, second = converse.calls_of("ConverseStream")
    assert first.body["guardrailConfig"] == {**SENT_GUARDRAIL, "streamProcessingMode": "sync", "trace": "enabled"}
    assert second.body["guardrailConfig"] == {"guardrailIdentifier": GUARDRAIL_ID, "guardrailVersion": "3"}
    assert converse.calls_of("Converse") == []  # model.context_length set: no probe


# --------------------------------------------------------------------------- guardrail intervention


def test_a_guardrail_intervention_ends_the_turn_with_hermes_refusal(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    from hermes_aws.agent_runner import AgentTurnError, build_agent

    render(hermes, construct_document(hermes.workdir))
    converse.script(Reply(BLOCKED, finish_reason="guardrail_intervened"),
                    Reply(BLOCKED, finish_reason="guardrail_intervened"))

    agent = build_agent(session_id="s-1", platform="telegram", chat_id="42", user_id="7")
    try:
        result = agent.run_conversation("Tell me how to do something harmful")
    finally:
        agent.close()
    # Hermes maps guardrail_intervened to finish_reason content_filter: a terminal
    # refusal, not a crash and not retried.
    assert result["failed"] is True and result["completed"] is False
    assert result["error"] == f"content_policy_blocked: {BLOCKED}"
    assert "declined to respond" in result["final_response"] and BLOCKED in result["final_response"]
    assert result["api_calls"] == 1
    assert [m["role"] for m in result["messages"]] == ["user"]  # the refusal is not in the transcript
    (call,) = converse.calls_of("ConverseStream")
    assert call.body["guardrailConfig"] == SENT_GUARDRAIL

    # hermes_aws.agent_runner treats Hermes's failed result as a failed turn.
    with pytest.raises(AgentTurnError) as failed:
        turn("Tell me how to do something harmful")
    assert failed.value.reason is None
    assert failed.value.result["error"] == f"content_policy_blocked: {BLOCKED}"
    assert BLOCKED in failed.value.result["final_response"]
    assert len(converse.calls_of("ConverseStream")) == 2
    assert converse.pending == 0


def test_the_worker_retries_a_guardrail_block_then_apologises(
        make_serverless: Callable[..., Any], hermetic_hermes: HermesPaths, converse: StubConverseServer) -> None:
    """What the Lambda worker does with that refusal today: an error like any other, so SQS
    redelivers it (one more guardrailed model call per receive) until the apology."""
    from hermes_aws.lambda_worker import APOLOGY
    from stubs.serverless import stored_messages, telegram_update

    attempts = 2
    # model.context_length keeps Hermes from its OpenRouter catalog lookup (the fixture
    # refuses any non-loopback connection) and from the context-window probe.
    doc = construct_document(hermetic_hermes.workdir, context_length=300000)
    h = make_serverless(settings=doc, max_receive_count=attempts)
    converse.script(*[Reply(BLOCKED, finish_reason="guardrail_intervened")] * attempts)

    h.post(telegram_update(808, "Tell me how to do something harmful"))
    h.drain()

    assert h.telegram.sent_messages(808) == [APOLOGY]
    calls = converse.calls_of("ConverseStream")
    assert len(calls) == attempts
    assert all(c.body["guardrailConfig"] == SENT_GUARDRAIL for c in calls)
    assert all(c.signature.access_key == "testing" for c in calls)  # the worker's (moto) credentials
    assert stored_messages(808) == []
    assert len(h.dlq_bodies()) == 1
    assert h.model.chat_requests == []


# --------------------------------------------------------------------------- IAM without streaming


def test_when_streaming_is_denied_the_converse_fallback_needs_a_blank_stream_mode(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    from hermes_aws.agent_runner import AgentTurnError

    fast: dict[str, Any] = {"context_length": 300000, "agent": {"api_max_retries": 1}}  # one attempt, no probe
    render(hermes, construct_document(hermes.workdir, **fast))
    converse.script(HttpError(403, STREAM_DENIED))
    with pytest.raises(AgentTurnError) as failed:
        turn("Hello")
    # Hermes falls back to converse(**same kwargs); botocore refuses them before sending.
    assert 'Unknown parameter in guardrailConfig: "streamProcessingMode"' in failed.value.result["error"]
    assert [c.operation for c in converse.calls] == ["ConverseStream"]

    render(hermes, construct_document(hermes.workdir, guardrail={**GUARDRAIL, "stream_processing_mode": ""},
                                      **fast))
    converse.script(HttpError(403, STREAM_DENIED), "answered without streaming")
    assert turn("Hello").final_response == "answered without streaming"
    denied, fallback = converse.calls[1:]
    assert (denied.operation, fallback.operation) == ("ConverseStream", "Converse")
    assert fallback.path == "/model/us.amazon.nova-pro-v1%3A0/converse"
    assert fallback.body["guardrailConfig"] == {"guardrailIdentifier": GUARDRAIL_ID, "guardrailVersion": "3",
                                                "trace": "disabled"}


# --------------------------------------------------------------------------- auxiliary calls


def test_compression_summaries_are_sent_without_the_guardrail(
        hermes: HermesPaths, converse: StubConverseServer) -> None:
    model = "us.amazon.nova-micro-v1:0"  # 128K in Hermes's table: compresses above ~96K tokens
    render(hermes, construct_document(hermes.workdir, model=model))
    history: list[dict[str, Any]] = []
    for i in range(16):
        history.append({"role": "user", "content": f"question {i}: " + "lorem ipsum dolor " * 800})
        history.append({"role": "assistant", "content": f"answer {i}: " + "sit amet consectetur " * 800})

    result = turn("And now?", history=history)

    assert result.final_response == "stub-reply: And now?"
    assert result.compacted is not None  # Hermes summarised the history
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
