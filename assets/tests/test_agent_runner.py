"""hermes_aws.agent_runner: real hermes-agent 0.19.0 turns against the stub model on loopback."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from hermes_aws import agent_runner
from hermes_aws.agent_runner import LAMBDA_DISABLED_TOOLSETS, AgentTurnError, run_turn
from hermes_aws.home import Settings, prepare_home
from stubs.model_server import HttpError, StubModelServer, ToolCall

if TYPE_CHECKING:
    from conftest import HermesPaths

API_KEY = "sk-stub-runner-0123456789"

#: Tools of the toolsets the runner disables (hermes toolsets.py, 0.19.0).
FORBIDDEN_TOOLS = {
    "terminal", "process", "read_file", "write_file", "patch", "search_files",
    "browser_navigate", "browser_snapshot", "execute_code", "delegate_task", "computer_use",
    "cronjob", "clarify", "session_search", "text_to_speech", "kanban_show",
}


def settings(stub: StubModelServer, paths: HermesPaths, **config: Any) -> Settings:
    base: dict[str, Any] = {
        "model": {"provider": "custom", "default": stub.model, "base_url": stub.base_url,
                  "api_key": "${STUB_MODEL_API_KEY}", "context_length": 131072},
        "terminal": {"backend": "local", "cwd": str(paths.workdir)},
        "security": {"allow_lazy_installs": False},
        "memory": {"memory_enabled": True, "user_profile_enabled": False},
        "agent": {"api_max_retries": 1},
    }
    for k, v in config.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return Settings.from_dict({"version": 1, "config": base, "soul": "You are Runner-Test.",
                               "projectContext": "CTX-RUNNER-1", "secretEnv": ["STUB_MODEL_API_KEY"]})


@pytest.fixture
def home(hermetic_hermes: HermesPaths, stub_model: StubModelServer, monkeypatch: pytest.MonkeyPatch,
         loopback_only: list[str]) -> HermesPaths:
    monkeypatch.setenv("STUB_MODEL_API_KEY", API_KEY)
    prepare_home(hermetic_hermes.home, settings(stub_model, hermetic_hermes))
    return hermetic_hermes


def tool_names(request: Any) -> set[str]:
    return {t["function"]["name"] for t in request.body.get("tools") or []}


def test_turn_with_lambda_toolsets(home: HermesPaths, stub_model: StubModelServer, loopback_only: list[str]) -> None:
    result = run_turn("hello there", session_id="s-1", user_id="42", chat_id="42", chat_type="private")

    final, new_messages, usage = result  # unpacks as (final_response, new_messages, usage)
    assert final == "stub-reply: hello there"
    assert [(m["role"], m.get("content")) for m in new_messages] == [
        ("user", "hello there"), ("assistant", "stub-reply: hello there")]  # Hermes adds finish_reason etc.
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0 and usage["api_calls"] == 1
    assert result.compacted is None and result.deferred_review is None

    (req,) = stub_model.chat_requests
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"  # ${VAR} from the environment
    names = tool_names(req)
    assert not names & FORBIDDEN_TOOLS, names & FORBIDDEN_TOOLS
    assert {"skills_list", "skill_view", "skill_manage", "memory", "todo"} <= names
    system = req.body["messages"][0]["content"]
    assert "You are Runner-Test." in system and "CTX-RUNNER-1" in system  # SOUL.md + .hermes.md
    assert loopback_only == []


def test_history_is_passed_and_only_new_messages_returned(home: HermesPaths, stub_model: StubModelServer) -> None:
    history = [{"role": "user", "content": "my name is Ada"},
               {"role": "assistant", "content": "Nice to meet you, Ada."}]
    result = run_turn("what is my name?", history=history, session_id="s-2", user_id="42")
    sent = stub_model.chat_requests[0].body["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "my name is Ada"), ("assistant", "Nice to meet you, Ada."), ("user", "what is my name?")]
    assert [(m["role"], m["content"]) for m in result.new_messages] == [
        ("user", "what is my name?"), ("assistant", "stub-reply: what is my name?")]


def test_tool_loop_messages_are_all_new(home: HermesPaths, stub_model: StubModelServer) -> None:
    stub_model.script(ToolCall("todo", {"todos": [{"id": "1", "content": "x", "status": "pending"}]},
                               id="call_t"), "done")
    result = run_turn("plan", history=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                      session_id="s-3")
    assert [m["role"] for m in result.new_messages] == ["user", "assistant", "tool", "assistant"]
    assert result.new_messages[1]["tool_calls"][0]["id"] == "call_t"
    assert result.new_messages[2]["tool_call_id"] == "call_t"


def test_skill_manage_writes_into_hermes_home(home: HermesPaths, stub_model: StubModelServer) -> None:
    content = "---\nname: tea-brewing\ndescription: How to brew tea\n---\n# Tea\n1. Boil water.\n"
    stub_model.script(ToolCall("skill_manage", {"action": "create", "name": "tea-brewing", "content": content}),
                      "saved the skill")
    result = run_turn("remember how to brew tea", session_id="s-4")
    assert result.final_response == "saved the skill"
    assert (home.home / "skills" / "tea-brewing" / "SKILL.md").read_text() == content
    tool_msg = result.new_messages[2]
    assert tool_msg["role"] == "tool" and '"success": true' in tool_msg["content"]


def test_config_disabled_toolsets_are_merged(hermetic_hermes: HermesPaths, stub_model: StubModelServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUB_MODEL_API_KEY", API_KEY)
    prepare_home(hermetic_hermes.home, settings(
        stub_model, hermetic_hermes, agent={"disabled_toolsets": ["todo"]},
        # config cannot re-enable a Lambda-disabled toolset
        platform_toolsets={"telegram": ["terminal", "file", "skills", "todo", "memory"]}))
    run_turn("hi", session_id="s-5")
    names = tool_names(stub_model.chat_requests[0])
    assert "todo" not in names and "terminal" not in names and "read_file" not in names
    assert {"skill_manage", "memory"} <= names


def test_disabled_toolsets_helper() -> None:
    out = agent_runner.disabled_toolsets({"agent": {"disabled_toolsets": ["web", "terminal"]}}, ["memory"])
    assert out[: len(LAMBDA_DISABLED_TOOLSETS)] == list(LAMBDA_DISABLED_TOOLSETS)
    assert out[len(LAMBDA_DISABLED_TOOLSETS):] == ["web", "memory"]
    assert agent_runner.configured_model({"model": "m1"}) == ("m1", None)
    assert agent_runner.configured_model({"model": {"default": "m2", "provider": "bedrock"}}) == ("m2", "bedrock")


def test_disabled_toolsets_exist_in_hermes() -> None:
    from toolsets import TOOLSETS

    assert set(LAMBDA_DISABLED_TOOLSETS) - set(TOOLSETS) <= {"messaging"}  # messaging: Hermes's cron name
    for name in ("skills", "memory", "todo", "web", "vision"):
        assert name not in LAMBDA_DISABLED_TOOLSETS


def test_model_error_after_hermes_retries_raises(home: HermesPaths, stub_model: StubModelServer) -> None:
    stub_model.script(HttpError(500), HttpError(500), HttpError(500))
    with pytest.raises(AgentTurnError) as info:
        run_turn("hello", session_id="s-6")
    assert info.value.result.get("failed") is True
    assert len(stub_model.chat_requests) == 1  # agent.api_max_retries: 1 = a single attempt


def test_non_retryable_model_error_raises(home: HermesPaths, stub_model: StubModelServer) -> None:
    stub_model.script(HttpError(400, "bad request from stub"))
    with pytest.raises(AgentTurnError, match="Hermes turn failed"):
        run_turn("hello", session_id="s-7")


def test_background_review_is_deferred_not_threaded(hermetic_hermes: HermesPaths, stub_model: StubModelServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUB_MODEL_API_KEY", API_KEY)
    prepare_home(hermetic_hermes.home, settings(stub_model, hermetic_hermes, memory={"nudge_interval": 1}))
    before = {t.name for t in threading.enumerate()}
    result = run_turn("I love green tea", session_id="s-8")
    assert result.deferred_review is not None
    assert "bg-review" not in {t.name for t in threading.enumerate()} - before
    assert len(stub_model.chat_requests) == 1
    stub_model.script(ToolCall("memory", {"action": "add", "target": "memory", "content": "User loves green tea"}),
                      "noted")
    result.deferred_review()  # the worker calls it after the reply is sent
    assert len(stub_model.chat_requests) >= 2
    memory_file = hermetic_hermes.home / "memories" / "MEMORY.md"
    assert memory_file.exists() and "green tea" in memory_file.read_text()


class FakeAgent:
    """Stands in for AIAgent to check the runner's bookkeeping."""

    def __init__(self, result: dict[str, Any], **attributes: Any) -> None:
        self.result = result
        self.closed = False
        self.history: Any = None
        self.__dict__.update(attributes)

    def run_conversation(self, message: str, conversation_history: Any = None) -> dict[str, Any]:
        self.history = conversation_history
        return self.result

    def close(self) -> None:
        self.closed = True


