"""hermes_aws.sessions against a real moto server (DynamoDB)."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest

from hermes_aws import sessions
from hermes_aws.sessions import (
    MAX_MESSAGE_BYTES,
    SessionStore,
    encode_message,
    trim_to_user_boundary,
)
from stubs.aws_resources import create_sessions_table

KEY = "telegram:4242"


@pytest.fixture
def ddb(aws_env: str) -> Any:
    client = boto3.client("dynamodb")
    create_sessions_table("sessions", client=client)
    return client


@pytest.fixture
def store(ddb: Any) -> SessionStore:
    return SessionStore("sessions", client=ddb)


def turn(i: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]


def raw_items(ddb: Any, key: str = KEY) -> list[dict[str, Any]]:
    return ddb.query(TableName="sessions", KeyConditionExpression="PK = :pk",
                     ExpressionAttributeValues={":pk": {"S": f"SESSION#{key}"}}, ConsistentRead=True)["Items"]


def test_first_turn_creates_meta_and_messages(store: SessionStore, ddb: Any) -> None:
    assert store.get_meta(KEY) is None
    assert store.load_history(KEY) == []
    meta = store.current(KEY)
    assert meta.next_seq == 0 and meta.version == 0
    tool_turn = [
        {"role": "user", "content": "plan"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "todo", "arguments": "{\"todos\": []}"}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "todo", "content": "{\"ok\": true}"},
        {"role": "assistant", "content": "planned"},
    ]
    after = store.append(KEY, meta.session_id, tool_turn, meta=meta)
    assert (after.next_seq, after.version, after.session_id) == (4, 1, meta.session_id)
    assert store.load_history(KEY) == tool_turn  # the exact dicts Hermes returned, round-tripped

    items = {i["SK"]["S"]: i for i in raw_items(ddb)}
    assert set(items) == {"META"} | {f"MSG#{meta.session_id}#{n:010d}" for n in range(4)}
    assert items["META"]["next_seq"] == {"N": "4"} and items["META"]["version"] == {"N": "1"}
    msg = items[f"MSG#{meta.session_id}#0000000002"]
    assert msg["role"] == {"S": "tool"} and json.loads(msg["message"]["S"])["tool_call_id"] == "c1"
    assert "expires_at" not in items["META"]  # no TTL configured


def test_history_is_bounded_and_starts_at_a_user_message(ddb: Any) -> None:
    store = SessionStore("sessions", client=ddb, max_messages=5)
    meta = store.current(KEY)
    messages = [
        {"role": "user", "content": "u0"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "x", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"},
        {"role": "assistant", "content": "a0"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
    ]
    store.append(KEY, meta.session_id, messages)
    # the last 5 start with the assistant tool call: trimmed to the next user message
    assert store.load_history(KEY) == messages[4:]
    store.max_messages = 6
    assert store.load_history(KEY) == messages
    store.max_messages = 3
    assert store.load_history(KEY) == messages[4:]  # last 3 = a0, u1, a1 -> from u1


def test_history_paginates(ddb: Any) -> None:
    store = SessionStore("sessions", client=ddb, max_messages=150)
    meta = store.current(KEY)
    big = "x" * 20_000  # 150 * 20 KB > the 1 MB page a query returns
    msgs = [m for i in range(100) for m in ({"role": "user", "content": f"{i}{big}"},
                                            {"role": "assistant", "content": f"a{i}"})]
    store.append(KEY, meta.session_id, msgs)  # 200 messages: three transactions (99 + 99 + 2)
    assert store.get_meta(KEY).version == 3
    history = store.load_history(KEY)
    assert len(history) == 150 and history == msgs[50:]


def test_trim_to_user_boundary() -> None:
    assert trim_to_user_boundary([]) == []
    assert trim_to_user_boundary([{"role": "tool", "content": "x"}]) == []
    assert trim_to_user_boundary([{"role": "tool"}, {"role": "user", "content": "u"}]) == [{"role": "user", "content": "u"}]


def test_new_session_starts_empty_history_and_keeps_the_old_one(store: SessionStore) -> None:
    meta = store.current(KEY)
    store.append(KEY, meta.session_id, turn(1))
    fresh = store.new_session(KEY)
    assert fresh.session_id != meta.session_id
    assert fresh.next_seq == 2  # sequence numbers are per chat, never reused
    assert store.load_history(KEY) == []
    store.append(KEY, fresh.session_id, turn(2))
    assert store.load_history(KEY) == turn(2)
    assert store.session_messages(KEY, meta.session_id) == turn(1)


def test_turn_racing_new_session_stays_in_its_own_session(store: SessionStore) -> None:
    meta = store.current(KEY)  # the turn loads the session ...
    fresh = store.new_session(KEY)  # ... /new lands meanwhile ...
    store.append(KEY, meta.session_id, turn(1), meta=meta)  # ... the turn is written late
    assert store.load_history(KEY) == []  # never leaks into the new session
    assert store.get_meta(KEY).session_id == fresh.session_id
    assert store.session_messages(KEY, meta.session_id) == turn(1)


def test_two_writers_racing_lose_nothing(store: SessionStore, ddb: Any) -> None:
    """Both read META at version 0; A wins; B's conditional write fails, B re-reads and appends after A."""
    meta = store.current(KEY)
    other = SessionStore("sessions", client=ddb)
    calls: list[str] = []
    real = ddb.transact_write_items

    def spy(**kwargs: Any) -> Any:
        try:
            out = real(**kwargs)
            calls.append("ok")
            return out
        except ddb.exceptions.TransactionCanceledException:
            calls.append("conflict")
            raise

    ddb.transact_write_items = spy  # type: ignore[method-assign]
    a = other.append(KEY, meta.session_id, turn(1), meta=meta)
    b = store.append(KEY, meta.session_id, turn(2), meta=meta)  # stale meta (version 0)
    assert calls == ["ok", "conflict", "ok"]
    assert (a.version, a.next_seq) == (1, 2)
    assert (b.version, b.next_seq) == (2, 4)
    assert store.load_history(KEY) == turn(1) + turn(2)
    assert len(raw_items(ddb)) == 5  # META + 4 messages: nothing overwritten


