"""Tests for hermes_aws.channels.slack: request signatures, event parsing, chunking, Web API client."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from hermes_aws.channels import InboundMessage
from hermes_aws.channels.http import HttpClient
from hermes_aws.channels.slack import (
    API_BASE_ENV,
    EVENT_CALLBACK,
    MAX_MESSAGE_LENGTH,
    UNSUPPORTED,
    URL_VERIFICATION,
    RetryInfo,
    SlackClient,
    SlackError,
    classify,
    escape_text,
    parse_event,
    retry_info,
    signature_problem,
    split_message,
    verify_signature,
)
from helpers import FakeTime, fake_http
from stubs.slack_server import StubSlackServer


@pytest.fixture
def stub_slack() -> Iterator[StubSlackServer]:
    with StubSlackServer() as stub:
        yield stub


@pytest.fixture
def slack(stub_slack: StubSlackServer, fake: FakeTime) -> SlackClient:
    return SlackClient(stub_slack.token, api_base=stub_slack.api_base, http=fake_http(fake))


# -- verify_signature -------------------------------------------------------------
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000.0
BODY = json.dumps({"type": "event_callback", "event_id": "Ev01", "event": {"type": "app_mention"}}).encode()


def sign(body: bytes, ts: int | str, secret: str = SECRET) -> str:
    """Slack's v0 scheme, written out here independently of the module under test."""
    mac = hmac.new(secret.encode(), b"v0:" + str(ts).encode() + b":" + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def signed_headers(body: bytes = BODY, ts: int | str = int(NOW), secret: str = SECRET) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sign(body, ts, secret),
            "Content-Type": "application/json"}


def test_signature_of_slack_documentation_example() -> None:
    # The example of "Verifying requests from Slack" (a slash command body).
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F"
            b"96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    headers = {"X-Slack-Request-Timestamp": "1531420618",
               "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}
    assert verify_signature(headers, body, SECRET, now=1531420618 + 10) is True
    assert verify_signature(headers, body, SECRET + "x", now=1531420618 + 10) is False


def test_valid_signature() -> None:
    assert verify_signature(signed_headers(), BODY, SECRET, now=NOW) is True


@pytest.mark.parametrize("case", ["lower", "upper", "mixed"])
def test_header_names_are_case_insensitive(case: str) -> None:
    change = {"lower": str.lower, "upper": str.upper, "mixed": lambda s: s}[case]
    headers = {change(k): v for k, v in signed_headers().items()}
    if case == "mixed":
        headers = {"x-slack-request-TIMESTAMP": headers["X-Slack-Request-Timestamp"],
                   "X-SLACK-signature": headers["X-Slack-Signature"]}
    assert verify_signature(headers, BODY, SECRET, now=NOW) is True


def test_signature_with_the_default_clock() -> None:
    import time

    ts = int(time.time())
    assert verify_signature(signed_headers(ts=ts), BODY, SECRET) is True
    assert verify_signature(signed_headers(ts=ts - 3600), BODY, SECRET) is False


@pytest.mark.parametrize(("change", "problem"), [
    ({}, None),
    ({"X-Slack-Signature": None}, "missing Slack signature"),
    ({"X-Slack-Request-Timestamp": "²"}, "stale Slack signature timestamp"),
    ({"X-Slack-Request-Timestamp": "１５３１４２０６１８"}, "stale Slack signature timestamp"),
    ({"X-Slack-Request-Timestamp": str(int(NOW) - 3600)}, "stale Slack signature timestamp"),
    ({"X-Slack-Signature": "v0=" + "0" * 64}, "wrong Slack signature"),
], ids=["signed", "missing", "superscript", "full-width", "old", "wrong"])
def test_signature_problem_says_why(change: dict[str, Any], problem: str | None) -> None:
    headers = {k: v for k, v in {**signed_headers(), **change}.items() if v is not None}
    assert signature_problem(headers, BODY, SECRET, now=NOW) == problem
    assert verify_signature(headers, BODY, SECRET, now=NOW) is (problem is None)


def test_wrong_secret() -> None:
    headers = signed_headers(secret="another-signing-secret")
    assert verify_signature(headers, BODY, SECRET, now=NOW) is False


