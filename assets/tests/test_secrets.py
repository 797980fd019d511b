"""Tests for hermes_aws.secrets against a real moto server (Secrets Manager)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from hermes_aws.placeholders import PLACEHOLDER
from hermes_aws.secrets import (
    SECRET_ARNS_ENV,
    SecretCache,
    SecretError,
    is_placeholder,
    load_secret_environment,
    parse_secret_arns,
    placeholder_names,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sm(aws_env: str) -> Any:
    return boto3.client("secretsmanager")


def counting(client: Any) -> list[str]:
    calls: list[str] = []
    client.meta.events.register("provide-client-params.secrets-manager.GetSecretValue",
                                lambda params, **kw: calls.append(params["SecretId"]))
    return calls


def test_default_client_honours_aws_endpoint_url(sm: Any) -> None:
    arn = sm.create_secret(Name="a", SecretString="value-a")["ARN"]
    cache = SecretCache()  # its own boto3 client, pointed at moto by AWS_ENDPOINT_URL
    assert cache.get(arn) == "value-a"
    assert cache.get("a") == "value-a"  # a name works too


def test_ttl(sm: Any) -> None:
    arn = sm.create_secret(Name="b", SecretString="one")["ARN"]
    client = boto3.client("secretsmanager")
    calls = counting(client)
    clock = Clock()
    cache = SecretCache(client, ttl_seconds=300, clock=clock)
    assert [cache.get(arn) for _ in range(10)] == ["one"] * 10
    assert len(calls) == 1
    sm.put_secret_value(SecretId=arn, SecretString="two")
    clock.now = 299.9
    assert cache.get(arn) == "one"
    clock.now = 300.0
    assert cache.get(arn) == "two"
    assert len(calls) == 2
    cache.invalidate(arn)
    assert cache.get(arn) == "two" and len(calls) == 3


def test_stale_value_is_served_when_a_refresh_fails(sm: Any) -> None:
    arn = sm.create_secret(Name="c", SecretString="good")["ARN"]
    client = boto3.client("secretsmanager")
    calls = counting(client)
    clock = Clock()
    cache = SecretCache(client, ttl_seconds=60, clock=clock)
    assert cache.get(arn) == "good"
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    clock.now = 61
    assert cache.get(arn) == "good"  # refresh failed: last good value
    assert cache.get(arn) == "good" and len(calls) == 2  # and no retry on every call
    clock.now = 61 + 31
    assert cache.get(arn) == "good" and len(calls) == 3


def test_failures_without_a_value_are_remembered_briefly(sm: Any) -> None:
    client = boto3.client("secretsmanager")
    calls = counting(client)
    clock = Clock()
    cache = SecretCache(client, clock=clock, failure_ttl_seconds=5)
    for _ in range(5):
        with pytest.raises(SecretError) as info:
            cache.get("missing")
        assert info.value.code == "ResourceNotFoundException"
        assert str(info.value) == "cannot read secret missing: ResourceNotFoundException"
    assert len(calls) == 1
    sm.create_secret(Name="missing", SecretString="now here")
    clock.now = 5
    assert cache.get("missing") == "now here" and len(calls) == 2


def test_binary_secret(sm: Any) -> None:
    arn = sm.create_secret(Name="bin", SecretBinary="bïnary".encode())["ARN"]
    assert SecretCache().get(arn) == "bïnary"


def test_empty_id() -> None:
    with pytest.raises(ValueError):
        SecretCache(client=object()).get("")


def test_is_placeholder() -> None:
    assert is_placeholder(PLACEHOLDER)
    assert is_placeholder(f"a,{PLACEHOLDER}")
    assert not is_placeholder("123:real-token")
    assert not is_placeholder(None)


def test_load_secret_environment(sm: Any) -> None:
    token = sm.create_secret(Name="tok", SecretString="123:abc")["ARN"]
    key = sm.create_secret(Name="key", SecretString=PLACEHOLDER)["ARN"]
    environ = {"TELEGRAM_BOT_TOKEN": "stale", "OTHER": "x"}
    names = load_secret_environment(json.dumps({"TELEGRAM_BOT_TOKEN": token, "OPENAI_API_KEY": key}), environ)
    assert names == ["OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN"]
    assert environ == {"TELEGRAM_BOT_TOKEN": "123:abc", "OPENAI_API_KEY": PLACEHOLDER, "OTHER": "x"}
    assert placeholder_names(environ, names) == ["OPENAI_API_KEY"]


def test_load_secret_environment_is_all_or_nothing(sm: Any) -> None:
    good = sm.create_secret(Name="good", SecretString="v")["ARN"]
    environ: dict[str, str] = {}
    with pytest.raises(SecretError) as info:
        load_secret_environment(json.dumps({"A": good, "B": good + "-gone"}), environ)
    assert "ResourceNotFoundException" in str(info.value) and "v" not in str(info.value).split(":")[-1]
    assert environ == {}


@pytest.mark.parametrize("text", ["", "  ", None])
def test_blank_mapping_is_nothing(text: Any) -> None:
    assert parse_secret_arns(text) == {}
    assert load_secret_environment(text, {}) == []


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "not valid JSON"),
    ('["arn"]', "must be a JSON object"),
    ('{"1BAD": "arn"}', "1BAD"),
    ('{"A-B": "arn"}', "A-B"),
    ('{"OK": ""}', "OK"),
    ('{"OK": 5}', "OK"),
])
def test_bad_mapping(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=SECRET_ARNS_ENV) as info:
        parse_secret_arns(text)
    assert message in str(info.value)