def test_many_concurrent_writers(store: SessionStore, ddb: Any) -> None:
    """Six threads append at once from the same stale META.

    moto's DynamoDB backend has no locking, so two *simultaneous* transactions
    can both pass their conditions there (real DynamoDB serialises them). The
    lock below restores that one guarantee; everything else (reads of META,
    conflicts, retries) interleaves freely.
    """
    meta = store.current(KEY)
    n = 6
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    atomic = threading.Lock()

    def writer(i: int) -> None:
        client = boto3.client("dynamodb")
        real = client.transact_write_items

        def serialised(**kwargs: Any) -> Any:
            with atomic:
                return real(**kwargs)

        client.transact_write_items = serialised
        s = SessionStore("sessions", client=client)
        barrier.wait()
        try:
            s.append(KEY, meta.session_id, turn(i), meta=meta)  # all start from version 0
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    history = store.load_history(KEY)
    assert len(history) == 2 * n
    # every turn is present and contiguous (user immediately followed by its assistant)
    pairs = [(history[i]["content"], history[i + 1]["content"]) for i in range(0, 2 * n, 2)]
    assert sorted(pairs) == sorted((f"q{i}", f"a{i}") for i in range(n))
    final = store.get_meta(KEY)
    assert (final.version, final.next_seq) == (n, 2 * n)