@pytest.mark.parametrize("body", [
    BODY.replace(b"Ev01", b"Ev02"),
    BODY + b" ",
    BODY[:-1],
    b"",
], ids=["changed", "appended", "truncated", "empty"])
def test_tampered_body(body: bytes) -> None:
    assert verify_signature(signed_headers(), body, SECRET, now=NOW) is False


def test_timestamp_is_part_of_the_signature() -> None:
    headers = signed_headers()
    headers["X-Slack-Request-Timestamp"] = str(int(NOW) + 1)  # replay with a fresh timestamp
    assert verify_signature(headers, BODY, SECRET, now=NOW) is False


@pytest.mark.parametrize("offset", [-360, 360, -301, 301, -86400, 10**9])
def test_stale_or_future_timestamps_are_refused(offset: int) -> None:
    ts = int(NOW) + offset  # correctly signed, but outside the 5-minute window
    assert verify_signature(signed_headers(ts=ts), BODY, SECRET, now=NOW) is False


@pytest.mark.parametrize("offset", [-300, -299, 0, 299, 300])
def test_timestamps_within_five_minutes_are_accepted(offset: int) -> None:
    ts = int(NOW) + offset
    assert verify_signature(signed_headers(ts=ts), BODY, SECRET, now=NOW) is True


def test_max_age_is_configurable() -> None:
    headers = signed_headers(ts=int(NOW) - 60)
    assert verify_signature(headers, BODY, SECRET, now=NOW, max_age_seconds=30) is False
    assert verify_signature(headers, BODY, SECRET, now=NOW, max_age_seconds=60) is True


@pytest.mark.parametrize("drop", ["X-Slack-Request-Timestamp", "X-Slack-Signature", "both"])
def test_missing_headers(drop: str) -> None:
    headers = signed_headers()
    for name in (["X-Slack-Request-Timestamp", "X-Slack-Signature"] if drop == "both" else [drop]):
        del headers[name]
    assert verify_signature(headers, BODY, SECRET, now=NOW) is False


def test_no_headers_at_all() -> None:
    assert verify_signature(None, BODY, SECRET, now=NOW) is False  # type: ignore[arg-type]
    assert verify_signature({}, BODY, SECRET, now=NOW) is False


@pytest.mark.parametrize("ts", ["", "abc", "1700000000.5", "-1700000000", "1e9", "0x6553f100", "１７００",
                                "1700000000abc", "١٧٠٠٠٠٠٠٠٠"])
def test_non_numeric_timestamp(ts: str) -> None:
    # Signed with that very timestamp string, so only the timestamp check can refuse it.
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(BODY, ts)}
    assert verify_signature(headers, BODY, SECRET, now=NOW) is False


@pytest.mark.parametrize("signature", [
    "", "v0=", "v1=" + sign(BODY, int(NOW))[3:], sign(BODY, int(NOW))[3:], sign(BODY, int(NOW))[:-1],
    sign(BODY, int(NOW)) + "0", "v0=sécrét", "v0=" + "0" * 64,
], ids=["empty", "prefix-only", "v1", "no-prefix", "short", "long", "unicode", "zeros"])
def test_malformed_signatures(signature: str) -> None:
    headers = {"X-Slack-Request-Timestamp": str(int(NOW)), "X-Slack-Signature": signature}
    assert verify_signature(headers, BODY, SECRET, now=NOW) is False


@pytest.mark.parametrize("secret", ["", None])
def test_no_signing_secret_refuses_everything(secret: Any) -> None:
    assert verify_signature(signed_headers(secret="x"), BODY, secret, now=NOW) is False
    headers = {"X-Slack-Request-Timestamp": str(int(NOW)), "X-Slack-Signature": sign(BODY, int(NOW), "")}
    assert verify_signature(headers, BODY, secret, now=NOW) is False


def test_non_ascii_body_is_signed_as_bytes() -> None:
    body = json.dumps({"text": "héllo 👋"}, ensure_ascii=False).encode("utf-8")
    assert verify_signature(signed_headers(body), body, SECRET, now=NOW) is True
    assert verify_signature(signed_headers(body), body.decode("utf-8").encode("latin-1", "replace"),
                            SECRET, now=NOW) is False


# -- retry headers ----------------------------------------------------------------
def test_retry_headers_are_read() -> None:
    assert retry_info({"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"}) == \
        RetryInfo(2, "http_timeout")
    assert retry_info({"x-slack-retry-num": "1", "x-slack-retry-reason": "http_error"}) == RetryInfo(1, "http_error")
    assert retry_info({"x-slack-retry-num": "3"}) == RetryInfo(3, None)


