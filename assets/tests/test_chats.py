"""hermes_aws.chats (queue bodies -> messages, reply targets) and the Hermes session context of a turn."""

from __future__ import annotations

import os
from typing import Any

import pytest

from hermes_aws import chats
from hermes_aws.chats import (
    ChannelNotConfigured,
    Senders,
    SlackTarget,
    TelegramTarget,
    hermes_origin,
    origin_target,
    parse_queue_body,
    reply_target,
)
from stubs.serverless import slack_envelope, telegram_update


class StaticSecrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, arn: str) -> str:
        return self.values[arn]


def test_parse_queue_body_for_each_source() -> None:
    update = telegram_update(-100, "hi", user_id=5, chat_type="supergroup")
    update["message"].update({"is_topic_message": True, "message_thread_id": 9})
    tg = parse_queue_body({"source": "telegram", "update": update, "received_at": "x"})
    assert tg is not None and (tg.channel, tg.chat_id, tg.user_id, tg.thread_id) == ("telegram", "-100", "5", "9")
    assert (tg.dedup_key, tg.group_id, tg.session_key, tg.actor_id) == (
        f"telegram:{update['update_id']}", "telegram:-100", "telegram:-100:9", "telegram:5")
    assert tg.user_name == "Ada"
    envelope = slack_envelope("<@U0BOTSTUB> hi", event_type="app_mention", channel="C1", event_id="Ev1")
    sl = parse_queue_body({"source": "slack", "event": envelope, "received_at": "x"})
    assert sl is not None and (sl.text, sl.dedup_key, sl.thread_id) == ("hi", "slack:Ev1", envelope["event"]["ts"])
    assert hermes_origin(sl) == {"platform": "slack", "chat_id": "C1", "chat_name": None,
                                 "thread_id": envelope["event"]["ts"], "user_id": "U0ALICE"}
    for body in ({"source": "hermes.cron", "job": {}}, {"source": "slack", "event": {"type": "url_verification"}},
                 {"source": "telegram"}, {"update": update}, "telegram", None):
        assert parse_queue_body(body) is None


def test_reply_targets_send_to_the_right_place(stub_telegram: Any, stub_slack: Any) -> None:
    senders = Senders(StaticSecrets({"tg": stub_telegram.token + "\n", "sl": stub_slack.token}), {
        "HERMES_AWS_TELEGRAM_BOT_TOKEN_ARN": "tg", "HERMES_AWS_SLACK_BOT_TOKEN_ARN": "sl",
        "HERMES_AWS_TELEGRAM_API_BASE": stub_telegram.api_base, "HERMES_AWS_SLACK_API_BASE": stub_slack.api_base})
    update = telegram_update(42, "question")
    target = reply_target(parse_queue_body({"source": "telegram", "update": update}), senders)
    assert isinstance(target, TelegramTarget)
    with target.typing():
        ids = target.send("answer")
    assert ids and stub_telegram.sent_messages(42) == ["answer"]
    (send,) = stub_telegram.calls_of("sendMessage")
    assert send.params["reply_parameters"]["message_id"] == update["message"]["message_id"]
    assert stub_telegram.calls_of("sendChatAction")

    envelope = slack_envelope("hello", thread_ts="1710000000.000001")
    target = reply_target(parse_queue_body({"source": "slack", "event": envelope}), senders)
    assert isinstance(target, SlackTarget)
    with target.typing():  # nothing to show on Slack
        chunks = target.split("x" * 5000)
        ids = [i for n, c in enumerate(chunks) for i in target.send_chunk(c, n)]
    assert len(chunks) == 2 and len(ids) == 2
    assert {(m.channel, m.thread_ts) for m in stub_slack.posted()} == {("D0DMALICE", "1710000000.000001")}

    origin_target("slack", "C7", None, senders).send("top level")
    assert stub_slack.posted("C7")[0].thread_ts is None
    origin_target("telegram", "42", "5", senders).send("in a topic")
    assert stub_telegram.calls_of("sendMessage")[-1].params["message_thread_id"] == 5
    assert target.split("") == ["…"]


def test_unconfigured_channels_raise() -> None:
    senders = Senders(StaticSecrets({}), {})
    assert not senders.configured("slack") and not senders.configured("telegram")
    message = parse_queue_body({"source": "slack", "event": slack_envelope("hi")})
    with pytest.raises(ChannelNotConfigured, match="HERMES_AWS_SLACK_BOT_TOKEN_ARN"):
        reply_target(message, senders).send("x")
    with pytest.raises(ChannelNotConfigured):
        origin_target("discord", "1", None, senders)
    assert chats.CHANNELS == ("telegram", "slack")


def test_session_context_binds_hermes_session_variables_and_restores_them(hermetic_hermes: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.session_context import get_session_env
    from tools.cronjob_tools import _origin_from_env, check_cronjob_requirements

    from hermes_aws.agent_runner import session_context

    monkeypatch.setenv("HERMES_SESSION_PLATFORM", "stale")
    monkeypatch.delenv("HERMES_GATEWAY_SESSION", raising=False)
    with session_context(platform="slack", chat_id="C1", thread_id="1700.1", user_id="U1",
                         session_key="slack:C1:1700.1", session_id="s1", message_id="1700.2", gateway=True):
        assert get_session_env("HERMES_SESSION_CHAT_ID") == "C1"
        assert os.environ["HERMES_SESSION_THREAD_ID"] == "1700.1"
        assert check_cronjob_requirements() is True
        assert _origin_from_env() == {"platform": "slack", "chat_id": "C1", "chat_name": None,
                                      "thread_id": "1700.1", "user_id": "U1"}
    assert os.environ["HERMES_SESSION_PLATFORM"] == "stale" and "HERMES_GATEWAY_SESSION" not in os.environ
    assert "HERMES_SESSION_CHAT_ID" not in os.environ
    assert get_session_env("HERMES_SESSION_CHAT_ID") == ""  # cleared, no fallback to a stale environment
    assert check_cronjob_requirements() is False


def test_allowed_toolsets_only_lift_our_own_list() -> None:
    from hermes_aws.agent_runner import LAMBDA_DISABLED_TOOLSETS, disabled_toolsets

    assert "cronjob" in disabled_toolsets({})
    lifted = disabled_toolsets({}, allow=["cronjob"])
    assert "cronjob" not in lifted and set(lifted) == set(LAMBDA_DISABLED_TOOLSETS) - {"cronjob"}
    assert "cronjob" in disabled_toolsets({"agent": {"disabled_toolsets": ["cronjob"]}}, allow=["cronjob"])
