"""Self-tests for the stub model server, driven by the real openai SDK."""

from __future__ import annotations

import json
import threading

import openai
import pytest

from stubs.model_server import HttpError, Reply, StubModelServer, ToolCall


@pytest.fixture
def client(stub_model: StubModelServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=stub_model.base_url, api_key="k", max_retries=0)


def ask(client: openai.OpenAI, text: str, **kw: object) -> object:
    return client.chat.completions.create(
        model="stub-model", messages=[{"role": "user", "content": text}], **kw)


def test_default_reply_non_streaming(client: openai.OpenAI, stub_model: StubModelServer) -> None:
    resp = ask(client, "ping")
    assert resp.choices[0].message.content == "stub-reply: ping"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0
    (req,) = stub_model.chat_requests
    assert req.body["messages"] == [{"role": "user", "content": "ping"}]
    assert req.headers["Authorization"] == "Bearer k"


def test_streaming_text_and_usage(client: openai.OpenAI, stub_model: StubModelServer) -> None:
    stub_model.script("a fairly long scripted reply, split into several chunks")
    chunks = list(ask(client, "x", stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a fairly long scripted reply, split into several chunks"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_streaming_tool_calls_reassemble(client: openai.OpenAI, stub_model: StubModelServer) -> None:
    stub_model.script([ToolCall("a", {"x": 1}, id="c1"), ToolCall("b", '{"y": "z"}')])
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for c in ask(client, "x", stream=True):
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
            slot["id"] += tc.id or ""
            slot["name"] += (tc.function.name or "") if tc.function else ""
            slot["args"] += (tc.function.arguments or "") if tc.function else ""
        if c.choices and c.choices[0].finish_reason:
            finish = c.choices[0].finish_reason
    assert finish == "tool_calls"
    assert calls[0]["id"] == "c1" and calls[0]["name"] == "a" and json.loads(calls[0]["args"]) == {"x": 1}
    assert calls[1]["name"] == "b" and json.loads(calls[1]["args"]) == {"y": "z"}


def test_non_streaming_tool_call_and_callable(client: openai.OpenAI, stub_model: StubModelServer) -> None:
    stub_model.script(Reply(text="thinking", tool_calls=(ToolCall("t", {}),)),
                      lambda body: f"echo {len(body['messages'])}")
    msg = ask(client, "x").choices[0].message
    assert msg.content == "thinking" and msg.tool_calls[0].function.name == "t"
    assert ask(client, "y").choices[0].message.content == "echo 1"
    assert ask(client, "z").choices[0].message.content == "stub-reply: z"  # queue drained


def test_http_error_then_recovery(client: openai.OpenAI, stub_model: StubModelServer) -> None:
    stub_model.script(HttpError(503, "overloaded", retry_after=2), 429)
    with pytest.raises(openai.InternalServerError) as exc:
        ask(client, "x")
    assert exc.value.status_code == 503 and exc.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.RateLimitError):
        ask(client, "x", stream=True)
    assert ask(client, "x").choices[0].message.content == "stub-reply: x"
    assert [type(r.reply).__name__ for r in stub_model.chat_requests] == ["HttpError", "HttpError", "Reply"]


def test_models_listing_and_unknown_routes(client: openai.OpenAI, stub_model: StubModelServer) -> None:
    assert [m.id for m in client.models.list()] == ["stub-model"]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="e", input="x")
    assert [(r.method, r.path) for r in stub_model.requests] == [("GET", "/v1/models"), ("POST", "/v1/embeddings")]


def test_last_user_text_handles_content_parts(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="m", messages=[
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "part1 "}, {"type": "text", "text": "part2"}]},
    ])
    assert resp.choices[0].message.content == "stub-reply: part1 part2"


def test_wait_for_requests(client: openai.OpenAI, stub_model: StubModelServer) -> None:
    t = threading.Thread(target=ask, args=(client, "bg"))
    t.start()
    (req,) = stub_model.wait_for_requests(1, timeout=10)
    t.join()
    assert req.body["messages"][0]["content"] == "bg"
    with pytest.raises(TimeoutError):
        stub_model.wait_for_requests(2, timeout=0.05)