def test_compacted_transcript_is_reported() -> None:
    history = [{"role": "user", "content": f"q{i}"} for i in range(3)]
    compacted = [{"role": "user", "content": "[summary]"}, {"role": "assistant", "content": "ok"},
                 {"role": "user", "content": "new"}, {"role": "assistant", "content": "answer"}]
    fake = FakeAgent({"final_response": "answer", "messages": compacted, "failed": False})
    result = run_turn("new", history=history, session_id="s", agent=fake)
    assert result.compacted == compacted
    assert result.new_messages == compacted[2:]
    assert fake.history == history
    assert not fake.closed  # the caller's agent is the caller's to close


def test_failed_result_raises_with_reason() -> None:
    fake = FakeAgent({"final_response": "API failed", "messages": [], "failed": True,
                      "failure_reason": "rate_limit", "error": "429"})
    with pytest.raises(AgentTurnError) as info:
        run_turn("x", session_id="s", agent=fake)
    assert info.value.reason == "rate_limit"
    fake2 = FakeAgent({"final_response": None, "messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(AgentTurnError, match="no final response"):
        run_turn("x", session_id="s", agent=fake2)


def blocked_result(messages: list[dict[str, Any]], detail: str) -> dict[str, Any]:
    """What Hermes 0.19.0 returns when a content policy blocks a call (conversation_loop's builder)."""
    return {"final_response": f"The model declined to respond ... {detail} ... `hermes fallback add`.",
            "messages": messages, "api_calls": 2, "completed": False, "failed": True,
            "error": f"content_policy_blocked: {detail}"}


def test_a_content_policy_block_is_a_completed_turn_answered_with_the_block_message() -> None:
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    in_turn = [{"role": "user", "content": "bad"},
               {"role": "assistant", "content": "", "tool_calls": [{"id": "t1"}]},
               {"role": "tool", "tool_call_id": "t1", "content": "{}"}]
    fake = FakeAgent(blocked_result(history + in_turn, "  Sorry, this is against our policy.  "),
                     session_input_tokens=321, session_output_tokens=12, model="nova", provider="bedrock")

    result = run_turn("bad", history=history, session_id="s", agent=fake)

    assert result.blocked is True
    assert result.final_response == "Sorry, this is against our policy."
    assert result.new_messages == [*in_turn, {"role": "assistant", "content": "Sorry, this is against our policy."}]
    assert result.compacted is None
    assert (result.usage["input_tokens"], result.usage["output_tokens"], result.usage["api_calls"]) == (321, 12, 2)
    assert (result.model, result.provider) == ("nova", "bedrock")


@pytest.mark.parametrize("detail", ["", "   ", "model declined (content_filter)"])
def test_a_block_without_a_message_gets_a_neutral_answer(detail: str) -> None:
    fake = FakeAgent(blocked_result([{"role": "user", "content": "bad"}], detail))
    result = run_turn("bad", session_id="s", agent=fake)
    assert result.blocked and result.final_response == agent_runner.BLOCKED_REPLY
    assert [m["role"] for m in result.new_messages] == ["user", "assistant"]


def test_other_failures_and_interrupted_blocks_still_raise() -> None:
    interrupted = {**blocked_result([], "Blocked."), "interrupted": True}
    with pytest.raises(AgentTurnError):
        run_turn("x", session_id="s", agent=FakeAgent(interrupted))
    policy_word = {"final_response": "x", "messages": [], "failed": True,
                   "error": "HTTP 400: content_policy_blocked: maybe"}  # not Hermes's prefix
    with pytest.raises(AgentTurnError):
        run_turn("x", session_id="s", agent=FakeAgent(policy_word))
    assert run_turn("x", session_id="s", agent=FakeAgent(
        {"final_response": "fine", "messages": [{"role": "user", "content": "x"}], "failed": False})).blocked is False
