"""Tests for hermes_aws.channels.telegram: secret check, update parsing, chunking, Bot API client."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hermes_aws.channels import InboundMessage
from hermes_aws.channels.http import HttpClient
from hermes_aws.channels.telegram import (
    API_BASE_ENV,
    HANDLED_UPDATE_TYPES,
    MAX_MESSAGE_LENGTH,
    TelegramClient,
    TelegramError,
    parse_update,
    split_message,
    utf16_len,
    verify_secret_token,
)
from helpers import FakeTime, fake_http
from stubs.telegram_server import StubTelegramServer


@pytest.fixture
def tg(stub_telegram: StubTelegramServer, fake: FakeTime) -> TelegramClient:
    return TelegramClient(stub_telegram.token, api_base=stub_telegram.api_base, http=fake_http(fake))


# -- verify_secret_token ----------------------------------------------------------
SECRET = "s3cretTOKEN_value-0123456789abcdef"


@pytest.mark.parametrize("name", [
    "X-Telegram-Bot-Api-Secret-Token", "x-telegram-bot-api-secret-token", "X-TELEGRAM-BOT-API-SECRET-TOKEN",
])
def test_secret_header_name_is_case_insensitive(name: str) -> None:
    assert verify_secret_token({name: SECRET, "content-type": "application/json"}, SECRET) is True


@pytest.mark.parametrize("headers", [
    {},
    {"x-telegram-bot-api-secret-token": ""},
    {"x-telegram-bot-api-secret-token": "wrong"},
    {"x-telegram-bot-api-secret-token": SECRET + "x"},  # different length
    {"x-telegram-bot-api-secret-token": SECRET[:-1]},
    {"x-telegram-bot-api-secret-token": SECRET.upper()},  # differs only in case
    {"x-telegram-bot-api-secret-token": SECRET.swapcase()},
    {"x-telegram-bot-api-secret-token": "sécret-ünïcode"},  # non-ASCII must not raise
    {"x-other-header": SECRET},
], ids=["none", "empty", "wrong", "longer", "shorter", "upper", "swapcase", "unicode", "other-header"])
def test_wrong_or_missing_secret_is_refused(headers: dict[str, str]) -> None:
    assert verify_secret_token(headers, SECRET) is False


@pytest.mark.parametrize("expected", ["", None])
def test_no_expected_secret_refuses_everything(expected: Any) -> None:
    assert verify_secret_token({"x-telegram-bot-api-secret-token": ""}, expected) is False
    assert verify_secret_token({"x-telegram-bot-api-secret-token": "anything"}, expected) is False


def test_no_headers_at_all() -> None:
    assert verify_secret_token(None, SECRET) is False  # type: ignore[arg-type]


# -- parse_update ------------------------------------------------------------------
def text_update(text: str = "hello", *, update_id: Any = 1001, chat_type: str = "private",
                chat_id: int = 42, user_id: int = 42, **message_extra: Any) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 7,
            "from": {"id": user_id, "is_bot": False, "first_name": "Ada"},
            "chat": {"id": chat_id, "type": chat_type},
            "date": 1700000000,
            "text": text,
            **message_extra,
        },
    }


def test_private_text_message() -> None:
    update = text_update("hi there")
    msg = parse_update(update)
    assert msg == InboundMessage(channel="telegram", chat_id="42", user_id="42", text="hi there",
                                 update_id="1001", message_id="7", thread_id=None,
                                 chat_type="private", raw=update)
    assert msg is not None and msg.raw is update and msg.is_private


def test_group_and_supergroup_topic() -> None:
    group = parse_update(text_update(chat_type="group", chat_id=-1001, user_id=5))
    assert group is not None and (group.chat_id, group.user_id, group.chat_type) == ("-1001", "5", "group")
    topic = parse_update(text_update(chat_type="supergroup", chat_id=-100123, message_thread_id=9,
                                     is_topic_message=True))
    assert topic is not None and topic.thread_id == "9" and topic.chat_type == "supergroup"
    reply_thread = parse_update(text_update(chat_type="supergroup", message_thread_id=9))
    assert reply_thread is not None and reply_thread.thread_id is None  # not a forum topic


def test_commands_are_text() -> None:
    msg = parse_update(text_update("/start"))
    assert msg is not None and msg.text == "/start"


def _without(update: dict[str, Any], *path: str) -> dict[str, Any]:
    update = copy.deepcopy(update)
    target = update
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return update


@pytest.mark.parametrize("update", [
    {"update_id": 1, "edited_message": text_update()["message"]},
    {"update_id": 1, "channel_post": {"message_id": 1, "chat": {"id": -100, "type": "channel"}, "text": "x"}},
    {"update_id": 1, "callback_query": {"id": "1", "from": {"id": 42}, "data": "x"}},
    {"update_id": 1, "inline_query": {"id": "1", "from": {"id": 42}, "query": "x"}},
    {"update_id": 1, "my_chat_member": {"chat": {"id": 42, "type": "private"}}},
    {"update_id": 1},
    _without(text_update(), "message", "text") | {"message": {**_without(text_update(), "message", "text")["message"],
                                                              "sticker": {"file_id": "x"}}},
    {"update_id": 1, "message": {**text_update()["message"], "text": None, "photo": [{}], "caption": "look"}},
    text_update(""),
    text_update("   \n"),
    _without(text_update(), "update_id"),
    text_update(update_id="1001"),
    text_update(update_id=True),
    text_update(update_id=1.5),
    _without(text_update(), "message", "from"),
    _without(text_update(), "message", "chat"),
    text_update(chat_type="channel"),
    {"update_id": 1, "message": "not an object"},
    [text_update()],
    "update",
    None,
], ids=["edited", "channel_post", "callback_query", "inline_query", "my_chat_member", "empty", "sticker",
        "photo_caption", "empty_text", "blank_text", "no_update_id", "string_update_id", "bool_update_id",
        "float_update_id", "no_from", "no_chat", "channel_chat", "message_string", "list", "string", "none"])
def test_unsupported_updates_are_none(update: Any) -> None:
    assert parse_update(update) is None


def test_handled_update_types() -> None:
    assert HANDLED_UPDATE_TYPES == ["message"]


# -- split_message ---------------------------------------------------------------------
def assert_chunks_valid(chunks: list[str]) -> None:
    assert chunks
    for chunk in chunks:
        assert 0 < utf16_len(chunk) <= MAX_MESSAGE_LENGTH
        chunk.encode("utf-16-le")  # raises on a lone surrogate
        assert chunk.strip()


def test_short_and_exactly_4096_are_one_chunk() -> None:
    assert split_message("hello") == ["hello"]
    text = "x" * 4096
    assert split_message(text) == [text]


def test_4097_characters() -> None:
    chunks = split_message("x" * 4097)
    assert [len(c) for c in chunks] == [4096, 1]


def test_long_word_is_cut_hard_without_loss() -> None:
    text = "y" * 10_000
    chunks = split_message(text)
    assert [len(c) for c in chunks] == [4096, 4096, 1808]
    assert "".join(chunks) == text


def test_10000_characters_of_words_split_at_spaces() -> None:
    text = " ".join(f"w{i:04d}" for i in range(1667))[:10_000]  # words of 5 + space
    chunks = split_message(text)
    assert_chunks_valid(chunks)
    assert len(chunks) == 3
    assert " ".join(chunks).split() == text.split()  # nothing lost, no word cut
    assert all(not c.startswith(" ") and not c.endswith(" ") for c in chunks)


def test_prefers_paragraphs_then_lines_then_spaces() -> None:
    para = "A" * 2500 + "\n" + "B" * 1000 + "\n\n" + "C" * 3000
    assert split_message(para) == ["A" * 2500 + "\n" + "B" * 1000, "C" * 3000]
    lines = "A" * 2500 + " " + "B" * 1000 + "\n" + "C" * 3000
    assert split_message(lines) == ["A" * 2500 + " " + "B" * 1000, "C" * 3000]
    # A paragraph break too early in the window is not worth a tiny chunk: use the later space.
    early = "A" * 100 + "\n\n" + "B" * 3900 + " " + "C" * 500
    assert split_message(early) == ["A" * 100 + "\n\n" + "B" * 3900, "C" * 500]


def test_emoji_at_the_boundary_is_not_split() -> None:
    text = "a" * 4095 + "😀" + "b"  # the emoji is 2 UTF-16 units: it does not fit in chunk one
    chunks = split_message(text)
    assert chunks == ["a" * 4095, "😀b"]
    assert_chunks_valid(chunks)


@pytest.mark.parametrize("cluster", [
    "👨\u200d👩\u200d👧",  # ZWJ family
    "👍🏽",  # skin tone modifier
    "🇩🇪",  # flag: two regional indicators
    "e\u0301",  # combining accent
    "❤\ufe0f",  # variation selector
])
def test_grapheme_clusters_at_the_boundary_stay_whole(cluster: str) -> None:
    for pad in range(4096 - utf16_len(cluster) + 1, 4097):
        text = "a" * pad + cluster + "z"
        chunks = split_message(text)
        assert "".join(chunks) == text
        assert_chunks_valid(chunks)
        assert any(cluster in c for c in chunks), (pad, [len(c) for c in chunks])


def test_flag_pairs_are_kept_in_pairs() -> None:
    text = "a" * 4091 + "🇩🇪🇫🇷"  # 4091 + 8 units; a cut after the first flag keeps both whole
    chunks = split_message(text)
    assert chunks == ["a" * 4091 + "🇩🇪", "🇫🇷"]


def test_whitespace_only_text_gives_no_chunks() -> None:
    assert split_message("   \n\n ") == []


# -- TelegramClient against the stub ------------------------------------------------------
def test_send_message_uses_markdown(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    ids = tg.send_message(42, "*bold* hello", reply_to_message_id=7)
    assert len(ids) == 1
    call = stub_telegram.calls_of("sendMessage")[0]
    assert call.params["parse_mode"] == "Markdown"
    assert call.params["text"] == "*bold* hello"
    assert call.params["reply_parameters"] == {"message_id": 7, "allow_sending_without_reply": True}


def test_long_message_is_sent_in_chunks(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "lorem ipsum " * 60 for i in range(20))
    ids = tg.send_message("42", text, reply_to_message_id=7)
    sent = stub_telegram.sent_messages(42)
    assert len(ids) == len(sent) >= 3 and ids == sorted(ids)
    assert all(utf16_len(s) <= 4096 for s in sent)
    calls = stub_telegram.calls_of("sendMessage")
    assert "reply_parameters" in calls[0].params
    assert all("reply_parameters" not in c.params for c in calls[1:])
    assert "".join(sent).replace("\n", "") == text.replace("\n", "")


def test_markdown_refused_falls_back_to_plain_text(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    stub_telegram.fail_next("sendMessage", 400, description="Bad Request: can't parse entities: "
                                                           "Can't find end of the entity starting at byte offset 3")
    ids = tg.send_message(42, "see *this")
    assert len(ids) == 1
    calls = stub_telegram.calls_of("sendMessage")
    assert [c.status for c in calls] == [400, 200]
    assert calls[0].params["parse_mode"] == "Markdown"
    assert "parse_mode" not in calls[1].params and calls[1].params["text"] == "see *this"


def test_realistic_unbalanced_markdown_falls_back(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    tg.send_message(42, "edit my_file.py and run it")  # a lone underscore: legacy Markdown refuses it
    assert stub_telegram.sent_messages(42) == ["edit my_file.py and run it"]
    assert [c.status for c in stub_telegram.calls_of("sendMessage")] == [400, 200]


def test_fallback_is_per_chunk(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    text = "*a*" + "x" * 4000 + "\n\n" + "b_c " + "y" * 100
    tg.send_message(42, text)
    calls = stub_telegram.calls_of("sendMessage")
    assert [(c.status, "parse_mode" in c.params) for c in calls] == [(200, True), (400, True), (200, False)]


def test_other_400_is_raised_without_plain_retry(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    stub_telegram.fail_next("sendMessage", 400, description="Bad Request: chat not found")
    with pytest.raises(TelegramError) as info:
        tg.send_message(999, "hi")
    assert info.value.status == 400 and info.value.description == "Bad Request: chat not found"
    assert len(stub_telegram.calls_of("sendMessage")) == 1


def test_429_retry_after_is_honoured(tg: TelegramClient, stub_telegram: StubTelegramServer, fake: FakeTime) -> None:
    stub_telegram.fail_next("sendMessage", 429, retry_after=5)
    assert len(tg.send_message(42, "hi")) == 1
    assert fake.sleeps == [5.0]
    assert [c.status for c in stub_telegram.calls_of("sendMessage")] == [429, 200]


def test_5xx_is_retried_then_succeeds(tg: TelegramClient, stub_telegram: StubTelegramServer, fake: FakeTime) -> None:
    stub_telegram.fail_next("sendMessage", 502, times=2)
    assert len(tg.send_message(42, "hi")) == 1
    assert fake.sleeps == [0.5, 1.0]


def test_final_failure_raises(tg: TelegramClient, stub_telegram: StubTelegramServer, fake: FakeTime) -> None:
    stub_telegram.fail_next("sendMessage", 500, times=10)
    with pytest.raises(TelegramError) as info:
        tg.send_message(42, "hi")
    assert info.value.status == 500
    assert len(stub_telegram.calls_of("sendMessage")) == tg.http.max_attempts
    assert stub_telegram.token not in str(info.value)


def test_blocked_by_user(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    stub_telegram.fail_next("sendMessage", 403)
    with pytest.raises(TelegramError, match="blocked"):
        tg.send_message(42, "hi")


def test_unreachable_api_is_status_0(stub_telegram: StubTelegramServer, fake: FakeTime) -> None:
    http = HttpClient(sleep=fake.sleep, clock=fake.clock, max_attempts=2)
    client = TelegramClient(stub_telegram.token, api_base="http://127.0.0.1:9", http=http)
    with pytest.raises(TelegramError) as info:
        client.get_me()
    assert info.value.status == 0 and stub_telegram.token not in str(info.value)


def test_wrong_token_is_401(stub_telegram: StubTelegramServer) -> None:
    client = TelegramClient("111:wrong", api_base=stub_telegram.api_base)
    with pytest.raises(TelegramError) as info:
        client.send_message(42, "hi")
    assert info.value.status == 401
    assert stub_telegram.unauthorized == ["sendMessage"]


def test_typing_action(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    assert tg.send_chat_action(42, "typing") is True
    call = stub_telegram.wait_for("sendChatAction", 1, timeout=5)[0]
    assert call.params == {"chat_id": 42, "action": "typing"}


def test_thread_id_is_passed(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    tg.send_message(-100123, "in topic", message_thread_id=9)
    tg.send_chat_action(-100123, message_thread_id=9)
    assert stub_telegram.calls_of("sendMessage")[0].params["message_thread_id"] == 9
    assert stub_telegram.calls_of("sendChatAction")[0].params["message_thread_id"] == 9


def test_blank_text_sends_nothing(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    assert tg.send_message(42, "  \n ") == []
    assert stub_telegram.calls_of("sendMessage") == []


def test_webhook_methods(tg: TelegramClient, stub_telegram: StubTelegramServer) -> None:
    assert tg.set_webhook("https://x.lambda-url.us-east-1.on.aws/telegram", "abc_DEF-123", ["message"]) is True
    params = stub_telegram.calls_of("setWebhook")[0].params
    assert params == {"url": "https://x.lambda-url.us-east-1.on.aws/telegram", "secret_token": "abc_DEF-123",
                      "allowed_updates": ["message"], "drop_pending_updates": False}
    assert stub_telegram.webhook.url.endswith("/telegram")
    assert tg.delete_webhook() is True
    assert stub_telegram.webhook.url == ""
    assert tg.get_me()["is_bot"] is True


def test_from_env_uses_api_base(stub_telegram: StubTelegramServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_BASE_ENV, stub_telegram.api_base + "/")
    client = TelegramClient.from_env(stub_telegram.token)
    assert client.api_base == stub_telegram.api_base
    assert client.get_me()["username"] == stub_telegram.bot_username
    monkeypatch.delenv(API_BASE_ENV)
    assert TelegramClient.from_env("1:x").api_base == "https://api.telegram.org"


def test_token_never_in_repr() -> None:
    client = TelegramClient("123:very-secret")
    assert "very-secret" not in repr(client)


@pytest.mark.parametrize("token", ["", "12/34", "12 34"])
def test_invalid_tokens(token: str) -> None:
    with pytest.raises(ValueError):
        TelegramClient(token)


def test_stub_wait_for_times_out(stub_telegram: StubTelegramServer) -> None:
    with pytest.raises(TimeoutError):
        stub_telegram.wait_for("sendMessage", 1, timeout=0.05)