def test_first_delivery_has_no_retry_info() -> None:
    assert retry_info({"content-type": "application/json"}) is None
    assert retry_info({}) is None
    assert retry_info(None) is None
    assert retry_info({"x-slack-retry-num": "lots"}) is None
    assert retry_info({"x-slack-retry-num": "x", "x-slack-retry-reason": "too_many_requests"}) == \
        RetryInfo(None, "too_many_requests")


# -- classify / parse_event ---------------------------------------------------------
BOT = "U0BOTSTUB"


def envelope(event: dict[str, Any], *, event_id: Any = "Ev0PV52K21", bot: str | None = BOT) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "token": "deprecated-verification-token",
        "team_id": "T0STUB",
        "api_app_id": "A0STUB",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1700000000,
    }
    if bot is not None:
        payload["authorizations"] = [{"enterprise_id": None, "team_id": "T0STUB", "user_id": bot,
                                      "is_bot": True, "is_enterprise_install": False}]
    return payload


def dm_event(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"type": "message", "channel": "D024BE91L", "user": "U2147483697", "text": text,
            "ts": "1355517523.000005", "event_ts": "1355517523.000005", "channel_type": "im",
            "client_msg_id": "5b1f1c4a-0000-4000-8000-000000000000", **extra}


def mention_event(text: str = f"<@{BOT}> what is the weather?", **extra: Any) -> dict[str, Any]:
    return {"type": "app_mention", "user": "U061F7AUR", "text": text, "ts": "1515449522.000016",
            "channel": "C0LAN2Q65", "event_ts": "1515449522.000016", **extra}


def test_url_verification_is_classified() -> None:
    payload = {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
               "type": "url_verification"}
    result = classify(payload)
    assert result.kind == URL_VERIFICATION
    assert result.challenge == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    assert result.message is None and parse_event(payload) is None


@pytest.mark.parametrize("challenge", [None, "", 42, "x" * 513, ["a"]])
def test_url_verification_without_usable_challenge(challenge: Any) -> None:
    result = classify({"type": "url_verification", "challenge": challenge})
    assert result.kind == UNSUPPORTED and result.challenge is None


def test_direct_message_is_parsed() -> None:
    payload = envelope(dm_event("hi there"))
    msg = parse_event(payload)
    assert msg == InboundMessage(channel="slack", chat_id="D024BE91L", user_id="U2147483697", text="hi there",
                                 update_id="Ev0PV52K21", message_id="1355517523.000005",
                                 thread_id="1355517523.000005", chat_type="im", raw=payload)
    assert msg is not None and msg.raw is payload
    assert msg.session_key == "slack:D024BE91L" and msg.is_private  # a DM's top level is one conversation
    result = classify(payload)
    assert (result.kind, result.event_id, result.event_type) == (EVENT_CALLBACK, "Ev0PV52K21", "message")
    assert result.message == msg


def test_direct_message_in_a_thread_keeps_the_thread() -> None:
    msg = parse_event(envelope(dm_event("and then?", thread_ts="1355517000.000001")))
    assert msg is not None
    assert (msg.message_id, msg.thread_id) == ("1355517523.000005", "1355517000.000001")
    assert msg.session_key == "slack:D024BE91L:1355517000.000001"  # a thread in a DM is its own conversation


def test_app_mention_is_parsed_with_the_mention_stripped() -> None:
    payload = envelope(mention_event())
    msg = parse_event(payload)
    assert msg == InboundMessage(channel="slack", chat_id="C0LAN2Q65", user_id="U061F7AUR",
                                 text="what is the weather?", update_id="Ev0PV52K21",
                                 message_id="1515449522.000016", thread_id="1515449522.000016",
                                 chat_type="channel", raw=payload, conversation_id="1515449522.000016")
    assert msg is not None and msg.session_key == "slack:C0LAN2Q65:1515449522.000016"  # the thread it starts
    assert (msg.dedup_key, msg.group_id, msg.actor_id) == ("slack:Ev0PV52K21", "slack:C0LAN2Q65", "slack:U061F7AUR")


