"""Run real Hermes AIAgent turns (hermes-agent 0.19.0) against the stub model on loopback."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from hermes_aws.home import Settings, prepare_home
from stubs.model_server import HttpError, StubModelServer, ToolCall

if TYPE_CHECKING:
    from conftest import HermesPaths

API_KEY = "sk-stub-0123456789abcdef"
SOUL = "You are Zed, the SOULMARK-7 test persona. Be brief."
CONTEXT = "Project rule CTXMARK-9: answer in English."


def _settings(stub: StubModelServer, paths: HermesPaths) -> Settings:
    return Settings.from_dict({
        "version": 1,
        "config": {
            "model": {
                "provider": "custom",  # OpenAI-compatible endpoint
                "default": stub.model,
                "base_url": stub.base_url,
                "api_key": "${STUB_MODEL_API_KEY}",  # secret stays in the environment
                "context_length": 131072,
            },
            "terminal": {"backend": "local", "cwd": str(paths.workdir)},
            "security": {"allow_lazy_installs": False},
            "memory": {"memory_enabled": False, "user_profile_enabled": False},
        },
        "soul": SOUL,
        "projectContext": CONTEXT,
        "secretEnv": ["STUB_MODEL_API_KEY"],
    })


def _make_agent(**kwargs: Any) -> Any:
    """Build an AIAgent the way the gateway does: resolve provider/base_url/key from config.yaml."""
    from hermes_cli.runtime_provider import resolve_runtime_provider
    from run_agent import AIAgent

    runtime = resolve_runtime_provider()
    agent = AIAgent(
        model="stub-model",
        api_key=runtime["api_key"],
        base_url=runtime["base_url"],
        provider=runtime["provider"],
        api_mode=runtime["api_mode"],
        quiet_mode=True,
        skip_memory=True,
        **kwargs,
    )
    return runtime, agent


@pytest.fixture
def prepared(hermetic_hermes: HermesPaths, stub_model: StubModelServer,
             monkeypatch: pytest.MonkeyPatch) -> HermesPaths:
    monkeypatch.setenv("STUB_MODEL_API_KEY", API_KEY)
    result = prepare_home(hermetic_hermes.home, _settings(stub_model, hermetic_hermes))
    assert result.context_dir == hermetic_hermes.workdir  # == TERMINAL_CWD set by the fixture
    assert API_KEY not in (hermetic_hermes.home / "config.yaml").read_text()
    return hermetic_hermes


def test_agent_turn_against_stub_model(prepared: HermesPaths, stub_model: StubModelServer,
                                       loopback_only: list[str]) -> None:
    runtime, agent = _make_agent(enabled_toolsets=[])
    assert runtime["provider"] == "custom"
    assert runtime["api_mode"] == "chat_completions"
    assert runtime["base_url"] == stub_model.base_url
    assert runtime["api_key"] == API_KEY  # ${STUB_MODEL_API_KEY} expanded by Hermes

    result = agent.run_conversation("What is the capital of France?")

    assert result["final_response"] == "stub-reply: What is the capital of France?"
    assert result["failed"] is False
    roles_and_text = [(m["role"], m.get("content")) for m in result["messages"]]
    assert roles_and_text == [
        ("user", "What is the capital of France?"),
        ("assistant", "stub-reply: What is the capital of France?"),
    ]

    (req,) = stub_model.chat_requests
    assert req.headers.get("Authorization") == f"Bearer {API_KEY}"
    assert req.body["model"] == "stub-model"
    assert req.body["stream"] is True  # Hermes streams by default; the stub answered with SSE
    system, *rest = req.body["messages"]
    assert system["role"] == "system"
    assert SOUL in system["content"]  # SOUL.md from HERMES_HOME
    assert CONTEXT in system["content"]  # .hermes.md from TERMINAL_CWD
    assert rest[-1] == {"role": "user", "content": "What is the capital of France?"}
    assert "tools" not in req.body  # no toolsets enabled
    assert result["prompt_tokens"] > 0 and result["completion_tokens"] > 0  # usage was parsed
    assert loopback_only == []  # nothing tried to leave the machine


def test_agent_retries_transient_500_and_runs_a_tool(prepared: HermesPaths, stub_model: StubModelServer,
                                                     loopback_only: list[str]) -> None:
    todos = [{"id": "1", "content": "write the tests", "status": "pending"}]
    stub_model.script(
        HttpError(500, retry_after=0),
        ToolCall("todo", {"todos": todos}, id="call_todo_1"),
        "planned",
    )
    _, agent = _make_agent(enabled_toolsets=["todo"])  # local, in-memory tool

    result = agent.run_conversation("plan the work")

    assert result["final_response"] == "planned"
    assert stub_model.pending == 0
    failed, tool_turn, final_turn = stub_model.chat_requests
    assert isinstance(failed.reply, HttpError)
    assert failed.body["messages"] == tool_turn.body["messages"]  # same request retried
    assert [t["function"]["name"] for t in tool_turn.body["tools"]] == ["todo"]
    tool_msg = final_turn.body["messages"][-1]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "call_todo_1"
    assert json.loads(tool_msg["content"])["todos"] == todos  # the real tool ran
    assert [m["role"] for m in result["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert loopback_only == []
