"""Tests for hermes_aws.events: the JSON lines the construct's metric filters count."""

from __future__ import annotations

import io
import json

import pytest

from hermes_aws.events import GATEWAY_ID_ENV, emit, short


def test_one_line_with_the_gateway_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ID_ENV, "Agents/Gateway")
    out = io.StringIO()
    record = emit("health", out=out, healthy=False, reason="line one\nline two")
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    parsed = json.loads(text)
    assert parsed == record
    assert parsed["event"] == "health" and parsed["gateway"] == "Agents/Gateway"
    assert parsed["healthy"] is False  # a JSON boolean: the filter tests `$.healthy IS FALSE`
    assert "time" in parsed


def test_without_a_gateway_id_the_field_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GATEWAY_ID_ENV, raising=False)
    out = io.StringIO()
    assert "gateway" not in emit("knowledge_sync", out=out, ok=True)


def test_default_output_is_a_single_write_to_fd_1(monkeypatch: pytest.MonkeyPatch,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(GATEWAY_ID_ENV, "G")
    emit("knowledge_sync", ok=False, error="é" * 10)
    line = capfd.readouterr().out
    assert line.isascii()  # ensure_ascii: byte length is predictable, well under PIPE_BUF
    assert json.loads(line)["error"] == "é" * 10


def test_short() -> None:
    assert short("a\n  b\tc") == "a b c"
    assert short("x" * 1000, 10) == "xxxxxxx..."
    assert len(short("y" * 5000)) == 400
