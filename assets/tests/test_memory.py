"""hermes_aws.memory: the AgentCore Memory provider against the stub data plane, and in real Hermes turns."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from helpers import emf_metrics
from hermes_aws import memory
from hermes_aws.memory import AgentCoreMemoryProvider, MemorySettings
from stubs import agentcore_memory_server as stubmod
from stubs.agentcore_memory_server import StubAgentCoreMemory
from stubs.model_server import StubModelServer

if TYPE_CHECKING:
    from conftest import HermesPaths

TEMPLATES = ["/users/{actorId}/facts", "/users/{actorId}/preferences", "/summaries/{actorId}/{sessionId}"]
SESSION = "20260521T101500Z-0123456789ab"


@pytest.fixture
def agentcore(no_aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[StubAgentCoreMemory]:
    """The stub data plane, fake credentials, the endpoint override and memory env vars."""
    with StubAgentCoreMemory(TEMPLATES) as stub:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": stub.origin,
        }.items():
            monkeypatch.setenv(name, value)
        memory.configure(None)  # no cached client/settings from another test
        yield stub
        memory.configure(None)


def memory_env(stub: StubAgentCoreMemory) -> dict[str, str]:
    return {memory.MEMORY_ID_ENV: stub.memory_id, memory.NAMESPACES_ENV: json.dumps(TEMPLATES)}


def provider_for(stub: StubAgentCoreMemory, user_id: Any = "111", platform: str = "telegram",
                 session: str = SESSION, **kwargs: Any) -> AgentCoreMemoryProvider:
    p = AgentCoreMemoryProvider(MemorySettings.from_env(memory_env(stub)))
    assert p.is_available()
    p.initialize(session, platform=platform, user_id=user_id, hermes_home="/tmp/x", **kwargs)
    return p


def memory_lines(out: str) -> list[dict[str, Any]]:
    return [rec for rec in map(json.loads, out.splitlines()) if rec.get("event") == "memory"]


# --------------------------------------------------------------------------- settings and ids


def test_settings_from_env() -> None:
    assert MemorySettings.from_env({}) is None
    s = MemorySettings.from_env({memory.MEMORY_ID_ENV: " hermes_memory-a1b2c3d4e5 ",
                                 memory.NAMESPACES_ENV: json.dumps([*TEMPLATES, TEMPLATES[0]])})
    assert s is not None and s.memory_id == "hermes_memory-a1b2c3d4e5"
    assert s.namespaces == tuple(TEMPLATES)  # duplicates dropped, order kept


@pytest.mark.parametrize(("env", "message"), [
    ({memory.MEMORY_ID_ENV: "mem 1"}, "HERMES_AWS_MEMORY_ID is not an AgentCore Memory id"),
    ({}, "HERMES_AWS_MEMORY_NAMESPACES must be set"),
    ({memory.NAMESPACES_ENV: "[/users/{actorId}]"}, "HERMES_AWS_MEMORY_NAMESPACES is not valid JSON"),
    ({memory.NAMESPACES_ENV: '"/users/{actorId}"'}, "must be a non-empty JSON list of strings"),
    ({memory.NAMESPACES_ENV: "[]"}, "must be a non-empty JSON list of strings"),
    ({memory.NAMESPACES_ENV: '["/x/{memoryStrategyId}/{actorId}"]'}, "uses {memoryStrategyId}"),
    ({memory.NAMESPACES_ENV: '["/global/facts"]'}, "would be shared by every user"),
])
def test_malformed_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as err:
        MemorySettings.from_env({memory.MEMORY_ID_ENV: "hermes_memory-a1b2c3d4e5", **env})
    assert message in str(err.value)


@pytest.mark.parametrize(("platform", "user", "actor"), [
    ("telegram", "123", "telegram:123"),
    ("telegram", 123, "telegram:123"),
    ("slack", "U012ABC", "slack:U012ABC"),
    ("agentcore", "slack:U012ABC", "slack:U012ABC"),  # already qualified
    ("telegram", "a b@c", "telegram:a_b_c"),
    ("telegram", None, None),
    ("telegram", "", None),
    ("telegram", "system:cron", None),
    ("cron", "123", None),
])
def test_actor_ids(platform: str, user: Any, actor: str | None) -> None:
    got = memory.actor_id_for(platform, user)
    assert got == actor
    if got is not None:
        assert stubmod._ACTOR_ID.fullmatch(got)  # the service model's pattern


@pytest.mark.parametrize("raw", [SESSION, "tg chat/1", "-x", "", "a" * 150])
def test_session_ids_always_match_the_service_pattern(raw: str) -> None:
    sid = memory.session_id_for(raw)
    assert stubmod._SESSION_ID.fullmatch(sid) and len(sid) <= 100
    if raw == SESSION:
        assert sid == SESSION


def test_format_records_ranks_dedupes_and_caps() -> None:
    records = [
        {"memoryRecordId": "mem-1", "content": {"text": "likes tea"}, "score": 0.2},
        {"memoryRecordId": "mem-2", "content": {"text": "lives in  Lisbon"}, "score": 0.9},
        {"memoryRecordId": "mem-3", "content": {"text": "Likes tea"}, "score": 0.5},  # same text
        {"memoryRecordId": "mem-4", "content": {"text": ""}, "score": 1.0},
    ]
    text, n = memory.format_records(records)
    assert n == 2
    assert text == f"{memory.CONTEXT_HEADER}\n- lives in Lisbon\n- Likes tea"
    assert memory.format_records(records, max_records=1)[1] == 1
    assert memory.format_records([])[0] == ""
    long = [{"memoryRecordId": f"mem-{i}", "content": {"text": f"fact {i} " + "x" * 300}} for i in range(50)]
    capped, count = memory.format_records(long)
    assert len(capped) <= memory.MAX_CONTEXT_CHARS and 0 < count < 50


# --------------------------------------------------------------------------- the provider against the stub


def test_a_turn_is_recorded_as_one_conversational_event(agentcore: StubAgentCoreMemory,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    p = provider_for(agentcore, user_id="111")
    p.sync_turn("My favourite colour is teal.", "Noted: teal.", session_id=SESSION)

    (call,) = agentcore.wait_for("CreateEvent", 1)
    assert call.status == 201 and call.params == {"memoryId": agentcore.memory_id}
    assert stubmod.signing_service(call.headers["authorization"]) == "bedrock-agentcore"
    body = call.body
    assert (body["actorId"], body["sessionId"]) == ("telegram:111", SESSION)
    assert body["payload"] == [
        {"conversational": {"role": "USER", "content": {"text": "My favourite colour is teal."}}},
        {"conversational": {"role": "ASSISTANT", "content": {"text": "Noted: teal."}}},
    ]
    assert isinstance(body["eventTimestamp"], (int, float))
    (line,) = memory_lines(capfd.readouterr().out)
    assert line["op"] == "record" and line["ok"] is True and line["event_id"] == agentcore.events[0].event_id
    assert "teal" not in json.dumps(line)  # never the text


def test_recall_searches_every_namespace_of_the_actor(agentcore: StubAgentCoreMemory,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    writer = provider_for(agentcore, user_id="111")
    writer.sync_turn("My favourite colour is teal.", "Noted.")
    writer.sync_turn("I live in Lisbon.", "Nice.")
    agentcore.add_record("telegram:222", "/users/telegram:222/facts", "My favourite colour is red.")

    reader = provider_for(agentcore, user_id="111", session="20260601T000000Z-ffffffffffff")
    capfd.readouterr()
    text = reader.prefetch("Which favourite colour did I tell you?")

    assert text.startswith(memory.CONTEXT_HEADER)
    assert "- My favourite colour is teal." in text
    assert "red" not in text and "Lisbon" not in text  # other user; no word in common
    searched = [c.body for c in agentcore.calls_of("RetrieveMemoryRecords")]
    assert sorted(b["namespace"] for b in searched) == sorted([
        "/users/telegram:111/facts", "/users/telegram:111/preferences",
        "/summaries/telegram:111/20260601T000000Z-ffffffffffff"])
    assert all(b["searchCriteria"] == {"searchQuery": "Which favourite colour did I tell you?",
                                       "topK": memory.DEFAULT_TOP_K} for b in searched)
    (line,) = memory_lines(capfd.readouterr().out)
    assert (line["op"], line["ok"], line["namespaces"], line["failed_namespaces"]) == ("recall", True, 3, 0)
    assert line["recalled"] == 1 and line["found"] >= 1

    assert provider_for(agentcore, user_id="222").prefetch("favourite colour?").count("- ") == 1
    assert provider_for(agentcore, user_id="333").prefetch("favourite colour?") == ""


def test_prefix_namespaces_do_not_leak_between_users(agentcore: StubAgentCoreMemory) -> None:
    agentcore.add_record("telegram:12", "/users/telegram:12", "My favourite colour is red.")
    agentcore.add_record("telegram:1", "/users/telegram:1", "My favourite colour is teal.")
    agentcore.add_record("telegram:1", "/users/telegram:1/notes", "Favourite colour changes weekly.")
    p = AgentCoreMemoryProvider(MemorySettings(agentcore.memory_id, ("/users/{actorId}",)))
    p.initialize(SESSION, platform="telegram", user_id="1")
    text = p.prefetch("favourite colour")
    (call,) = agentcore.calls_of("RetrieveMemoryRecords")
    assert len(call.response["memoryRecordSummaries"]) == 3  # the service's prefix match includes telegram:12
    assert "teal" in text and "weekly" in text and "red" not in text


def test_session_switch_moves_the_session(agentcore: StubAgentCoreMemory) -> None:
    p = provider_for(agentcore, user_id="111")
    p.on_session_switch("20260602T000000Z-aaaaaaaaaaaa", parent_session_id=SESSION, reset=False)
    p.sync_turn("hello there", "hi")
    (call,) = agentcore.wait_for("CreateEvent", 1)
    assert call.body["sessionId"] == "20260602T000000Z-aaaaaaaaaaaa"
    assert "/summaries/telegram:111/20260602T000000Z-aaaaaaaaaaaa" in p.namespaces()


@pytest.mark.parametrize("kwargs", [
    {"user_id": None}, {"user_id": "system:cron"}, {"platform": "cron"},
])
def test_idle_without_a_user(agentcore: StubAgentCoreMemory, kwargs: dict[str, Any]) -> None:
    p = provider_for(agentcore, **{"user_id": "111", **kwargs})
    assert p.prefetch("anything at all") == ""
    p.sync_turn("remember this", "ok")
    assert agentcore.calls == {}


def test_non_primary_agents_recall_but_never_write(agentcore: StubAgentCoreMemory) -> None:
    p = provider_for(agentcore, user_id="111", agent_context="subagent")
    p.sync_turn("remember this", "ok")
    p.prefetch("remember")
    assert agentcore.calls_of("CreateEvent") == []
    assert len(agentcore.calls_of("RetrieveMemoryRecords")) == 3


def test_service_errors_never_raise(agentcore: StubAgentCoreMemory, capfd: pytest.CaptureFixture[str]) -> None:
    for kind in ("facts", "preferences"):  # the searches run in parallel: any one of them may be denied
        agentcore.add_record("telegram:111", f"/users/telegram:111/{kind}", "Prefers short answers")
    p = provider_for(agentcore, user_id="111")

    # one namespace denied: the others still answer
    agentcore.fail_next("RetrieveMemoryRecords", 403, "AccessDeniedException")
    assert "Prefers short answers" in p.prefetch("short answers please")
    # every call fails (and retries are exhausted): nothing recalled, nothing raised
    agentcore.fail_next("RetrieveMemoryRecords", 500, "ServiceException", times=3 * memory.RECALL_ATTEMPTS)
    assert p.prefetch("short answers please") == ""
    agentcore.fail_next("CreateEvent", 429, "ThrottledException", times=memory.RECORD_ATTEMPTS)
    p.sync_turn("hello", "hi")
    agentcore.disconnect_next("CreateEvent", times=memory.RECORD_ATTEMPTS)
    p.sync_turn("hello", "hi")
    agentcore.fail_next("CreateEvent", 404, "ResourceNotFoundException")
    p.sync_turn("hello", "hi")

    assert agentcore.events == []
    # throttling, 5xx and dropped connections were retried; 403/404 were not
    assert len(agentcore.calls_of("RetrieveMemoryRecords")) == 3 + 3 * memory.RECALL_ATTEMPTS
    assert len(agentcore.calls_of("CreateEvent")) == 2 * memory.RECORD_ATTEMPTS + 1
    lines = memory_lines(capfd.readouterr().out)
    assert [(ln["op"], ln["ok"]) for ln in lines] == [
        ("recall", False), ("recall", False), ("record", False), ("record", False), ("record", False)]
    assert lines[0]["failed_namespaces"] == 1 and "AccessDenied" in lines[0]["error"]
    assert lines[1]["failed_namespaces"] == 3
    assert "ThrottledException" in lines[2]["error"] and "ResourceNotFound" in lines[4]["error"]


def test_every_recall_and_record_line_counts_memory_failures(agentcore: StubAgentCoreMemory,
                                                              capfd: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The constructs alarm on MemoryFailures (Sum, by Agent): 1 per failed call, 0 per good one."""
    monkeypatch.setenv("HERMES_AWS_AGENT_NAME", "support-bot")
    p = provider_for(agentcore, user_id="111")
    p.prefetch("anything remembered?")
    agentcore.fail_next("RetrieveMemoryRecords", 403, "AccessDeniedException")
    p.prefetch("anything remembered?")  # one namespace of three denied: a failed recall
    p.sync_turn("hello", "hi")
    agentcore.fail_next("CreateEvent", 404, "ResourceNotFoundException")
    p.sync_turn("hello", "hi")

    lines = memory_lines(capfd.readouterr().out)
    assert [(ln["op"], ln["ok"]) for ln in lines] == [
        ("recall", True), ("recall", False), ("record", True), ("record", False)]
    for ln in lines:
        assert emf_metrics(ln) == {"MemoryFailures": ("HermesAgent/Serverless", [["Agent"]],
                                                      0 if ln["ok"] else 1, "Count")}
        assert ln["Agent"] == "support-bot"

    monkeypatch.delenv("HERMES_AWS_AGENT_NAME")
    agentcore.fail_next("CreateEvent", 403, "AccessDeniedException")
    p.sync_turn("hello", "hi")
    (line,) = memory_lines(capfd.readouterr().out)
    assert (line["Agent"], line["MemoryFailures"]) == ("default", 1)  # the worker's default dimension