def test_app_mention_in_a_thread_replies_in_that_thread() -> None:
    msg = parse_event(envelope(mention_event(f"<@{BOT}>: summarise this thread", thread_ts="1515449000.000001")))
    assert msg is not None
    assert msg.text == "summarise this thread"
    assert (msg.message_id, msg.thread_id) == ("1515449522.000016", "1515449000.000001")
    assert msg.session_key == "slack:C0LAN2Q65:1515449000.000001"


@pytest.mark.parametrize("text, expected", [
    (f"<@{BOT}> hi", "hi"),
    (f"<@{BOT}|hermes> hi", "hi"),
    (f"<@{BOT}>, hi", "hi"),
    (f"  <@{BOT}>\n\nmulti\nline", "multi\nline"),
    (f"hi <@{BOT}> there", f"hi <@{BOT}> there"),  # only a leading mention is stripped
    (f"<@U0OTHER> ask <@{BOT}>", f"<@U0OTHER> ask <@{BOT}>"),  # someone else first: kept
    (f"<@{BOT}> compare <@U0OTHER>", "compare <@U0OTHER>"),
    (f"<@{BOT}> is 1 &lt; 2 &amp;&amp; 3 &gt; 2?", "is 1 < 2 && 3 > 2?"),  # Slack's escapes undone
    (f"<@{BOT}> &amp;lt;", "&lt;"),  # the user typed "&lt;" literally
])
def test_mention_stripping(text: str, expected: str) -> None:
    msg = parse_event(envelope(mention_event(text)))
    assert msg is not None and msg.text == expected


def test_unknown_bot_id_strips_any_leading_mention_in_channels_only() -> None:
    msg = parse_event(envelope(mention_event("<@U0SOMEBOT> hi"), bot=None))
    assert msg is not None and msg.text == "hi"
    dm = parse_event(envelope(dm_event("<@U0ALICE> is on leave"), bot=None))
    assert dm is not None and dm.text == "<@U0ALICE> is on leave"


def test_bot_mention_in_a_dm_is_stripped_when_the_bot_is_known() -> None:
    msg = parse_event(envelope(dm_event(f"<@{BOT}> hello")))
    assert msg is not None and msg.text == "hello"


def test_only_bot_authorizations_name_the_bot() -> None:
    payload = envelope(dm_event("<@U0HUMAN> hi", user="U0HUMAN"), bot=None)
    payload["authorizations"] = [{"team_id": "T0STUB", "user_id": "U0HUMAN", "is_bot": False}]
    msg = parse_event(payload)  # the installing user, not the bot: their DMs are still answered
    assert msg is not None and msg.user_id == "U0HUMAN" and msg.text == "<@U0HUMAN> hi"


def test_explicit_bot_user_id_wins_over_authorizations() -> None:
    payload = envelope(mention_event("<@U0REALBOT> hi"), bot="U0INSTALLER")
    msg = parse_event(payload, bot_user_id="U0REALBOT")
    assert msg is not None and msg.text == "hi"
    assert parse_event(envelope(dm_event("x", user="U0REALBOT")), bot_user_id="U0REALBOT") is None


def _without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    payload = copy.deepcopy(payload)
    target = payload
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return payload