def test_writer_gives_up_after_repeated_conflicts(store: SessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = store.current(KEY)
    monkeypatch.setattr(sessions, "MAX_APPEND_ATTEMPTS", 3)

    def always_conflict(self: SessionStore, *a: Any, **k: Any) -> Any:
        raise sessions._TransactionConflict()

    monkeypatch.setattr(SessionStore, "_write_chunk", always_conflict)
    with pytest.raises(sessions.SessionConflict):
        store.append(KEY, meta.session_id, turn(1))


def test_ttl_on_meta_and_messages(ddb: Any) -> None:
    now = 1_800_000_000.0
    store = SessionStore("sessions", client=ddb, ttl_days=7, clock=lambda: now)
    meta = store.current(KEY)
    store.append(KEY, meta.session_id, turn(1))
    expected = {"N": str(int(now + 7 * 86400))}
    items = raw_items(ddb)
    assert len(items) == 3
    assert all(i["expires_at"] == expected for i in items)
    store.new_session(KEY)
    assert {i["SK"]["S"]: i for i in raw_items(ddb)}["META"]["expires_at"] == expected


def test_from_env(ddb: Any) -> None:
    s = SessionStore.from_env({"HERMES_AWS_TABLE": "sessions", "HERMES_AWS_HISTORY_MAX_MESSAGES": "7",
                               "HERMES_AWS_SESSION_TTL_DAYS": "30"}, client=ddb)
    assert (s.table, s.max_messages, s.ttl_days) == ("sessions", 7, 30.0)
    d = SessionStore.from_env({"HERMES_AWS_TABLE": "sessions"}, client=ddb)
    assert (d.max_messages, d.ttl_days) == (200, None)
    with pytest.raises(ValueError, match="HERMES_AWS_TABLE is not set"):
        SessionStore.from_env({}, client=ddb)
    with pytest.raises(ValueError, match="HERMES_AWS_HISTORY_MAX_MESSAGES must be >= 1"):
        SessionStore.from_env({"HERMES_AWS_TABLE": "t", "HERMES_AWS_HISTORY_MAX_MESSAGES": "0"}, client=ddb)
    with pytest.raises(ValueError, match="HERMES_AWS_SESSION_TTL_DAYS must be a number"):
        SessionStore.from_env({"HERMES_AWS_TABLE": "t", "HERMES_AWS_SESSION_TTL_DAYS": "x"}, client=ddb)


# --------------------------------------------------------------------------- >400 KB


def test_encode_message_small_is_verbatim() -> None:
    msg = {"role": "assistant", "content": "héllo", "tool_calls": None}
    text, truncated = encode_message(msg)
    assert not truncated and json.loads(text) == msg


def test_encode_message_truncates_tool_output_with_marker() -> None:
    big = "0123456789" * 100_000  # 1 MB tool result
    msg = {"role": "tool", "tool_call_id": "call_1", "name": "web_extract", "content": big}
    text, truncated = encode_message(msg)
    assert truncated
    assert len(text.encode("utf-8")) <= MAX_MESSAGE_BYTES
    out = json.loads(text)
    assert out["tool_call_id"] == "call_1" and out["name"] == "web_extract"
    assert out["content"].startswith("0123456789")
    assert "truncated by hermes-aws" in out["content"]
    assert len(out["content"]) > MAX_MESSAGE_BYTES * 0.9  # cut only what was needed


def test_encode_message_multibyte_and_nested_content() -> None:
    big = "é" * 300_000  # 600 KB in UTF-8
    msg = {"role": "user", "content": [{"type": "text", "text": big}, {"type": "text", "text": "tail"}]}
    text, truncated = encode_message(msg)
    assert truncated and len(text.encode("utf-8")) <= MAX_MESSAGE_BYTES
    out = json.loads(text)
    assert out["content"][1] == {"type": "text", "text": "tail"}
    assert "truncated by hermes-aws" in out["content"][0]["text"]


def test_encode_message_prefers_content_over_tool_call_arguments() -> None:
    args = json.dumps({"data": "a" * 100_000})
    msg = {"role": "assistant", "content": "b" * 400_000, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}]}
    text, truncated = encode_message(msg)
    out = json.loads(text)
    assert truncated and out["tool_calls"][0]["function"]["arguments"] == args  # still valid JSON
    assert "truncated by hermes-aws" in out["content"]