def test_activation_lines_carry_no_metric(agentcore: StubAgentCoreMemory, tmp_path: Path,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    memory.activate(memory_env(agentcore), tmp_path)
    (line,) = memory_lines(capfd.readouterr().out)
    assert line["op"] == "activate" and "_aws" not in line and "MemoryFailures" not in line


def test_wrong_memory_id_is_reported_not_raised(agentcore: StubAgentCoreMemory,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    p = AgentCoreMemoryProvider(MemorySettings("other_memory-zzzzzzzzzz", tuple(TEMPLATES)))
    p.initialize(SESSION, platform="telegram", user_id="1")
    assert p.prefetch("hello world") == ""
    p.sync_turn("hello", "hi")
    assert {(ln["op"], ln["ok"]) for ln in memory_lines(capfd.readouterr().out)} == {("recall", False),
                                                                                     ("record", False)}


# --------------------------------------------------------------------------- activation (real Hermes discovery)


def test_activate_installs_the_plugin_hermes_loads(agentcore: StubAgentCoreMemory, hermetic_hermes: HermesPaths,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    home = hermetic_hermes.home
    home.mkdir(parents=True)
    (home / "config.yaml").write_text(yaml.safe_dump({"model": {"default": "m"},
                                                      "memory": {"memory_enabled": True}}))
    config: dict[str, Any] = {"model": {"default": "m"}}
    env = memory_env(agentcore)

    settings = memory.activate(env, home, config)

    assert settings == MemorySettings.from_env(env)
    on_disk = yaml.safe_load((home / "config.yaml").read_text())
    assert on_disk["memory"] == {"memory_enabled": True, "provider": "agentcore_memory"}
    assert config["memory"] == {"provider": "agentcore_memory"}

    from plugins.memory import find_provider_dir, load_memory_provider

    assert find_provider_dir("agentcore_memory") == home / "plugins" / "agentcore_memory"
    loaded = load_memory_provider("agentcore_memory")
    assert type(loaded).__name__ == "AgentCoreMemoryProvider" and loaded.is_available()
    assert loaded.settings == settings  # what activate configured, not re-read
    assert load_memory_provider("agentcore_memory") is not loaded  # a fresh instance per agent

    # switched off: plugin and setting removed, other settings kept
    assert memory.activate({}, home, config) is None
    assert not (home / "plugins" / "agentcore_memory").exists()
    assert yaml.safe_load((home / "config.yaml").read_text())["memory"] == {"memory_enabled": True}
    assert "provider" not in config["memory"]


def test_activate_rejects_a_malformed_environment(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HERMES_AWS_MEMORY_NAMESPACES"):
        memory.activate({memory.MEMORY_ID_ENV: "hermes_memory-a1b2c3d4e5",
                         memory.NAMESPACES_ENV: '["/global"]'}, tmp_path)
    assert not (tmp_path / "plugins").exists()


# --------------------------------------------------------------------------- real Hermes turns

API_KEY = "sk-stub-0123456789abcdef"
FACT = "My favourite colour is teal and my cat is called Miso."


@pytest.fixture
def hermes_with_memory(agentcore: StubAgentCoreMemory, hermetic_hermes: HermesPaths, stub_model: StubModelServer,
                       monkeypatch: pytest.MonkeyPatch) -> Iterator[StubAgentCoreMemory]:
    from hermes_aws.home import Settings, prepare_home

    monkeypatch.setenv("STUB_MODEL_API_KEY", API_KEY)
    for name, value in memory_env(agentcore).items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_dict({
        "version": 1,
        "config": {
            "model": {"provider": "custom", "default": stub_model.model, "base_url": stub_model.base_url,
                      "api_key": "${STUB_MODEL_API_KEY}", "context_length": 131072},
            "terminal": {"backend": "local", "cwd": str(hermetic_hermes.workdir)},
            "security": {"allow_lazy_installs": False},
            "memory": {"memory_enabled": False, "user_profile_enabled": False},
        },
        "secretEnv": ["STUB_MODEL_API_KEY"],
    })
    prepare_home(hermetic_hermes.home, settings)
    assert memory.activate(None, hermetic_hermes.home, settings.config) is not None
    yield agentcore


def hermes_turn(text: str, *, user_id: str, session_id: str) -> Any:
    """One real Hermes turn as the worker runs it, then the flush the worker must do."""
    from hermes_aws import agent_runner

    agent = agent_runner.build_agent(session_id=session_id, user_id=user_id, platform="telegram",
                                     chat_id=user_id, chat_type="private")
    try:
        assert agent._memory_manager is not None  # Hermes picked the provider up from config.yaml
        result = agent_runner.run_turn(text, session_id=session_id, agent=agent)
        assert memory.flush(agent, timeout=10)
    finally:
        agent.close()
    return result


def last_user_content(stub: StubModelServer) -> str:
    messages = stub.chat_requests[-1].body["messages"]
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def test_a_fact_from_one_session_is_recalled_in_another(hermes_with_memory: StubAgentCoreMemory,
                                                        stub_model: StubModelServer,
                                                        loopback_only: list[str]) -> None:
    stub = hermes_with_memory
    first = hermes_turn(f"Please remember this: {FACT}", user_id="111", session_id="20260521T100000Z-aaaaaaaaaaaa")
    assert first.final_response.startswith("stub-reply: ")
    assert "<memory-context>" not in last_user_content(stub_model)  # nothing known yet
    (event,) = stub.events
    assert (event.actor_id, event.session_id) == ("telegram:111", "20260521T100000Z-aaaaaaaaaaaa")
    assert [p["conversational"]["role"] for p in event.payload] == ["USER", "ASSISTANT"]
    assert event.payload[0]["conversational"]["content"]["text"] == f"Please remember this: {FACT}"

    # a new session of the same user: the fact is in the prompt of the model call
    second = hermes_turn("What is my cat called, and which colour do I like?", user_id="111",
                session_id="20260522T090000Z-bbbbbbbbbbbb")
    prompt = last_user_content(stub_model)
    assert prompt.startswith("What is my cat called, and which colour do I like?")
    block = re.search(r"<memory-context>(.*?)</memory-context>", prompt, re.S)
    assert block is not None and FACT in block.group(1)
    # the stored message keeps the user's text; Hermes stamps what was sent as api_content
    stored = second.new_messages[0]
    assert stored["content"] == "What is my cat called, and which colour do I like?"
    assert FACT in stored["api_content"]
    namespaces = {c.body["namespace"] for c in stub.calls_of("RetrieveMemoryRecords")}
    assert "/summaries/telegram:111/20260522T090000Z-bbbbbbbbbbbb" in namespaces

    # another user asking the same question gets nothing of it
    hermes_turn("What is my cat called, and which colour do I like?", user_id="222",
                session_id="20260522T090000Z-cccccccccccc")
    other = last_user_content(stub_model)
    assert "Miso" not in other and "<memory-context>" not in other
    assert [e.actor_id for e in stub.events] == ["telegram:111", "telegram:111", "telegram:222"]
    assert loopback_only == []


def test_memory_service_errors_do_not_fail_the_turn(hermes_with_memory: StubAgentCoreMemory,
                                                    stub_model: StubModelServer,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    stub = hermes_with_memory
    stub.add_record("telegram:111", "/users/telegram:111/facts", FACT)
    stub.fail_next("RetrieveMemoryRecords", 500, "ServiceException", times=50)
    stub.fail_next("CreateEvent", 403, "AccessDeniedException")

    result = hermes_turn("Which colour do I like?", user_id="111", session_id="20260521T100000Z-aaaaaaaaaaaa")

    assert result.final_response == "stub-reply: Which colour do I like?"
    assert "<memory-context>" not in last_user_content(stub_model)
    assert stub.events == [] and len(stub.calls_of("CreateEvent")) == 1
    lines = memory_lines(capfd.readouterr().out)
    assert {(ln["op"], ln["ok"]) for ln in lines} >= {("recall", False), ("record", False)}