@pytest.mark.parametrize("payload", [
    envelope(dm_event(bot_id="B0BOTSTUB", user=BOT)),  # our own reply
    envelope(dm_event(user=BOT)),  # our own user, no bot_id
    envelope(dm_event(bot_id="B0OTHER", user="U0OTHERBOT")),  # another bot
    envelope(dm_event(subtype="bot_message", bot_id="B0OTHER")),
    envelope(dm_event(bot_profile={"id": "B0OTHER", "name": "other"})),
    envelope(mention_event(bot_id="B0OTHER")),  # a bot mentioning us: no loops
    envelope(dm_event(subtype="message_changed", message={"text": "edited", "user": "U2147483697"})),
    envelope(dm_event(subtype="message_deleted")),
    envelope(dm_event(subtype="channel_join")),
    envelope(dm_event(subtype="file_share", files=[{"id": "F1"}])),
    envelope(dm_event(subtype="thread_broadcast")),
    envelope(dm_event(subtype=None)),
    envelope(dm_event(hidden=True)),
    envelope(mention_event(edited={"user": "U061F7AUR", "ts": "1515449600.000000"})),
    envelope(dm_event(channel_type="channel", channel="C0LAN2Q65")),  # message.channels: answered via app_mention
    envelope(dm_event(channel_type="mpim")),
    envelope(dm_event(channel_type="group")),
    _without(envelope(dm_event()), "event", "channel_type"),
    envelope({"type": "reaction_added", "user": "U1", "reaction": "thumbsup", "item": {}}),
    envelope({"type": "app_home_opened", "user": "U1", "channel": "D1"}),
    envelope(dm_event("")),
    envelope(dm_event("   ")),
    envelope(mention_event(f"<@{BOT}>")),  # a bare mention
    envelope(dm_event(text=None)),
    _without(envelope(dm_event()), "event", "text"),
    _without(envelope(dm_event()), "event", "user"),
    _without(envelope(dm_event()), "event", "channel"),
    _without(envelope(dm_event()), "event", "ts"),
    envelope(dm_event(user=123)),
    _without(envelope(dm_event()), "event_id"),
    envelope(dm_event(), event_id=""),
    envelope(dm_event(), event_id=42),
    _without(envelope(dm_event()), "event"),
    {**envelope(dm_event()), "event": "not an object"},
    {**envelope(dm_event()), "type": "app_rate_limited"},
    {**envelope(dm_event()), "type": None},
    [envelope(dm_event())],
    "payload",
    None,
], ids=["own-reply", "own-user", "other-bot", "bot_message", "bot_profile", "bot-mention", "edit", "delete",
        "join", "file_share", "thread_broadcast", "null-subtype", "hidden", "edited-mention", "channel-message",
        "mpim-message", "group-message", "no-channel-type", "reaction", "app_home", "empty-text", "blank-text",
        "bare-mention", "null-text", "no-text", "no-user", "no-channel", "no-ts", "int-user", "no-event-id",
        "empty-event-id", "int-event-id", "no-event", "event-string", "app_rate_limited", "no-type", "list",
        "string", "none"])
def test_unsupported_payloads(payload: Any) -> None:
    result = classify(payload)
    assert result.kind == UNSUPPORTED and result.message is None and result.reason
    assert parse_event(payload) is None


def test_unsupported_events_keep_their_event_id_for_logs() -> None:
    result = classify(envelope(dm_event(subtype="message_changed")))
    assert (result.event_id, result.event_type, result.reason) == ("Ev0PV52K21", "message", "subtype message_changed")
    assert "hello" not in (result.reason or "")  # no message text in log reasons


# -- split_message / escaping ------------------------------------------------------
def test_short_and_exactly_3900_are_one_chunk() -> None:
    assert MAX_MESSAGE_LENGTH == 3900
    assert split_message("hello") == ["hello"]
    assert split_message("x" * 3900) == ["x" * 3900]


def test_3901_characters_are_two_chunks() -> None:
    chunks = split_message("x" * 3901)
    assert [len(c) for c in chunks] == [3900, 1]


def test_prefers_paragraphs_then_lines() -> None:
    para = "a" * 2500 + "\n\n" + "b" * 2500
    assert split_message(para) == ["a" * 2500, "b" * 2500]
    lines = "a" * 2500 + "\n" + "b" * 1000 + " " + "c" * 1000
    assert split_message(lines) == ["a" * 2500, "b" * 1000 + " " + "c" * 1000]


def test_long_text_chunks_are_within_the_limit_without_loss() -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "lorem ipsum " * 80 for i in range(30))
    chunks = split_message(text)
    assert len(chunks) >= 7
    assert all(0 < len(c) <= 3900 for c in chunks)
    assert "".join(chunks).replace("\n", "") == text.replace("\n", "")