def test_huge_tool_output_is_stored_and_loaded(store: SessionStore, ddb: Any) -> None:
    meta = store.current(KEY)
    messages = [
        {"role": "user", "content": "fetch it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "web_extract", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "z" * 1_500_000},
        {"role": "assistant", "content": "done"},
    ]
    store.append(KEY, meta.session_id, messages)  # would fail with ValidationException untruncated
    history = store.load_history(KEY)
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[2]["content"].endswith("to fit the DynamoDB item limit ...]")
    assert history[3] == {"role": "assistant", "content": "done"}


def test_replace_session_with_compacted_transcript(store: SessionStore) -> None:
    meta = store.current(KEY)
    store.append(KEY, meta.session_id, turn(1) + turn(2))
    compacted = [{"role": "user", "content": "[summary of earlier turns]"},
                 {"role": "assistant", "content": "ok"}, *turn(3)]
    after = store.replace_session(KEY, compacted)
    assert after.session_id != meta.session_id
    assert store.load_history(KEY) == compacted
    assert store.session_messages(KEY, meta.session_id) == turn(1) + turn(2)


def test_append_with_no_messages_is_a_noop(store: SessionStore) -> None:
    meta = store.current(KEY)
    assert store.append(KEY, meta.session_id, [], meta=meta) == meta


def ledger_put(key: str, status: str) -> dict[str, Any]:
    return {"Put": {"TableName": "sessions",
                    "Item": {"PK": {"S": f"UPDATE#{key}"}, "SK": {"S": "STATE"}, "status": {"S": status}},
                    "ConditionExpression": "attribute_not_exists(PK)"}}


def test_extra_items_are_written_atomically(store: SessionStore, ddb: Any) -> None:
    meta = store.current(KEY)
    store.append(KEY, meta.session_id, turn(1), meta=meta, also=[ledger_put("telegram:1", "PERSISTED")])
    item = ddb.get_item(TableName="sessions", Key={"PK": {"S": "UPDATE#telegram:1"}, "SK": {"S": "STATE"}})
    assert item["Item"]["status"] == {"S": "PERSISTED"}
    # the same record again: its condition fails -> nothing of the turn is written
    with pytest.raises(sessions.ExtraConditionFailed):
        store.append(KEY, meta.session_id, turn(2), also=[ledger_put("telegram:1", "PERSISTED")])
    assert store.load_history(KEY) == turn(1)
    assert store.get_meta(KEY).version == 1


def test_extra_items_with_a_stale_meta_still_retry(store: SessionStore, ddb: Any) -> None:
    meta = store.current(KEY)
    store.append(KEY, meta.session_id, turn(1), meta=meta)
    store.append(KEY, meta.session_id, turn(2), meta=meta, also=[ledger_put("telegram:2", "PERSISTED")])
    assert store.load_history(KEY) == turn(1) + turn(2)


def test_extra_items_go_with_the_last_part_of_a_long_turn(store: SessionStore, ddb: Any) -> None:
    meta = store.current(KEY)
    long_turn = [{"role": "user", "content": "go"}] + [
        m for i in range(60) for m in (
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"c{i}", "type": "function", "function": {"name": "todo", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "ok"})] + [{"role": "assistant", "content": "end"}]
    assert len(long_turn) == 122
    calls: list[int] = []
    real = ddb.transact_write_items

    def spy(**kwargs: Any) -> Any:
        calls.append(len(kwargs["TransactItems"]))
        return real(**kwargs)

    ddb.transact_write_items = spy  # type: ignore[method-assign]
    store.append(KEY, meta.session_id, long_turn, also=[ledger_put("telegram:3", "PERSISTED")])
    assert calls == [100, 1 + 23 + 1]
    assert store.load_history(KEY) == long_turn


def test_new_session_with_extra_items(store: SessionStore, ddb: Any) -> None:
    store.current(KEY)
    fresh = store.new_session(KEY, also=[ledger_put("telegram:9", "PERSISTED")])
    assert store.get_meta(KEY).session_id == fresh.session_id
    with pytest.raises(sessions.ExtraConditionFailed):
        store.new_session(KEY, also=[ledger_put("telegram:9", "PERSISTED")])
    assert store.get_meta(KEY).session_id == fresh.session_id