def test_escape_text() -> None:
    assert escape_text("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    assert escape_text("&lt;") == "&amp;lt;"


# -- SlackClient against the stub --------------------------------------------------
def test_post_message_in_thread(slack: SlackClient, stub_slack: StubSlackServer) -> None:
    ts = slack.post_message("C0LAN2Q65", "It is sunny.", thread_ts="1515449522.000016")
    assert len(ts) == 1 and ts[0].startswith("1700000000.")
    call = stub_slack.wait_for("chat.postMessage", 1, timeout=5)[0]
    assert call.params == {"channel": "C0LAN2Q65", "text": "It is sunny.", "thread_ts": "1515449522.000016"}
    assert call.headers["authorization"] == f"Bearer {stub_slack.token}"
    assert call.headers["content-type"] == "application/json; charset=utf-8"
    assert "token" not in call.params
    assert [(m.channel, m.thread_ts, m.ts) for m in stub_slack.posted()] == [
        ("C0LAN2Q65", "1515449522.000016", ts[0])]


def test_post_message_without_thread(slack: SlackClient, stub_slack: StubSlackServer) -> None:
    slack.post_message("D024BE91L", "hi")
    assert "thread_ts" not in stub_slack.calls_of("chat.postMessage")[0].params


def test_post_message_escapes_markup_characters(slack: SlackClient, stub_slack: StubSlackServer) -> None:
    slack.post_message("D1", "if a < b && b > c: <!channel>")
    slack.post_message("D1", "<https://example.com|raw>", escape=False)
    assert stub_slack.posted_texts("D1") == ["if a &lt; b &amp;&amp; b &gt; c: &lt;!channel&gt;",
                                             "<https://example.com|raw>"]


def test_long_message_is_posted_in_chunks_in_the_thread(slack: SlackClient, stub_slack: StubSlackServer) -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "lorem ipsum " * 80 for i in range(30))
    ts = slack.post_message("C1", text, thread_ts="1515449522.000016")
    posted = stub_slack.posted("C1")
    assert len(ts) == len(posted) >= 7 and ts == [m.ts for m in posted] == sorted(ts)
    assert all(len(m.text) <= 3900 for m in posted)
    assert all(m.thread_ts == "1515449522.000016" for m in posted)
    assert "".join(m.text for m in posted).replace("\n", "") == text.replace("\n", "")


def test_blank_text_posts_nothing(slack: SlackClient, stub_slack: StubSlackServer) -> None:
    assert slack.post_message("C1", "  \n ") == []
    assert stub_slack.calls_of("chat.postMessage") == []


def test_429_retry_after_is_honoured(slack: SlackClient, stub_slack: StubSlackServer, fake: FakeTime) -> None:
    stub_slack.fail_next("chat.postMessage", 429, retry_after=7)
    assert len(slack.post_message("C1", "hi")) == 1
    assert fake.sleeps == [7.0]
    calls = stub_slack.calls_of("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].response == {"ok": False, "error": "ratelimited"}


def test_ratelimit_that_outlasts_the_retries_raises(slack: SlackClient, stub_slack: StubSlackServer,
                                                    fake: FakeTime) -> None:
    stub_slack.fail_next("chat.postMessage", 429, retry_after=20, times=5)
    with pytest.raises(SlackError) as info:
        slack.post_message("C1", "hi")
    assert (info.value.error, info.value.status, info.value.method) == ("ratelimited", 429, "chat.postMessage")
    assert fake.sleeps == [20.0]  # a second 20 s wait would pass max_total_wait (30 s)


@pytest.mark.parametrize("status, error", [(429, "ratelimited"), (502, "http_502")])
def test_error_without_a_json_body(stub_slack: StubSlackServer, fake: FakeTime, status: int, error: str) -> None:
    http = HttpClient(sleep=fake.sleep, clock=fake.clock, max_attempts=2)
    client = SlackClient(stub_slack.token, api_base=stub_slack.api_base, http=http)
    stub_slack.fail_next("chat.postMessage", status, retry_after=1, raw_body=b"<html>busy</html>", times=2)
    with pytest.raises(SlackError) as info:
        client.post_message("C1", "hi")
    assert (info.value.error, info.value.status) == (error, status)
    assert len(stub_slack.calls_of("chat.postMessage")) == 2


def test_5xx_is_retried_then_succeeds(slack: SlackClient, stub_slack: StubSlackServer, fake: FakeTime) -> None:
    stub_slack.fail_next("chat.postMessage", 503, times=2)
    assert len(slack.post_message("C1", "hi")) == 1
    assert fake.sleeps == [0.5, 1.0]


def test_ok_false_raises(slack: SlackClient, stub_slack: StubSlackServer, fake: FakeTime) -> None:
    stub_slack.error_next("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackError) as info:
        slack.post_message("C404", "hi")
    assert (info.value.error, info.value.status) == ("channel_not_found", 200)
    assert "channel_not_found" in str(info.value)
    assert len(stub_slack.calls_of("chat.postMessage")) == 1 and fake.sleeps == []  # not retried


def test_real_validation_error_raises(slack: SlackClient, stub_slack: StubSlackServer) -> None:
    with pytest.raises(SlackError) as info:
        slack.call("chat.postMessage", {"channel": "C1"})
    assert info.value.error == "no_text"


def test_error_in_a_later_chunk_raises_after_the_first_was_posted(slack: SlackClient,
                                                                  stub_slack: StubSlackServer) -> None:
    stub_slack.error_next("chat.postMessage", "is_archived", after=1)
    with pytest.raises(SlackError, match="is_archived"):
        slack.post_message("C1", "a" * 3000 + "\n\n" + "b" * 3000 + "\n\n" + "c" * 3000)
    assert [c.ok for c in stub_slack.calls_of("chat.postMessage")] == [True, False]
    assert stub_slack.posted_texts("C1") == ["a" * 3000]


def test_wrong_token_is_invalid_auth(stub_slack: StubSlackServer, fake: FakeTime) -> None:
    client = SlackClient("xoxb-wrong", api_base=stub_slack.api_base,
                         http=HttpClient(sleep=fake.sleep, clock=fake.clock))
    with pytest.raises(SlackError) as info:
        client.post_message("C1", "hi")
    assert (info.value.error, info.value.status) == ("invalid_auth", 200)
    assert stub_slack.unauthorized == ["chat.postMessage"]
    assert "xoxb-wrong" not in str(info.value)


def test_unreachable_api_is_status_0(stub_slack: StubSlackServer, fake: FakeTime) -> None:
    http = HttpClient(sleep=fake.sleep, clock=fake.clock, max_attempts=2)
    client = SlackClient(stub_slack.token, api_base="http://127.0.0.1:9/api", http=http)
    with pytest.raises(SlackError) as info:
        client.auth_test()
    assert info.value.status == 0 and info.value.error.startswith("connection_failed")
    assert stub_slack.token not in str(info.value)


def test_auth_test(slack: SlackClient, stub_slack: StubSlackServer) -> None:
    me = slack.auth_test()
    assert (me["user_id"], me["bot_id"], me["team_id"]) == (stub_slack.bot_user_id, stub_slack.bot_id,
                                                            stub_slack.team_id)


def test_from_env_uses_api_base(stub_slack: StubSlackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_BASE_ENV, stub_slack.api_base + "/")
    client = SlackClient.from_env(stub_slack.token)
    assert client.api_base == stub_slack.api_base
    assert client.auth_test()["user_id"] == stub_slack.bot_user_id
    assert SlackClient.from_env("xoxb-x", environ={API_BASE_ENV: "http://h/api"}).api_base == "http://h/api"
    monkeypatch.delenv(API_BASE_ENV)
    assert SlackClient.from_env("xoxb-x").api_base == "https://slack.com/api"


def test_token_is_never_in_repr_errors_or_logs(stub_slack: StubSlackServer, fake: FakeTime,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    http = fake_http(fake)
    client = SlackClient(stub_slack.token, api_base=stub_slack.api_base, http=http)
    assert stub_slack.token not in repr(client)
    stub_slack.fail_next("chat.postMessage", 500, times=10)
    with pytest.raises(SlackError) as info:
        client.post_message("C1", "hi")
    assert info.value.status == 500
    assert stub_slack.token not in str(info.value)
    assert caplog.records and all(stub_slack.token not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("token", ["", "xoxb 1", "xoxb-1\r\nX-Evil: 1", "xoxb-\t1"])
def test_invalid_tokens(token: str) -> None:
    with pytest.raises(ValueError):
        SlackClient(token)


def test_stub_wait_for_times_out(stub_slack: StubSlackServer) -> None:
    with pytest.raises(TimeoutError):
        stub_slack.wait_for("chat.postMessage", 1, timeout=0.05)


def test_module_is_lean() -> None:
    # The ingress imports this on cold start: no Slack SDK, no HTTP stack at import time.
    import subprocess

    code = ("import sys, hermes_aws.channels.slack; "
            "bad = [m for m in ('slack_sdk', 'slack_bolt', 'urllib.request', 'http.client', "
            "'hermes_aws.channels.http', 'hermes_aws.channels.telegram') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert out.stdout.strip() == ""
